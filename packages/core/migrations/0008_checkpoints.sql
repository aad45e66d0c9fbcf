-- Checkpoints of long-running steps (reference C §1.8, TAS-125; AUDIT W-1): a handler (usually a
-- batch worker) yields its progress — a cursor, the items processed so far and any accumulated
-- results — and the worker stores it here and runs the handler again under the same claim. The step
-- stays in_progress and its attempts do not move. After a real failure and a retry, the claim's
-- context (step_execution_context) carries the stored checkpoint, so the handler resumes from it.
-- The staleness detector (0004) leaves a task alone while a running step's checkpoint is fresh.

-- Stores a checkpoint of step p_step_uuid while it is in progress under the caller's claim: state
-- in_progress, attempts = p_attempt (the claim token) and the claim made by p_worker_uuid. The
-- column becomes
--   {cursor, items_processed, timestamp, accumulated_results, history: old history ++ [{cursor, timestamp}]}
-- (cursor and accumulated_results any JSON, accumulated_results null when not given; timestamp the
-- database's clock, ISO 8601 UTC, which is what the staleness detector reads). The claim's lease —
-- the step message p_msg_id in p_queue — is extended to at least now + p_lease_seconds, so a worker
-- that keeps making progress is not reclaimed. Attempts are not incremented and no transition is
-- written. Returns whether the checkpoint was stored: false when the claim is gone (reclaimed by
-- another worker, the step finished or was cancelled).
-- The message row is locked before the step row, in the order claim_step_messages takes them, so a
-- concurrent reclaim and a checkpoint never deadlock: the reclaim wins, the checkpoint then finds
-- the attempts moved on.
CREATE FUNCTION tasker.checkpoint_step(
  p_step_uuid uuid, p_worker_uuid uuid, p_attempt integer, p_checkpoint jsonb, p_queue text, p_msg_id bigint,
  p_lease_seconds integer
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_state text;
  v_attempts integer;
  v_old jsonb;
  v_claimer uuid;
  v_items jsonb := p_checkpoint -> 'items_processed';
  v_now text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
BEGIN
  IF jsonb_typeof(p_checkpoint) IS DISTINCT FROM 'object' OR NOT p_checkpoint ? 'cursor' THEN
    RAISE EXCEPTION 'a checkpoint is an object with a cursor' USING ERRCODE = 'TK003';
  END IF;
  IF jsonb_typeof(v_items) IS DISTINCT FROM 'number' OR (v_items #>> '{}')::numeric < 0
     OR (v_items #>> '{}')::numeric <> trunc((v_items #>> '{}')::numeric) THEN
    RAISE EXCEPTION 'checkpoint items_processed must be an integer >= 0' USING ERRCODE = 'TK003';
  END IF;
  IF p_lease_seconds IS NULL OR p_lease_seconds < 1 THEN
    RAISE EXCEPTION 'lease seconds must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  PERFORM 1 FROM pgmq.messages m WHERE m.queue_name = p_queue AND m.msg_id = p_msg_id FOR UPDATE;
  SELECT ws.current_state, ws.attempts, ws.checkpoint INTO v_state, v_attempts, v_old
  FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid FOR NO KEY UPDATE;
  IF v_state IS DISTINCT FROM 'in_progress' OR v_attempts IS DISTINCT FROM p_attempt THEN
    RETURN false;
  END IF;
  -- the claim (or reclaim) is the step's latest transition
  SELECT tr.processor_uuid INTO v_claimer FROM tasker.workflow_step_transitions tr
  WHERE tr.workflow_step_uuid = p_step_uuid ORDER BY tr.sort_key DESC LIMIT 1;
  IF v_claimer IS DISTINCT FROM p_worker_uuid THEN
    RETURN false;
  END IF;
  UPDATE tasker.workflow_steps ws
  SET checkpoint = jsonb_build_object(
        'cursor', p_checkpoint -> 'cursor',
        'items_processed', v_items,
        'timestamp', v_now,
        'accumulated_results', coalesce(p_checkpoint -> 'accumulated_results', 'null'::jsonb),
        'history', CASE WHEN jsonb_typeof(v_old -> 'history') = 'array' THEN v_old -> 'history' ELSE '[]'::jsonb END
                   || jsonb_build_array(jsonb_build_object('cursor', p_checkpoint -> 'cursor', 'timestamp', v_now))),
      updated_at = now()
  WHERE ws.workflow_step_uuid = p_step_uuid;
  UPDATE pgmq.messages m
  SET vt = greatest(m.vt, clock_timestamp() + make_interval(secs => p_lease_seconds))
  WHERE m.queue_name = p_queue AND m.msg_id = p_msg_id;
  RETURN true;
END;
$$;
