import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '@tasker/core';
import { parseClaimedStep, StepContext, successResult } from '../src/index.ts';

const start = successResult({ stepUuid: 'step-start', executionTimeMs: 2, result: { value: 36 } });

/** The shape `tasker.claim_step` returns (see packages/core/migrations/0005_worker_hops.sql). */
function claim(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    task_uuid: 'task-1',
    step_uuid: 'step-end',
    step_name: 'diamond_end_ts',
    template_step_name: 'diamond_end_ts',
    correlation_id: 'corr-1',
    namespace: 'diamond_workflow_ts',
    task_name: 'parallel_computation_ts',
    task_version: '1.0.0',
    context: { even_number: 6 },
    step_inputs: { factor: 2 },
    step_definition: {
      name: 'diamond_end_ts',
      handler: { callable: 'Diamond.End', initialization: { factor: 2 } },
    },
    dependency_results: { diamond_start_ts: start },
    retry_count: 1,
    max_attempts: 3,
    retryable: true,
    checkpoint: null,
    ...overrides,
  };
}

describe('claimed step', () => {
  it('becomes the handler context', () => {
    const claimed = parseClaimedStep(claim());
    assert.equal(claimed.namespace, 'diamond_workflow_ts');
    assert.equal(claimed.step.handler.callable, 'Diamond.End');
    const context = new StepContext(claimed.context);
    assert.equal(context.taskUuid, 'task-1');
    assert.equal(context.getInput('even_number'), 6);
    assert.equal(context.getConfig('factor'), 2);
    assert.deepEqual(context.getDependencyResult('diamond_start_ts'), { value: 36 });
    assert.equal(context.retryCount, 1);
    assert.equal(context.isRetry(), true);
    assert.equal(context.isLastRetry(), false);
  });

  it('names every missing or mistyped field', () => {
    assert.throws(
      () =>
        parseClaimedStep(
          claim({
            task_uuid: undefined,
            retry_count: -1,
            context: [],
            step_definition: { name: 'x' },
            checkpoint: 3,
          }),
        ),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['task_uuid', 'retry_count', 'context', 'step_definition', 'checkpoint'].every((field) =>
          error.issues.some((issue) => issue.field === field),
        ),
    );
    assert.throws(
      () => parseClaimedStep(claim({ dependency_results: { diamond_start_ts: { result: 1 } } })),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.issues.some((issue) => issue.field === 'dependency_results.diamond_start_ts'),
    );
    assert.throws(() => parseClaimedStep(null), ValidationError);
  });
});
