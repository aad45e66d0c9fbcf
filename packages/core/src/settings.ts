/**
 * Orchestration settings that SQL reads where it applies them (`tasker.orchestration_settings`,
 * migration 0007): the decision point and batch processing limits are enforced by whichever process
 * applies a decision's or a batchable step's result (a worker inline or the engine), inside
 * `tasker.process_decision_outcome` / `process_batch_outcome`, so they live in the database rather
 * than in one process's memory. A key that was never written reads as the reference default (B
 * config `[orchestration.decision_points]` and `[orchestration.batch_processing]`, C §4.1).
 */
import type { Queryable } from '@tasker/db';
import { type FieldIssue, ValidationError } from './errors.ts';

export interface DecisionPointSettings {
  /** false: a decision's outcome is ignored (nothing created) and the step completes with a warning. */
  enabled: boolean;
  /** A create_steps outcome naming more steps fails the decision step permanently (too_many_steps). */
  maxStepsPerDecision: number;
  /** Above this many steps the outcome proceeds with a warning in the transition metadata. */
  warnStepsPerDecision: number;
  /** Decision steps on a path from a root to the decision (itself included) above this fail it (max_depth_exceeded). */
  maxDecisionDepth: number;
  /** Above this depth the outcome proceeds with a warning. */
  warnDecisionDepth: number;
}

export interface BatchProcessingSettings {
  /** false: a batchable step's outcome is ignored (no workers) and the step completes with a warning. */
  enabled: boolean;
  /** An outcome asking for more batch workers fails the batchable step permanently (too_many_batches). */
  maxParallelBatches: number;
}

export interface OrchestrationSettings {
  decisionPoints?: Partial<DecisionPointSettings>;
  batchProcessing?: Partial<BatchProcessingSettings>;
}

export const DECISION_POINT_DEFAULTS: Readonly<DecisionPointSettings> = Object.freeze({
  enabled: true,
  maxStepsPerDecision: 100,
  warnStepsPerDecision: 50,
  maxDecisionDepth: 20,
  warnDecisionDepth: 10,
});

/** The `tasker.orchestration_settings` key of each decision point setting. */
export const DECISION_POINT_SETTING_KEYS: Readonly<Record<keyof DecisionPointSettings, string>> =
  Object.freeze({
    enabled: 'decision_points.enabled',
    maxStepsPerDecision: 'decision_points.max_steps_per_decision',
    warnStepsPerDecision: 'decision_points.warn_threshold_steps',
    maxDecisionDepth: 'decision_points.max_decision_depth',
    warnDecisionDepth: 'decision_points.warn_threshold_depth',
  });

export const BATCH_PROCESSING_DEFAULTS: Readonly<BatchProcessingSettings> = Object.freeze({
  enabled: true,
  maxParallelBatches: 50,
});

/** The `tasker.orchestration_settings` key of each batch processing setting. */
export const BATCH_PROCESSING_SETTING_KEYS: Readonly<Record<keyof BatchProcessingSettings, string>> =
  Object.freeze({
    enabled: 'batch_processing.enabled',
    maxParallelBatches: 'batch_processing.max_parallel_batches',
  });

/** Largest accepted limit (the SQL reader takes integers of up to 9 digits). */
const MAX_LIMIT = 100_000_000;

/**
 * The complete decision point settings (defaults for what `input` leaves out), validated: limits are
 * integers ≥ 1 and a warning threshold is not above its limit. Throws ValidationError.
 */
export function resolveDecisionPointSettings(
  input: Partial<DecisionPointSettings> = {},
): DecisionPointSettings {
  const issues: FieldIssue[] = [];
  const settings = resolveGroup('decisionPoints', DECISION_POINT_DEFAULTS, input, issues);
  if (issues.length === 0) {
    if (settings.warnStepsPerDecision > settings.maxStepsPerDecision) {
      issues.push({
        field: 'decisionPoints.warnStepsPerDecision',
        message: 'must not be above maxStepsPerDecision',
      });
    }
    if (settings.warnDecisionDepth > settings.maxDecisionDepth) {
      issues.push({
        field: 'decisionPoints.warnDecisionDepth',
        message: 'must not be above maxDecisionDepth',
      });
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return settings;
}

/** The complete batch processing settings, validated (the limit an integer ≥ 1). Throws ValidationError. */
export function resolveBatchProcessingSettings(
  input: Partial<BatchProcessingSettings> = {},
): BatchProcessingSettings {
  const issues: FieldIssue[] = [];
  const settings = resolveGroup('batchProcessing', BATCH_PROCESSING_DEFAULTS, input, issues);
  if (issues.length > 0) throw new ValidationError(issues);
  return settings;
}

/** Defaults overlaid with `input`: `enabled` a boolean, every other key an integer limit. */
function resolveGroup<T extends { enabled: boolean }>(
  group: string,
  defaults: Readonly<T>,
  input: Partial<T>,
  issues: FieldIssue[],
): T {
  const settings: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(input) as Array<[string, unknown]>) {
    if (value === undefined) continue;
    if (!(key in defaults)) {
      issues.push({ field: `${group}.${key}`, message: `is not a ${group} setting` });
    } else if (key === 'enabled') {
      if (typeof value === 'boolean') settings.enabled = value;
      else issues.push({ field: `${group}.enabled`, message: 'must be a boolean' });
    } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_LIMIT) {
      settings[key] = value;
    } else {
      issues.push({
        field: `${group}.${key}`,
        message: `must be an integer from 1 to ${MAX_LIMIT}, got ${String(value)}`,
      });
    }
  }
  return settings as T;
}

/**
 * Writes the orchestration settings to `tasker.orchestration_settings` (one upsert statement),
 * validated first (nothing is written when any is invalid). Every decision point key is written,
 * with the defaults for those not given, so the table always states the limits in force. Returns
 * what was written. Call it once at orchestration start-up, after the migrations.
 */
export async function applyOrchestrationSettings(
  db: Queryable,
  settings: OrchestrationSettings = {},
): Promise<{ decisionPoints: DecisionPointSettings; batchProcessing: BatchProcessingSettings }> {
  const issues: FieldIssue[] = [];
  const attempt = <T>(resolve: () => T): T | undefined => {
    try {
      return resolve();
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push(...error.issues);
      return undefined;
    }
  };
  const decisionPoints = attempt(() => resolveDecisionPointSettings(settings.decisionPoints));
  const batchProcessing = attempt(() => resolveBatchProcessingSettings(settings.batchProcessing));
  if (decisionPoints === undefined || batchProcessing === undefined) throw new ValidationError(issues);
  const rows = [
    ...rowsOf(DECISION_POINT_SETTING_KEYS, decisionPoints),
    ...rowsOf(BATCH_PROCESSING_SETTING_KEYS, batchProcessing),
  ];
  await db.query(
    `INSERT INTO tasker.orchestration_settings (key, value, updated_at)
     SELECT r ->> 'key', r -> 'value', now() FROM jsonb_array_elements($1::jsonb) r
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
     WHERE tasker.orchestration_settings.value IS DISTINCT FROM EXCLUDED.value`,
    [JSON.stringify(rows)],
  );
  return { decisionPoints, batchProcessing };
}

function rowsOf<T extends object>(
  keys: Readonly<Record<keyof T, string>>,
  values: T,
): Array<{ key: string; value: unknown }> {
  return (Object.keys(keys) as Array<keyof T>).map((name) => ({ key: keys[name], value: values[name] }));
}
