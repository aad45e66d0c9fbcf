-- The worker's two hops of DESIGN §3, each one statement and one transaction:
--   claim_step:    enqueued -> in_progress (attempts + 1) and everything the handler needs;
--   complete_step: store the result, in_progress -> enqueued_(as_error_)for_orchestration, and send
--                  the result message (with notification) to the orchestration queue.

-- Claims a step for a worker and returns its execution context as one JSON object, or NULL when the
-- step is not claimable (not enqueued: already claimed, finished, or never enqueued). The context:
-- task and step ids and names, correlation id, the task context, the step's inputs, its template
-- step definition (batch worker instances map to their template through inputs.__template_step_name),
-- the results of every processed ancestor by step name, retry_count (attempts before this one),
-- max_attempts, retryable and checkpoint.
CREATE FUNCTION tasker.claim_step(p_step_uuid uuid, p_worker_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_context jsonb;
BEGIN
  IF NOT tasker.transition_step_state(p_step_uuid, 'enqueued', 'start', 'in_progress', p_worker_uuid, p_metadata) THEN
    RETURN NULL;
  END IF;
  SELECT jsonb_build_object(
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
           'max_attempts', ws.max_attempts,
           'retryable', ws.retryable,
           'checkpoint', ws.checkpoint)
  INTO v_context
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  JOIN tasker.task_namespaces tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
  WHERE ws.workflow_step_uuid = p_step_uuid;
  RETURN v_context;
END;
$$;

-- Stores a worker's StepExecutionResult and hands the step to orchestration: in_progress ->
-- enqueued_for_orchestration when results.success is true, enqueued_as_error_for_orchestration when
-- false, and the pointer message {task_uuid, step_uuid, correlation_id} is sent (with notification)
-- to p_queue in the same transaction. Returns false, sending nothing, when the step is no longer in
-- progress (a late or duplicate completion). A result without a boolean `success` is refused (TK003).
CREATE FUNCTION tasker.complete_step(
  p_step_uuid uuid, p_worker_uuid uuid, p_results jsonb, p_queue text DEFAULT 'orchestration_step_results'
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_success boolean;
  v_message json;
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
  SELECT json_build_object('task_uuid', t.task_uuid, 'step_uuid', ws.workflow_step_uuid, 'correlation_id', t.correlation_id)
  INTO v_message
  FROM tasker.workflow_steps ws JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
  WHERE ws.workflow_step_uuid = p_step_uuid;
  PERFORM pgmq.send_with_notify(p_queue, v_message);
  RETURN true;
END;
$$;
