/**
 * The API's reads: one function per query, bound parameters only. Timestamps are formatted in SQL
 * as RFC 3339 UTC with microseconds (`2026-01-02T03:04:05.123456Z`, as B §2.3.4 shows them), so
 * both backends answer the same text.
 */
import type { Queryable } from '@tasker/db';

/** `to_char` of a timestamptz column in UTC; NULL stays NULL. */
function ts(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

const TASK_COLUMNS = `
  t.task_uuid::text, nt.name::text AS name, ns.name::text AS namespace, nt.version::text AS version,
  t.current_state::text AS status, ${ts('t.created_at')} AS created_at, ${ts('t.updated_at')} AS updated_at,
  ${ts('t.completed_at')} AS completed_at, t.context, t.initiator::text, t.source_system::text,
  t.reason::text, t.priority, t.tags, t.correlation_id::text, t.parent_correlation_id::text,
  c.total_steps, c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps, c.ready_steps,
  c.execution_status, c.recommended_action, c.completion_percentage, c.health_status`;

const TASK_JOINS = `
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid`;

/**
 * Steps in creation order; steps created together (one statement, one timestamp) in the order of
 * the template, and steps the template does not name (batch workers) after them by name. The
 * template positions of task $1 are read once per query, not once per step.
 */
const STEP_ORDER_JOINS = `
  LEFT JOIN (
    SELECT e.step ->> 'name' AS name, min(e.ord) AS ord
    FROM tasker.tasks st
    JOIN tasker.named_tasks snt ON snt.named_task_uuid = st.named_task_uuid
    CROSS JOIN LATERAL jsonb_array_elements(
      CASE WHEN jsonb_typeof(snt.configuration -> 'steps') = 'array' THEN snt.configuration -> 'steps' ELSE '[]' END
    ) WITH ORDINALITY e(step, ord)
    WHERE st.task_uuid = $1
    GROUP BY 1
  ) so ON so.name = r.name`;
const STEP_ORDER = 'ORDER BY ws.created_at, so.ord NULLS LAST, r.name';

type TaskRow = Record<string, unknown> & { task_uuid: string; tags: unknown };

/** Tags are a JSON array of strings when written by the engine; anything else lists as none. */
function tagsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((tag): tag is string => typeof tag === 'string') : [];
}

function taskOf(row: TaskRow, steps: unknown[]): Record<string, unknown> {
  return { ...row, tags: tagsOf(row.tags), steps };
}

const READINESS_COLUMNS = `
  r.workflow_step_uuid::text, r.task_uuid::text, r.named_step_uuid::text, r.name, r.current_state,
  r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution, ${ts('r.last_failure_at')} AS last_failure_at,
  ${ts('r.next_retry_at')} AS next_retry_at, r.total_parents, r.completed_parents, r.attempts, r.max_attempts,
  r.backoff_request_seconds, ${ts('r.last_attempted_at')} AS last_attempted_at`;

/** The TaskResponse of one task with its steps' readiness (one statement), or undefined. */
export async function getTask(db: Queryable, taskUuid: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.query<TaskRow & { steps: unknown[] }>(
    `SELECT ${TASK_COLUMNS},
       (SELECT coalesce(jsonb_agg(to_jsonb(s) - 'sort_created' - 'sort_ord'
                                  ORDER BY s.sort_created, s.sort_ord NULLS LAST, s.name), '[]')
        FROM (SELECT ${READINESS_COLUMNS}, ws.created_at AS sort_created, so.ord AS sort_ord
              FROM tasker.get_step_readiness_status($1) r
              JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = r.workflow_step_uuid ${STEP_ORDER_JOINS}) s
       ) AS steps
     FROM tasker.tasks t ${TASK_JOINS}
     JOIN tasker.get_task_execution_context($1) c ON c.task_uuid = t.task_uuid
     WHERE t.task_uuid = $1`,
    [taskUuid],
  );
  const row = rows[0];
  return row === undefined ? undefined : taskOf(row, row.steps);
}

export interface TaskFilter {
  namespace?: string | undefined;
  status?: string | undefined;
  initiator?: string | undefined;
  source_system?: string | undefined;
}

const FILTER = `
  WHERE ($1::text IS NULL OR ns.name = $1) AND ($2::text IS NULL OR t.current_state = $2)
    AND ($3::text IS NULL OR t.initiator = $3) AND ($4::text IS NULL OR t.source_system = $4)`;

/** One page of tasks, newest first, and how many match the filter in all. */
export async function listTasks(
  db: Queryable,
  filter: TaskFilter,
  page: number,
  perPage: number,
): Promise<{ tasks: Record<string, unknown>[]; totalCount: number }> {
  const params = [
    filter.namespace ?? null,
    filter.status ?? null,
    filter.initiator ?? null,
    filter.source_system ?? null,
  ];
  const count = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM tasker.tasks t ${TASK_JOINS} ${FILTER}`,
    params,
  );
  const totalCount = count.rows[0]?.n ?? 0;
  const offset = (page - 1) * perPage;
  if (offset >= totalCount) return { tasks: [], totalCount };
  const { rows } = await db.query<TaskRow>(
    `WITH page AS (
       SELECT t.task_uuid, t.created_at FROM tasker.tasks t ${TASK_JOINS} ${FILTER}
       ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT $5 OFFSET $6
     )
     SELECT ${TASK_COLUMNS}
     FROM page p
     JOIN tasker.tasks t ON t.task_uuid = p.task_uuid ${TASK_JOINS}
     JOIN tasker.get_task_execution_contexts_batch((SELECT array_agg(task_uuid) FROM page)) c
       ON c.task_uuid = t.task_uuid
     ORDER BY p.created_at DESC, p.task_uuid DESC`,
    [...params, perPage, offset],
  );
  return { tasks: rows.map((row) => taskOf(row, [])), totalCount };
}

export interface SummaryRow extends Record<string, unknown> {
  task_uuid: string;
  task_name: string;
  task_version: string;
  namespace_name: string;
  task_status: string;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  initiator: string | null;
  source_system: string | null;
  reason: string | null;
  correlation_id: string;
  template_configuration: unknown;
  step_summaries: unknown;
  execution_context: unknown;
  dlq_status: unknown;
}

/** `tasker.get_task_summary` with its timestamps formatted, or undefined. */
export async function getTaskSummaryRow(db: Queryable, taskUuid: string): Promise<SummaryRow | undefined> {
  const { rows } = await db.query<SummaryRow>(
    `SELECT s.task_uuid::text, s.task_name, s.task_version, s.namespace_name, s.task_status,
            ${ts('s.created_at')} AS created_at, ${ts('s.updated_at')} AS updated_at,
            ${ts('s.completed_at')} AS completed_at, s.initiator, s.source_system, s.reason,
            s.correlation_id::text, s.template_configuration, s.step_summaries, s.execution_context,
            s.dlq_status
     FROM tasker.get_task_summary($1) s`,
    [taskUuid],
  );
  return rows[0];
}

export async function taskExists(db: Queryable, taskUuid: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM tasker.tasks WHERE task_uuid = $1', [taskUuid]);
  return rowCount > 0;
}

/** StepResponses of a task (all, or the one given), in creation order. */
export async function listSteps(
  db: Queryable,
  taskUuid: string,
  stepUuid: string | null = null,
): Promise<Record<string, unknown>[]> {
  const { rows } = await db.query(
    `SELECT r.workflow_step_uuid::text AS step_uuid, r.task_uuid::text, r.name,
            ${ts('ws.created_at')} AS created_at, ${ts('ws.updated_at')} AS updated_at,
            ${ts('ws.processed_at')} AS completed_at, ws.results, r.current_state,
            r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution, r.total_parents,
            r.completed_parents, r.attempts, r.max_attempts, ${ts('r.last_failure_at')} AS last_failure_at,
            ${ts('r.next_retry_at')} AS next_retry_at, ${ts('r.last_attempted_at')} AS last_attempted_at
     FROM tasker.get_step_readiness_status($1, $2::uuid[]) r
     JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = r.workflow_step_uuid ${STEP_ORDER_JOINS}
     ${STEP_ORDER}`,
    [taskUuid, stepUuid === null ? null : [stepUuid]],
  );
  return rows;
}

/** The result audit of a step, newest first; absent values are left out (B §2.3.4). */
export async function listStepAudit(db: Queryable, stepUuid: string): Promise<Record<string, unknown>[]> {
  const { rows } = await db.query(
    `SELECT a.workflow_step_result_audit_uuid::text AS audit_uuid, a.workflow_step_uuid::text,
            a.workflow_step_transition_uuid::text AS transition_uuid, a.task_uuid::text,
            ${ts('a.recorded_at')} AS recorded_at, a.worker_uuid::text, a.correlation_id::text, a.success,
            a.execution_time_ms, tr.metadata -> 'result' AS result, ns.name::text AS step_name,
            tr.from_state::text, tr.to_state::text
     FROM tasker.workflow_step_result_audit a
     JOIN tasker.workflow_step_transitions tr ON tr.workflow_step_transition_uuid = a.workflow_step_transition_uuid
     JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = a.workflow_step_uuid
     JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
     WHERE a.workflow_step_uuid = $1
     ORDER BY a.recorded_at DESC, a.workflow_step_result_audit_uuid DESC`,
    [stepUuid],
  );
  return rows.map((row) => Object.fromEntries(Object.entries(row).filter(([, value]) => value !== null)));
}

export interface TemplateListing {
  namespaces: { name: string; description: string | null; template_count: number }[];
  templates: {
    name: string;
    namespace: string;
    version: string;
    description: string | null;
    step_count: number;
  }[];
}

/** Registered templates (optionally of one namespace) and their namespaces, by name. */
export async function listTemplates(db: Queryable, namespace: string | null): Promise<TemplateListing> {
  const { rows: templates } = await db.query<TemplateListing['templates'][number]>(
    `SELECT nt.name::text, ns.name::text AS namespace, nt.version::text, nt.description::text,
            CASE WHEN jsonb_typeof(nt.configuration -> 'steps') = 'array'
                 THEN jsonb_array_length(nt.configuration -> 'steps') ELSE 0 END AS step_count
     FROM tasker.named_tasks nt
     JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
     WHERE $1::text IS NULL OR ns.name = $1
     ORDER BY ns.name, nt.name, nt.version`,
    [namespace],
  );
  const { rows: namespaces } = await db.query<TemplateListing['namespaces'][number]>(
    `SELECT ns.name::text, ns.description::text, count(nt.named_task_uuid)::integer AS template_count
     FROM tasker.task_namespaces ns
     LEFT JOIN tasker.named_tasks nt ON nt.task_namespace_uuid = ns.task_namespace_uuid
     WHERE $1::text IS NULL OR ns.name = $1
     GROUP BY ns.task_namespace_uuid, ns.name, ns.description
     ORDER BY ns.name`,
    [namespace],
  );
  return { namespaces, templates };
}
