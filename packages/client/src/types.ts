/**
 * The REST API's request and response shapes, written by hand after
 * `packages/orchestration/src/api/schemas.ts` (the client imports nothing of the server at run time).
 * Field names are the wire's (snake_case, B §2.3); timestamps are RFC 3339 strings; a field without
 * a value is `null`, except in audit entries, which omit it.
 */

/** The task states (`@tasker/core` `TASK_STATES`). */
export type TaskState =
  | 'pending'
  | 'initializing'
  | 'enqueuing_steps'
  | 'steps_in_process'
  | 'evaluating_results'
  | 'waiting_for_dependencies'
  | 'waiting_for_retry'
  | 'blocked_by_failures'
  | 'complete'
  | 'error'
  | 'cancelled'
  | 'resolved_manually';

/** `POST /v1/tasks` body (B §2.3.1). `idempotency_key` is set through `createTask`'s options. */
export interface TaskRequest {
  name: string;
  namespace: string;
  version: string;
  /** The task input: a JSON object. */
  context: Record<string, unknown>;
  initiator: string;
  source_system: string;
  reason: string;
  tags?: string[];
  requested_at?: string | null;
  options?: Record<string, unknown> | null;
  /** -100 … 100 */
  priority?: number | null;
  correlation_id?: string | null;
  parent_correlation_id?: string | null;
  idempotency_key?: string | null;
}

export type ExecutionStatus =
  | 'has_ready_steps'
  | 'processing'
  | 'blocked_by_failures'
  | 'all_complete'
  | 'waiting_for_dependencies';

export interface StepReadinessStatus {
  workflow_step_uuid: string;
  task_uuid: string;
  named_step_uuid: string;
  name: string;
  current_state: string;
  dependencies_satisfied: boolean;
  retry_eligible: boolean;
  ready_for_execution: boolean;
  last_failure_at: string | null;
  next_retry_at: string | null;
  total_parents: number;
  completed_parents: number;
  attempts: number;
  max_attempts: number;
  backoff_request_seconds: number | null;
  last_attempted_at: string | null;
}

interface StepCounts {
  total_steps: number;
  pending_steps: number;
  in_progress_steps: number;
  completed_steps: number;
  failed_steps: number;
}

export interface TaskResponse extends StepCounts {
  task_uuid: string;
  name: string;
  namespace: string;
  version: string;
  status: TaskState;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  context: unknown;
  initiator: string | null;
  source_system: string | null;
  reason: string | null;
  priority: number;
  tags: string[];
  correlation_id: string;
  parent_correlation_id: string | null;
  ready_steps: number;
  execution_status: ExecutionStatus;
  recommended_action: string;
  completion_percentage: number;
  health_status: string;
  /** Empty in the list view. */
  steps: StepReadinessStatus[];
}

export interface Pagination {
  page: number;
  per_page: number;
  total_count: number;
  total_pages: number;
  has_next: boolean;
  has_previous: boolean;
}

export interface TaskListResponse {
  tasks: TaskResponse[];
  pagination: Pagination;
}

/** `GET /v1/tasks` query: filters and pagination (`per_page` 1 … 100, default 25). */
export interface TaskListQuery {
  page?: number;
  per_page?: number;
  namespace?: string;
  status?: TaskState;
  initiator?: string;
  source_system?: string;
}

export interface TaskSummaryResponse {
  task: StepCounts & {
    task_uuid: string;
    name: string;
    namespace: string;
    version: string;
    status: string;
    created_at: string;
    updated_at: string;
    completed_at: string | null;
    initiator: string | null;
    source_system: string | null;
    reason: string | null;
    correlation_id: string;
    completion_percentage: number;
    health_status: string;
    execution_status: ExecutionStatus;
    recommended_action: string | null;
  };
  template: {
    steps: {
      name: string;
      step_type: string;
      handler: string;
      dependencies: string[];
      retryable: boolean;
      max_attempts: number;
    }[];
  };
  steps: {
    step_uuid: string;
    name: string;
    current_state: string;
    created_at: string | null;
    completed_at: string | null;
    last_attempted_at: string | null;
    attempts: number;
    max_attempts: number;
    dependencies_satisfied: boolean;
    retry_eligible: boolean;
    error: { error_type: string | null; retryable: boolean; status_code: number | null } | null;
  }[];
  dlq: { in_dlq: boolean; dlq_reason: string | null; resolution_status: string | null };
  links: { task: string; steps: string; dlq: string };
}

export interface StepResponse {
  step_uuid: string;
  task_uuid: string;
  name: string;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  results: unknown;
  current_state: string;
  dependencies_satisfied: boolean;
  retry_eligible: boolean;
  ready_for_execution: boolean;
  total_parents: number;
  completed_parents: number;
  attempts: number;
  max_attempts: number;
  last_failure_at: string | null;
  next_retry_at: string | null;
  last_attempted_at: string | null;
}

/** One entry of a step's result audit (fields without a value are omitted). */
export interface StepAuditResponse {
  audit_uuid: string;
  workflow_step_uuid: string;
  transition_uuid: string;
  task_uuid: string;
  recorded_at: string;
  worker_uuid?: string;
  correlation_id?: string;
  success: boolean;
  execution_time_ms?: number;
  result?: unknown;
  step_name: string;
  from_state?: string;
  to_state: string;
}

export interface TemplateListResponse {
  namespaces: { name: string; description: string | null; template_count: number }[];
  templates: {
    name: string;
    namespace: string;
    version: string;
    description: string | null;
    step_count: number;
  }[];
  /** The number of templates listed. */
  total_count: number;
}

export interface TemplateDetail {
  name: string;
  namespace: string;
  version: string;
  description: string | null;
  steps: {
    name: string;
    description: string | null;
    default_retryable: boolean;
    default_max_attempts: number;
    result_schema: unknown;
  }[];
}

export type CheckStatus = 'healthy' | 'degraded' | 'unhealthy' | 'unknown';

export interface HealthCheck {
  status: CheckStatus;
  message: string | null;
  duration_ms: number;
}

/** `GET /health` and `GET /health/live`. */
export interface BasicHealth {
  status: string;
  timestamp: string;
}

/** `GET /health/ready`: answered with 200 when ready and 503 when not, with this body either way. */
export interface ReadinessResponse {
  status: 'ready' | 'not_ready';
  timestamp: string;
  checks: { web_database: HealthCheck; orchestration_system: HealthCheck };
}

export interface DetailedHealthResponse {
  status: 'healthy' | 'degraded';
  timestamp: string;
  checks: { web_database: HealthCheck; orchestration_system: HealthCheck };
  info: {
    version: string;
    processor_uuid: string;
    database_backend: string;
    listener_connected: boolean | null;
    loops: { name: string; running: boolean; restarts: number; last_error_at: string | null }[];
  };
}
