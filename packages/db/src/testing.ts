/**
 * Test support: every store-level test runs against both backends, each on a database of its own
 * (a uniquely named PostgreSQL database, or a fresh in-memory PGlite) that is dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import type { Backend, Database } from './driver.ts';
import { createPgliteDatabase } from './pglite.ts';
import { createPostgresDatabase } from './postgres.ts';

export const BACKENDS: readonly Backend[] = ['postgres', 'pglite'];

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The server tests use: `DATABASE_URL`, or the local default. Tests create databases on it. */
export function serverUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

export interface TestDatabase {
  db: Database;
  backend: Backend;
  /** Connection string of the test database (PostgreSQL only), for child processes. */
  url: string | null;
  /** Closes the database and drops it. */
  dispose(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function createTestDatabase(
  backend: Backend,
  options: { poolMax?: number; statementTimeoutMs?: number } = {},
): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const db = await createPgliteDatabase();
    return { db, backend, url: null, dispose: () => db.close() };
  }
  const name = `tasker_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = createPostgresDatabase({ url: serverUrl(), pool: { max: 1 } });
  try {
    await admin.exec(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.close();
  }
  const url = withDatabase(serverUrl(), name);
  const db = createPostgresDatabase({
    url,
    pool: { max: options.poolMax ?? 10 },
    ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
  });
  return {
    db,
    backend,
    url,
    async dispose() {
      await db.close();
      const dropper = createPostgresDatabase({ url: serverUrl(), pool: { max: 1 } });
      try {
        await dropper.exec(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await dropper.close();
      }
    },
  };
}
