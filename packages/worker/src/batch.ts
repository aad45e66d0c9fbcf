/**
 * Batch processing helpers (reference C §2.4, §2.5, §4.3). A `batchable` step's successful result
 * carries `result.batch_processing_outcome`: `create_batches` makes orchestration create one worker
 * `{worker_template_name}_{batch_id}` per cursor config (plus the deferred convergence step that
 * waits for all of them); `no_batches` creates a single no-op placeholder `{T}_000` instead (T from
 * the batchable step's `handler.initialization.worker_template_name`) so the convergence still runs.
 * Workers read their cursor from the step inputs orchestration wrote (`getBatchContext`).
 */
import { type JsonObject, type JsonValue, ValidationError } from '@tasker/core';
import type { StepContext } from './context.ts';
import { type DefineHandlerOptions, defineHandler, type HandlerArgs } from './define.ts';
import { ERROR_TYPES, PermanentError } from './errors.ts';
import type { StepHandlerClass } from './handler.ts';
import { StepHandlerResult } from './results.ts';

/** Batch id of the no-op placeholder worker orchestration creates for `no_batches`. */
export const NO_OP_BATCH_ID = '000';

/** One worker's range: items [start_cursor, end_cursor) (end exclusive), as stored in its inputs. */
export type BatchCursorConfig = {
  batch_id: string;
  start_cursor: number;
  end_cursor: number;
  batch_size: number;
};

export type BatchProcessingOutcome =
  | { type: 'no_batches' }
  | {
      type: 'create_batches';
      worker_template_name: string;
      worker_count: number;
      cursor_configs: BatchCursorConfig[];
      total_items: number;
    };

function positiveInteger(value: number, field: string): void {
  if (!(Number.isSafeInteger(value) && value > 0)) {
    throw new ValidationError([{ field, message: `must be a positive integer, got ${String(value)}` }]);
  }
}

/**
 * Cursor ranges covering [0, totalItems) in slices of `batchSize`, with batch ids `001`, `002`, …
 * (`000` is the no-op placeholder's). With `maxBatches`, the slices grow so that at most that many
 * are needed. Empty for 0 items.
 */
export function createCursorConfigs(
  totalItems: number,
  batchSize: number,
  maxBatches?: number,
): BatchCursorConfig[] {
  if (!(Number.isSafeInteger(totalItems) && totalItems >= 0)) {
    throw new ValidationError([{ field: 'totalItems', message: 'must be an integer >= 0' }]);
  }
  positiveInteger(batchSize, 'batchSize');
  if (maxBatches !== undefined) positiveInteger(maxBatches, 'maxBatches');
  const size = maxBatches === undefined ? batchSize : Math.max(batchSize, Math.ceil(totalItems / maxBatches));
  const configs: BatchCursorConfig[] = [];
  for (let start = 0; start < totalItems; start += size) {
    const end = Math.min(start + size, totalItems);
    configs.push({
      batch_id: String(configs.length + 1).padStart(3, '0'),
      start_cursor: start,
      end_cursor: end,
      batch_size: end - start,
    });
  }
  return configs;
}

/**
 * A successful batchable step creating one `workerTemplateName` worker per cursor config; `extra`
 * adds result fields next to `batch_processing_outcome` (which it cannot override).
 */
export function batchSuccess(
  workerTemplateName: string,
  cursorConfigs: readonly BatchCursorConfig[],
  extra: JsonObject = {},
  metadata: JsonObject = {},
): StepHandlerResult {
  if (workerTemplateName.trim() === '') {
    throw new ValidationError([{ field: 'workerTemplateName', message: 'must not be empty' }]);
  }
  if (cursorConfigs.length === 0) {
    throw new ValidationError([
      { field: 'cursorConfigs', message: 'must not be empty (use noBatchesResult for no work)' },
    ]);
  }
  const configs = cursorConfigs.map((config) => ({ ...config }));
  const outcome: BatchProcessingOutcome = {
    type: 'create_batches',
    worker_template_name: workerTemplateName,
    worker_count: configs.length,
    cursor_configs: configs,
    total_items: configs.reduce((sum, config) => sum + config.batch_size, 0),
  };
  return StepHandlerResult.success({ ...extra, batch_processing_outcome: outcome }, metadata);
}

/** A successful batchable step with no work: orchestration creates only the no-op placeholder. */
export function noBatchesResult(
  reason = 'no items to process',
  extra: JsonObject = {},
  metadata: JsonObject = {},
): StepHandlerResult {
  const outcome: BatchProcessingOutcome = { type: 'no_batches' };
  return StepHandlerResult.success({ ...extra, batch_processing_outcome: outcome, reason }, metadata);
}

/** What a batch analyzer's function reports: the work to split. */
export interface BatchPlan {
  totalItems: number;
  /** Items per worker; default the analyzer's `batchSize` option, else its config `batch_size`. */
  batchSize?: number;
  /** Extra result fields. */
  metadata?: JsonObject;
}

export interface BatchAnalyzerOptions<D extends Record<string, string>, I extends Record<string, string>>
  extends DefineHandlerOptions<D, I> {
  /** The batch_worker step to instantiate; default the step config's `worker_template_name`. */
  workerTemplate?: string;
  batchSize?: number;
  /** Most workers; default the step config's `max_workers`, if any. */
  maxBatches?: number;
}

function configInteger(ctx: StepContext, key: string): number | undefined {
  const value = ctx.getConfig(key);
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/**
 * A functional batch analyzer: `fn` returns `{totalItems, batchSize?, metadata?}` (or a
 * `StepHandlerResult`, which passes through); 0 items ⇒ `no_batches`, otherwise `create_batches`
 * with ranges of `batchSize` (at most `maxBatches` of them). The result also says `batch_count` and
 * `total_items`.
 */
export function defineBatchAnalyzer<
  D extends Record<string, string> = Record<never, string>,
  I extends Record<string, string> = Record<never, string>,
>(
  name: string,
  options: BatchAnalyzerOptions<D, I>,
  fn: (args: HandlerArgs<D, I>) => BatchPlan | StepHandlerResult | Promise<BatchPlan | StepHandlerResult>,
): StepHandlerClass {
  return defineHandler(name, options, async (args) => {
    const plan = await fn(args);
    if (plan instanceof StepHandlerResult) return plan;
    const ctx = args.context;
    const extra = plan.metadata ?? {};
    if (plan.totalItems === 0)
      return noBatchesResult('no items to process', { ...extra, batch_count: 0, total_items: 0 });
    const template = options.workerTemplate ?? ctx.getConfig('worker_template_name');
    if (typeof template !== 'string') {
      // a template/handler mismatch: retrying cannot fix it
      throw new PermanentError(
        `batch analyzer ${name} has no worker template (option or worker_template_name)`,
        {
          errorType: ERROR_TYPES.validation,
        },
      );
    }
    const batchSize = plan.batchSize ?? options.batchSize ?? configInteger(ctx, 'batch_size') ?? 1000;
    const maxBatches = options.maxBatches ?? configInteger(ctx, 'max_workers');
    const configs = createCursorConfigs(plan.totalItems, batchSize, maxBatches);
    return batchSuccess(template, configs, {
      ...extra,
      batch_count: configs.length,
      total_items: plan.totalItems,
    });
  });
}

/** What a batch worker knows about its slice (from the inputs orchestration wrote). */
export interface BatchWorkerContext {
  batchId: string;
  cursor: JsonObject;
  startCursor: JsonValue;
  endCursor: JsonValue;
  batchSize: number;
  /** The placeholder of a `no_batches` outcome: there is nothing to process. */
  isNoOp: boolean;
  /** `{cursor_field, failure_strategy}` from the worker template's batch_config. */
  batchMetadata: JsonObject;
  /** The batch_worker template step this worker was cloned from. */
  templateStepName: string | undefined;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The batch context of a worker step, or null when the step is not a batch worker instance. */
export function getBatchContext(ctx: StepContext): BatchWorkerContext | null {
  const cursor = ctx.stepInputs.cursor;
  if (!isObject(cursor)) return null;
  const batchId = cursor.batch_id;
  const size = cursor.batch_size;
  const metadata = ctx.stepInputs.batch_metadata;
  const template = ctx.stepInputs.__template_step_name;
  return {
    batchId: typeof batchId === 'string' || typeof batchId === 'number' ? String(batchId) : '',
    cursor,
    startCursor: cursor.start_cursor ?? null,
    endCursor: cursor.end_cursor ?? null,
    batchSize: typeof size === 'number' ? size : 0,
    isNoOp: ctx.stepInputs.is_no_op === true,
    batchMetadata: isObject(metadata) ? metadata : {},
    templateStepName: typeof template === 'string' ? template : undefined,
  };
}

/** The result of a no-op placeholder worker: success with nothing processed. */
export function noOpWorkerResult(batch: BatchWorkerContext): StepHandlerResult {
  return StepHandlerResult.success({ no_op: true, batch_id: batch.batchId, items_processed: 0 });
}

/**
 * A functional batch worker: `fn` also gets `batch` (its `BatchWorkerContext`). A no-op placeholder
 * succeeds without calling `fn`; a step without batch inputs is a permanent validation failure.
 */
export function defineBatchWorker<
  D extends Record<string, string> = Record<never, string>,
  I extends Record<string, string> = Record<never, string>,
>(
  name: string,
  options: DefineHandlerOptions<D, I>,
  fn: (args: HandlerArgs<D, I> & { batch: BatchWorkerContext }) => unknown,
): StepHandlerClass {
  return defineHandler(name, options, (args) => {
    const batch = getBatchContext(args.context);
    if (batch === null) {
      throw new PermanentError(`batch worker ${name} ran on a step without a cursor in its inputs`, {
        errorType: ERROR_TYPES.validation,
      });
    }
    if (batch.isNoOp) return noOpWorkerResult(batch);
    return fn({ ...args, batch });
  });
}

/** One batch worker's outcome, as the convergence step sees it among its dependency results. */
export interface BatchWorkerResult {
  /** The worker step's name, `{workerTemplateName}_{batchId}`. */
  name: string;
  batchId: string;
  /** The worker's unwrapped result (`{}` for a failed worker). */
  result: JsonValue;
  /** False for a worker that failed permanently and was resolved (continue_on_failure). */
  success: boolean;
  /** The no-op placeholder `{T}_000` of a `no_batches` outcome. */
  isNoOp: boolean;
  /** Why a failed worker failed. */
  error?: { message: string; errorType?: string };
}

/** What `aggregateBatchResults` finds: the batch's workers and what the analyzer said. */
export interface BatchAggregation {
  /** The analyzer chose `no_batches`: only the no-op placeholder ran. */
  isNoBatches: boolean;
  /** Every worker among the dependencies (the placeholder and failed ones included), by name. */
  workers: BatchWorkerResult[];
  /** The workers that succeeded with real work (no placeholder). */
  succeeded: BatchWorkerResult[];
  /** The workers that failed (continue_on_failure lets the convergence step run after them). */
  failed: BatchWorkerResult[];
  /** The analyzer step (the dependency whose result holds the batch_processing_outcome), if present. */
  analyzerStepName?: string;
  /** The analyzer's unwrapped result, if present. */
  analyzerResult?: JsonObject;
  /** `total_items` of the analyzer's outcome (or of its result), if it said. */
  totalItems?: number;
  /** Sum of the numeric `items_processed` of the succeeded workers. */
  itemsProcessed: number;
}

/** The analyzer of `template`'s workers among the dependency results: name and result. */
function findAnalyzer(ctx: StepContext, template: string): [string, JsonObject] | undefined {
  let fallback: [string, JsonObject] | undefined;
  for (const name of ctx.getDependencyResultKeys()) {
    const result = ctx.dependencyResults[name]?.result;
    if (!isObject(result)) continue;
    const outcome = result.batch_processing_outcome;
    if (!isObject(outcome)) continue;
    if (outcome.worker_template_name === template || result.worker_template_name === template) {
      return [name, result];
    }
    fallback ??= [name, result];
  }
  return fallback;
}

/**
 * The results of the batch workers of `workerTemplateName` that a deferred convergence step
 * depends on (its dependency results named `{workerTemplateName}_…`), and what the batchable
 * analyzer decided: `isNoBatches` when its outcome is `no_batches`, or — without the analyzer among
 * the results — when the only worker is the no-op placeholder `{T}_000`. Failed workers
 * (continue_on_failure) are listed in `failed` with their error; the aggregator decides what they
 * mean. Throws nothing: the caller checks the fields it needs.
 */
export function aggregateBatchResults(ctx: StepContext, workerTemplateName: string): BatchAggregation {
  const prefix = `${workerTemplateName}_`;
  const workers: BatchWorkerResult[] = [];
  for (const name of ctx.getDependencyResultKeys()) {
    if (!name.startsWith(prefix)) continue;
    const envelope = ctx.dependencyResults[name];
    if (envelope === undefined) continue;
    const batchId = name.slice(prefix.length);
    const result = envelope.result;
    const worker: BatchWorkerResult = {
      name,
      batchId,
      result,
      success: envelope.success === true,
      isNoOp:
        batchId === NO_OP_BATCH_ID && isObject(result) && (result.no_op === true || result.is_no_op === true),
    };
    if (!worker.success) {
      worker.error = {
        message: envelope.error?.message ?? 'unknown error',
        ...(envelope.error?.error_type === undefined ? {} : { errorType: envelope.error.error_type }),
      };
    }
    workers.push(worker);
  }
  const analyzer = findAnalyzer(ctx, workerTemplateName);
  const outcome = analyzer === undefined ? undefined : analyzer[1].batch_processing_outcome;
  const isNoBatches = isObject(outcome)
    ? outcome.type === 'no_batches'
    : workers.length === 1 && workers[0]?.isNoOp === true;
  const total =
    isObject(outcome) && typeof outcome.total_items === 'number'
      ? outcome.total_items
      : analyzer?.[1].total_items;
  const succeeded = workers.filter((worker) => worker.success && !worker.isNoOp);
  let itemsProcessed = 0;
  for (const worker of succeeded) {
    const items = isObject(worker.result) ? worker.result.items_processed : undefined;
    if (typeof items === 'number' && Number.isFinite(items)) itemsProcessed += items;
  }
  return {
    isNoBatches,
    workers,
    succeeded,
    failed: workers.filter((worker) => !worker.success),
    ...(analyzer === undefined ? {} : { analyzerStepName: analyzer[0], analyzerResult: analyzer[1] }),
    ...(typeof total === 'number' ? { totalItems: total } : {}),
    itemsProcessed,
  };
}
