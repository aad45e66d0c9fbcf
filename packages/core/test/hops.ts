/**
 * The worker's two SQL hops as the store-level tests drive them: claim step messages
 * (`tasker.claim_step_messages`) and complete one (`tasker.complete_step_message`).
 */
import assert from 'node:assert/strict';
import type { JsonObject } from '@tasker/core';
import type { Queryable } from '@tasker/db';

export type Claim = {
  msg_id: string;
  outcome: string;
  context: {
    step_uuid: string;
    step_name: string;
    attempt: number;
    dependency_results: Record<string, JsonObject>;
  } | null;
};

const RESULTS = 'orchestration_step_results';

/** Claims up to `limit` visible messages of `queue` for `worker` (every outcome is returned). */
export async function claimMessages(
  db: Queryable,
  queue: string,
  worker: string,
  limit = 20,
): Promise<Claim[]> {
  const { rows } = await db.query<Claim>(
    'SELECT msg_id::text, outcome, context FROM tasker.claim_step_messages($1, NULL, $3, 0, $2, 30, 5)',
    [queue, worker, limit],
  );
  return rows;
}

/** Completes a claimed step with `results` (applied inline unless `inline` is false); whether it was stored. */
export async function completeMessage(
  db: Queryable,
  queue: string,
  worker: string,
  claim: Claim,
  results: JsonObject,
  inline = true,
): Promise<boolean> {
  assert.ok(claim.context);
  const { rows } = await db.query<{ r: { completed: boolean } }>(
    'SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, $7, $8, 50) AS r',
    [
      queue,
      claim.msg_id,
      claim.context.step_uuid,
      worker,
      claim.context.attempt,
      JSON.stringify(results),
      RESULTS,
      inline,
    ],
  );
  return rows[0]?.r.completed === true;
}

/**
 * One worker's hops on a database (read when a hop runs, so a suite can bind them before its
 * database exists): `claim` the claimed messages of a queue, `complete` one
 * (asserting it was stored), and `drain` a queue, completing every claimable step with
 * `resultOf(step name)` until none is left; it returns the step names in the order they ran.
 */
export function workerHops(db: () => Queryable, worker: string) {
  const claim = async (queue: string): Promise<Claim[]> =>
    (await claimMessages(db(), queue, worker)).filter((row) => row.outcome === 'claimed');
  const complete = async (queue: string, c: Claim, results: JsonObject, inline = true): Promise<void> => {
    assert.equal(await completeMessage(db(), queue, worker, c, results, inline), true);
  };
  const drain = async (queue: string, resultOf: (name: string) => JsonObject): Promise<string[]> => {
    const ran: string[] = [];
    for (let round = 0; round < 20; round++) {
      const claims = await claim(queue);
      if (claims.length === 0) break;
      for (const c of claims) {
        const name = c.context?.step_name ?? '';
        ran.push(name);
        await complete(queue, c, resultOf(name));
      }
    }
    return ran;
  };
  return { claim, complete, drain };
}
