/**
 * The error contract of the REST API (B §7, AUDIT S-2, O-4): every error is
 * `{"error":{"code","message"}}` with its status. Client errors say what was wrong (which field);
 * server errors carry a fixed message and the request id, and their detail goes to the log only.
 */
import { TaskerError } from '@tasker/core';

interface ErrorBody {
  error: { code: string; message: string; retry_after_seconds?: number };
}

/**
 * An error a route raises on purpose, with its status and code. One with `retryAfterSeconds` is
 * load shedding (backpressure, open circuit breaker): its answer carries `Retry-After` and
 * `retry_after_seconds`, and it is not logged as a server failure.
 */
export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly retryAfterSeconds: number | undefined;
  constructor(
    statusCode: number,
    code: string,
    message: string,
    options?: ErrorOptions & { retryAfterSeconds?: number },
  ) {
    super(message, options);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export interface MappedError {
  status: number;
  body: ErrorBody;
  /** A server error: logged with its detail, never shown. */
  server: boolean;
}

/** Status and code of the domain errors (`@tasker/core`) that are the client's doing. */
const DOMAIN_ERRORS: Record<string, { status: number; code: string }> = {
  // The engine's validation (declared constraints, JSON limits, namespace rule): 400, like the
  // route's own schema validation, so a client sees one status for every invalid request.
  VALIDATION_ERROR: { status: 400, code: 'BAD_REQUEST' },
  NOT_FOUND: { status: 404, code: 'NOT_FOUND' },
  CONFLICT: { status: 409, code: 'CONFLICT' },
};

/** Fastify's own client errors, by their `code`. */
const FRAMEWORK_ERRORS: Record<string, { status: number; code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BAD_REQUEST' },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: 'Request body is too large',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'JSON_ERROR',
    message: 'Invalid JSON format: empty body',
  },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'JSON_ERROR', message: 'Invalid JSON format' },
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_REQUEST', message: 'Invalid URL' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG', message: 'A path parameter is too long' },
};

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** `body/name must NOT have fewer than 1 characters`; names the field, never echoes values. */
function describeValidation(context: string, issues: readonly ValidationIssue[]): string {
  const issue = issues[0];
  if (issue === undefined) return `${context} is invalid`;
  const path = (issue.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  let where = path === '' ? context : `${context}.${path}`;
  const params = issue.params ?? {};
  if (issue.keyword === 'required' && typeof params.missingProperty === 'string') {
    return `${where}.${params.missingProperty} is required`;
  }
  if (issue.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    where = `${where}.${params.additionalProperty}`;
    return `${where} is not a known field`;
  }
  if (issue.keyword === 'pattern') return `${where} has an invalid format`;
  return `${where} ${issue.message ?? 'is invalid'}`;
}

/**
 * Maps anything a route, a hook or Fastify threw to a status and an envelope. Unknown errors,
 * including every database error, are 500 with a fixed message naming the request id.
 */
export function mapError(error: unknown, requestId: string): MappedError {
  const client = (status: number, code: string, message: string): MappedError => ({
    status,
    body: { error: { code, message } },
    server: false,
  });
  if (error instanceof ApiError) {
    if (error.statusCode < 500) return client(error.statusCode, error.code, error.message);
    const message = `${error.message} (request id ${requestId})`;
    if (error.retryAfterSeconds !== undefined) {
      return {
        status: error.statusCode,
        body: { error: { code: error.code, message, retry_after_seconds: error.retryAfterSeconds } },
        server: false,
      };
    }
    return { status: error.statusCode, body: { error: { code: error.code, message } }, server: true };
  }
  if (error instanceof TaskerError) {
    const known = DOMAIN_ERRORS[error.code];
    if (known !== undefined) return client(known.status, known.code, error.message);
  } else if (isObject(error)) {
    if (Array.isArray(error.validation)) {
      const context = typeof error.validationContext === 'string' ? error.validationContext : 'request';
      const issues = error.validation as ValidationIssue[];
      const code =
        context === 'params' && issues[0]?.keyword === 'pattern' && /uuid/.test(issues[0]?.instancePath ?? '')
          ? 'INVALID_UUID'
          : 'BAD_REQUEST';
      return client(400, code, describeValidation(context === 'querystring' ? 'query' : context, issues));
    }
    const framework = typeof error.code === 'string' ? FRAMEWORK_ERRORS[error.code] : undefined;
    if (framework !== undefined) {
      const message =
        framework.message ?? (typeof error.message === 'string' ? error.message : 'Bad request');
      return client(framework.status, framework.code, message);
    }
    // other Fastify client errors: their messages are fixed texts
    const fastifyCode = typeof error.code === 'string' && error.code.startsWith('FST_');
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (fastifyCode && status >= 400 && status < 500) {
      return client(status, 'BAD_REQUEST', typeof error.message === 'string' ? error.message : 'Bad request');
    }
  }
  const database = isObject(error) && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code);
  return {
    status: 500,
    body: {
      error: database
        ? { code: 'DATABASE_ERROR', message: `Database operation failed (request id ${requestId})` }
        : { code: 'INTERNAL_ERROR', message: `Internal server error (request id ${requestId})` },
    },
    server: true,
  };
}
