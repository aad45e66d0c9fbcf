import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createPostgresDatabase } from '@tasker/db';
import { BACKENDS, serverUrl } from '@tasker/db/testing';
import { type ListenerItem, PgmqListener, type Subscription } from '../src/index.ts';
import { createQueueFixture, eventually, type QueueFixture, withTimeout } from './helpers.ts';

async function take(subscription: Subscription, count: number): Promise<ListenerItem[]> {
  const items: ListenerItem[] = [];
  while (items.length < count) {
    const item = await withTimeout(subscription.next(), `item ${items.length + 1} of ${count}`);
    if (item === undefined) throw new Error('subscription closed early');
    items.push(item);
  }
  return items;
}

for (const backend of BACKENDS) {
  describe(`pgmq listener (${backend})`, () => {
    let f: QueueFixture;
    let listener: PgmqListener;
    const errors: Error[] = [];

    before(async () => {
      f = await createQueueFixture(backend);
      for (const queue of ['worker_orders_queue', 'orders_queue', 'worker_billing_queue']) {
        await f.pgmq.createQueue(queue);
      }
      listener = new PgmqListener(f.db, {
        onError: (error) => errors.push(error),
        reconnectInitialDelayMs: 10,
      });
      await listener.start();
    });
    after(async () => {
      await listener.close();
      await f.dispose();
    });

    it('delivers the events of the subscribed queue only', async () => {
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        // Same namespace channel (orders), different queue: routed away from this subscription.
        await f.pgmq.send('orders_queue', { other: true });
        await f.pgmq.send('worker_billing_queue', { other: true });
        const id = await f.pgmq.send('worker_orders_queue', { mine: true });
        const [event] = await take(orders, 1);
        assert.equal(event?.type, 'message_with_payload');
        assert.deepEqual(
          event?.type === 'message_with_payload' && [event.msgId, event.queueName, event.message],
          [id, 'worker_orders_queue', { mine: true }],
        );
        assert.equal(orders.buffered, 0);
        const stats = listener.stats();
        assert.equal(stats.connected, true);
        assert.ok(stats.eventsReceived >= 2);
        assert.ok(stats.channels >= 1);
      } finally {
        orders.close();
      }
    });

    it('returns a second subscription of a channel only once the channel is listened on', async () => {
      // worker_orders_queue and orders_queue share the channel of namespace "orders"; made together,
      // the second must not resolve while the first one's LISTEN is still in flight
      const fresh = new PgmqListener(f.db, { onError: (error) => errors.push(error) });
      try {
        const [first, second] = await Promise.all([
          fresh.subscribeQueue('worker_orders_queue'),
          fresh.subscribeQueue('orders_queue'),
        ]);
        const id = await f.pgmq.send('orders_queue', { second: true });
        const [event] = await take(second, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && [event.msgId, event.queueName], [
          id,
          'orders_queue',
        ]);
        first.close();
        second.close();
      } finally {
        await fresh.close();
      }
    });

    it('delivers signal-only and batch events; a signal is claimed with readMessage', async () => {
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        const big = { pad: 'x'.repeat(10_000) };
        const bigId = await f.pgmq.send('worker_orders_queue', big);
        const ids = await f.pgmq.sendBatch('worker_orders_queue', [1, 2, 3]);
        const [signal, batch] = await take(orders, 2);
        assert.deepEqual(signal?.type === 'message_ready' && signal.msgId, bigId);
        assert.deepEqual(batch?.type === 'batch_ready' && batch.msgIds, ids);
        const claimed = await f.pgmq.readMessage('worker_orders_queue', bigId);
        assert.deepEqual(claimed?.message, big);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        orders.close();
      }
    });

    it('subscribes to whole channels', async () => {
      const created = await listener.subscribeChannel('pgmq_queue_created');
      const global = await listener.subscribeChannel('pgmq_message_ready');
      try {
        await f.pgmq.createQueue('worker_late_queue');
        const [event] = await take(created, 1);
        assert.deepEqual(event?.type === 'queue_created' && [event.queueName, event.namespace], [
          'worker_late_queue',
          'late',
        ]);
        await f.pgmq.send('worker_billing_queue', 1);
        await f.pgmq.send('orchestration_anything', 2).catch(() => undefined);
        const [any] = await take(global, 1);
        assert.deepEqual(any?.type === 'message_with_payload' && any.queueName, 'worker_billing_queue');
      } finally {
        created.close();
        global.close();
      }
    });

    it('counts malformed payloads and keeps delivering', async () => {
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        const before = listener.stats().parseErrors;
        const errorsBefore = errors.length;
        await f.db.query("SELECT pg_notify('pgmq_message_ready.orders', 'not json')");
        await f.db.query(`SELECT pg_notify('pgmq_message_ready.orders', '{"event_type":"message_ready"}')`);
        await f.db.query(
          `SELECT pg_notify('pgmq_message_ready.orders', '{"event_type":"message_ready","msg_id":1,"queue_name":"worker_orders_queue","namespace":"orders","ready_at":"not a time","delay_seconds":0}')`,
        );
        await f.db.query(`SELECT pg_notify('pgmq_message_ready.orders', '{"event_type":"surprise"}')`);
        const id = await f.pgmq.send('worker_orders_queue', 'after the noise');
        const [event] = await take(orders, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && event.msgId, id);
        assert.equal(listener.stats().parseErrors - before, 4);
        assert.equal(errors.length - errorsBefore, 4);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        orders.close();
      }
    });

    it('holds events for a slow consumer instead of dropping them', async () => {
      const slow = new PgmqListener(f.db, { subscriberBufferSize: 2, inboundBufferSize: 4 });
      await slow.start();
      const orders = await slow.subscribeQueue('worker_orders_queue');
      try {
        const ids = await f.db.transaction(async (tx) => {
          const sent: number[] = [];
          for (let n = 0; n < 25; n++) sent.push(await f.pgmq.using(tx).send('worker_orders_queue', { n }));
          return sent;
        });
        const events = await take(orders, 25);
        assert.deepEqual(
          events.map((event) => event.type === 'message_with_payload' && event.msgId),
          ids,
        );
        assert.equal(slow.stats().eventsReceived, 25);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        await slow.close();
      }
      assert.equal(orders.closed, true);
      assert.equal(await orders.next(), undefined);
    });

    it('reconnects after the connection is killed, re-listens and says so', {
      skip: backend === 'pglite' ? 'PGlite runs in-process: there is no connection to lose' : false,
    }, async () => {
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        const pid = listener.processId;
        assert.ok(pid !== null);
        const reconnectsBefore = listener.stats().reconnects;
        await f.db.query('SELECT pg_terminate_backend($1)', [pid]);
        const [signal] = await take(orders, 1);
        assert.deepEqual(signal, { type: 'reconnected' });
        assert.equal(listener.stats().reconnects, reconnectsBefore + 1);
        assert.ok(listener.stats().connectionErrors >= 1);
        assert.notEqual(listener.processId, pid);
        const id = await f.pgmq.send('worker_orders_queue', 'after reconnect');
        const [event] = await take(orders, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && event.msgId, id);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        orders.close();
      }
    });

    it('survives repeated disconnects', {
      skip: backend === 'pglite' ? 'PGlite runs in-process: there is no connection to lose' : false,
    }, async () => {
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        const reconnectsBefore = listener.stats().reconnects;
        for (let round = 0; round < 3; round++) {
          await f.db.query('SELECT pg_terminate_backend($1)', [listener.processId]);
          assert.deepEqual((await take(orders, 1))[0], { type: 'reconnected' });
        }
        assert.equal(listener.stats().reconnects, reconnectsBefore + 3);
        const id = await f.pgmq.send('worker_orders_queue', 'still here');
        const [event] = await take(orders, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && event.msgId, id);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        orders.close();
      }
    });

    it('keeps retrying with backoff while the database refuses connections', {
      skip: backend === 'pglite' ? 'PGlite runs in-process: there is no connection to lose' : false,
    }, async () => {
      const database = new URL(f.url ?? '').pathname.slice(1);
      const admin = createPostgresDatabase({ url: serverUrl(), pool: { max: 1 } });
      const orders = await listener.subscribeQueue('worker_orders_queue');
      try {
        const failuresBefore = listener.stats().connectionErrors;
        await admin.exec(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
        await f.db.query('SELECT pg_terminate_backend($1)', [listener.processId]);
        // The loss plus at least two refused reconnect attempts.
        await eventually(async () =>
          listener.stats().connectionErrors >= failuresBefore + 3 ? true : undefined,
        );
        assert.equal(listener.connected, false);
        await admin.exec(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
        assert.deepEqual((await take(orders, 1))[0], { type: 'reconnected' });
        const id = await f.pgmq.send('worker_orders_queue', 'back again');
        const [event] = await take(orders, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && event.msgId, id);
        await f.pgmq.purgeQueue('worker_orders_queue');
      } finally {
        await admin.exec(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
        await admin.close();
        orders.close();
      }
    });

    it('reconnects at once for a subscription made while waiting to reconnect, on one connection', {
      skip: backend === 'pglite' ? 'PGlite runs in-process: there is no connection to lose' : false,
    }, async () => {
      const patient = new PgmqListener(f.db, {
        reconnectInitialDelayMs: 600_000,
        reconnectMaxDelayMs: 600_000,
      });
      await patient.start();
      const first = await patient.subscribeQueue('worker_orders_queue');
      try {
        await f.db.query('SELECT pg_terminate_backend($1)', [patient.processId]);
        await eventually(async () => (patient.connected ? undefined : true));
        // the backoff timer would wait ten minutes; subscribing reconnects now
        const second = await withTimeout(patient.subscribeQueue('worker_billing_queue'), 'subscribing');
        assert.equal(patient.connected, true);
        const { rows } = await f.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`,
        );
        assert.equal(rows[0]?.n, 1, 'one LISTEN connection');
        const id = await f.pgmq.send('worker_billing_queue', 'once');
        const items: ListenerItem[] = [];
        const marker = await f.pgmq.send('worker_billing_queue', 'marker');
        for (;;) {
          const [item] = await take(second, 1);
          if (item === undefined) break;
          items.push(item);
          if (item.type === 'message_with_payload' && item.msgId === marker) break;
        }
        assert.deepEqual(
          items
            .filter((item) => item.type === 'message_with_payload')
            .map((item) => item.type === 'message_with_payload' && item.msgId),
          [id, marker],
        );
        second.close();
        await f.pgmq.purgeQueue('worker_billing_queue');
      } finally {
        first.close();
        await patient.close();
      }
    });

    it('subscribes while paused by a slow consumer', async () => {
      const slow = new PgmqListener(f.db, { subscriberBufferSize: 1, inboundBufferSize: 2 });
      await slow.start();
      const orders = await slow.subscribeQueue('worker_orders_queue');
      try {
        const ids = await f.db.transaction(async (tx) => {
          const sent: number[] = [];
          for (let n = 0; n < 10; n++) sent.push(await f.pgmq.using(tx).send('worker_orders_queue', { n }));
          return sent;
        });
        // nothing consumed yet: the listener is holding back
        const billing = await withTimeout(
          slow.subscribeQueue('worker_billing_queue'),
          'subscribing while paused',
        );
        const events = await take(orders, 10);
        assert.deepEqual(
          events.map((event) => event.type === 'message_with_payload' && event.msgId),
          ids,
        );
        const id = await f.pgmq.send('worker_billing_queue', 'after');
        const [event] = await take(billing, 1);
        assert.deepEqual(event?.type === 'message_with_payload' && event.msgId, id);
        await f.pgmq.purgeQueue('worker_orders_queue');
        await f.pgmq.purgeQueue('worker_billing_queue');
      } finally {
        await slow.close();
      }
    });

    it('rejects bad names and use after close', async () => {
      await assert.rejects(listener.subscribeQueue(';DROP TABLE x'), { code: 'INVALID_QUEUE_NAME' });
      await assert.rejects(listener.subscribeChannel('a-b'), { code: 'INVALID_CHANNEL' });
      const closed = new PgmqListener(f.db);
      await closed.close();
      await assert.rejects(closed.subscribeQueue('worker_orders_queue'), { code: 'NOT_CONNECTED' });
    });
  });
}
