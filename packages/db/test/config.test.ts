import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  assertChannel,
  DbConfigError,
  POSTGRES_DEFAULTS,
  type PostgresConfigInput,
  resolvePostgresConfig,
} from '@tasker/db';

const URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** Asserts that the input is refused with a `DbConfigError` whose message names `field`. */
function assertRejected(input: PostgresConfigInput, field: string): void {
  assert.throws(
    () => resolvePostgresConfig(input),
    (error: unknown) => {
      assert.ok(error instanceof DbConfigError, `expected DbConfigError, got ${String(error)}`);
      assert.equal(error.code, 'DB_CONFIG_INVALID');
      assert.match(error.message, new RegExp(`^${field.replace('.', '\\.')}\\b`));
      return true;
    },
  );
}

describe('resolvePostgresConfig', () => {
  it('fills every default when only the url is given', () => {
    assert.deepEqual(resolvePostgresConfig({ url: URL }), { url: URL, ...POSTGRES_DEFAULTS });
  });

  it('keeps given values and fills the rest of the pool settings', () => {
    const config = resolvePostgresConfig({
      url: 'postgres://app@db.internal:6543/tasker',
      pool: { max: 3 },
      statementTimeoutMs: 1500,
      idleInTransactionTimeoutMs: 2500,
      applicationName: 'tasker-worker',
    });
    assert.deepEqual(config, {
      url: 'postgres://app@db.internal:6543/tasker',
      pool: { ...POSTGRES_DEFAULTS.pool, max: 3 },
      statementTimeoutMs: 1500,
      idleInTransactionTimeoutMs: 2500,
      applicationName: 'tasker-worker',
    });
  });

  it('accepts pool.min equal to pool.max', () => {
    assert.equal(resolvePostgresConfig({ url: URL, pool: { min: 4, max: 4 } }).pool.min, 4);
  });

  it('rejects pool.max that is zero, negative or not an integer', () => {
    for (const max of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assertRejected({ url: URL, pool: { max } }, 'pool.max');
    }
  });

  it('rejects pool.min above pool.max, negative or not an integer', () => {
    assertRejected({ url: URL, pool: { min: 5, max: 4 } }, 'pool.min');
    assertRejected({ url: URL, pool: { min: -1 } }, 'pool.min');
    assertRejected({ url: URL, pool: { min: 0.5 } }, 'pool.min');
  });

  it('rejects timeouts that are zero, negative or not integers', () => {
    for (const value of [0, -100, 1.5]) {
      assertRejected({ url: URL, pool: { idleTimeoutMs: value } }, 'pool.idleTimeoutMs');
      assertRejected({ url: URL, pool: { connectTimeoutMs: value } }, 'pool.connectTimeoutMs');
      assertRejected({ url: URL, statementTimeoutMs: value }, 'statementTimeoutMs');
      assertRejected({ url: URL, idleInTransactionTimeoutMs: value }, 'idleInTransactionTimeoutMs');
    }
  });

  it('rejects a url that is not a postgresql:// connection string', () => {
    for (const url of ['', 'mysql://root@localhost/db', 'localhost:5432', ' postgresql://x/y']) {
      assertRejected({ url }, 'url');
    }
    assertRejected({ url: undefined as unknown as string }, 'url');
  });

  it('rejects an application name that is empty, too long or not printable ASCII', () => {
    for (const applicationName of ['', 'a'.repeat(64), 'tasker\nworker', 'tâsker']) {
      assertRejected({ url: URL, applicationName }, 'applicationName');
    }
    assert.equal(
      resolvePostgresConfig({ url: URL, applicationName: 'a'.repeat(63) }).applicationName.length,
      63,
    );
  });
});

describe('assertChannel', () => {
  it('accepts identifiers with dots and underscores up to 63 characters', () => {
    for (const channel of ['pgmq_message_ready.orders', 'orders', '_private', 'A1.b2.c3', 'a'.repeat(63)]) {
      assert.doesNotThrow(() => assertChannel(channel), channel);
    }
  });

  it('rejects anything else with DbConfigError', () => {
    for (const channel of [';DROP', 'a-b', 'ñ', 'a'.repeat(64), '', '1abc', '.orders', 'a b', 'a"b']) {
      assert.throws(() => assertChannel(channel), DbConfigError, JSON.stringify(channel));
    }
  });
});
