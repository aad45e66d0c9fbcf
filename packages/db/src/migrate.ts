import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Database } from './driver.ts';
import { MigrationError } from './errors.ts';

/** The ordered SQL files of one package, e.g. `{ package: 'pgmq', directory: '…/migrations' }`. */
export interface MigrationSet {
  package: string;
  directory: string;
}

export interface MigrationFile {
  package: string;
  name: string;
  checksum: string;
  sql: string;
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: string[];
}

const FILE_PATTERN = /^\d{4}_[a-z0-9_]+\.sql$/;
/** Arbitrary but fixed: every Tasker process that migrates takes this transaction-level lock. */
const MIGRATION_LOCK_KEY = 7_262_000_001;

export async function loadMigrationSet(set: MigrationSet): Promise<MigrationFile[]> {
  // every SQL file counts (.SQL too), so a misnamed one is refused rather than silently skipped
  const entries = (await readdir(set.directory)).filter((name) => name.toLowerCase().endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  for (const name of entries) {
    if (!FILE_PATTERN.test(name)) {
      throw new MigrationError(
        'MIGRATION_FILE_NAME',
        `migration ${set.package}/${name} must be named NNNN_lowercase_words.sql`,
      );
    }
    const sql = await readFile(join(set.directory, name), 'utf8');
    files.push({ package: set.package, name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return files;
}

/**
 * Applies every pending file of the given sets, in order, in one transaction guarded by an advisory
 * lock, so processes that start together wait for each other and each file runs exactly once.
 * Refuses to run (and changes nothing) when a file that was applied has since changed.
 */
export async function migrate(db: Database, sets: readonly MigrationSet[]): Promise<MigrationReport> {
  const files = (await Promise.all(sets.map(loadMigrationSet))).flat();
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS public.tasker_migrations (
      package    text NOT NULL,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (package, name)
    )`);
    const { rows } = await tx.query<{ package: string; name: string; checksum: string }>(
      'SELECT package, name, checksum FROM public.tasker_migrations',
    );
    const applied = new Map(rows.map((row) => [`${row.package}/${row.name}`, row.checksum]));
    const changed = files.filter((file) => {
      const checksum = applied.get(`${file.package}/${file.name}`);
      return checksum !== undefined && checksum !== file.checksum;
    });
    if (changed.length > 0) {
      const names = changed.map((file) => `${file.package}/${file.name}`).join(', ');
      throw new MigrationError(
        'MIGRATION_CHECKSUM_MISMATCH',
        `applied migrations were changed afterwards: ${names}; add a new migration instead of editing an applied one`,
      );
    }
    const report: MigrationReport = { applied: [], alreadyApplied: [] };
    for (const file of files) {
      const id = `${file.package}/${file.name}`;
      if (applied.has(id)) {
        report.alreadyApplied.push(id);
        continue;
      }
      try {
        await tx.exec(file.sql);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new MigrationError('MIGRATION_FAILED', `migration ${id} failed: ${reason}`, { cause: error });
      }
      await tx.query('INSERT INTO public.tasker_migrations (package, name, checksum) VALUES ($1, $2, $3)', [
        file.package,
        file.name,
        file.checksum,
      ]);
      report.applied.push(id);
    }
    return report;
  });
}
