-- Task creation at API speed (issue 6, the `api` benchmark), with the same rows as before:
--
--   create_and_start_task: creates a task with its initial steps and starts it in one statement.
--     In the common case (between 1 and p_batch_size root steps) every row is written once, in its
--     final state: the task in steps_in_process, its root steps enqueued, the four task and the step
--     transitions evaluate_task would have recorded, and one message per root step. The general
--     path, create_task then evaluate_task, wrote the task row four times and each root step twice;
--     both tables index current_state, so every one of those updates rewrote every index entry of
--     the row. Any other case (no steps, more root steps than one batch) still takes the general
--     path. A test compares the two paths row by row for every example template.
--
--   create_and_start_tasks: several creations in one transaction (the API batches creations that
--     arrive together: one round trip, one commit and one announcement per queue for all; see
--     create-batcher.ts), from four on with one statement for all their rows.
--
--   Transition notifications (0009) per statement instead of per row: a statement that inserts
--   many transitions (creation, batch expansion) probes tasker.task_event_watches once, and when no
--   task is watched (the usual case) nothing else runs. Payloads, channel and order per task and per
--   step (sort_key) are unchanged.
--
--   workflow_step_transitions_to_state_idx (0001) is dropped: no query reads step transitions by
--   state and time (the analytics read the step rows), and every transition paid for an entry.
--
--   Step names are looked up one by one, by index, in creation (create_task of 0003 included) and in
--   create_template_steps (0007): as set joins the planner could scan every named step of every
--   template on each call.

DROP INDEX tasker.workflow_step_transitions_to_state_idx;

-- --- named steps looked up one by one ------------------------------------------------------------

-- create_task (0003, the general path of creation) as before, with the same lookups by index.
CREATE OR REPLACE FUNCTION tasker.create_task(p_named_task_uuid uuid, p_task jsonb, p_steps jsonb,
                                              p_processor_uuid uuid DEFAULT NULL)
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
  CROSS JOIN LATERAL (
    SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = s ->> 'name' LIMIT 1
  ) ns;

  SELECT count(*) INTO v_expected_edges
  FROM jsonb_array_elements(p_steps) s, jsonb_array_elements_text(coalesce(s -> 'dependencies', '[]')) d;
  INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
  SELECT parent.workflow_step_uuid, child.workflow_step_uuid, 'provides'
  FROM jsonb_array_elements(p_steps) s
  CROSS JOIN jsonb_array_elements_text(coalesce(s -> 'dependencies', '[]')) d(parent_name)
  CROSS JOIN LATERAL (
    SELECT ws.workflow_step_uuid FROM tasker.named_steps n
    JOIN tasker.workflow_steps ws ON ws.task_uuid = v_task AND ws.named_step_uuid = n.named_step_uuid
    WHERE n.name = s ->> 'name' LIMIT 1
  ) child
  CROSS JOIN LATERAL (
    SELECT ws.workflow_step_uuid FROM tasker.named_steps n
    JOIN tasker.workflow_steps ws ON ws.task_uuid = v_task AND ws.named_step_uuid = n.named_step_uuid
    WHERE n.name = d.parent_name LIMIT 1
  ) parent;
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

-- create_template_steps (0007, decision and batch outcomes) as before, but every step name is looked
-- up by index (LATERAL ... LIMIT 1): as a join, the planner, expecting 100 steps from the function,
-- may scan and hash every named step of every template on each call (measured on creation with
-- 20,000 step names: 6-9 ms instead of 1.2 ms per task).
CREATE OR REPLACE FUNCTION tasker.create_template_steps(p_task_uuid uuid, p_steps jsonb, p_processor_uuid uuid)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_created jsonb;
BEGIN
  INSERT INTO tasker.named_steps (name)
  SELECT DISTINCT s ->> 'name' FROM jsonb_array_elements(p_steps) s
  ON CONFLICT (name) DO NOTHING;

  WITH wanted AS (
    SELECT s, ord FROM jsonb_array_elements(p_steps) WITH ORDINALITY AS w(s, ord)
  ), inserted AS (
    INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, retryable, max_attempts, inputs)
    SELECT p_task_uuid, ns.named_step_uuid,
           coalesce((w.s -> 'retry' ->> 'retryable')::boolean, true),
           coalesce((w.s -> 'retry' ->> 'max_attempts')::integer, 3),
           coalesce(w.s -> 'handler' -> 'initialization', '{}') || coalesce(w.s -> '__inputs', '{}')
    FROM wanted w
    CROSS JOIN LATERAL (
      SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = w.s ->> 'name' LIMIT 1
    ) ns
    WHERE NOT EXISTS (
      SELECT 1 FROM tasker.workflow_steps ws
      WHERE ws.task_uuid = p_task_uuid AND ws.named_step_uuid = ns.named_step_uuid)
    ORDER BY w.ord
    RETURNING workflow_step_uuid, named_step_uuid
  ), transitions AS (
    INSERT INTO tasker.workflow_step_transitions
      (workflow_step_uuid, from_state, to_state, event, metadata, processor_uuid, sort_key, most_recent)
    SELECT i.workflow_step_uuid, NULL, 'pending', 'initialize', '{}', p_processor_uuid, 1, true FROM inserted i
  )
  SELECT coalesce(jsonb_object_agg(ns.name, i.workflow_step_uuid), '{}') INTO v_created
  FROM inserted i
  CROSS JOIN LATERAL (
    SELECT n.name FROM tasker.named_steps n WHERE n.named_step_uuid = i.named_step_uuid LIMIT 1
  ) ns;
  RETURN v_created;
END;
$$;

-- --- transition notifications, per statement ----------------------------------------------------

DROP TRIGGER task_transitions_notify ON tasker.task_transitions;
DROP TRIGGER workflow_step_transitions_notify ON tasker.workflow_step_transitions;
DROP FUNCTION tasker.notify_task_transition();
DROP FUNCTION tasker.notify_step_transition();

CREATE FUNCTION tasker.notify_task_transitions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_row record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasker.task_event_watches) THEN
    RETURN NULL;
  END IF;
  FOR v_row IN
    SELECT n.task_uuid, n.from_state, n.to_state, n.event, n.sort_key, n.created_at
    FROM new_rows n
    WHERE tasker.task_watched(n.task_uuid)
    ORDER BY n.task_uuid, n.sort_key
  LOOP
    PERFORM pg_notify('tasker_task_events', json_build_object(
      'task_uuid', v_row.task_uuid,
      'step_uuid', NULL,
      'from_state', v_row.from_state,
      'to_state', v_row.to_state,
      'event', v_row.event,
      'sort_key', v_row.sort_key,
      'at', tasker.utc_text(v_row.created_at))::text);
  END LOOP;
  RETURN NULL;
END;
$$;

CREATE FUNCTION tasker.notify_step_transitions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_row record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasker.task_event_watches) THEN
    RETURN NULL;
  END IF;
  FOR v_row IN
    SELECT ws.task_uuid, n.workflow_step_uuid, ns.name::text AS step_name, n.from_state, n.to_state, n.event,
           n.sort_key, n.created_at
    FROM new_rows n
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = n.workflow_step_uuid
    JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
    WHERE tasker.task_watched(ws.task_uuid)
    ORDER BY n.workflow_step_uuid, n.sort_key
  LOOP
    PERFORM pg_notify('tasker_task_events', json_build_object(
      'task_uuid', v_row.task_uuid,
      'step_uuid', v_row.workflow_step_uuid,
      'step_name', v_row.step_name,
      'from_state', v_row.from_state,
      'to_state', v_row.to_state,
      'event', v_row.event,
      'sort_key', v_row.sort_key,
      'at', tasker.utc_text(v_row.created_at))::text);
  END LOOP;
  RETURN NULL;
END;
$$;

CREATE TRIGGER task_transitions_notify
  AFTER INSERT ON tasker.task_transitions
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tasker.notify_task_transitions();

CREATE TRIGGER workflow_step_transitions_notify
  AFTER INSERT ON tasker.workflow_step_transitions
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tasker.notify_step_transitions();

-- --- creation -----------------------------------------------------------------------------------

-- Creates a task from p_task and p_steps (as create_task, 0003) and starts it (as evaluate_task,
-- 0006, with p_batch_size); returns what evaluate_task returns, and on the fast path also
-- `created`: {created_at, updated_at (RFC 3339 UTC), steps: [{name, workflow_step_uuid,
-- named_step_uuid, current_state}] in the order of p_steps}, what the API's creation answer needs
-- besides what the caller already knows (no second read), and `queue`. With p_notify false the
-- messages are not announced: the caller announces them (with others). Errors as create_task: a
-- duplicate identity is the unique violation of tasks_identity_hash_idx, a dependency on a step
-- that is not part of the task TK003, an unknown named task the foreign-key violation.
CREATE FUNCTION tasker.create_and_start_task(
  p_named_task_uuid uuid, p_task jsonb, p_steps jsonb, p_processor_uuid uuid, p_batch_size integer,
  p_notify boolean DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_queue text;
  v_roots integer;
  v_expected_edges integer;
  v_unknown_names integer;
  v_edges integer;
  v_enqueued uuid[];
  v_updated_at text;
  v_steps jsonb;
  v_msg_ids bigint[];
BEGIN
  IF p_batch_size IS NULL OR p_batch_size < 1 THEN
    RAISE EXCEPTION 'batch size must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  -- one statement for what decides the path; every lookup by index (LIMIT 1 keeps the planner from
  -- hashing whole tables per call)
  SELECT count(*) FILTER (WHERE jsonb_array_length(coalesce(s -> 'dependencies', '[]')) = 0)::integer,
         coalesce(sum(jsonb_array_length(coalesce(s -> 'dependencies', '[]'))), 0)::integer,
         count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM tasker.named_steps ns WHERE ns.name = s ->> 'name' LIMIT 1))::integer,
         (SELECT 'worker_' || tn.name || '_queue'
          FROM tasker.named_tasks nt
          JOIN tasker.task_namespaces tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
          WHERE nt.named_task_uuid = p_named_task_uuid)
  INTO v_roots, v_expected_edges, v_unknown_names, v_queue
  FROM jsonb_array_elements(p_steps) s;
  IF v_roots = 0 OR v_roots > p_batch_size OR v_queue IS NULL THEN
    -- the general path: no steps (the task completes at once), more ready steps than one batch, or
    -- an unknown named task (create_task raises its foreign-key violation)
    RETURN tasker.evaluate_task(tasker.create_task(p_named_task_uuid, p_task, p_steps, p_processor_uuid),
                                p_processor_uuid, p_batch_size, p_notify) || jsonb_build_object('queue', v_queue);
  END IF;

  -- named steps are registered with their template; a step name seen for the first time is added
  IF v_unknown_names > 0 THEN
    INSERT INTO tasker.named_steps (name)
    SELECT DISTINCT s ->> 'name' FROM jsonb_array_elements(p_steps) s
    ON CONFLICT (name) DO NOTHING;
  END IF;

  v_task := tasker.uuid_generate_v7();
  WITH spec AS MATERIALIZED (
    SELECT s.ord, s.name, ns.named_step_uuid, tasker.uuid_generate_v7() AS step_uuid,
           coalesce(s.retryable, true) AS retryable, coalesce(s.max_attempts, 3) AS max_attempts, s.inputs,
           coalesce(s.dependencies, '[]') AS dependencies,
           jsonb_array_length(coalesce(s.dependencies, '[]')) = 0 AS root
    FROM ROWS FROM (jsonb_to_recordset(p_steps)
                      AS (name text, retryable boolean, max_attempts integer, inputs jsonb, dependencies jsonb))
         WITH ORDINALITY s(name, retryable, max_attempts, inputs, dependencies, ord)
    -- one index lookup per step: as a join, the planner (expecting 100 steps from the function)
    -- would scan and hash every named step of every template on each creation
    CROSS JOIN LATERAL (
      SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = s.name LIMIT 1
    ) ns
  ), task AS (
    INSERT INTO tasker.tasks (task_uuid, named_task_uuid, current_state, state_entered_at, identity_hash, context,
                              tags, initiator, source_system, reason, priority, correlation_id,
                              parent_correlation_id, requested_at, updated_at)
    VALUES (v_task, p_named_task_uuid, 'steps_in_process', clock_timestamp(), p_task ->> 'identity_hash',
            coalesce(p_task -> 'context', '{}'), coalesce(p_task -> 'tags', '[]'), p_task ->> 'initiator',
            p_task ->> 'source_system', p_task ->> 'reason', coalesce((p_task ->> 'priority')::integer, 0),
            (p_task ->> 'correlation_id')::uuid, (p_task ->> 'parent_correlation_id')::uuid,
            coalesce((p_task ->> 'requested_at')::timestamptz, now()), clock_timestamp())
    RETURNING updated_at
  ), steps AS (
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, current_state, state_entered_at,
                                       retryable, max_attempts, inputs, updated_at)
    SELECT sp.step_uuid, v_task, sp.named_step_uuid, CASE WHEN sp.root THEN 'enqueued' ELSE 'pending' END,
           CASE WHEN sp.root THEN clock_timestamp() ELSE now() END, sp.retryable, sp.max_attempts, sp.inputs,
           CASE WHEN sp.root THEN clock_timestamp() ELSE now() END
    FROM spec sp ORDER BY sp.ord
  ), edges AS (
    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
    SELECT parent.step_uuid, child.step_uuid, 'provides'
    FROM spec child
    CROSS JOIN jsonb_array_elements_text(child.dependencies) d(parent_name)
    JOIN spec parent ON parent.name = d.parent_name
    RETURNING 1
  ), task_transitions AS (
    INSERT INTO tasker.task_transitions
      (task_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent, created_at)
    SELECT v_task, t.from_state, t.to_state, t.event, tasker.task_lifecycle_event(t.from_state, t.to_state), t.metadata,
           p_processor_uuid, t.sort_key, t.sort_key = 4, CASE WHEN t.sort_key = 1 THEN now() ELSE clock_timestamp() END
    FROM (VALUES (NULL, 'pending', 'initialize', '{}'::jsonb, 1),
                 ('pending', 'initializing', 'start', '{}', 2),
                 ('initializing', 'enqueuing_steps', 'ready_steps_found', '{}', 3),
                 ('enqueuing_steps', 'steps_in_process', 'steps_enqueued', jsonb_build_object('enqueued_steps', v_roots), 4))
         t(from_state, to_state, event, metadata, sort_key)
  ), step_transitions AS (
    INSERT INTO tasker.workflow_step_transitions
      (workflow_step_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent, created_at)
    SELECT sp.step_uuid, NULL, 'pending', 'initialize', NULL, '{}'::jsonb, p_processor_uuid, 1, NOT sp.root, now()
    FROM spec sp
    UNION ALL
    SELECT sp.step_uuid, 'pending', 'enqueued', 'enqueue', tasker.step_lifecycle_event('pending', 'enqueued'), '{}',
           p_processor_uuid, 2, true, clock_timestamp()
    FROM spec sp WHERE sp.root
  )
  SELECT (SELECT count(*)::integer FROM edges),
         ARRAY(SELECT sp.step_uuid FROM spec sp WHERE sp.root ORDER BY sp.step_uuid),
         (SELECT tasker.utc_text(t.updated_at) FROM task t),
         (SELECT jsonb_agg(jsonb_build_object('name', sp.name, 'workflow_step_uuid', sp.step_uuid,
                                              'named_step_uuid', sp.named_step_uuid,
                                              'current_state', CASE WHEN sp.root THEN 'enqueued' ELSE 'pending' END)
                           ORDER BY sp.ord)
          FROM spec sp)
  INTO v_edges, v_enqueued, v_updated_at, v_steps;
  IF v_edges <> v_expected_edges THEN
    RAISE EXCEPTION 'a step depends on a step that is not part of the task' USING ERRCODE = 'TK003';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = v_queue) THEN
    PERFORM pgmq.create(v_queue);
  END IF;
  v_msg_ids := ARRAY(SELECT pgmq.send_batch(v_queue, ARRAY(
    SELECT json_build_object('task_uuid', v_task, 'step_uuid', e.step_uuid, 'correlation_id', (p_task ->> 'correlation_id')::uuid)
    FROM unnest(v_enqueued) WITH ORDINALITY e(step_uuid, ord) ORDER BY e.ord)));
  IF p_notify THEN
    PERFORM pgmq.notify_batch(v_queue, v_msg_ids);
  END IF;
  RETURN jsonb_build_object('task_uuid', v_task, 'found', true, 'from_state', 'pending', 'state', 'steps_in_process',
                            'execution_status', 'has_ready_steps', 'enqueued', cardinality(v_msg_ids),
                            'msg_ids', to_jsonb(v_msg_ids), 'queue', v_queue, 'next_retry_at', NULL,
                            'created', jsonb_build_object('created_at', tasker.utc_text(now()),
                                                          'updated_at', v_updated_at, 'steps', v_steps));
END;
$$;

-- Creates and starts several tasks in one transaction, as create_and_start_task each.
-- p_items: [{named_task_uuid, task, steps}] as its arguments. Returns one entry per item, in order:
-- what create_and_start_task returns, or {"conflict": true} when a task with the item's
-- identity_hash exists already (an earlier item's included); nothing is written for it. The step
-- messages are announced once per queue for the whole call. A concurrent creation of the same
-- identity still raises the unique violation, and any error fails the whole call; the caller then
-- creates its items one by one to give each its own outcome.
--
-- Up to three items are created one by one (create_and_start_task). From four on, the rows of all
-- items on the fast path are written by one statement, the same rows as create_and_start_task's:
-- measured on the linear template, that statement costs about 2 ms per call (its plan is large)
-- plus 0.5 ms per task, against 1.1 ms per task one by one, so it pays from four tasks on and halves
-- the cost of a full batch. Every table read in it is an index lookup per item (LATERAL ... LIMIT 1),
-- so a generic plan made while the tables were small stays cheap as they grow. The fast-creation
-- tests compare both with create_task + evaluate_task, row by row.
CREATE FUNCTION tasker.create_and_start_tasks(p_items jsonb, p_processor_uuid uuid, p_batch_size integer)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_item jsonb;
  v_ord bigint;
  v_results jsonb[] := '{}';
  v_messages jsonb;
  v_bad_edges integer;
  v_queue text;
  v_ids bigint[];
  v_ids_by_item jsonb;
BEGIN
  IF p_batch_size IS NULL OR p_batch_size < 1 THEN
    RAISE EXCEPTION 'batch size must be at least 1' USING ERRCODE = 'TK003';
  END IF;
  IF jsonb_array_length(p_items) < 4 THEN
    FOR v_item IN SELECT e.item FROM jsonb_array_elements(p_items) WITH ORDINALITY e(item, ord) ORDER BY e.ord LOOP
      IF EXISTS (SELECT 1 FROM tasker.tasks t WHERE t.identity_hash = v_item -> 'task' ->> 'identity_hash') THEN
        v_results := v_results || jsonb_build_object('conflict', true);
      ELSE
        v_results := v_results || tasker.create_and_start_task((v_item ->> 'named_task_uuid')::uuid, v_item -> 'task',
                                                               v_item -> 'steps', p_processor_uuid, p_batch_size, false);
      END IF;
    END LOOP;
  ELSE
    -- named steps are registered with their template; a step name seen for the first time is added
    -- (the distinct names of the batch looked up one by one: no scan of every named step)
    IF EXISTS (
      SELECT 1 FROM (SELECT DISTINCT s ->> 'name' AS name
                     FROM jsonb_array_elements(p_items) i CROSS JOIN jsonb_array_elements(i -> 'steps') s) n
      WHERE NOT EXISTS (SELECT 1 FROM tasker.named_steps ns WHERE ns.name = n.name LIMIT 1)
    ) THEN
      INSERT INTO tasker.named_steps (name)
      SELECT DISTINCT s ->> 'name'
      FROM jsonb_array_elements(p_items) i CROSS JOIN jsonb_array_elements(i -> 'steps') s
      ON CONFLICT (name) DO NOTHING;
    END IF;

    WITH items AS MATERIALIZED (
      SELECT i.ord, i.item -> 'task' AS task, i.item -> 'steps' AS steps,
             (i.item ->> 'named_task_uuid')::uuid AS named_task_uuid, tasker.uuid_generate_v7() AS task_uuid,
             q.queue, c.roots, c.edges,
             -- an identity that exists, or that an earlier item of the call takes
             taken.found IS NOT NULL
               OR row_number() OVER (PARTITION BY i.item -> 'task' ->> 'identity_hash' ORDER BY i.ord) > 1 AS conflict
      FROM jsonb_array_elements(p_items) WITH ORDINALITY i(item, ord)
      CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE jsonb_array_length(coalesce(s -> 'dependencies', '[]')) = 0)::integer AS roots,
               coalesce(sum(jsonb_array_length(coalesce(s -> 'dependencies', '[]'))), 0)::integer AS edges
        FROM jsonb_array_elements(i.item -> 'steps') s
      ) c
      LEFT JOIN LATERAL (
        SELECT true AS found FROM tasker.tasks t WHERE t.identity_hash = i.item -> 'task' ->> 'identity_hash' LIMIT 1
      ) taken ON true
      LEFT JOIN LATERAL (
        SELECT 'worker_' || tn.name || '_queue' AS queue
        FROM tasker.named_tasks nt
        JOIN tasker.task_namespaces tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
        WHERE nt.named_task_uuid = (i.item ->> 'named_task_uuid')::uuid LIMIT 1
      ) q ON true
    ), fast AS MATERIALIZED (
      -- as in create_and_start_task; the others take the general path below
      SELECT * FROM items WHERE NOT conflict AND queue IS NOT NULL AND roots BETWEEN 1 AND p_batch_size
    ), spec AS MATERIALIZED (
      SELECT f.ord AS item, f.task_uuid, s.ord, s.name, ns.named_step_uuid, tasker.uuid_generate_v7() AS step_uuid,
             coalesce(s.retryable, true) AS retryable, coalesce(s.max_attempts, 3) AS max_attempts, s.inputs,
             coalesce(s.dependencies, '[]') AS dependencies,
             jsonb_array_length(coalesce(s.dependencies, '[]')) = 0 AS root
      FROM fast f
      CROSS JOIN LATERAL ROWS FROM (
        jsonb_to_recordset(f.steps) AS (name text, retryable boolean, max_attempts integer, inputs jsonb, dependencies jsonb)
      ) WITH ORDINALITY s(name, retryable, max_attempts, inputs, dependencies, ord)
      CROSS JOIN LATERAL (
        SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = s.name LIMIT 1
      ) ns
    ), new_tasks AS (
      INSERT INTO tasker.tasks (task_uuid, named_task_uuid, current_state, state_entered_at, identity_hash, context,
                                tags, initiator, source_system, reason, priority, correlation_id,
                                parent_correlation_id, requested_at, updated_at)
      SELECT f.task_uuid, f.named_task_uuid, 'steps_in_process', clock_timestamp(), f.task ->> 'identity_hash',
             coalesce(f.task -> 'context', '{}'), coalesce(f.task -> 'tags', '[]'), f.task ->> 'initiator',
             f.task ->> 'source_system', f.task ->> 'reason', coalesce((f.task ->> 'priority')::integer, 0),
             (f.task ->> 'correlation_id')::uuid, (f.task ->> 'parent_correlation_id')::uuid,
             coalesce((f.task ->> 'requested_at')::timestamptz, now()), clock_timestamp()
      FROM fast f ORDER BY f.ord
      RETURNING task_uuid, updated_at
    ), new_steps AS (
      INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, current_state,
                                         state_entered_at, retryable, max_attempts, inputs, updated_at)
      SELECT sp.step_uuid, sp.task_uuid, sp.named_step_uuid, CASE WHEN sp.root THEN 'enqueued' ELSE 'pending' END,
             CASE WHEN sp.root THEN clock_timestamp() ELSE now() END, sp.retryable, sp.max_attempts, sp.inputs,
             CASE WHEN sp.root THEN clock_timestamp() ELSE now() END
      FROM spec sp ORDER BY sp.item, sp.ord
    ), new_edges AS (
      INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
      SELECT parent.step_uuid, child.step_uuid, 'provides'
      FROM spec child
      CROSS JOIN jsonb_array_elements_text(child.dependencies) d(parent_name)
      JOIN spec parent ON parent.item = child.item AND parent.name = d.parent_name
      RETURNING to_step_uuid
    ), task_transitions AS (
      INSERT INTO tasker.task_transitions
        (task_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key, most_recent,
         created_at)
      SELECT f.task_uuid, t.from_state, t.to_state, t.event, tasker.task_lifecycle_event(t.from_state, t.to_state),
             CASE WHEN t.sort_key = 4 THEN jsonb_build_object('enqueued_steps', f.roots) ELSE '{}' END,
             p_processor_uuid, t.sort_key, t.sort_key = 4,
             CASE WHEN t.sort_key = 1 THEN now() ELSE clock_timestamp() END
      FROM fast f
      CROSS JOIN (VALUES (NULL, 'pending', 'initialize', 1),
                         ('pending', 'initializing', 'start', 2),
                         ('initializing', 'enqueuing_steps', 'ready_steps_found', 3),
                         ('enqueuing_steps', 'steps_in_process', 'steps_enqueued', 4))
           t(from_state, to_state, event, sort_key)
      ORDER BY f.ord, t.sort_key
    ), step_transitions AS (
      INSERT INTO tasker.workflow_step_transitions
        (workflow_step_uuid, from_state, to_state, event, lifecycle_event, metadata, processor_uuid, sort_key,
         most_recent, created_at)
      SELECT sp.step_uuid, NULL, 'pending', 'initialize', NULL, '{}'::jsonb, p_processor_uuid, 1, NOT sp.root, now()
      FROM spec sp
      UNION ALL
      SELECT sp.step_uuid, 'pending', 'enqueued', 'enqueue', tasker.step_lifecycle_event('pending', 'enqueued'), '{}',
             p_processor_uuid, 2, true, clock_timestamp()
      FROM spec sp WHERE sp.root
    ), edge_counts AS (
      SELECT sp.item, count(*)::integer AS n FROM new_edges e JOIN spec sp ON sp.step_uuid = e.to_step_uuid
      GROUP BY sp.item
    )
    SELECT
      (SELECT count(*)::integer FROM fast f LEFT JOIN edge_counts ec ON ec.item = f.ord WHERE coalesce(ec.n, 0) <> f.edges),
      ARRAY(
        SELECT CASE
                 WHEN i.conflict THEN jsonb_build_object('conflict', true)
                 WHEN f.ord IS NULL THEN jsonb_build_object('general', true)
                 ELSE jsonb_build_object(
                   'task_uuid', f.task_uuid, 'found', true, 'from_state', 'pending', 'state', 'steps_in_process',
                   'execution_status', 'has_ready_steps', 'enqueued', f.roots, 'msg_ids', '[]'::jsonb,
                   'queue', f.queue, 'next_retry_at', NULL,
                   'created', jsonb_build_object(
                     'created_at', tasker.utc_text(now()),
                     'updated_at', (SELECT tasker.utc_text(nt.updated_at) FROM new_tasks nt WHERE nt.task_uuid = f.task_uuid),
                     'steps', (SELECT jsonb_agg(jsonb_build_object(
                                        'name', sp.name, 'workflow_step_uuid', sp.step_uuid,
                                        'named_step_uuid', sp.named_step_uuid,
                                        'current_state', CASE WHEN sp.root THEN 'enqueued' ELSE 'pending' END)
                                      ORDER BY sp.ord)
                               FROM spec sp WHERE sp.item = f.ord)))
               END
        FROM items i LEFT JOIN fast f ON f.ord = i.ord ORDER BY i.ord),
      (SELECT jsonb_agg(jsonb_build_object('item', sp.item, 'queue', f.queue, 'task_uuid', sp.task_uuid,
                                           'step_uuid', sp.step_uuid, 'correlation_id', f.task ->> 'correlation_id')
                        ORDER BY sp.item, sp.step_uuid)
       FROM spec sp JOIN fast f ON f.ord = sp.item WHERE sp.root)
    INTO v_bad_edges, v_results, v_messages;
    IF v_bad_edges > 0 THEN
      RAISE EXCEPTION 'a step depends on a step that is not part of the task' USING ERRCODE = 'TK003';
    END IF;

    -- one message per root step, per queue (a batch's tasks usually share one), ids back to their items
    FOR v_queue IN SELECT DISTINCT m ->> 'queue' FROM jsonb_array_elements(coalesce(v_messages, '[]')) m LOOP
      IF NOT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = v_queue) THEN
        PERFORM pgmq.create(v_queue);
      END IF;
      v_ids := ARRAY(SELECT pgmq.send_batch(v_queue, ARRAY(
        SELECT json_build_object('task_uuid', e.m ->> 'task_uuid', 'step_uuid', e.m ->> 'step_uuid',
                                 'correlation_id', e.m ->> 'correlation_id')
        FROM jsonb_array_elements(v_messages) WITH ORDINALITY e(m, ord) WHERE e.m ->> 'queue' = v_queue ORDER BY e.ord)));
      SELECT jsonb_object_agg(g.item, g.ids) INTO v_ids_by_item
      FROM (SELECT m.m ->> 'item' AS item, jsonb_agg(v_ids[m.n] ORDER BY m.n) AS ids
            FROM (SELECT e.m, row_number() OVER (ORDER BY e.ord) AS n
                  FROM jsonb_array_elements(v_messages) WITH ORDINALITY e(m, ord) WHERE e.m ->> 'queue' = v_queue) m
            GROUP BY 1) g;
      FOR v_ord IN SELECT k::bigint FROM jsonb_object_keys(v_ids_by_item) k LOOP
        v_results[v_ord] := v_results[v_ord] || jsonb_build_object('msg_ids', v_ids_by_item -> v_ord::text);
      END LOOP;
    END LOOP;

    -- the rest one by one, on the general path
    FOR v_ord, v_item IN SELECT e.ord, e.item FROM jsonb_array_elements(p_items) WITH ORDINALITY e(item, ord) LOOP
      IF v_results[v_ord] ? 'general' THEN
        v_results[v_ord] := tasker.create_and_start_task((v_item ->> 'named_task_uuid')::uuid, v_item -> 'task',
                                                         v_item -> 'steps', p_processor_uuid, p_batch_size, false);
      END IF;
    END LOOP;
  END IF;

  FOR v_queue IN SELECT DISTINCT r ->> 'queue' FROM unnest(v_results) r WHERE r ? 'queue' LOOP
    PERFORM pgmq.notify_batch(v_queue, ARRAY(
      SELECT (i.id)::bigint FROM unnest(v_results) WITH ORDINALITY r(value, ord)
      CROSS JOIN LATERAL jsonb_array_elements_text(r.value -> 'msg_ids') WITH ORDINALITY i(id, n)
      WHERE r.value ->> 'queue' = v_queue ORDER BY r.ord, i.n));
  END LOOP;
  RETURN to_jsonb(v_results);
END;
$$;
