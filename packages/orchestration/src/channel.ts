/**
 * A supervised LISTEN on one plain channel (not a queue channel, which `@tasker/pgmq`'s listener
 * handles): the loop body opens a session, listens, and ends in an error when the session is lost,
 * so the supervisor reopens it with backoff. What was sent while it was down is not replayed:
 * `onListening` runs each time the channel is listened on, for the caller to catch up.
 */
import type { Database } from '@tasker/db';

/** Resolves when `signal` aborts; rejects when the session is lost. */
export async function listenChannel(
  db: Database,
  channel: string,
  onPayload: (payload: string) => void,
  signal: AbortSignal,
  onListening: () => Promise<void> = async () => undefined,
): Promise<void> {
  if (signal.aborted) return;
  const lost = Promise.withResolvers<void>();
  const session = await db.openListenSession({
    onNotification: (notification) => {
      if (notification.channel === channel) onPayload(notification.payload);
    },
    onEnd: (error) => lost.reject(error),
  });
  const aborted = () => lost.resolve();
  signal.addEventListener('abort', aborted, { once: true });
  // aborted while the session was opening: the listener above came too late to fire
  if (signal.aborted) lost.resolve();
  try {
    await session.listen(channel);
    // what was sent before (or while reconnecting) is gone: the caller catches up now
    await onListening();
    await lost.promise;
  } finally {
    signal.removeEventListener('abort', aborted);
    await session.close().catch(() => undefined);
  }
}
