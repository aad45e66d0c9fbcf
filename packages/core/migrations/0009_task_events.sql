-- Task events (issue 6, `GET /v1/tasks/{uuid}/events`): every state change of a task or of one of its
-- steps is a row inserted into tasker.task_transitions / tasker.workflow_step_transitions (by
-- transition_task_state, transition_step_state, create_task_with_steps and the dynamic step
-- creation). An AFTER INSERT trigger on each table announces the row, when the task is watched
-- (below), on the channel
-- `tasker_task_events`, one small JSON payload per row:
--
--   {"task_uuid", "step_uuid" (null for the task itself), "step_name" (steps only), "from_state",
--    "to_state", "event", "sort_key", "at" (the transition's created_at, RFC 3339 UTC, microseconds)}
--
-- Notifications are delivered at commit, in commit order (within one transaction in insertion
-- order); a rolled-back transition is never announced. Per task or step, sort_key increases by one
-- with each transition, which is what listeners order and deduplicate by. The payload stays far
-- below pg_notify's 8000-byte limit (uuids, state and event names of at most 64 characters, a step
-- name). The API server holds one LISTEN session for all its event streams.
--
-- Hot path: only WATCHED tasks are announced. A NOTIFY makes its transaction take the notify queue's
-- database-wide lock and write the queue at commit, which every claim and result transaction would
-- pay for nothing while no one streams. So the triggers first probe tasker.task_event_watches (one
-- primary key lookup in a table that is usually empty) and notify only for tasks an API server
-- registered. A server registers a task before it reads the snapshot and, after registering, waits
-- until every transaction that was in progress at that moment has ended (their trigger may have run
-- before the registration was visible), so a stream misses nothing. Registrations expire (a server
-- that died stops costing after expires_at); live servers extend theirs.

CREATE TABLE tasker.task_event_watches (
  task_uuid    uuid NOT NULL,
  -- the API server (its event hub) that watches
  watcher_uuid uuid NOT NULL,
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (task_uuid, watcher_uuid)
);
CREATE INDEX task_event_watches_watcher_idx ON tasker.task_event_watches (watcher_uuid);

-- Whether some server streams the events of task p_task_uuid.
CREATE FUNCTION tasker.task_watched(p_task_uuid uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT EXISTS (SELECT 1 FROM tasker.task_event_watches w
                 WHERE w.task_uuid = p_task_uuid AND w.expires_at > now())
$$;

CREATE FUNCTION tasker.utc_text(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION tasker.notify_task_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tasker.task_watched(NEW.task_uuid) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('tasker_task_events', json_build_object(
    'task_uuid', NEW.task_uuid,
    'step_uuid', NULL,
    'from_state', NEW.from_state,
    'to_state', NEW.to_state,
    'event', NEW.event,
    'sort_key', NEW.sort_key,
    'at', tasker.utc_text(NEW.created_at))::text);
  RETURN NULL;
END;
$$;

CREATE FUNCTION tasker.notify_step_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_name text;
BEGIN
  SELECT ws.task_uuid INTO v_task FROM tasker.workflow_steps ws
  WHERE ws.workflow_step_uuid = NEW.workflow_step_uuid;
  IF v_task IS NULL OR NOT tasker.task_watched(v_task) THEN
    RETURN NULL;
  END IF;
  SELECT ns.name INTO v_name
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  WHERE ws.workflow_step_uuid = NEW.workflow_step_uuid;
  PERFORM pg_notify('tasker_task_events', json_build_object(
    'task_uuid', v_task,
    'step_uuid', NEW.workflow_step_uuid,
    'step_name', v_name,
    'from_state', NEW.from_state,
    'to_state', NEW.to_state,
    'event', NEW.event,
    'sort_key', NEW.sort_key,
    'at', tasker.utc_text(NEW.created_at))::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER task_transitions_notify
  AFTER INSERT ON tasker.task_transitions
  FOR EACH ROW EXECUTE FUNCTION tasker.notify_task_transition();

CREATE TRIGGER workflow_step_transitions_notify
  AFTER INSERT ON tasker.workflow_step_transitions
  FOR EACH ROW EXECUTE FUNCTION tasker.notify_step_transition();
