import type { FieldIssue } from './errors.ts';

/** Limits on caller-supplied JSON such as task context and tags (AUDIT: strengths we keep). */
export interface JsonLimits {
  /** Serialized size in bytes of UTF-8 JSON text. */
  maxBytes: number;
  /** Nesting depth: a scalar is depth 0, `{}` and `[]` depth 1. */
  maxDepth: number;
  /** Keys of one object, and items of one array. */
  maxEntries: number;
  /** Characters of one string value or object key. */
  maxStringLength: number;
}

export const JSON_LIMITS: JsonLimits = {
  maxBytes: 1024 * 1024,
  maxDepth: 10,
  maxEntries: 1000,
  maxStringLength: 10_000,
};

/**
 * Checks `value` against the limits without changing it; returns every problem found (the first per
 * kind and path is enough for a caller to fix the input). Values that are not JSON (functions,
 * undefined, non-finite numbers, bigints) are problems too.
 */
export function checkJsonLimits(
  value: unknown,
  field: string,
  limits: JsonLimits = JSON_LIMITS,
): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const visit = (node: unknown, path: string, depth: number): void => {
    if (issues.length >= 20) return;
    if (node === null || typeof node === 'boolean') return;
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) issues.push({ field: path, message: 'numbers must be finite' });
      return;
    }
    if (typeof node === 'string') {
      if (node.includes('\u0000'))
        issues.push({ field: path, message: 'strings must not contain the NUL character' });
      // PostgreSQL's jsonb refuses lone UTF-16 surrogates, which JSON text and JS strings allow
      if (!node.isWellFormed()) issues.push({ field: path, message: 'strings must be well-formed Unicode' });
      if (node.length > limits.maxStringLength) {
        issues.push({
          field: path,
          message: `string is ${node.length} characters, the limit is ${limits.maxStringLength}`,
        });
      }
      return;
    }
    if (depth + 1 > limits.maxDepth) {
      issues.push({ field: path, message: `nesting deeper than ${limits.maxDepth} levels` });
      return;
    }
    if (Array.isArray(node)) {
      if (node.length > limits.maxEntries) {
        issues.push({
          field: path,
          message: `array has ${node.length} items, the limit is ${limits.maxEntries}`,
        });
        return;
      }
      for (const [index, item] of node.entries()) visit(item, `${path}[${index}]`, depth + 1);
      return;
    }
    if (typeof node === 'object' && Object.getPrototypeOf(node) === Object.prototype) {
      const keys = Object.keys(node);
      if (keys.length > limits.maxEntries) {
        issues.push({
          field: path,
          message: `object has ${keys.length} keys, the limit is ${limits.maxEntries}`,
        });
        return;
      }
      for (const key of keys) {
        if (key.includes('\u0000') || !key.isWellFormed()) {
          issues.push({ field: path, message: 'keys must be well-formed Unicode without the NUL character' });
          continue;
        }
        if (key.length > limits.maxStringLength) {
          issues.push({
            field: path,
            message: `a key is ${key.length} characters, the limit is ${limits.maxStringLength}`,
          });
          continue;
        }
        visit((node as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
      }
      return;
    }
    issues.push({ field: path, message: `${typeof node} is not a JSON value` });
  };
  visit(value, field, 0);
  if (issues.length === 0) {
    const bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
    if (bytes > limits.maxBytes)
      issues.push({ field, message: `is ${bytes} bytes, the limit is ${limits.maxBytes}` });
  }
  return issues;
}
