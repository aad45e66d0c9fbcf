/**
 * Concurrency of the compare-and-swap transitions, task discovery and task creation (reference
 * A §5.2, §5.3, §2.4). On PostgreSQL the calls really race on separate pool connections; PGlite has
 * one connection, so the same calls are issued concurrently in-process and must reach the same end
 * state.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Database, Queryable } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { ConflictError } from '../src/errors.ts';
import { type RegisteredTemplate, TemplateRegistry } from '../src/registry.ts';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager } from './lifecycle.ts';

type DiscoveredRow = { task_uuid: string; current_state: string; priority: number };

async function discover(db: Queryable, limit: number): Promise<DiscoveredRow[]> {
  const { rows } = await db.query<DiscoveredRow>(
    'SELECT task_uuid, current_state, priority FROM tasker.get_next_ready_tasks($1)',
    [limit],
  );
  return rows;
}

/** The claim that makes discovery exclusive: pending → initializing, by CAS. */
async function claimTask(db: Queryable, taskUuid: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(
    `SELECT tasker.transition_task_state($1, 'pending', 'start', 'initializing') AS ok`,
    [taskUuid],
  );
  return rows[0]?.ok === true;
}

function uuids(rows: readonly DiscoveredRow[]): string[] {
  return rows.map((row) => row.task_uuid).sort();
}

for (const backend of BACKENDS) {
  describe(`concurrency (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;
    let manager: LifecycleTestManager;
    let linear: RegisteredTemplate;
    let diamond: RegisteredTemplate;

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
      manager = new LifecycleTestManager(db);
      linear = await manager.registerExample('linear_workflow_ts/mathematical_sequence_ts');
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
    });

    after(async () => {
      await test?.dispose();
    });

    /** Cancels every pending task left by earlier tests, so discovery sees only this test's tasks. */
    async function cancelPendingTasks(): Promise<void> {
      await db.query(
        `SELECT tasker.transition_task_state(task_uuid, 'pending', 'cancel', 'cancelled')
         FROM tasker.tasks WHERE current_state = 'pending'`,
      );
    }

    async function pendingTasks(count: number, priority: number): Promise<LifecycleTask[]> {
      const tasks: LifecycleTask[] = [];
      for (let i = 0; i < count; i++) {
        tasks.push(await manager.createTask(linear, { even_number: 2 * (i + 1) }, { request: { priority } }));
      }
      return tasks;
    }

    it('two writers CAS the same task pending → initializing at once: exactly one wins', async () => {
      for (let round = 0; round < 5; round++) {
        const [task] = await pendingTasks(1, 0);
        assert.ok(task);
        const results = await Promise.all([claimTask(db, task.uuid), claimTask(db, task.uuid)]);
        assert.deepEqual(
          results.filter((ok) => ok),
          [true],
        );
        assert.equal(await task.taskState(), 'initializing');
        const { rows } = await db.query<{ n: number; current: number }>(
          `SELECT count(*)::int AS n, count(*) FILTER (WHERE most_recent)::int AS current
           FROM tasker.task_transitions WHERE task_uuid = $1`,
          [task.uuid],
        );
        assert.deepEqual(rows[0], { n: 2, current: 1 });
      }
    });

    it('10 concurrent claims of one enqueued step: exactly one wins, attempts = 1', async () => {
      const [task] = await pendingTasks(1, 0);
      assert.ok(task);
      await task.enqueueStep('linear_step_1');
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          task.transitionStep('linear_step_1', 'start', 'in_progress', { from: 'enqueued' }),
        ),
      );
      assert.equal(results.filter((ok) => ok).length, 1);
      const row = await task.stepRow('linear_step_1');
      assert.equal(row.current_state, 'in_progress');
      assert.equal(row.attempts, 1);
      assert.equal(row.in_process, true);
      const transitions = await task.stepTransitions('linear_step_1');
      assert.deepEqual(
        transitions.map((t) => t.to_state),
        ['pending', 'enqueued', 'in_progress'],
      );
      assert.equal(transitions.filter((t) => t.most_recent).length, 1);
    });

    it('concurrent result reports for one claimed step: exactly one is applied', async () => {
      const [task] = await pendingTasks(1, 0);
      assert.ok(task);
      await task.enqueueStep('linear_step_1');
      await task.claimStep('linear_step_1');
      const results = await Promise.all([
        task.transitionStep('linear_step_1', 'enqueue_for_orchestration', 'enqueued_for_orchestration', {
          from: 'in_progress',
          results: { success: true, result: { n: 1 } },
        }),
        task.transitionStep(
          'linear_step_1',
          'enqueue_as_error_for_orchestration',
          'enqueued_as_error_for_orchestration',
          { from: 'in_progress', results: { success: false } },
        ),
        task.transitionStep('linear_step_1', 'enqueue_for_orchestration', 'enqueued_for_orchestration', {
          from: 'in_progress',
          results: { success: true, result: { n: 2 } },
        }),
      ]);
      assert.equal(results.filter((ok) => ok).length, 1);
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = $1',
        [task.stepUuid('linear_step_1')],
      );
      assert.equal(rows[0]?.n, 1);
    });

    it('concurrent discovery on two connections gets disjoint task sets', {
      skip: backend === 'pglite' ? 'PGlite runs one transaction at a time' : false,
    }, async () => {
      await cancelPendingTasks();
      const tasks = await pendingTasks(6, 100);
      const gate = Promise.withResolvers<void>();
      const firstFound = Promise.withResolvers<DiscoveredRow[]>();
      // the first transaction discovers, then stays open (holding its claims) until the second returned
      const first = db.transaction(async (tx) => {
        const rows = await discover(tx, 3);
        firstFound.resolve(rows);
        await gate.promise;
        return rows;
      });
      first.catch((error: unknown) => firstFound.reject(error));
      let second: DiscoveredRow[];
      try {
        await firstFound.promise;
        second = await db.transaction((tx) => discover(tx, 3));
      } finally {
        gate.resolve();
      }
      const firstRows = await first;
      assert.equal(firstRows.length, 3);
      assert.equal(second.length, 3);
      const overlap = uuids(firstRows).filter((uuid) => uuids(second).includes(uuid));
      assert.deepEqual(overlap, [], 'disjoint task sets');
      assert.deepEqual([...uuids(firstRows), ...uuids(second)].sort(), tasks.map((task) => task.uuid).sort());
      await cancelPendingTasks();
    });

    it('concurrent discover-and-claim transactions never claim a task twice', async () => {
      await cancelPendingTasks();
      const tasks = await pendingTasks(6, 100);
      const run = () =>
        db.transaction(async (tx) => {
          const claimed: string[] = [];
          for (const row of await discover(tx, 3)) {
            if (await claimTask(tx, row.task_uuid)) claimed.push(row.task_uuid);
          }
          return claimed;
        });
      const [a, b] = await Promise.all([run(), run()]);
      assert.equal(a.length, 3);
      assert.equal(b.length, 3);
      assert.deepEqual(
        a.filter((uuid) => b.includes(uuid)),
        [],
      );
      assert.deepEqual([...a, ...b].sort(), tasks.map((task) => task.uuid).sort());
      for (const task of tasks) assert.equal(await task.taskState(), 'initializing');
      // nothing left to discover
      assert.deepEqual(await discover(db, 10), []);
    });

    it('two transactions adding opposite edges cannot both commit (no cycle)', {
      skip: backend === 'pglite' ? 'PGlite runs one transaction at a time' : false,
    }, async () => {
      const task = await manager.createTask(diamond, { even_number: 4, race: 'edges' });
      const b = task.stepUuid('diamond_branch_b_ts');
      const c = task.stepUuid('diamond_branch_c_ts');
      const addEdge = async (tx: Queryable, from: string, to: string) => {
        await tx.query('SELECT tasker.add_step_edge($1, $2)', [from, to]);
      };
      const gate = Promise.withResolvers<void>();
      const firstAdded = Promise.withResolvers<void>();
      const first = db.transaction(async (tx) => {
        await addEdge(tx, b, c);
        firstAdded.resolve();
        await gate.promise;
      });
      first.catch((error: unknown) => firstAdded.reject(error));
      await firstAdded.promise;
      // the second transaction either fails or finishes at once (no serialization), or waits for the
      // first (serialized): release the first once the second has settled or is seen waiting on a lock
      let settled = false;
      const second = db
        .transaction((tx) => addEdge(tx, c, b))
        .then(
          () => null,
          (error: unknown) => error,
        )
        .finally(() => {
          settled = true;
        });
      try {
        for (;;) {
          if (settled) break;
          const { rows } = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          );
          if ((rows[0]?.n ?? 0) > 0) break;
        }
      } finally {
        gate.resolve();
      }
      await first;
      const secondError = await second;
      assert.ok(secondError instanceof Error, 'the second edge must be refused');
      assert.equal((secondError as Error & { code?: unknown }).code, 'TK002');
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM tasker.workflow_step_edges
         WHERE (from_step_uuid, to_step_uuid) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))`,
        [b, c],
      );
      assert.equal(rows[0]?.n, 1, 'one of the two opposite edges, never both');
    });

    it('concurrent registrations of one new template agree on its uuid', async () => {
      const template = { ...linear.template, name: 'concurrent_registration' };
      const registered = await Promise.all(
        Array.from({ length: 10 }, () => new TemplateRegistry(db).register(template)),
      );
      assert.equal(new Set(registered.map((entry) => entry.namedTaskUuid)).size, 1);
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM tasker.named_tasks WHERE name = 'concurrent_registration'`,
      );
      assert.equal(rows[0]?.n, 1);
    });

    it('50 concurrent identical createTask calls (strict identity): exactly one succeeds', async () => {
      const context = { even_number: 42, burst: 'identical' };
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () => manager.createTask(linear, context, { uniqueContext: false })),
      );
      const fulfilled = results.filter((result) => result.status === 'fulfilled');
      const rejected = results.filter((result) => result.status === 'rejected');
      assert.equal(fulfilled.length, 1);
      assert.equal(rejected.length, 49);
      for (const result of rejected) {
        assert.ok(
          result.reason instanceof ConflictError,
          `expected ConflictError, got ${String(result.reason)}`,
        );
      }
      const { rows } = await db.query<{ tasks: number; steps: number }>(
        `SELECT count(DISTINCT t.task_uuid)::int AS tasks, count(ws.workflow_step_uuid)::int AS steps
         FROM tasker.tasks t JOIN tasker.workflow_steps ws USING (task_uuid)
         WHERE t.context @> $1::jsonb`,
        [JSON.stringify(context)],
      );
      assert.deepEqual(rows[0], { tasks: 1, steps: 4 });
    });

    it('50 concurrent createTask calls with different contexts all succeed', async () => {
      const created = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          manager.createTask(linear, { even_number: 2, burst: 'distinct', i }, { uniqueContext: false }),
        ),
      );
      assert.equal(new Set(created.map((task) => task.uuid)).size, 50);
    });
  });
}
