/**
 * Parsed template document → normalized `TaskTemplate`: aliases resolved, defaults filled, absent
 * optionals null, unknown keys dropped, the selected environment's overrides applied and the
 * `environments` key removed.
 *
 * It runs after the JSON Schema check but is written defensively (a value of the wrong type is
 * treated as absent) so that semantic checks can still run on a document with schema errors and every
 * problem is reported at once. A template with any error is never returned to callers.
 */
import { escapePointer, isJsonObject } from './json.ts';
import {
  ALL_STEPS,
  BACKOFF_STRATEGIES,
  type BatchConfiguration,
  DELIVERY_MODES,
  type DomainEventDefinition,
  EVENT_CONDITIONS,
  type EventDeclaration,
  FAILURE_STRATEGIES,
  type HandlerDefinition,
  IDENTITY_STRATEGIES,
  type JsonObject,
  type JsonValue,
  type LifecycleConfig,
  type RetryConfiguration,
  STALENESS_ACTIONS,
  STEP_TYPES,
  type StepDefinition,
  type TaskTemplate,
  TEMPLATE_DEFAULTS,
  type TemplateMetadata,
} from './model.ts';
import type { RawIssue } from './schema.ts';

function text(value: JsonValue | undefined): string | null {
  return typeof value === 'string' ? value : null;
}

function integer(value: JsonValue | undefined): number | null {
  return typeof value === 'number' && Number.isInteger(value) ? value : null;
}

function flag(value: JsonValue | undefined): boolean | null {
  return typeof value === 'boolean' ? value : null;
}

function object(value: JsonValue | undefined): JsonObject {
  return isJsonObject(value) ? value : {};
}

function texts(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

function schemaValue(value: JsonValue | undefined): JsonObject | boolean | null {
  return isJsonObject(value) || typeof value === 'boolean' ? value : null;
}

function oneOf<T extends string>(allowed: readonly T[], value: JsonValue | undefined, fallback: T): T {
  return allowed.find((candidate) => candidate === value) ?? fallback;
}

function has(source: JsonObject, key: string): boolean {
  return Object.hasOwn(source, key) && source[key] !== undefined;
}

/** The value under `key`, or under its alias; both present is an issue. */
function aliased(
  source: JsonObject,
  key: string,
  alias: string,
  path: string,
  issues: RawIssue[],
  step?: string,
): JsonValue | undefined {
  if (has(source, key) && has(source, alias)) {
    issues.push({
      path: `${path}/${alias}`,
      message: `"${alias}" is an alias of "${key}": give one of them, not both`,
      ...(step === undefined ? {} : { step }),
    });
  }
  return has(source, key) ? source[key] : source[alias];
}

function normalizeRetry(value: JsonValue | undefined): RetryConfiguration {
  const retry = object(value);
  const defaults = TEMPLATE_DEFAULTS.retry;
  return {
    retryable: flag(retry.retryable) ?? defaults.retryable,
    max_attempts: integer(retry.max_attempts) ?? defaults.max_attempts,
    backoff: oneOf(BACKOFF_STRATEGIES, retry.backoff, defaults.backoff),
    backoff_base_ms: integer(retry.backoff_base_ms) ?? defaults.backoff_base_ms,
    max_backoff_ms: integer(retry.max_backoff_ms) ?? defaults.max_backoff_ms,
  };
}

function normalizeHandler(value: JsonValue | undefined): HandlerDefinition {
  const handler = object(value);
  return {
    callable: text(handler.callable) ?? '',
    method: text(handler.method) ?? TEMPLATE_DEFAULTS.handlerMethod,
    resolver: text(handler.resolver),
    initialization: object(handler.initialization),
  };
}

function normalizeEvent(value: JsonValue): EventDeclaration {
  const event = object(value);
  const defaults = TEMPLATE_DEFAULTS.event;
  return {
    name: text(event.name) ?? '',
    description: text(event.description),
    condition: oneOf(EVENT_CONDITIONS, event.condition, defaults.condition),
    schema: schemaValue(event.schema) ?? true,
    delivery_mode: oneOf(DELIVERY_MODES, event.delivery_mode, defaults.delivery_mode),
    publisher: text(event.publisher),
  };
}

function normalizeBatchConfig(value: JsonValue | undefined): BatchConfiguration | null {
  if (!isJsonObject(value)) return null;
  const defaults = TEMPLATE_DEFAULTS.batch;
  return {
    batch_size: integer(value.batch_size) ?? defaults.batch_size,
    parallelism: integer(value.parallelism) ?? defaults.parallelism,
    cursor_field: text(value.cursor_field) ?? defaults.cursor_field,
    worker_template: text(value.worker_template) ?? '',
    failure_strategy: oneOf(FAILURE_STRATEGIES, value.failure_strategy, defaults.failure_strategy),
  };
}

function normalizeStep(value: JsonValue, path: string, issues: RawIssue[]): StepDefinition {
  const step = object(value);
  const name = text(step.name) ?? '';
  const stepName = name === '' ? undefined : name;
  const type = aliased(step, 'type', 'step_type', path, issues, stepName);
  const dependencies = aliased(step, 'dependencies', 'depends_on', path, issues, stepName);
  return {
    name,
    description: text(step.description),
    type: oneOf(STEP_TYPES, type, TEMPLATE_DEFAULTS.stepType),
    handler: normalizeHandler(step.handler),
    dependencies: texts(dependencies),
    retry: normalizeRetry(step.retry),
    timeout_seconds: integer(step.timeout_seconds),
    system_dependency: text(step.system_dependency),
    publishes_events: Array.isArray(step.publishes_events) ? step.publishes_events.map(normalizeEvent) : [],
    batch_config: normalizeBatchConfig(step.batch_config),
    result_schema: schemaValue(step.result_schema),
    composition: step.composition ?? null,
  };
}

function normalizeMetadata(value: JsonValue | undefined): TemplateMetadata | null {
  if (!isJsonObject(value)) return null;
  return {
    ...value,
    author: text(value.author),
    tags: texts(value.tags),
    documentation_url: text(value.documentation_url),
    created_at: text(value.created_at),
    updated_at: text(value.updated_at),
  };
}

function normalizeLifecycle(value: JsonValue | undefined): LifecycleConfig | null {
  if (!isJsonObject(value)) return null;
  return {
    max_duration_minutes: integer(value.max_duration_minutes),
    max_waiting_for_dependencies_minutes: integer(value.max_waiting_for_dependencies_minutes),
    max_waiting_for_retry_minutes: integer(value.max_waiting_for_retry_minutes),
    max_steps_in_process_minutes: integer(value.max_steps_in_process_minutes),
    staleness_action: oneOf(STALENESS_ACTIONS, value.staleness_action, TEMPLATE_DEFAULTS.stalenessAction),
    auto_fail_on_timeout: flag(value.auto_fail_on_timeout),
    auto_dlq_on_timeout: flag(value.auto_dlq_on_timeout),
  };
}

function normalizeDomainEvent(value: JsonValue): DomainEventDefinition {
  const event = object(value);
  return {
    name: text(event.name) ?? '',
    description: text(event.description),
    schema: schemaValue(event.schema),
  };
}

/**
 * Applies `environments[environment]` in order: `name: ALL` targets every step;
 * `handler.initialization` is merged over the step's, `timeout_seconds` replaces, `retry` replaces as
 * a whole (its missing fields take the defaults, not the step's values). Override entries naming a
 * step the template does not have are reported for every environment, selected or not.
 */
function applyEnvironments(
  steps: StepDefinition[],
  environments: JsonValue | undefined,
  environment: string | undefined,
  issues: RawIssue[],
): void {
  if (!isJsonObject(environments)) return;
  const names = new Set(steps.map((step) => step.name));
  for (const [envName, envValue] of Object.entries(environments)) {
    const overrides = object(envValue).steps;
    if (!Array.isArray(overrides)) continue;
    overrides.forEach((overrideValue, index) => {
      const override = object(overrideValue);
      const target = text(override.name);
      if (target === null) return;
      if (target !== ALL_STEPS && !names.has(target)) {
        issues.push({
          path: `/environments/${escapePointer(envName)}/steps/${index}/name`,
          message: `environment "${envName}" overrides step "${target}", which is not a step of this template`,
        });
        return;
      }
      if (envName !== environment) return;
      const handler = object(override.handler);
      const timeout = integer(override.timeout_seconds);
      for (const step of steps) {
        if (target !== ALL_STEPS && step.name !== target) continue;
        if (isJsonObject(handler.initialization)) {
          step.handler.initialization = { ...step.handler.initialization, ...handler.initialization };
        }
        if (timeout !== null) step.timeout_seconds = timeout;
        if (isJsonObject(override.retry)) step.retry = normalizeRetry(override.retry);
      }
    });
  }
}

export interface NormalizeResult {
  template: TaskTemplate;
  /** Problems only visible before normalization (alias conflicts, overrides of unknown steps). */
  issues: RawIssue[];
}

/** `document` is the parsed template (already converted to JSON); `environment` selects overrides. */
export function normalizeTemplate(document: JsonValue, environment?: string): NormalizeResult {
  const issues: RawIssue[] = [];
  const root = object(document);
  const steps = Array.isArray(root.steps)
    ? root.steps.map((step, index) => normalizeStep(step, `/steps/${index}`, issues))
    : [];
  applyEnvironments(steps, root.environments, environment, issues);
  const systemDependencies = object(root.system_dependencies);
  const taskHandler = root.task_handler;
  const template: TaskTemplate = {
    name: text(root.name) ?? '',
    namespace_name: text(root.namespace_name) ?? '',
    version: text(root.version) ?? '',
    description: text(root.description),
    metadata: normalizeMetadata(root.metadata),
    task_handler: isJsonObject(taskHandler)
      ? { callable: text(taskHandler.callable) ?? '', initialization: object(taskHandler.initialization) }
      : null,
    system_dependencies: {
      primary: text(systemDependencies.primary) ?? TEMPLATE_DEFAULTS.systemDependencyPrimary,
      secondary: texts(systemDependencies.secondary),
    },
    domain_events: Array.isArray(root.domain_events) ? root.domain_events.map(normalizeDomainEvent) : [],
    input_schema: schemaValue(aliased(root, 'input_schema', 'context_schema', '', issues)),
    default_context: object(root.default_context),
    identity_strategy: oneOf(IDENTITY_STRATEGIES, root.identity_strategy, TEMPLATE_DEFAULTS.identityStrategy),
    lifecycle: normalizeLifecycle(root.lifecycle),
    steps,
  };
  return { template, issues };
}
