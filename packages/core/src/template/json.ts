/** Turning parsed YAML (or JSON) into checked JSON values, and narrowing them. */
import type { JsonObject, JsonValue } from './model.ts';

/** Deeper documents are refused (AUDIT S-9); real templates nest a dozen levels at most. */
const MAX_JSON_DEPTH = 64;

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function escapePointer(key: string | number): string {
  return String(key).replaceAll('~', '~0').replaceAll('/', '~1');
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A JSON copy of `value`. Values JSON cannot hold (non-finite numbers, dates, binary, maps, …) and
 * nesting deeper than MAX_JSON_DEPTH are reported in `problems` (JSON pointer + message) and replaced
 * by null, so the caller can go on collecting problems.
 */
export function toJson(value: unknown, problems: { path: string; message: string }[], path = ''): JsonValue {
  const convert = (current: unknown, at: string, depth: number): JsonValue => {
    if (current === null || typeof current === 'string' || typeof current === 'boolean') return current;
    if (typeof current === 'number') {
      if (Number.isFinite(current)) return current;
      problems.push({ path: at, message: `${String(current)} is not a JSON number` });
      return null;
    }
    if (depth >= MAX_JSON_DEPTH) {
      problems.push({ path: at, message: `nested more than ${MAX_JSON_DEPTH} levels deep` });
      return null;
    }
    if (Array.isArray(current)) {
      return current.map((item: unknown, index) => convert(item, `${at}/${index}`, depth + 1));
    }
    if (typeof current === 'object' && isPlainObject(current)) {
      const out: JsonObject = {};
      for (const [key, child] of Object.entries(current)) {
        // defineProperty: a `__proto__` key stays an ordinary key.
        Object.defineProperty(out, key, {
          value: convert(child, `${at}/${escapePointer(key)}`, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    const kind = typeof current === 'object' ? (current.constructor?.name ?? 'object') : typeof current;
    problems.push({ path: at, message: `a ${kind} value is not JSON` });
    return null;
  };
  return convert(value, path, 0);
}
