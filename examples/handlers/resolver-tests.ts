/**
 * Handler resolution (reference C §6.3; `ResolverTests.*`):
 * - #21 `resolver_tests_ts/method_dispatch_ts`: one callable, `MultiMethodHandler`, whose entry point the
 *   template's `handler.method` selects (`validate`, `process`, `refund`, default `call`);
 * - #22 `resolver_tests_ts/resolver_hints_ts`: the same handler through the `explicit_mapping` resolver
 *   hint and through the plain chain, and `AlternateMethodHandler.execute_action` with hint + method.
 *
 * Every result names the method that ran (`invoked_method`); the SDK also records it in
 * `metadata.custom.invoked_method` for methods other than `call`. When the template states the method it
 * expects (`initialization.expected_method` or `method_used`), a different one is a permanent error, so a worker that
 * ignored `handler.method` (the reference's HEAD quirk, C §1.5 d) fails loudly instead of passing.
 */
import type { JsonObject } from '@tasker/core';
import { PermanentError, type StepContext, StepHandler } from '@tasker/worker';
import { fromCents, invalid, isObject, optionalString, toCents } from './support.ts';

function checkDispatch(ctx: StepContext, method: string): void {
  // #21 states `expected_method`; #22's combined hint step states `method_used`.
  const expected = ctx.getConfig('expected_method') ?? ctx.getConfig('method_used');
  if (typeof expected === 'string' && expected !== method) {
    throw new PermanentError(`method dispatch mismatch: expected "${expected}", ran "${method}"`, {
      errorCode: 'METHOD_DISPATCH_MISMATCH',
      metadata: { expected_method: expected, invoked_method: method },
    });
  }
}

function data(ctx: StepContext): JsonObject {
  const value = ctx.getInputOr('data', {});
  return isObject(value) ? value : {};
}

/** What every entry point reports, so a test can tell which one ran and where it was configured. */
function base(ctx: StepContext, handler: string, method: string): JsonObject {
  checkDispatch(ctx, method);
  return {
    invoked_method: method,
    handler,
    step_name: ctx.stepName,
    step_number: ctx.getConfig('step_number') ?? null,
    resolver_used: ctx.getConfig('resolver_used') ?? null,
  };
}

export class MultiMethodHandler extends StepHandler {
  static override handlerName = 'ResolverTests.StepHandlers.MultiMethodHandler';

  call(ctx: StepContext) {
    return {
      ...base(ctx, 'MultiMethodHandler', 'call'),
      message: 'Default call method invoked',
      input_received: data(ctx),
    };
  }

  validate(ctx: StepContext) {
    const result = base(ctx, 'MultiMethodHandler', 'validate');
    const input = data(ctx);
    if (typeof input.amount !== 'number') {
      throw invalid('Validation failed: missing required field "amount"', { field: 'data.amount' });
    }
    return {
      ...result,
      message: 'Validation completed successfully',
      validated: true,
      input_validated: input,
    };
  }

  /** Adds a 10 % processing fee, in cents so 100 ⇒ 110 exactly. */
  process(ctx: StepContext) {
    const result = base(ctx, 'MultiMethodHandler', 'process');
    const amount = data(ctx).amount;
    const cents = toCents(typeof amount === 'number' ? amount : 0);
    const processed = Math.round(cents * 1.1);
    return {
      ...result,
      message: 'Processing completed',
      original_amount: fromCents(cents),
      processed_amount: fromCents(processed),
      processing_fee: fromCents(processed - cents),
    };
  }

  refund(ctx: StepContext) {
    const result = base(ctx, 'MultiMethodHandler', 'refund');
    const input = data(ctx);
    return {
      ...result,
      message: 'Refund processed',
      refund_amount: typeof input.amount === 'number' ? input.amount : 0,
      refund_reason: optionalString(input.reason, 'not_specified'),
      // Derived from the step so a retry reports the same refund.
      refund_id: `refund_${ctx.stepUuid}`,
    };
  }
}

export class AlternateMethodHandler extends StepHandler {
  static override handlerName = 'ResolverTests.StepHandlers.AlternateMethodHandler';

  call(ctx: StepContext) {
    return { ...base(ctx, 'AlternateMethodHandler', 'call'), message: 'Alternate handler default method' };
  }

  // snake_case on purpose: the template's `handler.method` names it so.
  execute_action(ctx: StepContext) {
    return {
      ...base(ctx, 'AlternateMethodHandler', 'execute_action'),
      message: 'Custom action executed',
      action_type: optionalString(ctx.getInputOr('action_type', null), 'default_action'),
    };
  }
}
