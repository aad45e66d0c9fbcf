/**
 * Checkpoint yields (reference C §1.8, TAS-125). A long handler — usually a batch worker — returns
 * `checkpointYield(cursor, itemsProcessed, accumulatedResults?)` instead of a final result: the worker
 * runtime stores the checkpoint (`tasker.checkpoint_step`, under a time limit, AUDIT W-1) and runs
 * the handler again under the same claim, with the new checkpoint in its `StepContext`
 * (`hasCheckpoint()`, `checkpointCursor`, `checkpointItemsProcessed`, `accumulatedResults`). A yield
 * uses no attempt. After a real failure and a retry the new claim's context carries the stored
 * checkpoint, so the handler resumes from it (work done after the last checkpoint runs again:
 * handlers must be idempotent from a checkpoint on).
 */
import { type JsonObject, type JsonValue, ValidationError } from '@tasker/core';
import { type StepExecutionResult, StepHandlerResult, toJsonValue } from './results.ts';

/** `result.type` of a checkpoint yield. */
export const CHECKPOINT_YIELD_TYPE = 'checkpoint_yield';
/** `error_type` of the retryable failure reported when a checkpoint cannot be stored in time. */
export const CHECKPOINT_ERROR_TYPE = 'checkpoint_error';
/** `error_type` of the permanent failure of a handler that yields more often than allowed per claim. */
export const CHECKPOINT_LIMIT_ERROR_TYPE = 'checkpoint_limit_exceeded';

/** What a handler yields: where to resume, how much is done, and what it carries along. */
export interface CheckpointYieldData {
  cursor: JsonValue;
  itemsProcessed: number;
  /** Null when none was given. */
  accumulatedResults: JsonValue;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkItems(itemsProcessed: unknown): itemsProcessed is number {
  return typeof itemsProcessed === 'number' && Number.isSafeInteger(itemsProcessed) && itemsProcessed >= 0;
}

/**
 * The result a handler returns to yield a checkpoint: a success whose `result` is
 * `{type: 'checkpoint_yield', cursor, items_processed, accumulated_results?}` and whose metadata says
 * `checkpoint_yield: true`. The worker intercepts it; it is never stored as the step's result.
 * `cursor` is any JSON (an index, a key, an object); `itemsProcessed` an integer ≥ 0.
 */
export function checkpointYield(
  cursor: unknown,
  itemsProcessed: number,
  accumulatedResults?: unknown,
): StepHandlerResult {
  if (cursor === undefined) {
    throw new ValidationError([{ field: 'cursor', message: 'is required (any JSON value)' }]);
  }
  if (!checkItems(itemsProcessed)) {
    throw new ValidationError([{ field: 'itemsProcessed', message: 'must be an integer >= 0' }]);
  }
  const result: JsonObject = {
    type: CHECKPOINT_YIELD_TYPE,
    cursor: toJsonValue(cursor),
    items_processed: itemsProcessed,
  };
  if (accumulatedResults !== undefined) result.accumulated_results = toJsonValue(accumulatedResults);
  return StepHandlerResult.success(result, { checkpoint_yield: true });
}

/**
 * The checkpoint a step execution result yields, or null when it is a real result (a failure, or a
 * success without the yield marker). A marked result with an unusable body is a `ValidationError`.
 */
export function parseCheckpointYield(result: StepExecutionResult): CheckpointYieldData | null {
  if (!result.success || result.metadata.custom.checkpoint_yield !== true) return null;
  const body = result.result;
  if (!isObject(body) || body.type !== CHECKPOINT_YIELD_TYPE || !('cursor' in body)) {
    throw new ValidationError([
      { field: 'result', message: `a checkpoint yield needs type ${CHECKPOINT_YIELD_TYPE} and a cursor` },
    ]);
  }
  if (!checkItems(body.items_processed)) {
    throw new ValidationError([{ field: 'result.items_processed', message: 'must be an integer >= 0' }]);
  }
  return {
    cursor: body.cursor ?? null,
    itemsProcessed: body.items_processed,
    accumulatedResults: body.accumulated_results ?? null,
  };
}

/** The JSON `tasker.checkpoint_step` takes. */
export function checkpointPayload(data: CheckpointYieldData): JsonObject {
  return {
    cursor: data.cursor,
    items_processed: data.itemsProcessed,
    accumulated_results: data.accumulatedResults,
  };
}

/**
 * The checkpoint column as `tasker.checkpoint_step` writes it, for the handler's next run under the
 * same claim: `previous.history ++ [{cursor, timestamp}]`. `timestamp` is the worker's clock here (the
 * stored one is the database's; they differ by the round trip).
 */
export function nextCheckpoint(
  previous: JsonObject | null | undefined,
  data: CheckpointYieldData,
  timestamp: string,
): JsonObject {
  const history = previous?.history;
  return {
    cursor: data.cursor,
    items_processed: data.itemsProcessed,
    timestamp,
    accumulated_results: data.accumulatedResults,
    history: [...(Array.isArray(history) ? history : []), { cursor: data.cursor, timestamp }],
  };
}
