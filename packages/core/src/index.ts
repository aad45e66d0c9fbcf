export {
  type BackoffPolicy,
  backoffPolicyFromRetry,
  computeBackoffSeconds,
  DEFAULT_BACKOFF,
} from './backoff.ts';
export {
  ConflictError,
  type FieldIssue,
  InvalidTransitionError,
  NotFoundError,
  TaskerError,
  ValidationError,
} from './errors.ts';
export { canonicalJson, computeIdentityHash } from './identity.ts';
export {
  type CreatedStep,
  type CreatedTask,
  type CreateOptions,
  createPreparedTask,
  createStartedTasks,
  createTask,
  type PreparedTask,
  prepareTask,
  resolveContext,
  type TaskEvaluation,
  type TaskRecord,
} from './initialize.ts';
export { checkJsonLimits, JSON_LIMITS, type JsonLimits } from './json-limits.ts';
export { coreMigrations, TASKER_MIGRATIONS } from './migrations.ts';
export { type RegisteredTemplate, TemplateRegistry } from './registry.ts';
export * from './settings.ts';
export { SQLSTATE, sqlState, translateCoreSqlError } from './sql-errors.ts';
export * from './states.ts';
export {
  jsonLogger,
  type Logger,
  type LoopHealth,
  SILENT_LOGGER,
  Supervisor,
  type SupervisorOptions,
  sleep,
} from './supervisor.ts';
export { TASK_REQUEST_DEFAULTS, type TaskRequest, validateTaskRequest } from './task-request.ts';
export * from './template/index.ts';
