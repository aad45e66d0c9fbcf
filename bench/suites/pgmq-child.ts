/**
 * The other process of the pgmq suite (forked by `pgmq.ts`, never run by hand):
 * - `listener <queue>`: a `PgmqListener` subscribed to the queue; for every `message_with_payload`
 *   event it takes the receive time and reports `t1 − t0` (t0 is in the message) over IPC;
 * - `producer`: sends messages on command and reports when the first and last sends started/ended.
 * The database URL comes in `BENCH_DATABASE_URL`. The process ends when told to stop or when the
 * parent goes away (IPC disconnect).
 */
import { createPostgresDatabase, type Database } from '@tasker/db';
import { Pgmq, PgmqListener } from '@tasker/pgmq';
import { backendCpuMeter, backendPid, ownCpuUs, wallClockMs } from '../lib.ts';

export type ParentMessage =
  | { type: 'ping'; sentAt: number }
  | { type: 'produce'; queue: string; count: number; batchSize: number }
  | { type: 'stop' };

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'pong'; sentAt: number; childAt: number }
  | { type: 'sample'; seq: number; ms: number }
  | ({ type: 'produced' } & Produced)
  | { type: 'failed'; message: string };

/** The message `notify_rtt` sends: the send time on the shared wall clock. */
export interface RttMessage {
  seq: number;
  t0: number;
}

function isRttMessage(value: unknown): value is RttMessage {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  return typeof fields.seq === 'number' && typeof fields.t0 === 'number';
}

function isParentMessage(value: unknown): value is ParentMessage {
  return (
    typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
  );
}

function send(message: ChildMessage): void {
  if (process.connected) process.send?.(message);
}

/** Producer-side message body of the throughput cases. */
export function payload(seq: number): { seq: number } {
  return { seq };
}

export interface Produced {
  count: number;
  /** Wall clock (`wallClockMs`) just before the first send. */
  firstSendAt: number;
  lastSendAt: number;
  /** CPU of the producer's PostgreSQL backend during the sends (µs), when readable. */
  backendCpuUs: number | null;
  /** CPU of the producing process during the sends (µs); meaningful when it does nothing else. */
  processCpuUs: number;
}

/**
 * Sends `count` messages one after another on `db` (a pool of one connection): `send` each, or
 * `sendBatch` of `batchSize`. Notifications are on (the default).
 */
export async function produceMessages(
  db: Database,
  queue: string,
  count: number,
  batchSize: number,
): Promise<Produced> {
  const pgmq = new Pgmq(db);
  const backend = backendCpuMeter(await backendPid(db));
  const cpuBefore = ownCpuUs();
  const firstSendAt = wallClockMs();
  if (batchSize <= 1) {
    for (let seq = 0; seq < count; seq++) await pgmq.send(queue, payload(seq));
  } else {
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      await pgmq.sendBatch(
        queue,
        Array.from({ length: size }, (_, index) => payload(start + index)),
      );
    }
  }
  const lastSendAt = wallClockMs();
  return {
    count,
    firstSendAt,
    lastSendAt,
    backendCpuUs: backend.stop(),
    processCpuUs: ownCpuUs() - cpuBefore,
  };
}

async function main(): Promise<void> {
  const [role, queue] = process.argv.slice(2);
  const url = process.env.BENCH_DATABASE_URL;
  if (url === undefined || (role !== 'listener' && role !== 'producer')) {
    throw new Error('usage: BENCH_DATABASE_URL=… node pgmq-child.ts listener <queue> | producer');
  }
  const db = createPostgresDatabase({ url, pool: { max: 1 }, applicationName: `tasker-bench-${role}` });
  let listener: PgmqListener | null = null;
  let stopping = false;

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await listener?.close();
    await db.close();
    if (process.connected) process.disconnect();
  };

  if (role === 'listener') {
    if (queue === undefined) throw new Error('listener needs a queue');
    listener = new PgmqListener(db, {
      onError: (error) => process.stderr.write(`listener: ${error.message}\n`),
    });
    const subscription = await listener.subscribeQueue(queue);
    void (async () => {
      for await (const event of subscription) {
        if (event.type !== 'message_with_payload') continue;
        const t1 = wallClockMs();
        if (!isRttMessage(event.message)) continue;
        send({ type: 'sample', seq: event.message.seq, ms: t1 - event.message.t0 });
      }
    })();
  }

  process.on('message', (message: unknown) => {
    if (!isParentMessage(message)) return;
    switch (message.type) {
      case 'ping':
        send({ type: 'pong', sentAt: message.sentAt, childAt: wallClockMs() });
        break;
      case 'produce':
        produceMessages(db, message.queue, message.count, message.batchSize).then(
          (produced) => send({ type: 'produced', ...produced }),
          (error: unknown) =>
            send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }),
        );
        break;
      case 'stop':
        void stop();
        break;
    }
  });
  process.on('disconnect', () => void stop());
  send({ type: 'ready' });
}

// `pgmq.ts` imports the protocol above; only the forked process runs.
if (import.meta.main) {
  main().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    send({ type: 'failed', message });
    process.stderr.write(`pgmq-child: ${message}\n`);
    process.exitCode = 1;
    if (process.connected) process.disconnect();
  });
}
