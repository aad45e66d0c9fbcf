/**
 * `@tasker/client`: the typed client of Tasker's REST API. No runtime dependencies: it uses the
 * global `fetch` (or one given in the options).
 */
export { type CreateTaskOptions, TaskerClient, type WaitOptions, type WatchOptions } from './client.ts';
export {
  CLIENT_DEFAULTS,
  type ClientAuth,
  type RetryEvent,
  type RetryOptions,
  type TaskerClientOptions,
} from './config.ts';
export {
  type ApiErrorDetails,
  ClientConfigError,
  TaskerApiError,
  TaskerClientError,
  TaskerNetworkError,
  TaskerStreamError,
  TaskerTimeoutError,
} from './errors.ts';
export {
  parseEventStream,
  type ServerSentEvent,
  type TaskEvent,
  type TaskEventStepState,
  type TaskSnapshotEvent,
  type TaskTransitionEvent,
  TERMINAL_TASK_STATES,
} from './events.ts';
export type * from './types.ts';
