/**
 * The health evaluator (B §5.1–§5.2): a supervised loop that every `evaluationIntervalMs` checks
 * the database (`SELECT 1`, bounded, through the API breaker), the engine's health and the depths
 * of the orchestration queues (`pgmq.metrics_all()`), and caches a backpressure decision. Task
 * creation reads the cached decision without waiting; reads are never shed.
 *
 * Decision, first match wins: breaker open (retry after 30 s) → a queue at overflow depth (60 s)
 * → a queue at critical depth (30 s) → accept. A queue at warning depth, a degraded or stopped
 * engine and a failed check are warnings: they show in health and metrics, they do not shed.
 */
import { type Logger, type LoopHealth, SILENT_LOGGER, Supervisor, sleep, TaskerError } from '@tasker/core';
import type { Database } from '@tasker/db';
import { Pgmq } from '@tasker/pgmq';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { ApiEngine } from './context.ts';

export interface BackpressureConfig {
  /** Pause between two evaluations. @default 5000 */
  evaluationIntervalMs?: number;
  /** A measured queue at least this deep is a warning. @default 1000 */
  queueDepthWarning?: number;
  /** …at least this deep sheds task creation (Retry-After 30 s). @default 5000 */
  queueDepthCritical?: number;
  /** …at least this deep sheds task creation (Retry-After 60 s). @default 10000 */
  queueDepthOverflow?: number;
  /** Queues measured. @default the engine's orchestration queues */
  queues?: readonly string[];
}

const BACKPRESSURE_DEFAULTS = {
  evaluationIntervalMs: 5000,
  queueDepthWarning: 1000,
  queueDepthCritical: 5000,
  queueDepthOverflow: 10_000,
  queues: ['orchestration_step_results', 'orchestration_task_requests'],
} as const;

export type DepthTier = 'unknown' | 'normal' | 'warning' | 'critical' | 'overflow';

interface QueueDepth {
  queue: string;
  depth: number;
  oldest_message_age_seconds: number | null;
}

export interface BackpressureDecision {
  accept_tasks: boolean;
  /** Set when `accept_tasks` is false. */
  retry_after_seconds: number | null;
  /** Why tasks are refused (empty when accepted). */
  reasons: string[];
  /** What is not right but does not shed load. */
  warnings: string[];
  database: 'healthy' | 'unhealthy' | 'skipped' | 'unknown';
  engine: 'healthy' | 'degraded' | 'stopped' | 'unknown';
  queue_depth_tier: DepthTier;
  queues: QueueDepth[];
  evaluated_at: string | null;
}

const INITIAL: BackpressureDecision = {
  accept_tasks: true,
  retry_after_seconds: null,
  reasons: [],
  warnings: [],
  database: 'unknown',
  engine: 'unknown',
  queue_depth_tier: 'unknown',
  queues: [],
  evaluated_at: null,
};

export interface HealthEvaluatorOptions {
  /** The database itself (not the guarded one): the check goes through `breaker` explicitly. */
  db: Database;
  breaker: CircuitBreaker;
  engine: ApiEngine;
  config?: BackpressureConfig;
  /** Bound on the database check. */
  checkTimeoutMs: number;
  logger?: Logger;
  /** Restart backoff of the loop. */
  supervisor?: { minBackoffMs?: number; maxBackoffMs?: number };
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved <= 0) {
    throw new TaskerError(
      'INVALID_CONFIG',
      `api.backpressure.${name} must be a positive integer, got ${String(value)}`,
    );
  }
  return resolved;
}

/** The engine's orchestration queues, when it tells them (an OrchestrationEngine does). */
function engineQueues(engine: ApiEngine): string[] | undefined {
  if (!('settings' in engine)) return undefined;
  const queues = (engine.settings as { queues?: unknown } | undefined)?.queues;
  if (typeof queues !== 'object' || queues === null) return undefined;
  const names = Object.values(queues).filter((name): name is string => typeof name === 'string');
  return names.length > 0 ? names : undefined;
}

class CheckTimeout extends Error {
  /** 57014 query_canceled: an unanswered check counts against the breaker. */
  readonly code = '57014';
  constructor() {
    super('database check timed out');
    this.name = 'CheckTimeout';
  }
}

async function bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class HealthEvaluator {
  readonly config: Required<Omit<BackpressureConfig, 'queues'>> & { queues: readonly string[] };
  readonly #db: Database;
  readonly #pgmq: Pgmq;
  readonly #breaker: CircuitBreaker;
  readonly #engine: ApiEngine;
  readonly #checkTimeoutMs: number;
  readonly #logger: Logger;
  readonly #supervisorOptions: { minBackoffMs?: number; maxBackoffMs?: number };
  #supervisor: Supervisor | null = null;
  #decision: BackpressureDecision = INITIAL;
  /** Counters for metrics. */
  readonly stats = { evaluations: 0, errors: 0, activations: 0, lastDurationMs: 0 };

  constructor(options: HealthEvaluatorOptions) {
    const config = options.config ?? {};
    const d = BACKPRESSURE_DEFAULTS;
    this.config = {
      evaluationIntervalMs: positive(
        'evaluationIntervalMs',
        config.evaluationIntervalMs,
        d.evaluationIntervalMs,
      ),
      queueDepthWarning: positive('queueDepthWarning', config.queueDepthWarning, d.queueDepthWarning),
      queueDepthCritical: positive('queueDepthCritical', config.queueDepthCritical, d.queueDepthCritical),
      queueDepthOverflow: positive('queueDepthOverflow', config.queueDepthOverflow, d.queueDepthOverflow),
      queues: [...(config.queues ?? engineQueues(options.engine) ?? d.queues)],
    };
    const { queueDepthWarning: w, queueDepthCritical: c, queueDepthOverflow: o } = this.config;
    if (!(w <= c && c <= o)) {
      throw new TaskerError(
        'INVALID_CONFIG',
        'api.backpressure needs queueDepthWarning <= queueDepthCritical <= queueDepthOverflow',
      );
    }
    this.#db = options.db;
    this.#pgmq = new Pgmq(options.db);
    this.#breaker = options.breaker;
    this.#engine = options.engine;
    this.#checkTimeoutMs = options.checkTimeoutMs;
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#supervisorOptions = options.supervisor ?? {};
  }

  /** The cached decision (never waits). The breaker's live state overrides an older "accept". */
  decision(): BackpressureDecision {
    if (this.#decision.accept_tasks && this.#breaker.rejecting) {
      return {
        ...this.#decision,
        accept_tasks: false,
        retry_after_seconds: 30,
        reasons: ['Circuit breaker open'],
      };
    }
    return this.#decision;
  }

  /**
   * One evaluation: measures, decides, caches and returns the decision. Database and queue
   * failures are part of the outcome; anything else (a broken engine) is thrown, and the loop's
   * supervisor restarts it.
   */
  async evaluate(): Promise<BackpressureDecision> {
    const started = performance.now();
    try {
      const decision = await this.#measure();
      const previous = this.#decision;
      this.#decision = decision;
      if (previous.accept_tasks && !decision.accept_tasks) {
        this.stats.activations++;
        this.#logger.warn(
          { retry_after_seconds: decision.retry_after_seconds, reasons: decision.reasons },
          'Backpressure active',
        );
      } else if (!previous.accept_tasks && decision.accept_tasks) {
        this.#logger.info({}, 'Backpressure released');
      }
      return decision;
    } catch (error) {
      this.stats.errors++;
      throw error;
    } finally {
      this.stats.evaluations++;
      this.stats.lastDurationMs = performance.now() - started;
    }
  }

  async #measure(): Promise<BackpressureDecision> {
    const warnings: string[] = [];
    const engine = this.#engine.health().status;
    if (engine !== 'healthy') warnings.push(`Orchestration engine ${engine}`);

    let database: BackpressureDecision['database'] = 'skipped';
    let queues: QueueDepth[] = [];
    let tier: DepthTier = 'unknown';
    if (!this.#breaker.rejecting) {
      try {
        await this.#breaker.execute(() => bounded(this.#db.query('SELECT 1'), this.#checkTimeoutMs));
        database = 'healthy';
      } catch {
        database = 'unhealthy';
        warnings.push('Database check failed');
      }
    }
    if (database === 'healthy') {
      try {
        const wanted = new Set(this.config.queues);
        const all = await this.#breaker.execute(() => bounded(this.#pgmq.metricsAll(), this.#checkTimeoutMs));
        queues = all
          .filter((metrics) => wanted.has(metrics.queueName))
          .map((metrics) => ({
            queue: metrics.queueName,
            depth: metrics.queueLength,
            oldest_message_age_seconds: metrics.oldestMessageAgeSeconds,
          }));
        tier = 'normal';
      } catch {
        warnings.push('Queue depths unavailable');
      }
    }

    const deepest = queues.reduce<QueueDepth | undefined>(
      (max, queue) => (max === undefined || queue.depth > max.depth ? queue : max),
      undefined,
    );
    const base = { warnings, database, engine, queues, evaluated_at: new Date().toISOString() };
    const refuse = (reason: string, retryAfter: number, depthTier: DepthTier): BackpressureDecision => ({
      ...base,
      accept_tasks: false,
      retry_after_seconds: retryAfter,
      reasons: [reason],
      queue_depth_tier: depthTier,
    });
    const { queueDepthWarning, queueDepthCritical, queueDepthOverflow } = this.config;
    if (deepest !== undefined) {
      if (deepest.depth >= queueDepthOverflow) tier = 'overflow';
      else if (deepest.depth >= queueDepthCritical) tier = 'critical';
      else if (deepest.depth >= queueDepthWarning) tier = 'warning';
    }
    if (this.#breaker.rejecting) return refuse('Circuit breaker open', 30, tier);
    if (deepest !== undefined && tier === 'overflow') {
      return refuse(`Queue '${deepest.queue}' at overflow depth (${deepest.depth} messages)`, 60, tier);
    }
    if (deepest !== undefined && tier === 'critical') {
      return refuse(`Queue '${deepest.queue}' at critical depth (${deepest.depth} messages)`, 30, tier);
    }
    if (deepest !== undefined && tier === 'warning') {
      warnings.push(`Queue '${deepest.queue}' at warning depth (${deepest.depth} messages)`);
    }
    return { ...base, accept_tasks: true, retry_after_seconds: null, reasons: [], queue_depth_tier: tier };
  }

  /** Starts the supervised loop (idempotent): wait an interval, evaluate, again. */
  start(): void {
    if (this.#supervisor !== null) return;
    const supervisor = new Supervisor({ logger: this.#logger, ...this.#supervisorOptions });
    this.#supervisor = supervisor;
    supervisor.start('health-evaluator', async (signal) => {
      while (!signal.aborted) {
        await sleep(this.config.evaluationIntervalMs, signal);
        if (signal.aborted) break;
        await this.evaluate();
      }
    });
  }

  /** The loop's health (restarts after crashes), for the detailed health route and metrics. */
  loops(): LoopHealth[] {
    return this.#supervisor?.health() ?? [];
  }

  async stop(): Promise<void> {
    await this.#supervisor?.stop();
  }
}
