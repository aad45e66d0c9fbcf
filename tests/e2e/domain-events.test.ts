/**
 * Domain events end to end (reference C §5, §6.4 #30): the 4-step order workflow
 * `domain_events_ts/domain_event_publishing_ts` publishes its declared events after each step's
 * completion committed — `fast` ones to in-process subscribers of the worker's bus, `durable` ones to
 * the `domain_events_ts_domain_events` queue (read back with `consumeDomainEvents`). A payload that
 * breaks its schema is dropped and counted; a declined payment fires `failure` events and no
 * `success` ones. A variant of the template (another namespace, served by a second worker) declares
 * every event `broadcast` plus `retryable_failure` / `permanent_failure` events on the payment.
 * An engine and workers in one process, on each backend. Events are waited for with deadlines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EventDeclaration, type JsonObject, sleep, type TaskTemplate } from '@tasker/core';
import { BACKENDS } from '@tasker/db/testing';
import {
  consumeDomainEvents,
  type DomainEvent,
  DomainEventBus,
  type DomainEventConsumer,
  type DomainEventCounters,
  HandlerRegistry,
  TaskerWorker,
} from '@tasker/worker';
import { registerExampleHandlers } from '../../examples/handlers/index.ts';
import { exampleTemplates, type Finished, System, type SystemOptions } from './support/system.ts';

const NS = 'domain_events_ts';
const NAME = 'domain_event_publishing_ts';
const VARIANT_NS = 'domain_events_bc_ts';
const STEPS = [
  'domain_events_ts_validate_order',
  'domain_events_ts_process_payment',
  'domain_events_ts_update_inventory',
  'domain_events_ts_send_notification',
];
const DEADLINE_MS = 20_000;

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function order(n: number, extra: JsonObject = {}): JsonObject {
  return { order_id: `ORD-${n}`, customer_id: `CUST-${n}`, amount: 99.5, ...extra };
}

function assertComplete(f: Finished): void {
  assert.equal(f.state, 'complete');
  assert.deepEqual([...f.steps.keys()].sort(), [...STEPS].sort());
  for (const [name, row] of f.steps) assert.equal(row.current_state, 'complete', `${name} is complete`);
}

/** The variant: every event broadcast, plus `payment.retrying` and `payment.declined` on the payment. */
function variantOf(template: TaskTemplate): TaskTemplate {
  const variant = structuredClone(template);
  variant.namespace_name = VARIANT_NS;
  const extra = (name: string, condition: EventDeclaration['condition']): EventDeclaration => ({
    name,
    description: null,
    condition,
    delivery_mode: 'broadcast',
    publisher: null,
    // no payload supplied for these: the default failure payload `{error, error_type, retryable, error_code}`
    schema: { type: 'object', required: ['error', 'error_type'], properties: { error: { type: 'string' } } },
  });
  for (const step of variant.steps) {
    for (const event of step.publishes_events) event.delivery_mode = 'broadcast';
    if (step.name === 'domain_events_ts_process_payment') {
      step.publishes_events.push(
        extra('payment.retrying', 'retryable_failure'),
        extra('payment.declined', 'permanent_failure'),
      );
    }
  }
  return variant;
}

for (const backend of BACKENDS) {
  describe(`domain events end to end (${backend})`, () => {
    const bus = new DomainEventBus();
    const fast: DomainEvent[] = [];
    const durable: DomainEvent[] = [];
    const paymentSubscriber: string[] = [];
    let system: System;
    let variantWorker: TaskerWorker;
    let consumers: DomainEventConsumer[] = [];

    before(async () => {
      bus.subscribe('*', (event) => void fast.push(event));
      bus.subscribe('payment.*', (event) => void paymentSubscriber.push(event.event_id));
      bus.subscribe('order.*', () => {
        throw new Error('a broken subscriber never hurts the step or the others');
      });
      const options: SystemOptions = {
        worker: { mode: 'EventDrivenOnly', events: { bus } },
        engine: { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
      };
      system = await System.start(backend, options);
      const template = (await exampleTemplates()).find((t) => t.namespace_name === NS && t.name === NAME);
      assert.ok(template, 'the #30 template');
      const handlers = new HandlerRegistry();
      registerExampleHandlers(handlers);
      variantWorker = new TaskerWorker({
        db: system.t.db,
        handlers,
        templates: [variantOf(template)],
        mode: 'EventDrivenOnly',
        events: { bus },
      });
      await variantWorker.start();
      consumers = [NS, VARIANT_NS].map((namespace) =>
        consumeDomainEvents(system.t.db, namespace, (event) => void durable.push(event), {
          pollIntervalMs: 20,
        }),
      );
    });

    after(async () => {
      for (const consumer of consumers) await consumer.stop();
      await variantWorker?.stop();
      await system?.stop();
    });

    const of = (events: DomainEvent[], f: Finished): DomainEvent[] =>
      events.filter((event) => event.task_uuid === f.taskUuid);
    const names = (events: DomainEvent[], f: Finished): string[] =>
      of(events, f)
        .map((event) => event.event_name)
        .sort();
    const counters = (worker: TaskerWorker, event: string, path: 'fast' | 'durable'): DomainEventCounters =>
      worker.metrics().domainEvents?.byEvent[event]?.[path] ?? {
        published: 0,
        invalid: 0,
        dropped: 0,
        failed: 0,
      };

    it('#30: the 4 steps complete; fast events reach subscribers, durable ones the queue', async () => {
      const f = await system.run(NS, NAME, order(1));
      assertComplete(f);
      await waitFor('3 fast events', () => of(fast, f).length === 3);
      await waitFor('1 durable event', () => of(durable, f).length === 1);
      await system.worker.domainEventsIdle();
      assert.deepEqual(names(fast, f), ['inventory.updated', 'notification.sent', 'order.validated']);
      assert.deepEqual(names(durable, f), ['payment.processed']);

      const steps = await system.steps(f.taskUuid);
      const stepUuid = (name: string): unknown =>
        (steps.get(name)?.results as { step_uuid?: string } | null)?.step_uuid;
      const validated = of(fast, f).find((e) => e.event_name === 'order.validated');
      assert.ok(validated);
      assert.equal(validated.namespace, NS);
      assert.equal(validated.step_name, 'domain_events_ts_validate_order');
      assert.equal(validated.step_uuid, stepUuid('domain_events_ts_validate_order'));
      assert.equal(typeof validated.correlation_id, 'string');
      assert.deepEqual(validated.metadata, { delivery_mode: 'fast', condition: 'success', attempt: 1 });
      assert.equal((validated.payload as JsonObject).order_id, 'ORD-1');
      assert.equal(typeof (validated.payload as JsonObject).validated_at, 'string');
      const inventory = of(fast, f).find((e) => e.event_name === 'inventory.updated');
      assert.deepEqual(inventory?.metadata.condition, 'always');
      assert.equal((inventory?.payload as JsonObject | undefined)?.items_updated, 1);

      const [payment] = of(durable, f);
      assert.ok(payment);
      assert.equal(payment.step_name, 'domain_events_ts_process_payment');
      assert.deepEqual(payment.metadata, { delivery_mode: 'durable', condition: 'success', attempt: 1 });
      const paid = payment.payload as JsonObject;
      assert.equal(paid.order_id, 'ORD-1');
      assert.equal(paid.amount, 99.5);
      assert.match(String(paid.payment_id), /^pay_/);
      assert.ok(!paymentSubscriber.includes(payment.event_id), 'a durable event is not on the bus');

      const metrics = system.worker.metrics().domainEvents;
      assert.ok(metrics);
      assert.ok((metrics.byEvent['order.validated']?.fast?.published ?? 0) >= 1);
      assert.ok((metrics.byEvent['payment.processed']?.durable?.published ?? 0) >= 1);
      assert.equal(metrics.totals.failed, 0);
      assert.equal(metrics.totals.dropped, 0);
      assert.ok(metrics.bus.subscriberErrors >= 1, 'the broken order.* subscriber was counted');
      assert.equal(system.worker.health().status, 'healthy');
    });

    it('an invalid payload is dropped and counted; the step and the other events are unaffected', async () => {
      const before = counters(system.worker, 'order.validated', 'fast');
      const f = await system.run(NS, NAME, order(2, { invalid_event_payload: true }));
      assertComplete(f);
      await waitFor('the other fast events', () => of(fast, f).length === 2);
      await waitFor('the durable event', () => of(durable, f).length === 1);
      await system.worker.domainEventsIdle();
      assert.deepEqual(names(fast, f), ['inventory.updated', 'notification.sent']);
      const now = counters(system.worker, 'order.validated', 'fast');
      assert.equal(now.invalid, before.invalid + 1);
      assert.equal(now.published, before.published);
    });

    it('a declined payment fires payment.failed (failure) and no success events of that step', async () => {
      const f = await system.run(NS, NAME, order(3, { payment_should_fail: true }));
      assert.equal(f.state, 'error');
      assert.equal(f.steps.get('domain_events_ts_process_payment')?.current_state, 'error');
      assert.equal(f.steps.get('domain_events_ts_validate_order')?.current_state, 'complete');
      await waitFor('payment.failed', () => of(durable, f).length === 1);
      await system.worker.domainEventsIdle();
      const [failed] = of(durable, f);
      assert.equal(failed?.event_name, 'payment.failed');
      assert.deepEqual(failed?.metadata, { delivery_mode: 'durable', condition: 'failure', attempt: 1 });
      assert.deepEqual(failed?.payload, { order_id: 'ORD-3', error: 'payment declined by the processor' });
      assert.deepEqual(names(fast, f), ['order.validated'], 'later steps never ran');
    });

    it('broadcast: every event reaches both the bus and the durable queue, as the same envelope', async () => {
      const f = await system.run(VARIANT_NS, NAME, order(4));
      assertComplete(f);
      const expected = ['inventory.updated', 'notification.sent', 'order.validated', 'payment.processed'];
      await waitFor('4 fast events', () => of(fast, f).length === 4);
      await waitFor('4 durable events', () => of(durable, f).length === 4);
      await variantWorker.domainEventsIdle();
      assert.deepEqual(names(fast, f), expected);
      assert.deepEqual(names(durable, f), expected);
      const byId = new Map(of(durable, f).map((event) => [event.event_id, event]));
      for (const event of of(fast, f)) {
        assert.deepEqual(byId.get(event.event_id), event, `${event.event_name} is the same on both paths`);
        assert.equal(event.metadata.delivery_mode, 'broadcast');
      }
      const payment = of(fast, f).find((e) => e.event_name === 'payment.processed');
      assert.ok(payment && paymentSubscriber.includes(payment.event_id), 'payment.* received it');
      assert.deepEqual(counters(variantWorker, 'payment.processed', 'durable').failed, 0);
    });

    it('broadcast, declined payment: failure and permanent_failure fire, retryable_failure and success do not', async () => {
      const f = await system.run(VARIANT_NS, NAME, order(5, { payment_should_fail: true }));
      assert.equal(f.state, 'error');
      await waitFor('3 fast events', () => of(fast, f).length === 3);
      await waitFor('3 durable events', () => of(durable, f).length === 3);
      await variantWorker.domainEventsIdle();
      assert.deepEqual(names(fast, f), ['order.validated', 'payment.declined', 'payment.failed']);
      assert.deepEqual(names(durable, f), ['order.validated', 'payment.declined', 'payment.failed']);
      const declined = of(durable, f).find((e) => e.event_name === 'payment.declined');
      assert.equal(declined?.metadata.condition, 'permanent_failure');
      assert.deepEqual(declined?.payload, {
        error: 'payment declined by the processor',
        error_type: 'permanent_error',
        retryable: false,
        error_code: 'PAYMENT_DECLINED',
      });
    });

    it('broadcast, a retried payment: retryable_failure fires on attempt 1, success on attempt 2', async () => {
      const f = await system.run(VARIANT_NS, NAME, order(6, { payment_retryable_failures: 1 }));
      assertComplete(f);
      assert.equal(f.steps.get('domain_events_ts_process_payment')?.attempts, 2);
      await waitFor('6 fast events', () => of(fast, f).length === 6);
      await variantWorker.domainEventsIdle();
      const payment = of(fast, f)
        .filter((e) => e.step_name === 'domain_events_ts_process_payment')
        .map((e) => [e.event_name, e.metadata.condition, e.metadata.attempt])
        .sort();
      assert.deepEqual(payment, [
        ['payment.failed', 'failure', 1],
        ['payment.processed', 'success', 2],
        ['payment.retrying', 'retryable_failure', 1],
      ]);
      assert.ok(!names(fast, f).includes('payment.declined'));
    });

    it('3 concurrent tasks complete and each publishes its own events', async () => {
      const finished = await Promise.all([7, 8, 9].map((n) => system.run(NS, NAME, order(n))));
      for (const f of finished) assertComplete(f);
      for (const f of finished) {
        await waitFor('3 fast events', () => of(fast, f).length === 3);
        await waitFor('1 durable event', () => of(durable, f).length === 1);
      }
      await system.worker.domainEventsIdle();
      for (const [index, f] of finished.entries()) {
        assert.deepEqual(names(fast, f), ['inventory.updated', 'notification.sent', 'order.validated']);
        assert.deepEqual(names(durable, f), ['payment.processed']);
        for (const event of [...of(fast, f), ...of(durable, f)]) {
          assert.equal((event.payload as JsonObject).order_id, `ORD-${index + 7}`);
        }
      }
      assert.equal(new Set(durable.map((e) => e.event_id)).size, durable.length, 'no duplicates');
      assert.equal(system.worker.health().status, 'healthy');
      assert.equal(system.worker.metrics().domainEvents?.totals.failed, 0);
    });
  });
}
