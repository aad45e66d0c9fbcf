/**
 * The acceptance workflows #1–#22 end to end (reference C §6): an engine and a worker in one
 * process on each backend run every task from creation to its end; the test asserts the final
 * task state, every step's state and attempts, and the handlers' values as stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonObject } from '@tasker/core';
import { BACKENDS } from '@tasker/db/testing';
import { type Finished, PUSH_MODES, System } from './support/system.ts';

function result(finished: Finished, step: string): JsonObject {
  const row = finished.steps.get(step);
  assert.ok(row, `step ${step} exists (have ${[...finished.steps.keys()].join(', ')})`);
  assert.equal(row.results?.success, true, `${step} succeeded`);
  return row.results?.result ?? {};
}

function assertAllComplete(finished: Finished, count: number): void {
  assert.equal(finished.state, 'complete');
  assert.equal(finished.steps.size, count);
  for (const [name, row] of finished.steps) {
    assert.equal(row.current_state, 'complete', `${name} is complete`);
    assert.equal(row.attempts, 1, `${name} ran once`);
  }
}

function assertStep(
  finished: Finished,
  step: string,
  state: string,
  attempts: number,
  errorType?: string,
): void {
  const row = finished.steps.get(step);
  assert.ok(row, `step ${step} exists`);
  assert.equal(row.current_state, state, `${step} state`);
  assert.equal(row.attempts, attempts, `${step} attempts`);
  if (errorType !== undefined) assert.equal(row.results?.error?.error_type, errorType, `${step} error type`);
}

const PAYMENT_REFUND = {
  payment_id: 'pay_test_123',
  refund_amount: 5000,
  refund_reason: 'customer_request',
  customer_email: 'customer@example.com',
  partial_refund: false,
};

const SUPPORT_REFUND = {
  ticket_id: 'TICKET-9876',
  customer_id: 'CUST-54321',
  refund_amount: 7500,
  refund_reason: 'defective_product',
  customer_email: 'customer@example.com',
  agent_notes: 'Customer reported defective product',
  requires_approval: true,
};

for (const backend of BACKENDS)
  for (const [mode, options] of Object.entries(PUSH_MODES)) {
    describe(`acceptance workflows end to end (${backend}, ${mode})`, () => {
      let system: System;
      before(async () => {
        system = await System.start(backend, options);
      });
      after(() => system.stop());

      it('#1 linear: 10 ⇒ 100 → 110 → 330 → 165', async () => {
        const f = await system.run('linear_workflow_ts', 'mathematical_sequence_ts', { even_number: 10 });
        assertAllComplete(f, 4);
        assert.equal(result(f, 'linear_step_1').squared_value, 100);
        assert.equal(result(f, 'linear_step_2').added_value, 110);
        assert.equal(result(f, 'linear_step_3').multiplied_value, 330);
        assert.equal(result(f, 'linear_step_4').final_value, 165);
      });

      it('#1 linear: an odd input fails the first step permanently and the task ends in error', async () => {
        const f = await system.run('linear_workflow_ts', 'mathematical_sequence_ts', { even_number: 7 });
        assert.equal(f.state, 'error');
        assertStep(f, 'linear_step_1', 'error', 1, 'validation_error');
        assertStep(f, 'linear_step_2', 'pending', 0);
      });

      it('#2 diamond: 4 ⇒ 16, 41, 32, 36.5', async () => {
        const f = await system.run('diamond_workflow_ts', 'parallel_computation_ts', { even_number: 4 });
        assertAllComplete(f, 4);
        assert.equal(result(f, 'diamond_start_ts').squared_value, 16);
        assert.equal(result(f, 'diamond_branch_b_ts').branch_b_value, 41);
        assert.equal(result(f, 'diamond_branch_c_ts').branch_c_value, 32);
        assert.equal(result(f, 'diamond_end_ts').final_value, 36.5);
      });

      it('#3 tree: 8 steps, the convergence is 2⁶⁴', async () => {
        const f = await system.run('rust_e2e_tree', 'hierarchical_tree', { even_number: 2 });
        assertAllComplete(f, 8);
        assert.equal(result(f, 'tree_leaf_g').result, 256);
        assert.equal(result(f, 'tree_final_convergence').result, (2n ** 64n).toString());
      });

      it('#4 mixed DAG: 7 steps', async () => {
        const f = await system.run('rust_e2e_mixed_dag', 'complex_dag', { even_number: 2 });
        assertAllComplete(f, 7);
        assert.equal(result(f, 'dag_validate').result, 65536);
        assert.equal(result(f, 'dag_finalize').result, (2n ** 64n).toString());
      });

      it('#5 order fulfillment: 4 steps', async () => {
        const f = await system.run('rust_e2e_order_fulfillment', 'business_workflow', {
          customer: { id: 12345, name: 'Jane Doe', email: 'jane@example.com' },
          items: [
            { sku: 'WIDGET-001', quantity: 2, price: 29.99 },
            { sku: 'GADGET-002', quantity: 1, price: 49.99 },
          ],
          payment: { method: 'credit_card', token: 'tok_test_success' },
          shipping: {
            method: 'express',
            address: { street: '1 Main St', city: 'Springfield', zip: '12345' },
          },
        });
        assertAllComplete(f, 4);
      });

      it('#6 ecommerce: 5 steps, total 124.76', async () => {
        const f = await system.run('ecommerce_ts', 'ecommerce_order_processing_ts', {
          cart_items: [
            { product_id: 1, quantity: 2 },
            { product_id: 2, quantity: 1 },
          ],
          customer_info: { email: 'test@example.com', name: 'Test Customer', phone: '555-0100' },
          payment_info: { method: 'credit_card', token: 'tok_test_success', amount: 124.76 },
        });
        assertAllComplete(f, 5);
        assert.equal(result(f, 'validate_cart').total, 124.76);
      });

      it('#7 data pipeline: 8 steps', async () => {
        const f = await system.run('data_pipeline_ts', 'analytics_pipeline_ts', {
          pipeline_id: 'pipe-42',
          date_range: { start_date: '2024-01-01', end_date: '2024-01-03' },
        });
        assertAllComplete(f, 8);
        assert.equal(result(f, 'extract_sales_data').pipeline_id, 'pipe-42');
      });

      it('#8 microservices: 5 steps', async () => {
        const f = await system.run('microservices_ts', 'user_registration_ts', {
          user_info: { email: 'New.User@example.com', name: 'New User', plan: 'pro', source: 'web' },
        });
        assertAllComplete(f, 5);
      });

      it('#9 payments refund: 4 steps', async () => {
        const f = await system.run('payments_ts', 'payments_process_refund_ts', PAYMENT_REFUND);
        assertAllComplete(f, 4);
        assert.equal(result(f, 'validate_payment_eligibility').eligibility_status, 'eligible');
      });

      it('#10 customer success refund: 5 steps', async () => {
        const f = await system.run(
          'customer_success_ts',
          'customer_success_process_refund_ts',
          SUPPORT_REFUND,
        );
        assertAllComplete(f, 5);
      });

      it('#11 namespace isolation: the same template name in two namespaces, run together', async () => {
        const [payments, support] = await Promise.all([
          system.run('payments', 'process_refund', { payment_id: 'pay_iso_1', refund_amount: 1200 }),
          system.run('customer_success', 'process_refund', SUPPORT_REFUND),
        ]);
        assertAllComplete(payments, 4);
        assertAllComplete(support, 5);
        assert.equal(result(support, 'update_ticket_status').namespace, 'customer_success');
      });

      it('#12 success only', async () => {
        const f = await system.run('test_scenarios_ts', 'success_only_ts', { message: 'hello' });
        assertAllComplete(f, 1);
        assert.equal(result(f, 'success_step').message, 'hello');
      });

      it('#13 a permanent error fails fast: one attempt, task in error', async () => {
        const f = await system.run('test_scenarios_ts', 'permanent_error_only_ts', { error_message: 'boom' });
        assert.equal(f.state, 'error');
        assertStep(f, 'permanent_error_step_ts', 'error', 1, 'permanent_error');
      });

      it('#14 a retryable error is retried, then the task ends in error', async () => {
        const f = await system.run('test_scenarios_ts', 'retryable_error_only_ts');
        assert.equal(f.state, 'error');
        assertStep(f, 'retryable_error_step_ts', 'error', 3, 'retryable_error');
      });

      it('#15 mixed outcomes: the permanent failure ends the task', async () => {
        const f = await system.run('test_errors_ts', 'error_testing_handler_ts');
        assert.equal(f.state, 'error');
        assertStep(f, 'success_step', 'complete', 1);
        assertStep(f, 'permanent_error_step', 'error', 1, 'permanent_error');
      });

      it('#16 fail twice then succeed: attempts = 3', async () => {
        const f = await system.run('rust_e2e_retry', 'retry_mechanics_test');
        assert.equal(f.state, 'complete');
        assertStep(f, 'fail_twice_then_succeed', 'complete', 3);
        assert.equal(result(f, 'fail_twice_then_succeed').attempts_before_success, 3);
      });

      it('#17 retry exhaustion: error after 3 attempts', async () => {
        const f = await system.run('rust_e2e_retry', 'retry_exhaustion_test');
        assert.equal(f.state, 'error');
        assertStep(f, 'always_fail', 'error', 3, 'retryable_error');
      });

      it('#18 boundaries: max_attempts one fails after one attempt; three after three', async () => {
        const [one, three, ok] = await Promise.all([
          system.run('test_sql', 'boundary_max_attempts_one', { should_fail: true }),
          system.run('test_sql', 'boundary_max_attempts_three', { should_fail: true }),
          system.run('test_sql', 'boundary_non_retryable_first'),
        ]);
        assert.equal(one.state, 'error');
        assertStep(one, 'boundary_test_step', 'error', 1);
        assert.equal(three.state, 'error');
        assertStep(three, 'boundary_test_step', 'error', 3);
        assertAllComplete(ok, 1);
      });

      it('#19 rust linear: 6 → 36 → 1296 → 1679616 → 2821109907456', async () => {
        const f = await system.run('rust_e2e_linear', 'mathematical_sequence', { even_number: 6 });
        assertAllComplete(f, 4);
        assert.deepEqual(
          ['linear_step_1', 'linear_step_2', 'linear_step_3', 'linear_step_4'].map(
            (s) => result(f, s).result,
          ),
          [36, 1296, 1679616, 2821109907456],
        );
      });

      it('#20 dlq test workflow: both steps return the input', async () => {
        const f = await system.run('dlq_test', 'dlq_staleness_test', { test_input: 42 });
        assertAllComplete(f, 2);
        assert.equal(result(f, 'dlq_step_2').test_input, 42);
      });

      it('#21 method dispatch: each step ran the method its template names', async () => {
        const f = await system.run('resolver_tests_ts', 'method_dispatch_ts', {
          data: { amount: 100, reason: 'customer_request' },
        });
        assertAllComplete(f, 4);
        const invoked = Object.fromEntries(
          ['validate_step', 'process_step', 'refund_step', 'default_call_step'].map((s) => [
            s,
            result(f, s).invoked_method,
          ]),
        );
        assert.deepEqual(invoked, {
          validate_step: 'validate',
          process_step: 'process',
          refund_step: 'refund',
          default_call_step: 'call',
        });
        const metadata = f.steps.get('refund_step')?.results?.metadata as { custom?: JsonObject } | undefined;
        assert.equal(metadata?.custom?.invoked_method, 'refund');
      });

      it('#22 resolver hints: explicit mapping and method hints', async () => {
        const f = await system.run('resolver_tests_ts', 'resolver_hints_ts', { action_type: 'refund' });
        assertAllComplete(f, 3);
        assert.equal(result(f, 'explicit_resolver_step').resolver_used, 'explicit_mapping');
        assert.equal(result(f, 'combined_hint_step').invoked_method, 'execute_action');
        assert.equal(result(f, 'chain_resolution_step').invoked_method, 'call');
      });

      it('the worker and the engine stay healthy, and nothing is left in the queues', async () => {
        assert.equal(system.engine.health().status, 'healthy');
        const { rows } = await system.t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pgmq.messages WHERE queue_name = 'orchestration_step_results'`,
        );
        assert.equal(rows[0]?.n, 0);
      });
    });
  }
