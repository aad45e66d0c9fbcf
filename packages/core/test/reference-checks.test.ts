/**
 * Referential integrity of tasks, workflow_steps and workflow_step_edges, checked once per statement
 * (0011) instead of by foreign keys, next to the transition tables' foreign keys: every reference is
 * guarded, with SQLSTATE 23503 and the constraint's name, on insert (one row or many), on delete and
 * truncate of the parent, and on a change of a key. Both backends; on PostgreSQL also a delete
 * racing an insert on two connections.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createPostgresDatabase, type Database, type Queryable } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';
import { resetData, type SeededTask, seedTask, seedTemplate, single, stepOf } from './seed.ts';

interface SqlError {
  code: string;
  constraint?: string;
}

/** Runs `sql` and expects a foreign key violation naming `constraint`. */
async function rejects(db: Queryable, sql: string, params: unknown[], constraint: string): Promise<void> {
  await assert.rejects(db.query(sql, params), (error: SqlError) => {
    assert.equal(error.code, '23503');
    assert.equal(error.constraint, constraint);
    return true;
  });
}

async function count(db: Queryable, table: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::integer AS n FROM tasker.${table}`);
  return single(rows).n;
}

for (const backend of BACKENDS) {
  describe(`statement-level reference checks (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;
    let namedTask: string;
    let task: SeededTask;

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
    });

    after(async () => {
      await test?.dispose();
    });

    beforeEach(async () => {
      await resetData(db);
      namedTask = await seedTemplate(db, { namespace: 'refs', name: 'refs_task' });
      task = await seedTask(db, namedTask, { steps: ['a', 'b'], edges: [['a', 'b']] });
    });

    it('refuses a task of an unknown named task, alone or among good rows, and writes none', async () => {
      const insert = `INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id)
                      SELECT unnest($1::uuid[]), gen_random_uuid()::text, gen_random_uuid()`;
      await rejects(db, insert, [[randomUUID()]], 'tasks_named_task_uuid_fkey');
      await rejects(db, insert, [[namedTask, randomUUID(), namedTask]], 'tasks_named_task_uuid_fkey');
      assert.equal(await count(db, 'tasks'), 1);
      await db.query(insert, [[namedTask, namedTask]]);
      assert.equal(await count(db, 'tasks'), 3);
    });

    it('refuses a step of an unknown task or of an unknown named step', async () => {
      const { rows } = await db.query<{ named_step_uuid: string }>(
        `INSERT INTO tasker.named_steps (name) VALUES ('c') RETURNING named_step_uuid`,
      );
      const namedStep = single(rows).named_step_uuid;
      const insert = 'INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid) VALUES ($1, $2)';
      await rejects(db, insert, [randomUUID(), namedStep], 'workflow_steps_task_uuid_fkey');
      await rejects(db, insert, [task.taskUuid, randomUUID()], 'workflow_steps_named_step_uuid_fkey');
      assert.equal(await count(db, 'workflow_steps'), 2);
      await db.query(insert, [task.taskUuid, namedStep]);
      assert.equal(await count(db, 'workflow_steps'), 3);
    });

    it('refuses an edge from or to an unknown step', async () => {
      const insert = 'INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid) VALUES ($1, $2)';
      await rejects(db, insert, [randomUUID(), stepOf(task, 'b')], 'workflow_step_edges_from_step_uuid_fkey');
      await rejects(db, insert, [stepOf(task, 'a'), randomUUID()], 'workflow_step_edges_to_step_uuid_fkey');
      assert.equal(await count(db, 'workflow_step_edges'), 1);
    });

    it('refuses a transition of an unknown task or step', async () => {
      await rejects(
        db,
        `INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, most_recent)
         VALUES ($1, 'pending', 'initializing', 'start', 2, false)`,
        [randomUUID()],
        'task_transitions_task_uuid_fkey',
      );
      await rejects(
        db,
        `INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, sort_key,
                                                       most_recent)
         SELECT unnest($1::uuid[]), 'pending', 'enqueued', 'enqueue', 2, false`,
        [[stepOf(task, 'a'), randomUUID()]],
        'workflow_step_transitions_workflow_step_uuid_fkey',
      );
      assert.equal(await count(db, 'task_transitions'), 1);
      assert.equal(await count(db, 'workflow_step_transitions'), 2);
    });

    it('refuses to delete a referenced parent and deletes an unreferenced one', async () => {
      const deleteStep = 'DELETE FROM tasker.workflow_steps WHERE workflow_step_uuid = $1';
      await rejects(db, 'DELETE FROM tasker.named_tasks', [], 'tasks_named_task_uuid_fkey');
      await rejects(
        db,
        'DELETE FROM tasker.named_steps WHERE name = $1',
        ['a'],
        'workflow_steps_named_step_uuid_fkey',
      );
      // the transitions' foreign keys (row level) answer before the statement checks
      await rejects(db, 'DELETE FROM tasker.tasks', [], 'task_transitions_task_uuid_fkey');
      await rejects(db, deleteStep, [stepOf(task, 'b')], 'workflow_step_transitions_workflow_step_uuid_fkey');
      await db.query('DELETE FROM tasker.workflow_step_transitions');
      await rejects(db, deleteStep, [stepOf(task, 'a')], 'workflow_step_edges_from_step_uuid_fkey');
      await rejects(db, deleteStep, [stepOf(task, 'b')], 'workflow_step_edges_to_step_uuid_fkey');
      await db.query('DELETE FROM tasker.workflow_step_edges');
      await db.query('DELETE FROM tasker.task_transitions');
      await rejects(db, 'DELETE FROM tasker.tasks', [], 'workflow_steps_task_uuid_fkey');
      // bottom-up, as with foreign keys only, everything goes
      await db.query('DELETE FROM tasker.workflow_steps');
      await db.query('DELETE FROM tasker.tasks');
      await db.query('DELETE FROM tasker.named_steps');
      await db.query('DELETE FROM tasker.named_tasks');
      assert.equal(await count(db, 'named_tasks'), 0);
    });

    it('refuses to delete outside READ COMMITTED, where a concurrent reference could be missed', async () => {
      await db.query('DELETE FROM tasker.workflow_step_edges');
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
          await tx.query('DELETE FROM tasker.workflow_step_edges');
          await tx.query('DELETE FROM tasker.workflow_step_transitions');
          await tx.query('DELETE FROM tasker.workflow_steps');
        }),
        (error: SqlError) => error.code === '55000',
      );
      assert.equal(await count(db, 'workflow_steps'), 2);
    });

    it('truncates a parent only together with the tables that reference it', async () => {
      await assert.rejects(db.query('TRUNCATE tasker.named_steps'), (error: SqlError) => {
        assert.equal(error.code, '23503');
        assert.equal(error.constraint, 'workflow_steps_named_step_uuid_fkey');
        return true;
      });
      await assert.rejects(
        db.query('TRUNCATE tasker.tasks CASCADE'),
        (error: SqlError) => error.code === '23503',
      );
      assert.equal(await count(db, 'tasks'), 1);
      await db.query(`TRUNCATE tasker.workflow_step_edges, tasker.workflow_step_transitions, tasker.workflow_steps,
                      tasker.task_transitions, tasker.tasks, tasker.named_steps CASCADE`);
      assert.equal(await count(db, 'tasks'), 0);
      assert.equal(await count(db, 'named_steps'), 0);
    });

    it('refuses a new value in a key or a reference, and lets every other update through', async () => {
      const { rows } = await db.query<{ task_uuid: string }>(
        `INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id)
         VALUES ($1, gen_random_uuid()::text, gen_random_uuid()) RETURNING task_uuid`,
        [namedTask],
      );
      const otherTask = single(rows).task_uuid;
      const changes: [string, unknown[]][] = [
        ['UPDATE tasker.tasks SET task_uuid = gen_random_uuid() WHERE task_uuid = $1', [otherTask]],
        ['UPDATE tasker.tasks SET named_task_uuid = gen_random_uuid() WHERE task_uuid = $1', [otherTask]],
        ['UPDATE tasker.workflow_steps SET task_uuid = $1', [otherTask]],
        ['UPDATE tasker.workflow_steps SET named_step_uuid = gen_random_uuid()', []],
        ['UPDATE tasker.workflow_step_edges SET to_step_uuid = from_step_uuid', []],
        ['UPDATE tasker.named_steps SET named_step_uuid = gen_random_uuid()', []],
        ['UPDATE tasker.named_tasks SET named_task_uuid = gen_random_uuid()', []],
      ];
      for (const [sql, params] of changes) {
        await assert.rejects(db.query(sql, params), (error: SqlError) => error.code === '23503', sql);
      }
      // naming a checked column without changing it, or changing anything else, is fine
      await db.query('UPDATE tasker.workflow_steps SET task_uuid = task_uuid, attempts = 1');
      await db.query(`UPDATE tasker.named_steps SET name = name || '_renamed'`);
      const { rows: moved } = await db.query<{ n: number }>(
        'SELECT count(*)::integer AS n FROM tasker.workflow_steps WHERE task_uuid = $1 AND attempts = 1',
        [task.taskUuid],
      );
      assert.equal(single(moved).n, 2);
    });

    if (backend === 'postgres') {
      /**
       * Runs `first` in a transaction and, while it is open, `second` on another connection; once
       * `second` waits for a lock, commits `first`. Returns how `second` ended: 'done' or its SQLSTATE.
       */
      async function whileHeld(first: [string, unknown[]], second: [string, unknown[]]): Promise<string> {
        const url = test.url;
        assert.ok(url);
        const other = createPostgresDatabase({ url, pool: { max: 1 } });
        try {
          const { rows } = await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          const pid = single(rows).pid;
          let outcome: Promise<string> | undefined;
          let settled = false;
          await db.transaction(async (tx) => {
            await tx.query(...first);
            outcome = other.query(...second).then(
              () => 'done',
              (error: SqlError) => error.code,
            );
            void outcome.finally(() => {
              settled = true;
            });
            // until `second` waits for a lock (or, when it took none, has ended)
            while (!settled) {
              const { rows: waiting } = await db.query<{ lock: boolean }>(
                `SELECT wait_event_type = 'Lock' AS lock FROM pg_stat_activity WHERE pid = $1`,
                [pid],
              );
              if (single(waiting).lock) return;
            }
          });
          assert.ok(outcome);
          return await outcome;
        } finally {
          await other.close();
        }
      }

      const insertEdge = `INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
                          VALUES ($1, $2)`;
      const deleteStep = 'DELETE FROM tasker.workflow_steps WHERE workflow_step_uuid = $1';

      /** Step b without edges or transitions: deleting it is allowed until something references it. */
      async function unreferencedStep(): Promise<string> {
        await db.query('DELETE FROM tasker.workflow_step_edges');
        await db.query('DELETE FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = $1', [
          stepOf(task, 'b'),
        ]);
        return stepOf(task, 'b');
      }

      it('a delete racing an insert that references its row waits for the insert, then is refused', async () => {
        const step = await unreferencedStep();
        assert.equal(await whileHeld([insertEdge, [stepOf(task, 'a'), step]], [deleteStep, [step]]), '23503');
        assert.equal(await count(db, 'workflow_steps'), 2);
      });

      it('an insert racing the delete of its parent waits for the delete, then is refused', async () => {
        const step = await unreferencedStep();
        assert.equal(await whileHeld([deleteStep, [step]], [insertEdge, [stepOf(task, 'a'), step]]), '23503');
        assert.equal(await count(db, 'workflow_steps'), 1);
        assert.equal(await count(db, 'workflow_step_edges'), 0);
      });
    }
  });
}
