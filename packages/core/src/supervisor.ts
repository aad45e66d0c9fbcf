/**
 * Supervised long-running loops (AUDIT O-1) and the structured logger interface the engine and the
 * worker share. A loop body that throws is logged, counted, shown in health and restarted after a
 * backoff that doubles up to a cap; stopping aborts every body's signal and waits for them all.
 */

/** The subset of pino's API the runtime uses: an object of fields first, then a short message. */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const SILENT_LOGGER: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** A logger that writes one JSON line per entry to stderr at or above `level`. */
export function jsonLogger(name: string, level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const order = ['debug', 'info', 'warn', 'error'] as const;
  const min = order.indexOf(level);
  const write = (at: (typeof order)[number]) => (fields: object, message: string) => {
    if (order.indexOf(at) < min) return;
    process.stderr.write(
      `${JSON.stringify({ level: at, time: new Date().toISOString(), name, msg: message, ...serialize(fields) })}\n`,
    );
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

function serialize(fields: object): object {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error ? { name: value.name, message: value.message } : value;
  }
  return out;
}

/** Waits `ms`, or less when `signal` aborts first (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface LoopHealth {
  name: string;
  running: boolean;
  /** Times the body threw and was restarted. */
  restarts: number;
  lastError: string | null;
  lastErrorAt: Date | null;
}

export interface SupervisorOptions {
  logger?: Logger;
  /** First restart delay; doubles per consecutive crash. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A body that ran this long before crashing counts as healthy again (backoff reset). */
  healthyAfterMs?: number;
}

type Body = (signal: AbortSignal) => Promise<void>;

export class Supervisor {
  readonly #logger: Logger;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #healthyAfterMs: number;
  readonly #controller = new AbortController();
  readonly #loops = new Map<string, { health: LoopHealth; done: Promise<void> }>();

  constructor(options: SupervisorOptions = {}) {
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#minBackoffMs = options.minBackoffMs ?? 100;
    this.#maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.#healthyAfterMs = options.healthyAfterMs ?? 30_000;
  }

  /** Aborted when stop() is called: loop bodies end when they see it. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get stopping(): boolean {
    return this.#controller.signal.aborted;
  }

  /**
   * Runs `body` until it returns or the supervisor stops; a throw (while not stopping) is logged,
   * counted and followed by a restart after a backoff.
   */
  start(name: string, body: Body): void {
    if (this.#loops.has(name)) throw new Error(`loop ${name} is already supervised`);
    if (this.stopping) throw new Error(`cannot start loop ${name}: the supervisor is stopping`);
    const health: LoopHealth = { name, running: true, restarts: 0, lastError: null, lastErrorAt: null };
    this.#loops.set(name, { health, done: this.#run(name, body, health) });
  }

  async #run(name: string, body: Body, health: LoopHealth): Promise<void> {
    const signal = this.#controller.signal;
    let backoff = this.#minBackoffMs;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await body(signal);
        break;
      } catch (error) {
        if (signal.aborted) break;
        health.restarts += 1;
        health.lastError = error instanceof Error ? error.message : String(error);
        health.lastErrorAt = new Date();
        if (Date.now() - started >= this.#healthyAfterMs) backoff = this.#minBackoffMs;
        this.#logger.error(
          { loop: name, restarts: health.restarts, backoff_ms: backoff, error },
          'loop crashed',
        );
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, this.#maxBackoffMs);
      }
    }
    health.running = false;
  }

  health(): LoopHealth[] {
    return [...this.#loops.values()].map(({ health }) => ({ ...health }));
  }

  /** Aborts every loop and waits until all of them have ended. */
  async stop(): Promise<void> {
    this.#controller.abort();
    await Promise.all([...this.#loops.values()].map(({ done }) => done));
  }
}
