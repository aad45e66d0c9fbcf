/**
 * The example handlers of the acceptance workflows #1–#22 (`examples/handlers`) run against their
 * templates (`examples/templates`) through `executeHandler`, in DAG order, each step seeing its
 * ancestors' stored results: exact values of reference C §6, method dispatch and resolver hints, and
 * the classification of every error scenario.
 */
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type JsonObject,
  type JsonValue,
  loadTemplates,
  type StepDefinition,
  type TaskTemplate,
} from '@tasker/core';
import {
  exampleHandlers,
  exampleResolvers,
  registerExampleHandlers,
} from '../../../examples/handlers/index.ts';
import {
  type ExecutableStep,
  executeHandler,
  HandlerRegistry,
  type StepContextData,
  type StepExecutionResult,
} from '../src/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const TEMPLATES = join(ROOT, 'examples/templates');
const COVERED = (n: number) => n >= 1 && n <= 29;

const registry = new HandlerRegistry();
registerExampleHandlers(registry);

let templates: TaskTemplate[] = [];
before(async () => {
  const loaded = await loadTemplates([TEMPLATES]);
  assert.deepEqual(
    loaded.errors.map((error) => error.message),
    [],
  );
  templates = loaded.templates.map(({ template }) => template);
});

function acceptanceNumber(template: TaskTemplate): number {
  const tag = template.metadata?.tags.find((t) => t.startsWith('acceptance:'));
  return tag === undefined ? 0 : Number(tag.slice('acceptance:'.length));
}

function template(namespace: string, name: string): TaskTemplate {
  const found = templates.find((t) => t.namespace_name === namespace && t.name === name);
  assert.ok(found, `template ${namespace}/${name}`);
  return found;
}

function stepOf(t: TaskTemplate, name: string): StepDefinition {
  const found = t.steps.find((s) => s.name === name);
  assert.ok(found, `step ${name} of ${t.name}`);
  return found;
}

function ancestors(t: TaskTemplate, name: string, into = new Set<string>()): Set<string> {
  for (const parent of stepOf(t, name).dependencies) {
    if (!into.has(parent)) {
      into.add(parent);
      ancestors(t, parent, into);
    }
  }
  return into;
}

/** Step names parents-first (Kahn; ties keep template order). */
function dagOrder(t: TaskTemplate): string[] {
  const done: string[] = [];
  while (done.length < t.steps.length) {
    const next = t.steps.find((s) => !done.includes(s.name) && s.dependencies.every((d) => done.includes(d)));
    assert.ok(next, `cycle in ${t.name}`);
    done.push(next.name);
  }
  return done;
}

interface RunOptions {
  retryCount?: number;
  /** Stored results of other steps (e.g. from an earlier run), by step name. */
  results?: Record<string, StepExecutionResult>;
}

/** Runs one step of `t` the way a worker would after claiming it. */
function runStep(
  t: TaskTemplate,
  name: string,
  context: JsonObject,
  options: RunOptions = {},
  step: StepDefinition = stepOf(t, name),
): Promise<StepExecutionResult> {
  const dependencyResults: Record<string, StepExecutionResult> = {};
  for (const ancestor of ancestors(t, name)) {
    const stored = options.results?.[ancestor];
    if (stored !== undefined) dependencyResults[ancestor] = stored;
  }
  const data: StepContextData = {
    taskUuid: `task-${t.namespace_name}-${t.name}`,
    stepUuid: `step-${name}`,
    stepName: name,
    correlationId: 'corr-1',
    inputData: context,
    stepConfig: step.handler.initialization,
    stepInputs: step.handler.initialization,
    dependencyResults,
    retryCount: options.retryCount ?? 0,
    maxAttempts: step.retry.max_attempts,
  };
  return executeHandler(registry, step, data, { timeoutMs: 5000, workerId: 'test-worker' });
}

/** Runs every step in DAG order; a failed step's descendants are not run (absent from the map). */
async function runWorkflow(
  t: TaskTemplate,
  context: JsonObject,
): Promise<Record<string, StepExecutionResult>> {
  const results: Record<string, StepExecutionResult> = {};
  for (const name of dagOrder(t)) {
    if (![...ancestors(t, name)].every((a) => results[a]?.success === true)) continue;
    results[name] = await runStep(t, name, context, { results });
  }
  return results;
}

function resultOf(results: Record<string, StepExecutionResult>, name: string): JsonObject {
  const step = results[name];
  assert.ok(step, `step ${name} ran`);
  assert.equal(step.success, true, `step ${name} failed: ${step.error?.message}`);
  const value: JsonValue = step.result;
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value));
  return value;
}

async function completeAll(
  t: TaskTemplate,
  context: JsonObject,
): Promise<Record<string, StepExecutionResult>> {
  const results = await runWorkflow(t, context);
  assert.deepEqual(Object.keys(results).sort(), t.steps.map((s) => s.name).sort());
  for (const name of Object.keys(results)) resultOf(results, name);
  return results;
}

function assertFailure(
  result: StepExecutionResult | undefined,
  expected: { retryable: boolean; errorType: string; errorCode?: string; message?: RegExp },
): void {
  assert.ok(result, 'step ran');
  assert.equal(result.success, false);
  assert.equal(result.status, 'error');
  assert.equal(result.metadata.retryable, expected.retryable);
  assert.equal(result.error?.retryable, expected.retryable);
  assert.equal(result.error?.error_type, expected.errorType);
  if (expected.errorCode !== undefined) assert.equal(result.metadata.error_code, expected.errorCode);
  if (expected.message !== undefined) assert.match(result.error?.message ?? '', expected.message);
}

const pow = (n: number, e: number) => BigInt(n) ** BigInt(e);

describe('example handler registration', () => {
  it('resolves every handler block of the covered templates (#1–#30), method included', async () => {
    const covered = templates.filter((t) => COVERED(acceptanceNumber(t)) || acceptanceNumber(t) === 30);
    assert.equal(covered.length, 34);
    const callables = new Set<string>();
    for (const t of covered) {
      for (const step of t.steps) {
        const resolved = await registry.resolve(step.handler);
        assert.equal(resolved.method, step.handler.method);
        callables.add(step.handler.callable);
      }
    }
    // Every example handler is used by a covered template, except the test-support one.
    assert.deepEqual(
      Object.keys(exampleHandlers)
        .filter((name) => name !== 'TestSupport.StepHandlers.SleepHandler')
        .sort(),
      [...callables].sort(),
    );
    assert.deepEqual(exampleResolvers, []);
  });

  it('loadDirectory finds the same handlers', async () => {
    const loaded = new HandlerRegistry();
    const names = await loaded.loadDirectory(join(ROOT, 'examples/handlers'));
    assert.deepEqual(names, Object.keys(exampleHandlers).sort());
  });
});

describe('#1 linear_workflow_ts/mathematical_sequence_ts', () => {
  const t = () => template('linear_workflow_ts', 'mathematical_sequence_ts');

  it('10 ⇒ 100 → 110 → 330 → 165', async () => {
    const r = await completeAll(t(), { even_number: 10 });
    assert.deepEqual(resultOf(r, 'linear_step_1'), { squared_value: 100, operation: 'square', input: 10 });
    assert.deepEqual(resultOf(r, 'linear_step_2'), {
      added_value: 110,
      operation: 'add',
      constant: 10,
      input: 100,
    });
    assert.deepEqual(resultOf(r, 'linear_step_3'), {
      multiplied_value: 330,
      operation: 'multiply',
      factor: 3,
      input: 110,
    });
    assert.deepEqual(resultOf(r, 'linear_step_4'), {
      final_value: 165,
      operation: 'divide',
      divisor: 2,
      input: 330,
    });
  });

  it('6 ⇒ 69 and 8 ⇒ 111', async () => {
    assert.equal(resultOf(await completeAll(t(), { even_number: 6 }), 'linear_step_4').final_value, 69);
    assert.equal(resultOf(await completeAll(t(), { even_number: 8 }), 'linear_step_4').final_value, 111);
  });

  it('odd, missing or non-numeric input is a permanent validation_error in linear_step_1', async () => {
    const contexts: JsonObject[] = [{ even_number: 7 }, {}, { even_number: 'ten' }];
    for (const context of contexts) {
      const r = await runWorkflow(t(), context);
      assertFailure(r.linear_step_1, { retryable: false, errorType: 'validation_error' });
      assert.deepEqual(Object.keys(r), ['linear_step_1']);
    }
  });
});

describe('#2 diamond_workflow_ts/parallel_computation_ts', () => {
  const t = () => template('diamond_workflow_ts', 'parallel_computation_ts');

  it('4 ⇒ 16, 41, 32, 36.5', async () => {
    const r = await completeAll(t(), { even_number: 4 });
    assert.equal(resultOf(r, 'diamond_start_ts').squared_value, 16);
    assert.equal(resultOf(r, 'diamond_branch_b_ts').branch_b_value, 41);
    assert.equal(resultOf(r, 'diamond_branch_c_ts').branch_c_value, 32);
    assert.deepEqual(resultOf(r, 'diamond_end_ts'), {
      final_value: 36.5,
      operation: 'average',
      branch_b_value: 41,
      branch_c_value: 32,
    });
  });

  it('6 ⇒ 66.5 and 10 ⇒ 162.5', async () => {
    assert.equal(resultOf(await completeAll(t(), { even_number: 6 }), 'diamond_end_ts').final_value, 66.5);
    assert.equal(resultOf(await completeAll(t(), { even_number: 10 }), 'diamond_end_ts').final_value, 162.5);
  });

  it('odd input fails diamond_start_ts permanently', async () => {
    const r = await runWorkflow(t(), { even_number: 3 });
    assertFailure(r.diamond_start_ts, { retryable: false, errorType: 'validation_error' });
  });
});

describe('#3 rust_e2e_tree/hierarchical_tree', () => {
  it('squares down the tree; the convergence is (d·e·f·g)², exact past 2⁵³', async () => {
    const r = await completeAll(template('rust_e2e_tree', 'hierarchical_tree'), { even_number: 2 });
    assert.equal(resultOf(r, 'tree_root').result, 4);
    assert.equal(resultOf(r, 'tree_branch_left').result, 16);
    assert.equal(resultOf(r, 'tree_branch_right').result, 16);
    for (const leaf of ['tree_leaf_d', 'tree_leaf_e', 'tree_leaf_f', 'tree_leaf_g']) {
      assert.equal(resultOf(r, leaf).result, 256);
    }
    assert.deepEqual(resultOf(r, 'tree_final_convergence'), {
      result: pow(2, 64).toString(),
      operation: 'multiply_all_and_square',
      multiplied: 2 ** 32,
    });
  });

  it('6 ⇒ 6⁶⁴', async () => {
    const r = await completeAll(template('rust_e2e_tree', 'hierarchical_tree'), { even_number: 6 });
    assert.equal(resultOf(r, 'tree_leaf_g').result, 6 ** 8);
    assert.equal(resultOf(r, 'tree_final_convergence').result, pow(6, 64).toString());
  });
});

describe('#4 rust_e2e_mixed_dag/complex_dag', () => {
  it('7 steps: validate = (left·right)², finalize = (validate·transform·analyze)²', async () => {
    const r = await completeAll(template('rust_e2e_mixed_dag', 'complex_dag'), { even_number: 2 });
    assert.equal(resultOf(r, 'dag_init').result, 4);
    assert.equal(resultOf(r, 'dag_process_left').result, 16);
    assert.equal(resultOf(r, 'dag_process_right').result, 16);
    assert.equal(resultOf(r, 'dag_validate').result, 65536);
    assert.equal(resultOf(r, 'dag_transform').result, 256);
    assert.equal(resultOf(r, 'dag_analyze').result, 256);
    assert.equal(resultOf(r, 'dag_finalize').result, pow(2, 64).toString());
    const six = await completeAll(template('rust_e2e_mixed_dag', 'complex_dag'), { even_number: 6 });
    assert.equal(resultOf(six, 'dag_validate').result, 2821109907456);
    assert.equal(resultOf(six, 'dag_finalize').result, pow(6, 64).toString());
  });
});

describe('#19 rust_e2e_linear/mathematical_sequence', () => {
  it('6 → 36 → 1296 → 1679616 → 2821109907456', async () => {
    const r = await completeAll(template('rust_e2e_linear', 'mathematical_sequence'), { even_number: 6 });
    assert.deepEqual(
      ['linear_step_1', 'linear_step_2', 'linear_step_3', 'linear_step_4'].map((s) => resultOf(r, s).result),
      [36, 1296, 1679616, 2821109907456],
    );
    // 10¹⁶ is past 2⁵³: the exact value is kept as a decimal string.
    const ten = await completeAll(template('rust_e2e_linear', 'mathematical_sequence'), { even_number: 10 });
    assert.equal(resultOf(ten, 'linear_step_3').result, 100000000);
    assert.equal(resultOf(ten, 'linear_step_4').result, '10000000000000000');
  });
});

const ORDER: JsonObject = {
  customer: { id: 12345, name: 'Jane Doe', email: 'jane@example.com' },
  items: [
    { sku: 'WIDGET-001', quantity: 2, price: 29.99 },
    { sku: 'GADGET-002', quantity: 1, price: 49.99 },
  ],
  payment: { method: 'credit_card', token: 'tok_test_success' },
  shipping: { method: 'express', address: { street: '1 Main St', city: 'Springfield', zip: '12345' } },
};

describe('#5 rust_e2e_order_fulfillment/business_workflow', () => {
  const t = () => template('rust_e2e_order_fulfillment', 'business_workflow');

  it('validates, reserves, charges the order total and ships', async () => {
    const r = await completeAll(t(), ORDER);
    const validated = resultOf(r, 'validate_order');
    assert.equal(validated.order_total, 109.97);
    assert.equal(validated.item_count, 3);
    assert.equal(resultOf(r, 'reserve_inventory').total_items_reserved, 3);
    const payment = resultOf(r, 'process_payment');
    assert.equal(payment.amount_charged, 109.97);
    assert.equal(payment.reservation_id, resultOf(r, 'reserve_inventory').reservation_id);
    const shipment = resultOf(r, 'ship_order');
    assert.equal(shipment.shipping_cost, 14.99);
    assert.equal(shipment.total_with_shipping, 124.96);
    assert.equal(shipment.payment_id, payment.payment_id);
    assert.equal(shipment.status, 'label_created');
  });

  it('is deterministic: the same task reports the same ids', async () => {
    const [a, b] = [await completeAll(t(), ORDER), await completeAll(t(), ORDER)];
    assert.deepEqual(resultOf(a, 'ship_order'), resultOf(b, 'ship_order'));
  });

  it('an invalid order is permanent; a declined card permanent; a gateway timeout retryable', async () => {
    const empty = await runWorkflow(t(), { ...ORDER, items: [] });
    assertFailure(empty.validate_order, { retryable: false, errorType: 'validation_error' });
    const declined = await runWorkflow(t(), {
      ...ORDER,
      payment: { method: 'credit_card', token: 'tok_declined' },
    });
    assertFailure(declined.process_payment, {
      retryable: false,
      errorType: 'permanent_error',
      errorCode: 'CARD_DECLINED',
    });
    assert.equal(declined.ship_order, undefined);
    const timeout = await runWorkflow(t(), {
      ...ORDER,
      payment: { method: 'credit_card', token: 'tok_timeout' },
    });
    assertFailure(timeout.process_payment, {
      retryable: true,
      errorType: 'retryable_error',
      errorCode: 'GATEWAY_TIMEOUT',
    });
    assert.equal(timeout.process_payment?.orchestration_metadata?.backoff_hint?.delay_seconds, 2);
  });
});

const CART: JsonObject = {
  cart_items: [
    { product_id: 1, quantity: 2 },
    { product_id: 2, quantity: 1 },
  ],
  customer_info: { email: 'test@example.com', name: 'Test Customer', phone: '555-0100' },
  payment_info: { method: 'credit_card', token: 'tok_test_success', amount: 124.76 },
};

describe('#6 ecommerce_ts/ecommerce_order_processing_ts', () => {
  const t = () => template('ecommerce_ts', 'ecommerce_order_processing_ts');

  it('totals 109.97 + 8.80 tax + 5.99 shipping = 124.76; create_order reads its three ancestors', async () => {
    const r = await completeAll(t(), CART);
    const cart = resultOf(r, 'validate_cart');
    assert.deepEqual(
      [cart.subtotal, cart.tax, cart.shipping, cart.total, cart.item_count],
      [109.97, 8.8, 5.99, 124.76, 3],
    );
    assert.equal(resultOf(r, 'process_payment').amount_charged, 124.76);
    const inventory = resultOf(r, 'update_inventory');
    assert.equal(inventory.total_items_reserved, 3);
    const order = resultOf(r, 'create_order');
    assert.equal(order.total_amount, 124.76);
    assert.equal(order.item_count, 3);
    assert.equal(order.payment_id, resultOf(r, 'process_payment').payment_id);
    assert.equal(order.inventory_log_id, inventory.inventory_log_id);
    const confirmation = resultOf(r, 'send_confirmation');
    assert.equal(confirmation.recipient, 'test@example.com');
    assert.equal(confirmation.subject, `Order Confirmation - ${String(order.order_number)}`);
  });

  it('unknown product and declined card are permanent; out of stock and gateway timeout retryable', async () => {
    const unknown = await runWorkflow(t(), { ...CART, cart_items: [{ product_id: 99, quantity: 1 }] });
    assertFailure(unknown.validate_cart, {
      retryable: false,
      errorType: 'permanent_error',
      errorCode: 'UNKNOWN_PRODUCT',
    });
    const stock = await runWorkflow(t(), { ...CART, cart_items: [{ product_id: 4, quantity: 1 }] });
    assertFailure(stock.validate_cart, {
      retryable: true,
      errorType: 'retryable_error',
      errorCode: 'OUT_OF_STOCK',
    });
    const declined = await runWorkflow(t(), {
      ...CART,
      payment_info: { method: 'credit_card', token: 'tok_test_declined', amount: 1 },
    });
    assertFailure(declined.process_payment, {
      retryable: false,
      errorType: 'permanent_error',
      errorCode: 'DECLINED',
    });
    const network = await runWorkflow(t(), {
      ...CART,
      payment_info: { method: 'credit_card', token: 'tok_test_network_error', amount: 1 },
    });
    assertFailure(network.process_payment, { retryable: true, errorType: 'retryable_error' });
    const empty = await runWorkflow(t(), { ...CART, cart_items: [] });
    assertFailure(empty.validate_cart, { retryable: false, errorType: 'validation_error' });
  });
});

describe('#7 data_pipeline_ts/analytics_pipeline_ts', () => {
  it('8 steps with predictable figures', async () => {
    const context = {
      pipeline_id: 'pipe-42',
      date_range: { start_date: '2024-01-01', end_date: '2024-01-03' },
    };
    const r = await completeAll(template('data_pipeline_ts', 'analytics_pipeline_ts'), context);
    const extract = resultOf(r, 'extract_sales_data');
    assert.equal(extract.pipeline_id, 'pipe-42');
    assert.equal(extract.start_date, '2024-01-01');
    const sales = resultOf(r, 'transform_sales');
    assert.equal(sales.total_revenue, 1250);
    assert.deepEqual(sales.daily_sales, { '2024-01-01': 400, '2024-01-02': 500, '2024-01-03': 350 });
    assert.deepEqual(resultOf(r, 'transform_inventory').low_stock_alerts, ['PROD-B@WH-01', 'PROD-A@WH-02']);
    assert.deepEqual(resultOf(r, 'transform_customers').tier_breakdown, { gold: 2, silver: 1, bronze: 1 });
    assert.deepEqual(resultOf(r, 'aggregate_metrics'), {
      total_revenue: 1250,
      total_orders: 5,
      total_inventory_quantity: 1610,
      low_stock_count: 2,
      total_customers: 4,
      total_lifetime_value: 10800,
      revenue_per_customer: 312.5,
      sources: ['transform_sales', 'transform_inventory', 'transform_customers'],
    });
    const insights = resultOf(r, 'generate_insights');
    assert.equal(insights.insight_count, 2);
    assert.equal(insights.health_score, 80);
    assert.equal(insights.health_rating, 'good');
  });

  it('runs without the optional pipeline_id and date_range', async () => {
    const r = await completeAll(template('data_pipeline_ts', 'analytics_pipeline_ts'), {});
    assert.equal(resultOf(r, 'extract_customer_data').pipeline_id, null);
  });
});

describe('#8 microservices_ts/user_registration_ts', () => {
  const t = () => template('microservices_ts', 'user_registration_ts');
  const user = { email: 'New.User@example.com', name: 'New User', plan: 'pro', source: 'web' };

  it('pro plan: billing 29.99 with a 14-day trial, three welcome messages, user active', async () => {
    const r = await completeAll(t(), { user_info: user });
    const account = resultOf(r, 'create_user_account');
    assert.equal(account.email, 'new.user@example.com');
    assert.equal(account.status, 'pending_activation');
    const billing = resultOf(r, 'setup_billing_profile');
    assert.deepEqual(
      [billing.billing_required, billing.monthly_price, billing.trial_days],
      [true, 29.99, 14],
    );
    assert.deepEqual(resultOf(r, 'send_welcome_sequence').messages_sent, [
      'welcome',
      'getting_started',
      'billing_setup',
    ]);
    const status = resultOf(r, 'update_user_status');
    assert.deepEqual(
      [status.user_id, status.new_status, status.welcome_messages_sent],
      [account.user_id, 'active', 3],
    );
  });

  it('free plan skips billing; a bad email or plan is a permanent validation_error', async () => {
    const free = await completeAll(t(), { user_info: { ...user, plan: 'free' } });
    assert.equal(resultOf(free, 'setup_billing_profile').billing_required, false);
    assert.equal(resultOf(free, 'send_welcome_sequence').message_count, 2);
    const badEmail = await runWorkflow(t(), { user_info: { ...user, email: 'not-an-email' } });
    assertFailure(badEmail.create_user_account, { retryable: false, errorType: 'validation_error' });
    const badPlan = await runWorkflow(t(), { user_info: { ...user, plan: 'platinum' } });
    assertFailure(badPlan.create_user_account, { retryable: false, errorType: 'validation_error' });
  });
});

const PAYMENT_REFUND: JsonObject = {
  payment_id: 'pay_test_123',
  refund_amount: 5000,
  refund_reason: 'customer_request',
  customer_email: 'customer@example.com',
  partial_refund: false,
};

describe('#9 payments_ts/payments_process_refund_ts', () => {
  const t = () => template('payments_ts', 'payments_process_refund_ts');

  it('4 steps: eligible → refunded → records → customer notified', async () => {
    const r = await completeAll(t(), PAYMENT_REFUND);
    assert.equal(resultOf(r, 'validate_payment_eligibility').eligibility_status, 'eligible');
    const refund = resultOf(r, 'process_gateway_refund');
    assert.deepEqual([refund.payment_id, refund.refund_amount], ['pay_test_123', 5000]);
    assert.equal(resultOf(r, 'update_payment_records').payment_status, 'refunded');
    const notify = resultOf(r, 'notify_customer');
    assert.deepEqual([notify.notification_sent, notify.refund_id], [true, refund.refund_id]);
    const partial = await completeAll(t(), { ...PAYMENT_REFUND, partial_refund: true });
    assert.equal(resultOf(partial, 'update_payment_records').payment_status, 'partially_refunded');
  });

  it('classifies the mock gateway failures', async () => {
    const cases: Array<[JsonObject, string, boolean, string]> = [
      [{ payment_id: 'bogus' }, 'validate_payment_eligibility', false, 'validation_error'],
      [{ refund_amount: 0 }, 'validate_payment_eligibility', false, 'validation_error'],
      [{ payment_id: 'pay_test_insufficient' }, 'validate_payment_eligibility', false, 'permanent_error'],
      [{ payment_id: 'pay_test_ineligible' }, 'validate_payment_eligibility', false, 'permanent_error'],
      [{ payment_id: 'pay_test_processing' }, 'validate_payment_eligibility', true, 'retryable_error'],
      [{ payment_id: 'pay_test_gateway_error' }, 'process_gateway_refund', true, 'retryable_error'],
    ];
    for (const [override, step, retryable, errorType] of cases) {
      const r = await runWorkflow(t(), { ...PAYMENT_REFUND, ...override });
      assertFailure(r[step], { retryable, errorType });
    }
  });
});

const SUPPORT_REFUND: JsonObject = {
  ticket_id: 'TICKET-9876',
  customer_id: 'CUST-54321',
  refund_amount: 7500,
  refund_reason: 'defective_product',
  customer_email: 'customer@example.com',
  agent_notes: 'Customer reported defective product',
  requires_approval: true,
};

describe('#10 customer_success_ts/customer_success_process_refund_ts', () => {
  const t = () => template('customer_success_ts', 'customer_success_process_refund_ts');

  it('standard tier: manager approval, delegation to payments, ticket resolved', async () => {
    const r = await completeAll(t(), SUPPORT_REFUND);
    assert.equal(resultOf(r, 'validate_refund_request').customer_tier, 'standard');
    const policy = resultOf(r, 'check_refund_policy');
    assert.deepEqual([policy.requires_approval, policy.max_allowed_amount], [true, 10000]);
    const approval = resultOf(r, 'get_manager_approval');
    assert.deepEqual([approval.approval_required, approval.auto_approved], [true, false]);
    const delegation = resultOf(r, 'execute_refund_workflow');
    assert.deepEqual(
      [
        delegation.target_namespace,
        delegation.target_workflow,
        delegation.refund_amount,
        delegation.correlation_id,
      ],
      ['payments', 'process_refund', 7500, 'corr-1'],
    );
    const ticket = resultOf(r, 'update_ticket_status');
    assert.deepEqual(
      [ticket.new_status, ticket.delegated_task_id],
      ['resolved', delegation.delegated_task_id],
    );
  });

  it('gold tier without requires_approval is auto-approved', async () => {
    const r = await completeAll(t(), {
      ...SUPPORT_REFUND,
      customer_id: 'CUST-GOLD-1',
      requires_approval: false,
    });
    assert.equal(resultOf(r, 'get_manager_approval').auto_approved, true);
  });

  it('classifies denials, pending approvals, limits and locks', async () => {
    const cases: Array<[JsonObject, string, boolean]> = [
      [{ ticket_id: 'ticket_closed_1' }, 'validate_refund_request', false],
      [{ refund_amount: 20000 }, 'check_refund_policy', false],
      [{ ticket_id: 'ticket_denied_1' }, 'get_manager_approval', false],
      [{ ticket_id: 'ticket_pending_1' }, 'get_manager_approval', true],
      [{ ticket_id: 'ticket_locked_1' }, 'update_ticket_status', true],
    ];
    for (const [override, step, retryable] of cases) {
      const r = await runWorkflow(t(), { ...SUPPORT_REFUND, ...override });
      assertFailure(r[step], { retryable, errorType: retryable ? 'retryable_error' : 'permanent_error' });
    }
    const missing = await runWorkflow(t(), { ticket_id: 'TICKET-1' });
    assertFailure(missing.validate_refund_request, { retryable: false, errorType: 'validation_error' });
  });
});

describe('#11 namespace isolation: payments/process_refund and customer_success/process_refund', () => {
  it('the same template name resolves to 4 and 5 steps, each running its own handlers', async () => {
    const payments = await completeAll(template('payments', 'process_refund'), {
      payment_id: 'pay_iso_1',
      refund_amount: 1200,
    });
    assert.equal(Object.keys(payments).length, 4);
    assert.deepEqual(resultOf(payments, 'notify_customer').notification_sent, false);
    const support = await completeAll(template('customer_success', 'process_refund'), SUPPORT_REFUND);
    assert.equal(Object.keys(support).length, 5);
    assert.equal(resultOf(support, 'update_ticket_status').namespace, 'customer_success');
  });
});

describe('#12–#15 test scenarios', () => {
  it('#12 success_only_ts echoes the message, or a default', async () => {
    const t = template('test_scenarios_ts', 'success_only_ts');
    assert.equal(resultOf(await completeAll(t, { message: 'hello' }), 'success_step').message, 'hello');
    assert.deepEqual(resultOf(await completeAll(t, {}), 'success_step'), {
      message: 'Success!',
      scenario: 'success',
      operation: 'echo',
      handler: 'SuccessStepHandler',
    });
  });

  it('#13 permanent_error_only_ts fails permanently with the given message', async () => {
    const t = template('test_scenarios_ts', 'permanent_error_only_ts');
    const r = await runWorkflow(t, { error_message: 'boom' });
    assertFailure(r.permanent_error_step_ts, {
      retryable: false,
      errorType: 'permanent_error',
      message: /^boom$/,
    });
    assert.equal(r.permanent_error_step_ts?.error?.context.scenario, 'permanent_error');
  });

  it('#14 retryable_error_only_ts fails retryably on every attempt', async () => {
    const t = template('test_scenarios_ts', 'retryable_error_only_ts');
    for (const retryCount of [0, 1, 2]) {
      const result = await runStep(t, 'retryable_error_step_ts', {}, { retryCount });
      assertFailure(result, { retryable: true, errorType: 'retryable_error', message: /will be retried/ });
      assert.equal(result.error?.context.attempt, retryCount + 1);
    }
  });

  it('#15 error_testing_handler_ts: one success, one permanent, one retryable', async () => {
    const r = await runWorkflow(template('test_errors_ts', 'error_testing_handler_ts'), {});
    assert.equal(resultOf(r, 'success_step').operation, 'success');
    assertFailure(r.permanent_error_step, { retryable: false, errorType: 'permanent_error' });
    assertFailure(r.retryable_error_step, { retryable: true, errorType: 'retryable_error' });
  });
});

describe('#16, #17 retry tests (decided by retryCount, not by process state)', () => {
  it('#16 fail_twice_then_succeed: attempts 1 and 2 fail, attempt 3 has attempts_before_success = 3', async () => {
    const t = template('rust_e2e_retry', 'retry_mechanics_test');
    for (const retryCount of [0, 1]) {
      const result = await runStep(t, 'fail_twice_then_succeed', {}, { retryCount });
      assertFailure(result, {
        retryable: true,
        errorType: 'retryable_error',
        errorCode: 'SIMULATED_FAILURE',
      });
      assert.deepEqual(result.error?.context, { attempt: retryCount + 1, fail_until: 2 });
    }
    const third = await runStep(t, 'fail_twice_then_succeed', {}, { retryCount: 2 });
    assert.equal(third.success, true);
    assert.deepEqual(third.result, {
      attempts_before_success: 3,
      fail_count_configured: 2,
      message: 'Succeeded after simulated failures',
    });
  });

  it('#17 always_fail: every one of its 3 attempts fails retryably', async () => {
    const t = template('rust_e2e_retry', 'retry_exhaustion_test');
    assert.equal(stepOf(t, 'always_fail').retry.max_attempts, 3);
    for (const retryCount of [0, 1, 2]) {
      assertFailure(await runStep(t, 'always_fail', {}, { retryCount }), {
        retryable: true,
        errorType: 'retryable_error',
      });
    }
  });
});

describe('#18 test_sql boundary templates', () => {
  it('the no-op handler completes in all four; should_fail makes it fail retryably', async () => {
    const boundary = templates.filter((t) => t.namespace_name === 'test_sql');
    assert.equal(boundary.length, 4);
    for (const t of boundary) {
      assert.equal(resultOf(await completeAll(t, {}), 'boundary_test_step').no_op, true);
      const failed = await runWorkflow(t, { should_fail: true });
      assertFailure(failed.boundary_test_step, { retryable: true, errorType: 'retryable_error' });
    }
  });
});

describe('#20 dlq_test/dlq_staleness_test', () => {
  it('both steps return the input', async () => {
    const r = await completeAll(template('dlq_test', 'dlq_staleness_test'), { test_input: 42 });
    for (const step of ['dlq_step_1', 'dlq_step_2']) {
      assert.deepEqual(resultOf(r, step), { step_name: step, operation: 'return_input', test_input: 42 });
    }
  });
});

describe('#21 resolver_tests_ts/method_dispatch_ts', () => {
  const t = () => template('resolver_tests_ts', 'method_dispatch_ts');
  const context = { data: { amount: 100, reason: 'customer_request' } };

  it('each step runs the method its template names; invoked_method in result and metadata', async () => {
    const r = await completeAll(t(), context);
    const expected: Record<string, string> = {
      validate_step: 'validate',
      process_step: 'process',
      refund_step: 'refund',
      default_call_step: 'call',
    };
    for (const [step, method] of Object.entries(expected)) {
      assert.equal(resultOf(r, step).invoked_method, method);
      assert.equal(resultOf(r, step).handler, 'MultiMethodHandler');
      // The SDK records the method only when it is not the default `call`.
      assert.equal(r[step]?.metadata.custom.invoked_method, method === 'call' ? undefined : method);
    }
    assert.equal(resultOf(r, 'validate_step').validated, true);
    const processed = resultOf(r, 'process_step');
    assert.deepEqual(
      [processed.original_amount, processed.processed_amount, processed.processing_fee],
      [100, 110, 10],
    );
    const refund = resultOf(r, 'refund_step');
    assert.deepEqual(
      [refund.refund_amount, refund.refund_reason, refund.refund_id],
      [100, 'customer_request', 'refund_step-refund_step'],
    );
    assert.deepEqual(resultOf(r, 'default_call_step').input_received, context.data);
  });

  it('validate rejects data without an amount (permanent validation_error)', async () => {
    const r = await runWorkflow(t(), { data: { reason: 'x' } });
    assertFailure(r.validate_step, { retryable: false, errorType: 'validation_error' });
  });

  it('a dispatch that ignores handler.method fails permanently instead of passing', async () => {
    const process = stepOf(t(), 'process_step');
    const misrouted = { ...process, handler: { ...process.handler, method: 'call' } };
    const result = await runStep(t(), 'process_step', context, {}, misrouted);
    assertFailure(result, {
      retryable: false,
      errorType: 'permanent_error',
      errorCode: 'METHOD_DISPATCH_MISMATCH',
    });
  });
});

describe('#22 resolver_tests_ts/resolver_hints_ts', () => {
  const t = () => template('resolver_tests_ts', 'resolver_hints_ts');

  it('hinted steps resolve through explicit_mapping; the plain step through the chain', async () => {
    for (const step of t().steps) {
      const resolved = await registry.resolve(step.handler);
      assert.equal(resolved.resolverName, 'explicit_mapping');
      assert.equal(step.handler.resolver, step.name === 'chain_resolution_step' ? null : 'explicit_mapping');
    }
  });

  it('3 steps complete; execute_action runs with hint + method', async () => {
    const r = await completeAll(t(), { action_type: 'refund' });
    assert.deepEqual(
      [
        resultOf(r, 'explicit_resolver_step').invoked_method,
        resultOf(r, 'explicit_resolver_step').resolver_used,
      ],
      ['call', 'explicit_mapping'],
    );
    const combined = resultOf(r, 'combined_hint_step');
    assert.deepEqual(
      [combined.invoked_method, combined.handler, combined.action_type],
      ['execute_action', 'AlternateMethodHandler', 'refund'],
    );
    assert.equal(r.combined_hint_step?.metadata.custom.invoked_method, 'execute_action');
    assert.equal(resultOf(r, 'chain_resolution_step').resolver_used, 'chain_default');
    assert.equal(resultOf(await completeAll(t(), {}), 'combined_hint_step').action_type, 'default_action');
  });

  it('backward compatibility: no method and an explicit `call` both run call', async () => {
    const step = stepOf(t(), 'chain_resolution_step');
    for (const method of ['call', undefined]) {
      const handler = { callable: step.handler.callable, ...(method === undefined ? {} : { method }) };
      const resolved = await registry.resolve(handler);
      assert.equal(resolved.method, 'call');
    }
    const explicit = { ...step, handler: { ...step.handler, method: 'call' } };
    const r = { chain_resolution_step: await runStep(t(), 'chain_resolution_step', {}, {}, explicit) };
    assert.equal(resultOf(r, 'chain_resolution_step').invoked_method, 'call');
    assert.deepEqual(r.chain_resolution_step.metadata.custom, {});
  });
});

describe('TestSupport.StepHandlers.SleepHandler', () => {
  const sleepStep = (initialization: JsonObject = {}): ExecutableStep => ({
    name: 'sleep',
    handler: {
      callable: 'TestSupport.StepHandlers.SleepHandler',
      method: 'call',
      resolver: null,
      initialization,
    },
  });
  const data = (inputData: JsonObject, stepConfig: JsonObject = {}): StepContextData => ({
    taskUuid: 'task-sleep',
    stepUuid: 'step-sleep',
    stepName: 'sleep',
    correlationId: 'corr-sleep',
    inputData,
    stepConfig,
    retryCount: 0,
    maxAttempts: 1,
  });

  it('sleeps sleep_ms from the task context (or the step config), then succeeds', async () => {
    const started = performance.now();
    const result = await executeHandler(registry, sleepStep(), data({ sleep_ms: 30 }), { timeoutMs: 5000 });
    assert.ok(performance.now() - started >= 25);
    assert.deepEqual([result.success, result.result], [true, { slept_ms: 30, attempt: 1 }]);
    const configured = await executeHandler(registry, sleepStep({ sleep_ms: 1 }), data({}, { sleep_ms: 1 }), {
      timeoutMs: 5000,
    });
    assert.deepEqual(configured.result, { slept_ms: 1, attempt: 1 });
  });

  it('sleeps retry_sleep_ms instead on later attempts when it is given', async () => {
    const retry = { ...data({ sleep_ms: 60_000, retry_sleep_ms: 0 }), retryCount: 1 };
    const result = await executeHandler(registry, sleepStep(), retry, { timeoutMs: 5000 });
    assert.deepEqual(result.result, { slept_ms: 0, attempt: 2 });
  });

  it('rejects a missing or negative sleep_ms; outliving the time limit is a retryable timeout', async () => {
    const contexts: JsonObject[] = [{}, { sleep_ms: -1 }, { sleep_ms: 'long' }];
    for (const context of contexts) {
      const result = await executeHandler(registry, sleepStep(), data(context), { timeoutMs: 5000 });
      assertFailure(result, { retryable: false, errorType: 'validation_error' });
    }
    const timedOut = await executeHandler(registry, sleepStep(), data({ sleep_ms: 200 }), { timeoutMs: 20 });
    assertFailure(timedOut, { retryable: true, errorType: 'timeout' });
  });
});

describe('#23 conditional_approval_ts/approval_routing_ts', () => {
  const t = () => template('conditional_approval_ts', 'approval_routing_ts');
  const request = (amount: number): JsonObject => ({ amount, requester: 'jane.doe', purpose: 'offsite' });

  async function decide(amount: number): Promise<Record<string, StepExecutionResult>> {
    const results: Record<string, StepExecutionResult> = {};
    results.validate_request_ts = await runStep(t(), 'validate_request_ts', request(amount));
    results.routing_decision_ts = await runStep(t(), 'routing_decision_ts', request(amount), { results });
    return results;
  }

  const cases: Array<[number, string[]]> = [
    [500, ['auto_approve_ts']],
    [2500, ['manager_approval_ts']],
    [10_000, ['manager_approval_ts', 'finance_review_ts']],
    [1000, ['manager_approval_ts']],
    [5000, ['manager_approval_ts', 'finance_review_ts']],
    [0.01, ['auto_approve_ts']],
  ];
  for (const [amount, approvals] of cases) {
    it(`${amount} ⇒ ${approvals.join(' + ')}, and finalize approves after them`, async () => {
      const results = await decide(amount);
      const decision = resultOf(results, 'routing_decision_ts');
      assert.deepEqual(decision.decision_point_outcome, { type: 'create_steps', step_names: approvals });
      for (const name of approvals) results[name] = await runStep(t(), name, request(amount), { results });
      results.finalize_approval_ts = await runStep(t(), 'finalize_approval_ts', request(amount), { results });
      assert.deepEqual(resultOf(results, 'finalize_approval_ts'), {
        approved: true,
        status: 'approved',
        approval_chain: approvals,
        amount,
      });
    });
  }

  it('rejects a non-positive amount or a missing requester permanently', async () => {
    for (const context of [request(0), { amount: 10, purpose: 'x' }]) {
      const result = await runStep(t(), 'validate_request_ts', context);
      assertFailure(result, { retryable: false, errorType: 'validation_error' });
    }
  });
});

describe('#25 data_processing/large_dataset_processor', () => {
  const t = () => template('data_processing', 'large_dataset_processor');

  async function analyze(size: number): Promise<StepExecutionResult> {
    return runStep(t(), 'analyze_dataset', { dataset_size: size });
  }

  /** Runs worker `name` of the template with the inputs orchestration would have written. */
  function runWorker(name: string, cursor: JsonObject, isNoOp: boolean): Promise<StepExecutionResult> {
    const step = stepOf(t(), 'process_batch');
    const data: StepContextData = {
      taskUuid: 'task-dataset',
      stepUuid: `step-${name}`,
      stepName: name,
      correlationId: 'corr-1',
      inputData: {},
      stepConfig: step.handler.initialization,
      stepInputs: {
        ...step.handler.initialization,
        cursor,
        batch_metadata: { cursor_field: 'id', failure_strategy: 'fail_fast' },
        is_no_op: isNoOp,
        __template_step_name: 'process_batch',
      },
      retryCount: 0,
      maxAttempts: step.retry.max_attempts,
    };
    return executeHandler(registry, step, data, { timeoutMs: 5000, workerId: 'test-worker' });
  }

  it('500 ⇒ 1 batch, 5000 ⇒ 5, 25 000 ⇒ at most 10 (max_workers)', async () => {
    for (const [size, count] of [
      [500, 1],
      [5000, 5],
      [25_000, 10],
    ] as const) {
      const result = resultOf({ analyze: await analyze(size) }, 'analyze');
      const outcome = result.batch_processing_outcome as JsonObject;
      assert.equal(outcome.type, 'create_batches');
      assert.equal(outcome.worker_template_name, 'process_batch');
      assert.equal(outcome.worker_count, count);
      assert.equal(outcome.total_items, size);
      const configs = outcome.cursor_configs as JsonObject[];
      assert.equal(configs[0]?.batch_id, '001');
      assert.equal(configs[0]?.start_cursor, 0);
      assert.equal(configs.at(-1)?.end_cursor, size);
    }
  });

  it('50 ⇒ no_batches; a bad dataset_size is a permanent validation_error', async () => {
    const result = resultOf({ analyze: await analyze(50) }, 'analyze');
    assert.deepEqual(result.batch_processing_outcome, { type: 'no_batches' });
    assertFailure(await analyze(-1), { retryable: false, errorType: 'validation_error' });
  });

  it('a worker sums its range; the no-op placeholder does nothing; the aggregator adds them up', async () => {
    const cursor = { batch_id: '002', start_cursor: 10, end_cursor: 20, batch_size: 10 };
    const worker = resultOf({ w: await runWorker('process_batch_002', cursor, false) }, 'w');
    assert.deepEqual(worker, {
      batch_id: '002',
      items_processed: 10,
      value_sum: 145,
      operation: 'transform',
    });
    const placeholder = { batch_id: '000', start_cursor: 0, end_cursor: 0, batch_size: 0 };
    const noOp = resultOf({ w: await runWorker('process_batch_000', placeholder, true) }, 'w');
    assert.deepEqual(noOp, { no_op: true, batch_id: '000', items_processed: 0 });
    const step = stepOf(t(), 'aggregate_results');
    const aggregate = await executeHandler(
      registry,
      step,
      {
        taskUuid: 'task-dataset',
        stepUuid: 'step-aggregate',
        stepName: 'aggregate_results',
        correlationId: 'corr-1',
        inputData: {},
        stepConfig: step.handler.initialization,
        // workers are found by name prefix: they exist only at run time
        dependencyResults: {
          analyze_dataset: await analyze(5000),
          process_batch_001: await runWorker(
            'process_batch_001',
            { ...cursor, start_cursor: 0, end_cursor: 10 },
            false,
          ),
          process_batch_002: await runWorker('process_batch_002', cursor, false),
        },
        retryCount: 0,
        maxAttempts: 1,
      },
      { timeoutMs: 5000 },
    );
    assert.deepEqual(resultOf({ a: aggregate }, 'a'), {
      no_batches: false,
      worker_count: 2,
      total_processed: 20,
      value_sum: 190,
    });
  });
});
