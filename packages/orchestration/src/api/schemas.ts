/**
 * The REST API's request and response schemas (TypeBox, i.e. JSON Schema). Fastify validates
 * requests with them (Ajv), serializes responses from them, and @fastify/swagger publishes them as
 * the OpenAPI document. Field names are those of reference B §2.3 (snake_case); timestamps are
 * RFC 3339 strings in UTC with microseconds; a field without a value is `null` (the audit entries
 * omit them, as in B §2.3.4).
 */

import { type TSchema, Type } from '@sinclair/typebox';
import { TASK_STATES } from '@tasker/core';

/** `T | null`, as one JSON Schema `type` array (fast-json-stringify and OpenAPI 3.1 both read it). */
function Nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<T['static'] | null>({ ...schema, type: [schema.type, 'null'] });
}

/** The canonical textual UUID; PostgreSQL's other spellings (braces, `urn:uuid:`) are refused. */
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const Uuid = Type.String({ pattern: UUID_PATTERN, description: 'a UUID' });
const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Nullable(Timestamp);
/** Any JSON value. */
const Json = Type.Unknown();

const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable, upper snake case (B §7.1)' }),
      message: Type.String(),
      retry_after_seconds: Type.Optional(Type.Integer()),
    }),
  },
  { description: 'every error, whatever the status' },
);

/** The error responses every route documents (the envelope is the same for each status). */
export const ERROR_RESPONSES = { '4xx': ErrorEnvelope, '5xx': ErrorEnvelope } as const;

// --- tasks -----------------------------------------------------------------------------------------

/**
 * POST /v1/tasks (B §2.3.1). The declared constraints are enforced here and again, with the JSON
 * limits (size, depth, keys, string length) and the namespace rule, by the engine's validation.
 */
export const TaskRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    namespace: Type.String({ minLength: 1, maxLength: 255 }),
    version: Type.String({ minLength: 1, maxLength: 50 }),
    context: Type.Object({}, { additionalProperties: true, description: 'the task input (a JSON object)' }),
    initiator: Type.String({ minLength: 1, maxLength: 255 }),
    source_system: Type.String({ minLength: 1, maxLength: 255 }),
    reason: Type.String({ minLength: 1, maxLength: 500 }),
    tags: Type.Optional(Type.Array(Type.String())),
    requested_at: Type.Optional(Nullable(Timestamp)),
    options: Type.Optional(Nullable(Type.Object({}, { additionalProperties: true }))),
    priority: Type.Optional(Nullable(Type.Integer({ minimum: -100, maximum: 100 }))),
    correlation_id: Type.Optional(Nullable(Uuid)),
    parent_correlation_id: Type.Optional(Nullable(Uuid)),
    idempotency_key: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 255 }))),
  },
  { additionalProperties: false },
);

const StepReadinessStatus = Type.Object({
  workflow_step_uuid: Uuid,
  task_uuid: Uuid,
  named_step_uuid: Uuid,
  name: Type.String(),
  current_state: Type.String(),
  dependencies_satisfied: Type.Boolean(),
  retry_eligible: Type.Boolean(),
  ready_for_execution: Type.Boolean(),
  last_failure_at: NullableTimestamp,
  next_retry_at: NullableTimestamp,
  total_parents: Type.Integer(),
  completed_parents: Type.Integer(),
  attempts: Type.Integer(),
  max_attempts: Type.Integer(),
  backoff_request_seconds: Nullable(Type.Integer()),
  last_attempted_at: NullableTimestamp,
});

const ExecutionStatus = Type.Union(
  ['has_ready_steps', 'processing', 'blocked_by_failures', 'all_complete', 'waiting_for_dependencies'].map(
    (value) => Type.Literal(value),
  ),
);

const StepCounts = {
  total_steps: Type.Integer(),
  pending_steps: Type.Integer(),
  in_progress_steps: Type.Integer(),
  completed_steps: Type.Integer(),
  failed_steps: Type.Integer(),
};

export const TaskResponse = Type.Object({
  task_uuid: Uuid,
  name: Type.String(),
  namespace: Type.String(),
  version: Type.String(),
  status: Type.String({ description: 'the task state', enum: [...TASK_STATES] }),
  created_at: Timestamp,
  updated_at: Timestamp,
  completed_at: NullableTimestamp,
  context: Json,
  initiator: Nullable(Type.String()),
  source_system: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  priority: Type.Integer(),
  tags: Type.Array(Type.String()),
  correlation_id: Uuid,
  parent_correlation_id: Nullable(Uuid),
  ...StepCounts,
  ready_steps: Type.Integer(),
  execution_status: ExecutionStatus,
  recommended_action: Type.String(),
  completion_percentage: Type.Number(),
  health_status: Type.String(),
  steps: Type.Array(StepReadinessStatus, { description: 'empty in the list view' }),
});

const Pagination = Type.Object({
  page: Type.Integer(),
  per_page: Type.Integer(),
  total_count: Type.Integer(),
  total_pages: Type.Integer(),
  has_next: Type.Boolean(),
  has_previous: Type.Boolean(),
});

export const TaskListResponse = Type.Object({ tasks: Type.Array(TaskResponse), pagination: Pagination });

const MAX_PAGE = 1_000_000;
export const TaskListQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 1 })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 25 })),
  namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  status: Type.Optional(Type.String({ enum: [...TASK_STATES], description: 'a task state' })),
  initiator: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  source_system: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});

export const TaskParams = Type.Object({ uuid: Uuid });
export const StepParams = Type.Object({ uuid: Uuid, step_uuid: Uuid });

export const TaskSummaryResponse = Type.Object({
  task: Type.Object({
    task_uuid: Uuid,
    name: Type.String(),
    namespace: Type.String(),
    version: Type.String(),
    status: Type.String(),
    created_at: Timestamp,
    updated_at: Timestamp,
    completed_at: NullableTimestamp,
    initiator: Nullable(Type.String()),
    source_system: Nullable(Type.String()),
    reason: Nullable(Type.String()),
    correlation_id: Uuid,
    ...StepCounts,
    completion_percentage: Type.Number(),
    health_status: Type.String(),
    execution_status: ExecutionStatus,
    recommended_action: Nullable(Type.String()),
  }),
  template: Type.Object({
    steps: Type.Array(
      Type.Object({
        name: Type.String(),
        step_type: Type.String(),
        handler: Type.String(),
        dependencies: Type.Array(Type.String()),
        retryable: Type.Boolean(),
        max_attempts: Type.Integer(),
      }),
    ),
  }),
  steps: Type.Array(
    Type.Object({
      step_uuid: Uuid,
      name: Type.String(),
      current_state: Type.String(),
      created_at: NullableTimestamp,
      completed_at: NullableTimestamp,
      last_attempted_at: NullableTimestamp,
      attempts: Type.Integer(),
      max_attempts: Type.Integer(),
      dependencies_satisfied: Type.Boolean(),
      retry_eligible: Type.Boolean(),
      error: Nullable(
        Type.Object({
          error_type: Nullable(Type.String()),
          retryable: Type.Boolean(),
          status_code: Nullable(Type.Integer()),
        }),
      ),
    }),
  ),
  dlq: Type.Object({
    in_dlq: Type.Boolean(),
    dlq_reason: Nullable(Type.String()),
    resolution_status: Nullable(Type.String()),
  }),
  links: Type.Object({ task: Type.String(), steps: Type.String(), dlq: Type.String() }),
});

// --- steps -----------------------------------------------------------------------------------------

export const StepResponse = Type.Object({
  step_uuid: Uuid,
  task_uuid: Uuid,
  name: Type.String(),
  created_at: Timestamp,
  updated_at: Timestamp,
  completed_at: NullableTimestamp,
  results: Json,
  current_state: Type.String(),
  dependencies_satisfied: Type.Boolean(),
  retry_eligible: Type.Boolean(),
  ready_for_execution: Type.Boolean(),
  total_parents: Type.Integer(),
  completed_parents: Type.Integer(),
  attempts: Type.Integer(),
  max_attempts: Type.Integer(),
  last_failure_at: NullableTimestamp,
  next_retry_at: NullableTimestamp,
  last_attempted_at: NullableTimestamp,
});

export const StepAuditResponse = Type.Object({
  audit_uuid: Uuid,
  workflow_step_uuid: Uuid,
  transition_uuid: Uuid,
  task_uuid: Uuid,
  recorded_at: Timestamp,
  worker_uuid: Type.Optional(Uuid),
  correlation_id: Type.Optional(Uuid),
  success: Type.Boolean(),
  execution_time_ms: Type.Optional(Type.Integer()),
  result: Type.Optional(Json),
  step_name: Type.String(),
  from_state: Type.Optional(Type.String()),
  to_state: Type.String(),
});

// --- templates ---------------------------------------------------------------------------------

const NamespacePattern = Type.String({
  pattern: '^[A-Za-z_][A-Za-z0-9_]{0,28}$',
  description: 'a namespace name',
});

export const TemplateListQuery = Type.Object({ namespace: Type.Optional(NamespacePattern) });

export const TemplateListResponse = Type.Object({
  namespaces: Type.Array(
    Type.Object({
      name: Type.String(),
      description: Nullable(Type.String()),
      template_count: Type.Integer(),
    }),
  ),
  templates: Type.Array(
    Type.Object({
      name: Type.String(),
      namespace: Type.String(),
      version: Type.String(),
      description: Nullable(Type.String()),
      step_count: Type.Integer(),
    }),
  ),
  total_count: Type.Integer({ description: 'the number of templates listed' }),
});

export const TemplateParams = Type.Object({
  namespace: NamespacePattern,
  name: Type.String({ minLength: 1, maxLength: 64 }),
  version: Type.String({ minLength: 1, maxLength: 16 }),
});

export const TemplateDetail = Type.Object({
  name: Type.String(),
  namespace: Type.String(),
  version: Type.String(),
  description: Nullable(Type.String()),
  steps: Type.Array(
    Type.Object({
      name: Type.String(),
      description: Nullable(Type.String()),
      default_retryable: Type.Boolean(),
      default_max_attempts: Type.Integer(),
      result_schema: Json,
    }),
  ),
});

// --- health ------------------------------------------------------------------------------------

const CheckStatus = Type.Union(['healthy', 'degraded', 'unhealthy', 'unknown'].map((s) => Type.Literal(s)));

const HealthCheck = Type.Object({
  status: CheckStatus,
  message: Nullable(Type.String()),
  duration_ms: Type.Number(),
});

export const BasicHealth = Type.Object({ status: Type.String(), timestamp: Timestamp });

export const ReadinessResponse = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  timestamp: Timestamp,
  checks: Type.Object({
    web_database: HealthCheck,
    orchestration_system: HealthCheck,
    circuit_breaker: HealthCheck,
  }),
});

export const DetailedHealthResponse = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]),
  timestamp: Timestamp,
  checks: Type.Object({
    web_database: HealthCheck,
    orchestration_system: HealthCheck,
    circuit_breaker: HealthCheck,
    queue_depth: HealthCheck,
  }),
  info: Type.Object({
    version: Type.String(),
    processor_uuid: Type.String(),
    database_backend: Type.String(),
    listener_connected: Nullable(Type.Boolean()),
    circuit_breaker_state: Type.Union(['closed', 'open', 'half_open'].map((s) => Type.Literal(s))),
    backpressure: Type.Object({
      accept_tasks: Type.Boolean(),
      retry_after_seconds: Nullable(Type.Integer()),
      reasons: Type.Array(Type.String()),
      warnings: Type.Array(Type.String()),
      evaluated_at: NullableTimestamp,
    }),
    loops: Type.Array(
      Type.Object({
        name: Type.String(),
        running: Type.Boolean(),
        restarts: Type.Integer(),
        last_error_at: NullableTimestamp,
      }),
    ),
  }),
});
