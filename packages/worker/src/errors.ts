/**
 * Errors a step handler throws (or the SDK raises on its behalf) and their classification into the
 * `retryable` / `error_type` pair that orchestration reads (reference C §1.6). Only `retryable` decides
 * what happens next; `error_type` is informational.
 */
import { type JsonObject, TaskerError, ValidationError } from '@tasker/core';

/** Standard `error_type` values (C §2.3) plus the worker-generated ones the SDK produces. */
export const ERROR_TYPES = {
  permanent: 'permanent_error',
  retryable: 'retryable_error',
  validation: 'validation_error',
  timeout: 'timeout',
  handler: 'handler_error',
  handlerNotFound: 'handler_not_found',
} as const;

/** Longest message kept from a thrown value; longer ones are cut (results are stored and shown). */
const MAX_MESSAGE_LENGTH = 2000;

interface HandlerErrorOptions extends ErrorOptions {
  /** Free-form JSON describing the failure; lands in `error.context` / `metadata.context`. */
  metadata?: JsonObject;
  /** Application error code (`metadata.error_code`). */
  errorCode?: string;
  /** Overrides the default `error_type` (and `code`) of the class, e.g. `validation_error`. */
  errorType?: string;
}

export type PermanentErrorOptions = HandlerErrorOptions;

export interface RetryableErrorOptions extends HandlerErrorOptions {
  /** How long orchestration should wait before the retry (seconds, ≥ 0): a backoff hint. */
  retryAfterSeconds?: number;
}

/** A failure that will not go away by retrying: the step goes to `error` at once. */
export class PermanentError extends TaskerError {
  readonly errorType: string;
  readonly metadata: JsonObject;
  readonly errorCode: string | undefined;
  constructor(message: string, options: PermanentErrorOptions = {}) {
    const errorType = options.errorType ?? ERROR_TYPES.permanent;
    super(errorType, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errorType = errorType;
    this.metadata = options.metadata ?? {};
    this.errorCode = options.errorCode;
  }
}

/** A transient failure: the step is retried while attempts remain, after `retryAfterSeconds` if given. */
export class RetryableError extends TaskerError {
  readonly errorType: string;
  readonly metadata: JsonObject;
  readonly errorCode: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, options: RetryableErrorOptions = {}) {
    const { retryAfterSeconds } = options;
    if (retryAfterSeconds !== undefined && !(Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0)) {
      throw new ValidationError([
        {
          field: 'retryAfterSeconds',
          message: `must be a finite number >= 0, got ${String(retryAfterSeconds)}`,
        },
      ]);
    }
    const errorType = options.errorType ?? ERROR_TYPES.retryable;
    super(errorType, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errorType = errorType;
    this.metadata = options.metadata ?? {};
    this.errorCode = options.errorCode;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The handler did not settle within its time limit (retryable, `error_type = timeout`). */
export class HandlerTimeoutError extends RetryableError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`handler execution timed out after ${timeoutMs} ms`, {
      errorType: ERROR_TYPES.timeout,
      metadata: { timeout_ms: timeoutMs },
    });
    this.timeoutMs = timeoutMs;
  }
}

/** No handler (or no such method on it) for a step's `handler` block: permanent, `handler_not_found`. */
export class HandlerNotFoundError extends PermanentError {
  readonly callable: string;
  constructor(callable: string, message: string, options?: ErrorOptions) {
    super(message, { ...options, errorType: ERROR_TYPES.handlerNotFound, metadata: { callable } });
    this.callable = callable;
  }
}

/** A required task input is absent: permanent (`validation_error`), the task context never changes. */
export class MissingInputError extends PermanentError {
  readonly key: string;
  constructor(key: string) {
    super(`required input "${key}" is missing from the task context`, {
      errorType: ERROR_TYPES.validation,
      metadata: { key },
    });
    this.key = key;
  }
}

/** What a failure means for orchestration: the fields of the error part of a step result. */
export interface ErrorClassification {
  retryable: boolean;
  errorType: string;
  message: string;
  errorCode?: string;
  retryAfterSeconds?: number;
  context: JsonObject;
}

function clip(message: string): string {
  return message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH)}…` : message;
}

function typeOfThrown(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Classifies anything a handler threw (or a promise it returned rejected with):
 * `PermanentError` → not retryable; `RetryableError` (incl. `HandlerTimeoutError`) → retryable, with its
 * hint; any other `Error` → retryable `handler_error` (class name in the context); a non-Error value →
 * retryable `handler_error` with a message that never serializes the value (only strings are quoted).
 */
export function classifyError(error: unknown): ErrorClassification {
  if (error instanceof PermanentError || error instanceof RetryableError) {
    const classification: ErrorClassification = {
      retryable: error instanceof RetryableError,
      errorType: error.errorType,
      message: clip(error.message),
      context: { ...error.metadata },
    };
    if (error.errorCode !== undefined) classification.errorCode = error.errorCode;
    if (error instanceof RetryableError && error.retryAfterSeconds !== undefined) {
      classification.retryAfterSeconds = error.retryAfterSeconds;
    }
    return classification;
  }
  if (error instanceof Error) {
    return {
      retryable: true,
      errorType: ERROR_TYPES.handler,
      message: clip(error.message === '' ? error.name : error.message),
      context: { error_class: error.name },
    };
  }
  const thrownType = typeOfThrown(error);
  let message: string;
  if (typeof error === 'string') {
    message = error === '' ? 'handler threw an empty string' : error;
  } else if (error === undefined || error === null) {
    message = `handler threw ${thrownType}`;
  } else {
    message = `handler threw a non-Error value of type ${thrownType}`;
  }
  return {
    retryable: true,
    errorType: ERROR_TYPES.handler,
    message: clip(message),
    context: { thrown_type: thrownType },
  };
}
