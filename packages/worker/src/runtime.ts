/**
 * The worker runtime (reference C §1, its [REC] items; DESIGN §3–§4; AUDIT W-2, O-1, O-2, O-5):
 * `TaskerWorker` registers its templates, serves the namespace queues `worker_{ns}_queue` they name,
 * claims step messages (push by LISTEN/NOTIFY, a fallback poller for what push missed), runs their
 * handlers with bounded concurrency and a time limit, and reports each result with one SQL call.
 *
 * Leases, not acks, protect work: `tasker.claim_step_messages` leaves a claimed message in the queue,
 * invisible for the step's timeout plus a grace period, and `tasker.complete_step_message` acks it in
 * the transaction that stores the result. A worker that dies, is stopped mid-handler or cannot store
 * a result just lets the lease expire; another worker then reclaims the step. Work the worker cannot
 * take (at capacity) is never claimed: it stays visible in the queue for later or for another worker.
 *
 * A handler may yield a checkpoint instead of a result (C §1.8, `checkpointYield`): it is stored with
 * `tasker.checkpoint_step` under a time limit (AUDIT W-1), which also renews the lease, and the
 * handler runs again under the same claim with the new checkpoint in its context — no attempt used.
 *
 * The step's declared domain events (C §5, `events.ts`) are queued for publishing once its
 * completion transaction committed; publishing runs later, bounded, and never fails or delays a step.
 */
import { randomUUID } from 'node:crypto';
import {
  type FieldIssue,
  type Logger,
  type LoopHealth,
  SILENT_LOGGER,
  Supervisor,
  sleep,
  TaskerError,
  type TaskTemplate,
  TemplateRegistry,
  ValidationError,
} from '@tasker/core';
import type { Database } from '@tasker/db';
import {
  type ListenerItem,
  type ListenerStats,
  Pgmq,
  PgmqListener,
  validateQueueName,
  workerQueueName,
} from '@tasker/pgmq';
import {
  CHECKPOINT_ERROR_TYPE,
  CHECKPOINT_LIMIT_ERROR_TYPE,
  type CheckpointYieldData,
  checkpointPayload,
  nextCheckpoint,
  parseCheckpointYield,
} from './checkpoint.ts';
import { parseClaimedStep } from './claim.ts';
import type { StepContextData } from './context.ts';
import { ERROR_TYPES } from './errors.ts';
import {
  DomainEventBus,
  type DomainEventMetrics,
  DomainEventPublisher,
  domainEventQueueName,
  eventDeclarations,
} from './events.ts';
import { executeHandler } from './execute.ts';
import type { HandlerRegistry } from './registry.ts';
import { failureResult, type StepExecutionResult } from './results.ts';

export const WORKER_MODES = ['Hybrid', 'EventDrivenOnly', 'PollingOnly'] as const;
/** `Hybrid`: push with the fallback poller; `EventDrivenOnly`: push alone; `PollingOnly`: the poller alone. */
export type WorkerMode = (typeof WORKER_MODES)[number];

/** What `tasker.claim_step_messages` says it did with each message it locked. */
export const CLAIM_OUTCOMES = ['claimed', 'reclaimed', 'lost', 'stale', 'malformed'] as const;
export type ClaimOutcome = (typeof CLAIM_OUTCOMES)[number];

/** How a step was claimed: a notification, the fallback poller, a catch-up scan, or deferred work. */
export const CLAIM_SOURCES = ['push', 'poll', 'catch_up', 'deferred', 'chained'] as const;
export type ClaimSource = (typeof CLAIM_SOURCES)[number];

/** `error_type` of the failure reported for a step whose claim context could not be used. */
export const INVALID_CLAIM_ERROR_TYPE = 'invalid_claim';

export type WorkerState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface TaskerWorkerOptions {
  db: Database;
  handlers: HandlerRegistry;
  /** Registered in the database at start (idempotent); their namespaces decide the queues served. */
  templates: readonly TaskTemplate[];
  /** A uuid, written into step transitions; a random one by default. */
  workerId?: string;
  /** Handlers running at once, at most. Default 10. */
  maxConcurrentHandlers?: number;
  /**
   * Time limit of a handler (ms; a shorter step `timeout_seconds` wins). Its ceiling in seconds is also
   * the lease of a step without `timeout_seconds`, so the lease covers the run. Default 30,000.
   */
  defaultTimeoutMs?: number;
  /** Seconds a lease outlives the handler's time limit (time to store the result). Default 5. */
  leaseGraceSeconds?: number;
  /** Default `Hybrid`. */
  mode?: WorkerMode;
  /** Interval of the fallback poller (ms). Default 1000. */
  pollIntervalMs?: number;
  /** The poller takes only messages at least this old (push had its chance). Default 5. */
  pollMinAgeSeconds?: number;
  /** Where results are handed to orchestration. Default `orchestration_step_results`. */
  resultQueue?: string;
  /**
   * Apply results in the completion transaction (hops 3 and 4 as one): the steps a result makes
   * ready are enqueued and a finished task is finalized without the orchestration process. Default
   * true; false hands every result to orchestration through `resultQueue`.
   */
  applyResultsInline?: boolean;
  /**
   * With the inline apply: claim the steps a result made ready, up to the free slots, in the same
   * completion transaction, so a chain of steps costs one round trip per step. Default true.
   */
  claimSuccessors?: boolean;
  /** Most steps one inline evaluation enqueues. Default 50. */
  batchSize?: number;
  /** How long `stop()` waits for running handlers (ms). Default 30,000. */
  shutdownTimeoutMs?: number;
  /** Notified message ids remembered per queue while at capacity; beyond it a visible scan follows. Default 1000. */
  maxDeferredIds?: number;
  /** Tries of a completion call that fails (database error), including the first. Default 4. */
  completionAttempts?: number;
  /** First delay between completion tries (ms); doubles per try. Default 100. */
  completionBackoffMs?: number;
  /** Restart backoff of a crashed loop (ms): first delay and cap. Default 100 and 10,000. */
  restartBackoffMs?: { min: number; max: number };
  /**
   * Time limit of storing one checkpoint yield (ms, AUDIT W-1); past it (or on a database error) the
   * step fails as a retryable `checkpoint_error` and its retry resumes from the last stored
   * checkpoint. Default 5000.
   */
  checkpointTimeoutMs?: number;
  /**
   * Checkpoint yields allowed per claim: a handler yielding more often fails permanently
   * (`checkpoint_limit_exceeded`), so a runaway handler cannot hold a claim forever. Default 10,000.
   */
  maxCheckpointYields?: number;
  /**
   * Domain events (reference C §5): published after a step's completion committed, from a bounded
   * queue (`maxPending` completed steps, default 1000; beyond it events are dropped and counted).
   * `bus` receives `fast`/`broadcast` events (a new bus by default: `worker.domainEvents`); `enabled`
   * false publishes nothing and creates no `{ns}_domain_events` queues. Default enabled.
   */
  events?: { bus?: DomainEventBus; enabled?: boolean; maxPending?: number };
  logger?: Logger;
}

export const WORKER_DEFAULTS = {
  maxConcurrentHandlers: 10,
  defaultTimeoutMs: 30_000,
  leaseGraceSeconds: 5,
  mode: 'Hybrid',
  pollIntervalMs: 1000,
  pollMinAgeSeconds: 5,
  resultQueue: 'orchestration_step_results',
  applyResultsInline: true,
  claimSuccessors: true,
  batchSize: 50,
  shutdownTimeoutMs: 30_000,
  maxDeferredIds: 1000,
  completionAttempts: 4,
  completionBackoffMs: 100,
  restartBackoffMs: { min: 100, max: 10_000 },
  checkpointTimeoutMs: 5000,
  maxCheckpointYields: 10_000,
} as const satisfies Omit<
  Required<TaskerWorkerOptions>,
  'db' | 'handlers' | 'templates' | 'workerId' | 'logger' | 'events'
>;

/** The options whose defaults are numbers, checked by one of the checks below. */
type NumericOption = {
  [K in keyof typeof WORKER_DEFAULTS]: (typeof WORKER_DEFAULTS)[K] extends number ? K : never;
}[keyof typeof WORKER_DEFAULTS];

export interface WorkerMetrics {
  workerId: string;
  state: WorkerState;
  mode: WorkerMode;
  /** Handlers running (or storing their result) now. */
  inFlight: number;
  capacity: number;
  /** Messages by claim outcome. */
  claims: Record<ClaimOutcome, number>;
  /** Steps claimed (claimed + reclaimed) by the path that claimed them. */
  claimSources: Record<ClaimSource, number>;
  /** Handler outcomes. */
  results: { succeeded: number; failedRetryable: number; failedPermanent: number };
  /**
   * Completion calls: `completed` stored; `lost` found the claim gone (reclaimed, cancelled); `retries`
   * failed tries that were retried; `errors` gave up (the lease expires and another worker reclaims).
   */
  completions: { completed: number; lost: number; retries: number; errors: number };
  /**
   * Checkpoint yields: `stored`; `lost` found the claim gone (the handler is not run again and no
   * result is reported); `errors` could not be stored in time (a retryable `checkpoint_error`);
   * `limitExceeded` handlers that yielded more than `maxCheckpointYields` times under one claim.
   */
  checkpoints: { stored: number; lost: number; errors: number; limitExceeded: number };
  /** Claimed steps whose context was unusable (reported as `invalid_claim` failures when possible). */
  invalidClaims: number;
  /** Handlers still running at the shutdown deadline: their results are never reported. */
  abandoned: number;
  /** Notified messages this worker could not take because it was at capacity (left in the queue). */
  saturated: number;
  /** Notified message ids waiting for a free slot now. */
  deferred: number;
  /** Deferred ids dropped because the bounded set was full (a visible scan replaces them). */
  deferredDropped: number;
  /** Age of the oldest running handler (ms), null when none runs. */
  oldestInFlightAgeMs: number | null;
  /** Handlers running past their time limit (their timer could not fire, or storing hangs). */
  pastDeadline: number;
  listener: ListenerStats | null;
  /** Domain event publishing: counters per event and delivery path; null when disabled. */
  domainEvents: DomainEventMetrics | null;
}

export interface WorkerHealth {
  status: 'healthy' | 'degraded';
  /** Why the worker is degraded (empty when healthy). */
  reasons: string[];
  state: WorkerState;
  workerId: string;
  loops: LoopHealth[];
  inFlight: number;
  capacity: number;
  /** Notified work waits for a free slot. */
  saturated: boolean;
  /** Some handler runs past its time limit. */
  starving: boolean;
  oldestInFlightAgeMs: number | null;
  /** Null when the mode has no push. */
  listenerConnected: boolean | null;
}

/** `start()` after `stop()`: a worker runs once. */
export class WorkerStateError extends TaskerError {
  constructor(message: string) {
    super('WORKER_STATE', message);
  }
}

/** Most notified ids one claim takes from buffered notifications. */
const MAX_COALESCED_IDS = 500;
/** stop() waits this long past the shutdown deadline for its loops and listener, at most. */
const STOP_MARGIN_MS = 1000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(fields: Fields, key: string): string | undefined {
  const value = fields[key];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A wake-up flag: `notify` releases the waiter, or the next `wait` when nobody waits yet. */
class Wake {
  #pending = false;
  readonly #waiters = new Set<() => void>();

  notify(): void {
    this.#pending = true;
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves on a notification, after `timeoutMs`, or when `signal` aborts; never rejects. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#pending || signal?.aborted) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        this.#pending = false;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }
}

/** Settles when `promise` does or after `ms`, whichever comes first; never rejects. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms));
  });
  try {
    await Promise.race([
      promise.then(
        () => undefined,
        () => undefined,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface QueueState {
  name: string;
  /** Notified ids not claimed for lack of a slot (bounded by maxDeferredIds). */
  deferred: Set<number>;
  /** Claim visible messages (no ids) at the next free slot: ids were dropped or push may have missed some. */
  scanVisible: boolean;
}

interface ClaimRow {
  msgId: string;
  outcome: string;
  context: unknown;
}

/** A claimed step between its claim and its completion. */
interface Job {
  queue: string;
  msgId: string;
  stepUuid: string;
  taskUuid: string | undefined;
  correlationId: string | undefined;
  stepName: string | undefined;
  /** The claim token (`attempts` after the claim). */
  attempt: number;
  startedAt: number;
  /** Time limit of one handler run (ms); a run after a checkpoint yield gets a new one. */
  limitMs: number;
  /** The lease a claim takes (the step's timeout plus the grace): a checkpoint renews it. */
  leaseSeconds: number;
  deadlineAt: number;
  /** `running` the handler, or `storing` its result. */
  phase: 'running' | 'storing';
  /** Set at the shutdown deadline: the result must not be reported. */
  abandoned: boolean;
}

function positiveInteger(issues: FieldIssue[], field: string, value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 1))
    issues.push({ field, message: 'must be an integer >= 1' });
  return value;
}

function nonNegativeInteger(issues: FieldIssue[], field: string, value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 0))
    issues.push({ field, message: 'must be an integer >= 0' });
  return value;
}

function positiveNumber(issues: FieldIssue[], field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) issues.push({ field, message: 'must be a finite number > 0' });
  return value;
}

function nonNegativeNumber(issues: FieldIssue[], field: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0))
    issues.push({ field, message: 'must be a finite number >= 0' });
  return value;
}

export class TaskerWorker {
  readonly workerId: string;
  readonly mode: WorkerMode;
  readonly #db: Database;
  readonly #handlers: HandlerRegistry;
  readonly #templates: readonly TaskTemplate[];
  readonly #capacity: number;
  readonly #defaultTimeoutMs: number;
  readonly #defaultTimeoutSeconds: number;
  readonly #leaseGraceSeconds: number;
  readonly #pollIntervalMs: number;
  readonly #pollMinAgeSeconds: number;
  readonly #resultQueue: string;
  readonly #inline: boolean;
  readonly #claimSuccessors: boolean;
  readonly #batchSize: number;
  readonly #shutdownTimeoutMs: number;
  readonly #maxDeferredIds: number;
  readonly #completionAttempts: number;
  readonly #completionBackoffMs: number;
  readonly #checkpointTimeoutMs: number;
  readonly #maxCheckpointYields: number;
  readonly #logger: Logger;
  readonly #bus: DomainEventBus;
  readonly #publisher: DomainEventPublisher | null;
  readonly #namespaces: string[];
  readonly #queues: QueueState[];
  readonly #supervisor: Supervisor;
  /** Aborted at the shutdown deadline: completion retries stop. */
  readonly #abandon = new AbortController();
  /** Slot freed or claim finished: deferred work may be claimed now. */
  readonly #slotFreed = new Wake();
  /** A job or a claim ended: stop() re-checks whether everything has settled. */
  readonly #settled = new Wake();
  readonly #jobs = new Set<Job>();
  /** Loops that crashed and have not completed a pass since. */
  readonly #failing = new Set<string>();
  #listener: PgmqListener | null = null;
  #state: WorkerState = 'created';
  #accepting = false;
  #stopRequested = false;
  #reserved = 0;
  #claimsInFlight = 0;
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  readonly #counters = {
    claims: { claimed: 0, reclaimed: 0, lost: 0, stale: 0, malformed: 0 } as Record<ClaimOutcome, number>,
    claimSources: { push: 0, poll: 0, catch_up: 0, deferred: 0, chained: 0 } as Record<ClaimSource, number>,
    results: { succeeded: 0, failedRetryable: 0, failedPermanent: 0 },
    completions: { completed: 0, lost: 0, retries: 0, errors: 0 },
    checkpoints: { stored: 0, lost: 0, errors: 0, limitExceeded: 0 },
    invalidClaims: 0,
    abandoned: 0,
    saturated: 0,
    deferredDropped: 0,
  };

  constructor(options: TaskerWorkerOptions) {
    const d = WORKER_DEFAULTS;
    const issues: FieldIssue[] = [];
    /** An option's value (or its default), checked; a failed check adds its issue. */
    const numeric = (
      check: (issues: FieldIssue[], field: string, value: number) => number,
      field: NumericOption,
    ): number => check(issues, field, options[field] ?? d[field]);
    this.#db = options.db;
    this.#handlers = options.handlers;
    this.#templates = [...options.templates];
    this.workerId = options.workerId ?? randomUUID();
    if (!UUID.test(this.workerId)) issues.push({ field: 'workerId', message: 'must be a uuid' });
    this.#capacity = numeric(positiveInteger, 'maxConcurrentHandlers');
    this.#defaultTimeoutMs = numeric(positiveNumber, 'defaultTimeoutMs');
    this.#defaultTimeoutSeconds = Math.ceil(this.#defaultTimeoutMs / 1000);
    this.#leaseGraceSeconds = numeric(nonNegativeInteger, 'leaseGraceSeconds');
    this.mode = options.mode ?? d.mode;
    if (!WORKER_MODES.includes(this.mode))
      issues.push({ field: 'mode', message: `must be one of ${WORKER_MODES.join(', ')}` });
    this.#pollIntervalMs = numeric(positiveNumber, 'pollIntervalMs');
    this.#pollMinAgeSeconds = numeric(nonNegativeNumber, 'pollMinAgeSeconds');
    this.#resultQueue = options.resultQueue ?? d.resultQueue;
    try {
      validateQueueName(this.#resultQueue);
    } catch (error) {
      issues.push({ field: 'resultQueue', message: errorMessage(error) });
    }
    this.#inline = options.applyResultsInline ?? d.applyResultsInline;
    this.#claimSuccessors = this.#inline && (options.claimSuccessors ?? d.claimSuccessors);
    this.#batchSize = numeric(positiveInteger, 'batchSize');
    this.#shutdownTimeoutMs = numeric(nonNegativeNumber, 'shutdownTimeoutMs');
    this.#maxDeferredIds = numeric(positiveInteger, 'maxDeferredIds');
    this.#completionAttempts = numeric(positiveInteger, 'completionAttempts');
    this.#completionBackoffMs = numeric(nonNegativeNumber, 'completionBackoffMs');
    this.#checkpointTimeoutMs = numeric(positiveNumber, 'checkpointTimeoutMs');
    this.#maxCheckpointYields = numeric(positiveInteger, 'maxCheckpointYields');
    const restart = options.restartBackoffMs ?? d.restartBackoffMs;
    positiveNumber(issues, 'restartBackoffMs.min', restart.min);
    positiveNumber(issues, 'restartBackoffMs.max', restart.max);
    if (this.#templates.length === 0) issues.push({ field: 'templates', message: 'must not be empty' });
    const maxPending = options.events?.maxPending;
    if (maxPending !== undefined) positiveInteger(issues, 'events.maxPending', maxPending);
    const names = new Set<string>();
    const namespaces = new Set<string>();
    for (const template of this.#templates) {
      try {
        names.add(workerQueueName(template.namespace_name));
        namespaces.add(template.namespace_name);
      } catch (error) {
        issues.push({ field: `templates.${template.name}.namespace_name`, message: errorMessage(error) });
      }
    }
    if (issues.length > 0) throw new ValidationError(issues);
    this.#queues = [...names].sort().map((name) => ({
      name,
      deferred: new Set(),
      scanVisible: false,
    }));
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#namespaces = [...namespaces].sort();
    this.#bus = options.events?.bus ?? new DomainEventBus({ logger: this.#logger });
    this.#publisher =
      options.events?.enabled === false
        ? null
        : new DomainEventPublisher({
            db: this.#db,
            bus: this.#bus,
            logger: this.#logger,
            ...(maxPending === undefined ? {} : { maxPending }),
          });
    this.#supervisor = new Supervisor({
      logger: this.#logger,
      minBackoffMs: restart.min,
      maxBackoffMs: restart.max,
    });
  }

  /** The namespace queues this worker serves. */
  get queues(): string[] {
    return this.#queues.map((queue) => queue.name);
  }

  get state(): WorkerState {
    return this.#state;
  }

  /** The in-process bus of `fast` and `broadcast` domain events: subscribe here. */
  get domainEvents(): DomainEventBus {
    return this.#bus;
  }

  /** Resolves once the domain events of every step completed so far are published (or given up). */
  domainEventsIdle(): Promise<void> {
    return this.#publisher?.idle() ?? Promise.resolve();
  }

  /**
   * Registers the templates, creates the queues, and starts the supervised loops. Resolves once push
   * subscriptions (when the mode has push) have made their first pass. Idempotent while running; a
   * failure before the loops start (e.g. the database is down) rejects and leaves the worker startable.
   */
  start(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped')
      return Promise.reject(new WorkerStateError('the worker was stopped; create a new one'));
    this.#startPromise ??= this.#start();
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await new TemplateRegistry(this.#db).registerAll(this.#templates);
      const pgmq = new Pgmq(this.#db);
      for (const queue of this.#queues) await pgmq.createQueue(queue.name);
      await pgmq.createQueue(this.#resultQueue);
      if (this.#publisher !== null)
        for (const namespace of this.#namespaces) await pgmq.createQueue(domainEventQueueName(namespace));
    } catch (error) {
      if (!this.#stopRequested) this.#state = 'created';
      this.#startPromise = undefined;
      throw error;
    }
    if (this.#stopRequested) return;
    this.#accepting = true;
    const firstPasses: Promise<void>[] = [];
    if (this.mode !== 'PollingOnly') {
      const listener = new PgmqListener(this.#db, {
        onError: (error) => this.#logger.warn({ worker_id: this.workerId, error }, 'listener error'),
      });
      this.#listener = listener;
      for (const queue of this.#queues) {
        const first = Promise.withResolvers<void>();
        firstPasses.push(first.promise);
        this.#supervise(`listen:${queue.name}`, (signal) =>
          this.#pushLoop(listener, queue, signal, first.resolve),
        );
      }
      this.#supervise('deferred', (signal) => this.#deferredLoop(signal));
    }
    if (this.mode !== 'EventDrivenOnly') this.#supervise('poller', (signal) => this.#pollLoop(signal));
    this.#state = 'running';
    await Promise.all(firstPasses);
    this.#logger.info(
      { worker_id: this.workerId, mode: this.mode, queues: this.queues, capacity: this.#capacity },
      'worker started',
    );
  }

  /**
   * Stops claiming at once, waits for running handlers up to `shutdownTimeoutMs`, abandons the rest
   * (their results are never reported and their messages stay leased until the lease expires), then
   * closes the listener. Never takes much longer than the deadline; idempotent.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#stop();
    return this.#stopPromise;
  }

  async #stop(): Promise<void> {
    const deadline = Date.now() + this.#shutdownTimeoutMs;
    this.#stopRequested = true;
    const wasState = this.#state;
    this.#state = 'stopping';
    this.#accepting = false;
    if (wasState === 'starting' && this.#startPromise) {
      await within(this.#startPromise, deadline - Date.now());
    }
    // Aborting the loops' signal closes the subscriptions and ends the poller's sleep at once.
    const loops = this.#supervisor.stop();
    while ((this.#jobs.size > 0 || this.#claimsInFlight > 0) && Date.now() < deadline) {
      await this.#settled.wait(deadline - Date.now());
    }
    for (const job of this.#jobs) this.#abandonJob(job);
    this.#jobs.clear();
    this.#abandon.abort();
    const hardDeadline = deadline + STOP_MARGIN_MS;
    await within(loops, hardDeadline - Date.now());
    if (this.#listener) await within(this.#listener.close(), hardDeadline - Date.now());
    // domain events of completed steps are drained (fast ones are lost otherwise), within the deadline
    if (this.#publisher) await within(this.#publisher.idle(), hardDeadline - Date.now());
    this.#state = 'stopped';
    this.#logger.info({ worker_id: this.workerId, abandoned: this.#counters.abandoned }, 'worker stopped');
  }

  /**
   * A handler still running at the deadline is abandoned: its result is never reported and its
   * message stays leased until the lease expires. A result being stored is left to finish (its
   * transaction either commits or not), without further retries.
   */
  #abandonJob(job: Job): void {
    const fields = {
      correlation_id: job.correlationId,
      task_uuid: job.taskUuid,
      step_uuid: job.stepUuid,
      queue: job.queue,
      msg_id: job.msgId,
    };
    if (job.phase === 'storing') {
      this.#logger.warn(fields, 'result still being stored at shutdown');
      return;
    }
    job.abandoned = true;
    this.#counters.abandoned++;
    this.#logger.warn(fields, 'handler abandoned at shutdown; its lease will expire');
  }

  metrics(): WorkerMetrics {
    const c = this.#counters;
    const { oldest, pastDeadline } = this.#inFlightAges();
    return {
      workerId: this.workerId,
      state: this.#state,
      mode: this.mode,
      inFlight: this.#jobs.size,
      capacity: this.#capacity,
      claims: { ...c.claims },
      claimSources: { ...c.claimSources },
      results: { ...c.results },
      completions: { ...c.completions },
      checkpoints: { ...c.checkpoints },
      invalidClaims: c.invalidClaims,
      abandoned: c.abandoned,
      saturated: c.saturated,
      deferred: this.#queues.reduce((sum, queue) => sum + queue.deferred.size, 0),
      deferredDropped: c.deferredDropped,
      oldestInFlightAgeMs: oldest,
      pastDeadline,
      listener: this.#listener?.stats() ?? null,
      domainEvents: this.#publisher?.metrics() ?? null,
    };
  }

  health(): WorkerHealth {
    const loops = this.#supervisor.health();
    const { oldest, pastDeadline } = this.#inFlightAges();
    const reasons: string[] = [];
    if (this.#state !== 'running') reasons.push(`worker is ${this.#state}`);
    for (const loop of loops) {
      if (this.#failing.has(loop.name)) reasons.push(`loop ${loop.name} is restarting`);
      else if (!loop.running && this.#state === 'running') reasons.push(`loop ${loop.name} has ended`);
    }
    const saturated = this.#queues.some((queue) => queue.scanVisible || queue.deferred.size > 0);
    if (saturated) reasons.push('saturated: notified work waits for a free slot');
    if (pastDeadline > 0) reasons.push(`starving: ${pastDeadline} handler(s) past their time limit`);
    const listenerConnected = this.#listener === null ? null : this.#listener.connected;
    if (listenerConnected === false && this.#state === 'running') reasons.push('listener disconnected');
    return {
      status: reasons.length === 0 ? 'healthy' : 'degraded',
      reasons,
      state: this.#state,
      workerId: this.workerId,
      loops,
      inFlight: this.#jobs.size,
      capacity: this.#capacity,
      saturated,
      starving: pastDeadline > 0,
      oldestInFlightAgeMs: oldest,
      listenerConnected,
    };
  }

  #inFlightAges(): { oldest: number | null; pastDeadline: number } {
    const now = Date.now();
    let oldest: number | null = null;
    let pastDeadline = 0;
    for (const job of this.#jobs) {
      const age = now - job.startedAt;
      if (oldest === null || age > oldest) oldest = age;
      if (now > job.deadlineAt) pastDeadline++;
    }
    return { oldest, pastDeadline };
  }

  /** Runs `body` under the supervisor, remembering a crash until the loop completes a pass again. */
  #supervise(name: string, body: (signal: AbortSignal) => Promise<void>): void {
    this.#supervisor.start(name, async (signal) => {
      try {
        await body(signal);
      } catch (error) {
        this.#failing.add(name);
        throw error;
      }
    });
  }

  #passed(name: string): void {
    this.#failing.delete(name);
  }

  #free(): number {
    return this.#capacity - this.#jobs.size - this.#reserved;
  }

  // ---- intake ------------------------------------------------------------------------------------

  /**
   * One subscription per queue. Notifications sent while it did not exist (before start, during a
   * restart after a crash, during a listener reconnect) are gone, so each of those is followed by a
   * catch-up claim of visible messages.
   */
  async #pushLoop(
    listener: PgmqListener,
    queue: QueueState,
    signal: AbortSignal,
    firstPass: () => void,
  ): Promise<void> {
    const name = `listen:${queue.name}`;
    try {
      const subscription = await listener.subscribeQueue(queue.name);
      const close = (): void => subscription.close();
      signal.addEventListener('abort', close, { once: true });
      try {
        if (signal.aborted) return;
        await this.#intake(queue, null);
        this.#passed(name);
        firstPass();
        for (let item = await subscription.next(); item !== undefined; item = await subscription.next()) {
          const ids: number[] = [];
          let catchUp = false;
          const collect = (next: ListenerItem): void => {
            if (next.type === 'reconnected') catchUp = true;
            else if (next.type === 'batch_ready') ids.push(...next.msgIds);
            else if (next.type === 'message_ready' || next.type === 'message_with_payload')
              ids.push(next.msgId);
          };
          collect(item);
          // Take what is already buffered too: one claim for many notifications.
          while (subscription.buffered > 0 && ids.length < MAX_COALESCED_IDS) {
            const more = await subscription.next();
            if (more === undefined) break;
            collect(more);
          }
          if (catchUp) {
            this.#logger.info(
              { worker_id: this.workerId, queue: queue.name },
              'listener reconnected; catching up',
            );
            await this.#intake(queue, null);
          }
          if (ids.length > 0) await this.#intake(queue, ids);
          this.#passed(name);
        }
      } finally {
        signal.removeEventListener('abort', close);
        subscription.close();
      }
    } finally {
      firstPass();
    }
  }

  /**
   * Claims notified messages (`ids`), or visible messages of any age (`null`, a catch-up), up to the
   * free slots. What it cannot take stays in the queue: ids are remembered (bounded) for the next free
   * slot, a catch-up becomes a visible scan at the next free slot.
   */
  async #intake(queue: QueueState, ids: readonly number[] | null): Promise<void> {
    if (!this.#accepting) return;
    if (ids === null) {
      if (this.#free() <= 0) {
        queue.scanVisible = true;
        return;
      }
      const { limit, rows } = await this.#claim(queue, null, 0, 'catch_up');
      // A full batch may have left more behind.
      if (limit > 0 && rows.length >= limit) queue.scanVisible = true;
      return;
    }
    const sorted = [...new Set(ids)].sort((a, b) => a - b);
    if (sorted.length === 0) return;
    if (this.#free() <= 0) {
      this.#counters.saturated += sorted.length;
      this.#defer(queue, sorted);
      return;
    }
    const { limit, rows } = await this.#claim(queue, sorted, 0, 'push');
    const rest = this.#unexamined(sorted, limit, rows);
    if (rest.length > 0) {
      this.#counters.saturated += rest.length;
      this.#defer(queue, rest);
    }
  }

  /**
   * The ids of `sorted` a claim by ids did not look at: it locks visible messages in id order up to
   * `limit`, so a full batch examined only the ids up to the last one returned.
   */
  #unexamined(sorted: readonly number[], limit: number, rows: readonly ClaimRow[]): number[] {
    if (limit === 0) return [];
    if (rows.length < limit) return [];
    const last = Math.max(...rows.map((row) => Number(row.msgId)));
    return sorted.filter((id) => id > last);
  }

  #defer(queue: QueueState, ids: readonly number[]): void {
    for (const id of ids) {
      if (queue.deferred.has(id)) continue;
      if (queue.deferred.size >= this.#maxDeferredIds) {
        // Dropping the id loses nothing (the message stays in the queue); the scan finds it.
        queue.scanVisible = true;
        this.#counters.deferredDropped++;
        continue;
      }
      queue.deferred.add(id);
    }
  }

  /** Claims deferred work whenever a slot frees (and rechecks now and then). */
  async #deferredLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const queue of this.#queues) await this.#drainDeferred(queue, signal);
      this.#passed('deferred');
      await this.#slotFreed.wait(this.#pollIntervalMs, signal);
    }
  }

  async #drainDeferred(queue: QueueState, signal: AbortSignal): Promise<void> {
    while (
      !signal.aborted &&
      this.#accepting &&
      this.#free() > 0 &&
      (queue.scanVisible || queue.deferred.size > 0)
    ) {
      // Only what was known before the claim is settled by it: ids deferred meanwhile stay.
      const known = [...queue.deferred].sort((a, b) => a - b);
      if (queue.scanVisible) {
        queue.scanVisible = false;
        const { limit, rows } = await this.#claim(queue, null, 0, 'deferred');
        if (limit === 0 || rows.length >= limit) {
          queue.scanVisible = true;
          if (limit === 0) return;
          continue;
        }
        // Fewer than asked: no visible message was left behind, the known ids included.
        for (const id of known) queue.deferred.delete(id);
      } else {
        const { limit, rows } = await this.#claim(queue, known, 0, 'deferred');
        if (limit === 0) return;
        const rest = new Set(this.#unexamined(known, limit, rows));
        // Examined ids were claimed or are not visible (leased by another worker, gone): done with them.
        for (const id of known) if (!rest.has(id)) queue.deferred.delete(id);
      }
    }
  }

  /** The safety net: visible messages old enough that push had its chance, per queue. */
  async #pollLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const queue of this.#queues) {
        if (signal.aborted || this.#free() <= 0) break;
        await this.#claim(queue, null, this.#pollMinAgeSeconds, 'poll');
      }
      this.#passed('poller');
      await sleep(this.#pollIntervalMs, signal);
    }
  }

  /**
   * One `claim_step_messages` call for up to the free slots, which are reserved while it runs so that
   * concurrent claims never exceed the capacity. Claimed steps start at once.
   */
  async #claim(
    queue: QueueState,
    ids: readonly number[] | null,
    minAgeSeconds: number,
    source: ClaimSource,
  ): Promise<{ limit: number; rows: ClaimRow[] }> {
    // a claim by ids takes at most one message per id
    const limit = ids === null ? this.#free() : Math.min(this.#free(), ids.length);
    if (limit <= 0 || !this.#accepting) return { limit: 0, rows: [] };
    this.#reserved += limit;
    this.#claimsInFlight++;
    let reserved = true;
    const release = (): void => {
      if (reserved) this.#reserved -= limit;
      reserved = false;
    };
    try {
      const { rows } = await this.#db.query<{ msg_id: string; outcome: string; context: unknown }>(
        `SELECT msg_id::text AS msg_id, outcome, context
         FROM tasker.claim_step_messages($1, $2::bigint[], $3, $4, $5, $6, $7)`,
        [
          queue.name,
          ids,
          limit,
          minAgeSeconds,
          this.workerId,
          this.#defaultTimeoutSeconds,
          this.#leaseGraceSeconds,
        ],
      );
      const claims = rows.map((row) => ({ msgId: row.msg_id, outcome: row.outcome, context: row.context }));
      // The reservation is released in the same synchronous run that turns claims into jobs.
      release();
      for (const claim of claims) this.#accept(queue, claim, source);
      return { limit, rows: claims };
    } finally {
      release();
      this.#claimsInFlight--;
      this.#slotFreed.notify();
      this.#settled.notify();
    }
  }

  #accept(queue: QueueState, claim: ClaimRow, source: ClaimSource): void {
    const outcome = CLAIM_OUTCOMES.find((known) => known === claim.outcome);
    if (outcome === undefined) {
      this.#logger.error(
        { worker_id: this.workerId, queue: queue.name, msg_id: claim.msgId, outcome: claim.outcome },
        'unknown claim outcome',
      );
      return;
    }
    this.#counters.claims[outcome]++;
    if (outcome === 'malformed') {
      this.#logger.warn({ queue: queue.name, msg_id: claim.msgId }, 'malformed step message archived');
      return;
    }
    if (outcome === 'lost' || outcome === 'stale') {
      this.#logger.debug(
        { queue: queue.name, msg_id: claim.msgId, outcome },
        'step message acked without work',
      );
      return;
    }
    this.#counters.claimSources[source]++;
    this.#launch(queue, claim, outcome);
  }

  // ---- execution ---------------------------------------------------------------------------------

  #launch(queue: QueueState, claim: ClaimRow, outcome: 'claimed' | 'reclaimed'): void {
    const context = isObject(claim.context) ? claim.context : {};
    const stepUuid = text(context, 'step_uuid');
    const attempt = context.attempt;
    if (stepUuid === undefined || typeof attempt !== 'number' || !Number.isSafeInteger(attempt)) {
      // Without the step and the claim token no result can be stored: the lease expires, the step
      // is reclaimed, and after max_attempts claims it fails as worker_lost.
      this.#counters.invalidClaims++;
      this.#logger.error(
        { queue: queue.name, msg_id: claim.msgId, outcome },
        'claim without step uuid or attempt; left to its lease',
      );
      return;
    }
    const timeoutSeconds = context.timeout_seconds;
    const limitMs =
      typeof timeoutSeconds === 'number' && timeoutSeconds > 0
        ? Math.min(this.#defaultTimeoutMs, timeoutSeconds * 1000)
        : this.#defaultTimeoutMs;
    const leaseTimeoutSeconds =
      typeof timeoutSeconds === 'number' && timeoutSeconds > 0
        ? Math.ceil(timeoutSeconds)
        : this.#defaultTimeoutSeconds;
    const now = Date.now();
    const job: Job = {
      queue: queue.name,
      msgId: claim.msgId,
      stepUuid,
      taskUuid: text(context, 'task_uuid'),
      correlationId: text(context, 'correlation_id'),
      stepName: text(context, 'step_name'),
      attempt,
      startedAt: now,
      limitMs,
      leaseSeconds: leaseTimeoutSeconds + this.#leaseGraceSeconds,
      deadlineAt: now + limitMs,
      phase: 'running',
      abandoned: false,
    };
    if (this.#abandon.signal.aborted) {
      // A claim that returned after the shutdown deadline: not run, left to its lease.
      this.#abandonJob(job);
      return;
    }
    this.#jobs.add(job);
    this.#logger.debug(
      {
        correlation_id: job.correlationId,
        task_uuid: job.taskUuid,
        step_uuid: job.stepUuid,
        step_name: job.stepName,
        attempt,
        outcome,
      },
      'step claimed',
    );
    void this.#run(job, context);
  }

  /** Never rejects: handler faults become results, storage faults are logged and left to the lease. */
  async #run(job: Job, context: Fields): Promise<void> {
    try {
      const result = await this.#execute(job, context);
      if (result === null || job.abandoned) return;
      job.phase = 'storing';
      if (result.success) this.#counters.results.succeeded++;
      else if (result.metadata.retryable) this.#counters.results.failedRetryable++;
      else this.#counters.results.failedPermanent++;
      const committed = await this.#complete(job, result);
      // after the commit, never before; enqueue neither waits nor throws
      if (committed) this.#publishEvents(job, context, result);
    } catch (error) {
      this.#logger.error(
        { correlation_id: job.correlationId, task_uuid: job.taskUuid, step_uuid: job.stepUuid, error },
        'step run failed; left to its lease',
      );
    } finally {
      this.#jobs.delete(job);
      this.#slotFreed.notify();
      this.#settled.notify();
    }
  }

  /**
   * Runs the handler until it returns a real result. A checkpoint yield is stored (and the lease
   * renewed) and the handler runs again under the same claim with the new checkpoint in its
   * context; no attempt is used. Null: the claim was lost while storing a checkpoint, nothing is
   * reported.
   */
  async #execute(job: Job, context: Fields): Promise<StepExecutionResult | null> {
    let claimed: ReturnType<typeof parseClaimedStep>;
    try {
      claimed = parseClaimedStep(context);
    } catch (error) {
      // The step cannot run from this context (e.g. its template no longer has the step): a
      // permanent failure, so that the task does not wait for it forever.
      this.#counters.invalidClaims++;
      this.#logger.warn(
        { correlation_id: job.correlationId, task_uuid: job.taskUuid, step_uuid: job.stepUuid, error },
        'invalid claim context',
      );
      return failureResult({
        stepUuid: job.stepUuid,
        executionTimeMs: 0,
        workerId: this.workerId,
        message: `the claimed step cannot run: ${errorMessage(error)}`,
        retryable: false,
        errorType: INVALID_CLAIM_ERROR_TYPE,
        context:
          error instanceof ValidationError ? { issues: error.issues.map((issue) => ({ ...issue })) } : {},
      });
    }
    let data: StepContextData = claimed.context;
    for (let yields = 1; ; yields++) {
      const result = await executeHandler(this.#handlers, claimed.step, data, {
        timeoutMs: this.#defaultTimeoutMs,
        workerId: this.workerId,
      });
      if (job.abandoned) return result;
      let yielded: CheckpointYieldData | null;
      try {
        yielded = parseCheckpointYield(result);
      } catch (error) {
        // a hand-made yield marker on a result that is not a checkpoint: a handler bug
        return this.#checkpointFailure(job, `invalid checkpoint yield: ${errorMessage(error)}`, {
          retryable: false,
          errorType: ERROR_TYPES.handler,
        });
      }
      if (yielded === null) return result;
      if (yields > this.#maxCheckpointYields) {
        this.#counters.checkpoints.limitExceeded++;
        return this.#checkpointFailure(
          job,
          `the handler yielded more than ${this.#maxCheckpointYields} checkpoints under one claim`,
          { retryable: false, errorType: CHECKPOINT_LIMIT_ERROR_TYPE, yielded },
        );
      }
      const stored = await this.#storeCheckpoint(job, yielded);
      if (stored !== true) return stored;
      if (job.abandoned) return null;
      data = { ...data, checkpoint: nextCheckpoint(data.checkpoint, yielded, new Date().toISOString()) };
      // the next run has its own time limit, as the renewed lease does
      job.deadlineAt = Date.now() + job.limitMs;
    }
  }

  /**
   * Stores a checkpoint yield under the claim (`tasker.checkpoint_step`), renewing the lease, within
   * `checkpointTimeoutMs`. True when stored; null when the claim is gone; a retryable
   * `checkpoint_error` failure when the database fails or does not answer in time (the retry resumes
   * from the last stored checkpoint; a write that lands late is harmless: it is a valid checkpoint).
   */
  async #storeCheckpoint(job: Job, yielded: CheckpointYieldData): Promise<true | null | StepExecutionResult> {
    const fields = { correlation_id: job.correlationId, task_uuid: job.taskUuid, step_uuid: job.stepUuid };
    const query = this.#db.query<{ stored: boolean }>(
      'SELECT tasker.checkpoint_step($1, $2, $3, $4::jsonb, $5, $6, $7) AS stored',
      [
        job.stepUuid,
        this.workerId,
        job.attempt,
        JSON.stringify(checkpointPayload(yielded)),
        job.queue,
        job.msgId,
        job.leaseSeconds,
      ],
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#checkpointTimeoutMs);
    });
    let outcome: Awaited<typeof query> | 'timeout';
    try {
      outcome = await Promise.race([query, timeout]);
    } catch (error) {
      this.#counters.checkpoints.errors++;
      this.#logger.warn({ ...fields, error }, 'checkpoint not stored');
      return this.#checkpointFailure(job, `the checkpoint could not be stored: ${errorMessage(error)}`, {
        retryable: true,
        errorType: CHECKPOINT_ERROR_TYPE,
        yielded,
      });
    } finally {
      clearTimeout(timer);
    }
    if (outcome === 'timeout') {
      query.catch(() => undefined);
      this.#counters.checkpoints.errors++;
      this.#logger.warn({ ...fields, timeout_ms: this.#checkpointTimeoutMs }, 'checkpoint timed out');
      return this.#checkpointFailure(
        job,
        `the checkpoint was not stored within ${this.#checkpointTimeoutMs} ms`,
        { retryable: true, errorType: CHECKPOINT_ERROR_TYPE, yielded },
      );
    }
    if (outcome.rows[0]?.stored === true) {
      this.#counters.checkpoints.stored++;
      this.#logger.debug(
        { ...fields, cursor: yielded.cursor, items_processed: yielded.itemsProcessed },
        'checkpoint stored',
      );
      return true;
    }
    this.#counters.checkpoints.lost++;
    this.#logger.warn(fields, 'claim lost; checkpoint dropped and the handler not run again');
    return null;
  }

  #checkpointFailure(
    job: Job,
    message: string,
    options: { retryable: boolean; errorType: string; yielded?: CheckpointYieldData },
  ): StepExecutionResult {
    const { yielded } = options;
    return failureResult({
      stepUuid: job.stepUuid,
      executionTimeMs: 0,
      workerId: this.workerId,
      message,
      retryable: options.retryable,
      errorType: options.errorType,
      context:
        yielded === undefined ? {} : { cursor: yielded.cursor, items_processed: yielded.itemsProcessed },
    });
  }

  /**
   * Stores the result, moves the step, acks the message and hands the result on (or applies it), in
   * one transaction. A database error is retried with backoff; when it persists the message is left
   * leased: the lease expires and another worker reclaims the step.
   */
  /** Hands a committed step's declared events to the publisher (which runs them later). */
  #publishEvents(job: Job, context: Fields, result: StepExecutionResult): void {
    if (this.#publisher === null) return;
    const declarations = eventDeclarations(context.step_definition);
    const namespace = text(context, 'namespace');
    if (declarations.length === 0 || namespace === undefined) return;
    this.#publisher.enqueue({
      namespace,
      taskUuid: job.taskUuid ?? null,
      stepUuid: job.stepUuid,
      stepName: job.stepName ?? null,
      correlationId: job.correlationId ?? null,
      attempt: job.attempt,
      declarations,
      result,
    });
  }

  /** True when the result was stored (the transaction committed). */
  async #complete(job: Job, result: StepExecutionResult): Promise<boolean> {
    const fields = { correlation_id: job.correlationId, task_uuid: job.taskUuid, step_uuid: job.stepUuid };
    for (let attempt = 1; ; attempt++) {
      // successors are claimed into free slots, reserved while the call runs (as #claim does)
      const chainLimit = this.#claimSuccessors && this.#accepting ? Math.max(0, this.#free()) : 0;
      this.#reserved += chainLimit;
      let reserved = true;
      const release = (): void => {
        if (reserved) this.#reserved -= chainLimit;
        reserved = false;
      };
      try {
        const { rows } = await this.#db.query<{ r: unknown }>(
          'SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12) AS r',
          [
            job.queue,
            job.msgId,
            job.stepUuid,
            this.workerId,
            job.attempt,
            JSON.stringify(result),
            this.#resultQueue,
            this.#inline,
            this.#batchSize,
            chainLimit,
            this.#defaultTimeoutSeconds,
            this.#leaseGraceSeconds,
          ],
        );
        const outcome = rows[0]?.r;
        if (isObject(outcome) && outcome.completed === true) {
          this.#counters.completions.completed++;
          this.#logger.debug({ ...fields, success: result.success }, 'step result stored');
          release();
          this.#acceptChained(job.queue, outcome.claims);
          return true;
        }
        this.#counters.completions.lost++;
        const detail = isObject(outcome) ? outcome : {};
        this.#logger.warn(
          { ...fields, reason: detail.reason, step_state: detail.step_state },
          'claim lost; result dropped',
        );
        return false;
      } catch (error) {
        if (attempt >= this.#completionAttempts || this.#abandon.signal.aborted) {
          this.#counters.completions.errors++;
          this.#logger.error({ ...fields, attempts: attempt, error }, 'result not stored; left to its lease');
          return false;
        }
        this.#counters.completions.retries++;
        this.#logger.warn({ ...fields, attempt, error }, 'storing the result failed; retrying');
        release();
        await sleep(this.#completionBackoffMs * 2 ** (attempt - 1), this.#abandon.signal);
      } finally {
        release();
      }
    }
  }

  /** Starts the successor steps a completion claimed (their messages were not notified). */
  #acceptChained(queueName: string, claims: unknown): void {
    const queue = this.#queues.find((candidate) => candidate.name === queueName);
    if (queue === undefined || !Array.isArray(claims)) return;
    for (const claim of claims) {
      if (!isObject(claim)) continue;
      this.#accept(
        queue,
        { msgId: String(claim.msg_id), outcome: String(claim.outcome), context: claim.context },
        'chained',
      );
    }
  }
}
