/**
 * Worker processes that die or are told to stop while a step runs (AUDIT O-2, O-5): kill -9 mid-step
 * (the step is reclaimed when its lease runs out and the task completes, with one result applied),
 * SIGTERM with a handler that finishes within the deadline (its result is reported), and SIGTERM
 * with a handler that outlives the deadline (the process still exits, nothing is acked, and another
 * worker finishes the step). The engine runs in the test process.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { type JsonObject, sleep, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import { createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine, TaskWatcher } from '@tasker/orchestration';
import { type Child, kill, startChild } from './support/processes.ts';

const WAIT_MS = 60_000;
/** Workers poll without an age gate, so a message whose lease ran out is taken at once. */
const WORKER = { pollIntervalMs: 100, pollMinAgeSeconds: 0, leaseGraceSeconds: 1 };

describe('worker process faults (postgres)', () => {
  let t: TestDatabase;
  let url: string;
  let engine: OrchestrationEngine;
  let watcher: TaskWatcher;
  const children: Child[] = [];

  before(async () => {
    t = await createTestDatabase('postgres', { migrations: TASKER_MIGRATIONS });
    assert.ok(t.url);
    url = t.url;
    engine = new OrchestrationEngine({
      db: t.db,
      registry: new TemplateRegistry(t.db),
      shutdownTimeoutMs: 5000,
    });
    await engine.start();
    watcher = await TaskWatcher.open(t.db);
  });

  // each test starts its own workers: none may pick up another test's step
  afterEach(async () => {
    for (const child of children) child.process.kill('SIGKILL');
    await Promise.all(children.splice(0).map((child) => child.exited));
  });

  after(async () => {
    await engine.stop();
    await watcher.close();
    await t.dispose();
  });

  async function worker(options: JsonObject = {}): Promise<Child> {
    const child = await startChild('worker', url, { ...WORKER, ...options });
    children.push(child);
    return child;
  }

  async function sleepyTask(context: JsonObject): Promise<{ task: string; step: string }> {
    const created = await engine.createTask({
      namespace: 'e2e_support',
      name: 'sleepy',
      version: '1.0.0',
      context: { ...context, _id: crypto.randomUUID() },
    });
    const { rows } = await t.db.query<{ workflow_step_uuid: string }>(
      'SELECT workflow_step_uuid FROM tasker.workflow_steps WHERE task_uuid = $1',
      [created.taskUuid],
    );
    const step = rows[0]?.workflow_step_uuid;
    assert.ok(step);
    return { task: created.taskUuid, step };
  }

  async function stepRow(step: string): Promise<{ current_state: string; attempts: number; audits: number }> {
    const { rows } = await t.db.query<{ current_state: string; attempts: number; audits: number }>(
      `SELECT current_state, attempts,
              (SELECT count(*)::int FROM tasker.workflow_step_result_audit a WHERE a.workflow_step_uuid = $1) AS audits
       FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
      [step],
    );
    assert.ok(rows[0]);
    return rows[0];
  }

  async function untilRunning(step: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while ((await stepRow(step)).current_state !== 'in_progress') {
      if (Date.now() > deadline) throw new Error(`step ${step} never started`);
      await sleep(20);
    }
  }

  async function stepMessages(): Promise<number> {
    const { rows } = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pgmq.messages WHERE queue_name = 'worker_e2e_support_queue'`,
    );
    return rows[0]?.n ?? 0;
  }

  // The registry needs the sleepy template before a task can be created: the first worker registers it.
  it('kill -9 mid-step: the step is reclaimed after its lease and the task completes once', async () => {
    const doomed = await worker();
    const { task, step } = await sleepyTask({ sleep_ms: 600_000, retry_sleep_ms: 0 });
    await untilRunning(step);
    await kill(doomed);
    assert.equal((await stepRow(step)).current_state, 'in_progress', 'the dead worker reported nothing');
    await worker();
    assert.equal(await watcher.wait(task, WAIT_MS), 'complete');
    const row = await stepRow(step);
    assert.equal(row.attempts, 2, 'the lost attempt counts');
    assert.equal(row.audits, 1, 'one result applied');
    const { rows } = await t.db.query<{ event: string }>(
      'SELECT event FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = $1 ORDER BY sort_key',
      [step],
    );
    assert.ok(rows.some((r) => r.event === 'reclaim'));
    assert.equal(await stepMessages(), 0);
  });

  it('SIGTERM: a handler that finishes within the deadline reports its result, and the process exits 0', async () => {
    const child = await worker({ shutdownTimeoutMs: 20_000 });
    const { task, step } = await sleepyTask({ sleep_ms: 1500 });
    await untilRunning(step);
    child.process.kill('SIGTERM');
    assert.equal(await child.exited, 0);
    assert.notEqual(
      (await stepRow(step)).current_state,
      'in_progress',
      'the result was reported before exit',
    );
    assert.equal(await watcher.wait(task, WAIT_MS), 'complete');
    const row = await stepRow(step);
    assert.deepEqual([row.attempts, row.audits], [1, 1]);
  });

  it('SIGTERM: a handler past the deadline is abandoned unacked, and another worker finishes the step', async () => {
    const child = await worker({ shutdownTimeoutMs: 1000 });
    const { task, step } = await sleepyTask({ sleep_ms: 600_000, retry_sleep_ms: 0 });
    await untilRunning(step);
    child.process.kill('SIGTERM');
    assert.equal(await child.exited, 0, 'the process exits by its deadline, not after the handler');
    assert.equal((await stepRow(step)).current_state, 'in_progress');
    assert.equal(await stepMessages(), 1, 'the message was not acked');
    await worker();
    assert.equal(await watcher.wait(task, WAIT_MS), 'complete');
    const row = await stepRow(step);
    assert.deepEqual([row.attempts, row.audits], [2, 1]);
  });
});
