import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import { createQueueFixture, type QueueFixture } from './helpers.ts';

const MESSAGES = 5000;
const CONSUMERS = 8;

for (const backend of BACKENDS) {
  describe(`pgmq concurrent consumers (${backend})`, () => {
    let f: QueueFixture;
    before(async () => {
      f = await createQueueFixture(backend);
    });
    after(() => f.dispose());

    it(`${CONSUMERS} consumers share ${MESSAGES} messages without receiving one twice`, async () => {
      const queue = 'worker_contended_queue';
      await f.pgmq.createQueue(queue);
      const sent: number[] = [];
      for (let start = 0; start < MESSAGES; start += 500) {
        const batch = Array.from({ length: Math.min(500, MESSAGES - start) }, (_, i) => ({ n: start + i }));
        sent.push(...(await f.pgmq.sendBatch(queue, batch)));
      }
      // The visibility timeout outlasts the test: a message seen twice would be a claim bug.
      const receivedBy = new Map<number, number>();
      const duplicates: number[] = [];
      async function consume(consumer: number): Promise<number> {
        let count = 0;
        for (;;) {
          const messages = await f.pgmq.read<{ n: number }>(queue, {
            limit: 10,
            visibilityTimeoutSeconds: 600,
          });
          if (messages.length === 0) return count;
          for (const message of messages) {
            if (receivedBy.has(message.msgId)) duplicates.push(message.msgId);
            receivedBy.set(message.msgId, consumer);
            assert.equal(message.readCount, 1);
          }
          count += messages.length;
          await f.pgmq.archive(
            queue,
            messages.map((message) => message.msgId),
          );
        }
      }
      const counts = await Promise.all(Array.from({ length: CONSUMERS }, (_, consumer) => consume(consumer)));
      assert.deepEqual(duplicates, []);
      assert.equal(receivedBy.size, MESSAGES);
      assert.deepEqual(
        [...receivedBy.keys()].sort((a, b) => a - b),
        [...sent].sort((a, b) => a - b),
      );
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        MESSAGES,
      );
      const metrics = await f.pgmq.metrics(queue);
      assert.deepEqual([metrics.queueLength, metrics.totalSent], [0, MESSAGES]);
    });
  });
}
