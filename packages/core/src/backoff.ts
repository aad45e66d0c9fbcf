import { TaskerError } from './errors.ts';
import type { BackoffStrategy, RetryConfiguration } from './template/model.ts';

export interface BackoffPolicy {
  strategy: BackoffStrategy;
  /** Delay unit: the first retry's delay for exponential/linear/fibonacci. */
  baseMs: number;
  /** Cap on any computed delay (a server-requested delay is capped too). */
  maxMs: number;
  /** Exponential growth factor. */
  multiplier: number;
  /** Random spread as a fraction of the delay, up or down (0.15 = ±15%). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  strategy: 'exponential',
  baseMs: 1000,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 0.15,
};

/** The policy of a template step's `retry` block, with the global multiplier and jitter. */
export function backoffPolicyFromRetry(
  retry: RetryConfiguration,
  global: Pick<BackoffPolicy, 'multiplier' | 'jitter'> = DEFAULT_BACKOFF,
): BackoffPolicy {
  return {
    strategy: retry.backoff,
    baseMs: retry.backoff_base_ms,
    maxMs: retry.max_backoff_ms,
    multiplier: global.multiplier,
    jitter: global.jitter,
  };
}

function fibonacci(n: number): number {
  let [a, b] = [1, 1];
  for (let i = 1; i < n; i++) [a, b] = [b, a + b];
  return a;
}

/**
 * Seconds to wait before the next attempt of a step that failed on attempt `attempts` (1 = the
 * first run failed). A server-requested delay (Retry-After) wins over the policy, capped at maxMs.
 * Whole seconds, rounded up, because the database stores `backoff_request_seconds` as an integer
 * and `next_retry_at = last_attempted_at + backoff_request_seconds` (computable in SQL).
 */
export function computeBackoffSeconds(
  policy: BackoffPolicy,
  attempts: number,
  options: { retryAfterSeconds?: number | null; random?: () => number } = {},
): number {
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new TaskerError('INVALID_ARGUMENT', `attempts must be a positive integer, got ${attempts}`);
  }
  const { retryAfterSeconds } = options;
  if (retryAfterSeconds !== undefined && retryAfterSeconds !== null) {
    if (!Number.isFinite(retryAfterSeconds) || retryAfterSeconds < 0) {
      throw new TaskerError('INVALID_ARGUMENT', `retryAfterSeconds must be >= 0, got ${retryAfterSeconds}`);
    }
    return Math.ceil(Math.min(retryAfterSeconds * 1000, policy.maxMs) / 1000);
  }
  let ms: number;
  switch (policy.strategy) {
    case 'none':
      return 0;
    case 'linear':
      ms = policy.baseMs * attempts;
      break;
    case 'fibonacci':
      ms = policy.baseMs * fibonacci(attempts);
      break;
    case 'exponential':
      // the first retry waits baseMs (the template's backoff_base_ms), then it grows; the original
      // started at base × multiplier because its attempt counter was already incremented
      ms = policy.baseMs * policy.multiplier ** (attempts - 1);
      break;
  }
  ms = Math.min(ms, policy.maxMs);
  if (policy.jitter > 0) {
    const random = options.random ?? Math.random;
    ms = ms * (1 + policy.jitter * (2 * random() - 1));
    ms = Math.min(ms, policy.maxMs);
  }
  return Math.max(0, Math.ceil(ms / 1000));
}
