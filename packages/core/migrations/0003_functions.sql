-- Tasker core SQL functions (reference A §2): state transitions, readiness, execution context,
-- discovery, DAG helpers, backoff, task creation and template registration. Every function is one
-- round trip. Custom SQLSTATEs (mapped to typed errors by @tasker/core):
--   TK001 transition not in the rule table, TK002 edge would create a cycle, TK003 invalid argument.

-- Lifecycle event names published on transitions (A §4.5); kept equal to states.ts by a test.
CREATE FUNCTION tasker.task_lifecycle_event(p_from text, p_to text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_from = 'pending' AND p_to = 'initializing' THEN 'task.initialize_requested'
    WHEN p_from = 'initializing' AND p_to = 'enqueuing_steps' THEN 'task.steps_discovery_completed'
    WHEN p_from = 'enqueuing_steps' AND p_to = 'steps_in_process' THEN 'task.steps_enqueued'
    WHEN p_from = 'steps_in_process' AND p_to = 'evaluating_results' THEN 'task.step_results_received'
    WHEN p_to = 'waiting_for_dependencies' THEN 'task.awaiting_dependencies'
    WHEN p_from = 'waiting_for_dependencies' AND p_to = 'evaluating_results' THEN 'task.dependencies_satisfied'
    WHEN p_to = 'waiting_for_retry' THEN 'task.retry_backoff_started'
    WHEN p_to = 'blocked_by_failures' THEN 'task.blocked_by_failures'
    WHEN p_to = 'complete' THEN 'task.completed'
    WHEN p_to = 'error' THEN 'task.failed'
    WHEN p_to = 'cancelled' THEN 'task.cancelled'
    WHEN p_to = 'resolved_manually' THEN 'task.resolved_manually'
    WHEN p_from IN ('error', 'waiting_for_retry') AND p_to = 'pending' THEN 'task.retry_requested'
  END
$$;

CREATE FUNCTION tasker.step_lifecycle_event(p_from text, p_to text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_from = 'pending' AND p_to = 'enqueued' THEN 'step.enqueue_requested'
    WHEN p_from = 'enqueued' AND p_to = 'in_progress' THEN 'step.execution_requested'
    WHEN p_to = 'in_progress' THEN 'step.handle'
    WHEN p_to = 'enqueued_for_orchestration' THEN 'step.enqueued_for_orchestration'
    WHEN p_to = 'enqueued_as_error_for_orchestration' THEN 'step.enqueued_as_error_for_orchestration'
    WHEN p_to = 'waiting_for_retry' THEN 'step.retry_requested'
    WHEN p_from IN ('error', 'waiting_for_retry') AND p_to = 'pending' THEN 'step.retry_requested'
    WHEN p_to = 'complete' THEN 'step.completed'
    WHEN p_to = 'error' THEN 'step.failed'
    WHEN p_to = 'cancelled' THEN 'step.cancelled'
    WHEN p_to = 'resolved_manually' THEN 'step.resolved_manually'
  END
$$;

-- Compare-and-swap of a task's state: moves the task from p_from to p_to by p_event when (and only
-- when) its current state is still p_from. The UPDATE of the task row is the serialization point:
-- a concurrent writer waits for it, re-checks the state and finds it moved. Returns false when
-- another writer moved first; raises TK001 for a (from, event, to) the rule table does not allow.
CREATE FUNCTION tasker.transition_task_state(
  p_task_uuid uuid, p_from text, p_event text, p_to text,
  p_processor_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}'
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_sort_key integer;
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM tasker.task_transition_rules r
    WHERE r.from_state IS NOT DISTINCT FROM p_from AND r.event = p_event AND r.to_state = p_to
  ) THEN
    RAISE EXCEPTION 'task transition % -[%]-> % is not allowed', coalesce(p_from, '(none)'), p_event, p_to
      USING ERRCODE = 'TK001';
  END IF;
  UPDATE tasker.tasks
  SET current_state = p_to,
      state_entered_at = clock_timestamp(),
      complete = complete OR p_to = 'complete',
      completed_at = CASE WHEN p_to = 'complete' THEN clock_timestamp() ELSE completed_at END,
      updated_at = clock_timestamp()
  WHERE task_uuid = p_task_uuid AND current_state = p_from;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE tasker.task_transitions SET most_recent = false
  WHERE task_uuid = p_task_uuid AND most_recent
  RETURNING sort_key INTO v_sort_key;
  INSERT INTO tasker.task_transitions
    (task_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent, created_at)
  VALUES (p_task_uuid, p_from, p_to, p_event, tasker.task_lifecycle_event(p_from, p_to), coalesce(p_metadata, '{}'),
          p_processor_uuid, coalesce(v_sort_key, 0) + 1, true, clock_timestamp());
  RETURN true;
END;
$$;

-- Whether every parent of a step is complete or resolved manually (A §4.4 StepDependenciesMetGuard).
CREATE FUNCTION tasker.step_dependencies_met(p_step_uuid uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM tasker.workflow_step_edges e
    JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
    WHERE e.to_step_uuid = p_step_uuid AND p.current_state NOT IN ('complete', 'resolved_manually')
  )
$$;

-- Compare-and-swap of a step's state, with the side effects of A §4.4 in the same UPDATE:
--   -> in_progress: in_process, attempts + 1, last_attempted_at (the claim);
--   -> enqueued_(as_error_)for_orchestration: results stored, not in process, and one audit row;
--   -> complete: processed, processed_at, results (kept when none are given);
--   -> cancelled / resolved_manually: processed, processed_at; -> error: not in process;
--   reset_for_retry: attempts back to 0 and backoff cleared (A §9 #4, the intended behaviour).
-- Enqueue and the legacy start from pending require every parent to be complete (TK001 otherwise).
-- Returns false when the step was not in p_from.
CREATE FUNCTION tasker.transition_step_state(
  p_step_uuid uuid, p_from text, p_event text, p_to text,
  p_processor_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}', p_results jsonb DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_sort_key integer;
  v_task_uuid uuid;
  v_transition uuid;
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM tasker.step_transition_rules r
    WHERE r.from_state IS NOT DISTINCT FROM p_from AND r.event = p_event AND r.to_state = p_to
  ) THEN
    RAISE EXCEPTION 'step transition % -[%]-> % is not allowed', coalesce(p_from, '(none)'), p_event, p_to
      USING ERRCODE = 'TK001';
  END IF;
  IF p_from = 'pending' AND p_to IN ('enqueued', 'in_progress') AND NOT tasker.step_dependencies_met(p_step_uuid) THEN
    RAISE EXCEPTION 'step % cannot %: its dependencies are not met', p_step_uuid, p_event USING ERRCODE = 'TK001';
  END IF;
  UPDATE tasker.workflow_steps
  SET current_state = p_to,
      state_entered_at = clock_timestamp(),
      updated_at = clock_timestamp(),
      in_process = (p_to = 'in_progress'),
      processed = CASE WHEN p_to IN ('complete', 'cancelled', 'resolved_manually') THEN true
                       WHEN p_to = 'pending' THEN false ELSE processed END,
      processed_at = CASE WHEN p_to IN ('complete', 'cancelled', 'resolved_manually') THEN clock_timestamp()
                          WHEN p_to = 'pending' THEN NULL ELSE processed_at END,
      attempts = CASE WHEN p_to = 'in_progress' THEN attempts + 1
                      WHEN p_event = 'reset_for_retry' THEN 0 ELSE attempts END,
      last_attempted_at = CASE WHEN p_to = 'in_progress' THEN clock_timestamp() ELSE last_attempted_at END,
      backoff_request_seconds = CASE WHEN p_event = 'reset_for_retry' THEN NULL ELSE backoff_request_seconds END,
      -- entering waiting_for_retry always records when the retry comes due (now, without a backoff)
      next_retry_at = CASE WHEN p_event = 'reset_for_retry' THEN NULL
                           WHEN p_to = 'waiting_for_retry' THEN
                             coalesce(last_attempted_at + make_interval(secs => backoff_request_seconds), clock_timestamp())
                           ELSE next_retry_at END,
      results = CASE WHEN p_to IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration', 'complete')
                     THEN coalesce(p_results, results) ELSE results END
  WHERE workflow_step_uuid = p_step_uuid AND current_state = p_from
  RETURNING task_uuid INTO v_task_uuid;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE tasker.workflow_step_transitions SET most_recent = false
  WHERE workflow_step_uuid = p_step_uuid AND most_recent
  RETURNING sort_key INTO v_sort_key;
  INSERT INTO tasker.workflow_step_transitions
    (workflow_step_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent, created_at)
  VALUES (p_step_uuid, p_from, p_to, p_event, tasker.step_lifecycle_event(p_from, p_to), coalesce(p_metadata, '{}'),
          p_processor_uuid, coalesce(v_sort_key, 0) + 1, true, clock_timestamp())
  RETURNING workflow_step_transition_uuid INTO v_transition;
  IF p_to IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration') THEN
    -- Attribution of the worker result (A §6.4, reading the fields where results really keep them).
    INSERT INTO tasker.workflow_step_result_audit
      (workflow_step_uuid, workflow_step_transition_uuid, task_uuid, worker_uuid, correlation_id, success, execution_time_ms)
    SELECT p_step_uuid, v_transition, v_task_uuid, p_processor_uuid, t.correlation_id,
           -- worker-supplied values: read only when they have the expected JSON type, so an odd
           -- value costs the audit a field, never the result
           CASE WHEN jsonb_typeof(p_results -> 'success') = 'boolean' THEN (p_results ->> 'success')::boolean
                ELSE p_to = 'enqueued_for_orchestration' END,
           CASE WHEN jsonb_typeof(p_results -> 'metadata' -> 'execution_time_ms') = 'number'
                     AND abs((p_results -> 'metadata' ->> 'execution_time_ms')::numeric) < 9e18
                THEN round((p_results -> 'metadata' ->> 'execution_time_ms')::numeric)::bigint END
    FROM tasker.tasks t WHERE t.task_uuid = v_task_uuid;
  END IF;
  RETURN true;
END;
$$;

-- When a failed step may run again (A §2.2): last_attempted_at + backoff_request_seconds when a
-- backoff was recorded, otherwise failure time + multiplier^attempts capped, otherwise NULL (now).
CREATE FUNCTION tasker.calculate_step_next_retry_time(
  p_backoff_request_seconds integer, p_last_attempted_at timestamptz, p_failure_time timestamptz,
  p_attempts integer, p_max_backoff_seconds integer DEFAULT 60, p_backoff_multiplier double precision DEFAULT 2.0
) RETURNS timestamptz
-- STABLE, not IMMUTABLE: timestamptz arithmetic depends on the session time zone, and a function
-- declared less volatile than its body is never inlined (which made readiness 10x slower).
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_backoff_request_seconds IS NOT NULL AND p_last_attempted_at IS NOT NULL
      THEN p_last_attempted_at + make_interval(secs => p_backoff_request_seconds)
    WHEN p_failure_time IS NOT NULL
      THEN p_failure_time + make_interval(secs => least(power(p_backoff_multiplier, coalesce(p_attempts, 1)), p_max_backoff_seconds))
  END
$$;

-- Records the delay before a step's next attempt (a server-requested delay included).
CREATE FUNCTION tasker.set_step_backoff(p_step_uuid uuid, p_seconds integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF p_seconds IS NULL OR p_seconds < 0 THEN
    RAISE EXCEPTION 'backoff seconds must be >= 0' USING ERRCODE = 'TK003';
  END IF;
  UPDATE tasker.workflow_steps
  SET backoff_request_seconds = p_seconds, last_attempted_at = clock_timestamp(),
      next_retry_at = clock_timestamp() + make_interval(secs => p_seconds), updated_at = clock_timestamp()
  WHERE workflow_step_uuid = p_step_uuid;
  RETURN FOUND;
END;
$$;

-- Step readiness (A §2.1), one row per step of the given tasks (optionally only some steps).
-- A step is ready when it is pending or waiting_for_retry, not processed or in process, every
-- parent is complete or resolved manually, it may run again (the first attempt always may; later
-- ones need retryable and attempts < max_attempts), and its backoff has elapsed.
CREATE FUNCTION tasker.step_readiness_rows(p_task_uuids uuid[], p_step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
  workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
  dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
  last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer, completed_parents integer,
  attempts integer, max_attempts integer, backoff_request_seconds integer, last_attempted_at timestamptz
)
LANGUAGE sql STABLE AS $$
  SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid, ns.name::text, ws.current_state::text,
         deps.total = deps.done,
         r.eligible,
         ws.current_state IN ('pending', 'waiting_for_retry')
           AND NOT ws.processed AND NOT ws.in_process
           AND deps.total = deps.done
           AND r.eligible
           AND (nr.at IS NULL OR nr.at <= clock_timestamp()),
         f.last_failure_at, nr.at, deps.total, deps.done,
         ws.attempts, ws.max_attempts, ws.backoff_request_seconds, ws.last_attempted_at
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  CROSS JOIN LATERAL (
    SELECT count(DISTINCT e.from_step_uuid)::integer AS total,
           count(DISTINCT e.from_step_uuid) FILTER (WHERE p.current_state IN ('complete', 'resolved_manually'))::integer AS done
    FROM tasker.workflow_step_edges e
    JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
    WHERE e.to_step_uuid = ws.workflow_step_uuid
  ) deps
  -- last failure: a transition to error, or to the worker-reported error state (retryable failures
  -- no longer pass through error, so the fallback backoff needs this too)
  CROSS JOIN LATERAL (
    SELECT max(t.created_at) AS last_failure_at
    FROM tasker.workflow_step_transitions t
    WHERE ws.attempts > 0 AND t.workflow_step_uuid = ws.workflow_step_uuid
      AND t.to_state IN ('error', 'enqueued_as_error_for_orchestration')
  ) f
  CROSS JOIN LATERAL (SELECT ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts) AS eligible) r
  CROSS JOIN LATERAL (
    SELECT tasker.calculate_step_next_retry_time(ws.backoff_request_seconds, ws.last_attempted_at,
                                                 f.last_failure_at, ws.attempts) AS at
  ) nr
  WHERE ws.task_uuid = ANY (p_task_uuids)
    AND (p_step_uuids IS NULL OR ws.workflow_step_uuid = ANY (p_step_uuids))
  ORDER BY ws.task_uuid, ws.workflow_step_uuid
$$;

-- The public entry points are PL/pgSQL so that each session plans the (inlined) readiness query
-- once and reuses the plan; a plain SQL function is re-planned on every call from the client.
CREATE FUNCTION tasker.get_step_readiness_status_batch(p_task_uuids uuid[], p_step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
  workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
  dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
  last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer, completed_parents integer,
  attempts integer, max_attempts integer, backoff_request_seconds integer, last_attempted_at timestamptz
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY SELECT * FROM tasker.step_readiness_rows(p_task_uuids, p_step_uuids);
END;
$$;

CREATE FUNCTION tasker.get_step_readiness_status(p_task_uuid uuid, p_step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
  workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
  dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
  last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer, completed_parents integer,
  attempts integer, max_attempts integer, backoff_request_seconds integer, last_attempted_at timestamptz
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY SELECT * FROM tasker.step_readiness_rows(ARRAY[p_task_uuid], p_step_uuids);
END;
$$;

-- Task execution context (A §2.3): step counts and the task-level decision, first match wins:
-- blocked_by_failures > has_ready_steps > processing > all_complete > waiting_for_dependencies.
-- health_status: blocked (an error step), recovering (a step waiting for retry), otherwise healthy.
CREATE FUNCTION tasker.task_execution_context_rows(p_task_uuids uuid[])
RETURNS TABLE (
  task_uuid uuid, named_task_uuid uuid, status text, total_steps integer, pending_steps integer,
  in_progress_steps integer, completed_steps integer, failed_steps integer, ready_steps integer,
  enqueued_steps integer, waiting_for_retry_steps integer, execution_status text, recommended_action text,
  completion_percentage double precision, health_status text
)
LANGUAGE sql STABLE AS $$
  WITH counts AS (
    SELECT s.task_uuid,
           count(*)::integer AS total,
           count(*) FILTER (WHERE s.current_state = 'pending')::integer AS pending,
           count(*) FILTER (WHERE s.current_state = 'in_progress')::integer AS in_progress,
           count(*) FILTER (WHERE s.current_state IN ('complete', 'resolved_manually'))::integer AS completed,
           count(*) FILTER (WHERE s.current_state = 'error')::integer AS failed,
           count(*) FILTER (WHERE s.ready_for_execution)::integer AS ready,
           count(*) FILTER (WHERE s.current_state IN ('enqueued', 'enqueued_for_orchestration',
                                                      'enqueued_as_error_for_orchestration'))::integer AS enqueued,
           count(*) FILTER (WHERE s.current_state = 'waiting_for_retry')::integer AS waiting_retry
    FROM tasker.step_readiness_rows(p_task_uuids) s
    GROUP BY s.task_uuid
  ), decided AS (
    SELECT t.task_uuid, t.named_task_uuid, t.current_state::text AS status,
           coalesce(c.total, 0) AS total, coalesce(c.pending, 0) AS pending, coalesce(c.in_progress, 0) AS in_progress,
           coalesce(c.completed, 0) AS completed, coalesce(c.failed, 0) AS failed, coalesce(c.ready, 0) AS ready,
           coalesce(c.enqueued, 0) AS enqueued, coalesce(c.waiting_retry, 0) AS waiting_retry,
           CASE
             WHEN coalesce(c.failed, 0) > 0 THEN 'blocked_by_failures'
             WHEN coalesce(c.ready, 0) > 0 THEN 'has_ready_steps'
             WHEN coalesce(c.in_progress, 0) + coalesce(c.enqueued, 0) > 0 THEN 'processing'
             WHEN coalesce(c.total, 0) > 0 AND c.completed = c.total THEN 'all_complete'
             ELSE 'waiting_for_dependencies'
           END AS execution_status
    FROM tasker.tasks t
    LEFT JOIN counts c ON c.task_uuid = t.task_uuid
    WHERE t.task_uuid = ANY (p_task_uuids)
  )
  SELECT d.task_uuid, d.named_task_uuid, d.status, d.total, d.pending, d.in_progress, d.completed, d.failed,
         d.ready, d.enqueued, d.waiting_retry, d.execution_status,
         CASE d.execution_status
           WHEN 'blocked_by_failures' THEN 'handle_failures'
           WHEN 'has_ready_steps' THEN 'execute_ready_steps'
           WHEN 'processing' THEN 'wait_for_completion'
           WHEN 'all_complete' THEN 'finalize_task'
           ELSE 'wait_for_dependencies'
         END,
         CASE WHEN d.total = 0 THEN 0 ELSE round(d.completed::numeric * 100 / d.total, 2)::double precision END,
         CASE WHEN d.failed > 0 THEN 'blocked' WHEN d.waiting_retry > 0 THEN 'recovering' ELSE 'healthy' END
  FROM decided d
  ORDER BY d.task_uuid
$$;

CREATE FUNCTION tasker.get_task_execution_contexts_batch(p_task_uuids uuid[])
RETURNS TABLE (
  task_uuid uuid, named_task_uuid uuid, status text, total_steps integer, pending_steps integer,
  in_progress_steps integer, completed_steps integer, failed_steps integer, ready_steps integer,
  enqueued_steps integer, waiting_for_retry_steps integer, execution_status text, recommended_action text,
  completion_percentage double precision, health_status text
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY SELECT * FROM tasker.task_execution_context_rows(p_task_uuids);
END;
$$;

CREATE FUNCTION tasker.get_task_execution_context(p_task_uuid uuid)
RETURNS TABLE (
  task_uuid uuid, named_task_uuid uuid, status text, total_steps integer, pending_steps integer,
  in_progress_steps integer, completed_steps integer, failed_steps integer, ready_steps integer,
  enqueued_steps integer, waiting_for_retry_steps integer, execution_status text, recommended_action text,
  completion_percentage double precision, health_status text
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY SELECT * FROM tasker.task_execution_context_rows(ARRAY[p_task_uuid]);
END;
$$;


-- How many steps of a task are ready to run: the readiness rule of step_readiness_rows, written as
-- a lean count (discovery asks it of every candidate it visits, so it must be cheap). A test checks it
-- against step_readiness_rows over many step states.
CREATE FUNCTION tasker.task_ready_step_count(p_task_uuid uuid) RETURNS integer
-- PL/pgSQL with a generic plan: planned once per session, not on every call
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  RETURN (
    SELECT count(*)::integer FROM tasker.workflow_steps ws
    CROSS JOIN LATERAL (
      SELECT CASE WHEN ws.attempts > 0 AND (ws.backoff_request_seconds IS NULL OR ws.last_attempted_at IS NULL) THEN
               (SELECT max(f.created_at) FROM tasker.workflow_step_transitions f
                WHERE f.workflow_step_uuid = ws.workflow_step_uuid
                  AND f.to_state IN ('error', 'enqueued_as_error_for_orchestration'))
             END AS last_failure_at
      -- OFFSET 0 keeps this a subquery: pulled up, its sub-select would become an argument of
      -- calculate_step_next_retry_time and stop that function from being inlined (10x slower)
      OFFSET 0
    ) lf
    WHERE ws.task_uuid = p_task_uuid
      AND ws.current_state IN ('pending', 'waiting_for_retry')
      AND NOT ws.processed AND NOT ws.in_process
      AND (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts))
      AND coalesce(tasker.calculate_step_next_retry_time(ws.backoff_request_seconds, ws.last_attempted_at,
                                                         lf.last_failure_at, ws.attempts), '-infinity') <= clock_timestamp()
      AND NOT EXISTS (
        SELECT 1 FROM tasker.workflow_step_edges e
        JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
        WHERE e.to_step_uuid = ws.workflow_step_uuid AND p.current_state NOT IN ('complete', 'resolved_manually')
      )
  );
END;
$$;

-- Discovery (A §2.4) with real claims. Candidates come from small index scans, each bounded by
-- p_limit * 10 rows and each already filtered to tasks that may have work, so that no crowd of idle
-- tasks can hide an eligible one:
--   * pending tasks (always eligible): the highest base priorities, and the oldest (age escalation);
--   * tasks waiting for a retry (for at most 30 minutes) that have a retry come due, found from
--     their waiting steps;
--   * tasks waiting for dependencies (for at most 60 minutes), by priority.
-- Tasks longer in a waiting state are the staleness detector's. Candidates are visited in order of
-- computed priority = priority + 0.1 per hour of task age (monotonic age escalation; the original's
-- decay after one hour in state was discontinuous and worked against escalation); a waiting task is
-- kept when it has a ready step and no failed one (execution status has_ready_steps). Kept rows
-- are locked FOR UPDATE SKIP LOCKED until p_limit are held: callers that overlap get disjoint sets,
-- and the claim lasts until the caller's transaction ends, which is where it transitions them.
CREATE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
  task_uuid uuid, task_name text, priority integer, namespace_name text, ready_steps_count integer,
  computed_priority double precision, current_state text
)
-- A generic plan: with LIMIT $1 a custom plan would look cheaper forever and be re-planned per call.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'limit must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  RETURN QUERY
  WITH candidate_rows AS MATERIALIZED (
    (SELECT t.task_uuid, t.created_at, t.current_state, t.state_entered_at, t.priority FROM tasker.tasks t
     WHERE t.current_state = 'pending'
     ORDER BY t.priority DESC, t.created_at
     LIMIT p_limit * 10)
    UNION
    (SELECT t.task_uuid, t.created_at, t.current_state, t.state_entered_at, t.priority FROM tasker.tasks t
     WHERE t.current_state = 'pending'
     ORDER BY t.created_at
     LIMIT p_limit * 10)
    UNION
    -- steps whose retry has come due, from the due-time index, of tasks recently waiting: a
    -- superset of the tasks with a ready retry (exact readiness below)
    (SELECT t.task_uuid, t.created_at, t.current_state, t.state_entered_at, t.priority
     FROM tasker.workflow_steps ws
     JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
     -- statement_timestamp(), not clock_timestamp(): a volatile bound cannot drive an index scan
     WHERE ws.current_state = 'waiting_for_retry' AND ws.next_retry_at <= statement_timestamp()
       AND t.current_state = 'waiting_for_retry' AND t.state_entered_at > clock_timestamp() - interval '30 minutes'
     LIMIT p_limit * 10)
    UNION
    (SELECT t.task_uuid, t.created_at, t.current_state, t.state_entered_at, t.priority FROM tasker.tasks t
     WHERE t.current_state = 'waiting_for_dependencies' AND t.state_entered_at > clock_timestamp() - interval '60 minutes'
     ORDER BY t.priority DESC, t.created_at
     LIMIT p_limit * 10)
  ), candidates AS MATERIALIZED (
    SELECT r.task_uuid, r.created_at, r.current_state, r.state_entered_at,
           r.priority + extract(epoch FROM clock_timestamp() - r.created_at) / 3600.0 * 0.1 AS computed_priority
    FROM candidate_rows r
    ORDER BY 5 DESC, 2
  ), claimed AS MATERIALIZED (
    -- Walks the candidates in priority order: counts the ready steps of each one visited, keeps the
    -- pending ones and those with work, and locks them until p_limit are held (a row another
    -- caller holds, or that a transition moved meanwhile, is skipped).
    SELECT l.task_uuid, l.named_task_uuid, l.priority, l.current_state, c.computed_priority, c.created_at, e.ready
    FROM candidates c
    CROSS JOIN LATERAL (SELECT tasker.task_ready_step_count(c.task_uuid) AS ready OFFSET 0) e
    CROSS JOIN LATERAL (
      SELECT t.task_uuid, t.named_task_uuid, t.priority, t.current_state FROM tasker.tasks t
      WHERE t.task_uuid = c.task_uuid AND t.current_state = c.current_state
      FOR UPDATE SKIP LOCKED
    ) l
    WHERE c.current_state = 'pending'
       OR (e.ready > 0 AND NOT EXISTS (
             SELECT 1 FROM tasker.workflow_steps f WHERE f.task_uuid = c.task_uuid AND f.current_state = 'error'))
    LIMIT p_limit
  )
  SELECT c.task_uuid, nt.name::text, c.priority, ns.name::text, c.ready,
         c.computed_priority::double precision, c.current_state::text
  FROM claimed c
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = c.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
  ORDER BY c.computed_priority DESC, c.created_at;
END;
$$;

-- The same row for one known task, whatever its state (used after creation and by finalization).
CREATE FUNCTION tasker.get_task_ready_info(p_task_uuid uuid)
RETURNS TABLE (
  task_uuid uuid, task_name text, priority integer, namespace_name text, ready_steps_count integer,
  computed_priority double precision, current_state text
)
LANGUAGE sql STABLE AS $$
  SELECT t.task_uuid, nt.name::text, t.priority, ns.name::text,
         tasker.task_ready_step_count(t.task_uuid),
         (t.priority + extract(epoch FROM clock_timestamp() - t.created_at) / 3600.0 * 0.1)::double precision,
         t.current_state::text
  FROM tasker.tasks t
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
  WHERE t.task_uuid = p_task_uuid
$$;

-- Every ancestor of a step, nearest first (A §2.6), each once at its shortest distance: workers
-- build their dependency results from it.
CREATE FUNCTION tasker.get_step_transitive_dependencies(p_step_uuid uuid)
RETURNS TABLE (
  workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, step_name text, results jsonb,
  processed boolean, current_state text, distance integer
)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE ancestors AS (
    SELECT e.from_step_uuid AS step_uuid, 1 AS distance
    FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = p_step_uuid
    UNION
    SELECT e.from_step_uuid, a.distance + 1
    FROM ancestors a JOIN tasker.workflow_step_edges e ON e.to_step_uuid = a.step_uuid
    WHERE a.distance < 50
  ), nearest AS (
    SELECT a.step_uuid, min(a.distance) AS distance FROM ancestors a GROUP BY a.step_uuid
  )
  SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid, ns.name::text, ws.results, ws.processed,
         ws.current_state::text, n.distance
  FROM nearest n
  JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = n.step_uuid
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  ORDER BY n.distance, ws.workflow_step_uuid
$$;

-- Whether an edge from -> to would close a cycle: true when `to` already reaches `from`.
CREATE FUNCTION tasker.would_create_cycle(p_from uuid, p_to uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE reachable AS (
    SELECT p_to AS step_uuid
    UNION
    SELECT e.to_step_uuid FROM reachable r JOIN tasker.workflow_step_edges e ON e.from_step_uuid = r.step_uuid
  )
  SELECT p_from = p_to OR EXISTS (SELECT 1 FROM reachable WHERE step_uuid = p_from)
$$;

-- Adds a dependency edge between two steps of the same task, refusing cycles (TK002) and
-- cross-task edges (TK003); idempotent. Returns true when the edge was created.
CREATE FUNCTION tasker.add_step_edge(p_from uuid, p_to uuid, p_name text DEFAULT 'provides') RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
BEGIN
  IF p_from = p_to THEN
    RAISE EXCEPTION 'edge % -> % would create a cycle', p_from, p_to USING ERRCODE = 'TK002';
  END IF;
  IF (SELECT count(DISTINCT task_uuid) FROM tasker.workflow_steps WHERE workflow_step_uuid IN (p_from, p_to)) <> 1
     OR (SELECT count(*) FROM tasker.workflow_steps WHERE workflow_step_uuid IN (p_from, p_to)) <> 2 THEN
    RAISE EXCEPTION 'both steps must exist and belong to the same task' USING ERRCODE = 'TK003';
  END IF;
  -- Edges of one task are added one transaction at a time: otherwise two transactions could each
  -- check against the other's uncommitted edge and together commit a cycle.
  SELECT task_uuid INTO v_task FROM tasker.workflow_steps WHERE workflow_step_uuid = p_from;
  PERFORM 1 FROM tasker.tasks WHERE task_uuid = v_task FOR UPDATE;
  IF tasker.would_create_cycle(p_from, p_to) THEN
    RAISE EXCEPTION 'edge % -> % would create a cycle', p_from, p_to USING ERRCODE = 'TK002';
  END IF;
  INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
  VALUES (p_from, p_to, coalesce(p_name, 'provides'))
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END;
$$;

-- Registers (or updates) a template: its namespace, the named task with the whole normalized
-- template as configuration, and its step names. Idempotent; returns the named task uuid.
CREATE FUNCTION tasker.register_template(
  p_namespace text, p_name text, p_version text, p_description text, p_configuration jsonb,
  p_identity_strategy tasker.identity_strategy, p_step_names text[]
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_namespace uuid;
  v_named_task uuid;
BEGIN
  INSERT INTO tasker.task_namespaces (name) VALUES (p_namespace) ON CONFLICT (name) DO NOTHING;
  SELECT task_namespace_uuid INTO v_namespace FROM tasker.task_namespaces WHERE name = p_namespace;
  INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version, description, configuration, identity_strategy)
  VALUES (v_namespace, p_name, p_version, p_description, p_configuration, p_identity_strategy)
  ON CONFLICT (task_namespace_uuid, name, version) DO UPDATE
    SET description = excluded.description, configuration = excluded.configuration,
        identity_strategy = excluded.identity_strategy, updated_at = now()
    WHERE (tasker.named_tasks.description, tasker.named_tasks.configuration, tasker.named_tasks.identity_strategy)
          IS DISTINCT FROM (excluded.description, excluded.configuration, excluded.identity_strategy);
  SELECT named_task_uuid INTO v_named_task FROM tasker.named_tasks
  WHERE task_namespace_uuid = v_namespace AND name = p_name AND version = p_version;
  INSERT INTO tasker.named_steps (name) SELECT DISTINCT unnest(p_step_names) ON CONFLICT (name) DO NOTHING;
  RETURN v_named_task;
END;
$$;

-- Creates a task with its initial steps, their dependency edges and the first transitions, in one
-- statement (A §3.1). p_task: {identity_hash, context, tags, initiator, source_system, reason,
-- priority, correlation_id, parent_correlation_id, requested_at}; p_steps: [{name, retryable,
-- max_attempts, inputs, dependencies: [names of steps in p_steps]}]. A duplicate identity_hash
-- raises the unique violation of tasks_identity_hash_idx (23505). Returns the task uuid.
CREATE FUNCTION tasker.create_task(p_named_task_uuid uuid, p_task jsonb, p_steps jsonb, p_processor_uuid uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_expected_edges integer;
  v_edges integer;
BEGIN
  INSERT INTO tasker.named_steps (name)
  SELECT DISTINCT s ->> 'name' FROM jsonb_array_elements(p_steps) s
  ON CONFLICT (name) DO NOTHING;

  INSERT INTO tasker.tasks (named_task_uuid, identity_hash, context, tags, initiator, source_system, reason,
                            priority, correlation_id, parent_correlation_id, requested_at)
  VALUES (p_named_task_uuid, p_task ->> 'identity_hash', coalesce(p_task -> 'context', '{}'),
          coalesce(p_task -> 'tags', '[]'), p_task ->> 'initiator', p_task ->> 'source_system', p_task ->> 'reason',
          coalesce((p_task ->> 'priority')::integer, 0), (p_task ->> 'correlation_id')::uuid,
          (p_task ->> 'parent_correlation_id')::uuid, coalesce((p_task ->> 'requested_at')::timestamptz, now()))
  RETURNING task_uuid INTO v_task;

  INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, retryable, max_attempts, inputs)
  SELECT v_task, ns.named_step_uuid, coalesce((s ->> 'retryable')::boolean, true),
         coalesce((s ->> 'max_attempts')::integer, 3), s -> 'inputs'
  FROM jsonb_array_elements(p_steps) s
  JOIN tasker.named_steps ns ON ns.name = s ->> 'name';

  SELECT count(*) INTO v_expected_edges
  FROM jsonb_array_elements(p_steps) s, jsonb_array_elements_text(coalesce(s -> 'dependencies', '[]')) d;
  INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
  SELECT parent.workflow_step_uuid, child.workflow_step_uuid, 'provides'
  FROM jsonb_array_elements(p_steps) s
  CROSS JOIN jsonb_array_elements_text(coalesce(s -> 'dependencies', '[]')) d(parent_name)
  JOIN tasker.named_steps child_ns ON child_ns.name = s ->> 'name'
  JOIN tasker.workflow_steps child ON child.task_uuid = v_task AND child.named_step_uuid = child_ns.named_step_uuid
  JOIN tasker.named_steps parent_ns ON parent_ns.name = d.parent_name
  JOIN tasker.workflow_steps parent ON parent.task_uuid = v_task AND parent.named_step_uuid = parent_ns.named_step_uuid;
  GET DIAGNOSTICS v_edges = ROW_COUNT;
  IF v_edges <> v_expected_edges THEN
    RAISE EXCEPTION 'a step depends on a step that is not part of the task' USING ERRCODE = 'TK003';
  END IF;

  INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, metadata, processor_uuid, sort_key, most_recent)
  VALUES (v_task, NULL, 'pending', 'initialize', '{}', p_processor_uuid, 1, true);
  INSERT INTO tasker.workflow_step_transitions
    (workflow_step_uuid, from_state, to_state, event, metadata, processor_uuid, sort_key, most_recent)
  SELECT ws.workflow_step_uuid, NULL, 'pending', 'initialize', '{}', p_processor_uuid, 1, true
  FROM tasker.workflow_steps ws WHERE ws.task_uuid = v_task;
  RETURN v_task;
END;
$$;
