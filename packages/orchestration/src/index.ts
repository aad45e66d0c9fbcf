/**
 * `@tasker/orchestration`: the engine (task intake, result processing, finalization, retry timers,
 * readiness polling) and the task watcher. The REST/gRPC server comes on top of it.
 */
export { type EngineHealth, type EngineMetrics, type EngineOptions, OrchestrationEngine } from './engine.ts';
export {
  DEPLOYMENT_MODES,
  type DeploymentMode,
  ENGINE_DEFAULTS,
  type EngineSettings,
  engineSettings,
} from './options.ts';
export { TASK_FINISHED_CHANNEL, TaskWatcher } from './task-watcher.ts';
