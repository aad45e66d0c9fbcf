/**
 * Many processes on one PostgreSQL (PGlite is one process by nature): two orchestration processes
 * and two worker processes run 300 concurrent tasks of mixed shapes, half created directly and half
 * through the task request queue. Every task completes, every step ran once and its result was
 * applied once.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  createTask,
  type JsonObject,
  sleep,
  TASKER_MIGRATIONS,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
import { createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { type Child, startChild } from './support/processes.ts';
import { exampleTemplates } from './support/system.ts';

const TASKS = 300;
const WAIT_MS = 240_000;

const SHAPES: { namespace: string; name: string; context: JsonObject; steps: number }[] = [
  {
    namespace: 'linear_workflow_ts',
    name: 'mathematical_sequence_ts',
    context: { even_number: 10 },
    steps: 4,
  },
  {
    namespace: 'diamond_workflow_ts',
    name: 'parallel_computation_ts',
    context: { even_number: 4 },
    steps: 4,
  },
  { namespace: 'rust_e2e_tree', name: 'hierarchical_tree', context: { even_number: 2 }, steps: 8 },
  { namespace: 'rust_e2e_mixed_dag', name: 'complex_dag', context: { even_number: 2 }, steps: 7 },
  {
    namespace: 'data_pipeline_ts',
    name: 'analytics_pipeline_ts',
    context: { pipeline_id: 'p', date_range: { start_date: '2024-01-01', end_date: '2024-01-02' } },
    steps: 8,
  },
  { namespace: 'test_scenarios_ts', name: 'success_only_ts', context: { message: 'hi' }, steps: 1 },
];

describe('multi-process: 2 orchestration and 2 worker processes on one PostgreSQL', () => {
  let t: TestDatabase;
  const children: Child[] = [];

  before(async () => {
    t = await createTestDatabase('postgres', { migrations: TASKER_MIGRATIONS });
    const url = t.url;
    assert.ok(url);
    const registry = new TemplateRegistry(t.db);
    for (const template of await exampleTemplates()) await registry.register(template);
    const polling = { fallbackPollIntervalMs: 500, fallbackMinAgeSeconds: 1, readinessPollIntervalMs: 500 };
    const workerOptions = { maxConcurrentHandlers: 10, pollIntervalMs: 500, pollMinAgeSeconds: 1 };
    children.push(
      ...(await Promise.all([
        startChild('worker', url, workerOptions),
        startChild('worker', url, workerOptions),
        startChild('orchestration', url, polling),
        startChild('orchestration', url, polling),
      ])),
    );
  });

  after(async () => {
    for (const child of children) child.process.kill('SIGTERM');
    await Promise.all(children.map((child) => child.exited));
    await t.dispose();
  });

  it(`runs ${TASKS} concurrent mixed-shape tasks; each step runs once and its result is applied once`, async () => {
    const registry = new TemplateRegistry(t.db);
    const pgmq = new Pgmq(t.db);
    const run = randomUUID();
    let expectedSteps = 0;
    await Promise.all(
      Array.from({ length: TASKS }, async (_, i) => {
        const shape = SHAPES[i % SHAPES.length];
        assert.ok(shape);
        expectedSteps += shape.steps;
        const body = {
          namespace: shape.namespace,
          name: shape.name,
          version: '1.0.0',
          context: { ...shape.context, _run: run, _i: i },
        };
        if (i % 2 === 0) {
          const request = validateTaskRequest(body);
          const registered = await registry.get(request.namespace, request.name, request.version);
          await createTask(t.db, request, registered, { start: { batchSize: 50 } });
        } else {
          await pgmq.send('orchestration_task_requests', { request_id: randomUUID(), task_request: body });
        }
      }),
    );

    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const { rows } = await t.db.query<{ state: string; n: number }>(
        `SELECT current_state AS state, count(*)::int AS n FROM tasker.tasks
         WHERE context ->> '_run' = $1 GROUP BY 1`,
        [run],
      );
      const counts = Object.fromEntries(rows.map((row) => [row.state, row.n]));
      if (counts.complete === TASKS) break;
      assert.ok(counts.error === undefined, `no task fails: ${JSON.stringify(counts)}`);
      if (Date.now() > deadline) {
        throw new Error(
          `not all tasks completed: ${JSON.stringify(counts)}\n${children.map((c) => c.stderr()).join('\n')}`,
        );
      }
      await sleep(200);
    }

    const { rows: steps } = await t.db.query<{
      current_state: string;
      attempts: number;
      claims: number;
      completions: number;
      audits: number;
    }>(
      `SELECT ws.current_state, ws.attempts,
              (SELECT count(*)::int FROM tasker.workflow_step_transitions x
               WHERE x.workflow_step_uuid = ws.workflow_step_uuid AND x.to_state = 'in_progress') AS claims,
              (SELECT count(*)::int FROM tasker.workflow_step_transitions x
               WHERE x.workflow_step_uuid = ws.workflow_step_uuid AND x.to_state = 'complete') AS completions,
              (SELECT count(*)::int FROM tasker.workflow_step_result_audit a
               WHERE a.workflow_step_uuid = ws.workflow_step_uuid) AS audits
       FROM tasker.workflow_steps ws JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
       WHERE t.context ->> '_run' = $1`,
      [run],
    );
    assert.equal(steps.length, expectedSteps);
    const odd = steps.filter(
      (s) =>
        s.current_state !== 'complete' ||
        s.attempts !== 1 ||
        s.claims !== 1 ||
        s.completions !== 1 ||
        s.audits !== 1,
    );
    assert.deepEqual(odd, [], 'every step: complete, one claim, one result, applied once');
    for (const queue of ['orchestration_step_results', 'orchestration_task_requests']) {
      assert.equal((await pgmq.metrics(queue)).queueLength, 0, `${queue} is empty`);
    }
  });
});
