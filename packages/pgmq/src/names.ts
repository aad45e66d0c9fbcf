import { InvalidNameError } from './errors.ts';

/** PGMQ's limit: queue table names plus prefixes must fit PostgreSQL's 63-byte identifiers. */
export const MAX_QUEUE_NAME_LENGTH = 47;
/** `{ns}_domain_events_dlq` is the longest name built from a namespace: 47 − 18 = 29. */
export const MAX_NAMESPACE_LENGTH = 29;
export const MAX_CHANNEL_LENGTH = 63;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CHANNEL = /^[A-Za-z_][A-Za-z0-9_.]*$/;

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function check(
  kind: 'queue' | 'namespace' | 'channel',
  value: unknown,
  pattern: RegExp,
  max: number,
): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidNameError(kind, `${kind} name must be a non-empty string, got ${describe(value)}`);
  }
  if (value.length > max) {
    throw new InvalidNameError(
      kind,
      `${kind} name ${describe(value)} is ${value.length} characters, the limit is ${max}`,
    );
  }
  if (!pattern.test(value)) {
    const rule = kind === 'channel' ? '[A-Za-z_][A-Za-z0-9_.]*' : '[A-Za-z_][A-Za-z0-9_]*';
    throw new InvalidNameError(kind, `${kind} name ${describe(value)} must match ${rule}`);
  }
  return value;
}

/** Throws `InvalidNameError` unless `name` is a valid queue name; returns it otherwise. */
export function validateQueueName(name: unknown): string {
  return check('queue', name, IDENTIFIER, MAX_QUEUE_NAME_LENGTH);
}

export function validateNamespace(name: unknown): string {
  return check('namespace', name, IDENTIFIER, MAX_NAMESPACE_LENGTH);
}

export function validateChannel(name: unknown): string {
  return check('channel', name, CHANNEL, MAX_CHANNEL_LENGTH);
}

/**
 * The namespace a queue notifies under, the same rules as SQL `pgmq.extract_queue_namespace`:
 * `orchestration…` → `orchestration`; `worker_{ns}_queue` → `ns` (`worker` when empty);
 * `{ns}_queue` → `ns`; anything else → `default`.
 */
export function extractQueueNamespace(queue: string): string {
  if (queue.startsWith('orchestration')) return 'orchestration';
  if (/^worker_.*_queue$/s.test(queue)) return /^worker_(.+?)_queue$/s.exec(queue)?.[1] ?? 'worker';
  return /^([a-zA-Z][a-zA-Z0-9_]*)_queue$/.exec(queue)?.[1] ?? 'default';
}

export const GLOBAL_MESSAGE_CHANNEL = 'pgmq_message_ready';
export const QUEUE_CREATED_CHANNEL = 'pgmq_queue_created';

/** `pgmq_message_ready.{namespace}`: where sends to `queue` are announced. */
export function messageChannelForQueue(queue: string): string {
  return validateChannel(`${GLOBAL_MESSAGE_CHANNEL}.${extractQueueNamespace(validateQueueName(queue))}`);
}

/** `worker_{ns}_queue` for a validated namespace. */
export function workerQueueName(namespace: string): string {
  return `worker_${validateNamespace(namespace)}_queue`;
}
