/**
 * `failure_strategy` of a batch worker's `batch_config` (0007 `apply_batch_failure_strategy`, the
 * isolate rule of 0006 `evaluate_task`), driven through the real hops (claim_step_messages,
 * complete_step_message with the inline apply): what a worker's permanent failure does to the other
 * workers and to the convergence step.
 *
 *   continue_on_failure: the worker is recorded failed, then resolved by orchestration; the others
 *     and the convergence (which sees the failure) run; the task completes.
 *   fail_fast: every unfinished sibling and the convergence are cancelled at once; a running
 *     sibling's late result is dropped, a queued one is never claimed; the task ends in error at once.
 *   isolate: the worker stays in error; the others are still claimed and finish; the convergence
 *     waits; the task is blocked_by_failures (not error) until an operator resolves the worker and
 *     resumes it, and then completes.
 * A retryable failure with attempts left is retried under every strategy.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { JsonObject, RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { createCoreDatabase } from './db.ts';
import { type Claim, claimMessages, completeMessage } from './hops.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

const RESULTS = 'orchestration_step_results';
const QUEUE = 'worker_batch_strategy_test_queue';
const STRATEGIES = ['continue_on_failure', 'fail_fast', 'isolate'] as const;
type Strategy = (typeof STRATEGIES)[number];

function template(strategy: Strategy): string {
  return `
name: strategy_${strategy}
namespace_name: batch_strategy_test
version: 1.0.0
steps:
  - name: analyze
    type: batchable
    handler: { callable: T.Analyze, initialization: { worker_template_name: work } }
  - name: work
    type: batch_worker
    dependencies: [analyze]
    handler: { callable: T.Work }
    retry: { max_attempts: 2, backoff_base_ms: 100, max_backoff_ms: 1000 }
    batch_config: { batch_size: 10, worker_template: work, failure_strategy: ${strategy} }
  - name: collect
    type: deferred_convergence
    dependencies: [work]
    handler: { callable: T.Collect }
`;
}

function failure(message: string, retryable: boolean): JsonObject {
  return {
    success: false,
    status: 'error',
    result: {},
    error: { message, error_type: retryable ? 'RetryableError' : 'PermanentError', retryable },
    metadata: { execution_time_ms: 1, retryable },
  };
}

const BATCHES = successResult({
  batch_processing_outcome: {
    type: 'create_batches',
    worker_template_name: 'work',
    worker_count: 3,
    cursor_configs: ['001', '002', '003'].map((id, i) => ({
      batch_id: id,
      start_cursor: i * 10,
      end_cursor: (i + 1) * 10,
      batch_size: 10,
    })),
    total_items: 30,
  },
});

for (const backend of BACKENDS) {
  describe(`batch failure_strategy (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let pgmq: Pgmq;
    const registered = new Map<Strategy, RegisteredTemplate>();
    const worker = randomUUID();

    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue(RESULTS);
      await pgmq.createQueue(QUEUE);
      for (const strategy of STRATEGIES)
        registered.set(strategy, await manager.registerYaml(template(strategy)));
    });
    after(() => t.dispose());

    async function claim(limit = 20): Promise<Claim[]> {
      return claimMessages(t.db, QUEUE, worker, limit);
    }

    async function complete(c: Claim, results: JsonObject): Promise<boolean> {
      return completeMessage(t.db, QUEUE, worker, c, results);
    }

    async function states(task: LifecycleTask): Promise<Record<string, string>> {
      const { rows } = await t.db.query<{ name: string; current_state: string }>(
        `SELECT ns.name, ws.current_state FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid WHERE ws.task_uuid = $1
         ORDER BY ns.name`,
        [task.uuid],
      );
      return Object.fromEntries(rows.map((row) => [row.name, row.current_state]));
    }

    async function history(
      task: LifecycleTask,
      name: string,
    ): Promise<Array<{ to: string; metadata: JsonObject }>> {
      const { rows } = await t.db.query<{ to: string; metadata: JsonObject }>(
        `SELECT x.to_state AS to, x.metadata FROM tasker.workflow_step_transitions x
         JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = x.workflow_step_uuid
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
         WHERE ws.task_uuid = $1 AND ns.name = $2 ORDER BY x.sort_key`,
        [task.uuid, name],
      );
      return rows;
    }

    /**
     * A task of `strategy` with its analyzer completed (workers work_001…003) and `claimed` of the
     * workers claimed (in_progress; which ones is the queue's order): `workers` are those claims,
     * `queued` the names of the workers left enqueued.
     */
    async function started(strategy: Strategy, claimed: number) {
      await pgmq.purgeQueue(QUEUE);
      const task = await manager.createTask(registered.get(strategy) as RegisteredTemplate, {});
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      const [analyze] = await claim();
      assert.equal(analyze?.context?.step_name, 'analyze');
      assert.ok(await complete(analyze, BATCHES));
      const workers = claimed === 0 ? [] : await claim(claimed);
      assert.equal(workers.length, claimed);
      const names = workers.map((w) => w.context?.step_name ?? '');
      const queued = ['work_001', 'work_002', 'work_003'].filter((name) => !names.includes(name));
      return { task, workers, names, queued };
    }

    it('continue_on_failure: the failed worker is resolved, the others and the convergence run, the task completes', async () => {
      const { task, workers, names } = await started('continue_on_failure', 3);
      const [w1, w2, w3] = workers as [Claim, Claim, Claim];
      const [n1, n2, n3] = names as [string, string, string];
      assert.ok(await complete(w1, successResult({ items: 10 })));
      assert.ok(await complete(w2, failure('batch is corrupt', false)));
      assert.deepEqual(await states(task), {
        analyze: 'complete',
        collect: 'pending',
        [n1]: 'complete',
        [n2]: 'resolved_manually',
        [n3]: 'in_progress',
      });
      assert.deepEqual(
        (await history(task, n2)).slice(-2).map((x) => [x.to, x.metadata.reason ?? null]),
        [
          ['error', 'not_retryable'],
          ['resolved_manually', 'batch_failure_strategy'],
        ],
      );
      assert.equal(await task.taskState(), 'steps_in_process');
      assert.ok(await complete(w3, successResult({ items: 10 })));
      const [collect] = await claim();
      assert.equal(collect?.context?.step_name, 'collect');
      // the aggregator sees the failed worker's error among its dependency results
      const failed = collect?.context?.dependency_results[n2];
      assert.equal(failed?.success, false);
      assert.equal((failed?.error as JsonObject | undefined)?.message, 'batch is corrupt');
      assert.equal(collect?.context?.dependency_results[n1]?.success, true);
      assert.ok(await complete(collect as Claim, successResult({ failed_batches: 1 })));
      assert.equal(await task.taskState(), 'complete');
    });

    it('fail_fast: unfinished siblings and the convergence are cancelled, the task fails at once', async () => {
      const { task, workers, names, queued } = await started('fail_fast', 2);
      const [w1, w2] = workers as [Claim, Claim];
      const [n1, n2] = names as [string, string];
      const [n3] = queued as [string];
      assert.ok(await complete(w2, failure('batch is corrupt', false)));
      assert.deepEqual(await states(task), {
        analyze: 'complete',
        collect: 'cancelled',
        [n1]: 'cancelled',
        [n2]: 'error',
        [n3]: 'cancelled',
      });
      assert.equal(await task.taskState(), 'error');
      assert.equal((await history(task, n3)).at(-1)?.metadata.reason, 'batch_fail_fast');
      // the running sibling's late result is dropped; the queued one is never claimed
      assert.equal(await complete(w1, successResult({ items: 10 })), false);
      assert.equal((await states(task))[n1], 'cancelled');
      assert.deepEqual(
        (await claim()).map((c) => c.outcome),
        ['stale'],
      );
      assert.equal(await task.taskState(), 'error');
    });

    it('fail_fast: a worker that already completed keeps its result', async () => {
      const { task, workers, names } = await started('fail_fast', 3);
      const [w1, w2] = workers as [Claim, Claim, Claim];
      const [n1, n2, n3] = names as [string, string, string];
      assert.ok(await complete(w1, successResult({ items: 10 })));
      assert.ok(await complete(w2, failure('boom', false)));
      assert.deepEqual(await states(task), {
        analyze: 'complete',
        collect: 'cancelled',
        [n1]: 'complete',
        [n2]: 'error',
        [n3]: 'cancelled',
      });
      assert.equal(await task.taskState(), 'error');
    });

    it('isolate: the failed worker waits for an operator, the others finish, the task is blocked until resolved', async () => {
      const { task, workers, names, queued } = await started('isolate', 2);
      const [w1, w2] = workers as [Claim, Claim];
      const [n1, n2] = names as [string, string];
      const [n3] = queued as [string];
      assert.ok(await complete(w2, failure('batch is corrupt', false)));
      assert.equal(await task.taskState(), 'steps_in_process');
      assert.ok(await complete(w1, successResult({ items: 10 })));
      // the sibling still queued is claimed and runs
      const [w3] = await claim();
      assert.equal(w3?.outcome, 'claimed');
      assert.equal(w3?.context?.step_name, n3);
      assert.ok(await complete(w3 as Claim, successResult({ items: 10 })));
      assert.deepEqual(await states(task), {
        analyze: 'complete',
        collect: 'pending',
        [n1]: 'complete',
        [n2]: 'error',
        [n3]: 'complete',
      });
      assert.equal(await task.taskState(), 'blocked_by_failures');
      // evaluating again changes nothing: no give_up
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      assert.equal(await task.taskState(), 'blocked_by_failures');
      assert.deepEqual(await claim(), []);
      // the operator resolves the worker and resumes the task: the convergence runs
      await t.db.query(
        `SELECT tasker.transition_step_state($1, 'error', 'resolve_manually', 'resolved_manually', $2)`,
        [w2.context?.step_uuid, worker],
      );
      assert.ok(await task.transitionTask('resume', 'evaluating_results'));
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      const [collect] = await claim();
      assert.equal(collect?.context?.step_name, 'collect');
      assert.ok(await complete(collect as Claim, successResult({ done: true })));
      assert.equal(await task.taskState(), 'complete');
    });

    it('isolate: a step that is not a batch worker still fails the task as usual', async () => {
      // the analyzer's own permanent failure is an ordinary failure
      await pgmq.purgeQueue(QUEUE);
      const task = await manager.createTask(registered.get('isolate') as RegisteredTemplate, {});
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      const [analyze] = await claim();
      assert.ok(await complete(analyze as Claim, failure('no data', false)));
      assert.equal(await task.taskState(), 'error');
    });

    for (const strategy of STRATEGIES) {
      it(`${strategy}: a retryable failure with attempts left is retried, siblings untouched`, async () => {
        const { task, workers, names } = await started(strategy, 3);
        const [n1, n2, n3] = names as [string, string, string];
        assert.ok(await complete(workers[1] as Claim, failure('flaky', true)));
        assert.deepEqual(await states(task), {
          analyze: 'complete',
          collect: 'pending',
          [n1]: 'in_progress',
          [n2]: 'waiting_for_retry',
          [n3]: 'in_progress',
        });
      });
    }
  });
}
