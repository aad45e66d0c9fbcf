/**
 * The task event hub of one API server: a single LISTEN session on `tasker_task_events` (migration
 * 0009: one notification per inserted transition of a watched task) shared by every event stream of
 * the server and fanned out by task uuid. Opened with the first subscriber; when the session is
 * lost it reconnects with exponential backoff and jitter and then tells every subscriber
 * `reconnected`, because notifications sent during the gap are gone (the streams re-read the
 * current states).
 *
 * Watches: the triggers notify only for tasks registered in `tasker.task_event_watches`, so the hot
 * path pays nothing while no one streams. The hub registers a task with its first subscriber and,
 * before the subscriber reads its snapshot, waits until the transactions in progress at that moment
 * have ended (one may have inserted a transition before the registration was visible: it then
 * neither notifies nor shows in a snapshot read before its commit). The registration is removed
 * with the task's last subscriber, extended while it lasts, and expires if the server dies.
 */
import { randomUUID } from 'node:crypto';
import { type Logger, SILENT_LOGGER } from '@tasker/core';
import type { Database, ListenSession } from '@tasker/db';

export const TASK_EVENTS_CHANNEL = 'tasker_task_events';

/** One state change of a task (`step_uuid` null) or of one of its steps, as the trigger sends it. */
export interface TransitionEvent {
  task_uuid: string;
  step_uuid: string | null;
  step_name: string | null;
  from_state: string | null;
  to_state: string;
  event: string;
  sort_key: number;
  at: string;
}

export interface TaskEventSubscriber {
  onTransition(event: TransitionEvent): void;
  /** The session was lost and is back: notifications of the gap are missing. */
  onReconnected(): void;
}

export interface TaskEventHubOptions {
  logger?: Logger;
  /** First reconnect delay and its cap, in milliseconds (with jitter). */
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
}

/** How long a registration lasts unless extended; extended every WATCH_REFRESH_MS. */
const WATCH_TTL_SECONDS = 600;
const WATCH_REFRESH_MS = 60_000;
/** Bound on the wait for transactions in progress at a registration (a stuck session must not block). */
const SETTLE_TIMEOUT_MS = 2_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** The payload of a notification, or null when it is not one of ours. */
function parseTransition(payload: string): TransitionEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const raw = parsed as Record<string, unknown>;
  const taskUuid = text(raw.task_uuid);
  const toState = text(raw.to_state);
  const event = text(raw.event);
  const at = text(raw.at);
  const sortKey = raw.sort_key;
  if (taskUuid === null || !UUID.test(taskUuid) || toState === null || event === null || at === null) {
    return null;
  }
  if (typeof sortKey !== 'number' || !Number.isSafeInteger(sortKey)) return null;
  return {
    task_uuid: taskUuid,
    step_uuid: text(raw.step_uuid),
    step_name: text(raw.step_name),
    from_state: text(raw.from_state),
    to_state: toState,
    event,
    sort_key: sortKey,
    at,
  };
}

export class TaskEventHub {
  readonly #db: Database;
  readonly #logger: Logger;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #subscribers = new Map<string, Set<TaskEventSubscriber>>();
  /** Registrations of tasks in tasker.task_event_watches, in flight or done. */
  readonly #watches = new Map<string, Promise<void>>();
  /** Removals of registrations in flight: a new registration of the task waits for them. */
  readonly #unwatching = new Map<string, Promise<void>>();
  readonly #watcherUuid = randomUUID();
  #refreshTimer: NodeJS.Timeout | null = null;
  #session: ListenSession | null = null;
  #connecting: Promise<void> | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #attempt = 0;
  #closed = false;

  constructor(db: Database, options: TaskEventHubOptions = {}) {
    this.#db = db;
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#initialDelayMs = options.reconnectInitialDelayMs ?? 100;
    this.#maxDelayMs = options.reconnectMaxDelayMs ?? 5000;
  }

  /** Whether the LISTEN session is up. */
  get connected(): boolean {
    return this.#session !== null;
  }

  /** Subscribers, all tasks together. */
  get subscribers(): number {
    let count = 0;
    for (const set of this.#subscribers.values()) count += set.size;
    return count;
  }

  /**
   * Registers `subscriber` for the events of `taskUuid` once notifications can reach it (the
   * session is listening); returns the unsubscribe function. Rejects when the session cannot be
   * opened (and nothing is registered then), unless a reconnect is already scheduled: a subscriber
   * then waits for it and hears `reconnected`.
   */
  async subscribe(taskUuid: string, subscriber: TaskEventSubscriber): Promise<() => void> {
    if (this.#closed) throw new Error('the task event hub is closed');
    if (this.#session === null && this.#reconnectTimer === null) {
      this.#connecting ??= this.#connect().finally(() => {
        this.#connecting = null;
      });
      await this.#connecting;
    }
    let set = this.#subscribers.get(taskUuid);
    if (set === undefined) {
      set = new Set();
      this.#subscribers.set(taskUuid, set);
    }
    set.add(subscriber);
    const registered = set;
    const unsubscribe = () => {
      registered.delete(subscriber);
      if (registered.size === 0 && this.#subscribers.get(taskUuid) === registered) {
        this.#subscribers.delete(taskUuid);
        this.#unwatch(taskUuid);
      }
    };
    let watching = this.#watches.get(taskUuid);
    if (watching === undefined) {
      watching = this.#watch(taskUuid);
      this.#watches.set(taskUuid, watching);
      watching.catch(() => {
        if (this.#watches.get(taskUuid) === watching) this.#watches.delete(taskUuid);
      });
    }
    try {
      await watching;
    } catch (error) {
      unsubscribe();
      throw error;
    }
    return unsubscribe;
  }

  /** Registers the task, then waits for the transactions that may not have seen it. */
  async #watch(taskUuid: string): Promise<void> {
    await this.#unwatching.get(taskUuid);
    await this.#db.query(
      `INSERT INTO tasker.task_event_watches (task_uuid, watcher_uuid, expires_at)
       VALUES ($1, $2, now() + make_interval(secs => $3))
       ON CONFLICT (task_uuid, watcher_uuid) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [taskUuid, this.#watcherUuid, WATCH_TTL_SECONDS],
    );
    this.#startRefresh();
    const { rows } = await this.#db.query<{ snapshot: string }>(
      'SELECT pg_current_snapshot()::text AS snapshot',
    );
    const snapshot = rows[0]?.snapshot;
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    for (;;) {
      const { rows: running } = await this.#db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_snapshot_xip($1::pg_snapshot) x
         WHERE pg_xact_status(x) = 'in progress'`,
        [snapshot],
      );
      if ((running[0]?.n ?? 0) === 0) return;
      if (Date.now() >= deadline) {
        this.#logger.warn(
          { task_uuid: taskUuid },
          'Transactions still running after a task watch was registered',
        );
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  #unwatch(taskUuid: string): void {
    const watching = this.#watches.get(taskUuid);
    this.#watches.delete(taskUuid);
    const removal: Promise<void> = (async () => {
      await watching?.catch(() => undefined);
      // subscribed again meanwhile (that registration waits for this removal): it stays
      if (this.#watches.has(taskUuid)) return;
      await this.#db.query(
        'DELETE FROM tasker.task_event_watches WHERE task_uuid = $1 AND watcher_uuid = $2',
        [taskUuid, this.#watcherUuid],
      );
    })()
      .catch((error: unknown) => {
        this.#logger.warn({ task_uuid: taskUuid, error }, 'Could not remove a task watch (it expires)');
      })
      .finally(() => {
        if (this.#unwatching.get(taskUuid) === removal) this.#unwatching.delete(taskUuid);
      });
    this.#unwatching.set(taskUuid, removal);
  }

  #startRefresh(): void {
    if (this.#refreshTimer !== null || this.#closed) return;
    this.#refreshTimer = setInterval(() => {
      if (this.#watches.size === 0) return;
      this.#db
        .query(
          `UPDATE tasker.task_event_watches SET expires_at = now() + make_interval(secs => $2)
           WHERE watcher_uuid = $1`,
          [this.#watcherUuid, WATCH_TTL_SECONDS],
        )
        .catch((error: unknown) => this.#logger.warn({ error }, 'Could not extend the task watches'));
    }, WATCH_REFRESH_MS);
    this.#refreshTimer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    if (this.#refreshTimer !== null) clearInterval(this.#refreshTimer);
    this.#refreshTimer = null;
    if (this.#watches.size > 0) {
      this.#watches.clear();
      await this.#db
        .query('DELETE FROM tasker.task_event_watches WHERE watcher_uuid = $1', [this.#watcherUuid])
        .catch((error: unknown) =>
          this.#logger.warn({ error }, 'Could not remove the task watches (they expire)'),
        );
    }
    await this.#connecting?.catch(() => undefined);
    const session = this.#session;
    this.#session = null;
    this.#subscribers.clear();
    await session?.close().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    let opened: ListenSession | null = null;
    const session = await this.#db.openListenSession({
      onNotification: ({ channel, payload }) => {
        if (channel === TASK_EVENTS_CHANNEL) this.#receive(payload);
      },
      onEnd: (error) => {
        if (opened !== null) this.#lost(opened, error);
      },
    });
    opened = session;
    try {
      await session.listen(TASK_EVENTS_CHANNEL);
    } catch (error) {
      await session.close().catch(() => undefined);
      throw error;
    }
    if (this.#closed) {
      await session.close().catch(() => undefined);
      return;
    }
    this.#session = session;
    this.#attempt = 0;
  }

  #receive(payload: string): void {
    const event = parseTransition(payload);
    if (event === null) {
      this.#logger.warn({ channel: TASK_EVENTS_CHANNEL }, 'Malformed task event notification');
      return;
    }
    const set = this.#subscribers.get(event.task_uuid);
    if (set === undefined) return;
    for (const subscriber of [...set]) subscriber.onTransition(event);
  }

  #lost(session: ListenSession, error: Error): void {
    if (this.#session !== session) return;
    this.#session = null;
    this.#logger.warn({ channel: TASK_EVENTS_CHANNEL, error }, 'Task event session lost; reconnecting');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    const ceiling = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** this.#attempt);
    this.#attempt++;
    this.#reconnectTimer = setTimeout(
      () => {
        this.#reconnectTimer = null;
        this.#connecting = this.#connect()
          .then(() => {
            if (this.#closed) return;
            this.#logger.info({ channel: TASK_EVENTS_CHANNEL }, 'Task event session restored');
            for (const set of [...this.#subscribers.values()]) {
              for (const subscriber of [...set]) subscriber.onReconnected();
            }
          })
          .catch((error: unknown) => {
            this.#logger.warn({ channel: TASK_EVENTS_CHANNEL, error }, 'Task event reconnect failed');
            this.#scheduleReconnect();
          })
          .finally(() => {
            this.#connecting = null;
          });
      },
      ceiling * (0.5 + Math.random() / 2),
    );
  }
}
