import { fileURLToPath } from 'node:url';
import type { MigrationSet } from '@tasker/db';
import { pgmqMigrations } from '@tasker/pgmq';

/** The core schema and SQL functions. */
export const coreMigrations: MigrationSet = {
  package: 'core',
  directory: fileURLToPath(new URL('../migrations', import.meta.url)),
};

/** Everything a Tasker database needs, in order: the queue, then the core schema. */
export const TASKER_MIGRATIONS: readonly MigrationSet[] = [pgmqMigrations, coreMigrations];
