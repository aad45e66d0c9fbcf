/** Notifications the queue's SQL sends, parsed and checked (a malformed payload is an error). */

export type PgmqEvent =
  | {
      type: 'message_with_payload';
      msgId: number;
      queueName: string;
      namespace: string;
      /** The whole message, so the consumer may skip a read. It is not claimed: claim before acting. */
      message: unknown;
      readyAt: Date;
      delaySeconds: number;
    }
  | {
      type: 'message_ready';
      msgId: number;
      queueName: string;
      namespace: string;
      readyAt: Date;
      delaySeconds: number;
    }
  | {
      type: 'batch_ready';
      msgIds: number[];
      queueName: string;
      namespace: string;
      readyAt: Date;
      delaySeconds: number;
    }
  | { type: 'queue_created'; queueName: string; namespace: string; createdAt: Date };

export class EventParseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EventParseError';
  }
}

type Fields = Record<string, unknown>;

function string(fields: Fields, key: string): string {
  const value = fields[key];
  if (typeof value !== 'string') throw new EventParseError(`field ${key} must be a string`);
  return value;
}

function id(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new EventParseError(`field ${key} must be a positive integer`);
  }
  return value;
}

function number(fields: Fields, key: string): number {
  const value = fields[key];
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new EventParseError(`field ${key} must be a number`);
  return value;
}

function timestamp(fields: Fields, key: string): Date {
  const date = new Date(string(fields, key));
  if (Number.isNaN(date.getTime())) throw new EventParseError(`field ${key} is not a valid timestamp`);
  return date;
}

export function parseEvent(payload: string): PgmqEvent {
  let fields: unknown;
  try {
    fields = JSON.parse(payload);
  } catch (error) {
    throw new EventParseError('payload is not JSON', { cause: error });
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new EventParseError('payload is not a JSON object');
  }
  const f = fields as Fields;
  const type = string(f, 'event_type');
  switch (type) {
    case 'message_with_payload':
      if (!('message' in f)) throw new EventParseError('field message is missing');
      return {
        type,
        msgId: id(f.msg_id, 'msg_id'),
        queueName: string(f, 'queue_name'),
        namespace: string(f, 'namespace'),
        message: f.message,
        readyAt: timestamp(f, 'ready_at'),
        delaySeconds: number(f, 'delay_seconds'),
      };
    case 'message_ready':
      return {
        type,
        msgId: id(f.msg_id, 'msg_id'),
        queueName: string(f, 'queue_name'),
        namespace: string(f, 'namespace'),
        readyAt: timestamp(f, 'ready_at'),
        delaySeconds: number(f, 'delay_seconds'),
      };
    case 'batch_ready': {
      const ids = f.msg_ids;
      if (!Array.isArray(ids) || ids.length === 0)
        throw new EventParseError('field msg_ids must be a non-empty array');
      return {
        type,
        msgIds: ids.map((value) => id(value, 'msg_ids')),
        queueName: string(f, 'queue_name'),
        namespace: string(f, 'namespace'),
        readyAt: timestamp(f, 'ready_at'),
        delaySeconds: number(f, 'delay_seconds'),
      };
    }
    case 'queue_created':
      return {
        type,
        queueName: string(f, 'queue_name'),
        namespace: string(f, 'namespace'),
        createdAt: timestamp(f, 'created_at'),
      };
    default:
      throw new EventParseError(`unknown event_type ${JSON.stringify(type)}`);
  }
}
