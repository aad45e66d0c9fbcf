/**
 * Task initialization (reference A §3.1, §5.3; C §3.2): what `createTask` writes, the resolved
 * context, the identity strategies and idempotency keys, and template registration as another
 * process sees it. Every test runs on both backends, through validateTaskRequest → TemplateRegistry
 * → createTask.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Database } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { ConflictError, NotFoundError, ValidationError } from '../src/errors.ts';
import { type RegisteredTemplate, TemplateRegistry } from '../src/registry.ts';
import { parseTemplate } from '../src/template/load.ts';
import type { IdentityStrategy, JsonObject } from '../src/template/model.ts';
import { createCoreDatabase } from './db.ts';
import { type LifecycleTask, LifecycleTestManager } from './lifecycle.ts';
import { taskEdges } from './seed.ts';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

function identityTemplate(name: string, strategy: IdentityStrategy): string {
  return `
name: ${name}
namespace_name: lifecycle_identity
version: 1.0.0
description: identity strategy ${strategy}
identity_strategy: ${strategy}
default_context:
  region: eu
  tier: basic
  limits: {daily: 10}
steps:
  - name: identity_only_step
    handler: {callable: Lifecycle.StepHandlers.OnlyStep, initialization: {mode: ${strategy}}}
`;
}

/** Rejects with a ConflictError whose message names nothing internal (AUDIT S-2, D §4.1). */
async function rejectsAsSafeConflict(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConflictError, `expected ConflictError, got ${String(error)}`);
    assert.equal(error.code, 'CONFLICT');
    assert.match(error.message, /already exists/);
    assert.doesNotMatch(error.message, UUID, 'no uuid in the message');
    assert.doesNotMatch(error.message, /[0-9a-f]{16,}/i, 'no hash in the message');
    assert.doesNotMatch(
      error.message,
      /select|insert|constraint|duplicate key|23505|identity_hash|tasks_|tasker\.|sql/i,
      'no SQL in the message',
    );
    return true;
  });
}

for (const backend of BACKENDS) {
  describe(`task initialization (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;
    let manager: LifecycleTestManager;
    let diamond: RegisteredTemplate;
    let approval: RegisteredTemplate;
    let order: RegisteredTemplate;
    let strict: RegisteredTemplate;
    let unique: RegisteredTemplate;
    let callerProvided: RegisteredTemplate;

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
      manager = new LifecycleTestManager(db);
      diamond = await manager.registerExample('diamond_workflow_ts/parallel_computation_ts');
      approval = await manager.registerExample('conditional_approval_ts/approval_routing_ts');
      order = await manager.registerExample('rust_e2e_order_fulfillment/business_workflow');
      strict = await manager.registerYaml(identityTemplate('identity_strict', 'strict'));
      unique = await manager.registerYaml(identityTemplate('identity_always_unique', 'always_unique'));
      callerProvided = await manager.registerYaml(
        identityTemplate('identity_caller_provided', 'caller_provided'),
      );
    });

    after(async () => {
      await test?.dispose();
    });

    /** Creates a task with exactly this context (no `_test_run_id`). */
    function create(
      registered: RegisteredTemplate,
      context: JsonObject,
      request: Record<string, unknown> = {},
    ): Promise<LifecycleTask> {
      return manager.createTask(registered, context, { uniqueContext: false, request });
    }

    async function count(sql: string, params: readonly unknown[] = []): Promise<number> {
      const { rows } = await db.query<{ n: number }>(sql, params);
      return rows[0]?.n ?? -1;
    }

    type TaskRow = {
      named_task_uuid: string;
      current_state: string;
      complete: boolean;
      context: JsonObject;
      identity_hash: string;
      initiator: string;
      source_system: string;
      reason: string;
      tags: string[];
      priority: number;
      correlation_id: string;
      parent_correlation_id: string | null;
      requested_at: Date;
    };

    async function taskRow(taskUuid: string): Promise<TaskRow> {
      const { rows } = await db.query<TaskRow>(
        `SELECT named_task_uuid, current_state, complete, context, identity_hash, initiator, source_system, reason,
                tags, priority, correlation_id, parent_correlation_id, requested_at
         FROM tasker.tasks WHERE task_uuid = $1`,
        [taskUuid],
      );
      const [row] = rows;
      assert.ok(row, 'task row');
      return row;
    }

    describe('what createTask writes', () => {
      it('the task, its initial steps, their edges and the first transitions', async () => {
        const task = await create(diamond, { even_number: 6, case: 'writes' });
        assert.deepEqual(task.created.steps, [
          'diamond_start_ts',
          'diamond_branch_b_ts',
          'diamond_branch_c_ts',
          'diamond_end_ts',
        ]);
        assert.equal(task.created.namedTaskUuid, diamond.namedTaskUuid);

        const row = await taskRow(task.uuid);
        assert.equal(row.named_task_uuid, diamond.namedTaskUuid);
        assert.equal(row.current_state, 'pending');
        assert.equal(row.complete, false);
        assert.deepEqual(row.context, { even_number: 6, case: 'writes' });
        assert.ok(row.identity_hash.length > 0);
        assert.equal(row.initiator, 'integration-test');
        assert.equal(row.source_system, 'test');
        assert.equal(row.reason, 'Integration test execution');
        assert.deepEqual(row.tags, ['integration-test']);
        assert.equal(row.priority, 5);

        const steps = await db.query<{
          name: string;
          current_state: string;
          retryable: boolean;
          max_attempts: number;
          attempts: number;
          in_process: boolean;
          processed: boolean;
          inputs: JsonObject;
          results: unknown;
        }>(
          `SELECT ns.name, ws.current_state, ws.retryable, ws.max_attempts, ws.attempts, ws.in_process, ws.processed,
                  ws.inputs, ws.results
           FROM tasker.workflow_steps ws JOIN tasker.named_steps ns USING (named_step_uuid)
           WHERE ws.task_uuid = $1 ORDER BY ns.name`,
          [task.uuid],
        );
        assert.deepEqual(
          steps.rows.map((step) => [step.name, step.inputs]),
          [
            ['diamond_branch_b_ts', { operation: 'add', constant: 25 }],
            ['diamond_branch_c_ts', { operation: 'multiply', factor: 2 }],
            ['diamond_end_ts', { operation: 'average' }],
            ['diamond_start_ts', { operation: 'square' }],
          ],
        );
        for (const step of steps.rows) {
          assert.deepEqual(
            [
              step.current_state,
              step.retryable,
              step.max_attempts,
              step.attempts,
              step.in_process,
              step.processed,
            ],
            ['pending', true, 3, 0, false, false],
            step.name,
          );
          assert.equal(step.results, null);
        }

        const edges = await taskEdges(db, task.uuid);
        assert.deepEqual(
          edges.map((edge) => [edge.parent, edge.child, edge.name]),
          [
            ['diamond_branch_b_ts', 'diamond_end_ts', 'provides'],
            ['diamond_branch_c_ts', 'diamond_end_ts', 'provides'],
            ['diamond_start_ts', 'diamond_branch_b_ts', 'provides'],
            ['diamond_start_ts', 'diamond_branch_c_ts', 'provides'],
          ],
        );

        const taskTransitions = await db.query<{
          from_state: string | null;
          to_state: string;
          event: string;
          sort_key: number;
          most_recent: boolean;
        }>(
          'SELECT from_state, to_state, event, sort_key, most_recent FROM tasker.task_transitions WHERE task_uuid = $1',
          [task.uuid],
        );
        assert.deepEqual(
          taskTransitions.rows.map((t) => [t.from_state, t.to_state, t.event, t.sort_key, t.most_recent]),
          [[null, 'pending', 'initialize', 1, true]],
        );
        for (const name of task.stepNames()) {
          const transitions = await task.stepTransitions(name);
          assert.deepEqual(
            transitions.map((t) => [t.from_state, t.to_state, t.event, t.sort_key, t.most_recent]),
            [[null, 'pending', 'initialize', 1, true]],
            name,
          );
        }
      });

      it('only the initial step set of a decision template (2 steps, 1 edge)', async () => {
        const task = await create(approval, { amount: 500, requester: 'a', purpose: 'initial set' });
        assert.deepEqual(task.created.steps, ['validate_request_ts', 'routing_decision_ts']);
        assert.deepEqual(task.stepNames(), ['routing_decision_ts', 'validate_request_ts']);
        assert.equal(
          await count(
            `SELECT count(*)::int AS n FROM tasker.workflow_step_edges e
             JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid WHERE c.task_uuid = $1`,
            [task.uuid],
          ),
          1,
        );
      });

      it("copies each step's retry settings from the template", async () => {
        const task = await create(order, { customer: { id: 1 }, case: 'retry settings' });
        assert.equal((await task.stepRow('process_payment')).max_attempts, 2);
        assert.equal((await task.stepRow('ship_order')).max_attempts, 3);
      });

      it('stores the priority, tags, requested_at and correlation ids as given', async () => {
        const correlation = '0190A8B2-1234-7ABC-8DEF-0123456789AB';
        const parent = '0190a8b2-0000-7abc-8def-0123456789ab';
        const task = await create(
          diamond,
          { even_number: 8, case: 'priority' },
          {
            priority: 42,
            tags: ['a', 'b'],
            correlation_id: correlation,
            parent_correlation_id: parent,
            requested_at: '2025-01-02T03:04:05.000Z',
          },
        );
        const row = await taskRow(task.uuid);
        assert.equal(row.priority, 42);
        assert.deepEqual(row.tags, ['a', 'b']);
        assert.equal(row.correlation_id, correlation.toLowerCase());
        assert.equal(task.created.correlationId, correlation.toLowerCase());
        assert.equal(row.parent_correlation_id, parent);
        assert.equal(row.requested_at.toISOString(), '2025-01-02T03:04:05.000Z');

        const negative = await create(
          diamond,
          { even_number: 8, case: 'negative priority' },
          { priority: -7 },
        );
        assert.equal((await taskRow(negative.uuid)).priority, -7);
      });

      it('generates a correlation id when none is given', async () => {
        const first = await create(diamond, { even_number: 10, case: 'correlation 1' });
        const second = await create(diamond, { even_number: 10, case: 'correlation 2' });
        assert.match(first.created.correlationId, UUID);
        assert.notEqual(first.created.correlationId, second.created.correlationId);
        const row = await taskRow(first.uuid);
        assert.equal(row.correlation_id, first.created.correlationId);
        assert.equal(row.parent_correlation_id, null);
      });
    });

    describe('context', () => {
      it("merges the template's default_context under the request context (request wins)", async () => {
        const task = await create(strict, { tier: 'gold', order_id: 7 });
        assert.deepEqual((await taskRow(task.uuid)).context, {
          region: 'eu',
          tier: 'gold',
          limits: { daily: 10 },
          order_id: 7,
        });
      });

      it('stores the context exactly as given (no sanitizing of keys or values)', async () => {
        const context: JsonObject = {
          onboarding_id: 'ob-123',
          script: '<script>alert(1)</script>',
          eval: 'x',
          function: 'f',
          onclick: 'handler()',
          link: 'javascript:void(0)',
          page: 'data:text/html,<b>hi</b>',
          nested: { script: 1, on_hold: true, list: [3, 1, 2] },
          unicode: 'zażółć ✓',
          empty: {},
          nothing: null,
        };
        const task = await create(diamond, context);
        assert.deepEqual((await taskRow(task.uuid)).context, context);
      });

      it('refuses a NUL character in the context as a ValidationError naming the field', async () => {
        await assert.rejects(create(diamond, { outer: { note: 'a\u0000b' } }), (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.deepEqual(
            error.issues.map((issue) => issue.field),
            ['context.outer.note'],
          );
          return true;
        });
      });

      it('refuses JSON that PostgreSQL cannot store as a ValidationError, writing nothing', {}, async () => {
        const before = await count('SELECT count(*)::int AS n FROM tasker.tasks');
        const bad: [JsonObject, Record<string, unknown>][] = [
          [{ note: 'a\ud800b' }, {}],
          [{ nested: [{ s: 'x\udfffy' }] }, {}],
          [{ 'key\udc00': 1 }, {}],
          [{ case: 'surrogate tag' }, { tags: ['ok', 'bad\ud800'] }],
        ];
        for (const [context, request] of bad) {
          await assert.rejects(create(diamond, context, request), (error: unknown) => {
            assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
            return true;
          });
        }
        assert.equal(await count('SELECT count(*)::int AS n FROM tasker.tasks'), before);
      });
    });

    describe('identity strategies', () => {
      it('strict: a duplicate context is a conflict, whatever its key order', async () => {
        const first = await create(strict, { order: { id: 1, lines: [1, 2] }, customer: 'c-1' });
        await rejectsAsSafeConflict(create(strict, { customer: 'c-1', order: { lines: [1, 2], id: 1 } }));
        // arrays keep their order: a different array is a different context
        const reordered = await create(strict, { customer: 'c-1', order: { lines: [2, 1], id: 1 } });
        assert.notEqual(reordered.uuid, first.uuid);
      });

      it('strict: dedups on the resolved context (defaults included)', async () => {
        await create(strict, { customer: 'c-2' });
        await rejectsAsSafeConflict(create(strict, { customer: 'c-2', region: 'eu' }));
        const other = await create(strict, { customer: 'c-2', region: 'us' });
        assert.ok(other.uuid);
      });

      it('strict: different contexts are different tasks', async () => {
        const a = await create(strict, { customer: 'c-3' });
        const b = await create(strict, { customer: 'c-4' });
        assert.notEqual(a.uuid, b.uuid);
      });

      it('a conflict writes nothing', async () => {
        await create(strict, { customer: 'c-5' });
        const before = await count('SELECT count(*)::int AS n FROM tasker.tasks');
        const stepsBefore = await count('SELECT count(*)::int AS n FROM tasker.workflow_steps');
        await rejectsAsSafeConflict(create(strict, { customer: 'c-5' }));
        assert.equal(await count('SELECT count(*)::int AS n FROM tasker.tasks'), before);
        assert.equal(await count('SELECT count(*)::int AS n FROM tasker.workflow_steps'), stepsBefore);
      });

      it('always_unique: identical requests are never deduplicated', async () => {
        const a = await create(unique, { customer: 'same' });
        const b = await create(unique, { customer: 'same' });
        assert.notEqual(a.uuid, b.uuid);
      });

      it('caller_provided: without an idempotency key the request is invalid and nothing is written', async () => {
        const before = await count('SELECT count(*)::int AS n FROM tasker.tasks');
        await assert.rejects(create(callerProvided, { customer: 'c-6' }), (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.deepEqual(
            error.issues.map((issue) => issue.field),
            ['idempotency_key'],
          );
          return true;
        });
        assert.equal(await count('SELECT count(*)::int AS n FROM tasker.tasks'), before);
      });

      it('caller_provided: the key decides', async () => {
        const a = await create(callerProvided, { customer: 'c-7' }, { idempotency_key: 'order-7' });
        const b = await create(callerProvided, { customer: 'c-7' }, { idempotency_key: 'order-8' });
        assert.notEqual(a.uuid, b.uuid);
        await rejectsAsSafeConflict(
          create(callerProvided, { customer: 'c-other' }, { idempotency_key: 'order-7' }),
        );
      });

      it('an idempotency key overrides the strategy in any mode (same key, different contexts: conflict)', async () => {
        await create(strict, { customer: 'k-1' }, { idempotency_key: 'shared-key' });
        await rejectsAsSafeConflict(create(strict, { customer: 'k-2' }, { idempotency_key: 'shared-key' }));

        await create(unique, { customer: 'k-1' }, { idempotency_key: 'shared-key' });
        await rejectsAsSafeConflict(create(unique, { customer: 'k-1' }, { idempotency_key: 'shared-key' }));
        await rejectsAsSafeConflict(create(unique, { customer: 'k-3' }, { idempotency_key: 'shared-key' }));
      });

      it('an idempotency key is scoped to its template', async () => {
        const a = await create(strict, { customer: 'scope' }, { idempotency_key: 'scoped-key' });
        const b = await create(unique, { customer: 'scope' }, { idempotency_key: 'scoped-key' });
        assert.notEqual(a.uuid, b.uuid);
      });

      it('with a key, a strict duplicate context is not a conflict', async () => {
        const a = await create(strict, { customer: 'keyed' }, { idempotency_key: 'key-a' });
        const b = await create(strict, { customer: 'keyed' }, { idempotency_key: 'key-b' });
        assert.notEqual(a.uuid, b.uuid);
      });
    });

    describe('template registration', () => {
      it('is idempotent', async () => {
        const again = await manager.registry.register(diamond.template);
        assert.equal(again.namedTaskUuid, diamond.namedTaskUuid);
        const fresh = await new TemplateRegistry(db).register(diamond.template);
        assert.equal(fresh.namedTaskUuid, diamond.namedTaskUuid);
        assert.equal(
          await count(
            `SELECT count(*)::int AS n FROM tasker.named_tasks nt
             JOIN tasker.task_namespaces ns USING (task_namespace_uuid)
             WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3`,
            [diamond.template.namespace_name, diamond.template.name, diamond.template.version],
          ),
          1,
        );
        assert.equal(
          await count('SELECT count(*)::int AS n FROM tasker.task_namespaces WHERE name = $1', [
            diamond.template.namespace_name,
          ]),
          1,
        );
        assert.equal(
          await count('SELECT count(*)::int AS n FROM tasker.named_steps WHERE name = ANY ($1)', [
            diamond.template.steps.map((step) => step.name),
          ]),
          4,
        );
      });

      it('a registry in another process finds a template registered elsewhere, and creates its tasks', async () => {
        const text = identityTemplate('identity_elsewhere', 'strict');
        const registeredHere = await new TemplateRegistry(db).register(parseTemplate(text));
        const elsewhere = new TemplateRegistry(db);
        const found = await elsewhere.get('lifecycle_identity', 'identity_elsewhere', '1.0.0');
        assert.equal(found.namedTaskUuid, registeredHere.namedTaskUuid);
        assert.deepEqual(found.template, registeredHere.template);
        const task = await new LifecycleTestManager(db).createTask(found, { customer: 'elsewhere' });
        assert.deepEqual(task.stepNames(), ['identity_only_step']);
        assert.deepEqual((await task.stepRow('identity_only_step')).inputs, { mode: 'strict' });
      });

      it('re-registering a changed template updates what other registries see', async () => {
        const text = identityTemplate('identity_changing', 'strict');
        const first = await new TemplateRegistry(db).register(parseTemplate(text));
        const changed = parseTemplate(
          text.replace('description: identity strategy strict', 'description: changed'),
        );
        const second = await new TemplateRegistry(db).register(changed);
        assert.equal(second.namedTaskUuid, first.namedTaskUuid);
        const found = await new TemplateRegistry(db).get('lifecycle_identity', 'identity_changing', '1.0.0');
        assert.equal(found.template.description, 'changed');
      });

      it('an unknown template is a NotFoundError', async () => {
        const registry = new TemplateRegistry(db);
        for (const [namespace, name, version] of [
          ['no_such_namespace', 'nothing', '1.0.0'],
          ['diamond_workflow_ts', 'no_such_template', '1.0.0'],
          ['diamond_workflow_ts', 'parallel_computation_ts', '9.9.9'],
        ] as const) {
          await assert.rejects(registry.get(namespace, name, version), (error: unknown) => {
            assert.ok(error instanceof NotFoundError);
            assert.equal(error.code, 'NOT_FOUND');
            assert.match(error.message, /not found/);
            return true;
          });
        }
        await assert.rejects(
          manager.createTask({ ...diamond, template: { ...diamond.template, version: '2.0.0' } }, {}),
          NotFoundError,
        );
      });
    });
  });
}
