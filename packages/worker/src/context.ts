/**
 * `StepContext`: everything a handler may read about the step it runs (reference C §2.2), built per
 * execution from a plain `StepContextData` (what the worker's claim returns). Generic over the task
 * input (`Input`) and the unwrapped dependency results (`Deps`, keyed by step name) so handlers can be
 * typed; the types are a promise the template makes, not something checked at run time.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import { MissingInputError } from './errors.ts';
import type { StepExecutionResult } from './results.ts';

/** The plain data a `StepContext` is built from. */
export interface StepContextData<Input extends object = JsonObject> {
  taskUuid: string;
  stepUuid: string;
  stepName: string;
  correlationId: string;
  /** The task's context (input JSON). */
  inputData: Input;
  /** The template's `handler.initialization`. */
  stepConfig?: JsonObject;
  /** The step row's `inputs` (initialization snapshot; batch workers add cursor data). */
  stepInputs?: JsonObject;
  /** Results of the step's ancestors, by step name (the stored `StepExecutionResult`s). */
  dependencyResults?: Readonly<Record<string, StepExecutionResult>>;
  /** Attempts made before this one (0 on the first run). */
  retryCount: number;
  /** Total attempts allowed, including the first. */
  maxAttempts: number;
  /** The step's checkpoint (snake_case keys: `cursor`, `items_processed`, `accumulated_results`). */
  checkpoint?: JsonObject | null;
}

type Present<T> = Exclude<T, undefined>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class StepContext<
  Input extends object = JsonObject,
  Deps extends Record<string, unknown> = Record<string, JsonValue>,
> {
  readonly taskUuid: string;
  readonly stepUuid: string;
  readonly stepName: string;
  readonly correlationId: string;
  readonly inputData: Readonly<Input>;
  readonly stepConfig: Readonly<JsonObject>;
  readonly stepInputs: Readonly<JsonObject>;
  readonly dependencyResults: Readonly<Record<string, StepExecutionResult>>;
  readonly retryCount: number;
  readonly maxAttempts: number;
  readonly checkpoint: Readonly<JsonObject> | null;
  /** Aborted when the execution times out (or the worker stops): long work should watch it. */
  readonly signal: AbortSignal;

  constructor(data: StepContextData<Input>, signal: AbortSignal = new AbortController().signal) {
    this.taskUuid = data.taskUuid;
    this.stepUuid = data.stepUuid;
    this.stepName = data.stepName;
    this.correlationId = data.correlationId;
    this.inputData = data.inputData;
    this.stepConfig = data.stepConfig ?? {};
    this.stepInputs = data.stepInputs ?? {};
    this.dependencyResults = data.dependencyResults ?? {};
    this.retryCount = data.retryCount;
    this.maxAttempts = data.maxAttempts;
    this.checkpoint = data.checkpoint ?? null;
    this.signal = signal;
  }

  /** The task input `key`; throws `MissingInputError` (permanent, `validation_error`) when absent. */
  getInput<K extends keyof Input & string>(key: K): Present<Input[K]> {
    const value = this.inputData[key];
    if (value === undefined) throw new MissingInputError(key);
    return value as Present<Input[K]>;
  }

  /** The task input `key`, or `fallback` when it is absent (`null` is a value, not absence). */
  getInputOr<K extends keyof Input & string>(key: K, fallback: Present<Input[K]>): Present<Input[K]> {
    const value = this.inputData[key];
    return value === undefined ? fallback : (value as Present<Input[K]>);
  }

  /** `handler.initialization[key]`, undefined when absent. */
  getConfig(key: string): JsonValue | undefined {
    return this.stepConfig[key];
  }

  /** The `result` of ancestor `stepName`'s execution; undefined when that step has no result. */
  getDependencyResult<K extends keyof Deps & string>(stepName: K): Deps[K] | undefined {
    const envelope = this.dependencyResults[stepName];
    return envelope === undefined ? undefined : (envelope.result as Deps[K]);
  }

  /** A nested value inside a dependency's result (`getDependencyField('fetch', 'items', 0, 'id')`). */
  getDependencyField(stepName: string, ...path: Array<string | number>): JsonValue | undefined {
    let current: JsonValue | undefined = this.dependencyResults[stepName]?.result;
    for (const segment of path) {
      if (typeof segment === 'number' && Array.isArray(current)) current = current[segment];
      else if (typeof segment === 'string' && isObject(current)) current = current[segment];
      else return undefined;
    }
    return current;
  }

  /** Names of the steps whose results are available, sorted. */
  getDependencyResultKeys(): string[] {
    return Object.keys(this.dependencyResults).sort();
  }

  /** Unwrapped results of every dependency whose step name starts with `prefix`, ordered by name. */
  getAllDependencyResults(prefix: string): JsonValue[] {
    return this.getDependencyResultKeys()
      .filter((name) => name.startsWith(prefix))
      .flatMap((name) => {
        const envelope = this.dependencyResults[name];
        return envelope === undefined ? [] : [envelope.result];
      });
  }

  /** True when an earlier attempt of this step ran. */
  isRetry(): boolean {
    return this.retryCount > 0;
  }

  /** True when this attempt is the last one allowed (`retryCount >= maxAttempts - 1`). */
  isLastRetry(): boolean {
    return this.retryCount >= this.maxAttempts - 1;
  }

  hasCheckpoint(): boolean {
    return this.checkpoint !== null;
  }

  /** `checkpoint.cursor`; undefined without a checkpoint. */
  get checkpointCursor(): JsonValue | undefined {
    return this.checkpoint?.cursor;
  }

  /** `checkpoint.items_processed`; 0 without a checkpoint (or a non-numeric value). */
  get checkpointItemsProcessed(): number {
    const value = this.checkpoint?.items_processed;
    return typeof value === 'number' ? value : 0;
  }

  /** `checkpoint.accumulated_results`; undefined without one. */
  get accumulatedResults(): JsonValue | undefined {
    return this.checkpoint?.accumulated_results;
  }
}
