/**
 * Acceptance workflow #23 end to end (reference C §6.4, §4.1, §4.2): the decision step of
 * `conditional_approval_ts/approval_routing_ts` creates the approval steps the amount calls for,
 * and the deferred `finalize_approval_ts` runs after whichever of them exist. Non-chosen steps are
 * never created. An engine and a worker in one process, on each backend, in both result modes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import { PUSH_MODES, System } from './support/system.ts';

const BASE = ['validate_request_ts', 'routing_decision_ts', 'finalize_approval_ts'];
const CASES: Array<[number, string[]]> = [
  [500, ['auto_approve_ts']],
  [2500, ['manager_approval_ts']],
  [10_000, ['manager_approval_ts', 'finance_review_ts']],
  [1000, ['manager_approval_ts']],
  [5000, ['manager_approval_ts', 'finance_review_ts']],
  [0.01, ['auto_approve_ts']],
];

for (const backend of BACKENDS)
  for (const [mode, options] of Object.entries(PUSH_MODES)) {
    describe(`#23 conditional approval end to end (${backend}, ${mode})`, () => {
      let system: System;
      before(async () => {
        system = await System.start(backend, options);
      });
      after(() => system.stop());

      for (const [amount, approvals] of CASES) {
        it(`${amount} ⇒ ${approvals.join(' + ')} (${BASE.length + approvals.length} steps)`, async () => {
          const f = await system.run('conditional_approval_ts', 'approval_routing_ts', {
            amount,
            requester: 'jane.doe',
            purpose: 'team offsite',
          });
          assert.equal(f.state, 'complete');
          assert.deepEqual([...f.steps.keys()].sort(), [...BASE, ...approvals].sort());
          for (const [name, row] of f.steps) {
            assert.equal(row.current_state, 'complete', `${name} is complete`);
            assert.equal(row.attempts, 1, `${name} ran once`);
          }
          const decision = f.steps.get('routing_decision_ts')?.results?.result;
          assert.deepEqual(decision?.decision_point_outcome, { type: 'create_steps', step_names: approvals });
          const final = f.steps.get('finalize_approval_ts')?.results?.result;
          assert.equal(final?.approved, true);
          assert.deepEqual(final?.approval_chain, approvals);
          assert.equal(final?.amount, amount);
        });
      }
    });
  }
