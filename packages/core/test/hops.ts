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
