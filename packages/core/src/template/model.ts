/**
 * The NORMALIZED task template: what `parseTemplate` returns and what is stored, as JSON, in
 * `named_tasks.configuration`. Field names stay snake_case as in the YAML because SQL reads the stored
 * JSON directly (e.g. `configuration->'lifecycle'->>'max_steps_in_process_minutes'`).
 *
 * Normalization (reference C §3): aliases resolved (`step_type` → `type`, `depends_on` → `dependencies`,
 * `context_schema` → `input_schema`); every default filled in explicitly; optional values that are
 * absent are `null` (so every key is always present); the selected environment's overrides applied
 * and the `environments` key removed; unknown keys dropped (`metadata` keeps its extra keys).
 */

/** Any JSON value; templates only ever contain JSON (non-finite numbers are rejected at load). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export const STEP_TYPES = [
  'standard',
  'decision',
  'deferred_convergence',
  'batchable',
  'batch_worker',
] as const;
export type StepType = (typeof STEP_TYPES)[number];

export const BACKOFF_STRATEGIES = ['none', 'linear', 'exponential', 'fibonacci'] as const;
export type BackoffStrategy = (typeof BACKOFF_STRATEGIES)[number];

export const EVENT_CONDITIONS = [
  'success',
  'failure',
  'retryable_failure',
  'permanent_failure',
  'always',
] as const;
export type EventCondition = (typeof EVENT_CONDITIONS)[number];

export const DELIVERY_MODES = ['durable', 'fast', 'broadcast'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

export const FAILURE_STRATEGIES = ['continue_on_failure', 'fail_fast', 'isolate'] as const;
export type FailureStrategy = (typeof FAILURE_STRATEGIES)[number];

export const STALENESS_ACTIONS = ['dlq', 'error', 'none'] as const;
export type StalenessAction = (typeof STALENESS_ACTIONS)[number];

export const IDENTITY_STRATEGIES = ['strict', 'caller_provided', 'always_unique'] as const;
export type IdentityStrategy = (typeof IDENTITY_STRATEGIES)[number];

/** The step-override name that applies an environment override to every step. */
export const ALL_STEPS = 'ALL';

/** Defaults the loader fills in; the JSON Schema's `default` annotations say the same (a test checks). */
export const TEMPLATE_DEFAULTS = {
  stepType: 'standard',
  handlerMethod: 'call',
  retry: {
    retryable: true,
    max_attempts: 3,
    backoff: 'exponential',
    backoff_base_ms: 1000,
    max_backoff_ms: 30000,
  },
  event: { condition: 'success', delivery_mode: 'durable' },
  batch: { batch_size: 1000, parallelism: 10, cursor_field: 'id', failure_strategy: 'continue_on_failure' },
  systemDependencyPrimary: 'default',
  stalenessAction: 'dlq',
  identityStrategy: 'strict',
} as const satisfies {
  stepType: StepType;
  handlerMethod: string;
  retry: RetryConfiguration;
  event: { condition: EventCondition; delivery_mode: DeliveryMode };
  batch: Omit<BatchConfiguration, 'worker_template'>;
  systemDependencyPrimary: string;
  stalenessAction: StalenessAction;
  identityStrategy: IdentityStrategy;
};

/** Documentation metadata; extra keys (e.g. `notes`) are kept. */
export interface TemplateMetadata {
  author: string | null;
  tags: string[];
  documentation_url: string | null;
  created_at: string | null;
  updated_at: string | null;
  [extra: string]: JsonValue;
}

/** Legacy task-level handler block (informational). */
export interface TaskHandlerDefinition {
  callable: string;
  initialization: JsonObject;
}

export interface SystemDependencies {
  primary: string;
  secondary: string[];
}

export interface DomainEventDefinition {
  name: string;
  description: string | null;
  schema: JsonObject | boolean | null;
}

/** Per-template staleness thresholds (minutes); null = use the global configuration. */
export interface LifecycleConfig {
  max_duration_minutes: number | null;
  max_waiting_for_dependencies_minutes: number | null;
  max_waiting_for_retry_minutes: number | null;
  max_steps_in_process_minutes: number | null;
  staleness_action: StalenessAction;
  auto_fail_on_timeout: boolean | null;
  auto_dlq_on_timeout: boolean | null;
}

export interface HandlerDefinition {
  /** The address resolvers interpret (`Mod::Class`, `pkg.module.Class`, `plain_key`, custom schemes). */
  callable: string;
  /** Entry point invoked on the resolved handler; `call` unless the template says otherwise. */
  method: string;
  /** Resolver hint: bypass the resolver chain and use this resolver by name. */
  resolver: string | null;
  /** Snapshotted into the step's `inputs` at creation. */
  initialization: JsonObject;
}

export interface RetryConfiguration {
  retryable: boolean;
  /** Total executions including the first (1..100). */
  max_attempts: number;
  backoff: BackoffStrategy;
  backoff_base_ms: number;
  max_backoff_ms: number;
}

export interface EventDeclaration {
  name: string;
  description: string | null;
  condition: EventCondition;
  schema: JsonObject | boolean;
  delivery_mode: DeliveryMode;
  publisher: string | null;
}

export interface BatchConfiguration {
  batch_size: number;
  parallelism: number;
  cursor_field: string;
  /** The `batch_worker` step instantiated as `{worker_template}_{batch_id}`. */
  worker_template: string;
  failure_strategy: FailureStrategy;
}

export interface StepDefinition {
  name: string;
  description: string | null;
  type: StepType;
  handler: HandlerDefinition;
  /** Names of parent steps. */
  dependencies: string[];
  retry: RetryConfiguration;
  timeout_seconds: number | null;
  system_dependency: string | null;
  publishes_events: EventDeclaration[];
  batch_config: BatchConfiguration | null;
  result_schema: JsonObject | boolean | null;
  composition: JsonValue;
}

export interface TaskTemplate {
  name: string;
  namespace_name: string;
  version: string;
  description: string | null;
  metadata: TemplateMetadata | null;
  task_handler: TaskHandlerDefinition | null;
  system_dependencies: SystemDependencies;
  domain_events: DomainEventDefinition[];
  /** JSON Schema of the task context: documentation and tooling only, not enforced. */
  input_schema: JsonObject | boolean | null;
  /** Merged under the request context at task creation (request keys win). */
  default_context: JsonObject;
  identity_strategy: IdentityStrategy;
  lifecycle: LifecycleConfig | null;
  steps: StepDefinition[];
}

/** Steps by name; with duplicate names (an error reported elsewhere) the first one wins. */
export function stepsByName(steps: readonly StepDefinition[]): Map<string, StepDefinition> {
  const byName = new Map<string, StepDefinition>();
  for (const step of steps) if (!byName.has(step.name)) byName.set(step.name, step);
  return byName;
}

/** `namespace/name@version`, for messages and maps. */
export function templateKey(template: Pick<TaskTemplate, 'namespace_name' | 'name' | 'version'>): string {
  return `${template.namespace_name}/${template.name}@${template.version}`;
}
