/**
 * `executeHandler`: resolve a step's handler, run it under a time limit, and turn whatever happens into
 * a `StepExecutionResult` — it never throws for a handler fault (not found, thrown, rejected, hung,
 * non-JSON result). Only invalid options (a bad `timeoutMs`) reject.
 */
import { type JsonObject, type StepDefinition, ValidationError } from '@tasker/core';
import { StepContext, type StepContextData } from './context.ts';
import { classifyError, ERROR_TYPES, HandlerTimeoutError } from './errors.ts';
import type { HandlerRegistry } from './registry.ts';
import {
  failureResult,
  type StepExecutionResult,
  StepHandlerResult,
  successResult,
  toJsonValue,
} from './results.ts';

export interface ExecuteOptions {
  /** Time limit of one execution (ms, > 0). The step's `timeout_seconds`, when shorter, wins. */
  timeoutMs: number;
  /** Recorded as `metadata.worker_id`. */
  workerId?: string;
}

/** The parts of a step definition execution needs. */
export type ExecutableStep = Pick<StepDefinition, 'name' | 'handler'> &
  Partial<Pick<StepDefinition, 'timeout_seconds'>>;

function effectiveTimeout(step: ExecutableStep, timeoutMs: number): number {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ValidationError([{ field: 'timeoutMs', message: 'must be a finite number > 0' }]);
  }
  const stepSeconds = step.timeout_seconds;
  if (typeof stepSeconds === 'number' && stepSeconds > 0) return Math.min(timeoutMs, stepSeconds * 1000);
  return timeoutMs;
}

function normalize(value: unknown): StepHandlerResult {
  if (value instanceof StepHandlerResult) return value;
  if (value === null || value === undefined) return StepHandlerResult.success({});
  const json = toJsonValue(value);
  if (typeof json === 'object' && json !== null && !Array.isArray(json))
    return StepHandlerResult.success(json);
  return StepHandlerResult.success({ result: json });
}

export async function executeHandler(
  registry: HandlerRegistry,
  step: ExecutableStep,
  contextData: StepContextData,
  options: ExecuteOptions,
): Promise<StepExecutionResult> {
  const timeoutMs = effectiveTimeout(step, options.timeoutMs);
  const startedAt = new Date();
  const start = performance.now();
  const info = () => {
    const base = {
      stepUuid: contextData.stepUuid,
      executionTimeMs: Math.max(0, performance.now() - start),
      startedAt: startedAt.toISOString(),
    };
    return options.workerId === undefined ? base : { ...base, workerId: options.workerId };
  };
  const fail = (error: unknown, custom: JsonObject = {}): StepExecutionResult => {
    const c = classifyError(error);
    return failureResult({
      ...info(),
      custom,
      message: c.message,
      retryable: c.retryable,
      errorType: c.errorType,
      context: c.context,
      ...(c.errorCode === undefined ? {} : { errorCode: c.errorCode }),
      ...(c.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: c.retryAfterSeconds }),
    });
  };

  if (step.handler.callable.trim() === '') {
    return failureResult({
      ...info(),
      message: `step "${step.name}" has no handler callable`,
      retryable: false,
      errorType: ERROR_TYPES.permanent,
    });
  }
  let resolved: Awaited<ReturnType<HandlerRegistry['resolve']>>;
  try {
    resolved = await registry.resolve(step.handler);
  } catch (error) {
    return fail(error);
  }
  const custom: JsonObject = resolved.method === 'call' ? {} : { invoked_method: resolved.method };

  const controller = new AbortController();
  const context = new StepContext(contextData, controller.signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new HandlerTimeoutError(timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  let outcome: StepHandlerResult;
  try {
    // Promise.resolve().then(...) turns a synchronous throw of the entry point into a rejection.
    const run = Promise.resolve().then(() => resolved.invoke(context));
    outcome = normalize(await Promise.race([run, timeout]));
  } catch (error) {
    return fail(error, custom);
  } finally {
    clearTimeout(timer);
  }

  const declared = outcome.error;
  try {
    if (outcome.success || declared === undefined) {
      return successResult({ ...info(), result: outcome.result, custom: { ...outcome.metadata, ...custom } });
    }
    const { metadata: _metadata, ...details } = declared;
    return failureResult({ ...info(), ...details, custom: { ...outcome.metadata, ...custom } });
  } catch (error) {
    // A declared failure with invalid details (e.g. a negative retryAfterSeconds) is a handler bug.
    return fail(error, custom);
  }
}
