import { randomUUID } from 'node:crypto';
import type { Queryable } from '@tasker/db';
import { ConflictError, ValidationError } from './errors.ts';
import { computeIdentityHash } from './identity.ts';
import { checkJsonLimits, JSON_LIMITS, type JsonLimits } from './json-limits.ts';
import type { RegisteredTemplate } from './registry.ts';
import { IDENTITY_CONFLICT, translateCoreSqlError } from './sql-errors.ts';
import type { TaskRequest } from './task-request.ts';
import { initialStepSet } from './template/initial-steps.ts';
import type { JsonObject } from './template/model.ts';

export interface CreatedTask {
  taskUuid: string;
  namedTaskUuid: string;
  correlationId: string;
  /** Names of the steps created with the task. */
  steps: string[];
  /** What `tasker.evaluate_task` did when the task was started in the creating statement. */
  evaluation?: TaskEvaluation;
  /** What the task row and its initial steps hold besides ids and times (an answer needs no re-read). */
  record: TaskRecord;
}

/** The stored values of a new task that come from its request and template. */
export interface TaskRecord {
  namespace: string;
  name: string;
  version: string;
  /** The template's default_context with the request's context over it. */
  context: JsonObject;
  tags: string[];
  initiator: string;
  source_system: string;
  reason: string;
  priority: number;
  parent_correlation_id: string | null;
  /** The initial steps in template order, with how many parents each has. */
  steps: { name: string; parents: number; max_attempts: number }[];
}

/** A step as the fast creation path (`create_and_start_task(s)`, 0010) created it. */
export interface CreatedStep {
  name: string;
  workflow_step_uuid: string;
  named_step_uuid: string;
  current_state: string;
}

/** The result of `tasker.evaluate_task` (0006): what a task did next. */
export interface TaskEvaluation {
  task_uuid: string;
  found: boolean;
  from_state?: string;
  state?: string;
  execution_status?: string | null;
  enqueued?: number;
  next_retry_at?: string | null;
  /**
   * Only when the task was created and started in one pass (the usual case, 0010): its timestamps
   * (RFC 3339 UTC with microseconds) and its steps in template order.
   */
  created?: { created_at: string; updated_at: string; steps: CreatedStep[] };
}

/** The task context: the template's `default_context` with the request's keys over it. */
export function resolveContext(defaults: JsonObject, context: JsonObject): JsonObject {
  return { ...defaults, ...context };
}

/** A task ready to be written: the arguments of the creation functions and what it will be. */
export interface PreparedTask {
  namedTaskUuid: string;
  /** `task` of create_task / create_and_start_tasks. */
  task: JsonObject;
  /** `p_steps`: the initial step set (C §3.2) with each step's dependencies. */
  steps: {
    name: string;
    retryable: boolean;
    max_attempts: number;
    inputs: unknown;
    dependencies: string[];
  }[];
  correlationId: string;
  record: TaskRecord;
}

/**
 * Everything creation needs that is computed in the process: the context (the template's defaults
 * under the request's) within the JSON limits, the identity hash, the correlation id and the initial
 * step set. Errors: ValidationError.
 */
export function prepareTask(
  request: TaskRequest,
  registered: RegisteredTemplate,
  limits: JsonLimits = JSON_LIMITS,
): PreparedTask {
  const { template, namedTaskUuid } = registered;
  const context = resolveContext(template.default_context, request.context);
  const issues = checkJsonLimits(context, 'context', limits);
  if (issues.length > 0) throw new ValidationError(issues);
  const identityHash = computeIdentityHash({
    namedTaskUuid,
    strategy: template.identity_strategy,
    context,
    idempotencyKey: request.idempotency_key,
  });
  const correlationId = request.correlation_id ?? randomUUID();
  const steps = initialStepSet(template).map((step) => ({
    name: step.name,
    retryable: step.retry.retryable,
    max_attempts: step.retry.max_attempts,
    inputs: step.handler.initialization,
    dependencies: step.dependencies,
  }));
  // what the task row stores from the request
  const stored = {
    context,
    tags: request.tags,
    initiator: request.initiator,
    source_system: request.source_system,
    reason: request.reason,
    priority: request.priority,
    parent_correlation_id: request.parent_correlation_id,
  };
  const task = {
    ...stored,
    identity_hash: identityHash,
    correlation_id: correlationId,
    requested_at: request.requested_at?.toISOString() ?? null,
  };
  const record: TaskRecord = {
    ...stored,
    namespace: template.namespace_name,
    name: template.name,
    version: template.version,
    steps: steps.map((step) => ({
      name: step.name,
      parents: new Set(step.dependencies).size,
      max_attempts: step.max_attempts,
    })),
  };
  return { namedTaskUuid, task, steps, correlationId, record };
}

function createdTask(prepared: PreparedTask, taskUuid: string, evaluation?: TaskEvaluation): CreatedTask {
  const { namedTaskUuid, correlationId, record } = prepared;
  const created = {
    taskUuid,
    namedTaskUuid,
    correlationId,
    steps: prepared.steps.map((step) => step.name),
    record,
  };
  return evaluation === undefined ? created : { ...created, evaluation };
}

/** Options of task creation: who writes, and whether the task is started at once. */
export interface CreateOptions {
  processorUuid?: string | null;
  /**
   * Start the task in the same statement (create_and_start_task, as evaluate_task would): its first
   * steps are enqueued at once.
   */
  start?: { batchSize: number };
}

/**
 * Creates a task from a validated request and its registered template in one statement: the task
 * row, the initial step set (C §3.2), the dependency edges among those steps, and the first
 * transitions. A duplicate identity is a `ConflictError` that names nothing internal.
 */
export async function createTask(
  db: Queryable,
  request: TaskRequest,
  registered: RegisteredTemplate,
  options: CreateOptions & { limits?: JsonLimits } = {},
): Promise<CreatedTask> {
  return createPreparedTask(db, prepareTask(request, registered, options.limits), options);
}

/** The statement of `createTask` for a prepared task. */
export async function createPreparedTask(
  db: Queryable,
  prepared: PreparedTask,
  options: CreateOptions = {},
): Promise<CreatedTask> {
  const params = [
    prepared.namedTaskUuid,
    JSON.stringify(prepared.task),
    JSON.stringify(prepared.steps),
    options.processorUuid ?? null,
  ];
  try {
    if (options.start !== undefined) {
      const { rows } = await db.query<{ evaluation: TaskEvaluation }>(
        'SELECT tasker.create_and_start_task($1, $2::jsonb, $3::jsonb, $4, $5) AS evaluation',
        [...params, options.start.batchSize],
      );
      const evaluation = rows[0]?.evaluation;
      if (evaluation === undefined) throw new Error('create_and_start_task returned nothing');
      return createdTask(prepared, evaluation.task_uuid, evaluation);
    }
    const { rows } = await db.query<{ task_uuid: string }>(
      'SELECT tasker.create_task($1, $2::jsonb, $3::jsonb, $4) AS task_uuid',
      params,
    );
    const taskUuid = rows[0]?.task_uuid;
    if (taskUuid === undefined) throw new Error('create_task returned no task uuid');
    return createdTask(prepared, taskUuid);
  } catch (error) {
    throw translateCoreSqlError(error);
  }
}

/**
 * Creates and starts several prepared tasks in one statement and one transaction
 * (create_and_start_tasks, 0010). Each item's outcome is its own: the created task, or a
 * `ConflictError` when its identity exists already (an earlier item's included). A failure of the
 * statement as a whole (for instance a concurrent creation of one of the identities) rejects; the
 * caller may then create the items one by one to give each its own outcome.
 */
export async function createStartedTasks(
  db: Queryable,
  prepared: readonly PreparedTask[],
  options: { processorUuid?: string | null; batchSize: number },
): Promise<(CreatedTask | ConflictError)[]> {
  const items = prepared.map((item) => ({
    named_task_uuid: item.namedTaskUuid,
    task: item.task,
    steps: item.steps,
  }));
  let results: (TaskEvaluation | { conflict: true })[] | undefined;
  try {
    const { rows } = await db.query<{ results: (TaskEvaluation | { conflict: true })[] }>(
      'SELECT tasker.create_and_start_tasks($1::jsonb, $2, $3) AS results',
      [JSON.stringify(items), options.processorUuid ?? null, options.batchSize],
    );
    results = rows[0]?.results;
  } catch (error) {
    throw translateCoreSqlError(error);
  }
  if (results === undefined || results.length !== prepared.length) {
    throw new Error('create_and_start_tasks returned no result per task');
  }
  return prepared.map((item, index) => {
    const result = results[index];
    if (result === undefined || 'conflict' in result) return new ConflictError(IDENTITY_CONFLICT);
    return createdTask(item, result.task_uuid, result);
  });
}
