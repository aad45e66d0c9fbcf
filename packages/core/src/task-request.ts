import { validateNamespace } from '@tasker/pgmq';
import { type FieldIssue, ValidationError } from './errors.ts';
import { checkJsonLimits, JSON_LIMITS, type JsonLimits } from './json-limits.ts';
import type { JsonObject } from './template/model.ts';

/** A request to create a task (reference B §2.3.1), after validation. */
export interface TaskRequest {
  name: string;
  namespace: string;
  version: string;
  /** The task input, stored exactly as given (after the template's default_context is merged under it). */
  context: JsonObject;
  initiator: string;
  source_system: string;
  reason: string;
  tags: string[];
  requested_at: Date | null;
  options: JsonObject | null;
  /** −100..100; 0 when not given. */
  priority: number;
  correlation_id: string | null;
  parent_correlation_id: string | null;
  idempotency_key: string | null;
}

export const TASK_REQUEST_DEFAULTS = {
  initiator: 'system',
  source_system: 'tasker',
  reason: 'Task requested',
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN_FIELDS = new Set([
  'name',
  'namespace',
  'version',
  'context',
  'initiator',
  'source_system',
  'reason',
  'tags',
  'requested_at',
  'options',
  'priority',
  'correlation_id',
  'parent_correlation_id',
  'idempotency_key',
]);

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 timestamp with a zone, whose calendar fields are real (no 2024-02-30); else null. */
function parseTimestamp(text: string): Date | null {
  const match = RFC3339.exec(text);
  if (!match) return null;
  const [, year, month, day, hour, minute, second] = match.map(Number);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return null;
  const calendar = new Date(
    Date.UTC(year ?? 0, (month ?? 1) - 1, day ?? 0, hour ?? 0, minute ?? 0, second ?? 0),
  );
  const sameFields =
    calendar.getUTCFullYear() === year &&
    calendar.getUTCMonth() + 1 === month &&
    calendar.getUTCDate() === day &&
    calendar.getUTCHours() === hour &&
    calendar.getUTCMinutes() === minute;
  return sameFields ? date : null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates an untrusted task request: every declared constraint (lengths, ranges, formats) and the
 * JSON limits on context, tags and options. Reports every problem at once as a `ValidationError`
 * naming the fields; never changes the values it accepts.
 */
export function validateTaskRequest(input: unknown, limits: JsonLimits = JSON_LIMITS): TaskRequest {
  const issues: FieldIssue[] = [];
  if (!isPlainObject(input)) throw new ValidationError([{ field: 'body', message: 'must be a JSON object' }]);

  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) issues.push({ field: key, message: 'is not a task request field' });
  }

  const text = (field: string, min: number, max: number, options: { fallback?: string } = {}): string => {
    const value = input[field];
    if (value === undefined || value === null) {
      if (options.fallback !== undefined) return options.fallback;
      issues.push({ field, message: 'is required' });
      return '';
    }
    if (typeof value !== 'string') {
      issues.push({ field, message: 'must be a string' });
      return '';
    }
    if (value.length < min || value.length > max) {
      issues.push({ field, message: `must be ${min}–${max} characters, got ${value.length}` });
    } else if (value.trim().length === 0) {
      issues.push({ field, message: 'must not be blank' });
    } else if (value.includes('\u0000') || !value.isWellFormed()) {
      // PostgreSQL text cannot hold NUL or lone surrogates
      issues.push({ field, message: 'must be well-formed Unicode without the NUL character' });
    }
    return value;
  };
  const uuid = (field: string): string | null => {
    const value = input[field];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || !UUID.test(value)) {
      issues.push({ field, message: 'must be a UUID' });
      return null;
    }
    return value.toLowerCase();
  };

  const name = text('name', 1, 255);
  const namespace = text('namespace', 1, 255);
  if (namespace !== '' && issues.every((issue) => issue.field !== 'namespace')) {
    try {
      validateNamespace(namespace);
    } catch (error) {
      issues.push({ field: 'namespace', message: error instanceof Error ? error.message : String(error) });
    }
  }
  const version = text('version', 1, 50);
  const initiator = text('initiator', 1, 255, { fallback: TASK_REQUEST_DEFAULTS.initiator });
  const sourceSystem = text('source_system', 1, 255, { fallback: TASK_REQUEST_DEFAULTS.source_system });
  const reason = text('reason', 1, 500, { fallback: TASK_REQUEST_DEFAULTS.reason });

  let context: JsonObject = {};
  if (input.context === undefined) {
    issues.push({ field: 'context', message: 'is required (a JSON object)' });
  } else if (!isPlainObject(input.context)) {
    issues.push({ field: 'context', message: 'must be a JSON object' });
  } else {
    issues.push(...checkJsonLimits(input.context, 'context', limits));
    context = input.context as JsonObject;
  }

  let tags: string[] = [];
  if (input.tags !== undefined && input.tags !== null) {
    if (!Array.isArray(input.tags) || !input.tags.every((tag) => typeof tag === 'string')) {
      issues.push({ field: 'tags', message: 'must be an array of strings' });
    } else {
      issues.push(...checkJsonLimits(input.tags, 'tags', limits));
      tags = input.tags;
    }
  }

  let options: JsonObject | null = null;
  if (input.options !== undefined && input.options !== null) {
    if (!isPlainObject(input.options)) issues.push({ field: 'options', message: 'must be a JSON object' });
    else {
      issues.push(...checkJsonLimits(input.options, 'options', limits));
      options = input.options as JsonObject;
    }
  }

  let priority = 0;
  if (input.priority !== undefined && input.priority !== null) {
    if (typeof input.priority !== 'number' || !Number.isInteger(input.priority)) {
      issues.push({ field: 'priority', message: 'must be an integer' });
    } else if (input.priority < -100 || input.priority > 100) {
      issues.push({ field: 'priority', message: `must be between -100 and 100, got ${input.priority}` });
    } else priority = input.priority;
  }

  let requestedAt: Date | null = null;
  if (input.requested_at !== undefined && input.requested_at !== null) {
    // An invalid timestamp is an error, never 1970 or a guess (AUDIT S-11).
    const date = typeof input.requested_at === 'string' ? parseTimestamp(input.requested_at) : null;
    if (date === null) {
      issues.push({ field: 'requested_at', message: 'must be an RFC 3339 timestamp with a time zone' });
    } else requestedAt = date;
  }

  let idempotencyKey: string | null = null;
  if (input.idempotency_key !== undefined && input.idempotency_key !== null) {
    idempotencyKey = text('idempotency_key', 1, 255);
  }

  const correlationId = uuid('correlation_id');
  const parentCorrelationId = uuid('parent_correlation_id');

  if (issues.length > 0) throw new ValidationError(issues);
  return {
    name,
    namespace,
    version,
    context,
    initiator,
    source_system: sourceSystem,
    reason,
    tags,
    requested_at: requestedAt,
    options,
    priority,
    correlation_id: correlationId,
    parent_correlation_id: parentCorrelationId,
    idempotency_key: idempotencyKey,
  };
}
