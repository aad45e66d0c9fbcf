/**
 * The functions 0011 and 0012 set to plan index lookups keep `enable_seqscan = off`: a later
 * `CREATE OR REPLACE` without the SET clause would silently bring back plans that scan whole tables
 * per item once a session planned on small tables. Both backends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';

const INDEX_LOOKUP_FUNCTIONS = [
  'check_inserted_references',
  'create_and_start_task',
  'create_and_start_tasks',
  'evaluate_task',
  'process_ready_tasks',
  'process_step_results',
  'claim_step_messages',
  'complete_step_message',
  'checkpoint_step',
];

for (const backend of BACKENDS) {
  describe(`plan settings (${backend})`, () => {
    let test: TestDatabase;

    before(async () => {
      test = await createCoreDatabase(backend);
    });

    after(async () => {
      await test?.dispose();
    });

    it('the creation, hot-path and reference-check functions plan without sequential scans', async () => {
      const { rows } = await test.db.query<{ name: string; config: string[] | null }>(
        `SELECT p.proname AS name, p.proconfig AS config
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'tasker' AND p.proname = ANY($1::text[])
         ORDER BY 1`,
        [INDEX_LOOKUP_FUNCTIONS],
      );
      assert.deepEqual(
        rows.map((row) => row.name),
        [...INDEX_LOOKUP_FUNCTIONS].sort(),
        'each function exists once',
      );
      for (const row of rows) {
        assert.deepEqual(row.config, ['enable_seqscan=off'], row.name);
      }
    });
  });
}
