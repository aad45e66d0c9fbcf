import { DbConfigError } from './errors.ts';

/** Connection settings of the PostgreSQL driver. Every field has an explicit default below. */
export interface PostgresConfig {
  /** `postgresql://user@host:port/database` */
  url: string;
  pool: {
    /** Most connections the pool opens (> 0). */
    max: number;
    /** Connections kept open when idle (0 ≤ min ≤ max). */
    min: number;
    /** An idle connection is closed after this long (> 0). */
    idleTimeoutMs: number;
    /** Giving up on opening a connection or waiting for a free one after this long (> 0). */
    connectTimeoutMs: number;
  };
  /** `statement_timeout` of every connection (AUDIT S-8), > 0. */
  statementTimeoutMs: number;
  /** `idle_in_transaction_session_timeout` of every connection, > 0. */
  idleInTransactionTimeoutMs: number;
  /** Shown in `pg_stat_activity`. */
  applicationName: string;
}

export type PostgresConfigInput = { url: string } & Partial<Omit<PostgresConfig, 'url' | 'pool'>> & {
    pool?: Partial<PostgresConfig['pool']>;
  };

export const POSTGRES_DEFAULTS = {
  pool: { max: 10, min: 0, idleTimeoutMs: 30_000, connectTimeoutMs: 10_000 },
  statementTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 60_000,
  applicationName: 'tasker',
} satisfies Omit<PostgresConfig, 'url'>;

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new DbConfigError(`${name} must be a positive integer, got ${String(value)}`);
  }
}

/** Fills defaults and validates; throws `DbConfigError` naming the offending field. */
export function resolvePostgresConfig(input: PostgresConfigInput): PostgresConfig {
  const config: PostgresConfig = {
    url: input.url,
    pool: { ...POSTGRES_DEFAULTS.pool, ...input.pool },
    statementTimeoutMs: input.statementTimeoutMs ?? POSTGRES_DEFAULTS.statementTimeoutMs,
    idleInTransactionTimeoutMs:
      input.idleInTransactionTimeoutMs ?? POSTGRES_DEFAULTS.idleInTransactionTimeoutMs,
    applicationName: input.applicationName ?? POSTGRES_DEFAULTS.applicationName,
  };
  if (typeof config.url !== 'string' || !/^postgres(ql)?:\/\//.test(config.url)) {
    throw new DbConfigError('url must be a postgresql:// connection string');
  }
  positiveInteger('pool.max', config.pool.max);
  if (!Number.isInteger(config.pool.min) || config.pool.min < 0 || config.pool.min > config.pool.max) {
    throw new DbConfigError(`pool.min must be an integer between 0 and pool.max (${config.pool.max})`);
  }
  positiveInteger('pool.idleTimeoutMs', config.pool.idleTimeoutMs);
  positiveInteger('pool.connectTimeoutMs', config.pool.connectTimeoutMs);
  positiveInteger('statementTimeoutMs', config.statementTimeoutMs);
  positiveInteger('idleInTransactionTimeoutMs', config.idleInTransactionTimeoutMs);
  if (!/^[\x20-\x7e]{1,63}$/.test(config.applicationName)) {
    throw new DbConfigError('applicationName must be 1–63 printable ASCII characters');
  }
  return config;
}

/** LISTEN channel rule (AUDIT P-1): checked again here so no driver ever quotes an unchecked name. */
export const CHANNEL_PATTERN = /^[A-Za-z_][A-Za-z0-9_.]{0,62}$/;

export function assertChannel(channel: string): void {
  if (!CHANNEL_PATTERN.test(channel)) {
    throw new DbConfigError(`invalid notification channel ${JSON.stringify(channel)}`);
  }
}

/** int8 as PGlite parses it: a number when it is a safe integer, otherwise a bigint. */
export function parseInt8(text: string): number | bigint {
  const big = BigInt(text);
  return big < BigInt(Number.MIN_SAFE_INTEGER) || big > BigInt(Number.MAX_SAFE_INTEGER) ? big : Number(big);
}
