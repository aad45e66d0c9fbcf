/**
 * Property-based fuzzing (fast-check) of the REST API in-process (`inject`), on both backends:
 * random, near-valid and malformed task-creation requests and random query strings of
 * `GET /v1/tasks` get only 2xx or 4xx, every error as the JSON envelope, never a 5xx; afterwards
 * the database is consistent (every task has steps, a current transition per task and step that
 * matches its state, nothing orphaned, one task per 201).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplateFile, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiServer } from '../src/api/index.ts';

const TEMPLATES = new URL('../../../examples/templates/', import.meta.url);
const LINEAR = { namespace: 'linear_workflow_ts', name: 'mathematical_sequence_ts', version: '1.0.0' };
const DIAMOND = { namespace: 'diamond_workflow_ts', name: 'parallel_computation_ts', version: '1.0.0' };
const RUNS = 500;
// a fixed seed keeps CI deterministic; FUZZ_SEED=<n> explores other inputs (the seed is in the suite name)
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_126);

/** Asserts the answer is 2xx, or 4xx with exactly the envelope; returns the status. */
function checkAnswer(response: LightMyRequestResponse, what: string): number {
  const status = response.statusCode;
  const context = `${what} → ${status} ${response.body.slice(0, 300)}`;
  assert.ok(status >= 200 && status < 500, context);
  assert.ok(response.headers['x-request-id'], context);
  if (status >= 400) {
    assert.match(String(response.headers['content-type']), /^application\/json/, context);
    const body = JSON.parse(response.body) as { error?: { code?: unknown; message?: unknown } };
    assert.deepEqual(Object.keys(body), ['error'], context);
    assert.equal(typeof body.error?.code, 'string', context);
    assert.match(String(body.error?.code), /^[A-Z][A-Z_]*$/, context);
    assert.equal(typeof body.error?.message, 'string', context);
  }
  return status;
}

// --- generators --------------------------------------------------------------------------------------

const json = fc.jsonValue({ maxDepth: 3 });
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ minLength: 240, maxLength: 600 }),
  fc.constantFrom('', ' ', '\u0000', 'x'.repeat(256), 'x'.repeat(501), '../..', "'; DROP TABLE x; --"),
);
/** Mostly a plausible value, sometimes anything at all. */
function field<T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: json });
}
const template = fc.constantFrom(
  LINEAR,
  DIAMOND,
  { ...LINEAR, version: '9.9.9' },
  { ...DIAMOND, name: 'nope' },
);
const context = fc.oneof(
  fc.integer({ min: 1, max: 10_000 }).map((n) => ({ even_number: n * 2 })),
  fc.dictionary(fc.string({ maxLength: 10 }), json, { maxKeys: 5 }),
);
const nearValidBody = fc
  .tuple(
    template,
    fc.record(
      {
        context: field(context),
        initiator: field(text),
        source_system: field(text),
        reason: field(text),
        tags: field(fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 })),
        priority: field(fc.oneof(fc.integer({ min: -150, max: 150 }), fc.constant(null), fc.double())),
        correlation_id: field(fc.oneof(fc.uuid(), fc.constant(null), text)),
        parent_correlation_id: field(fc.oneof(fc.uuid(), fc.constant(null))),
        idempotency_key: field(fc.oneof(text, fc.constant(null))),
        requested_at: field(
          fc.oneof(
            fc
              .date({ noInvalidDate: true, min: new Date('1900-01-01'), max: new Date('2200-01-01') })
              .map((d) => d.toISOString()),
            text,
            fc.constant(null),
          ),
        ),
        options: field(fc.oneof(fc.constant(null), fc.dictionary(fc.string({ maxLength: 10 }), json))),
      },
      { requiredKeys: ['context', 'initiator', 'source_system', 'reason'] },
    ),
    fc.record(
      { name: field(text), namespace: field(text), version: field(text), extra: json },
      { requiredKeys: [] },
    ),
    fc.boolean(),
  )
  .map(([which, fields, overrides, override]) => ({ ...which, ...fields, ...(override ? overrides : {}) }));

/** Valid requests with random content: they create tasks (or meet the identity and idempotency rules). */
const shortText = fc
  .string({ minLength: 1, maxLength: 50 })
  .filter((value) => value.trim() !== '' && !value.includes('\u0000'));
const validBody = fc
  .tuple(
    fc.constantFrom(LINEAR, DIAMOND),
    fc.record(
      {
        context: fc.integer({ min: 1, max: 1_000_000 }).map((n) => ({ even_number: n * 2 })),
        initiator: shortText,
        source_system: shortText,
        reason: shortText,
        tags: fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
        priority: fc.oneof(fc.integer({ min: -100, max: 100 }), fc.constant(null)),
        correlation_id: fc.oneof(fc.uuid(), fc.constant(null)),
        idempotency_key: fc.oneof(shortText, fc.constant(null)),
      },
      { requiredKeys: ['context', 'initiator', 'source_system', 'reason'] },
    ),
  )
  .map(([which, fields]) => ({ ...which, ...fields }));

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  undefined,
);
/** Raw payloads: JSON of anything, truncated JSON, plain strings, deep nesting. */
const rawPayload = fc.oneof(
  json.map((value) => JSON.stringify(value) ?? 'null'),
  fc.tuple(nearValidBody, fc.nat()).map(([body, cut]) => {
    const encoded = JSON.stringify(body);
    return encoded.slice(0, cut % (encoded.length + 1));
  }),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1, max: 5000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
  fc
    .integer({ min: 1, max: 200 })
    .map((depth) => `{"context":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`),
  fc.constantFrom('', 'null', '{}', '[]', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}'),
);

const queryKey = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('page', 'per_page', 'namespace', 'status', 'initiator', 'source_system'),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
const queryValue = fc.oneof(
  fc.integer({ min: -5, max: 200_000 }).map(String),
  fc.constantFrom('', '0', '1', '25', '100', '101', '1e3', '0x10', '2.5', 'NaN', '-0', '9'.repeat(30)),
  fc.constantFrom('pending', 'complete', 'error', 'Complete', 'linear_workflow_ts', 'diamond_workflow_ts'),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const queryString = fc.oneof(
  fc
    .array(fc.tuple(queryKey, queryValue), { maxLength: 8 })
    .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
  // raw, unencoded text: broken escapes, separators, brackets
  fc.string({ maxLength: 100 }).map((raw) => raw.replace(/[#\s]/g, '')),
  fc.constantFrom('page=%', 'page=%zz', 'page[]=1', 'page=1&page=2', 'per_page[a]=1', '&&&', '=', '%00=1'),
);

for (const backend of BACKENDS) {
  describe(`REST API fuzzing (${backend}, seed ${SEED})`, () => {
    let t: TestDatabase;
    let engine: OrchestrationEngine;
    let app: FastifyInstance;
    let created = 0;

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      const registry = new TemplateRegistry(t.db);
      for (const { namespace, name } of [LINEAR, DIAMOND]) {
        await registry.register(
          await loadTemplateFile(fileURLToPath(new URL(`${namespace}/${name}.yaml`, TEMPLATES))),
        );
      }
      engine = new OrchestrationEngine({ db: t.db, registry, shutdownTimeoutMs: 2000 });
      await engine.start();
      // no worker: tasks pile up, so backpressure must not shed them during the run
      app = buildApiServer({
        db: t.db,
        engine,
        registry,
        config: {
          backpressure: {
            queueDepthWarning: 1_000_000,
            queueDepthCritical: 2_000_000,
            queueDepthOverflow: 3_000_000,
          },
        },
      });
      await app.ready();
    });
    after(async () => {
      await app?.close();
      await engine?.stop();
      await t?.dispose();
    });

    async function post(payload: string, type: string | undefined) {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/tasks',
        payload,
        headers: type === undefined ? {} : { 'content-type': type },
      });
      const status = checkAnswer(response, `POST ${type} ${payload.slice(0, 200)}`);
      if (status === 201) {
        created++;
        const body = JSON.parse(response.body) as { task_uuid: string };
        assert.equal(response.headers.location, `/v1/tasks/${body.task_uuid}`);
      }
      return status;
    }

    it('valid and near-valid task bodies: 201 or a 4xx envelope, never 5xx', async () => {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(fc.oneof(validBody, nearValidBody), async (body) => {
          const status = await post(JSON.stringify(body), 'application/json');
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }),
        { numRuns: RUNS, seed: SEED },
      );
      // the generator reaches both sides
      assert.ok((statuses.get(201) ?? 0) > 0, JSON.stringify([...statuses]));
      assert.ok((statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
    });

    it('malformed payloads and content types: only 2xx or 4xx envelopes', async () => {
      await fc.assert(
        fc.asyncProperty(rawPayload, contentType, async (payload, type) => {
          await post(payload, type);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it('random query strings of GET /v1/tasks: 200 with a page, or a 400 envelope', async () => {
      await fc.assert(
        fc.asyncProperty(queryString, async (query) => {
          const response = await app.inject({ method: 'GET', url: `/v1/tasks?${query}` });
          const status = checkAnswer(response, `GET /v1/tasks?${query}`);
          assert.ok(status === 200 || status === 400, `GET /v1/tasks?${query} → ${status}`);
          if (status === 200) {
            const body = JSON.parse(response.body) as { tasks: unknown[]; pagination: { per_page: number } };
            assert.ok(Array.isArray(body.tasks));
            assert.ok(body.tasks.length <= body.pagination.per_page);
          }
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it('leaves the database consistent', async () => {
      const count = async (sql: string) => {
        const { rows } = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`);
        return rows[0]?.n ?? -1;
      };
      assert.equal(await count('SELECT 1 FROM tasker.tasks'), created, 'one task per 201');
      assert.equal(
        await count(
          'SELECT 1 FROM tasker.tasks t WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws WHERE ws.task_uuid = t.task_uuid)',
        ),
        0,
        'every task has steps',
      );
      assert.equal(
        await count(
          `SELECT 1 FROM tasker.tasks t LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
           WHERE tt.to_state IS DISTINCT FROM t.current_state`,
        ),
        0,
        'every task has a current transition matching its state',
      );
      assert.equal(
        await count(
          `SELECT 1 FROM tasker.workflow_steps ws
           LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
           WHERE st.to_state IS DISTINCT FROM ws.current_state`,
        ),
        0,
        'every step has a current transition matching its state',
      );
      assert.equal(
        await count(
          `SELECT 1 FROM tasker.workflow_step_edges e
           JOIN tasker.workflow_steps a ON a.workflow_step_uuid = e.from_step_uuid
           JOIN tasker.workflow_steps b ON b.workflow_step_uuid = e.to_step_uuid
           WHERE a.task_uuid <> b.task_uuid`,
        ),
        0,
        'edges stay within a task',
      );
      assert.equal(
        await count(
          `SELECT 1 FROM tasker.tasks t JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
           WHERE (SELECT count(*) FROM tasker.workflow_steps ws WHERE ws.task_uuid = t.task_uuid)
              <> CASE nt.name WHEN '${LINEAR.name}' THEN 4 WHEN '${DIAMOND.name}' THEN 4 ELSE -1 END`,
        ),
        0,
        'every task has all its template steps',
      );
    });
  });
}
