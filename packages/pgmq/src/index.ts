export {
  PGMQ_DEFAULTS,
  Pgmq,
  type PgmqOptions,
  type QueueInfo,
  type QueueMessage,
  type QueueMetrics,
  type SendOptions,
} from './client.ts';
export {
  InvalidArgumentError,
  InvalidNameError,
  MessageTooLargeError,
  NotConnectedError,
  PgmqError,
  QueueNotFoundError,
} from './errors.ts';
export { EventParseError, type PgmqEvent, parseEvent } from './events.ts';
export {
  LISTENER_DEFAULTS,
  type ListenerItem,
  type ListenerOptions,
  type ListenerStats,
  PgmqListener,
  Subscription,
} from './listener.ts';
export {
  extractQueueNamespace,
  GLOBAL_MESSAGE_CHANNEL,
  MAX_CHANNEL_LENGTH,
  MAX_NAMESPACE_LENGTH,
  MAX_QUEUE_NAME_LENGTH,
  messageChannelForQueue,
  QUEUE_CREATED_CHANNEL,
  validateChannel,
  validateNamespace,
  validateQueueName,
  workerQueueName,
} from './names.ts';

import { fileURLToPath } from 'node:url';
import type { MigrationSet } from '@tasker/db';

/** The queue's schema, for `migrate(db, [pgmqMigrations, …])`. */
export const pgmqMigrations: MigrationSet = {
  package: 'pgmq',
  directory: fileURLToPath(new URL('../migrations', import.meta.url)),
};
