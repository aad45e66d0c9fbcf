/**
 * The one schema of the process configuration (AUDIT O-7, S-7): every key with its explicit default,
 * its type and its range. A TOML document is checked against it as a whole: unknown keys are refused
 * with their path, wrong types and out-of-range values are named, and every problem is collected so
 * one start-up message lists them all. String values may hold `${VAR}` placeholders, resolved by
 * `substitute` (env.ts) before the value is checked; a placeholder is the only way a string becomes a
 * number or a boolean.
 */
import { type EnvSource, substitute } from './env.ts';

/** One problem of the configuration: a dotted key path and what is wrong with it. */
export interface ConfigIssue {
  path: string;
  message: string;
}

interface Context {
  env: EnvSource;
  issues: ConfigIssue[];
}

/** A value of the schema: its default and how a raw TOML value becomes it (undefined = an issue was recorded). */
interface Leaf<T> {
  readonly kind: 'leaf';
  readonly default: T;
  read(raw: unknown, path: string, context: Context): T | undefined;
}

interface Section<F extends Fields> {
  readonly kind: 'section';
  readonly fields: F;
}

type Node = Leaf<unknown> | Section<Fields>;
type Fields = { readonly [key: string]: Node };

/** The configuration type a schema node describes. */
type Infer<N> =
  N extends Leaf<infer T>
    ? T
    : N extends Section<infer F>
      ? { -readonly [K in keyof F]: Infer<F[K]> }
      : never;

function section<F extends Fields>(fields: F): Section<F> {
  return { kind: 'section', fields };
}

/** A scalar as read from TOML, with `${VAR}` placeholders resolved; `substituted` tells they were. */
function scalar(
  raw: unknown,
  path: string,
  context: Context,
): { value: unknown; substituted: boolean } | undefined {
  if (typeof raw !== 'string' || !raw.includes('$')) return { value: raw, substituted: false };
  const result = substitute(raw, context.env);
  if (!result.ok) {
    for (const message of result.problems) context.issues.push({ path, message });
    return undefined;
  }
  return { value: result.value, substituted: result.value !== raw };
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object' && value !== null) return 'a table';
  return String(value);
}

function integer(fallback: number, min: number, max: number): Leaf<number> {
  return {
    kind: 'leaf',
    default: fallback,
    read(raw, path, context) {
      const read = scalar(raw, path, context);
      if (read === undefined) return undefined;
      let { value } = read;
      if (read.substituted && typeof value === 'string' && /^-?\d{1,15}$/.test(value)) value = Number(value);
      if (typeof value === 'bigint') value = Number(value);
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
        context.issues.push({
          path,
          message: `must be an integer from ${min} to ${max}, got ${describeValue(read.value)}`,
        });
        return undefined;
      }
      return value;
    },
  };
}

function boolean(fallback: boolean): Leaf<boolean> {
  return {
    kind: 'leaf',
    default: fallback,
    read(raw, path, context) {
      const read = scalar(raw, path, context);
      if (read === undefined) return undefined;
      let { value } = read;
      if (read.substituted && (value === 'true' || value === 'false')) value = value === 'true';
      if (typeof value !== 'boolean') {
        context.issues.push({ path, message: `must be true or false, got ${describeValue(read.value)}` });
        return undefined;
      }
      return value;
    },
  };
}

interface TextRule {
  /** The value must match (the empty string is allowed only when the pattern allows it). */
  pattern: RegExp;
  /** What a good value looks like, for the message. */
  expect: string;
  /** The value is never shown in a message (it may carry a password). */
  secret?: boolean;
}

function text<T extends string = string>(fallback: T, rule: TextRule): Leaf<T> {
  return {
    kind: 'leaf',
    default: fallback,
    read(raw, path, context) {
      const read = scalar(raw, path, context);
      if (read === undefined) return undefined;
      const { value } = read;
      if (typeof value !== 'string') {
        context.issues.push({
          path,
          message: `must be a string (${rule.expect}), got ${describeValue(value)}`,
        });
        return undefined;
      }
      if (!rule.pattern.test(value)) {
        const got = rule.secret ? '' : `, got ${JSON.stringify(value)}`;
        context.issues.push({ path, message: `must be ${rule.expect}${got}` });
        return undefined;
      }
      return value as T;
    },
  };
}

function oneOf<const T extends string>(fallback: T, values: readonly T[]): Leaf<T> {
  const pattern = new RegExp(`^(${values.join('|')})$`);
  return text(fallback, { pattern, expect: `one of ${values.join(', ')}` });
}

function list(fallback: readonly string[], rule: TextRule): Leaf<string[]> {
  const item = text('', rule);
  return {
    kind: 'leaf',
    default: [...fallback],
    read(raw, path, context) {
      if (!Array.isArray(raw)) {
        context.issues.push({ path, message: `must be an array of strings, got ${describeValue(raw)}` });
        return undefined;
      }
      const values: string[] = [];
      let ok = true;
      raw.forEach((element: unknown, index) => {
        const value = item.read(element, `${path}[${index}]`, context);
        if (value === undefined) ok = false;
        else values.push(value);
      });
      return ok ? values : undefined;
    },
  };
}

const MODES = ['Hybrid', 'EventDrivenOnly', 'PollingOnly'] as const;
const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
const QUEUE = { pattern: /^[a-z_][a-z0-9_]{0,47}$/, expect: 'a queue name (lowercase letters, digits, _)' };
const PATH = { pattern: /^\P{Cc}{1,4096}$/u, expect: 'a file system path' };
const MS_DAY = 86_400_000;

/**
 * Every key of the configuration. Names follow the original's TOML where a key applies
 * (`shutdown_timeout_ms`, `request_timeout_ms`, `max_connections`…); engine and worker keys are the
 * snake_case names of `EngineSettings` and `TaskerWorkerOptions`, with the same defaults.
 */
const CONFIG_SCHEMA = section({
  database: section({
    /** `postgresql://…`; empty = the embedded PostgreSQL (PGlite) in `data_dir`. */
    url: text('', {
      pattern: /^(postgres(ql)?:\/\/\S+)?$/,
      expect: 'a postgresql:// URL or empty (embedded PGlite)',
      secret: true,
    }),
    /** The embedded database's directory (created on first start). */
    data_dir: text('.tasker/data', PATH),
    /** Apply pending migrations at start-up (advisory-locked, so processes may start together). */
    migrate: boolean(true),
    statement_timeout_ms: integer(30_000, 1, MS_DAY),
    idle_in_transaction_timeout_ms: integer(60_000, 1, MS_DAY),
    application_name: text('tasker', {
      pattern: /^[\x20-\x7e]{1,63}$/,
      expect: '1–63 printable ASCII characters',
    }),
    pool: section({
      max_connections: integer(10, 1, 1000),
      min_connections: integer(0, 0, 1000),
      idle_timeout_ms: integer(30_000, 1, MS_DAY),
      connect_timeout_ms: integer(10_000, 1, 3_600_000),
    }),
  }),
  orchestration: section({
    /** Stop drains in-flight work for at most this long. */
    shutdown_timeout_ms: integer(30_000, 1000, 300_000),
    orchestration_mode: oneOf('Hybrid', MODES),
    readiness_mode: oneOf('Hybrid', MODES),
    fallback_poll_interval_ms: integer(5000, 10, 3_600_000),
    fallback_min_age_seconds: integer(5, 0, 86_400),
    message_batch_size: integer(20, 1, 1000),
    readiness_poll_interval_ms: integer(5000, 10, 3_600_000),
    readiness_batch_size: integer(5, 1, 1000),
    step_enqueue_batch_size: integer(50, 1, 10_000),
    /** Task creations arriving together are written in one transaction, at most this many. */
    create_batch_size: integer(32, 1, 1000),
    create_batches_in_flight: integer(2, 1, 64),
    /** Creations waiting for a transaction; past this many a creation is refused with 503. */
    create_queue_capacity: integer(1000, 1, 1_000_000),
    request_visibility_timeout_seconds: integer(30, 1, 86_400),
    result_retry_delay_seconds: integer(5, 0, 86_400),
    max_retry_timers: integer(10_000, 0, 10_000_000),
    queues: section({
      step_results: text('orchestration_step_results', QUEUE),
      task_requests: text('orchestration_task_requests', QUEUE),
    }),
    /** Limits of decision points (C §4.1), written to the database at start-up: results are applied in SQL. */
    decision_points: section({
      enabled: boolean(true),
      max_steps_per_decision: integer(100, 1, 10_000),
      warn_threshold_steps: integer(50, 1, 10_000),
      max_decision_depth: integer(20, 1, 1000),
      warn_threshold_depth: integer(10, 1, 1000),
    }),
    /** Limits of batch processing (C §4.3), written to the database at start-up like decision_points. */
    batch_processing: section({
      enabled: boolean(true),
      max_parallel_batches: integer(50, 1, 100_000),
    }),
    web: section({
      /** false: no REST API (the engine alone). */
      enabled: boolean(true),
      host: text('127.0.0.1', {
        pattern: /^[A-Za-z0-9.:[\]-]{1,253}$/,
        expect: 'a host name or IP address',
      }),
      port: integer(8080, 0, 65_535),
      request_timeout_ms: integer(30_000, 100, 300_000),
      body_limit_bytes: integer(1_048_576, 1024, 104_857_600),
      health_check_timeout_ms: integer(1000, 10, 60_000),
      /** `GET /config`: the effective configuration, secrets redacted. */
      config_endpoint_enabled: boolean(false),
      /** The API's database circuit breaker, which feeds backpressure and readiness. */
      circuit_breaker: section({
        failure_threshold: integer(5, 1, 100),
        open_duration_ms: integer(30_000, 100, 3_600_000),
        success_threshold: integer(2, 1, 100),
      }),
      /** Task creation is refused (503 + Retry-After) at critical or overflow depth of an orchestration queue. */
      backpressure: section({
        evaluation_interval_ms: integer(5000, 100, 3_600_000),
        queue_depth_warning: integer(1000, 1, 100_000_000),
        queue_depth_critical: integer(5000, 1, 100_000_000),
        queue_depth_overflow: integer(10_000, 1, 100_000_000),
      }),
      /** Cross-origin requests are allowed from these origins only; none turns CORS off. */
      cors_origins: list([], {
        pattern: /^https?:\/\/[^/\s]+$/,
        expect: 'an origin like https://example.com',
      }),
    }),
  }),
  worker: section({
    /** The all-in-one process runs a worker only when true. */
    enabled: boolean(true),
    /** A uuid written into step transitions; empty = a random one per start. */
    worker_id: text('', {
      pattern: /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$/i,
      expect: 'a uuid or empty',
    }),
    mode: oneOf('Hybrid', MODES),
    max_concurrent_handlers: integer(10, 1, 10_000),
    default_timeout_ms: integer(30_000, 1, MS_DAY),
    lease_grace_seconds: integer(5, 0, 3600),
    poll_interval_ms: integer(1000, 10, 3_600_000),
    poll_min_age_seconds: integer(5, 0, 86_400),
    result_queue: text('orchestration_step_results', QUEUE),
    apply_results_inline: boolean(true),
    claim_successors: boolean(true),
    batch_size: integer(50, 1, 10_000),
    shutdown_timeout_ms: integer(30_000, 0, 300_000),
    max_deferred_ids: integer(1000, 1, 1_000_000),
    completion_attempts: integer(4, 1, 100),
    completion_backoff_ms: integer(100, 0, 60_000),
    restart_backoff_min_ms: integer(100, 1, 3_600_000),
    restart_backoff_max_ms: integer(10_000, 1, 3_600_000),
    /** Directories of task templates (YAML), searched recursively; relative to the working directory. */
    template_dirs: list(['examples/templates'], PATH),
    /**
     * Handler modules, relative to the working directory: `path` registers every exported
     * `StepHandler` class with a `handlerName`; `path#fn` calls the exported `fn(registry)`.
     */
    handler_modules: list(['examples/handlers/index.ts#registerExampleHandlers'], {
      pattern: /^[^#\p{Cc}]{1,4096}(#[A-Za-z_$][A-Za-z0-9_$]*)?$/u,
      expect: 'a module path, optionally with #exportName',
    }),
  }),
  logging: section({
    level: oneOf('info', LOG_LEVELS),
  }),
});

export type TaskerConfig = Infer<typeof CONFIG_SCHEMA>;

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function readSection(
  node: Section<Fields>,
  raw: Record<string, unknown>,
  prefix: string,
  context: Context,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(node.fields, key)) {
      const known = Object.keys(node.fields).join(', ');
      context.issues.push({ path: `${prefix}${key}`, message: `unknown key (known here: ${known})` });
    }
  }
  for (const [key, child] of Object.entries(node.fields)) {
    const path = `${prefix}${key}`;
    const value = Object.hasOwn(raw, key) ? raw[key] : undefined;
    if (child.kind === 'section') {
      if (value !== undefined && !isTable(value)) {
        context.issues.push({ path, message: `must be a table, got ${describeValue(value)}` });
        out[key] = readSection(child, {}, `${path}.`, context);
      } else {
        out[key] = readSection(child, value ?? {}, `${path}.`, context);
      }
    } else {
      out[key] = value === undefined ? structuredClone(child.default) : child.read(value, path, context);
    }
  }
  return out;
}

/** Checks a merged document against the schema; the config when there is no issue. */
export function readConfig(
  document: Record<string, unknown>,
  env: EnvSource,
): { config: TaskerConfig; issues: [] } | { config: undefined; issues: ConfigIssue[] } {
  const context: Context = { env, issues: [] };
  const out = readSection(CONFIG_SCHEMA, document, '', context);
  const { issues } = context;
  if (issues.length === 0) {
    // the walk above built every key of the schema from a value its leaf accepted
    const config = out as TaskerConfig;
    const { pool } = config.database;
    if (pool.min_connections > pool.max_connections) {
      issues.push({
        path: 'database.pool.min_connections',
        message: `must not exceed database.pool.max_connections (${pool.max_connections})`,
      });
    }
    if (config.worker.restart_backoff_min_ms > config.worker.restart_backoff_max_ms) {
      issues.push({
        path: 'worker.restart_backoff_min_ms',
        message: 'must not exceed worker.restart_backoff_max_ms',
      });
    }
    const decisions = config.orchestration.decision_points;
    for (const [warn, max] of [
      ['warn_threshold_steps', 'max_steps_per_decision'],
      ['warn_threshold_depth', 'max_decision_depth'],
    ] as const) {
      if (decisions[warn] > decisions[max]) {
        issues.push({
          path: `orchestration.decision_points.${warn}`,
          message: `must not exceed orchestration.decision_points.${max}`,
        });
      }
    }
    const { backpressure } = config.orchestration.web;
    if (backpressure.queue_depth_warning > backpressure.queue_depth_critical) {
      issues.push({
        path: 'orchestration.web.backpressure.queue_depth_warning',
        message: 'must not exceed orchestration.web.backpressure.queue_depth_critical',
      });
    }
    if (backpressure.queue_depth_critical > backpressure.queue_depth_overflow) {
      issues.push({
        path: 'orchestration.web.backpressure.queue_depth_critical',
        message: 'must not exceed orchestration.web.backpressure.queue_depth_overflow',
      });
    }
    if (issues.length === 0) return { config, issues: [] };
  }
  return { config: undefined, issues };
}
