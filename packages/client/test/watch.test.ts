/**
 * `watchTask` and `waitForCompletion`: (a) against the real API server, listening on a port, with
 * the engine and a worker running the example handlers, on both backends; (b) stream edge cases
 * against small scripted `node:http` servers, and the connect timeout against a TCP server that
 * never speaks TLS; (c) the `text/event-stream` parser.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplates, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { buildApiServer, OrchestrationEngine } from '@tasker/orchestration';
import { HandlerRegistry, TaskerWorker } from '@tasker/worker';
import { registerExampleHandlers } from '../../../examples/handlers/index.ts';
import {
  parseEventStream,
  type TaskEvent,
  TaskerApiError,
  TaskerClient,
  TaskerStreamError,
  TaskerTimeoutError,
  type TaskRequest,
} from '../src/index.ts';
import { listeningClient, silentTcp } from './peers.ts';

const TEMPLATES_DIR = fileURLToPath(new URL('../../../examples/templates/', import.meta.url));
const DIAMOND = { namespace: 'diamond_workflow_ts', name: 'parallel_computation_ts', version: '1.0.0' };
const UNKNOWN = '00000000-0000-7000-8000-000000000000';

function diamond(evenNumber: number): TaskRequest {
  return {
    ...DIAMOND,
    context: { even_number: evenNumber },
    initiator: 'watch-test',
    source_system: 'tests',
    reason: 'watch',
  };
}

async function rejection<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

async function collect(events: AsyncIterable<TaskEvent>): Promise<TaskEvent[]> {
  const all: TaskEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

// --- (a) the real server ---------------------------------------------------------------------------

for (const backend of BACKENDS) {
  describe(`watchTask and waitForCompletion against the API server (${backend})`, () => {
    let t: TestDatabase;
    let engine: OrchestrationEngine;
    let worker: TaskerWorker;
    let app: ReturnType<typeof buildApiServer>;
    let client: TaskerClient;

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      const loaded = await loadTemplates([TEMPLATES_DIR]);
      const templates = loaded.templates.map(({ template }) => template);
      const registry = new TemplateRegistry(t.db);
      const handlers = new HandlerRegistry();
      registerExampleHandlers(handlers);
      worker = new TaskerWorker({ db: t.db, handlers, templates });
      await worker.start();
      engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 5000 });
      await engine.start();
      app = buildApiServer({ db: t.db, engine, registry });
      client = await listeningClient(app);
    });
    after(async () => {
      await client?.close();
      await app?.close();
      await worker?.stop();
      await engine?.stop();
      await t?.dispose();
    });

    it('watchTask yields the snapshot, then typed transitions, and completes with the task', async () => {
      const created = await client.createTask(diamond(2));
      const events = await collect(client.watchTask(created.task_uuid));
      const [first, ...rest] = events;
      assert.equal(first?.type, 'snapshot');
      assert.equal(first.task_uuid, created.task_uuid);
      assert.equal(first.steps.length, 4);
      const last = events.at(-1);
      assert.ok(last !== undefined);
      if (last.type === 'transition') {
        assert.equal(last.step_uuid, null);
        assert.equal(last.to_state, 'complete');
      } else {
        assert.equal(last.state, 'complete');
      }
      for (const event of rest) {
        assert.equal(event.type, 'transition');
        if (event.type === 'transition') {
          assert.equal(event.task_uuid, created.task_uuid);
          assert.equal(typeof event.sort_key, 'number');
          if (event.step_uuid !== null) assert.equal(typeof event.step_name, 'string');
        }
      }
      // again, once finished: the snapshot alone
      const again = await collect(client.watchTask(created.task_uuid));
      assert.equal(again.length, 1);
      assert.equal(again[0]?.type === 'snapshot' && again[0].state, 'complete');
    });

    it('waitForCompletion returns the finished task', async () => {
      const created = await client.createTask(diamond(4));
      const task = await client.waitForCompletion(created.task_uuid, { timeoutMs: 30_000 });
      assert.equal(task.task_uuid, created.task_uuid);
      assert.equal(task.status, 'complete');
    });

    it('an unknown task is TaskerApiError NOT_FOUND for both', async () => {
      const watched = await rejection(collect(client.watchTask(UNKNOWN)), TaskerApiError);
      assert.equal(watched.status, 404);
      assert.equal(watched.code, 'NOT_FOUND');
      const waited = await rejection(client.waitForCompletion(UNKNOWN, { timeoutMs: 5000 }), TaskerApiError);
      assert.equal(waited.status, 404);
    });

    it('leaving the loop early or aborting closes the stream', async () => {
      const created = await client.createTask(diamond(6));
      for await (const event of client.watchTask(created.task_uuid)) {
        assert.equal(event.type, 'snapshot');
        break;
      }
      const controller = new AbortController();
      const reason = new Error('enough');
      controller.abort(reason);
      await assert.rejects(
        collect(client.watchTask(created.task_uuid, { signal: controller.signal })),
        reason,
      );
      await client.waitForCompletion(created.task_uuid, { timeoutMs: 30_000 });
    });
  });
}

// --- (b) scripted servers --------------------------------------------------------------------------

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

async function scripted(handler: Handler): Promise<{ client: TaskerClient; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new TaskerClient({
    baseUrl: `http://127.0.0.1:${port}`,
    timeoutMs: 2000,
    retries: { baseDelayMs: 1, maxDelayMs: 5 },
  });
  return {
    client,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await client.close();
    },
  };
}

const TASK = UNKNOWN;
const SNAPSHOT = `event: snapshot\r\ndata: {"task_uuid":"${TASK}","state":"steps_in_process","sort_key":3,"at":null,"reconnected":false,"steps":[]}\r\n\r\n`;

function taskBody(status: string): string {
  return JSON.stringify({ task_uuid: TASK, status });
}

describe('watchTask and waitForCompletion against scripted servers', () => {
  it('an event: error ends watchTask with TaskerStreamError and its code', async () => {
    const { client, close } = await scripted((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(
        `${SNAPSHOT}: heartbeat\n\nevent: error\ndata: {"code":"SLOW_CONSUMER","message":"too slow"}\n\n`,
      );
    });
    try {
      const error = await rejection(collect(client.watchTask(TASK)), TaskerStreamError);
      assert.equal(error.code, 'SLOW_CONSUMER');
      assert.equal(error.message, 'too slow');
    } finally {
      await close();
    }
  });

  it('a stream that stops before the task finished is TaskerStreamError STREAM_ENDED', async () => {
    const { client, close } = await scripted((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(SNAPSHOT);
    });
    try {
      const error = await rejection(collect(client.watchTask(TASK)), TaskerStreamError);
      assert.equal(error.code, 'STREAM_ENDED');
    } finally {
      await close();
    }
  });

  it('a response that is not an event stream is TaskerApiError INVALID_RESPONSE', async () => {
    const { client, close } = await scripted((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
    try {
      const error = await rejection(collect(client.watchTask(TASK)), TaskerApiError);
      assert.equal(error.code, 'INVALID_RESPONSE');
    } finally {
      await close();
    }
  });

  it('waitForCompletion falls back to reading the task when the stream breaks', async () => {
    let streams = 0;
    const { client, close } = await scripted((request, response) => {
      if (request.url?.endsWith('/events')) {
        streams++;
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.end(SNAPSHOT);
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(taskBody(streams >= 2 ? 'complete' : 'steps_in_process'));
    });
    try {
      const task = await client.waitForCompletion(TASK, { timeoutMs: 10_000 });
      assert.equal(task.status, 'complete');
      assert.equal(streams, 2);
    } finally {
      await close();
    }
  });

  it('waitForCompletion gives up after timeoutMs with TaskerTimeoutError naming the state', async () => {
    const { client, close } = await scripted((request, response) => {
      if (request.url?.endsWith('/events')) {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(SNAPSHOT);
        return; // never ends
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(taskBody('steps_in_process'));
    });
    try {
      const error = await rejection(client.waitForCompletion(TASK, { timeoutMs: 200 }), TaskerTimeoutError);
      assert.match(error.message, /did not finish within 200 ms \(status steps_in_process\)/);
    } finally {
      await close();
    }
  });
});

describe('watchTask connect timeout (a TCP server that never speaks TLS)', () => {
  it('gives TaskerTimeoutError CONNECT_TIMEOUT after connectTimeoutMs', async () => {
    const peer = await silentTcp();
    const client = new TaskerClient({
      baseUrl: peer.url,
      connectTimeoutMs: 200,
      timeoutMs: 60_000,
    });
    try {
      const error = await rejection(collect(client.watchTask(TASK)), TaskerTimeoutError);
      assert.equal(error.code, 'CONNECT_TIMEOUT');
      assert.equal(error.timeoutMs, 200);
      assert.equal(
        error.message,
        `GET /v1/tasks/${TASK}/events: could not connect to ${peer.url.slice('https://'.length)} within connectTimeoutMs (200 ms)`,
      );
    } finally {
      await client.close();
      await peer.close();
    }
  });
});

// --- (c) the parser --------------------------------------------------------------------------------

describe('parseEventStream', () => {
  async function parse(chunks: string[]) {
    const encoder = new TextEncoder();
    async function* body() {
      for (const chunk of chunks) yield encoder.encode(chunk);
    }
    const out = [];
    for await (const event of parseEventStream(body())) out.push(event);
    return out;
  }

  it('handles CRLF, CR and LF, split anywhere, comments, multi-line data, ids and a BOM', async () => {
    const text =
      '\uFEFF: hello\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\nid: 7\rdata: x\r\rdata: y\n\nevent: b\n\n';
    const whole = await parse([text]);
    const expected = [
      { event: 'a', data: '1\n2', id: null },
      { event: 'message', data: 'x', id: '7' },
      { event: 'message', data: 'y', id: '7' },
    ];
    assert.deepEqual(whole, expected);
    for (let cut = 1; cut < text.length; cut++) {
      assert.deepEqual(await parse([text.slice(0, cut), text.slice(cut)]), expected, `cut at ${cut}`);
    }
  });

  it('drops an unfinished last event', async () => {
    assert.deepEqual(await parse(['data: a\n\ndata: b\n']), [{ event: 'message', data: 'a', id: null }]);
  });
});
