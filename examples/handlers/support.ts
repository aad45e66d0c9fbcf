/**
 * Small helpers shared by the example handlers of every acceptance workflow (#1–#22): reading typed
 * values out of task context / dependency results, and deterministic ids.
 *
 * Bad input is a `PermanentError` with `error_type = validation_error`: the task context never
 * changes between attempts, so retrying cannot fix it.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import { PermanentError } from '@tasker/worker';

const VALIDATION = 'validation_error';

export function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function invalid(message: string, metadata: JsonObject = {}): PermanentError {
  return new PermanentError(message, { errorType: VALIDATION, metadata });
}

export function requireObject(value: JsonValue | undefined, field: string): JsonObject {
  if (isObject(value)) return value;
  throw invalid(`${field} must be an object`, { field });
}

export function requireArray(value: JsonValue | undefined, field: string): JsonValue[] {
  if (Array.isArray(value)) return value;
  throw invalid(`${field} must be an array`, { field });
}

export function requireNumber(value: JsonValue | undefined, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  throw invalid(`${field} must be a number`, { field });
}

export function requireString(value: JsonValue | undefined, field: string): string {
  if (typeof value === 'string' && value !== '') return value;
  throw invalid(`${field} must be a non-empty string`, { field });
}

/** A number from `handler.initialization`, or the reference's constant when the template omits it. */
export function configNumber(value: JsonValue | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

export function optionalString(value: JsonValue | undefined, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/**
 * `prefix_` + 12 hex digits of an FNV-1a hash of `parts`. Handlers derive ids from the task/step uuids
 * instead of random numbers so a retried or re-run step reports the same ids (idempotent side effects)
 * and tests can predict them.
 */
export function deterministicId(prefix: string, ...parts: Array<string | number>): string {
  let hash = 0xcbf29ce484222325n;
  for (const char of parts.join('|')) {
    hash ^= BigInt(char.codePointAt(0) ?? 0);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `${prefix}_${hash.toString(16).padStart(16, '0').slice(0, 12)}`;
}

/** Money is computed in integer cents so sums like 29.99 × 2 + 49.99 come out exact. */
export function toCents(amount: number): number {
  return Math.round(amount * 100);
}

export function fromCents(cents: number): number {
  return cents / 100;
}
