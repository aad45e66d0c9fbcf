/**
 * Test fixtures for the SQL functions: templates, tasks and steps inserted directly, states moved only
 * through the compare-and-swap functions (`tasker.transition_task_state` / `transition_step_state`),
 * and time shifted by rewriting timestamps into the past (no sleeping).
 */
import assert from 'node:assert/strict';
import type { Queryable, Row } from '@tasker/db';

/** Every row of the tables the core migrations own, so each test starts from an empty schema. */
export async function resetData(db: Queryable): Promise<void> {
  await db.exec(`TRUNCATE tasker.tasks_dlq, tasker.workflow_step_result_audit, tasker.workflow_step_transitions,
    tasker.workflow_step_edges, tasker.workflow_steps, tasker.task_transitions, tasker.tasks, tasker.named_tasks,
    tasker.task_namespaces, tasker.named_steps CASCADE`);
}

/** The only row of a result (fails the test when there is not exactly one). */
export function single<R extends Row>(rows: readonly R[]): R {
  assert.equal(rows.length, 1, `expected exactly one row, got ${rows.length}`);
  const [row] = rows;
  assert.ok(row);
  return row;
}

export interface TemplateSpec {
  namespace: string;
  name: string;
  version?: string;
  configuration?: Record<string, unknown>;
}

/** Finds or creates the namespace and creates the template; returns its named_task_uuid. */
export async function seedTemplate(db: Queryable, spec: TemplateSpec): Promise<string> {
  const { rows } = await db.query<{ named_task_uuid: string }>(
    `WITH ns AS (
       INSERT INTO tasker.task_namespaces (name) VALUES ($1)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
       RETURNING task_namespace_uuid
     )
     INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version, configuration)
     SELECT ns.task_namespace_uuid, $2, $3, $4::jsonb FROM ns
     RETURNING named_task_uuid`,
    [spec.namespace, spec.name, spec.version ?? '1.0.0', JSON.stringify(spec.configuration ?? {})],
  );
  return single(rows).named_task_uuid;
}

export interface SeededTask {
  taskUuid: string;
  /** Step uuids by step name. */
  steps: Record<string, string>;
}

export interface TaskSpec {
  steps?: readonly string[];
  /** Dependency edges, parent first. */
  edges?: readonly (readonly [string, string])[];
  priority?: number;
}

/** A task in `pending` with its steps in `pending`, each with its creation transition. */
export async function seedTask(
  db: Queryable,
  namedTaskUuid: string,
  spec: TaskSpec = {},
): Promise<SeededTask> {
  const task = await db.query<{ task_uuid: string }>(
    `INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id, initiator, source_system, reason, priority)
     VALUES ($1, gen_random_uuid()::text, gen_random_uuid(), 'tester', 'test-suite', 'seeded', $2)
     RETURNING task_uuid`,
    [namedTaskUuid, spec.priority ?? 0],
  );
  const taskUuid = single(task.rows).task_uuid;
  await db.query(
    `INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, most_recent)
     VALUES ($1, NULL, 'pending', 'initialize', 1, true)`,
    [taskUuid],
  );
  const steps: Record<string, string> = {};
  for (const name of spec.steps ?? []) {
    const step = await db.query<{ workflow_step_uuid: string }>(
      `WITH named AS (
         INSERT INTO tasker.named_steps (name) VALUES ($2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING named_step_uuid
       )
       INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid)
       SELECT $1, named.named_step_uuid FROM named
       RETURNING workflow_step_uuid`,
      [taskUuid, name],
    );
    const stepUuid = single(step.rows).workflow_step_uuid;
    await db.query(
      `INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, sort_key, most_recent)
       VALUES ($1, NULL, 'pending', 'initialize', 1, true)`,
      [stepUuid],
    );
    steps[name] = stepUuid;
  }
  for (const [from, to] of spec.edges ?? []) {
    await db.query('INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid) VALUES ($1, $2)', [
      stepOf({ taskUuid, steps }, from),
      stepOf({ taskUuid, steps }, to),
    ]);
  }
  return { taskUuid, steps };
}

/** A task's dependency edges by step name (parent, child, edge name), in name order. */
export async function taskEdges(
  db: Queryable,
  taskUuid: string,
): Promise<{ parent: string; child: string; name: string }[]> {
  const { rows } = await db.query<{ parent: string; child: string; name: string }>(
    `SELECT pn.name AS parent, cn.name AS child, e.name
     FROM tasker.workflow_step_edges e
     JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
     JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
     JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid
     JOIN tasker.named_steps cn ON cn.named_step_uuid = c.named_step_uuid
     WHERE c.task_uuid = $1 ORDER BY 1, 2`,
    [taskUuid],
  );
  return rows;
}

export function stepOf(task: SeededTask, name: string): string {
  const uuid = task.steps[name];
  assert.ok(uuid, `task has no step ${name}`);
  return uuid;
}

type Path = readonly (readonly [event: string, to: string])[];

const TO_STEPS_IN_PROCESS: Path = [
  ['start', 'initializing'],
  ['ready_steps_found', 'enqueuing_steps'],
  ['steps_enqueued', 'steps_in_process'],
];

/** Events (from `pending`) that reach each task state, all rows of the 0002 rule table. */
const TASK_PATHS: Record<string, Path> = {
  pending: [],
  initializing: [['start', 'initializing']],
  waiting_for_dependencies: [
    ['start', 'initializing'],
    ['no_dependencies_ready', 'waiting_for_dependencies'],
  ],
  enqueuing_steps: TO_STEPS_IN_PROCESS.slice(0, 2),
  steps_in_process: TO_STEPS_IN_PROCESS,
  waiting_for_retry: [...TO_STEPS_IN_PROCESS, ['step_failed', 'waiting_for_retry']],
  evaluating_results: [...TO_STEPS_IN_PROCESS, ['all_steps_completed', 'evaluating_results']],
  complete: [
    ...TO_STEPS_IN_PROCESS,
    ['all_steps_completed', 'evaluating_results'],
    ['all_steps_successful', 'complete'],
  ],
  error: [...TO_STEPS_IN_PROCESS, ['fail', 'error']],
  blocked_by_failures: [...TO_STEPS_IN_PROCESS, ['permanent_failure', 'blocked_by_failures']],
  cancelled: [['cancel', 'cancelled']],
  resolved_manually: [['resolve_manually', 'resolved_manually']],
};

const TO_IN_PROGRESS: Path = [
  ['enqueue', 'enqueued'],
  ['start', 'in_progress'],
];

/** Events (from `pending`) that reach each step state. */
const STEP_PATHS: Record<string, Path> = {
  pending: [],
  enqueued: TO_IN_PROGRESS.slice(0, 1),
  in_progress: TO_IN_PROGRESS,
  enqueued_for_orchestration: [
    ...TO_IN_PROGRESS,
    ['enqueue_for_orchestration', 'enqueued_for_orchestration'],
  ],
  enqueued_as_error_for_orchestration: [
    ...TO_IN_PROGRESS,
    ['enqueue_as_error_for_orchestration', 'enqueued_as_error_for_orchestration'],
  ],
  complete: [
    ...TO_IN_PROGRESS,
    ['enqueue_for_orchestration', 'enqueued_for_orchestration'],
    ['complete', 'complete'],
  ],
  error: [
    ...TO_IN_PROGRESS,
    ['enqueue_as_error_for_orchestration', 'enqueued_as_error_for_orchestration'],
    ['fail', 'error'],
  ],
  waiting_for_retry: [
    ...TO_IN_PROGRESS,
    ['enqueue_as_error_for_orchestration', 'enqueued_as_error_for_orchestration'],
    ['wait_for_retry', 'waiting_for_retry'],
  ],
  cancelled: [['cancel', 'cancelled']],
  resolved_manually: [['resolve_manually', 'resolved_manually']],
};

function pathTo(paths: Record<string, Path>, state: string): Path {
  const path = paths[state];
  assert.ok(path, `no path to state ${state}`);
  return path;
}

/** Moves a pending task to `state` through the task CAS, one allowed event at a time. */
export async function driveTask(db: Queryable, taskUuid: string, state: string): Promise<void> {
  let from = 'pending';
  for (const [event, to] of pathTo(TASK_PATHS, state)) {
    const { rows } = await db.query<{ ok: boolean }>(
      'SELECT tasker.transition_task_state($1, $2, $3, $4) AS ok',
      [taskUuid, from, event, to],
    );
    assert.equal(single(rows).ok, true, `task ${from} -[${event}]-> ${to} refused`);
    from = to;
  }
}

/**
 * Moves a pending step to `state` through the step CAS. `results` go with the worker's result
 * (the transition to enqueued_(as_error_)for_orchestration).
 */
export async function driveStep(
  db: Queryable,
  stepUuid: string,
  state: string,
  results?: unknown,
): Promise<void> {
  let from = 'pending';
  for (const [event, to] of pathTo(STEP_PATHS, state)) {
    const carriesResult = to === 'enqueued_for_orchestration' || to === 'enqueued_as_error_for_orchestration';
    const { rows } = await db.query<{ ok: boolean }>(
      'SELECT tasker.transition_step_state($1, $2, $3, $4, NULL, $5::jsonb, $6::jsonb) AS ok',
      [
        stepUuid,
        from,
        event,
        to,
        '{}',
        carriesResult && results !== undefined ? JSON.stringify(results) : null,
      ],
    );
    assert.equal(single(rows).ok, true, `step ${from} -[${event}]-> ${to} refused`);
    from = to;
  }
}

/** Pretends the task entered its current state `minutes` ago (row and current transition). */
export async function ageTaskState(db: Queryable, taskUuid: string, minutes: number): Promise<void> {
  await db.query(
    `UPDATE tasker.tasks SET state_entered_at = now() - $2::double precision * interval '1 minute' WHERE task_uuid = $1`,
    [taskUuid, minutes],
  );
  await db.query(
    `UPDATE tasker.task_transitions SET created_at = now() - $2::double precision * interval '1 minute'
     WHERE task_uuid = $1 AND most_recent`,
    [taskUuid, minutes],
  );
}

/** Pretends the task was created `minutes` ago. */
export async function ageTask(db: Queryable, taskUuid: string, minutes: number): Promise<void> {
  await db.query(
    `UPDATE tasker.tasks SET created_at = now() - $2::double precision * interval '1 minute' WHERE task_uuid = $1`,
    [taskUuid, minutes],
  );
}

/** Makes a finished step appear to have taken `seconds` from its creation to its current state. */
export async function setStepDuration(db: Queryable, stepUuid: string, seconds: number): Promise<void> {
  await db.query(
    `UPDATE tasker.workflow_steps SET created_at = state_entered_at - $2::double precision * interval '1 second'
     WHERE workflow_step_uuid = $1`,
    [stepUuid, seconds],
  );
}

/** Writes a batch worker checkpoint whose `timestamp` is `timestamp` (any JSON value). */
export async function writeCheckpoint(db: Queryable, stepUuid: string, timestamp: unknown): Promise<void> {
  await db.query(
    `UPDATE tasker.workflow_steps
     SET checkpoint = jsonb_build_object('cursor', 100, 'items_processed', 100, 'timestamp', $2::jsonb, 'history', '[]'::jsonb)
     WHERE workflow_step_uuid = $1`,
    [stepUuid, JSON.stringify(timestamp)],
  );
}

/** Writes a batch worker checkpoint stamped `minutes` minutes ago (ISO 8601, as workers write it). */
export async function writeCheckpointAgo(db: Queryable, stepUuid: string, minutes: number): Promise<void> {
  const { rows } = await db.query<{ at: Date }>(
    `SELECT now() - $1::double precision * interval '1 minute' AS at`,
    [minutes],
  );
  await writeCheckpoint(db, stepUuid, single(rows).at.toISOString());
}
