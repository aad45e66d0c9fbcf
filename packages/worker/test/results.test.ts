import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '@tasker/core';
import { failureResult, parseStepExecutionResult, StepHandlerResult, successResult } from '../src/index.ts';

const UUID = '0190a1b2-0000-7000-8000-000000000001';
const AT = '2026-01-01T00:00:00.000Z';

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError);
    return error.issues.map((issue) => issue.field);
  }
  assert.fail('expected a ValidationError');
}

describe('successResult / failureResult', () => {
  it('builds a success in wire shape', () => {
    assert.deepEqual(
      successResult({
        stepUuid: UUID,
        result: { total: 3 },
        executionTimeMs: 12.4,
        completedAt: AT,
        workerId: 'w1',
        custom: { a: 1 },
      }),
      {
        step_uuid: UUID,
        success: true,
        result: { total: 3 },
        status: 'completed',
        metadata: {
          execution_time_ms: 12,
          retryable: false,
          completed_at: AT,
          custom: { a: 1 },
          context: {},
          worker_id: 'w1',
        },
      },
    );
  });

  it('defaults the result to {} and completed_at to now', () => {
    const r = successResult({ stepUuid: UUID, executionTimeMs: 0 });
    assert.deepEqual(r.result, {});
    assert.ok(!Number.isNaN(Date.parse(r.metadata.completed_at)));
  });

  it('builds a failure with error details and a backoff hint', () => {
    assert.deepEqual(
      failureResult({
        stepUuid: UUID,
        executionTimeMs: 5,
        completedAt: AT,
        message: 'rate limited',
        retryable: true,
        errorType: 'rate_limited',
        errorCode: 'E429',
        statusCode: 429,
        retryAfterSeconds: 30,
        context: { api: 'x' },
      }),
      {
        step_uuid: UUID,
        success: false,
        result: {},
        status: 'error',
        metadata: {
          execution_time_ms: 5,
          retryable: true,
          completed_at: AT,
          custom: {},
          context: { api: 'x' },
          error_type: 'rate_limited',
          error_code: 'E429',
        },
        error: {
          message: 'rate limited',
          error_type: 'rate_limited',
          retryable: true,
          status_code: 429,
          context: { api: 'x' },
        },
        orchestration_metadata: {
          headers: {},
          backoff_hint: { backoff_type: 'ServerRequested', delay_seconds: 30, context: {} },
          custom: {},
        },
      },
    );
  });

  it('defaults error_type from retryable and omits the hint without retryAfterSeconds', () => {
    const permanent = failureResult({ stepUuid: UUID, executionTimeMs: 1, message: 'm', retryable: false });
    assert.equal(permanent.error?.error_type, 'permanent_error');
    assert.equal(permanent.metadata.retryable, false);
    assert.equal(permanent.orchestration_metadata, undefined);
    assert.equal(
      failureResult({ stepUuid: UUID, executionTimeMs: 1, message: 'm', retryable: true }).error?.error_type,
      'retryable_error',
    );
  });

  it('rejects invalid numbers', () => {
    assert.throws(() => successResult({ stepUuid: UUID, executionTimeMs: -1 }), ValidationError);
    assert.throws(
      () =>
        failureResult({
          stepUuid: UUID,
          executionTimeMs: 1,
          message: 'm',
          retryable: true,
          retryAfterSeconds: -5,
        }),
      ValidationError,
    );
    assert.throws(
      () =>
        failureResult({
          stepUuid: UUID,
          executionTimeMs: 1,
          message: 'm',
          retryable: true,
          statusCode: 70000,
        }),
      ValidationError,
    );
  });
});

describe('StepHandlerResult', () => {
  it('success and failure', () => {
    const ok = StepHandlerResult.success({ a: 1 }, { m: true });
    assert.equal(ok.success, true);
    assert.deepEqual(ok.result, { a: 1 });
    assert.deepEqual(ok.metadata, { m: true });
    const ko = StepHandlerResult.failure('bad', { retryable: false, errorType: 'validation_error' });
    assert.equal(ko.success, false);
    assert.deepEqual(ko.result, {});
    assert.equal(ko.error?.message, 'bad');
    assert.equal(ko.error?.retryable, false);
  });
});

describe('parseStepExecutionResult', () => {
  const success = successResult({ stepUuid: UUID, result: { n: 1 }, executionTimeMs: 3, completedAt: AT });
  const failure = failureResult({
    stepUuid: UUID,
    executionTimeMs: 3,
    completedAt: AT,
    message: 'm',
    retryable: true,
    retryAfterSeconds: 2,
    statusCode: 503,
    backtrace: ['a', 'b'],
  });

  it('round-trips built results through JSON', () => {
    assert.deepEqual(parseStepExecutionResult(JSON.parse(JSON.stringify(success))), success);
    assert.deepEqual(parseStepExecutionResult(JSON.parse(JSON.stringify(failure))), failure);
  });

  it('accepts absent custom/context maps as empty', () => {
    const raw = JSON.parse(JSON.stringify(success));
    delete raw.metadata.custom;
    delete raw.metadata.context;
    assert.deepEqual(parseStepExecutionResult(raw).metadata.custom, {});
  });

  const required: Array<[string, (raw: Record<string, Record<string, unknown>>) => void]> = [
    ['step_uuid', (raw) => delete raw.step_uuid],
    ['success', (raw) => delete raw.success],
    ['result', (raw) => delete raw.result],
    ['status', (raw) => delete raw.status],
    ['metadata', (raw) => delete raw.metadata],
    ['metadata.execution_time_ms', (raw) => delete raw.metadata?.execution_time_ms],
    ['metadata.retryable', (raw) => delete raw.metadata?.retryable],
    ['metadata.completed_at', (raw) => delete raw.metadata?.completed_at],
    ['error.message', (raw) => delete raw.error?.message],
    ['error.retryable', (raw) => delete raw.error?.retryable],
  ];
  for (const [field, remove] of required) {
    it(`rejects a result without ${field}`, () => {
      const raw = JSON.parse(JSON.stringify(failure));
      remove(raw);
      assert.deepEqual(
        issuesOf(() => parseStepExecutionResult(raw)),
        [field],
      );
    });
  }

  it('rejects wrong types and unknown statuses, listing every issue', () => {
    const raw = JSON.parse(JSON.stringify(failure));
    raw.status = 'done';
    raw.success = 'yes';
    raw.metadata.execution_time_ms = -1;
    raw.orchestration_metadata.backoff_hint.backoff_type = 'Whenever';
    assert.deepEqual(issuesOf(() => parseStepExecutionResult(raw)).sort(), [
      'metadata.execution_time_ms',
      'orchestration_metadata.backoff_hint.backoff_type',
      'status',
      'success',
    ]);
  });

  it('rejects non-objects and non-JSON results', () => {
    assert.deepEqual(
      issuesOf(() => parseStepExecutionResult(null)),
      ['(root)'],
    );
    assert.deepEqual(
      issuesOf(() => parseStepExecutionResult([])),
      ['(root)'],
    );
    assert.deepEqual(
      issuesOf(() => parseStepExecutionResult({ ...success, result: Number.NaN })),
      ['result'],
    );
  });
});
