-- Dynamic step creation (reference C §4.1–§4.3, §4.5): when orchestration applies the successful
-- result of a `decision` or `batchable` step, the steps its outcome calls for are created in the
-- same transaction, before evaluate_task looks for ready steps, so that they enter the normal
-- readiness and enqueue path at once.
--
--   complete_reported_step:     enqueued_for_orchestration -> complete, running the outcome of a
--                               decision or batchable step first (called by apply_step_result);
--   process_decision_outcome:   validates a decision's outcome and creates its steps, idempotently;
--   process_batch_outcome:      the same for a batchable step's workers and their convergence;
--   create_template_steps:      creates template steps of a task as create_task does (named steps,
--                               rows with retryable / max_attempts / inputs, first transitions).
--   orchestration_settings:     the decision point limits (setting_int / setting_bool read them;
--                               decision_depth counts the decisions above a step).
--
-- An invalid outcome is not an exception (that would abort the whole apply and leave the result
-- message to be redelivered forever): the step fails permanently instead, with the reason in its
-- results (error) and in its error transition's metadata, and the task then ends in error.

-- Orchestration settings that SQL reads where it applies them (the decision limits below are
-- enforced by whichever process applies a decision's result: a worker inline or the engine), written
-- by applyOrchestrationSettings (@tasker/core) from the orchestration configuration. A missing or
-- mistyped setting reads as the caller's default, so an empty table means the reference defaults.
-- Keys used (B config [orchestration.decision_points], C §4.1 items 2 and 7):
--   decision_points.enabled (true), decision_points.max_steps_per_decision (100),
--   decision_points.warn_threshold_steps (50), decision_points.max_decision_depth (20),
--   decision_points.warn_threshold_depth (10); and (B config [orchestration.batch_processing])
--   batch_processing.enabled (true), batch_processing.max_parallel_batches (50): the most batch
--   workers one batchable outcome may create.
CREATE TABLE tasker.orchestration_settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The integer setting p_key (a JSON integer), else p_default.
CREATE FUNCTION tasker.setting_int(p_key text, p_default integer) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT (os.value #>> '{}')::integer FROM tasker.orchestration_settings os
     WHERE os.key = p_key AND jsonb_typeof(os.value) = 'number'
       AND (os.value #>> '{}') ~ '^-?[0-9]{1,9}$'),
    p_default)
$$;

-- The boolean setting p_key (a JSON boolean), else p_default.
CREATE FUNCTION tasker.setting_bool(p_key text, p_default boolean) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT (os.value #>> '{}')::boolean FROM tasker.orchestration_settings os
     WHERE os.key = p_key AND jsonb_typeof(os.value) = 'boolean'),
    p_default)
$$;

-- The decision depth of a task's step: the most decision steps on any path of the task's edges from
-- a root to it, counting the step itself when it is a decision (C §4.1 item 7). Step types come from
-- the template (p_steps), by template step name. UNION keeps one row per (step, depth), so a wide
-- diamond graph is not walked once per path.
CREATE FUNCTION tasker.decision_depth(p_step_uuid uuid, p_steps jsonb) RETURNS integer
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE types AS (
    SELECT s ->> 'name' AS name, s ->> 'type' AS type FROM jsonb_array_elements(p_steps) s
  ), kinds AS (
    SELECT ws.workflow_step_uuid, coalesce(t.type = 'decision', false) AS is_decision
    FROM tasker.workflow_steps ws
    JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
    LEFT JOIN types t ON t.name = coalesce(ws.inputs ->> '__template_step_name', ns.name)
    WHERE ws.task_uuid = (SELECT task_uuid FROM tasker.workflow_steps WHERE workflow_step_uuid = p_step_uuid)
  ), walk(step_uuid, depth) AS (
    SELECT k.workflow_step_uuid, CASE WHEN k.is_decision THEN 1 ELSE 0 END
    FROM kinds k WHERE k.workflow_step_uuid = p_step_uuid
    UNION
    SELECT e.from_step_uuid, w.depth + CASE WHEN k.is_decision THEN 1 ELSE 0 END
    FROM walk w
    JOIN tasker.workflow_step_edges e ON e.to_step_uuid = w.step_uuid
    JOIN kinds k ON k.workflow_step_uuid = e.from_step_uuid
  )
  SELECT coalesce(max(depth), 0)::integer FROM walk
$$;

-- Names of the template steps a decision may create: the non-`batch_worker` steps of the template
-- that (transitively) depend on the decision. Deeper decisions' descendants are included: asking for
-- them directly is allowed, as the reference allows any graph reachable from the decision.
CREATE FUNCTION tasker.template_descendants(p_steps jsonb, p_step_name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_found text[] := '{}';
  v_frontier text[] := ARRAY[p_step_name];
  v_next text[];
BEGIN
  LOOP
    v_next := ARRAY(
      SELECT DISTINCT s ->> 'name' FROM jsonb_array_elements(p_steps) s
      WHERE (s -> 'dependencies') ?| v_frontier AND NOT (s ->> 'name' = ANY (v_found)));
    EXIT WHEN cardinality(v_next) = 0;
    v_found := v_found || v_next;
    v_frontier := v_next;
  END LOOP;
  RETURN v_found;
END;
$$;

-- Creates the named steps of a task's template (those not already in the task) the way create_task
-- does: named_steps upserted; a row with the template step's retryable, max_attempts and
-- handler.initialization as inputs (merged with the definition's `__inputs` when given); the first
-- transition NULL -initialize-> pending. p_steps are template step definitions, created in their given order.
-- Returns {name: workflow_step_uuid} of the steps created now.
CREATE FUNCTION tasker.create_template_steps(p_task_uuid uuid, p_steps jsonb, p_processor_uuid uuid)
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
    JOIN tasker.named_steps ns ON ns.name = w.s ->> 'name'
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
  FROM inserted i JOIN tasker.named_steps ns ON ns.named_step_uuid = i.named_step_uuid;
  RETURN v_created;
END;
$$;

-- The uuid of the task's step named p_name, or NULL.
CREATE FUNCTION tasker.task_step_uuid(p_task_uuid uuid, p_name text) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  WHERE ws.task_uuid = p_task_uuid AND ns.name = p_name
$$;

-- Adds edge p_from -> p_to (name p_name) unless it exists, refusing a cycle (TK002). The caller holds
-- the task row lock (FOR NO KEY UPDATE, which conflicts with add_step_edge's FOR UPDATE), so no
-- concurrent edge of the task can slip between the check and the insert.
CREATE FUNCTION tasker.add_dynamic_edge(p_from uuid, p_to uuid, p_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF tasker.would_create_cycle(p_from, p_to) THEN
    RAISE EXCEPTION 'edge % -> % would create a cycle', p_from, p_to USING ERRCODE = 'TK002';
  END IF;
  INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
  VALUES (p_from, p_to, p_name)
  ON CONFLICT DO NOTHING;
END;
$$;

-- What processing a decision's or a batchable step's outcome starts with (p_kind: decision |
-- batchable): the step's task, template step name, template steps and outcome (result.<key>), and
-- `early` when there is nothing to process: already processed (the step has children: a
-- redelivered result), the feature disabled by its setting (nothing created, a warning), or no
-- outcome at all (a failure: a silent empty outcome would complete the task without its branches).
CREATE FUNCTION tasker.dynamic_outcome_prelude(
  p_step_uuid uuid, p_kind text,
  OUT task_uuid uuid, OUT step_name text, OUT template_steps jsonb, OUT outcome jsonb, OUT early jsonb
)
LANGUAGE plpgsql AS $$
DECLARE
  v_key text := CASE p_kind WHEN 'decision' THEN 'decision_point_outcome' ELSE 'batch_processing_outcome' END;
  v_setting text := CASE p_kind WHEN 'decision' THEN 'decision_points' ELSE 'batch_processing' END;
BEGIN
  SELECT ws.task_uuid, coalesce(ws.inputs ->> '__template_step_name', ns.name), nt.configuration -> 'steps',
         ws.results -> 'result' -> v_key
  INTO task_uuid, step_name, template_steps, outcome
  FROM tasker.workflow_steps ws
  JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
  JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
  JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
  WHERE ws.workflow_step_uuid = p_step_uuid;

  IF EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.from_step_uuid = p_step_uuid) THEN
    early := jsonb_build_object('ok', true, 'created', '[]'::jsonb, 'already_processed', true);
  ELSIF NOT tasker.setting_bool(v_setting || '.enabled', true) THEN
    early := jsonb_build_object('ok', true, 'created', '[]'::jsonb, 'skipped', true, 'warnings', jsonb_build_array(
      format('%s disabled (%s.enabled = false): the outcome of %s step %s was ignored',
             CASE p_kind WHEN 'decision' THEN 'decision points are' ELSE 'batch processing is' END,
             v_setting, p_kind, step_name)));
  ELSIF outcome IS NULL OR jsonb_typeof(outcome) = 'null' THEN
    early := jsonb_build_object('ok', false, 'code', 'missing_outcome',
      'message', format('the result of %s step %s has no result.%s', p_kind, step_name, v_key));
  END IF;
END;
$$;

-- The outcome of a completed decision step (C §4.1): results.result.decision_point_outcome is
-- {type: no_branches} or {type: create_steps, step_names: [...]}. Validates it and creates:
--   the requested steps (each must be a template descendant of this decision, not a batch_worker);
--   their dependents, transitively, stopping at decision points (a deeper decision is created, its
--     own children are left to it) and skipping deferred_convergence and batch_worker steps;
--   every deferred_convergence step with a declared dependency among the steps created;
--   the steps after a convergence whose dependencies are all among them (or are the decision).
-- Edges: a declared dependency created now (or already present) gives an edge from it; otherwise a
-- deferred_convergence step skips it (its effective dependencies are declared ∩ created) and any
-- other step gets an edge from the decision instead. Idempotent: a decision with children already
-- was processed (its template children are never created at task creation), and nothing is created
-- again.
-- Limits (C §4.1 items 2 and 7; settings above, p_max_steps overrides max_steps_per_decision):
-- decision points disabled ⇒ the outcome is ignored, nothing is created, and the step completes with
-- a warning; a create_steps outcome naming more than max_steps_per_decision steps fails
-- (too_many_steps), more than warn_threshold_steps proceeds with a warning; a create_steps outcome of
-- a decision whose decision depth (tasker.decision_depth) is above max_decision_depth fails
-- (max_depth_exceeded), above warn_threshold_depth proceeds with a warning (no_branches creates
-- nothing, so it is not limited by depth).
-- Returns {ok, created: [names], already_processed?, skipped?, warnings?} or {ok: false, code,
-- message}; codes: missing_outcome, malformed_outcome, too_many_steps, max_depth_exceeded,
-- unknown_step, invalid_descendant, cycle.
CREATE FUNCTION tasker.process_decision_outcome(
  p_step_uuid uuid, p_processor_uuid uuid DEFAULT NULL, p_max_steps integer DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_name text;
  v_steps jsonb;
  v_outcome jsonb;
  v_requested text[];
  v_descendants text[];
  v_bad text[];
  v_set text[];
  v_added text[];
  v_create jsonb;
  v_created jsonb;
  v_step jsonb;
  v_child uuid;
  v_parent uuid;
  v_dep text;
  v_max_steps integer := coalesce(p_max_steps, tasker.setting_int('decision_points.max_steps_per_decision', 100));
  v_warn_steps integer := tasker.setting_int('decision_points.warn_threshold_steps', 50);
  v_max_depth integer := tasker.setting_int('decision_points.max_decision_depth', 20);
  v_warn_depth integer := tasker.setting_int('decision_points.warn_threshold_depth', 10);
  v_depth integer;
  v_warnings text[] := '{}';
  v_early jsonb;
BEGIN
  SELECT p.task_uuid, p.step_name, p.template_steps, p.outcome, p.early
  INTO v_task, v_name, v_steps, v_outcome, v_early
  FROM tasker.dynamic_outcome_prelude(p_step_uuid, 'decision') p;
  IF v_early IS NOT NULL THEN
    RETURN v_early;
  END IF;
  IF jsonb_typeof(v_outcome) <> 'object' OR v_outcome ->> 'type' IS NULL
     OR v_outcome ->> 'type' NOT IN ('no_branches', 'create_steps') THEN
    RETURN jsonb_build_object('ok', false, 'code', 'malformed_outcome',
      'message', 'decision_point_outcome must be {"type":"no_branches"} or {"type":"create_steps","step_names":[...]}');
  END IF;
  IF v_outcome ->> 'type' = 'no_branches' THEN
    RETURN jsonb_build_object('ok', true, 'created', '[]'::jsonb);
  END IF;
  IF jsonb_typeof(v_outcome -> 'step_names') IS DISTINCT FROM 'array'
     OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_outcome -> 'step_names') n WHERE jsonb_typeof(n) <> 'string') THEN
    RETURN jsonb_build_object('ok', false, 'code', 'malformed_outcome',
      'message', 'decision_point_outcome.step_names must be an array of step names');
  END IF;
  v_requested := ARRAY(SELECT DISTINCT n FROM jsonb_array_elements_text(v_outcome -> 'step_names') n);
  IF cardinality(v_requested) > v_max_steps THEN
    RETURN jsonb_build_object('ok', false, 'code', 'too_many_steps',
      'message', format('decision step %s asked for %s steps; at most %s are allowed',
                        v_name, cardinality(v_requested), v_max_steps));
  END IF;
  IF cardinality(v_requested) > v_warn_steps THEN
    v_warnings := v_warnings || format('decision step %s asked for %s steps, above the warning threshold of %s',
                                       v_name, cardinality(v_requested), v_warn_steps);
  END IF;
  v_depth := tasker.decision_depth(p_step_uuid, v_steps);
  IF v_depth > v_max_depth THEN
    RETURN jsonb_build_object('ok', false, 'code', 'max_depth_exceeded', 'depth', v_depth,
      'message', format('decision step %s is at decision depth %s; at most %s is allowed',
                        v_name, v_depth, v_max_depth));
  END IF;
  IF v_depth > v_warn_depth THEN
    v_warnings := v_warnings || format('decision step %s is at decision depth %s, above the warning threshold of %s',
                                       v_name, v_depth, v_warn_depth);
  END IF;
  v_bad := ARRAY(SELECT r FROM unnest(v_requested) r
                 WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_steps) s WHERE s ->> 'name' = r) ORDER BY r);
  IF cardinality(v_bad) > 0 THEN
    RETURN jsonb_build_object('ok', false, 'code', 'unknown_step', 'steps', to_jsonb(v_bad),
      'message', 'decision step ' || v_name || ' asked for steps the template does not declare: '
                 || array_to_string(v_bad, ', '));
  END IF;
  v_descendants := ARRAY(
    SELECT d FROM unnest(tasker.template_descendants(v_steps, v_name)) d
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_steps) s WHERE s ->> 'name' = d AND s ->> 'type' = 'batch_worker'));
  v_bad := ARRAY(SELECT r FROM unnest(v_requested) r WHERE NOT (r = ANY (v_descendants)) ORDER BY r);
  IF cardinality(v_bad) > 0 THEN
    RETURN jsonb_build_object('ok', false, 'code', 'invalid_descendant', 'steps', to_jsonb(v_bad),
      'message', 'decision step ' || v_name || ' cannot create steps that do not descend from it: '
                 || array_to_string(v_bad, ', '));
  END IF;

  -- the steps to create (C §4.1 step 4), to a fixpoint
  v_set := v_requested;
  LOOP
    v_added := ARRAY(
      SELECT s ->> 'name' FROM jsonb_array_elements(v_steps) s
      WHERE NOT (s ->> 'name' = ANY (v_set))
        AND (
          -- dependents of created steps that are neither decisions nor convergence steps
          (s ->> 'type' NOT IN ('deferred_convergence', 'batch_worker')
           AND (s -> 'dependencies') ?| ARRAY(
             SELECT p ->> 'name' FROM jsonb_array_elements(v_steps) p
             WHERE p ->> 'name' = ANY (v_set) AND p ->> 'type' NOT IN ('decision', 'deferred_convergence', 'batch_worker')))
          -- convergence steps with a declared dependency among them
          OR (s ->> 'type' = 'deferred_convergence' AND (s -> 'dependencies') ?| v_set)
          -- after a created convergence step, when every dependency is created (or is the decision)
          OR (s ->> 'type' NOT IN ('deferred_convergence', 'batch_worker')
              AND (s -> 'dependencies') ?| ARRAY(
                SELECT p ->> 'name' FROM jsonb_array_elements(v_steps) p
                WHERE p ->> 'name' = ANY (v_set) AND p ->> 'type' = 'deferred_convergence')
              AND (s -> 'dependencies') <@ to_jsonb(ARRAY(
                SELECT p ->> 'name' FROM jsonb_array_elements(v_steps) p
                WHERE p ->> 'name' = ANY (v_set) AND p ->> 'type' <> 'decision') || v_name))
        ));
    EXIT WHEN cardinality(v_added) = 0;
    v_set := v_set || v_added;
  END LOOP;

  v_create := (SELECT jsonb_agg(s ORDER BY ord) FROM jsonb_array_elements(v_steps) WITH ORDINALITY AS w(s, ord)
               WHERE s ->> 'name' = ANY (v_set));
  BEGIN
    v_created := tasker.create_template_steps(v_task, v_create, p_processor_uuid);
    FOR v_step IN SELECT s FROM jsonb_array_elements(v_create) s WHERE v_created ? (s ->> 'name') LOOP
      v_child := (v_created ->> (v_step ->> 'name'))::uuid;
      FOR v_dep IN SELECT jsonb_array_elements_text(v_step -> 'dependencies') LOOP
        v_parent := CASE WHEN v_dep = ANY (v_set) THEN tasker.task_step_uuid(v_task, v_dep) END;
        IF v_parent IS NULL THEN
          CONTINUE WHEN v_step ->> 'type' = 'deferred_convergence';
          v_parent := p_step_uuid;
        END IF;
        PERFORM tasker.add_dynamic_edge(v_parent, v_child, 'provides');
      END LOOP;
    END LOOP;
  EXCEPTION WHEN SQLSTATE 'TK002' THEN
    -- the subtransaction is rolled back: nothing of this outcome stays
    RETURN jsonb_build_object('ok', false, 'code', 'cycle', 'message', SQLERRM);
  END;
  RETURN jsonb_build_object('ok', true, 'created',
    (SELECT coalesce(jsonb_agg(s ->> 'name'), '[]') FROM jsonb_array_elements(v_create) s WHERE v_created ? (s ->> 'name')))
    || CASE WHEN cardinality(v_warnings) > 0 THEN jsonb_build_object('warnings', to_jsonb(v_warnings)) ELSE '{}' END;
END;
$$;

-- The outcome of a completed batchable step (C §4.3): results.result.batch_processing_outcome is
-- {type: no_batches} or {type: create_batches, worker_template_name: T, worker_count: N,
-- cursor_configs: [{batch_id, start_cursor, end_cursor, batch_size}, ...], total_items}. Creates
-- one worker {T}_{batch_id} per cursor config, cloned from the batch_worker step T (handler, retry,
-- timeout through inputs.__template_step_name) with inputs = T's initialization ∪ {cursor,
-- batch_metadata: {cursor_field, failure_strategy}, is_no_op: false, __template_step_name: T} and an
-- edge batchable -> worker (batch_dependency); then every deferred_convergence step declaring T, with
-- an edge from every worker (worker_to_convergence) and from its other declared dependencies present
-- in the task. no_batches creates the placeholder {T}_000 (cursor 0..0, is_no_op: true) for T =
-- the batchable step's handler.initialization.worker_template_name, so that the convergence still
-- runs; without that setting nothing is created. Idempotent: a batchable step with children already
-- was processed. Returns {ok, created: [names], already_processed?} or {ok: false, code, message};
-- codes: missing_outcome, malformed_outcome, invalid_worker_template, too_many_batches, cycle.
CREATE FUNCTION tasker.process_batch_outcome(
  p_step_uuid uuid, p_processor_uuid uuid DEFAULT NULL, p_max_batches integer DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_name text;
  v_steps jsonb;
  v_self jsonb;
  v_outcome jsonb;
  v_template_name text;
  v_template jsonb;
  v_configs jsonb;
  v_no_op boolean;
  v_workers jsonb;
  v_convergence jsonb;
  v_created jsonb;
  v_worker_uuids uuid[];
  v_step jsonb;
  v_child uuid;
  v_parent uuid;
  v_dep text;
  v_max_batches integer := coalesce(p_max_batches, tasker.setting_int('batch_processing.max_parallel_batches', 50));
  v_early jsonb;
BEGIN
  SELECT p.task_uuid, p.step_name, p.template_steps, p.outcome, p.early
  INTO v_task, v_name, v_steps, v_outcome, v_early
  FROM tasker.dynamic_outcome_prelude(p_step_uuid, 'batchable') p;
  IF v_early IS NOT NULL THEN
    RETURN v_early;
  END IF;
  IF jsonb_typeof(v_outcome) <> 'object' OR v_outcome ->> 'type' IS NULL
     OR v_outcome ->> 'type' NOT IN ('no_batches', 'create_batches') THEN
    RETURN jsonb_build_object('ok', false, 'code', 'malformed_outcome',
      'message', 'batch_processing_outcome must be {"type":"no_batches"} or {"type":"create_batches",...}');
  END IF;
  v_self := (SELECT s FROM jsonb_array_elements(v_steps) s WHERE s ->> 'name' = v_name LIMIT 1);
  v_no_op := v_outcome ->> 'type' = 'no_batches';

  IF v_no_op THEN
    v_template_name := v_self -> 'handler' -> 'initialization' ->> 'worker_template_name';
    IF v_template_name IS NULL THEN
      RETURN jsonb_build_object('ok', true, 'created', '[]'::jsonb);
    END IF;
    v_configs := jsonb_build_array(jsonb_build_object('batch_id', '000', 'start_cursor', 0, 'end_cursor', 0,
                                                      'batch_size', 0));
  ELSE
    v_template_name := v_outcome ->> 'worker_template_name';
    v_configs := v_outcome -> 'cursor_configs';
    IF jsonb_typeof(v_configs) IS DISTINCT FROM 'array' OR jsonb_array_length(v_configs) = 0
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_configs) c
                  WHERE jsonb_typeof(c) <> 'object'
                     OR coalesce(jsonb_typeof(c -> 'batch_id'), 'missing') NOT IN ('string', 'number')
                     OR coalesce(c ->> 'batch_id', '') !~ '^[A-Za-z0-9_-]{1,32}$')
       OR (SELECT count(DISTINCT c ->> 'batch_id') FROM jsonb_array_elements(v_configs) c) <> jsonb_array_length(v_configs)
       OR (jsonb_typeof(v_outcome -> 'worker_count') = 'number'
           AND (v_outcome ->> 'worker_count')::numeric <> jsonb_array_length(v_configs)) THEN
      RETURN jsonb_build_object('ok', false, 'code', 'malformed_outcome',
        'message', 'create_batches needs a non-empty cursor_configs array of {batch_id, start_cursor, end_cursor, '
                   || 'batch_size} with distinct batch ids of letters, digits, _ or -, one per worker_count');
    END IF;
    IF jsonb_array_length(v_configs) > v_max_batches THEN
      RETURN jsonb_build_object('ok', false, 'code', 'too_many_batches',
        'message', format('batchable step %s asked for %s workers; at most %s are allowed',
                          v_name, jsonb_array_length(v_configs), v_max_batches));
    END IF;
  END IF;
  v_template := (SELECT s FROM jsonb_array_elements(v_steps) s
                 WHERE s ->> 'name' = v_template_name AND s ->> 'type' = 'batch_worker' LIMIT 1);
  IF v_template IS NULL THEN
    RETURN jsonb_build_object('ok', false, 'code', 'invalid_worker_template',
      'message', format('worker template %s of batchable step %s is not a batch_worker step of the template',
                        coalesce(v_template_name, '(none)'), v_name));
  END IF;

  v_workers := (
    SELECT jsonb_agg(v_template || jsonb_build_object(
             'name', v_template_name || '_' || (c ->> 'batch_id'),
             '__inputs', jsonb_build_object(
               'cursor', c,
               'batch_metadata', jsonb_build_object(
                 'cursor_field', v_template -> 'batch_config' -> 'cursor_field',
                 'failure_strategy', v_template -> 'batch_config' -> 'failure_strategy'),
               'is_no_op', v_no_op,
               '__template_step_name', v_template_name)) ORDER BY ord)
    FROM jsonb_array_elements(v_configs) WITH ORDINALITY AS w(c, ord));
  v_convergence := (
    SELECT coalesce(jsonb_agg(s ORDER BY ord), '[]') FROM jsonb_array_elements(v_steps) WITH ORDINALITY AS w(s, ord)
    WHERE s ->> 'type' = 'deferred_convergence' AND (s -> 'dependencies') ? v_template_name);
  BEGIN
    v_created := tasker.create_template_steps(v_task, v_workers || v_convergence, p_processor_uuid);
    v_worker_uuids := ARRAY(
      SELECT tasker.task_step_uuid(v_task, w ->> 'name') FROM jsonb_array_elements(v_workers) w);
    FOREACH v_child IN ARRAY v_worker_uuids LOOP
      PERFORM tasker.add_dynamic_edge(p_step_uuid, v_child, 'batch_dependency');
    END LOOP;
    FOR v_step IN SELECT s FROM jsonb_array_elements(v_convergence) s WHERE v_created ? (s ->> 'name') LOOP
      v_child := (v_created ->> (v_step ->> 'name'))::uuid;
      FOREACH v_parent IN ARRAY v_worker_uuids LOOP
        PERFORM tasker.add_dynamic_edge(v_parent, v_child, 'worker_to_convergence');
      END LOOP;
      FOR v_dep IN SELECT jsonb_array_elements_text(v_step -> 'dependencies') LOOP
        CONTINUE WHEN v_dep = v_template_name;
        v_parent := tasker.task_step_uuid(v_task, v_dep);
        IF v_parent IS NOT NULL THEN
          PERFORM tasker.add_dynamic_edge(v_parent, v_child, 'provides');
        END IF;
      END LOOP;
    END LOOP;
  EXCEPTION WHEN SQLSTATE 'TK002' THEN
    RETURN jsonb_build_object('ok', false, 'code', 'cycle', 'message', SQLERRM);
  END;
  RETURN jsonb_build_object('ok', true, 'created',
    (SELECT coalesce(jsonb_agg(s ->> 'name'), '[]') FROM jsonb_array_elements(v_workers || v_convergence) s
     WHERE v_created ? (s ->> 'name')));
END;
$$;

-- failure_strategy of a batch worker (C §4.3 step 7, the worker template's batch_config, carried in
-- the worker's inputs.batch_metadata): what a worker's PERMANENT failure does to its siblings (the
-- other workers of the same batchable step) and to the convergence step. Retryable failures with
-- attempts left are retried as for any step; the strategy applies once the worker is in `error`.
--   continue_on_failure (the default of batch_config): the worker is recorded as failed (its error
--     transition and its results with the error stay) and is then moved error -> resolved_manually
--     in the same transaction (metadata {reason: batch_failure_strategy, resolved_by: orchestration}),
--     so it no longer blocks anything: the siblings go on, the convergence step runs once every worker
--     is complete or resolved, and sees the failed worker's results (success false, error) among its
--     dependency results; the aggregator decides whether a failed batch fails the task. The task can
--     complete.
--   fail_fast: every sibling that has not finished (pending, enqueued, in_progress, waiting_for_retry,
--     or with a result not yet applied) and the convergence step are cancelled at once (metadata
--     {reason: batch_fail_fast, failed_step}): nothing more of the batch starts, a running worker's
--     late result is dropped (its step left in_progress), and evaluate_task, finding the failure and
--     nothing in flight, ends the task in error in this same transaction.
--   isolate: the worker stays in error and waits for an operator; only it is isolated: evaluate_task
--     (0006) does not count it as a blocking failure, so the siblings are still enqueued and finish;
--     the convergence step, depending on the failed worker, does not run; once nothing else can run
--     the task moves to blocked_by_failures and stays there (no give_up) until an operator resolves
--     or retries the worker and resumes the task (blocked_by_failures -resume-> evaluating_results).
-- Called by apply_step_result right after it moved a batch_worker step to error; returns the step's
-- state afterwards (error, or resolved_manually for continue_on_failure).
CREATE FUNCTION tasker.apply_batch_failure_strategy(p_step_uuid uuid, p_processor_uuid uuid DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_task uuid;
  v_inputs jsonb;
  v_strategy text;
  v_sibling record;
BEGIN
  SELECT ws.task_uuid, ws.inputs INTO v_task, v_inputs
  FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid;
  v_strategy := v_inputs -> 'batch_metadata' ->> 'failure_strategy';
  IF v_strategy = 'continue_on_failure' THEN
    PERFORM tasker.transition_step_state(p_step_uuid, 'error', 'resolve_manually', 'resolved_manually',
      p_processor_uuid, jsonb_build_object('reason', 'batch_failure_strategy',
                                           'failure_strategy', v_strategy, 'resolved_by', 'orchestration'));
    RETURN 'resolved_manually';
  ELSIF v_strategy = 'fail_fast' THEN
    FOR v_sibling IN
      SELECT ws.workflow_step_uuid, ws.current_state FROM tasker.workflow_steps ws
      WHERE ws.task_uuid = v_task AND ws.workflow_step_uuid <> p_step_uuid
        AND ws.current_state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
        AND (ws.inputs ->> '__template_step_name' = v_inputs ->> '__template_step_name'
             OR ws.workflow_step_uuid IN (
               SELECT e.to_step_uuid FROM tasker.workflow_step_edges e
               WHERE e.from_step_uuid = p_step_uuid AND e.name = 'worker_to_convergence'))
      ORDER BY ws.workflow_step_uuid
      FOR NO KEY UPDATE OF ws
    LOOP
      PERFORM tasker.transition_step_state(v_sibling.workflow_step_uuid, v_sibling.current_state, 'cancel', 'cancelled',
        p_processor_uuid, jsonb_build_object('reason', 'batch_fail_fast', 'failed_step', p_step_uuid));
    END LOOP;
  END IF;
  RETURN 'error';
END;
$$;

-- Completes a step whose successful result orchestration applies (enqueued_for_orchestration), after
-- running the outcome a dynamic step reports: a decision step's branches, a batchable step's workers
-- and their convergence are created first. An
-- invalid outcome fails the step permanently instead (-> error, not retried: the handler would decide
-- the same again), with {code, message} in the transition metadata and as the result's error.
-- Returns the step's new state: complete or error. p_step_type is the template step's type (the
-- caller has read the definition already).
CREATE FUNCTION tasker.complete_reported_step(p_step_uuid uuid, p_step_type text, p_processor_uuid uuid DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_type text := p_step_type;
  v_outcome jsonb;
BEGIN
  IF v_type = 'decision' THEN
    v_outcome := tasker.process_decision_outcome(p_step_uuid, p_processor_uuid);
  ELSIF v_type = 'batchable' THEN
    v_outcome := tasker.process_batch_outcome(p_step_uuid, p_processor_uuid);
  END IF;

  IF v_outcome IS NOT NULL AND NOT (v_outcome ->> 'ok')::boolean THEN
    PERFORM tasker.transition_step_state(p_step_uuid, 'enqueued_for_orchestration', 'fail', 'error', p_processor_uuid,
      jsonb_build_object('reason', 'invalid_' || v_type || '_outcome', 'code', v_outcome ->> 'code',
                         'message', v_outcome ->> 'message'));
    -- the worker reported success; the stored result says why orchestration failed the step
    UPDATE tasker.workflow_steps ws
    SET results = coalesce(ws.results, '{}') || jsonb_build_object(
      'success', false, 'status', 'error',
      'error', jsonb_build_object('message', v_outcome ->> 'message', 'error_type', 'invalid_' || v_type || '_outcome',
                                  'retryable', false, 'context', v_outcome - 'ok' - 'message'))
    WHERE ws.workflow_step_uuid = p_step_uuid;
    RETURN 'error';
  END IF;
  PERFORM tasker.transition_step_state(p_step_uuid, 'enqueued_for_orchestration', 'complete', 'complete', p_processor_uuid,
    CASE WHEN v_outcome IS NULL THEN '{}'::jsonb
         ELSE jsonb_build_object('created_steps', v_outcome -> 'created')
              || CASE WHEN v_outcome ? 'warnings' THEN jsonb_build_object('warnings', v_outcome -> 'warnings') ELSE '{}' END
              || CASE WHEN v_outcome ? 'skipped' THEN jsonb_build_object('skipped', v_outcome -> 'skipped') ELSE '{}' END
    END);
  RETURN 'complete';
END;
$$;
