/**
 * The client's errors. Every one is a `TaskerClientError`; a wrapped failure keeps its `cause`
 * (AUDIT S-5).
 *
 * - `ClientConfigError`: the options given to `new TaskerClient` are invalid (AUDIT C-4); lists
 *   every problem, not only the first.
 * - `TaskerApiError`: the server answered with an error status (or with a body that is not what the
 *   route promises); carries the status, the envelope's code and message and the request id.
 * - `TaskerNetworkError`: no answer: the connection was refused, reset or dropped.
 * - `TaskerTimeoutError`: no complete answer within `timeoutMs` (code `TIMEOUT`), or no connection
 *   within `connectTimeoutMs` (code `CONNECT_TIMEOUT`).
 */

export class TaskerClientError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TaskerClientError';
  }
}

export class ClientConfigError extends TaskerClientError {
  /** Each problem, as `option: what is wrong`. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid Tasker client configuration: ${problems.join('; ')}`);
    this.name = 'ClientConfigError';
    this.problems = [...problems];
  }
}

export interface ApiErrorDetails {
  status: number;
  /** The envelope's code (`NOT_FOUND`, `BAD_REQUEST`…); `HTTP_<status>` when the body had none. */
  code: string;
  message: string;
  /** The response's `x-request-id`, when it had one. */
  requestId: string | null;
  /** From `Retry-After` or the envelope's `retry_after_seconds`. */
  retryAfterSeconds: number | null;
  /** How many requests were made, retries included. */
  attempts: number;
}

export class TaskerApiError extends TaskerClientError {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  readonly retryAfterSeconds: number | null;
  readonly attempts: number;
  constructor(details: ApiErrorDetails, options?: ErrorOptions) {
    super(details.message, options);
    this.name = 'TaskerApiError';
    this.status = details.status;
    this.code = details.code;
    this.requestId = details.requestId;
    this.retryAfterSeconds = details.retryAfterSeconds;
    this.attempts = details.attempts;
  }
}

export class TaskerNetworkError extends TaskerClientError {
  readonly attempts: number;
  constructor(message: string, attempts: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TaskerNetworkError';
    this.attempts = attempts;
  }
}

/**
 * Which bound passed: `CONNECT_TIMEOUT` when the connection (TCP, and TLS for `https:`) could not be
 * established within `connectTimeoutMs`; `TIMEOUT` for every other deadline (`timeoutMs`, a wait's).
 */
export type TimeoutCode = 'TIMEOUT' | 'CONNECT_TIMEOUT';

export interface TimeoutErrorOptions extends ErrorOptions {
  /** @default 'TIMEOUT' */
  code?: TimeoutCode;
}

export class TaskerTimeoutError extends TaskerClientError {
  readonly code: TimeoutCode;
  /** The bound that passed: `connectTimeoutMs` for `CONNECT_TIMEOUT`. */
  readonly timeoutMs: number;
  readonly attempts: number;
  constructor(message: string, timeoutMs: number, attempts: number, options: TimeoutErrorOptions = {}) {
    const { code = 'TIMEOUT', ...errorOptions } = options;
    super(message, errorOptions);
    this.name = 'TaskerTimeoutError';
    this.code = code;
    this.timeoutMs = timeoutMs;
    this.attempts = attempts;
  }
}

/**
 * A task event stream ended early: the server sent `event: error` (its `code`, e.g.
 * `SLOW_CONSUMER`, `SERVER_CLOSING`) or the stream stopped before the task finished
 * (`STREAM_ENDED`).
 */
export class TaskerStreamError extends TaskerClientError {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TaskerStreamError';
    this.code = code;
  }
}
