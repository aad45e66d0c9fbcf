/**
 * The one database interface every Tasker package uses. Two implementations exist:
 * `createPostgresDatabase` (node-postgres pool, production) and `createPgliteDatabase`
 * (PGlite, embedded). Both run the same SQL; values are always bound parameters.
 */

export type Row = Record<string, unknown>;

export interface QueryResult<R extends Row = Row> {
  rows: R[];
  /** Rows returned or affected by the statement. */
  rowCount: number;
}

/** Something that runs statements: the database itself or an open transaction. */
export interface Queryable {
  /** One statement with `$1…$n` bound parameters. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** A script of several statements without parameters (migrations, DDL). */
  exec(sql: string): Promise<void>;
}

export type Backend = 'postgres' | 'pglite';

export interface Database extends Queryable {
  readonly backend: Backend;
  /**
   * Runs `fn` in a transaction on one connection: commits when it resolves, rolls back and rethrows
   * when it rejects. Statements must go through the given `tx`, not through the database.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Opens a LISTEN session: a connection of its own (PostgreSQL) or a subscription set (PGlite).
   * Channels must already be validated; see `@tasker/pgmq`'s listener for the reconnecting,
   * multiplexing layer built on top of this.
   */
  openListenSession(handlers: ListenHandlers): Promise<ListenSession>;
  close(): Promise<void>;
}

export interface Notification {
  channel: string;
  payload: string;
}

export interface ListenHandlers {
  onNotification(notification: Notification): void;
  /** Called once when the session is lost (not after `close()`); the session is then unusable. */
  onEnd(error: Error): void;
}

export interface ListenSession {
  listen(channel: string): Promise<void>;
  unlisten(channel: string): Promise<void>;
  /**
   * Stops reading notifications until `resume()` (PostgreSQL pauses the socket, so the server holds
   * them). Used to apply backpressure when consumers fall behind.
   */
  pause(): void;
  resume(): void;
  /** The backend process id of a PostgreSQL session (for diagnostics and tests); null on PGlite. */
  readonly processId: number | null;
  close(): Promise<void>;
}
