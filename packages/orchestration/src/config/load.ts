/**
 * Loading the configuration (DESIGN §7): the TOML base `config/tasker.toml`, then the overlay of the
 * environment `config/tasker.<TASKER_ENV>.toml` (`TASKER_ENV` ∈ test, development, production;
 * default development), deep-merged (tables merge, anything else is replaced); or, when
 * `TASKER_CONFIG` names a file, that file alone. Both files are optional in the conventional layout
 * (the schema's defaults apply); an explicit `TASKER_CONFIG` file must exist. Paths are relative to
 * the working directory. The merged document is checked against the schema: any problem, in any file,
 * ends in one `ConfigError` listing them all.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { TaskerError } from '@tasker/core';
import { parse as parseToml } from 'smol-toml';
import type { EnvSource } from './env.ts';
import { type ConfigIssue, readConfig, type TaskerConfig } from './schema.ts';

const TASKER_ENVIRONMENTS = ['test', 'development', 'production'] as const;
type TaskerEnvironment = (typeof TASKER_ENVIRONMENTS)[number];

/** The configuration cannot be used: `issues` holds every problem, `message` lists them. */
export class ConfigError extends TaskerError {
  readonly issues: readonly ConfigIssue[];
  readonly files: readonly string[];
  constructor(issues: readonly ConfigIssue[], files: readonly string[]) {
    const from = files.length === 0 ? 'schema defaults' : files.join(' + ');
    const lines = issues.map((issue) => `  - ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`);
    super('INVALID_CONFIG', `invalid configuration (${from}):\n${lines.join('\n')}`);
    this.issues = issues;
    this.files = files;
  }
}

export interface LoadedConfig {
  config: TaskerConfig;
  environment: TaskerEnvironment;
  /** The files read, in merge order (relative as found). */
  files: string[];
}

interface LoadOptions {
  env?: EnvSource;
  /** Where relative paths start. Default: the working directory. */
  cwd?: string;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** `overlay` over `base`: tables merge key by key, any other value of the overlay replaces. */
export function mergeConfig(
  base: Record<string, unknown>,
  overlay: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const current = out[key];
    out[key] = isTable(current) && isTable(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

/** A TOML file's document, undefined when the file is absent and `optional`. */
async function readToml(
  path: string,
  cwd: string,
  optional: boolean,
  issues: ConfigIssue[],
): Promise<Record<string, unknown> | undefined> {
  let source: string;
  try {
    source = await readFile(resolve(cwd, path), 'utf8');
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? error.code : undefined;
    if (optional && code === 'ENOENT') return undefined;
    issues.push({ path: '', message: `${path}: cannot be read (${String(code ?? error)})` });
    return undefined;
  }
  try {
    return parseToml(source);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    issues.push({ path: '', message: `${path}: not valid TOML: ${message}` });
    return undefined;
  }
}

/** Reads, merges and validates the configuration; throws `ConfigError` with every problem found. */
export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const issues: ConfigIssue[] = [];
  const requested = env.TASKER_ENV === undefined || env.TASKER_ENV === '' ? 'development' : env.TASKER_ENV;
  const environment = TASKER_ENVIRONMENTS.find((name) => name === requested);
  if (environment === undefined) {
    throw new ConfigError(
      [{ path: '', message: `TASKER_ENV must be one of ${TASKER_ENVIRONMENTS.join(', ')}` }],
      [],
    );
  }
  const explicit = env.TASKER_CONFIG;
  const candidates =
    explicit !== undefined && explicit !== ''
      ? [{ path: explicit, optional: false }]
      : [
          { path: 'config/tasker.toml', optional: true },
          { path: `config/tasker.${environment}.toml`, optional: true },
        ];
  const files: string[] = [];
  let document: Record<string, unknown> = {};
  for (const candidate of candidates) {
    const parsed = await readToml(candidate.path, cwd, candidate.optional, issues);
    if (parsed === undefined) continue;
    files.push(candidate.path);
    document = mergeConfig(document, parsed);
  }
  if (issues.length > 0) throw new ConfigError(issues, files);
  const result = readConfig(document, env);
  if (result.config === undefined) throw new ConfigError(result.issues, files);
  return { config: result.config, environment, files };
}
