import { randomUUID } from 'node:crypto';
import type { Queryable } from '@tasker/db';
import { ValidationError } from './errors.ts';
import { computeIdentityHash } from './identity.ts';
import { checkJsonLimits, JSON_LIMITS, type JsonLimits } from './json-limits.ts';
import type { RegisteredTemplate } from './registry.ts';
import { translateCoreSqlError } from './sql-errors.ts';
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
}

/** The task context: the template's `default_context` with the request's keys over it. */
export function resolveContext(defaults: JsonObject, context: JsonObject): JsonObject {
  return { ...defaults, ...context };
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
  options: {
    processorUuid?: string | null;
    limits?: JsonLimits;
    /** Start the task in the same statement (evaluate_task): its first steps are enqueued at once. */
    start?: { batchSize: number };
  } = {},
): Promise<CreatedTask> {
  const { template, namedTaskUuid } = registered;
  const context = resolveContext(template.default_context, request.context);
  const issues = checkJsonLimits(context, 'context', options.limits ?? JSON_LIMITS);
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
  const task = {
    identity_hash: identityHash,
    context,
    tags: request.tags,
    initiator: request.initiator,
    source_system: request.source_system,
    reason: request.reason,
    priority: request.priority,
    correlation_id: correlationId,
    parent_correlation_id: request.parent_correlation_id,
    requested_at: request.requested_at?.toISOString() ?? null,
  };
  try {
    const params = [
      namedTaskUuid,
      JSON.stringify(task),
      JSON.stringify(steps),
      options.processorUuid ?? null,
    ];
    const created = { namedTaskUuid, correlationId, steps: steps.map((step) => step.name) };
    if (options.start !== undefined) {
      const { rows } = await db.query<{ evaluation: TaskEvaluation }>(
        'SELECT tasker.evaluate_task(tasker.create_task($1, $2::jsonb, $3::jsonb, $4), $4, $5) AS evaluation',
        [...params, options.start.batchSize],
      );
      const evaluation = rows[0]?.evaluation;
      if (evaluation === undefined) throw new Error('create_task returned no task uuid');
      return { taskUuid: evaluation.task_uuid, ...created, evaluation };
    }
    const { rows } = await db.query<{ task_uuid: string }>(
      'SELECT tasker.create_task($1, $2::jsonb, $3::jsonb, $4) AS task_uuid',
      params,
    );
    const taskUuid = rows[0]?.task_uuid;
    if (taskUuid === undefined) throw new Error('create_task returned no task uuid');
    return { taskUuid, ...created };
  } catch (error) {
    throw translateCoreSqlError(error);
  }
}
