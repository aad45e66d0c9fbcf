/**
 * The creation answer (`POST /v1/tasks`) is built from what creation returned, without reading the
 * task back (api/created-task.ts). These tests hold it to the read: for every example template, the
 * 201 body equals `GET /v1/tasks/{uuid}` right after (no worker runs, so nothing moves in between),
 * on both backends; and a creation that takes the general path (more root steps than one batch) is
 * answered by the read itself.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTemplates, parseTemplate, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { OrchestrationEngine } from '@tasker/orchestration';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../src/api/index.ts';

const EXAMPLES = fileURLToPath(new URL('../../../examples/templates/', import.meta.url));

const WIDE = `
name: answer_wide
namespace_name: answer_tests
version: 1.0.0
steps:
  - {name: answer_a, handler: {callable: Answer.A}}
  - {name: answer_b, handler: {callable: Answer.B}}
  - {name: answer_c, handler: {callable: Answer.C}}
  - {name: answer_join, handler: {callable: Answer.Join}, dependencies: [answer_a, answer_b, answer_c]}
`;

type Json = Record<string, unknown>;

for (const backend of BACKENDS) {
  describe(`the creation answer (${backend})`, () => {
    let t: TestDatabase;
    let engine: OrchestrationEngine;
    let app: FastifyInstance;
    const templates: { namespace: string; name: string; version: string }[] = [];

    before(async () => {
      t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
      const registry = new TemplateRegistry(t.db);
      const loaded = await loadTemplates([EXAMPLES]);
      assert.deepEqual(loaded.errors, []);
      for (const { template } of [
        ...loaded.templates,
        { template: parseTemplate(WIDE, { source: 'test' }) },
      ]) {
        await registry.register(template);
        templates.push({
          namespace: template.namespace_name,
          name: template.name,
          version: template.version,
        });
      }
      // two steps per batch: the wide template's three roots take the general path
      engine = new OrchestrationEngine({ db: t.db, registry, stepEnqueueBatchSize: 2 });
      app = buildApiServer({ db: t.db, engine, registry });
    });

    after(async () => {
      await app.close();
      await t.dispose();
    });

    async function createAndRead(
      template: (typeof templates)[number],
    ): Promise<{ created: Json; read: Json }> {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/tasks',
        payload: {
          ...template,
          context: { run: randomUUID(), nested: { list: [1, 2.5, 'three'], flag: true } },
          initiator: 'answer-test',
          source_system: 'tests',
          reason: 'creation answer',
          tags: ['answer', 'test'],
          priority: -3,
          correlation_id: randomUUID(),
          parent_correlation_id: randomUUID(),
        },
      });
      assert.equal(response.statusCode, 201, response.body);
      const created = response.json() as Json;
      const read = await app.inject({ method: 'GET', url: `/v1/tasks/${String(created.task_uuid)}` });
      assert.equal(read.statusCode, 200, read.body);
      return { created, read: read.json() as Json };
    }

    it('equals the task read back, for every example template', async () => {
      assert.ok(templates.length >= 25);
      for (const template of templates) {
        const { created, read } = await createAndRead(template);
        assert.deepEqual(created, read, `${template.namespace}/${template.name}`);
      }
    });

    it('is the read itself on the general path, which enqueues one batch only', async () => {
      const wide = templates.find((template) => template.name === 'answer_wide');
      assert.ok(wide !== undefined);
      const { created, read } = await createAndRead(wide);
      assert.deepEqual(created, read);
      assert.equal((created.steps as Json[]).filter((step) => step.current_state === 'enqueued').length, 2);
      assert.equal(created.ready_steps, 1);
      assert.equal(created.execution_status, 'has_ready_steps');
    });
  });
}
