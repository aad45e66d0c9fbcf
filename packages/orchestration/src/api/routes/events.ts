/**
 * `GET /v1/tasks/{uuid}/events`: a server-sent-events stream of a task's and its steps' state
 * changes, driven by the database's notifications (migration 0009) through the server's one
 * `TaskEventHub`, never by polling.
 *
 * The stream (`text/event-stream`, UTF-8):
 * - `event: snapshot`, first, with the current state of the task and of every step:
 *   `{"task_uuid","state","sort_key","at","reconnected":false,"steps":[{"step_uuid","name","state","sort_key","at"}]}`.
 *   Sent again (`"reconnected":true`) after the server's LISTEN session was lost and restored, so a
 *   client misses no state even though the notifications of the gap are gone.
 * - `event: transition`, one per state change, in commit order:
 *   `{"task_uuid","step_uuid" (null for the task),"step_name","from_state","to_state","event","sort_key","at"}`.
 *   Per task or step, `sort_key` strictly increases: anything the snapshot already covers, or a
 *   repeat, is not sent.
 * - `event: error` `{"code","message"}` before the server closes a stream early: `SLOW_CONSUMER`
 *   (the client does not read and its buffer is full), `SERVER_CLOSING`, `SNAPSHOT_FAILED`.
 * - a comment line (`: heartbeat`) every 15 seconds keeps proxies from closing an idle stream.
 *
 * The stream ends (the response completes) right after the event that shows the task in a
 * terminal state (complete, error, cancelled, resolved_manually), at once after the snapshot when
 * the task is already there. An unknown task is the usual 404 envelope, before the stream starts.
 * The route is exempt from the request timeout (server.ts).
 */
import { Readable } from 'node:stream';
import type { Static } from '@sinclair/typebox';
import { type Logger, SILENT_LOGGER } from '@tasker/core';
import type { Database } from '@tasker/db';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { ERROR_RESPONSES, TaskParams } from '../schemas.ts';
import { TaskEventHub, type TaskEventSubscriber, type TransitionEvent } from '../task-events.ts';

/** The route's URL pattern: server.ts exempts it from the request timeout. */
export const EVENTS_ROUTE_URL = '/v1/tasks/:uuid/events';

const TERMINAL: ReadonlySet<string> = new Set(['complete', 'error', 'cancelled', 'resolved_manually']);
const HEARTBEAT_MS = 15_000;
/** Bytes a client may leave unread before it is disconnected. */
const MAX_BUFFERED_BYTES = 256 * 1024;
/** How long a stream that was told `event: error` may take to drain before its socket is closed. */
const CLOSE_GRACE_MS = 5_000;

interface StepState {
  step_uuid: string;
  name: string;
  state: string;
  sort_key: number;
  at: string | null;
}

interface Snapshot {
  task_uuid: string;
  state: string;
  sort_key: number;
  at: string | null;
  reconnected: boolean;
  steps: StepState[];
}

/** The task's and its steps' current states with their last transitions, in one statement. */
async function readSnapshot(
  db: Database,
  taskUuid: string,
): Promise<Omit<Snapshot, 'reconnected'> | undefined> {
  const { rows } = await db.query<{
    state: string;
    sort_key: number | null;
    at: string | null;
    steps: StepState[] | null;
  }>(
    `SELECT t.current_state AS state, tt.sort_key, tasker.utc_text(tt.created_at) AS at,
       (SELECT json_agg(json_build_object(
                 'step_uuid', ws.workflow_step_uuid, 'name', ns.name, 'state', ws.current_state,
                 'sort_key', coalesce(st.sort_key, 0), 'at', tasker.utc_text(st.created_at))
               ORDER BY ws.created_at, ws.workflow_step_uuid)
        FROM tasker.workflow_steps ws
        JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
        LEFT JOIN tasker.workflow_step_transitions st
          ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
        WHERE ws.task_uuid = t.task_uuid) AS steps
     FROM tasker.tasks t
     LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
     WHERE t.task_uuid = $1`,
    [taskUuid],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    task_uuid: taskUuid,
    state: row.state,
    sort_key: row.sort_key ?? 0,
    at: row.at,
    steps: row.steps ?? [],
  };
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** One client's stream: ordering, deduplication, its bounded buffer and its end. */
class TaskStream implements TaskEventSubscriber {
  readonly out = new Readable({ read: () => undefined });
  readonly #taskUuid: string;
  readonly #read: () => Promise<Omit<Snapshot, 'reconnected'> | undefined>;
  readonly #onEnd: (stream: TaskStream) => void;
  readonly #logger: Logger;
  /** The last sort_key sent per task (`''`) and step (its uuid). */
  readonly #last = new Map<string, number>();
  /** Events that arrived while a snapshot was being read; null when none is. */
  #pending: TransitionEvent[] | null = [];
  #reading = false;
  #readAgain = false;
  #ended = false;
  #heartbeat: NodeJS.Timeout | null = null;
  #grace: NodeJS.Timeout | null = null;
  /** Closes the connection of a client that does not drain its stream. */
  destroyConnection: () => void = () => undefined;

  constructor(
    taskUuid: string,
    read: () => Promise<Omit<Snapshot, 'reconnected'> | undefined>,
    onEnd: (stream: TaskStream) => void,
    logger: Logger,
  ) {
    this.#taskUuid = taskUuid;
    this.#read = read;
    this.#onEnd = onEnd;
    this.#logger = logger;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Sends the first snapshot (read by the route, after subscribing) and what arrived meanwhile. */
  start(snapshot: Omit<Snapshot, 'reconnected'>): void {
    this.#sendSnapshot({ ...snapshot, reconnected: false });
    if (this.#ended) return;
    this.#heartbeat = setInterval(() => this.#write(': heartbeat\n\n'), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  onTransition(event: TransitionEvent): void {
    if (this.#ended) return;
    if (this.#pending !== null) this.#pending.push(event);
    else this.#deliver(event);
  }

  onReconnected(): void {
    if (this.#ended) return;
    void this.#resnapshot();
  }

  /** Ends the stream early with `event: error`. */
  fail(code: string, message: string): void {
    if (this.#ended) return;
    this.out.push(frame('error', { code, message }));
    this.#finish();
    this.#grace = setTimeout(() => this.destroyConnection(), CLOSE_GRACE_MS);
    this.#grace.unref();
  }

  /** The client went away (or the response completed): stop everything. */
  dispose(): void {
    if (this.#grace !== null) clearTimeout(this.#grace);
    if (!this.#ended) {
      this.#ended = true;
      this.#stopTimers();
      this.#onEnd(this);
    }
    this.out.destroy();
  }

  async #resnapshot(): Promise<void> {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    this.#pending ??= [];
    try {
      do {
        this.#readAgain = false;
        const snapshot = await this.#read();
        if (this.#ended) return;
        if (snapshot === undefined) {
          this.fail('SNAPSHOT_FAILED', 'The task is gone');
          return;
        }
        this.#sendSnapshot({ ...snapshot, reconnected: true });
      } while (this.#readAgain && !this.#ended);
    } catch (error) {
      this.#logger.warn({ task_uuid: this.#taskUuid, error }, 'Task event snapshot failed');
      this.fail('SNAPSHOT_FAILED', 'Could not read the current state after a reconnect');
    } finally {
      this.#reading = false;
    }
  }

  #sendSnapshot(snapshot: Snapshot): void {
    this.#raise('', snapshot.sort_key);
    for (const step of snapshot.steps) this.#raise(step.step_uuid, step.sort_key);
    this.#write(frame('snapshot', snapshot));
    const pending = this.#pending ?? [];
    this.#pending = null;
    if (TERMINAL.has(snapshot.state)) {
      this.#finish();
      return;
    }
    for (const event of pending) this.#deliver(event);
  }

  #raise(key: string, sortKey: number): void {
    if (sortKey > (this.#last.get(key) ?? 0)) this.#last.set(key, sortKey);
  }

  #deliver(event: TransitionEvent): void {
    if (this.#ended) return;
    const key = event.step_uuid ?? '';
    if (event.sort_key <= (this.#last.get(key) ?? 0)) return;
    this.#last.set(key, event.sort_key);
    this.#write(frame('transition', event));
    if (event.step_uuid === null && TERMINAL.has(event.to_state)) this.#finish();
  }

  #write(chunk: string): void {
    if (this.#ended) return;
    this.out.push(chunk);
    if (this.out.readableLength > MAX_BUFFERED_BYTES) {
      this.#logger.warn({ task_uuid: this.#taskUuid }, 'Task event stream client too slow; disconnecting');
      this.fail('SLOW_CONSUMER', 'The client did not keep up with the event stream');
    }
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopTimers();
    this.out.push(null);
    this.#onEnd(this);
  }

  #stopTimers(): void {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }
}

export function eventRoutes(app: FastifyInstance, { db }: ApiContext, logger: Logger = SILENT_LOGGER): void {
  const hub = new TaskEventHub(db, { logger });
  const streams = new Set<TaskStream>();

  // open streams would keep the server from closing: they end first, telling their clients why
  app.addHook('preClose', async () => {
    for (const stream of [...streams]) stream.fail('SERVER_CLOSING', 'The server is shutting down');
  });
  app.addHook('onClose', async () => {
    for (const stream of [...streams]) stream.dispose();
    await hub.close();
  });

  app.get<{ Params: Static<typeof TaskParams> }>(
    EVENTS_ROUTE_URL,
    {
      exposeHeadRoute: false,
      schema: {
        tags: ['tasks'],
        summary: "A server-sent-events stream of the task's and its steps' state changes",
        description:
          'event: snapshot (current states), then event: transition per state change; the stream ends after the task reaches a terminal state. event: error before an early end.',
        params: TaskParams,
        response: {
          200: {
            description: 'text/event-stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const taskUuid = request.params.uuid.toLowerCase();
      let unsubscribe: () => void = () => undefined;
      const stream = new TaskStream(
        taskUuid,
        () => readSnapshot(db, taskUuid),
        (ended) => {
          unsubscribe();
          streams.delete(ended);
        },
        logger,
      );
      // an unknown task costs no watch registration
      const { rows: known } = await db.query('SELECT 1 FROM tasker.tasks WHERE task_uuid = $1', [taskUuid]);
      if (known.length === 0) throw new ApiError(404, 'NOT_FOUND', 'Resource not found');
      // subscribed before the snapshot is read: nothing between the two is lost
      try {
        unsubscribe = await hub.subscribe(taskUuid, stream);
      } catch (error) {
        logger.warn({ request_id: request.id, error }, 'Task event session unavailable');
        throw new ApiError(503, 'SERVICE_UNAVAILABLE', 'Task events are unavailable', {
          retryAfterSeconds: 5,
        });
      }
      let snapshot: Awaited<ReturnType<typeof readSnapshot>>;
      try {
        snapshot = await readSnapshot(db, taskUuid);
      } catch (error) {
        unsubscribe();
        throw error;
      }
      if (snapshot === undefined) {
        unsubscribe();
        throw new ApiError(404, 'NOT_FOUND', 'Resource not found');
      }
      streams.add(stream);
      stream.destroyConnection = () => reply.raw.destroy();
      reply.raw.on('close', () => stream.dispose());
      stream.start(snapshot);
      return reply
        .code(200)
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .header('x-accel-buffering', 'no')
        .send(stream.out);
    },
  );
}
