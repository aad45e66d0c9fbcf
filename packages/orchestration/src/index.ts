/**
 * `@tasker/orchestration`: the engine (task intake, result processing, finalization, retry timers,
 * readiness polling), the task watcher, and the REST API server built on them.
 */
export type { ApiEngine } from './api/index.ts';
export {
  API_DEFAULTS,
  type ApiConfig,
  type ApiServerOptions,
  apiOperations,
  buildApiServer,
  pinoLogger,
} from './api/index.ts';
export { IntakeOverloadedError } from './create-batcher.ts';
export { type EngineHealth, type EngineMetrics, type EngineOptions, OrchestrationEngine } from './engine.ts';
export {
  DEPLOYMENT_MODES,
  type DeploymentMode,
  ENGINE_DEFAULTS,
  type EngineSettings,
  engineSettings,
} from './options.ts';
export { TASK_FINISHED_CHANNEL, TaskWatcher } from './task-watcher.ts';
