/**
 * The task event stream (`GET /v1/tasks/{uuid}/events`): its typed events, and a parser of
 * `text/event-stream` (the WHATWG server-sent-events format) over a fetch body, without
 * dependencies.
 */

/** A step's state in a snapshot. */
export interface TaskEventStepState {
  step_uuid: string;
  name: string;
  state: string;
  /** The step's transition count so far: later transitions of it have higher `sort_key`s. */
  sort_key: number;
  /** When the step entered the state (RFC 3339, UTC). */
  at: string | null;
}

/**
 * The current state of the task and every step: first on every stream, and again (with
 * `reconnected: true`) after the server had to restore its database notifications.
 */
export interface TaskSnapshotEvent {
  type: 'snapshot';
  task_uuid: string;
  state: string;
  sort_key: number;
  at: string | null;
  reconnected: boolean;
  steps: TaskEventStepState[];
}

/** One state change of the task (`step_uuid` null) or of one of its steps. */
export interface TaskTransitionEvent {
  type: 'transition';
  task_uuid: string;
  step_uuid: string | null;
  step_name: string | null;
  from_state: string | null;
  to_state: string;
  /** The state machine event that caused it (`enqueue`, `start`, `complete`…). */
  event: string;
  /** Per task or step, strictly increasing. */
  sort_key: number;
  at: string;
}

export type TaskEvent = TaskSnapshotEvent | TaskTransitionEvent;

/** The task states after which nothing changes on its own: the stream ends there. */
export const TERMINAL_TASK_STATES: ReadonlySet<string> = new Set([
  'complete',
  'error',
  'cancelled',
  'resolved_manually',
]);

/** One dispatched server-sent event. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | null;
}

/**
 * Parses a `text/event-stream` body: lines end with CRLF, LF or CR; `field: value` (one space after
 * the colon dropped); `data` lines joined with `\n`; comments (`:`) skipped; an empty line
 * dispatches the event (none without data); an unfinished last event is dropped, as the format says.
 */
export async function* parseEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let first = true;
  let event = '';
  let data: string[] = [];
  let id: string | null = null;

  function* lines(final: boolean): Generator<string> {
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      if (match === null) return;
      // a CR at the very end may be the first half of a CRLF split across chunks
      if (match[0] === '\r' && match.index === buffer.length - 1 && !final) return;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      yield line;
    }
  }

  function* process(final: boolean): Generator<ServerSentEvent> {
    for (const line of lines(final)) {
      if (line === '') {
        if (data.length > 0) yield { event: event === '' ? 'message' : event, data: data.join('\n'), id };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
  }

  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    if (first && buffer.length > 0) {
      if (buffer.startsWith('\uFEFF')) buffer = buffer.slice(1);
      first = false;
    }
    yield* process(false);
  }
  buffer += decoder.decode();
  yield* process(true);
}
