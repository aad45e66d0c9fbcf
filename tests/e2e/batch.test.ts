/**
 * Acceptance workflow #25 end to end (reference C §6.4, §4.3): `data_processing/large_dataset_processor`
 * splits `dataset_size` items into cursor batches; orchestration creates one `process_batch_NNN`
 * worker per batch and `aggregate_results`, which waits for all of them. A tiny dataset gives
 * no_batches: only the no-op placeholder `process_batch_000` runs before the aggregator. An engine
 * and a worker in one process, on each backend, in both result modes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import { PUSH_MODES, System } from './support/system.ts';

const workerNames = (count: number) =>
  Array.from({ length: count }, (_, i) => `process_batch_${String(i + 1).padStart(3, '0')}`);

for (const backend of BACKENDS)
  for (const [mode, options] of Object.entries(PUSH_MODES)) {
    describe(`#25 large dataset batches end to end (${backend}, ${mode})`, () => {
      let system: System;
      before(async () => {
        system = await System.start(backend, options);
      });
      after(() => system.stop());

      // batch_size 1000, at most 10 workers (larger sets get larger batches)
      const cases: Array<[string, number, number]> = [
        ['small', 500, 1],
        ['large', 5000, 5],
        ['larger than ten batches', 25_000, 10],
      ];
      for (const [label, size, workers] of cases) {
        it(`${label}: ${size} items ⇒ ${workers} worker(s), all aggregated`, async () => {
          const f = await system.run('data_processing', 'large_dataset_processor', { dataset_size: size });
          assert.equal(f.state, 'complete');
          assert.deepEqual(
            [...f.steps.keys()].sort(),
            ['aggregate_results', 'analyze_dataset', ...workerNames(workers)].sort(),
          );
          for (const [name, row] of f.steps) {
            assert.equal(row.current_state, 'complete', `${name} is complete`);
            assert.equal(row.attempts, 1, `${name} ran once`);
          }
          const aggregate = f.steps.get('aggregate_results')?.results?.result;
          assert.deepEqual(aggregate, {
            no_batches: false,
            worker_count: workers,
            total_processed: size,
            value_sum: (size * (size - 1)) / 2,
          });
        });
      }

      it('tiny: 50 items ⇒ no_batches, one no-op placeholder, then the aggregator', async () => {
        const f = await system.run('data_processing', 'large_dataset_processor', { dataset_size: 50 });
        assert.equal(f.state, 'complete');
        assert.deepEqual([...f.steps.keys()].sort(), [
          'aggregate_results',
          'analyze_dataset',
          'process_batch_000',
        ]);
        for (const [name, row] of f.steps) assert.equal(row.current_state, 'complete', `${name} is complete`);
        assert.equal(f.steps.get('process_batch_000')?.results?.result?.no_op, true);
        assert.deepEqual(f.steps.get('aggregate_results')?.results?.result, {
          no_batches: true,
          worker_count: 1,
          total_processed: 0,
          value_sum: 0,
        });
      });
    });
  }
