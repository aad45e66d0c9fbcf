/** The engine's settings: one schema of explicit defaults, checked at construction (AUDIT O-7, O-9). */
import { ValidationError } from '@tasker/core';

/** B §1.5: how an event system learns of work. Configured separately for intake and readiness. */
export const DEPLOYMENT_MODES = ['Hybrid', 'EventDrivenOnly', 'PollingOnly'] as const;
export type DeploymentMode = (typeof DEPLOYMENT_MODES)[number];

export interface EngineSettings {
  /** Results and task requests: push (notifications), fallback polling, or both (default). */
  orchestrationMode: DeploymentMode;
  /** Readiness: push = retry timers woken by notifications; polling = discovery passes. */
  readinessMode: DeploymentMode;
  /** Fallback poll interval of the result and request queues (B: 5 s). */
  fallbackPollIntervalMs: number;
  /** The fallback poller takes only messages at least this old: push had its chance (B: 5 s). */
  fallbackMinAgeSeconds: number;
  /** Messages taken per poll or push pass (B: processing.batch_size 20). */
  messageBatchSize: number;
  /** Discovery interval of the readiness poller (B: 5 s). */
  readinessPollIntervalMs: number;
  /** Tasks claimed per discovery pass (B: 5). */
  readinessBatchSize: number;
  /** Steps enqueued per task per pass (B: common.execution.step_enqueue_batch_size 50). */
  stepEnqueueBatchSize: number;
  /**
   * Task creations that arrive together are written in one transaction, at most this many (1: each
   * alone). See create-batcher.ts.
   */
  createBatchSize: number;
  /** Creation transactions under way at once. */
  createBatchesInFlight: number;
  /** Creations waiting for a transaction; past this many a creation is refused (503 over HTTP). */
  createQueueCapacity: number;
  /** Visibility timeout of a task request being processed. */
  requestVisibilityTimeoutSeconds: number;
  /** A result message whose apply failed is visible again after this delay. */
  resultRetryDelaySeconds: number;
  /** Retry timers held in memory; beyond this the readiness poller picks the retries up. */
  maxRetryTimers: number;
  /** Stop drains in-flight work for at most this long (B: 30 s; 1 s to 300 s). */
  shutdownTimeoutMs: number;
  queues: { stepResults: string; taskRequests: string };
}

export const ENGINE_DEFAULTS: EngineSettings = {
  orchestrationMode: 'Hybrid',
  readinessMode: 'Hybrid',
  fallbackPollIntervalMs: 5000,
  fallbackMinAgeSeconds: 5,
  messageBatchSize: 20,
  readinessPollIntervalMs: 5000,
  readinessBatchSize: 5,
  stepEnqueueBatchSize: 50,
  createBatchSize: 32,
  createBatchesInFlight: 2,
  createQueueCapacity: 1000,
  requestVisibilityTimeoutSeconds: 30,
  resultRetryDelaySeconds: 5,
  maxRetryTimers: 10_000,
  shutdownTimeoutMs: 30_000,
  queues: { stepResults: 'orchestration_step_results', taskRequests: 'orchestration_task_requests' },
};

type Bounds = readonly [min: number, max: number];
const NUMBER_BOUNDS: Record<
  Exclude<keyof EngineSettings, 'orchestrationMode' | 'readinessMode' | 'queues'>,
  Bounds
> = {
  fallbackPollIntervalMs: [10, 3_600_000],
  fallbackMinAgeSeconds: [0, 86_400],
  messageBatchSize: [1, 1000],
  readinessPollIntervalMs: [10, 3_600_000],
  readinessBatchSize: [1, 1000],
  stepEnqueueBatchSize: [1, 10_000],
  createBatchSize: [1, 1000],
  createBatchesInFlight: [1, 64],
  createQueueCapacity: [1, 1_000_000],
  requestVisibilityTimeoutSeconds: [1, 86_400],
  resultRetryDelaySeconds: [0, 86_400],
  maxRetryTimers: [0, 10_000_000],
  shutdownTimeoutMs: [1000, 300_000],
};

/** The defaults with `overrides` over them, each checked; unknown keys are refused. */
export function engineSettings(overrides: Partial<EngineSettings> = {}): EngineSettings {
  const issues: { field: string; message: string }[] = [];
  for (const key of Object.keys(overrides)) {
    if (!(key in ENGINE_DEFAULTS)) issues.push({ field: key, message: 'is not an engine setting' });
  }
  const settings: EngineSettings = { ...ENGINE_DEFAULTS, ...overrides };
  for (const key of ['orchestrationMode', 'readinessMode'] as const) {
    if (!(DEPLOYMENT_MODES as readonly string[]).includes(settings[key]))
      issues.push({ field: key, message: `must be one of ${DEPLOYMENT_MODES.join(', ')}` });
  }
  for (const [key, [min, max]] of Object.entries(NUMBER_BOUNDS)) {
    const value = settings[key as keyof typeof NUMBER_BOUNDS];
    if (!(typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max))
      issues.push({ field: key, message: `must be a number from ${min} to ${max}` });
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return settings;
}

export function hasPush(mode: DeploymentMode): boolean {
  return mode !== 'PollingOnly';
}

export function hasPolling(mode: DeploymentMode): boolean {
  return mode !== 'EventDrivenOnly';
}
