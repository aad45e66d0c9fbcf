/**
 * The template JSON Schema (`packages/core/schemas/task-template.schema.json`): compiled once with Ajv
 * (all errors), its errors turned into readable issues, and a walk that finds the keys the schema does
 * not describe (tolerated, reported as warnings).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { escapePointer, isJsonObject, toJson } from './json.ts';
import type { JsonObject, JsonValue } from './model.ts';

/** A problem located by a JSON pointer; the loader adds the source, step and line. */
export interface RawIssue {
  path: string;
  message: string;
  step?: string;
}

const SCHEMA_URL = new URL('../../schemas/task-template.schema.json', import.meta.url);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readSchema(): JsonObject {
  const parsed = toJson(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')), []);
  if (!isJsonObject(parsed)) throw new Error(`template schema ${SCHEMA_URL.pathname} is not a JSON object`);
  return parsed;
}

/** The parsed JSON Schema document. */
export const TEMPLATE_SCHEMA: JsonObject = readSchema();

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
    compiled = ajv.compile(TEMPLATE_SCHEMA);
  }
  return compiled;
}

/** Paths whose schema errors are reported by a semantic check instead (one validator per rule). */
const DEFERRED_PATHS = new Set(['/namespace_name']);

/** Validates a parsed template document against the JSON Schema; every error, as issues. */
export function schemaIssues(document: JsonValue): RawIssue[] {
  const validate = validator();
  if (validate(document)) return [];
  const issues: RawIssue[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    const issue = describeError(error);
    if (error.keyword !== 'required' && DEFERRED_PATHS.has(issue.path)) continue;
    const key = `${issue.path}\u0000${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

/** `"text"`, `12`, `null`, `an object`, `an array`. */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

function describeError(error: ErrorObject): RawIssue {
  const path = error.instancePath;
  const params: Record<string, unknown> = error.params;
  const got = `(got ${describeValue(error.data)})`;
  switch (error.keyword) {
    case 'required':
      return { path: `${path}/${escapePointer(String(params.missingProperty))}`, message: 'is required' };
    case 'type': {
      const types = String(params.type).split(',').join(' or ');
      return { path, message: `must be ${types} ${got}` };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, message: `must be ${String(params.comparison)} ${String(params.limit)} ${got}` };
    case 'minLength':
      return { path, message: `must be at least ${String(params.limit)} characters long ${got}` };
    case 'maxLength':
      return { path, message: `must be at most ${String(params.limit)} characters long ${got}` };
    case 'minItems':
      return { path, message: `must have at least ${String(params.limit)} item(s)` };
    case 'uniqueItems':
      return {
        path,
        message: `must not contain duplicates (items ${String(params.j)} and ${String(params.i)} are equal)`,
      };
    case 'enum': {
      const allowed = Array.isArray(params.allowedValues)
        ? params.allowedValues.filter((value) => value !== null).join(', ')
        : '';
      return { path, message: `must be one of: ${allowed} ${got}` };
    }
    case 'pattern': {
      const parent: unknown = error.parentSchema;
      const meaning = isObject(parent) && typeof parent.description === 'string' ? parent.description : '';
      return {
        path,
        message: meaning
          ? `${describeValue(error.data)} is not valid: expected ${meaning}`
          : `${describeValue(error.data)} must match ${String(params.pattern)}`,
      };
    }
    default:
      return { path, message: `${error.message ?? 'is invalid'} ${got}` };
  }
}

function resolveRef(schema: JsonObject): JsonObject {
  let current = schema;
  for (let hops = 0; hops < 8 && typeof current.$ref === 'string'; hops++) {
    const name = /^#\/definitions\/([^/]+)$/.exec(current.$ref)?.[1];
    const definitions = TEMPLATE_SCHEMA.definitions;
    const target = name !== undefined && isJsonObject(definitions) ? definitions[name] : undefined;
    if (!isJsonObject(target)) return current;
    current = target;
  }
  return current;
}

/**
 * JSON pointers of the keys the schema does not describe. An object schema with `properties` and no
 * `additionalProperties` is closed for this purpose; `additionalProperties: true` marks an open object
 * (`metadata`); an object schema without `properties` (handler initialization, JSON Schemas, …) is opaque.
 */
export function unknownKeyPaths(document: JsonValue): string[] {
  const found: string[] = [];
  const walk = (schemaNode: JsonObject, value: JsonValue, path: string): void => {
    const schema = resolveRef(schemaNode);
    if (Array.isArray(value)) {
      const items = schema.items;
      if (isJsonObject(items)) {
        value.forEach((item, index) => {
          walk(items, item, `${path}/${index}`);
        });
      }
      return;
    }
    if (!isJsonObject(value)) return;
    const properties = schema.properties;
    const additional = schema.additionalProperties;
    for (const [key, child] of Object.entries(value)) {
      const childPath = `${path}/${escapePointer(key)}`;
      const known = isJsonObject(properties) && Object.hasOwn(properties, key) ? properties[key] : undefined;
      if (isJsonObject(known)) walk(known, child, childPath);
      else if (isJsonObject(additional)) walk(additional, child, childPath);
      else if (isJsonObject(properties) && additional !== true) found.push(childPath);
    }
  };
  walk(TEMPLATE_SCHEMA, document, '');
  return found;
}
