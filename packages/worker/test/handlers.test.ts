import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type HandlerDefinition, ValidationError } from '@tasker/core';
import {
  defineHandler,
  executeHandler,
  HandlerRegistry,
  PermanentError,
  RetryableError,
  type StepContext,
  type StepContextData,
  StepHandler,
  StepHandlerResult,
  successResult,
} from '../src/index.ts';

const contextData: StepContextData = {
  taskUuid: 't1',
  stepUuid: 's1',
  stepName: 'step',
  correlationId: 'c1',
  inputData: { amount: 10, customer: 'ada' },
  dependencyResults: {
    fetch: successResult({ stepUuid: 'f', result: { items: [1, 2, 3] }, executionTimeMs: 1 }),
  },
  retryCount: 0,
  maxAttempts: 3,
};

function step(
  callable: string,
  extra: Partial<HandlerDefinition> = {},
  timeout_seconds: number | null = null,
) {
  return {
    name: 'step',
    handler: { callable, method: 'call', resolver: null, initialization: {}, ...extra },
    timeout_seconds,
  };
}

function run(registry: HandlerRegistry, s: ReturnType<typeof step>, timeoutMs = 1000) {
  return executeHandler(registry, s, contextData, { timeoutMs, workerId: 'w1' });
}

class PaymentHandler extends StepHandler {
  static override handlerName = 'payments.process';

  call(ctx: StepContext): StepHandlerResult {
    return this.success({ charged: ctx.getInput('amount') }, { gateway: 'test' });
  }

  refund(ctx: StepContext): StepHandlerResult {
    return this.success({ refunded: ctx.getInput('amount') });
  }

  validate(): StepHandlerResult {
    return this.failure('invalid card', {
      retryable: false,
      errorType: 'validation_error',
      errorCode: 'CARD',
    });
  }

  rateLimited(): StepHandlerResult {
    return this.failure('slow down', { retryAfterSeconds: 7, statusCode: 429 });
  }
}

describe('class handlers', () => {
  const registry = new HandlerRegistry();
  registry.register(PaymentHandler.handlerName, PaymentHandler);

  it('runs call and records the handler metadata', async () => {
    const result = await run(registry, step('payments.process'));
    assert.equal(result.success, true);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { charged: 10 });
    assert.deepEqual(result.metadata.custom, { gateway: 'test' });
    assert.equal(result.metadata.worker_id, 'w1');
    assert.equal(result.step_uuid, 's1');
    assert.ok(result.metadata.execution_time_ms >= 0);
  });

  it('dispatches handler.method and records invoked_method', async () => {
    const result = await run(registry, step('payments.process', { method: 'refund' }));
    assert.deepEqual(result.result, { refunded: 10 });
    assert.equal(result.metadata.custom.invoked_method, 'refund');
  });

  it('maps declared failures (permanent and retryable with hint)', async () => {
    const invalid = await run(registry, step('payments.process', { method: 'validate' }));
    assert.equal(invalid.success, false);
    assert.equal(invalid.metadata.retryable, false);
    assert.equal(invalid.metadata.error_type, 'validation_error');
    assert.equal(invalid.metadata.error_code, 'CARD');
    assert.equal(invalid.error?.message, 'invalid card');
    assert.equal(invalid.metadata.custom.invoked_method, 'validate');

    const limited = await run(registry, step('payments.process', { method: 'rateLimited' }));
    assert.equal(limited.metadata.retryable, true);
    assert.equal(limited.error?.status_code, 429);
    assert.equal(limited.orchestration_metadata?.backoff_hint?.delay_seconds, 7);
  });

  it('reports an unknown method, SDK helpers and Object members as handler_not_found', async () => {
    for (const method of ['nope', 'success', 'failure', 'constructor', 'toString', 'hasOwnProperty']) {
      const result = await run(registry, step('payments.process', { method }));
      assert.equal(result.metadata.error_type, 'handler_not_found', method);
      assert.equal(result.metadata.retryable, false);
    }
  });

  it('exposes name and version', () => {
    const handler = new PaymentHandler();
    assert.equal(handler.name, 'payments.process');
    assert.equal(handler.version, '1.0.0');
  });
});

describe('functional handlers', () => {
  it('injects dependencies, inputs and context', async () => {
    const registry = new HandlerRegistry();
    const Sum = defineHandler(
      'sum',
      {
        depends: { fetched: 'fetch', missing: 'nope' },
        inputs: { amount: 'amount', absent: 'absent' },
        version: '2.0.0',
      },
      ({ fetched, missing, amount, absent, context }) => ({
        fetched,
        amount,
        missing: missing === undefined,
        absent: absent === undefined,
        task: context.taskUuid,
      }),
    );
    assert.equal(Sum.handlerName, 'sum');
    assert.equal(Sum.handlerVersion, '2.0.0');
    assert.equal(Sum.name, 'sum');
    registry.register('sum', Sum);
    const result = await run(registry, step('sum'));
    assert.deepEqual(result.result, {
      fetched: { items: [1, 2, 3] },
      amount: 10,
      missing: true,
      absent: true,
      task: 't1',
    });
  });

  const cases: Array<[string, () => unknown, (r: Awaited<ReturnType<typeof run>>) => void]> = [
    ['plain object', () => ({ a: 1 }), (r) => assert.deepEqual(r.result, { a: 1 })],
    ['undefined', () => undefined, (r) => assert.deepEqual(r.result, {})],
    ['null', () => null, (r) => assert.deepEqual(r.result, {})],
    ['scalar', () => 42, (r) => assert.deepEqual(r.result, { result: 42 })],
    ['array', () => [1, 2], (r) => assert.deepEqual(r.result, { result: [1, 2] })],
    [
      'Date inside',
      () => ({ at: new Date(0) }),
      (r) => assert.deepEqual(r.result, { at: '1970-01-01T00:00:00.000Z' }),
    ],
    ['async value', async () => ({ later: true }), (r) => assert.deepEqual(r.result, { later: true })],
    [
      'explicit success',
      () => StepHandlerResult.success({ s: 1 }, { meta: 'm' }),
      (r) => {
        assert.deepEqual(r.result, { s: 1 });
        assert.deepEqual(r.metadata.custom, { meta: 'm' });
      },
    ],
    [
      'explicit failure',
      () => StepHandlerResult.failure('declined', { retryable: false }),
      (r) => {
        assert.equal(r.success, false);
        assert.equal(r.error?.message, 'declined');
        assert.equal(r.metadata.error_type, 'permanent_error');
      },
    ],
  ];
  for (const [label, body, check] of cases) {
    it(`auto-wraps: ${label}`, async () => {
      const registry = new HandlerRegistry();
      registry.register('h', defineHandler('h', {}, body as () => undefined));
      const result = await run(registry, step('h'));
      check(result);
      if (label !== 'explicit failure') assert.equal(result.success, true);
    });
  }

  const throwing: Array<[string, () => unknown, { retryable: boolean; errorType: string; message: string }]> =
    [
      [
        'PermanentError',
        () => {
          throw new PermanentError('bad data');
        },
        { retryable: false, errorType: 'permanent_error', message: 'bad data' },
      ],
      [
        'RetryableError',
        () => {
          throw new RetryableError('later', { retryAfterSeconds: 3 });
        },
        { retryable: true, errorType: 'retryable_error', message: 'later' },
      ],
      [
        'Error',
        () => {
          throw new TypeError('oops');
        },
        { retryable: true, errorType: 'handler_error', message: 'oops' },
      ],
      [
        'string',
        () => {
          throw 'str';
        },
        { retryable: true, errorType: 'handler_error', message: 'str' },
      ],
      [
        'undefined',
        () => {
          throw undefined;
        },
        { retryable: true, errorType: 'handler_error', message: 'handler threw undefined' },
      ],
      [
        'rejected promise',
        () => Promise.reject({ any: 'object' }),
        {
          retryable: true,
          errorType: 'handler_error',
          message: 'handler threw a non-Error value of type object',
        },
      ],
      [
        'missing input',
        function (this: void) {
          return undefined;
        },
        {
          retryable: false,
          errorType: 'validation_error',
          message: 'required input "nope" is missing from the task context',
        },
      ],
      [
        'cyclic result',
        () => {
          const o: Record<string, unknown> = {};
          o.self = o;
          return o;
        },
        { retryable: true, errorType: 'handler_error', message: '' },
      ],
    ];
  for (const [label, body, expected] of throwing) {
    it(`classifies a thrown ${label}`, async () => {
      const registry = new HandlerRegistry();
      const fn =
        label === 'missing input'
          ? ({ context }: { context: StepContext }) => context.getInput('nope')
          : body;
      registry.register('t', defineHandler('t', {}, fn as () => undefined));
      const result = await run(registry, step('t'));
      assert.equal(result.success, false);
      assert.equal(result.status, 'error');
      assert.deepEqual(result.result, {});
      assert.equal(result.metadata.retryable, expected.retryable);
      assert.equal(result.metadata.error_type, expected.errorType);
      if (expected.message !== '') assert.equal(result.error?.message, expected.message);
      if (label === 'RetryableError')
        assert.equal(result.orchestration_metadata?.backoff_hint?.delay_seconds, 3);
    });
  }

  it('rejects reserved and clashing argument names', () => {
    assert.throws(() => defineHandler('x', { inputs: { context: 'c' } }, () => undefined), ValidationError);
    assert.throws(
      () => defineHandler('x', { depends: { a: 's' }, inputs: { a: 'k' } }, () => undefined),
      ValidationError,
    );
    assert.throws(() => defineHandler(' ', {}, () => undefined), ValidationError);
  });
});

describe('executeHandler', () => {
  it('times a hanging handler out, aborting its signal', async () => {
    const registry = new HandlerRegistry();
    let aborted: unknown;
    registry.register(
      'hang',
      defineHandler('hang', {}, ({ context }) => {
        context.signal.addEventListener('abort', () => {
          aborted = context.signal.reason;
        });
        return new Promise(() => {});
      }),
    );
    const result = await run(registry, step('hang'), 30);
    assert.equal(result.success, false);
    assert.equal(result.metadata.error_type, 'timeout');
    assert.equal(result.metadata.retryable, true);
    assert.equal(result.error?.message, 'handler execution timed out after 30 ms');
    assert.ok(aborted instanceof Error);
  });

  it('uses a shorter step timeout_seconds', async () => {
    const registry = new HandlerRegistry();
    registry.register(
      'slow',
      defineHandler('slow', {}, () => new Promise(() => {})),
    );
    const result = await run(registry, step('slow', {}, 0.02), 60_000);
    assert.equal(result.error?.message, 'handler execution timed out after 20 ms');
  });

  it('reports an unknown handler or an empty callable as a permanent failure', async () => {
    const registry = new HandlerRegistry();
    const unknown = await run(registry, step('nobody'));
    assert.equal(unknown.metadata.error_type, 'handler_not_found');
    assert.equal(unknown.metadata.retryable, false);
    const empty = await run(registry, step(''));
    assert.equal(empty.metadata.error_type, 'permanent_error');
    assert.equal(empty.metadata.retryable, false);
  });

  it('turns an invalid declared failure into a classified failure', async () => {
    const registry = new HandlerRegistry();
    registry.register(
      'bad',
      defineHandler('bad', {}, () => StepHandlerResult.failure('x', { retryable: true, statusCode: -1 })),
    );
    const result = await run(registry, step('bad'));
    assert.equal(result.success, false);
    assert.equal(result.metadata.error_type, 'handler_error');
  });

  it('rejects an invalid timeoutMs', async () => {
    await assert.rejects(run(new HandlerRegistry(), step('x'), 0), ValidationError);
  });
});
