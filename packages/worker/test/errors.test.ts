import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '@tasker/core';
import {
  classifyError,
  HandlerNotFoundError,
  HandlerTimeoutError,
  MissingInputError,
  PermanentError,
  RetryableError,
} from '../src/index.ts';

describe('classifyError', () => {
  const table: Array<[string, unknown, { retryable: boolean; errorType: string; message: string }]> = [
    [
      'PermanentError',
      new PermanentError('card declined'),
      { retryable: false, errorType: 'permanent_error', message: 'card declined' },
    ],
    [
      'RetryableError',
      new RetryableError('busy'),
      { retryable: true, errorType: 'retryable_error', message: 'busy' },
    ],
    [
      'timeout',
      new HandlerTimeoutError(50),
      { retryable: true, errorType: 'timeout', message: 'handler execution timed out after 50 ms' },
    ],
    [
      'not found',
      new HandlerNotFoundError('x', 'no handler found for "x"'),
      { retryable: false, errorType: 'handler_not_found', message: 'no handler found for "x"' },
    ],
    [
      'missing input',
      new MissingInputError('order_id'),
      {
        retryable: false,
        errorType: 'validation_error',
        message: 'required input "order_id" is missing from the task context',
      },
    ],
    ['Error', new Error('boom'), { retryable: true, errorType: 'handler_error', message: 'boom' }],
    [
      'TypeError',
      new TypeError('x is not a function'),
      { retryable: true, errorType: 'handler_error', message: 'x is not a function' },
    ],
    [
      'Error without message',
      new RangeError(''),
      { retryable: true, errorType: 'handler_error', message: 'RangeError' },
    ],
    ['string', 'plain string', { retryable: true, errorType: 'handler_error', message: 'plain string' }],
    [
      'empty string',
      '',
      { retryable: true, errorType: 'handler_error', message: 'handler threw an empty string' },
    ],
    [
      'object',
      { secret: 'do not leak', message: 42 },
      {
        retryable: true,
        errorType: 'handler_error',
        message: 'handler threw a non-Error value of type object',
      },
    ],
    [
      'array',
      [1, 2],
      {
        retryable: true,
        errorType: 'handler_error',
        message: 'handler threw a non-Error value of type array',
      },
    ],
    [
      'undefined',
      undefined,
      { retryable: true, errorType: 'handler_error', message: 'handler threw undefined' },
    ],
    ['null', null, { retryable: true, errorType: 'handler_error', message: 'handler threw null' }],
    [
      'number',
      7,
      {
        retryable: true,
        errorType: 'handler_error',
        message: 'handler threw a non-Error value of type number',
      },
    ],
  ];
  for (const [label, thrown, expected] of table) {
    it(`classifies ${label}`, () => {
      const c = classifyError(thrown);
      assert.equal(c.retryable, expected.retryable);
      assert.equal(c.errorType, expected.errorType);
      assert.equal(c.message, expected.message);
    });
  }

  it('classifies the reason of a rejected promise like a throw', async () => {
    const reason = await Promise.reject(new PermanentError('nope')).catch((error: unknown) => error);
    assert.equal(classifyError(reason).retryable, false);
  });

  it('records the class name of a generic error and the type of a thrown value', () => {
    assert.deepEqual(classifyError(new TypeError('t')).context, { error_class: 'TypeError' });
    assert.deepEqual(classifyError(undefined).context, { thrown_type: 'undefined' });
  });

  it('carries the retry hint, metadata, error code and error type override', () => {
    const c = classifyError(
      new RetryableError('rate limited', {
        retryAfterSeconds: 30,
        metadata: { api: 'x' },
        errorCode: 'E429',
        errorType: 'rate_limited',
      }),
    );
    assert.deepEqual(c, {
      retryable: true,
      errorType: 'rate_limited',
      message: 'rate limited',
      errorCode: 'E429',
      retryAfterSeconds: 30,
      context: { api: 'x' },
    });
    assert.equal(classifyError(new RetryableError('r')).retryAfterSeconds, undefined);
  });

  it('clips very long messages', () => {
    assert.ok(classifyError('x'.repeat(10_000)).message.length <= 2001);
  });
});

describe('handler errors', () => {
  it('have stable codes', () => {
    assert.equal(new PermanentError('a').code, 'permanent_error');
    assert.equal(new RetryableError('a').code, 'retryable_error');
    assert.equal(new HandlerTimeoutError(1).code, 'timeout');
    assert.equal(new HandlerNotFoundError('c', 'm').code, 'handler_not_found');
    assert.equal(new MissingInputError('k').code, 'validation_error');
    assert.equal(new PermanentError('a').name, 'PermanentError');
  });

  it('keep the cause', () => {
    const cause = new Error('root');
    assert.equal(new PermanentError('a', { cause }).cause, cause);
  });

  it('reject a negative or non-finite retryAfterSeconds', () => {
    assert.throws(() => new RetryableError('r', { retryAfterSeconds: -1 }), ValidationError);
    assert.throws(() => new RetryableError('r', { retryAfterSeconds: Number.NaN }), ValidationError);
    assert.equal(new RetryableError('r', { retryAfterSeconds: 0 }).retryAfterSeconds, 0);
  });
});
