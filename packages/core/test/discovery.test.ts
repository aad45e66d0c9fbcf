/**
 * Discovery must find every eligible task however many idle ones exist: idle waiting tasks, stale
 * ones and blocked ones must not crowd out a pending task or a task whose retry is due.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager } from './lifecycle.ts';

/** pending → … → steps_in_process, the state a task is in while its steps run. */
async function startTask(task: LifecycleTask): Promise<void> {
  assert.ok(await task.transitionTask('start', 'initializing', 'pending'));
  assert.ok(await task.transitionTask('ready_steps_found', 'enqueuing_steps', 'initializing'));
  assert.ok(await task.transitionTask('steps_enqueued', 'steps_in_process', 'enqueuing_steps'));
}

for (const backend of BACKENDS) {
  describe(`discovery (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let linear: RegisteredTemplate;
    let diamond: RegisteredTemplate;
    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      linear = await manager.registerExample('linear_workflow_ts/mathematical_sequence_ts');
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
    });
    after(() => t.dispose());
    beforeEach(async () => {
      // every test starts with no discoverable task: park the previous tests' tasks as complete
      await t.db.exec(`UPDATE tasker.tasks SET current_state = 'complete'`);
    });

    async function discovered(limit = 5): Promise<string[]> {
      const { rows } = await t.db.query<{ task_uuid: string }>(
        'SELECT task_uuid FROM tasker.get_next_ready_tasks($1)',
        [limit],
      );
      return rows.map((row) => row.task_uuid);
    }

    it('finds a new pending task behind 60 tasks whose retries are not due', async () => {
      for (let n = 0; n < 60; n++) {
        const task = await manager.createTask(linear, { n });
        await startTask(task);
        await task.failStep('linear_step_1', { retryable: true, backoffSeconds: 3600 });
        assert.ok(await task.transitionTask('step_failed', 'waiting_for_retry', 'steps_in_process'));
      }
      const fresh = await manager.createTask(linear, { fresh: true });
      assert.deepEqual(await discovered(), [fresh.uuid]);
    });

    it('finds a due retry behind 60 stale waiting tasks', async () => {
      for (let n = 0; n < 60; n++) {
        const task = await manager.createTask(linear, { stale: n });
        await startTask(task);
        await task.failStep('linear_step_1', { retryable: true, backoffSeconds: 1 });
        await task.elapseBackoff('linear_step_1');
        assert.ok(await task.transitionTask('step_failed', 'waiting_for_retry', 'steps_in_process'));
      }
      await t.db.exec(
        `UPDATE tasker.tasks SET state_entered_at = now() - interval '2 hours' WHERE current_state = 'waiting_for_retry'`,
      );
      const due = await manager.createTask(linear, { due: true });
      await startTask(due);
      await due.failStep('linear_step_1', { retryable: true, backoffSeconds: 1 });
      await due.elapseBackoff('linear_step_1');
      assert.ok(await due.transitionTask('step_failed', 'waiting_for_retry', 'steps_in_process'));
      assert.deepEqual(await discovered(), [due.uuid]);
    });

    it('leaves a waiting task with a failed step alone even when another step is ready', async () => {
      const task = await manager.createTask(diamond, { blocked: true });
      await startTask(task);
      await task.completeStep('diamond_start_ts', {});
      await task.failStep('diamond_branch_b_ts', { retryable: false });
      assert.ok((await task.readiness()).ready().includes('diamond_branch_c_ts'));
      assert.ok(await task.transitionTask('step_completed', 'evaluating_results', 'steps_in_process'));
      assert.ok(
        await task.transitionTask('no_dependencies_ready', 'waiting_for_dependencies', 'evaluating_results'),
      );
      assert.deepEqual(await discovered(), []);
      // while a task with work and no failure is found
      const ok = await manager.createTask(diamond, { blocked: false });
      await startTask(ok);
      await ok.completeStep('diamond_start_ts', {});
      assert.ok(await ok.transitionTask('step_completed', 'evaluating_results', 'steps_in_process'));
      assert.ok(
        await ok.transitionTask('no_dependencies_ready', 'waiting_for_dependencies', 'evaluating_results'),
      );
      assert.deepEqual(await discovered(), [ok.uuid]);
    });

    it('records when a retry comes due, and forgets it on reset', async () => {
      const task = await manager.createTask(linear, { due: 'recorded' });
      await startTask(task);
      await task.failStep('linear_step_1', { retryable: true, backoffSeconds: 60 });
      const due = async () =>
        (
          await t.db.query<{ next_retry_at: Date | null; expected: Date | null }>(
            `SELECT next_retry_at, last_attempted_at + make_interval(secs => backoff_request_seconds) AS expected
             FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
            [task.stepUuid('linear_step_1')],
          )
        ).rows[0];
      const recorded = await due();
      assert.ok(recorded?.next_retry_at);
      assert.equal(recorded.next_retry_at.getTime(), recorded.expected?.getTime());
      await task.retryStep('linear_step_1');
      await task.failStep('linear_step_1', { retryable: false });
      await task.resetForRetry('linear_step_1');
      assert.equal((await due())?.next_retry_at, null);
    });

    it('orders by priority, then age, and honours the limit', async () => {
      const low = await manager.createTask(linear, { p: 'low' }, { request: { priority: 1 } });
      const high = await manager.createTask(linear, { p: 'high' }, { request: { priority: 50 } });
      const mid = await manager.createTask(linear, { p: 'mid' }, { request: { priority: 10 } });
      assert.deepEqual(await discovered(), [high.uuid, mid.uuid, low.uuid]);
      assert.deepEqual(await discovered(2), [high.uuid, mid.uuid]);
    });
  });
}
