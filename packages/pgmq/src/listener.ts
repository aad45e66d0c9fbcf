import type { Database, ListenSession, Notification } from '@tasker/db';
import { NotConnectedError, PgmqError } from './errors.ts';
import { EventParseError, type PgmqEvent, parseEvent } from './events.ts';
import { messageChannelForQueue, validateChannel, validateQueueName } from './names.ts';

/** What a subscription yields: queue events, and `reconnected` after the connection was restored. */
export type ListenerItem = PgmqEvent | { type: 'reconnected' };

export interface ListenerOptions {
  /** Items a subscription holds before the listener waits for its consumer. Default 1000. */
  subscriberBufferSize?: number;
  /** Raw notifications held before the connection is paused (the server then keeps them). Default 10,000. */
  inboundBufferSize?: number;
  /** Reconnect backoff: first delay and cap, in milliseconds, with jitter. */
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Called for connection losses and malformed payloads (for logging); never throws into the listener. */
  onError?: (error: Error) => void;
}

export const LISTENER_DEFAULTS = {
  subscriberBufferSize: 1000,
  inboundBufferSize: 10_000,
  reconnectInitialDelayMs: 100,
  reconnectMaxDelayMs: 5000,
  onError: () => undefined,
} satisfies Required<ListenerOptions>;

export interface ListenerStats {
  connected: boolean;
  /** Channels LISTENed on (or to be re-LISTENed on after a reconnect). */
  channels: number;
  subscribers: number;
  eventsReceived: number;
  parseErrors: number;
  connectionErrors: number;
  reconnects: number;
  /** Times the connection was paused because consumers fell behind. */
  pauses: number;
  lastEventAt: Date | null;
  lastErrorAt: Date | null;
}

/**
 * A bounded, single-consumer buffer. Full policy: the producer (the listener's dispatch loop) waits
 * for space; nothing is dropped. A closed subscription accepts and discards further items.
 */
export class Subscription implements AsyncIterable<ListenerItem> {
  readonly channel: string;
  /** Only events of this queue are delivered; null delivers everything on the channel. */
  readonly queue: string | null;
  readonly #capacity: number;
  readonly #items: ListenerItem[] = [];
  readonly #consumers: ((result: IteratorResult<ListenerItem>) => void)[] = [];
  readonly #producers: (() => void)[] = [];
  readonly #onClose: (subscription: Subscription) => void;
  #closed = false;

  /** @internal created by `PgmqListener` */
  constructor(
    channel: string,
    queue: string | null,
    capacity: number,
    onClose: (subscription: Subscription) => void,
  ) {
    this.channel = channel;
    this.queue = queue;
    this.#capacity = capacity;
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Items waiting for the consumer. */
  get buffered(): number {
    return this.#items.length;
  }

  /** @internal resolves once the item is buffered or handed over (or the subscription closed). */
  async push(item: ListenerItem): Promise<void> {
    while (!this.#closed) {
      const consumer = this.#consumers.shift();
      if (consumer) {
        consumer({ value: item, done: false });
        return;
      }
      if (this.#items.length < this.#capacity) {
        this.#items.push(item);
        return;
      }
      await new Promise<void>((resolve) => this.#producers.push(resolve));
    }
  }

  /** The next item; `undefined` once the subscription is closed and drained. */
  async next(): Promise<ListenerItem | undefined> {
    const result = await this.#next();
    return result.done ? undefined : result.value;
  }

  #next(): Promise<IteratorResult<ListenerItem>> {
    const item = this.#items.shift();
    if (item !== undefined) {
      this.#producers.shift()?.();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#consumers.push(resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<ListenerItem> {
    return {
      next: () => this.#next(),
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const consumer of this.#consumers.splice(0)) consumer({ value: undefined, done: true });
    for (const producer of this.#producers.splice(0)) producer();
    this.#onClose(this);
  }
}

/**
 * One LISTEN connection per process for every channel, with subscriptions routed by queue name.
 * When the connection is lost it reconnects with backoff, LISTENs again and tells every
 * subscription `reconnected`, because notifications sent during the gap are gone: consumers should
 * then read their queues. When consumers fall behind, the connection is paused (PostgreSQL keeps
 * the notifications) rather than anything being dropped.
 */
export class PgmqListener {
  readonly #db: Database;
  readonly #options: Required<ListenerOptions>;
  readonly #subscriptions = new Map<string, Set<Subscription>>();
  /** LISTENs in flight, by channel: later subscribers of the channel wait for them. */
  readonly #listening = new Map<string, Promise<void>>();
  /** Raw notifications and reconnect markers, in arrival order, waiting for the dispatch loop. */
  readonly #inbound: (Notification | 'reconnected')[] = [];
  #session: ListenSession | null = null;
  #connecting: Promise<void> | null = null;
  #closed = false;
  #dispatching = false;
  #paused = false;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #attempt = 0;
  #stats: Omit<ListenerStats, 'connected' | 'channels' | 'subscribers'> = {
    eventsReceived: 0,
    parseErrors: 0,
    connectionErrors: 0,
    reconnects: 0,
    pauses: 0,
    lastEventAt: null,
    lastErrorAt: null,
  };

  constructor(db: Database, options: ListenerOptions = {}) {
    this.#db = db;
    this.#options = { ...LISTENER_DEFAULTS, ...options };
    for (const key of [
      'subscriberBufferSize',
      'inboundBufferSize',
      'reconnectInitialDelayMs',
      'reconnectMaxDelayMs',
    ] as const) {
      const value = this.#options[key];
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new PgmqError('INVALID_ARGUMENT', `${key} must be a positive integer, got ${String(value)}`);
      }
    }
  }

  /**
   * Opens the connection; rejects when the first attempt fails. After a loss, it reconnects at once
   * instead of waiting for the backoff timer, and does not reject: failures keep being retried.
   */
  async start(): Promise<void> {
    if (this.#closed) throw new NotConnectedError('the listener is closed');
    if (this.#session) return;
    if (this.#connecting) {
      await this.#connecting;
      return;
    }
    if (this.#reconnectTimer) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
      await this.#reconnect();
      return;
    }
    this.#connecting = this.#connect().finally(() => {
      this.#connecting = null;
    });
    await this.#connecting;
  }

  /** Events of one queue, from its namespace channel `pgmq_message_ready.{namespace}`. */
  async subscribeQueue(queue: string): Promise<Subscription> {
    validateQueueName(queue);
    return this.#subscribe(messageChannelForQueue(queue), queue);
  }

  /** Every event on a channel, e.g. `pgmq_queue_created` or the global `pgmq_message_ready`. */
  async subscribeChannel(channel: string): Promise<Subscription> {
    return this.#subscribe(validateChannel(channel), null);
  }

  get connected(): boolean {
    return this.#session !== null;
  }

  stats(): ListenerStats {
    let subscribers = 0;
    for (const set of this.#subscriptions.values()) subscribers += set.size;
    return {
      ...this.#stats,
      connected: this.connected,
      channels: this.#subscriptions.size,
      subscribers,
    };
  }

  /** The PostgreSQL backend pid of the LISTEN connection (null on PGlite or when disconnected). */
  get processId(): number | null {
    return this.#session?.processId ?? null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    await this.#connecting?.catch(() => undefined);
    const session = this.#session;
    this.#session = null;
    for (const set of [...this.#subscriptions.values()])
      for (const subscription of [...set]) subscription.close();
    await session?.close();
  }

  async #subscribe(channel: string, queue: string | null): Promise<Subscription> {
    if (this.#closed) throw new NotConnectedError('the listener is closed');
    await this.start();
    const subscription = new Subscription(channel, queue, this.#options.subscriberBufferSize, (closed) =>
      this.#unsubscribe(closed),
    );
    let set = this.#subscriptions.get(channel);
    if (!set) {
      set = new Set();
      this.#subscriptions.set(channel, set);
      const listening = (async () => {
        try {
          await this.#session?.listen(channel);
        } catch (error) {
          // The connection dropped meanwhile: the reconnect LISTENs on every channel in the map.
          this.#report(error);
        }
      })();
      this.#listening.set(channel, listening);
      await listening;
      if (this.#listening.get(channel) === listening) this.#listening.delete(channel);
    } else {
      // A subscriber that comes while the channel's LISTEN is still in flight waits for it too: it
      // is only told "subscribed" once notifications on the channel can reach it.
      await this.#listening.get(channel);
    }
    set.add(subscription);
    return subscription;
  }

  #unsubscribe(subscription: Subscription): void {
    const set = this.#subscriptions.get(subscription.channel);
    if (!set?.delete(subscription) || set.size > 0) return;
    this.#subscriptions.delete(subscription.channel);
    this.#session?.unlisten(subscription.channel).catch((error: unknown) => this.#report(error));
  }

  async #connect(): Promise<void> {
    let opened: ListenSession | null = null;
    const session = await this.#db.openListenSession({
      onNotification: (notification) => this.#receive(notification),
      onEnd: (error) => {
        if (opened) this.#lost(opened, error);
      },
    });
    opened = session;
    try {
      for (const channel of this.#subscriptions.keys()) await session.listen(channel);
    } catch (error) {
      await session.close();
      throw error;
    }
    // closed meanwhile, or another attempt won: one LISTEN connection per listener
    if (this.#closed || this.#session) {
      await session.close();
      return;
    }
    this.#session = session;
    this.#attempt = 0;
    if (this.#paused) session.pause();
  }

  #lost(session: ListenSession, error: Error): void {
    if (this.#session !== session) return;
    this.#session = null;
    this.#stats.connectionErrors++;
    this.#report(error);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    const { reconnectInitialDelayMs: initial, reconnectMaxDelayMs: max } = this.#options;
    const delay = Math.min(max, initial * 2 ** this.#attempt) * (0.5 + Math.random() / 2);
    this.#attempt++;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      void this.#reconnect();
    }, delay);
  }

  /** One reconnect attempt: on success every subscription hears `reconnected`; on failure, another later. */
  #reconnect(): Promise<void> {
    this.#connecting = this.#connect()
      .then(() => {
        if (this.#closed) return;
        this.#stats.reconnects++;
        this.#inbound.push('reconnected');
        this.#drain();
      })
      .catch((error: unknown) => {
        this.#stats.connectionErrors++;
        this.#report(error);
        this.#scheduleReconnect();
      })
      .finally(() => {
        this.#connecting = null;
      });
    return this.#connecting;
  }

  #receive(notification: Notification): void {
    this.#inbound.push(notification);
    if (!this.#paused && this.#inbound.length >= this.#options.inboundBufferSize) {
      this.#paused = true;
      this.#stats.pauses++;
      this.#session?.pause();
    }
    this.#drain();
  }

  /** The dispatch loop: one notification at a time, waiting on full subscriptions. */
  #drain(): void {
    if (this.#dispatching) return;
    this.#dispatching = true;
    void (async () => {
      try {
        for (let next = this.#inbound.shift(); next !== undefined; next = this.#inbound.shift()) {
          await this.#dispatch(next);
          if (this.#paused && this.#inbound.length <= this.#options.inboundBufferSize / 2) {
            this.#paused = false;
            this.#session?.resume();
          }
        }
      } finally {
        this.#dispatching = false;
      }
    })();
  }

  async #dispatch(notification: Notification | 'reconnected'): Promise<void> {
    if (notification === 'reconnected') {
      const all = [...this.#subscriptions.values()].flatMap((set) => [...set]);
      for (const subscription of all) await subscription.push({ type: 'reconnected' });
      return;
    }
    this.#stats.eventsReceived++;
    this.#stats.lastEventAt = new Date();
    let event: PgmqEvent;
    try {
      event = parseEvent(notification.payload);
    } catch (error) {
      this.#stats.parseErrors++;
      this.#report(
        new EventParseError(`malformed notification on ${notification.channel}`, { cause: error }),
      );
      return;
    }
    const set = this.#subscriptions.get(notification.channel);
    if (!set) return;
    for (const subscription of [...set]) {
      if (subscription.queue === null || subscription.queue === event.queueName)
        await subscription.push(event);
    }
  }

  #report(error: unknown): void {
    this.#stats.lastErrorAt = new Date();
    try {
      this.#options.onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // A logging hook must not break the listener.
    }
  }
}
