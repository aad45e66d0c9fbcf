/**
 * Orchestration settings that SQL reads where it applies them (`tasker.orchestration_settings`,
 * migration 0007): the decision point limits are enforced by whichever process applies a decision's
 * result (a worker inline or the engine), inside `tasker.process_decision_outcome`, so they live in
 * the database rather than in one process's memory. A key that was never written reads as the
 * reference default (B config `[orchestration.decision_points]`, C §4.1 items 2 and 7).
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

export interface OrchestrationSettings {
  decisionPoints?: Partial<DecisionPointSettings>;
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

/** Largest accepted limit (the SQL reader takes integers of up to 9 digits). */
const MAX_LIMIT = 100_000_000;

/**
 * The complete decision point settings (defaults for what `input` leaves out), validated: limits are
 * integers ≥ 1 and a warning threshold is not above its limit. Throws ValidationError.
 */
export function resolveDecisionPointSettings(
  input: Partial<DecisionPointSettings> = {},
): DecisionPointSettings {
  const settings: DecisionPointSettings = { ...DECISION_POINT_DEFAULTS };
  const issues: FieldIssue[] = [];
  for (const [key, value] of Object.entries(input) as Array<[string, unknown]>) {
    if (value === undefined) continue;
    if (!(key in DECISION_POINT_DEFAULTS)) {
      issues.push({ field: `decisionPoints.${key}`, message: 'is not a decision point setting' });
      continue;
    }
    if (key === 'enabled') {
      if (typeof value === 'boolean') settings.enabled = value;
      else issues.push({ field: 'decisionPoints.enabled', message: 'must be a boolean' });
      continue;
    }
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_LIMIT) {
      settings[key as Exclude<keyof DecisionPointSettings, 'enabled'>] = value;
    } else {
      issues.push({
        field: `decisionPoints.${key}`,
        message: `must be an integer from 1 to ${MAX_LIMIT}, got ${String(value)}`,
      });
    }
  }
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

/**
 * Writes the orchestration settings to `tasker.orchestration_settings` (one upsert statement),
 * validated first (nothing is written when any is invalid). Every decision point key is written,
 * with the defaults for those not given, so the table always states the limits in force. Returns
 * what was written. Call it once at orchestration start-up, after the migrations.
 */
export async function applyOrchestrationSettings(
  db: Queryable,
  settings: OrchestrationSettings = {},
): Promise<{ decisionPoints: DecisionPointSettings }> {
  const decisionPoints = resolveDecisionPointSettings(settings.decisionPoints);
  const rows = (Object.keys(DECISION_POINT_SETTING_KEYS) as Array<keyof DecisionPointSettings>).map(
    (name) => ({
      key: DECISION_POINT_SETTING_KEYS[name],
      value: decisionPoints[name],
    }),
  );
  await db.query(
    `INSERT INTO tasker.orchestration_settings (key, value, updated_at)
     SELECT r ->> 'key', r -> 'value', now() FROM jsonb_array_elements($1::jsonb) r
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
     WHERE tasker.orchestration_settings.value IS DISTINCT FROM EXCLUDED.value`,
    [JSON.stringify(rows)],
  );
  return { decisionPoints };
}
