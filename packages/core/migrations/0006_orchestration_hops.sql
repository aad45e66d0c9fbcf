-- The orchestration hops of DESIGN §3 and the message-driven worker hops, each one call in one
-- transaction:
--   evaluate_task:          decide what a task does next and do it (start, enqueue ready steps,
--                           finalize), under the task row lock;
--   apply_step_result:      complete / retry with backoff / fail a reported step, then evaluate_task;
--   process_step_results:   apply and ack result messages (push: given ids; poll: old enough ones);
--   process_ready_tasks:    discovery (get_next_ready_tasks) followed by evaluate_task per task;
--   claim_step_messages:    a worker leases step messages and claims their steps (or reclaims a step
--                           whose previous lease expired), returning each handler context;
--   complete_step_message:  a worker stores its result, acks its message and either hands the result
--                           to orchestration or applies it inline (hops 3 and 4 as one).
-- Locks: a task row is taken FOR NO KEY UPDATE (not FOR UPDATE, which would block the foreign-key
-- checks of concurrent worker inserts), always before the rows of its steps.
-- Notifications (constant channel names, JSON payloads):
--   tasker_task_finished   {task_uuid, state} when a task reaches complete or error;
--   tasker_retry_scheduled {task_uuid, next_retry_at} when a step waits for a retry that is not due.

-- New transitions (also in packages/core/src/states.ts; states.test.ts checks both agree):
--   evaluating_results -steps_in_flight-> steps_in_process: results were applied but other steps
--     still run (the original had no way back and left such tasks in evaluating_results);
--   evaluating_results -step_failed-> waiting_for_retry: nothing runs and the only work left is a
--     step waiting for its retry (discovery's due-retry branch looks at waiting_for_retry tasks);
--   in_progress -reclaim-> in_progress: a worker takes over a step whose previous worker's lease
--     (the message's visibility timeout) ran out without a result (the worker died).
INSERT INTO tasker.task_transition_rules (from_state, event, to_state) VALUES
  ('evaluating_results', 'steps_in_flight', 'steps_in_process'),
  ('evaluating_results', 'step_failed', 'waiting_for_retry');
INSERT INTO tasker.step_transition_rules (from_state, event, to_state) VALUES
  ('in_progress', 'reclaim', 'in_progress');

-- The steps of a task that are ready to run: the readiness rule of step_readiness_rows (A §2.1)
-- written lean, for the hot path. task_ready_step_count counts these rows.
CREATE FUNCTION tasker.ready_steps(p_task_uuid uuid)
RETURNS TABLE (workflow_step_uuid uuid, current_state text)
LANGUAGE sql STABLE AS $$
  SELECT ws.workflow_step_uuid, ws.current_state::text FROM tasker.workflow_steps ws
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
$$;

CREATE OR REPLACE FUNCTION tasker.task_ready_step_count(p_task_uuid uuid) RETURNS integer
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  RETURN (SELECT count(*)::integer FROM tasker.ready_steps(p_task_uuid));
END;
$$;

-- A task transition the caller must win: it holds the task row lock, so losing means a bug.
CREATE FUNCTION tasker.move_task(
  p_task_uuid uuid, p_from text, p_event text, p_to text, p_processor_uuid uuid, p_metadata jsonb DEFAULT '{}'
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tasker.transition_task_state(p_task_uuid, p_from, p_event, p_to, p_processor_uuid, p_metadata) THEN
    RAISE EXCEPTION 'task % was not in state % under its row lock', p_task_uuid, p_from USING ERRCODE = 'TK001';
  END IF;
  RETURN p_to;
END;
$$;

-- Moves the given ready steps of a task to enqueued (a step waiting for its retry goes back to
-- pending first) and sends one pointer message per step {task_uuid, step_uuid, correlation_id} to
-- the task's namespace queue worker_{namespace}_queue (created when missing), with notification,
-- in the caller's transaction: state before queue. Returns the ids of the messages sent. With
-- p_notify false no notification is sent: the caller claims them itself and notifies the rest.
CREATE FUNCTION tasker.enqueue_steps(p_task_uuid uuid, p_step_uuids uuid[], p_processor_uuid uuid DEFAULT NULL,
                                     p_notify boolean DEFAULT true)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
  v_queue text;
  v_correlation uuid;
  v_step uuid;
  v_state text;
  v_messages json[] := '{}';
BEGIN
  SELECT 'worker_' || tn.name || '_queue', t.correlation_id INTO v_queue, v_correlation
  FROM tasker.tasks t
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
  WHERE t.task_uuid = p_task_uuid;
  IF NOT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = v_queue) THEN
    PERFORM pgmq.create(v_queue);
  END IF;
  FOREACH v_step IN ARRAY coalesce(p_step_uuids, '{}') LOOP
    SELECT ws.current_state INTO v_state FROM tasker.workflow_steps ws
    WHERE ws.workflow_step_uuid = v_step AND ws.task_uuid = p_task_uuid;
    IF v_state = 'waiting_for_retry' THEN
      PERFORM tasker.transition_step_state(v_step, 'waiting_for_retry', 'retry', 'pending', p_processor_uuid);
    END IF;
    IF tasker.transition_step_state(v_step, 'pending', 'enqueue', 'enqueued', p_processor_uuid) THEN
      v_messages := v_messages || json_build_object('task_uuid', p_task_uuid, 'step_uuid', v_step,
                                                    'correlation_id', v_correlation);
    END IF;
  END LOOP;
  IF cardinality(v_messages) = 0 THEN
    RETURN '{}';
  END IF;
  IF NOT p_notify THEN
    RETURN ARRAY(SELECT pgmq.send_batch(v_queue, v_messages));
  END IF;
  RETURN ARRAY(SELECT pgmq.send_batch_with_notify(v_queue, v_messages));
END;
$$;

-- Decides what a task does next from its steps and does it, in one transaction under the task row
-- lock (A §1.4 finalization, B §1.4 steps 2 and 5). The decision, first match wins:
--   a step in error -> blocked_by_failures (nothing more is enqueued), then error once no step
--                      is in flight;
--   ready steps     -> enqueue up to p_batch_size of them (the task ends in steps_in_process; a task
--                      already there makes no task transition);
--   steps in flight -> steps_in_process (no transition when already there);
--   all complete    -> complete;
--   an isolated batch worker in error (failure_strategy isolate, 0007), nothing else to do
--                   -> blocked_by_failures without give_up: it waits for an operator; such a
--                      worker blocks nothing else (its siblings are still enqueued);
--   otherwise       -> waiting_for_retry when a step waits for its retry, else waiting_for_dependencies.
-- A pending task is started on the way (pending -> initializing -> ...). Terminal tasks are left
-- alone. Returns {task_uuid, found, from_state, state, execution_status, enqueued, msg_ids,
-- next_retry_at}: the ids of the step messages sent, and the earliest retry not yet due, if any.
CREATE FUNCTION tasker.evaluate_task(p_task_uuid uuid, p_processor_uuid uuid DEFAULT NULL, p_batch_size integer DEFAULT 50,
                                     p_notify boolean DEFAULT true)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_from text;
  v_state text;
  v_total integer;
  v_completed integer;
  v_failed integer;
  v_isolated integer;
  v_in_flight integer;
  v_retrying integer;
  v_next_retry timestamptz;
  v_ready uuid[] := '{}';
  v_status text;
  v_msg_ids bigint[] := '{}';
BEGIN
  IF p_batch_size IS NULL OR p_batch_size < 1 THEN
    RAISE EXCEPTION 'batch size must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  SELECT t.current_state INTO v_from FROM tasker.tasks t WHERE t.task_uuid = p_task_uuid FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('task_uuid', p_task_uuid, 'found', false);
  END IF;
  v_state := v_from;
  IF v_state IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
    RETURN jsonb_build_object('task_uuid', p_task_uuid, 'found', true, 'from_state', v_from, 'state', v_state,
                              'execution_status', NULL, 'enqueued', 0, 'msg_ids', '[]'::jsonb, 'next_retry_at', NULL);
  END IF;

  SELECT count(*)::integer,
         count(*) FILTER (WHERE s.current_state IN ('complete', 'resolved_manually'))::integer,
         -- an isolated batch worker's failure (0007, failure_strategy isolate) does not block the others
         count(*) FILTER (WHERE s.current_state = 'error'
                            AND s.inputs -> 'batch_metadata' ->> 'failure_strategy' IS DISTINCT FROM 'isolate')::integer,
         count(*) FILTER (WHERE s.current_state = 'error'
                            AND s.inputs -> 'batch_metadata' ->> 'failure_strategy' = 'isolate')::integer,
         count(*) FILTER (WHERE s.current_state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                                    'enqueued_as_error_for_orchestration'))::integer,
         count(*) FILTER (WHERE s.current_state = 'waiting_for_retry')::integer,
         min(s.next_retry_at) FILTER (WHERE s.current_state = 'waiting_for_retry' AND s.next_retry_at > clock_timestamp())
  INTO v_total, v_completed, v_failed, v_isolated, v_in_flight, v_retrying, v_next_retry
  FROM tasker.workflow_steps s WHERE s.task_uuid = p_task_uuid;
  IF v_failed = 0 THEN
    v_ready := ARRAY(SELECT r.workflow_step_uuid FROM tasker.ready_steps(p_task_uuid) r
                     ORDER BY r.workflow_step_uuid LIMIT p_batch_size);
  END IF;
  v_status := CASE
    WHEN v_failed > 0 THEN 'blocked_by_failures'
    WHEN cardinality(v_ready) > 0 THEN 'has_ready_steps'
    WHEN v_in_flight > 0 THEN 'processing'
    WHEN v_completed = v_total THEN 'all_complete'
    WHEN v_isolated > 0 AND v_retrying = 0 THEN 'blocked_by_failures'  -- waits for an operator
    ELSE 'waiting_for_dependencies'
  END;

  IF v_state = 'pending' THEN
    v_state := tasker.move_task(p_task_uuid, 'pending', 'start', 'initializing', p_processor_uuid);
  END IF;

  IF v_state = 'initializing' THEN
    v_state := CASE v_status
      WHEN 'has_ready_steps' THEN tasker.move_task(p_task_uuid, v_state, 'ready_steps_found', 'enqueuing_steps', p_processor_uuid)
      WHEN 'all_complete' THEN tasker.move_task(p_task_uuid, v_state, 'no_steps_found', 'complete', p_processor_uuid)
      ELSE tasker.move_task(p_task_uuid, v_state, 'no_dependencies_ready', 'waiting_for_dependencies', p_processor_uuid)
    END;
  ELSIF v_state = 'waiting_for_retry' THEN
    -- only a due retry moves it; anything else waits for its timer, an operator or staleness
    IF v_status = 'has_ready_steps' THEN
      v_state := tasker.move_task(p_task_uuid, v_state, 'retry_ready', 'enqueuing_steps', p_processor_uuid);
    END IF;
  ELSIF v_state = 'steps_in_process' AND v_status = 'has_ready_steps' THEN
    -- more steps became ready while the task runs: enqueued without moving the task through
    -- evaluating_results and enqueuing_steps and back (the step transitions record them)
    v_msg_ids := tasker.enqueue_steps(p_task_uuid, v_ready, p_processor_uuid, p_notify);
  ELSIF (v_state = 'steps_in_process' AND v_status <> 'processing')
     OR (v_state = 'waiting_for_dependencies' AND v_status <> 'waiting_for_dependencies')
     OR v_state = 'evaluating_results' THEN
    IF v_state = 'steps_in_process' THEN
      v_state := tasker.move_task(p_task_uuid, v_state, 'step_completed', 'evaluating_results', p_processor_uuid);
    ELSIF v_state = 'waiting_for_dependencies' THEN
      v_state := tasker.move_task(p_task_uuid, v_state, 'dependencies_ready', 'evaluating_results', p_processor_uuid);
    END IF;
    v_state := CASE v_status
      WHEN 'all_complete' THEN tasker.move_task(p_task_uuid, v_state, 'all_steps_successful', 'complete', p_processor_uuid)
      WHEN 'has_ready_steps' THEN tasker.move_task(p_task_uuid, v_state, 'ready_steps_found', 'enqueuing_steps', p_processor_uuid)
      WHEN 'processing' THEN tasker.move_task(p_task_uuid, v_state, 'steps_in_flight', 'steps_in_process', p_processor_uuid)
      WHEN 'blocked_by_failures' THEN tasker.move_task(p_task_uuid, v_state, 'permanent_failure', 'blocked_by_failures', p_processor_uuid)
      ELSE CASE WHEN v_retrying > 0
             THEN tasker.move_task(p_task_uuid, v_state, 'step_failed', 'waiting_for_retry', p_processor_uuid)
             ELSE tasker.move_task(p_task_uuid, v_state, 'no_dependencies_ready', 'waiting_for_dependencies', p_processor_uuid)
           END
    END;
  END IF;

  -- the finalizer's second pass: a failed step that may not run again fails the task, once nothing
  -- runs any more (the results of steps still in flight are recorded first)
  IF v_state = 'blocked_by_failures' AND v_in_flight = 0 AND v_failed > 0 THEN
    v_state := tasker.move_task(p_task_uuid, v_state, 'give_up', 'error', p_processor_uuid,
                                jsonb_build_object('failed_steps', v_failed));
  END IF;

  IF v_state = 'enqueuing_steps' THEN
    v_msg_ids := tasker.enqueue_steps(p_task_uuid, v_ready, p_processor_uuid, p_notify);
    v_state := tasker.move_task(p_task_uuid, v_state, 'steps_enqueued', 'steps_in_process', p_processor_uuid,
                                jsonb_build_object('enqueued_steps', cardinality(v_msg_ids)));
  END IF;

  IF v_state IN ('complete', 'error') AND v_state IS DISTINCT FROM v_from THEN
    PERFORM pg_notify('tasker_task_finished', json_build_object('task_uuid', p_task_uuid, 'state', v_state)::text);
  ELSIF v_next_retry IS NOT NULL AND v_state NOT IN ('complete', 'error') THEN
    PERFORM pg_notify('tasker_retry_scheduled',
                      json_build_object('task_uuid', p_task_uuid, 'next_retry_at', v_next_retry)::text);
  END IF;
  RETURN jsonb_build_object('task_uuid', p_task_uuid, 'found', true, 'from_state', v_from, 'state', v_state,
                            'execution_status', v_status, 'enqueued', cardinality(v_msg_ids),
                            'msg_ids', to_jsonb(v_msg_ids), 'next_retry_at', v_next_retry);
END;
$$;

-- Seconds before the next attempt of a step that failed on attempt p_attempts (1 = the first run),
-- from its template `retry` block: the same rule as computeBackoffSeconds in backoff.ts (a test
-- compares them). A handler's hint (backoff_hint.delay_seconds, e.g. Retry-After) wins, capped.
CREATE FUNCTION tasker.retry_delay_seconds(
  p_retry jsonb, p_attempts integer, p_hint_seconds double precision DEFAULT NULL,
  p_multiplier double precision DEFAULT 2, p_jitter double precision DEFAULT 0.15
) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_base double precision := coalesce((p_retry ->> 'backoff_base_ms')::double precision, 1000);
  v_max double precision := coalesce((p_retry ->> 'max_backoff_ms')::double precision, 30000);
  v_ms double precision;
  v_a double precision := 1;
  v_b double precision := 1;
  v_next double precision;
BEGIN
  IF p_attempts IS NULL OR p_attempts < 1 THEN
    RAISE EXCEPTION 'attempts must be a positive integer' USING ERRCODE = 'TK003';
  END IF;
  IF p_hint_seconds IS NOT NULL THEN
    RETURN ceil(least(greatest(p_hint_seconds, 0) * 1000, v_max) / 1000)::integer;
  END IF;
  CASE coalesce(p_retry ->> 'backoff', 'exponential')
    WHEN 'none' THEN RETURN 0;
    WHEN 'linear' THEN v_ms := v_base * p_attempts;
    WHEN 'fibonacci' THEN
      FOR i IN 2..p_attempts LOOP
        v_next := v_a + v_b;
        v_a := v_b;
        v_b := v_next;
      END LOOP;
      v_ms := v_base * v_a;
    ELSE v_ms := v_base * power(p_multiplier, p_attempts - 1);
  END CASE;
  v_ms := least(v_ms, v_max);
  IF p_jitter > 0 THEN
    v_ms := least(v_ms * (1 + p_jitter * (2 * random() - 1)), v_max);
  END IF;
  RETURN greatest(0, ceil(v_ms / 1000))::integer;
END;
$$;

-- Applies the result a worker stored for a step (hop 4): enqueued_for_orchestration -> complete;
-- enqueued_as_error_for_orchestration -> waiting_for_retry with backoff when the result says
-- retryable (metadata.retryable, else error.retryable, else true), the step is retryable and
-- attempts < max_attempts, otherwise -> error (a batch worker's failure_strategy then applies, 0007
-- apply_batch_failure_strategy). Then evaluate_task. A step in any other state was
-- applied already (a redelivered message): nothing changes and applied is false.
CREATE FUNCTION tasker.apply_step_result(
  p_step_uuid uuid, p_processor_uuid uuid DEFAULT NULL, p_batch_size integer DEFAULT 50,
  p_backoff_multiplier double precision DEFAULT 2, p_backoff_jitter double precision DEFAULT 0.15,
  p_notify boolean DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_state text;
  v_results jsonb;
  v_attempts integer;
  v_max_attempts integer;
  v_retryable boolean;
  v_retry jsonb;
  v_step_type text;
  v_wants_retry boolean;
  v_hint double precision;
  v_outcome text;
BEGIN
  SELECT ws.task_uuid INTO v_task FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('applied', false, 'step_uuid', p_step_uuid, 'step_state', NULL);
  END IF;
  PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = v_task FOR NO KEY UPDATE;
  SELECT ws.current_state, ws.results, ws.attempts, ws.max_attempts, ws.retryable, d.definition -> 'retry',
         d.definition ->> 'type'
  INTO v_state, v_results, v_attempts, v_max_attempts, v_retryable, v_retry, v_step_type
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  LEFT JOIN LATERAL (
    SELECT s AS definition FROM jsonb_array_elements(nt.configuration -> 'steps') s
    WHERE s ->> 'name' = coalesce(ws.inputs ->> '__template_step_name', ns.name)
    LIMIT 1
  ) d ON true
  WHERE ws.workflow_step_uuid = p_step_uuid
  FOR NO KEY UPDATE OF ws;

  IF v_state = 'enqueued_for_orchestration' THEN
    -- complete, or error when a decision's outcome is invalid (0007: creates its steps first)
    v_outcome := tasker.complete_reported_step(p_step_uuid, v_step_type, p_processor_uuid);
  ELSIF v_state = 'enqueued_as_error_for_orchestration' THEN
    v_wants_retry := coalesce(
      CASE WHEN jsonb_typeof(v_results -> 'metadata' -> 'retryable') = 'boolean'
           THEN (v_results -> 'metadata' ->> 'retryable')::boolean END,
      CASE WHEN jsonb_typeof(v_results -> 'error' -> 'retryable') = 'boolean'
           THEN (v_results -> 'error' ->> 'retryable')::boolean END,
      true);
    IF v_wants_retry AND v_retryable AND v_attempts < v_max_attempts THEN
      IF jsonb_typeof(v_results -> 'orchestration_metadata' -> 'backoff_hint' -> 'delay_seconds') = 'number' THEN
        v_hint := (v_results -> 'orchestration_metadata' -> 'backoff_hint' ->> 'delay_seconds')::double precision;
      END IF;
      PERFORM tasker.set_step_backoff(p_step_uuid,
        tasker.retry_delay_seconds(v_retry, greatest(v_attempts, 1), v_hint, p_backoff_multiplier, p_backoff_jitter));
      PERFORM tasker.transition_step_state(p_step_uuid, v_state, 'wait_for_retry', 'waiting_for_retry', p_processor_uuid);
      v_outcome := 'waiting_for_retry';
    ELSE
      PERFORM tasker.transition_step_state(p_step_uuid, v_state, 'fail', 'error', p_processor_uuid,
        jsonb_build_object('reason', CASE WHEN NOT v_wants_retry OR NOT v_retryable THEN 'not_retryable'
                                          ELSE 'attempts_exhausted' END));
      v_outcome := 'error';
      IF v_step_type = 'batch_worker' THEN  -- its batch_config failure_strategy (0007)
        v_outcome := tasker.apply_batch_failure_strategy(p_step_uuid, p_processor_uuid);
      END IF;
    END IF;
  ELSE
    RETURN jsonb_build_object('applied', false, 'step_uuid', p_step_uuid, 'step_state', v_state);
  END IF;
  RETURN jsonb_build_object('applied', true, 'step_uuid', p_step_uuid, 'step_state', v_outcome,
                            'task', tasker.evaluate_task(v_task, p_processor_uuid, p_batch_size, p_notify));
END;
$$;

-- The step uuid of a pointer message, or NULL when the message has none.
CREATE FUNCTION tasker.message_step_uuid(p_message json) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN json_typeof(p_message -> 'step_uuid') = 'string'
                   AND (p_message ->> 'step_uuid') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              THEN (p_message ->> 'step_uuid')::uuid END
$$;

-- Locks up to p_limit visible messages of a queue FOR UPDATE SKIP LOCKED (rows another consumer
-- holds are skipped) and returns their ids: the notified ids when given (push), else the oldest
-- visible messages at least p_min_age_seconds old (poll: push had its chance). Two queries, so that
-- each keeps its own primary-key plan.
CREATE FUNCTION tasker.lock_visible_messages(
  p_queue text, p_msg_ids bigint[], p_limit integer, p_min_age_seconds double precision
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
BEGIN
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'limit must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  IF p_msg_ids IS NOT NULL THEN
    RETURN ARRAY(
      SELECT m.msg_id FROM pgmq.messages m
      WHERE m.queue_name = p_queue AND m.msg_id = ANY (p_msg_ids) AND m.vt <= clock_timestamp()
      ORDER BY m.msg_id LIMIT p_limit
      FOR UPDATE SKIP LOCKED);
  END IF;
  RETURN ARRAY(
    SELECT m.msg_id FROM pgmq.messages m
    WHERE m.queue_name = p_queue AND m.vt <= clock_timestamp()
      AND m.enqueued_at <= clock_timestamp() - make_interval(secs => coalesce(p_min_age_seconds, 0))
    ORDER BY m.msg_id LIMIT p_limit
    FOR UPDATE SKIP LOCKED);
END;
$$;

-- Orchestration's result intake, push and poll alike: applies the result of each message and acks
-- (deletes) it in the same transaction, on the messages lock_visible_messages takes (another
-- instance's are skipped), applied in task order, so that
-- concurrent batches take task locks in the same order. One message's failure does not stop the
-- others: it is left in the queue, visible again after p_retry_delay_seconds, and reported.
-- A message without a step uuid is archived (kept for inspection). Outcomes: applied, duplicate
-- (already applied: acked without effect), malformed, failed.
CREATE FUNCTION tasker.process_step_results(
  p_queue text, p_msg_ids bigint[], p_limit integer, p_min_age_seconds double precision DEFAULT 0,
  p_processor_uuid uuid DEFAULT NULL, p_batch_size integer DEFAULT 50, p_retry_delay_seconds double precision DEFAULT 5
) RETURNS TABLE (msg_id bigint, outcome text, detail jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_row record;
  v_step uuid;
  v_applied jsonb;
  v_ids bigint[] := tasker.lock_visible_messages(p_queue, p_msg_ids, p_limit, p_min_age_seconds);
BEGIN
  FOR v_row IN
    SELECT m.msg_id, m.message FROM pgmq.messages m
    WHERE m.queue_name = p_queue AND m.msg_id = ANY (v_ids)
    ORDER BY m.message ->> 'task_uuid', m.msg_id
  LOOP
    msg_id := v_row.msg_id;
    v_step := tasker.message_step_uuid(v_row.message);
    IF v_step IS NULL THEN
      PERFORM pgmq.archive(p_queue, ARRAY[v_row.msg_id]);
      outcome := 'malformed';
      detail := jsonb_build_object('message', v_row.message);
      RETURN NEXT;
      CONTINUE;
    END IF;
    BEGIN
      v_applied := tasker.apply_step_result(v_step, p_processor_uuid, p_batch_size);
      PERFORM pgmq.delete(p_queue, ARRAY[v_row.msg_id]);
      outcome := CASE WHEN (v_applied ->> 'applied')::boolean THEN 'applied' ELSE 'duplicate' END;
      detail := v_applied;
    EXCEPTION WHEN OTHERS THEN
      UPDATE pgmq.messages m SET vt = clock_timestamp() + make_interval(secs => p_retry_delay_seconds)
      WHERE m.queue_name = p_queue AND m.msg_id = v_row.msg_id;
      outcome := 'failed';
      detail := jsonb_build_object('step_uuid', v_step, 'sqlstate', SQLSTATE, 'error', SQLERRM);
    END;
    RETURN NEXT;
  END LOOP;
END;
$$;

-- The readiness poller's pass: claims up to p_limit tasks with work by discovery (FOR UPDATE SKIP
-- LOCKED, so concurrent pollers get disjoint tasks) and evaluates each. One row per task.
CREATE FUNCTION tasker.process_ready_tasks(p_limit integer DEFAULT 5, p_processor_uuid uuid DEFAULT NULL,
                                           p_batch_size integer DEFAULT 50)
RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
BEGIN
  FOR v_task IN SELECT r.task_uuid FROM tasker.get_next_ready_tasks(p_limit) r LOOP
    RETURN NEXT tasker.evaluate_task(v_task, p_processor_uuid, p_batch_size);
  END LOOP;
END;
$$;

-- Everything a handler needs about a step, as one JSON object (claim_step's context): task and step
-- ids and names, correlation id, the task context, the step's inputs, its template step definition
-- (batch worker instances map to their template through inputs.__template_step_name), the results
-- of every processed ancestor by step name, retry_count (attempts before this one), attempt (this
-- one: the claim's token), max_attempts, retryable and checkpoint.
CREATE FUNCTION tasker.step_execution_context(p_step_uuid uuid) RETURNS jsonb
-- PL/pgSQL: its plan is cached per session (a SQL function's is made again on every call)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
           'task_uuid', t.task_uuid,
           'step_uuid', ws.workflow_step_uuid,
           'step_name', ns.name,
           'template_step_name', coalesce(ws.inputs ->> '__template_step_name', ns.name),
           'correlation_id', t.correlation_id,
           'namespace', tn.name,
           'task_name', nt.name,
           'task_version', nt.version,
           'context', t.context,
           'step_inputs', coalesce(ws.inputs, '{}'),
           'step_definition', (
             SELECT d FROM jsonb_array_elements(nt.configuration -> 'steps') d
             WHERE d ->> 'name' = coalesce(ws.inputs ->> '__template_step_name', ns.name)
             LIMIT 1),
           'dependency_results', coalesce((
             SELECT jsonb_object_agg(a.step_name, a.results)
             FROM tasker.get_step_transitive_dependencies(ws.workflow_step_uuid) a
             WHERE a.processed AND a.results IS NOT NULL), '{}'),
           'retry_count', ws.attempts - 1,
           'attempt', ws.attempts,
           'max_attempts', ws.max_attempts,
           'retryable', ws.retryable,
           'checkpoint', ws.checkpoint)
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
  WHERE ws.workflow_step_uuid = p_step_uuid);
END;
$$;

CREATE OR REPLACE FUNCTION tasker.claim_step(p_step_uuid uuid, p_worker_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tasker.transition_step_state(p_step_uuid, 'enqueued', 'start', 'in_progress', p_worker_uuid, p_metadata) THEN
    RETURN NULL;
  END IF;
  RETURN tasker.step_execution_context(p_step_uuid);
END;
$$;

-- complete_step (0005), and with p_queue NULL no message is sent: the caller applies the result
-- itself (complete_step_message with inline apply).
CREATE OR REPLACE FUNCTION tasker.complete_step(
  p_step_uuid uuid, p_worker_uuid uuid, p_results jsonb, p_queue text DEFAULT 'orchestration_step_results'
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_success boolean;
BEGIN
  IF jsonb_typeof(p_results -> 'success') IS DISTINCT FROM 'boolean' THEN
    RAISE EXCEPTION 'a step result needs a boolean success' USING ERRCODE = 'TK003';
  END IF;
  v_success := (p_results ->> 'success')::boolean;
  IF NOT tasker.transition_step_state(
    p_step_uuid, 'in_progress',
    CASE WHEN v_success THEN 'enqueue_for_orchestration' ELSE 'enqueue_as_error_for_orchestration' END,
    CASE WHEN v_success THEN 'enqueued_for_orchestration' ELSE 'enqueued_as_error_for_orchestration' END,
    p_worker_uuid, '{}', p_results) THEN
    RETURN false;
  END IF;
  IF p_queue IS NOT NULL THEN
    PERFORM pgmq.send_with_notify(p_queue, (
      SELECT json_build_object('task_uuid', t.task_uuid, 'step_uuid', ws.workflow_step_uuid, 'correlation_id', t.correlation_id)
      FROM tasker.workflow_steps ws JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
      WHERE ws.workflow_step_uuid = p_step_uuid));
  END IF;
  RETURN true;
END;
$$;

-- A worker's claim of step messages, push and poll alike (C §1.3–1.4 with the [REC] fixes), on the
-- messages lock_visible_messages takes; then by each message's step state:
--   enqueued    -> claimed (in_progress, attempts + 1);
--   in_progress -> the message is visible again, so the previous worker's lease ran out without a
--                  result: reclaimed when the step may run again (retryable, attempts < max), else
--                  failed as worker_lost (non-retryable) and handed to orchestration;
--   other       -> stale (finished, or cancelled): acked without effect;
--   no step     -> malformed: archived.
-- A claimed message stays in the queue as the worker's lease: invisible for the step's
-- timeout_seconds (else p_default_timeout_seconds) plus p_lease_grace_seconds, and acked only by
-- complete_step_message. A worker that dies leaves it to reappear for another worker.
CREATE FUNCTION tasker.claim_step_messages(
  p_queue text, p_msg_ids bigint[], p_limit integer, p_min_age_seconds double precision, p_worker_uuid uuid,
  p_default_timeout_seconds integer DEFAULT 30, p_lease_grace_seconds integer DEFAULT 5
) RETURNS TABLE (msg_id bigint, outcome text, context jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_row record;
  v_step uuid;
  v_state text;
  v_attempts integer;
  v_max_attempts integer;
  v_retryable boolean;
  v_timeout integer;
  v_ids bigint[] := tasker.lock_visible_messages(p_queue, p_msg_ids, p_limit, p_min_age_seconds);
BEGIN
  FOR v_row IN
    SELECT m.msg_id, m.message FROM pgmq.messages m
    WHERE m.queue_name = p_queue AND m.msg_id = ANY (v_ids)
    ORDER BY m.msg_id
  LOOP
    msg_id := v_row.msg_id;
    context := NULL;
    v_step := tasker.message_step_uuid(v_row.message);
    IF v_step IS NULL THEN
      PERFORM pgmq.archive(p_queue, ARRAY[v_row.msg_id]);
      outcome := 'malformed';
      RETURN NEXT;
      CONTINUE;
    END IF;
    SELECT ws.current_state, ws.attempts, ws.max_attempts, ws.retryable
    INTO v_state, v_attempts, v_max_attempts, v_retryable
    FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = v_step FOR NO KEY UPDATE;
    IF v_state = 'enqueued' THEN
      PERFORM tasker.transition_step_state(v_step, 'enqueued', 'start', 'in_progress', p_worker_uuid);
      outcome := 'claimed';
    ELSIF v_state = 'in_progress' AND v_retryable AND v_attempts < v_max_attempts THEN
      PERFORM tasker.transition_step_state(v_step, 'in_progress', 'reclaim', 'in_progress', p_worker_uuid,
                                           jsonb_build_object('reason', 'lease_expired'));
      outcome := 'reclaimed';
    ELSIF v_state = 'in_progress' THEN
      PERFORM tasker.complete_step(v_step, p_worker_uuid, jsonb_build_object(
        'step_uuid', v_step, 'success', false, 'status', 'error', 'result', '{}'::jsonb,
        'metadata', jsonb_build_object('execution_time_ms', 0, 'retryable', false, 'error_type', 'worker_lost',
                                       'completed_at', clock_timestamp()),
        'error', jsonb_build_object('message', 'the worker running this step stopped before reporting a result',
                                    'error_type', 'worker_lost', 'retryable', false)));
      PERFORM pgmq.delete(p_queue, ARRAY[v_row.msg_id]);
      outcome := 'lost';
      RETURN NEXT;
      CONTINUE;
    ELSE
      PERFORM pgmq.delete(p_queue, ARRAY[v_row.msg_id]);
      outcome := 'stale';
      RETURN NEXT;
      CONTINUE;
    END IF;
    context := tasker.step_execution_context(v_step);
    v_timeout := coalesce(tasker.jsonb_to_integer(context -> 'step_definition' -> 'timeout_seconds'),
                          p_default_timeout_seconds);
    UPDATE pgmq.messages m
    SET vt = clock_timestamp() + make_interval(secs => v_timeout + p_lease_grace_seconds), read_ct = m.read_ct + 1
    WHERE m.queue_name = p_queue AND m.msg_id = v_row.msg_id;
    context := context || jsonb_build_object('timeout_seconds', v_timeout);
    RETURN NEXT;
  END LOOP;
END;
$$;

-- A worker's completion (hop 3, or hops 3 and 4 with p_apply_inline): when the step is still in
-- progress under this claim (attempts = p_attempt), stores the result, moves the step to
-- enqueued_(as_error_)for_orchestration, acks the step message and either sends the result pointer
-- to p_result_queue or applies the result here (apply_step_result). With the inline apply and
-- p_claim_limit > 0, the steps the result made ready (their messages are in this same namespace
-- queue) are claimed for this worker in the same transaction, up to p_claim_limit (a chain of steps
-- then costs one round trip per step), and only the messages it did not claim are notified. Returns {completed, applied?, claims?: [{msg_id, outcome,
-- context}]}. When another worker reclaimed the step (attempts moved on) nothing changes and the
-- message, now that worker's lease, stays; when the step left in_progress otherwise (cancelled,
-- resolved), the message is acked and the result dropped.
CREATE FUNCTION tasker.complete_step_message(
  p_queue text, p_msg_id bigint, p_step_uuid uuid, p_worker_uuid uuid, p_attempt integer, p_results jsonb,
  p_result_queue text DEFAULT 'orchestration_step_results', p_apply_inline boolean DEFAULT false,
  p_batch_size integer DEFAULT 50, p_claim_limit integer DEFAULT 0, p_default_timeout_seconds integer DEFAULT 30,
  p_lease_grace_seconds integer DEFAULT 5
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_state text;
  v_attempts integer;
  v_applied jsonb;
  v_ready bigint[];
  v_claims jsonb;
  v_claimed bigint[];
BEGIN
  SELECT ws.current_state, ws.attempts INTO v_state, v_attempts
  FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid FOR NO KEY UPDATE;
  IF v_attempts IS DISTINCT FROM p_attempt THEN
    RETURN jsonb_build_object('completed', false, 'reason', 'reclaimed', 'step_state', v_state);
  END IF;
  IF v_state <> 'in_progress' THEN
    PERFORM pgmq.delete(p_queue, ARRAY[p_msg_id]);
    RETURN jsonb_build_object('completed', false, 'reason', 'not_in_progress', 'step_state', v_state);
  END IF;
  PERFORM tasker.complete_step(p_step_uuid, p_worker_uuid, p_results,
                               CASE WHEN p_apply_inline THEN NULL ELSE p_result_queue END);
  PERFORM pgmq.delete(p_queue, ARRAY[p_msg_id]);
  IF NOT p_apply_inline THEN
    RETURN jsonb_build_object('completed', true);
  END IF;
  IF coalesce(p_claim_limit, 0) < 1 THEN
    RETURN jsonb_build_object('completed', true, 'applied', tasker.apply_step_result(p_step_uuid, p_worker_uuid, p_batch_size));
  END IF;
  -- the new messages are not notified: this worker claims what it can, and only the rest is
  -- announced to the other workers
  v_applied := tasker.apply_step_result(p_step_uuid, p_worker_uuid, p_batch_size, 2, 0.15, false);
  v_ready := ARRAY(SELECT jsonb_array_elements_text(v_applied -> 'task' -> 'msg_ids')::bigint);
  IF cardinality(v_ready) = 0 THEN
    RETURN jsonb_build_object('completed', true, 'applied', v_applied);
  END IF;
  SELECT coalesce(jsonb_agg(jsonb_build_object('msg_id', c.msg_id, 'outcome', c.outcome, 'context', c.context)), '[]'),
         coalesce(array_agg(c.msg_id), '{}')
  INTO v_claims, v_claimed
  FROM tasker.claim_step_messages(p_queue, v_ready, p_claim_limit, 0, p_worker_uuid,
                                  p_default_timeout_seconds, p_lease_grace_seconds) c;
  PERFORM pgmq.notify_batch(p_queue, ARRAY(SELECT unnest(v_ready) EXCEPT SELECT unnest(v_claimed) ORDER BY 1));
  RETURN jsonb_build_object('completed', true, 'applied', v_applied, 'claims', v_claims);
END;
$$;
