/**
 * `GET /v1/tasks/{uuid}/events` on both backends, over a real listening server with the engine and a
 * worker running the example handlers: a watched diamond task shows every transition after the
 * snapshot, exactly once and in order, and the stream ends at completion; an unknown task is a 404
 * envelope; a finished task gives its snapshot and ends; a closing server ends its streams with
 * `event: error`; on PostgreSQL, a lost LISTEN session is restored and a new snapshot sent.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplates, TASKER_MIGRATIONS, type TaskTemplate, TemplateRegistry } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import { HandlerRegistry, TaskerWorker } from '@tasker/worker';
import { registerExampleHandlers } from '../../../examples/handlers/index.ts';
import { type ApiConfig, buildApiServer, TASK_EVENTS_CHANNEL } from '../src/api/index.ts';

const TEMPLATES_DIR = fileURLToPath(new URL('../../../examples/templates/', import.meta.url));
const DIAMOND = { namespace: 'diamond_workflow_ts', name: 'parallel_computation_ts', version: '1.0.0' };
const TERMINAL = new Set(['complete', 'error', 'cancelled', 'resolved_manually']);

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

interface Transition {
  task_uuid: string;
  step_uuid: string | null;
  step_name: string | null;
  from_state: string | null;
  to_state: string;
  event: string;
  sort_key: number;
  at: string;
}

interface Snapshot {
  task_uuid: string;
  state: string;
  sort_key: number;
  reconnected: boolean;
  steps: { step_uuid: string; name: string; state: string; sort_key: number }[];
}

/**
 * Opens the stream and collects its events until the server ends it. `onEvent` sees each one as it
 * arrives. Rejects if the response is not an event stream.
 */
async function watch(
  url: string,
  onEvent: (event: SseEvent) => void | Promise<void> = () => undefined,
  signal?: AbortSignal,
): Promise<{ events: SseEvent[]; comments: number }> {
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream' },
    ...(signal ? { signal } : {}),
  });
  if (response.status !== 200) assert.fail(`status ${response.status}: ${await response.text()}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.ok(response.body);
  const events: SseEvent[] = [];
  let comments = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments++;
        else if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      const event = { event: name, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
      events.push(event);
      await onEvent(event);
    }
  }
  assert.equal(buffer, '', 'the stream ends on an event boundary');
  return { events, comments };
}

async function exampleTemplates(): Promise<TaskTemplate[]> {
  const loaded = await loadTemplates([TEMPLATES_DIR]);
  assert.deepEqual(loaded.errors, []);
  return loaded.templates.map(({ template }) => template);
}

for (const backend of BACKENDS) {
  describe(`GET /v1/tasks/{uuid}/events (${backend})`, () => {
    let t: TestDatabase;
    let engine: OrchestrationEngine;
    let worker: TaskerWorker;
    let app: ReturnType<typeof buildApiServer>;
    let base: string;

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      const templates = await exampleTemplates();
      const registry = new TemplateRegistry(t.db);
      await registry.registerAll(templates);
      const handlers = new HandlerRegistry();
      registerExampleHandlers(handlers);
      // a first worker registers the templates and creates the queues; the first test starts
      // another once it watches, so that it sees the steps run
      const setup = new TaskerWorker({ db: t.db, handlers, templates });
      await setup.start();
      await setup.stop();
      worker = new TaskerWorker({ db: t.db, handlers, templates });
      engine = new OrchestrationEngine({
        db: t.db,
        registry,
        fallbackPollIntervalMs: 1000,
        readinessPollIntervalMs: 1000,
        shutdownTimeoutMs: 5000,
      });
      await engine.start();
      app = buildApiServer({ db: t.db, engine, registry });
      await app.listen({ port: 0, host: '127.0.0.1' });
      base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    });
    after(async () => {
      await app?.close();
      await worker?.stop();
      await engine?.stop();
      await t?.dispose();
    });

    async function createDiamond(evenNumber: number): Promise<string> {
      const response = await fetch(`${base}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          ...DIAMOND,
          context: { even_number: evenNumber },
          initiator: 'events-test',
          source_system: 'tests',
          reason: 'sse',
        }),
      });
      assert.equal(response.status, 201);
      return ((await response.json()) as { task_uuid: string }).task_uuid;
    }

    /** Every transition of the task and its steps from the database, per entity ('' is the task). */
    async function transitions(taskUuid: string): Promise<Map<string, Transition[]>> {
      const { rows } = await t.db.query<{
        key: string;
        from_state: string | null;
        to_state: string;
        event: string;
        sort_key: number;
      }>(
        `SELECT '' AS key, from_state, to_state, event, sort_key FROM tasker.task_transitions WHERE task_uuid = $1
         UNION ALL
         SELECT st.workflow_step_uuid::text, st.from_state, st.to_state, st.event, st.sort_key
         FROM tasker.workflow_step_transitions st
         JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = st.workflow_step_uuid
         WHERE ws.task_uuid = $1
         ORDER BY 1, 5`,
        [taskUuid],
      );
      const byEntity = new Map<string, Transition[]>();
      for (const row of rows) {
        const list = byEntity.get(row.key) ?? [];
        list.push(row as unknown as Transition);
        byEntity.set(row.key, list);
      }
      return byEntity;
    }

    it('shows every transition of a diamond task after the snapshot, in order, and ends at completion', async () => {
      const taskUuid = await createDiamond(6);
      let started: Promise<void> | undefined;
      const { events } = await watch(`${base}/v1/tasks/${taskUuid}/events`, (event) => {
        if (event.event === 'snapshot') started = worker.start();
      });
      await started;

      const [first, ...rest] = events;
      assert.equal(first?.event, 'snapshot');
      const snapshot = first.data as unknown as Snapshot;
      assert.equal(snapshot.task_uuid, taskUuid);
      assert.equal(snapshot.reconnected, false);
      assert.equal(snapshot.steps.length, 4);
      assert.ok(rest.length > 0);
      assert.ok(rest.every((event) => event.event === 'transition'));
      const seen = rest.map((event) => event.data as unknown as Transition);
      assert.ok(seen.every((event) => event.task_uuid === taskUuid));

      // the stream ends right after the task's terminal transition
      const last = seen.at(-1);
      assert.equal(last?.step_uuid, null);
      assert.equal(last?.to_state, 'complete');
      assert.equal(
        seen.filter((event) => event.step_uuid === null && TERMINAL.has(event.to_state)).length,
        1,
      );

      // per task and step: exactly the database's transitions after the snapshot, in sort_key order
      const stored = await transitions(taskUuid);
      const fromSnapshot = new Map([
        ['', snapshot.sort_key],
        ...snapshot.steps.map((step) => [step.step_uuid, step.sort_key] as const),
      ]);
      const names = new Map(snapshot.steps.map((step) => [step.step_uuid, step.name]));
      for (const [key, rows] of stored) {
        const expected = rows
          .filter((row) => row.sort_key > (fromSnapshot.get(key) ?? 0))
          .map(({ from_state, to_state, event, sort_key }) => ({ from_state, to_state, event, sort_key }));
        const actual = seen
          .filter((event) => (event.step_uuid ?? '') === key)
          .map(({ from_state, to_state, event, sort_key }) => ({ from_state, to_state, event, sort_key }));
        assert.deepEqual(actual, expected, `transitions of ${key === '' ? 'the task' : names.get(key)}`);
      }
      for (const event of seen.filter((e) => e.step_uuid !== null)) {
        assert.equal(event.step_name, names.get(event.step_uuid ?? ''));
        assert.match(event.at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      }

      // the worker started after the snapshot: every step is seen running and completing, and a
      // step runs only after its parents completed (start → left, right → end)
      const index = (name: string, state: string) =>
        seen.findIndex((event) => names.get(event.step_uuid ?? '') === name && event.to_state === state);
      for (const name of names.values()) {
        assert.ok(index(name, 'in_progress') !== -1, `${name} seen in progress`);
        assert.ok(index(name, 'complete') > index(name, 'in_progress'), `${name} seen complete`);
      }
      const { rows: edges } = await t.db.query<{ parent: string; child: string }>(
        `SELECT pn.name AS parent, cn.name AS child FROM tasker.workflow_step_edges e
         JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
         JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
         JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid
         JOIN tasker.named_steps cn ON cn.named_step_uuid = c.named_step_uuid
         WHERE p.task_uuid = $1`,
        [taskUuid],
      );
      assert.equal(edges.length, 4);
      for (const { parent, child } of edges) {
        assert.ok(index(parent, 'complete') < index(child, 'in_progress'), `${parent} before ${child}`);
      }
    });

    it('gives a finished task its snapshot and ends', async () => {
      const taskUuid = await createDiamond(8);
      // wait for the end through a first stream, then watch again
      await watch(`${base}/v1/tasks/${taskUuid}/events`);
      const { events } = await watch(`${base}/v1/tasks/${taskUuid}/events`);
      assert.equal(events.length, 1);
      const snapshot = events[0]?.data as unknown as Snapshot;
      assert.equal(events[0]?.event, 'snapshot');
      assert.equal(snapshot.state, 'complete');
      assert.ok(snapshot.steps.every((step) => step.state === 'complete'));
      // streams register their task in tasker.task_event_watches (only watched tasks notify) and
      // remove it when they end
      let watches = -1;
      for (let tries = 0; tries < 100 && watches !== 0; tries++) {
        const { rows } = await t.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM tasker.task_event_watches',
        );
        watches = rows[0]?.n ?? -1;
        if (watches !== 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(watches, 0);
    });

    it('answers an unknown task with the 404 envelope and a malformed uuid with 400', async () => {
      const unknown = await fetch(`${base}/v1/tasks/00000000-0000-7000-8000-000000000000/events`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(await unknown.json(), { error: { code: 'NOT_FOUND', message: 'Resource not found' } });
      const malformed = await fetch(`${base}/v1/tasks/not-a-uuid/events`);
      assert.equal(malformed.status, 400);
      assert.equal(((await malformed.json()) as { error: { code: string } }).error.code, 'INVALID_UUID');
    });
  });
}

describe('event streams of a closing server, and a lost LISTEN session (postgres)', () => {
  let t: TestDatabase;
  let engine: OrchestrationEngine;

  before(async () => {
    t = await createTestDatabase('postgres', { migrations: TASKER_MIGRATIONS });
    const registry = new TemplateRegistry(t.db);
    await registry.registerAll(await exampleTemplates());
    // no worker: the task stays in progress
    engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 2000 });
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
    await t?.dispose();
  });

  let served = 0;
  async function serve(config: ApiConfig = {}) {
    served++;
    const registry = new TemplateRegistry(t.db);
    const app = buildApiServer({ db: t.db, engine, registry, config });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const created = await engine.createTask({
      ...DIAMOND,
      context: { even_number: 10 + 2 * served },
      initiator: 'events-test',
      source_system: 'tests',
      reason: 'sse',
    });
    return { app, url: `${base}/v1/tasks/${created.taskUuid}/events` };
  }

  it('outlives the request timeout, and ends with event: error SERVER_CLOSING when the server closes', async () => {
    const { app, url } = await serve({ requestTimeoutMs: 100 });
    let closing: Promise<void> | undefined;
    const { events } = await watch(url, (event) => {
      // past the request timeout, the stream is still open
      if (event.event === 'snapshot') {
        closing ??= new Promise((resolve) => setTimeout(resolve, 400)).then(() => app.close());
      }
    });
    await closing;
    assert.deepEqual(
      events.map((event) => event.event),
      ['snapshot', 'error'],
    );
    assert.equal(events[1]?.data.code, 'SERVER_CLOSING');
  });

  it('re-sends the current states after the LISTEN session was lost and restored', async () => {
    const { app, url } = await serve();
    const seen: SseEvent[] = [];
    const controller = new AbortController();
    try {
      await watch(
        url,
        async (event) => {
          seen.push(event);
          if (event.event === 'snapshot' && event.data.reconnected === false) {
            // the server's LISTEN session is the only one on the channel in this database
            const { rows } = await t.db.query<{ killed: boolean }>(
              `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
               WHERE datname = current_database() AND query LIKE $1`,
              [`LISTEN%${TASK_EVENTS_CHANNEL}%`],
            );
            assert.deepEqual(rows, [{ killed: true }]);
          } else if (event.event === 'snapshot') {
            controller.abort();
          }
        },
        controller.signal,
      );
      assert.fail('the stream of an unfinished task ended');
    } catch (error) {
      assert.ok(controller.signal.aborted, String(error));
    } finally {
      await app.close();
    }
    const snapshots = seen.filter((event) => event.event === 'snapshot');
    assert.equal(snapshots.length, 2);
    assert.equal(snapshots[1]?.data.reconnected, true);
    assert.equal(snapshots[1]?.data.state, snapshots[0]?.data.state);
  });
});
