/**
 * Step results at two levels:
 * - `StepHandlerResult`: what a handler returns (`success` / `failure`), without timing or ids;
 * - `StepExecutionResult`: the wire JSON (snake_case, reference D §1.3 / C §1.7) stored in
 *   `workflow_steps.results` and read by orchestration and by dependent steps. Built by
 *   `successResult` / `failureResult`; `parseStepExecutionResult` validates one read back (a missing
 *   required field is a `ValidationError`, never a silent default — AUDIT S-4).
 */
import { type FieldIssue, type JsonObject, type JsonValue, ValidationError } from '@tasker/core';
import { ERROR_TYPES } from './errors.ts';

export const STEP_RESULT_STATUSES = ['completed', 'failed', 'error'] as const;
export type StepResultStatus = (typeof STEP_RESULT_STATUSES)[number];

export const BACKOFF_HINT_TYPES = ['ServerRequested', 'RateLimit', 'ServiceUnavailable', 'Custom'] as const;
export type BackoffHintType = (typeof BACKOFF_HINT_TYPES)[number];

export interface StepExecutionMetadata {
  execution_time_ms: number;
  handler_version?: string;
  retryable: boolean;
  completed_at: string;
  started_at?: string;
  worker_id?: string;
  worker_hostname?: string;
  /** The handler's own metadata (and `invoked_method` when a method other than `call` ran). */
  custom: JsonObject;
  error_code?: string;
  error_type?: string;
  context: JsonObject;
}

export interface StepExecutionError {
  message: string;
  error_type?: string;
  backtrace?: string[];
  retryable: boolean;
  status_code?: number;
  context: JsonObject;
}

export interface BackoffHint {
  backoff_type: BackoffHintType;
  delay_seconds: number;
  context?: JsonObject;
}

export interface OrchestrationMetadata {
  headers: Record<string, string>;
  error_context?: string;
  backoff_hint?: BackoffHint;
  custom: JsonObject;
}

export interface StepExecutionResult {
  step_uuid: string;
  success: boolean;
  /** Any JSON; `{}` on failure. */
  result: JsonValue;
  status: StepResultStatus;
  metadata: StepExecutionMetadata;
  error?: StepExecutionError;
  orchestration_metadata?: OrchestrationMetadata;
}

/** Details of a handler-declared failure (camelCase; mapped to the wire fields by `failureResult`). */
export interface FailureDetails {
  /** Required: whether orchestration may retry the step. */
  retryable: boolean;
  /** Defaults to `permanent_error` / `retryable_error` following `retryable`. */
  errorType?: string;
  errorCode?: string;
  /** HTTP-ish status of a failed call, when there is one (0–65535). */
  statusCode?: number;
  /** Backoff hint in seconds (≥ 0): becomes `orchestration_metadata.backoff_hint`. */
  retryAfterSeconds?: number;
  /** JSON describing the failure (`error.context`). */
  context?: JsonObject;
  /** Handler metadata (`metadata.custom`). */
  metadata?: JsonObject;
}

/** What a handler returns. Build with `StepHandlerResult.success` / `.failure` (or the handler helpers). */
export class StepHandlerResult {
  readonly success: boolean;
  readonly result: JsonValue;
  readonly metadata: JsonObject;
  readonly error: ({ message: string } & FailureDetails) | undefined;

  private constructor(
    success: boolean,
    result: JsonValue,
    metadata: JsonObject,
    error: ({ message: string } & FailureDetails) | undefined,
  ) {
    this.success = success;
    this.result = result;
    this.metadata = metadata;
    this.error = error;
  }

  static success(result: JsonValue = {}, metadata: JsonObject = {}): StepHandlerResult {
    return new StepHandlerResult(true, result, metadata, undefined);
  }

  static failure(message: string, details: FailureDetails): StepHandlerResult {
    return new StepHandlerResult(false, {}, details.metadata ?? {}, { ...details, message });
  }
}

interface ExecutionInfo {
  stepUuid: string;
  executionTimeMs: number;
  /** ISO time; now when omitted. */
  completedAt?: string;
  startedAt?: string;
  workerId?: string;
  workerHostname?: string;
  handlerVersion?: string;
  /** Handler metadata (`metadata.custom`). */
  custom?: JsonObject;
}

export type SuccessResultInput = ExecutionInfo & { result?: JsonValue };

export type FailureResultInput = ExecutionInfo &
  Omit<FailureDetails, 'metadata'> & {
    message: string;
    backtrace?: string[];
  };

function baseMetadata(info: ExecutionInfo, retryable: boolean): StepExecutionMetadata {
  if (!(Number.isFinite(info.executionTimeMs) && info.executionTimeMs >= 0)) {
    throw new ValidationError([{ field: 'executionTimeMs', message: 'must be a finite number >= 0' }]);
  }
  const metadata: StepExecutionMetadata = {
    execution_time_ms: Math.round(info.executionTimeMs),
    retryable,
    completed_at: info.completedAt ?? new Date().toISOString(),
    custom: info.custom ?? {},
    context: {},
  };
  if (info.handlerVersion !== undefined) metadata.handler_version = info.handlerVersion;
  if (info.startedAt !== undefined) metadata.started_at = info.startedAt;
  if (info.workerId !== undefined) metadata.worker_id = info.workerId;
  if (info.workerHostname !== undefined) metadata.worker_hostname = info.workerHostname;
  return metadata;
}

/** A successful `StepExecutionResult` (`status = completed`, `metadata.retryable = false`). */
export function successResult(input: SuccessResultInput): StepExecutionResult {
  return {
    step_uuid: input.stepUuid,
    success: true,
    result: input.result ?? {},
    status: 'completed',
    metadata: baseMetadata(input, false),
  };
}

/**
 * A failed `StepExecutionResult`: `status = error`, `result = {}`, the classification copied to both
 * `metadata` and `error`, and `orchestration_metadata.backoff_hint` when `retryAfterSeconds` is given.
 */
export function failureResult(input: FailureResultInput): StepExecutionResult {
  const errorType = input.errorType ?? (input.retryable ? ERROR_TYPES.retryable : ERROR_TYPES.permanent);
  const context = input.context ?? {};
  const metadata = baseMetadata(input, input.retryable);
  metadata.error_type = errorType;
  metadata.context = context;
  if (input.errorCode !== undefined) metadata.error_code = input.errorCode;
  const error: StepExecutionError = {
    message: input.message,
    error_type: errorType,
    retryable: input.retryable,
    context,
  };
  if (input.statusCode !== undefined) {
    if (!(Number.isInteger(input.statusCode) && input.statusCode >= 0 && input.statusCode <= 65535)) {
      throw new ValidationError([{ field: 'statusCode', message: 'must be an integer in 0..65535' }]);
    }
    error.status_code = input.statusCode;
  }
  if (input.backtrace !== undefined) error.backtrace = input.backtrace;
  const result: StepExecutionResult = {
    step_uuid: input.stepUuid,
    success: false,
    result: {},
    status: 'error',
    metadata,
    error,
  };
  if (input.retryAfterSeconds !== undefined) {
    if (!(Number.isFinite(input.retryAfterSeconds) && input.retryAfterSeconds >= 0)) {
      throw new ValidationError([{ field: 'retryAfterSeconds', message: 'must be a finite number >= 0' }]);
    }
    result.orchestration_metadata = {
      headers: {},
      backoff_hint: { backoff_type: 'ServerRequested', delay_seconds: input.retryAfterSeconds, context: {} },
      custom: {},
    };
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Parser

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when `value` is plain JSON (finite numbers, plain objects and arrays; no cycles within depth). */
function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  if (depth > 256) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJsonValue(item, depth + 1));
  if (isObject(value)) {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return false;
    return Object.values(value).every((item) => isJsonValue(item, depth + 1));
  }
  return false;
}

class FieldReader {
  readonly issues: FieldIssue[] = [];

  required<T>(obj: Record<string, unknown>, path: string, key: string, check: Check<T>): T | undefined {
    const value = obj[key];
    if (value === undefined) {
      this.issues.push({ field: `${path}${key}`, message: 'is required' });
      return undefined;
    }
    return this.check(value, `${path}${key}`, check);
  }

  optional<T>(obj: Record<string, unknown>, path: string, key: string, check: Check<T>): T | undefined {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    return this.check(value, `${path}${key}`, check);
  }

  private check<T>(value: unknown, field: string, check: Check<T>): T | undefined {
    if (check.is(value)) return value;
    this.issues.push({ field, message: `must be ${check.expected}` });
    return undefined;
  }
}

interface Check<T> {
  expected: string;
  is: (value: unknown) => value is T;
}

const STRING: Check<string> = { expected: 'a string', is: (v): v is string => typeof v === 'string' };
const BOOLEAN: Check<boolean> = { expected: 'a boolean', is: (v): v is boolean => typeof v === 'boolean' };
const NON_NEGATIVE: Check<number> = {
  expected: 'a finite number >= 0',
  is: (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0,
};
const STATUS_CODE: Check<number> = {
  expected: 'an integer in 0..65535',
  is: (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535,
};
const JSON_VALUE: Check<JsonValue> = { expected: 'JSON', is: (v): v is JsonValue => isJsonValue(v) };
const JSON_OBJECT: Check<JsonObject> = {
  expected: 'a JSON object',
  is: (v): v is JsonObject => isObject(v) && isJsonValue(v),
};
const STRING_ARRAY: Check<string[]> = {
  expected: 'an array of strings',
  is: (v): v is string[] => Array.isArray(v) && v.every((item) => typeof item === 'string'),
};
const STRING_MAP: Check<Record<string, string>> = {
  expected: 'an object of strings',
  is: (v): v is Record<string, string> => isObject(v) && Object.values(v).every((s) => typeof s === 'string'),
};
const STATUS: Check<StepResultStatus> = {
  expected: `one of ${STEP_RESULT_STATUSES.join(', ')}`,
  is: (v): v is StepResultStatus => STEP_RESULT_STATUSES.some((status) => status === v),
};
const BACKOFF_TYPE: Check<BackoffHintType> = {
  expected: `one of ${BACKOFF_HINT_TYPES.join(', ')}`,
  is: (v): v is BackoffHintType => BACKOFF_HINT_TYPES.some((type) => type === v),
};
const OBJECT: Check<Record<string, unknown>> = { expected: 'an object', is: isObject };

/**
 * Validates an unknown value (e.g. `workflow_steps.results` read back) as a `StepExecutionResult`.
 * Required: `step_uuid`, `success`, `result`, `status`, `metadata.{execution_time_ms, retryable,
 * completed_at}`, and `error.{message, retryable}` when `error` is present. `metadata.custom`,
 * `metadata.context` and `error.context` may be absent (they are documented as possibly empty maps).
 * Every problem is listed in the thrown `ValidationError`.
 */
export function parseStepExecutionResult(value: unknown): StepExecutionResult {
  const reader = new FieldReader();
  if (!isObject(value)) {
    throw new ValidationError([{ field: '(root)', message: 'must be an object' }]);
  }
  const stepUuid = reader.required(value, '', 'step_uuid', STRING);
  const success = reader.required(value, '', 'success', BOOLEAN);
  const result = reader.required(value, '', 'result', JSON_VALUE);
  const status = reader.required(value, '', 'status', STATUS);
  const rawMetadata = reader.required(value, '', 'metadata', OBJECT);
  let metadata: StepExecutionMetadata | undefined;
  if (rawMetadata !== undefined) {
    const m = 'metadata.';
    const executionTimeMs = reader.required(rawMetadata, m, 'execution_time_ms', NON_NEGATIVE);
    const retryable = reader.required(rawMetadata, m, 'retryable', BOOLEAN);
    const completedAt = reader.required(rawMetadata, m, 'completed_at', STRING);
    const custom = reader.optional(rawMetadata, m, 'custom', JSON_OBJECT) ?? {};
    const context = reader.optional(rawMetadata, m, 'context', JSON_OBJECT) ?? {};
    if (executionTimeMs !== undefined && retryable !== undefined && completedAt !== undefined) {
      metadata = {
        execution_time_ms: executionTimeMs,
        retryable,
        completed_at: completedAt,
        custom,
        context,
      };
      for (const key of [
        'handler_version',
        'started_at',
        'worker_id',
        'worker_hostname',
        'error_code',
        'error_type',
      ] as const) {
        const optional = reader.optional(rawMetadata, m, key, STRING);
        if (optional !== undefined) metadata[key] = optional;
      }
    }
  }
  let error: StepExecutionError | undefined;
  const rawError = reader.optional(value, '', 'error', OBJECT);
  if (rawError !== undefined) {
    const e = 'error.';
    const message = reader.required(rawError, e, 'message', STRING);
    const retryable = reader.required(rawError, e, 'retryable', BOOLEAN);
    const context = reader.optional(rawError, e, 'context', JSON_OBJECT) ?? {};
    const errorType = reader.optional(rawError, e, 'error_type', STRING);
    const backtrace = reader.optional(rawError, e, 'backtrace', STRING_ARRAY);
    const statusCode = reader.optional(rawError, e, 'status_code', STATUS_CODE);
    if (message !== undefined && retryable !== undefined) {
      error = { message, retryable, context };
      if (errorType !== undefined) error.error_type = errorType;
      if (backtrace !== undefined) error.backtrace = backtrace;
      if (statusCode !== undefined) error.status_code = statusCode;
    }
  }
  let orchestration: OrchestrationMetadata | undefined;
  const rawOrchestration = reader.optional(value, '', 'orchestration_metadata', OBJECT);
  if (rawOrchestration !== undefined) {
    const o = 'orchestration_metadata.';
    orchestration = {
      headers: reader.optional(rawOrchestration, o, 'headers', STRING_MAP) ?? {},
      custom: reader.optional(rawOrchestration, o, 'custom', JSON_OBJECT) ?? {},
    };
    const errorContext = reader.optional(rawOrchestration, o, 'error_context', STRING);
    if (errorContext !== undefined) orchestration.error_context = errorContext;
    const rawHint = reader.optional(rawOrchestration, o, 'backoff_hint', OBJECT);
    if (rawHint !== undefined) {
      const h = `${o}backoff_hint.`;
      const backoffType = reader.required(rawHint, h, 'backoff_type', BACKOFF_TYPE);
      const delaySeconds = reader.required(rawHint, h, 'delay_seconds', NON_NEGATIVE);
      const hintContext = reader.optional(rawHint, h, 'context', JSON_OBJECT);
      if (backoffType !== undefined && delaySeconds !== undefined) {
        orchestration.backoff_hint = { backoff_type: backoffType, delay_seconds: delaySeconds };
        if (hintContext !== undefined) orchestration.backoff_hint.context = hintContext;
      }
    }
  }
  if (
    reader.issues.length > 0 ||
    stepUuid === undefined ||
    success === undefined ||
    result === undefined ||
    status === undefined ||
    metadata === undefined
  ) {
    throw new ValidationError(reader.issues);
  }
  const parsed: StepExecutionResult = { step_uuid: stepUuid, success, result, status, metadata };
  if (error !== undefined) parsed.error = error;
  if (orchestration !== undefined) parsed.orchestration_metadata = orchestration;
  return parsed;
}

/**
 * Converts whatever a handler produced into JSON the way storing it as JSONB would (`toJSON`, dropped
 * functions/undefined, non-finite numbers → null). `undefined` becomes `{}`. Throws (TypeError) for
 * values JSON cannot represent at all: cycles, BigInt.
 */
export function toJsonValue(value: unknown): JsonValue {
  if (value === undefined) return {};
  if (isJsonValue(value)) return value;
  const text = JSON.stringify(value);
  if (text === undefined) return {};
  const parsed: unknown = JSON.parse(text);
  if (!isJsonValue(parsed)) throw new TypeError('handler result is not JSON');
  return parsed;
}
