import type { Backend, Database, ListenSession, Notification } from '@tasker/db';
import { createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { Pgmq, pgmqMigrations } from '../src/index.ts';

export interface QueueFixture extends TestDatabase {
  pgmq: Pgmq;
}

export async function createQueueFixture(backend: Backend): Promise<QueueFixture> {
  const test = await createTestDatabase(backend, { migrations: [pgmqMigrations] });
  return { ...test, pgmq: new Pgmq(test.db) };
}

/** A failsafe only: every wait resolves as soon as what it waits for happens. */
const FAILSAFE_MS = 20_000;

/** Records every notification on some channels; `next()` waits for the next one in arrival order. */
export class NotificationRecorder {
  readonly received: Notification[] = [];
  #read = 0;
  #waiter: (() => void) | null = null;
  #session: ListenSession | null = null;

  static async open(db: Database, channels: string[]): Promise<NotificationRecorder> {
    const recorder = new NotificationRecorder();
    recorder.#session = await db.openListenSession({
      onNotification: (notification) => {
        recorder.received.push(notification);
        recorder.#waiter?.();
      },
      onEnd: () => undefined,
    });
    for (const channel of channels) await recorder.#session.listen(channel);
    return recorder;
  }

  async next(): Promise<Notification> {
    const deadline = Date.now() + FAILSAFE_MS;
    while (this.#read >= this.received.length) {
      if (Date.now() > deadline) throw new Error('no notification arrived');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
    const notification = this.received[this.#read++];
    if (!notification) throw new Error('unreachable: recorder index out of range');
    return notification;
  }

  async close(): Promise<void> {
    await this.#session?.close();
  }
}

/** Waits until `check` returns a value other than undefined, polling every `everyMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, everyMs = 20): Promise<T> {
  const deadline = Date.now() + FAILSAFE_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const failsafe = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), FAILSAFE_MS);
  });
  return Promise.race([promise, failsafe]).finally(() => clearTimeout(timer));
}

/** Queue name → namespace, per reference D §1.5 (shared by the TypeScript and SQL tests). */
export const NAMESPACE_CASES: [string, string][] = [
  ['worker_rust_queue', 'rust'],
  ['worker_payments_queue', 'payments'],
  ['order_fulfillment_queue', 'order_fulfillment'],
  ['orchestration_priority', 'orchestration'],
  ['orchestration_step_results', 'orchestration'],
  ['orchestration', 'orchestration'],
  ['queue', 'default'],
  ['_queue', 'default'],
  ['worker_queue', 'worker'],
  ['worker__queue', 'worker'],
  ['test_ñ_queue', 'default'],
  ['worker_数据_queue', '数据'],
  ['worker_a_queue_queue', 'a_queue'],
  ['random_name', 'default'],
  ['test_complete_queue', 'test_complete'],
];

/** Names every validator must refuse (AUDIT S-1). */
export const BAD_NAMES: unknown[] = [
  ';DROP TABLE x',
  'a-b',
  'ñ',
  'a'.repeat(48),
  '',
  '1abc',
  'a b',
  'a.b',
  null,
  42,
];
