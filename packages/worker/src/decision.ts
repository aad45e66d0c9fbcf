/**
 * Decision point helpers (reference C §2.4, §2.5, §4.1). A `decision` step's successful result
 * carries `result.decision_point_outcome`: `{type: 'create_steps', step_names}` names the template
 * steps orchestration creates next (with their deferred convergence steps), `{type: 'no_branches'}`
 * creates none. Orchestration validates the names (declared, descending from the decision, at most
 * 100) and fails the decision step permanently when they are not.
 */
import { type JsonObject, ValidationError } from '@tasker/core';
import { type DefineHandlerOptions, defineHandler, type HandlerArgs } from './define.ts';
import { PermanentError } from './errors.ts';
import type { StepHandlerClass } from './handler.ts';
import { StepHandlerResult } from './results.ts';

/** The error type of a failed decision (`decisionFailure`, a decision handler's bad return). */
export const DECISION_ERROR_TYPE = 'decision_error';

export type DecisionPointOutcome = { type: 'no_branches' } | { type: 'create_steps'; step_names: string[] };

function checkStepNames(stepNames: readonly string[]): string[] {
  const issues = [];
  if (stepNames.length === 0) {
    issues.push({ field: 'stepNames', message: 'must name at least one step (use skipBranches for none)' });
  }
  // how many a decision may create is orchestration's setting (max_steps_per_decision), checked where
  // the outcome is applied
  stepNames.forEach((name, index) => {
    if (typeof name !== 'string' || name.trim() === '') {
      issues.push({ field: `stepNames[${index}]`, message: 'must be a non-empty step name' });
    }
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return [...new Set(stepNames)];
}

/**
 * A successful decision creating `stepNames`; `extra` adds result fields (e.g. `routing_context`)
 * next to `decision_point_outcome`, which it cannot override.
 */
export function decisionSuccess(
  stepNames: readonly string[],
  extra: JsonObject = {},
  metadata: JsonObject = {},
): StepHandlerResult {
  const outcome: DecisionPointOutcome = { type: 'create_steps', step_names: checkStepNames(stepNames) };
  return StepHandlerResult.success({ ...extra, decision_point_outcome: outcome }, metadata);
}

/** A successful decision creating no steps, with the reason in the result. */
export function skipBranches(
  reason: string,
  extra: JsonObject = {},
  metadata: JsonObject = {},
): StepHandlerResult {
  const outcome: DecisionPointOutcome = { type: 'no_branches' };
  return StepHandlerResult.success({ ...extra, decision_point_outcome: outcome, reason }, metadata);
}

export interface DecisionFailureOptions {
  /** Default false: a decision is deterministic, the same input decides the same way again. */
  retryable?: boolean;
  /** Default `decision_error`. */
  errorType?: string;
  errorCode?: string;
  context?: JsonObject;
  metadata?: JsonObject;
}

/** A failed decision (non-retryable unless told otherwise). */
export function decisionFailure(message: string, options: DecisionFailureOptions = {}): StepHandlerResult {
  return StepHandlerResult.failure(message, {
    ...options,
    retryable: options.retryable ?? false,
    errorType: options.errorType ?? DECISION_ERROR_TYPE,
  });
}

/** What `Decision.route` / `Decision.skip` build for a decision handler to return. */
export class Decision {
  readonly stepNames: readonly string[];
  readonly reason: string | undefined;
  readonly extra: JsonObject;

  private constructor(stepNames: readonly string[], reason: string | undefined, extra: JsonObject) {
    this.stepNames = stepNames;
    this.reason = reason;
    this.extra = extra;
  }

  /** Create these steps; `extra` adds result fields. */
  static route(stepNames: readonly string[], extra: JsonObject = {}): Decision {
    return new Decision(stepNames, undefined, extra);
  }

  /** Create no steps, for `reason`. */
  static skip(reason: string, extra: JsonObject = {}): Decision {
    return new Decision([], reason, extra);
  }

  toResult(): StepHandlerResult {
    return this.reason === undefined
      ? decisionSuccess(this.stepNames, this.extra)
      : skipBranches(this.reason, this.extra);
  }
}

/** What a decision handler's function may return (or resolve to). */
export type DecisionReturn = readonly string[] | Decision | StepHandlerResult;

function isStringArray(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * A functional decision handler (`defineHandler` with the same `depends` / `inputs` injection):
 * `fn` returns the step names to create (none ⇒ no branches), `Decision.route(names, extra)`, `Decision.skip(reason)`, or a
 * `StepHandlerResult` (e.g. `decisionFailure`) that passes through. Anything else is a permanent
 * `decision_error`: the handler has a bug, and retrying it would decide the same.
 */
export function defineDecisionHandler<
  D extends Record<string, string> = Record<never, string>,
  I extends Record<string, string> = Record<never, string>,
>(
  name: string,
  options: DefineHandlerOptions<D, I>,
  fn: (args: HandlerArgs<D, I>) => DecisionReturn | Promise<DecisionReturn>,
): StepHandlerClass {
  return defineHandler(name, options, async (args) => {
    const returned: unknown = await fn(args);
    if (returned instanceof StepHandlerResult) return returned;
    if (returned instanceof Decision) return returned.toResult();
    if (isStringArray(returned)) {
      return returned.length === 0 ? skipBranches('no branch chosen') : decisionSuccess(returned);
    }
    throw new PermanentError(
      `decision handler ${name} must return step names, Decision.route/skip or a StepHandlerResult`,
      { errorType: DECISION_ERROR_TYPE },
    );
  });
}
