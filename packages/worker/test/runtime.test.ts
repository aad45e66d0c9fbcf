/**
 * The worker runtime against both backends: whole tasks run by push and by polling (results applied
 * inline), bounded concurrency with deferred notified work, classified handler failures (timeout,
 * non-Error throw, unknown handler, unusable claim), graceful and deadline-bounded shutdown with
 * lease-based recovery, and supervised loops restarted after injected database faults.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  createTask,
  type JsonValue,
  jsonLogger,
  parseTemplate,
  sleep,
  TASKER_MIGRATIONS,
  type TaskTemplate,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
import type { Database, ListenHandlers, ListenSession, Queryable, QueryResult, Row } from '@tasker/db';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { Pgmq, workerQueueName } from '@tasker/pgmq';
import {
  defineHandler,
  ERROR_TYPES,
  HandlerRegistry,
  INVALID_CLAIM_ERROR_TYPE,
  TaskerWorker,
  type TaskerWorkerOptions,
  WorkerStateError,
} from '../src/index.ts';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The real database with switches that inject faults into the worker's two hops. */
class FaultyDatabase implements Database {
  readonly inner: Database;
  /** Every claim fails while set. */
  failClaims = false;
  /** The next n completion calls fail. */
  failCompletions = 0;
  /** Rewrites the context of each claimed row. */
  mutateClaim: ((context: Record<string, unknown>) => void) | null = null;

  constructor(inner: Database) {
    this.inner = inner;
  }

  get backend(): Database['backend'] {
    return this.inner.backend;
  }

  async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    if (sql.includes('claim_step_messages')) {
      if (this.failClaims) throw new Error('injected claim failure');
      const result = await this.inner.query<R>(sql, params);
      const mutate = this.mutateClaim;
      if (mutate) {
        for (const row of result.rows) {
          const context = (row as Row).context;
          if (isObject(context)) mutate(context);
        }
      }
      return result;
    }
    if (sql.includes('complete_step_message') && this.failCompletions > 0) {
      this.failCompletions--;
      throw new Error('injected completion failure');
    }
    return this.inner.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.inner.exec(sql);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.inner.transaction(fn);
  }

  openListenSession(handlers: ListenHandlers): Promise<ListenSession> {
    return this.inner.openListenSession(handlers);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface StepSpec {
  name: string;
  callable: string;
  deps?: string[];
  timeoutSeconds?: number;
  maxAttempts?: number;
}

function template(namespace: string, name: string, steps: StepSpec[]): TaskTemplate {
  const lines = [`name: ${name}`, `namespace_name: ${namespace}`, 'version: 1.0.0', 'steps:'];
  for (const step of steps) {
    lines.push(`  - name: ${step.name}`, `    handler: {callable: ${step.callable}}`);
    if (step.deps) lines.push(`    dependencies: [${step.deps.join(', ')}]`);
    if (step.timeoutSeconds !== undefined) lines.push(`    timeout_seconds: ${step.timeoutSeconds}`);
    // A long backoff: a retryable failure stays in waiting_for_retry for the whole test.
    lines.push(
      `    retry: {max_attempts: ${step.maxAttempts ?? 1}, backoff_base_ms: 60000, max_backoff_ms: 60000}`,
    );
  }
  return parseTemplate(lines.join('\n'), { source: 'runtime-test' });
}

function valueIn(result: JsonValue | undefined): number {
  if (isObject(result) && typeof result.value === 'number') return result.value;
  throw new Error(`no value in ${JSON.stringify(result)}`);
}

/** Waits until `check` holds, polling; fails with `what` after a generous deadline. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const LOGGER = process.env.TASKER_TEST_LOG ? jsonLogger('runtime-test', 'debug') : undefined;

/** Handlers of a linear task a → b → c: 1, +1, +1. */
function linearHandlers(): HandlerRegistry {
  const registry = new HandlerRegistry();
  registry.register(
    'Rt.First',
    defineHandler('Rt.First', {}, () => ({ value: 1 })),
  );
  registry.register(
    'Rt.Next',
    defineHandler('Rt.Next', {}, ({ context }) => {
      const [previous] = Object.values(context.dependencyResults).sort(
        (x, y) => valueIn(y.result) - valueIn(x.result),
      );
      return { value: valueIn(previous?.result) + 1 };
    }),
  );
  return registry;
}

const LINEAR: StepSpec[] = [
  { name: 'a', callable: 'Rt.First' },
  { name: 'b', callable: 'Rt.Next', deps: ['a'] },
  { name: 'c', callable: 'Rt.Next', deps: ['b'] },
];

type StepRow = {
  state: string;
  attempts: number;
  results: unknown;
};

for (const backend of BACKENDS) {
  describe(`worker runtime (${backend})`, () => {
    let t: TestDatabase;
    let db: FaultyDatabase;
    let pgmq: Pgmq;
    let namespaces = 0;
    const workers: TaskerWorker[] = [];

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      db = new FaultyDatabase(t.db);
      pgmq = new Pgmq(t.db);
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((worker) => worker.stop()));
      db.failClaims = false;
      db.failCompletions = 0;
      db.mutateClaim = null;
    });
    after(() => t.dispose());

    /** A namespace of its own per test, so that no test sees another's messages. */
    function namespace(label: string): string {
      namespaces += 1;
      return `rt_${label}_${namespaces}`;
    }

    function worker(
      options: Partial<TaskerWorkerOptions> & Pick<TaskerWorkerOptions, 'handlers' | 'templates'>,
    ): TaskerWorker {
      const created = new TaskerWorker({
        db,
        applyResultsInline: true,
        pollIntervalMs: 50,
        defaultTimeoutMs: 10_000,
        leaseGraceSeconds: 1,
        shutdownTimeoutMs: 10_000,
        restartBackoffMs: { min: 20, max: 200 },
        ...(LOGGER ? { logger: LOGGER } : {}),
        ...options,
      });
      workers.push(created);
      return created;
    }

    async function newTask(tpl: TaskTemplate, context: Record<string, JsonValue> = {}): Promise<string> {
      const registered = await new TemplateRegistry(t.db).register(tpl);
      const request = validateTaskRequest({
        namespace: tpl.namespace_name,
        name: tpl.name,
        version: tpl.version,
        context: { ...context, run: randomUUID() },
      });
      const created = await createTask(t.db, request, registered, { start: { batchSize: 50 } });
      return created.taskUuid;
    }

    async function taskState(task: string): Promise<string | undefined> {
      const { rows } = await t.db.query<{ state: string }>(
        'SELECT current_state AS state FROM tasker.tasks WHERE task_uuid = $1',
        [task],
      );
      return rows[0]?.state;
    }

    async function steps(task: string): Promise<Map<string, StepRow>> {
      const { rows } = await t.db.query<{ name: string } & StepRow>(
        `SELECT ns.name, ws.current_state AS state, ws.attempts, ws.results
         FROM tasker.workflow_steps ws JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
         WHERE ws.task_uuid = $1`,
        [task],
      );
      return new Map(rows.map((row) => [row.name, row]));
    }

    async function step(task: string, name: string): Promise<StepRow> {
      const row = (await steps(task)).get(name);
      assert.ok(row, `step ${name}`);
      return row;
    }

    async function untilTask(task: string, state: string): Promise<void> {
      await waitFor(`task ${task} ${state}`, async () => (await taskState(task)) === state);
    }

    function errorOf(row: StepRow): { error_type: unknown; retryable: unknown; message: unknown } {
      const results = row.results;
      assert.ok(
        isObject(results) && isObject(results.error) && isObject(results.metadata),
        'a failure result',
      );
      return {
        error_type: results.error.error_type,
        retryable: results.metadata.retryable,
        message: results.error.message,
      };
    }

    /** The worker's bookkeeping trails the database: a task is complete before its last call returns. */
    async function idle(w: TaskerWorker): Promise<void> {
      await waitFor('the worker to be idle', () => w.metrics().inFlight === 0);
    }

    async function queueLength(ns: string): Promise<number> {
      return (await pgmq.metrics(workerQueueName(ns))).queueLength;
    }

    it('runs a linear task by push alone (EventDrivenOnly)', async () => {
      const ns = namespace('push');
      const tpl = template(ns, 'linear', LINEAR);
      const w = worker({ handlers: linearHandlers(), templates: [tpl], mode: 'EventDrivenOnly' });
      await w.start();
      assert.deepEqual(w.queues, [workerQueueName(ns)]);
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      const c = await step(task, 'c');
      assert.equal(c.state, 'complete');
      assert.ok(isObject(c.results));
      assert.deepEqual(c.results.result, { value: 3 });
      await idle(w);
      const m = w.metrics();
      assert.equal(m.claims.claimed, 3);
      assert.equal(m.claimSources.poll, 0, 'no poller in EventDrivenOnly');
      assert.equal(m.results.succeeded, 3);
      assert.equal(m.completions.completed, 3);
      assert.equal(m.inFlight, 0);
      assert.equal(await queueLength(ns), 0, 'every step message acked');
      const health = w.health();
      assert.equal(health.status, 'healthy', health.reasons.join('; '));
      assert.equal(health.listenerConnected, true);
      assert.deepEqual(health.loops.map((loop) => loop.name).sort(), [
        'deferred',
        `listen:${workerQueueName(ns)}`,
      ]);

      const stopping = w.stop();
      assert.equal(w.stop(), stopping, 'stop() is idempotent');
      await stopping;
      assert.equal(w.state, 'stopped');
      await assert.rejects(w.start(), WorkerStateError);
    });

    it('runs a linear task by polling alone (PollingOnly)', async () => {
      const ns = namespace('poll');
      const tpl = template(ns, 'linear', LINEAR);
      const w = worker({
        handlers: linearHandlers(),
        templates: [tpl],
        mode: 'PollingOnly',
        pollMinAgeSeconds: 0,
      });
      await w.start();
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      const c = await step(task, 'c');
      assert.ok(isObject(c.results));
      assert.deepEqual(c.results.result, { value: 3 });
      const m = w.metrics();
      // the first step by the poller; each next one claimed by the completion of the one before
      assert.equal(m.claimSources.poll, 1);
      assert.equal(m.claimSources.chained, 2);
      assert.equal(m.claimSources.push + m.claimSources.catch_up + m.claimSources.deferred, 0);
      assert.equal(m.listener, null);
      assert.deepEqual(
        w.health().loops.map((loop) => loop.name),
        ['poller'],
      );
    });

    it('never runs more handlers than maxConcurrentHandlers; deferred notified work still runs', async () => {
      const ns = namespace('cap');
      const parallel = ['p1', 'p2', 'p3', 'p4'];
      const tpl = template(
        ns,
        'fan',
        parallel.map((name) => ({ name, callable: 'Rt.Slow' })),
      );
      let running = 0;
      let most = 0;
      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.Slow',
        defineHandler('Rt.Slow', {}, async () => {
          running += 1;
          most = Math.max(most, running);
          await sleep(30);
          running -= 1;
          return { ok: true };
        }),
      );
      const w = worker({ handlers, templates: [tpl], mode: 'EventDrivenOnly', maxConcurrentHandlers: 1 });
      await w.start();
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      assert.equal(most, 1, 'never two handlers at once');
      const m = w.metrics();
      assert.equal(m.capacity, 1);
      assert.equal(m.results.succeeded, 4);
      // The four ids came in one notification and only one slot was free.
      assert.ok(m.saturated >= 3, `saturated ${m.saturated}`);
      assert.equal(m.claimSources.deferred >= 3, true);
      await waitFor('the deferred set to drain', () => w.metrics().deferred === 0);
      await waitFor('health to show no saturation', () => w.health().status === 'healthy');
    });

    it('drops deferred ids beyond maxDeferredIds and scans the queue instead, losing nothing', async () => {
      const ns = namespace('overflow');
      const parallel = ['p1', 'p2', 'p3', 'p4', 'p5'];
      const tpl = template(
        ns,
        'fan',
        parallel.map((name) => ({ name, callable: 'Rt.Slow' })),
      );
      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.Slow',
        defineHandler('Rt.Slow', {}, async () => {
          await sleep(20);
          return { ok: true };
        }),
      );
      const w = worker({
        handlers,
        templates: [tpl],
        mode: 'EventDrivenOnly',
        maxConcurrentHandlers: 1,
        maxDeferredIds: 1,
      });
      await w.start();
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      const m = w.metrics();
      assert.equal(m.results.succeeded, 5);
      assert.ok(m.deferredDropped >= 1, `dropped ${m.deferredDropped}`);
      assert.equal(await queueLength(ns), 0);
      // The deferred ids are settled by the scan that follows the last free slot.
      await waitFor('the deferred set to drain', () => w.metrics().deferred === 0);
      await waitFor('health to show no saturation', () => w.health().status === 'healthy');
    });

    it('shows a handler past its time limit (here: storing its result is retried) as starvation', async () => {
      const ns = namespace('starve');
      const tpl = template(ns, 'single', [{ name: 'only', callable: 'Rt.First' }]);
      db.failCompletions = 1;
      const w = worker({
        handlers: linearHandlers(),
        templates: [tpl],
        mode: 'EventDrivenOnly',
        defaultTimeoutMs: 100,
        completionBackoffMs: 1500,
      });
      await w.start();
      const task = await newTask(tpl);
      await waitFor('starvation to show', () => w.health().starving);
      const health = w.health();
      assert.equal(health.status, 'degraded');
      assert.ok(
        health.reasons.some((reason) => reason.startsWith('starving')),
        health.reasons.join('; '),
      );
      assert.equal(w.metrics().pastDeadline, 1);
      assert.ok((w.metrics().oldestInFlightAgeMs ?? 0) > 0);
      await untilTask(task, 'complete');
      await waitFor('health to recover', () => w.health().status === 'healthy');
      assert.equal(w.metrics().completions.retries, 1);
    });

    it('fails a handler that hangs past its step timeout (retryable) and keeps serving other steps', async () => {
      const ns = namespace('hang');
      const hang = template(ns, 'hang', [
        { name: 'hang', callable: 'Rt.Hang', timeoutSeconds: 1, maxAttempts: 3 },
      ]);
      const quick = template(ns, 'quick', [{ name: 'quick', callable: 'Rt.Quick' }]);
      let hanging = false;
      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.Hang',
        defineHandler('Rt.Hang', {}, async ({ context }) => {
          hanging = true;
          // Hangs until the executor gives up on it (its signal aborts at the timeout).
          await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
          return { late: true };
        }),
      );
      handlers.register(
        'Rt.Quick',
        defineHandler('Rt.Quick', {}, () => ({ quick: true })),
      );
      const w = worker({ handlers, templates: [hang, quick], mode: 'EventDrivenOnly' });
      await w.start();
      const hangTask = await newTask(hang);
      await waitFor('the hanging handler to start', () => hanging);
      const quickTask = await newTask(quick);
      await untilTask(quickTask, 'complete');
      await waitFor(
        'the hung step to wait for its retry',
        async () => (await step(hangTask, 'hang')).state === 'waiting_for_retry',
      );
      const failure = errorOf(await step(hangTask, 'hang'));
      assert.equal(failure.error_type, ERROR_TYPES.timeout);
      assert.equal(failure.retryable, true);
      assert.equal(await taskState(hangTask), 'waiting_for_retry');
      await idle(w);
      const m = w.metrics();
      assert.equal(m.results.failedRetryable, 1);
      assert.equal(m.results.succeeded, 1);
      assert.equal(m.inFlight, 0);
    });

    it('classifies a thrown non-Error value and an unknown handler', async () => {
      const ns = namespace('fail');
      const odd = template(ns, 'odd', [
        { name: 'throws_string', callable: 'Rt.ThrowString' },
        { name: 'rejects_object', callable: 'Rt.RejectObject' },
      ]);
      const missing = template(ns, 'missing', [{ name: 'nobody', callable: 'Rt.NotRegistered' }]);
      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.ThrowString',
        defineHandler('Rt.ThrowString', {}, () => {
          throw 'plain string';
        }),
      );
      handlers.register(
        'Rt.RejectObject',
        defineHandler('Rt.RejectObject', {}, () => Promise.reject({ code: 7 })),
      );
      const w = worker({ handlers, templates: [odd, missing], mode: 'Hybrid', pollMinAgeSeconds: 0 });
      await w.start();
      const oddTask = await newTask(odd);
      const missingTask = await newTask(missing);
      await untilTask(oddTask, 'error');
      await untilTask(missingTask, 'error');
      // The task fails with its first failed step; the other one may still be running.
      await waitFor('both failures applied', async () =>
        [...(await steps(oddTask)).values()].every((row) => row.state === 'error'),
      );
      const thrown = errorOf(await step(oddTask, 'throws_string'));
      assert.deepEqual(thrown, { error_type: ERROR_TYPES.handler, retryable: true, message: 'plain string' });
      const rejected = errorOf(await step(oddTask, 'rejects_object'));
      assert.equal(rejected.error_type, ERROR_TYPES.handler);
      assert.equal(rejected.retryable, true);
      const notFound = await step(missingTask, 'nobody');
      assert.equal(notFound.state, 'error');
      assert.equal(errorOf(notFound).error_type, ERROR_TYPES.handlerNotFound);
      assert.equal(errorOf(notFound).retryable, false);
      const m = w.metrics();
      assert.equal(m.results.failedRetryable, 2);
      assert.equal(m.results.failedPermanent, 1);
      assert.equal(w.health().status, 'healthy', 'handler faults never hurt the worker');
    });

    it('reports a claim whose context is unusable as a permanent invalid_claim failure', async () => {
      const ns = namespace('invalid');
      const tpl = template(ns, 'single', [{ name: 'only', callable: 'Rt.First' }]);
      db.mutateClaim = (context) => {
        delete context.step_definition;
      };
      const w = worker({ handlers: linearHandlers(), templates: [tpl], mode: 'EventDrivenOnly' });
      await w.start();
      const task = await newTask(tpl);
      await untilTask(task, 'error');
      const failure = errorOf(await step(task, 'only'));
      assert.equal(failure.error_type, INVALID_CLAIM_ERROR_TYPE);
      assert.equal(failure.retryable, false);
      assert.equal(w.metrics().invalidClaims, 1);
    });

    it('stop() stops claiming at once and reports a handler that finishes before the deadline', async () => {
      const ns = namespace('drain');
      const tpl = template(ns, 'single', [{ name: 'only', callable: 'Rt.Gated' }]);
      const started = Promise.withResolvers<void>();
      const gate = Promise.withResolvers<void>();
      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.Gated',
        defineHandler('Rt.Gated', {}, async () => {
          started.resolve();
          await gate.promise;
          return { drained: true };
        }),
      );
      const w = worker({ handlers, templates: [tpl], mode: 'Hybrid', pollMinAgeSeconds: 0 });
      await w.start();
      const first = await newTask(tpl);
      await started.promise;
      const stopping = w.stop();
      assert.equal(w.state, 'stopping');
      const second = await newTask(tpl);
      gate.resolve();
      await stopping;
      assert.equal(await taskState(first), 'complete', 'the in-flight result was reported');
      assert.equal((await step(second, 'only')).state, 'enqueued', 'nothing claimed after stop()');
      assert.equal(await queueLength(ns), 1, "the second task's message waits in the queue");
      const m = w.metrics();
      assert.equal(m.claims.claimed, 1);
      assert.equal(m.completions.completed, 1);
      assert.equal(m.abandoned, 0);
      // Another worker takes the waiting step.
      const next = worker({ handlers, templates: [tpl], mode: 'EventDrivenOnly' });
      await next.start();
      await untilTask(second, 'complete');
    });

    it('stop() abandons a handler past shutdownTimeoutMs; the lease expires and another worker reclaims', async () => {
      const ns = namespace('abandon');
      const tpl = template(ns, 'single', [
        { name: 'only', callable: 'Rt.Stuck', timeoutSeconds: 1, maxAttempts: 3 },
      ]);
      const started = Promise.withResolvers<void>();
      let returned = false;
      const stuck = new HandlerRegistry();
      stuck.register(
        'Rt.Stuck',
        defineHandler('Rt.Stuck', {}, async ({ context }) => {
          started.resolve();
          await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
          returned = true;
          return { too: 'late' };
        }),
      );
      const w = worker({
        handlers: stuck,
        templates: [tpl],
        mode: 'EventDrivenOnly',
        leaseGraceSeconds: 0,
        shutdownTimeoutMs: 100,
      });
      await w.start();
      const task = await newTask(tpl);
      await started.promise;
      await w.stop();
      assert.equal(w.state, 'stopped');
      const abandoned = await step(task, 'only');
      assert.equal(abandoned.state, 'in_progress');
      assert.equal(abandoned.attempts, 1);
      assert.equal(await queueLength(ns), 1, 'the message is not acked');
      const m = w.metrics();
      assert.equal(m.abandoned, 1);
      assert.equal(m.inFlight, 0);
      assert.equal(m.completions.completed + m.completions.lost + m.completions.errors, 0);
      // The handler ends at its timeout; its result is dropped.
      await waitFor('the abandoned handler to return', () => returned);
      await sleep(50);
      assert.equal((await step(task, 'only')).state, 'in_progress', 'the late result was not reported');

      const handlers = new HandlerRegistry();
      handlers.register(
        'Rt.Stuck',
        defineHandler('Rt.Stuck', {}, () => ({ second: true })),
      );
      const next = worker({ handlers, templates: [tpl], mode: 'Hybrid', pollMinAgeSeconds: 0 });
      await next.start();
      await untilTask(task, 'complete');
      assert.equal(next.metrics().claims.reclaimed, 1);
      const done = await step(task, 'only');
      assert.equal(done.attempts, 2);
      assert.ok(isObject(done.results));
      assert.deepEqual(done.results.result, { second: true });
    });

    it('restarts a crashed poller, shows it in health, and retries a failed completion', async () => {
      const ns = namespace('crash');
      const tpl = template(ns, 'linear', LINEAR);
      db.failClaims = true;
      const w = worker({
        handlers: linearHandlers(),
        templates: [tpl],
        mode: 'PollingOnly',
        pollMinAgeSeconds: 0,
      });
      await w.start();
      await waitFor('the poller to crash and restart', () => {
        const poller = w.health().loops.find((loop) => loop.name === 'poller');
        return (poller?.restarts ?? 0) >= 2;
      });
      const degraded = w.health();
      assert.equal(degraded.status, 'degraded');
      assert.ok(degraded.reasons.includes('loop poller is restarting'), degraded.reasons.join('; '));
      assert.equal(degraded.loops[0]?.lastError, 'injected claim failure');

      db.failClaims = false;
      db.failCompletions = 1;
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      await waitFor('the poller to be healthy again', () => w.health().status === 'healthy');
      await idle(w);
      const m = w.metrics();
      assert.equal(m.completions.retries, 1);
      assert.equal(m.completions.completed, 3);
      assert.equal(m.completions.errors, 0);
    });

    it('catches up after the listener reconnects', {
      skip: backend === 'pglite' ? 'PGlite has no connection to lose' : false,
    }, async () => {
      const ns = namespace('reconnect');
      const tpl = template(ns, 'linear', LINEAR);
      const w = worker({ handlers: linearHandlers(), templates: [tpl], mode: 'EventDrivenOnly' });
      await w.start();
      const { rows } = await t.db.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`,
      );
      assert.equal(rows.length, 1, 'one LISTEN connection');
      await t.db.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      // Created while the listener may be down: its notification may be lost, the catch-up is not.
      const task = await newTask(tpl);
      await untilTask(task, 'complete');
      await waitFor('the listener to reconnect', () => (w.metrics().listener?.reconnects ?? 0) >= 1);
      await waitFor('health to recover', () => w.health().status === 'healthy');
    });

    it('a push loop that crashed catches up on what it missed after its restart', async () => {
      const ns = namespace('catchup');
      const tpl = template(ns, 'linear', LINEAR);
      db.failClaims = true;
      const w = worker({ handlers: linearHandlers(), templates: [tpl], mode: 'EventDrivenOnly' });
      await w.start();
      const task = await newTask(tpl);
      await waitFor('the push loop to crash', () =>
        w.health().reasons.includes(`loop listen:${workerQueueName(ns)} is restarting`),
      );
      db.failClaims = false;
      await untilTask(task, 'complete');
      const m = w.metrics();
      assert.ok(m.claimSources.catch_up >= 1, 'the first step came from the catch-up claim');
      await waitFor('health to recover', () => w.health().status === 'healthy');
    });
  });
}
