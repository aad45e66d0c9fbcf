-- @tasker/core: the task and step transition tables, as rows the database can check against.
--
-- SOURCE: packages/core/src/states.ts (TASK_TRANSITIONS, STEP_TRANSITIONS). These rows are a copy of
-- those tables; packages/core/test/states.test.ts parses this file and asserts it holds exactly the
-- TypeScript rows. Change both together (in a new migration once this one has been applied).
--
-- A row allows `event` to move an entity from `from_state` to `to_state`. from_state NULL is creation
-- (the first transition row). What the tables do not hold, and callers enforce:
--   - tasks: nothing leaves a terminal state (complete, error, cancelled, resolved_manually), which
--     is simply the absence of rows from those states;
--   - steps: pending -enqueue-> enqueued and pending -start-> in_progress also need every parent
--     step complete or resolved_manually (the dependencies_met guard).
-- Assumes schema tasker exists (0001).

CREATE TABLE tasker.task_transition_rules (
  from_state text NULL,
  event      text NOT NULL,
  to_state   text NOT NULL
);
-- The machine is deterministic: one target per (from_state, event), so (from_state, event, to_state)
-- is unique too. NULL from_state counts as a value (COALESCE): PostgreSQL 14 has no NULLS NOT DISTINCT.
CREATE UNIQUE INDEX task_transition_rules_from_event_key
  ON tasker.task_transition_rules ((COALESCE(from_state, '')), event);
COMMENT ON TABLE tasker.task_transition_rules IS
  'Allowed task transitions; a copy of TASK_TRANSITIONS in packages/core/src/states.ts';

CREATE TABLE tasker.step_transition_rules (
  from_state text NULL,
  event      text NOT NULL,
  to_state   text NOT NULL
);
CREATE UNIQUE INDEX step_transition_rules_from_event_key
  ON tasker.step_transition_rules ((COALESCE(from_state, '')), event);
COMMENT ON TABLE tasker.step_transition_rules IS
  'Allowed step transitions; a copy of STEP_TRANSITIONS in packages/core/src/states.ts';

INSERT INTO tasker.task_transition_rules (from_state, event, to_state) VALUES
  -- creation
  (NULL, 'initialize', 'pending'),
  ('pending', 'start', 'initializing'),
  ('initializing', 'ready_steps_found', 'enqueuing_steps'),
  ('initializing', 'no_steps_found', 'complete'),
  ('initializing', 'no_dependencies_ready', 'waiting_for_dependencies'),
  ('enqueuing_steps', 'steps_enqueued', 'steps_in_process'),
  ('enqueuing_steps', 'enqueue_failed', 'error'),
  ('steps_in_process', 'all_steps_completed', 'evaluating_results'),
  ('steps_in_process', 'step_completed', 'evaluating_results'),
  ('steps_in_process', 'step_failed', 'waiting_for_retry'),
  ('steps_in_process', 'complete', 'complete'),
  ('steps_in_process', 'fail', 'error'),
  -- finalizer error path
  ('steps_in_process', 'permanent_failure', 'blocked_by_failures'),
  -- staleness detector
  ('steps_in_process', 'staleness_timeout', 'error'),
  ('evaluating_results', 'all_steps_successful', 'complete'),
  ('evaluating_results', 'ready_steps_found', 'enqueuing_steps'),
  ('evaluating_results', 'no_dependencies_ready', 'waiting_for_dependencies'),
  ('evaluating_results', 'permanent_failure', 'blocked_by_failures'),
  ('waiting_for_dependencies', 'dependencies_ready', 'evaluating_results'),
  ('waiting_for_dependencies', 'staleness_timeout', 'error'),
  ('waiting_for_retry', 'retry_ready', 'enqueuing_steps'),
  ('waiting_for_retry', 'staleness_timeout', 'error'),
  ('blocked_by_failures', 'give_up', 'error'),
  ('blocked_by_failures', 'manual_resolution', 'resolved_manually'),
  -- operator resume after step fixes
  ('blocked_by_failures', 'resume', 'evaluating_results'),
  -- cancel, from every non-terminal state
  ('pending', 'cancel', 'cancelled'),
  ('initializing', 'cancel', 'cancelled'),
  ('enqueuing_steps', 'cancel', 'cancelled'),
  ('steps_in_process', 'cancel', 'cancelled'),
  ('evaluating_results', 'cancel', 'cancelled'),
  ('waiting_for_dependencies', 'cancel', 'cancelled'),
  ('waiting_for_retry', 'cancel', 'cancelled'),
  ('blocked_by_failures', 'cancel', 'cancelled'),
  -- legacy manual resolution, from every non-terminal state
  ('pending', 'resolve_manually', 'resolved_manually'),
  ('initializing', 'resolve_manually', 'resolved_manually'),
  ('enqueuing_steps', 'resolve_manually', 'resolved_manually'),
  ('steps_in_process', 'resolve_manually', 'resolved_manually'),
  ('evaluating_results', 'resolve_manually', 'resolved_manually'),
  ('waiting_for_dependencies', 'resolve_manually', 'resolved_manually'),
  ('waiting_for_retry', 'resolve_manually', 'resolved_manually'),
  ('blocked_by_failures', 'resolve_manually', 'resolved_manually');

INSERT INTO tasker.step_transition_rules (from_state, event, to_state) VALUES
  -- creation
  (NULL, 'initialize', 'pending'),
  -- enqueue and the legacy start from pending are guarded by dependencies_met
  ('pending', 'enqueue', 'enqueued'),
  ('pending', 'start', 'in_progress'),
  ('pending', 'wait_for_retry', 'waiting_for_retry'),
  ('pending', 'fail', 'error'),
  ('enqueued', 'start', 'in_progress'),
  ('enqueued', 'wait_for_retry', 'waiting_for_retry'),
  ('enqueued', 'fail', 'error'),
  ('in_progress', 'enqueue_for_orchestration', 'enqueued_for_orchestration'),
  ('in_progress', 'enqueue_as_error_for_orchestration', 'enqueued_as_error_for_orchestration'),
  ('in_progress', 'wait_for_retry', 'waiting_for_retry'),
  ('in_progress', 'complete', 'complete'),
  ('in_progress', 'fail', 'error'),
  ('enqueued_for_orchestration', 'complete', 'complete'),
  ('enqueued_for_orchestration', 'fail', 'error'),
  ('enqueued_as_error_for_orchestration', 'complete', 'complete'),
  ('enqueued_as_error_for_orchestration', 'fail', 'error'),
  ('enqueued_as_error_for_orchestration', 'wait_for_retry', 'waiting_for_retry'),
  ('waiting_for_retry', 'retry', 'pending'),
  ('error', 'retry', 'pending'),
  ('error', 'reset_for_retry', 'pending'),
  -- cancel, from every state that is not terminal (error included)
  ('pending', 'cancel', 'cancelled'),
  ('enqueued', 'cancel', 'cancelled'),
  ('in_progress', 'cancel', 'cancelled'),
  ('enqueued_for_orchestration', 'cancel', 'cancelled'),
  ('enqueued_as_error_for_orchestration', 'cancel', 'cancelled'),
  ('waiting_for_retry', 'cancel', 'cancelled'),
  ('error', 'cancel', 'cancelled'),
  -- manual completion, from any state
  ('pending', 'complete_manually', 'complete'),
  ('enqueued', 'complete_manually', 'complete'),
  ('in_progress', 'complete_manually', 'complete'),
  ('enqueued_for_orchestration', 'complete_manually', 'complete'),
  ('enqueued_as_error_for_orchestration', 'complete_manually', 'complete'),
  ('waiting_for_retry', 'complete_manually', 'complete'),
  ('complete', 'complete_manually', 'complete'),
  ('error', 'complete_manually', 'complete'),
  ('cancelled', 'complete_manually', 'complete'),
  ('resolved_manually', 'complete_manually', 'complete'),
  -- manual resolution, from any state
  ('pending', 'resolve_manually', 'resolved_manually'),
  ('enqueued', 'resolve_manually', 'resolved_manually'),
  ('in_progress', 'resolve_manually', 'resolved_manually'),
  ('enqueued_for_orchestration', 'resolve_manually', 'resolved_manually'),
  ('enqueued_as_error_for_orchestration', 'resolve_manually', 'resolved_manually'),
  ('waiting_for_retry', 'resolve_manually', 'resolved_manually'),
  ('complete', 'resolve_manually', 'resolved_manually'),
  ('error', 'resolve_manually', 'resolved_manually'),
  ('cancelled', 'resolve_manually', 'resolved_manually'),
  ('resolved_manually', 'resolve_manually', 'resolved_manually');
