/**
 * `tasker.task_ready_step_count` (the lean count discovery uses) must agree with the readiness rows
 * (`step_readiness_rows`) on every state a task can reach. A seeded random walk drives tasks of two
 * shapes through completions, retryable and permanent failures, retries, elapsed backoffs, resets
 * and manual resolutions, comparing both after every move.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager } from './lifecycle.ts';

/** mulberry32: a small deterministic generator, so a failure replays exactly. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function agree(task: LifecycleTask, what: string): Promise<void> {
  const { rows } = await task.db.query<{ rows_count: number; lean: number }>(
    `SELECT (SELECT count(*)::integer FROM tasker.step_readiness_rows(ARRAY[$1::uuid]) s WHERE s.ready_for_execution) AS rows_count,
            tasker.task_ready_step_count($1) AS lean`,
    [task.uuid],
  );
  assert.equal(rows[0]?.lean, rows[0]?.rows_count, what);
}

for (const backend of BACKENDS) {
  describe(`readiness count equivalence (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
    });
    after(() => t.dispose());

    for (const [shape, ref] of [
      ['diamond', 'diamond_workflow_ts/parallel_computation_ts'],
      ['mixed DAG', 'rust_e2e_mixed_dag/complex_dag'],
    ] as const) {
      it(`agrees on every state of a random walk over a ${shape}`, async () => {
        const registered = await manager.registerExample(ref);
        const next = random(shape.length * 7919);
        const seen = new Set<string>();
        for (let walk = 0; walk < 6; walk++) {
          const task = await manager.createTask(registered, { walk });
          await agree(task, 'at creation');
          for (let move = 0; move < 25; move++) {
            const readiness = await task.readiness();
            // steps that can still move, when there are any
            const open = task
              .stepNames()
              .filter(
                (step) => !['complete', 'resolved_manually'].includes(readiness.of(step).current_state),
              );
            const names = open.length > 0 ? open : task.stepNames();
            const name = names[Math.floor(next() * names.length)] ?? '';
            const state = readiness.of(name).current_state;
            const ready = readiness.ready();
            const choice = next();
            let action = 'none';
            if (ready.includes(name) && choice < 0.5) {
              action = 'complete';
              await task.completeStep(name, { move });
            } else if (ready.includes(name) && choice < 0.7) {
              action = 'retryable failure';
              await task.failStep(name, { retryable: true, backoffSeconds: 60 });
            } else if (ready.includes(name) && choice < 0.8) {
              action = 'permanent failure';
              await task.failStep(name, { retryable: false });
            } else if (state === 'waiting_for_retry' && choice < 0.5) {
              action = 'elapse backoff';
              await task.elapseBackoff(name);
            } else if (state === 'waiting_for_retry') {
              action = 'retry';
              await task.retryStep(name);
            } else if (state === 'error' && choice < 0.5) {
              action = 'reset for retry';
              await task.resetForRetry(name);
            } else if (choice > 0.95) {
              action = 'resolve manually';
              await task.resolveManually(name);
            }
            seen.add(action);
            await agree(task, `walk ${walk}, move ${move}: ${action} ${name} (was ${state})`);
          }
        }
        // the walk must have visited the interesting states, or it proves little
        for (const action of [
          'complete',
          'retryable failure',
          'permanent failure',
          'elapse backoff',
          'retry',
        ]) {
          assert.ok(seen.has(action), `the walk never did: ${action} (did: ${[...seen].join(', ')})`);
        }
      });
    }
  });
}
