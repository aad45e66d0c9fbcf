/**
 * `aggregateBatchResults`: what a deferred convergence step finds among its dependency results —
 * the workers of one template (placeholder and failed ones included), no_batches vs batches, the
 * analyzer's total — built on plain `StepContext`s (no database).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonValue } from '@tasker/core';
import {
  aggregateBatchResults,
  failureResult,
  StepContext,
  type StepContextData,
  type StepExecutionResult,
  successResult,
} from '../src/index.ts';

function done(result: JsonValue): StepExecutionResult {
  return successResult({ stepUuid: 'u', result, executionTimeMs: 1 });
}

function context(dependencyResults: Record<string, StepExecutionResult>): StepContext {
  const data: StepContextData = {
    taskUuid: 't1',
    stepUuid: 's1',
    stepName: 'aggregate_results',
    correlationId: 'c1',
    inputData: {},
    stepConfig: {},
    stepInputs: {},
    dependencyResults,
    retryCount: 0,
    maxAttempts: 3,
  };
  return new StepContext(data);
}

const createBatches = {
  type: 'create_batches',
  worker_template_name: 'process_batch',
  worker_count: 2,
  cursor_configs: [],
  total_items: 30,
};

describe('aggregateBatchResults', () => {
  it('lists the workers of the template by name, with the analyzer total and the items processed', () => {
    const agg = aggregateBatchResults(
      context({
        analyze_dataset: done({ batch_processing_outcome: createBatches, dataset_size: 30 }),
        process_batch_002: done({ items_processed: 10, value_sum: 2 }),
        process_batch_001: done({ items_processed: 20, value_sum: 1 }),
        other_step: done({ items_processed: 99 }),
      }),
      'process_batch',
    );
    assert.equal(agg.isNoBatches, false);
    assert.deepEqual(
      agg.workers.map((w) => [w.name, w.batchId, w.success, w.isNoOp]),
      [
        ['process_batch_001', '001', true, false],
        ['process_batch_002', '002', true, false],
      ],
    );
    assert.deepEqual(agg.workers[0]?.result, { items_processed: 20, value_sum: 1 });
    assert.equal(agg.workers[0]?.error, undefined);
    assert.equal(agg.succeeded.length, 2);
    assert.deepEqual(agg.failed, []);
    assert.equal(agg.analyzerStepName, 'analyze_dataset');
    assert.equal(agg.analyzerResult?.dataset_size, 30);
    assert.equal(agg.totalItems, 30);
    assert.equal(agg.itemsProcessed, 30);
  });

  it('detects no_batches from the analyzer outcome: the placeholder is a no-op worker', () => {
    const agg = aggregateBatchResults(
      context({
        analyze_dataset: done({
          batch_processing_outcome: { type: 'no_batches' },
          reason: 'too small',
          total_items: 50,
        }),
        process_batch_000: done({ no_op: true, batch_id: '000', items_processed: 0 }),
      }),
      'process_batch',
    );
    assert.equal(agg.isNoBatches, true);
    assert.equal(agg.workers.length, 1);
    assert.equal(agg.workers[0]?.isNoOp, true);
    assert.deepEqual(agg.succeeded, []);
    assert.deepEqual(agg.failed, []);
    assert.equal(agg.totalItems, 50);
    assert.equal(agg.itemsProcessed, 0);
  });

  it('detects no_batches from the placeholder alone when the analyzer result is absent', () => {
    const noOp = aggregateBatchResults(
      context({ process_batch_000: done({ no_op: true, items_processed: 0 }) }),
      'process_batch',
    );
    assert.equal(noOp.isNoBatches, true);
    assert.equal(noOp.analyzerStepName, undefined);
    assert.equal(noOp.totalItems, undefined);
    const isNoOp = aggregateBatchResults(
      context({ process_batch_000: done({ is_no_op: true }) }),
      'process_batch',
    );
    assert.equal(isNoOp.isNoBatches, true);
    // a real batch that happens to be numbered 000 is not the placeholder
    const real = aggregateBatchResults(
      context({ process_batch_000: done({ items_processed: 5 }) }),
      'process_batch',
    );
    assert.equal(real.isNoBatches, false);
    assert.equal(real.itemsProcessed, 5);
  });

  it('lists failed workers (continue_on_failure) with their error, apart from the succeeded ones', () => {
    const agg = aggregateBatchResults(
      context({
        analyze_csv: done({
          batch_processing_outcome: { ...createBatches, worker_template_name: 'process_csv_batch' },
        }),
        process_csv_batch_001: done({ items_processed: 200 }),
        process_csv_batch_002: failureResult({
          stepUuid: 'u2',
          message: 'row 250 of the CSV is malformed',
          retryable: false,
          errorType: 'validation_error',
          executionTimeMs: 1,
        }),
      }),
      'process_csv_batch',
    );
    assert.equal(agg.isNoBatches, false);
    assert.equal(agg.workers.length, 2);
    assert.deepEqual(
      agg.succeeded.map((w) => w.name),
      ['process_csv_batch_001'],
    );
    assert.deepEqual(
      agg.failed.map((w) => [w.name, w.success, w.error]),
      [
        [
          'process_csv_batch_002',
          false,
          { message: 'row 250 of the CSV is malformed', errorType: 'validation_error' },
        ],
      ],
    );
    assert.equal(agg.itemsProcessed, 200);
    assert.equal(agg.analyzerStepName, 'analyze_csv');
  });

  it('picks the analyzer of this template when several batchable steps are among the dependencies', () => {
    const agg = aggregateBatchResults(
      context({
        even_batch_analyzer: done({
          batch_processing_outcome: { ...createBatches, worker_template_name: 'process_even_batch' },
        }),
        odd_batch_analyzer: done({
          batch_processing_outcome: {
            ...createBatches,
            worker_template_name: 'process_odd_batch',
            total_items: 4,
          },
        }),
        process_odd_batch_001: done({ items_processed: 4 }),
      }),
      'process_odd_batch',
    );
    assert.equal(agg.analyzerStepName, 'odd_batch_analyzer');
    assert.equal(agg.totalItems, 4);
    assert.deepEqual(
      agg.workers.map((w) => w.name),
      ['process_odd_batch_001'],
    );
  });

  it('finds nothing for a template without workers among the dependencies', () => {
    const agg = aggregateBatchResults(context({ start: done({ ok: true }) }), 'process_batch');
    assert.deepEqual(agg, {
      isNoBatches: false,
      workers: [],
      succeeded: [],
      failed: [],
      itemsProcessed: 0,
    });
  });
});
