import { createHash, randomUUID } from 'node:crypto';
import { ValidationError } from './errors.ts';
import type { IdentityStrategy } from './template/model.ts';

/** JSON with object keys sorted at every level and no whitespace: equal for equal content. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The identity hash stored in `tasks.identity_hash` (unique):
 * - an idempotency key, when given, always decides: hash(template, key);
 * - strict: hash(template, canonical resolved context) — same template and context is a duplicate;
 * - caller_provided: the key is required;
 * - always_unique: a fresh value, never a duplicate.
 */
export function computeIdentityHash(input: {
  namedTaskUuid: string;
  strategy: IdentityStrategy;
  context: unknown;
  idempotencyKey?: string | null | undefined;
}): string {
  const { namedTaskUuid, strategy, context, idempotencyKey } = input;
  if (idempotencyKey !== undefined && idempotencyKey !== null) {
    return sha256(`${namedTaskUuid}:key:${idempotencyKey}`);
  }
  switch (strategy) {
    case 'strict':
      return sha256(`${namedTaskUuid}:context:${canonicalJson(context)}`);
    case 'caller_provided':
      throw new ValidationError([
        {
          field: 'idempotency_key',
          message: 'is required: this template identifies tasks by a caller-provided key',
        },
      ]);
    case 'always_unique':
      return `unique:${randomUUID()}`;
  }
}
