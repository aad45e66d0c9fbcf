/**
 * #30 `domain_events_ts/domain_event_publishing_ts` (reference C §5, §6.4; `DomainEvents.*`):
 * validate_order → process_payment → update_inventory → send_notification, each step declaring
 * domain events (`order.validated` fast/success, `payment.processed` durable/success,
 * `payment.failed` durable/failure, `inventory.updated` fast/always, `notification.sent`
 * fast/success). The worker publishes them after each completion (`packages/worker/src/events.ts`).
 *
 * Payloads follow the worker's convention: by default the step result is the payload; a handler
 * supplies one explicitly under `_domain_events: { <event name>: payload }` in its result, or in the
 * metadata of the error it throws.
 *
 * Test switches in the task context:
 * - `payment_should_fail: true` ⇒ the payment is declined: a permanent failure whose
 *   `payment.failed` payload is `{order_id, error}` (the `failure` / `permanent_failure` conditions);
 * - `payment_retryable_failures: n` ⇒ the first n payment attempts fail retryably (the
 *   `retryable_failure` condition), then the payment succeeds;
 * - `invalid_event_payload: true` ⇒ validate_order supplies an `order.validated` payload that breaks
 *   its schema (`order_id` is a number): the event is dropped and counted, the step still succeeds.
 */
import type { JsonObject } from '@tasker/core';
import { defineHandler, PermanentError, RetryableError } from '@tasker/worker';
import { deterministicId, invalid, requireNumber, requireObject, requireString } from './support.ts';

const EVENTS = '_domain_events';

export const ValidateOrderHandler = defineHandler(
  'DomainEvents.StepHandlers.ValidateOrderHandler',
  {
    inputs: {
      orderId: 'order_id',
      customerId: 'customer_id',
      amount: 'amount',
      invalidPayload: 'invalid_event_payload',
    },
  },
  ({ orderId, customerId, amount, invalidPayload, context }) => {
    const order = requireString(orderId, 'order_id');
    const customer = requireString(customerId, 'customer_id');
    const total = requireNumber(amount, 'amount');
    if (total <= 0) throw invalid(`amount must be positive, got ${total}`, { field: 'amount' });
    const rules = context.stepConfig.validation_rules;
    const result: JsonObject = {
      order_id: order,
      customer_id: customer,
      amount: total,
      validated: true,
      validated_at: new Date().toISOString(),
      validation_rules: Array.isArray(rules) ? rules : [],
    };
    if (invalidPayload === true) result[EVENTS] = { 'order.validated': { order_id: 12345 } };
    return result;
  },
);

export const ProcessPaymentHandler = defineHandler(
  'DomainEvents.StepHandlers.ProcessPaymentHandler',
  {
    depends: { validation: 'domain_events_ts_validate_order' },
    inputs: { shouldFail: 'payment_should_fail', retryableFailures: 'payment_retryable_failures' },
  },
  ({ validation, shouldFail, retryableFailures, context }) => {
    const v = requireObject(validation, 'domain_events_ts_validate_order');
    const order = requireString(v.order_id, 'order_id');
    const amount = requireNumber(v.amount, 'amount');
    if (shouldFail === true) {
      const error = 'payment declined by the processor';
      throw new PermanentError(error, {
        errorCode: 'PAYMENT_DECLINED',
        metadata: { order_id: order, [EVENTS]: { 'payment.failed': { order_id: order, error } } },
      });
    }
    const failures = typeof retryableFailures === 'number' ? retryableFailures : 0;
    if (context.retryCount < failures) {
      const error = `payment processor unavailable (attempt ${context.retryCount + 1})`;
      throw new RetryableError(error, {
        errorCode: 'PROCESSOR_UNAVAILABLE',
        retryAfterSeconds: 0,
        metadata: { order_id: order, [EVENTS]: { 'payment.failed': { order_id: order, error } } },
      });
    }
    const processor = context.stepConfig.payment_processor;
    return {
      order_id: order,
      payment_id: deterministicId('pay', context.taskUuid),
      amount,
      status: 'succeeded',
      processor: typeof processor === 'string' ? processor : 'default',
      attempt: context.retryCount + 1,
    };
  },
);

export const UpdateInventoryHandler = defineHandler(
  'DomainEvents.StepHandlers.UpdateInventoryHandler',
  { depends: { payment: 'domain_events_ts_process_payment' } },
  ({ payment, context }) => {
    const p = requireObject(payment, 'domain_events_ts_process_payment');
    if (p.status !== 'succeeded') throw new PermanentError('the payment did not succeed');
    const system = context.stepConfig.inventory_system;
    return {
      order_id: requireString(p.order_id, 'order_id'),
      items_updated: 1,
      inventory_system: typeof system === 'string' ? system : 'default',
      reservation_id: deterministicId('inv', context.taskUuid),
    };
  },
);

export const SendNotificationHandler = defineHandler(
  'DomainEvents.StepHandlers.SendNotificationHandler',
  { depends: { inventory: 'domain_events_ts_update_inventory' } },
  ({ inventory, context }) => {
    const i = requireObject(inventory, 'domain_events_ts_update_inventory');
    const configured = context.stepConfig.notification_channels;
    const channels = Array.isArray(configured)
      ? configured.filter((channel): channel is string => typeof channel === 'string')
      : ['email'];
    return {
      order_id: requireString(i.order_id, 'order_id'),
      channels,
      notification_id: deterministicId('ntf', context.taskUuid),
      sent: true,
    };
  },
);
