/**
 * The operations migration (0004): staleness thresholds and detection, the DLQ investigation tracker,
 * its views, analytics and the task summary (reference A §1.12, §2.7, §2.8, §5.4; D §4.4). Every test
 * runs on both backends, on data seeded by plain inserts and moved only through the CAS functions.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Database, Row } from '@tasker/db';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { createCoreDatabase } from './db.ts';
import {
  ageTask,
  ageTaskState,
  driveStep,
  driveTask,
  resetData,
  type SeededTask,
  seedTask,
  seedTemplate,
  setStepDuration,
  single,
  stepOf,
  writeCheckpoint,
  writeCheckpointAgo,
} from './seed.ts';

type StaleRow = {
  task_uuid: string;
  namespace_name: string;
  task_name: string;
  current_state: string;
  time_in_state_minutes: string;
  threshold_minutes: number;
  task_age_minutes: string;
};

type DetectRow = {
  task_uuid: string;
  namespace_name: string;
  task_name: string;
  current_state: string;
  time_in_state_minutes: number;
  staleness_threshold_minutes: number;
  action_taken: string;
  moved_to_dlq: boolean;
  transition_success: boolean;
  dlq_entry_uuid: string | null;
};

type DlqRow = {
  dlq_entry_uuid: string;
  task_uuid: string;
  original_state: string;
  dlq_reason: string;
  dlq_timestamp: Date;
  resolution_status: string;
  resolution_timestamp: Date | null;
  resolution_notes: string | null;
  resolved_by: string | null;
  task_snapshot: Record<string, unknown>;
  metadata: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
};

type StepSummary = {
  step_uuid: string;
  name: string;
  current_state: string;
  created_at: string;
  completed_at: string | null;
  last_attempted_at: string | null;
  attempts: number;
  max_attempts: number;
  dependencies_satisfied: boolean;
  retry_eligible: boolean;
  ready_for_execution: boolean;
  error_type: string | null;
  error_retryable: boolean | null;
  error_status_code: number | null;
};

type SummaryRow = {
  task_uuid: string;
  named_task_uuid: string;
  task_name: string;
  task_version: string;
  namespace_name: string;
  task_status: string;
  priority: number;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
  initiator: string;
  source_system: string;
  reason: string;
  correlation_id: string;
  template_configuration: Record<string, unknown>;
  step_summaries: StepSummary[];
  execution_context: Record<string, unknown>;
  dlq_status: Record<string, unknown>;
};

/** Whole minutes of a numeric column (time only moves forward, so the floor of a fresh age is exact). */
function minutes(value: unknown): number {
  return Math.floor(Number(value));
}

/** Rejects with a database error whose SQLSTATE is `code`. */
async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal((error as Error & { code?: unknown }).code, code, error.message);
    return true;
  });
}

for (const backend of BACKENDS) {
  describe(`operations (${backend})`, () => {
    let test: TestDatabase;
    let db: Database;

    before(async () => {
      test = await createCoreDatabase(backend);
      db = test.db;
    });

    after(async () => {
      await test?.dispose();
    });

    beforeEach(async () => {
      await resetData(db);
    });

    async function rows<R extends Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      return (await db.query<R>(sql, params)).rows;
    }

    /** A task of `template` moved to `state` and aged `stateMinutes` in it. */
    async function taskIn(template: string, state: string, stateMinutes: number, steps: string[] = []) {
      const task = await seedTask(db, template, { steps });
      await driveTask(db, task.taskUuid, state);
      await ageTaskState(db, task.taskUuid, stateMinutes);
      return task;
    }

    function staleTasks(
      options: { batch?: number; lifetimeHours?: number; stallMinutes?: number } = {},
    ): Promise<StaleRow[]> {
      return rows<StaleRow>('SELECT * FROM tasker.get_stale_tasks_for_dlq(60, 30, 30, $1, $2, $3)', [
        options.lifetimeHours ?? 24,
        options.batch ?? 100,
        options.stallMinutes ?? 15,
      ]);
    }

    function detect(
      dryRun: boolean,
      options: { batch?: number; stallMinutes?: number } = {},
    ): Promise<DetectRow[]> {
      return rows<DetectRow>(
        'SELECT * FROM tasker.detect_and_transition_stale_tasks($1, $2, 60, 30, 30, 24, $3)',
        [dryRun, options.batch ?? 100, options.stallMinutes ?? 15],
      );
    }

    async function createEntry(task: SeededTask, reason = 'staleness_timeout'): Promise<string> {
      const { rows: created } = await db.query<{ uuid: string | null }>(
        `SELECT tasker.create_dlq_entry(t.task_uuid, ns.name, nt.name, t.current_state, 75.6, 60, $2) AS uuid
         FROM tasker.tasks t
         JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
         JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
         WHERE t.task_uuid = $1`,
        [task.taskUuid, reason],
      );
      const uuid = single(created).uuid;
      assert.ok(uuid, 'expected a new DLQ entry');
      return uuid;
    }

    async function taskState(taskUuid: string): Promise<string> {
      const found = await rows<{ current_state: string }>(
        'SELECT current_state FROM tasker.tasks WHERE task_uuid = $1',
        [taskUuid],
      );
      return single(found).current_state;
    }

    async function count(sql: string, params: readonly unknown[] = []): Promise<number> {
      return Number(single(await rows<{ n: number }>(sql, params)).n);
    }

    describe('staleness thresholds', () => {
      it('uses the template lifecycle override, else the default, and 1440 for other states', async () => {
        const config = JSON.stringify({
          lifecycle: { max_waiting_for_dependencies_minutes: 120, max_steps_in_process_minutes: 45 },
        });
        const result = single(
          await rows<Record<string, number>>(
            `SELECT tasker.calculate_staleness_threshold('waiting_for_dependencies', $1::jsonb) AS deps_override,
                    tasker.calculate_staleness_threshold('steps_in_process', $1::jsonb) AS proc_override,
                    tasker.calculate_staleness_threshold('waiting_for_retry', $1::jsonb) AS retry_default,
                    tasker.calculate_staleness_threshold('waiting_for_dependencies', '{}') AS deps_default,
                    tasker.calculate_staleness_threshold('steps_in_process', NULL) AS proc_default,
                    tasker.calculate_staleness_threshold('pending', $1::jsonb) AS other_state,
                    tasker.calculate_staleness_threshold('initializing', '{}') AS other_state_2,
                    tasker.calculate_staleness_threshold('waiting_for_retry', '{}', 10, 20, 40) AS custom_retry,
                    tasker.calculate_staleness_threshold('steps_in_process', '{}', 10, 20, 40) AS custom_proc`,
            [config],
          ),
        );
        assert.deepEqual(result, {
          deps_override: 120,
          proc_override: 45,
          retry_default: 30,
          deps_default: 60,
          proc_default: 30,
          other_state: 1440,
          other_state_2: 1440,
          custom_retry: 20,
          custom_proc: 40,
        });
      });

      it('falls back to the default when the override is not a positive number', async () => {
        const overrides: [unknown, number][] = [
          ['soon', 60],
          [0, 60],
          [-5, 60],
          [1e20, 60],
          [true, 60],
          ['90', 90],
          [12.6, 13],
        ];
        for (const [value, expected] of overrides) {
          const result = single(
            await rows<{ minutes: number }>(
              `SELECT tasker.calculate_staleness_threshold('waiting_for_dependencies',
                        jsonb_build_object('lifecycle', jsonb_build_object('max_waiting_for_dependencies_minutes', $1::jsonb)))
                      AS minutes`,
              [JSON.stringify(value)],
            ),
          );
          assert.equal(result.minutes, expected, `override ${JSON.stringify(value)}`);
        }
      });
    });

    describe('DLQ entries', () => {
      it('creates one pending entry per task with a snapshot, and refuses a duplicate', async () => {
        const template = await seedTemplate(db, { namespace: 'payments', name: 'refund' });
        const task = await taskIn(template, 'waiting_for_dependencies', 90, ['validate', 'refund']);
        const uuid = await createEntry(task);

        const entry = single(
          await rows<DlqRow>('SELECT * FROM tasker.tasks_dlq WHERE dlq_entry_uuid = $1', [uuid]),
        );
        assert.equal(entry.task_uuid, task.taskUuid);
        assert.equal(entry.original_state, 'waiting_for_dependencies');
        assert.equal(entry.dlq_reason, 'staleness_timeout');
        assert.equal(entry.resolution_status, 'pending');
        assert.equal(entry.resolution_timestamp, null);
        const snapshot = entry.task_snapshot;
        assert.equal(snapshot.task_uuid, task.taskUuid);
        assert.equal(snapshot.namespace, 'payments');
        assert.equal(snapshot.task_name, 'refund');
        assert.equal(snapshot.current_state, 'waiting_for_dependencies');
        assert.equal(snapshot.time_in_state_minutes, 75);
        assert.equal(snapshot.threshold_minutes, 60);
        assert.equal(typeof snapshot.snapshot_timestamp, 'string');
        const details = snapshot.task_details as Record<string, unknown>;
        assert.deepEqual(Object.keys(details).sort(), [
          'correlation_id',
          'created_at',
          'priority',
          'requested_at',
          'state_entered_at',
        ]);
        const steps = snapshot.steps as { name: string; current_state: string }[];
        assert.deepEqual(
          steps.map((step) => [step.name, step.current_state]),
          [
            ['validate', 'pending'],
            ['refund', 'pending'],
          ],
        );
        assert.deepEqual(entry.metadata, {
          detection_method: 'automatic_staleness',
          time_in_state_minutes: 75,
          threshold_minutes: 60,
        });

        // a second entry (whatever the reason) while one is pending: NULL, nothing inserted
        for (const reason of ['staleness_timeout', 'manual_dlq']) {
          const again = single(
            await rows<{ uuid: string | null }>(
              `SELECT tasker.create_dlq_entry($1, 'payments', 'refund', 'waiting_for_dependencies', 80, 60, $2) AS uuid`,
              [task.taskUuid, reason],
            ),
          );
          assert.equal(again.uuid, null);
        }
        assert.equal(await count('SELECT count(*) AS n FROM tasker.tasks_dlq'), 1);
      });

      it('raises for an unknown task or reason instead of returning NULL', async () => {
        await rejectsWithCode(
          db.query(
            `SELECT tasker.create_dlq_entry(gen_random_uuid(), 'ns', 'name', 'waiting_for_retry', 40, 30)`,
          ),
          '23503',
        );
        const template = await seedTemplate(db, { namespace: 'payments', name: 'refund' });
        const task = await taskIn(template, 'waiting_for_retry', 40);
        await rejectsWithCode(
          db.query(
            `SELECT tasker.create_dlq_entry($1, 'payments', 'refund', 'waiting_for_retry', 40, 30, 'gremlins')`,
            [task.taskUuid],
          ),
          '22P02',
        );
        assert.equal(await count('SELECT count(*) AS n FROM tasker.tasks_dlq'), 0);
      });
    });

    describe('stale task discovery', () => {
      it('finds exactly the tasks past their threshold, most stale first', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const deps = await taskIn(template, 'waiting_for_dependencies', 90);
        const retry = await taskIn(template, 'waiting_for_retry', 45);
        await taskIn(template, 'waiting_for_dependencies', 30); // within its 60 minutes
        // never picked up by staleness, however old
        await taskIn(template, 'pending', 600);
        await taskIn(template, 'initializing', 600);
        await taskIn(template, 'blocked_by_failures', 600);
        await taskIn(template, 'error', 600);
        await taskIn(template, 'complete', 600);

        const stale = await staleTasks();
        assert.deepEqual(
          stale.map((row) => [
            row.task_uuid,
            row.namespace_name,
            row.task_name,
            row.current_state,
            minutes(row.time_in_state_minutes),
            row.threshold_minutes,
          ]),
          [
            [deps.taskUuid, 'ops', 'sync', 'waiting_for_dependencies', 90, 60],
            [retry.taskUuid, 'ops', 'sync', 'waiting_for_retry', 45, 30],
          ],
        );
        assert.ok(stale.every((row) => Number(row.task_age_minutes) < 5));
      });

      it('excludes tasks that already have a pending DLQ entry', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const listed = await taskIn(template, 'waiting_for_dependencies', 120);
        const other = await taskIn(template, 'waiting_for_dependencies', 90);
        await createEntry(listed);
        assert.deepEqual(
          (await staleTasks()).map((row) => row.task_uuid),
          [other.taskUuid],
        );
      });

      it('treats a task older than the maximum lifetime as stale whatever its time in state', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const old = await taskIn(template, 'waiting_for_dependencies', 5);
        await ageTask(db, old.taskUuid, 25 * 60);
        assert.deepEqual(
          (await staleTasks()).map((row) => [row.task_uuid, minutes(row.task_age_minutes)]),
          [[old.taskUuid, 1500]],
        );
        assert.deepEqual(await staleTasks({ lifetimeHours: 48 }), []);
      });

      it('applies per-template thresholds (30 vs 60 minutes)', async () => {
        const fast = await seedTemplate(db, {
          namespace: 'ops',
          name: 'fast',
          configuration: { lifecycle: { max_waiting_for_dependencies_minutes: 30 } },
        });
        const normal = await seedTemplate(db, { namespace: 'ops', name: 'normal' });
        const fastTask = await taskIn(fast, 'waiting_for_dependencies', 45);
        const normalTask = await taskIn(normal, 'waiting_for_dependencies', 45);

        const stale = await staleTasks();
        assert.deepEqual(
          stale.map((row) => [row.task_uuid, row.task_name, row.threshold_minutes]),
          [[fastTask.taskUuid, 'fast', 30]],
        );
        const monitored = await rows<{
          task_uuid: string;
          staleness_threshold_minutes: number;
          health_status: string;
        }>(
          'SELECT task_uuid, staleness_threshold_minutes, health_status FROM tasker.v_task_staleness_monitoring',
        );
        const byTask = new Map(monitored.map((row) => [row.task_uuid, row]));
        assert.equal(byTask.get(fastTask.taskUuid)?.staleness_threshold_minutes, 30);
        assert.equal(byTask.get(fastTask.taskUuid)?.health_status, 'stale');
        assert.equal(byTask.get(normalTask.taskUuid)?.staleness_threshold_minutes, 60);
        assert.equal(byTask.get(normalTask.taskUuid)?.health_status, 'healthy');
      });

      it('rejects invalid arguments', async () => {
        await rejectsWithCode(
          db.query('SELECT * FROM tasker.get_stale_tasks_for_dlq(60, 30, 30, 24, 0)'),
          'TK003',
        );
        await rejectsWithCode(
          db.query('SELECT * FROM tasker.get_stale_tasks_for_dlq(0, 30, 30, 24, 10)'),
          'TK003',
        );
        await rejectsWithCode(
          db.query('SELECT * FROM tasker.detect_and_transition_stale_tasks(false, 10, 60, 30, 30, 24, -1)'),
          'TK003',
        );
      });
    });

    describe('batch workers and checkpoints', () => {
      it('a fresh checkpoint protects a steps_in_process task; a stale or unreadable one does not', async () => {
        const template = await seedTemplate(db, { namespace: 'data', name: 'batch' });
        const worker = (task: SeededTask) => stepOf(task, 'batch_worker_1');
        const inProcess = async () => {
          const task = await seedTask(db, template, { steps: ['batch_worker_1', 'aggregate'] });
          await driveStep(db, worker(task), 'in_progress');
          await driveTask(db, task.taskUuid, 'steps_in_process');
          await ageTaskState(db, task.taskUuid, 45); // past the 30-minute threshold
          return task;
        };

        const fresh = await inProcess();
        await writeCheckpointAgo(db, worker(fresh), 5);
        const stalled = await inProcess();
        await writeCheckpointAgo(db, worker(stalled), 20);
        const unreadable = await inProcess();
        await writeCheckpoint(db, worker(unreadable), 'not-a-time');
        const noCheckpoint = await inProcess();
        const pastLifetime = await inProcess();
        await writeCheckpointAgo(db, worker(pastLifetime), 1);
        await ageTask(db, pastLifetime.taskUuid, 25 * 60);
        // a fresh checkpoint on a step that is no longer running proves nothing
        const finishedWorker = await seedTask(db, template, { steps: ['batch_worker_1'] });
        await driveStep(db, worker(finishedWorker), 'complete');
        await writeCheckpointAgo(db, worker(finishedWorker), 1);
        await driveTask(db, finishedWorker.taskUuid, 'steps_in_process');
        await ageTaskState(db, finishedWorker.taskUuid, 45);

        const expected = [stalled, unreadable, noCheckpoint, pastLifetime, finishedWorker].map(
          (t) => t.taskUuid,
        );
        const found = (await staleTasks()).map((row) => row.task_uuid);
        assert.deepEqual([...found].sort(), [...expected].sort());
        assert.ok(!found.includes(fresh.taskUuid));

        // the stall window is a parameter: 5 minutes without progress is a stall at 3
        const strict = (await staleTasks({ stallMinutes: 3 })).map((row) => row.task_uuid);
        assert.ok(strict.includes(fresh.taskUuid));

        // the detector acts the same way
        const detected = await detect(false);
        assert.deepEqual(detected.map((row) => row.task_uuid).sort(), [...expected].sort());
        assert.equal(await taskState(fresh.taskUuid), 'steps_in_process');
        for (const uuid of expected) assert.equal(await taskState(uuid), 'error');

        // monitoring still reports the time-based health, with the checkpoint next to it
        const monitored = single(
          await rows<{ health_status: string; last_checkpoint_at: Date | null }>(
            'SELECT health_status, last_checkpoint_at FROM tasker.v_task_staleness_monitoring WHERE task_uuid = $1',
            [fresh.taskUuid],
          ),
        );
        assert.equal(monitored.health_status, 'stale');
        assert.ok(monitored.last_checkpoint_at instanceof Date);
      });
    });

    describe('detect_and_transition_stale_tasks', () => {
      it('dry run reports what it would do and changes nothing', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const first = await taskIn(template, 'waiting_for_dependencies', 120, ['fetch']);
        const second = await taskIn(template, 'steps_in_process', 40);
        await taskIn(template, 'waiting_for_retry', 10);
        const transitionsBefore = await count('SELECT count(*) AS n FROM tasker.task_transitions');

        const report = await detect(true);
        assert.deepEqual(
          report.map((row) => [
            row.task_uuid,
            row.current_state,
            row.time_in_state_minutes,
            row.staleness_threshold_minutes,
            row.action_taken,
            row.moved_to_dlq,
            row.transition_success,
            row.dlq_entry_uuid,
          ]),
          [
            [
              first.taskUuid,
              'waiting_for_dependencies',
              120,
              60,
              'would_transition_to_dlq_and_error',
              false,
              false,
              null,
            ],
            [
              second.taskUuid,
              'steps_in_process',
              40,
              30,
              'would_transition_to_dlq_and_error',
              false,
              false,
              null,
            ],
          ],
        );
        assert.equal(await count('SELECT count(*) AS n FROM tasker.tasks_dlq'), 0);
        assert.equal(await count('SELECT count(*) AS n FROM tasker.task_transitions'), transitionsBefore);
        assert.equal(await taskState(first.taskUuid), 'waiting_for_dependencies');
        assert.equal(await taskState(second.taskUuid), 'steps_in_process');
        // and the default is a dry run
        assert.equal(
          await count(`SELECT count(*) AS n FROM tasker.detect_and_transition_stale_tasks()
                       WHERE action_taken = 'would_transition_to_dlq_and_error'`),
          2,
        );
        assert.equal(await count('SELECT count(*) AS n FROM tasker.tasks_dlq'), 0);
      });

      it('real run opens a DLQ entry and moves the task to error through the CAS', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const stale = await taskIn(template, 'waiting_for_dependencies', 90, ['fetch']);
        const fresh = await taskIn(template, 'waiting_for_dependencies', 10);

        const report = single(await detect(false));
        assert.equal(report.task_uuid, stale.taskUuid);
        assert.equal(report.namespace_name, 'ops');
        assert.equal(report.task_name, 'sync');
        assert.equal(report.current_state, 'waiting_for_dependencies');
        assert.equal(report.time_in_state_minutes, 90);
        assert.equal(report.staleness_threshold_minutes, 60);
        assert.equal(report.action_taken, 'transitioned_to_dlq_and_error');
        assert.equal(report.moved_to_dlq, true);
        assert.equal(report.transition_success, true);
        assert.ok(report.dlq_entry_uuid);

        assert.equal(await taskState(stale.taskUuid), 'error');
        assert.equal(await taskState(fresh.taskUuid), 'waiting_for_dependencies');
        const transition = single(
          await rows<{
            from_state: string;
            to_state: string;
            event: string;
            lifecycle_event: string;
            processor_uuid: string | null;
            sort_key: number;
            metadata: Record<string, unknown>;
          }>(
            `SELECT from_state, to_state, event, lifecycle_event, processor_uuid, sort_key, metadata
             FROM tasker.task_transitions WHERE task_uuid = $1 AND most_recent`,
            [stale.taskUuid],
          ),
        );
        assert.equal(transition.from_state, 'waiting_for_dependencies');
        assert.equal(transition.to_state, 'error');
        assert.equal(transition.event, 'staleness_timeout');
        assert.equal(transition.lifecycle_event, 'task.failed');
        assert.equal(transition.processor_uuid, null);
        assert.equal(transition.sort_key, 4);
        assert.equal(transition.metadata.reason, 'staleness_timeout');
        assert.equal(transition.metadata.namespace, 'ops');
        assert.equal(transition.metadata.task_name, 'sync');
        assert.equal(typeof transition.metadata.detected_at, 'string');
        assert.equal(transition.metadata.dlq_entry_uuid, report.dlq_entry_uuid);

        const entry = single(await rows<DlqRow>('SELECT * FROM tasker.tasks_dlq'));
        assert.equal(entry.dlq_entry_uuid, report.dlq_entry_uuid);
        assert.equal(entry.task_uuid, stale.taskUuid);
        assert.equal(entry.original_state, 'waiting_for_dependencies');
        assert.equal(entry.dlq_reason, 'staleness_timeout');
        assert.equal(entry.resolution_status, 'pending');

        // steps are left alone, and the task is not found again
        const step = single(
          await rows<{ current_state: string }>(
            'SELECT current_state FROM tasker.workflow_steps WHERE task_uuid = $1',
            [stale.taskUuid],
          ),
        );
        assert.equal(step.current_state, 'pending');
        assert.deepEqual(await detect(false), []);
      });

      it('skips a task whose row another transaction holds, and takes it on the next run', {
        skip: backend === 'pglite' ? 'PGlite runs one transaction at a time' : false,
      }, async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const held = await taskIn(template, 'waiting_for_dependencies', 90);
        const free = await taskIn(template, 'waiting_for_dependencies', 80);
        await db.transaction(async (tx) => {
          await tx.query('SELECT 1 FROM tasker.tasks WHERE task_uuid = $1 FOR UPDATE', [held.taskUuid]);
          // another connection: the held task is skipped, not reported, and gets no DLQ entry
          const report = await detect(false);
          assert.deepEqual(
            report.map((row) => [row.task_uuid, row.action_taken]),
            [[free.taskUuid, 'transitioned_to_dlq_and_error']],
          );
          assert.equal(
            await count('SELECT count(*) AS n FROM tasker.tasks_dlq WHERE task_uuid = $1', [held.taskUuid]),
            0,
          );
        });
        assert.deepEqual(
          (await detect(false)).map((row) => [row.task_uuid, row.action_taken]),
          [[held.taskUuid, 'transitioned_to_dlq_and_error']],
        );
      });

      it('respects the batch size, most stale first', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const tasks: SeededTask[] = [];
        for (const age of [61, 62, 63, 64, 65])
          tasks.push(await taskIn(template, 'waiting_for_dependencies', age));
        const [t61, t62, t63, t64, t65] = tasks.map((task) => task.taskUuid);

        assert.deepEqual(
          (await staleTasks({ batch: 2 })).map((row) => row.task_uuid),
          [t65, t64],
        );
        const report = await detect(false, { batch: 2 });
        assert.deepEqual(
          report.map((row) => [row.task_uuid, row.action_taken]),
          [
            [t65, 'transitioned_to_dlq_and_error'],
            [t64, 'transitioned_to_dlq_and_error'],
          ],
        );
        assert.deepEqual(
          (await staleTasks()).map((row) => row.task_uuid),
          [t63, t62, t61],
        );
      });
    });

    describe('DLQ views', () => {
      it('v_dlq_dashboard aggregates entries by reason', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const entry = async (reason: string, status: string | null) => {
          const task = await taskIn(template, 'waiting_for_retry', 40);
          const uuid = await createEntry(task, reason);
          await db.query(
            `UPDATE tasker.tasks_dlq SET dlq_timestamp = now() - interval '60 minutes' WHERE dlq_entry_uuid = $1`,
            [uuid],
          );
          if (status !== null)
            await db.query('SELECT * FROM tasker.update_dlq_entry($1, $2)', [uuid, status]);
        };
        await entry('staleness_timeout', null);
        await entry('staleness_timeout', 'manually_resolved');
        await entry('staleness_timeout', 'cancelled');
        await entry('max_retries_exceeded', null);
        await entry('max_retries_exceeded', 'permanently_failed');
        await entry('manual_dlq', null);

        const stats = await rows<{
          dlq_reason: string;
          total_entries: number;
          pending: number;
          manually_resolved: number;
          permanent_failures: number;
          cancelled: number;
          oldest_entry: Date;
          newest_entry: Date;
          avg_resolution_time_minutes: string;
        }>('SELECT * FROM tasker.v_dlq_dashboard ORDER BY dlq_reason');
        assert.deepEqual(
          stats.map((row) => [
            row.dlq_reason,
            row.total_entries,
            row.pending,
            row.manually_resolved,
            row.permanent_failures,
            row.cancelled,
          ]),
          [
            ['manual_dlq', 1, 1, 0, 0, 0],
            ['max_retries_exceeded', 2, 1, 0, 1, 0],
            ['staleness_timeout', 3, 1, 1, 0, 1],
          ],
        );
        for (const row of stats) {
          assert.ok(row.oldest_entry <= row.newest_entry);
          assert.equal(minutes(row.avg_resolution_time_minutes), 60);
        }
      });

      it('v_dlq_investigation_queue lists pending entries by reason weight plus minutes in the DLQ', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const entry = async (reason: string, minutesAgo: number) => {
          const task = await taskIn(template, 'waiting_for_retry', 40);
          const uuid = await createEntry(task, reason);
          await db.query(
            `UPDATE tasker.tasks_dlq SET dlq_timestamp = now() - $2::double precision * interval '1 minute'
             WHERE dlq_entry_uuid = $1`,
            [uuid, minutesAgo],
          );
          return uuid;
        };
        const worker = await entry('worker_unavailable', 10);
        const staleness = await entry('staleness_timeout', 120);
        const retriesNew = await entry('max_retries_exceeded', 5);
        const manual = await entry('manual_dlq', 0);
        const cycle = await entry('dependency_cycle_detected', 1);
        const retriesOld = await entry('max_retries_exceeded', 30);
        const resolved = await entry('dependency_cycle_detected', 600);
        await db.query(`SELECT * FROM tasker.update_dlq_entry($1, 'manually_resolved')`, [resolved]);

        const queue = await rows<{
          dlq_entry_uuid: string;
          dlq_reason: string;
          original_state: string;
          current_state: string;
          namespace_name: string;
          task_name: string;
          time_in_state_minutes: number;
          minutes_in_dlq: string;
          weight: string;
        }>(`SELECT *, priority_score - minutes_in_dlq AS weight FROM tasker.v_dlq_investigation_queue`);
        assert.deepEqual(
          queue.map((row) => [
            row.dlq_entry_uuid,
            row.dlq_reason,
            Number(row.weight),
            minutes(row.minutes_in_dlq),
          ]),
          [
            [cycle, 'dependency_cycle_detected', 1000, 1],
            [retriesOld, 'max_retries_exceeded', 500, 30],
            [retriesNew, 'max_retries_exceeded', 500, 5],
            [staleness, 'staleness_timeout', 100, 120],
            [worker, 'worker_unavailable', 50, 10],
            [manual, 'manual_dlq', 10, 0],
          ],
        );
        const scores = await rows<{ priority_score: string }>(
          'SELECT priority_score FROM tasker.v_dlq_investigation_queue',
        );
        const values = scores.map((row) => Number(row.priority_score));
        assert.deepEqual(
          values,
          [...values].sort((a, b) => b - a),
        );
        for (const row of queue) {
          assert.equal(row.original_state, 'waiting_for_retry');
          assert.equal(row.current_state, 'waiting_for_retry');
          assert.equal(row.namespace_name, 'ops');
          assert.equal(row.task_name, 'sync');
          assert.equal(row.time_in_state_minutes, 75);
        }
      });

      it('v_task_staleness_monitoring splits healthy / warning / stale, longest in state first', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        // [state, minutes in state] -> expected health (thresholds 60 / 30 / 30)
        const cases: [string, number, string][] = [
          ['waiting_for_dependencies', 10, 'healthy'],
          ['steps_in_process', 20, 'healthy'],
          ['waiting_for_dependencies', 40, 'healthy'],
          ['waiting_for_retry', 25, 'warning'],
          ['waiting_for_dependencies', 48, 'warning'], // exactly 80 %
          ['waiting_for_dependencies', 60, 'stale'], // exactly 100 %
          ['steps_in_process', 45, 'stale'],
          ['waiting_for_dependencies', 120, 'stale'],
        ];
        for (const [state, age] of cases) await taskIn(template, state, age);
        await taskIn(template, 'pending', 500);
        await taskIn(template, 'complete', 500);

        const monitored = await rows<{
          current_state: string;
          time_in_state_minutes: string;
          staleness_threshold_minutes: number;
          health_status: string;
        }>('SELECT * FROM tasker.v_task_staleness_monitoring');
        assert.deepEqual(
          monitored.map((row) => [row.current_state, minutes(row.time_in_state_minutes), row.health_status]),
          [...cases].sort((a, b) => b[1] - a[1]),
        );
        const split = { healthy: 0, warning: 0, stale: 0 } as Record<string, number>;
        for (const row of monitored) split[row.health_status] = (split[row.health_status] ?? 0) + 1;
        assert.deepEqual(split, { healthy: 3, warning: 2, stale: 3 });
      });
    });

    describe('update_dlq_entry', () => {
      it('resolves an investigation, keeps unsupplied fields, and frees the task for detection', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const task = await taskIn(template, 'waiting_for_dependencies', 90);
        const uuid = await createEntry(task);
        assert.deepEqual(await staleTasks(), []);
        assert.equal(
          await count(
            'SELECT count(*) AS n FROM tasker.v_dlq_investigation_queue WHERE dlq_entry_uuid = $1',
            [uuid],
          ),
          1,
        );

        const resolved = single(
          await rows<DlqRow>('SELECT * FROM tasker.update_dlq_entry($1, $2, $3, $4, $5::jsonb)', [
            uuid,
            'manually_resolved',
            'reset the stuck step',
            'operator@example.com',
            JSON.stringify({ ticket: 'OPS-1' }),
          ]),
        );
        assert.equal(resolved.dlq_entry_uuid, uuid);
        assert.equal(resolved.resolution_status, 'manually_resolved');
        assert.equal(resolved.resolution_notes, 'reset the stuck step');
        assert.equal(resolved.resolved_by, 'operator@example.com');
        assert.deepEqual(resolved.metadata, { ticket: 'OPS-1' });
        assert.ok(resolved.resolution_timestamp instanceof Date);
        assert.ok(resolved.updated_at >= resolved.created_at);

        // only the supplied field changes
        const noted = single(
          await rows<DlqRow>(`SELECT * FROM tasker.update_dlq_entry($1, p_resolution_notes => 'follow-up')`, [
            uuid,
          ]),
        );
        assert.equal(noted.resolution_status, 'manually_resolved');
        assert.equal(noted.resolution_notes, 'follow-up');
        assert.equal(noted.resolved_by, 'operator@example.com');
        assert.deepEqual(noted.metadata, { ticket: 'OPS-1' });
        assert.equal(noted.resolution_timestamp?.getTime(), resolved.resolution_timestamp?.getTime());

        assert.equal(
          await count(
            'SELECT count(*) AS n FROM tasker.v_dlq_investigation_queue WHERE dlq_entry_uuid = $1',
            [uuid],
          ),
          0,
        );
        assert.deepEqual(
          await rows('SELECT * FROM tasker.update_dlq_entry(gen_random_uuid(), $1)', ['cancelled']),
          [],
        );

        // the task is still stale and has no open investigation: detection picks it up again
        assert.deepEqual(
          (await staleTasks()).map((row) => row.task_uuid),
          [task.taskUuid],
        );
        const report = single(await detect(false));
        assert.equal(report.action_taken, 'transitioned_to_dlq_and_error');
        assert.notEqual(report.dlq_entry_uuid, uuid);
        assert.deepEqual(
          await rows(
            'SELECT resolution_status FROM tasker.tasks_dlq WHERE task_uuid = $1 ORDER BY created_at',
            [task.taskUuid],
          ),
          [{ resolution_status: 'manually_resolved' }, { resolution_status: 'pending' }],
        );
      });
    });

    describe('analytics', () => {
      /** A task with one `step` finished in `state` after `seconds`. */
      async function finishedTask(template: string, step: string, state: string, seconds: number) {
        const task = await seedTask(db, template, { steps: [step] });
        await driveStep(db, stepOf(task, step), state);
        await setStepDuration(db, stepOf(task, step), seconds);
        return task;
      }

      /** Makes the task's creation `seconds` before its latest finished step. */
      async function setTaskDuration(task: SeededTask, seconds: number): Promise<void> {
        await db.query(
          `UPDATE tasker.tasks t SET created_at = (
             SELECT max(ws.state_entered_at) FROM tasker.workflow_steps ws WHERE ws.task_uuid = t.task_uuid
           ) - $2::double precision * interval '1 second'
           WHERE t.task_uuid = $1`,
          [task.taskUuid, seconds],
        );
      }

      type StepAggregate = {
        namespace_name: string;
        task_name: string;
        version: string;
        step_name: string;
        average_duration_seconds: string;
        max_duration_seconds: string;
        execution_count: number;
        error_count: number;
        error_rate: string;
        last_executed_at: Date | null;
      };

      it('aggregates step performance per template step, with errors and min_executions', async () => {
        const one = await seedTemplate(db, { namespace: 'test_sql', name: 'boundary_max_attempts_one' });
        const three = await seedTemplate(db, { namespace: 'test_sql', name: 'boundary_max_attempts_three' });
        const few = await seedTemplate(db, { namespace: 'test_sql', name: 'boundary_few' });
        for (let i = 0; i < 6; i++) await finishedTask(one, 'boundary_test_step', 'complete', 10 + i);
        for (let i = 0; i < 8; i++) {
          await finishedTask(three, 'boundary_test_step', i % 3 === 0 ? 'error' : 'complete', 20);
        }
        for (let i = 0; i < 3; i++) await finishedTask(few, 'boundary_test_step', 'complete', 50);
        // unfinished steps are not executions
        const running = await seedTask(db, one, { steps: ['boundary_test_step'] });
        await driveStep(db, stepOf(running, 'boundary_test_step'), 'in_progress');

        const aggregated = await rows<StepAggregate>(
          'SELECT * FROM tasker.get_slowest_steps_aggregated(NULL, 20, 5)',
        );
        assert.deepEqual(
          aggregated.map((row) => [
            row.namespace_name,
            row.task_name,
            row.version,
            row.step_name,
            Number(row.average_duration_seconds),
            Number(row.max_duration_seconds),
            row.execution_count,
            row.error_count,
            Number(row.error_rate),
          ]),
          [
            ['test_sql', 'boundary_max_attempts_three', '1.0.0', 'boundary_test_step', 20, 20, 8, 3, 0.375],
            ['test_sql', 'boundary_max_attempts_one', '1.0.0', 'boundary_test_step', 12.5, 15, 6, 0, 0],
          ],
        );
        assert.ok(aggregated.every((row) => row.last_executed_at instanceof Date));

        // below min_executions until the threshold drops
        const loose = await rows<StepAggregate>(
          'SELECT * FROM tasker.get_slowest_steps_aggregated(NULL, 20, 2)',
        );
        assert.deepEqual(
          loose.map((row) => [row.task_name, row.execution_count]),
          [
            ['boundary_few', 3],
            ['boundary_max_attempts_three', 8],
            ['boundary_max_attempts_one', 6],
          ],
        );
        // filters and limit
        const filtered = await rows<StepAggregate>(
          `SELECT * FROM tasker.get_slowest_steps_aggregated(NULL, 20, 1, 'test_sql', 'boundary_max_attempts_one', '1.0.0')`,
        );
        assert.deepEqual(
          filtered.map((row) => row.task_name),
          ['boundary_max_attempts_one'],
        );
        assert.equal((await rows('SELECT * FROM tasker.get_slowest_steps_aggregated(NULL, 1, 1)')).length, 1);
        // a window that starts after the tasks were created sees nothing
        assert.deepEqual(
          await rows(`SELECT * FROM tasker.get_slowest_steps_aggregated(now() + interval '1 minute', 20, 1)`),
          [],
        );

        // the per-step listing: completed steps only, longest first
        const slowest = await rows<{
          step_name: string;
          task_name: string;
          namespace_name: string;
          version: string;
          duration_seconds: string;
          attempts: number;
          step_status: string;
          completed_at: Date;
          created_at: Date;
        }>('SELECT * FROM tasker.get_slowest_steps(NULL, 4)');
        assert.deepEqual(
          slowest.map((row) => [row.task_name, Number(row.duration_seconds), row.step_status, row.attempts]),
          [
            ['boundary_few', 50, 'complete', 1],
            ['boundary_few', 50, 'complete', 1],
            ['boundary_few', 50, 'complete', 1],
            ['boundary_max_attempts_three', 20, 'complete', 1],
          ],
        );
        const only = await rows<{ task_name: string }>(
          `SELECT * FROM tasker.get_slowest_steps(NULL, 10, 'test_sql', 'boundary_max_attempts_one')`,
        );
        assert.equal(only.length, 6);
      });

      it('aggregates task performance per template identity (namespace, name, version)', async () => {
        const v1 = await seedTemplate(db, { namespace: 'test_sql', name: 'pipeline', version: '1.0.0' });
        const v2 = await seedTemplate(db, { namespace: 'test_sql', name: 'pipeline', version: '2.0.0' });
        const other = await seedTemplate(db, { namespace: 'other_ns', name: 'pipeline', version: '1.0.0' });
        const twoSteps = async (template: string, states: [string, string], seconds: number) => {
          const task = await seedTask(db, template, { steps: ['extract', 'load'] });
          await driveStep(db, stepOf(task, 'extract'), states[0]);
          await driveStep(db, stepOf(task, 'load'), states[1]);
          await setTaskDuration(task, seconds);
          return task;
        };
        for (let i = 0; i < 5; i++) await twoSteps(v1, ['complete', 'complete'], 30);
        for (let i = 0; i < 5; i++) {
          const task = await seedTask(db, v2, { steps: ['extract'] });
          await driveStep(db, stepOf(task, 'extract'), 'complete');
          await setTaskDuration(task, 10);
        }
        const failedTwice = await twoSteps(other, ['error', 'error'], 60);
        await twoSteps(other, ['complete', 'error'], 60);
        for (let i = 0; i < 4; i++) await twoSteps(other, ['complete', 'complete'], 60);

        const aggregated = await rows<{
          namespace_name: string;
          task_name: string;
          version: string;
          average_duration_seconds: string;
          max_duration_seconds: string;
          execution_count: number;
          average_step_count: string;
          total_error_steps: number;
          error_task_count: number;
          error_rate: string;
          last_executed_at: Date;
        }>('SELECT * FROM tasker.get_slowest_tasks_aggregated(NULL, 10, 5)');
        assert.deepEqual(
          aggregated.map((row) => [
            row.namespace_name,
            row.task_name,
            row.version,
            Number(row.average_duration_seconds),
            Number(row.max_duration_seconds),
            row.execution_count,
            Number(row.average_step_count),
            row.total_error_steps,
            row.error_task_count,
            Number(row.error_rate),
          ]),
          [
            // 3 error steps over 6 tasks, 2 of which failed: the rate is per task (2 / 6)
            ['other_ns', 'pipeline', '1.0.0', 60, 60, 6, 2, 3, 2, 0.3333],
            ['test_sql', 'pipeline', '1.0.0', 30, 30, 5, 2, 0, 0, 0],
            ['test_sql', 'pipeline', '2.0.0', 10, 10, 5, 1, 0, 0, 0],
          ],
        );
        assert.deepEqual(await rows('SELECT * FROM tasker.get_slowest_tasks_aggregated(NULL, 10, 7)'), []);

        const slowest = await rows<{
          task_uuid: string;
          namespace_name: string;
          version: string;
          duration_seconds: string;
          step_count: number;
          completed_steps: number;
          error_steps: number;
          initiator: string;
          source_system: string;
        }>(`SELECT * FROM tasker.get_slowest_tasks(NULL, 1, 'other_ns')`);
        const top = single(slowest);
        assert.equal(Number(top.duration_seconds), 60);
        assert.equal(top.namespace_name, 'other_ns');
        assert.equal(top.step_count, 2);
        assert.equal(top.completed_steps + top.error_steps, 2);
        assert.equal(top.initiator, 'tester');
        assert.equal(top.source_system, 'test-suite');
        const byVersion = await rows<{ task_uuid: string }>(
          `SELECT * FROM tasker.get_slowest_tasks(NULL, 50, 'test_sql', 'pipeline', '2.0.0')`,
        );
        assert.equal(byVersion.length, 5);
        assert.ok(
          (await rows<{ task_uuid: string }>('SELECT * FROM tasker.get_slowest_tasks(NULL, 50)')).some(
            (row) => row.task_uuid === failedTwice.taskUuid,
          ),
        );
      });

      it('get_analytics_metrics derives counts, rates and durations from task states', async () => {
        const alphaV1 = await seedTemplate(db, { namespace: 'ns_one', name: 'alpha', version: '1.0.0' });
        const alphaV2 = await seedTemplate(db, { namespace: 'ns_one', name: 'alpha', version: '2.0.0' });
        const beta = await seedTemplate(db, { namespace: 'ns_two', name: 'beta' });
        await seedTemplate(db, { namespace: 'ns_three', name: 'unused' });

        const completed = async (template: string, taskSeconds: number, stepSeconds: number) => {
          const task = await seedTask(db, template, { steps: ['work'] });
          await driveStep(db, stepOf(task, 'work'), 'complete');
          await setStepDuration(db, stepOf(task, 'work'), stepSeconds);
          await driveTask(db, task.taskUuid, 'complete');
          await db.query(
            `UPDATE tasker.tasks SET created_at = completed_at - $2::double precision * interval '1 second'
             WHERE task_uuid = $1`,
            [task.taskUuid, taskSeconds],
          );
          return task;
        };
        await completed(alphaV1, 100, 10);
        await completed(alphaV2, 200, 30);
        const failed = await seedTask(db, beta, { steps: ['work'] });
        await driveStep(db, stepOf(failed, 'work'), 'error');
        await driveTask(db, failed.taskUuid, 'error');
        const blocked = await seedTask(db, beta);
        await driveTask(db, blocked.taskUuid, 'blocked_by_failures');
        const running = await seedTask(db, beta, { steps: ['work', 'more'] });
        await driveTask(db, running.taskUuid, 'steps_in_process');
        await seedTask(db, beta); // pending
        const old = await completed(beta, 50, 5);
        await ageTask(db, old.taskUuid, 180);

        type Metrics = {
          active_tasks_count: number;
          total_namespaces_count: number;
          unique_task_types_count: number;
          system_health_score: string;
          task_throughput: number;
          completion_count: number;
          error_count: number;
          completion_rate: string;
          error_rate: string;
          avg_task_duration: string;
          avg_step_duration: string;
          step_throughput: number;
          analysis_period_start: Date;
          calculated_at: Date;
        };
        const metrics = single(await rows<Metrics>('SELECT * FROM tasker.get_analytics_metrics()'));
        assert.equal(metrics.active_tasks_count, 3); // blocked, running, pending
        assert.equal(metrics.total_namespaces_count, 2);
        assert.equal(metrics.unique_task_types_count, 2); // ns_one/alpha (both versions), ns_two/beta
        assert.equal(metrics.task_throughput, 6);
        assert.equal(metrics.completion_count, 2);
        assert.equal(metrics.error_count, 2); // error + blocked_by_failures
        assert.equal(Number(metrics.completion_rate), 33.33);
        assert.equal(Number(metrics.error_rate), 33.33);
        assert.equal(Number(metrics.system_health_score), 0.5);
        assert.equal(Number(metrics.avg_task_duration), 150);
        assert.equal(Number(metrics.avg_step_duration), 20);
        assert.equal(metrics.step_throughput, 5); // 1 + 1 + 1 + 2
        assert.equal(
          metrics.calculated_at.getTime() - metrics.analysis_period_start.getTime(),
          60 * 60 * 1000,
        );

        const wide = single(
          await rows<Metrics>(`SELECT * FROM tasker.get_analytics_metrics(now() - interval '4 hours')`),
        );
        assert.equal(wide.task_throughput, 7);
        assert.equal(wide.completion_count, 3);
        assert.equal(Number(wide.system_health_score), 0.6);

        await resetData(db);
        const empty = single(await rows<Metrics>('SELECT * FROM tasker.get_analytics_metrics()'));
        assert.equal(Number(empty.system_health_score), 1);
        assert.equal(empty.task_throughput, 0);
        assert.equal(Number(empty.completion_rate), 0);
      });

      it('get_system_health_counts counts tasks and steps per state', async () => {
        const template = await seedTemplate(db, { namespace: 'ops', name: 'sync' });
        const running = await seedTask(db, template, {
          steps: ['s_pending', 's_enqueued', 's_running', 's_done', 's_failed', 's_retry', 's_reported'],
        });
        await driveStep(db, stepOf(running, 's_enqueued'), 'enqueued');
        await driveStep(db, stepOf(running, 's_running'), 'in_progress');
        await driveStep(db, stepOf(running, 's_done'), 'complete');
        await driveStep(db, stepOf(running, 's_failed'), 'error');
        await driveStep(db, stepOf(running, 's_retry'), 'waiting_for_retry');
        await driveStep(db, stepOf(running, 's_reported'), 'enqueued_for_orchestration');
        await driveTask(db, running.taskUuid, 'steps_in_process');
        for (const state of [
          'pending',
          'steps_in_process',
          'complete',
          'error',
          'waiting_for_retry',
          'cancelled',
        ]) {
          const task = await seedTask(db, template);
          await driveTask(db, task.taskUuid, state);
        }

        const counts = single(
          await rows<Record<string, number>>('SELECT * FROM tasker.get_system_health_counts()'),
        );
        assert.deepEqual(counts, {
          pending_tasks: 1,
          initializing_tasks: 0,
          enqueuing_steps_tasks: 0,
          steps_in_process_tasks: 2,
          evaluating_results_tasks: 0,
          waiting_for_dependencies_tasks: 0,
          waiting_for_retry_tasks: 1,
          blocked_by_failures_tasks: 0,
          complete_tasks: 1,
          error_tasks: 1,
          cancelled_tasks: 1,
          resolved_manually_tasks: 0,
          total_tasks: 7,
          pending_steps: 1,
          enqueued_steps: 1,
          in_progress_steps: 1,
          enqueued_for_orchestration_steps: 1,
          enqueued_as_error_for_orchestration_steps: 0,
          waiting_for_retry_steps: 1,
          complete_steps: 1,
          error_steps: 1,
          cancelled_steps: 0,
          resolved_manually_steps: 0,
          total_steps: 7,
        });
      });
    });

    describe('task summary', () => {
      it('returns task fields, step summaries with errors, the execution context and DLQ status', async () => {
        const configuration = { lifecycle: { max_steps_in_process_minutes: 45 }, description: 'orders' };
        const template = await seedTemplate(db, {
          namespace: 'summary',
          name: 'order_flow',
          version: '2.1.0',
          configuration,
        });
        const task = await seedTask(db, template, {
          steps: ['validate', 'charge', 'notify'],
          edges: [
            ['validate', 'charge'],
            ['validate', 'notify'],
          ],
          priority: 7,
        });
        await driveStep(db, stepOf(task, 'validate'), 'complete', { success: true, result: { ok: true } });
        await driveStep(db, stepOf(task, 'charge'), 'error', {
          success: false,
          result: {},
          error: { message: 'gateway timeout', error_type: 'timeout', retryable: false, status_code: 503 },
        });
        await driveTask(db, task.taskUuid, 'steps_in_process');

        const summary = single(
          await rows<SummaryRow>('SELECT * FROM tasker.get_task_summary($1)', [task.taskUuid]),
        );
        assert.equal(summary.task_uuid, task.taskUuid);
        assert.equal(summary.named_task_uuid, template);
        assert.equal(summary.task_name, 'order_flow');
        assert.equal(summary.task_version, '2.1.0');
        assert.equal(summary.namespace_name, 'summary');
        assert.equal(summary.task_status, 'steps_in_process');
        assert.equal(summary.priority, 7);
        assert.equal(summary.initiator, 'tester');
        assert.equal(summary.source_system, 'test-suite');
        assert.equal(summary.reason, 'seeded');
        assert.equal(summary.completed_at, null);
        assert.ok(summary.created_at instanceof Date);
        assert.ok(summary.updated_at instanceof Date);
        assert.match(summary.correlation_id, /^[0-9a-f-]{36}$/);
        assert.deepEqual(summary.template_configuration, configuration);

        const steps = summary.step_summaries;
        assert.deepEqual(
          steps.map((step) => [step.name, step.current_state]),
          [
            ['validate', 'complete'],
            ['charge', 'error'],
            ['notify', 'pending'],
          ],
        );
        const [validate, charge, notify] = steps;
        assert.ok(validate && charge && notify);
        assert.deepEqual(Object.keys(validate).sort(), [
          'attempts',
          'completed_at',
          'created_at',
          'current_state',
          'dependencies_satisfied',
          'error_retryable',
          'error_status_code',
          'error_type',
          'last_attempted_at',
          'max_attempts',
          'name',
          'ready_for_execution',
          'retry_eligible',
          'step_uuid',
        ]);
        assert.equal(validate.step_uuid, stepOf(task, 'validate'));
        assert.equal(validate.attempts, 1);
        assert.equal(validate.max_attempts, 3);
        assert.equal(typeof validate.completed_at, 'string');
        assert.equal(typeof validate.last_attempted_at, 'string');
        assert.equal(validate.error_type, null);
        assert.equal(validate.error_retryable, null);
        assert.equal(validate.error_status_code, null);
        assert.equal(charge.error_type, 'timeout');
        assert.equal(charge.error_retryable, false);
        assert.equal(charge.error_status_code, 503);
        assert.equal(charge.completed_at, null);
        assert.equal(notify.dependencies_satisfied, true);
        assert.equal(notify.retry_eligible, true);
        assert.equal(notify.ready_for_execution, true);
        assert.equal(notify.attempts, 0);
        assert.equal(notify.last_attempted_at, null);

        assert.deepEqual(summary.execution_context, {
          total_steps: 3,
          pending_steps: 1,
          in_progress_steps: 0,
          completed_steps: 1,
          failed_steps: 1,
          ready_steps: 1,
          enqueued_steps: 0,
          waiting_for_retry_steps: 0,
          completion_percentage: 33.33,
          health_status: 'blocked',
          execution_status: 'blocked_by_failures',
          recommended_action: 'handle_failures',
        });
        assert.deepEqual(summary.dlq_status, { in_dlq: false, dlq_reason: null, resolution_status: null });

        const entry = await createEntry(task, 'max_retries_exceeded');
        const inDlq = single(
          await rows<SummaryRow>('SELECT * FROM tasker.get_task_summary($1)', [task.taskUuid]),
        );
        assert.deepEqual(inDlq.dlq_status, {
          in_dlq: true,
          dlq_reason: 'max_retries_exceeded',
          resolution_status: 'pending',
          dlq_entry_uuid: entry,
        });
        await db.query(`SELECT * FROM tasker.update_dlq_entry($1, 'cancelled')`, [entry]);
        const closed = single(
          await rows<SummaryRow>('SELECT * FROM tasker.get_task_summary($1)', [task.taskUuid]),
        );
        assert.equal(closed.dlq_status.in_dlq, false);
      });

      it('get_task_summaries keeps the order asked for and skips unknown tasks', async () => {
        const template = await seedTemplate(db, { namespace: 'summary', name: 'order_flow' });
        const first = await seedTask(db, template, { steps: ['validate'] });
        const empty = await seedTask(db, template);
        const summaries = await rows<SummaryRow>(
          'SELECT * FROM tasker.get_task_summaries(ARRAY[$1, gen_random_uuid(), $2]::uuid[])',
          [empty.taskUuid, first.taskUuid],
        );
        assert.deepEqual(
          summaries.map((row) => row.task_uuid),
          [empty.taskUuid, first.taskUuid],
        );
        const [noSteps, withStep] = summaries;
        assert.ok(noSteps && withStep);
        assert.deepEqual(noSteps.step_summaries, []);
        assert.equal(noSteps.execution_context.total_steps, 0);
        assert.equal(noSteps.execution_context.execution_status, 'waiting_for_dependencies');
        assert.equal(noSteps.execution_context.completion_percentage, 0);
        assert.equal(withStep.step_summaries.length, 1);
        assert.equal(withStep.execution_context.execution_status, 'has_ready_steps');
        assert.equal(withStep.task_status, 'pending');
      });
    });
  });
}
