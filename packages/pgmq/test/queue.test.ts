import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import {
  InvalidArgumentError,
  InvalidNameError,
  MessageTooLargeError,
  messageChannelForQueue,
  Pgmq,
  parseEvent,
  QueueNotFoundError,
} from '../src/index.ts';
import {
  BAD_NAMES,
  createQueueFixture,
  eventually,
  NAMESPACE_CASES,
  NotificationRecorder,
  type QueueFixture,
} from './helpers.ts';

/** A JSON object whose text (JSON.stringify) is exactly `bytes` bytes of UTF-8, padded with `unit`. */
function messageOfBytes(bytes: number, unit = 'x'): { pad: string } {
  const base = Buffer.byteLength(JSON.stringify({ pad: '' }));
  const unitBytes = Buffer.byteLength(unit);
  const room = bytes - base;
  const pad = unit.repeat(Math.floor(room / unitBytes)) + 'x'.repeat(room % unitBytes);
  const message = { pad };
  assert.equal(Buffer.byteLength(JSON.stringify(message)), bytes);
  return message;
}

for (const backend of BACKENDS) {
  describe(`pgmq queue (${backend})`, () => {
    let f: QueueFixture;
    let q: Pgmq;
    let queueNumber = 0;
    /** A fresh queue per test, so no test sees another's messages. */
    async function freshQueue(prefix = 'test'): Promise<string> {
      const name = `${prefix}_${++queueNumber}_queue`;
      await q.createQueue(name);
      return name;
    }

    before(async () => {
      f = await createQueueFixture(backend);
      q = f.pgmq;
    });
    after(() => f.dispose());

    it('creates queues idempotently, announces each once, and lists them', async () => {
      const recorder = await NotificationRecorder.open(f.db, ['pgmq_queue_created']);
      try {
        await q.createQueue('created_a_queue');
        await q.createQueue('created_a_queue');
        await q.createQueue('created_b_queue');
        const first = parseEvent((await recorder.next()).payload);
        const second = parseEvent((await recorder.next()).payload);
        assert.deepEqual(
          [first, second].map((event) => [event.type, event.queueName, event.namespace]),
          [
            ['queue_created', 'created_a_queue', 'created_a'],
            ['queue_created', 'created_b_queue', 'created_b'],
          ],
        );
        const names = (await q.listQueues()).map((info) => info.queueName);
        assert.ok(names.includes('created_a_queue') && names.includes('created_b_queue'));
        assert.equal(names.filter((name) => name === 'created_a_queue').length, 1);
      } finally {
        await recorder.close();
      }
    });

    it('returns positive, increasing ids; a batch returns one id per message in order', async () => {
      const queue = await freshQueue();
      const first = await q.send(queue, { n: 0 });
      assert.ok(first > 0);
      const ids = await q.sendBatch(queue, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
      assert.equal(ids.length, 5);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );
      assert.ok(ids.every((id) => id > first));
      const read = await q.read<{ n: number }>(queue, { limit: 10 });
      assert.deepEqual(
        read.map((m) => m.message.n),
        [0, 1, 2, 3, 4, 5],
      );
      assert.deepEqual(
        read.map((m) => m.msgId),
        [first, ...ids],
      );
      assert.deepEqual(await q.sendBatch(queue, []), []);
    });

    it('gives concurrent senders distinct ids', async () => {
      const queue = await freshQueue();
      const ids = await Promise.all([1, 2, 3, 4, 5].map((n) => q.send(queue, { n })));
      assert.equal(new Set(ids).size, 5);
      assert.equal((await q.metrics(queue)).queueLength, 5);
    });

    it('round-trips payloads byte for byte', async () => {
      const queue = await freshQueue();
      const payloads: unknown[] = [
        { z: 1, a: 2, m: { y: [1, 2, { x: null }], b: true } },
        { text: 'naïve café 数据 🎉 e\u0301 \u0000 "quoted" \\ back\nslash\ttab' },
        ['array', 1.5, -0, 1e21, { deep: { deeper: { deepest: 'ok' } } }],
        'a plain string',
        12345,
        null,
        { 'key with spaces': '', emptyObject: {}, emptyArray: [] },
      ];
      for (const payload of payloads) await q.send(queue, payload);
      const read = await q.read(queue, { limit: payloads.length });
      assert.equal(read.length, payloads.length);
      read.forEach((message, i) => {
        assert.equal(JSON.stringify(message.message), JSON.stringify(payloads[i]));
      });
      const stored = await f.db.query<{ text: string }>(
        'SELECT message::text AS text FROM pgmq.messages WHERE queue_name = $1 ORDER BY msg_id',
        [queue],
      );
      assert.deepEqual(
        stored.rows.map((row) => row.text),
        payloads.map((payload) => JSON.stringify(payload)),
      );
    });

    it('keeps a delayed message invisible until it is due', async () => {
      const queue = await freshQueue();
      await q.send(queue, { later: true }, { delaySeconds: 3600 });
      assert.deepEqual(await q.read(queue), []);
      assert.equal((await q.metrics(queue)).queueLength, 1);
      assert.equal((await q.metrics(queue)).visibleLength, 0);

      const sentAt = Date.now();
      const id = await q.send(queue, { soon: true }, { delaySeconds: 0.5 });
      const [message] = await eventually(async () => {
        const read = await q.read(queue);
        return read.length > 0 ? read : undefined;
      });
      assert.equal(message?.msgId, id);
      assert.ok(Date.now() - sentAt >= 500, 'a delayed message must not be readable before its delay');
    });

    it('pops messages: read and deleted at once', async () => {
      const queue = await freshQueue();
      await q.sendBatch(queue, ['a', 'b']);
      assert.deepEqual(
        (await q.pop(queue)).map((m) => m.message),
        ['a'],
      );
      assert.deepEqual(
        (await q.pop(queue, 5)).map((m) => m.message),
        ['b'],
      );
      assert.deepEqual(await q.pop(queue), []);
      assert.equal((await q.metrics(queue)).queueLength, 0);
    });

    it('archives: gone from reads, kept in the archive', async () => {
      const queue = await freshQueue();
      const ids = await q.sendBatch(queue, ['a', 'b', 'c']);
      const [first] = await q.read(queue, { visibilityTimeoutSeconds: 0 });
      assert.equal(first?.msgId, ids[0]);
      assert.deepEqual(await q.archive(queue, ids[0] ?? 0), [ids[0]]);
      assert.deepEqual(await q.archive(queue, ids[0] ?? 0), [], 'archiving twice finds nothing');
      const remaining = await q.read(queue, { limit: 10 });
      assert.deepEqual(
        remaining.map((m) => m.msgId),
        ids.slice(1),
      );
      const archived = await f.db.query<{ msg_id: number; read_ct: number; message: unknown }>(
        'SELECT msg_id, read_ct, message FROM pgmq.archive WHERE queue_name = $1',
        [queue],
      );
      assert.deepEqual(archived.rows, [{ msg_id: ids[0], read_ct: 1, message: 'a' }]);
      assert.deepEqual((await q.delete(queue, ids.slice(1))).sort(), ids.slice(1).sort());
      assert.equal((await q.metrics(queue)).queueLength, 0);
    });

    it('archives and claims the next messages in one call', async () => {
      const queue = await freshQueue();
      const ids = await q.sendBatch(queue, ['a', 'b', 'c']);
      const first = await q.archiveAndRead(queue, [], { limit: 2 });
      assert.deepEqual(
        first.map((m) => m.message),
        ['a', 'b'],
      );
      const next = await q.archiveAndRead(
        queue,
        first.map((m) => m.msgId),
        { limit: 2 },
      );
      assert.deepEqual(
        next.map((m) => m.msgId),
        [ids[2]],
      );
      const archived = await f.db.query<{ msg_id: number }>(
        'SELECT msg_id FROM pgmq.archive WHERE queue_name = $1 ORDER BY msg_id',
        [queue],
      );
      assert.deepEqual(
        archived.rows.map((row) => row.msg_id),
        ids.slice(0, 2),
      );
      assert.deepEqual(await q.archiveAndRead(queue, ids[2] ?? 0), []);
      assert.equal((await q.metrics(queue)).queueLength, 0);
    });

    it('set_vt hides a message and reveals it again', async () => {
      const queue = await freshQueue();
      const id = await q.send(queue, 'hidden');
      const hidden = await q.setVisibilityTimeout(queue, id, 3600);
      assert.equal(hidden?.msgId, id);
      assert.deepEqual(await q.read(queue), []);
      await q.setVisibilityTimeout(queue, id, 0);
      const [message] = await q.read(queue);
      assert.equal(message?.msgId, id);
      assert.equal(message?.readCount, 1);
      assert.equal(await q.setVisibilityTimeout(queue, id + 1000, 0), null);
    });

    it('reports metrics per queue and for all queues', async () => {
      const queue = await freshQueue();
      const empty = await q.metrics(queue);
      assert.deepEqual([empty.queueLength, empty.totalSent, empty.oldestMessageAgeSeconds], [0, 0, null]);
      const ids = await q.sendBatch(queue, [1, 2, 3]);
      let metrics = await q.metrics(queue);
      assert.deepEqual([metrics.queueLength, metrics.visibleLength, metrics.totalSent], [3, 3, 3]);
      assert.ok((metrics.oldestMessageAgeSeconds ?? -1) >= 0);
      await q.read(queue);
      await q.archive(queue, ids[1] ?? 0);
      metrics = await q.metrics(queue);
      assert.deepEqual([metrics.queueLength, metrics.visibleLength, metrics.totalSent], [2, 1, 3]);
      const all = await q.metricsAll();
      assert.deepEqual(
        all.find((m) => m.queueName === queue),
        { ...all.find((m) => m.queueName === queue), queueLength: 2, totalSent: 3 },
      );
    });

    it('sends inside the caller transaction: rollback leaves no message and no notification', async () => {
      const queue = await freshQueue('txn');
      const recorder = await NotificationRecorder.open(f.db, [messageChannelForQueue(queue)]);
      const channelQueue = queue;
      try {
        await assert.rejects(
          f.db.transaction(async (tx) => {
            await q.using(tx).send(channelQueue, { rolledBack: true });
            throw new Error('abort');
          }),
          /abort/,
        );
        assert.deepEqual(await q.read(channelQueue), []);
        assert.equal((await q.metrics(channelQueue)).queueLength, 0);
        const committedId = await f.db.transaction((tx) =>
          q.using(tx).send(channelQueue, { committed: true }),
        );
        const event = parseEvent((await recorder.next()).payload);
        assert.equal(event.type, 'message_with_payload');
        assert.deepEqual(event.type === 'message_with_payload' && [event.msgId, event.message], [
          committedId,
          { committed: true },
        ]);
        assert.equal(recorder.received.length, 1, 'the rolled-back send must not notify');
      } finally {
        await recorder.close();
      }
    });

    it('read_specific_message claims a message exactly once', async () => {
      const queue = await freshQueue();
      const id = await q.send(queue, 'claim me');
      const claims = await Promise.all([1, 2, 3, 4, 5].map(() => q.readMessage(queue, id, 30)));
      assert.equal(claims.filter((claim) => claim !== null).length, 1);
      assert.equal(claims.find((claim) => claim !== null)?.message, 'claim me');
      assert.equal(await q.readMessage(queue, id + 1000), null, 'missing');
      const other = await q.send(queue, 'archived');
      await q.archive(queue, other);
      assert.equal(await q.readMessage(queue, other), null, 'archived');
    });

    it('extracts namespaces in SQL exactly as in TypeScript', async () => {
      for (const [queue, namespace] of NAMESPACE_CASES) {
        const { rows } = await f.db.query<{ ns: string }>('SELECT pgmq.extract_queue_namespace($1) AS ns', [
          queue,
        ]);
        assert.equal(rows[0]?.ns, namespace, queue);
      }
    });

    it('notifies on the namespace channel and the global channel', async () => {
      await q.createQueue('test_complete_queue');
      await q.createQueue('orchestration_step_results');
      const recorder = await NotificationRecorder.open(f.db, [
        'pgmq_message_ready.test_complete',
        'pgmq_message_ready.orchestration',
        'pgmq_message_ready',
      ]);
      try {
        const id = await q.send('test_complete_queue', { hello: 'world' });
        const seen = [await recorder.next(), await recorder.next()];
        assert.deepEqual(seen.map((n) => n.channel).sort(), [
          'pgmq_message_ready',
          'pgmq_message_ready.test_complete',
        ]);
        for (const notification of seen) {
          assert.deepEqual(parseEvent(notification.payload), {
            type: 'message_with_payload',
            msgId: id,
            queueName: 'test_complete_queue',
            namespace: 'test_complete',
            message: { hello: 'world' },
            readyAt: (parseEvent(notification.payload) as { readyAt: Date }).readyAt,
            delaySeconds: 0,
          });
        }
        await q.send('orchestration_step_results', { step: 1 });
        const orchestration = [await recorder.next(), await recorder.next()];
        assert.deepEqual(orchestration.map((n) => n.channel).sort(), [
          'pgmq_message_ready',
          'pgmq_message_ready.orchestration',
        ]);
        await q.send('test_complete_queue', 'quiet', { notify: false });
        await q.send('test_complete_queue', 'marker');
        const marker = parseEvent((await recorder.next()).payload);
        assert.deepEqual(marker.type === 'message_with_payload' && marker.message, 'marker');
      } finally {
        await recorder.close();
      }
    });

    it('carries the whole message below 7000 bytes, only the id from 7000 bytes on', async () => {
      const queue = await freshQueue('size');
      const recorder = await NotificationRecorder.open(f.db, [messageChannelForQueue(queue)]);
      try {
        const cases: [unknown, string][] = [
          [messageOfBytes(6999), 'message_with_payload'],
          [messageOfBytes(7000), 'message_ready'],
          [messageOfBytes(7001), 'message_ready'],
          [messageOfBytes(6999, 'é'), 'message_with_payload'],
          [messageOfBytes(7000, 'é'), 'message_ready'],
          [messageOfBytes(7001, '数'), 'message_ready'],
          [{ pad: '数'.repeat(3000) }, 'message_ready'], // 3000 characters, 9000+ bytes
          [messageOfBytes(200_000, '🎉'), 'message_ready'],
        ];
        for (const [message, expected] of cases) {
          const id = await q.send(queue, message);
          const notification = await recorder.next();
          assert.ok(Buffer.byteLength(notification.payload) < 8000, 'a notification stays under 8000 bytes');
          const event = parseEvent(notification.payload);
          assert.equal(event.type, expected, `${Buffer.byteLength(JSON.stringify(message))} bytes`);
          if (event.type === 'message_with_payload') assert.deepEqual(event.message, message);
          if (event.type === 'message_ready') {
            assert.equal(event.msgId, id);
            assert.equal(
              (JSON.parse(notification.payload) as { payload_omitted: boolean }).payload_omitted,
              true,
            );
            const claimed = await q.readMessage(queue, event.msgId);
            assert.deepEqual(claimed?.message, message);
          }
        }
      } finally {
        await recorder.close();
      }
    });

    it('sends one batch_ready notification per 300 ids of a batch', async () => {
      const queue = await freshQueue('batch');
      const recorder = await NotificationRecorder.open(f.db, [messageChannelForQueue(queue)]);
      try {
        const ids = await q.sendBatch(
          queue,
          Array.from({ length: 650 }, (_, n) => ({ n })),
        );
        const events = [await recorder.next(), await recorder.next(), await recorder.next()].map((n) =>
          parseEvent(n.payload),
        );
        const announced = events.flatMap((event) => (event.type === 'batch_ready' ? event.msgIds : []));
        assert.deepEqual(announced, ids);
        assert.deepEqual(
          events.map((event) => event.type === 'batch_ready' && event.msgIds.length),
          [300, 300, 50],
        );
      } finally {
        await recorder.close();
      }
    });

    it('rejects a message over the size limit with a typed error and sends nothing', async () => {
      const queue = await freshQueue();
      const small = new Pgmq(f.db, { maxMessageBytes: 100 });
      await small.send(queue, messageOfBytes(100));
      await assert.rejects(small.send(queue, messageOfBytes(101)), (error: unknown) => {
        return error instanceof MessageTooLargeError && error.bytes === 101 && error.limit === 100;
      });
      await assert.rejects(small.sendBatch(queue, [1, messageOfBytes(101)]), MessageTooLargeError);
      await assert.rejects(q.send(queue, messageOfBytes(1024 * 1024 + 1)), { code: 'MESSAGE_TOO_LARGE' });
      assert.equal((await q.metrics(queue)).totalSent, 1);
    });

    it('errors on a missing queue', async () => {
      await assert.rejects(q.send('missing_queue', 1), (error: unknown) => {
        return error instanceof QueueNotFoundError && error.queue === 'missing_queue';
      });
      await assert.rejects(q.sendBatch('missing_queue', [1]), QueueNotFoundError);
      await assert.rejects(q.purgeQueue('missing_queue'), QueueNotFoundError);
      await assert.rejects(q.metrics('missing_queue'), QueueNotFoundError);
      assert.deepEqual(await q.read('missing_queue'), []);
      assert.equal(await q.dropQueue('missing_queue'), false);
    });

    it('rejects bad names before any SQL runs, and the SQL refuses them too', async () => {
      const before = await q.listQueues();
      for (const name of BAD_NAMES) {
        for (const attempt of [
          () => q.createQueue(name as string),
          () => q.send(name as string, 1),
          () => q.read(name as string),
          () => q.dropQueue(name as string),
          () => q.metrics(name as string),
        ]) {
          await assert.rejects(
            attempt(),
            (error: unknown) => error instanceof InvalidNameError,
            String(name),
          );
        }
        if (typeof name === 'string') {
          await assert.rejects(f.db.query('SELECT pgmq.create($1)', [name]), { code: 'TQ001' });
        }
      }
      assert.deepEqual(await q.listQueues(), before);
      const tables = await f.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_class WHERE relname ~ '(DROP|-|ñ)'",
      );
      assert.equal(tables.rows[0]?.n, 0);
      await q.createQueue('q'.repeat(47));
      await q.send('q'.repeat(47), 'longest name');
    });

    it('drops and purges queues', async () => {
      const queue = await freshQueue();
      await q.sendBatch(queue, [1, 2, 3]);
      assert.equal(await q.purgeQueue(queue), 3);
      assert.equal((await q.metrics(queue)).queueLength, 0);
      await q.send(queue, 4);
      const [message] = await q.read(queue);
      await q.archive(queue, message?.msgId ?? 0);
      assert.equal(await q.dropQueue(queue), true);
      assert.equal(await q.dropQueue(queue), false);
      assert.ok(!(await q.listQueues()).some((info) => info.queueName === queue));
      await assert.rejects(q.send(queue, 5), QueueNotFoundError);
      const leftovers = await f.db.query<{ n: number }>(
        'SELECT (SELECT count(*) FROM pgmq.messages WHERE queue_name = $1) + (SELECT count(*) FROM pgmq.archive WHERE queue_name = $1) AS n',
        [queue],
      );
      assert.equal(leftovers.rows[0]?.n, 0);
      await q.createQueue(queue);
      assert.equal((await q.metrics(queue)).totalSent, 0, 'a re-created queue starts counting afresh');
    });

    it('drops a queue cleanly while a send is in flight', {
      skip: backend === 'pglite' ? 'PGlite runs one transaction at a time' : false,
    }, async () => {
      const queue = await freshQueue('race');
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let signalSent: () => void = () => undefined;
      const sent = new Promise<void>((resolve) => {
        signalSent = resolve;
      });
      const sending = f.db.transaction(async (tx) => {
        await q.using(tx).send(queue, 'in flight');
        signalSent();
        await held;
      });
      await sent;
      const dropping = q.dropQueue(queue);
      // the drop waits for the sender; let the sender commit
      release();
      await sending;
      assert.equal(await dropping, true);
      const leftovers = await f.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pgmq.messages WHERE queue_name = $1',
        [queue],
      );
      assert.equal(leftovers.rows[0]?.n, 0);
      await q.createQueue(queue);
      assert.deepEqual(await q.read(queue), []);
      assert.equal(await q.send(queue, 'fresh'), 1);
    });

    it('cleans up the archive by age, in batches', async () => {
      const queue = await freshQueue();
      const ids = await q.sendBatch(queue, [1, 2, 3, 4, 5]);
      await q.archive(queue, ids);
      const archived = async () =>
        (
          await f.db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM pgmq.archive WHERE queue_name = $1',
            [queue],
          )
        ).rows[0]?.n;
      assert.equal(await q.cleanupArchive({ olderThanSeconds: 3600 }), 0);
      assert.equal(await archived(), 5);
      assert.ok((await q.cleanupArchive({ olderThanSeconds: 0, batchSize: 2 })) >= 5);
      assert.equal(await archived(), 0);
    });

    it('rejects invalid arguments with a typed error', async () => {
      const queue = await freshQueue();
      await assert.rejects(q.send(queue, 1, { delaySeconds: -1 }), InvalidArgumentError);
      await assert.rejects(q.send(queue, 1, { delaySeconds: Number.NaN }), InvalidArgumentError);
      await assert.rejects(q.send(queue, undefined), InvalidArgumentError);
      await assert.rejects(q.read(queue, { limit: 0 }), InvalidArgumentError);
      await assert.rejects(q.read(queue, { limit: 2 ** 31 }), InvalidArgumentError);
      await assert.rejects(q.pop(queue, 100_001), InvalidArgumentError);
      await assert.rejects(q.read(queue, { visibilityTimeoutSeconds: -5 }), InvalidArgumentError);
      await assert.rejects(q.archive(queue, [0]), InvalidArgumentError);
      await assert.rejects(f.db.query('SELECT * FROM pgmq.read($1, -1, 1)', [queue]), { code: 'TQ003' });
      assert.throws(() => new Pgmq(f.db, { maxMessageBytes: 0 }), InvalidArgumentError);
      assert.equal((await q.metrics(queue)).totalSent, 0);
    });

    it('reports health', async () => {
      assert.equal(await q.healthCheck(), true);
    });
  });
}
