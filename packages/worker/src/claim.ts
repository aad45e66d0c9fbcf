import { type StepDefinition, ValidationError } from '@tasker/core';
import type { StepContextData } from './context.ts';
import { parseStepExecutionResult, type StepExecutionResult } from './results.ts';

/** What `tasker.claim_step` returns, checked: the handler's context and the template step it runs. */
export interface ClaimedStep {
  namespace: string;
  taskName: string;
  /** The template step (batch worker instances map to their template). */
  step: StepDefinition;
  context: StepContextData;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks the JSON of `tasker.claim_step` and turns it into the SDK's `StepContextData`. A missing or
 * mistyped field is a `ValidationError` naming it (never a silent default, AUDIT S-4); stored
 * dependency results must be StepExecutionResults.
 */
export function parseClaimedStep(value: unknown): ClaimedStep {
  if (!isObject(value)) throw new ValidationError([{ field: '(claim)', message: 'must be an object' }]);
  const issues: { field: string; message: string }[] = [];
  const text = (key: string): string => {
    const field = value[key];
    if (typeof field === 'string' && field.length > 0) return field;
    issues.push({ field: key, message: 'must be a non-empty string' });
    return '';
  };
  const integer = (key: string): number => {
    const field = value[key];
    if (typeof field === 'number' && Number.isInteger(field) && field >= 0) return field;
    issues.push({ field: key, message: 'must be a non-negative integer' });
    return 0;
  };
  const object = (key: string): Fields => {
    const field = value[key];
    if (isObject(field)) return field;
    issues.push({ field: key, message: 'must be an object' });
    return {};
  };
  const taskUuid = text('task_uuid');
  const stepUuid = text('step_uuid');
  const stepName = text('step_name');
  const correlationId = text('correlation_id');
  const namespace = text('namespace');
  const taskName = text('task_name');
  const inputData = object('context');
  const stepInputs = object('step_inputs');
  const definition = object('step_definition');
  const dependencies = object('dependency_results');
  const retryCount = integer('retry_count');
  const maxAttempts = integer('max_attempts');
  const checkpoint = value.checkpoint;
  if (checkpoint !== null && checkpoint !== undefined && !isObject(checkpoint)) {
    issues.push({ field: 'checkpoint', message: 'must be an object or null' });
  }
  const handler = definition.handler;
  if (typeof definition.name !== 'string' || !isObject(handler) || typeof handler.callable !== 'string') {
    issues.push({ field: 'step_definition', message: 'must be a template step with a handler callable' });
  }
  const dependencyResults: Record<string, StepExecutionResult> = {};
  for (const [name, result] of Object.entries(dependencies)) {
    try {
      dependencyResults[name] = parseStepExecutionResult(result);
    } catch (error) {
      const detail = error instanceof ValidationError ? error.message : String(error);
      issues.push({ field: `dependency_results.${name}`, message: `is not a step result (${detail})` });
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  const handlerConfig = isObject(handler) && isObject(handler.initialization) ? handler.initialization : {};
  return {
    namespace,
    taskName,
    step: definition as unknown as StepDefinition,
    context: {
      taskUuid,
      stepUuid,
      stepName,
      correlationId,
      inputData: inputData as StepContextData['inputData'],
      stepConfig: handlerConfig as StepContextData['stepConfig'],
      stepInputs: stepInputs as StepContextData['stepInputs'],
      dependencyResults,
      retryCount,
      maxAttempts,
      checkpoint: (checkpoint ?? null) as StepContextData['checkpoint'],
    },
  };
}
