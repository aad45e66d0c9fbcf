/**
 * Outcome and retry scenarios (reference C §6.2) plus test support:
 * - #12–#15 `test_scenarios_ts/*`, `test_errors_ts/error_testing_handler_ts` (`TestScenarios.*`):
 *   always succeed / fail permanently / fail retryably;
 * - #16, #17 `rust_e2e_retry/*` (`RetryTests.StepHandlers.FailNTimesHandler`): fail the first
 *   `fail_count` attempts, then succeed (`attempts_before_success = fail_count + 1`);
 * - #18 `test_sql/boundary_*` (`BoundaryTests.StepHandlers.NoOpHandler`);
 * - #20 `dlq_test/dlq_staleness_test` (`DlqTests.StepHandlers.TestStepHandler`): echoes `test_input`;
 * - `TestSupport.StepHandlers.SleepHandler` (no template): sleeps `sleep_ms` (`retry_sleep_ms` on later
 *   attempts when given), for shutdown, crash and timeout tests.
 *
 * Attempt-dependent behaviour reads `ctx.retryCount` (the step row's attempts before this claim), never
 * in-process state: each attempt may run in a different worker process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineHandler, PermanentError, RetryableError, type StepContext, StepHandler } from '@tasker/worker';
import { configNumber, invalid, optionalString } from './support.ts';

// #12, #15: the message is optional (C §6.2: `{message}` or `{}`).
export const SuccessStepHandler = defineHandler(
  'TestScenarios.StepHandlers.SuccessStepHandler',
  { inputs: { message: 'message' } },
  ({ message, context }) => ({
    message: optionalString(message, 'Success!'),
    scenario: 'success',
    operation: optionalString(context.getConfig('operation'), 'success'),
    handler: 'SuccessStepHandler',
  }),
);

// #13, #15: thrown; the SDK classifies a PermanentError as not retryable (`permanent_error`).
export const PermanentErrorHandler = defineHandler(
  'TestScenarios.StepHandlers.PermanentErrorHandler',
  { inputs: { errorMessage: 'error_message' } },
  ({ errorMessage, context }) => {
    throw new PermanentError(optionalString(errorMessage, 'Permanent error - no retry allowed'), {
      metadata: {
        scenario: 'permanent_error',
        handler: 'PermanentErrorHandler',
        attempt: context.retryCount + 1,
      },
    });
  },
);

// #14, #15: a declared (returned) failure rather than a throw, to cover the other failure path.
export class RetryableErrorHandler extends StepHandler {
  static override handlerName = 'TestScenarios.StepHandlers.RetryableErrorHandler';

  call(ctx: StepContext) {
    return this.failure(
      optionalString(ctx.getInputOr('error_message', null), 'Retryable error - will be retried'),
      {
        retryable: true,
        errorType: 'retryable_error',
        context: {
          scenario: 'retryable_error',
          handler: 'RetryableErrorHandler',
          attempt: ctx.retryCount + 1,
        },
      },
    );
  }
}

/**
 * #16, #17. Attempts are 1-based (`retryCount + 1`), as in the Rust fixture: with `fail_count: 2`
 * attempts 1 and 2 fail and attempt 3 succeeds with `attempts_before_success = 3`.
 */
export class FailNTimesHandler extends StepHandler {
  static override handlerName = 'RetryTests.StepHandlers.FailNTimesHandler';

  call(ctx: StepContext) {
    const failCount = configNumber(ctx.getConfig('fail_count'), 1);
    const attempt = ctx.retryCount + 1;
    if (attempt <= failCount) {
      throw new RetryableError(
        `Simulated failure on attempt ${attempt} (will succeed after ${failCount} failures)`,
        { errorCode: 'SIMULATED_FAILURE', metadata: { attempt, fail_until: failCount } },
      );
    }
    return {
      attempts_before_success: attempt,
      fail_count_configured: failCount,
      message: 'Succeeded after simulated failures',
    };
  }
}

/**
 * #18. Readiness boundaries are SQL tests, so this normally just succeeds; `should_fail: true` in the
 * task context makes it fail retryably, so the same templates can show end to end that a
 * `retryable: false` step (or one out of attempts) is not re-run.
 */
export const NoOpHandler = defineHandler(
  'BoundaryTests.StepHandlers.NoOpHandler',
  { inputs: { shouldFail: 'should_fail' } },
  ({ shouldFail, context }) => {
    if (shouldFail === true) {
      throw new RetryableError('boundary test failure requested', {
        metadata: { attempt: context.retryCount + 1 },
      });
    }
    return { no_op: true, step_name: context.stepName, attempt: context.retryCount + 1 };
  },
);

// #20: both steps share the handler; the DLQ scenario is driven by orchestration, not by the handler.
export const DlqTestStepHandler = defineHandler(
  'DlqTests.StepHandlers.TestStepHandler',
  { inputs: { testInput: 'test_input' } },
  ({ testInput, context }) => ({
    step_name: context.stepName,
    operation: optionalString(context.getConfig('operation'), 'return_input'),
    test_input: testInput ?? null,
  }),
);

/**
 * Test support: sleeps `sleep_ms` (task context, else `handler.initialization`) and succeeds. It ignores
 * `ctx.signal` on purpose: tests of shutdown draining and of timeouts need a handler that keeps
 * running until its time is up.
 */
export const SleepHandler = defineHandler(
  'TestSupport.StepHandlers.SleepHandler',
  {},
  async ({ context }) => {
    // crash and shutdown tests let the first attempt hang and the retry finish at once
    const key =
      context.retryCount > 0 && context.inputData.retry_sleep_ms !== undefined
        ? 'retry_sleep_ms'
        : 'sleep_ms';
    const value = context.inputData[key] ?? context.getConfig(key);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw invalid(`${key} must be a number >= 0`, { field: key });
    }
    await sleep(value);
    return { slept_ms: value, attempt: context.retryCount + 1 };
  },
);
