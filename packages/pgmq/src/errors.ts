/** Base class of every error the queue throws; `code` is stable and safe to match on. */
export class PgmqError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A queue name, namespace or channel that fails its rule (AUDIT S-1, P-1); raised before any SQL. */
export class InvalidNameError extends PgmqError {
  readonly kind: 'queue' | 'namespace' | 'channel';
  constructor(kind: 'queue' | 'namespace' | 'channel', message: string) {
    super(
      kind === 'queue'
        ? 'INVALID_QUEUE_NAME'
        : kind === 'namespace'
          ? 'INVALID_NAMESPACE'
          : 'INVALID_CHANNEL',
      message,
    );
    this.kind = kind;
  }
}

export class QueueNotFoundError extends PgmqError {
  readonly queue: string;
  constructor(queue: string, options?: ErrorOptions) {
    super('QUEUE_NOT_FOUND', `queue ${queue} does not exist`, options);
    this.queue = queue;
  }
}

/** A message over the configured size limit (AUDIT S-9); nothing was sent. */
export class MessageTooLargeError extends PgmqError {
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `message is ${bytes} bytes, the limit is ${limit}`);
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** A bad argument (negative delay, zero limit, a message that is not JSON…); nothing was done. */
export class InvalidArgumentError extends PgmqError {
  constructor(message: string, options?: ErrorOptions) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** A listener operation that needs a live connection was called while it is down. */
export class NotConnectedError extends PgmqError {
  constructor(message = 'the listener is not connected') {
    super('NOT_CONNECTED', message);
  }
}

/** SQLSTATEs raised by the queue's SQL functions. */
const SQLSTATE_INVALID_QUEUE = 'TQ001';
const SQLSTATE_QUEUE_NOT_FOUND = 'TQ002';
const SQLSTATE_INVALID_ARGUMENT = 'TQ003';

/** Maps the queue's own SQL errors to typed errors; anything else is returned unchanged. */
export function translateSqlError(error: unknown, queue: string): unknown {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case SQLSTATE_QUEUE_NOT_FOUND:
      return new QueueNotFoundError(queue, { cause: error });
    case SQLSTATE_INVALID_QUEUE:
      return new InvalidNameError('queue', message);
    case SQLSTATE_INVALID_ARGUMENT:
      return new InvalidArgumentError(message, { cause: error });
    default:
      return error;
  }
}
