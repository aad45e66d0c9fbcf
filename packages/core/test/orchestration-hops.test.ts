/**
 * The message-driven hops of DESIGN §3 in SQL (0006): evaluate_task (start, enqueue, finalize),
 * claim_step_messages (lease and claim), complete_step_message (store, ack, hand over or apply
 * inline), process_step_results (apply and ack), process_ready_tasks, and the backoff rule.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  computeBackoffSeconds,
  createTask,
  type RegisteredTemplate,
  validateTaskRequest,
} from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

const RESULTS = 'orchestration_step_results';

type Claim = {
  msg_id: string;
  outcome: 'claimed' | 'reclaimed' | 'lost' | 'stale' | 'malformed';
  context: { step_uuid: string; step_name: string; attempt: number; timeout_seconds: number } | null;
};

type Processed = {
  msg_id: string;
  outcome: 'applied' | 'duplicate' | 'malformed' | 'failed';
  detail: Record<string, unknown>;
};

function failure(retryable: boolean, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    success: false,
    status: 'error',
    result: {},
    error: { message: 'boom', error_type: retryable ? 'retryable_error' : 'permanent_error', retryable },
    metadata: { execution_time_ms: 1, retryable },
    ...extra,
  };
}

for (const backend of BACKENDS) {
  describe(`orchestration hops (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let pgmq: Pgmq;
    let diamond: RegisteredTemplate;
    let retry: RegisteredTemplate;
    let once: RegisteredTemplate;
    const worker = randomUUID();
    const diamondQueue = 'worker_diamond_workflow_ts_queue';

    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue(RESULTS);
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
      retry = await manager.registerExample('rust_e2e_retry/retry_mechanics_test');
      once = await manager.registerExample('test_sql/boundary_max_attempts_one');
    });
    after(() => t.dispose());

    async function evaluate(task: LifecycleTask): Promise<Record<string, unknown>> {
      const { rows } = await t.db.query<{ r: Record<string, unknown> }>(
        'SELECT tasker.evaluate_task($1, $2, 50) AS r',
        [task.uuid, worker],
      );
      assert.ok(rows[0]);
      return rows[0].r;
    }

    async function claim(queue: string, ids: number[] | null = null, by = worker): Promise<Claim[]> {
      const { rows } = await t.db.query<Claim>(
        'SELECT msg_id::text, outcome, context FROM tasker.claim_step_messages($1, $2, 10, 0, $3, 30, 5)',
        [queue, ids, by],
      );
      return rows;
    }

    async function complete(
      queue: string,
      c: Claim,
      results: Record<string, unknown>,
      options: { inline?: boolean; by?: string; attempt?: number } = {},
    ): Promise<Record<string, unknown>> {
      assert.ok(c.context);
      const { rows } = await t.db.query<{ r: Record<string, unknown> }>(
        'SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, $7, $8, 50) AS r',
        [
          queue,
          c.msg_id,
          c.context.step_uuid,
          options.by ?? worker,
          options.attempt ?? c.context.attempt,
          JSON.stringify(results),
          RESULTS,
          options.inline ?? false,
        ],
      );
      assert.ok(rows[0]);
      return rows[0].r;
    }

    async function processResults(ids: number[] | null = null): Promise<Processed[]> {
      const { rows } = await t.db.query<Processed>(
        'SELECT msg_id::text, outcome, detail FROM tasker.process_step_results($1, $2, 20, 0, $3, 50)',
        [RESULTS, ids, worker],
      );
      return rows;
    }

    async function taskTransitions(task: LifecycleTask): Promise<string[]> {
      const { rows } = await t.db.query<{ s: string }>(
        `SELECT coalesce(from_state, '-') || '>' || to_state AS s FROM tasker.task_transitions
         WHERE task_uuid = $1 ORDER BY sort_key`,
        [task.uuid],
      );
      return rows.map((row) => row.s);
    }

    async function queueLength(queue: string): Promise<number> {
      return (await pgmq.metrics(queue)).queueLength;
    }

    /** Runs the task to its end through the hops alone; returns the claimed step names per wave. */
    async function run(task: LifecycleTask, queue: string, inline: boolean): Promise<string[][]> {
      const waves: string[][] = [];
      for (let round = 0; round < 10; round++) {
        const claims = (await claim(queue)).filter((c) => c.outcome === 'claimed');
        if (claims.length === 0) break;
        waves.push(claims.map((c) => c.context?.step_name ?? '').sort());
        for (const c of claims) {
          const done = await complete(queue, c, successResult({ step: c.context?.step_name ?? '' }), {
            inline,
          });
          assert.equal(done.completed, true);
        }
        if (!inline) {
          const processed = await processResults();
          assert.deepEqual(
            processed.map((p) => p.outcome),
            claims.map(() => 'applied'),
          );
        }
      }
      assert.equal(await task.taskState(), 'complete');
      return waves;
    }

    it('starts a pending task: steps enqueued with their messages, task in steps_in_process', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      const result = await evaluate(task);
      assert.equal(result.from_state, 'pending');
      assert.equal(result.state, 'steps_in_process');
      assert.equal(result.execution_status, 'has_ready_steps');
      assert.equal(result.enqueued, 1);
      assert.equal(await task.stepState('diamond_start_ts'), 'enqueued');
      assert.deepEqual(await taskTransitions(task), [
        '->pending',
        'pending>initializing',
        'initializing>enqueuing_steps',
        'enqueuing_steps>steps_in_process',
      ]);
      const [message] = await pgmq.read<Record<string, unknown>>(diamondQueue, {
        visibilityTimeoutSeconds: 0,
        limit: 10,
      });
      assert.deepEqual(message?.message, {
        task_uuid: task.uuid,
        step_uuid: task.stepUuid('diamond_start_ts'),
        correlation_id: task.created.correlationId,
      });
      // a second evaluation changes nothing: the step is in flight
      const again = await evaluate(task);
      assert.equal(again.state, 'steps_in_process');
      assert.equal(again.enqueued, 0);
      assert.equal((await taskTransitions(task)).length, 4);
      await pgmq.purgeQueue(diamondQueue);
    });

    for (const inline of [false, true]) {
      it(`runs a diamond to completion through the hops (${inline ? 'inline apply' : 'result queue'})`, async () => {
        const task = await manager.createTask(diamond, { even_number: 6 });
        await evaluate(task);
        const waves = await run(task, diamondQueue, inline);
        assert.deepEqual(waves, [
          ['diamond_start_ts'],
          ['diamond_branch_b_ts', 'diamond_branch_c_ts'],
          ['diamond_end_ts'],
        ]);
        for (const name of task.stepNames()) {
          const row = await task.stepRow(name);
          assert.equal(row.current_state, 'complete');
          assert.equal(row.attempts, 1);
        }
        const { rows } = await t.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM tasker.workflow_step_result_audit WHERE task_uuid = $1',
          [task.uuid],
        );
        assert.equal(rows[0]?.n, 4, 'one result audit row per step');
        assert.equal(await queueLength(diamondQueue), 0, 'every step message acked');
        assert.equal(await queueLength(RESULTS), 0, 'every result message acked');
        const transitions = await taskTransitions(task);
        assert.equal(transitions.at(-1), 'evaluating_results>complete');
      });
    }

    it('claims the steps a result made ready in the completing transaction (chained claims)', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await evaluate(task);
      let [current] = await claim(diamondQueue);
      const ran: string[] = [];
      const pending: Claim[] = [];
      while (current) {
        assert.ok(current.context);
        ran.push(current.context.step_name);
        const { rows } = await t.db.query<{ r: { completed: boolean; claims?: Claim[] } }>(
          'SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, $7, true, 50, 10, 30, 5) AS r',
          [
            diamondQueue,
            current.msg_id,
            current.context.step_uuid,
            worker,
            current.context.attempt,
            JSON.stringify(successResult({ step: current.context.step_name })),
            RESULTS,
          ],
        );
        assert.equal(rows[0]?.r.completed, true);
        for (const next of rows[0]?.r.claims ?? []) {
          assert.equal(next.outcome, 'claimed');
          pending.push(next);
        }
        current = pending.shift();
      }
      assert.deepEqual(ran.sort(), [
        'diamond_branch_b_ts',
        'diamond_branch_c_ts',
        'diamond_end_ts',
        'diamond_start_ts',
      ]);
      assert.equal(await task.taskState(), 'complete');
      assert.equal(await queueLength(diamondQueue), 0);
      assert.deepEqual(await taskTransitions(task), [
        '->pending',
        'pending>initializing',
        'initializing>enqueuing_steps',
        'enqueuing_steps>steps_in_process',
        'steps_in_process>evaluating_results',
        'evaluating_results>complete',
      ]);
    });

    it('keeps a task in steps_in_process while a sibling still runs', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await evaluate(task);
      const [start] = await claim(diamondQueue);
      assert.ok(start);
      await complete(diamondQueue, start, successResult({ value: 36 }), { inline: true });
      const branches = await claim(diamondQueue);
      assert.equal(branches.length, 2);
      const before = (await taskTransitions(task)).length;
      const [b, c] = branches;
      assert.ok(b && c);
      await complete(diamondQueue, b, successResult({ value: 1 }), { inline: true });
      assert.equal(await task.taskState(), 'steps_in_process');
      assert.equal((await taskTransitions(task)).length, before, 'no transition while the sibling runs');
      await complete(diamondQueue, c, successResult({ value: 2 }), { inline: true });
      assert.equal(await task.stepState('diamond_end_ts'), 'enqueued');
      await pgmq.purgeQueue(diamondQueue);
    });

    it('acks a redelivered result without applying it twice', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await evaluate(task);
      const [start] = await claim(diamondQueue);
      assert.ok(start?.context);
      await complete(diamondQueue, start, successResult({ value: 36 }));
      const [id] = await pgmq
        .send(RESULTS, {
          task_uuid: task.uuid,
          step_uuid: start.context.step_uuid,
          correlation_id: task.created.correlationId,
        })
        .then((value) => [value]);
      const processed = await processResults();
      assert.deepEqual(processed.map((p) => p.outcome).sort(), ['applied', 'duplicate']);
      assert.equal(await queueLength(RESULTS), 0);
      assert.ok(id);
      const transitions = await task.stepTransitions('diamond_start_ts');
      assert.equal(transitions.filter((row) => row.to_state === 'complete').length, 1);
      await pgmq.purgeQueue(diamondQueue);
    });

    it('archives a result message without a step and reports it', async () => {
      await pgmq.send(RESULTS, { hello: 'world' });
      const processed = await processResults();
      assert.deepEqual(
        processed.map((p) => p.outcome),
        ['malformed'],
      );
      assert.equal(await queueLength(RESULTS), 0);
    });

    it('only polls messages old enough, but takes notified ones at once', async () => {
      const id = await pgmq.send(RESULTS, { hello: 'again' });
      const { rows } = await t.db.query<Processed>(
        'SELECT msg_id::text, outcome FROM tasker.process_step_results($1, NULL, 20, 3600, $2, 50)',
        [RESULTS, worker],
      );
      assert.equal(rows.length, 0, 'younger than the age gate');
      assert.deepEqual(
        (await processResults([id])).map((p) => p.outcome),
        ['malformed'],
      );
    });

    it('retries a retryable failure after its backoff, then completes', async () => {
      const task = await manager.createTask(retry, {});
      const queue = 'worker_rust_e2e_retry_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.ok(first?.context);
      assert.equal(first.context.attempt, 1);
      assert.equal(first.context.timeout_seconds, 30);
      const done = await complete(queue, first, failure(true), { inline: true });
      const applied = done.applied as { step_state: string; task: { state: string; next_retry_at: string } };
      assert.equal(applied.step_state, 'waiting_for_retry');
      assert.equal(applied.task.state, 'waiting_for_retry');
      const row = await task.stepRow('fail_twice_then_succeed');
      assert.equal(row.backoff_request_seconds, 1, 'backoff_base_ms 100 rounds up to one second');
      assert.ok(applied.task.next_retry_at, 'the retry time is reported for the timer');
      // not due yet: evaluation leaves it alone
      assert.equal((await evaluate(task)).state, 'waiting_for_retry');
      await task.elapseBackoff('fail_twice_then_succeed');
      const woken = await evaluate(task);
      assert.equal(woken.state, 'steps_in_process');
      assert.equal(woken.enqueued, 1);
      const [second] = await claim(queue);
      assert.equal(second?.context?.attempt, 2);
      assert.ok(second);
      await complete(queue, second, successResult({ ok: true }), { inline: true });
      assert.equal(await task.taskState(), 'complete');
      const transitions = await taskTransitions(task);
      assert.ok(transitions.includes('evaluating_results>waiting_for_retry'));
      assert.ok(transitions.includes('waiting_for_retry>enqueuing_steps'));
    });

    it('fails the step and the task on a permanent failure', async () => {
      const task = await manager.createTask(retry, {});
      const queue = 'worker_rust_e2e_retry_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.ok(first);
      await complete(queue, first, failure(false));
      const [processed] = await processResults();
      assert.equal(processed?.outcome, 'applied');
      assert.equal(await task.stepState('fail_twice_then_succeed'), 'error');
      assert.equal(await task.taskState(), 'error');
      const transitions = await taskTransitions(task);
      assert.deepEqual(transitions.slice(-3), [
        'steps_in_process>evaluating_results',
        'evaluating_results>blocked_by_failures',
        'blocked_by_failures>error',
      ]);
    });

    it('records the results of steps still in flight before a failed task ends in error', async () => {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await evaluate(task);
      const [start] = await claim(diamondQueue);
      assert.ok(start);
      await complete(diamondQueue, start, successResult({ value: 36 }), { inline: true });
      const [b, c] = await claim(diamondQueue);
      assert.ok(b && c);
      await complete(diamondQueue, b, failure(false), { inline: true });
      assert.equal(await task.taskState(), 'blocked_by_failures', 'a sibling still runs');
      await complete(diamondQueue, c, successResult({ value: 2 }), { inline: true });
      assert.equal(await task.taskState(), 'error');
      assert.equal(await task.stepState(c.context?.step_name ?? ''), 'complete');
      assert.equal(await task.stepState('diamond_end_ts'), 'pending', 'nothing is enqueued after a failure');
      assert.equal(await queueLength(diamondQueue), 0);
    });

    it('fails a retryable failure when the attempts are used up', async () => {
      const task = await manager.createTask(once, {});
      const queue = 'worker_test_sql_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.ok(first);
      await complete(queue, first, failure(true), { inline: true });
      assert.equal(await task.stepState('boundary_test_step'), 'error');
      assert.equal(await task.taskState(), 'error');
    });

    it('honours a backoff hint', async () => {
      const task = await manager.createTask(retry, {});
      const queue = 'worker_rust_e2e_retry_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.ok(first);
      const hinted = failure(true, {
        orchestration_metadata: { backoff_hint: { backoff_type: 'ServerRequested', delay_seconds: 0.5 } },
      });
      await complete(queue, first, hinted, { inline: true });
      assert.equal((await task.stepRow('fail_twice_then_succeed')).backoff_request_seconds, 1);
      const large = await manager.createTask(retry, {});
      await evaluate(large);
      const [second] = await claim(queue);
      assert.ok(second);
      const capped = failure(true, {
        orchestration_metadata: { backoff_hint: { backoff_type: 'RateLimit', delay_seconds: 3600 } },
      });
      await complete(queue, second, capped, { inline: true });
      assert.equal(
        (await large.stepRow('fail_twice_then_succeed')).backoff_request_seconds,
        1,
        'capped at max_backoff_ms (1000)',
      );
    });

    it('reclaims a step whose lease ran out, and refuses the first worker its late result', async () => {
      const task = await manager.createTask(retry, {});
      const queue = 'worker_rust_e2e_retry_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.equal(first?.outcome, 'claimed');
      assert.equal((await claim(queue)).length, 0, 'leased: invisible to others');
      await t.db.query('UPDATE pgmq.messages SET vt = now() WHERE queue_name = $1', [queue]);
      const other = randomUUID();
      const [second] = await claim(queue, null, other);
      assert.equal(second?.outcome, 'reclaimed');
      assert.equal(second?.context?.attempt, 2);
      assert.ok(first && second);
      const late = await complete(queue, first, successResult({ late: true }), { inline: true });
      assert.deepEqual(late, { completed: false, reason: 'reclaimed', step_state: 'in_progress' });
      const done = await complete(queue, second, successResult({ ok: true }), { inline: true, by: other });
      assert.equal(done.completed, true);
      assert.equal(await task.taskState(), 'complete');
      const stored = (await task.stepRow('fail_twice_then_succeed')).results as { result?: unknown } | null;
      assert.deepEqual(stored?.result, { ok: true });
      assert.equal(await queueLength(queue), 0);
    });

    it('fails a step as worker_lost when its lease runs out with no attempt left', async () => {
      const task = await manager.createTask(once, {});
      const queue = 'worker_test_sql_queue';
      await evaluate(task);
      const [first] = await claim(queue);
      assert.equal(first?.outcome, 'claimed');
      await t.db.query('UPDATE pgmq.messages SET vt = now() WHERE queue_name = $1', [queue]);
      const [second] = await claim(queue);
      assert.equal(second?.outcome, 'lost');
      assert.equal(await queueLength(queue), 0);
      assert.equal((await processResults())[0]?.outcome, 'applied');
      assert.equal(await task.stepState('boundary_test_step'), 'error');
      assert.equal(await task.taskState(), 'error');
      const stored = (await task.stepRow('boundary_test_step')).results as {
        error?: { error_type?: string };
      };
      assert.equal(stored.error?.error_type, 'worker_lost');
    });

    it('acks a step message whose step is no longer enqueued as stale, and archives a malformed one', async () => {
      const task = await manager.createTask(once, {});
      const queue = 'worker_test_sql_queue';
      await evaluate(task);
      await task.resolveManually('boundary_test_step');
      await pgmq.send(queue, { nothing: true });
      const outcomes = (await claim(queue)).map((c) => c.outcome).sort();
      assert.deepEqual(outcomes, ['malformed', 'stale']);
      assert.equal(await queueLength(queue), 0);
    });

    it('creates and starts a task in one statement (createTask with start)', async () => {
      const found = await manager.registry.get('test_sql', 'boundary_max_attempts_one', '1.0.0');
      const request = validateTaskRequest({
        namespace: 'test_sql',
        name: 'boundary_max_attempts_one',
        version: '1.0.0',
        context: { run: randomUUID() },
      });
      const created = await createTask(t.db, request, found, { start: { batchSize: 10 } });
      assert.equal(created.evaluation?.state, 'steps_in_process');
      assert.equal(created.evaluation?.enqueued, 1);
      await pgmq.purgeQueue('worker_test_sql_queue');
    });

    it('discovers pending tasks and starts them (process_ready_tasks)', async () => {
      const task = await manager.createTask(once, {});
      const { rows } = await t.db.query<{ r: { task_uuid: string; state: string } }>(
        'SELECT r FROM tasker.process_ready_tasks(50, $1, 50) r',
        [worker],
      );
      const mine = rows.find((row) => row.r.task_uuid === task.uuid);
      assert.equal(mine?.r.state, 'steps_in_process');
      assert.equal(await task.stepState('boundary_test_step'), 'enqueued');
      await pgmq.purgeQueue('worker_test_sql_queue');
    });

    it('computes the backoff as computeBackoffSeconds does', async () => {
      for (const backoff of ['exponential', 'linear', 'fibonacci', 'none'] as const) {
        for (const attempts of [1, 2, 3, 5, 8]) {
          const retryBlock = { backoff, backoff_base_ms: 700, max_backoff_ms: 20_000 };
          const { rows } = await t.db.query<{ s: number }>(
            'SELECT tasker.retry_delay_seconds($1::jsonb, $2, NULL, 2, 0) AS s',
            [JSON.stringify(retryBlock), attempts],
          );
          const expected = computeBackoffSeconds(
            { strategy: backoff, baseMs: 700, maxMs: 20_000, multiplier: 2, jitter: 0 },
            attempts,
          );
          assert.equal(rows[0]?.s, expected, `${backoff} after attempt ${attempts}`);
        }
      }
    });
  });
}
