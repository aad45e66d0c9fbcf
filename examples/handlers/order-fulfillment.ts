/**
 * #5 `rust_e2e_order_fulfillment/business_workflow` (reference C §6.1; `OrderFulfillment.*`):
 * validate_order → reserve_inventory → process_payment(validate, reserve) → ship_order(validate,
 * reserve, payment). Class-style handlers; later steps read several ancestors (the template's redundant
 * transitive edges make them direct parents too).
 *
 * Simulated outcomes: a malformed order is a permanent `validation_error`; payment token
 * `tok_declined` is a permanent decline, `tok_timeout` a retryable gateway timeout.
 */
import type { JsonObject } from '@tasker/core';
import { PermanentError, RetryableError, type StepContext, StepHandler } from '@tasker/worker';
import {
  deterministicId,
  fromCents,
  invalid,
  isObject,
  requireArray,
  requireNumber,
  requireObject,
  requireString,
  toCents,
} from './support.ts';

const SHIPPING: Record<string, { costCents: number; days: number; carrier: string }> = {
  standard: { costCents: 599, days: 5, carrier: 'USPS' },
  express: { costCents: 1499, days: 2, carrier: 'UPS' },
  overnight: { costCents: 2999, days: 1, carrier: 'FedEx' },
};

export class ValidateOrderHandler extends StepHandler {
  static override handlerName = 'OrderFulfillment.StepHandlers.ValidateOrderHandler';

  call(ctx: StepContext) {
    const customer = requireObject(ctx.getInput('customer'), 'customer');
    const customerId = requireNumber(customer.id, 'customer.id');
    const email = requireString(customer.email, 'customer.email');
    if (!email.includes('@')) throw invalid(`customer.email "${email}" is not an email address`);
    const items = requireArray(ctx.getInput('items'), 'items');
    if (items.length === 0) throw invalid('an order needs at least one item', { field: 'items' });

    let totalCents = 0;
    let itemCount = 0;
    const validated: JsonObject[] = items.map((raw, index) => {
      const item = requireObject(raw, `items[${index}]`);
      const sku = requireString(item.sku, `items[${index}].sku`);
      const quantity = requireNumber(item.quantity, `items[${index}].quantity`);
      const price = requireNumber(item.price, `items[${index}].price`);
      if (!Number.isInteger(quantity) || quantity < 1 || price < 0) {
        throw invalid(`item ${sku} needs an integer quantity >= 1 and a price >= 0`, { sku });
      }
      const lineCents = toCents(price) * quantity;
      totalCents += lineCents;
      itemCount += quantity;
      return { sku, quantity, unit_price: price, line_total: fromCents(lineCents) };
    });
    return this.success(
      {
        customer_id: customerId,
        customer_email: email,
        validated_items: validated,
        item_count: itemCount,
        order_total: fromCents(totalCents),
        validation_status: 'complete',
      },
      { operation: 'validate_order' },
    );
  }
}

export class ReserveInventoryHandler extends StepHandler {
  static override handlerName = 'OrderFulfillment.StepHandlers.ReserveInventoryHandler';

  call(ctx: StepContext) {
    const items = requireArray(
      ctx.getDependencyField('validate_order', 'validated_items'),
      'validated_items',
    );
    const reservations = items.map((raw) => {
      const item = requireObject(raw, 'validated item');
      return { sku: item.sku ?? null, quantity_reserved: item.quantity ?? 0, reservation_status: 'reserved' };
    });
    const total = reservations.reduce((sum, r) => sum + requireNumber(r.quantity_reserved, 'quantity'), 0);
    return {
      reservation_id: deterministicId('rsv', ctx.taskUuid),
      reservations,
      total_items_reserved: total,
      reservation_expires_in_minutes: 15,
    };
  }
}

export class ProcessPaymentHandler extends StepHandler {
  static override handlerName = 'OrderFulfillment.StepHandlers.ProcessPaymentHandler';

  call(ctx: StepContext) {
    const payment = requireObject(ctx.getInput('payment'), 'payment');
    const method = requireString(payment.method, 'payment.method');
    const token = requireString(payment.token, 'payment.token');
    const amount = requireNumber(ctx.getDependencyField('validate_order', 'order_total'), 'order_total');
    const reservationId = ctx.getDependencyField('reserve_inventory', 'reservation_id');
    if (typeof reservationId !== 'string') {
      throw new PermanentError('reserve_inventory left no reservation to pay for');
    }
    if (token === 'tok_declined') {
      throw new PermanentError('payment declined by the issuer', {
        errorCode: 'CARD_DECLINED',
        metadata: { payment_method: method },
      });
    }
    if (token === 'tok_timeout') {
      throw new RetryableError('payment gateway timed out', {
        errorCode: 'GATEWAY_TIMEOUT',
        retryAfterSeconds: 2,
      });
    }
    return {
      payment_id: deterministicId('pay', ctx.taskUuid),
      transaction_id: deterministicId('txn', ctx.taskUuid),
      amount_charged: amount,
      currency: 'USD',
      payment_method: method,
      reservation_id: reservationId,
      status: 'succeeded',
    };
  }
}

export class ShipOrderHandler extends StepHandler {
  static override handlerName = 'OrderFulfillment.StepHandlers.ShipOrderHandler';

  call(ctx: StepContext) {
    const shipping = requireObject(ctx.getInput('shipping'), 'shipping');
    const method = requireString(shipping.method, 'shipping.method');
    const option = SHIPPING[method];
    if (option === undefined)
      throw invalid(`unknown shipping method "${method}"`, { field: 'shipping.method' });
    if (!isObject(shipping.address)) throw invalid('shipping.address must be an object');
    const orderTotal = requireNumber(ctx.getDependencyField('validate_order', 'order_total'), 'order_total');
    const status = ctx.getDependencyField('process_payment', 'status');
    if (status !== 'succeeded') throw new PermanentError('cannot ship an order that was not paid for');
    return {
      shipment_id: deterministicId('shp', ctx.taskUuid),
      tracking_number: deterministicId('trk', ctx.taskUuid).toUpperCase(),
      carrier: option.carrier,
      shipping_method: method,
      shipping_cost: fromCents(option.costCents),
      estimated_delivery_days: option.days,
      order_total: orderTotal,
      total_with_shipping: fromCents(toCents(orderTotal) + option.costCents),
      payment_id: ctx.getDependencyField('process_payment', 'payment_id') ?? null,
      status: 'label_created',
    };
  }
}
