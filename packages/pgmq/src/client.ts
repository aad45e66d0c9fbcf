import type { Queryable } from '@tasker/db';
import { InvalidArgumentError, MessageTooLargeError, PgmqError, translateSqlError } from './errors.ts';
import { validateQueueName } from './names.ts';

/** A message as read from a queue. `T` is the producer's JSON value (unchecked: validate it). */
export interface QueueMessage<T = unknown> {
  msgId: number;
  /** How often it was read (claimed); 1 on the first read. */
  readCount: number;
  enqueuedAt: Date;
  /** Invisible to other readers until this instant. */
  visibleAt: Date;
  message: T;
  headers: unknown;
}

export interface QueueMetrics {
  queueName: string;
  /** Messages in the queue, visible or not. */
  queueLength: number;
  /** Messages a read would see now. */
  visibleLength: number;
  newestMessageAgeSeconds: number | null;
  oldestMessageAgeSeconds: number | null;
  /** Messages ever sent to the queue. */
  totalSent: number;
  scrapedAt: Date;
}

export interface QueueInfo {
  queueName: string;
  createdAt: Date;
}

export interface SendOptions {
  /** Seconds before the message becomes visible (fractions allowed). Default 0. */
  delaySeconds?: number;
  /** Optional JSON headers stored beside the message. */
  headers?: unknown;
  /** Announce the message on `pgmq_message_ready[.{namespace}]` in the same transaction. Default true. */
  notify?: boolean;
}

export interface PgmqOptions {
  /** Largest message accepted, in bytes of its JSON text (AUDIT S-9). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Visibility timeout of `read` when none is given. Default 30 s. */
  defaultVisibilityTimeoutSeconds?: number;
}

export const PGMQ_DEFAULTS = {
  maxMessageBytes: 1024 * 1024,
  defaultVisibilityTimeoutSeconds: 30,
} satisfies Required<PgmqOptions>;

interface MessageRow {
  msg_id: number | bigint;
  read_ct: number;
  enqueued_at: Date;
  vt: Date;
  message: unknown;
  headers: unknown;
}

interface MetricsRow {
  queue_name: string;
  queue_length: number | bigint;
  queue_visible_length: number | bigint;
  newest_msg_age_sec: number | null;
  oldest_msg_age_sec: number | null;
  total_messages: number | bigint;
  scrape_time: Date;
}

function toSafeNumber(value: number | bigint, what: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number))
    throw new PgmqError('VALUE_OUT_OF_RANGE', `${what} ${value} exceeds 2^53`);
  return number;
}

function toMessage<T>(row: MessageRow): QueueMessage<T> {
  return {
    msgId: toSafeNumber(row.msg_id, 'msg_id'),
    readCount: row.read_ct,
    enqueuedAt: row.enqueued_at,
    visibleAt: row.vt,
    message: row.message as T,
    headers: row.headers,
  };
}

function toMetrics(row: MetricsRow): QueueMetrics {
  return {
    queueName: row.queue_name,
    queueLength: toSafeNumber(row.queue_length, 'queue_length'),
    visibleLength: toSafeNumber(row.queue_visible_length, 'queue_visible_length'),
    newestMessageAgeSeconds: row.newest_msg_age_sec,
    oldestMessageAgeSeconds: row.oldest_msg_age_sec,
    totalSent: toSafeNumber(row.total_messages, 'total_messages'),
    scrapedAt: row.scrape_time,
  };
}

function seconds(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be a finite number of seconds >= 0, got ${String(value)}`);
  }
  return value;
}

function positiveInteger(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Most messages one read or pop may claim (the SQL takes an int4; a larger batch is a mistake). */
const MAX_BATCH = 100_000;

function messageIds(ids: number | readonly number[]): number[] {
  const list = typeof ids === 'number' ? [ids] : [...ids];
  for (const id of list) positiveInteger('msg_id', id);
  return list;
}

const MESSAGE_COLUMNS = 'msg_id, read_ct, enqueued_at, vt, message, headers';

/**
 * The queue client. Every operation is one statement (one round trip). Bind it to a transaction
 * with `using(tx)` to send or acknowledge atomically with the caller's own writes: a rolled-back
 * transaction leaves no message and no notification.
 */
export class Pgmq {
  readonly #db: Queryable;
  readonly #options: Required<PgmqOptions>;

  constructor(db: Queryable, options: PgmqOptions = {}) {
    this.#db = db;
    this.#options = { ...PGMQ_DEFAULTS, ...options };
    positiveInteger('maxMessageBytes', this.#options.maxMessageBytes);
    seconds('defaultVisibilityTimeoutSeconds', this.#options.defaultVisibilityTimeoutSeconds);
  }

  /** The same client running its statements in `tx`. */
  using(tx: Queryable): Pgmq {
    return new Pgmq(tx, this.#options);
  }

  async #run<R extends object>(queue: string, sql: string, params: readonly unknown[]): Promise<R[]> {
    try {
      const result = await this.#db.query<R & Record<string, unknown>>(sql, params);
      return result.rows;
    } catch (error) {
      throw translateSqlError(error, queue);
    }
  }

  #encode(message: unknown): string {
    let text: string | undefined;
    try {
      text = JSON.stringify(message);
    } catch (error) {
      throw new InvalidArgumentError('message is not serializable as JSON', { cause: error });
    }
    if (text === undefined) throw new InvalidArgumentError('message is not a JSON value');
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.#options.maxMessageBytes)
      throw new MessageTooLargeError(bytes, this.#options.maxMessageBytes);
    return text;
  }

  #encodeHeaders(headers: unknown): string | null {
    return headers === undefined || headers === null ? null : this.#encode(headers);
  }

  /** Creates the queue if it does not exist (idempotent); announces it on `pgmq_queue_created`. */
  async createQueue(queue: string): Promise<void> {
    validateQueueName(queue);
    await this.#run(queue, 'SELECT pgmq.create($1)', [queue]);
  }

  /** Drops the queue with its messages and archive; false when it did not exist. */
  async dropQueue(queue: string): Promise<boolean> {
    validateQueueName(queue);
    const rows = await this.#run<{ dropped: boolean }>(queue, 'SELECT pgmq.drop_queue($1) AS dropped', [
      queue,
    ]);
    return rows[0]?.dropped === true;
  }

  /** Deletes every message of the queue (not the archive); returns how many. */
  async purgeQueue(queue: string): Promise<number> {
    validateQueueName(queue);
    const rows = await this.#run<{ count: number | bigint }>(queue, 'SELECT pgmq.purge_queue($1) AS count', [
      queue,
    ]);
    return toSafeNumber(rows[0]?.count ?? 0, 'count');
  }

  async listQueues(): Promise<QueueInfo[]> {
    const rows = await this.#run<{ queue_name: string; created_at: Date }>(
      '',
      'SELECT queue_name, created_at FROM pgmq.list_queues()',
      [],
    );
    return rows.map((row) => ({ queueName: row.queue_name, createdAt: row.created_at }));
  }

  /** Sends one message; returns its id. */
  async send(queue: string, message: unknown, options: SendOptions = {}): Promise<number> {
    validateQueueName(queue);
    const delay = seconds('delaySeconds', options.delaySeconds ?? 0);
    const fn = options.notify === false ? 'pgmq.send' : 'pgmq.send_with_notify';
    const rows = await this.#run<{ id: number | bigint }>(
      queue,
      `SELECT ${fn}($1, $2::json, $3, $4::json) AS id`,
      [queue, this.#encode(message), delay, this.#encodeHeaders(options.headers)],
    );
    const id = rows[0]?.id;
    if (id === undefined) throw new PgmqError('SEND_FAILED', `send to ${queue} returned no id`);
    return toSafeNumber(id, 'msg_id');
  }

  /** Sends several messages in one statement; ids are returned in the order of `messages`. */
  async sendBatch(
    queue: string,
    messages: readonly unknown[],
    options: Omit<SendOptions, 'headers'> & { headers?: readonly unknown[] } = {},
  ): Promise<number[]> {
    validateQueueName(queue);
    if (messages.length === 0) return [];
    const delay = seconds('delaySeconds', options.delaySeconds ?? 0);
    if (options.headers !== undefined && options.headers.length !== messages.length) {
      throw new InvalidArgumentError('headers must have one entry per message');
    }
    const fn = options.notify === false ? 'pgmq.send_batch' : 'pgmq.send_batch_with_notify';
    const rows = await this.#run<{ id: number | bigint }>(
      queue,
      `SELECT ${fn}($1, $2::json[], $3, $4::json[]) AS id`,
      [
        queue,
        messages.map((message) => this.#encode(message)),
        delay,
        options.headers?.map((headers) => this.#encodeHeaders(headers)) ?? null,
      ],
    );
    return rows.map((row) => toSafeNumber(row.id, 'msg_id'));
  }

  /** Claims up to `limit` visible messages, hiding them for the visibility timeout. Oldest first. */
  async read<T = unknown>(
    queue: string,
    options: { visibilityTimeoutSeconds?: number; limit?: number } = {},
  ): Promise<QueueMessage<T>[]> {
    validateQueueName(queue);
    const vt = seconds(
      'visibilityTimeoutSeconds',
      options.visibilityTimeoutSeconds ?? this.#options.defaultVisibilityTimeoutSeconds,
    );
    const limit = positiveInteger('limit', options.limit ?? 1, MAX_BATCH);
    const rows = await this.#run<MessageRow>(queue, `SELECT ${MESSAGE_COLUMNS} FROM pgmq.read($1, $2, $3)`, [
      queue,
      vt,
      limit,
    ]);
    return rows.map((row) => toMessage<T>(row)).sort((a, b) => a.msgId - b.msgId);
  }

  /**
   * Claims one known message (the atomic claim behind a signal-only notification): the message when
   * it was visible; null when it is missing, claimed by another reader, or archived.
   */
  async readMessage<T = unknown>(
    queue: string,
    msgId: number,
    visibilityTimeoutSeconds = this.#options.defaultVisibilityTimeoutSeconds,
  ): Promise<QueueMessage<T> | null> {
    validateQueueName(queue);
    positiveInteger('msg_id', msgId);
    const vt = seconds('visibilityTimeoutSeconds', visibilityTimeoutSeconds);
    const rows = await this.#run<MessageRow>(
      queue,
      `SELECT ${MESSAGE_COLUMNS} FROM pgmq.read_specific_message($1, $2, $3)`,
      [queue, msgId, vt],
    );
    const row = rows[0];
    return row === undefined ? null : toMessage<T>(row);
  }

  /** Reads and deletes up to `limit` visible messages at once (at-most-once delivery). */
  async pop<T = unknown>(queue: string, limit = 1): Promise<QueueMessage<T>[]> {
    validateQueueName(queue);
    positiveInteger('limit', limit, MAX_BATCH);
    const rows = await this.#run<MessageRow>(queue, `SELECT ${MESSAGE_COLUMNS} FROM pgmq.pop($1, $2)`, [
      queue,
      limit,
    ]);
    return rows.map((row) => toMessage<T>(row)).sort((a, b) => a.msgId - b.msgId);
  }

  /** Deletes messages without archiving; returns the ids that existed. */
  async delete(queue: string, ids: number | readonly number[]): Promise<number[]> {
    validateQueueName(queue);
    const rows = await this.#run<{ id: number | bigint }>(
      queue,
      'SELECT pgmq.delete($1, $2::bigint[]) AS id',
      [queue, messageIds(ids)],
    );
    return rows.map((row) => toSafeNumber(row.id, 'msg_id'));
  }

  /** Acknowledges: moves messages to the archive; returns the ids that existed. */
  async archive(queue: string, ids: number | readonly number[]): Promise<number[]> {
    validateQueueName(queue);
    const rows = await this.#run<{ id: number | bigint }>(
      queue,
      'SELECT pgmq.archive($1, $2::bigint[]) AS id',
      [queue, messageIds(ids)],
    );
    return rows.map((row) => toSafeNumber(row.id, 'msg_id'));
  }

  /**
   * A consumer's step in one round trip and one commit: archives `ack` (what it finished) and claims
   * up to `limit` visible messages, as `archive` followed by `read`.
   */
  async archiveAndRead<T = unknown>(
    queue: string,
    ack: number | readonly number[],
    options: { visibilityTimeoutSeconds?: number; limit?: number } = {},
  ): Promise<QueueMessage<T>[]> {
    validateQueueName(queue);
    const ids = typeof ack === 'number' ? messageIds(ack) : ack.length === 0 ? [] : messageIds(ack);
    const vt = seconds(
      'visibilityTimeoutSeconds',
      options.visibilityTimeoutSeconds ?? this.#options.defaultVisibilityTimeoutSeconds,
    );
    const limit = positiveInteger('limit', options.limit ?? 1, MAX_BATCH);
    const rows = await this.#run<MessageRow>(
      queue,
      `SELECT ${MESSAGE_COLUMNS} FROM pgmq.archive_and_read($1, $2::bigint[], $3, $4)`,
      [queue, ids, vt, limit],
    );
    return rows.map((row) => toMessage<T>(row)).sort((a, b) => a.msgId - b.msgId);
  }

  /** Makes the message visible `seconds` from now (0: at once); null when it does not exist. */
  async setVisibilityTimeout<T = unknown>(
    queue: string,
    msgId: number,
    seconds_: number,
  ): Promise<QueueMessage<T> | null> {
    validateQueueName(queue);
    positiveInteger('msg_id', msgId);
    const vt = seconds('seconds', seconds_);
    const rows = await this.#run<MessageRow>(
      queue,
      `SELECT ${MESSAGE_COLUMNS} FROM pgmq.set_vt($1, $2, $3)`,
      [queue, msgId, vt],
    );
    const row = rows[0];
    return row === undefined ? null : toMessage<T>(row);
  }

  async metrics(queue: string): Promise<QueueMetrics> {
    validateQueueName(queue);
    const rows = await this.#run<MetricsRow>(queue, 'SELECT * FROM pgmq.metrics($1)', [queue]);
    const row = rows[0];
    if (row === undefined) throw new PgmqError('METRICS_FAILED', `no metrics for ${queue}`);
    return toMetrics(row);
  }

  async metricsAll(): Promise<QueueMetrics[]> {
    const rows = await this.#run<MetricsRow>('', 'SELECT * FROM pgmq.metrics_all()', []);
    return rows.map(toMetrics);
  }

  /**
   * Archive retention: deletes archived messages older than `olderThanSeconds`, `batchSize` rows per
   * statement until none are due; returns how many were deleted.
   */
  async cleanupArchive(options: { olderThanSeconds: number; batchSize?: number }): Promise<number> {
    const olderThan = seconds('olderThanSeconds', options.olderThanSeconds);
    const batch = positiveInteger('batchSize', options.batchSize ?? 10_000);
    let total = 0;
    for (;;) {
      const rows = await this.#run<{ count: number | bigint }>(
        '',
        'SELECT pgmq.archive_cleanup($1, $2) AS count',
        [olderThan, batch],
      );
      const count = toSafeNumber(rows[0]?.count ?? 0, 'count');
      total += count;
      if (count < batch) return total;
    }
  }

  /** Liveness of the database behind the queue. */
  async healthCheck(): Promise<boolean> {
    try {
      await this.#db.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }
}
