import pg from 'pg';
import {
  assertChannel,
  type PostgresConfig,
  type PostgresConfigInput,
  parseInt8,
  resolvePostgresConfig,
} from './config.ts';
import type {
  Database,
  ListenHandlers,
  ListenSession,
  Notification,
  Queryable,
  QueryResult,
  Row,
} from './driver.ts';

const INT8_OID = 20;

/** Same value types on both backends: int8 follows PGlite's rule. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID
      ? parseInt8
      : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

function clientConfig(config: PostgresConfig): pg.ClientConfig {
  return {
    connectionString: config.url,
    statement_timeout: config.statementTimeoutMs,
    idle_in_transaction_session_timeout: config.idleInTransactionTimeoutMs,
    connectionTimeoutMillis: config.pool.connectTimeoutMs,
    application_name: config.applicationName,
    types,
  };
}

/** Distinct statement texts that get a prepared statement; any further text runs unnamed. */
const MAX_PREPARED_STATEMENTS = 1000;
const statementNames = new Map<string, string>();

/**
 * The prepared-statement name of a parameterized statement: each connection parses and plans a
 * statement text once and then only binds and executes it (the planner may keep a generic plan), which
 * halves the database CPU of a short query. The statements are the code's own constant texts, so the
 * set is small; past the cap (a caller composing texts at run time) statements run unnamed.
 */
function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (name === undefined && statementNames.size < MAX_PREPARED_STATEMENTS) {
    name = `tasker_${statementNames.size}`;
    statementNames.set(sql, name);
  }
  return name;
}

function wrap(client: pg.Pool | pg.PoolClient | pg.Client): Queryable {
  return {
    async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      // without parameters a text may hold several statements (the simple protocol), never prepared
      const result =
        params === undefined
          ? await client.query<R>(sql)
          : await client.query<R>({ text: sql, values: params as unknown[], name: statementName(sql) });
      return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

/** A LISTEN session on a dedicated connection (never one of the pool's). */
class PostgresListenSession implements ListenSession {
  readonly #client: pg.Client;
  #closing = false;
  #ended = false;
  #paused = false;
  #commands = 0;
  /** The command before this one: commands run one after another (see #command). */
  #last: Promise<unknown> = Promise.resolve();

  private constructor(client: pg.Client) {
    this.#client = client;
  }

  static async open(config: PostgresConfig, handlers: ListenHandlers): Promise<PostgresListenSession> {
    const client = new pg.Client(clientConfig(config));
    const session = new PostgresListenSession(client);
    let open = false;
    const end = (error: Error) => {
      // Before `connect()` resolves, a failure is its rejection, not an end of the session.
      if (!open || session.#ended || session.#closing) return;
      session.#ended = true;
      handlers.onEnd(error);
    };
    client.on('notification', (message: pg.Notification) => {
      if (session.#closing) return;
      const notification: Notification = { channel: message.channel, payload: message.payload ?? '' };
      handlers.onNotification(notification);
    });
    client.on('error', (error: Error) => end(error));
    client.on('end', () => end(new Error('listen connection ended')));
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    open = true;
    return session;
  }

  get processId(): number | null {
    return (this.#client as unknown as { processID?: number }).processID ?? null;
  }

  async listen(channel: string): Promise<void> {
    assertChannel(channel);
    await this.#command(`LISTEN "${channel}"`);
  }

  async unlisten(channel: string): Promise<void> {
    assertChannel(channel);
    await this.#command(`UNLISTEN "${channel}"`);
  }

  /**
   * A paused socket would never read a command's reply: while a command is in flight the socket is
   * read, and a pause asked for meanwhile takes effect when the last command is done.
   */
  async #command(sql: string): Promise<void> {
    this.#commands++;
    this.#client.connection.stream.resume();
    // One command at a time: node-postgres queues overlapping queries itself but deprecates it
    // (pg@9 refuses them), and subscriptions made together would overlap their LISTENs.
    const run = this.#last.then(() => this.#client.query(sql));
    this.#last = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      await run;
    } finally {
      this.#commands--;
      if (this.#paused && this.#commands === 0) this.#client.connection.stream.pause();
    }
  }

  pause(): void {
    this.#paused = true;
    if (this.#commands === 0) this.#client.connection.stream.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#client.connection.stream.resume();
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    // A paused socket never reads the server's end of the connection, so `end()` would wait forever;
    // notifications it still held are dropped above.
    this.#client.connection.stream.resume();
    await this.#client.end().catch(() => undefined);
  }
}

/** The production driver: a node-postgres pool where every connection carries the configured timeouts. */
export function createPostgresDatabase(input: PostgresConfigInput): Database {
  const config = resolvePostgresConfig(input);
  const pool = new pg.Pool({
    ...clientConfig(config),
    max: config.pool.max,
    min: config.pool.min,
    idleTimeoutMillis: config.pool.idleTimeoutMs,
  });
  // An idle client that loses its connection emits on the pool; without a listener the process dies.
  pool.on('error', () => undefined);
  const root = wrap(pool);

  return {
    backend: 'postgres',
    query: root.query,
    exec: root.exec,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        throw error;
      } finally {
        // A connection whose rollback failed is destroyed rather than returned to the pool.
        client.release(broken);
      }
    },
    openListenSession(handlers: ListenHandlers): Promise<ListenSession> {
      return PostgresListenSession.open(config, handlers);
    },
    async close(): Promise<void> {
      await pool.end();
    },
  };
}
