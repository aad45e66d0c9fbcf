/**
 * Domain events (reference C §5): the in-process bus (patterns, unsubscribe, isolated subscriber
 * errors), condition matching, the payload convention, payload schemas, and the publisher (delivery
 * by mode, invalid payloads dropped and counted, failed and timed-out durable sends counted, the
 * bounded queue dropping and counting), then the durable queue's consumer on both backends.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type EventCondition, type JsonObject, sleep, TASKER_MIGRATIONS } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import {
  type CompletedStep,
  compilePayloadSchema,
  conditionMatches,
  consumeDomainEvents,
  type DomainEvent,
  DomainEventBus,
  DomainEventPublisher,
  domainEventQueueName,
  type EventDeclarationInput,
  eventDeclarations,
  eventPayload,
  failureResult,
  matchesEventPattern,
  type StepExecutionResult,
  successResult,
  uuidv7,
} from '../src/index.ts';

const STEP = '0190a000-0000-7000-8000-000000000001';
const TASK = '0190a000-0000-7000-8000-000000000002';

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function event(name: string): DomainEvent {
  return {
    event_id: uuidv7(),
    event_name: name,
    occurred_at: new Date().toISOString(),
    correlation_id: null,
    task_uuid: TASK,
    step_uuid: STEP,
    step_name: 'step',
    namespace: 'ns',
    payload: {},
    metadata: { delivery_mode: 'fast', condition: 'success', attempt: 1 },
  };
}

const ok = (result: JsonObject = { order_id: 'o-1' }): StepExecutionResult =>
  successResult({ stepUuid: STEP, executionTimeMs: 1, result });
const failed = (retryable: boolean, context: JsonObject = {}): StepExecutionResult =>
  failureResult({
    stepUuid: STEP,
    executionTimeMs: 1,
    message: 'boom',
    retryable,
    errorCode: 'E1',
    context,
  });

function declaration(name: string, overrides: Partial<EventDeclarationInput> = {}): EventDeclarationInput {
  return { name, condition: 'success', delivery_mode: 'fast', schema: { type: 'object' }, ...overrides };
}

function completed(declarations: EventDeclarationInput[], result: StepExecutionResult = ok()): CompletedStep {
  return {
    namespace: 'orders',
    taskUuid: TASK,
    stepUuid: STEP,
    stepName: 'process_payment',
    correlationId: 'corr-1',
    attempt: 1,
    declarations,
    result,
  };
}

describe('event name patterns', () => {
  const cases: Array<[string, string, boolean]> = [
    ['payment.processed', 'payment.processed', true],
    ['payment.processed', 'payment.failed', false],
    ['payment.*', 'payment.processed', true],
    ['payment.*', 'payment.refund.issued', true],
    ['payment.*', 'payments.processed', false],
    ['payment.*', 'order.validated', false],
    ['*', 'anything.at_all', true],
    ['*.failed', 'payment.failed', true],
    ['order.validated', 'orderXvalidated', false],
  ];
  for (const [pattern, name, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${name}`, () => {
      assert.equal(matchesEventPattern(pattern, name), expected);
    });
  }
});

describe('DomainEventBus', () => {
  it('delivers by pattern and stops after unsubscribe', () => {
    const bus = new DomainEventBus();
    const seen: Record<string, string[]> = { exact: [], prefix: [], all: [] };
    bus.subscribe('payment.processed', (e) => void seen.exact?.push(e.event_name));
    const off = bus.subscribe('payment.*', (e) => void seen.prefix?.push(e.event_name));
    bus.subscribe('*', (e) => void seen.all?.push(e.event_name));
    assert.equal(bus.publish(event('payment.processed')), 3);
    assert.equal(bus.publish(event('order.validated')), 1);
    off();
    assert.equal(bus.publish(event('payment.failed')), 1);
    assert.deepEqual(seen, {
      exact: ['payment.processed'],
      prefix: ['payment.processed'],
      all: ['payment.processed', 'order.validated', 'payment.failed'],
    });
    assert.deepEqual(bus.stats(), { subscribers: 2, published: 3, delivered: 5, subscriberErrors: 0 });
  });

  it('isolates throwing and rejecting subscribers: counted, the others still receive', async () => {
    const warnings: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (_fields: object, message: string) => void warnings.push(message),
      error: () => undefined,
    };
    const bus = new DomainEventBus({ logger });
    const received: string[] = [];
    bus.subscribe('*', () => {
      throw new Error('sync failure');
    });
    bus.subscribe('*', async () => {
      throw new Error('async failure');
    });
    bus.subscribe('*', (e) => void received.push(e.event_name));
    assert.doesNotThrow(() => bus.publish(event('order.validated')));
    assert.deepEqual(received, ['order.validated']);
    await waitFor('the rejection to be counted', () => bus.stats().subscriberErrors === 2);
    assert.equal(warnings.length, 2);
  });

  it('rejects an empty pattern', () => {
    assert.throws(() => new DomainEventBus().subscribe('', () => undefined), TypeError);
  });
});

describe('conditions', () => {
  const outcomes = { success: ok(), retryable: failed(true), permanent: failed(false) };
  const table: Record<EventCondition, [boolean, boolean, boolean]> = {
    success: [true, false, false],
    failure: [false, true, true],
    retryable_failure: [false, true, false],
    permanent_failure: [false, false, true],
    always: [true, true, true],
  };
  for (const [condition, expected] of Object.entries(table) as Array<[EventCondition, boolean[]]>) {
    it(`${condition}: success / retryable failure / permanent failure ⇒ ${expected.join(' / ')}`, () => {
      assert.deepEqual(
        [outcomes.success, outcomes.retryable, outcomes.permanent].map((r) => conditionMatches(condition, r)),
        expected,
      );
    });
  }
});

describe('payloads and declarations', () => {
  it('defaults to the step result without _domain_events', () => {
    assert.deepEqual(eventPayload(ok({ order_id: 'o-1', total: 5 }), 'order.validated'), {
      order_id: 'o-1',
      total: 5,
    });
    const result = ok({ order_id: 'o-1', _domain_events: { 'other.event': { x: 1 } } });
    assert.deepEqual(eventPayload(result, 'order.validated'), { order_id: 'o-1' });
    assert.deepEqual(eventPayload(result, 'other.event'), { x: 1 });
  });

  it('takes an explicit payload from handler metadata or a thrown error, else the error', () => {
    const custom = successResult({
      stepUuid: STEP,
      executionTimeMs: 1,
      result: { a: 1 },
      custom: { _domain_events: { 'x.y': { from: 'metadata' } } },
    });
    assert.deepEqual(eventPayload(custom, 'x.y'), { from: 'metadata' });
    const thrown = failed(false, { _domain_events: { 'payment.failed': { order_id: 'o-1', error: 'no' } } });
    assert.deepEqual(eventPayload(thrown, 'payment.failed'), { order_id: 'o-1', error: 'no' });
    assert.deepEqual(eventPayload(failed(true), 'payment.failed'), {
      error: 'boom',
      error_type: 'retryable_error',
      retryable: true,
      error_code: 'E1',
    });
  });

  it('reads step declarations with the template defaults, skipping malformed ones', () => {
    assert.deepEqual(
      eventDeclarations({
        publishes_events: [
          { name: 'a.b', schema: { type: 'object' } },
          { name: 'c.d', condition: 'always', delivery_mode: 'broadcast', schema: true },
          { name: 'e.f', condition: 'sometimes' },
          { description: 'no name' },
        ],
      }),
      [
        { name: 'a.b', condition: 'success', delivery_mode: 'durable', schema: { type: 'object' } },
        { name: 'c.d', condition: 'always', delivery_mode: 'broadcast', schema: true },
      ],
    );
    assert.deepEqual(eventDeclarations({ name: 'step' }), []);
    assert.deepEqual(eventDeclarations(null), []);
  });

  it('checks payloads against their schema', () => {
    const check = compilePayloadSchema({
      type: 'object',
      required: ['order_id'],
      properties: {
        order_id: { type: 'string', minLength: 1 },
        amount: { type: 'number', minimum: 0 },
        items: { type: 'integer' },
        channels: { type: 'array', items: { type: 'string' } },
        status: { enum: ['ok', 'failed'] },
      },
    });
    assert.equal(check({ order_id: 'o', amount: 1.5, items: 2, channels: ['email'], status: 'ok' }), null);
    assert.match(check({}) ?? '', /must have required property 'order_id'/);
    assert.match(check({ order_id: 12345 }) ?? '', /\(payload\)\/order_id must be string/);
    assert.match(check({ order_id: 'o', amount: -1 }) ?? '', /\/amount must be >= 0/);
    assert.match(check({ order_id: 'o', items: 1.5 }) ?? '', /\/items must be integer/);
    assert.match(check({ order_id: 'o', channels: ['email', 3] }) ?? '', /\/channels\/1 must be string/);
    assert.match(
      check({ order_id: 'o', status: 'maybe' }) ?? '',
      /\/status must be equal to one of the allowed values/,
    );
    assert.match(check([]) ?? '', /\(payload\) must be object/);
    assert.equal(compilePayloadSchema(true)('anything'), null);
    assert.match(compilePayloadSchema(false)({}) ?? '', /boolean schema is false/);
    const closed = compilePayloadSchema({
      type: 'object',
      additionalProperties: false,
      properties: { a: {} },
    });
    assert.equal(closed({ a: 1 }), null);
    assert.match(closed({ a: 1, b: 2 }) ?? '', /must NOT have additional properties/);
  });

  it('names the durable queue after the namespace and makes time-ordered ids', () => {
    assert.equal(domainEventQueueName('orders'), 'orders_domain_events');
    assert.throws(() => domainEventQueueName('x'.repeat(30)));
    const id = uuidv7();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(uuidv7(1000) < uuidv7(2000));
  });
});

for (const backend of BACKENDS)
  describe(`DomainEventPublisher (${backend})`, () => {
    let t: TestDatabase;
    let pgmq: Pgmq;
    const QUEUE = 'orders_domain_events';
    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue(QUEUE);
    });
    after(() => t.dispose());
    beforeEach(async () => {
      await pgmq.purgeQueue(QUEUE);
    });

    /** The durable events sent so far, oldest first (read without hiding them). */
    async function sent(): Promise<Array<{ queue: string; message: unknown }>> {
      const messages = await pgmq.read(QUEUE, { visibilityTimeoutSeconds: 0, limit: 100 });
      return messages.map((m) => ({ queue: QUEUE, message: m.message }));
    }

    it('delivers by mode: fast to the bus, durable to {ns}_domain_events, broadcast to both', async () => {
      const db = t.db;
      const bus = new DomainEventBus();
      const received: DomainEvent[] = [];
      bus.subscribe('*', (e) => void received.push(e));
      const publisher = new DomainEventPublisher({ db, bus });
      publisher.enqueue(
        completed([
          declaration('payment.fast'),
          declaration('payment.durable', { delivery_mode: 'durable' }),
          declaration('payment.broadcast', { delivery_mode: 'broadcast' }),
          declaration('payment.failed', { delivery_mode: 'broadcast', condition: 'failure' }),
        ]),
      );
      await publisher.idle();
      assert.deepEqual(
        received.map((e) => e.event_name),
        ['payment.fast', 'payment.broadcast'],
      );
      const durable = await sent();
      assert.deepEqual(
        durable.map((s) => [s.queue, (s.message as DomainEvent).event_name]),
        [
          ['orders_domain_events', 'payment.durable'],
          ['orders_domain_events', 'payment.broadcast'],
        ],
      );
      const [first] = received;
      assert.ok(first);
      assert.deepEqual(
        {
          ...first,
          event_id: typeof first.event_id,
          occurred_at: typeof first.occurred_at,
        },
        {
          event_id: 'string',
          event_name: 'payment.fast',
          occurred_at: 'string',
          correlation_id: 'corr-1',
          task_uuid: TASK,
          step_uuid: STEP,
          step_name: 'process_payment',
          namespace: 'orders',
          payload: { order_id: 'o-1' },
          metadata: { delivery_mode: 'fast', condition: 'success', attempt: 1 },
        },
      );
      const broadcast = received[1];
      assert.deepEqual(
        durable[1]?.message,
        broadcast,
        'a broadcast event is the same envelope on both paths',
      );
      const metrics = publisher.metrics();
      assert.deepEqual(metrics.totals, { published: 4, invalid: 0, dropped: 0, failed: 0 });
      assert.deepEqual(metrics.byEvent['payment.broadcast'], {
        fast: { published: 1, invalid: 0, dropped: 0, failed: 0 },
        durable: { published: 1, invalid: 0, dropped: 0, failed: 0 },
      });
      assert.equal(metrics.byEvent['payment.failed'], undefined, 'a failure event does not fire on success');
    });

    it('drops a payload that fails its schema: not delivered, counted, logged at warn', async () => {
      const db = t.db;
      const bus = new DomainEventBus();
      const received: string[] = [];
      bus.subscribe('*', (e) => void received.push(e.event_name));
      const warnings: object[] = [];
      const logger = {
        debug: () => undefined,
        info: () => undefined,
        warn: (fields: object) => void warnings.push(fields),
        error: () => undefined,
      };
      const publisher = new DomainEventPublisher({ db, bus, logger });
      const schema = { type: 'object', properties: { order_id: { type: 'string' } } } as const;
      const result = ok({ order_id: 'o-1', _domain_events: { 'order.validated': { order_id: 12345 } } });
      publisher.enqueue(
        completed(
          [
            declaration('order.validated', { schema, delivery_mode: 'broadcast' }),
            declaration('order.accepted', { schema }),
          ],
          result,
        ),
      );
      await publisher.idle();
      assert.deepEqual(received, ['order.accepted']);
      assert.deepEqual(await sent(), []);
      assert.deepEqual(publisher.metrics().byEvent['order.validated'], {
        fast: { published: 0, invalid: 1, dropped: 0, failed: 0 },
        durable: { published: 0, invalid: 1, dropped: 0, failed: 0 },
      });
      assert.equal(warnings.length, 1);
      assert.match(
        String((warnings[0] as { problem?: string }).problem),
        /\(payload\)\/order_id must be string/,
      );
    });

    it('counts failed and timed-out durable sends and carries on', async () => {
      const bus = new DomainEventBus();
      const received: string[] = [];
      bus.subscribe('*', (e) => void received.push(e.event_name));
      const publisher = new DomainEventPublisher({ db: t.db, bus, durableTimeoutMs: 20 });
      // a namespace without its events queue: the send fails
      publisher.enqueue({
        ...completed([declaration('a.durable', { delivery_mode: 'durable' }), declaration('a.fast')]),
        namespace: 'nowhere',
      });
      await publisher.idle();
      // the queue table locked by another transaction: the send waits past its time limit
      await t.db.transaction(async (tx) => {
        await tx.query('LOCK TABLE pgmq.messages IN ACCESS EXCLUSIVE MODE');
        publisher.enqueue(
          completed([declaration('b.durable', { delivery_mode: 'durable' }), declaration('b.fast')]),
        );
        await publisher.idle();
      });
      assert.deepEqual(received, ['a.fast', 'b.fast']);
      const m = publisher.metrics();
      assert.deepEqual(m.byEvent['a.durable']?.durable, { published: 0, invalid: 0, dropped: 0, failed: 1 });
      assert.deepEqual(m.byEvent['b.durable']?.durable, { published: 0, invalid: 0, dropped: 0, failed: 1 });
      assert.deepEqual(m.totals, { published: 2, invalid: 0, dropped: 0, failed: 2 });
    });

    it('bounds its queue: beyond maxPending a step’s matching events are dropped and counted', async () => {
      const db = t.db;
      const bus = new DomainEventBus();
      const received: string[] = [];
      bus.subscribe('*', (e) => void received.push(e.event_name));
      const publisher = new DomainEventPublisher({ db, bus, maxPending: 2 });
      const declarations = [
        declaration('x.fast'),
        declaration('x.broadcast', { delivery_mode: 'broadcast' }),
        declaration('x.failed', { condition: 'failure' }),
      ];
      // enqueued in one synchronous run: the drain has not started, the queue holds 2
      for (let i = 0; i < 5; i++) publisher.enqueue(completed(declarations));
      assert.equal(publisher.pending, 2);
      await publisher.idle();
      const m = publisher.metrics();
      assert.deepEqual(m.byEvent['x.fast'], { fast: { published: 2, invalid: 0, dropped: 3, failed: 0 } });
      assert.deepEqual(m.byEvent['x.broadcast'], {
        fast: { published: 2, invalid: 0, dropped: 3, failed: 0 },
        durable: { published: 2, invalid: 0, dropped: 3, failed: 0 },
      });
      assert.equal(m.byEvent['x.failed'], undefined, 'events whose condition does not match are not counted');
      assert.equal(received.length, 4);
      assert.equal(m.pending, 0);
      assert.throws(() => new DomainEventPublisher({ db, bus, maxPending: 0 }), RangeError);
    });

    it('fires retryable_failure, permanent_failure, failure and always by the result', async () => {
      const bus = new DomainEventBus();
      const received: string[] = [];
      bus.subscribe('*', (e) => void received.push(`${e.event_name}:${JSON.stringify(e.payload)}`));
      const publisher = new DomainEventPublisher({ db: t.db, bus });
      const declarations = (
        ['success', 'failure', 'retryable_failure', 'permanent_failure', 'always'] as const
      ).map((condition) => declaration(`e.${condition}`, { condition, schema: true }));
      publisher.enqueue(completed(declarations, failed(true)));
      await publisher.idle();
      assert.deepEqual(
        received.map((r) => r.split(':')[0]),
        ['e.failure', 'e.retryable_failure', 'e.always'],
      );
      received.length = 0;
      publisher.enqueue(completed(declarations, failed(false)));
      await publisher.idle();
      assert.deepEqual(
        received.map((r) => r.split(':')[0]),
        ['e.failure', 'e.permanent_failure', 'e.always'],
      );
    });
  });

for (const backend of BACKENDS) {
  describe(`durable events and their consumer (${backend})`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      await new Pgmq(t.db).createQueue(domainEventQueueName('orders'));
    });
    after(() => t.dispose());

    it('reads what the publisher sent, deletes after success, retries a failure after the visibility timeout', async () => {
      const publisher = new DomainEventPublisher({ db: t.db, bus: new DomainEventBus() });
      publisher.enqueue(
        completed([
          declaration('payment.processed', { delivery_mode: 'durable' }),
          declaration('payment.audited', { delivery_mode: 'broadcast' }),
        ]),
      );
      await publisher.idle();
      assert.equal(publisher.metrics().totals.published, 3);
      const seen: Array<{ name: string; readCount: number }> = [];
      let failOnce = true;
      const consumer = consumeDomainEvents(
        t.db,
        'orders',
        (e, message) => {
          seen.push({ name: e.event_name, readCount: message.readCount });
          if (e.event_name === 'payment.audited' && failOnce) {
            failOnce = false;
            throw new Error('downstream unavailable');
          }
        },
        { visibilityTimeoutSeconds: 0.2, pollIntervalMs: 20 },
      );
      try {
        await waitFor('both events handled', () => consumer.stats().handled === 2);
      } finally {
        await consumer.stop();
      }
      assert.equal(consumer.queue, 'orders_domain_events');
      assert.deepEqual(consumer.stats(), { handled: 2, failed: 1, readErrors: 0 });
      assert.deepEqual(seen, [
        { name: 'payment.processed', readCount: 1 },
        { name: 'payment.audited', readCount: 1 },
        { name: 'payment.audited', readCount: 2 },
      ]);
      const metrics = await new Pgmq(t.db).metrics('orders_domain_events');
      assert.equal(metrics.queueLength, 0, 'handled events are deleted');
    });

    it('stops through its signal', async () => {
      const controller = new AbortController();
      const consumer = consumeDomainEvents(t.db, 'orders', () => undefined, {
        signal: controller.signal,
        pollIntervalMs: 10_000,
      });
      controller.abort();
      await consumer.stop();
      assert.deepEqual(consumer.stats(), { handled: 0, failed: 0, readErrors: 0 });
    });
  });
}
