/**
 * Checkpoint yields end to end (reference C §1.8, §6.4 #28 and #29): a batch worker yields a
 * checkpoint after every chunk; the worker stores it (renewing the lease) and runs the handler again
 * under the same claim, without using an attempt; after a real failure the retry resumes from the
 * last stored checkpoint, so no item is processed twice. A checkpoint that cannot be stored in time
 * is a retryable `checkpoint_error` (AUDIT W-1); a handler yielding past the per-claim limit fails.
 * An engine and a worker in one process, on each backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '@tasker/core';
import type { Database } from '@tasker/db';
import { BACKENDS } from '@tasker/db/testing';
import { HandlerRegistry, TaskerWorker, type TaskerWorkerOptions } from '@tasker/worker';
import { registerExampleHandlers } from '../../examples/handlers/index.ts';
import { exampleTemplates, type Finished, System, type SystemOptions } from './support/system.ts';

const OPTIONS: SystemOptions = {
  worker: { mode: 'EventDrivenOnly' },
  engine: { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
};

const NS = 'ts_e2e_checkpoint';
const NAME = 'checkpoint_yield_test_ts';
const WORKER = 'checkpoint_yield_batch_ts_001';

type Checkpoint = {
  cursor: unknown;
  items_processed: number;
  timestamp: string;
  accumulated_results: unknown;
  history: Array<{ cursor: unknown; timestamp: string }>;
};

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

function resultOf(f: Finished, step: string): Record<string, unknown> {
  const result = f.steps.get(step)?.results?.result;
  assert.ok(result, `${step} has a result`);
  return result;
}

for (const backend of BACKENDS) {
  describe(`checkpoint yields end to end (${backend})`, () => {
    let system: System;
    before(async () => {
      system = await System.start(backend, OPTIONS);
    });
    after(() => system.stop());

    async function checkpointOf(f: Finished, step: string): Promise<Checkpoint | null> {
      const { rows } = await system.t.db.query<{ checkpoint: Checkpoint | null }>(
        `SELECT ws.checkpoint FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
         WHERE ws.task_uuid = $1 AND ns.name = $2`,
        [f.taskUuid, step],
      );
      return rows[0]?.checkpoint ?? null;
    }

    it('#28 happy path: 100 items, 25 per checkpoint ⇒ 3 checkpoints, one attempt, 100 processed', async () => {
      const before = system.worker.metrics().checkpoints.stored;
      const f = await system.run(NS, NAME, { total_items: 100, items_per_checkpoint: 25 });
      assert.equal(f.state, 'complete');
      assert.deepEqual([...f.steps.keys()].sort(), ['aggregate_results_ts', 'analyze_items_ts', WORKER]);
      for (const [name, row] of f.steps) {
        assert.equal(row.current_state, 'complete', `${name} is complete`);
        assert.equal(row.attempts, 1, `${name}: checkpoint yields use no attempt`);
      }
      const aggregate = resultOf(f, 'aggregate_results_ts');
      assert.equal(aggregate.total_processed, 100);
      assert.ok(Number(aggregate.checkpoints_used) >= 3);
      assert.equal(aggregate.checkpoints_used, 3);
      assert.equal(aggregate.duplicate_items, 0);
      assert.equal(aggregate.value_sum, 5050);
      assert.equal(aggregate.test_passed, true);
      const worker = resultOf(f, WORKER);
      assert.deepEqual(worker.item_ids, range(0, 100));
      assert.deepEqual(worker.resumes, []);
      const checkpoint = await checkpointOf(f, WORKER);
      assert.ok(checkpoint);
      assert.equal(checkpoint.cursor, 75);
      assert.equal(checkpoint.items_processed, 75);
      assert.deepEqual(
        checkpoint.history.map((h) => h.cursor),
        [25, 50, 75],
      );
      assert.equal(system.worker.metrics().checkpoints.stored - before, 3);
      // the yields were never stored as results: one result audit row per step
      const { rows } = await system.t.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tasker.workflow_step_result_audit WHERE task_uuid = $1',
        [f.taskUuid],
      );
      assert.equal(rows[0]?.n, 3);
    });

    it('#28 transient failure after 50 items: 2 attempts, resumed at 50, 100 processed once', async () => {
      const f = await system.run(NS, NAME, {
        total_items: 100,
        items_per_checkpoint: 25,
        fail_after_items: 50,
        fail_on_attempt: 1,
      });
      assert.equal(f.state, 'complete');
      const row = f.steps.get(WORKER);
      assert.equal(row?.current_state, 'complete');
      assert.equal(row?.attempts, 2);
      const worker = resultOf(f, WORKER);
      assert.deepEqual(worker.resumes, [{ attempt: 2, resumed_from: 50 }]);
      assert.deepEqual(worker.item_ids, range(0, 100));
      assert.equal(worker.attempt, 2);
      const aggregate = resultOf(f, 'aggregate_results_ts');
      assert.equal(aggregate.total_processed, 100);
      assert.equal(aggregate.checkpoints_used, 3);
      assert.equal(aggregate.duplicate_items, 0);
      assert.equal(aggregate.test_passed, true);
    });

    it('#28 permanent failure: the task ends in error, the worker used at most 3 attempts', async () => {
      const f = await system.run(NS, NAME, {
        total_items: 100,
        items_per_checkpoint: 25,
        fail_after_items: 50,
        permanent_failure: true,
      });
      assert.equal(f.state, 'error');
      const row = f.steps.get(WORKER);
      // error, or resolved_manually once continue_on_failure has let the aggregator run (and fail)
      assert.ok(['error', 'resolved_manually'].includes(row?.current_state ?? ''), row?.current_state);
      assert.ok((row?.attempts ?? 0) <= 3);
      assert.equal(row?.attempts, 1);
      assert.equal(row?.results?.error?.error_type, 'permanent_error');
      assert.notEqual(f.steps.get('aggregate_results_ts')?.current_state, 'complete');
      // the progress before the failure stays stored
      const checkpoint = await checkpointOf(f, WORKER);
      assert.equal(checkpoint?.cursor, 50);
    });

    it('#28 zero items: no batches, the no-op placeholder, the aggregator reports nothing processed', async () => {
      const f = await system.run(NS, NAME, { total_items: 0, items_per_checkpoint: 25 });
      assert.equal(f.state, 'complete');
      assert.deepEqual([...f.steps.keys()].sort(), [
        'aggregate_results_ts',
        'analyze_items_ts',
        'checkpoint_yield_batch_ts_000',
      ]);
      assert.equal(resultOf(f, 'checkpoint_yield_batch_ts_000').no_op, true);
      const aggregate = resultOf(f, 'aggregate_results_ts');
      assert.equal(aggregate.scenario, 'no_batches');
      assert.equal(aggregate.total_processed, 0);
      assert.equal(aggregate.test_passed, true);
      assert.equal(await checkpointOf(f, 'checkpoint_yield_batch_ts_000'), null);
    });

    it('#28 single batch: fewer items than a checkpoint ⇒ done in one run, no checkpoint', async () => {
      const f = await system.run(NS, NAME, { total_items: 20, items_per_checkpoint: 25 });
      assert.equal(f.state, 'complete');
      assert.equal(f.steps.get(WORKER)?.attempts, 1);
      const aggregate = resultOf(f, 'aggregate_results_ts');
      assert.equal(aggregate.worker_count, 1);
      assert.equal(aggregate.total_processed, 20);
      assert.equal(aggregate.checkpoints_used, 0);
      assert.equal(aggregate.test_passed, true);
      assert.equal(await checkpointOf(f, WORKER), null);
    });

    it('#29 batch resumption: fails after its checkpoint at 50, resumes at 50, nothing twice', async () => {
      const f = await system.run('rust_e2e_batch_retry', 'batch_resumption_test', { dataset_size: 100 });
      assert.equal(f.state, 'complete');
      assert.deepEqual([...f.steps.keys()].sort(), ['analyze_dataset', 'checkpoint_fail_batch_001']);
      const row = f.steps.get('checkpoint_fail_batch_001');
      assert.equal(row?.current_state, 'complete');
      assert.equal(row?.attempts, 2);
      const worker = resultOf(f, 'checkpoint_fail_batch_001');
      assert.deepEqual(worker.resumes, [{ attempt: 2, resumed_from: 50 }]);
      assert.deepEqual(worker.item_ids, range(0, 100), 'every item once, in order');
      assert.equal(worker.duplicate_items, 0);
      assert.equal(worker.items_processed, 100);
      const checkpoint = await checkpointOf(f, 'checkpoint_fail_batch_001');
      assert.deepEqual(
        checkpoint?.history.map((h) => h.cursor),
        [25, 50, 75],
      );
    });
  });
}

/** `db` whose first `checkpoint_step` call waits `delayMs` before it is sent. */
function slowFirstCheckpoint(db: Database, delayMs: number): Database {
  let calls = 0;
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'query') {
        return async (sql: string, params?: readonly unknown[]) => {
          if (sql.includes('checkpoint_step') && calls++ === 0) await sleep(delayMs);
          return target.query(sql, params);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

for (const backend of BACKENDS) {
  describe(`checkpoint limits end to end (${backend})`, () => {
    let system: System;
    let worker: TaskerWorker | undefined;
    before(async () => {
      system = await System.start(backend, OPTIONS);
      // the tests run their own worker
      await system.worker.stop();
    });
    after(async () => {
      await worker?.stop();
      await system.stop();
    });

    async function startWorker(db: Database, options: Partial<TaskerWorkerOptions>): Promise<TaskerWorker> {
      await worker?.stop();
      const handlers = new HandlerRegistry();
      registerExampleHandlers(handlers);
      worker = new TaskerWorker({
        db,
        handlers,
        templates: await exampleTemplates(),
        mode: 'EventDrivenOnly',
        ...options,
      });
      await worker.start();
      return worker;
    }

    it('a checkpoint not stored in time fails the attempt as checkpoint_error; the retry runs it all', async () => {
      const w = await startWorker(slowFirstCheckpoint(system.t.db, 1500), { checkpointTimeoutMs: 200 });
      const f = await system.run('rust_e2e_batch_retry', 'batch_resumption_test', { dataset_size: 100 });
      assert.equal(f.state, 'complete');
      const row = f.steps.get('checkpoint_fail_batch_001');
      assert.equal(row?.attempts, 2);
      assert.equal(w.metrics().checkpoints.errors, 1);
      // attempt 1 failed at its first checkpoint (nothing stored), attempt 2 ran from the start
      const result = resultOf(f, 'checkpoint_fail_batch_001');
      assert.deepEqual(result.resumes, []);
      assert.deepEqual(result.item_ids, range(0, 100));
      const { rows } = await system.t.db.query<{ success: boolean }>(
        `SELECT a.success FROM tasker.workflow_step_result_audit a
         JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = a.workflow_step_uuid
         WHERE ws.task_uuid = $1 AND ws.inputs ->> '__template_step_name' = 'checkpoint_fail_batch'
         ORDER BY a.recorded_at`,
        [f.taskUuid],
      );
      assert.deepEqual(
        rows.map((r) => r.success),
        [false, true],
      );
      // the late write of attempt 1 (cursor 25) found its claim gone: only attempt 2's checkpoints
      await sleep(1500);
      const stored = await system.t.db.query<{ cursors: unknown[] }>(
        `SELECT jsonb_path_query_array(ws.checkpoint, '$.history[*].cursor') AS cursors
         FROM tasker.workflow_steps ws WHERE ws.task_uuid = $1 AND ws.checkpoint IS NOT NULL`,
        [f.taskUuid],
      );
      assert.deepEqual(stored.rows[0]?.cursors, [25, 50, 75]);
    });

    it('a handler yielding more than maxCheckpointYields under one claim fails permanently', async () => {
      const w = await startWorker(system.t.db, { maxCheckpointYields: 2 });
      const f = await system.run(NS, NAME, { total_items: 100, items_per_checkpoint: 25 });
      assert.equal(f.state, 'error');
      const row = f.steps.get(WORKER);
      assert.equal(row?.attempts, 1);
      assert.equal(row?.results?.error?.error_type, 'checkpoint_limit_exceeded');
      assert.equal(w.metrics().checkpoints.limitExceeded, 1);
      assert.equal(w.metrics().checkpoints.stored, 2);
    });
  });
}
