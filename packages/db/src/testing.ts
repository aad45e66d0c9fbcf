/**
 * Test support: every store-level test runs against both backends, each on a database of its own
 * (a uniquely named PostgreSQL database, or a fresh in-memory PGlite) that is dropped afterwards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, Database } from './driver.ts';
import { loadMigrationSet, type MigrationSet, migrate } from './migrate.ts';
import { createPgliteDatabase, type PgliteDatabase } from './pglite.ts';
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

export interface TestDatabaseOptions {
  poolMax?: number;
  statementTimeoutMs?: number;
  /** Migrations to apply before the database is handed out. */
  migrations?: readonly MigrationSet[];
}

/**
 * PGlite starts slowly (initdb in WASM, seconds on this machine) and migrating adds more; loading a
 * data directory snapshot takes a fraction of that. Snapshots of freshly migrated databases are kept
 * in the OS temp directory, keyed by the migration files' checksums, and shared by test processes.
 */
async function migratedPglite(migrations: readonly MigrationSet[]): Promise<PgliteDatabase> {
  const files = (await Promise.all(migrations.map(loadMigrationSet))).flat();
  const key = createHash('sha256')
    .update(files.map((file) => `${file.package}/${file.name}:${file.checksum}`).join('\n'))
    .digest('hex')
    .slice(0, 16);
  const snapshot = join(tmpdir(), `tasker-pglite-${key}.tar`);
  const cached = await readFile(snapshot).catch(() => null);
  if (cached) return createPgliteDatabase({ loadDataDir: new Blob([cached]) });
  const db = await createPgliteDatabase();
  await migrate(db, migrations);
  const dump = Buffer.from(await (await db.dumpDataDir()).arrayBuffer());
  // Written aside and renamed, so a concurrent reader never sees half a snapshot.
  const partial = `${snapshot}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(partial, dump);
  await rename(partial, snapshot);
  return db;
}

export async function createTestDatabase(
  backend: Backend,
  options: TestDatabaseOptions = {},
): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const db = options.migrations ? await migratedPglite(options.migrations) : await createPgliteDatabase();
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
  const drop = async () => {
    const dropper = createPostgresDatabase({ url: serverUrl(), pool: { max: 1 } });
    try {
      await dropper.exec(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await dropper.close();
    }
  };
  let db: Database;
  try {
    db = createPostgresDatabase({
      url,
      pool: { max: options.poolMax ?? 10 },
      ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
    });
  } catch (error) {
    await drop();
    throw error;
  }
  const dispose = async () => {
    await db.close();
    await drop();
  };
  if (options.migrations) {
    try {
      await migrate(db, options.migrations);
    } catch (error) {
      await dispose();
      throw error;
    }
  }
  return { db, backend, url, dispose };
}
