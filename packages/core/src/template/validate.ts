/**
 * Semantic checks on a normalized template: the rules a JSON Schema cannot express (reference C §3.2,
 * §4; AUDIT S-1). Each problem is one issue naming the step and a JSON pointer; nothing throws.
 */
import { InvalidNameError, validateNamespace, validateQueueName, workerQueueName } from '@tasker/pgmq';
import { Ajv } from 'ajv';
import { type JsonObject, type StepDefinition, stepsByName, type TaskTemplate } from './model.ts';
import type { RawIssue } from './schema.ts';

export interface TemplateCheck {
  errors: RawIssue[];
  /** Legal but probably unintended (e.g. a batchable step without `worker_template_name`). */
  warnings: RawIssue[];
}

/** The queues a namespace gives rise to: the worker queue and the domain-event queues (C §3.1, §5). */
export function namespaceQueueNames(namespace: string): string[] {
  return [workerQueueName(namespace), `${namespace}_domain_events`, `${namespace}_domain_events_dlq`];
}

function nameMessage(error: unknown): string {
  if (error instanceof InvalidNameError) return error.message;
  throw error;
}

function checkNamespace(template: TaskTemplate, errors: RawIssue[]): void {
  try {
    validateNamespace(template.namespace_name);
  } catch (error) {
    errors.push({ path: '/namespace_name', message: nameMessage(error) });
    return;
  }
  for (const queue of namespaceQueueNames(template.namespace_name)) {
    try {
      validateQueueName(queue);
    } catch (error) {
      errors.push({ path: '/namespace_name', message: `derived queue ${queue}: ${nameMessage(error)}` });
    }
  }
}

function checkTimestamps(template: TaskTemplate, errors: RawIssue[]): void {
  for (const key of ['created_at', 'updated_at'] as const) {
    const value = template.metadata?.[key];
    if (typeof value === 'string' && Number.isNaN(Date.parse(value))) {
      errors.push({ path: `/metadata/${key}`, message: `"${value}" is not a valid timestamp` });
    }
  }
}

let schemaCompiler: Ajv | undefined;

/** A JSON Schema embedded in the template must compile (event payloads are validated against it). */
function schemaProblem(schema: JsonObject | boolean): string | null {
  if (typeof schema === 'boolean') return null;
  schemaCompiler ??= new Ajv({ strict: false, validateFormats: false, allErrors: false });
  try {
    schemaCompiler.compile(schema);
    return null;
  } catch (error) {
    return `is not a valid JSON Schema: ${error instanceof Error ? error.message : String(error)}`;
  }
}

function checkSchemas(template: TaskTemplate, errors: RawIssue[]): void {
  const check = (schema: JsonObject | boolean | null, path: string, step?: string): void => {
    if (schema === null) return;
    const problem = schemaProblem(schema);
    if (problem !== null) errors.push({ path, message: problem, ...(step === undefined ? {} : { step }) });
  };
  check(template.input_schema, '/input_schema');
  template.domain_events.forEach((event, index) => {
    check(event.schema, `/domain_events/${index}/schema`);
  });
  template.steps.forEach((step, index) => {
    check(step.result_schema, `/steps/${index}/result_schema`, step.name);
    step.publishes_events.forEach((event, eventIndex) => {
      check(event.schema, `/steps/${index}/publishes_events/${eventIndex}/schema`, step.name);
    });
  });
}

/**
 * Every cycle among declared dependencies, each once, as step names in execution order (each runs
 * before the next), starting at the member declared first, with that member repeated last.
 */
export function findCycles(steps: readonly StepDefinition[]): string[][] {
  const byName = stepsByName(steps);
  const position = new Map<string, number>();
  steps.forEach((step, index) => {
    if (!position.has(step.name)) position.set(step.name, index);
  });
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    state.set(name, 'active');
    stack.push(name);
    for (const dependency of byName.get(name)?.dependencies ?? []) {
      if (!byName.has(dependency)) continue;
      const status = state.get(dependency);
      if (status === 'active') {
        // The stack runs child → parent; reversed, each member runs before the next (a → b: b depends on a).
        const members = stack.slice(stack.indexOf(dependency)).reverse();
        // Start the cycle at its member declared first in the template.
        const order = (member: string): number => position.get(member) ?? 0;
        const first = members.reduce((best, member) => (order(member) < order(best) ? member : best));
        const start = members.indexOf(first);
        const canonical = [...members.slice(start), ...members.slice(0, start)];
        const key = canonical.join('\u0000');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push([...canonical, canonical[0] ?? dependency]);
        }
      } else if (status === undefined) {
        visit(dependency);
      }
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const step of steps) if (!state.has(step.name)) visit(step.name);
  return cycles;
}

/** For each step: whether some (transitive) dependency is a `decision` step. Cycle-safe. */
export function decisionDescendants(steps: readonly StepDefinition[]): Set<string> {
  const byName = stepsByName(steps);
  const memo = new Map<string, boolean>();
  const below = (name: string): boolean => {
    const known = memo.get(name);
    if (known !== undefined) return known;
    memo.set(name, false);
    const result = (byName.get(name)?.dependencies ?? []).some(
      (dependency) => byName.get(dependency)?.type === 'decision' || below(dependency),
    );
    memo.set(name, result);
    return result;
  };
  return new Set(steps.filter((step) => below(step.name)).map((step) => step.name));
}

function checkSteps(template: TaskTemplate, errors: RawIssue[], warnings: RawIssue[]): void {
  const { steps } = template;
  const byName = new Map<string, StepDefinition>();
  const indexOf = new Map<string, number>();
  steps.forEach((step, index) => {
    if (step.name === '') return;
    const first = indexOf.get(step.name);
    if (first === undefined) {
      byName.set(step.name, step);
      indexOf.set(step.name, index);
    } else {
      errors.push({
        path: `/steps/${index}/name`,
        step: step.name,
        message: `duplicate step name: steps ${first} and ${index} are both named "${step.name}"`,
      });
    }
  });
  const underDecision = decisionDescendants(steps);
  const dependents = new Map<string, StepDefinition[]>();
  for (const step of steps) {
    for (const dependency of step.dependencies) {
      dependents.set(dependency, [...(dependents.get(dependency) ?? []), step]);
    }
  }
  const typeOf = (name: string): string | undefined => byName.get(name)?.type;

  steps.forEach((step, index) => {
    const at = `/steps/${index}`;
    const issue = (path: string, message: string): RawIssue => ({
      path: `${at}${path}`,
      step: step.name,
      message,
    });

    step.dependencies.forEach((dependency, depIndex) => {
      const path = `/dependencies/${depIndex}`;
      if (dependency === step.name) {
        errors.push(issue(path, 'depends on itself'));
      } else if (!byName.has(dependency)) {
        errors.push(issue(path, `depends on "${dependency}", which is not a step of this template`));
      } else if (typeOf(dependency) === 'batch_worker' && step.type !== 'deferred_convergence') {
        errors.push(
          issue(
            path,
            `depends on batch_worker template "${dependency}": only deferred_convergence steps may (workers are created at run time as ${dependency}_<batch_id>)`,
          ),
        );
      } else if (
        typeOf(dependency) === 'deferred_convergence' &&
        step.type !== 'deferred_convergence' &&
        !underDecision.has(step.name)
      ) {
        errors.push(
          issue(
            path,
            `depends on deferred_convergence step "${dependency}" but is not below a decision step, so nothing would ever create it`,
          ),
        );
      }
    });

    if (step.retry.max_backoff_ms < step.retry.backoff_base_ms) {
      errors.push(
        issue(
          '/retry/max_backoff_ms',
          `max_backoff_ms (${step.retry.max_backoff_ms}) is below backoff_base_ms (${step.retry.backoff_base_ms})`,
        ),
      );
    }

    if (step.batch_config !== null && step.type !== 'batchable' && step.type !== 'batch_worker') {
      warnings.push(issue('/batch_config', `batch_config is ignored on a ${step.type} step`));
    }

    switch (step.type) {
      case 'decision':
        if (step.dependencies.length === 0) {
          errors.push(
            issue('/dependencies', 'a decision step needs at least one dependency (its parent step)'),
          );
        }
        if ((dependents.get(step.name) ?? []).length === 0) {
          warnings.push(
            issue('', 'no step depends on this decision step, so it can only choose no branches'),
          );
        }
        break;
      case 'batch_worker': {
        if (step.batch_config === null) {
          errors.push(
            issue(
              '/batch_config',
              'a batch_worker step needs batch_config (orchestration reads it from here)',
            ),
          );
        } else if (step.batch_config.worker_template !== step.name) {
          errors.push(
            issue(
              '/batch_config/worker_template',
              `worker_template is "${step.batch_config.worker_template}"; on a batch_worker step it must be the step's own name "${step.name}"`,
            ),
          );
        }
        const parents = step.dependencies.filter((dependency) => byName.has(dependency));
        if (step.dependencies.length === 0) {
          errors.push(
            issue(
              '/dependencies',
              'a batch_worker step needs a dependency on the batchable step that creates it',
            ),
          );
        } else if (parents.some((dependency) => typeOf(dependency) !== 'batchable')) {
          errors.push(
            issue(
              '/dependencies',
              `a batch_worker step may depend only on batchable steps (workers get their edges from the batchable step); not on ${parents
                .filter((dependency) => typeOf(dependency) !== 'batchable')
                .map((dependency) => `"${dependency}" (${typeOf(dependency) ?? 'unknown'})`)
                .join(', ')}`,
            ),
          );
        }
        break;
      }
      case 'batchable': {
        if (step.batch_config !== null && typeOf(step.batch_config.worker_template) !== 'batch_worker') {
          errors.push(
            issue(
              '/batch_config/worker_template',
              `worker_template "${step.batch_config.worker_template}" is not a batch_worker step of this template`,
            ),
          );
        }
        const workerTemplate = step.handler.initialization.worker_template_name;
        if (workerTemplate === undefined) {
          warnings.push(
            issue(
              '/handler/initialization',
              'batchable step without handler.initialization.worker_template_name: a no_batches outcome cannot create the placeholder worker',
            ),
          );
        } else if (typeof workerTemplate !== 'string' || typeOf(workerTemplate) !== 'batch_worker') {
          errors.push(
            issue(
              '/handler/initialization/worker_template_name',
              `worker_template_name ${JSON.stringify(workerTemplate)} is not a batch_worker step of this template`,
            ),
          );
        }
        break;
      }
      case 'deferred_convergence': {
        if (step.dependencies.length === 0) {
          errors.push(
            issue('/dependencies', 'a deferred_convergence step needs dependencies (the steps it converges)'),
          );
        } else if (
          step.dependencies.some((dependency) => byName.has(dependency)) &&
          !step.dependencies.some(
            (dependency) => typeOf(dependency) === 'batch_worker' || underDecision.has(dependency),
          )
        ) {
          errors.push(
            issue(
              '/dependencies',
              'a deferred_convergence step is created only by a decision or by batch processing: at least one dependency must be a step below a decision step or a batch_worker template',
            ),
          );
        }
        break;
      }
      default:
        break;
    }
  });

  for (const cycle of findCycles(steps)) {
    if (cycle.length === 2) continue; // a self-dependency, reported above
    const first = cycle[0] ?? '';
    const index = indexOf.get(first) ?? 0;
    errors.push({
      path: `/steps/${index}/dependencies`,
      step: first,
      message: `dependency cycle: ${cycle.map((name) => `"${name}"`).join(' → ')}`,
    });
  }
}

/** All semantic errors and warnings of a normalized template. */
export function checkTemplate(template: TaskTemplate): TemplateCheck {
  const errors: RawIssue[] = [];
  const warnings: RawIssue[] = [];
  checkNamespace(template, errors);
  checkTimestamps(template, errors);
  checkSteps(template, errors, warnings);
  checkSchemas(template, errors);
  return { errors, warnings };
}
