/**
 * Contract tests of the REST API, in-process (`inject`, no ports), on both backends: every route's
 * success shape validated against the published OpenAPI document, pagination edges and filters,
 * 404s, every error class of the envelope (400, 404, 405, 408, 409, 413, 415, 500), request ids,
 * CORS and the request log.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Logger, loadTemplateFile, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import type { Database, Queryable, QueryResult, Row } from '@tasker/db';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance, InjectOptions } from 'fastify';
import {
  API_DEFAULTS,
  type ApiConfig,
  type ApiEngine,
  type ApiServerOptions,
  buildApiServer,
} from '../src/api/index.ts';

const TEMPLATES = new URL('../../../examples/templates/', import.meta.url);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LINEAR = { namespace: 'linear_workflow_ts', name: 'mathematical_sequence_ts', version: '1.0.0' };
const DIAMOND = { namespace: 'diamond_workflow_ts', name: 'parallel_computation_ts', version: '1.0.0' };

type Json = Record<string, unknown>;

function taskRequest(template: typeof LINEAR, context: Json, extra: Json = {}): Json {
  return {
    ...template,
    context,
    initiator: 'api-test',
    source_system: 'tests',
    reason: 'contract',
    ...extra,
  };
}

/** A database whose queries fail (or hang) when `when` says so; everything else passes through. */
function faultyDatabase(
  db: Database,
  when: (sql: string) => 'fail' | 'hang' | 'pass',
): Database & { hung: number } {
  const wrapped = {
    hung: 0,
    backend: db.backend,
    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const fault = when(sql);
      if (fault === 'fail') {
        const error = Object.assign(new Error('relation "x" does not exist: SELECT secret FROM x'), {
          code: '42P01',
        });
        return Promise.reject(error);
      }
      if (fault === 'hang') {
        wrapped.hung++;
        return new Promise<QueryResult<R>>(() => undefined);
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

/** A stand-in engine reporting a given state (readiness tests). */
function stubEngine(real: ApiEngine, status: 'healthy' | 'degraded' | 'stopped'): ApiEngine {
  return {
    createTask: (body) => real.createTask(body),
    health: () => ({ ...real.health(), status }),
  };
}

/** Response validators from the served OpenAPI document. */
class OpenApiContract {
  readonly #ajv: Ajv;
  readonly #cache = new Map<string, ValidateFunction>();
  readonly document: Json;

  constructor(document: Json) {
    this.document = document;
    this.#ajv = new Ajv({ strict: false, allErrors: true, allowUnionTypes: true });
    this.#ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
    this.#ajv.addSchema(document, 'openapi');
  }

  /** Asserts that `body` is what the document promises for path, method and status. */
  check(path: string, method: string, status: number, body: unknown): void {
    const key = `${path} ${method} ${status}`;
    let validate = this.#cache.get(key);
    if (validate === undefined) {
      const paths = this.document.paths as Record<string, Record<string, { responses: Json }>>;
      const responses = paths[path]?.[method]?.responses;
      assert.ok(responses, `the document has no ${method.toUpperCase()} ${path}`);
      const code = String(status) in responses ? String(status) : `${String(status)[0]}XX`;
      assert.ok(code in responses, `${method.toUpperCase()} ${path} documents no ${status} response`);
      const pointer = ['paths', path, method, 'responses', code, 'content', 'application/json', 'schema']
        .map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1'))
        .join('/');
      validate = this.#ajv.compile({ $ref: `openapi#/${pointer}` });
      this.#cache.set(key, validate);
    }
    assert.ok(validate(body), `${key}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(body)}`);
  }
}

function envelope(body: unknown): { code: string; message: string } {
  assert.ok(typeof body === 'object' && body !== null && 'error' in body, `not an envelope: ${body}`);
  const { error } = body as { error: { code: string; message: string } };
  assert.equal(typeof error.code, 'string');
  assert.equal(typeof error.message, 'string');
  assert.deepEqual(Object.keys(body), ['error']);
  return error;
}

for (const backend of BACKENDS) {
  describe(`REST API (${backend})`, () => {
    let t: TestDatabase;
    let registry: TemplateRegistry;
    let engine: OrchestrationEngine;
    let app: FastifyInstance;
    let contract: OpenApiContract;
    const logged: Json[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: (fields, message) => logged.push({ ...fields, message }),
      warn: () => undefined,
      error: (fields, message) => logged.push({ ...fields, message }),
    };
    const servers: FastifyInstance[] = [];

    function server(options: Partial<ApiServerOptions> = {}) {
      const built = buildApiServer({
        db: options.db ?? t.db,
        engine: options.engine ?? engine,
        registry: options.registry ?? registry,
        logger,
        ...(options.config ? { config: options.config } : {}),
      });
      servers.push(built);
      return built;
    }

    async function call(options: InjectOptions, on: FastifyInstance = app) {
      const response = await on.inject(options);
      const type = String(response.headers['content-type'] ?? '');
      const body: unknown = type.startsWith('application/json') ? response.json() : response.body;
      return { status: response.statusCode, headers: response.headers, body };
    }

    /** Calls and checks the body against the document (the path is the document's template). */
    async function checked(method: 'GET' | 'POST', url: string, path: string, payload?: Json) {
      const response = await call({ method, url, ...(payload ? { payload } : {}) });
      contract.check(path, method.toLowerCase(), response.status, response.body);
      return response;
    }

    async function create(template: typeof LINEAR, context: Json, extra: Json = {}) {
      const response = await checked('POST', '/v1/tasks', '/v1/tasks', taskRequest(template, context, extra));
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return response.body as Json & { task_uuid: string; steps: Json[] };
    }

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      registry = new TemplateRegistry(t.db);
      for (const ref of [
        'linear_workflow_ts/mathematical_sequence_ts',
        'diamond_workflow_ts/parallel_computation_ts',
      ]) {
        await registry.register(await loadTemplateFile(fileURLToPath(new URL(`${ref}.yaml`, TEMPLATES))));
      }
      engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 2000 });
      await engine.start();
      app = server();
      const doc = await app.inject({ method: 'GET', url: '/api-docs/openapi.json' });
      assert.equal(doc.statusCode, 200);
      contract = new OpenApiContract(doc.json());
    });
    after(async () => {
      for (const built of servers) await built.close();
      await engine.stop();
      await t.dispose();
    });

    describe('documents', () => {
      it('publishes OpenAPI 3.1 with every route and the error envelope', () => {
        const doc = contract.document;
        assert.equal(doc.openapi, '3.1.0');
        const paths = Object.keys(doc.paths as Json).sort();
        assert.deepEqual(paths, [
          '/health',
          '/health/detailed',
          '/health/live',
          '/health/ready',
          '/v1/tasks',
          '/v1/tasks/{uuid}',
          '/v1/tasks/{uuid}/events',
          '/v1/tasks/{uuid}/summary',
          '/v1/tasks/{uuid}/workflow_steps',
          '/v1/tasks/{uuid}/workflow_steps/{step_uuid}',
          '/v1/tasks/{uuid}/workflow_steps/{step_uuid}/audit',
          '/v1/templates',
          '/v1/templates/{namespace}/{name}/{version}',
        ]);
        const routes = doc.paths as Record<string, Record<string, { responses: Json; parameters?: Json[] }>>;
        const post = routes['/v1/tasks']?.post;
        assert.ok(post?.responses['201'] && post.responses['4XX'] && post.responses['5XX']);
        const query = routes['/v1/tasks']?.get?.parameters ?? [];
        assert.deepEqual(
          query.map((parameter) => [parameter.name, parameter.in, parameter.required ?? false]),
          [
            ['page', 'query', false],
            ['per_page', 'query', false],
            ['namespace', 'query', false],
            ['status', 'query', false],
            ['initiator', 'query', false],
            ['source_system', 'query', false],
          ],
        );
      });

      it('serves Swagger UI', async () => {
        const response = await app.inject({ method: 'GET', url: '/api-docs/ui/' });
        assert.equal(response.statusCode, 200);
        assert.match(String(response.headers['content-type']), /text\/html/);
      });
    });

    describe('tasks', () => {
      it('creates a task: 201, Location, the TaskResponse', async () => {
        const response = await checked(
          'POST',
          '/v1/tasks',
          '/v1/tasks',
          taskRequest(LINEAR, { even_number: 2 }),
        );
        assert.equal(response.status, 201);
        const body = response.body as Json & { task_uuid: string; steps: Json[] };
        assert.match(body.task_uuid, UUID);
        assert.equal(response.headers.location, `/v1/tasks/${body.task_uuid}`);
        assert.equal(body.name, LINEAR.name);
        assert.equal(body.namespace, LINEAR.namespace);
        assert.equal(body.version, LINEAR.version);
        assert.equal(body.status, 'steps_in_process');
        assert.deepEqual(body.context, { even_number: 2 });
        assert.equal(body.initiator, 'api-test');
        assert.equal(body.total_steps, 4);
        assert.equal(body.steps.length, 4);
        assert.deepEqual(
          body.steps.map((step) => step.name),
          ['linear_step_1', 'linear_step_2', 'linear_step_3', 'linear_step_4'],
        );
        assert.equal(body.steps[0]?.current_state, 'enqueued');
      });

      it('keeps the optional fields it is given', async () => {
        const correlation = randomUUID();
        const body = await create(
          LINEAR,
          { even_number: 4 },
          {
            tags: ['a', 'b'],
            priority: 7,
            correlation_id: correlation,
            requested_at: '2026-01-02T03:04:05Z',
          },
        );
        assert.deepEqual(body.tags, ['a', 'b']);
        assert.equal(body.priority, 7);
        assert.equal(body.correlation_id, correlation);
      });

      it('gets a task and its summary; unknown and malformed ids are 404 and 400', async () => {
        const created = await create(DIAMOND, { even_number: 6 });
        const uuid = created.task_uuid;
        const got = await checked('GET', `/v1/tasks/${uuid}`, '/v1/tasks/{uuid}');
        assert.equal(got.status, 200);
        assert.deepEqual({ ...(got.body as Json), updated_at: null }, { ...created, updated_at: null });

        const summary = await checked('GET', `/v1/tasks/${uuid}/summary`, '/v1/tasks/{uuid}/summary');
        assert.equal(summary.status, 200);
        const s = summary.body as {
          task: Json;
          template: { steps: Json[] };
          steps: Json[];
          dlq: Json;
          links: Json;
        };
        assert.equal(s.task.task_uuid, uuid);
        assert.equal(s.task.total_steps, 4);
        assert.equal(s.template.steps.length, 4);
        assert.deepEqual(s.template.steps.find((step) => step.name === 'diamond_end_ts')?.dependencies, [
          'diamond_branch_b_ts',
          'diamond_branch_c_ts',
        ]);
        assert.equal(s.steps.length, 4);
        assert.deepEqual(s.dlq, { in_dlq: false, dlq_reason: null, resolution_status: null });
        assert.deepEqual(s.links, {
          task: `/v1/tasks/${uuid}`,
          steps: `/v1/tasks/${uuid}/workflow_steps`,
          dlq: '/v1/dlq',
        });

        for (const url of [`/v1/tasks/${randomUUID()}`, `/v1/tasks/${randomUUID()}/summary`]) {
          const missing = await checked(
            'GET',
            url,
            url.endsWith('summary') ? '/v1/tasks/{uuid}/summary' : '/v1/tasks/{uuid}',
          );
          assert.equal(missing.status, 404);
          assert.deepEqual(envelope(missing.body), { code: 'NOT_FOUND', message: 'Resource not found' });
        }
        for (const bad of ['not-a-uuid', `urn:uuid:${randomUUID()}`, `{${randomUUID()}}`]) {
          const response = await checked('GET', `/v1/tasks/${encodeURIComponent(bad)}`, '/v1/tasks/{uuid}');
          assert.equal(response.status, 400);
          assert.equal(envelope(response.body).code, 'INVALID_UUID');
        }
      });
    });

    describe('task list', () => {
      const initiator = `lister-${randomUUID().slice(0, 8)}`;
      const made: string[] = [];
      before(async () => {
        for (const n of [10, 12, 14]) {
          made.push((await create(LINEAR, { even_number: n, list: initiator }, { initiator })).task_uuid);
        }
        made.push((await create(DIAMOND, { even_number: 8, list: initiator }, { initiator })).task_uuid);
      });

      const list = async (query: string) => {
        const response = await checked('GET', `/v1/tasks?${query}`, '/v1/tasks');
        return response as typeof response & {
          body: { tasks: (Json & { task_uuid: string; steps: unknown[] })[]; pagination: Json };
        };
      };

      it('pages newest first with the pagination block', async () => {
        const first = await list(`initiator=${initiator}&per_page=3`);
        assert.equal(first.status, 200);
        assert.deepEqual(first.body.pagination, {
          page: 1,
          per_page: 3,
          total_count: 4,
          total_pages: 2,
          has_next: true,
          has_previous: false,
        });
        assert.deepEqual(
          first.body.tasks.map((task) => task.task_uuid),
          [...made].reverse().slice(0, 3),
        );
        assert.ok(first.body.tasks.every((task) => task.steps.length === 0 && task.total_steps === 4));
        const second = await list(`initiator=${initiator}&per_page=3&page=2`);
        assert.deepEqual(
          second.body.tasks.map((task) => task.task_uuid),
          [made[0]],
        );
        assert.equal(second.body.pagination.has_next, false);
        assert.equal(second.body.pagination.has_previous, true);
      });

      it('defaults to page 1 of 25 and answers an empty page past the end', async () => {
        const defaults = await list(`initiator=${initiator}`);
        assert.equal(defaults.body.pagination.page, 1);
        assert.equal(defaults.body.pagination.per_page, 25);
        assert.equal(defaults.body.tasks.length, 4);
        const beyond = await list(`initiator=${initiator}&page=1000000&per_page=100`);
        assert.equal(beyond.status, 200);
        assert.deepEqual(beyond.body.tasks, []);
        assert.deepEqual(beyond.body.pagination, {
          page: 1000000,
          per_page: 100,
          total_count: 4,
          total_pages: 1,
          has_next: false,
          has_previous: true,
        });
        const none = await list('initiator=nobody-at-all');
        assert.deepEqual(none.body.pagination, {
          page: 1,
          per_page: 25,
          total_count: 0,
          total_pages: 0,
          has_next: false,
          has_previous: false,
        });
      });

      it('refuses out-of-range and mistyped paging with 400 naming the parameter', async () => {
        for (const [query, field] of [
          ['page=0', 'page'],
          ['page=-1', 'page'],
          ['page=1000001', 'page'],
          ['page=abc', 'page'],
          ['page=1.5', 'page'],
          ['per_page=0', 'per_page'],
          ['per_page=101', 'per_page'],
          ['status=bogus', 'status'],
          ['namespace=', 'namespace'],
        ] as const) {
          const response = await list(query);
          assert.equal(response.status, 400, query);
          const error = envelope(response.body);
          assert.equal(error.code, 'BAD_REQUEST');
          assert.match(error.message, new RegExp(`query\\.${field}`), query);
        }
      });

      it('filters by namespace, status, initiator and source system', async () => {
        const byNamespace = await list(`initiator=${initiator}&namespace=${DIAMOND.namespace}`);
        assert.deepEqual(
          byNamespace.body.tasks.map((task) => task.task_uuid),
          [made[3]],
        );
        const byStatus = await list(`initiator=${initiator}&status=steps_in_process`);
        assert.equal(byStatus.body.pagination.total_count, 4);
        const complete = await list(`initiator=${initiator}&status=complete`);
        assert.equal(complete.body.pagination.total_count, 0);
        const bySource = await list(`initiator=${initiator}&source_system=tests`);
        assert.equal(bySource.body.pagination.total_count, 4);
        const otherSource = await list(`initiator=${initiator}&source_system=elsewhere`);
        assert.equal(otherSource.body.pagination.total_count, 0);
      });
    });

    describe('steps', () => {
      /**
       * A stand-in worker: claims the step's queue message and completes it with `result`, applied
       * in the same transaction (so the task's state is decided when this returns).
       */
      async function runStep(stepUuid: string, result: Json): Promise<string> {
        const worker = randomUUID();
        const queue = `worker_${LINEAR.namespace}_queue`;
        const { rows: messages } = await t.db.query<{ msg_id: string }>(
          "SELECT msg_id::text FROM pgmq.messages WHERE queue_name = $1 AND message ->> 'step_uuid' = $2",
          [queue, stepUuid],
        );
        assert.equal(messages.length, 1, 'the step has one queue message');
        const { rows } = await t.db.query<{ msg_id: string; context: { attempt: number } | null }>(
          'SELECT msg_id::text, context FROM tasker.claim_step_messages($1, $2::bigint[], 1, 0, $3, 30, 5)',
          [queue, messages.map((message) => message.msg_id), worker],
        );
        const claimed = rows[0];
        assert.ok(claimed?.context, 'the step was claimed');
        await t.db.query(
          "SELECT tasker.complete_step_message($1, $2, $3, $4, $5, $6::jsonb, 'orchestration_step_results', true)",
          [queue, claimed.msg_id, stepUuid, worker, claimed.context.attempt, JSON.stringify(result)],
        );
        return worker;
      }

      it('summarizes a failed step with its error', async () => {
        const task = await create(LINEAR, { even_number: 24 });
        const first = task.steps[0] as Json & { workflow_step_uuid: string };
        await runStep(first.workflow_step_uuid, {
          success: false,
          status: 'error',
          result: {},
          error: { message: 'odd input', error_type: 'validation_error', retryable: false },
          metadata: { execution_time_ms: 1, retryable: false },
        });
        const summary = await checked(
          'GET',
          `/v1/tasks/${task.task_uuid}/summary`,
          '/v1/tasks/{uuid}/summary',
        );
        const body = summary.body as { task: Json; steps: Json[] };
        assert.equal(body.steps[0]?.name, 'linear_step_1');
        assert.deepEqual(body.steps[0]?.error, {
          error_type: 'validation_error',
          retryable: false,
          status_code: null,
        });
        assert.equal(body.steps[1]?.error, null);
        assert.equal(body.task.failed_steps, 1);
        assert.equal(body.task.execution_status, 'blocked_by_failures');
        const got = await checked('GET', `/v1/tasks/${task.task_uuid}`, '/v1/tasks/{uuid}');
        assert.equal((got.body as Json).status, 'error');
        const step = await checked(
          'GET',
          `/v1/tasks/${task.task_uuid}/workflow_steps/${first.workflow_step_uuid}`,
          '/v1/tasks/{uuid}/workflow_steps/{step_uuid}',
        );
        assert.equal((step.body as Json).current_state, 'error');
      });

      it('lists, gets and audits steps; a step of another task is 404', async () => {
        const task = await create(LINEAR, { even_number: 20 });
        const uuid = task.task_uuid;
        const steps = await checked(
          'GET',
          `/v1/tasks/${uuid}/workflow_steps`,
          '/v1/tasks/{uuid}/workflow_steps',
        );
        assert.equal(steps.status, 200);
        const list = steps.body as (Json & { step_uuid: string })[];
        assert.deepEqual(
          list.map((step) => step.name),
          ['linear_step_1', 'linear_step_2', 'linear_step_3', 'linear_step_4'],
        );
        const first = list[0];
        assert.ok(first);

        // a stand-in worker claims and completes the first step through the SQL hops
        const worker = await runStep(first.step_uuid, {
          success: true,
          status: 'completed',
          result: { value: 400 },
          metadata: { execution_time_ms: 3 },
        });

        const stepPath = '/v1/tasks/{uuid}/workflow_steps/{step_uuid}';
        const one = await checked('GET', `/v1/tasks/${uuid}/workflow_steps/${first.step_uuid}`, stepPath);
        assert.equal(one.status, 200);
        const step = one.body as Json;
        assert.equal(step.step_uuid, first.step_uuid);
        assert.equal(step.task_uuid, uuid);
        assert.equal(step.attempts, 1);
        assert.deepEqual((step.results as Json).result, { value: 400 });

        const auditPath = `${stepPath}/audit`;
        const audit = await checked(
          'GET',
          `/v1/tasks/${uuid}/workflow_steps/${first.step_uuid}/audit`,
          auditPath,
        );
        assert.equal(audit.status, 200);
        const entries = audit.body as Json[];
        assert.equal(entries.length, 1);
        assert.equal(entries[0]?.success, true);
        assert.equal(entries[0]?.worker_uuid, worker);
        assert.equal(entries[0]?.execution_time_ms, 3);
        assert.equal(entries[0]?.step_name, 'linear_step_1');
        assert.equal(entries[0]?.to_state, 'enqueued_for_orchestration');
        assert.equal(entries[0]?.task_uuid, uuid);

        const untouched = list[1];
        assert.ok(untouched);
        const empty = await checked(
          'GET',
          `/v1/tasks/${uuid}/workflow_steps/${untouched.step_uuid}/audit`,
          auditPath,
        );
        assert.deepEqual(empty.body, []);

        const other = await create(LINEAR, { even_number: 22 });
        for (const [url, path] of [
          [`/v1/tasks/${other.task_uuid}/workflow_steps/${first.step_uuid}`, stepPath],
          [`/v1/tasks/${other.task_uuid}/workflow_steps/${first.step_uuid}/audit`, auditPath],
          [`/v1/tasks/${uuid}/workflow_steps/${randomUUID()}`, stepPath],
          [`/v1/tasks/${randomUUID()}/workflow_steps`, '/v1/tasks/{uuid}/workflow_steps'],
        ] as const) {
          const response = await checked('GET', url, path);
          assert.equal(response.status, 404, url);
          assert.equal(envelope(response.body).code, 'NOT_FOUND');
        }
        const bad = await checked('GET', `/v1/tasks/${uuid}/workflow_steps/nope`, stepPath);
        assert.equal(bad.status, 400);
        assert.equal(envelope(bad.body).code, 'INVALID_UUID');
      });
    });

    describe('templates', () => {
      it('lists templates and namespaces, filtered by namespace', async () => {
        const all = await checked('GET', '/v1/templates', '/v1/templates');
        assert.equal(all.status, 200);
        const body = all.body as { namespaces: Json[]; templates: Json[]; total_count: number };
        assert.deepEqual(body.templates, [
          { ...DIAMOND, description: body.templates[0]?.description ?? null, step_count: 4 },
          { ...LINEAR, description: body.templates[1]?.description ?? null, step_count: 4 },
        ]);
        assert.equal(body.total_count, 2);
        assert.deepEqual(
          body.namespaces.map((ns) => [ns.name, ns.template_count]),
          [
            [DIAMOND.namespace, 1],
            [LINEAR.namespace, 1],
          ],
        );
        const one = await checked('GET', `/v1/templates?namespace=${LINEAR.namespace}`, '/v1/templates');
        const filtered = one.body as { namespaces: Json[]; templates: Json[]; total_count: number };
        assert.deepEqual(
          filtered.templates.map((tpl) => tpl.name),
          [LINEAR.name],
        );
        assert.equal(filtered.namespaces.length, 1);
        assert.equal(filtered.total_count, 1);
        const none = await checked('GET', '/v1/templates?namespace=nothing_here', '/v1/templates');
        assert.deepEqual(none.body, { namespaces: [], templates: [], total_count: 0 });
        const bad = await checked('GET', '/v1/templates?namespace=a-b', '/v1/templates');
        assert.equal(bad.status, 400);
        assert.match(envelope(bad.body).message, /query\.namespace/);
      });

      it('details one template; an unknown one is 404', async () => {
        const path = '/v1/templates/{namespace}/{name}/{version}';
        const detail = await checked(
          'GET',
          `/v1/templates/${LINEAR.namespace}/${LINEAR.name}/${LINEAR.version}`,
          path,
        );
        assert.equal(detail.status, 200);
        const body = detail.body as Json & { steps: Json[] };
        assert.equal(body.name, LINEAR.name);
        assert.equal(body.namespace, LINEAR.namespace);
        assert.equal(body.steps.length, 4);
        assert.deepEqual(
          { ...body.steps[0], description: null },
          {
            name: 'linear_step_1',
            description: null,
            default_retryable: true,
            default_max_attempts: 3,
            result_schema: body.steps[0]?.result_schema,
          },
        );
        assert.ok(!('configuration' in body));
        const missing = await checked('GET', `/v1/templates/${LINEAR.namespace}/${LINEAR.name}/9.9.9`, path);
        assert.equal(missing.status, 404);
        assert.deepEqual(envelope(missing.body), {
          code: 'NOT_FOUND',
          message: `Template not found: ${LINEAR.namespace}/${LINEAR.name}/9.9.9`,
        });
      });
    });

    describe('health', () => {
      it('answers health, liveness, readiness and details', async () => {
        const health = await checked('GET', '/health', '/health');
        assert.equal(health.status, 200);
        assert.equal((health.body as Json).status, 'healthy');
        const live = await checked('GET', '/health/live', '/health/live');
        assert.equal((live.body as Json).status, 'alive');
        const ready = await checked('GET', '/health/ready', '/health/ready');
        assert.equal(ready.status, 200, JSON.stringify(ready.body));
        assert.equal((ready.body as Json).status, 'ready');
        const detailed = await checked('GET', '/health/detailed', '/health/detailed');
        assert.equal(detailed.status, 200);
        const info = (detailed.body as { info: Json & { loops: Json[] } }).info;
        assert.equal(info.processor_uuid, engine.processorUuid);
        assert.equal(info.database_backend, backend);
        assert.ok(info.loops.length > 0);
      });

      it('is not ready (503 with the detailed body) when the engine is not healthy', async () => {
        for (const status of ['degraded', 'stopped'] as const) {
          const stubbed = server({ engine: stubEngine(engine, status) });
          const response = await call({ method: 'GET', url: '/health/ready' }, stubbed);
          assert.equal(response.status, 503);
          contract.check('/health/ready', 'get', 503, response.body);
          const body = response.body as { status: string; checks: Record<string, Json> };
          assert.equal(body.status, 'not_ready');
          assert.equal(body.checks.web_database?.status, 'healthy');
          assert.equal(
            body.checks.orchestration_system?.status,
            status === 'stopped' ? 'unhealthy' : 'degraded',
          );
          const detailed = await call({ method: 'GET', url: '/health/detailed' }, stubbed);
          assert.equal(detailed.status, 200);
          assert.equal((detailed.body as Json).status, 'degraded');
        }
      });

      it('is not ready when the database fails or does not answer in time, without its error text', async () => {
        const failing = server({ db: faultyDatabase(t.db, () => 'fail') });
        const failed = await call({ method: 'GET', url: '/health/ready' }, failing);
        assert.equal(failed.status, 503);
        contract.check('/health/ready', 'get', 503, failed.body);
        assert.doesNotMatch(JSON.stringify(failed.body), /secret|SELECT|relation/);
        const slow = faultyDatabase(t.db, () => 'hang');
        const hanging = server({ db: slow, config: { healthCheckTimeoutMs: 20 } });
        const timedOut = await call({ method: 'GET', url: '/health/ready' }, hanging);
        assert.equal(timedOut.status, 503);
        const checks = (timedOut.body as { checks: Record<string, Json> }).checks;
        assert.deepEqual(
          [checks.web_database?.status, checks.web_database?.message],
          ['unhealthy', 'Database check timed out'],
        );
      });
    });

    describe('errors', () => {
      const post = (payload: string | Json | Json[], headers: Record<string, string> = {}, on = app) =>
        call(
          {
            method: 'POST',
            url: '/v1/tasks',
            headers: { 'content-type': 'application/json', ...headers },
            payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
          },
          on,
        );
      const expectError = async (
        response: Awaited<ReturnType<typeof call>>,
        status: number,
        code: string,
        message?: RegExp,
      ) => {
        assert.equal(response.status, status, JSON.stringify(response.body));
        const error = envelope(response.body);
        assert.equal(error.code, code);
        if (message) assert.match(error.message, message);
        return error;
      };

      it('malformed JSON and an empty JSON body are 400 JSON_ERROR', async () => {
        await expectError(await post('{"name": '), 400, 'JSON_ERROR', /Invalid JSON/);
        await expectError(await post(''), 400, 'JSON_ERROR');
        await expectError(await post('{"__proto__": {"x": 1}}'), 400, 'JSON_ERROR');
      });

      it('a body that is not JSON is 415', async () => {
        await expectError(
          await post('name=x', { 'content-type': 'text/plain' }),
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        );
        await expectError(
          await post('name=x', { 'content-type': 'application/x-www-form-urlencoded' }),
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        );
      });

      it('schema violations are 400 naming the field', async () => {
        const valid = taskRequest(LINEAR, { even_number: 30 });
        const { name: _name, ...withoutName } = valid;
        await expectError(await post(withoutName), 400, 'BAD_REQUEST', /body\.name is required/);
        await expectError(await post({ ...valid, priority: '5' }), 400, 'BAD_REQUEST', /body\.priority/);
        await expectError(await post({ ...valid, priority: 101 }), 400, 'BAD_REQUEST', /body\.priority/);
        await expectError(await post({ ...valid, name: '' }), 400, 'BAD_REQUEST', /body\.name/);
        await expectError(await post({ ...valid, context: [1] }), 400, 'BAD_REQUEST', /body\.context/);
        await expectError(await post({ ...valid, tags: 'a' }), 400, 'BAD_REQUEST', /body\.tags/);
        await expectError(
          await post({ ...valid, correlation_id: 'x' }),
          400,
          'BAD_REQUEST',
          /body\.correlation_id/,
        );
        await expectError(
          await post({ ...valid, colour: 'red' }),
          400,
          'BAD_REQUEST',
          /body\.colour is not a known/,
        );
        await expectError(await post([valid]), 400, 'BAD_REQUEST', /body/);
      });

      it("the engine's validation is 400 too (namespace rule, JSON limits, timestamps)", async () => {
        const valid = taskRequest(LINEAR, { even_number: 32 });
        await expectError(await post({ ...valid, namespace: 'a-b' }), 400, 'BAD_REQUEST', /namespace/);
        let deep: Json = { leaf: 1 };
        for (let i = 0; i < 12; i++) deep = { deep };
        await expectError(await post({ ...valid, context: deep }), 400, 'BAD_REQUEST', /context/);
        await expectError(
          await post({ ...valid, requested_at: '2026-02-30T00:00:00Z' }),
          400,
          'BAD_REQUEST',
          /requested_at/,
        );
      });

      it('an unknown template is 404 and a duplicate identity 409', async () => {
        await expectError(
          await post(taskRequest({ ...LINEAR, version: '0.0.1' }, { even_number: 2 })),
          404,
          'NOT_FOUND',
          /Task template not found/,
        );
        const request = taskRequest(LINEAR, { even_number: 40, duplicate: true });
        assert.equal((await post(request)).status, 201);
        const conflict = await post(request);
        await expectError(conflict, 409, 'CONFLICT');
        contract.check('/v1/tasks', 'post', 409, conflict.body);
      });

      it('a body over the limit is 413', async () => {
        const small = server({ config: { bodyLimitBytes: 1024 } });
        const big = taskRequest(LINEAR, { even_number: 2, padding: 'x'.repeat(2048) });
        await expectError(await post(big, {}, small), 413, 'PAYLOAD_TOO_LARGE');
        assert.equal(API_DEFAULTS.bodyLimitBytes, 1_048_576);
        const huge = taskRequest(LINEAR, { even_number: 2, padding: 'x'.repeat(1_100_000) });
        await expectError(await post(huge), 413, 'PAYLOAD_TOO_LARGE');
      });

      it('an unknown route is 404 and a known path with another method 405 with Allow', async () => {
        for (const url of ['/nope', '/v1/task', '/v1/tasks/x/y/z/w/v']) {
          await expectError(await call({ method: 'GET', url }), 404, 'NOT_FOUND', /Route not found/);
        }
        const long = await call({ method: 'GET', url: `/v1/tasks/${'a'.repeat(200)}` });
        await expectError(long, 414, 'URI_TOO_LONG');
        assert.match(String(long.headers['x-request-id']), UUID);
        await expectError(
          await call({ method: 'GET', url: '/v1/tasks/%E0%A4%A' }),
          400,
          'BAD_REQUEST',
          /Invalid URL/,
        );
        const deleted = await call({ method: 'DELETE', url: `/v1/tasks/${randomUUID()}` });
        await expectError(deleted, 405, 'METHOD_NOT_ALLOWED');
        assert.match(String(deleted.headers.allow), /GET/);
        const put = await call({ method: 'PUT', url: '/v1/tasks' });
        await expectError(put, 405, 'METHOD_NOT_ALLOWED');
        assert.deepEqual(String(put.headers.allow).split(', ').sort(), ['GET', 'HEAD', 'POST']);
      });

      it('a request past its deadline is 408', async () => {
        const slow = faultyDatabase(t.db, (sql) => (sql.includes('tasker.tasks t') ? 'hang' : 'pass'));
        const config: ApiConfig = { requestTimeoutMs: 50 };
        const impatient = server({ db: slow, config });
        const response = await call({ method: 'GET', url: '/v1/tasks' }, impatient);
        await expectError(response, 408, 'TIMEOUT', /Request timeout/);
        assert.ok(slow.hung > 0);
      });

      it('a database failure is 500 with a fixed message and the request id, never SQL', async () => {
        const broken = faultyDatabase(t.db, () => 'fail');
        const brokenRegistry = new TemplateRegistry(broken);
        const brokenEngine = new OrchestrationEngine({ db: broken, registry: brokenRegistry });
        const failing = server({ db: broken, engine: brokenEngine, registry: brokenRegistry });
        const uuid = randomUUID();
        const requests: [InjectOptions, string, string][] = [
          [
            { method: 'POST', url: '/v1/tasks', payload: taskRequest(LINEAR, { even_number: 2 }) },
            '/v1/tasks',
            'post',
          ],
          [{ method: 'GET', url: '/v1/tasks' }, '/v1/tasks', 'get'],
          [{ method: 'GET', url: `/v1/tasks/${uuid}` }, '/v1/tasks/{uuid}', 'get'],
          [{ method: 'GET', url: `/v1/tasks/${uuid}/summary` }, '/v1/tasks/{uuid}/summary', 'get'],
          [
            { method: 'GET', url: `/v1/tasks/${uuid}/workflow_steps` },
            '/v1/tasks/{uuid}/workflow_steps',
            'get',
          ],
          [
            { method: 'GET', url: `/v1/tasks/${uuid}/workflow_steps/${uuid}/audit` },
            '/v1/tasks/{uuid}/workflow_steps/{step_uuid}/audit',
            'get',
          ],
          [{ method: 'GET', url: '/v1/templates' }, '/v1/templates', 'get'],
          [
            { method: 'GET', url: `/v1/templates/${LINEAR.namespace}/${LINEAR.name}/9.9.9` },
            '/v1/templates/{namespace}/{name}/{version}',
            'get',
          ],
        ];
        for (const [options, path, method] of requests) {
          const requestId = `failure-${method}-${randomUUID()}`;
          const response = await call({ ...options, headers: { 'x-request-id': requestId } }, failing);
          assert.equal(response.status, 500, `${method} ${options.url}`);
          contract.check(path, method, 500, response.body);
          const error = envelope(response.body);
          assert.equal(error.code, 'DATABASE_ERROR');
          assert.equal(error.message, `Database operation failed (request id ${requestId})`);
          assert.doesNotMatch(
            response.headers['content-type'] ? JSON.stringify(response.body) : '',
            /secret|SELECT|relation/,
          );
          assert.equal(response.headers['x-request-id'], requestId);
          const line = logged.find(
            (entry) => entry.request_id === requestId && entry.message === 'request failed',
          );
          assert.ok(line, 'the detail goes to the log');
          assert.match(String((line.error as Error).message), /SELECT secret/);
        }
      });
    });

    describe('request ids, CORS and the request log', () => {
      it('echoes a well-formed x-request-id and replaces anything else', async () => {
        const given = randomUUID();
        const echoed = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': given } });
        assert.equal(echoed.headers['x-request-id'], given);
        const token = 'trace.abc-123_X';
        const kept = await call({ method: 'GET', url: '/nope', headers: { 'x-request-id': token } });
        assert.equal(kept.headers['x-request-id'], token);
        for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', '']) {
          const replaced = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': bad } });
          assert.match(String(replaced.headers['x-request-id']), UUID, JSON.stringify(bad));
        }
        const generated = await call({ method: 'GET', url: '/health' });
        assert.match(String(generated.headers['x-request-id']), UUID);
        const failed = await call({
          method: 'POST',
          url: '/v1/tasks',
          payload: '{',
          headers: { 'content-type': 'application/json' },
        });
        assert.match(String(failed.headers['x-request-id']), UUID);
      });

      it('sends no CORS headers by default, and only to configured origins', async () => {
        const origin = 'https://app.example.com';
        const plain = await call({ method: 'GET', url: '/health', headers: { origin } });
        assert.equal(plain.headers['access-control-allow-origin'], undefined);
        const preflight = await call({
          method: 'OPTIONS',
          url: '/v1/tasks',
          headers: { origin, 'access-control-request-method': 'POST' },
        });
        assert.equal(preflight.headers['access-control-allow-origin'], undefined);

        const open = server({ config: { cors: { origins: [origin] } } });
        const allowed = await call({ method: 'GET', url: '/health', headers: { origin } }, open);
        assert.equal(allowed.headers['access-control-allow-origin'], origin);
        const other = await call(
          { method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } },
          open,
        );
        assert.equal(other.headers['access-control-allow-origin'], undefined);
        assert.throws(
          () => buildApiServer({ db: t.db, engine, registry, config: { cors: { origins: ['*'] } } }),
          /origins/,
        );
        assert.throws(
          () => buildApiServer({ db: t.db, engine, registry, config: { requestTimeoutMs: 0 } }),
          /positive/,
        );
      });

      it('logs one line per request with method, route, status and duration', async () => {
        const requestId = `log-${randomUUID()}`;
        await call({
          method: 'GET',
          url: `/v1/tasks/${randomUUID()}`,
          headers: { 'x-request-id': requestId },
        });
        const lines = logged.filter((entry) => entry.request_id === requestId);
        assert.equal(lines.length, 1);
        const [line] = lines;
        assert.equal(line?.message, 'request');
        assert.equal(line?.method, 'GET');
        assert.equal(line?.route, '/v1/tasks/:uuid');
        assert.equal(line?.status, 404);
        assert.equal(typeof line?.duration_ms, 'number');
      });
    });
  });
}
