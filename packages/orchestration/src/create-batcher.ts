/**
 * Group commit for task intake. Every creation commits once, and a commit that notifies (the first
 * steps' messages are announced) holds the notify queue's database-wide lock through its WAL flush:
 * creations one per transaction queue up behind each other there. The batcher sends creations that
 * arrive while earlier ones are being written as one statement and one transaction
 * (`createStartedTasks`), at most `maxBatch` at a time and at most `maxInFlight` batches at once. A
 * creation that finds the batcher idle is written alone, at once, as before: batching never waits
 * for company, so it adds no latency.
 *
 * Each creation keeps its own outcome: a duplicate identity is that creation's ConflictError. When a
 * batch fails as a whole (a concurrent creation of the same identity, a lost connection), its
 * creations are retried one by one, so that one creation's error never becomes another's.
 *
 * The queue of waiting creations is bounded (`maxWaiting`): past it a creation is refused at once
 * with `IntakeOverloadedError`, nothing written, so overload turns into refusals a client can retry
 * instead of memory and latency without limit.
 */
import { type CreatedTask, type PreparedTask, TaskerError } from '@tasker/core';

/** A creation refused because `maxWaiting` creations are already waiting: nothing was written. */
export class IntakeOverloadedError extends TaskerError {
  constructor(waiting: number) {
    super('INTAKE_OVERLOADED', `${waiting} task creations are already waiting to be written`);
  }
}

interface Waiting {
  prepared: PreparedTask;
  resolve(created: CreatedTask): void;
  reject(error: unknown): void;
}

export interface CreateBatcherOptions {
  /** Writes one creation (its errors are that creation's). */
  one(prepared: PreparedTask): Promise<CreatedTask>;
  /** Writes several in one transaction: per creation the task or its own error. */
  many(prepared: readonly PreparedTask[]): Promise<(CreatedTask | Error)[]>;
  maxBatch: number;
  maxInFlight: number;
  maxWaiting: number;
}

export class CreateBatcher {
  readonly #options: CreateBatcherOptions;
  readonly #waiting: Waiting[] = [];
  #inFlight = 0;
  /** Tasks created in a batch of more than one (a metric). */
  batched = 0;

  constructor(options: CreateBatcherOptions) {
    this.#options = options;
  }

  /** Creations waiting for a transaction (not those being written). */
  get waiting(): number {
    return this.#waiting.length;
  }

  create(prepared: PreparedTask): Promise<CreatedTask> {
    if (this.#waiting.length >= this.#options.maxWaiting) {
      return Promise.reject(new IntakeOverloadedError(this.#waiting.length));
    }
    return new Promise<CreatedTask>((resolve, reject) => {
      this.#waiting.push({ prepared, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight && this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.#options.maxBatch);
      this.#inFlight++;
      void this.#write(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #write(batch: Waiting[]): Promise<void> {
    if (batch.length > 1) {
      let results: (CreatedTask | Error)[] | undefined;
      try {
        results = await this.#options.many(batch.map((item) => item.prepared));
      } catch {
        // retried one by one below: each creation gets its own outcome
      }
      if (results !== undefined) {
        for (const [index, item] of batch.entries()) {
          const result = results[index];
          if (result === undefined) item.reject(new Error('a batched creation returned no result'));
          else if (result instanceof Error) item.reject(result);
          else {
            this.batched++;
            item.resolve(result);
          }
        }
        return;
      }
    }
    await Promise.all(batch.map((item) => this.#options.one(item.prepared).then(item.resolve, item.reject)));
  }
}
