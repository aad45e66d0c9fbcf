/**
 * A LifecycleTestManager in the style of the original integration suite (reference D §4.4): it
 * registers example templates, creates tasks the way the API does (`validateTaskRequest` →
 * `TemplateRegistry.get` → `createTask`) and drives steps through the REAL compare-and-swap
 * functions (`tasker.transition_step_state` / `transition_task_state`), making the decisions a
 * worker and orchestration would make (claim, report, retry or fail, backoff). No state is ever
 * written directly; time is shifted by rewriting timestamps (no sleeping).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Queryable } from '@tasker/db';
import { backoffPolicyFromRetry, computeBackoffSeconds } from '../src/backoff.ts';
import { type CreatedTask, createTask } from '../src/initialize.ts';
import { type RegisteredTemplate, TemplateRegistry } from '../src/registry.ts';
import type { StepEvent, StepState, TaskEvent, TaskState } from '../src/states.ts';
import { validateTaskRequest } from '../src/task-request.ts';
import { loadTemplateFile, parseTemplate } from '../src/template/load.ts';
import type { JsonObject, JsonValue, StepDefinition, TaskTemplate } from '../src/template/model.ts';

/** The example templates of the acceptance suite (examples/templates, see its README). */
const EXAMPLES_DIR = fileURLToPath(new URL('../../../examples/templates', import.meta.url));

/** `namespace/name` → the example file. */
function exampleFile(ref: string): string {
  return `${EXAMPLES_DIR}/${ref}.yaml`;
}

/** One row of `tasker.get_step_readiness_status`. */
export type ReadinessRow = {
  workflow_step_uuid: string;
  task_uuid: string;
  named_step_uuid: string;
  name: string;
  current_state: string;
  dependencies_satisfied: boolean;
  retry_eligible: boolean;
  ready_for_execution: boolean;
  last_failure_at: Date | null;
  next_retry_at: Date | null;
  total_parents: number;
  completed_parents: number;
  attempts: number;
  max_attempts: number;
  backoff_request_seconds: number | null;
  last_attempted_at: Date | null;
};

/** The row of `tasker.get_task_execution_context`. */
export type ExecutionContextRow = {
  task_uuid: string;
  named_task_uuid: string;
  status: string;
  total_steps: number;
  pending_steps: number;
  in_progress_steps: number;
  completed_steps: number;
  failed_steps: number;
  ready_steps: number;
  enqueued_steps: number;
  waiting_for_retry_steps: number;
  execution_status: string;
  recommended_action: string;
  completion_percentage: number;
  health_status: string;
};

/** A `tasker.workflow_steps` row. */
export type StepRow = {
  workflow_step_uuid: string;
  task_uuid: string;
  current_state: string;
  retryable: boolean;
  max_attempts: number;
  in_process: boolean;
  processed: boolean;
  processed_at: Date | null;
  attempts: number;
  last_attempted_at: Date | null;
  backoff_request_seconds: number | null;
  inputs: JsonValue;
  results: JsonValue;
};

/** A row of `tasker.get_step_transitive_dependencies`. */
export type AncestorRow = {
  workflow_step_uuid: string;
  step_name: string;
  results: JsonValue;
  processed: boolean;
  current_state: string;
  distance: number;
};

/** A row of the step transition history. */
export type StepTransitionRow = {
  from_state: string | null;
  to_state: string;
  event: string;
  lifecycle_event: string | null;
  sort_key: number;
  most_recent: boolean;
  metadata: JsonObject;
};

/** Readiness rows of one task, keyed by step name. */
export class Readiness {
  readonly rows: readonly ReadinessRow[];
  readonly #byName: ReadonlyMap<string, ReadinessRow>;

  constructor(rows: readonly ReadinessRow[]) {
    this.rows = rows;
    this.#byName = new Map(rows.map((row) => [row.name, row]));
  }

  /** The row of step `name` (fails the test when the task has no such step). */
  of(name: string): ReadinessRow {
    const row = this.#byName.get(name);
    assert.ok(row, `no readiness row for step ${name} (have: ${[...this.#byName.keys()].join(', ')})`);
    return row;
  }

  /** Names of the steps ready for execution, sorted. */
  ready(): string[] {
    return this.rows
      .filter((row) => row.ready_for_execution)
      .map((row) => row.name)
      .sort();
  }

  /** Names of the steps in `state`, sorted. */
  inState(state: StepState): string[] {
    return this.rows
      .filter((row) => row.current_state === state)
      .map((row) => row.name)
      .sort();
  }

  /** Step name → total_parents. */
  parentCounts(): Record<string, number> {
    return Object.fromEntries(this.rows.map((row) => [row.name, row.total_parents]));
  }
}

/** What a worker reports for a successful step (a StepExecutionResult, reference C §1.7). */
export function successResult(result: JsonObject): JsonObject {
  return { success: true, status: 'completed', result, metadata: { execution_time_ms: 1, retryable: false } };
}

/** What a worker reports for a failed step. */
function failureResult(message: string, retryable: boolean): JsonObject {
  return {
    success: false,
    status: 'error',
    result: null,
    error: { message, error_type: retryable ? 'RetryableError' : 'PermanentError', retryable },
    metadata: { execution_time_ms: 1, retryable },
  };
}

export interface FailOptions {
  /** What the worker reports (`metadata.retryable`); orchestration retries only when true. */
  retryable: boolean;
  message?: string;
  /** The backoff orchestration records; default: the step's template policy, without jitter. */
  backoffSeconds?: number;
}

/** A task created through the real creation path, with its steps addressable by name. */
export class LifecycleTask {
  readonly db: Queryable;
  readonly created: CreatedTask;
  readonly template: TaskTemplate;
  readonly #steps: ReadonlyMap<string, string>;

  constructor(
    db: Queryable,
    created: CreatedTask,
    template: TaskTemplate,
    steps: ReadonlyMap<string, string>,
  ) {
    this.db = db;
    this.created = created;
    this.template = template;
    this.#steps = steps;
  }

  get uuid(): string {
    return this.created.taskUuid;
  }

  /** Names of the task's steps (those created so far), sorted. */
  stepNames(): string[] {
    return [...this.#steps.keys()].sort();
  }

  stepUuid(name: string): string {
    const uuid = this.#steps.get(name);
    assert.ok(uuid, `task has no step ${name} (have: ${this.stepNames().join(', ')})`);
    return uuid;
  }

  #definition(name: string): StepDefinition {
    const step = this.template.steps.find((candidate) => candidate.name === name);
    assert.ok(step, `template ${this.template.name} has no step ${name}`);
    return step;
  }

  // --- reading -------------------------------------------------------------------------------------

  async stepRow(name: string): Promise<StepRow> {
    const { rows } = await this.db.query<StepRow>(
      `SELECT workflow_step_uuid, task_uuid, current_state, retryable, max_attempts, in_process, processed,
              processed_at, attempts, last_attempted_at, backoff_request_seconds, inputs, results
       FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
      [this.stepUuid(name)],
    );
    const [row] = rows;
    assert.ok(row, `step ${name} not found`);
    return row;
  }

  async stepState(name: string): Promise<StepState> {
    return (await this.stepRow(name)).current_state as StepState;
  }

  async taskState(): Promise<TaskState> {
    const { rows } = await this.db.query<{ current_state: string }>(
      'SELECT current_state FROM tasker.tasks WHERE task_uuid = $1',
      [this.uuid],
    );
    const [row] = rows;
    assert.ok(row, 'task not found');
    return row.current_state as TaskState;
  }

  async readiness(): Promise<Readiness> {
    const { rows } = await this.db.query<ReadinessRow>('SELECT * FROM tasker.get_step_readiness_status($1)', [
      this.uuid,
    ]);
    return new Readiness(rows);
  }

  async executionContext(): Promise<ExecutionContextRow> {
    const { rows } = await this.db.query<ExecutionContextRow>(
      'SELECT * FROM tasker.get_task_execution_context($1)',
      [this.uuid],
    );
    const [row] = rows;
    assert.ok(row, 'no execution context');
    return row;
  }

  /** Every ancestor of the step, as `get_step_transitive_dependencies` returns them (nearest first). */
  async ancestors(name: string): Promise<AncestorRow[]> {
    const { rows } = await this.db.query<AncestorRow>(
      `SELECT workflow_step_uuid, step_name, results, processed, current_state, distance
       FROM tasker.get_step_transitive_dependencies($1)`,
      [this.stepUuid(name)],
    );
    return rows;
  }

  async stepTransitions(name: string): Promise<StepTransitionRow[]> {
    const { rows } = await this.db.query<StepTransitionRow>(
      `SELECT from_state, to_state, event, lifecycle_event, sort_key, most_recent, metadata
       FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = $1 ORDER BY sort_key`,
      [this.stepUuid(name)],
    );
    return rows;
  }

  // --- raw transitions -----------------------------------------------------------------------------

  /**
   * One step CAS. `from` defaults to the step's current state (read just before); returns what the
   * CAS returned (false: the step was not in `from`).
   */
  async transitionStep(
    name: string,
    event: StepEvent,
    to: StepState,
    options: { from?: StepState; results?: JsonValue; metadata?: JsonObject } = {},
  ): Promise<boolean> {
    const from = options.from ?? (await this.stepState(name));
    const { rows } = await this.db.query<{ ok: boolean }>(
      'SELECT tasker.transition_step_state($1, $2, $3, $4, NULL, $5::jsonb, $6::jsonb) AS ok',
      [
        this.stepUuid(name),
        from,
        event,
        to,
        JSON.stringify(options.metadata ?? {}),
        options.results === undefined ? null : JSON.stringify(options.results),
      ],
    );
    const [row] = rows;
    assert.ok(row);
    return row.ok;
  }

  /** A step CAS that must succeed. */
  async moveStep(
    name: string,
    event: StepEvent,
    to: StepState,
    options: { results?: JsonValue; metadata?: JsonObject } = {},
  ): Promise<void> {
    const from = await this.stepState(name);
    const ok = await this.transitionStep(name, event, to, { ...options, from });
    assert.equal(ok, true, `step ${name}: ${from} -[${event}]-> ${to} refused`);
  }

  /** One task CAS from `from` (default: the current state); returns what the CAS returned. */
  async transitionTask(event: TaskEvent, to: TaskState, from?: TaskState): Promise<boolean> {
    const current = from ?? (await this.taskState());
    const { rows } = await this.db.query<{ ok: boolean }>(
      'SELECT tasker.transition_task_state($1, $2, $3, $4) AS ok',
      [this.uuid, current, event, to],
    );
    const [row] = rows;
    assert.ok(row);
    return row.ok;
  }

  // --- what workers and orchestration do -----------------------------------------------------------

  /** The enqueuer: a step waiting for retry is moved back to pending first, then enqueued. */
  async enqueueStep(name: string): Promise<void> {
    if ((await this.stepState(name)) === 'waiting_for_retry') await this.retryStep(name);
    await this.moveStep(name, 'enqueue', 'enqueued', { metadata: { enqueued_by: 'lifecycle-test' } });
  }

  /** A worker claims the enqueued step (attempts + 1). */
  async claimStep(name: string): Promise<void> {
    await this.moveStep(name, 'start', 'in_progress', { metadata: { worker: 'lifecycle-test' } });
  }

  /**
   * Runs the step successfully: enqueue → start (claim) → enqueue_for_orchestration(results) →
   * complete (orchestration passes no payload; the stored results are kept).
   */
  async completeStep(name: string, result: JsonObject = {}): Promise<void> {
    await this.enqueueStep(name);
    await this.claimStep(name);
    await this.moveStep(name, 'enqueue_for_orchestration', 'enqueued_for_orchestration', {
      results: successResult(result),
    });
    await this.moveStep(name, 'complete', 'complete');
  }

  /** The worker part of a failure: enqueue → start → enqueue_as_error_for_orchestration(results). */
  async reportFailure(name: string, options: FailOptions): Promise<void> {
    await this.enqueueStep(name);
    await this.claimStep(name);
    await this.moveStep(name, 'enqueue_as_error_for_orchestration', 'enqueued_as_error_for_orchestration', {
      results: failureResult(options.message ?? `${name} failed`, options.retryable),
    });
  }

  /**
   * Runs the step into a failure and lets orchestration decide (A §3.4): when the worker said
   * retryable and attempts < max_attempts, record the backoff (`tasker.set_step_backoff`) and
   * `wait_for_retry`; otherwise `fail` → error. Returns the state the step ends in.
   */
  async failStep(name: string, options: FailOptions): Promise<StepState> {
    await this.reportFailure(name, options);
    const row = await this.stepRow(name);
    if (options.retryable && row.attempts < row.max_attempts) {
      const seconds =
        options.backoffSeconds ??
        computeBackoffSeconds(
          backoffPolicyFromRetry(this.#definition(name).retry, { multiplier: 2, jitter: 0 }),
          row.attempts,
        );
      await this.setBackoff(name, seconds);
      await this.moveStep(name, 'wait_for_retry', 'waiting_for_retry', { metadata: { reason: 'retryable' } });
      return 'waiting_for_retry';
    }
    await this.moveStep(name, 'fail', 'error', { metadata: { reason: 'permanent' } });
    return 'error';
  }

  /** `tasker.set_step_backoff`: the delay before the next attempt, from now. */
  async setBackoff(name: string, seconds: number): Promise<void> {
    const { rows } = await this.db.query<{ ok: boolean }>('SELECT tasker.set_step_backoff($1, $2) AS ok', [
      this.stepUuid(name),
      seconds,
    ]);
    assert.equal(rows[0]?.ok, true, `set_step_backoff(${name}) found no step`);
  }

  /** The enqueuer's retry: waiting_for_retry → pending. */
  async retryStep(name: string): Promise<void> {
    await this.moveStep(name, 'retry', 'pending');
  }

  /** Operator: → resolved_manually (no results). */
  async resolveManually(name: string): Promise<void> {
    await this.moveStep(name, 'resolve_manually', 'resolved_manually', {
      metadata: { resolved_by: 'operator@example.com', reason: 'lifecycle test' },
    });
  }

  /** Operator: → complete with the given result, as a successful StepExecutionResult. */
  async completeManually(name: string, result: JsonObject): Promise<void> {
    await this.moveStep(name, 'complete_manually', 'complete', {
      results: {
        success: true,
        status: 'completed',
        result,
        metadata: {
          manually_completed: true,
          completed_by: 'operator@example.com',
          completion_reason: 'lifecycle test',
        },
      },
    });
  }

  /** Operator: error → pending with attempts reset. */
  async resetForRetry(name: string): Promise<void> {
    await this.moveStep(name, 'reset_for_retry', 'pending', {
      metadata: { reset_by: 'operator@example.com' },
    });
  }

  // --- time ----------------------------------------------------------------------------------------

  /** Makes the step's backoff (and any failure-based fallback) lie in the past. */
  async elapseBackoff(name: string): Promise<void> {
    const uuid = this.stepUuid(name);
    await this.db.query(
      `UPDATE tasker.workflow_steps
       SET last_attempted_at = now() - (coalesce(backoff_request_seconds, 0) + 3600) * interval '1 second',
           next_retry_at = now() - interval '3600 seconds'
       WHERE workflow_step_uuid = $1`,
      [uuid],
    );
    await this.db.query(
      `UPDATE tasker.workflow_step_transitions SET created_at = now() - interval '2 hours'
       WHERE workflow_step_uuid = $1 AND to_state IN ('error', 'enqueued_as_error_for_orchestration')`,
      [uuid],
    );
  }

  /** Makes the step's backoff end an hour from now, whatever its length. */
  async holdBackoff(name: string): Promise<void> {
    await this.db.query(
      `UPDATE tasker.workflow_steps
       SET last_attempted_at = now() + interval '1 hour',
           next_retry_at = now() + interval '1 hour' + coalesce(backoff_request_seconds, 0) * interval '1 second'
       WHERE workflow_step_uuid = $1`,
      [this.stepUuid(name)],
    );
  }

  // --- whole runs ----------------------------------------------------------------------------------

  /**
   * Completes every ready step, wave after wave, until none is ready. Returns the waves (the ready
   * step names of each round, sorted).
   */
  async runToCompletion(
    result: (name: string) => JsonObject = (name) => ({ step: name }),
  ): Promise<string[][]> {
    const waves: string[][] = [];
    for (;;) {
      const ready = (await this.readiness()).ready();
      if (ready.length === 0) return waves;
      assert.ok(waves.length <= this.#steps.size, 'the run does not terminate');
      for (const name of ready) await this.completeStep(name, result(name));
      waves.push(ready);
    }
  }

  /** Completes the given steps, in order. */
  async completeSteps(names: readonly string[]): Promise<void> {
    for (const name of names) await this.completeStep(name, { step: name });
  }
}

export interface CreateTaskOptions {
  /** Request fields over the defaults (namespace, name, version, initiator, priority, …). */
  request?: Record<string, unknown>;
  /** Add a `_test_run_id` to the context so equal contexts never collide (default true). */
  uniqueContext?: boolean;
}

/** Registers templates and creates tasks through the real creation path. */
export class LifecycleTestManager {
  readonly db: Queryable;
  readonly registry: TemplateRegistry;

  constructor(db: Queryable) {
    this.db = db;
    this.registry = new TemplateRegistry(db);
  }

  /** Loads `examples/templates/<ref>.yaml` (no environment overrides) and registers it. */
  async registerExample(ref: string, options: { environment?: string } = {}): Promise<RegisteredTemplate> {
    const template = await loadTemplateFile(
      exampleFile(ref),
      options.environment === undefined ? {} : { environment: options.environment },
    );
    return this.registry.register(template);
  }

  /** Parses and registers an inline YAML template. */
  async registerYaml(text: string): Promise<RegisteredTemplate> {
    return this.registry.register(parseTemplate(text, { source: 'lifecycle-test' }));
  }

  /**
   * Creates a task the way the API does: the request is validated, the template looked up by
   * (namespace, name, version), then `createTask`. The request mimics the original harness
   * (initiator integration-test, source_system test, tags, priority 5, `_test_run_id`).
   */
  async createTask(
    registered: RegisteredTemplate,
    context: JsonObject = {},
    options: CreateTaskOptions = {},
  ): Promise<LifecycleTask> {
    const { template } = registered;
    const body = {
      namespace: template.namespace_name,
      name: template.name,
      version: template.version,
      context: options.uniqueContext === false ? context : { ...context, _test_run_id: randomUUID() },
      initiator: 'integration-test',
      source_system: 'test',
      reason: 'Integration test execution',
      tags: ['integration-test'],
      priority: 5,
      ...options.request,
    };
    const request = validateTaskRequest(body);
    const found = await this.registry.get(request.namespace, request.name, request.version);
    const created = await createTask(this.db, request, found);
    return this.load(created, found.template);
  }

  /** A LifecycleTask for a created task, its steps read from the database. */
  async load(created: CreatedTask, template: TaskTemplate): Promise<LifecycleTask> {
    const { rows } = await this.db.query<{ name: string; workflow_step_uuid: string }>(
      `SELECT ns.name, ws.workflow_step_uuid FROM tasker.workflow_steps ws
       JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
       WHERE ws.task_uuid = $1`,
      [created.taskUuid],
    );
    return new LifecycleTask(
      this.db,
      created,
      template,
      new Map(rows.map((row) => [row.name, row.workflow_step_uuid])),
    );
  }
}
