/**
 * Acceptance workflow #27 end to end (reference C §6.4, §4.4): `combined_workflow_test/
 * diamond_decision_batch_processor`. The diamond splits the numbers into evens and odds; the decision
 * creates only the analyzer of the path with more numbers (evens when balanced); its batch outcome
 * creates `ceil(count / 2)` workers (batch_size 2) and the path's aggregator. The other path's steps
 * never exist. An engine and a worker in one process, on each backend, in both result modes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import { PUSH_MODES, System } from './support/system.ts';

const DIAMOND = ['ddb_diamond_start', 'branch_evens', 'branch_odds', 'ddb_routing_decision'];

interface Case {
  label: string;
  numbers: number[];
  path: 'even' | 'odd';
  routeType: string;
  /** The numbers of each worker, in batch order. */
  batches: number[][];
}

const CASES: Case[] = [
  {
    label: 'even-dominant',
    numbers: [2, 4, 6, 8, 10, 12],
    path: 'even',
    routeType: 'even_dominant',
    batches: [
      [2, 4],
      [6, 8],
      [10, 12],
    ],
  },
  {
    label: 'odd-dominant',
    numbers: [1, 2, 3, 5, 7, 9, 11],
    path: 'odd',
    routeType: 'odd_dominant',
    batches: [
      [1, 3],
      [5, 7],
      [9, 11],
    ],
  },
  {
    label: 'balanced',
    numbers: [1, 2, 3, 4, 5, 6, 7, 8],
    path: 'even',
    routeType: 'balanced',
    batches: [
      [2, 4],
      [6, 8],
    ],
  },
];

for (const backend of BACKENDS)
  for (const [mode, options] of Object.entries(PUSH_MODES)) {
    describe(`#27 diamond-decision-batch end to end (${backend}, ${mode})`, () => {
      let system: System;
      before(async () => {
        system = await System.start(backend, options);
      });
      after(() => system.stop());

      for (const c of CASES) {
        it(`${c.label}: ${c.path} path with ${c.batches.length} workers, no ${c.path === 'even' ? 'odd' : 'even'} steps`, async () => {
          const f = await system.run('combined_workflow_test', 'diamond_decision_batch_processor', {
            numbers: c.numbers,
          });
          assert.equal(f.state, 'complete');
          const workers = c.batches.map(
            (_, i) => `process_${c.path}_batch_${String(i + 1).padStart(3, '0')}`,
          );
          assert.deepEqual(
            [...f.steps.keys()].sort(),
            [...DIAMOND, `${c.path}_batch_analyzer`, ...workers, `aggregate_${c.path}_results`].sort(),
          );
          for (const [name, row] of f.steps) {
            assert.equal(row.current_state, 'complete', `${name} is complete`);
            assert.equal(row.attempts, 1, `${name} ran once`);
          }
          const evens = c.numbers.filter((n) => n % 2 === 0);
          const odds = c.numbers.filter((n) => n % 2 !== 0);
          const decision = f.steps.get('ddb_routing_decision')?.results?.result;
          assert.deepEqual(decision?.decision_point_outcome, {
            type: 'create_steps',
            step_names: [`${c.path}_batch_analyzer`],
          });
          assert.equal(decision?.route_type, c.routeType);
          assert.equal(decision?.even_count, evens.length);
          assert.equal(decision?.odd_count, odds.length);
          workers.forEach((name, i) => {
            const result = f.steps.get(name)?.results?.result;
            assert.deepEqual(result?.numbers, c.batches[i], `${name} numbers`);
            assert.equal(
              result?.sum,
              c.batches[i]?.reduce((a, b) => a + b, 0),
            );
          });
          const chosen = c.path === 'even' ? evens : odds;
          assert.deepEqual(f.steps.get(`aggregate_${c.path}_results`)?.results?.result, {
            path: c.path,
            worker_count: c.batches.length,
            total_processed: chosen.length,
            total_sum: chosen.reduce((a, b) => a + b, 0),
            validated: true,
          });
        });
      }
    });
  }
