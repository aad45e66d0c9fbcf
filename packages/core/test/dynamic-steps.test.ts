/**
 * Dynamic step creation in SQL (0007), driven through the real hops (claim_step_messages,
 * complete_step_message, process_step_results): a decision step's outcome creates exactly the
 * requested steps and their deferred convergence with intersection edges; a batchable step's outcome
 * creates its workers (or the no-op placeholder) and their convergence; both idempotently. An
 * invalid outcome fails the step permanently and the task ends in error.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { JsonObject, RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { createCoreDatabase } from './db.ts';
import { workerHops } from './hops.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

const RESULTS = 'orchestration_step_results';
const APPROVAL_QUEUE = 'worker_conditional_approval_ts_queue';
const NESTED_QUEUE = 'worker_dynamic_steps_test_queue';

/**
 * decide → {left → left_more, right, nested (decision) → nested_child}; join (deferred) after
 * left_more and right; after_join after join only; tail after join and the decision.
 */
const NESTED_TEMPLATE = `
name: nested_decision
namespace_name: dynamic_steps_test
version: 1.0.0
steps:
  - { name: start, handler: { callable: T.Start } }
  - { name: decide, type: decision, dependencies: [start], handler: { callable: T.Decide } }
  - { name: left, dependencies: [decide], handler: { callable: T.Left } }
  - { name: left_more, dependencies: [left], handler: { callable: T.LeftMore } }
  - { name: right, dependencies: [decide], handler: { callable: T.Right } }
  - { name: nested, type: decision, dependencies: [right], handler: { callable: T.Nested } }
  - { name: nested_child, dependencies: [nested], handler: { callable: T.NestedChild } }
  - name: join
    type: deferred_convergence
    dependencies: [left_more, right]
    handler: { callable: T.Join }
  - { name: after_join, dependencies: [join], handler: { callable: T.AfterJoin } }
`;

function decision(outcome: JsonObject | null): JsonObject {
  return successResult(outcome === null ? { routed: true } : { decision_point_outcome: outcome });
}

function createSteps(names: string[]): JsonObject {
  return { type: 'create_steps', step_names: names };
}

for (const backend of BACKENDS) {
  describe(`dynamic steps: decision points and batches (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let pgmq: Pgmq;
    let approval: RegisteredTemplate;
    let nested: RegisteredTemplate;
    let dataset: RegisteredTemplate;
    const worker = randomUUID();

    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue(RESULTS);
      approval = await manager.registerExample('conditional_approval_ts/approval_routing_ts');
      nested = await manager.registerYaml(NESTED_TEMPLATE);
      dataset = await manager.registerExample('data_processing/large_dataset_processor');
    });
    after(() => t.dispose());

    async function start(registered: RegisteredTemplate, context: JsonObject): Promise<LifecycleTask> {
      // a test that failed midway leaves its messages: each test starts from empty queues
      await pgmq.createQueue(APPROVAL_QUEUE);
      await pgmq.createQueue(NESTED_QUEUE);
      await pgmq.purgeQueue(APPROVAL_QUEUE);
      await pgmq.purgeQueue(NESTED_QUEUE);
      const task = await manager.createTask(registered, context);
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      return task;
    }

    const { claim, complete, drain } = workerHops(() => t.db, worker);

    async function steps(task: LifecycleTask): Promise<Map<string, string>> {
      const { rows } = await t.db.query<{ name: string; current_state: string }>(
        `SELECT ns.name, ws.current_state FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid WHERE ws.task_uuid = $1`,
        [task.uuid],
      );
      return new Map(rows.map((row) => [row.name, row.current_state]));
    }

    async function edges(task: LifecycleTask): Promise<string[]> {
      const { rows } = await t.db.query<{ e: string }>(
        `SELECT pn.name || '>' || cn.name AS e FROM tasker.workflow_step_edges e
         JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
         JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
         JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid
         JOIN tasker.named_steps cn ON cn.named_step_uuid = c.named_step_uuid
         WHERE p.task_uuid = $1 ORDER BY 1`,
        [task.uuid],
      );
      return rows.map((row) => row.e);
    }

    async function stepRow(task: LifecycleTask, name: string) {
      const { rows } = await t.db.query<{
        workflow_step_uuid: string;
        current_state: string;
        results: {
          success?: boolean;
          error?: { error_type?: string; message?: string; context?: JsonObject };
        };
      }>(
        `SELECT ws.workflow_step_uuid, ws.current_state, ws.results FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
         WHERE ws.task_uuid = $1 AND ns.name = $2`,
        [task.uuid, name],
      );
      assert.ok(rows[0], `step ${name}`);
      return rows[0];
    }

    /** Runs validate_request_ts, then hands the decision `outcome` through `deliver`. */
    async function runToDecision(context: JsonObject = { amount: 2500, requester: 'a', purpose: 'b' }) {
      const task = await start(approval, context);
      const [validate] = await claim(APPROVAL_QUEUE);
      assert.equal(validate?.context?.step_name, 'validate_request_ts');
      await complete(APPROVAL_QUEUE, validate, successResult({ valid: true }));
      const [decide] = await claim(APPROVAL_QUEUE);
      assert.equal(decide?.context?.step_name, 'routing_decision_ts');
      return { task, decide };
    }

    it('creates exactly the requested steps and the convergence, with intersection edges', async () => {
      const { task, decide } = await runToDecision();
      assert.deepEqual([...(await steps(task)).keys()].sort(), [
        'routing_decision_ts',
        'validate_request_ts',
      ]);
      await complete(
        APPROVAL_QUEUE,
        decide,
        decision(createSteps(['manager_approval_ts', 'finance_review_ts'])),
      );
      const created = await steps(task);
      assert.deepEqual([...created.keys()].sort(), [
        'finalize_approval_ts',
        'finance_review_ts',
        'manager_approval_ts',
        'routing_decision_ts',
        'validate_request_ts',
      ]);
      assert.equal(created.get('routing_decision_ts'), 'complete');
      assert.equal(created.get('manager_approval_ts'), 'enqueued');
      assert.equal(created.get('finance_review_ts'), 'enqueued');
      assert.equal(created.get('finalize_approval_ts'), 'pending');
      assert.deepEqual(await edges(task), [
        'finance_review_ts>finalize_approval_ts',
        'manager_approval_ts>finalize_approval_ts',
        'routing_decision_ts>finance_review_ts',
        'routing_decision_ts>manager_approval_ts',
        'validate_request_ts>routing_decision_ts',
      ]);
      // created like create_task's steps: template inputs, retry settings, the first transition
      const { rows } = await t.db.query<{ inputs: JsonObject; max_attempts: number; first: string }>(
        `SELECT ws.inputs, ws.max_attempts,
                (SELECT coalesce(tr.from_state, '-') || '>' || tr.to_state || ':' || tr.event
                 FROM tasker.workflow_step_transitions tr WHERE tr.workflow_step_uuid = ws.workflow_step_uuid
                 ORDER BY tr.sort_key LIMIT 1) AS first
         FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = $1`,
        [(await stepRow(task, 'manager_approval_ts')).workflow_step_uuid],
      );
      assert.deepEqual(rows[0], {
        inputs: { approval_type: 'manager' },
        max_attempts: 3,
        first: '->pending:initialize',
      });
      const ran = await drain(APPROVAL_QUEUE, (name) => successResult({ step: name }));
      assert.deepEqual(ran.sort(), ['finalize_approval_ts', 'finance_review_ts', 'manager_approval_ts']);
      assert.equal(await task.taskState(), 'complete');
    });

    it('no_branches creates nothing and the task completes', async () => {
      const { task, decide } = await runToDecision();
      await complete(APPROVAL_QUEUE, decide, decision({ type: 'no_branches' }));
      assert.deepEqual([...(await steps(task)).values()], ['complete', 'complete']);
      assert.equal(await task.taskState(), 'complete');
    });

    it('a redelivered decision result creates nothing twice', async () => {
      const { task, decide } = await runToDecision();
      // through the result queue, with the pointer message delivered twice
      await complete(APPROVAL_QUEUE, decide, decision(createSteps(['auto_approve_ts'])), false);
      await pgmq.send(RESULTS, {
        task_uuid: task.uuid,
        step_uuid: decide.context?.step_uuid,
        correlation_id: task.created.correlationId,
      });
      const { rows: processed } = await t.db.query<{ outcome: string }>(
        'SELECT outcome FROM tasker.process_step_results($1, NULL, 20, 0, $2, 50)',
        [RESULTS, worker],
      );
      assert.deepEqual(processed.map((row) => row.outcome).sort(), ['applied', 'duplicate']);
      const after = await steps(task);
      assert.deepEqual([...after.keys()].sort(), [
        'auto_approve_ts',
        'finalize_approval_ts',
        'routing_decision_ts',
        'validate_request_ts',
      ]);
      // the outcome itself run again (e.g. after a reset) finds the decision processed
      const { rows } = await t.db.query<{ r: JsonObject }>(
        'SELECT tasker.process_decision_outcome($1, $2) AS r',
        [decide.context?.step_uuid, worker],
      );
      assert.deepEqual(rows[0]?.r, { ok: true, created: [], already_processed: true });
      assert.equal((await steps(task)).size, 4);
      assert.equal((await edges(task)).length, 3);
      await drain(APPROVAL_QUEUE, (name) => successResult({ step: name }));
      assert.equal(await task.taskState(), 'complete');
    });

    const invalid: Array<[string, JsonObject | null, string]> = [
      ['an undeclared step', createSteps(['auto_approve_ts', 'no_such_step']), 'unknown_step'],
      [
        'a step that does not descend from the decision',
        createSteps(['validate_request_ts']),
        'invalid_descendant',
      ],
      [
        'more than 100 names',
        createSteps(Array.from({ length: 101 }, (_, i) => `step_${i}`)),
        'too_many_steps',
      ],
      ['a malformed outcome', { type: 'create_steps', step_names: 'auto_approve_ts' }, 'malformed_outcome'],
      ['an unknown outcome type', { type: 'maybe' }, 'malformed_outcome'],
      ['no outcome at all', null, 'missing_outcome'],
    ];
    for (const [label, outcome, code] of invalid) {
      it(`fails the decision step permanently on ${label} (${code}), and the task ends in error`, async () => {
        const { task, decide } = await runToDecision();
        await complete(APPROVAL_QUEUE, decide, decision(outcome));
        const row = await stepRow(task, 'routing_decision_ts');
        assert.equal(row.current_state, 'error');
        assert.equal(row.results.success, false);
        assert.equal(row.results.error?.error_type, 'invalid_decision_outcome');
        assert.equal(row.results.error?.context?.code, code);
        assert.ok((row.results.error?.message ?? '').length > 0);
        const { rows } = await t.db.query<{ metadata: JsonObject }>(
          `SELECT metadata FROM tasker.workflow_step_transitions
           WHERE workflow_step_uuid = $1 AND most_recent`,
          [row.workflow_step_uuid],
        );
        assert.equal(rows[0]?.metadata.code, code);
        assert.equal(rows[0]?.metadata.reason, 'invalid_decision_outcome');
        assert.equal((await steps(task)).size, 2, 'nothing created');
        assert.equal(await task.taskState(), 'error');
      });
    }

    it('creates dependents transitively, stops at a nested decision, and follows the convergence', async () => {
      const task = await start(nested, {});
      const ran = await drain(NESTED_QUEUE, (name) =>
        name === 'decide'
          ? decision(createSteps(['left', 'right']))
          : name === 'nested'
            ? decision({ type: 'no_branches' })
            : successResult({ step: name }),
      );
      assert.deepEqual(ran.sort(), [
        'after_join',
        'decide',
        'join',
        'left',
        'left_more',
        'nested',
        'right',
        'start',
      ]);
      assert.equal((await steps(task)).has('nested_child'), false);
      assert.deepEqual(await edges(task), [
        'decide>left',
        'decide>right',
        'join>after_join',
        'left>left_more',
        'left_more>join',
        'right>join',
        'right>nested',
        'start>decide',
      ]);
      assert.equal(await task.taskState(), 'complete');
    });

    const DATASET_QUEUE = 'worker_data_processing_queue';

    function cursors(count: number, size = 10): JsonObject[] {
      return Array.from({ length: count }, (_, i) => ({
        batch_id: String(i + 1).padStart(3, '0'),
        start_cursor: i * size,
        end_cursor: (i + 1) * size,
        batch_size: size,
      }));
    }

    function batches(configs: JsonObject[], extra: JsonObject = {}): JsonObject {
      return successResult({
        batch_processing_outcome: {
          type: 'create_batches',
          worker_template_name: 'process_batch',
          worker_count: configs.length,
          cursor_configs: configs,
          total_items: configs.length * 10,
          ...extra,
        },
      });
    }

    /** Starts a dataset task and claims its analyzer. */
    async function toAnalyzer() {
      await pgmq.createQueue(DATASET_QUEUE);
      await pgmq.purgeQueue(DATASET_QUEUE);
      const task = await start(dataset, { dataset_size: 30 });
      const [analyze] = await claim(DATASET_QUEUE);
      assert.equal(analyze?.context?.step_name, 'analyze_dataset');
      return { task, analyze };
    }

    it('batch: creates one worker per cursor config and the convergence, with edges from every worker', async () => {
      const { task, analyze } = await toAnalyzer();
      await complete(DATASET_QUEUE, analyze, batches(cursors(3)));
      const created = await steps(task);
      assert.deepEqual([...created.keys()].sort(), [
        'aggregate_results',
        'analyze_dataset',
        'process_batch_001',
        'process_batch_002',
        'process_batch_003',
      ]);
      assert.equal(created.get('process_batch_001'), 'enqueued');
      assert.equal(created.get('aggregate_results'), 'pending');
      const { rows } = await t.db.query<{ e: string }>(
        `SELECT pn.name || '>' || cn.name || ':' || e.name AS e FROM tasker.workflow_step_edges e
         JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
         JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
         JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid
         JOIN tasker.named_steps cn ON cn.named_step_uuid = c.named_step_uuid
         WHERE p.task_uuid = $1 ORDER BY 1`,
        [task.uuid],
      );
      assert.deepEqual(
        rows.map((row) => row.e),
        [
          'analyze_dataset>process_batch_001:batch_dependency',
          'analyze_dataset>process_batch_002:batch_dependency',
          'analyze_dataset>process_batch_003:batch_dependency',
          'process_batch_001>aggregate_results:worker_to_convergence',
          'process_batch_002>aggregate_results:worker_to_convergence',
          'process_batch_003>aggregate_results:worker_to_convergence',
        ],
      );
      const { rows: inputs } = await t.db.query<{ inputs: JsonObject }>(
        'SELECT inputs FROM tasker.workflow_steps WHERE workflow_step_uuid = $1',
        [(await stepRow(task, 'process_batch_002')).workflow_step_uuid],
      );
      assert.deepEqual(inputs[0]?.inputs, {
        operation: 'transform',
        cursor: { batch_id: '002', start_cursor: 10, end_cursor: 20, batch_size: 10 },
        batch_metadata: { cursor_field: 'id', failure_strategy: 'fail_fast' },
        is_no_op: false,
        __template_step_name: 'process_batch',
      });
      // a worker's claim maps it to its template step
      const workers = await claim(DATASET_QUEUE);
      assert.equal(workers.length, 3);
      const { rows: contexts } = await t.db.query<{ c: JsonObject }>(
        'SELECT tasker.step_execution_context($1) AS c',
        [workers[0]?.context?.step_uuid],
      );
      assert.equal(contexts[0]?.c.template_step_name, 'process_batch');
      for (const w of workers) await complete(DATASET_QUEUE, w, successResult({ items_processed: 10 }));
      const ran = await drain(DATASET_QUEUE, (name) => successResult({ step: name }));
      assert.deepEqual(ran, ['aggregate_results']);
      assert.equal(await task.taskState(), 'complete');
    });

    it('batch: no_batches creates the no-op placeholder _000 and the convergence', async () => {
      const { task, analyze } = await toAnalyzer();
      await complete(
        DATASET_QUEUE,
        analyze,
        successResult({ batch_processing_outcome: { type: 'no_batches' } }),
      );
      assert.deepEqual([...(await steps(task)).keys()].sort(), [
        'aggregate_results',
        'analyze_dataset',
        'process_batch_000',
      ]);
      const { rows } = await t.db.query<{ inputs: JsonObject }>(
        'SELECT inputs FROM tasker.workflow_steps WHERE workflow_step_uuid = $1',
        [(await stepRow(task, 'process_batch_000')).workflow_step_uuid],
      );
      assert.equal(rows[0]?.inputs.is_no_op, true);
      assert.deepEqual(rows[0]?.inputs.cursor, {
        batch_id: '000',
        start_cursor: 0,
        end_cursor: 0,
        batch_size: 0,
      });
      const ran = await drain(DATASET_QUEUE, (name) => successResult({ step: name }));
      assert.deepEqual(ran, ['process_batch_000', 'aggregate_results']);
      assert.equal(await task.taskState(), 'complete');
    });

    it('batch: a redelivered batchable result creates nothing twice', async () => {
      const { task, analyze } = await toAnalyzer();
      await complete(DATASET_QUEUE, analyze, batches(cursors(2)), false);
      await pgmq.send(RESULTS, {
        task_uuid: task.uuid,
        step_uuid: analyze.context?.step_uuid,
        correlation_id: task.created.correlationId,
      });
      const { rows: processed } = await t.db.query<{ outcome: string }>(
        'SELECT outcome FROM tasker.process_step_results($1, NULL, 20, 0, $2, 50)',
        [RESULTS, worker],
      );
      assert.deepEqual(processed.map((row) => row.outcome).sort(), ['applied', 'duplicate']);
      const { rows } = await t.db.query<{ r: JsonObject }>(
        'SELECT tasker.process_batch_outcome($1, $2) AS r',
        [analyze.context?.step_uuid, worker],
      );
      assert.deepEqual(rows[0]?.r, { ok: true, created: [], already_processed: true });
      assert.equal((await steps(task)).size, 4);
      assert.equal((await edges(task)).length, 4);
      await drain(DATASET_QUEUE, (name) => successResult({ step: name }));
      assert.equal(await task.taskState(), 'complete');
    });

    const invalidBatches: Array<[string, JsonObject, string]> = [
      [
        'a worker template that is not a batch_worker',
        batches(cursors(1), { worker_template_name: 'aggregate_results' }),
        'invalid_worker_template',
      ],
      ['no cursor configs', batches([]), 'malformed_outcome'],
      ['a worker count that does not match', batches(cursors(2), { worker_count: 3 }), 'malformed_outcome'],
      ['a repeated batch id', batches([...cursors(1), ...cursors(1)]), 'malformed_outcome'],
      [
        'a batch id that cannot name a step',
        batches([{ batch_id: 'a b', start_cursor: 0, end_cursor: 1 }]),
        'malformed_outcome',
      ],
      ['no outcome at all', successResult({ rows: 10 }), 'missing_outcome'],
    ];
    for (const [label, results, code] of invalidBatches) {
      it(`batch: fails the batchable step permanently on ${label} (${code})`, async () => {
        const { task, analyze } = await toAnalyzer();
        await complete(DATASET_QUEUE, analyze, results);
        const row = await stepRow(task, 'analyze_dataset');
        assert.equal(row.current_state, 'error');
        assert.equal(row.results.error?.error_type, 'invalid_batchable_outcome');
        assert.equal(row.results.error?.context?.code, code);
        assert.equal((await steps(task)).size, 1, 'nothing created');
        assert.equal(await task.taskState(), 'error');
      });
    }

    it('gives the convergence only the created dependencies (one branch of two)', async () => {
      const task = await start(nested, {});
      await drain(NESTED_QUEUE, (name) =>
        name === 'decide' ? decision(createSteps(['left'])) : successResult({ step: name }),
      );
      assert.deepEqual([...(await steps(task)).keys()].sort(), [
        'after_join',
        'decide',
        'join',
        'left',
        'left_more',
        'start',
      ]);
      assert.ok((await edges(task)).includes('left_more>join'));
      assert.equal(await task.taskState(), 'complete');
    });
  });
}
