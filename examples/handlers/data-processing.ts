/**
 * #25 `data_processing/large_dataset_processor` (reference C §6.4, §4.3; `DataProcessing.*`, the Rust
 * fixture's handlers re-implemented): analyze_dataset (batchable) → process_batch_NNN workers →
 * aggregate_results (deferred convergence over every worker).
 *
 * The analyzer splits `dataset_size` items into ranges of `batch_size` (config, 1000), at most
 * `max_workers` (config, 10) of them. Datasets under `min_batch_threshold` (config, 100) are not
 * worth a worker: `no_batches`, so orchestration creates only the no-op placeholder
 * process_batch_000. A worker "transforms" the item ids of its range (the item with id i has value
 * i), reporting the count and the sum; the aggregator adds them up (0 for the placeholder).
 */
import {
  aggregateBatchResults,
  defineBatchAnalyzer,
  defineBatchWorker,
  defineHandler,
  noBatchesResult,
} from '@tasker/worker';
import { configNumber, invalid, isObject, requireNumber } from './support.ts';

const WORKER_TEMPLATE = 'process_batch';

export const DatasetAnalyzerHandler = defineBatchAnalyzer(
  'DataProcessing.StepHandlers.DatasetAnalyzerHandler',
  { inputs: { datasetSize: 'dataset_size' } },
  ({ datasetSize, context }) => {
    const size = requireNumber(datasetSize, 'dataset_size');
    if (!(Number.isSafeInteger(size) && size >= 0)) {
      throw invalid(`dataset_size must be an integer >= 0, got ${size}`, { field: 'dataset_size' });
    }
    const threshold = configNumber(context.getConfig('min_batch_threshold'), 100);
    if (size < threshold) {
      return noBatchesResult(`dataset of ${size} items is below the batching threshold ${threshold}`, {
        dataset_size: size,
        batch_count: 0,
        total_items: size,
      });
    }
    return { totalItems: size, metadata: { dataset_size: size } };
  },
);

export const BatchWorkerHandler = defineBatchWorker(
  'DataProcessing.StepHandlers.BatchWorkerHandler',
  {},
  ({ batch, context }) => {
    const start = requireNumber(batch.startCursor, 'cursor.start_cursor');
    const end = requireNumber(batch.endCursor, 'cursor.end_cursor');
    let sum = 0;
    for (let id = start; id < end; id++) sum += id;
    return {
      batch_id: batch.batchId,
      items_processed: end - start,
      value_sum: sum,
      operation: context.getConfig('operation') ?? 'transform',
    };
  },
);

export const ResultsAggregatorHandler = defineHandler(
  'DataProcessing.StepHandlers.ResultsAggregatorHandler',
  {},
  ({ context }) => {
    const batch = aggregateBatchResults(context, WORKER_TEMPLATE);
    let processed = 0;
    let sum = 0;
    for (const worker of batch.workers) {
      const result = isObject(worker.result) ? worker.result : {};
      processed += requireNumber(result.items_processed, 'items_processed');
      if (!worker.isNoOp) sum += requireNumber(result.value_sum, 'value_sum');
    }
    return {
      no_batches: batch.isNoBatches,
      worker_count: batch.workers.length,
      total_processed: processed,
      value_sum: sum,
    };
  },
);
