/**
 * The API database circuit breaker (B §5.3): closed → `failureThreshold` consecutive failures →
 * open (calls rejected at once) → after `openDurationMs` the next call is a trial (half-open, at
 * most `successThreshold` at a time) → `successThreshold` successes close it, any failure opens it
 * again. It is fed by every database call of the API and by the health evaluator's check, and it
 * is what backpressure and readiness consult (one breaker for both, unlike the original).
 *
 * Only failures that say the database is unavailable or overloaded count: connection errors,
 * timeouts, resource exhaustion (SQLSTATE classes 08, 53, 57, 58, XX) and driver errors without a
 * SQLSTATE. A statement error (a bug, classes 22, 23, 42, …) proves the database answered; a
 * client error (validation, not found) is neutral.
 */
import { TaskerError } from '@tasker/core';
import type { Database, Queryable, QueryResult, Row } from '@tasker/db';
import { ApiError } from './errors.ts';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerConfig {
  /** Consecutive failures that open the breaker. @default 5 (1–100) */
  failureThreshold?: number;
  /** How long an open breaker rejects before letting a trial call through. @default 30000 */
  openDurationMs?: number;
  /** Trial successes that close a half-open breaker. @default 2 (1–100) */
  successThreshold?: number;
}

const CIRCUIT_BREAKER_DEFAULTS = {
  failureThreshold: 5,
  openDurationMs: 30_000,
  successThreshold: 2,
} as const satisfies Required<CircuitBreakerConfig>;

/** Thrown instead of calling the database while the breaker is open: 503 with Retry-After. */
class CircuitOpenError extends ApiError {
  constructor(retryAfterSeconds: number) {
    super(503, 'CIRCUIT_BREAKER_OPEN', 'Database circuit breaker is open', { retryAfterSeconds });
    this.name = 'CircuitOpenError';
  }
}

/** SQLSTATE classes of an unavailable or overloaded database. */
const AVAILABILITY_CLASSES = new Set(['08', '53', '57', '58', 'XX']);
const SQLSTATE = /^[0-9A-Z]{5}$/;

type Outcome = 'failure' | 'success' | 'neutral';

/** What an error says about the database's availability (see the module comment). */
function classifyFailure(error: unknown): Outcome {
  for (let current = error, depth = 0; current !== undefined && depth < 10; depth++) {
    if (typeof current !== 'object' || current === null) break;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && SQLSTATE.test(code)) {
      return AVAILABILITY_CLASSES.has(code.slice(0, 2)) ? 'failure' : 'success';
    }
    current = (current as { cause?: unknown }).cause;
  }
  if (error instanceof CircuitOpenError) return 'neutral';
  if (error instanceof ApiError) return error.statusCode >= 500 ? 'failure' : 'neutral';
  if (error instanceof TaskerError) {
    // an intake queue at capacity is load, not an unavailable database
    return ['VALIDATION_ERROR', 'NOT_FOUND', 'CONFLICT', 'INTAKE_OVERLOADED'].includes(error.code)
      ? 'neutral'
      : 'failure';
  }
  return 'failure';
}

function bounded(name: string, value: number | undefined, fallback: number, min: number, max: number) {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < min || resolved > max) {
    throw new TaskerError(
      'INVALID_CONFIG',
      `api.circuitBreaker.${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return resolved;
}

export interface CircuitBreakerOptions extends CircuitBreakerConfig {
  /** Called on every state change (logging, metrics). */
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

export class CircuitBreaker {
  readonly config: Required<CircuitBreakerConfig>;
  readonly #onStateChange: (from: BreakerState, to: BreakerState) => void;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #trials = 0;
  #successes = 0;
  /** Calls refused while open (metrics). */
  rejected = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    const d = CIRCUIT_BREAKER_DEFAULTS;
    this.config = {
      failureThreshold: bounded('failureThreshold', options.failureThreshold, d.failureThreshold, 1, 100),
      openDurationMs: bounded('openDurationMs', options.openDurationMs, d.openDurationMs, 1, 300_000),
      successThreshold: bounded('successThreshold', options.successThreshold, d.successThreshold, 1, 100),
    };
    this.#onStateChange = options.onStateChange ?? (() => undefined);
    this.#now = options.now ?? Date.now;
  }

  /** The state as of now: an open breaker whose duration has passed reads as half-open. */
  get state(): BreakerState {
    if (this.#state === 'open' && this.#openElapsed()) return 'half_open';
    return this.#state;
  }

  /** Prometheus encoding (B §2.3.11): 0 closed, 1 half-open, 2 open. */
  get stateValue(): 0 | 1 | 2 {
    const state = this.state;
    return state === 'closed' ? 0 : state === 'half_open' ? 1 : 2;
  }

  /** True while calls are refused without trying (open, duration not yet over). */
  get rejecting(): boolean {
    return this.#state === 'open' && !this.#openElapsed();
  }

  /** Whole seconds until an open breaker lets a trial through (at least 1). */
  get retryAfterSeconds(): number {
    const left = this.#openedAt + this.config.openDurationMs - this.#now();
    return Math.max(1, Math.ceil(left / 1000));
  }

  /** Runs `fn` under the breaker; throws CircuitOpenError without calling it when refused. */
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    const trial = this.#admit();
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      this.#record(classifyFailure(error), trial);
      throw error;
    }
    this.#record('success', trial);
    return result;
  }

  /** Admits a call or throws; true when the call is a half-open trial. */
  #admit(): boolean {
    if (this.#state === 'open') {
      if (!this.#openElapsed()) {
        this.rejected++;
        throw new CircuitOpenError(this.retryAfterSeconds);
      }
      this.#transition('half_open');
      this.#trials = 0;
      this.#successes = 0;
    }
    if (this.#state === 'half_open') {
      if (this.#trials >= this.config.successThreshold) {
        this.rejected++;
        throw new CircuitOpenError(1);
      }
      this.#trials++;
      return true;
    }
    return false;
  }

  #record(outcome: Outcome, trial: boolean): void {
    if (trial && this.#state === 'half_open') this.#trials = Math.max(0, this.#trials - 1);
    if (outcome === 'neutral') return;
    if (outcome === 'success') {
      if (this.#state === 'half_open') {
        this.#successes++;
        if (this.#successes >= this.config.successThreshold) {
          this.#failures = 0;
          this.#transition('closed');
        }
      } else if (this.#state === 'closed') {
        this.#failures = 0;
      }
      return;
    }
    if (this.#state === 'half_open') {
      this.#open();
    } else if (this.#state === 'closed') {
      this.#failures++;
      if (this.#failures >= this.config.failureThreshold) this.#open();
    }
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#failures = 0;
    this.#transition('open');
  }

  #openElapsed(): boolean {
    return this.#now() - this.#openedAt >= this.config.openDurationMs;
  }

  #transition(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#onStateChange(from, to);
  }
}

/** `db` with every query, statement and transaction run under `breaker`. */
export function guardedDatabase(db: Database, breaker: CircuitBreaker): Database {
  return {
    get backend() {
      return db.backend;
    },
    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      return breaker.execute(() => db.query<R>(sql, params));
    },
    exec: (sql: string) => breaker.execute(() => db.exec(sql)),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => breaker.execute(() => db.transaction(fn)),
    openListenSession: (handlers) => db.openListenSession(handlers),
    close: () => db.close(),
  };
}
