/**
 * Operations of the REST API, in-process (`inject`), on both backends: backpressure on task
 * creation (503 + Retry-After before any work, reads unaffected), the API database circuit breaker
 * (opens on availability failures, fails fast, closes after recovery), `/metrics` (content type,
 * route-pattern labels, no uuids), `/config` (off by default, redacted), the supervised health
 * evaluator, and the pino request log. The evaluator is driven through `evaluate()`, not its timer.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplateFile, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import type { Database, Queryable, QueryResult, Row } from '@tasker/db';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import { Pgmq } from '@tasker/pgmq';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { pino } from 'pino';
import {
  type ApiEngine,
  type ApiServerOptions,
  apiOperations,
  buildApiServer,
  CircuitBreaker,
  orderFields,
  pinoLogger,
  REDACTED,
  redactConfig,
} from '../src/api/index.ts';

const TEMPLATES = new URL('../../../examples/templates/', import.meta.url);
const LINEAR = { namespace: 'linear_workflow_ts', name: 'mathematical_sequence_ts', version: '1.0.0' };
const UUID_ANYWHERE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Json = Record<string, unknown>;

function taskRequest(extra: Json = {}): Json {
  return {
    ...LINEAR,
    context: { even_number: 2, nonce: randomUUID() },
    initiator: 'ops-test',
    source_system: 'tests',
    reason: 'operations',
    ...extra,
  };
}

/** A database whose queries fail with a connection error while `state.down` is set. */
function flakyDatabase(db: Database): Database & { down: boolean; calls: number } {
  const wrapped = {
    down: false,
    calls: 0,
    backend: db.backend,
    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      wrapped.calls++;
      if (wrapped.down) {
        // 08006 connection_failure: the database is unreachable
        return Promise.reject(Object.assign(new Error('connection to server lost'), { code: '08006' }));
      }
      return db.query<R>(sql, params);
    },
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => db.transaction(fn),
    openListenSession: db.openListenSession.bind(db),
    close: () => db.close(),
  };
  return wrapped;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function envelope(body: unknown): { code: string; message: string; retry_after_seconds?: number } {
  assert.ok(typeof body === 'object' && body !== null && 'error' in body, `not an envelope: ${body}`);
  return (body as { error: { code: string; message: string; retry_after_seconds?: number } }).error;
}

describe('circuit breaker (unit)', () => {
  it('opens after N consecutive failures, half-opens after the duration, closes after M successes', async () => {
    let now = 0;
    const transitions: string[] = [];
    const breaker = new CircuitBreaker({
      failureThreshold: 3,
      openDurationMs: 1000,
      successThreshold: 2,
      now: () => now,
      onStateChange: (from, to) => transitions.push(`${from}>${to}`),
    });
    const down = () => Promise.reject(Object.assign(new Error('down'), { code: '08001' }));
    const up = () => Promise.resolve('ok');
    for (let i = 0; i < 3; i++) await assert.rejects(breaker.execute(down), /down/);
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.stateValue, 2);
    let called = false;
    await assert.rejects(
      breaker.execute(async () => {
        called = true;
      }),
      { code: 'CIRCUIT_BREAKER_OPEN', statusCode: 503 },
    );
    assert.equal(called, false, 'an open breaker does not call');
    now = 1000;
    assert.equal(breaker.state, 'half_open');
    await assert.rejects(breaker.execute(down));
    assert.equal(breaker.state, 'open', 'a failed trial opens it again');
    now = 2000;
    await breaker.execute(up);
    assert.equal(breaker.state, 'half_open');
    await breaker.execute(up);
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(transitions, [
      'closed>open',
      'open>half_open',
      'half_open>open',
      'open>half_open',
      'half_open>closed',
    ]);
  });

  it('counts only availability failures; a statement error or a client error does not trip it', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1 });
    const sqlBug = Object.assign(new Error('relation "x" does not exist'), { code: '42P01' });
    for (let i = 0; i < 5; i++) await assert.rejects(breaker.execute(() => Promise.reject(sqlBug)));
    assert.equal(breaker.state, 'closed');
    await assert.rejects(breaker.execute(() => Promise.reject(new Error('socket hang up'))));
    assert.equal(breaker.state, 'open');
  });

  it('refuses invalid settings', () => {
    assert.throws(() => new CircuitBreaker({ failureThreshold: 0 }), /failureThreshold/);
    assert.throws(() => new CircuitBreaker({ openDurationMs: 1.5 }), /openDurationMs/);
  });
});

describe('redaction and log field order (unit)', () => {
  it('redacts secrets by key and passwords inside URLs', () => {
    const redacted = redactConfig({
      database: { url: 'postgresql://tasker:s3cret@db:5432/tasker?sslmode=require', pool: { max: 5 } },
      redis_url: 'redis://:hunter2@cache:6379/0?password=again',
      plain_url: 'http://example.com/x',
      auth: {
        jwt_private_key: '-----BEGIN PRIVATE KEY-----',
        api_keys: [{ key: 'k-123', permissions: ['*'] }],
        jwt_token_expiry_hours: 24,
        password: 'pw',
        client_secret: 'cs',
        enabled: true,
      },
    }) as Json;
    const text = JSON.stringify(redacted);
    for (const secret of ['s3cret', 'hunter2', 'again', 'BEGIN PRIVATE', 'k-123', '"pw"', '"cs"']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    assert.deepEqual(redacted.database, {
      url: `postgresql://tasker:${REDACTED}@db:5432/tasker?sslmode=require`,
      pool: { max: 5 },
    });
    assert.equal(redacted.plain_url, 'http://example.com/x');
    const auth = redacted.auth as Json;
    assert.equal(auth.jwt_token_expiry_hours, 24);
    assert.equal(auth.enabled, true);
    assert.equal(auth.api_keys, REDACTED);
  });

  it('orders log fields: correlation id, ids, operation and state, measurements, error, the rest', () => {
    const ordered = orderFields({
      note: 'x',
      error: new Error('e'),
      duration_ms: 3,
      status: 'complete',
      task_uuid: 't',
      correlation_id: 'c',
    });
    assert.deepEqual(Object.keys(ordered), [
      'correlation_id',
      'task_uuid',
      'status',
      'duration_ms',
      'error',
      'note',
    ]);
  });
});

for (const backend of BACKENDS) {
  describe(`REST API operations (${backend})`, () => {
    let t: TestDatabase;
    let registry: TemplateRegistry;
    let engine: OrchestrationEngine;
    let app: FastifyInstance;
    const servers: FastifyInstance[] = [];

    function server(options: Partial<ApiServerOptions> = {}) {
      const built = buildApiServer({ db: t.db, engine, registry, ...options });
      servers.push(built);
      return built;
    }

    async function call(options: InjectOptions, on: FastifyInstance = app) {
      const response = await on.inject(options);
      const type = String(response.headers['content-type'] ?? '');
      const body: unknown = type.startsWith('application/json') ? response.json() : response.body;
      return { status: response.statusCode, headers: response.headers, body };
    }

    const create = (on: FastifyInstance, extra: Json = {}) =>
      call({ method: 'POST', url: '/v1/tasks', payload: taskRequest(extra) }, on);

    async function countTasks(initiator: string): Promise<number> {
      const { rows } = await t.db.query<{ n: number }>(
        'SELECT count(*)::integer AS n FROM tasker.tasks WHERE initiator = $1',
        [initiator],
      );
      return rows[0]?.n ?? -1;
    }

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      registry = new TemplateRegistry(t.db);
      await registry.register(
        await loadTemplateFile(
          fileURLToPath(new URL('linear_workflow_ts/mathematical_sequence_ts.yaml', TEMPLATES)),
        ),
      );
      engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 2000 });
      await engine.start();
      app = server();
      await app.ready();
    });
    after(async () => {
      for (const built of servers) await built.close();
      await engine.stop();
      await t.dispose();
    });

    describe('backpressure', () => {
      it('with thresholds lowered, creation is 503 with Retry-After before any work; reads go on', async () => {
        const queue = `ops_bp_${randomUUID().slice(0, 8)}`;
        const pgmq = new Pgmq(t.db);
        await pgmq.createQueue(queue);
        for (let i = 0; i < 3; i++) await pgmq.send(queue, { i });
        const loaded = server({
          config: {
            backpressure: {
              queues: [queue],
              queueDepthWarning: 1,
              queueDepthCritical: 2,
              queueDepthOverflow: 4,
            },
          },
        });
        await loaded.ready();
        const { evaluator } = apiOperations(loaded);
        const decision = await evaluator.evaluate();
        assert.equal(decision.accept_tasks, false);
        assert.equal(decision.queue_depth_tier, 'critical');
        assert.deepEqual(
          decision.queues.map((q) => [q.queue, q.depth]),
          [[queue, 3]],
        );

        const initiator = `shed-${randomUUID().slice(0, 8)}`;
        const refused = await create(loaded, { initiator });
        assert.equal(refused.status, 503);
        assert.equal(refused.headers['retry-after'], '30');
        const error = envelope(refused.body);
        assert.equal(error.code, 'SERVICE_UNAVAILABLE');
        assert.equal(error.retry_after_seconds, 30);
        assert.match(error.message, new RegExp(`Queue '${queue}' at critical depth \\(3 messages\\)`));
        assert.equal(await countTasks(initiator), 0, 'no task was created');
        assert.ok(refused.headers['x-request-id']);

        // before the body is read: even a malformed body is refused with 503, not 400
        const unparsed = await call(
          { method: 'POST', url: '/v1/tasks', payload: '{', headers: { 'content-type': 'application/json' } },
          loaded,
        );
        assert.equal(unparsed.status, 503);

        // reads keep working
        const list = await call({ method: 'GET', url: '/v1/tasks' }, loaded);
        assert.equal(list.status, 200);
        const ready = await call({ method: 'GET', url: '/health/ready' }, loaded);
        assert.equal(ready.status, 200);
        const detailed = await call({ method: 'GET', url: '/health/detailed' }, loaded);
        const body = detailed.body as { checks: Record<string, Json>; info: { backpressure: Json } };
        assert.equal(body.checks.queue_depth?.status, 'unhealthy');
        assert.equal(body.info.backpressure.accept_tasks, false);

        // deeper: overflow, 60 s
        await pgmq.send(queue, { i: 4 });
        assert.equal((await evaluator.evaluate()).queue_depth_tier, 'overflow');
        const overflow = await create(loaded, { initiator });
        assert.equal(overflow.status, 503);
        assert.equal(overflow.headers['retry-after'], '60');
        assert.equal(envelope(overflow.body).retry_after_seconds, 60);

        const metrics = String((await call({ method: 'GET', url: '/metrics' }, loaded)).body);
        assert.match(
          metrics,
          /^tasker_api_requests_rejected_total\{endpoint="\/v1\/tasks",reason="backpressure"\} 3$/m,
        );
        assert.match(metrics, /^tasker_health_backpressure_active 1$/m);
        assert.match(metrics, new RegExp(`^tasker_queue_depth\\{queue="${queue}"\\} 4$`, 'm'));

        // drained: accepted again
        await pgmq.purgeQueue(queue);
        assert.equal((await evaluator.evaluate()).accept_tasks, true);
        const accepted = await create(loaded, { initiator });
        assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
        assert.equal(await countTasks(initiator), 1);
      });

      it('refuses creation with 503 and Retry-After when the intake queue is full, writing nothing', async () => {
        // creation statements wait at a gate: one creation is being written, one waits (capacity 1)
        let open: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => {
          open = resolve;
        });
        const gated: Database = {
          backend: t.db.backend,
          query: async <R extends Row = Row>(
            sql: string,
            params?: readonly unknown[],
          ): Promise<QueryResult<R>> => {
            if (sql.includes('create_and_start_task')) await gate;
            return t.db.query<R>(sql, params);
          },
          exec: (sql: string) => t.db.exec(sql),
          transaction: <T>(fn: (tx: Queryable) => Promise<T>) => t.db.transaction(fn),
          openListenSession: t.db.openListenSession.bind(t.db),
          close: () => Promise.resolve(),
        };
        const narrow = new OrchestrationEngine({
          db: gated,
          registry,
          createBatchesInFlight: 1,
          createQueueCapacity: 1,
        });
        const full = server({ engine: narrow });
        const initiator = `intake-${randomUUID().slice(0, 8)}`;
        const writing = create(full, { initiator, context: { even_number: 2 } });
        const waiting = create(full, { initiator, context: { even_number: 4 } });
        await until(() => narrow.metrics().createsWaiting === 1, 'a creation waiting');
        const refused = await create(full, { initiator, context: { even_number: 6 } });
        assert.equal(refused.status, 503);
        assert.equal(refused.headers['retry-after'], '5');
        const error = envelope(refused.body);
        assert.equal(error.code, 'SERVICE_UNAVAILABLE');
        assert.equal(error.retry_after_seconds, 5);
        assert.match(error.message, /task intake queue is full/);
        open();
        assert.deepEqual([(await writing).status, (await waiting).status], [201, 201]);
        assert.equal(await countTasks(initiator), 2, 'the refused creation wrote nothing');
        // load, not an unavailable database: the breaker stays closed
        assert.equal(apiOperations(full).breaker.state, 'closed');
        const metrics = String((await call({ method: 'GET', url: '/metrics' }, full)).body);
        assert.match(
          metrics,
          /^tasker_api_requests_rejected_total\{endpoint="\/v1\/tasks",reason="intake_queue_full"\} 1$/m,
        );
      });

      it('accepts with the default thresholds', async () => {
        const decision = await apiOperations(app).evaluator.evaluate();
        assert.equal(decision.accept_tasks, true, JSON.stringify(decision));
        assert.equal(decision.database, 'healthy');
        assert.equal(decision.engine, 'healthy');
        assert.deepEqual(decision.queues.map((q) => q.queue).sort(), [
          'orchestration_step_results',
          'orchestration_task_requests',
        ]);
        assert.equal((await create(app)).status, 201);
      });

      it('refuses contradictory thresholds', () => {
        assert.throws(
          () => server({ config: { backpressure: { queueDepthWarning: 10, queueDepthCritical: 5 } } }),
          /queueDepthWarning <= queueDepthCritical/,
        );
      });
    });

    describe('circuit breaker', () => {
      it('opens after N database failures, fails fast with 503, and closes after recovery', async () => {
        const flaky = flakyDatabase(t.db);
        const guarded = server({
          db: flaky,
          config: { circuitBreaker: { failureThreshold: 3, openDurationMs: 1000, successThreshold: 2 } },
        });
        await guarded.ready();
        const { breaker, evaluator } = apiOperations(guarded);
        assert.equal(breaker.state, 'closed');

        flaky.down = true;
        for (let i = 0; i < 3; i++) {
          const failed = await call({ method: 'GET', url: '/v1/tasks' }, guarded);
          assert.equal(failed.status, 500);
          assert.equal(envelope(failed.body).code, 'DATABASE_ERROR');
        }
        assert.equal(breaker.state, 'open');

        // fast failure: the database is not called
        const calls = flaky.calls;
        const fast = await call({ method: 'GET', url: `/v1/tasks/${randomUUID()}` }, guarded);
        assert.equal(fast.status, 503);
        const error = envelope(fast.body);
        assert.equal(error.code, 'CIRCUIT_BREAKER_OPEN');
        assert.equal(typeof error.retry_after_seconds, 'number');
        assert.ok(fast.headers['retry-after']);
        assert.doesNotMatch(error.message, /connection|08006/);
        assert.equal(flaky.calls, calls);

        // creation is shed before any work, readiness reports it, metrics show it
        const shed = await create(guarded);
        assert.equal(shed.status, 503);
        assert.equal(envelope(shed.body).code, 'SERVICE_UNAVAILABLE');
        assert.match(envelope(shed.body).message, /Circuit breaker open/);
        assert.equal(shed.headers['retry-after'], '30');
        const ready = await call({ method: 'GET', url: '/health/ready' }, guarded);
        assert.equal(ready.status, 503);
        const checks = (ready.body as { checks: Record<string, Json> }).checks;
        assert.equal(checks.circuit_breaker?.status, 'degraded');
        const metrics = String((await call({ method: 'GET', url: '/metrics' }, guarded)).body);
        assert.match(metrics, /^tasker_api_circuit_breaker_state 2$/m);
        assert.match(
          metrics,
          /^tasker_api_requests_rejected_total\{endpoint="\/v1\/tasks",reason="circuit_breaker_open"\} 1$/m,
        );
        const skipped = await evaluator.evaluate();
        assert.equal(skipped.database, 'skipped');
        assert.equal(skipped.accept_tasks, false);

        // recovery: after the open duration the evaluator's checks are the trial calls
        flaky.down = false;
        await new Promise((resolve) => setTimeout(resolve, 1050));
        assert.equal(breaker.state, 'half_open');
        const recovered = await evaluator.evaluate();
        assert.equal(breaker.state, 'closed');
        assert.equal(recovered.accept_tasks, true);
        assert.equal((await call({ method: 'GET', url: '/v1/tasks' }, guarded)).status, 200);
        assert.equal((await create(guarded)).status, 201);
        assert.equal((await call({ method: 'GET', url: '/health/ready' }, guarded)).status, 200);
      });

      it('a failed trial call opens it again', async () => {
        const flaky = flakyDatabase(t.db);
        const guarded = server({
          db: flaky,
          config: { circuitBreaker: { failureThreshold: 1, openDurationMs: 50, successThreshold: 1 } },
        });
        await guarded.ready();
        const { breaker } = apiOperations(guarded);
        flaky.down = true;
        assert.equal((await call({ method: 'GET', url: '/v1/templates' }, guarded)).status, 500);
        assert.equal(breaker.state, 'open');
        await new Promise((resolve) => setTimeout(resolve, 60));
        assert.equal((await call({ method: 'GET', url: '/v1/templates' }, guarded)).status, 500);
        assert.equal(breaker.state, 'open');
      });
    });

    describe('metrics', () => {
      it('serves Prometheus text with route patterns, never raw URLs or uuids', async () => {
        const missing = randomUUID();
        assert.equal((await call({ method: 'GET', url: `/v1/tasks/${missing}` })).status, 404);
        assert.equal((await call({ method: 'GET', url: `/nope/${missing}` })).status, 404);
        const created = await create(app, { correlation_id: randomUUID() });
        assert.equal(created.status, 201);
        const response = await call({ method: 'GET', url: '/metrics' });
        assert.equal(response.status, 200);
        assert.equal(response.headers['content-type'], PROMETHEUS_TYPE);
        const text = String(response.body);
        assert.match(
          text,
          /^tasker_api_requests_total\{method="GET",route="\/v1\/tasks\/:uuid",status="404"\} \d+$/m,
        );
        assert.match(
          text,
          /^tasker_api_requests_total\{method="POST",route="\/v1\/tasks",status="201"\} \d+$/m,
        );
        assert.match(text, /^tasker_api_requests_total\{method="GET",route="unmatched",status="404"\} \d+$/m);
        assert.match(
          text,
          /^tasker_api_request_duration_milliseconds_bucket\{le="\+Inf",method="POST",route="\/v1\/tasks",status="201"\} \d+$/m,
        );
        assert.match(text, /^tasker_tasks_requests_total\{outcome="created"\} [1-9]\d*$/m);
        assert.match(text, /^tasker_steps_results_processed_total\{outcome="applied"\} \d+$/m);
        assert.match(text, /^tasker_retry_timers_pending \d+$/m);
        assert.match(text, /^tasker_channel_saturation\{channel="retry_timers"\} [\d.e-]+$/m);
        assert.match(text, /^tasker_channel_saturation\{channel="task_intake"\} 0$/m);
        assert.match(text, /^tasker_queue_depth\{queue="orchestration_step_results"\} \d+$/m);
        assert.match(text, /^tasker_api_circuit_breaker_state 0$/m);
        assert.match(text, /^tasker_health_backpressure_active 0$/m);
        assert.match(text, /^tasker_orchestration_running 1$/m);
        for (const line of text.split('\n')) {
          if (line.startsWith('#')) continue;
          const labels = line.match(/\{(.*)\}/)?.[1] ?? '';
          assert.doesNotMatch(labels, UUID_ANYWHERE, line);
          assert.doesNotMatch(labels, /correlation_id|task_uuid|request_id/, line);
        }
      });

      it('/metrics and /config are not in the OpenAPI document', async () => {
        const doc = (await call({ method: 'GET', url: '/api-docs/openapi.json' })).body as { paths: Json };
        assert.ok(!('/metrics' in doc.paths) && !('/config' in doc.paths));
      });
    });

    describe('config endpoint', () => {
      it('is 404 by default', async () => {
        const response = await call({ method: 'GET', url: '/config' });
        assert.equal(response.status, 404);
        assert.equal(envelope(response.body).code, 'NOT_FOUND');
      });

      it('shows the effective configuration with secrets redacted when enabled', async () => {
        const open = server({
          config: { configEndpoint: true, circuitBreaker: { failureThreshold: 7 } },
          effectiveConfig: {
            database: { url: 'postgresql://tasker:s3cret@db:5432/tasker' },
            web: { auth: { api_key: 'top-secret-key', jwt_token_expiry_hours: 24 } },
          },
        });
        const response = await call({ method: 'GET', url: '/config' }, open);
        assert.equal(response.status, 200);
        const body = response.body as {
          api: Json & { circuitBreaker: Json };
          engine: Json;
          process: { database: Json; web: { auth: Json } };
        };
        assert.equal(body.api.circuitBreaker.failureThreshold, 7);
        assert.equal(body.api.configEndpoint, true);
        assert.deepEqual(body.engine.queues, engine.settings.queues);
        assert.equal(body.process.database.url, `postgresql://tasker:${REDACTED}@db:5432/tasker`);
        assert.equal(body.process.web.auth.api_key, REDACTED);
        assert.equal(body.process.web.auth.jwt_token_expiry_hours, 24);
        assert.doesNotMatch(JSON.stringify(body), /s3cret|top-secret/);
      });
    });

    describe('health evaluator', () => {
      it('runs supervised: a crashing evaluation is restarted and shows in health', async () => {
        let broken = false;
        const flaky: ApiEngine = {
          createTask: (body) => engine.createTask(body),
          health: () => {
            if (broken) throw new Error('engine health exploded');
            return engine.health();
          },
        };
        const supervised = server({ engine: flaky, config: { backpressure: { evaluationIntervalMs: 10 } } });
        await supervised.ready();
        const { evaluator } = apiOperations(supervised);
        broken = true;
        await assert.rejects(evaluator.evaluate(), /exploded/);
        await until(() => (evaluator.loops()[0]?.restarts ?? 0) >= 1, 'a restart of the evaluator loop');
        broken = false;
        const before = evaluator.stats.evaluations;
        await until(() => evaluator.stats.evaluations > before + 1, 'evaluations after the restart');
        const [loop] = evaluator.loops();
        assert.equal(loop?.name, 'health-evaluator');
        assert.equal(loop?.running, true);
        const detailed = await call({ method: 'GET', url: '/health/detailed' }, supervised);
        const loops = (detailed.body as { info: { loops: Json[] } }).info.loops;
        const shown = loops.find((entry) => entry.name === 'health-evaluator');
        assert.ok(shown && (shown.restarts as number) >= 1 && shown.running === true);
        const metrics = String((await call({ method: 'GET', url: '/metrics' }, supervised)).body);
        assert.match(metrics, /^tasker_loop_restarts_total\{loop="health-evaluator"\} [1-9]\d*$/m);
        assert.match(metrics, /^tasker_health_evaluations_total\{outcome="error"\} [1-9]\d*$/m);
      });

      it('stops its loop when the server closes', async () => {
        const closing = buildApiServer({ db: t.db, engine, registry });
        await closing.ready();
        const { evaluator } = apiOperations(closing);
        assert.equal(evaluator.loops()[0]?.running, true);
        await closing.close();
        assert.equal(evaluator.loops()[0]?.running, false);
      });
    });

    describe('request log (pino)', () => {
      it('writes one JSON line per request with duration, fields in DESIGN §7 order', async () => {
        const lines: string[] = [];
        const logged = server({ logger: pinoLogger('info', { write: (line: string) => lines.push(line) }) });
        await logged.ready();
        lines.length = 0;
        const requestId = `pino-${randomUUID()}`;
        await call({ method: 'GET', url: '/v1/templates', headers: { 'x-request-id': requestId } }, logged);
        const entries = lines
          .map((line) => JSON.parse(line) as Json)
          .filter((e) => e.request_id === requestId);
        assert.equal(entries.length, 1);
        const [entry] = entries;
        assert.deepEqual(Object.keys(entry ?? {}), [
          'level',
          'time',
          'request_id',
          'method',
          'route',
          'status',
          'duration_ms',
          'msg',
        ]);
        assert.equal(entry?.level, 'info');
        assert.equal(entry?.route, '/v1/templates');
        assert.equal(entry?.status, 200);
        assert.equal(typeof entry?.duration_ms, 'number');
        assert.equal(entry?.msg, 'request');
      });

      it('takes a pino instance as its logger', async () => {
        const lines: string[] = [];
        const instance = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
        const logged = server({ logger: instance });
        const requestId = `raw-pino-${randomUUID()}`;
        await call({ method: 'GET', url: '/health', headers: { 'x-request-id': requestId } }, logged);
        const entry = lines.map((line) => JSON.parse(line) as Json).find((e) => e.request_id === requestId);
        assert.equal(entry?.msg, 'request');
        assert.equal(entry?.route, '/health');
        assert.equal(typeof entry?.duration_ms, 'number');
      });
    });
  });
}
