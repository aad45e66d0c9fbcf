/**
 * The orchestration engine (B §1): task intake (from code and from the `orchestration_task_requests`
 * queue), result processing (`orchestration_step_results`), retry timers and the readiness poller.
 * The decisions themselves are SQL functions (migration 0006), one call per hop: the engine moves
 * message ids and task ids to them and keeps the loops alive.
 *
 * Any number of engines may run on one database: there is no leader and no ownership; message rows
 * and task rows are claimed with FOR UPDATE SKIP LOCKED and every transition is compare-and-swap.
 * Every loop is supervised (a crash is logged, counted, restarted with backoff); stop() drains
 * within `shutdownTimeoutMs`.
 */
import { randomUUID } from 'node:crypto';
import {
  type CreatedTask,
  createPreparedTask,
  createStartedTasks,
  type Logger,
  type LoopHealth,
  prepareTask,
  type RegisteredTemplate,
  SILENT_LOGGER,
  Supervisor,
  sleep,
  type TaskEvaluation,
  TaskerError,
  type TaskRequest,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
import type { Database, Queryable } from '@tasker/db';
import { type ListenerItem, Pgmq, PgmqListener, type Subscription } from '@tasker/pgmq';
import { listenChannel } from './channel.ts';
import { CreateBatcher } from './create-batcher.ts';
import { type EngineSettings, engineSettings, hasPolling, hasPush } from './options.ts';

export interface EngineOptions extends Partial<EngineSettings> {
  db: Database;
  /** Template lookups (a cached registry on `db` by default). */
  registry?: TemplateRegistry;
  /** Recorded on every transition this engine writes (audit only). Default: a new UUID. */
  processorUuid?: string;
  logger?: Logger;
}

export interface EngineMetrics {
  tasksCreated: number;
  /** Of those, created in a transaction with others (create-batcher.ts). */
  tasksCreatedBatched: number;
  /** Creations waiting for a transaction now (at most `createQueueCapacity`). */
  createsWaiting: number;
  requestsRejected: number;
  resultsApplied: number;
  resultsDuplicate: number;
  resultsMalformed: number;
  resultsFailed: number;
  readyTasksEvaluated: number;
  retryTimersScheduled: number;
  retryTimersFired: number;
  /** Retries left to the readiness poller because `maxRetryTimers` timers were already held. */
  retryTimersDropped: number;
  retryTimersPending: number;
}

export interface EngineHealth {
  status: 'healthy' | 'degraded' | 'stopped';
  processorUuid: string;
  listenerConnected: boolean | null;
  loops: LoopHealth[];
}

interface ProcessedRow {
  msg_id: string;
  outcome: 'applied' | 'duplicate' | 'malformed' | 'failed';
  detail: { task?: TaskEvaluation; step_uuid?: string; error?: string; sqlstate?: string } | null;
  [key: string]: unknown;
}

const RETRY_CHANNEL = 'tasker_retry_scheduled';
/** Passes a poller runs back to back while it keeps finding full batches, before it sleeps again. */
const MAX_DRAIN_PASSES = 50;
/** A loop that crashed this recently makes the engine report itself degraded. */
const RECENT_CRASH_MS = 60_000;
/** Error codes of task requests that would fail the same way every time. */
const REJECTED_REQUEST_CODES = new Set(['VALIDATION_ERROR', 'NOT_FOUND', 'CONFLICT']);

/** The request of a `TaskRequestMessage` (B §1.4: {request_id, task_request, metadata}). */
function taskRequestOf(message: unknown): unknown {
  if (typeof message === 'object' && message !== null && 'task_request' in message)
    return message.task_request;
  throw new TaskerError('VALIDATION_ERROR', 'a task request message needs a task_request object');
}

export class OrchestrationEngine {
  readonly processorUuid: string;
  readonly settings: EngineSettings;
  readonly #db: Database;
  readonly #registry: TemplateRegistry;
  readonly #logger: Logger;
  readonly #pgmq: Pgmq;
  readonly #batcher: CreateBatcher;
  #listener: PgmqListener | null = null;
  #supervisor: Supervisor | null = null;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #stopping: Promise<void> | null = null;
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #metrics: Omit<EngineMetrics, 'retryTimersPending' | 'tasksCreatedBatched' | 'createsWaiting'> = {
    tasksCreated: 0,
    requestsRejected: 0,
    resultsApplied: 0,
    resultsDuplicate: 0,
    resultsMalformed: 0,
    resultsFailed: 0,
    readyTasksEvaluated: 0,
    retryTimersScheduled: 0,
    retryTimersFired: 0,
    retryTimersDropped: 0,
  };

  constructor(options: EngineOptions) {
    const { db, registry, processorUuid, logger, ...overrides } = options;
    this.settings = engineSettings(overrides);
    this.#db = db;
    this.#registry = registry ?? new TemplateRegistry(db);
    this.#logger = logger ?? SILENT_LOGGER;
    this.#pgmq = new Pgmq(db);
    this.processorUuid = processorUuid ?? randomUUID();
    this.#batcher = new CreateBatcher({
      one: (prepared) => createPreparedTask(this.#db, prepared, this.#createOptions()),
      many: (prepared) =>
        createStartedTasks(this.#db, prepared, {
          processorUuid: this.processorUuid,
          batchSize: this.settings.stepEnqueueBatchSize,
        }),
      maxBatch: this.settings.createBatchSize,
      maxInFlight: this.settings.createBatchesInFlight,
      maxWaiting: this.settings.createQueueCapacity,
    });
  }

  /** Creates the orchestration queues and starts the loops the two deployment modes ask for. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new TaskerError('INVALID_STATE', `the engine is ${this.#state}`);
    this.#state = 'running';
    const { queues, orchestrationMode, readinessMode } = this.settings;
    await this.#pgmq.createQueue(queues.stepResults);
    await this.#pgmq.createQueue(queues.taskRequests);
    const supervisor = new Supervisor({ logger: this.#logger });
    this.#supervisor = supervisor;
    if (hasPush(orchestrationMode)) {
      this.#listener = new PgmqListener(this.#db, {
        onError: (error) => this.#logger.warn({ error }, 'queue listener error'),
      });
      await this.#listener.start();
      supervisor.start('results-push', (signal) =>
        this.#consume(queues.stepResults, signal, (ids) => this.#processResults(ids, 0)),
      );
      supervisor.start('requests-push', (signal) =>
        this.#consume(queues.taskRequests, signal, (ids) => this.#processRequests(ids, 0)),
      );
    }
    if (hasPolling(orchestrationMode)) {
      const { fallbackMinAgeSeconds: age } = this.settings;
      supervisor.start('results-poll', (signal) => this.#poll(signal, () => this.#processResults(null, age)));
      supervisor.start('requests-poll', (signal) =>
        this.#poll(signal, () => this.#processRequests(null, age)),
      );
    }
    if (hasPush(readinessMode)) {
      supervisor.start('retry-listener', (signal) =>
        listenChannel(
          this.#db,
          RETRY_CHANNEL,
          (payload) => this.#onRetryScheduled(payload),
          signal,
          () => this.#track(this.#catchUpRetries()),
        ),
      );
    }
    if (hasPolling(readinessMode)) {
      supervisor.start('readiness-poll', (signal) =>
        this.#poll(signal, () => this.#processReadyTasks(), this.settings.readinessPollIntervalMs),
      );
    }
    this.#logger.info(
      { processor_uuid: this.processorUuid, orchestrationMode, readinessMode },
      'engine started',
    );
  }

  /**
   * Task intake from code (the API calls this): validates the request, looks the template up,
   * creates the task and its steps and enqueues the first ready steps, in one statement.
   * Creations that arrive together are written together (create-batcher.ts).
   * Errors: ValidationError (bad request), NotFoundError (no such template), ConflictError
   * (duplicate identity), IntakeOverloadedError (`createQueueCapacity` creations already waiting;
   * nothing written).
   */
  async createTask(body: unknown): Promise<CreatedTask> {
    const request = validateTaskRequest(body);
    const prepared = prepareTask(request, await this.#lookup(request));
    const created = await this.#batcher.create(prepared);
    this.#created(created);
    return created;
  }

  #lookup(request: TaskRequest): Promise<RegisteredTemplate> {
    return this.#registry.get(request.namespace, request.name, request.version);
  }

  async #create(q: Queryable, request: TaskRequest, registered: RegisteredTemplate): Promise<CreatedTask> {
    const created = await createPreparedTask(q, prepareTask(request, registered), this.#createOptions());
    this.#created(created);
    return created;
  }

  #createOptions(): { processorUuid: string; start: { batchSize: number } } {
    return { processorUuid: this.processorUuid, start: { batchSize: this.settings.stepEnqueueBatchSize } };
  }

  /** Bookkeeping of a created task: the metric, a debug line, and a retry timer if it needs one. */
  #created(created: CreatedTask): void {
    this.#metrics.tasksCreated++;
    this.#scheduleRetry(created.evaluation);
    this.#logger.debug(
      {
        correlation_id: created.correlationId,
        task_uuid: created.taskUuid,
        state: created.evaluation?.state,
      },
      'task created',
    );
  }

  // --- push and poll ---------------------------------------------------------------------------

  /**
   * Consumes one queue's notifications: the ids of what arrived together are handled as one batch;
   * after a listener reconnect everything visible is taken (notifications were missed meanwhile).
   */
  async #consume(
    queue: string,
    signal: AbortSignal,
    handle: (ids: number[] | null) => Promise<number>,
  ): Promise<void> {
    const listener = this.#listener;
    if (listener === null) return;
    const subscription: Subscription = await listener.subscribeQueue(queue);
    const close = () => subscription.close();
    signal.addEventListener('abort', close, { once: true });
    try {
      // what arrived before the subscription (a restart, an engine that was down) is taken now
      await this.#track(this.#drain(() => handle(null), signal));
      for (;;) {
        const first = await subscription.next();
        if (first === undefined) return;
        const items: ListenerItem[] = [first];
        while (subscription.buffered > 0 && items.length < this.settings.messageBatchSize) {
          const item = await subscription.next();
          if (item === undefined) break;
          items.push(item);
        }
        if (items.some((item) => item.type === 'reconnected')) {
          await this.#track(this.#drain(() => handle(null)));
          continue;
        }
        const ids = items.flatMap((item) =>
          item.type === 'batch_ready' ? item.msgIds : 'msgId' in item ? [item.msgId] : [],
        );
        if (ids.length > 0) await this.#track(handle(ids));
      }
    } finally {
      signal.removeEventListener('abort', close);
      subscription.close();
    }
  }

  /** Runs `pass` (draining full batches) every interval until stopped. */
  async #poll(
    signal: AbortSignal,
    pass: () => Promise<number>,
    intervalMs = this.settings.fallbackPollIntervalMs,
  ): Promise<void> {
    while (!signal.aborted) {
      await this.#track(this.#drain(pass, signal));
      await sleep(intervalMs, signal);
    }
  }

  async #drain(pass: () => Promise<number>, signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < MAX_DRAIN_PASSES && !signal?.aborted; i++) {
      if ((await pass()) === 0) return;
    }
  }

  // --- results -------------------------------------------------------------------------------

  /**
   * Applies and acks result messages in one call (`tasker.process_step_results`): the given ids
   * (push), or visible messages at least `minAgeSeconds` old (poll). Returns how many were taken
   * when the batch was full (so a poller drains), else 0.
   */
  async #processResults(ids: number[] | null, minAgeSeconds: number): Promise<number> {
    const { queues, messageBatchSize, stepEnqueueBatchSize, resultRetryDelaySeconds } = this.settings;
    const limit = ids === null ? messageBatchSize : ids.length;
    const { rows } = await this.#db.query<ProcessedRow>(
      'SELECT msg_id::text, outcome, detail FROM tasker.process_step_results($1, $2, $3, $4, $5, $6, $7)',
      [
        queues.stepResults,
        ids,
        limit,
        minAgeSeconds,
        this.processorUuid,
        stepEnqueueBatchSize,
        resultRetryDelaySeconds,
      ],
    );
    for (const row of rows) {
      switch (row.outcome) {
        case 'applied':
          this.#metrics.resultsApplied++;
          this.#scheduleRetry(row.detail?.task);
          break;
        case 'duplicate':
          this.#metrics.resultsDuplicate++;
          break;
        case 'malformed':
          this.#metrics.resultsMalformed++;
          this.#logger.warn(
            { msg_id: row.msg_id, queue: queues.stepResults },
            'malformed result message archived',
          );
          break;
        case 'failed':
          this.#metrics.resultsFailed++;
          this.#logger.error(
            {
              step_uuid: row.detail?.step_uuid,
              msg_id: row.msg_id,
              sqlstate: row.detail?.sqlstate,
              error: row.detail?.error,
            },
            'step result not applied; it will be retried',
          );
          break;
      }
    }
    return ids === null && rows.length >= limit ? rows.length : 0;
  }

  // --- task requests --------------------------------------------------------------------------

  async #processRequests(ids: number[] | null, minAgeSeconds: number): Promise<number> {
    const queue = this.settings.queues.taskRequests;
    const limit = this.settings.messageBatchSize;
    let candidates = ids;
    if (candidates === null) {
      const { rows } = await this.#db.query<{ msg_id: string }>(
        `SELECT m.msg_id::text FROM pgmq.messages m
         WHERE m.queue_name = $1 AND m.vt <= clock_timestamp()
           AND m.enqueued_at <= clock_timestamp() - make_interval(secs => $2)
         ORDER BY m.msg_id LIMIT $3`,
        [queue, minAgeSeconds, limit],
      );
      candidates = rows.map((row) => Number(row.msg_id));
    }
    for (const id of candidates) await this.#processRequest(queue, id);
    return ids === null && candidates.length >= limit ? candidates.length : 0;
  }

  /**
   * One task request. It is read and checked first (request shape, template lookup: no transaction
   * may wait on another connection, which on PGlite is the same one), then one transaction locks
   * the message row (skipped when another engine has it), creates and starts the task and deletes
   * the message. A request that can never succeed (invalid, unknown template, duplicate identity)
   * is archived with a log line: kept, not retried. Any other failure leaves it for redelivery.
   */
  async #processRequest(queue: string, msgId: number): Promise<void> {
    const { rows } = await this.#db.query<{ message: unknown }>(
      'SELECT m.message FROM pgmq.messages m WHERE m.queue_name = $1 AND m.msg_id = $2 AND m.vt <= clock_timestamp()',
      [queue, msgId],
    );
    const message = rows[0]?.message;
    if (message === undefined) return;
    let request: TaskRequest;
    let registered: RegisteredTemplate;
    try {
      request = validateTaskRequest(taskRequestOf(message));
      registered = await this.#lookup(request);
    } catch (error) {
      await this.#reject(this.#pgmq, queue, msgId, error);
      return;
    }
    await this.#db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `SELECT 1 FROM pgmq.messages m
         WHERE m.queue_name = $1 AND m.msg_id = $2 AND m.vt <= clock_timestamp()
         FOR UPDATE SKIP LOCKED`,
        [queue, msgId],
      );
      if (rowCount === 0) return;
      const pgmq = this.#pgmq.using(tx);
      await tx.query('SAVEPOINT create_task');
      try {
        await this.#create(tx, request, registered);
        await pgmq.delete(queue, msgId);
      } catch (error) {
        await tx.query('ROLLBACK TO SAVEPOINT create_task');
        await this.#reject(pgmq, queue, msgId, error);
      }
    });
  }

  /** Archives a request that can never succeed; rethrows anything else (the message stays). */
  async #reject(pgmq: Pgmq, queue: string, msgId: number, error: unknown): Promise<void> {
    if (!(error instanceof TaskerError && REJECTED_REQUEST_CODES.has(error.code))) throw error;
    await pgmq.archive(queue, msgId);
    this.#metrics.requestsRejected++;
    this.#logger.warn(
      { msg_id: msgId, queue, code: error.code, error },
      'task request rejected and archived',
    );
  }

  // --- readiness ------------------------------------------------------------------------------

  async #processReadyTasks(): Promise<number> {
    const { readinessBatchSize, stepEnqueueBatchSize } = this.settings;
    const { rows } = await this.#db.query<{ e: TaskEvaluation }>(
      'SELECT e FROM tasker.process_ready_tasks($1, $2, $3) e',
      [readinessBatchSize, this.processorUuid, stepEnqueueBatchSize],
    );
    this.#metrics.readyTasksEvaluated += rows.length;
    for (const row of rows) this.#scheduleRetry(row.e);
    return rows.length >= readinessBatchSize ? rows.length : 0;
  }

  /** Timers for the retries already waiting (the notifications sent before listening are gone). */
  async #catchUpRetries(): Promise<void> {
    const { rows } = await this.#db.query<{ task_uuid: string; next_retry_at: string }>(
      `SELECT ws.task_uuid, to_json(min(ws.next_retry_at)) #>> '{}' AS next_retry_at FROM tasker.workflow_steps ws
       WHERE ws.current_state = 'waiting_for_retry' AND ws.next_retry_at IS NOT NULL
       GROUP BY ws.task_uuid ORDER BY 2 LIMIT $1`,
      [this.settings.maxRetryTimers],
    );
    for (const row of rows)
      this.#scheduleRetry({ task_uuid: row.task_uuid, found: true, next_retry_at: row.next_retry_at });
  }

  #onRetryScheduled(payload: string): void {
    try {
      const parsed: unknown = JSON.parse(payload);
      if (
        typeof parsed === 'object' &&
        parsed !== null &&
        'task_uuid' in parsed &&
        'next_retry_at' in parsed
      ) {
        const { task_uuid, next_retry_at } = parsed;
        if (typeof task_uuid === 'string' && typeof next_retry_at === 'string') {
          this.#scheduleRetry({ task_uuid, found: true, next_retry_at });
          return;
        }
      }
      throw new Error('missing task_uuid or next_retry_at');
    } catch (error) {
      this.#logger.warn({ channel: RETRY_CHANNEL, error }, 'malformed retry notification ignored');
    }
  }

  /**
   * Wakes the task when its earliest retry comes due (one timer per task, the earliest kept). The
   * timers are an optimization: the readiness poller finds due retries whatever happens here.
   */
  #scheduleRetry(evaluation: TaskEvaluation | undefined): void {
    const nextRetryAt = evaluation?.next_retry_at;
    if (!nextRetryAt || this.#state !== 'running' || !hasPush(this.settings.readinessMode)) return;
    const at = Date.parse(nextRetryAt);
    if (Number.isNaN(at)) return;
    const task = evaluation.task_uuid;
    const existing = this.#timers.get(task);
    if (existing !== undefined && existing.at <= at) return;
    if (existing === undefined && this.#timers.size >= this.settings.maxRetryTimers) {
      this.#metrics.retryTimersDropped++;
      return;
    }
    if (existing !== undefined) clearTimeout(existing.timer);
    // a few ms past the due time, and never a tight loop when the clocks disagree
    const delay = Math.max(25, at - Date.now() + 5);
    const timer = setTimeout(() => {
      this.#timers.delete(task);
      void this.#track(this.#wake(task));
    }, delay);
    timer.unref();
    this.#timers.set(task, { at, timer });
    this.#metrics.retryTimersScheduled++;
  }

  async #wake(task: string): Promise<void> {
    this.#metrics.retryTimersFired++;
    try {
      const { rows } = await this.#db.query<{ e: TaskEvaluation }>(
        'SELECT tasker.evaluate_task($1, $2, $3) AS e',
        [task, this.processorUuid, this.settings.stepEnqueueBatchSize],
      );
      this.#scheduleRetry(rows[0]?.e);
    } catch (error) {
      this.#logger.error({ task_uuid: task, error }, 'retry wake-up failed; the readiness poller will retry');
    }
  }

  // --- lifecycle ------------------------------------------------------------------------------

  #track<T>(work: Promise<T>): Promise<T> {
    this.#inFlight.add(work);
    const forget = () => this.#inFlight.delete(work);
    work.then(forget, forget);
    return work;
  }

  /**
   * Stops intake and the loops, lets in-flight work finish within `shutdownTimeoutMs`, then closes
   * the listener. Unfinished work is not lost: its messages were not acked and come back.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    const timeout = new AbortController();
    const deadline = sleep(this.settings.shutdownTimeoutMs, timeout.signal).then(() => 'timeout' as const);
    const drained = Promise.all([this.#supervisor?.stop(), ...this.#inFlight]).then(() => 'drained' as const);
    const outcome = await Promise.race([drained, deadline]);
    timeout.abort();
    if (outcome === 'timeout')
      this.#logger.warn({ in_flight: this.#inFlight.size }, 'shutdown deadline reached');
    await this.#listener?.close();
    this.#state = 'stopped';
    this.#logger.info({ processor_uuid: this.processorUuid, outcome }, 'engine stopped');
  }

  metrics(): EngineMetrics {
    return {
      ...this.#metrics,
      tasksCreatedBatched: this.#batcher.batched,
      createsWaiting: this.#batcher.waiting,
      retryTimersPending: this.#timers.size,
    };
  }

  health(): EngineHealth {
    const loops = this.#supervisor?.health() ?? [];
    const listenerConnected = this.#listener?.connected ?? null;
    const recentCrash = (loop: LoopHealth) =>
      loop.lastErrorAt !== null && Date.now() - loop.lastErrorAt.getTime() < RECENT_CRASH_MS;
    const degraded = loops.some(recentCrash) || listenerConnected === false;
    return {
      status: this.#state === 'running' ? (degraded ? 'degraded' : 'healthy') : 'stopped',
      processorUuid: this.processorUuid,
      listenerConnected,
      loops,
    };
  }
}
