/**
 * Integration lifecycle suite (reference D §4.4, ported from the original's LifecycleTestManager
 * tests): tasks of the example templates are created through the real creation path and their steps
 * driven through the real compare-and-swap functions, while readiness, the execution context,
 * transitive dependencies and the DAG helpers are checked after each move. The DLQ, staleness and
 * analytics items of D §4.4 live in operations.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Database } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import type { RegisteredTemplate } from '../src/registry.ts';
import type { JsonObject } from '../src/template/model.ts';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

/** One DAG shape of the acceptance suite, with what its readiness must look like. */
interface Topology {
  label: string;
  ref: string;
  root: string;
  /** total_parents of every step. */
  parents: Record<string, number>;
  /** The steps that become ready together, round after round, in a failure-free run. */
  waves: string[][];
  /** A step that fails and recovers; the steps completed before it; a child it blocks. */
  retry: { before: string[]; step: string; blocked: string; blockedParents: [done: number, total: number] };
  /** Where a permanent failure is injected: completed steps before it, and its descendants. */
  sorrowful: { position: string; before: string[]; step: string; descendants: string[] }[];
}

const LINEAR: Topology = {
  label: 'linear',
  ref: 'linear_workflow_ts/mathematical_sequence_ts',
  root: 'linear_step_1',
  parents: { linear_step_1: 0, linear_step_2: 1, linear_step_3: 1, linear_step_4: 1 },
  waves: [['linear_step_1'], ['linear_step_2'], ['linear_step_3'], ['linear_step_4']],
  retry: {
    before: ['linear_step_1'],
    step: 'linear_step_2',
    blocked: 'linear_step_3',
    blockedParents: [0, 1],
  },
  sorrowful: [
    {
      position: 'start',
      before: [],
      step: 'linear_step_1',
      descendants: ['linear_step_2', 'linear_step_3', 'linear_step_4'],
    },
    {
      position: 'mid',
      before: ['linear_step_1'],
      step: 'linear_step_2',
      descendants: ['linear_step_3', 'linear_step_4'],
    },
    {
      position: 'late',
      before: ['linear_step_1', 'linear_step_2'],
      step: 'linear_step_3',
      descendants: ['linear_step_4'],
    },
  ],
};

const DIAMOND: Topology = {
  label: 'diamond',
  ref: 'diamond_workflow_ts/parallel_computation_ts',
  root: 'diamond_start_ts',
  parents: { diamond_start_ts: 0, diamond_branch_b_ts: 1, diamond_branch_c_ts: 1, diamond_end_ts: 2 },
  waves: [['diamond_start_ts'], ['diamond_branch_b_ts', 'diamond_branch_c_ts'], ['diamond_end_ts']],
  retry: {
    before: ['diamond_start_ts', 'diamond_branch_b_ts'],
    step: 'diamond_branch_c_ts',
    blocked: 'diamond_end_ts',
    blockedParents: [1, 2],
  },
  sorrowful: [
    {
      position: 'start',
      before: [],
      step: 'diamond_start_ts',
      descendants: ['diamond_branch_b_ts', 'diamond_branch_c_ts', 'diamond_end_ts'],
    },
    {
      position: 'branch',
      before: ['diamond_start_ts'],
      step: 'diamond_branch_b_ts',
      descendants: ['diamond_end_ts'],
    },
    {
      position: 'convergence',
      before: ['diamond_start_ts', 'diamond_branch_b_ts', 'diamond_branch_c_ts'],
      step: 'diamond_end_ts',
      descendants: [],
    },
  ],
};

const MIXED_DAG: Topology = {
  label: 'mixed DAG',
  ref: 'rust_e2e_mixed_dag/complex_dag',
  root: 'dag_init',
  parents: {
    dag_init: 0,
    dag_process_left: 1,
    dag_process_right: 1,
    dag_validate: 2,
    dag_transform: 1,
    dag_analyze: 1,
    dag_finalize: 3,
  },
  waves: [
    ['dag_init'],
    ['dag_process_left', 'dag_process_right'],
    ['dag_analyze', 'dag_transform', 'dag_validate'],
    ['dag_finalize'],
  ],
  retry: {
    before: ['dag_init', 'dag_process_left'],
    step: 'dag_process_right',
    blocked: 'dag_validate',
    blockedParents: [1, 2],
  },
  sorrowful: [
    {
      position: 'branch',
      before: ['dag_init'],
      step: 'dag_process_left',
      descendants: ['dag_validate', 'dag_transform', 'dag_finalize'],
    },
    {
      position: 'convergence',
      before: ['dag_init', 'dag_process_left', 'dag_process_right'],
      step: 'dag_validate',
      descendants: ['dag_finalize'],
    },
  ],
};

const TREE: Topology = {
  label: 'tree',
  ref: 'rust_e2e_tree/hierarchical_tree',
  root: 'tree_root',
  parents: {
    tree_root: 0,
    tree_branch_left: 1,
    tree_branch_right: 1,
    tree_leaf_d: 1,
    tree_leaf_e: 1,
    tree_leaf_f: 1,
    tree_leaf_g: 1,
    tree_final_convergence: 4,
  },
  waves: [
    ['tree_root'],
    ['tree_branch_left', 'tree_branch_right'],
    ['tree_leaf_d', 'tree_leaf_e', 'tree_leaf_f', 'tree_leaf_g'],
    ['tree_final_convergence'],
  ],
  retry: {
    before: [
      'tree_root',
      'tree_branch_left',
      'tree_branch_right',
      'tree_leaf_d',
      'tree_leaf_e',
      'tree_leaf_f',
    ],
    step: 'tree_leaf_g',
    blocked: 'tree_final_convergence',
    blockedParents: [3, 4],
  },
  sorrowful: [
    {
      position: 'branch',
      before: ['tree_root'],
      step: 'tree_branch_left',
      descendants: ['tree_leaf_d', 'tree_leaf_e', 'tree_final_convergence'],
    },
    {
      position: 'leaf',
      before: ['tree_root', 'tree_branch_left', 'tree_branch_right'],
      step: 'tree_leaf_d',
      descendants: ['tree_final_convergence'],
    },
  ],
};

const ORDER_FULFILLMENT: Topology = {
  label: 'order fulfillment',
  ref: 'rust_e2e_order_fulfillment/business_workflow',
  root: 'validate_order',
  parents: { validate_order: 0, reserve_inventory: 1, process_payment: 2, ship_order: 3 },
  waves: [['validate_order'], ['reserve_inventory'], ['process_payment'], ['ship_order']],
  retry: {
    before: ['validate_order', 'reserve_inventory'],
    step: 'process_payment',
    blocked: 'ship_order',
    blockedParents: [2, 3],
  },
  sorrowful: [
    {
      position: 'start',
      before: [],
      step: 'validate_order',
      descendants: ['reserve_inventory', 'process_payment', 'ship_order'],
    },
    {
      position: 'mid',
      before: ['validate_order', 'reserve_inventory'],
      step: 'process_payment',
      descendants: ['ship_order'],
    },
    {
      position: 'late',
      before: ['validate_order', 'reserve_inventory', 'process_payment'],
      step: 'ship_order',
      descendants: [],
    },
  ],
};

const TOPOLOGIES: readonly Topology[] = [LINEAR, DIAMOND, MIXED_DAG, TREE, ORDER_FULFILLMENT];

/** Rejects with a database error whose SQLSTATE is `code`. */
async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal((error as Error & { code?: unknown }).code, code, error.message);
    return true;
  });
}

let contextCounter = 0;
/**
 * A context no other task of the suite has (the default identity strategy dedups equal contexts;
 * the manager adds a `_test_run_id` as well).
 */
function freshContext(): JsonObject {
  contextCounter += 1;
  return { even_number: 6, lifecycle_case: contextCounter };
}

for (const backend of BACKENDS) {
  describe(`lifecycle (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;
    let manager: LifecycleTestManager;
    const registered = new Map<string, RegisteredTemplate>();

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
      manager = new LifecycleTestManager(db);
      for (const ref of [
        ...TOPOLOGIES.map((topology) => topology.ref),
        'conditional_approval_ts/approval_routing_ts',
        'data_processing/large_dataset_processor',
        'csv_processing_rust/csv_product_inventory_analyzer',
        'csv_processing_ts/csv_product_inventory_analyzer_ts',
        'ts_e2e_checkpoint/checkpoint_yield_test_ts',
        'rust_e2e_batch_retry/batch_resumption_test',
        'combined_workflow_test/diamond_decision_batch_processor',
        'domain_events_ts/domain_event_publishing_ts',
        'test_sql/boundary_max_attempts_one',
        'test_sql/boundary_max_attempts_three',
        'test_sql/boundary_non_retryable_first',
        'test_sql/boundary_non_retryable_retries',
      ]) {
        registered.set(ref, await manager.registerExample(ref));
      }
    });

    after(async () => {
      await test?.dispose();
    });

    function template(ref: string): RegisteredTemplate {
      const found = registered.get(ref);
      assert.ok(found, `template ${ref} not registered`);
      return found;
    }

    async function newTask(ref: string, context: JsonObject = freshContext()): Promise<LifecycleTask> {
      return manager.createTask(template(ref), context);
    }

    /** Asserts the readiness of every given step: state, satisfied dependencies, ready. */
    async function assertBlocked(task: LifecycleTask, names: readonly string[]): Promise<void> {
      const readiness = await task.readiness();
      for (const name of names) {
        const row = readiness.of(name);
        assert.equal(row.current_state, 'pending', `${name} state`);
        assert.equal(row.dependencies_satisfied, false, `${name} dependencies_satisfied`);
        assert.equal(row.ready_for_execution, false, `${name} ready`);
      }
    }

    for (const topology of TOPOLOGIES) {
      describe(`${topology.label} (${topology.ref})`, () => {
        it('happy: at creation only the root is ready, with the parent counts of the shape', async () => {
          const task = await newTask(topology.ref);
          assert.deepEqual(task.stepNames(), Object.keys(topology.parents).sort());
          const readiness = await task.readiness();
          assert.deepEqual(readiness.ready(), [topology.root]);
          assert.deepEqual(readiness.parentCounts(), topology.parents);
          for (const row of readiness.rows) {
            assert.equal(row.current_state, 'pending');
            assert.equal(row.attempts, 0);
            assert.equal(row.completed_parents, 0);
            assert.equal(row.retry_eligible, true);
            assert.equal(row.next_retry_at, null);
            assert.equal(row.dependencies_satisfied, row.total_parents === 0, row.name);
          }
          const context = await task.executionContext();
          assert.equal(context.execution_status, 'has_ready_steps');
          assert.equal(context.ready_steps, 1);
          assert.equal(context.total_steps, task.stepNames().length);
          assert.equal(context.pending_steps, task.stepNames().length);
        });

        it('happy: full execution completes every step wave by wave, leaving nothing ready', async () => {
          const task = await newTask(topology.ref);
          assert.deepEqual(await task.runToCompletion(), topology.waves);
          const readiness = await task.readiness();
          assert.deepEqual(readiness.ready(), []);
          assert.deepEqual(readiness.inState('complete'), task.stepNames());
          for (const row of readiness.rows) {
            assert.equal(row.attempts, 1, row.name);
            assert.equal(row.completed_parents, row.total_parents, row.name);
          }
          const context = await task.executionContext();
          assert.equal(context.execution_status, 'all_complete');
          assert.equal(context.recommended_action, 'finalize_task');
          assert.equal(context.completed_steps, task.stepNames().length);
          assert.equal(context.ready_steps, 0);
          assert.equal(context.completion_percentage, 100);
          assert.equal(context.health_status, 'healthy');
          const step = await task.stepRow(topology.root);
          assert.deepEqual(step.results, successResult({ step: topology.root }));
          assert.equal(step.processed, true);
          assert.equal(step.in_process, false);
        });

        it('delayed gratification: a retryable failure waits for retry, then becomes ready', async () => {
          const task = await newTask(topology.ref);
          const { before, step } = topology.retry;
          await task.completeSteps(before);
          assert.equal(await task.failStep(step, { retryable: true }), 'waiting_for_retry');
          await task.holdBackoff(step);

          let row = (await task.readiness()).of(step);
          assert.equal(row.current_state, 'waiting_for_retry');
          assert.equal(row.attempts, 1);
          assert.equal(row.retry_eligible, true);
          assert.equal(row.ready_for_execution, false);
          assert.ok(row.next_retry_at instanceof Date, 'next_retry_at set');
          assert.ok(row.next_retry_at.getTime() > Date.now(), 'next_retry_at in the future');
          assert.ok(row.backoff_request_seconds !== null && row.backoff_request_seconds > 0);
          let context = await task.executionContext();
          assert.equal(context.health_status, 'recovering');
          assert.equal(context.waiting_for_retry_steps, 1);

          await task.elapseBackoff(step);
          row = (await task.readiness()).of(step);
          assert.equal(row.ready_for_execution, true);
          assert.ok(row.next_retry_at instanceof Date && row.next_retry_at.getTime() <= Date.now());
          context = await task.executionContext();
          assert.ok(context.ready_steps >= 1);
          assert.equal(context.execution_status, 'has_ready_steps');
        });

        it('delayed gratification: recovery after retry completes the step and readies its children', async () => {
          const task = await newTask(topology.ref);
          const { before, step, blocked, blockedParents } = topology.retry;
          await task.completeSteps(before);
          await task.failStep(step, { retryable: true });

          // the failed step blocks its child (a convergence step: the other parents are done)
          let child = (await task.readiness()).of(blocked);
          assert.deepEqual([child.completed_parents, child.total_parents], blockedParents);
          assert.equal(child.dependencies_satisfied, false);
          assert.equal(child.ready_for_execution, false);

          await task.elapseBackoff(step);
          await task.retryStep(step);
          assert.equal((await task.readiness()).of(step).ready_for_execution, true);
          await task.completeStep(step, { recovered: true });

          const readiness = await task.readiness();
          const recovered = readiness.of(step);
          assert.equal(recovered.current_state, 'complete');
          assert.equal(recovered.attempts, 2);
          child = readiness.of(blocked);
          assert.equal(child.completed_parents, child.total_parents);
          assert.equal(child.dependencies_satisfied, true);
          assert.equal(child.ready_for_execution, true);

          // and the rest of the run still completes
          await task.runToCompletion();
          assert.equal((await task.executionContext()).execution_status, 'all_complete');
        });

        it('delayed gratification: exhausting max_attempts ends in error, not eligible', async () => {
          const task = await newTask(topology.ref);
          const { before, step } = topology.retry;
          await task.completeSteps(before);
          const maxAttempts = (await task.stepRow(step)).max_attempts;
          for (let attempt = 1; attempt < maxAttempts; attempt++) {
            assert.equal(await task.failStep(step, { retryable: true }), 'waiting_for_retry');
            const row = (await task.readiness()).of(step);
            assert.equal(row.attempts, attempt);
            assert.equal(row.retry_eligible, true);
            await task.elapseBackoff(step);
          }
          assert.equal(await task.failStep(step, { retryable: true }), 'error');
          const row = (await task.readiness()).of(step);
          assert.equal(row.current_state, 'error');
          assert.equal(row.attempts, maxAttempts);
          assert.equal(row.retry_eligible, false);
          assert.equal(row.ready_for_execution, false);
          await assertBlocked(task, [topology.retry.blocked]);
          const context = await task.executionContext();
          assert.equal(context.execution_status, 'blocked_by_failures');
          assert.equal(context.health_status, 'blocked');
        });

        it('delayed gratification: a waiting_for_retry step at max_attempts is not eligible', async () => {
          const task = await newTask(topology.ref);
          const { before, step } = topology.retry;
          await task.completeSteps(before);
          const maxAttempts = (await task.stepRow(step)).max_attempts;
          // the worker side only, then wait_for_retry regardless of the count (as a stale decision would)
          for (let attempt = 1; attempt <= maxAttempts; attempt++) {
            await task.reportFailure(step, { retryable: true });
            await task.setBackoff(step, 1);
            await task.moveStep(step, 'wait_for_retry', 'waiting_for_retry');
            await task.elapseBackoff(step);
            if (attempt < maxAttempts) await task.retryStep(step);
          }
          const row = (await task.readiness()).of(step);
          assert.equal(row.current_state, 'waiting_for_retry');
          assert.equal(row.attempts, maxAttempts);
          assert.equal(row.retry_eligible, false);
          assert.equal(row.ready_for_execution, false);
        });

        for (const fault of topology.sorrowful) {
          it(`sorrowful: a permanent failure at the ${fault.position} (${fault.step}) keeps its descendants pending`, async () => {
            const task = await newTask(topology.ref);
            await task.completeSteps(fault.before);
            assert.equal(await task.failStep(fault.step, { retryable: false }), 'error');
            // whatever else can still run does; the failure's descendants never become ready
            await task.runToCompletion();

            const readiness = await task.readiness();
            const failed = readiness.of(fault.step);
            assert.equal(failed.current_state, 'error');
            assert.equal(failed.attempts, 1);
            // retry_eligible only weighs attempts, max_attempts and the retryable column (A §2.1 rule 4);
            // an error step is never ready whatever it says (rule 6)
            assert.equal(failed.ready_for_execution, false);
            await assertBlocked(task, fault.descendants);
            assert.deepEqual(readiness.inState('error'), [fault.step]);
            assert.deepEqual(readiness.inState('pending'), [...fault.descendants].sort());
            const completed = task
              .stepNames()
              .filter((name) => name !== fault.step && !fault.descendants.includes(name));
            assert.deepEqual(readiness.inState('complete'), completed);
            assert.deepEqual(readiness.ready(), []);

            const context = await task.executionContext();
            assert.equal(context.execution_status, 'blocked_by_failures');
            assert.equal(context.recommended_action, 'handle_failures');
            assert.equal(context.health_status, 'blocked');
            assert.equal(context.failed_steps, 1);
            assert.equal(context.completed_steps, completed.length);
            assert.equal(context.pending_steps, fault.descendants.length);
          });
        }
      });
    }

    describe('mixed states', () => {
      it('diamond: 2 complete, 1 error, 1 pending, counted exactly', async () => {
        const task = await newTask(DIAMOND.ref);
        await task.completeSteps(['diamond_start_ts', 'diamond_branch_b_ts']);
        await task.failStep('diamond_branch_c_ts', { retryable: false });
        const readiness = await task.readiness();
        assert.deepEqual(readiness.inState('complete'), ['diamond_branch_b_ts', 'diamond_start_ts']);
        assert.deepEqual(readiness.inState('error'), ['diamond_branch_c_ts']);
        assert.deepEqual(readiness.inState('pending'), ['diamond_end_ts']);
        const end = readiness.of('diamond_end_ts');
        assert.deepEqual([end.completed_parents, end.total_parents], [1, 2]);
        const context = await task.executionContext();
        assert.equal(context.total_steps, 4);
        assert.equal(context.completed_steps, 2);
        assert.equal(context.failed_steps, 1);
        assert.equal(context.pending_steps, 1);
        assert.equal(context.ready_steps, 0);
        assert.equal(context.completion_percentage, 50);
        assert.equal(context.execution_status, 'blocked_by_failures');
        assert.equal(context.health_status, 'blocked');
      });

      it('a step in flight is processing; an error outranks ready steps', async () => {
        const task = await newTask(MIXED_DAG.ref);
        await task.completeStep('dag_init');
        await task.enqueueStep('dag_process_left');
        await task.claimStep('dag_process_left');
        let context = await task.executionContext();
        // right is still ready
        assert.equal(context.execution_status, 'has_ready_steps');
        assert.equal(context.in_progress_steps, 1);
        await task.enqueueStep('dag_process_right');
        context = await task.executionContext();
        assert.equal(context.execution_status, 'processing');
        assert.equal(context.recommended_action, 'wait_for_completion');
        assert.equal(context.enqueued_steps, 1);
        assert.equal((await task.stepRow('dag_process_left')).in_process, true);

        await task.moveStep('dag_process_left', 'enqueue_for_orchestration', 'enqueued_for_orchestration', {
          results: successResult({ ok: true }),
        });
        await task.moveStep('dag_process_left', 'complete', 'complete');
        // transform is ready now, but the right branch fails permanently: blocked wins
        await task.claimStep('dag_process_right');
        await task.moveStep(
          'dag_process_right',
          'enqueue_as_error_for_orchestration',
          'enqueued_as_error_for_orchestration',
        );
        await task.moveStep('dag_process_right', 'fail', 'error');
        context = await task.executionContext();
        assert.equal(context.ready_steps, 1);
        assert.equal(context.execution_status, 'blocked_by_failures');
      });
    });

    describe('decision and batch templates: the initial step set', () => {
      const approvals: JsonObject[] = [
        { amount: 500, requester: 'alice', purpose: 'auto path' },
        { amount: 3000, requester: 'bob', purpose: 'manager path' },
        { amount: 10_000, requester: 'carol', purpose: 'dual path' },
        { amount: 1000, requester: 'dave', purpose: 'boundary', decision: 'deny' },
        { amount: -50, requester: 'eve', purpose: 'negative amount' },
        { purpose: 'missing fields' },
        { amount: 750, requester: 'frank', purpose: 'bad decision', decision_step: 'no_such_step' },
      ];
      for (const context of approvals) {
        it(`conditional approval initializes 2 steps, only validate ready (${String(context.purpose)})`, async () => {
          const task = await manager.createTask(
            template('conditional_approval_ts/approval_routing_ts'),
            context,
          );
          assert.deepEqual(task.stepNames(), ['routing_decision_ts', 'validate_request_ts']);
          const readiness = await task.readiness();
          assert.deepEqual(readiness.ready(), ['validate_request_ts']);
          assert.equal(readiness.of('routing_decision_ts').total_parents, 1);
          assert.equal(readiness.of('validate_request_ts').total_parents, 0);
          await task.completeStep('validate_request_ts');
          assert.deepEqual((await task.readiness()).ready(), ['routing_decision_ts']);
        });
      }

      for (const size of [500, 3500, 25_000, 1000, 1001]) {
        it(`batch (dataset_size ${size}) initializes only analyze_dataset, ready`, async () => {
          const task = await manager.createTask(template('data_processing/large_dataset_processor'), {
            dataset_size: size,
          });
          assert.deepEqual(task.stepNames(), ['analyze_dataset']);
          const readiness = await task.readiness();
          assert.deepEqual(readiness.ready(), ['analyze_dataset']);
          assert.equal(readiness.of('analyze_dataset').total_parents, 0);
        });
      }

      for (const [ref, analyzer] of [
        ['csv_processing_rust/csv_product_inventory_analyzer', 'analyze_csv'],
        ['csv_processing_ts/csv_product_inventory_analyzer_ts', 'analyze_csv_ts'],
        ['ts_e2e_checkpoint/checkpoint_yield_test_ts', 'analyze_items_ts'],
        ['rust_e2e_batch_retry/batch_resumption_test', 'analyze_dataset'],
      ] as const) {
        it(`${ref} initializes only its batchable step (${analyzer})`, async () => {
          const task = await newTask(ref);
          assert.deepEqual(task.stepNames(), [analyzer]);
          assert.deepEqual((await task.readiness()).ready(), [analyzer]);
        });
      }

      it('diamond-decision-batch: 4 base steps, only start ready, the decision waits for both branches', async () => {
        const task = await manager.createTask(
          template('combined_workflow_test/diamond_decision_batch_processor'),
          {
            numbers: [2, 4, 6, 8, 10, 12, 1],
          },
        );
        assert.deepEqual(task.stepNames(), [
          'branch_evens',
          'branch_odds',
          'ddb_diamond_start',
          'ddb_routing_decision',
        ]);
        let readiness = await task.readiness();
        assert.deepEqual(readiness.ready(), ['ddb_diamond_start']);
        assert.deepEqual(readiness.parentCounts(), {
          ddb_diamond_start: 0,
          branch_evens: 1,
          branch_odds: 1,
          ddb_routing_decision: 2,
        });
        await task.completeStep('ddb_diamond_start');
        assert.deepEqual((await task.readiness()).ready(), ['branch_evens', 'branch_odds']);
        await task.completeStep('branch_evens');
        readiness = await task.readiness();
        const decision = readiness.of('ddb_routing_decision');
        assert.deepEqual([decision.completed_parents, decision.total_parents], [1, 2]);
        assert.equal(decision.ready_for_execution, false);
        await task.completeStep('branch_odds');
        assert.deepEqual((await task.readiness()).ready(), ['ddb_routing_decision']);
      });
    });

    describe('domain event workflow', () => {
      const ref = 'domain_events_ts/domain_event_publishing_ts';
      const VALIDATE = 'domain_events_ts_validate_order';
      const PAYMENT = 'domain_events_ts_process_payment';
      const INVENTORY = 'domain_events_ts_update_inventory';
      const NOTIFICATION = 'domain_events_ts_send_notification';
      const order = [VALIDATE, PAYMENT, INVENTORY, NOTIFICATION];

      it('is a 4-step chain readied one step at a time', async () => {
        const task = await newTask(ref, { order_id: 'ORD-1', customer_id: 'C-1', amount: 10 });
        assert.deepEqual(
          await task.runToCompletion(),
          order.map((name) => [name]),
        );
      });

      it('a failure puts the step in error and blocks its dependents; a retryable one stays eligible', async () => {
        const permanent = await newTask(ref, { order_id: 'ORD-2', customer_id: 'C-2', amount: 10 });
        await permanent.completeStep(VALIDATE);
        assert.equal(await permanent.failStep(PAYMENT, { retryable: false }), 'error');
        await assertBlocked(permanent, order.slice(2));
        assert.equal((await permanent.readiness()).of(PAYMENT).ready_for_execution, false);

        const retryable = await newTask(ref, { order_id: 'ORD-3', customer_id: 'C-3', amount: 10 });
        await retryable.completeStep(VALIDATE);
        assert.equal(await retryable.failStep(PAYMENT, { retryable: true }), 'waiting_for_retry');
        assert.equal((await retryable.readiness()).of(PAYMENT).retry_eligible, true);
        await assertBlocked(retryable, order.slice(2));
      });

      it('declares inventory.updated with condition always (published whatever the outcome)', () => {
        const step = template(ref).template.steps.find((candidate) => candidate.name === INVENTORY);
        assert.deepEqual(
          step?.publishes_events.map((event) => [event.name, event.condition]),
          [['inventory.updated', 'always']],
        );
        const payment = template(ref).template.steps.find((candidate) => candidate.name === PAYMENT);
        assert.deepEqual(
          payment?.publishes_events.map((event) => [event.name, event.condition]),
          [
            ['payment.processed', 'success'],
            ['payment.failed', 'failure'],
          ],
        );
      });
    });

    describe('manual step actions', () => {
      it('resolve_manually: resolved_manually, no results, and it satisfies dependents', async () => {
        const task = await newTask(LINEAR.ref);
        await task.completeStep('linear_step_1');
        await task.failStep('linear_step_2', { retryable: false });
        await task.resolveManually('linear_step_2');
        const row = await task.stepRow('linear_step_2');
        assert.equal(row.current_state, 'resolved_manually');
        // a resolution brings no results of its own: what the failed attempt reported stays (A §4.4)
        assert.equal((row.results as { success: unknown }).success, false);
        assert.equal((await task.stepTransitions('linear_step_2')).at(-1)?.event, 'resolve_manually');
        assert.equal(row.processed, true);
        assert.equal(row.in_process, false);
        assert.ok(row.processed_at instanceof Date);
        const readiness = await task.readiness();
        assert.equal(readiness.of('linear_step_3').dependencies_satisfied, true);
        assert.deepEqual(readiness.ready(), ['linear_step_3']);
        const context = await task.executionContext();
        assert.equal(context.completed_steps, 2, 'resolved_manually counts as completed');
        assert.equal(context.failed_steps, 0);
      });

      it('resolve_manually of a pending step: results stay null', async () => {
        const task = await newTask(LINEAR.ref);
        await task.resolveManually('linear_step_1');
        const row = await task.stepRow('linear_step_1');
        assert.equal(row.current_state, 'resolved_manually');
        assert.equal(row.results, null);
        assert.deepEqual((await task.readiness()).ready(), ['linear_step_2']);
      });

      it('complete_manually: results persisted, processed, and the child sees them', async () => {
        const task = await newTask(LINEAR.ref);
        await task.failStep('linear_step_1', { retryable: false });
        await task.completeManually('linear_step_1', { calculated_value: 42 });
        const row = await task.stepRow('linear_step_1');
        assert.equal(row.current_state, 'complete');
        assert.deepEqual((row.results as { result: unknown }).result, { calculated_value: 42 });
        assert.equal(
          (row.results as { metadata: { manually_completed: unknown } }).metadata.manually_completed,
          true,
        );
        assert.equal(row.processed, true);
        assert.equal(row.in_process, false);
        assert.ok(row.processed_at instanceof Date);

        const readiness = await task.readiness();
        assert.equal(readiness.of('linear_step_2').ready_for_execution, true);
        const [parent] = await task.ancestors('linear_step_2');
        assert.ok(parent);
        assert.equal(parent.step_name, 'linear_step_1');
        assert.equal(parent.distance, 1);
        assert.equal(parent.processed, true);
        assert.deepEqual((parent.results as { result: unknown }).result, { calculated_value: 42 });
      });

      it('reset_for_retry from error: pending with attempts 0 and no backoff', async () => {
        const task = await newTask(LINEAR.ref);
        await task.failStep('linear_step_1', { retryable: false });
        await db.query(
          'UPDATE tasker.workflow_steps SET attempts = 5, backoff_request_seconds = 30 WHERE workflow_step_uuid = $1',
          [task.stepUuid('linear_step_1')],
        );
        await task.resetForRetry('linear_step_1');
        const row = (await task.readiness()).of('linear_step_1');
        assert.equal(row.current_state, 'pending');
        assert.equal(row.attempts, 0);
        assert.equal(row.backoff_request_seconds, null);
        assert.equal(row.retry_eligible, true);
        assert.equal(row.ready_for_execution, true);
        await task.completeStep('linear_step_1');
        assert.equal((await task.stepRow('linear_step_1')).attempts, 1);
      });

      it('reset_for_retry is refused from any state but error', async () => {
        const task = await newTask(LINEAR.ref);
        await rejectsWithCode(task.transitionStep('linear_step_1', 'reset_for_retry', 'pending'), 'TK001');
      });
    });

    describe('retry boundaries (test_sql templates)', () => {
      const STEP = 'boundary_test_step';

      it('max_attempts 0: the first run is allowed, then the step is blocked', async () => {
        const task = await newTask('test_sql/boundary_max_attempts_one');
        await db.query('UPDATE tasker.workflow_steps SET max_attempts = 0 WHERE workflow_step_uuid = $1', [
          task.stepUuid(STEP),
        ]);
        let row = (await task.readiness()).of(STEP);
        assert.deepEqual(
          [row.max_attempts, row.attempts, row.retry_eligible, row.ready_for_execution],
          [0, 0, true, true],
        );
        // orchestration: attempts 1 is not < max_attempts 0, so a retryable failure is permanent
        assert.equal(await task.failStep(STEP, { retryable: true }), 'error');
        row = (await task.readiness()).of(STEP);
        assert.deepEqual([row.attempts, row.retry_eligible, row.ready_for_execution], [1, false, false]);
      });

      it('max_attempts 1: exactly one run', async () => {
        const task = await newTask('test_sql/boundary_max_attempts_one');
        let row = (await task.readiness()).of(STEP);
        assert.deepEqual([row.max_attempts, row.retry_eligible, row.ready_for_execution], [1, true, true]);
        await task.reportFailure(STEP, { retryable: true });
        await task.moveStep(STEP, 'wait_for_retry', 'waiting_for_retry');
        await task.elapseBackoff(STEP);
        row = (await task.readiness()).of(STEP);
        assert.deepEqual([row.attempts, row.retry_eligible, row.ready_for_execution], [1, false, false]);
      });

      it('max_attempts 3: attempts 0, 1 and 2 are eligible, 3 is blocked', async () => {
        const task = await newTask('test_sql/boundary_max_attempts_three');
        let row = (await task.readiness()).of(STEP);
        assert.deepEqual([row.attempts, row.retry_eligible, row.ready_for_execution], [0, true, true]);
        for (const attempts of [1, 2]) {
          assert.equal(await task.failStep(STEP, { retryable: true }), 'waiting_for_retry');
          await task.elapseBackoff(STEP);
          row = (await task.readiness()).of(STEP);
          assert.deepEqual(
            [row.attempts, row.retry_eligible, row.ready_for_execution],
            [attempts, true, true],
          );
        }
        // the third failure: the raw state first (waiting_for_retry at 3 is not eligible) …
        await task.reportFailure(STEP, { retryable: true });
        await task.moveStep(STEP, 'wait_for_retry', 'waiting_for_retry');
        await task.elapseBackoff(STEP);
        row = (await task.readiness()).of(STEP);
        assert.deepEqual([row.attempts, row.retry_eligible, row.ready_for_execution], [3, false, false]);
      });

      it('max_attempts 3 with orchestration: the third failure is permanent', async () => {
        const task = await newTask('test_sql/boundary_max_attempts_three');
        assert.equal(await task.failStep(STEP, { retryable: true }), 'waiting_for_retry');
        await task.elapseBackoff(STEP);
        assert.equal(await task.failStep(STEP, { retryable: true }), 'waiting_for_retry');
        await task.elapseBackoff(STEP);
        assert.equal(await task.failStep(STEP, { retryable: true }), 'error');
        assert.equal((await task.stepRow(STEP)).attempts, 3);
      });

      it('the first attempt ignores retryable = false', async () => {
        const task = await newTask('test_sql/boundary_non_retryable_first');
        const row = (await task.readiness()).of(STEP);
        assert.equal((await task.stepRow(STEP)).retryable, false);
        assert.deepEqual([row.attempts, row.retry_eligible, row.ready_for_execution], [0, true, true]);
      });

      it('retries require retryable', async () => {
        const task = await newTask('test_sql/boundary_non_retryable_retries');
        await task.reportFailure(STEP, { retryable: true });
        await task.moveStep(STEP, 'wait_for_retry', 'waiting_for_retry');
        await task.elapseBackoff(STEP);
        const row = (await task.readiness()).of(STEP);
        assert.deepEqual(
          [row.max_attempts, row.attempts, row.retry_eligible, row.ready_for_execution],
          [3, 1, false, false],
        );
      });
    });

    describe('transitive dependencies and the DAG helpers', () => {
      it('lists every ancestor once, nearest first (tree)', async () => {
        const task = await newTask(TREE.ref);
        const ancestors = await task.ancestors('tree_final_convergence');
        assert.deepEqual(
          ancestors
            .map((row): [string, number] => [row.step_name, row.distance])
            .sort(([nameA, a], [nameB, b]) => a - b || nameA.localeCompare(nameB)),
          [
            ['tree_leaf_d', 1],
            ['tree_leaf_e', 1],
            ['tree_leaf_f', 1],
            ['tree_leaf_g', 1],
            ['tree_branch_left', 2],
            ['tree_branch_right', 2],
            ['tree_root', 3],
          ],
        );
        const distances = ancestors.map((row) => row.distance);
        assert.deepEqual(
          distances,
          [...distances].sort((a, b) => a - b),
          'nearest first',
        );
        assert.deepEqual(await task.ancestors('tree_root'), []);
      });

      it('counts an ancestor reachable by several paths once, at its shortest distance (mixed DAG, order)', async () => {
        const dag = await newTask(MIXED_DAG.ref);
        const ancestors = await dag.ancestors('dag_finalize');
        assert.equal(new Set(ancestors.map((row) => row.step_name)).size, ancestors.length);
        assert.deepEqual(Object.fromEntries(ancestors.map((row) => [row.step_name, row.distance])), {
          dag_validate: 1,
          dag_transform: 1,
          dag_analyze: 1,
          dag_process_left: 2,
          dag_process_right: 2,
          dag_init: 3,
        });
        const order = await newTask(ORDER_FULFILLMENT.ref);
        assert.deepEqual(
          (await order.ancestors('ship_order')).map((row) => [row.step_name, row.distance]).sort(),
          [
            ['process_payment', 1],
            ['reserve_inventory', 1],
            ['validate_order', 1],
          ],
        );
      });

      it('exposes the results of completed ancestors', async () => {
        const task = await newTask(DIAMOND.ref);
        await task.completeSteps(['diamond_start_ts', 'diamond_branch_b_ts', 'diamond_branch_c_ts']);
        const ancestors = await task.ancestors('diamond_end_ts');
        for (const row of ancestors) {
          assert.equal(row.processed, true);
          assert.deepEqual(row.results, successResult({ step: row.step_name }));
        }
      });

      it('add_step_edge refuses a cycle with TK002', async () => {
        const task = await newTask(MIXED_DAG.ref);
        await rejectsWithCode(
          db.query('SELECT tasker.add_step_edge($1, $2)', [
            task.stepUuid('dag_finalize'),
            task.stepUuid('dag_init'),
          ]),
          'TK002',
        );
        await rejectsWithCode(
          db.query('SELECT tasker.add_step_edge($1, $2)', [
            task.stepUuid('dag_analyze'),
            task.stepUuid('dag_process_right'),
          ]),
          'TK002',
        );
        const { rows } = await db.query<{ cycle: boolean }>(
          'SELECT tasker.would_create_cycle($1, $2) AS cycle',
          [task.stepUuid('dag_validate'), task.stepUuid('dag_process_left')],
        );
        assert.equal(rows[0]?.cycle, true);
      });

      it('add_step_edge refuses a self-edge as a cycle (TK002)', {}, async () => {
        const task = await newTask(MIXED_DAG.ref);
        const step = task.stepUuid('dag_validate');
        await rejectsWithCode(db.query('SELECT tasker.add_step_edge($1, $1)', [step]), 'TK002');
      });

      it('add_step_edge refuses cross-task edges with TK003', async () => {
        const first = await newTask(LINEAR.ref);
        const second = await newTask(LINEAR.ref);
        await rejectsWithCode(
          db.query('SELECT tasker.add_step_edge($1, $2)', [
            first.stepUuid('linear_step_4'),
            second.stepUuid('linear_step_1'),
          ]),
          'TK003',
        );
      });

      it('add_step_edge is idempotent and the new edge counts for readiness', async () => {
        const task = await newTask(LINEAR.ref);
        const add = async () =>
          (
            await db.query<{ created: boolean }>('SELECT tasker.add_step_edge($1, $2) AS created', [
              task.stepUuid('linear_step_1'),
              task.stepUuid('linear_step_3'),
            ])
          ).rows[0]?.created;
        assert.equal(await add(), true);
        assert.equal(await add(), false);
        // the existing template edge, too
        const { rows } = await db.query<{ created: boolean }>(
          'SELECT tasker.add_step_edge($1, $2) AS created',
          [task.stepUuid('linear_step_1'), task.stepUuid('linear_step_2')],
        );
        assert.equal(rows[0]?.created, false);
        const count = await db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM tasker.workflow_step_edges WHERE to_step_uuid = $1',
          [task.stepUuid('linear_step_3')],
        );
        assert.equal(count.rows[0]?.n, 2);
        assert.equal((await task.readiness()).of('linear_step_3').total_parents, 2);
      });
    });

    describe('compare-and-swap transitions', () => {
      it('a wrong expected from-state returns false and writes nothing', async () => {
        const task = await newTask(LINEAR.ref);
        const before = await task.stepTransitions('linear_step_1');
        // the step is pending, not enqueued
        assert.equal(
          await task.transitionStep('linear_step_1', 'start', 'in_progress', { from: 'enqueued' }),
          false,
        );
        assert.deepEqual(await task.stepTransitions('linear_step_1'), before);
        const row = await task.stepRow('linear_step_1');
        assert.deepEqual([row.current_state, row.attempts, row.in_process], ['pending', 0, false]);

        assert.equal(await task.transitionTask('start', 'initializing', 'pending'), true);
        assert.equal(await task.transitionTask('start', 'initializing', 'pending'), false);
        const { rows } = await db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM tasker.task_transitions WHERE task_uuid = $1',
          [task.uuid],
        );
        assert.equal(rows[0]?.n, 2);
        assert.equal(await task.taskState(), 'initializing');
      });

      it('a transition the rule table does not hold raises TK001 and writes nothing', async () => {
        const task = await newTask(LINEAR.ref);
        await rejectsWithCode(task.transitionStep('linear_step_1', 'complete', 'complete'), 'TK001');
        await rejectsWithCode(task.transitionStep('linear_step_1', 'enqueue', 'complete'), 'TK001');
        await rejectsWithCode(task.transitionTask('all_steps_successful', 'complete', 'pending'), 'TK001');
        // the dependencies guard: a child cannot be enqueued before its parent completes
        await rejectsWithCode(task.transitionStep('linear_step_2', 'enqueue', 'enqueued'), 'TK001');
        assert.equal((await task.stepTransitions('linear_step_1')).length, 1);
        assert.equal((await task.stepTransitions('linear_step_2')).length, 1);
        assert.equal(await task.taskState(), 'pending');
      });

      it('keeps exactly one most_recent row per entity, with increasing sort keys and lifecycle events', async () => {
        const task = await newTask(DIAMOND.ref);
        await task.completeStep('diamond_start_ts');
        await task.failStep('diamond_branch_b_ts', { retryable: true });
        await task.elapseBackoff('diamond_branch_b_ts');
        await task.completeStep('diamond_branch_b_ts');
        for (const [event, to] of [
          ['start', 'initializing'],
          ['ready_steps_found', 'enqueuing_steps'],
          ['steps_enqueued', 'steps_in_process'],
          ['step_completed', 'evaluating_results'],
        ] as const) {
          assert.equal(await task.transitionTask(event, to), true);
        }

        const transitions = await task.stepTransitions('diamond_branch_b_ts');
        assert.deepEqual(
          transitions.map((row) => row.sort_key),
          transitions.map((_, index) => index + 1),
        );
        assert.deepEqual(
          transitions.map((row) => row.most_recent),
          transitions.map((_, index) => index === transitions.length - 1),
        );
        assert.deepEqual(
          transitions.map((row) => [row.from_state, row.event, row.to_state, row.lifecycle_event]),
          [
            [null, 'initialize', 'pending', null],
            ['pending', 'enqueue', 'enqueued', 'step.enqueue_requested'],
            ['enqueued', 'start', 'in_progress', 'step.execution_requested'],
            [
              'in_progress',
              'enqueue_as_error_for_orchestration',
              'enqueued_as_error_for_orchestration',
              'step.enqueued_as_error_for_orchestration',
            ],
            [
              'enqueued_as_error_for_orchestration',
              'wait_for_retry',
              'waiting_for_retry',
              'step.retry_requested',
            ],
            ['waiting_for_retry', 'retry', 'pending', 'step.retry_requested'],
            ['pending', 'enqueue', 'enqueued', 'step.enqueue_requested'],
            ['enqueued', 'start', 'in_progress', 'step.execution_requested'],
            [
              'in_progress',
              'enqueue_for_orchestration',
              'enqueued_for_orchestration',
              'step.enqueued_for_orchestration',
            ],
            ['enqueued_for_orchestration', 'complete', 'complete', 'step.completed'],
          ],
        );

        // every step and the task: one most_recent row, matching the entity's current_state
        const steps = await db.query<{ name: string; current: number; state: string; latest: string | null }>(
          `SELECT ns.name, ws.current_state AS state,
                  (SELECT count(*)::int FROM tasker.workflow_step_transitions t
                   WHERE t.workflow_step_uuid = ws.workflow_step_uuid AND t.most_recent) AS current,
                  (SELECT t.to_state FROM tasker.workflow_step_transitions t
                   WHERE t.workflow_step_uuid = ws.workflow_step_uuid AND t.most_recent) AS latest
           FROM tasker.workflow_steps ws JOIN tasker.named_steps ns USING (named_step_uuid)
           WHERE ws.task_uuid = $1`,
          [task.uuid],
        );
        for (const row of steps.rows) {
          assert.equal(row.current, 1, row.name);
          assert.equal(row.latest, row.state, row.name);
        }
        const taskRows = await db.query<{
          to_state: string;
          sort_key: number;
          most_recent: boolean;
          lifecycle_event: string | null;
        }>(
          'SELECT to_state, sort_key, most_recent, lifecycle_event FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY sort_key',
          [task.uuid],
        );
        assert.deepEqual(
          taskRows.rows.map((row) => [row.sort_key, row.to_state, row.most_recent, row.lifecycle_event]),
          [
            [1, 'pending', false, null],
            [2, 'initializing', false, 'task.initialize_requested'],
            [3, 'enqueuing_steps', false, 'task.steps_discovery_completed'],
            [4, 'steps_in_process', false, 'task.steps_enqueued'],
            [5, 'evaluating_results', true, 'task.step_results_received'],
          ],
        );
        assert.equal(await task.taskState(), 'evaluating_results');
      });

      it('records one result audit row per worker result', async () => {
        const task = await newTask(LINEAR.ref);
        await task.failStep('linear_step_1', { retryable: true });
        await task.elapseBackoff('linear_step_1');
        await task.completeStep('linear_step_1', { value: 36 });
        const { rows } = await db.query<{ success: boolean }>(
          `SELECT a.success FROM tasker.workflow_step_result_audit a
           JOIN tasker.workflow_step_transitions t USING (workflow_step_transition_uuid)
           WHERE a.workflow_step_uuid = $1 ORDER BY t.sort_key`,
          [task.stepUuid('linear_step_1')],
        );
        assert.deepEqual(
          rows.map((row) => row.success),
          [false, true],
        );
      });
    });
  });
}
