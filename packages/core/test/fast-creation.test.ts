/**
 * `tasker.create_and_start_tasks` (0010) writes started tasks in one pass; these tests hold it to
 * the general path it replaces, `create_task` followed by `evaluate_task`: for every example
 * template, alone and all in one call, the two leave the same task, steps, edges, transitions
 * (state, event, lifecycle event, metadata, order, most recent), queue messages and evaluation, ids
 * and timestamps aside. Also the cases the fast path hands to the general one, conflicts within a
 * call, and its errors. Both backends.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Database, Queryable } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { ConflictError } from '../src/errors.ts';
import { createStartedTasks, createTask, prepareTask, type TaskEvaluation } from '../src/initialize.ts';
import type { RegisteredTemplate } from '../src/registry.ts';
import { validateTaskRequest } from '../src/task-request.ts';
import { loadTemplates } from '../src/template/load.ts';
import { createCoreDatabase } from './db.ts';
import { LifecycleTestManager } from './lifecycle.ts';
import { taskEdges } from './seed.ts';

const EXAMPLES = fileURLToPath(new URL('../../../examples/templates/', import.meta.url));
const BATCH = 50;

/** Everything creation and start wrote for one task, without ids and timestamps. */
async function snapshot(db: Queryable, taskUuid: string): Promise<unknown> {
  const task = await db.query(
    `SELECT current_state, complete, completed_at IS NULL AS open, priority, tags, initiator, source_system, reason,
            context - 'run' AS context, created_at <= state_entered_at AND state_entered_at <= updated_at AS times_ordered
     FROM tasker.tasks WHERE task_uuid = $1`,
    [taskUuid],
  );
  const taskTransitions = await db.query(
    `SELECT from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent
     FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY sort_key`,
    [taskUuid],
  );
  const steps = await db.query(
    `SELECT ns.name, ws.current_state, ws.retryable, ws.max_attempts, ws.in_process, ws.processed,
            ws.processed_at, ws.attempts, ws.last_attempted_at, ws.backoff_request_seconds, ws.next_retry_at,
            ws.inputs, ws.results, ws.priority, ws.checkpoint,
            ws.created_at <= ws.state_entered_at AND ws.state_entered_at <= ws.updated_at AS times_ordered,
            (SELECT json_agg(json_build_object('from', t.from_state, 'to', t.to_state, 'event', t.event,
                                               'lifecycle', t.lifecycle_event, 'metadata', t.metadata,
                                               'sort_key', t.sort_key, 'most_recent', t.most_recent)
                             ORDER BY t.sort_key)
             FROM tasker.workflow_step_transitions t WHERE t.workflow_step_uuid = ws.workflow_step_uuid) AS transitions
     FROM tasker.workflow_steps ws JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
     WHERE ws.task_uuid = $1 ORDER BY ns.name`,
    [taskUuid],
  );
  const messages = await db.query(
    `SELECT m.queue_name, ns.name AS step, m.read_ct, m.vt <= clock_timestamp() AS visible,
            (m.message ->> 'correlation_id')::uuid = t.correlation_id AS correlated,
            ARRAY(SELECT jsonb_object_keys(m.message::jsonb) ORDER BY 1) AS keys
     FROM pgmq.messages m
     JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = (m.message ->> 'step_uuid')::uuid
     JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
     JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
     WHERE (m.message ->> 'task_uuid')::uuid = $1 ORDER BY ns.name`,
    [taskUuid],
  );
  return {
    task: task.rows,
    taskTransitions: taskTransitions.rows,
    steps: steps.rows,
    edges: await taskEdges(db, taskUuid),
    messages: messages.rows,
  };
}

function request(registered: RegisteredTemplate, run: string) {
  const { template } = registered;
  return validateTaskRequest({
    namespace: template.namespace_name,
    name: template.name,
    version: template.version,
    context: { run },
    initiator: 'fast-creation-test',
    source_system: 'test',
    reason: 'compare the creation paths',
    tags: ['fast'],
    priority: 7,
  });
}

/** The general path: create_task, then evaluate_task as the engine would call it. */
async function createGeneral(
  db: Queryable,
  registered: RegisteredTemplate,
  batchSize = BATCH,
): Promise<{ taskUuid: string; evaluation: TaskEvaluation }> {
  const created = await createTask(db, request(registered, randomUUID()), registered, {
    processorUuid: null,
  });
  const { rows } = await db.query<{ evaluation: TaskEvaluation }>(
    'SELECT tasker.evaluate_task($1, NULL, $2) AS evaluation',
    [created.taskUuid, batchSize],
  );
  const evaluation = rows[0]?.evaluation;
  assert.ok(evaluation !== undefined);
  return { taskUuid: created.taskUuid, evaluation };
}

async function createFast(
  db: Queryable,
  registered: RegisteredTemplate,
  batchSize = BATCH,
): Promise<{ taskUuid: string; evaluation: TaskEvaluation }> {
  const created = await createTask(db, request(registered, randomUUID()), registered, {
    start: { batchSize },
  });
  assert.ok(created.evaluation !== undefined);
  return { taskUuid: created.taskUuid, evaluation: created.evaluation };
}

/**
 * The evaluation without the values that name one task (its uuid and message ids) and without what
 * only the fast path adds (`created`, checked against the API's read in api-create-answer.test.ts).
 */
function comparable(evaluation: TaskEvaluation & { msg_ids?: unknown }): unknown {
  const {
    task_uuid: _uuid,
    msg_ids: ids,
    created: _created,
    queue: _queue,
    ...rest
  } = evaluation as TaskEvaluation & {
    msg_ids?: unknown;
    queue?: unknown;
  };
  return { ...rest, messages: Array.isArray(ids) ? ids.length : ids };
}

/** create_and_start_tasks called directly with raw items (what the TypeScript side never sends). */
function startRaw(db: Queryable, items: unknown[], batchSize = 10) {
  return db.query('SELECT tasker.create_and_start_tasks($1::jsonb, NULL, $2)', [
    JSON.stringify(items),
    batchSize,
  ]);
}

for (const backend of BACKENDS) {
  describe(`fast creation (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;
    let manager: LifecycleTestManager;
    const registered: RegisteredTemplate[] = [];

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
      manager = new LifecycleTestManager(db);
      const loaded = await loadTemplates([EXAMPLES]);
      assert.deepEqual(loaded.errors, []);
      for (const { template } of loaded.templates) registered.push(await manager.registry.register(template));
      assert.ok(registered.length >= 25, `examples loaded: ${registered.length}`);
    });

    after(async () => {
      await test.dispose();
    });

    it('writes what create_task + evaluate_task write, for every example template', async () => {
      for (const template of registered) {
        const label = `${template.template.namespace_name}/${template.template.name}`;
        const general = await createGeneral(db, template);
        const fast = await createFast(db, template);
        assert.deepEqual(comparable(fast.evaluation), comparable(general.evaluation), label);
        assert.ok(fast.evaluation.created !== undefined && general.evaluation.created === undefined, label);
        assert.deepEqual(await snapshot(db, fast.taskUuid), await snapshot(db, general.taskUuid), label);
      }
    });

    it('writes the same for every example template all in one call, with conflicts on their own', async () => {
      const run = randomUUID();
      const prepared = registered.map((template) => prepareTask(request(template, run), template));
      const [first] = prepared;
      assert.ok(first !== undefined);
      // an identity repeated within the call, and one that exists already
      const existing = await createGeneral(db, registered[1] as RegisteredTemplate);
      const existingIdentity = await db.query<{ identity_hash: string }>(
        'SELECT identity_hash FROM tasker.tasks WHERE task_uuid = $1',
        [existing.taskUuid],
      );
      const taken = {
        ...first,
        task: { ...first.task, identity_hash: existingIdentity.rows[0]?.identity_hash ?? '' },
      };
      const results = await createStartedTasks(db, [...prepared, first, taken], { batchSize: BATCH });
      assert.equal(results.length, prepared.length + 2);
      assert.ok(results.at(-2) instanceof ConflictError, 'the repeated identity');
      assert.ok(results.at(-1) instanceof ConflictError, 'the identity that existed');
      for (const [index, template] of registered.entries()) {
        const label = `${template.template.namespace_name}/${template.template.name}`;
        const fast = results[index];
        assert.ok(fast !== undefined && !(fast instanceof Error), label);
        assert.ok(fast.evaluation !== undefined);
        const general = await createGeneral(db, template);
        assert.deepEqual(comparable(fast.evaluation), comparable(general.evaluation), label);
        assert.deepEqual(await snapshot(db, fast.taskUuid), await snapshot(db, general.taskUuid), label);
      }
    });

    it('hands more root steps than one batch to the general path, with the same result', async () => {
      const wide = await manager.registerYaml(`
name: fast_wide
namespace_name: fast_creation
version: 1.0.0
steps:
  - {name: wide_a, handler: {callable: Fast.A}}
  - {name: wide_b, handler: {callable: Fast.B}}
  - {name: wide_c, handler: {callable: Fast.C}}
  - {name: wide_join, handler: {callable: Fast.Join}, dependencies: [wide_a, wide_b, wide_c]}
`);
      // which two of the three roots go first follows their uuids, so only the states are compared
      const states = async (taskUuid: string) => {
        const { rows } = await db.query<{ current_state: string }>(
          'SELECT current_state FROM tasker.workflow_steps WHERE task_uuid = $1 ORDER BY current_state',
          [taskUuid],
        );
        const { taskTransitions } = (await snapshot(db, taskUuid)) as { taskTransitions: unknown };
        return { steps: rows.map((row) => row.current_state), taskTransitions };
      };
      const general = await createGeneral(db, wide, 2);
      const fast = await createFast(db, wide, 2);
      assert.equal(fast.evaluation.enqueued, 2);
      assert.deepEqual(comparable(fast.evaluation), comparable(general.evaluation));
      assert.deepEqual(await states(fast.taskUuid), await states(general.taskUuid));
      assert.deepEqual((await states(fast.taskUuid)).steps, ['enqueued', 'enqueued', 'pending', 'pending']);
      // the same within a call of several creations (one statement for the others), messages included
      const linear = registered.find((template) => template.template.name === 'mathematical_sequence_ts');
      assert.ok(linear !== undefined);
      const mixed = await createStartedTasks(
        db,
        [wide, linear, linear, linear, linear].map((template) =>
          prepareTask(request(template, randomUUID()), template),
        ),
        { batchSize: 2 },
      );
      const [wideInCall, ...linears] = mixed;
      assert.ok(wideInCall !== undefined && !(wideInCall instanceof Error));
      assert.deepEqual(await states(wideInCall.taskUuid), await states(general.taskUuid));
      assert.equal(wideInCall.evaluation?.created, undefined, 'the general path');
      for (const created of linears) {
        assert.ok(!(created instanceof Error) && created.evaluation?.created !== undefined, 'the fast path');
        assert.deepEqual(
          await snapshot(db, created.taskUuid),
          await snapshot(db, (await createGeneral(db, linear, 2)).taskUuid),
        );
      }
      // within one batch, all three roots at once
      const whole = await createFast(db, wide, 3);
      assert.equal(whole.evaluation.enqueued, 3);
      assert.deepEqual(
        await snapshot(db, whole.taskUuid),
        await snapshot(db, (await createGeneral(db, wide, 3)).taskUuid),
      );
    });

    it('refuses a dependency on a step that is not part of the task, and writes nothing', async () => {
      const [template] = registered;
      assert.ok(template !== undefined);
      const before = await db.query<{ n: number }>('SELECT count(*)::integer AS n FROM tasker.tasks');
      const steps = [
        { name: 'fast_orphan_root', retryable: true, max_attempts: 3, inputs: {}, dependencies: [] },
        {
          name: 'fast_orphan_child',
          retryable: true,
          max_attempts: 3,
          inputs: {},
          dependencies: ['fast_missing'],
        },
      ];
      await assert.rejects(
        startRaw(db, [
          {
            named_task_uuid: template.namedTaskUuid,
            task: { identity_hash: randomUUID(), correlation_id: randomUUID() },
            steps,
          },
        ]),
        (error: unknown) => (error as { code?: string }).code === 'TK003',
      );
      await assert.rejects(
        startRaw(
          db,
          [
            {
              named_task_uuid: template.namedTaskUuid,
              task: { identity_hash: randomUUID(), correlation_id: randomUUID() },
              steps: steps.slice(0, 1),
            },
          ],
          0,
        ),
        (error: unknown) => (error as { code?: string }).code === 'TK003',
      );
      const afterwards = await db.query<{ n: number }>('SELECT count(*)::integer AS n FROM tasker.tasks');
      assert.equal(afterwards.rows[0]?.n, before.rows[0]?.n);
    });

    it('adds a step name it has not seen, alone and in a batch', async () => {
      const [template] = registered;
      assert.ok(template !== undefined);
      const item = (name: string) => ({
        named_task_uuid: template.namedTaskUuid,
        task: { identity_hash: randomUUID(), correlation_id: randomUUID() },
        steps: [{ name, dependencies: [] }],
      });
      const alone = `fast_new_${randomUUID().slice(0, 8)}`;
      const together = `fast_new_${randomUUID().slice(0, 8)}`;
      await startRaw(db, [item(alone)]);
      await startRaw(
        db,
        [item(together), item(together), item(together), item(together)].map((one, i) =>
          i === 0 ? one : { ...one, task: { identity_hash: randomUUID(), correlation_id: randomUUID() } },
        ),
      );
      const { rows } = await db.query<{ name: string; steps: number }>(
        `SELECT ns.name, count(ws.*)::integer AS steps FROM tasker.named_steps ns
         LEFT JOIN tasker.workflow_steps ws ON ws.named_step_uuid = ns.named_step_uuid
         WHERE ns.name = ANY ($1) GROUP BY ns.name ORDER BY ns.name`,
        [[alone, together].sort()],
      );
      assert.deepEqual(
        rows,
        [
          { name: alone, steps: 1 },
          { name: together, steps: 4 },
        ].sort((a, b) => a.name.localeCompare(b.name)),
      );
    });

    it('refuses an unknown named task as create_task does', async () => {
      await assert.rejects(
        startRaw(db, [
          {
            named_task_uuid: randomUUID(),
            task: { identity_hash: randomUUID(), correlation_id: randomUUID() },
            steps: [{ name: 'fast_lonely', dependencies: [] }],
          },
        ]),
        (error: unknown) => (error as { code?: string }).code === '23503',
      );
    });
  });
}
