/**
 * Checkpoint yields (reference C §1.8, §6.4 #28 and #29): batch workers that process their range in
 * chunks and yield a checkpoint after each one, so the worker stores their progress and runs them
 * again under the same claim (no attempt used); after a real failure the retry resumes from the last
 * checkpoint.
 *
 * #28 `ts_e2e_checkpoint/checkpoint_yield_test_ts` (`CheckpointYield.*`): the analyzer makes one
 * batch of `total_items` (none for 0 items: the no-op placeholder runs); the worker processes
 * `items_per_checkpoint` items per run (input, else its config, else 25) and can fail once after
 * `fail_after_items` on attempt `fail_on_attempt` (retryable), or permanently with
 * `permanent_failure`; the aggregator reports `total_processed`, `checkpoints_used` and `test_passed`.
 *
 * #29 `rust_e2e_batch_retry/batch_resumption_test` (`BatchResumption.*`, the Rust fixture's handler
 * re-implemented; its analyzer is `DataProcessing.StepHandlers.DatasetAnalyzerHandler`): the worker
 * checkpoints every 25 items (config), fails after 50 on attempt 1 and resumes at 50 on attempt 2.
 *
 * Both workers carry the ids of the items they processed in the checkpoint's accumulated results and
 * report them, with every resume (`{attempt, resumed_from}`), in their result: a test can see that
 * nothing was processed twice and where each retry started.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import {
  type BatchWorkerContext,
  checkpointYield,
  defineBatchAnalyzer,
  defineBatchWorker,
  defineHandler,
  PermanentError,
  RetryableError,
  type StepContext,
} from '@tasker/worker';
import { invalid, isObject, requireNumber } from './support.ts';

const DEFAULT_TOTAL_ITEMS = 100;
const DEFAULT_ITEMS_PER_CHECKPOINT = 25;
const CHECKPOINT_WORKER_PREFIX = 'checkpoint_yield_batch_ts_';

function integer(value: JsonValue | undefined, field: string, min: number): number {
  const n = requireNumber(value, field);
  if (!(Number.isSafeInteger(n) && n >= min))
    throw invalid(`${field} must be an integer >= ${min}`, { field });
  return n;
}

function optionalInteger(value: JsonValue | undefined, field: string, min: number): number | undefined {
  return value === undefined || value === null ? undefined : integer(value, field, min);
}

/** Where a run starts and what earlier runs (and attempts) did, from the checkpoint if there is one. */
interface Progress {
  cursor: number;
  processed: number;
  ids: number[];
  valueSum: number;
  resumes: JsonObject[];
  /** The attempt that wrote the checkpoint. */
  attempt: number;
}

function progress(context: StepContext, batch: BatchWorkerContext, attempt: number): Progress {
  const start = integer(batch.startCursor, 'cursor.start_cursor', 0);
  if (!context.hasCheckpoint()) {
    return { cursor: start, processed: 0, ids: [], valueSum: 0, resumes: [], attempt };
  }
  const cursor = integer(context.checkpointCursor, 'checkpoint.cursor', start);
  const acc = context.accumulatedResults;
  if (!isObject(acc)) throw invalid('checkpoint.accumulated_results must be an object');
  const ids = Array.isArray(acc.item_ids) ? acc.item_ids.map((id) => integer(id, 'item_ids[]', 0)) : [];
  const resumes = Array.isArray(acc.resumes) ? acc.resumes.filter(isObject) : [];
  const written = integer(acc.attempt, 'accumulated_results.attempt', 1);
  if (written !== attempt) resumes.push({ attempt, resumed_from: cursor });
  return {
    cursor,
    processed: context.checkpointItemsProcessed,
    ids,
    valueSum: requireNumber(acc.value_sum, 'accumulated_results.value_sum'),
    resumes,
    attempt,
  };
}

function accumulated(p: Progress): JsonObject {
  return { item_ids: p.ids, value_sum: p.valueSum, resumes: p.resumes, attempt: p.attempt };
}

function checkpointsUsed(context: StepContext): number {
  const history = context.checkpoint?.history;
  return Array.isArray(history) ? history.length : 0;
}

interface ChunkOptions {
  itemsPerCheckpoint: number;
  /** Fail once this many items are processed (on the failing attempt). */
  failAfterItems: number | undefined;
  failOnAttempt: number;
  permanent: boolean;
}

/**
 * Processes items from the progress' cursor up to `end` (the item with id i has value i + 1): yields
 * a checkpoint after every `itemsPerCheckpoint` items while items remain, fails when told to, and
 * returns the finished progress otherwise.
 */
function processChunk(p: Progress, end: number, options: ChunkOptions) {
  let inChunk = 0;
  while (p.cursor < end) {
    if (
      options.failAfterItems !== undefined &&
      p.processed >= options.failAfterItems &&
      p.attempt === options.failOnAttempt
    ) {
      const message = `injected ${options.permanent ? 'permanent' : 'transient'} failure after ${p.processed} items`;
      const metadata = { items_processed: p.processed, cursor_at_failure: p.cursor };
      if (options.permanent) throw new PermanentError(message, { metadata });
      throw new RetryableError(message, { metadata });
    }
    p.ids.push(p.cursor);
    p.valueSum += p.cursor + 1;
    p.cursor++;
    p.processed++;
    inChunk++;
    if (inChunk >= options.itemsPerCheckpoint && p.cursor < end) {
      return checkpointYield(p.cursor, p.processed, accumulated(p));
    }
  }
  return null;
}

function finished(context: StepContext, batch: BatchWorkerContext, p: Progress): JsonObject {
  return {
    batch_id: batch.batchId,
    items_processed: p.processed,
    item_ids: p.ids,
    duplicate_items: p.ids.length - new Set(p.ids).size,
    value_sum: p.valueSum,
    final_cursor: p.cursor,
    checkpoints_used: checkpointsUsed(context),
    attempt: p.attempt,
    resumes: p.resumes,
  };
}

// ---- #28 checkpoint_yield_test_ts ---------------------------------------------------------------

export const CheckpointYieldAnalyzerHandler = defineBatchAnalyzer(
  'CheckpointYield.StepHandlers.CheckpointYieldAnalyzerHandler',
  { inputs: { totalItems: 'total_items' } },
  ({ totalItems }) => {
    const total = totalItems === undefined ? DEFAULT_TOTAL_ITEMS : integer(totalItems, 'total_items', 0);
    // one worker for every item: the checkpoints do the chunking
    return { totalItems: total, batchSize: Math.max(1, total), metadata: { test_type: 'checkpoint_yield' } };
  },
);

export const CheckpointYieldWorkerHandler = defineBatchWorker(
  'CheckpointYield.StepHandlers.CheckpointYieldWorkerHandler',
  {},
  ({ batch, context }) => {
    const input = context.inputData;
    const options: ChunkOptions = {
      itemsPerCheckpoint: integer(
        input.items_per_checkpoint ??
          context.getConfig('items_per_checkpoint') ??
          DEFAULT_ITEMS_PER_CHECKPOINT,
        'items_per_checkpoint',
        1,
      ),
      failAfterItems:
        optionalInteger(input.fail_after_items, 'fail_after_items', 0) ??
        (input.permanent_failure === true ? 0 : undefined),
      failOnAttempt: optionalInteger(input.fail_on_attempt, 'fail_on_attempt', 1) ?? 1,
      permanent: input.permanent_failure === true,
    };
    const p = progress(context, batch, context.retryCount + 1);
    const end = integer(batch.endCursor, 'cursor.end_cursor', p.cursor);
    return processChunk(p, end, options) ?? finished(context, batch, p);
  },
);

export const CheckpointYieldAggregatorHandler = defineHandler(
  'CheckpointYield.StepHandlers.CheckpointYieldAggregatorHandler',
  { depends: { analysis: 'analyze_items_ts' } },
  ({ analysis, context }) => {
    const outcome = isObject(analysis) ? analysis.batch_processing_outcome : undefined;
    if (isObject(outcome) && outcome.type === 'no_batches') {
      return { scenario: 'no_batches', total_processed: 0, checkpoints_used: 0, test_passed: true };
    }
    // continue_on_failure lets this step run after a worker failed permanently: a failed batch
    // fails the aggregation (and so the task)
    const failed = context
      .getDependencyResultKeys()
      .filter(
        (name) => name.startsWith(CHECKPOINT_WORKER_PREFIX) && !context.dependencyResults[name]?.success,
      );
    if (failed.length > 0) {
      throw new PermanentError(`batch worker(s) failed: ${failed.join(', ')}`, {
        metadata: { failed_workers: failed },
      });
    }
    const expected = isObject(analysis) ? requireNumber(analysis.total_items, 'total_items') : 0;
    const workers = context.getAllDependencyResults(CHECKPOINT_WORKER_PREFIX).filter(isObject);
    let processed = 0;
    let checkpoints = 0;
    let valueSum = 0;
    const ids = new Set<JsonValue>();
    let idCount = 0;
    for (const worker of workers) {
      processed += requireNumber(worker.items_processed, 'items_processed');
      checkpoints += requireNumber(worker.checkpoints_used, 'checkpoints_used');
      valueSum += requireNumber(worker.value_sum, 'value_sum');
      const workerIds = Array.isArray(worker.item_ids) ? worker.item_ids : [];
      idCount += workerIds.length;
      for (const id of workerIds) ids.add(id);
    }
    return {
      scenario: 'with_batches',
      worker_count: workers.length,
      total_processed: processed,
      unique_items: ids.size,
      duplicate_items: idCount - ids.size,
      value_sum: valueSum,
      checkpoints_used: checkpoints,
      test_passed: processed === expected && ids.size === expected && idCount === expected,
    };
  },
);

// ---- #29 batch_resumption_test ----------------------------------------------------------------------

export const CheckpointAndFailHandler = defineBatchWorker(
  'BatchResumption.StepHandlers.CheckpointAndFailHandler',
  {},
  ({ batch, context }) => {
    const options: ChunkOptions = {
      itemsPerCheckpoint: integer(
        context.getConfig('items_per_checkpoint') ?? DEFAULT_ITEMS_PER_CHECKPOINT,
        'items_per_checkpoint',
        1,
      ),
      failAfterItems: optionalInteger(context.getConfig('fail_after_items'), 'fail_after_items', 0),
      failOnAttempt: optionalInteger(context.getConfig('fail_on_attempt'), 'fail_on_attempt', 1) ?? 1,
      permanent: false,
    };
    const p = progress(context, batch, context.retryCount + 1);
    const end = integer(batch.endCursor, 'cursor.end_cursor', p.cursor);
    return processChunk(p, end, options) ?? finished(context, batch, p);
  },
);
