/**
 * `@tasker/client`: the typed client of Tasker's REST API. One runtime dependency, `undici`: its
 * `fetch` through an `Agent` of the client's own (the global `fetch` has no connect timeout), unless
 * a `fetch` is given in the options.
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
  type TimeoutCode,
  type TimeoutErrorOptions,
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
