import { PGlite } from '@electric-sql/pglite';
import { assertChannel, parseInt8 } from './config.ts';
import type { Database, ListenHandlers, ListenSession, Queryable, QueryResult, Row } from './driver.ts';

export interface PgliteConfig {
  /** A directory for on-disk data; omitted means in memory. */
  dataDir?: string;
  /** Start from this data directory tarball (made by `dumpDataDir`) instead of an empty cluster. */
  loadDataDir?: Blob;
}

type PgliteQueryable = Pick<PGlite, 'query' | 'exec'>;

function wrap(target: PgliteQueryable): Queryable {
  return {
    async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const result = await target.query<R>(sql, params as unknown[] | undefined);
      // PGlite reports affectedRows 0 for a SELECT; the interface (and pg) counts the rows returned.
      return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
    },
    async exec(sql: string): Promise<void> {
      await target.exec(sql);
    },
  };
}

/**
 * The embedded driver. PGlite is one PostgreSQL backend in this process: statements run one at a
 * time, a transaction holds the engine until it ends, and `statement_timeout` has no timer to fire.
 * LISTEN sessions share that backend; notifications are routed to the sessions that listen.
 */
/** A PGlite database, which can also dump its data directory (to start others from a snapshot). */
export interface PgliteDatabase extends Database {
  dumpDataDir(): Promise<Blob>;
}

export async function createPgliteDatabase(config: PgliteConfig = {}): Promise<PgliteDatabase> {
  const pg = await PGlite.create(config.dataDir ?? 'memory://', {
    parsers: { 20: parseInt8 },
    ...(config.loadDataDir ? { loadDataDir: config.loadDataDir } : {}),
  });
  const root = wrap(pg);
  /** How many open sessions listen on each channel: the backend LISTENs once per channel. */
  const listeners = new Map<string, number>();

  async function addChannel(channel: string): Promise<void> {
    const count = listeners.get(channel) ?? 0;
    listeners.set(channel, count + 1);
    if (count === 0) await pg.exec(`LISTEN "${channel}"`);
  }

  async function removeChannel(channel: string): Promise<void> {
    const count = listeners.get(channel) ?? 0;
    if (count <= 1) {
      listeners.delete(channel);
      if (count === 1) await pg.exec(`UNLISTEN "${channel}"`);
    } else {
      listeners.set(channel, count - 1);
    }
  }

  class PgliteListenSession implements ListenSession {
    readonly processId = null;
    readonly #channels = new Set<string>();
    readonly #handlers: ListenHandlers;
    readonly #stop: () => void;
    #paused: { channel: string; payload: string }[] | null = null;

    constructor(handlers: ListenHandlers) {
      this.#handlers = handlers;
      this.#stop = pg.onNotification((channel, payload) => {
        if (!this.#channels.has(channel)) return;
        if (this.#paused) this.#paused.push({ channel, payload });
        else this.#handlers.onNotification({ channel, payload });
      });
    }

    async listen(channel: string): Promise<void> {
      assertChannel(channel);
      if (this.#channels.has(channel)) return;
      this.#channels.add(channel);
      await addChannel(channel);
    }

    async unlisten(channel: string): Promise<void> {
      assertChannel(channel);
      if (!this.#channels.delete(channel)) return;
      await removeChannel(channel);
    }

    /** The producers are this process's own statements, so pausing holds their notifications here. */
    pause(): void {
      this.#paused ??= [];
    }

    resume(): void {
      const held = this.#paused;
      this.#paused = null;
      for (const notification of held ?? []) this.#handlers.onNotification(notification);
    }

    async close(): Promise<void> {
      this.#stop();
      for (const channel of this.#channels) await removeChannel(channel);
      this.#channels.clear();
    }
  }

  return {
    backend: 'pglite',
    query: root.query,
    exec: root.exec,
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return pg.transaction((tx) => fn(wrap(tx)));
    },
    async openListenSession(handlers: ListenHandlers): Promise<ListenSession> {
      return new PgliteListenSession(handlers);
    },
    async close(): Promise<void> {
      await pg.close();
    },
    async dumpDataDir(): Promise<Blob> {
      return pg.dumpDataDir('none');
    },
  };
}
