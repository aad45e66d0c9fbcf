-- Tasker operations (reference A §1.12, §2.7, §2.8, §5.4): staleness detection, the DLQ
-- investigation tracker, analytics and the task summary. Assumes 0001–0003. Every function is one
-- round trip; time is read from now() (the transaction's clock) unless a CAS writes it.
--
-- Differences from the original, each deliberate:
--   * State is read from tasks/workflow_steps.current_state and state_entered_at (kept by the CAS
--     functions of 0003) instead of joining the most recent transition.
--   * Batch workers (A §6.3): a task in steps_in_process whose in-progress step wrote a checkpoint
--     less than p_checkpoint_stall_minutes ago is not stale by its time in state. The original
--     applied this only after acting (it changed reporting, not behaviour). The lifetime cap
--     (p_max_lifetime_hours) still applies: it is the hard ceiling.
--   * Template overrides (lifecycle.max_*_minutes) that are not a positive number fall back to the
--     default instead of failing the whole scan with a cast error.
--   * create_dlq_entry no longer swallows every error: only "a pending entry already exists" yields
--     NULL (ON CONFLICT on the partial unique index); anything else (unknown task, bad reason) raises.
--   * detect_and_transition_stale_tasks locks each task row (FOR UPDATE SKIP LOCKED, re-checking its
--     state) before acting, so two detectors never act on the same task, and a task that moved on
--     since discovery gets no DLQ entry. The error transition goes through
--     tasker.transition_task_state (the CAS, event staleness_timeout); errors are not swallowed.
--   * Analytics (A §9 #12): active tasks, completions, errors and the health score come from task
--     states (the original derived them from step states and a non-existent `skipped` state), and
--     get_slowest_tasks_aggregated.error_rate is the share of tasks with an error step (it was error
--     steps per task, which could exceed 1). Analysis windows are by task creation time.
--   * The investigation queue shows the task's live current_state (the original repeated the
--     snapshot's, i.e. original_state).
--   * The task summary reads the step error type from results.error.error_type (the field the
--     StepExecutionResult contract writes), falling back to results.error.type.

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- A JSON number (or a string of digits) as an integer; NULL for anything else or out of range.
-- Nested CASEs keep the casts behind their type checks, also when the planner folds constants.
CREATE FUNCTION tasker.jsonb_to_integer(p_value jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(p_value)
    WHEN 'number' THEN
      CASE WHEN p_value::numeric BETWEEN -2147483648 AND 2147483647 THEN round(p_value::numeric)::integer END
    WHEN 'string' THEN
      CASE WHEN p_value #>> '{}' ~ '^\s*-?[0-9]{1,9}\s*$' THEN btrim(p_value #>> '{}')::integer END
  END
$$;

-- When a batch worker last checkpointed: checkpoint.timestamp (ISO 8601), NULL when absent or not
-- a valid time (a malformed checkpoint is no proof of progress, and must not fail detection).
CREATE FUNCTION tasker.checkpoint_time(p_checkpoint jsonb) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_text text := p_checkpoint ->> 'timestamp';
BEGIN
  IF v_text IS NULL OR v_text !~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN
    RETURN NULL;
  END IF;
  BEGIN
    RETURN v_text::timestamptz;
  EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value THEN
    RETURN NULL;
  END;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Staleness (A §2.7)
-- ---------------------------------------------------------------------------------------------

-- Minutes a task may stay in a state before it is stale: the template's
-- lifecycle.max_{waiting_for_dependencies,waiting_for_retry,steps_in_process}_minutes when it is a
-- positive number, else the given default; 1440 for every other state.
CREATE FUNCTION tasker.calculate_staleness_threshold(
  p_state text, p_template_config jsonb,
  p_default_waiting_deps integer DEFAULT 60, p_default_waiting_retry integer DEFAULT 30,
  p_default_steps_process integer DEFAULT 30
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE p_state
    WHEN 'waiting_for_dependencies' THEN coalesce(
      CASE WHEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_waiting_for_dependencies_minutes') > 0
           THEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_waiting_for_dependencies_minutes') END,
      p_default_waiting_deps)
    WHEN 'waiting_for_retry' THEN coalesce(
      CASE WHEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_waiting_for_retry_minutes') > 0
           THEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_waiting_for_retry_minutes') END,
      p_default_waiting_retry)
    WHEN 'steps_in_process' THEN coalesce(
      CASE WHEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_steps_in_process_minutes') > 0
           THEN tasker.jsonb_to_integer(p_template_config -> 'lifecycle' -> 'max_steps_in_process_minutes') END,
      p_default_steps_process)
    ELSE 1440
  END
$$;

-- Incomplete tasks with their template, namespace and how long they have been in their state:
-- the base of staleness monitoring and detection.
CREATE VIEW tasker.v_task_state_analysis AS
SELECT t.task_uuid,
       t.correlation_id,
       ns.name AS namespace_name,
       ns.task_namespace_uuid AS namespace_uuid,
       nt.name AS task_name,
       nt.version AS task_version,
       nt.named_task_uuid,
       nt.configuration AS template_config,
       t.current_state,
       t.state_entered_at,
       extract(epoch FROM now() - t.state_entered_at) / 60 AS time_in_state_minutes,
       extract(epoch FROM now() - t.created_at) / 60 AS task_age_minutes,
       t.priority,
       t.complete
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
WHERE NOT t.complete;

-- Tasks in a staleness-eligible state with their threshold (defaults 60/30/30, template overrides)
-- and health: stale at >= 100% of the threshold, warning at >= 80%, else healthy. Also the latest
-- checkpoint of their in-progress steps (a fresh one exempts the task from detection). Ordered by
-- time in state, longest first (callers adding clauses should order explicitly).
CREATE VIEW tasker.v_task_staleness_monitoring AS
SELECT a.task_uuid,
       a.namespace_name,
       a.task_name,
       a.task_version,
       a.current_state,
       a.state_entered_at,
       a.time_in_state_minutes,
       a.task_age_minutes,
       th.minutes AS staleness_threshold_minutes,
       CASE
         WHEN a.time_in_state_minutes >= th.minutes THEN 'stale'
         WHEN a.time_in_state_minutes >= th.minutes * 0.8 THEN 'warning'
         ELSE 'healthy'
       END AS health_status,
       a.priority,
       cp.last_checkpoint_at
FROM tasker.v_task_state_analysis a
CROSS JOIN LATERAL (
  SELECT tasker.calculate_staleness_threshold(a.current_state, a.template_config, 60, 30, 30) AS minutes
) th
LEFT JOIN LATERAL (
  SELECT max(tasker.checkpoint_time(ws.checkpoint)) AS last_checkpoint_at
  FROM tasker.workflow_steps ws
  WHERE ws.task_uuid = a.task_uuid AND ws.checkpoint IS NOT NULL AND ws.current_state = 'in_progress'
) cp ON true
WHERE a.current_state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')
ORDER BY a.time_in_state_minutes DESC, a.task_uuid;

-- Stale tasks, most stale (longest in state) first, at most p_batch_size: tasks in
-- waiting_for_dependencies, waiting_for_retry or steps_in_process with no pending DLQ entry, whose
-- time in state reached their threshold (per-template overrides) or whose age reached
-- p_max_lifetime_hours. A steps_in_process task is not stale by time in state while one of its
-- in-progress steps has a checkpoint newer than p_checkpoint_stall_minutes (batch workers making
-- progress); the lifetime cap applies regardless. Invalid arguments raise TK003.
CREATE FUNCTION tasker.get_stale_tasks_for_dlq(
  p_default_waiting_deps integer DEFAULT 60, p_default_waiting_retry integer DEFAULT 30,
  p_default_steps_process integer DEFAULT 30, p_max_lifetime_hours integer DEFAULT 24,
  p_batch_size integer DEFAULT 100, p_checkpoint_stall_minutes integer DEFAULT 15
) RETURNS TABLE (
  task_uuid uuid, namespace_name text, task_name text, current_state text,
  time_in_state_minutes numeric, threshold_minutes integer, task_age_minutes numeric
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF p_batch_size IS NULL OR p_batch_size < 1 THEN
    RAISE EXCEPTION 'batch size must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  IF p_default_waiting_deps IS NULL OR p_default_waiting_deps < 1
     OR p_default_waiting_retry IS NULL OR p_default_waiting_retry < 1
     OR p_default_steps_process IS NULL OR p_default_steps_process < 1
     OR p_max_lifetime_hours IS NULL OR p_max_lifetime_hours < 1 THEN
    RAISE EXCEPTION 'staleness thresholds and the maximum lifetime must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  IF p_checkpoint_stall_minutes IS NULL OR p_checkpoint_stall_minutes < 0 THEN
    RAISE EXCEPTION 'checkpoint stall minutes must be >= 0' USING ERRCODE = 'TK003';
  END IF;
  RETURN QUERY
  SELECT c.task_uuid, c.namespace_name::text, c.task_name::text, c.current_state::text,
         c.time_in_state_minutes, c.threshold, c.task_age_minutes
  FROM (
    SELECT a.task_uuid, a.namespace_name, a.task_name, a.current_state, a.time_in_state_minutes,
           a.task_age_minutes,
           tasker.calculate_staleness_threshold(a.current_state, a.template_config, p_default_waiting_deps,
                                                p_default_waiting_retry, p_default_steps_process) AS threshold
    FROM tasker.v_task_state_analysis a
    WHERE a.current_state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')
      AND NOT EXISTS (
        SELECT 1 FROM tasker.tasks_dlq d WHERE d.task_uuid = a.task_uuid AND d.resolution_status = 'pending'
      )
  ) c
  WHERE c.task_age_minutes >= p_max_lifetime_hours * 60
     OR (c.time_in_state_minutes >= c.threshold
         AND NOT (c.current_state = 'steps_in_process' AND EXISTS (
           SELECT 1 FROM tasker.workflow_steps ws
           WHERE ws.task_uuid = c.task_uuid AND ws.checkpoint IS NOT NULL AND ws.current_state = 'in_progress'
             AND tasker.checkpoint_time(ws.checkpoint) > now() - make_interval(mins => p_checkpoint_stall_minutes))))
  ORDER BY c.time_in_state_minutes DESC, c.task_uuid
  LIMIT p_batch_size;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- DLQ (A §1.11, §5.4)
-- ---------------------------------------------------------------------------------------------

-- Opens a DLQ investigation for a task: snapshot (task, detection figures, task details and its
-- steps' states) and metadata. Returns the new entry's uuid, or NULL when the task already has a
-- pending entry. Any other failure raises (an unknown task is a foreign key violation).
CREATE FUNCTION tasker.create_dlq_entry(
  p_task_uuid uuid, p_namespace_name text, p_task_name text, p_current_state text,
  p_time_in_state_minutes numeric, p_threshold_minutes integer,
  p_dlq_reason tasker.dlq_reason DEFAULT 'staleness_timeout'
) RETURNS uuid
LANGUAGE sql AS $$
  INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot, metadata)
  SELECT p_task_uuid, p_current_state, coalesce(p_dlq_reason, 'staleness_timeout'),
         jsonb_build_object(
           'task_uuid', p_task_uuid,
           'namespace', p_namespace_name,
           'task_name', p_task_name,
           'current_state', p_current_state,
           'time_in_state_minutes', floor(p_time_in_state_minutes)::integer,
           'threshold_minutes', p_threshold_minutes,
           'snapshot_timestamp', now(),
           'task_details', jsonb_build_object(
             'correlation_id', t.correlation_id,
             'priority', t.priority,
             'requested_at', t.requested_at,
             'created_at', t.created_at,
             'state_entered_at', t.state_entered_at
           ),
           'steps', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'workflow_step_uuid', ws.workflow_step_uuid,
                      'name', nst.name,
                      'current_state', ws.current_state,
                      'state_entered_at', ws.state_entered_at,
                      'attempts', ws.attempts,
                      'max_attempts', ws.max_attempts
                    ) ORDER BY ws.created_at, ws.workflow_step_uuid)
             FROM tasker.workflow_steps ws
             JOIN tasker.named_steps nst ON nst.named_step_uuid = ws.named_step_uuid
             WHERE ws.task_uuid = p_task_uuid
           ), '[]'::jsonb)
         ),
         jsonb_build_object(
           'detection_method',
             CASE WHEN coalesce(p_dlq_reason, 'staleness_timeout') = 'staleness_timeout'
                  THEN 'automatic_staleness' ELSE 'explicit' END,
           'time_in_state_minutes', floor(p_time_in_state_minutes)::integer,
           'threshold_minutes', p_threshold_minutes
         )
  -- a left join, so that an unknown task reaches the insert and fails on the foreign key
  FROM (SELECT 1) one
  LEFT JOIN tasker.tasks t ON t.task_uuid = p_task_uuid
  ON CONFLICT (task_uuid) WHERE resolution_status = 'pending' DO NOTHING
  RETURNING dlq_entry_uuid
$$;

-- The staleness detector (A §5.4), run periodically. Discovers stale tasks once, then per task:
--   dry run: reports would_transition_to_dlq_and_error and changes nothing;
--   otherwise: locks the task row if it is still in the discovered state (skipping it, unreported,
--   when another transaction holds it or it moved on), opens a DLQ entry (staleness_timeout) and
--   moves the task to error through the CAS with event staleness_timeout. action_taken is
--   transitioned_to_dlq_and_error, moved_to_dlq_only, transitioned_to_error_only or
--   transition_failed. Steps are left untouched.
CREATE FUNCTION tasker.detect_and_transition_stale_tasks(
  p_dry_run boolean DEFAULT true, p_batch_size integer DEFAULT 100,
  p_default_waiting_deps integer DEFAULT 60, p_default_waiting_retry integer DEFAULT 30,
  p_default_steps_process integer DEFAULT 30, p_max_lifetime_hours integer DEFAULT 24,
  p_checkpoint_stall_minutes integer DEFAULT 15
) RETURNS TABLE (
  task_uuid uuid, namespace_name text, task_name text, current_state text,
  time_in_state_minutes integer, staleness_threshold_minutes integer, action_taken text,
  moved_to_dlq boolean, transition_success boolean, dlq_entry_uuid uuid
)
LANGUAGE plpgsql AS $$
DECLARE
  v_stale record;
  v_entry uuid;
  v_success boolean;
BEGIN
  FOR v_stale IN
    SELECT s.* FROM tasker.get_stale_tasks_for_dlq(p_default_waiting_deps, p_default_waiting_retry,
                                                   p_default_steps_process, p_max_lifetime_hours,
                                                   p_batch_size, p_checkpoint_stall_minutes) s
  LOOP
    task_uuid := v_stale.task_uuid;
    namespace_name := v_stale.namespace_name;
    task_name := v_stale.task_name;
    current_state := v_stale.current_state;
    time_in_state_minutes := floor(v_stale.time_in_state_minutes)::integer;
    staleness_threshold_minutes := v_stale.threshold_minutes;
    IF coalesce(p_dry_run, true) THEN
      action_taken := 'would_transition_to_dlq_and_error';
      moved_to_dlq := false;
      transition_success := false;
      dlq_entry_uuid := NULL;
      RETURN NEXT;
      CONTINUE;
    END IF;
    PERFORM 1 FROM tasker.tasks t
    WHERE t.task_uuid = v_stale.task_uuid AND t.current_state = v_stale.current_state
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      CONTINUE;
    END IF;
    v_entry := tasker.create_dlq_entry(v_stale.task_uuid, v_stale.namespace_name, v_stale.task_name,
                                       v_stale.current_state, v_stale.time_in_state_minutes,
                                       v_stale.threshold_minutes, 'staleness_timeout');
    v_success := tasker.transition_task_state(
      v_stale.task_uuid, v_stale.current_state, 'staleness_timeout', 'error', NULL,
      jsonb_build_object('reason', 'staleness_timeout', 'namespace', v_stale.namespace_name,
                         'task_name', v_stale.task_name, 'detected_at', now(), 'dlq_entry_uuid', v_entry));
    action_taken := CASE
      WHEN v_entry IS NOT NULL AND v_success THEN 'transitioned_to_dlq_and_error'
      WHEN v_entry IS NOT NULL THEN 'moved_to_dlq_only'
      WHEN v_success THEN 'transitioned_to_error_only'
      ELSE 'transition_failed'
    END;
    moved_to_dlq := v_entry IS NOT NULL;
    transition_success := coalesce(v_success, false);
    dlq_entry_uuid := v_entry;
    RETURN NEXT;
  END LOOP;
END;
$$;

-- Updates a DLQ investigation: each supplied (non-NULL) field overwrites the stored one. Setting a
-- status stamps resolution_timestamp (cleared again when the status is set back to pending).
-- Returns the updated row, or no row for an unknown entry. Resolving frees the task's
-- one-pending-entry slot, so the task can be detected again.
CREATE FUNCTION tasker.update_dlq_entry(
  p_dlq_entry_uuid uuid, p_resolution_status tasker.dlq_resolution_status DEFAULT NULL,
  p_resolution_notes text DEFAULT NULL, p_resolved_by text DEFAULT NULL, p_metadata jsonb DEFAULT NULL
) RETURNS SETOF tasker.tasks_dlq
LANGUAGE sql AS $$
  UPDATE tasker.tasks_dlq d
  SET resolution_status = coalesce(p_resolution_status, d.resolution_status),
      resolution_timestamp = CASE
        WHEN p_resolution_status IS NULL THEN d.resolution_timestamp
        WHEN p_resolution_status = 'pending' THEN NULL
        ELSE now()
      END,
      resolution_notes = coalesce(p_resolution_notes, d.resolution_notes),
      resolved_by = coalesce(p_resolved_by, d.resolved_by),
      metadata = coalesce(p_metadata, d.metadata)
  WHERE d.dlq_entry_uuid = p_dlq_entry_uuid
  RETURNING d.*
$$;

-- DLQ statistics per reason (snake_case): entries by resolution status, oldest and newest entry,
-- and the average minutes to resolution (entries still pending count up to now, as in the original).
CREATE VIEW tasker.v_dlq_dashboard AS
SELECT d.dlq_reason::text AS dlq_reason,
       count(*) AS total_entries,
       count(*) FILTER (WHERE d.resolution_status = 'pending') AS pending,
       count(*) FILTER (WHERE d.resolution_status = 'manually_resolved') AS manually_resolved,
       count(*) FILTER (WHERE d.resolution_status = 'permanently_failed') AS permanent_failures,
       count(*) FILTER (WHERE d.resolution_status = 'cancelled') AS cancelled,
       min(d.dlq_timestamp) AS oldest_entry,
       max(d.dlq_timestamp) AS newest_entry,
       avg(extract(epoch FROM coalesce(d.resolution_timestamp, now()) - d.dlq_timestamp) / 60)
         AS avg_resolution_time_minutes
FROM tasker.tasks_dlq d
GROUP BY d.dlq_reason;

-- Pending investigations, most urgent first: priority_score = reason weight
-- (dependency_cycle_detected 1000, max_retries_exceeded 500, staleness_timeout 100,
-- worker_unavailable 50, manual_dlq 10) + minutes in the DLQ. Names come from the snapshot (the
-- live template as fallback), current_state is the task's state now.
CREATE VIEW tasker.v_dlq_investigation_queue AS
SELECT q.dlq_entry_uuid,
       q.task_uuid,
       q.original_state,
       q.dlq_reason,
       q.dlq_timestamp,
       q.minutes_in_dlq,
       q.namespace_name,
       q.task_name,
       q.current_state,
       q.time_in_state_minutes,
       q.reason_weight + q.minutes_in_dlq AS priority_score
FROM (
  SELECT d.dlq_entry_uuid,
         d.task_uuid,
         d.original_state::text AS original_state,
         d.dlq_reason::text AS dlq_reason,
         d.dlq_timestamp,
         extract(epoch FROM now() - d.dlq_timestamp) / 60 AS minutes_in_dlq,
         coalesce(d.task_snapshot ->> 'namespace', ns.name::text) AS namespace_name,
         coalesce(d.task_snapshot ->> 'task_name', nt.name::text) AS task_name,
         t.current_state::text AS current_state,
         coalesce(tasker.jsonb_to_integer(d.task_snapshot -> 'time_in_state_minutes'),
                  tasker.jsonb_to_integer(d.metadata -> 'time_in_state_minutes')) AS time_in_state_minutes,
         CASE d.dlq_reason
           WHEN 'dependency_cycle_detected' THEN 1000
           WHEN 'max_retries_exceeded' THEN 500
           WHEN 'staleness_timeout' THEN 100
           WHEN 'worker_unavailable' THEN 50
           ELSE 10
         END AS reason_weight
  FROM tasker.tasks_dlq d
  JOIN tasker.tasks t ON t.task_uuid = d.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
  WHERE d.resolution_status = 'pending'
) q
ORDER BY priority_score DESC, q.dlq_timestamp, q.dlq_entry_uuid;

-- ---------------------------------------------------------------------------------------------
-- Analytics (A §2.8, B §2.3.7). Windows are by task creation time (tasks_created_idx), so a step
-- counts when its task was created in the window. Durations are in seconds.
-- ---------------------------------------------------------------------------------------------

-- Performance metrics since p_since (default: the last hour). Counts and rates are task states of
-- the tasks created in the window: completions are tasks in complete, errors tasks in error or
-- blocked_by_failures; rates are percentages of the tasks created; the health score is
-- completions / (completions + errors), 1.0 when there are none. active_tasks_count counts every
-- task in a non-terminal state; namespaces and task types (namespace + name) count those with
-- tasks. Task duration: completed_at - created_at of completed tasks; step duration: completion
-- time - created_at of completed steps of those tasks.
CREATE FUNCTION tasker.get_analytics_metrics(p_since timestamptz DEFAULT NULL)
RETURNS TABLE (
  active_tasks_count bigint, total_namespaces_count bigint, unique_task_types_count bigint,
  system_health_score numeric, task_throughput bigint, completion_count bigint, error_count bigint,
  completion_rate numeric, error_rate numeric, avg_task_duration numeric, avg_step_duration numeric,
  step_throughput bigint, analysis_period_start timestamptz, calculated_at timestamptz
)
LANGUAGE sql STABLE AS $$
  WITH win AS (
    SELECT coalesce(p_since, now() - interval '1 hour') AS since
  ), recent AS (
    SELECT t.task_uuid, t.current_state, t.created_at, t.completed_at
    FROM tasker.tasks t, win
    WHERE t.created_at > win.since
  ), period AS (
    SELECT count(*) AS throughput,
           count(*) FILTER (WHERE r.current_state = 'complete') AS completions,
           count(*) FILTER (WHERE r.current_state IN ('error', 'blocked_by_failures')) AS errors,
           avg(extract(epoch FROM r.completed_at - r.created_at))
             FILTER (WHERE r.current_state = 'complete' AND r.completed_at IS NOT NULL) AS avg_task_seconds
    FROM recent r
  ), step_period AS (
    SELECT count(*) AS step_count,
           avg(extract(epoch FROM ws.state_entered_at - ws.created_at))
             FILTER (WHERE ws.current_state = 'complete') AS avg_step_seconds
    FROM recent r
    JOIN tasker.workflow_steps ws ON ws.task_uuid = r.task_uuid
  )
  SELECT
    (SELECT count(*) FROM tasker.tasks t
     WHERE t.current_state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')),
    (SELECT count(*) FROM tasker.task_namespaces ns
     WHERE EXISTS (SELECT 1 FROM tasker.named_tasks nt JOIN tasker.tasks t ON t.named_task_uuid = nt.named_task_uuid
                   WHERE nt.task_namespace_uuid = ns.task_namespace_uuid)),
    (SELECT count(*) FROM (
       SELECT DISTINCT nt.task_namespace_uuid, nt.name FROM tasker.named_tasks nt
       WHERE EXISTS (SELECT 1 FROM tasker.tasks t WHERE t.named_task_uuid = nt.named_task_uuid)) types),
    CASE WHEN p.completions + p.errors > 0
         THEN round(p.completions::numeric / (p.completions + p.errors), 3) ELSE 1.0 END,
    p.throughput,
    p.completions,
    p.errors,
    CASE WHEN p.throughput > 0 THEN round(p.completions::numeric * 100 / p.throughput, 2) ELSE 0.0 END,
    CASE WHEN p.throughput > 0 THEN round(p.errors::numeric * 100 / p.throughput, 2) ELSE 0.0 END,
    round(coalesce(p.avg_task_seconds, 0), 3),
    round(coalesce(s.avg_step_seconds, 0), 3),
    s.step_count,
    win.since,
    now()
  FROM period p, step_period s, win
$$;

-- How many tasks are in each of the 12 task states and steps in each of the 10 step states.
CREATE FUNCTION tasker.get_system_health_counts()
RETURNS TABLE (
  pending_tasks bigint, initializing_tasks bigint, enqueuing_steps_tasks bigint, steps_in_process_tasks bigint,
  evaluating_results_tasks bigint, waiting_for_dependencies_tasks bigint, waiting_for_retry_tasks bigint,
  blocked_by_failures_tasks bigint, complete_tasks bigint, error_tasks bigint, cancelled_tasks bigint,
  resolved_manually_tasks bigint, total_tasks bigint,
  pending_steps bigint, enqueued_steps bigint, in_progress_steps bigint, enqueued_for_orchestration_steps bigint,
  enqueued_as_error_for_orchestration_steps bigint, waiting_for_retry_steps bigint, complete_steps bigint,
  error_steps bigint, cancelled_steps bigint, resolved_manually_steps bigint, total_steps bigint
)
LANGUAGE sql STABLE AS $$
  SELECT tc.*, sc.*
  FROM (
    SELECT count(*) FILTER (WHERE t.current_state = 'pending'),
           count(*) FILTER (WHERE t.current_state = 'initializing'),
           count(*) FILTER (WHERE t.current_state = 'enqueuing_steps'),
           count(*) FILTER (WHERE t.current_state = 'steps_in_process'),
           count(*) FILTER (WHERE t.current_state = 'evaluating_results'),
           count(*) FILTER (WHERE t.current_state = 'waiting_for_dependencies'),
           count(*) FILTER (WHERE t.current_state = 'waiting_for_retry'),
           count(*) FILTER (WHERE t.current_state = 'blocked_by_failures'),
           count(*) FILTER (WHERE t.current_state = 'complete'),
           count(*) FILTER (WHERE t.current_state = 'error'),
           count(*) FILTER (WHERE t.current_state = 'cancelled'),
           count(*) FILTER (WHERE t.current_state = 'resolved_manually'),
           count(*)
    FROM tasker.tasks t
  ) tc, (
    SELECT count(*) FILTER (WHERE ws.current_state = 'pending'),
           count(*) FILTER (WHERE ws.current_state = 'enqueued'),
           count(*) FILTER (WHERE ws.current_state = 'in_progress'),
           count(*) FILTER (WHERE ws.current_state = 'enqueued_for_orchestration'),
           count(*) FILTER (WHERE ws.current_state = 'enqueued_as_error_for_orchestration'),
           count(*) FILTER (WHERE ws.current_state = 'waiting_for_retry'),
           count(*) FILTER (WHERE ws.current_state = 'complete'),
           count(*) FILTER (WHERE ws.current_state = 'error'),
           count(*) FILTER (WHERE ws.current_state = 'cancelled'),
           count(*) FILTER (WHERE ws.current_state = 'resolved_manually'),
           count(*)
    FROM tasker.workflow_steps ws
  ) sc
$$;

-- The steps of the tasks created since p_since (default: 24 hours), optionally of one template,
-- with their names and duration (from the step's creation to its current state, which for a
-- finished step is its completion or failure). The shared base of the four "slowest" functions;
-- a plain SQL function, inlined into each.
CREATE FUNCTION tasker.analytics_steps(
  p_since timestamptz, p_namespace_name text, p_task_name text, p_version text
) RETURNS TABLE (
  namespace_name text, task_name text, version text, task_uuid uuid, task_created_at timestamptz,
  initiator text, source_system text, workflow_step_uuid uuid, step_name text, current_state text,
  attempts integer, retryable boolean, created_at timestamptz, state_entered_at timestamptz, seconds numeric
)
LANGUAGE sql STABLE AS $$
  SELECT ns.name::text, nt.name::text, nt.version::text, t.task_uuid, t.created_at, t.initiator::text,
         t.source_system::text, ws.workflow_step_uuid, nst.name::text, ws.current_state::text, ws.attempts,
         ws.retryable, ws.created_at, ws.state_entered_at, extract(epoch FROM ws.state_entered_at - ws.created_at)
  FROM tasker.tasks t
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
  JOIN tasker.workflow_steps ws ON ws.task_uuid = t.task_uuid
  JOIN tasker.named_steps nst ON nst.named_step_uuid = ws.named_step_uuid
  WHERE t.created_at > coalesce(p_since, now() - interval '24 hours')
    AND (p_namespace_name IS NULL OR ns.name = p_namespace_name)
    AND (p_task_name IS NULL OR nt.name = p_task_name)
    AND (p_version IS NULL OR nt.version = p_version)
$$;

-- Per task of analytics_steps: duration from the task's creation to its latest step completion or
-- failure, with its step, completed-step and error-step counts (tasks with a finished step only).
CREATE FUNCTION tasker.analytics_task_finishes(
  p_since timestamptz, p_namespace_name text, p_task_name text, p_version text
) RETURNS TABLE (
  task_uuid uuid, namespace_name text, task_name text, version text, created_at timestamptz,
  initiator text, source_system text, latest_finish timestamptz, seconds numeric,
  step_count bigint, completed_steps bigint, error_steps bigint
)
LANGUAGE sql STABLE AS $$
  SELECT f.task_uuid, f.namespace_name, f.task_name, f.version, f.created_at, f.initiator, f.source_system,
         f.latest_finish, extract(epoch FROM f.latest_finish - f.created_at), f.step_count, f.completed_steps,
         f.error_steps
  FROM (
    SELECT s.task_uuid, s.namespace_name, s.task_name, s.version, s.task_created_at AS created_at, s.initiator,
           s.source_system,
           max(s.state_entered_at) FILTER (WHERE s.current_state IN ('complete', 'error')) AS latest_finish,
           count(*) AS step_count,
           count(*) FILTER (WHERE s.current_state = 'complete') AS completed_steps,
           count(*) FILTER (WHERE s.current_state = 'error') AS error_steps
    FROM tasker.analytics_steps(p_since, p_namespace_name, p_task_name, p_version) s
    GROUP BY s.task_uuid, s.namespace_name, s.task_name, s.version, s.task_created_at, s.initiator, s.source_system
  ) f
  WHERE f.latest_finish IS NOT NULL
$$;

-- The slowest completed steps of tasks created since p_since (default: 24 hours): duration from
-- the step's creation to its completion (> 0 only), longest first; optional template filters.
CREATE FUNCTION tasker.get_slowest_steps(
  p_since timestamptz DEFAULT NULL, p_limit integer DEFAULT 10,
  p_namespace_name text DEFAULT NULL, p_task_name text DEFAULT NULL, p_version text DEFAULT NULL
) RETURNS TABLE (
  workflow_step_uuid uuid, task_uuid uuid, step_name text, task_name text, namespace_name text,
  version text, duration_seconds numeric, attempts integer, created_at timestamptz,
  completed_at timestamptz, retryable boolean, step_status text
)
LANGUAGE sql STABLE AS $$
  SELECT s.workflow_step_uuid, s.task_uuid, s.step_name, s.task_name, s.namespace_name, s.version,
         round(s.seconds, 3), s.attempts, s.created_at, s.state_entered_at, s.retryable, s.current_state
  FROM tasker.analytics_steps(p_since, p_namespace_name, p_task_name, p_version) s
  WHERE s.current_state = 'complete' AND s.seconds > 0
  ORDER BY s.seconds DESC, s.workflow_step_uuid
  LIMIT coalesce(p_limit, 10)
$$;

-- One row per task created since p_since (default: 24 hours) that has a finished step: duration
-- from the task's creation to its latest step completion or failure (> 0 only), with its step,
-- completed-step and error-step counts; longest first; optional template filters.
CREATE FUNCTION tasker.get_slowest_tasks(
  p_since timestamptz DEFAULT NULL, p_limit integer DEFAULT 10,
  p_namespace_name text DEFAULT NULL, p_task_name text DEFAULT NULL, p_version text DEFAULT NULL
) RETURNS TABLE (
  task_uuid uuid, task_name text, namespace_name text, version text, duration_seconds numeric,
  step_count bigint, completed_steps bigint, error_steps bigint, created_at timestamptz,
  completed_at timestamptz, initiator text, source_system text
)
LANGUAGE sql STABLE AS $$
  SELECT e.task_uuid, e.task_name, e.namespace_name, e.version, round(e.seconds, 3),
         e.step_count, e.completed_steps, e.error_steps, e.created_at, e.latest_finish,
         e.initiator, e.source_system
  FROM tasker.analytics_task_finishes(p_since, p_namespace_name, p_task_name, p_version) e
  WHERE e.seconds > 0
  ORDER BY e.seconds DESC, e.task_uuid
  LIMIT coalesce(p_limit, 10)
$$;

-- Step performance per (namespace, task name, version, step name) — step names are only unique
-- within a template — over finished (complete or error) steps of tasks created since p_since
-- (default: 24 hours): average and maximum duration (3 dp), executions, errors, error_rate =
-- errors / executions (4 dp) and the latest finish. Groups with fewer than p_min_executions
-- (default 5) are left out; slowest average first.
CREATE FUNCTION tasker.get_slowest_steps_aggregated(
  p_since timestamptz DEFAULT NULL, p_limit integer DEFAULT 10, p_min_executions integer DEFAULT 5,
  p_namespace_name text DEFAULT NULL, p_task_name text DEFAULT NULL, p_version text DEFAULT NULL
) RETURNS TABLE (
  namespace_name text, task_name text, version text, step_name text,
  average_duration_seconds numeric, max_duration_seconds numeric, execution_count bigint,
  error_count bigint, error_rate numeric, last_executed_at timestamptz
)
LANGUAGE sql STABLE AS $$
  SELECT s.namespace_name, s.task_name, s.version, s.step_name,
         round(avg(s.seconds), 3), round(max(s.seconds), 3), count(*),
         count(*) FILTER (WHERE s.current_state = 'error'),
         round(count(*) FILTER (WHERE s.current_state = 'error')::numeric / count(*), 4),
         max(s.state_entered_at)
  FROM tasker.analytics_steps(p_since, p_namespace_name, p_task_name, p_version) s
  WHERE s.current_state IN ('complete', 'error') AND s.seconds > 0
  GROUP BY s.namespace_name, s.task_name, s.version, s.step_name
  HAVING count(*) >= coalesce(p_min_executions, 5)
  ORDER BY avg(s.seconds) DESC, s.namespace_name, s.task_name, s.version, s.step_name
  LIMIT coalesce(p_limit, 10)
$$;

-- Task performance per template (namespace, task name, version) over the tasks get_slowest_tasks
-- would list: average and maximum duration, executions, average step count, total error steps,
-- tasks with an error step and error_rate = that share of the executions (4 dp; the original
-- divided error steps by tasks), latest finish. At least p_min_executions (default 5) per group.
CREATE FUNCTION tasker.get_slowest_tasks_aggregated(
  p_since timestamptz DEFAULT NULL, p_limit integer DEFAULT 10, p_min_executions integer DEFAULT 5,
  p_namespace_name text DEFAULT NULL, p_task_name text DEFAULT NULL, p_version text DEFAULT NULL
) RETURNS TABLE (
  namespace_name text, task_name text, version text, average_duration_seconds numeric,
  max_duration_seconds numeric, execution_count bigint, average_step_count numeric,
  total_error_steps bigint, error_task_count bigint, error_rate numeric, last_executed_at timestamptz
)
LANGUAGE sql STABLE AS $$
  SELECT e.namespace_name, e.task_name, e.version,
         round(avg(e.seconds), 3), round(max(e.seconds), 3), count(*),
         round(avg(e.step_count), 2),
         sum(e.error_steps)::bigint,
         count(*) FILTER (WHERE e.error_steps > 0),
         round(count(*) FILTER (WHERE e.error_steps > 0)::numeric / count(*), 4),
         max(e.latest_finish)
  FROM tasker.analytics_task_finishes(p_since, p_namespace_name, p_task_name, p_version) e
  WHERE e.seconds > 0
  GROUP BY e.namespace_name, e.task_name, e.version
  HAVING count(*) >= coalesce(p_min_executions, 5)
  ORDER BY avg(e.seconds) DESC, e.namespace_name, e.task_name, e.version
  LIMIT coalesce(p_limit, 10)
$$;

-- ---------------------------------------------------------------------------------------------
-- Task summary (A §2.8, B §2.3.3): everything a visualization needs about tasks, one row each, in
-- the order of p_task_uuids (unknown uuids are skipped).
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION tasker.get_task_summaries(p_task_uuids uuid[])
RETURNS TABLE (
  task_uuid uuid, named_task_uuid uuid, task_name text, task_version text, namespace_name text,
  task_status text, priority integer, created_at timestamptz, updated_at timestamptz,
  completed_at timestamptz, initiator text, source_system text, reason text, correlation_id uuid,
  template_configuration jsonb, step_summaries jsonb, execution_context jsonb, dlq_status jsonb
)
LANGUAGE sql STABLE AS $$
  WITH steps AS (
    SELECT r.task_uuid,
           jsonb_agg(jsonb_build_object(
             'step_uuid', r.workflow_step_uuid,
             'name', r.name,
             'current_state', r.current_state,
             'created_at', ws.created_at,
             'completed_at', ws.processed_at,
             'last_attempted_at', ws.last_attempted_at,
             'attempts', r.attempts,
             'max_attempts', r.max_attempts,
             'dependencies_satisfied', r.dependencies_satisfied,
             'retry_eligible', r.retry_eligible,
             'ready_for_execution', r.ready_for_execution,
             'error_type', coalesce(ws.results -> 'error' ->> 'error_type', ws.results -> 'error' ->> 'type'),
             'error_retryable', CASE WHEN jsonb_typeof(ws.results -> 'error' -> 'retryable') = 'boolean'
                                     THEN (ws.results -> 'error' -> 'retryable')::boolean END,
             'error_status_code', tasker.jsonb_to_integer(ws.results -> 'error' -> 'status_code')
           ) ORDER BY ws.created_at, ws.workflow_step_uuid) AS summaries
    FROM tasker.get_step_readiness_status_batch(p_task_uuids) r
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = r.workflow_step_uuid
    GROUP BY r.task_uuid
  )
  SELECT t.task_uuid, t.named_task_uuid, nt.name::text, nt.version::text, ns.name::text,
         t.current_state::text, t.priority, t.created_at, t.updated_at, t.completed_at,
         t.initiator::text, t.source_system::text, t.reason::text, t.correlation_id,
         nt.configuration,
         coalesce(s.summaries, '[]'::jsonb),
         jsonb_build_object(
           'total_steps', c.total_steps,
           'pending_steps', c.pending_steps,
           'in_progress_steps', c.in_progress_steps,
           'completed_steps', c.completed_steps,
           'failed_steps', c.failed_steps,
           'ready_steps', c.ready_steps,
           'enqueued_steps', c.enqueued_steps,
           'waiting_for_retry_steps', c.waiting_for_retry_steps,
           'completion_percentage', c.completion_percentage,
           'health_status', c.health_status,
           'execution_status', c.execution_status,
           'recommended_action', c.recommended_action
         ),
         CASE WHEN d.dlq_entry_uuid IS NULL
           THEN jsonb_build_object('in_dlq', false, 'dlq_reason', NULL, 'resolution_status', NULL)
           ELSE jsonb_build_object('in_dlq', true, 'dlq_reason', d.dlq_reason::text,
                                   'resolution_status', d.resolution_status::text,
                                   'dlq_entry_uuid', d.dlq_entry_uuid)
         END
  FROM tasker.tasks t
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
  JOIN tasker.get_task_execution_contexts_batch(p_task_uuids) c ON c.task_uuid = t.task_uuid
  LEFT JOIN steps s ON s.task_uuid = t.task_uuid
  LEFT JOIN tasker.tasks_dlq d ON d.task_uuid = t.task_uuid AND d.resolution_status = 'pending'
  WHERE t.task_uuid = ANY (p_task_uuids)
  ORDER BY array_position(p_task_uuids, t.task_uuid)
$$;

CREATE FUNCTION tasker.get_task_summary(p_task_uuid uuid)
RETURNS TABLE (
  task_uuid uuid, named_task_uuid uuid, task_name text, task_version text, namespace_name text,
  task_status text, priority integer, created_at timestamptz, updated_at timestamptz,
  completed_at timestamptz, initiator text, source_system text, reason text, correlation_id uuid,
  template_configuration jsonb, step_summaries jsonb, execution_context jsonb, dlq_status jsonb
)
LANGUAGE sql STABLE AS $$
  SELECT * FROM tasker.get_task_summaries(ARRAY[p_task_uuid])
$$;
