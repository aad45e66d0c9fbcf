/**
 * The engine against a real database: push and polling modes, the task request queue, retry
 * timers, settings and stop. A stand-in worker claims and completes steps through the SQL hops
 * (the worker runtime has its own tests), so only the engine applies results here.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  loadTemplateFile,
  type RegisteredTemplate,
  sleep,
  TASKER_MIGRATIONS,
  TemplateRegistry,
  ValidationError,
} from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { type EngineOptions, engineSettings, OrchestrationEngine, TaskWatcher } from '@tasker/orchestration';
import { Pgmq } from '@tasker/pgmq';

const TEMPLATES = new URL('../../../examples/templates/', import.meta.url);
const WAIT_MS = 30_000;

type StepResult = Record<string, unknown>;

function success(result: StepResult): StepResult {
  return { success: true, status: 'completed', result, metadata: { execution_time_ms: 1, retryable: false } };
}

function retryableFailure(): StepResult {
  return {
    success: false,
    status: 'error',
    result: {},
    error: { message: 'not yet', error_type: 'retryable_error', retryable: true },
    metadata: { execution_time_ms: 1, retryable: true },
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

for (const backend of BACKENDS) {
  describe(`orchestration engine (${backend})`, () => {
    let t: TestDatabase;
    let registry: TemplateRegistry;
    let watcher: TaskWatcher;
    let diamond: RegisteredTemplate;
    let retry: RegisteredTemplate;
    const worker = randomUUID();

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      registry = new TemplateRegistry(t.db);
      const load = async (ref: string) =>
        registry.register(await loadTemplateFile(fileURLToPath(new URL(`${ref}.yaml`, TEMPLATES))));
      diamond = await load('diamond_workflow_ts/parallel_computation_ts');
      retry = await load('rust_e2e_retry/retry_mechanics_test');
      watcher = await TaskWatcher.open(t.db);
    });
    after(async () => {
      await watcher.close();
      await t.dispose();
    });

    async function withEngine(
      options: Partial<EngineOptions>,
      body: (engine: OrchestrationEngine) => Promise<void>,
    ) {
      const engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 5000, ...options });
      await engine.start();
      try {
        await body(engine);
      } finally {
        await engine.stop();
      }
    }

    /** The stand-in worker: claims every visible step message and completes it with `result`. */
    async function work(
      queue: string,
      result: (stepName: string, attempt: number) => StepResult,
    ): Promise<number> {
      const { rows } = await t.db.query<{
        msg_id: string;
        outcome: string;
        context: { step_uuid: string; step_name: string; attempt: number } | null;
      }>(
        'SELECT msg_id::text, outcome, context FROM tasker.claim_step_messages($1, NULL, 10, 0, $2, 30, 5)',
        [queue, worker],
      );
      for (const row of rows) {
        if (row.context === null) continue;
        await t.db.query('SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb)', [
          queue,
          row.msg_id,
          row.context.step_uuid,
          worker,
          row.context.attempt,
          JSON.stringify(result(row.context.step_name, row.context.attempt)),
        ]);
      }
      return rows.length;
    }

    /** Works the queue until the task ends; returns its final state. */
    async function runTask(
      taskUuid: string,
      queue: string,
      result: (stepName: string, attempt: number) => StepResult,
    ): Promise<string> {
      const finished = watcher.wait(taskUuid, WAIT_MS);
      let done = false;
      void finished.finally(() => {
        done = true;
      });
      while (!done) {
        if ((await work(queue, result)) === 0) await sleep(10);
      }
      return finished;
    }

    async function taskState(taskUuid: string): Promise<string | undefined> {
      const { rows } = await t.db.query<{ current_state: string }>(
        'SELECT current_state FROM tasker.tasks WHERE task_uuid = $1',
        [taskUuid],
      );
      return rows[0]?.current_state;
    }

    const diamondRequest = () => ({
      namespace: 'diamond_workflow_ts',
      name: 'parallel_computation_ts',
      version: diamond.template.version,
      context: { even_number: 6, run: randomUUID() },
    });

    for (const mode of ['EventDrivenOnly', 'PollingOnly', 'Hybrid'] as const) {
      it(`runs a diamond to completion (${mode})`, async () => {
        const polling = { fallbackPollIntervalMs: 20, fallbackMinAgeSeconds: 0, readinessPollIntervalMs: 20 };
        await withEngine({ orchestrationMode: mode, readinessMode: mode, ...polling }, async (engine) => {
          const created = await engine.createTask(diamondRequest());
          assert.equal(created.evaluation?.state, 'steps_in_process');
          const state = await runTask(created.taskUuid, 'worker_diamond_workflow_ts_queue', (name) =>
            success({ step: name }),
          );
          assert.equal(state, 'complete');
          // the completion notification may arrive before the applying call returns to the engine
          await waitFor('four applied results', async () =>
            engine.metrics().resultsApplied === 4 ? true : undefined,
          );
          assert.equal(engine.health().status, 'healthy');
        });
      });
    }

    it('creates tasks from the request queue and archives a request that cannot succeed', async () => {
      const pgmq = new Pgmq(t.db);
      await withEngine({ orchestrationMode: 'EventDrivenOnly' }, async (engine) => {
        const request = diamondRequest();
        await pgmq.send('orchestration_task_requests', {
          request_id: randomUUID(),
          task_request: request,
          metadata: { requester: 'engine-test' },
        });
        const badId = await pgmq.send('orchestration_task_requests', {
          request_id: randomUUID(),
          task_request: { ...diamondRequest(), name: 'no_such_template' },
        });
        const taskUuid = await waitFor('the task from the queue', async () => {
          const { rows } = await t.db.query<{ task_uuid: string }>(
            `SELECT task_uuid FROM tasker.tasks WHERE context ->> 'run' = $1`,
            [request.context.run],
          );
          return rows[0]?.task_uuid;
        });
        await waitFor('the rejected request', async () =>
          engine.metrics().requestsRejected === 1 ? true : undefined,
        );
        const { rows } = await t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pgmq.archive WHERE queue_name = 'orchestration_task_requests' AND msg_id = $1`,
          [badId],
        );
        assert.equal(rows[0]?.n, 1, 'the bad request is kept in the archive');
        assert.equal((await pgmq.metrics('orchestration_task_requests')).queueLength, 0);
        const state = await runTask(taskUuid, 'worker_diamond_workflow_ts_queue', (name) =>
          success({ step: name }),
        );
        assert.equal(state, 'complete');
      });
    });

    it('wakes a retry on its timer, without the readiness poller', async () => {
      await withEngine(
        { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
        async (engine) => {
          const created = await engine.createTask({
            namespace: 'rust_e2e_retry',
            name: 'retry_mechanics_test',
            version: retry.template.version,
            context: { run: randomUUID() },
          });
          const state = await runTask(created.taskUuid, 'worker_rust_e2e_retry_queue', (_, attempt) =>
            attempt < 3 ? retryableFailure() : success({ attempts: attempt }),
          );
          assert.equal(state, 'complete');
          const metrics = engine.metrics();
          assert.ok(metrics.retryTimersFired >= 2, `timers fired: ${metrics.retryTimersFired}`);
          assert.equal(metrics.readyTasksEvaluated, 0, 'no poller ran');
        },
      );
    });

    it('finds a retry by polling when no timer is held', async () => {
      await withEngine(
        { orchestrationMode: 'EventDrivenOnly', readinessMode: 'PollingOnly', readinessPollIntervalMs: 50 },
        async (engine) => {
          const created = await engine.createTask({
            namespace: 'rust_e2e_retry',
            name: 'retry_mechanics_test',
            version: retry.template.version,
            context: { run: randomUUID() },
          });
          const state = await runTask(created.taskUuid, 'worker_rust_e2e_retry_queue', (_, attempt) =>
            attempt < 2 ? retryableFailure() : success({ attempts: attempt }),
          );
          assert.equal(state, 'complete');
          assert.equal(engine.metrics().retryTimersScheduled, 0);
          assert.ok(engine.metrics().readyTasksEvaluated >= 1);
        },
      );
    });

    it('sets timers for retries that were already waiting when it started', async () => {
      const first = new OrchestrationEngine({ db: t.db, registry, orchestrationMode: 'EventDrivenOnly' });
      await first.start();
      const created = await first.createTask({
        namespace: 'rust_e2e_retry',
        name: 'retry_mechanics_test',
        version: retry.template.version,
        context: { run: randomUUID() },
      });
      await first.stop();
      // the first attempt fails with no engine running; the result is applied here by hand
      await work('worker_rust_e2e_retry_queue', () => retryableFailure());
      await t.db.query('SELECT * FROM tasker.process_step_results($1, NULL, 20, 0)', [
        'orchestration_step_results',
      ]);
      assert.equal(await taskState(created.taskUuid), 'waiting_for_retry');
      await withEngine(
        { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
        async (engine) => {
          const state = await runTask(created.taskUuid, 'worker_rust_e2e_retry_queue', (_, attempt) =>
            success({ attempts: attempt }),
          );
          assert.equal(state, 'complete');
          assert.ok(engine.metrics().retryTimersFired >= 1);
        },
      );
    });

    it('leaves unapplied results in the queue when it is stopped, for the next engine', async () => {
      const engine = new OrchestrationEngine({ db: t.db, registry, orchestrationMode: 'EventDrivenOnly' });
      await engine.start();
      const created = await engine.createTask(diamondRequest());
      await engine.stop();
      await engine.stop();
      assert.equal(engine.health().status, 'stopped');
      await work('worker_diamond_workflow_ts_queue', (name) => success({ step: name }));
      assert.equal(await taskState(created.taskUuid), 'steps_in_process');
      // push only: the results that arrived while no engine ran are caught up at subscription
      await withEngine(
        { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
        async () => {
          const state = await runTask(created.taskUuid, 'worker_diamond_workflow_ts_queue', (name) =>
            success({ step: name }),
          );
          assert.equal(state, 'complete');
        },
      );
    });
  });
}

describe('engine settings', () => {
  it('has explicit defaults', () => {
    const settings = engineSettings();
    assert.equal(settings.orchestrationMode, 'Hybrid');
    assert.equal(settings.readinessMode, 'Hybrid');
    assert.equal(settings.shutdownTimeoutMs, 30_000);
    assert.equal(settings.createBatchSize, 32);
    assert.equal(settings.createBatchesInFlight, 2);
    assert.equal(settings.createQueueCapacity, 1000);
  });

  it('refuses creation batches of no task or with no transaction in flight', () => {
    for (const overrides of [
      { createBatchSize: 0 },
      { createBatchesInFlight: 0 },
      { createBatchSize: 1001 },
    ]) {
      assert.throws(
        () => engineSettings(overrides),
        (error: unknown) =>
          error instanceof ValidationError && error.issues.some((issue) => issue.field in overrides),
        JSON.stringify(overrides),
      );
    }
  });

  it('refuses unknown keys, unknown modes and out-of-range numbers, naming each', () => {
    assert.throws(
      () =>
        engineSettings({
          orchestrationMode: 'Sometimes',
          shutdownTimeoutMs: 5,
          colour: 'blue',
        } as unknown as Parameters<typeof engineSettings>[0]),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['colour', 'orchestrationMode', 'shutdownTimeoutMs'].every((field) =>
          error.issues.some((issue) => issue.field === field),
        ),
    );
  });
});
