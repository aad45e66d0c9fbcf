/**
 * #27 `combined_workflow_test/diamond_decision_batch_processor` (reference C §6.4, §4.4;
 * `DiamondDecisionBatch.*`, the Rust fixture's handlers re-implemented): a diamond, a decision and a
 * batch in one task.
 *
 *   ddb_diamond_start → {branch_evens, branch_odds} → ddb_routing_decision (decision)
 *     → even_batch_analyzer | odd_batch_analyzer (batchable) → process_{even,odd}_batch_NNN
 *     → aggregate_{even,odd}_results (deferred convergence)
 *
 * The decision routes to the even path when there are at least as many even numbers as odd ones
 * (so a balanced input takes the even path, as in the original), otherwise to the odd path. The
 * analyzer splits the chosen numbers into batches of `batch_size` (task context, else config 2), at
 * most `max_workers` (config 10) of them; each worker sums its slice; the aggregator adds the sums
 * and, in `strict` validation mode, checks that every number was processed exactly once.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import {
  aggregateBatchResults,
  Decision,
  defineBatchAnalyzer,
  defineBatchWorker,
  defineDecisionHandler,
  defineHandler,
  type StepContext,
} from '@tasker/worker';
import { invalid, isObject, requireArray, requireNumber } from './support.ts';

type Parity = 'even' | 'odd';
const BRANCH: Record<Parity, string> = { even: 'branch_evens', odd: 'branch_odds' };
const ANALYZER: Record<Parity, string> = { even: 'even_batch_analyzer', odd: 'odd_batch_analyzer' };

function integers(value: JsonValue | undefined, field: string): number[] {
  return requireArray(value, field).map((n, i) => {
    if (typeof n === 'number' && Number.isSafeInteger(n)) return n;
    throw invalid(`${field}[${i}] must be an integer`, { field });
  });
}

/** The numbers the branch of `parity` kept. */
function branchNumbers(ctx: StepContext, parity: Parity): number[] {
  const branch = ctx.getDependencyResult(BRANCH[parity]);
  return integers(isObject(branch) ? branch.numbers : undefined, `${BRANCH[parity]}.numbers`);
}

export const DiamondStartHandler = defineHandler(
  'DiamondDecisionBatch.StepHandlers.DiamondStartHandler',
  { inputs: { numbers: 'numbers' } },
  ({ numbers }) => {
    const all = integers(numbers, 'numbers');
    if (all.length === 0) throw invalid('numbers must not be empty', { field: 'numbers' });
    return { all_numbers: all, count: all.length };
  },
);

function branch(parity: Parity) {
  return ({ start }: { start: JsonValue | undefined }): JsonObject => {
    const all = integers(isObject(start) ? start.all_numbers : undefined, 'ddb_diamond_start.all_numbers');
    const numbers = all.filter((n) => (Math.abs(n) % 2 === 0) === (parity === 'even'));
    return { parity, numbers, count: numbers.length };
  };
}

export const BranchEvensHandler = defineHandler(
  'DiamondDecisionBatch.StepHandlers.BranchEvensHandler',
  { depends: { start: 'ddb_diamond_start' } },
  branch('even'),
);

export const BranchOddsHandler = defineHandler(
  'DiamondDecisionBatch.StepHandlers.BranchOddsHandler',
  { depends: { start: 'ddb_diamond_start' } },
  branch('odd'),
);

export const RoutingDecisionHandler = defineDecisionHandler(
  'DiamondDecisionBatch.StepHandlers.RoutingDecisionHandler',
  { depends: { evens: BRANCH.even, odds: BRANCH.odd } },
  ({ evens, odds }) => {
    const evenCount = requireNumber(isObject(evens) ? evens.count : undefined, 'branch_evens.count');
    const oddCount = requireNumber(isObject(odds) ? odds.count : undefined, 'branch_odds.count');
    const parity: Parity = evenCount >= oddCount ? 'even' : 'odd';
    const routeType = evenCount === oddCount ? 'balanced' : `${parity}_dominant`;
    return Decision.route([ANALYZER[parity]], {
      route_type: routeType,
      path: parity,
      even_count: evenCount,
      odd_count: oddCount,
    });
  },
);

function analyzer(parity: Parity) {
  return ({ context }: { context: StepContext }) => {
    const numbers = branchNumbers(context, parity);
    const requested = context.getInputOr('batch_size', null);
    const batchSize =
      typeof requested === 'number' && Number.isSafeInteger(requested) && requested > 0
        ? requested
        : undefined;
    return {
      totalItems: numbers.length,
      ...(batchSize === undefined ? {} : { batchSize }),
      metadata: { path: parity, dataset_size: numbers.length },
    };
  };
}

export const EvenBatchAnalyzerHandler = defineBatchAnalyzer(
  'DiamondDecisionBatch.StepHandlers.EvenBatchAnalyzerHandler',
  {},
  analyzer('even'),
);

export const OddBatchAnalyzerHandler = defineBatchAnalyzer(
  'DiamondDecisionBatch.StepHandlers.OddBatchAnalyzerHandler',
  {},
  analyzer('odd'),
);

function worker(parity: Parity) {
  return ({
    batch,
    context,
  }: {
    batch: { batchId: string; startCursor: JsonValue; endCursor: JsonValue };
    context: StepContext;
  }) => {
    const start = requireNumber(batch.startCursor, 'cursor.start_cursor');
    const end = requireNumber(batch.endCursor, 'cursor.end_cursor');
    const slice = branchNumbers(context, parity).slice(start, end);
    return {
      batch_id: batch.batchId,
      path: parity,
      numbers: slice,
      items_processed: slice.length,
      sum: slice.reduce((a, b) => a + b, 0),
      operation: context.getConfig('operation') ?? 'sum',
    };
  };
}

export const ProcessEvenBatchHandler = defineBatchWorker(
  'DiamondDecisionBatch.StepHandlers.ProcessEvenBatchHandler',
  {},
  worker('even'),
);

export const ProcessOddBatchHandler = defineBatchWorker(
  'DiamondDecisionBatch.StepHandlers.ProcessOddBatchHandler',
  {},
  worker('odd'),
);

function aggregator(parity: Parity) {
  return ({ context }: { context: StepContext }): JsonObject => {
    const expected = branchNumbers(context, parity);
    const { workers } = aggregateBatchResults(context, `process_${parity}_batch`);
    let processed = 0;
    let sum = 0;
    for (const worker of workers) {
      const result = isObject(worker.result) ? worker.result : {};
      processed += requireNumber(result.items_processed, 'items_processed');
      if (!worker.isNoOp) sum += requireNumber(result.sum, 'sum');
    }
    const expectedSum = expected.reduce((a, b) => a + b, 0);
    if (
      context.getConfig('validation_mode') === 'strict' &&
      (processed !== expected.length || sum !== expectedSum)
    ) {
      throw invalid(
        `${parity} batches processed ${processed} numbers summing to ${sum}; expected ${expected.length} summing to ${expectedSum}`,
      );
    }
    return {
      path: parity,
      worker_count: workers.length,
      total_processed: processed,
      total_sum: sum,
      validated: true,
    };
  };
}

export const AggregateEvenResultsHandler = defineHandler(
  'DiamondDecisionBatch.StepHandlers.AggregateEvenResultsHandler',
  {},
  aggregator('even'),
);

export const AggregateOddResultsHandler = defineHandler(
  'DiamondDecisionBatch.StepHandlers.AggregateOddResultsHandler',
  {},
  aggregator('odd'),
);
