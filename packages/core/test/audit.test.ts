/**
 * The result audit row written with a worker's result: attribution fields come from the result, and
 * odd values in it cost the audit a field, never the result itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';
import { LifecycleTestManager } from './lifecycle.ts';

for (const backend of BACKENDS) {
  describe(`step result audit (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let linear: RegisteredTemplate;
    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      linear = await manager.registerExample('linear_workflow_ts/mathematical_sequence_ts');
    });
    after(() => t.dispose());

    const cases: [string, unknown, { success: boolean; execution_time_ms: number | null }][] = [
      [
        'a well-formed result',
        { success: true, result: {}, metadata: { execution_time_ms: 12 } },
        { success: true, execution_time_ms: 12 },
      ],
      [
        'a fractional time',
        { success: true, result: {}, metadata: { execution_time_ms: 12.5 } },
        { success: true, execution_time_ms: 13 },
      ],
      [
        'a huge time',
        { success: true, result: {}, metadata: { execution_time_ms: 1e20 } },
        { success: true, execution_time_ms: null },
      ],
      [
        'a string success',
        { success: 'ok', result: {}, metadata: { execution_time_ms: 'fast' } },
        { success: true, execution_time_ms: null },
      ],
      ['no metadata', { success: false }, { success: false, execution_time_ms: null }],
    ];
    for (const [what, results, expected] of cases) {
      it(`records ${what} and keeps the result`, async () => {
        const task = await manager.createTask(linear, { what });
        await task.enqueueStep('linear_step_1');
        await task.claimStep('linear_step_1');
        const step = task.stepUuid('linear_step_1');
        const { rows } = await t.db.query<{ ok: boolean }>(
          `SELECT tasker.transition_step_state($1, 'in_progress', 'enqueue_for_orchestration', 'enqueued_for_orchestration',
                                               NULL, '{}', $2::jsonb) AS ok`,
          [step, JSON.stringify(results)],
        );
        assert.equal(rows[0]?.ok, true);
        const audit = await t.db.query<{ success: boolean; execution_time_ms: number | null }>(
          'SELECT success, execution_time_ms FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = $1',
          [step],
        );
        assert.deepEqual(audit.rows, [expected]);
        const stored = await t.db.query<{ results: unknown }>(
          'SELECT results FROM tasker.workflow_steps WHERE workflow_step_uuid = $1',
          [step],
        );
        assert.deepEqual(stored.rows[0]?.results, results);
      });
    }
  });
}
