/**
 * The `pgmq` suite: the queue on PostgreSQL, in a throwaway database with the pgmq migrations.
 *
 * - `notify_rtt` (latency): `send` with notify in this process → the `PgmqListener` subscription of
 *   another process yields the `message_with_payload` event. t0 is taken just before `send` (one
 *   autocommit statement, so the commit) and travels in the message; the child takes t1 on the
 *   same wall clock (`performance.timeOrigin + performance.now()`). Sequential: one message in
 *   flight at a time.
 * - `send_read_archive` (rate): a producer sends N messages one at a time (with notify) while a
 *   consumer, on its own connection, does `read(limit 1)` + `archive(id)` until all N are
 *   archived. Rate = N / (first send → last archive).
 * - `batch_100` (rate): the same with `sendBatch` of 100 and `read(limit 100)` + `archive(ids)`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createPostgresDatabase, type Database } from '@tasker/db';
import { Pgmq, PgmqListener, pgmqMigrations } from '@tasker/pgmq';
import {
  type BenchCase,
  type BenchDatabase,
  backendCpuMeter,
  backendPid,
  choiceOption,
  createBenchDatabase,
  intOption,
  latencyCase,
  monotonicMs,
  ownCpuUs,
  rateCase,
  type Suite,
  wallClockMs,
  withTimeout,
} from '../lib.ts';
import {
  type ChildMessage,
  type ParentMessage,
  type Produced,
  payload,
  produceMessages,
  type RttMessage,
} from './pgmq-child.ts';

const CHILD_SCRIPT = fileURLToPath(new URL('./pgmq-child.ts', import.meta.url));
/** `worker_{ns}_queue` ⇒ channel `pgmq_message_ready.{ns}`; one queue (and channel) per case. */
const RTT_QUEUE = 'worker_bench_queue';
const SINGLE_QUEUE = 'worker_bench_single_queue';
const BATCH_QUEUE = 'worker_bench_batch_queue';
const BATCH_SIZE = 100;
const VISIBILITY_TIMEOUT_S = 30;
const STEP_TIMEOUT_MS = 30_000;
/** A throughput round that takes longer has gone wrong (the targets put one at a few seconds). */
const CONSUME_TIMEOUT_MS = 300_000;

interface Waiter<M> {
  accept(message: ChildMessage): boolean;
  resolve(message: M): void;
  reject(error: Error): void;
}

/** A forked child and a mailbox of its IPC messages. */
class Child {
  readonly process: ChildProcess;
  readonly #inbox: ChildMessage[] = [];
  readonly #waiters: Waiter<ChildMessage>[] = [];
  #failure: Error | null = null;

  private constructor(child: ChildProcess) {
    this.process = child;
    child.on('message', (message: unknown) => this.#deliver(message as ChildMessage));
    child.on('exit', (code, signal) => {
      this.#failure ??= new Error(`pgmq child exited (code ${code}, signal ${signal})`);
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure);
    });
  }

  static async start(url: string, args: readonly string[]): Promise<Child> {
    const child = new Child(
      fork(CHILD_SCRIPT, args, {
        env: { ...process.env, BENCH_DATABASE_URL: url },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    try {
      await child.receive('ready');
    } catch (error) {
      await child.stop();
      throw error;
    }
    return child;
  }

  #deliver(message: ChildMessage): void {
    if (message.type === 'failed') this.#failure = new Error(`pgmq child failed: ${message.message}`);
    const index = this.#waiters.findIndex((waiter) => waiter.accept(message));
    const waiter = index >= 0 ? this.#waiters.splice(index, 1)[0] : undefined;
    if (waiter) waiter.resolve(message);
    else this.#inbox.push(message);
  }

  send(message: ParentMessage): void {
    if (this.#failure) throw this.#failure;
    this.process.send(message);
  }

  /** The next message of `type` (queued or future); rejects when the child fails, exits or is too slow. */
  receive<T extends ChildMessage['type']>(
    type: T,
    timeoutMs = STEP_TIMEOUT_MS,
  ): Promise<Extract<ChildMessage, { type: T }>> {
    const accept = (message: ChildMessage) => message.type === type || message.type === 'failed';
    const settle = (message: ChildMessage): Extract<ChildMessage, { type: T }> => {
      if (message.type === 'failed') throw new Error(`pgmq child failed: ${message.message}`);
      return message as Extract<ChildMessage, { type: T }>;
    };
    const index = this.#inbox.findIndex(accept);
    const queued = index >= 0 ? this.#inbox.splice(index, 1)[0] : undefined;
    if (queued) return Promise.resolve().then(() => settle(queued));
    if (this.#failure) return Promise.reject(this.#failure);
    const received = new Promise<ChildMessage>((resolve, reject) =>
      this.#waiters.push({ accept, resolve, reject }),
    );
    return withTimeout(received.then(settle), timeoutMs, `waiting for ${type} from the pgmq child`);
  }

  /** Asks the child to stop and waits for it to exit; kills it if it does not. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = once(this.process, 'exit');
    if (this.process.connected) this.process.send({ type: 'stop' } satisfies ParentMessage);
    try {
      await withTimeout(exited, 5000, 'pgmq child exit');
    } catch {
      this.process.kill('SIGKILL');
      await exited;
    }
  }
}

/** Estimates the offset between this process's wall clock and the child's over IPC ping-pong. */
async function clockCheck(
  child: Child,
  rounds: number,
): Promise<{ ipc_rtt_min_ms: number; offset_ms: number }> {
  let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
  for (let round = 0; round < rounds; round++) {
    const pong = child.receive('pong');
    child.send({ type: 'ping', sentAt: wallClockMs() });
    const reply = await pong;
    const receivedAt = wallClockMs();
    const rtt = receivedAt - reply.sentAt;
    if (rtt < best.rtt) best = { rtt, offset: reply.childAt - (reply.sentAt + receivedAt) / 2 };
  }
  const round3 = (value: number) => Math.round(value * 1000) / 1000;
  return { ipc_rtt_min_ms: round3(best.rtt), offset_ms: round3(best.offset) };
}

async function notifyRtt(
  bench: BenchDatabase,
  options: { samples: number; warmup: number },
  log: (message: string) => void,
): Promise<{ result: BenchCase; clock: { ipc_rtt_min_ms: number; offset_ms: number } }> {
  const db = createPostgresDatabase({
    url: bench.url,
    pool: { max: 1 },
    applicationName: 'tasker-bench-sender',
  });
  const pgmq = new Pgmq(db);
  await pgmq.createQueue(RTT_QUEUE);
  const child = await Child.start(bench.url, ['listener', RTT_QUEUE]);
  try {
    const clock = await clockCheck(child, 200);
    log(`notify_rtt: clock check ${JSON.stringify(clock)}`);
    const samples: number[] = [];
    const total = options.warmup + options.samples;
    for (let seq = 0; seq < total; seq++) {
      const sample = child.receive('sample');
      const t0 = wallClockMs();
      const message: RttMessage = { seq, t0 };
      const [, received] = await Promise.all([pgmq.send(RTT_QUEUE, message), sample]);
      if (received.seq !== seq) throw new Error(`notify_rtt: expected sample ${seq}, got ${received.seq}`);
      if (seq >= options.warmup) samples.push(received.ms);
    }
    return { result: latencyCase('notify_rtt', samples), clock };
  } finally {
    await child.stop();
    await db.close();
  }
}

/** Tells the consumer when to read again after an empty read. */
interface EmptyReadWait {
  /** A mark taken before a read. */
  mark(): number;
  /** Resolves once there may be new messages since `mark` was taken. */
  wait(mark: number): Promise<void>;
  close(): Promise<void>;
}

/** Retries at once: the next read is the wait. */
const retryWaiter: EmptyReadWait = {
  mark: () => 0,
  wait: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

/** Waits for a notification of the queue that arrived after the mark. */
async function listenerWaiter(db: Database, queue: string): Promise<EmptyReadWait> {
  const listener = new PgmqListener(db);
  const subscription = await listener.subscribeQueue(queue);
  let received = 0;
  const sleepers: (() => void)[] = [];
  void (async () => {
    for await (const _event of subscription) {
      received++;
      for (const wake of sleepers.splice(0)) wake();
    }
  })();
  return {
    mark: () => received,
    wait: (mark) =>
      received > mark ? Promise.resolve() : new Promise<void>((resolve) => sleepers.push(resolve)),
    close: () => listener.close(),
  };
}

interface Producer {
  /** Sends `count` messages (`batchSize` per statement, one statement at a time). */
  produce(queue: string, count: number, batchSize: number): Promise<Produced>;
  close(): Promise<void>;
}

async function startProducer(url: string, mode: 'split' | 'single'): Promise<Producer> {
  if (mode === 'single') {
    const db = createPostgresDatabase({ url, pool: { max: 1 }, applicationName: 'tasker-bench-producer' });
    return {
      produce: (queue, count, batchSize) => produceMessages(db, queue, count, batchSize),
      close: () => db.close(),
    };
  }
  const child = await Child.start(url, ['producer']);
  return {
    async produce(queue, count, batchSize) {
      const produced = child.receive('produced', CONSUME_TIMEOUT_MS);
      child.send({ type: 'produce', queue, count, batchSize });
      return produced;
    },
    close: () => child.stop(),
  };
}

/** Reads (`limit`) and archives until `total` messages are archived; returns when the last was. */
async function consume(
  consumerDb: Database,
  queue: string,
  total: number,
  limit: number,
  waiter: EmptyReadWait,
  signal: AbortSignal,
): Promise<{ lastArchiveAt: number; emptyReads: number; backendCpuUs: number | null }> {
  const pgmq = new Pgmq(consumerDb);
  const backend = backendCpuMeter(await backendPid(consumerDb));
  let archived = 0;
  let emptyReads = 0;
  while (archived < total) {
    signal.throwIfAborted();
    const mark = waiter.mark();
    const messages = await pgmq.read(queue, { limit, visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_S });
    if (messages.length === 0) {
      emptyReads++;
      await waiter.wait(mark);
      continue;
    }
    const ids = await pgmq.archive(
      queue,
      messages.map((message) => message.msgId),
    );
    archived += ids.length;
  }
  const lastArchiveAt = wallClockMs();
  return { lastArchiveAt, emptyReads, backendCpuUs: backend.stop() };
}

interface ThroughputRun {
  elapsedMs: number;
  emptyReads: number;
  /** CPU per message in µs (null: not readable); see `config.throughput.cpu`. */
  cpu: {
    runner: number;
    producer_process: number | null;
    producer_backend: number | null;
    consumer_backend: number | null;
  };
}

async function throughputRound(
  producer: Producer,
  split: boolean,
  consumerDb: Database,
  waiter: EmptyReadWait,
  queue: string,
  count: number,
  batchSize: number,
): Promise<ThroughputRun> {
  const abort = new AbortController();
  const runnerCpu = ownCpuUs();
  const consumed = consume(consumerDb, queue, count, batchSize, waiter, abort.signal);
  const produced = producer.produce(queue, count, batchSize);
  try {
    const [sent, done] = await Promise.all([
      produced,
      withTimeout(consumed, CONSUME_TIMEOUT_MS, `consuming ${count} messages from ${queue}`),
    ]);
    const perMessage = (us: number | null) => (us === null ? null : Math.round(us / count));
    return {
      elapsedMs: done.lastArchiveAt - sent.firstSendAt,
      emptyReads: done.emptyReads,
      cpu: {
        runner: Math.round((ownCpuUs() - runnerCpu) / count),
        producer_process: split ? perMessage(sent.processCpuUs) : null,
        producer_backend: perMessage(sent.backendCpuUs),
        consumer_backend: perMessage(done.backendCpuUs),
      },
    };
  } finally {
    abort.abort();
    await consumed.catch(() => undefined);
  }
}

export const pgmqSuite: Suite = async ({ options, log }) => {
  const samples = intOption(options, 'samples', 1000, 1);
  const warmup = intOption(options, 'warmup', 50);
  const messages = intOption(options, 'messages', 10_000, 1);
  const batchMessages = intOption(options, 'batch-messages', 50_000, 1);
  /** Warm-up of a throughput case, in percent of its messages. */
  const throughputWarmupPct = intOption(options, 'throughput-warmup-pct', 10);
  const processes = choiceOption(options, 'processes', ['split', 'single']);
  const consumerWait = choiceOption(options, 'consumer-wait', ['retry', 'listener']);
  /** `yes`: VACUUM (ANALYZE) after each warm-up, i.e. statistics taken while the queue is drained. */
  const vacuum = choiceOption(options, 'vacuum', ['no', 'yes']);
  /** `default` keeps the server's setting; `on`/`off` set it for the throwaway database. */
  const synchronousCommit = choiceOption(options, 'synchronous-commit', ['default', 'on', 'off']);
  /** A SQL script run after the migrations, e.g. `CREATE OR REPLACE FUNCTION …` to try a change. */
  const extraSqlFile = options.get('extra-sql');

  const started = monotonicMs();
  const elapsed = () => `${((monotonicMs() - started) / 1000).toFixed(1)} s`;
  const bench = await createBenchDatabase([pgmqMigrations]);
  log(`database ${bench.name} (PostgreSQL ${bench.postgresVersion})`);
  const cases: BenchCase[] = [];
  const details: Record<string, unknown> = {};
  const server: Record<string, string> = {};
  try {
    if (extraSqlFile !== undefined) {
      await bench.admin.exec(await readFile(extraSqlFile, 'utf8'));
      log(`applied ${extraSqlFile}`);
    }
    if (synchronousCommit !== 'default') {
      // Connections opened from now on (all of the cases') get the setting.
      await bench.admin.exec(`ALTER DATABASE "${bench.name}" SET synchronous_commit = ${synchronousCommit}`);
    }

    const rtt = await notifyRtt(bench, { samples, warmup }, log);
    cases.push(rtt.result);
    details.notify_rtt = { clock_check: rtt.clock };
    log(`notify_rtt done (${elapsed()})`);

    const consumerDb = createPostgresDatabase({
      url: bench.url,
      pool: { max: 1 },
      applicationName: 'tasker-bench-consumer',
    });
    const split = processes === 'split';
    const producer = await startProducer(bench.url, processes);
    try {
      for (const setting of ['synchronous_commit', 'autovacuum']) {
        const { rows } = await consumerDb.query<{ setting: string }>(
          'SELECT current_setting($1) AS setting',
          [setting],
        );
        server[setting] = rows[0]?.setting ?? 'unknown';
      }
      for (const [name, queue, count, batchSize] of [
        ['send_read_archive', SINGLE_QUEUE, messages, 1],
        ['batch_100', BATCH_QUEUE, batchMessages, BATCH_SIZE],
      ] as const) {
        await new Pgmq(consumerDb).createQueue(queue);
        const waiter = consumerWait === 'listener' ? await listenerWaiter(consumerDb, queue) : retryWaiter;
        try {
          const warm = Math.max(
            batchSize,
            Math.round((count * throughputWarmupPct) / 100 / batchSize) * batchSize,
          );
          await throughputRound(producer, split, consumerDb, waiter, queue, warm, batchSize);
          if (vacuum === 'yes') await bench.admin.exec('VACUUM (ANALYZE) pgmq.messages, pgmq.archive');
          const run = await throughputRound(producer, split, consumerDb, waiter, queue, count, batchSize);
          cases.push(rateCase(name, count, run.elapsedMs, 'messages'));
          details[name] = {
            warmup_messages: warm,
            empty_reads: run.emptyReads,
            elapsed_ms: Math.round(run.elapsedMs),
            cpu_us_per_message: run.cpu,
          };
          log(`${name} done (${elapsed()})`);
        } finally {
          await waiter.close();
        }
      }
    } finally {
      await producer.close();
      await consumerDb.close();
    }
  } finally {
    await bench.dispose();
  }

  return {
    postgres: bench.postgresVersion,
    backend: 'postgres',
    config: {
      server,
      notify_rtt: { samples, warmup, sequential: true, listener: 'child process (fork)', queue: RTT_QUEUE },
      throughput: {
        processes:
          processes === 'split'
            ? 'producer in a child process, consumer in the runner'
            : 'producer and consumer in the runner process',
        connections: 'one each (pool max 1)',
        consumer_on_empty_read:
          consumerWait === 'retry' ? 'read again at once' : 'wait for a listener notification',
        send: 'with notify',
        rate: 'messages / (first send → last archive), wall clock across processes',
        cpu: 'details.*.cpu_us_per_message: CPU µs per message of the runner process (the consumer, plus the producer when single), the producer child, and the two PostgreSQL backends (/proc, 10 ms ticks)',
        visibility_timeout_s: VISIBILITY_TIMEOUT_S,
        warmup_pct: throughputWarmupPct,
        vacuum_analyze_after_warmup: vacuum === 'yes',
        ...(extraSqlFile === undefined ? {} : { extra_sql: extraSqlFile }),
        message: JSON.stringify(payload(0)),
        send_read_archive: { messages, batch: 1 },
        batch_100: { messages: batchMessages, batch: BATCH_SIZE },
      },
      details,
      duration_s: Math.round((monotonicMs() - started) / 100) / 10,
    },
    cases,
  };
};
