/**
 * Domain events (reference C §5, its [REC] items): business notifications a step declares in its
 * template (`publishes_events`), published by the worker after the step's completion transaction
 * committed — never before, never failing, blocking or delaying the step.
 *
 * - `DomainEventBus`: in-process subscribers by event name pattern (`payment.processed`,
 *   `payment.*`, `*`; `*` matches any characters). A subscriber that throws (or rejects) is counted
 *   and logged; the others still receive the event and the publisher never sees the error.
 * - `DomainEventPublisher`: a bounded queue of completed steps and one drain loop. For each declared
 *   event whose condition matches the result it builds the payload, validates it against the declared
 *   JSON Schema (an invalid payload is not published: counted `invalid`, logged at warn), and delivers
 *   it: `fast` ⇒ the bus, `durable` ⇒ `pgmq.send('{ns}_domain_events')` under a time limit,
 *   `broadcast` ⇒ both. When the queue is full the completed step's events are dropped (counted
 *   `dropped`): the step is never made to wait.
 * - `consumeDomainEvents`: a consumer of the durable queue (read with a visibility timeout, delete
 *   after the handler succeeded; a failing handler's message becomes visible again after the timeout).
 *
 * Payload convention: the payload of event `E` is the first of
 *   1. `result._domain_events[E]` — a successful handler's result (`{ ..., _domain_events: { E: {...} } }`);
 *   2. `metadata.custom._domain_events[E]` — handler metadata (`StepHandlerResult.success/failure(…, metadata)`);
 *   3. `metadata.context._domain_events[E]` — the `metadata` of a thrown `PermanentError`/`RetryableError`;
 * and by default the step result without its `_domain_events` key (success) or
 * `{ error, error_type, error_code?, retryable }` (failure, whose stored result is `{}`).
 * The `_domain_events` key stays in the stored result: dependents may read it, it is plain JSON.
 *
 * Counters are kept per event name and delivery path (`fast`, `durable`); a broadcast event counts on
 * both paths. A durable send that times out is counted `failed` (it may still land later).
 */

import { randomBytes } from 'node:crypto';
import {
  DELIVERY_MODES,
  type DeliveryMode,
  EVENT_CONDITIONS,
  type EventCondition,
  type JsonObject,
  type JsonValue,
  type Logger,
  SILENT_LOGGER,
  sleep,
} from '@tasker/core';
import type { Queryable } from '@tasker/db';
import { Pgmq, type QueueMessage, validateNamespace } from '@tasker/pgmq';
import { Ajv } from 'ajv';
import type { StepExecutionResult } from './results.ts';

/** The key under which a handler supplies payloads by event name (see the module comment). */
export const DOMAIN_EVENTS_KEY = '_domain_events';

/** `{namespace}_domain_events`: the durable queue of a namespace (at most 29 + 14 characters). */
export function domainEventQueueName(namespace: string): string {
  return `${validateNamespace(namespace)}_domain_events`;
}

export interface DomainEventMetadata {
  delivery_mode: DeliveryMode;
  condition: EventCondition;
  /** The step's attempt that produced the result (1 on the first run). */
  attempt: number;
}

/** The envelope every subscriber and the durable queue receive. */
export interface DomainEvent {
  /** A UUIDv7 (time-ordered). */
  event_id: string;
  event_name: string;
  occurred_at: string;
  correlation_id: string | null;
  task_uuid: string | null;
  step_uuid: string;
  step_name: string | null;
  namespace: string;
  payload: JsonValue;
  metadata: DomainEventMetadata;
}

/** A UUIDv7: 48 bits of Unix milliseconds, version and variant, random bits. */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  const ms = BigInt(now);
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- the in-process bus --------------------------------------------------------------------------

export type DomainEventSubscriber = (event: DomainEvent) => void | Promise<void>;

/** `*` matches any characters (dots included); everything else literally. */
function patternRegExp(pattern: string): RegExp {
  const escaped = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${escaped}$`, 's');
}

/** True when `eventName` matches `pattern` (exact, `payment.*`, `*`). */
export function matchesEventPattern(pattern: string, eventName: string): boolean {
  return patternRegExp(pattern).test(eventName);
}

interface Subscription {
  pattern: string;
  regexp: RegExp;
  subscriber: DomainEventSubscriber;
}

export interface DomainEventBusStats {
  subscribers: number;
  /** Events published on the bus. */
  published: number;
  /** Subscriber calls made. */
  delivered: number;
  /** Subscriber calls that threw or rejected (caught, logged). */
  subscriberErrors: number;
}

/** In-process delivery of `fast` and `broadcast` events; lost on restart. */
export class DomainEventBus {
  readonly #subscriptions = new Set<Subscription>();
  readonly #logger: Logger;
  readonly #stats = { published: 0, delivered: 0, subscriberErrors: 0 };

  constructor(options: { logger?: Logger } = {}) {
    this.#logger = options.logger ?? SILENT_LOGGER;
  }

  /** Calls `subscriber` for every event whose name matches `pattern`; returns the unsubscribe function. */
  subscribe(pattern: string, subscriber: DomainEventSubscriber): () => void {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError('pattern must not be empty');
    const subscription: Subscription = { pattern, regexp: patternRegExp(pattern), subscriber };
    this.#subscriptions.add(subscription);
    return () => {
      this.#subscriptions.delete(subscription);
    };
  }

  /** Hands `event` to the matching subscribers; never throws, never waits for them. */
  publish(event: DomainEvent): number {
    this.#stats.published++;
    let delivered = 0;
    for (const subscription of [...this.#subscriptions]) {
      if (!subscription.regexp.test(event.event_name)) continue;
      delivered++;
      this.#stats.delivered++;
      try {
        const outcome = subscription.subscriber(event);
        if (outcome instanceof Promise)
          outcome.catch((error: unknown) => this.#failed(subscription, event, error));
      } catch (error) {
        this.#failed(subscription, event, error);
      }
    }
    return delivered;
  }

  #failed(subscription: Subscription, event: DomainEvent, error: unknown): void {
    this.#stats.subscriberErrors++;
    this.#logger.warn(
      { pattern: subscription.pattern, event_name: event.event_name, event_id: event.event_id, error },
      'domain event subscriber failed',
    );
  }

  stats(): DomainEventBusStats {
    return { subscribers: this.#subscriptions.size, ...this.#stats };
  }
}

// ---- declarations, conditions, payloads ----------------------------------------------------------

/** A step's `publishes_events` entry as the worker reads it (defaults of the template model applied). */
export interface EventDeclarationInput {
  name: string;
  condition: EventCondition;
  delivery_mode: DeliveryMode;
  schema: JsonObject | boolean | null;
}

/** The declarations of a template step (`step_definition.publishes_events`); malformed entries are skipped. */
export function eventDeclarations(stepDefinition: unknown): EventDeclarationInput[] {
  if (!isObject(stepDefinition) || !Array.isArray(stepDefinition.publishes_events)) return [];
  const declarations: EventDeclarationInput[] = [];
  for (const entry of stepDefinition.publishes_events) {
    if (!isObject(entry) || typeof entry.name !== 'string' || entry.name.length === 0) continue;
    const condition = EVENT_CONDITIONS.find((known) => known === (entry.condition ?? 'success'));
    const mode = DELIVERY_MODES.find((known) => known === (entry.delivery_mode ?? 'durable'));
    if (condition === undefined || mode === undefined) continue;
    const schema = entry.schema;
    declarations.push({
      name: entry.name,
      condition,
      delivery_mode: mode,
      schema: typeof schema === 'boolean' || isObject(schema) ? (schema as JsonObject | boolean) : null,
    });
  }
  return declarations;
}

/**
 * Whether an event with `condition` fires for `result`: `success` / `failure` by `success`;
 * `retryable_failure` / `permanent_failure` by `metadata.retryable` of a failure; `always` always.
 */
export function conditionMatches(
  condition: EventCondition,
  result: Pick<StepExecutionResult, 'success'> & { metadata: { retryable: boolean } },
): boolean {
  switch (condition) {
    case 'success':
      return result.success;
    case 'failure':
      return !result.success;
    case 'retryable_failure':
      return !result.success && result.metadata.retryable === true;
    case 'permanent_failure':
      return !result.success && result.metadata.retryable !== true;
    case 'always':
      return true;
  }
}

function supplied(container: unknown, eventName: string): JsonValue | undefined {
  if (!isObject(container)) return undefined;
  const payloads = container[DOMAIN_EVENTS_KEY];
  if (!isObject(payloads) || !Object.hasOwn(payloads, eventName)) return undefined;
  return payloads[eventName] as JsonValue;
}

/** The payload of `eventName` for `result` (the convention of the module comment). */
export function eventPayload(result: StepExecutionResult, eventName: string): JsonValue {
  const explicit =
    supplied(result.result, eventName) ??
    supplied(result.metadata.custom, eventName) ??
    supplied(result.metadata.context, eventName);
  if (explicit !== undefined) return explicit;
  if (result.success) {
    if (!isObject(result.result) || !Object.hasOwn(result.result, DOMAIN_EVENTS_KEY)) return result.result;
    const { [DOMAIN_EVENTS_KEY]: _supplied, ...rest } = result.result;
    return rest as JsonObject;
  }
  const failure: JsonObject = {
    error: result.error?.message ?? 'step failed',
    error_type: result.error?.error_type ?? result.metadata.error_type ?? null,
    retryable: result.metadata.retryable,
  };
  if (result.metadata.error_code !== undefined) failure.error_code = result.metadata.error_code;
  return failure;
}

// ---- payload schemas ----------------------------------------------------------------------------

/** Null when the value is valid, else the first problem (`(payload)/path message`). */
type PayloadValidator = (value: unknown) => string | null;

/**
 * Compiles an event's payload schema with Ajv (the template loader already checked that it
 * compiles); the validator returns null for a valid payload, else Ajv's message with the payload
 * path (e.g. `(payload)/order_id must be string`). Formats are not checked (no format plugin).
 */
export function compilePayloadSchema(schema: JsonObject | boolean): PayloadValidator {
  payloadAjv ??= new Ajv({ strict: false, allErrors: false, validateFormats: false });
  const ajv = payloadAjv;
  const validate = ajv.compile(schema);
  return (value) => (validate(value) ? null : ajv.errorsText(validate.errors, { dataVar: '(payload)' }));
}

let payloadAjv: Ajv | undefined;

// ---- the publisher -------------------------------------------------------------------------------

/** Where an event went: the bus (`fast`) or the namespace queue (`durable`). */
export type DeliveryPath = 'fast' | 'durable';

export interface DomainEventCounters {
  published: number;
  /** The payload failed the declared schema: not published. */
  invalid: number;
  /** The publisher's queue was full: not published. */
  dropped: number;
  /** The durable send failed or timed out. */
  failed: number;
}

export interface DomainEventMetrics {
  /** Completed steps waiting to be published. */
  pending: number;
  maxPending: number;
  /** Totals over all events and paths. */
  totals: DomainEventCounters;
  /** By event name, then delivery path (a broadcast event counts on both). */
  byEvent: Record<string, Partial<Record<DeliveryPath, DomainEventCounters>>>;
  bus: DomainEventBusStats;
}

/** A step whose completion committed: what the publisher needs to build its events. */
export interface CompletedStep {
  namespace: string;
  taskUuid: string | null;
  stepUuid: string;
  stepName: string | null;
  correlationId: string | null;
  attempt: number;
  declarations: readonly EventDeclarationInput[];
  result: StepExecutionResult;
}

export interface DomainEventPublisherOptions {
  /** Where durable events are sent. */
  db: Queryable;
  bus: DomainEventBus;
  /** Completed steps queued at most; more are dropped (counted). Default 1000. */
  maxPending?: number;
  /** Time limit of one durable send (ms). Default 5000. */
  durableTimeoutMs?: number;
  logger?: Logger;
}

export const DOMAIN_EVENT_DEFAULTS = { maxPending: 1000, durableTimeoutMs: 5000 } as const;

const PATHS: Record<DeliveryMode, readonly DeliveryPath[]> = {
  fast: ['fast'],
  durable: ['durable'],
  broadcast: ['fast', 'durable'],
};

const zero = (): DomainEventCounters => ({ published: 0, invalid: 0, dropped: 0, failed: 0 });

/**
 * Publishes the declared events of completed steps, asynchronously and in order, from a bounded
 * queue. `enqueue` never throws and never waits.
 */
export class DomainEventPublisher {
  readonly bus: DomainEventBus;
  readonly maxPending: number;
  readonly #pgmq: Pgmq;
  readonly #durableTimeoutMs: number;
  readonly #logger: Logger;
  readonly #queue: CompletedStep[] = [];
  readonly #byEvent = new Map<string, Map<DeliveryPath, DomainEventCounters>>();
  readonly #totals = zero();
  readonly #validators = new Map<string, PayloadValidator>();
  #running = false;
  #draining: Promise<void> = Promise.resolve();

  constructor(options: DomainEventPublisherOptions) {
    this.bus = options.bus;
    this.maxPending = options.maxPending ?? DOMAIN_EVENT_DEFAULTS.maxPending;
    if (!(Number.isSafeInteger(this.maxPending) && this.maxPending >= 1))
      throw new RangeError('maxPending must be an integer >= 1');
    this.#durableTimeoutMs = options.durableTimeoutMs ?? DOMAIN_EVENT_DEFAULTS.durableTimeoutMs;
    this.#pgmq = new Pgmq(options.db);
    this.#logger = options.logger ?? SILENT_LOGGER;
  }

  /** Queues a committed step's events for publishing; when the queue is full they are dropped. */
  enqueue(step: CompletedStep): void {
    try {
      if (step.declarations.length === 0) return;
      if (this.#queue.length >= this.maxPending) {
        const names: string[] = [];
        for (const declaration of step.declarations) {
          if (!conditionMatches(declaration.condition, step.result)) continue;
          names.push(declaration.name);
          this.#count(declaration, 'dropped');
        }
        if (names.length > 0)
          this.#logger.warn(
            { step_uuid: step.stepUuid, events: names, max_pending: this.maxPending },
            'domain event queue full; events dropped',
          );
        return;
      }
      this.#queue.push(step);
      if (!this.#running) {
        this.#running = true;
        this.#draining = this.#drain();
      }
    } catch (error) {
      this.#logger.error({ step_uuid: step.stepUuid, error }, 'domain events not queued');
    }
  }

  /** Resolves when everything queued so far was published (or given up). */
  async idle(): Promise<void> {
    while (this.#running) await this.#draining;
  }

  get pending(): number {
    return this.#queue.length;
  }

  async #drain(): Promise<void> {
    // start after the caller's synchronous run: the step's slot is released first
    await Promise.resolve();
    try {
      for (let step = this.#queue.shift(); step !== undefined; step = this.#queue.shift()) {
        try {
          await this.#publishStep(step);
        } catch (error) {
          this.#logger.error({ step_uuid: step.stepUuid, error }, 'domain event publishing failed');
        }
      }
    } finally {
      // set in the same run that found the queue empty: a later enqueue starts a new drain
      this.#running = false;
    }
  }

  async #publishStep(step: CompletedStep): Promise<void> {
    for (const declaration of step.declarations) {
      if (!conditionMatches(declaration.condition, step.result)) continue;
      const payload = eventPayload(step.result, declaration.name);
      const problem = this.#validate(declaration, payload);
      if (problem !== null) {
        this.#count(declaration, 'invalid');
        this.#logger.warn(
          { event_name: declaration.name, step_uuid: step.stepUuid, task_uuid: step.taskUuid, problem },
          'domain event payload fails its schema; not published',
        );
        continue;
      }
      const event: DomainEvent = {
        event_id: uuidv7(),
        event_name: declaration.name,
        occurred_at: new Date().toISOString(),
        correlation_id: step.correlationId,
        task_uuid: step.taskUuid,
        step_uuid: step.stepUuid,
        step_name: step.stepName,
        namespace: step.namespace,
        payload,
        metadata: {
          delivery_mode: declaration.delivery_mode,
          condition: declaration.condition,
          attempt: step.attempt,
        },
      };
      for (const path of PATHS[declaration.delivery_mode]) {
        if (path === 'fast') {
          this.bus.publish(event);
          this.#count(declaration, 'published', 'fast');
        } else {
          await this.#sendDurable(declaration, event);
        }
      }
    }
  }

  async #sendDurable(declaration: EventDeclarationInput, event: DomainEvent): Promise<void> {
    const send = this.#pgmq.send(domainEventQueueName(event.namespace), event);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#durableTimeoutMs);
    });
    try {
      const outcome = await Promise.race([send, timeout]);
      if (outcome === 'timeout') {
        send.catch(() => undefined);
        this.#count(declaration, 'failed', 'durable');
        this.#logger.warn(
          { event_name: event.event_name, event_id: event.event_id, timeout_ms: this.#durableTimeoutMs },
          'durable domain event send timed out',
        );
        return;
      }
      this.#count(declaration, 'published', 'durable');
    } catch (error) {
      this.#count(declaration, 'failed', 'durable');
      this.#logger.warn(
        { event_name: event.event_name, event_id: event.event_id, error },
        'durable domain event not sent',
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Null when valid; the schema is compiled once per distinct schema. */
  #validate(declaration: EventDeclarationInput, payload: JsonValue): string | null {
    const schema = declaration.schema;
    if (schema === null) return null;
    const key = JSON.stringify(schema);
    let validate = this.#validators.get(key);
    if (validate === undefined) {
      validate = compilePayloadSchema(schema);
      this.#validators.set(key, validate);
    }
    return validate(payload);
  }

  #count(declaration: EventDeclarationInput, counter: keyof DomainEventCounters, only?: DeliveryPath): void {
    let paths = this.#byEvent.get(declaration.name);
    if (paths === undefined) {
      paths = new Map();
      this.#byEvent.set(declaration.name, paths);
    }
    for (const path of only === undefined ? PATHS[declaration.delivery_mode] : [only]) {
      let counters = paths.get(path);
      if (counters === undefined) {
        counters = zero();
        paths.set(path, counters);
      }
      counters[counter]++;
      this.#totals[counter]++;
    }
  }

  metrics(): DomainEventMetrics {
    const byEvent: DomainEventMetrics['byEvent'] = {};
    for (const [name, paths] of [...this.#byEvent].sort(([a], [b]) => a.localeCompare(b))) {
      const entry: Partial<Record<DeliveryPath, DomainEventCounters>> = {};
      for (const [path, counters] of paths) entry[path] = { ...counters };
      byEvent[name] = entry;
    }
    return {
      pending: this.#queue.length,
      maxPending: this.maxPending,
      totals: { ...this.#totals },
      byEvent,
      bus: this.bus.stats(),
    };
  }
}

// ---- the durable consumer ------------------------------------------------------------------------

export interface ConsumeDomainEventsOptions {
  /** Seconds a read message stays invisible; a failed one is retried after it. Default 30. */
  visibilityTimeoutSeconds?: number;
  /** Messages per read. Default 10. */
  batchSize?: number;
  /** Wait after a read found nothing (ms). Default 500. */
  pollIntervalMs?: number;
  /** Stops the consumer when aborted (as `stop()` does). */
  signal?: AbortSignal;
  logger?: Logger;
}

export interface DomainEventConsumerStats {
  /** Messages handled and deleted. */
  handled: number;
  /** Handler failures (the message is read again after its visibility timeout). */
  failed: number;
  /** Reads that failed (retried after the poll interval). */
  readErrors: number;
}

export interface DomainEventConsumer {
  readonly queue: string;
  stats(): DomainEventConsumerStats;
  /** Stops reading; resolves when the handler call in progress (if any) has finished. */
  stop(): Promise<void>;
}

/**
 * Consumes `{namespace}_domain_events`: reads with a visibility timeout, calls `handler` for each
 * message in order and deletes it once the handler resolved. A handler that throws leaves its
 * message to reappear after the visibility timeout (at-least-once delivery).
 */
export function consumeDomainEvents(
  db: Queryable,
  namespace: string,
  handler: (event: DomainEvent, message: QueueMessage<DomainEvent>) => void | Promise<void>,
  options: ConsumeDomainEventsOptions = {},
): DomainEventConsumer {
  const queue = domainEventQueueName(namespace);
  const pgmq = new Pgmq(db);
  const logger = options.logger ?? SILENT_LOGGER;
  const vt = options.visibilityTimeoutSeconds ?? 30;
  const limit = options.batchSize ?? 10;
  const interval = options.pollIntervalMs ?? 500;
  const stats: DomainEventConsumerStats = { handled: 0, failed: 0, readErrors: 0 };
  const stopper = new AbortController();
  const signal =
    options.signal === undefined ? stopper.signal : AbortSignal.any([stopper.signal, options.signal]);

  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      let messages: QueueMessage<DomainEvent>[];
      try {
        messages = await pgmq.read<DomainEvent>(queue, { visibilityTimeoutSeconds: vt, limit });
      } catch (error) {
        stats.readErrors++;
        logger.warn({ queue, error }, 'domain event read failed');
        await sleep(interval, signal);
        continue;
      }
      for (const message of messages) {
        if (signal.aborted) break;
        try {
          await handler(message.message, message);
        } catch (error) {
          stats.failed++;
          logger.warn(
            { queue, msg_id: message.msgId, read_count: message.readCount, error: errorMessage(error) },
            'domain event handler failed; retried after the visibility timeout',
          );
          continue;
        }
        try {
          await pgmq.delete(queue, message.msgId);
          stats.handled++;
        } catch (error) {
          logger.warn({ queue, msg_id: message.msgId, error }, 'handled domain event not deleted');
        }
      }
      if (messages.length === 0) await sleep(interval, signal);
    }
  };
  const done = loop();
  return {
    queue,
    stats: () => ({ ...stats }),
    stop: async () => {
      stopper.abort();
      await done;
    },
  };
}
