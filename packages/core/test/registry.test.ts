import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseTemplate, TemplateRegistry, TemplateValidationError } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';

const yaml = (description: string) => `
name: registry_probe
namespace_name: registry_tests
version: 1.0.0
description: ${description}
steps:
  - name: only_step
    handler: { callable: Probe.Only }
`;

for (const backend of BACKENDS) {
  describe(`template registry (${backend})`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createCoreDatabase(backend);
    });
    after(() => t.dispose());

    it('sees a template re-registered by another process once its cache entry expires', async () => {
      const writer = new TemplateRegistry(t.db);
      await writer.register(parseTemplate(yaml('first')));
      const cached = new TemplateRegistry(t.db, { cacheTtlMs: 3_600_000 });
      const fresh = new TemplateRegistry(t.db, { cacheTtlMs: 0 });
      assert.equal(
        (await cached.get('registry_tests', 'registry_probe', '1.0.0')).template.description,
        'first',
      );
      assert.equal(
        (await fresh.get('registry_tests', 'registry_probe', '1.0.0')).template.description,
        'first',
      );
      await writer.register(parseTemplate(yaml('second')));
      assert.equal(
        (await cached.get('registry_tests', 'registry_probe', '1.0.0')).template.description,
        'first',
      );
      assert.equal(
        (await fresh.get('registry_tests', 'registry_probe', '1.0.0')).template.description,
        'second',
      );
    });

    it('refuses a stored configuration that is not a valid template', async () => {
      await new TemplateRegistry(t.db).register(parseTemplate(yaml('to be broken')));
      await t.db.query(
        `UPDATE tasker.named_tasks SET configuration = configuration - 'steps' WHERE name = 'registry_probe'`,
      );
      await assert.rejects(
        new TemplateRegistry(t.db).get('registry_tests', 'registry_probe', '1.0.0'),
        TemplateValidationError,
      );
    });
  });
}
