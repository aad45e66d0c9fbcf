export {
  assertChannel,
  CHANNEL_PATTERN,
  POSTGRES_DEFAULTS,
  type PostgresConfig,
  type PostgresConfigInput,
  resolvePostgresConfig,
} from './config.ts';
export type {
  Backend,
  Database,
  ListenHandlers,
  ListenSession,
  Notification,
  Queryable,
  QueryResult,
  Row,
} from './driver.ts';
export { DbConfigError, DbError, MigrationError } from './errors.ts';
export {
  loadMigrationSet,
  type MigrationFile,
  type MigrationReport,
  type MigrationSet,
  migrate,
} from './migrate.ts';
export { createPgliteDatabase, type PgliteConfig, type PgliteDatabase } from './pglite.ts';
export { createPostgresDatabase } from './postgres.ts';
