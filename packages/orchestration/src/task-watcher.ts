/**
 * Waits for tasks to finish without polling: `tasker.evaluate_task` notifies `tasker_task_finished`
 * {task_uuid, state} when a task reaches complete or error. Used by tests, benchmarks and clients
 * that want completion as it happens.
 */
import { TaskerError } from '@tasker/core';
import type { Database, ListenSession } from '@tasker/db';

export const TASK_FINISHED_CHANNEL = 'tasker_task_finished';

const TERMINAL = new Set(['complete', 'error', 'cancelled', 'resolved_manually']);

export class TaskWatcher {
  readonly #db: Database;
  readonly #session: ListenSession;
  readonly #waiters = new Map<string, Set<(state: string) => void>>();
  #lost: Error | null = null;

  private constructor(db: Database, session: ListenSession) {
    this.#db = db;
    this.#session = session;
  }

  static async open(db: Database): Promise<TaskWatcher> {
    let watcher: TaskWatcher | null = null;
    const session = await db.openListenSession({
      onNotification: ({ channel, payload }) => {
        if (channel === TASK_FINISHED_CHANNEL && watcher !== null) watcher.#onFinished(payload);
      },
      onEnd: (error) => {
        if (watcher !== null) watcher.#lost = error;
      },
    });
    watcher = new TaskWatcher(db, session);
    await session.listen(TASK_FINISHED_CHANNEL);
    return watcher;
  }

  #onFinished(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || !('task_uuid' in parsed) || !('state' in parsed))
      return;
    const { task_uuid, state } = parsed;
    if (typeof task_uuid !== 'string' || typeof state !== 'string') return;
    const waiters = this.#waiters.get(task_uuid);
    this.#waiters.delete(task_uuid);
    for (const resolve of waiters ?? []) resolve(state);
  }

  /**
   * The task's terminal state, as soon as it is reached (already terminal: at once). Rejects after
   * `timeoutMs` with the state it was in, or when the listen session is lost.
   */
  async wait(taskUuid: string, timeoutMs: number): Promise<string> {
    if (this.#lost)
      throw new TaskerError('NOT_CONNECTED', `task watcher lost its session: ${this.#lost.message}`);
    const finished = Promise.withResolvers<string>();
    let set = this.#waiters.get(taskUuid);
    if (set === undefined) {
      set = new Set();
      this.#waiters.set(taskUuid, set);
    }
    set.add(finished.resolve);
    const current = await this.#state(taskUuid);
    if (current !== null && TERMINAL.has(current)) finished.resolve(current);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(async () => {
        const state = await this.#state(taskUuid).catch(() => null);
        reject(
          new TaskerError('TIMEOUT', `task ${taskUuid} did not finish in ${timeoutMs} ms (state ${state})`),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([finished.promise, timeout]);
    } finally {
      clearTimeout(timer);
      set.delete(finished.resolve);
      if (set.size === 0 && this.#waiters.get(taskUuid) === set) this.#waiters.delete(taskUuid);
    }
  }

  async #state(taskUuid: string): Promise<string | null> {
    const { rows } = await this.#db.query<{ current_state: string }>(
      'SELECT current_state FROM tasker.tasks WHERE task_uuid = $1',
      [taskUuid],
    );
    return rows[0]?.current_state ?? null;
  }

  async close(): Promise<void> {
    await this.#session.close();
  }
}
