import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import {
  parseStepState,
  parseTaskState,
  STEP_STATES,
  STEP_TRANSITIONS,
  stepLifecycleEvent,
  TASK_STATES,
  TASK_TRANSITIONS,
  taskLifecycleEvent,
} from '../src/states.ts';
import { createCoreDatabase } from './db.ts';

function key(from: string | null, event: string, to: string): string {
  return `${from ?? '∅'} -${event}-> ${to}`;
}

for (const backend of BACKENDS) {
  describe(`state rules in the database (${backend})`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createCoreDatabase(backend);
    });
    after(() => t.dispose());

    it('holds exactly the TypeScript transition tables', async () => {
      for (const [table, rules] of [
        ['tasker.task_transition_rules', TASK_TRANSITIONS],
        ['tasker.step_transition_rules', STEP_TRANSITIONS],
      ] as const) {
        const { rows } = await t.db.query<{ from_state: string | null; event: string; to_state: string }>(
          `SELECT from_state, event, to_state FROM ${table}`,
        );
        assert.deepEqual(
          rows.map((row) => key(row.from_state, row.event, row.to_state)).sort(),
          rules.map((rule) => key(rule.from, rule.event, rule.to)).sort(),
          table,
        );
      }
    });

    it('names lifecycle events in SQL exactly as in TypeScript, for every pair of states', async () => {
      const { rows: taskRows } = await t.db.query<{ f: string; t: string; e: string | null }>(
        'SELECT f, t, tasker.task_lifecycle_event(f, t) AS e FROM unnest($1::text[]) f, unnest($1::text[]) t',
        [TASK_STATES],
      );
      assert.equal(taskRows.length, TASK_STATES.length ** 2);
      for (const row of taskRows) {
        assert.equal(
          row.e,
          taskLifecycleEvent(parseTaskState(row.f), parseTaskState(row.t)),
          `${row.f} -> ${row.t}`,
        );
      }
      const { rows: stepRows } = await t.db.query<{ f: string; t: string; e: string | null }>(
        'SELECT f, t, tasker.step_lifecycle_event(f, t) AS e FROM unnest($1::text[]) f, unnest($1::text[]) t',
        [STEP_STATES],
      );
      for (const row of stepRows) {
        assert.equal(
          row.e,
          stepLifecycleEvent(parseStepState(row.f), parseStepState(row.t)),
          `${row.f} -> ${row.t}`,
        );
      }
    });
  });
}
