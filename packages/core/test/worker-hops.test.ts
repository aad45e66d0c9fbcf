/** The worker's hops (DESIGN §3): claim a step with its whole context, and complete it. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { createCoreDatabase } from './db.ts';
import { LifecycleTestManager } from './lifecycle.ts';

interface ClaimedContext {
  task_uuid: string;
  step_uuid: string;
  step_name: string;
  template_step_name: string;
  correlation_id: string;
  namespace: string;
  task_name: string;
  context: Record<string, unknown>;
  step_inputs: Record<string, unknown>;
  step_definition: { name: string; handler: { callable: string } } | null;
  dependency_results: Record<string, { result: unknown }>;
  retry_count: number;
  max_attempts: number;
  retryable: boolean;
  checkpoint: unknown;
}

const RESULTS = 'orchestration_step_results';

for (const backend of BACKENDS) {
  describe(`worker hops (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let pgmq: Pgmq;
    let diamond: RegisteredTemplate;
    const worker = randomUUID();
    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue(RESULTS);
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
    });
    after(() => t.dispose());

    async function claim(step: string): Promise<ClaimedContext | null> {
      const { rows } = await t.db.query<{ context: ClaimedContext | null }>(
        'SELECT tasker.claim_step($1, $2) AS context',
        [step, worker],
      );
      return rows[0]?.context ?? null;
    }

    async function complete(step: string, results: unknown): Promise<boolean> {
      const { rows } = await t.db.query<{ ok: boolean }>(
        'SELECT tasker.complete_step($1, $2, $3::jsonb) AS ok',
        [step, worker, JSON.stringify(results)],
      );
      return rows[0]?.ok === true;
    }

    it('claims an enqueued step once, with everything its handler needs', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await task.completeStep('diamond_start_ts', { value: 36 });
      await task.completeStep('diamond_branch_b_ts', { value: 1296 });
      await task.completeStep('diamond_branch_c_ts', { value: 46656 });
      await task.enqueueStep('diamond_end_ts');
      const step = task.stepUuid('diamond_end_ts');
      const context = await claim(step);
      assert.ok(context);
      assert.equal(context.task_uuid, task.uuid);
      assert.equal(context.step_uuid, step);
      assert.equal(context.step_name, 'diamond_end_ts');
      assert.equal(context.template_step_name, 'diamond_end_ts');
      assert.equal(context.correlation_id, task.created.correlationId);
      assert.equal(context.namespace, 'diamond_workflow_ts');
      assert.equal(context.context.even_number, 6);
      assert.equal(context.step_definition?.name, 'diamond_end_ts');
      assert.deepEqual(Object.keys(context.dependency_results).sort(), [
        'diamond_branch_b_ts',
        'diamond_branch_c_ts',
        'diamond_start_ts',
      ]);
      assert.deepEqual(context.dependency_results.diamond_start_ts?.result, { value: 36 });
      assert.equal(context.retry_count, 0);
      assert.equal(context.max_attempts, (await task.stepRow('diamond_end_ts')).max_attempts);
      assert.equal(await task.stepState('diamond_end_ts'), 'in_progress');
      assert.equal((await task.stepRow('diamond_end_ts')).attempts, 1);
      assert.equal(await claim(step), null, 'a second claim gets nothing');
    });

    it('claims nothing that is not enqueued', async () => {
      const task = await manager.createTask(diamond, { even_number: 8 });
      assert.equal(await claim(task.stepUuid('diamond_start_ts')), null, 'pending, never enqueued');
      assert.equal(await task.stepState('diamond_start_ts'), 'pending');
      assert.equal(await claim(randomUUID()), null, 'no such step');
    });

    it('lets exactly one of many concurrent claims win', async () => {
      const task = await manager.createTask(diamond, { even_number: 10 });
      await task.enqueueStep('diamond_start_ts');
      const step = task.stepUuid('diamond_start_ts');
      const claims = await Promise.all(Array.from({ length: 8 }, () => claim(step)));
      assert.equal(claims.filter((context) => context !== null).length, 1);
      assert.equal((await task.stepRow('diamond_start_ts')).attempts, 1);
    });

    it('completes a step: result stored, state moved and the pointer sent, together', async () => {
      await pgmq.purgeQueue(RESULTS);
      const task = await manager.createTask(diamond, { even_number: 12 });
      await task.enqueueStep('diamond_start_ts');
      const step = task.stepUuid('diamond_start_ts');
      await claim(step);
      const results = { success: true, result: { value: 144 }, metadata: { execution_time_ms: 3 } };
      assert.equal(await complete(step, results), true);
      assert.equal(await task.stepState('diamond_start_ts'), 'enqueued_for_orchestration');
      assert.deepEqual((await task.stepRow('diamond_start_ts')).results, results);
      const messages = await pgmq.read(RESULTS, { limit: 10 });
      assert.deepEqual(
        messages.map((m) => m.message),
        [{ task_uuid: task.uuid, step_uuid: step, correlation_id: task.created.correlationId }],
      );
      assert.equal(await complete(step, results), false, 'a duplicate completion changes nothing');
      assert.equal((await pgmq.metrics(RESULTS)).totalSent, messages[0]?.msgId);
    });

    it('hands a failure to orchestration as an error result', async () => {
      const task = await manager.createTask(diamond, { even_number: 14 });
      await task.enqueueStep('diamond_start_ts');
      const step = task.stepUuid('diamond_start_ts');
      await claim(step);
      assert.equal(
        await complete(step, { success: false, result: {}, error: { message: 'boom', retryable: true } }),
        true,
      );
      assert.equal(await task.stepState('diamond_start_ts'), 'enqueued_as_error_for_orchestration');
    });

    it('refuses a result without a boolean success and changes nothing', async () => {
      const task = await manager.createTask(diamond, { even_number: 16 });
      await task.enqueueStep('diamond_start_ts');
      const step = task.stepUuid('diamond_start_ts');
      await claim(step);
      await assert.rejects(complete(step, { success: 'yes' }), { code: 'TK003' });
      assert.equal(await task.stepState('diamond_start_ts'), 'in_progress');
    });

    it('keeps the step in progress when the result message cannot be sent', async () => {
      const task = await manager.createTask(diamond, { even_number: 18 });
      await task.enqueueStep('diamond_start_ts');
      const step = task.stepUuid('diamond_start_ts');
      await claim(step);
      await assert.rejects(
        t.db.query('SELECT tasker.complete_step($1, $2, $3::jsonb, $4)', [
          step,
          worker,
          JSON.stringify({ success: true, result: {} }),
          'missing_results_queue',
        ]),
        { code: 'TQ002' },
      );
      assert.equal(await task.stepState('diamond_start_ts'), 'in_progress');
      assert.equal((await task.stepRow('diamond_start_ts')).results, null);
    });
  });
}
