/**
 * The REST client: (a) every method against the real API server, listening on a port, on both
 * backends; (b) retries, timeouts, errors, configuration and the plain-HTTP warning against small
 * scripted `node:http` servers; (c) the connect timeout against a TCP server that never speaks TLS.
 * No assertion depends on elapsed time; retry waits are tiny.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplateFile, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { buildApiServer, OrchestrationEngine } from '@tasker/orchestration';
import {
  ClientConfigError,
  type RetryEvent,
  TaskerApiError,
  TaskerClient,
  TaskerClientError,
  type TaskerClientOptions,
  TaskerNetworkError,
  TaskerTimeoutError,
  type TaskRequest,
} from '../src/index.ts';
import { listeningClient, silentTcp } from './peers.ts';

const TEMPLATES = new URL('../../../examples/templates/', import.meta.url);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LINEAR = { namespace: 'linear_workflow_ts', name: 'mathematical_sequence_ts', version: '1.0.0' };

function linearRequest(context: Record<string, unknown>, extra: Partial<TaskRequest> = {}): TaskRequest {
  return { ...LINEAR, context, initiator: 'client-test', source_system: 'tests', reason: 'client', ...extra };
}

/** Runs `promise`, expecting it to reject with an instance of `type`; returns the error. */
async function rejection<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

// --- (a) the real server ---------------------------------------------------------------------------

for (const backend of BACKENDS) {
  describe(`TaskerClient against the API server (${backend})`, () => {
    let t: TestDatabase;
    let engine: OrchestrationEngine;
    let app: ReturnType<typeof buildApiServer>;
    let client: TaskerClient;

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      const registry = new TemplateRegistry(t.db);
      const file = fileURLToPath(new URL(`${LINEAR.namespace}/${LINEAR.name}.yaml`, TEMPLATES));
      await registry.register(await loadTemplateFile(file));
      engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 2000 });
      await engine.start();
      app = buildApiServer({ db: t.db, engine, registry });
      client = await listeningClient(app);
    });
    after(async () => {
      await client?.close();
      await app?.close();
      await engine?.stop();
      await t?.dispose();
    });

    it('creates a linear task and reads it, its steps, its summary and its template', async () => {
      const created = await client.createTask(linearRequest({ even_number: 2 }, { tags: ['client'] }));
      assert.match(created.task_uuid, UUID);
      assert.equal(created.namespace, LINEAR.namespace);
      assert.deepEqual(created.context, { even_number: 2 });
      assert.deepEqual(created.tags, ['client']);
      assert.equal(created.total_steps, 4);

      const task = await client.getTask(created.task_uuid);
      assert.equal(task.task_uuid, created.task_uuid);
      assert.equal(task.steps.length, 4);

      const listed = await client.listTasks({
        initiator: 'client-test',
        namespace: LINEAR.namespace,
        per_page: 10,
      });
      assert.ok(listed.tasks.some((entry) => entry.task_uuid === created.task_uuid));
      assert.equal(listed.pagination.per_page, 10);
      assert.equal(listed.pagination.page, 1);

      const summary = await client.getTaskSummary(created.task_uuid);
      assert.equal(summary.task.task_uuid, created.task_uuid);
      assert.equal(summary.template.steps.length, 4);
      assert.equal(summary.links.task, `/v1/tasks/${created.task_uuid}`);

      const steps = await client.listSteps(created.task_uuid);
      assert.deepEqual(
        steps.map((step) => step.name),
        ['linear_step_1', 'linear_step_2', 'linear_step_3', 'linear_step_4'],
      );
      const first = steps[0];
      assert.ok(first);
      const step = await client.getStep(created.task_uuid, first.step_uuid);
      assert.equal(step.step_uuid, first.step_uuid);
      assert.equal(step.task_uuid, created.task_uuid);
      assert.deepEqual(await client.getStepAudit(created.task_uuid, first.step_uuid), []);

      const templates = await client.listTemplates();
      assert.ok(templates.templates.some((entry) => entry.name === LINEAR.name));
      const inNamespace = await client.listTemplates(LINEAR.namespace);
      assert.deepEqual(
        inNamespace.templates.map((entry) => entry.namespace),
        [LINEAR.namespace],
      );
      const template = await client.getTemplate(LINEAR.namespace, LINEAR.name, LINEAR.version);
      assert.equal(template.name, LINEAR.name);
      assert.equal(template.steps.length, 4);
    });

    it('creates idempotently: the same key again is 409 CONFLICT', async () => {
      const key = `client-${randomUUID()}`;
      const created = await client.createTask(linearRequest({ even_number: 4 }), { idempotencyKey: key });
      assert.match(created.task_uuid, UUID);
      const again = await rejection(
        client.createTask(linearRequest({ even_number: 6 }), { idempotencyKey: key }),
        TaskerApiError,
      );
      assert.equal(again.status, 409);
      assert.equal(again.code, 'CONFLICT');
      assert.equal(again.attempts, 1);
    });

    it('answers health, liveness, readiness and detailed health', async () => {
      assert.equal((await client.health()).status, 'healthy');
      assert.equal((await client.live()).status, 'alive');
      const ready = await client.ready();
      assert.equal(ready.status, 'ready');
      assert.equal(ready.checks.web_database.status, 'healthy');
      const detailed = await client.detailedHealth();
      assert.equal(detailed.info.database_backend, backend);
    });

    it('turns a 404 into TaskerApiError NOT_FOUND with the request id, and a 400 into BAD_REQUEST', async () => {
      const missing = await rejection(client.getTask(randomUUID()), TaskerApiError);
      assert.equal(missing.status, 404);
      assert.equal(missing.code, 'NOT_FOUND');
      assert.equal(missing.message, 'Resource not found');
      assert.ok(missing.requestId !== null && missing.requestId.length > 0);
      assert.equal(missing.attempts, 1);

      const template = await rejection(client.getTemplate(LINEAR.namespace, 'nope', '9.9.9'), TaskerApiError);
      assert.equal(template.code, 'NOT_FOUND');

      const invalid = await rejection(client.getTask('not-a-uuid'), TaskerApiError);
      assert.equal(invalid.status, 400);
      assert.equal(invalid.code, 'INVALID_UUID');

      const bad = await rejection(client.listTasks({ per_page: 1000 }), TaskerApiError);
      assert.equal(bad.status, 400);
      assert.equal(bad.code, 'BAD_REQUEST');
      assert.match(bad.message, /per_page/);
    });
  });
}

// --- (b) scripted servers --------------------------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Script = (request: Seen, response: ServerResponse, n: number) => void;

/** A server that answers the n-th request (1-based) as the script says, and records every request. */
async function scripted(script: Script) {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = {
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(entry);
      script(entry, response, seen.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

const HEALTHY = { status: 'healthy', timestamp: '2026-01-01T00:00:00.000000Z' };
const UNAVAILABLE = { error: { code: 'SERVICE_UNAVAILABLE', message: 'Busy', retry_after_seconds: 1 } };

/** Drops the connection without an answer. */
function drop(response: ServerResponse) {
  response.socket?.destroy();
}

describe('TaskerClient retries, timeouts and errors (scripted server)', () => {
  const servers: { close(): Promise<void> }[] = [];
  const clients: TaskerClient[] = [];
  after(async () => {
    for (const server of servers) await server.close();
    for (const client of clients) await client.close();
  });

  async function setup(script: Script, options: Partial<TaskerClientOptions> = {}) {
    const server = await scripted(script);
    servers.push(server);
    const retries: RetryEvent[] = [];
    const client = new TaskerClient({
      baseUrl: server.url,
      retries: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 20 },
      onRetry: (event) => retries.push(event),
      ...options,
    });
    clients.push(client);
    return { client, seen: server.seen, retries };
  }

  it('retries a GET on 503, waiting what Retry-After says (capped at maxDelayMs)', async () => {
    const { client, seen, retries } = await setup((_request, response, n) => {
      if (n < 3) json(response, 503, UNAVAILABLE, { 'retry-after': '1' });
      else json(response, 200, HEALTHY);
    });
    assert.deepEqual(await client.health(), HEALTHY);
    assert.equal(seen.length, 3);
    assert.deepEqual(
      retries.map(({ attempt, delayMs, reason, method, path }) => ({
        attempt,
        delayMs,
        reason,
        method,
        path,
      })),
      [
        { attempt: 1, delayMs: 20, reason: 'status 503', method: 'GET', path: '/health' },
        { attempt: 2, delayMs: 20, reason: 'status 503', method: 'GET', path: '/health' },
      ],
    );
  });

  it('retries on 408, 429, 502 and 504 with jittered backoff, and gives up after maxAttempts', async () => {
    const statuses = [408, 429, 502, 504];
    const { client, seen, retries } = await setup(
      (_request, response, n) => {
        const status = statuses[n - 1];
        if (status === undefined) json(response, 200, HEALTHY);
        else json(response, status, { error: { code: `E${status}`, message: 'again' } });
      },
      { retries: { maxAttempts: 5, baseDelayMs: 2, maxDelayMs: 5 } },
    );
    assert.deepEqual(await client.health(), HEALTHY);
    assert.equal(seen.length, 5);
    assert.deepEqual(
      retries.map((event) => event.reason),
      ['status 408', 'status 429', 'status 502', 'status 504'],
    );
    // full jitter: each wait lies in [0, min(maxDelayMs, baseDelayMs * 2^(attempt-1))]
    for (const event of retries) {
      assert.ok(
        event.delayMs >= 0 && event.delayMs <= Math.min(5, 2 * 2 ** (event.attempt - 1)),
        `${event.delayMs}`,
      );
    }

    const busy = await setup((_request, response) => json(response, 503, UNAVAILABLE));
    const error = await rejection(busy.client.getTask(randomUUID()), TaskerApiError);
    assert.equal(error.status, 503);
    assert.equal(error.code, 'SERVICE_UNAVAILABLE');
    assert.equal(error.retryAfterSeconds, 1);
    assert.equal(error.attempts, 3);
    assert.equal(busy.seen.length, 3);
    // the envelope's retry_after_seconds counts when there is no header
    assert.deepEqual(
      busy.retries.map((event) => event.delayMs),
      [20, 20],
    );
  });

  it('retries a GET whose connection was dropped; gives up with TaskerNetworkError', async () => {
    const { client, seen, retries } = await setup((_request, response, n) => {
      if (n === 1) drop(response);
      else json(response, 200, []);
    });
    assert.deepEqual(await client.listSteps(randomUUID()), []);
    assert.equal(seen.length, 2);
    assert.deepEqual(
      retries.map((event) => event.reason),
      ['network error'],
    );

    const dead = await setup((_request, response) => drop(response));
    const error = await rejection(dead.client.listTemplates(), TaskerNetworkError);
    assert.equal(error.attempts, 3);
    assert.equal(dead.seen.length, 3);
    assert.ok(error.cause instanceof Error);
    assert.match(error.message, /^GET \/v1\/templates failed/);
  });

  it('never retries 400, 404, 409 or 500', async () => {
    for (const [status, code] of [
      [400, 'BAD_REQUEST'],
      [404, 'NOT_FOUND'],
      [409, 'CONFLICT'],
      [500, 'INTERNAL_ERROR'],
    ] as const) {
      const { client, seen, retries } = await setup((_request, response) =>
        json(
          response,
          status,
          { error: { code, message: `no (${status})` } },
          { 'x-request-id': `req-${status}` },
        ),
      );
      const error = await rejection(client.getStep(randomUUID(), randomUUID()), TaskerApiError);
      assert.equal(error.status, status);
      assert.equal(error.code, code);
      assert.equal(error.message, `no (${status})`);
      assert.equal(error.requestId, `req-${status}`);
      assert.equal(error.attempts, 1);
      assert.equal(seen.length, 1);
      assert.deepEqual(retries, []);
    }
  });

  it('does not retry createTask without an idempotency key (503 or dropped connection)', async () => {
    const busy = await setup((_request, response) =>
      json(response, 503, UNAVAILABLE, { 'retry-after': '1' }),
    );
    const error = await rejection(busy.client.createTask(linearRequest({ even_number: 2 })), TaskerApiError);
    assert.equal(error.status, 503);
    assert.equal(error.retryAfterSeconds, 1);
    assert.equal(busy.seen.length, 1);

    const dropped = await setup((_request, response) => drop(response));
    await rejection(dropped.client.createTask(linearRequest({ even_number: 2 })), TaskerNetworkError);
    assert.equal(dropped.seen.length, 1);
    assert.deepEqual(dropped.retries, []);
  });

  it('retries createTask with an idempotency key, sending the same body with idempotency_key', async () => {
    const created = { task_uuid: randomUUID() };
    const { client, seen, retries } = await setup((_request, response, n) => {
      if (n === 1) drop(response);
      else if (n === 2) json(response, 503, UNAVAILABLE, { 'retry-after': '0' });
      else json(response, 201, created, { location: `/v1/tasks/${created.task_uuid}` });
    });
    const request = linearRequest({ even_number: 2 });
    const response = await client.createTask(request, { idempotencyKey: 'order-42' });
    assert.deepEqual(response, created);
    assert.equal(seen.length, 3);
    assert.deepEqual(
      retries.map((event) => [event.reason, event.method, event.path]),
      [
        ['network error', 'POST', '/v1/tasks'],
        ['status 503', 'POST', '/v1/tasks'],
      ],
    );
    for (const entry of seen) {
      assert.equal(entry.method, 'POST');
      assert.equal(entry.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(entry.body), { ...request, idempotency_key: 'order-42' });
    }
    // a key inside the request counts too; two different keys are refused before sending
    await client.createTask({ ...request, idempotency_key: 'order-42' }, { idempotencyKey: 'order-42' });
    await assert.rejects(
      client.createTask({ ...request, idempotency_key: 'a' }, { idempotencyKey: 'b' }),
      TypeError,
    );
    await assert.rejects(client.createTask(request, { idempotencyKey: '' }), TypeError);
  });

  it('a conflict after a retried create says an earlier attempt may have succeeded', async () => {
    const { client } = await setup((_request, response, n) => {
      if (n === 1) drop(response);
      else json(response, 409, { error: { code: 'CONFLICT', message: 'Task already exists' } });
    });
    const error = await rejection(
      client.createTask(linearRequest({ even_number: 2 }), { idempotencyKey: 'k' }),
      TaskerApiError,
    );
    assert.equal(error.code, 'CONFLICT');
    assert.equal(error.attempts, 2);
    assert.match(error.message, /earlier attempt/);
  });

  it('honours the timeout: a server that never answers gives TaskerTimeoutError', async () => {
    const silent = await setup(() => undefined, { timeoutMs: 50, retries: { maxAttempts: 1 } });
    const error = await rejection(silent.client.health(), TaskerTimeoutError);
    assert.equal(error.timeoutMs, 50);
    assert.equal(error.attempts, 1);
    assert.equal(silent.seen.length, 1);

    // a timeout is retried like a network error on an idempotent call
    const retried = await setup(() => undefined, {
      timeoutMs: 30,
      retries: { maxAttempts: 2, baseDelayMs: 1 },
    });
    const twice = await rejection(retried.client.getTaskSummary(randomUUID()), TaskerTimeoutError);
    assert.equal(twice.attempts, 2);
    assert.equal(retried.seen.length, 2);
    assert.deepEqual(
      retried.retries.map((event) => event.reason),
      ['timeout'],
    );

    // the body is read under the same timeout: headers alone do not end the wait
    const stalled = await setup(
      (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.write('{"status":');
      },
      { timeoutMs: 50, retries: { maxAttempts: 1 } },
    );
    await rejection(stalled.client.health(), TaskerTimeoutError);
  });

  it('gives TaskerApiError with the status for non-JSON or malformed bodies', async () => {
    const html = await setup(
      (_request, response) => {
        response.writeHead(502, { 'content-type': 'text/html', 'x-request-id': 'proxy-1' });
        response.end('<html>Bad gateway</html>');
      },
      { retries: { maxAttempts: 1 } },
    );
    const gateway = await rejection(html.client.health(), TaskerApiError);
    assert.equal(gateway.status, 502);
    assert.equal(gateway.code, 'HTTP_502');
    assert.equal(gateway.message, 'HTTP 502 Bad Gateway');
    assert.equal(gateway.requestId, 'proxy-1');

    const malformed = await setup((_request, response) => {
      response.writeHead(422, { 'content-type': 'application/json' });
      response.end('{"error": {"code": 7');
    });
    const unprocessable = await rejection(malformed.client.health(), TaskerApiError);
    assert.equal(unprocessable.status, 422);
    assert.equal(unprocessable.code, 'HTTP_422');
    assert.equal(unprocessable.requestId, null);

    const wrongShape = await setup((_request, response) => json(response, 400, { error: 'text' }));
    assert.equal((await rejection(wrongShape.client.health(), TaskerApiError)).code, 'HTTP_400');

    const notJson = await setup((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok');
    });
    const invalid = await rejection(notJson.client.health(), TaskerApiError);
    assert.equal(invalid.status, 200);
    assert.equal(invalid.code, 'INVALID_RESPONSE');

    const wrongKind = await setup((_request, response) => json(response, 200, { steps: [] }));
    assert.equal(
      (await rejection(wrongKind.client.listSteps(randomUUID()), TaskerApiError)).code,
      'INVALID_RESPONSE',
    );

    const redirect = await setup((_request, response) => {
      response.writeHead(302, { location: 'http://example.com/' });
      response.end();
    });
    const moved = await rejection(redirect.client.health(), TaskerApiError);
    assert.equal(moved.status, 302);
    assert.equal(redirect.seen.length, 1);
  });

  it('answers ready() with the not-ready body on 503, without retrying', async () => {
    const notReady = {
      status: 'not_ready',
      timestamp: '2026-01-01T00:00:00.000000Z',
      checks: {
        web_database: { status: 'unhealthy', message: 'Database check failed', duration_ms: 1 },
        orchestration_system: { status: 'healthy', message: null, duration_ms: 0 },
      },
    };
    const { client, seen } = await setup((_request, response) => json(response, 503, notReady));
    assert.deepEqual(await client.ready(), notReady);
    assert.equal(seen.length, 1);

    const proxy = await setup((_request, response) => json(response, 503, UNAVAILABLE));
    assert.equal((await rejection(proxy.client.ready(), TaskerApiError)).code, 'SERVICE_UNAVAILABLE');
    assert.equal(proxy.seen.length, 1);
  });

  it('sends paths, queries and headers: auth, user agent, accept; keeps a base path', async () => {
    const server = await scripted((request, response) => {
      if (request.url.includes('/v1/tasks')) json(response, 200, { tasks: [], pagination: {} });
      else json(response, 200, { templates: [] });
    });
    servers.push(server);
    const bearer = new TaskerClient({ baseUrl: `${server.url}/tasker`, auth: { bearerToken: 'tok-1' } });
    clients.push(bearer);
    await bearer.listTasks({
      page: 2,
      per_page: 5,
      status: 'complete',
      source_system: 'a b',
      namespace: undefined,
    });
    const [listing] = server.seen;
    assert.equal(listing?.url, '/tasker/v1/tasks?page=2&per_page=5&status=complete&source_system=a+b');
    assert.equal(listing?.headers.authorization, 'Bearer tok-1');
    assert.equal(listing?.headers.accept, 'application/json');
    assert.equal(listing?.headers['user-agent'], 'tasker-client-ts/0.1.0');

    const keyed = new TaskerClient({
      baseUrl: `${server.url}/`,
      auth: { apiKey: 'k-1', header: 'X-Tasker-Key' },
      userAgent: 'my-app/2',
    });
    clients.push(keyed);
    await keyed.getTemplate('ns_1', 'a/b', '1.0.0');
    const template = server.seen[1];
    assert.equal(template?.url, '/v1/templates/ns_1/a%2Fb/1.0.0');
    assert.equal(template?.headers['x-tasker-key'], 'k-1');
    assert.equal(template?.headers.authorization, undefined);
    assert.equal(template?.headers['user-agent'], 'my-app/2');

    const plain = new TaskerClient({ baseUrl: server.url, auth: { apiKey: 'k-2' } });
    clients.push(plain);
    await plain.listTemplates('ns_1');
    assert.equal(server.seen[2]?.url, '/v1/templates?namespace=ns_1');
    assert.equal(server.seen[2]?.headers['x-api-key'], 'k-2');

    assert.throws(() => plain.getTask('..'), TypeError);
    assert.throws(() => plain.getStep(randomUUID(), ''), TypeError);
    assert.equal(server.seen.length, 3);
  });
});

describe('TaskerClient close and transport', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });

  it('close() ends the connections; a closed client refuses further calls', async () => {
    const server = await scripted((_request, response) => json(response, 200, HEALTHY));
    servers.push(server);
    const client = new TaskerClient({ baseUrl: server.url });
    assert.deepEqual(await client.health(), HEALTHY);
    await client.close();
    await client.close(); // again: nothing more to do
    for (const call of [client.health(), client.watchTask(randomUUID()).next()]) {
      const error = await rejection(call, TaskerClientError);
      assert.equal(error.name, 'TaskerClientError');
      assert.match(error.message, /closed/);
    }
    assert.equal(server.seen.length, 1);

    // `await using` closes it too
    {
      await using scoped = new TaskerClient({ baseUrl: server.url });
      await scoped.live();
    }
    assert.equal(server.seen.length, 2);
  });

  it('sends with an injected fetch, which then owns the connections', async () => {
    const server = await scripted((_request, response) => json(response, 200, HEALTHY));
    servers.push(server);
    const sent: string[] = [];
    const client = new TaskerClient({
      baseUrl: server.url,
      fetch: (input, init) => {
        sent.push(String(input));
        return fetch(input, init);
      },
    });
    assert.deepEqual(await client.health(), HEALTHY);
    assert.deepEqual(sent, [`${server.url}/health`]);
    assert.equal(server.seen.length, 1);
    await client.close(); // nothing of its own to close
  });
});

describe('TaskerClient connect timeout (a TCP server that never speaks TLS)', () => {
  it('gives TaskerTimeoutError CONNECT_TIMEOUT after connectTimeoutMs, well before timeoutMs', async () => {
    const peer = await silentTcp();
    const client = new TaskerClient({
      baseUrl: peer.url,
      connectTimeoutMs: 200,
      timeoutMs: 60_000,
      retries: { maxAttempts: 1 },
    });
    try {
      const accepted = once(peer.server, 'connection');
      const error = await rejection(client.health(), TaskerTimeoutError);
      assert.equal(error.code, 'CONNECT_TIMEOUT');
      assert.equal(error.timeoutMs, 200);
      assert.equal(error.attempts, 1);
      assert.equal(
        error.message,
        `GET /health: could not connect to ${new URL(peer.url).host} within connectTimeoutMs (200 ms)`,
      );
      // undici's own error stays reachable as the cause's cause
      const cause = error.cause as Error & { cause?: { code?: string } };
      assert.equal(cause.cause?.code, 'UND_ERR_CONNECT_TIMEOUT');
      // the TCP connection was made: it is the TLS handshake that never finished
      await accepted;
    } finally {
      await client.close();
      await peer.close();
    }
  });

  it('is retried on an idempotent call like any timeout, and not on a create without a key', async () => {
    const peer = await silentTcp();
    const retries: RetryEvent[] = [];
    const client = new TaskerClient({
      baseUrl: peer.url,
      connectTimeoutMs: 50,
      timeoutMs: 60_000,
      retries: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      onRetry: (event) => retries.push(event),
    });
    try {
      const twice = await rejection(client.getTask(randomUUID()), TaskerTimeoutError);
      assert.equal(twice.code, 'CONNECT_TIMEOUT');
      assert.equal(twice.attempts, 2);
      assert.match(twice.message, /within connectTimeoutMs \(50 ms\) \(2 attempts\)$/);
      assert.deepEqual(
        retries.map((event) => event.reason),
        ['connect timeout'],
      );

      const single = await rejection(
        client.createTask(linearRequest({ even_number: 2 })),
        TaskerTimeoutError,
      );
      assert.equal(single.code, 'CONNECT_TIMEOUT');
      assert.equal(single.attempts, 1);
      assert.equal(retries.length, 1);
    } finally {
      await client.close();
      await peer.close();
    }
  });

  it('a request timeout keeps its own code', async () => {
    const server = await scripted(() => undefined);
    const client = new TaskerClient({ baseUrl: server.url, timeoutMs: 50, retries: { maxAttempts: 1 } });
    try {
      const error = await rejection(client.health(), TaskerTimeoutError);
      assert.equal(error.code, 'TIMEOUT');
      assert.equal(error.timeoutMs, 50);
    } finally {
      await server.close();
      await client.close();
    }
  });
});

describe('TaskerClient configuration', () => {
  it('refuses invalid options with ClientConfigError listing every problem', () => {
    assert.throws(
      () =>
        new TaskerClient({
          baseUrl: 'ftp://example.com',
          timeoutMs: 0,
          connectTimeoutMs: 0,
          retries: { maxAttempts: 0, baseDelayMs: 100, maxDelayMs: 10 },
          auth: { bearerToken: 'a\r\nb' },
          userAgent: '',
          // @ts-expect-error: a misspelt option is reported, not ignored
          timeout: 5,
        }),
      (thrown: unknown) => {
        assert.ok(thrown instanceof ClientConfigError);
        assert.deepEqual(thrown.problems, [
          'timeout is not a known option',
          'baseUrl must use http: or https:, got ftp:',
          'timeoutMs must be an integer from 1 to 2147483647, got 0',
          'connectTimeoutMs must be an integer from 1 to 2147483647, got 0',
          'retries.maxAttempts must be an integer from 1 to 2147483647, got 0',
          'retries.maxDelayMs (10) must not be below retries.baseDelayMs (100)',
          'auth.bearerToken must be a non-empty string of printable characters',
          'userAgent must be a non-empty string of printable characters, got ""',
        ]);
        assert.match(thrown.message, /^Invalid Tasker client configuration: timeout is not a known option; /);
        return true;
      },
    );
  });

  it('checks the URL, auth and functions', () => {
    const problems = (options: unknown) => {
      try {
        new TaskerClient(options as TaskerClientOptions);
      } catch (error) {
        assert.ok(error instanceof ClientConfigError);
        return error.problems;
      }
      return [];
    };
    assert.deepEqual(problems(undefined), ['options must be an object']);
    assert.deepEqual(problems({}), ['baseUrl must be an http: or https: URL, got undefined']);
    assert.deepEqual(problems({ baseUrl: 'not a url' }), ['baseUrl is not a valid URL: "not a url"']);
    assert.deepEqual(problems({ baseUrl: 'https://u:p@example.com' }), [
      'baseUrl must not contain credentials; use the auth option',
    ]);
    assert.deepEqual(problems({ baseUrl: 'https://example.com/?a=1' }), [
      'baseUrl must not have a query or a fragment',
    ]);
    assert.deepEqual(problems({ baseUrl: 'https://example.com', auth: { bearerToken: 't', apiKey: 'k' } }), [
      'auth must have exactly one of bearerToken and apiKey',
    ]);
    assert.deepEqual(
      problems({ baseUrl: 'https://example.com', auth: { apiKey: 'k', header: 'Bad Header' } }),
      ['auth.header must be a header name such as X-API-Key, got "Bad Header"'],
    );
    assert.deepEqual(problems({ baseUrl: 'https://example.com', auth: { apiKey: '' } }), [
      'auth.apiKey must be a non-empty string of printable characters',
    ]);
    assert.deepEqual(problems({ baseUrl: 'https://example.com', fetch: 'no', retries: { tries: 2 } }), [
      'retries.tries is not a known option',
      'fetch must be a function, got "no"',
    ]);
    assert.deepEqual(problems({ baseUrl: 'https://example.com', retries: { maxAttempts: 1.5 } }), [
      'retries.maxAttempts must be an integer from 1 to 2147483647, got 1.5',
    ]);
    assert.deepEqual(problems({ baseUrl: 'https://example.com' }), []);
  });

  it('checks connectTimeoutMs: an integer of at least 1, and not with an injected fetch', () => {
    const problems = (connectTimeoutMs: unknown, extra: Record<string, unknown> = {}) => {
      try {
        new TaskerClient({
          baseUrl: 'https://example.com',
          connectTimeoutMs,
          ...extra,
        } as TaskerClientOptions);
      } catch (error) {
        assert.ok(error instanceof ClientConfigError);
        return error.problems;
      }
      return [];
    };
    for (const [value, shown] of [
      [0, '0'],
      [-5, '-5'],
      [1.5, '1.5'],
      ['200', '"200"'],
      [null, 'null'],
      [2 ** 31, '2147483648'],
    ] as const) {
      assert.deepEqual(problems(value), [
        `connectTimeoutMs must be an integer from 1 to 2147483647, got ${shown}`,
      ]);
    }
    assert.deepEqual(problems(1), []);
    assert.deepEqual(problems(undefined), []);
    assert.deepEqual(problems(500, { fetch }), [
      'connectTimeoutMs cannot be used with an injected fetch; set its connect timeout there',
    ]);
    assert.deepEqual(problems(undefined, { fetch }), []);
  });

  it('warns when credentials would go over plain HTTP to a host that is not loopback', () => {
    const warnings: string[] = [];
    const onWarning = (message: string) => warnings.push(message);
    const client = (baseUrl: string, auth?: TaskerClientOptions['auth']) =>
      new TaskerClient({ baseUrl, onWarning, ...(auth ? { auth } : {}) });

    client('http://tasker.example.com:8080', { bearerToken: 't' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /plain HTTP to tasker\.example\.com:8080/);
    client('http://10.0.0.5', { apiKey: 'k' });
    assert.equal(warnings.length, 2);

    client('https://tasker.example.com', { bearerToken: 't' });
    client('http://tasker.example.com');
    client('http://localhost:8080', { bearerToken: 't' });
    client('http://127.0.0.1:8080', { apiKey: 'k' });
    client('http://[::1]:8080', { apiKey: 'k' });
    client('http://api.localhost', { apiKey: 'k' });
    assert.equal(warnings.length, 2);
  });

  it('warns through process.emitWarning by default', async () => {
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    new TaskerClient({ baseUrl: 'http://tasker.example.com', auth: { apiKey: 'k' } });
    const warning = (await warned) as Error & { code?: string };
    assert.equal(warning.code, 'TASKER_INSECURE_CREDENTIALS');
    assert.match(warning.message, /plain HTTP/);
  });
});
