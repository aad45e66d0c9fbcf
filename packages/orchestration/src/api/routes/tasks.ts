/**
 * Tasks and their steps (B §2.2 rows 1–3, 5–7, 9): create, list, get, summary, steps, step, audit.
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { CircuitBreaker } from '../circuit-breaker.ts';
import type { ApiContext } from '../context.ts';
import { startedTaskResponse } from '../created-task.ts';
import { ApiError } from '../errors.ts';
import {
  getTask,
  getTaskSummaryRow,
  listStepAudit,
  listSteps,
  listTasks,
  type SummaryRow,
  taskExists,
} from '../queries.ts';
import {
  ERROR_RESPONSES,
  StepAuditResponse,
  StepParams,
  StepResponse,
  TaskListQuery,
  TaskListResponse,
  TaskParams,
  TaskRequest,
  TaskResponse,
  TaskSummaryResponse,
} from '../schemas.ts';

/** Not-found messages do not echo ids (B §7.2). */
const notFound = () => new ApiError(404, 'NOT_FOUND', 'Resource not found');

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The template part of a summary: what a visualization needs of each declared step. */
function templateSteps(configuration: unknown) {
  return list(record(configuration).steps).map((raw) => {
    const step = record(raw);
    const retry = record(step.retry);
    return {
      name: String(step.name ?? ''),
      step_type: String(step.type ?? 'standard'),
      handler: String(record(step.handler).callable ?? ''),
      dependencies: list(step.dependencies).map(String),
      retryable: retry.retryable !== false,
      max_attempts: typeof retry.max_attempts === 'number' ? retry.max_attempts : 0,
    };
  });
}

function summaryOf(row: SummaryRow): Static<typeof TaskSummaryResponse> {
  const context = record(row.execution_context);
  const dlq = record(row.dlq_status);
  const num = (value: unknown) => (typeof value === 'number' ? value : 0);
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  const uuid = row.task_uuid;
  const declared = templateSteps(row.template_configuration);
  // steps created together share a timestamp: the template's order, as the step routes use
  const position = (name: unknown) => {
    const index = declared.findIndex((step) => step.name === name);
    return index === -1 ? declared.length : index;
  };
  const steps = list(row.step_summaries)
    .map(record)
    .sort(
      (a, b) =>
        String(a.created_at).localeCompare(String(b.created_at)) ||
        position(a.name) - position(b.name) ||
        String(a.name).localeCompare(String(b.name)),
    );
  return {
    task: {
      task_uuid: uuid,
      name: row.task_name,
      namespace: row.namespace_name,
      version: row.task_version,
      status: row.task_status,
      created_at: row.created_at,
      updated_at: row.updated_at,
      completed_at: row.completed_at,
      initiator: row.initiator,
      source_system: row.source_system,
      reason: row.reason,
      correlation_id: row.correlation_id,
      total_steps: num(context.total_steps),
      pending_steps: num(context.pending_steps),
      in_progress_steps: num(context.in_progress_steps),
      completed_steps: num(context.completed_steps),
      failed_steps: num(context.failed_steps),
      completion_percentage: num(context.completion_percentage),
      health_status: text(context.health_status) ?? 'healthy',
      execution_status: (text(context.execution_status) ?? 'waiting_for_dependencies') as Static<
        typeof TaskSummaryResponse
      >['task']['execution_status'],
      recommended_action: text(context.recommended_action),
    },
    template: { steps: declared },
    steps: steps.map((step) => {
      const errorType = text(step.error_type);
      const retryable = step.error_retryable;
      const statusCode = step.error_status_code;
      const failed = errorType !== null || typeof retryable === 'boolean' || typeof statusCode === 'number';
      return {
        step_uuid: String(step.step_uuid),
        name: String(step.name),
        current_state: String(step.current_state),
        created_at: text(step.created_at),
        completed_at: text(step.completed_at),
        last_attempted_at: text(step.last_attempted_at),
        attempts: num(step.attempts),
        max_attempts: num(step.max_attempts),
        dependencies_satisfied: step.dependencies_satisfied === true,
        retry_eligible: step.retry_eligible === true,
        error: failed
          ? {
              error_type: errorType,
              retryable: retryable === true,
              status_code: typeof statusCode === 'number' ? statusCode : null,
            }
          : null,
      };
    }),
    dlq: {
      in_dlq: dlq.in_dlq === true,
      dlq_reason: text(dlq.dlq_reason),
      resolution_status: text(dlq.resolution_status),
    },
    links: { task: `/v1/tasks/${uuid}`, steps: `/v1/tasks/${uuid}/workflow_steps`, dlq: '/v1/dlq' },
  };
}

/** What task intake needs besides the context: the breaker and the backpressure gate. */
export interface IntakeControls {
  breaker: CircuitBreaker;
  /** The error that sheds a creation now (backpressure), or undefined to go on. */
  shed(): ApiError | undefined;
  /** The answer to a creation the engine refused because its intake queue is full, or undefined. */
  overloaded(error: unknown): ApiError | undefined;
}

export function taskRoutes(app: FastifyInstance, { db, engine }: ApiContext, intake: IntakeControls): void {
  app.post<{ Body: Static<typeof TaskRequest> }>(
    '/v1/tasks',
    {
      // load shedding before any work, the body not even read (B §5.2)
      preParsing: async (_request, _reply, payload) => {
        const refused = intake.shed();
        if (refused !== undefined) throw refused;
        return payload;
      },
      schema: {
        tags: ['tasks'],
        summary: 'Create a task and start it',
        body: TaskRequest,
        response: { 201: TaskResponse, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const created = await intake.breaker
        .execute(() => engine.createTask(request.body))
        .catch((error: unknown) => {
          throw intake.overloaded(error) ?? error;
        });
      const task = startedTaskResponse(created) ?? (await getTask(db, created.taskUuid));
      if (task === undefined) throw new Error(`task ${created.taskUuid} vanished after creation`);
      return reply.code(201).header('location', `/v1/tasks/${created.taskUuid}`).send(task);
    },
  );

  app.get<{ Querystring: Static<typeof TaskListQuery> }>(
    '/v1/tasks',
    {
      schema: {
        tags: ['tasks'],
        summary: 'List tasks, newest first',
        querystring: TaskListQuery,
        response: { 200: TaskListResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      // the validator filled in the defaults
      const { page = 1, per_page = 25, ...filter } = request.query;
      const { tasks, totalCount } = await listTasks(db, filter, page, per_page);
      const totalPages = Math.ceil(totalCount / per_page);
      return {
        tasks,
        pagination: {
          page,
          per_page,
          total_count: totalCount,
          total_pages: totalPages,
          has_next: page < totalPages,
          has_previous: page > 1,
        },
      };
    },
  );

  app.get<{ Params: Static<typeof TaskParams> }>(
    '/v1/tasks/:uuid',
    {
      schema: {
        tags: ['tasks'],
        summary: 'A task with its step readiness',
        params: TaskParams,
        response: { 200: TaskResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const task = await getTask(db, request.params.uuid);
      if (task === undefined) throw notFound();
      return task;
    },
  );

  app.get<{ Params: Static<typeof TaskParams> }>(
    '/v1/tasks/:uuid/summary',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Everything a visualization needs about a task',
        params: TaskParams,
        response: { 200: TaskSummaryResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const row = await getTaskSummaryRow(db, request.params.uuid);
      if (row === undefined) throw notFound();
      return summaryOf(row);
    },
  );

  app.get<{ Params: Static<typeof TaskParams> }>(
    '/v1/tasks/:uuid/workflow_steps',
    {
      schema: {
        tags: ['steps'],
        summary: "A task's steps in creation order",
        params: TaskParams,
        response: { 200: { type: 'array', items: StepResponse }, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const steps = await listSteps(db, request.params.uuid);
      if (steps.length === 0 && !(await taskExists(db, request.params.uuid))) throw notFound();
      return steps;
    },
  );

  app.get<{ Params: Static<typeof StepParams> }>(
    '/v1/tasks/:uuid/workflow_steps/:step_uuid',
    {
      schema: {
        tags: ['steps'],
        summary: 'One step of a task',
        params: StepParams,
        response: { 200: StepResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const [step] = await listSteps(db, request.params.uuid, request.params.step_uuid);
      if (step === undefined) throw notFound();
      return step;
    },
  );

  app.get<{ Params: Static<typeof StepParams> }>(
    '/v1/tasks/:uuid/workflow_steps/:step_uuid/audit',
    {
      schema: {
        tags: ['steps'],
        summary: "A step's result audit, newest first",
        params: StepParams,
        response: { 200: { type: 'array', items: StepAuditResponse }, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const [step] = await listSteps(db, request.params.uuid, request.params.step_uuid);
      if (step === undefined) throw notFound();
      return listStepAudit(db, request.params.step_uuid);
    },
  );
}
