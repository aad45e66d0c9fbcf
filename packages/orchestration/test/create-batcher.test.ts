/**
 * Group commit of task intake (create-batcher.ts, create_and_start_tasks in 0010), on both backends:
 * creations that arrive together are written together, and each keeps its own outcome — a duplicate
 * identity is that creation's 409, a batch that fails as a whole is retried one by one so that one
 * creation's error never becomes another's, and what is written equals what one-at-a-time creation
 * writes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  ConflictError,
  type CreatedTask,
  createPreparedTask,
  createStartedTasks,
  loadTemplateFile,
  type PreparedTask,
  prepareTask,
  type RegisteredTemplate,
  TASKER_MIGRATIONS,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import { CreateBatcher } from '../src/create-batcher.ts';

const LINEAR = fileURLToPath(
  new URL('../../../examples/templates/linear_workflow_ts/mathematical_sequence_ts.yaml', import.meta.url),
);
const BODY = { namespace: 'linear_workflow_ts', name: 'mathematical_sequence_ts', version: '1.0.0' };

function body(context: Record<string, unknown>) {
  return { ...BODY, context, initiator: 'batch-test', source_system: 'tests', reason: 'group commit' };
}

for (const backend of BACKENDS) {
  describe(`task creation in batches (${backend})`, () => {
    let t: TestDatabase;
    let linear: RegisteredTemplate;

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      linear = await new TemplateRegistry(t.db).register(await loadTemplateFile(LINEAR));
    });
    after(async () => {
      await t.dispose();
    });

    async function stepStates(taskUuid: string): Promise<string[]> {
      const { rows } = await t.db.query<{ s: string }>(
        'SELECT current_state AS s FROM tasker.workflow_steps WHERE task_uuid = $1 ORDER BY current_state',
        [taskUuid],
      );
      return rows.map((row) => row.s);
    }

    it('writes creations that arrive together in one transaction; duplicates are each a conflict', async () => {
      const engine = new OrchestrationEngine({ db: t.db, createBatchSize: 8, createBatchesInFlight: 1 });
      // the template is then cached: every creation below reaches the batcher at once
      await engine.createTask(body({ warm: randomUUID() }));
      // every first step is announced (once per batch and queue): the worker learns of all of them
      const announced = new Set<number>();
      const session = await t.db.openListenSession({
        onNotification: ({ payload }) => {
          for (const id of (JSON.parse(payload) as { msg_ids: number[] }).msg_ids) announced.add(id);
        },
        onEnd: () => undefined,
      });
      await session.listen('pgmq_message_ready.linear_workflow_ts');
      const run = randomUUID();
      const distinct = Array.from({ length: 20 }, (_, i) => body({ run, i }));
      const duplicates = Array.from({ length: 4 }, () => body({ run, duplicate: true }));
      const outcomes = await Promise.allSettled(
        [...distinct, ...duplicates].map((request) => engine.createTask(request)),
      );
      const created = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      assert.equal(created.length, 21, 'the 20 distinct tasks and one of the duplicates');
      assert.equal(refused.length, 3);
      for (const error of refused) {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.message, 'A task with this identity already exists');
      }
      // at most the first creation found the batcher idle and went alone; the others waited and went
      // together, 8 at a time: all created but the three duplicates that lost
      assert.ok(engine.metrics().tasksCreatedBatched >= 20, JSON.stringify(engine.metrics()));
      assert.equal(engine.metrics().tasksCreated, 22);
      for (const task of created) {
        assert.equal(task.evaluation?.state, 'steps_in_process');
        assert.deepEqual(await stepStates(task.taskUuid), ['enqueued', 'pending', 'pending', 'pending']);
      }
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::integer AS n FROM tasker.tasks WHERE context ->> 'run' = $1",
        [run],
      );
      assert.equal(rows[0]?.n, 21);
      const messages = await t.db.query<{ id: number }>(
        `SELECT m.msg_id AS id FROM pgmq.messages m JOIN tasker.tasks t ON t.task_uuid = (m.message ->> 'task_uuid')::uuid
         WHERE t.context ->> 'run' = $1`,
        [run],
      );
      assert.equal(messages.rows.length, 21);
      // notifications arrive after their commits; wait for them (the test fails on a missing one)
      const missing = () => messages.rows.filter((row) => !announced.has(row.id));
      for (let waited = 0; missing().length > 0 && waited < 10_000; waited += 20) await sleep(20);
      assert.deepEqual(missing(), []);
      await session.close();
    });

    it('answers each item of a batch statement on its own: created, or a conflict', async () => {
      const run = randomUUID();
      const prepare = (context: Record<string, unknown>) =>
        prepareTask(validateTaskRequest(body(context)), linear);
      const existing = await createPreparedTask(t.db, prepare({ run, which: 'existing' }), {
        start: { batchSize: 50 },
      });
      const results = await createStartedTasks(
        t.db,
        [prepare({ run, which: 'a' }), prepare({ run, which: 'existing' }), prepare({ run, which: 'a' })],
        { batchSize: 50 },
      );
      const [first, again, twice] = results;
      assert.ok(first !== undefined && !(first instanceof Error));
      assert.ok(again instanceof ConflictError, 'an identity created before the batch');
      assert.ok(twice instanceof ConflictError, 'an identity created earlier in the same batch');
      assert.notEqual(first.taskUuid, existing.taskUuid);
      assert.deepEqual(await stepStates(first.taskUuid), await stepStates(existing.taskUuid));
      assert.deepEqual({ ...first.record, context: null }, { ...existing.record, context: null });
    });

    it('retries a failed batch one creation at a time, so an error stays with its creation', async () => {
      const run = randomUUID();
      const good = (i: number) => prepareTask(validateTaskRequest(body({ run, i })), linear);
      // a named task that does not exist: its creation fails on the foreign key, and with it its batch
      const orphan: PreparedTask = { ...good(99), namedTaskUuid: randomUUID() };
      const options = { start: { batchSize: 50 } };
      let batches = 0;
      const batcher = new CreateBatcher({
        one: (prepared) => createPreparedTask(t.db, prepared, options),
        many: (prepared) => {
          batches++;
          return createStartedTasks(t.db, prepared, { batchSize: 50 });
        },
        maxBatch: 10,
        maxInFlight: 1,
        maxWaiting: 100,
      });
      const outcomes = await Promise.allSettled(
        [good(0), good(1), orphan, good(2), good(3)].map((prepared) => batcher.create(prepared)),
      );
      assert.equal(batches, 1, 'the four that waited were tried as one batch');
      assert.equal(batcher.batched, 0, 'which failed as a whole');
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
      );
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') {
          const created: CreatedTask = outcome.value;
          assert.deepEqual(await stepStates(created.taskUuid), ['enqueued', 'pending', 'pending', 'pending']);
        }
      }
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::integer AS n FROM tasker.tasks WHERE context ->> 'run' = $1",
        [run],
      );
      assert.equal(rows[0]?.n, 4);
    });
  });
}
