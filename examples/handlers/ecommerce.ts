/**
 * #6 `ecommerce_ts/ecommerce_order_processing_ts` (reference C §6.1; `Ecommerce.*`): validate_cart →
 * process_payment → update_inventory → create_order → send_confirmation. Functional handlers
 * (`defineHandler`); create_order reads all three of its ancestors.
 *
 * Values follow the reference example: a fixed five-product catalogue, 8 % tax and 5.99 shipping, so
 * `[{product_id: 1, quantity: 2}, {product_id: 2, quantity: 1}]` ⇒ subtotal 109.97, tax 8.80,
 * total 124.76. Unknown products and declined cards are permanent; a product short of stock and a
 * gateway timeout (`tok_test_network_error`) are retryable.
 */
import type { JsonObject } from '@tasker/core';
import { defineHandler, PermanentError, RetryableError } from '@tasker/worker';
import {
  deterministicId,
  fromCents,
  invalid,
  isObject,
  requireArray,
  requireNumber,
  requireObject,
  requireString,
} from './support.ts';

interface Product {
  name: string;
  priceCents: number;
  stock: number;
}

const PRODUCTS: ReadonlyMap<number, Product> = new Map([
  [1, { name: 'Widget A', priceCents: 2999, stock: 100 }],
  [2, { name: 'Widget B', priceCents: 4999, stock: 50 }],
  [3, { name: 'Widget C', priceCents: 1999, stock: 25 }],
  [4, { name: 'Widget D', priceCents: 9999, stock: 0 }],
  [5, { name: 'Widget E', priceCents: 1499, stock: 10 }],
]);

const TAX_RATE = 0.08;
const SHIPPING_CENTS = 599;

function product(id: number): Product {
  const found = PRODUCTS.get(id);
  if (found === undefined)
    throw new PermanentError(`product ${id} not found`, { errorCode: 'UNKNOWN_PRODUCT' });
  return found;
}

export const ValidateCartHandler = defineHandler(
  'Ecommerce.StepHandlers.ValidateCartHandler',
  { inputs: { cartItems: 'cart_items' } },
  ({ cartItems }) => {
    const items = requireArray(cartItems, 'cart_items');
    if (items.length === 0) throw invalid('cart_items must not be empty', { field: 'cart_items' });
    let subtotalCents = 0;
    let itemCount = 0;
    const validated: JsonObject[] = items.map((raw, index) => {
      const item = requireObject(raw, `cart_items[${index}]`);
      const id = requireNumber(item.product_id, `cart_items[${index}].product_id`);
      const quantity = requireNumber(item.quantity, `cart_items[${index}].quantity`);
      if (!Number.isInteger(quantity) || quantity < 1)
        throw invalid(`quantity of product ${id} must be >= 1`);
      const found = product(id);
      if (found.stock < quantity) {
        // Stock comes back: let orchestration retry rather than fail the order.
        throw new RetryableError(
          `insufficient stock for ${found.name}: available ${found.stock}, requested ${quantity}`,
          { errorCode: 'OUT_OF_STOCK', metadata: { product_id: id } },
        );
      }
      const lineCents = found.priceCents * quantity;
      subtotalCents += lineCents;
      itemCount += quantity;
      return {
        product_id: id,
        name: found.name,
        price: fromCents(found.priceCents),
        quantity,
        line_total: fromCents(lineCents),
      };
    });
    const taxCents = Math.round(subtotalCents * TAX_RATE);
    return {
      validated_items: validated,
      subtotal: fromCents(subtotalCents),
      tax: fromCents(taxCents),
      shipping: fromCents(SHIPPING_CENTS),
      total: fromCents(subtotalCents + taxCents + SHIPPING_CENTS),
      item_count: itemCount,
    };
  },
);

/** Test tokens of the reference's mock gateway. */
const DECLINES: Record<string, string> = {
  tok_test_declined: 'card was declined by the issuer',
  tok_test_insufficient_funds: 'insufficient funds',
};

export const ProcessPaymentHandler = defineHandler(
  'Ecommerce.StepHandlers.ProcessPaymentHandler',
  { inputs: { paymentInfo: 'payment_info' }, depends: { cart: 'validate_cart' } },
  ({ paymentInfo, cart, context }) => {
    const payment = requireObject(paymentInfo, 'payment_info');
    const method = requireString(payment.method, 'payment_info.method');
    const token = requireString(payment.token, 'payment_info.token');
    const total = requireNumber(isObject(cart) ? cart.total : undefined, 'validate_cart.total');
    const decline = DECLINES[token];
    if (decline !== undefined)
      throw new PermanentError(`payment failed: ${decline}`, { errorCode: 'DECLINED' });
    if (token === 'tok_test_network_error') {
      throw new RetryableError('payment gateway timeout', { errorCode: 'GATEWAY_TIMEOUT' });
    }
    return {
      payment_id: deterministicId('pay', context.taskUuid),
      transaction_id: deterministicId('txn', context.taskUuid),
      status: 'succeeded',
      amount_charged: total,
      currency: 'USD',
      payment_method: method,
    };
  },
);

export const UpdateInventoryHandler = defineHandler(
  'Ecommerce.StepHandlers.UpdateInventoryHandler',
  { depends: { cart: 'validate_cart' } },
  ({ cart, context }) => {
    const items = requireArray(isObject(cart) ? cart.validated_items : undefined, 'validated_items');
    let reserved = 0;
    const updated = items.map((raw) => {
      const item = requireObject(raw, 'validated item');
      const id = requireNumber(item.product_id, 'product_id');
      const quantity = requireNumber(item.quantity, 'quantity');
      const found = product(id);
      reserved += quantity;
      return {
        product_id: id,
        name: found.name,
        previous_stock: found.stock,
        new_stock: found.stock - quantity,
        quantity_reserved: quantity,
        reservation_id: deterministicId('rsv', context.taskUuid, id),
      };
    });
    return {
      updated_products: updated,
      total_items_reserved: reserved,
      inventory_log_id: deterministicId('log', context.taskUuid),
    };
  },
);

export const CreateOrderHandler = defineHandler(
  'Ecommerce.StepHandlers.CreateOrderHandler',
  {
    inputs: { customerInfo: 'customer_info' },
    depends: { cart: 'validate_cart', payment: 'process_payment', inventory: 'update_inventory' },
  },
  ({ customerInfo, cart, payment, inventory, context }) => {
    const customer = requireObject(customerInfo, 'customer_info');
    const email = requireString(customer.email, 'customer_info.email');
    if (!(isObject(cart) && isObject(payment) && isObject(inventory))) {
      throw new PermanentError(
        'create_order needs the results of validate_cart, process_payment and update_inventory',
      );
    }
    const orderId = deterministicId('ord', context.taskUuid);
    return {
      order_id: orderId,
      order_number: `ORD-${orderId.slice(4).toUpperCase()}`,
      status: 'confirmed',
      customer_email: email,
      total_amount: requireNumber(cart.total, 'validate_cart.total'),
      item_count: requireNumber(cart.item_count, 'validate_cart.item_count'),
      payment_id: requireString(payment.payment_id, 'process_payment.payment_id'),
      inventory_log_id: requireString(inventory.inventory_log_id, 'update_inventory.inventory_log_id'),
      estimated_delivery_days: 7,
    };
  },
);

export const SendConfirmationHandler = defineHandler(
  'Ecommerce.StepHandlers.SendConfirmationHandler',
  { inputs: { customerInfo: 'customer_info' }, depends: { order: 'create_order' } },
  ({ customerInfo, order, context }) => {
    const customer = requireObject(customerInfo, 'customer_info');
    const email = requireString(customer.email, 'customer_info.email');
    const orderNumber = requireString(isObject(order) ? order.order_number : undefined, 'order_number');
    return {
      email_id: deterministicId('eml', context.taskUuid),
      recipient: email,
      subject: `Order Confirmation - ${orderNumber}`,
      status: 'sent',
      template: 'order_confirmation',
      template_data: {
        customer_name: customer.name ?? null,
        order_number: orderNumber,
        total_amount: isObject(order) ? (order.total_amount ?? null) : null,
        items: context.getDependencyField('validate_cart', 'validated_items') ?? [],
      },
    };
  },
);
