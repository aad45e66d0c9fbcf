import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MissingInputError, StepContext, type StepContextData, successResult } from '../src/index.ts';

interface OrderInput {
  order_id: string;
  quantity?: number;
  note?: string | null;
}
interface OrderDeps extends Record<string, unknown> {
  validate_order: { valid: boolean; items: Array<{ sku: string }> };
}

function done(result: Parameters<typeof successResult>[0]['result']) {
  return successResult({ stepUuid: 'u', result, executionTimeMs: 1 });
}

const data: StepContextData<OrderInput> = {
  taskUuid: 't1',
  stepUuid: 's1',
  stepName: 'charge',
  correlationId: 'c1',
  inputData: { order_id: 'o-1', note: null },
  stepConfig: { currency: 'EUR' },
  stepInputs: { cursor: 0 },
  dependencyResults: {
    validate_order: done({ valid: true, items: [{ sku: 'A' }, { sku: 'B' }] }),
    process_batch_002: done({ count: 2 }),
    process_batch_001: done({ count: 1 }),
  },
  retryCount: 0,
  maxAttempts: 3,
};

describe('StepContext', () => {
  const ctx = new StepContext<OrderInput, OrderDeps>(data);

  it('exposes the ids and config', () => {
    assert.equal(ctx.taskUuid, 't1');
    assert.equal(ctx.stepUuid, 's1');
    assert.equal(ctx.stepName, 'charge');
    assert.equal(ctx.correlationId, 'c1');
    assert.equal(ctx.getConfig('currency'), 'EUR');
    assert.equal(ctx.getConfig('missing'), undefined);
    assert.deepEqual(ctx.stepInputs, { cursor: 0 });
    assert.equal(ctx.signal.aborted, false);
  });

  it('reads typed inputs and fails clearly on a missing one', () => {
    const id: string = ctx.getInput('order_id');
    assert.equal(id, 'o-1');
    assert.equal(ctx.getInput('note'), null);
    assert.throws(
      () => ctx.getInput('quantity'),
      (error: unknown) => {
        assert.ok(error instanceof MissingInputError);
        assert.equal(error.key, 'quantity');
        assert.match(error.message, /"quantity" is missing/);
        return true;
      },
    );
    const quantity: number = ctx.getInputOr('quantity', 5);
    assert.equal(quantity, 5);
    assert.equal(ctx.getInputOr('order_id', 'x'), 'o-1');
  });

  it('unwraps dependency results and nested fields', () => {
    const validated = ctx.getDependencyResult('validate_order');
    assert.equal(validated?.valid, true);
    assert.equal(ctx.getDependencyResult('nope'), undefined);
    assert.equal(ctx.getDependencyField('validate_order', 'items', 1, 'sku'), 'B');
    assert.equal(ctx.getDependencyField('validate_order', 'items', 'x'), undefined);
    assert.equal(ctx.getDependencyField('validate_order', 'valid', 'deeper'), undefined);
    assert.equal(ctx.getDependencyField('nope', 'a'), undefined);
  });

  it('looks dependencies up by prefix, ordered by name', () => {
    assert.deepEqual(ctx.getAllDependencyResults('process_batch_'), [{ count: 1 }, { count: 2 }]);
    assert.deepEqual(ctx.getAllDependencyResults('zzz'), []);
    assert.deepEqual(ctx.getDependencyResultKeys(), [
      'process_batch_001',
      'process_batch_002',
      'validate_order',
    ]);
  });

  it('computes the retry predicates', () => {
    const at = (retryCount: number, maxAttempts: number) =>
      new StepContext({ ...data, retryCount, maxAttempts });
    assert.equal(at(0, 3).isRetry(), false);
    assert.equal(at(0, 3).isLastRetry(), false);
    assert.equal(at(1, 3).isRetry(), true);
    assert.equal(at(1, 3).isLastRetry(), false);
    assert.equal(at(2, 3).isLastRetry(), true);
    assert.equal(at(0, 1).isLastRetry(), true);
  });

  it('reads the checkpoint', () => {
    assert.equal(ctx.hasCheckpoint(), false);
    assert.equal(ctx.checkpoint, null);
    assert.equal(ctx.checkpointCursor, undefined);
    assert.equal(ctx.checkpointItemsProcessed, 0);
    assert.equal(ctx.accumulatedResults, undefined);
    const resumed = new StepContext({
      ...data,
      checkpoint: { cursor: 500, items_processed: 500, accumulated_results: { sum: 42 } },
    });
    assert.equal(resumed.hasCheckpoint(), true);
    assert.equal(resumed.checkpointCursor, 500);
    assert.equal(resumed.checkpointItemsProcessed, 500);
    assert.deepEqual(resumed.accumulatedResults, { sum: 42 });
  });

  it('defaults optional data to empty', () => {
    const bare = new StepContext({
      ...data,
      stepConfig: undefined,
      stepInputs: undefined,
      dependencyResults: undefined,
    });
    assert.deepEqual(bare.stepConfig, {});
    assert.deepEqual(bare.getDependencyResultKeys(), []);
  });
});
