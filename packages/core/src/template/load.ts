/**
 * Loading task templates: YAML text → parsed document → JSON Schema check (Ajv, all errors) →
 * normalization (aliases, defaults, environment overrides) → semantic checks. All problems of one
 * source are reported together in one `TemplateValidationError`; when loading many files, one bad
 * file does not hide the others.
 */
import { glob, readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { type Document, isNode, LineCounter, parseAllDocuments } from 'yaml';
import { type TemplateIssue, TemplateValidationError } from '../errors.ts';
import { isJsonObject, toJson } from './json.ts';
import { type JsonValue, type TaskTemplate, templateKey } from './model.ts';
import { normalizeTemplate } from './normalize.ts';
import { type RawIssue, schemaIssues, unknownKeyPaths } from './schema.ts';
import { checkTemplate } from './validate.ts';

/** Larger template sources are refused (AUDIT S-9). */
export const DEFAULT_MAX_TEMPLATE_BYTES = 1024 * 1024;
/** YAML aliases expanded per document at most (guards against alias bombs). */
const MAX_ALIAS_COUNT = 100;
const TEMPLATE_EXTENSIONS = new Set(['.yaml', '.yml']);

export interface ParseTemplateOptions {
  /** Names the text in issues: a file path at start-up, a logical name elsewhere. */
  source?: string;
  /**
   * Environment whose `environments.<name>` overrides are applied (normally `TASKER_ENV`).
   * Undefined: no overrides are applied. Overrides of every environment are validated either way.
   */
  environment?: string;
  /** Default DEFAULT_MAX_TEMPLATE_BYTES. */
  maxBytes?: number;
  /** Receives each warning (unknown keys, legal but suspicious structure). */
  onWarning?: (warning: TemplateIssue) => void;
}

export interface TemplateCheckResult {
  /** The normalized template, or null when there is any error. */
  template: TaskTemplate | null;
  errors: TemplateIssue[];
  warnings: TemplateIssue[];
}

const DEFAULT_SOURCE = '<template>';

function unescapePointer(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** The 1-based line of the node at `pointer`, or of its nearest ancestor that exists. */
function lineOf(document: Document, counter: LineCounter, pointer: string): number | undefined {
  const keys = pointer === '' ? [] : pointer.slice(1).split('/').map(unescapePointer);
  for (;;) {
    const node: unknown = keys.length === 0 ? document.contents : document.getIn(keys, true);
    if (isNode(node) && node.range) return counter.linePos(node.range[0]).line;
    if (keys.length === 0) return undefined;
    keys.pop();
  }
}

/** The step an issue path points into: `/steps/N/…` or an environment override `/environments/E/steps/N/…`. */
function stepAt(document: JsonValue, pointer: string): string | undefined {
  const segments = pointer.split('/').map(unescapePointer);
  let list: JsonValue | undefined;
  let index: string | undefined;
  if (segments[1] === 'steps') {
    list = isJsonObject(document) ? document.steps : undefined;
    index = segments[2];
  } else if (segments[1] === 'environments' && segments[3] === 'steps') {
    const environments = isJsonObject(document) ? document.environments : undefined;
    const environment = isJsonObject(environments) ? environments[segments[2] ?? ''] : undefined;
    list = isJsonObject(environment) ? environment.steps : undefined;
    index = segments[4];
  }
  if (!Array.isArray(list) || index === undefined || !/^\d+$/.test(index)) return undefined;
  const step = list[Number(index)];
  return isJsonObject(step) && typeof step.name === 'string' && step.name !== '' ? step.name : undefined;
}

/** Issues in file order (stable; issues without a line first). */
function byLine(issues: TemplateIssue[]): TemplateIssue[] {
  return issues.toSorted((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function isUnder(path: string, parent: string): boolean {
  return path === parent || path.startsWith(`${parent}/`);
}

/**
 * Checks template text and returns the normalized template with every error and warning; never
 * throws for a bad template. `parseTemplate` is the throwing form.
 */
export function checkTemplateText(text: string, options: ParseTemplateOptions = {}): TemplateCheckResult {
  const source = options.source ?? DEFAULT_SOURCE;
  const errors: TemplateIssue[] = [];
  const warnings: TemplateIssue[] = [];
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_TEMPLATE_BYTES;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    errors.push({ source, path: '', message: `the template is ${bytes} bytes, the limit is ${maxBytes}` });
    return { template: null, errors, warnings };
  }

  const counter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  const yamlDocuments = Array.isArray(documents) ? documents : [];
  const [yamlDocument, ...extra] = yamlDocuments;
  if (yamlDocument === undefined || yamlDocument.contents === null) {
    errors.push({ source, path: '', message: 'the template is empty' });
    return { template: null, errors, warnings };
  }
  for (const problem of [...yamlDocuments.flatMap((document) => document.errors)]) {
    const line = problem.linePos?.[0].line;
    errors.push({
      source,
      path: '',
      message: `YAML: ${problem.message.split('\n')[0] ?? problem.code}`,
      ...(line === undefined ? {} : { line }),
    });
  }
  for (const problem of yamlDocument.warnings) {
    const line = problem.linePos?.[0].line;
    warnings.push({
      source,
      path: '',
      message: `YAML: ${problem.message.split('\n')[0] ?? problem.code}`,
      ...(line === undefined ? {} : { line }),
    });
  }
  if (extra.length > 0) {
    const line = lineOf(extra[0] ?? yamlDocument, counter, '');
    errors.push({
      source,
      path: '',
      message: `the file holds ${yamlDocuments.length} YAML documents; put one template per file`,
      ...(line === undefined ? {} : { line }),
    });
  }
  if (errors.length > 0) return { template: null, errors, warnings };

  let parsed: unknown;
  try {
    parsed = yamlDocument.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    errors.push({ source, path: '', message: `YAML: ${message}` });
    return { template: null, errors, warnings };
  }

  const locate = (raw: RawIssue, document: JsonValue): TemplateIssue => {
    const step = raw.step ?? stepAt(document, raw.path);
    const line = lineOf(yamlDocument, counter, raw.path);
    return {
      source,
      ...(step === undefined ? {} : { step }),
      path: raw.path,
      message: raw.message,
      ...(line === undefined ? {} : { line }),
    };
  };

  const result = checkTemplateValue(parsed, options.environment);
  errors.push(...byLine(result.errors.map((raw) => locate(raw, result.document))));
  warnings.push(...byLine(result.warnings.map((raw) => locate(raw, result.document))));
  return { template: errors.length === 0 ? result.template : null, errors, warnings };
}

interface ValueCheck {
  document: JsonValue;
  template: TaskTemplate | null;
  errors: RawIssue[];
  warnings: RawIssue[];
}

/** The pipeline after parsing; `value` is a parsed template document (YAML or JSON). */
function checkTemplateValue(value: unknown, environment: string | undefined): ValueCheck {
  const conversion: RawIssue[] = [];
  const document = toJson(value, conversion);
  if (!isJsonObject(document)) {
    return {
      document,
      template: null,
      errors: [
        ...conversion,
        { path: '', message: 'a template must be a mapping with name, namespace_name, version and steps' },
      ],
      warnings: [],
    };
  }
  const structural = [...conversion, ...schemaIssues(document)];
  const warnings: RawIssue[] = unknownKeyPaths(document).map((path) => ({
    path,
    message: 'unknown key, ignored',
  }));
  const normalized = normalizeTemplate(document, environment);
  const errors = [...structural, ...normalized.issues];
  // A step that is not a mapping breaks the alignment of steps and paths: skip the semantic checks.
  if (!structural.some((issue) => issue.path === '/steps' || /^\/steps\/\d+$/.test(issue.path))) {
    const semantic = checkTemplate(normalized.template);
    errors.push(
      ...semantic.errors.filter((issue) => !structural.some((seen) => isUnder(issue.path, seen.path))),
    );
    warnings.push(...semantic.warnings);
  }
  return { document, template: errors.length === 0 ? normalized.template : null, errors, warnings };
}

/** Parses and validates template YAML; throws `TemplateValidationError` listing every problem. */
export function parseTemplate(text: string, options: ParseTemplateOptions = {}): TaskTemplate {
  const result = checkTemplateText(text, options);
  for (const warning of result.warnings) options.onWarning?.(warning);
  if (result.template === null)
    throw new TemplateValidationError(options.source ?? DEFAULT_SOURCE, result.errors);
  return result.template;
}

/**
 * Validates an already parsed template document (e.g. JSON received by an API) the same way; throws
 * `TemplateValidationError`. Issues carry no line numbers.
 */
export function normalizeTemplateDocument(value: unknown, options: ParseTemplateOptions = {}): TaskTemplate {
  const source = options.source ?? DEFAULT_SOURCE;
  const result = checkTemplateValue(value, options.environment);
  const toIssue = (raw: RawIssue): TemplateIssue => {
    const step = raw.step ?? stepAt(result.document, raw.path);
    return { source, ...(step === undefined ? {} : { step }), path: raw.path, message: raw.message };
  };
  for (const warning of result.warnings) options.onWarning?.(toIssue(warning));
  if (result.template === null) throw new TemplateValidationError(source, result.errors.map(toIssue));
  return result.template;
}

async function readSource(path: string, maxBytes: number): Promise<string> {
  try {
    const info = await stat(path);
    if (!info.isFile())
      throw new TemplateValidationError(path, [{ source: path, path: '', message: 'not a file' }]);
    if (info.size > maxBytes) {
      throw new TemplateValidationError(path, [
        { source: path, path: '', message: `the file is ${info.size} bytes, the limit is ${maxBytes}` },
      ]);
    }
    return await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof TemplateValidationError) throw error;
    const code =
      typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unknown';
    throw new TemplateValidationError(
      path,
      [{ source: path, path: '', message: `cannot read the file (${code})` }],
      { cause: error },
    );
  }
}

/** Reads and parses one template file; `options.source` defaults to the path. */
export async function loadTemplateFile(
  path: string,
  options: ParseTemplateOptions = {},
): Promise<TaskTemplate> {
  const source = options.source ?? path;
  const text = await readSource(path, options.maxBytes ?? DEFAULT_MAX_TEMPLATE_BYTES);
  return parseTemplate(text, { ...options, source });
}

export interface LoadedTemplate {
  /** The file the template came from. */
  source: string;
  template: TaskTemplate;
  warnings: TemplateIssue[];
}

export interface LoadTemplatesResult {
  /** Valid templates, in file path order. */
  templates: LoadedTemplate[];
  /** One per file that could not be loaded, plus one per duplicate template identity. */
  errors: TemplateValidationError[];
}

export interface LoadTemplatesOptions extends Omit<ParseTemplateOptions, 'source'> {
  /** Base for relative paths and glob patterns; default `process.cwd()`. */
  cwd?: string;
}

const GLOB_CHARACTERS = /[*?[\]{}]/;

function isTemplateFile(path: string): boolean {
  return TEMPLATE_EXTENSIONS.has(extname(path).toLowerCase());
}

/** Files named by one search path; a path that names nothing is an error. */
async function filesFor(searchPath: string, cwd: string): Promise<string[]> {
  if (GLOB_CHARACTERS.test(searchPath)) {
    const files: string[] = [];
    for await (const match of glob(searchPath, { cwd, exclude: (name) => name === 'node_modules' })) {
      const path = resolve(cwd, match);
      if (isTemplateFile(path) && (await stat(path)).isFile()) files.push(path);
    }
    return files;
  }
  const path = resolve(cwd, searchPath);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new TemplateValidationError(
      searchPath,
      [{ source: searchPath, path: '', message: 'no such file or directory' }],
      { cause: error },
    );
  }
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && isTemplateFile(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((file) => !file.split(/[\\/]/).includes('node_modules'));
}

/**
 * Loads every template named by `searchPaths`: files, directories (searched recursively for `*.yaml`
 * and `*.yml`) and glob patterns (`node:fs/promises` glob; matches other than `*.yaml` / `*.yml` are
 * skipped). Each bad file becomes one error and the others still load. Two files declaring the same
 * (namespace_name, name, version) are an error for the later file (in path order); the first is kept.
 */
export async function loadTemplates(
  searchPaths: readonly string[],
  options: LoadTemplatesOptions = {},
): Promise<LoadTemplatesResult> {
  const cwd = options.cwd ?? process.cwd();
  const errors: TemplateValidationError[] = [];
  const files = new Set<string>();
  for (const searchPath of searchPaths) {
    try {
      for (const file of await filesFor(searchPath, cwd)) files.add(file);
    } catch (error) {
      if (!(error instanceof TemplateValidationError)) throw error;
      errors.push(error);
    }
  }

  const sorted = [...files].sort();
  const loaded = await Promise.all(
    sorted.map(async (file): Promise<LoadedTemplate | TemplateValidationError> => {
      const warnings: TemplateIssue[] = [];
      try {
        const template = await loadTemplateFile(file, {
          ...options,
          source: file,
          onWarning: (warning) => {
            warnings.push(warning);
            options.onWarning?.(warning);
          },
        });
        return { source: file, template, warnings };
      } catch (error) {
        if (error instanceof TemplateValidationError) return error;
        throw error;
      }
    }),
  );

  const templates: LoadedTemplate[] = [];
  const byIdentity = new Map<string, string>();
  for (const entry of loaded) {
    if (entry instanceof TemplateValidationError) {
      errors.push(entry);
      continue;
    }
    const key = templateKey(entry.template);
    const first = byIdentity.get(key);
    if (first !== undefined) {
      errors.push(
        new TemplateValidationError(entry.source, [
          { source: entry.source, path: '', message: `template ${key} is already defined in ${first}` },
        ]),
      );
      continue;
    }
    byIdentity.set(key, entry.source);
    templates.push(entry);
  }
  return { templates, errors };
}
