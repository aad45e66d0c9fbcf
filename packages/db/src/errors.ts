/** Base class of every error this package throws; `code` is stable and safe to match on. */
export class DbError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Invalid database configuration (AUDIT S-7): raised before any connection is made. */
export class DbConfigError extends DbError {
  constructor(message: string) {
    super('DB_CONFIG_INVALID', message);
  }
}

/** A migration could not be applied or the applied history does not match the files. */
export class MigrationError extends DbError {}
