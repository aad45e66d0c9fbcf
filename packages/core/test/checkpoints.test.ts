/**
 * `tasker.checkpoint_step` (0008, reference C §1.8): a checkpoint is stored only while the step is in
 * progress under the caller's claim (attempts = the claim token, claimed by the caller); its history
 * grows; the claim's lease (the step message's visibility) is extended; attempts and transitions do
 * not move; a reclaim's context carries the stored checkpoint.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

const QUEUE = 'worker_diamond_workflow_ts_queue';
const RESULTS = 'orchestration_step_results';

type Claim = {
  msg_id: string;
  outcome: string;
  context: { step_uuid: string; attempt: number; checkpoint: Record<string, unknown> | null };
};

type Checkpoint = {
  cursor: unknown;
  items_processed: number;
  timestamp: string;
  accumulated_results: unknown;
  history: Array<{ cursor: unknown; timestamp: string }>;
};

for (const backend of BACKENDS) {
  describe(`checkpoint_step (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let diamond: RegisteredTemplate;
    const worker = randomUUID();

    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      await new Pgmq(t.db).createQueue(RESULTS);
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
    });
    after(() => t.dispose());

    /** A task whose first step is claimed by `worker`. */
    async function claimed(): Promise<{ task: LifecycleTask; claim: Claim }> {
      const task = await manager.createTask(diamond, { even_number: 6 });
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      const claim = await claimBy(worker, task);
      assert.equal(claim.outcome, 'claimed');
      return { task, claim };
    }

    async function claimBy(by: string, task: LifecycleTask): Promise<Claim> {
      const { rows } = await t.db.query<Claim>(
        'SELECT msg_id::text, outcome, context FROM tasker.claim_step_messages($1, NULL, 10, 0, $2, 30, 5)',
        [QUEUE, by],
      );
      const mine = rows.find((row) => row.context?.step_uuid === task.stepUuid('diamond_start_ts'));
      assert.ok(mine, 'the step was claimed');
      return mine;
    }

    async function checkpoint(
      claim: Claim,
      body: Record<string, unknown>,
      options: { by?: string; attempt?: number; lease?: number } = {},
    ): Promise<boolean> {
      const { rows } = await t.db.query<{ stored: boolean }>(
        'SELECT tasker.checkpoint_step($1, $2, $3, $4::jsonb, $5, $6, $7) AS stored',
        [
          claim.context.step_uuid,
          options.by ?? worker,
          options.attempt ?? claim.context.attempt,
          JSON.stringify(body),
          QUEUE,
          claim.msg_id,
          options.lease ?? 60,
        ],
      );
      return rows[0]?.stored === true;
    }

    async function stored(
      claim: Claim,
    ): Promise<{ checkpoint: Checkpoint | null; attempts: number; state: string }> {
      const { rows } = await t.db.query<{ checkpoint: Checkpoint | null; attempts: number; state: string }>(
        `SELECT checkpoint, attempts, current_state AS state FROM tasker.workflow_steps
         WHERE workflow_step_uuid = $1`,
        [claim.context.step_uuid],
      );
      assert.ok(rows[0]);
      return rows[0];
    }

    async function transitions(claim: Claim): Promise<number> {
      const { rows } = await t.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = $1',
        [claim.context.step_uuid],
      );
      return rows[0]?.n ?? 0;
    }

    /** Seconds from now until the claim's message is visible again. */
    async function leaseLeft(claim: Claim): Promise<number> {
      const { rows } = await t.db.query<{ s: number }>(
        `SELECT extract(epoch FROM vt - clock_timestamp())::float8 AS s FROM pgmq.messages
         WHERE queue_name = $1 AND msg_id = $2`,
        [QUEUE, claim.msg_id],
      );
      assert.ok(rows[0]);
      return rows[0].s;
    }

    it('stores the checkpoint under the claim, appending to its history; attempts stay', async () => {
      const { claim } = await claimed();
      const before = await transitions(claim);
      assert.equal(claim.context.checkpoint, null);
      assert.equal(
        await checkpoint(claim, { cursor: 25, items_processed: 25, accumulated_results: { sum: 300 } }),
        true,
      );
      let row = await stored(claim);
      assert.equal(row.state, 'in_progress');
      assert.equal(row.attempts, 1);
      assert.ok(row.checkpoint);
      assert.equal(row.checkpoint.cursor, 25);
      assert.equal(row.checkpoint.items_processed, 25);
      assert.deepEqual(row.checkpoint.accumulated_results, { sum: 300 });
      assert.match(row.checkpoint.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      assert.ok(Math.abs(Date.parse(row.checkpoint.timestamp) - Date.now()) < 60_000);
      assert.deepEqual(row.checkpoint.history, [{ cursor: 25, timestamp: row.checkpoint.timestamp }]);

      // any JSON cursor; accumulated results may be absent (null)
      assert.equal(await checkpoint(claim, { cursor: { page: 3, key: 'k' }, items_processed: 50 }), true);
      row = await stored(claim);
      assert.ok(row.checkpoint);
      assert.deepEqual(row.checkpoint.cursor, { page: 3, key: 'k' });
      assert.equal(row.checkpoint.items_processed, 50);
      assert.equal(row.checkpoint.accumulated_results, null);
      assert.deepEqual(
        row.checkpoint.history.map((h) => h.cursor),
        [25, { page: 3, key: 'k' }],
      );
      assert.equal(row.checkpoint.history[1]?.timestamp, row.checkpoint.timestamp);
      assert.equal(row.attempts, 1, 'a checkpoint uses no attempt');
      assert.equal(await transitions(claim), before, 'a checkpoint writes no transition');
      // the staleness detector reads the timestamp
      const { rows } = await t.db.query<{ ok: boolean }>(
        `SELECT tasker.checkpoint_time(checkpoint) > now() - interval '1 minute' AS ok
         FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
        [claim.context.step_uuid],
      );
      assert.equal(rows[0]?.ok, true);
    });

    it('refuses another claim token or another worker, and a finished step', async () => {
      const { claim } = await claimed();
      assert.equal(await checkpoint(claim, { cursor: 1, items_processed: 1 }, { attempt: 2 }), false);
      assert.equal(await checkpoint(claim, { cursor: 1, items_processed: 1 }, { attempt: 0 }), false);
      assert.equal(await checkpoint(claim, { cursor: 1, items_processed: 1 }, { by: randomUUID() }), false);
      assert.equal((await stored(claim)).checkpoint, null);
      assert.equal(await checkpoint(claim, { cursor: 1, items_processed: 1 }), true);
      const { rows } = await t.db.query<{ r: { completed: boolean } }>(
        'SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, $7, false, 50) AS r',
        [
          QUEUE,
          claim.msg_id,
          claim.context.step_uuid,
          worker,
          claim.context.attempt,
          JSON.stringify(successResult({ done: true })),
          RESULTS,
        ],
      );
      assert.equal(rows[0]?.r.completed, true);
      assert.equal(await checkpoint(claim, { cursor: 2, items_processed: 2 }), false);
      const row = await stored(claim);
      assert.equal(row.state, 'enqueued_for_orchestration');
      assert.equal(row.checkpoint?.cursor, 1, 'the last checkpoint under the claim stays');
    });

    it('extends the lease (never shortens it)', async () => {
      const { claim } = await claimed();
      // the lease is about to run out
      await t.db.query(
        `UPDATE pgmq.messages SET vt = clock_timestamp() + interval '1 second' WHERE queue_name = $1 AND msg_id = $2`,
        [QUEUE, claim.msg_id],
      );
      assert.ok((await leaseLeft(claim)) < 2);
      assert.equal(await checkpoint(claim, { cursor: 1, items_processed: 1 }, { lease: 600 }), true);
      const left = await leaseLeft(claim);
      assert.ok(left > 590 && left <= 600, `lease left ${left}`);
      // a shorter lease does not shorten it
      assert.equal(await checkpoint(claim, { cursor: 2, items_processed: 2 }, { lease: 5 }), true);
      assert.ok((await leaseLeft(claim)) > 590);
      // a lease that ran out (message visible, not yet reclaimed) is taken back
      await t.db.query(
        `UPDATE pgmq.messages SET vt = clock_timestamp() - interval '1 second' WHERE queue_name = $1 AND msg_id = $2`,
        [QUEUE, claim.msg_id],
      );
      assert.equal(await checkpoint(claim, { cursor: 3, items_processed: 3 }, { lease: 30 }), true);
      assert.ok((await leaseLeft(claim)) > 25);
      assert.equal((await stored(claim)).attempts, 1);
    });

    it('a reclaim carries the checkpoint into the new claim, and the old claim can no longer write', async () => {
      const { task, claim } = await claimed();
      assert.equal(
        await checkpoint(claim, { cursor: 50, items_processed: 50, accumulated_results: [1] }),
        true,
      );
      const saved = (await stored(claim)).checkpoint;
      // the first worker's lease runs out
      await t.db.query(
        `UPDATE pgmq.messages SET vt = clock_timestamp() - interval '1 second' WHERE queue_name = $1 AND msg_id = $2`,
        [QUEUE, claim.msg_id],
      );
      const other = randomUUID();
      const again = await claimBy(other, task);
      assert.equal(again.outcome, 'reclaimed');
      assert.equal(again.context.attempt, 2);
      assert.deepEqual(again.context.checkpoint, saved);
      assert.equal(await checkpoint(claim, { cursor: 60, items_processed: 60 }), false, 'old claim');
      assert.equal(await checkpoint(again, { cursor: 75, items_processed: 75 }, { by: other }), true);
      const row = await stored(again);
      assert.equal(row.attempts, 2);
      assert.deepEqual(
        row.checkpoint?.history.map((h) => h.cursor),
        [50, 75],
      );
    });

    it('refuses a malformed checkpoint or lease', async () => {
      const { claim } = await claimed();
      const bad: Array<[Record<string, unknown>, number]> = [
        [{ items_processed: 1 }, 60],
        [{ cursor: 1 }, 60],
        [{ cursor: 1, items_processed: -1 }, 60],
        [{ cursor: 1, items_processed: 1.5 }, 60],
        [{ cursor: 1, items_processed: '3' }, 60],
        [{ cursor: 1, items_processed: 1 }, 0],
      ];
      for (const [body, lease] of bad) {
        await assert.rejects(checkpoint(claim, body, { lease }), /checkpoint|lease/);
      }
      assert.equal((await stored(claim)).checkpoint, null);
    });
  });
}
