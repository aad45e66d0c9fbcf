-- Tasker core schema (reference A §1), in schema `tasker`, for PostgreSQL 14+ and PGlite.
--
-- Differences from the original, each deliberate:
--   * timestamptz everywhere, with database defaults (A §0: naive timestamps needed a UTC session).
--   * State is still event-sourced in the transition tables (one `most_recent` row per entity,
--     enforced by a partial unique index), and is ALSO kept in `current_state` /
--     `state_entered_at` on the entity row. Only the compare-and-swap functions (0003) write
--     either, in one statement each, so they cannot diverge; the column makes the CAS a single
--     row update (the row lock is the serialization point) and lets discovery and readiness
--     read state without joining the history.
--   * `attempts` is NOT NULL DEFAULT 0 (the original treated NULL as 0 everywhere).
--   * Transitions record the state machine event and the lifecycle event name (A §4.5).
--   * No ON DELETE CASCADE, as in the original: tasks are history.

CREATE SCHEMA tasker;

-- UUID v7 (time-ordered) without extensions: 48-bit Unix milliseconds over a random v4 uuid,
-- version bits set to 7. Works on PostgreSQL 13+ and PGlite (PostgreSQL 18 has uuidv7()).
CREATE FUNCTION tasker.uuid_generate_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

CREATE TYPE tasker.identity_strategy AS ENUM ('strict', 'caller_provided', 'always_unique');
CREATE TYPE tasker.dlq_reason AS ENUM (
  'staleness_timeout', 'max_retries_exceeded', 'dependency_cycle_detected', 'worker_unavailable', 'manual_dlq'
);
CREATE TYPE tasker.dlq_resolution_status AS ENUM ('pending', 'manually_resolved', 'permanently_failed', 'cancelled');

CREATE TABLE tasker.task_namespaces (
  task_namespace_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  -- namespaces name queues (worker_{ns}_queue, {ns}_domain_events_dlq): AUDIT S-1
  name        varchar(64) NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,28}$'),
  description varchar(255),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.named_tasks (
  named_task_uuid     uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces,
  name                varchar(64) NOT NULL,
  description         varchar(255),
  version             varchar(16) NOT NULL DEFAULT '0.1.0',
  -- the whole normalized template (YAML -> JSON); lifecycle and default_context are read from it
  configuration       jsonb NOT NULL DEFAULT '{}',
  identity_strategy   tasker.identity_strategy NOT NULL DEFAULT 'strict',
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (task_namespace_uuid, name, version)
);

CREATE TABLE tasker.named_steps (
  named_step_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  -- shared by name across templates, as in the original; batch workers get {template}_{batch_id}
  name            varchar(128) NOT NULL UNIQUE,
  description     varchar(255),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.tasks (
  task_uuid             uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  named_task_uuid       uuid NOT NULL REFERENCES tasker.named_tasks,
  complete              boolean NOT NULL DEFAULT false,
  current_state         varchar(32) NOT NULL DEFAULT 'pending',
  state_entered_at      timestamptz NOT NULL DEFAULT now(),
  requested_at          timestamptz NOT NULL DEFAULT now(),
  completed_at          timestamptz,
  initiator             varchar(255),
  source_system         varchar(255),
  reason                varchar(500),
  tags                  jsonb NOT NULL DEFAULT '[]',
  context               jsonb NOT NULL DEFAULT '{}',
  identity_hash         varchar(128) NOT NULL,
  priority              integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
  correlation_id        uuid NOT NULL,
  parent_correlation_id uuid,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
-- the deduplication guarantee (A §5.3): a duplicate identity is a unique violation -> 409
CREATE UNIQUE INDEX tasks_identity_hash_idx ON tasker.tasks (identity_hash);
-- discovery (next ready tasks), one small index per discoverable state so that idle tasks of one
-- state never crowd out another: pending by priority and by age (the oldest are the ones age
-- escalation may lift above higher base priorities), waiting tasks by priority
CREATE INDEX tasks_pending_priority_idx ON tasker.tasks (priority DESC, created_at) WHERE current_state = 'pending';
CREATE INDEX tasks_pending_age_idx ON tasker.tasks (created_at) WHERE current_state = 'pending';
CREATE INDEX tasks_waiting_dependencies_idx ON tasker.tasks (priority DESC, created_at)
  WHERE current_state = 'waiting_for_dependencies';
CREATE INDEX tasks_waiting_retry_idx ON tasker.tasks (priority DESC, created_at) WHERE current_state = 'waiting_for_retry';
-- staleness detection scans tasks in its three eligible states by how long they have been there
CREATE INDEX tasks_staleness_idx ON tasker.tasks (current_state, state_entered_at)
  WHERE current_state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process');
-- API listing and filters
CREATE INDEX tasks_named_task_idx ON tasker.tasks (named_task_uuid, created_at);
CREATE INDEX tasks_state_created_idx ON tasker.tasks (current_state, created_at);
CREATE INDEX tasks_created_idx ON tasker.tasks (created_at);
CREATE INDEX tasks_correlation_idx ON tasker.tasks (correlation_id);
CREATE INDEX tasks_parent_correlation_idx ON tasker.tasks (parent_correlation_id) WHERE parent_correlation_id IS NOT NULL;

CREATE TABLE tasker.workflow_steps (
  workflow_step_uuid      uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  task_uuid               uuid NOT NULL REFERENCES tasker.tasks,
  named_step_uuid         uuid NOT NULL REFERENCES tasker.named_steps,
  current_state           varchar(48) NOT NULL DEFAULT 'pending',
  state_entered_at        timestamptz NOT NULL DEFAULT now(),
  retryable               boolean NOT NULL DEFAULT true,
  -- total executions including the first; the first is always allowed (A §5.1)
  max_attempts            integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 0),
  in_process              boolean NOT NULL DEFAULT false,
  processed               boolean NOT NULL DEFAULT false,
  processed_at            timestamptz,
  -- incremented when a worker claims the step
  attempts                integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_attempted_at       timestamptz,
  -- delay before the next retry, from last_attempted_at (server-requested delays included)
  backoff_request_seconds integer CHECK (backoff_request_seconds >= 0),
  -- when a retry comes due: last_attempted_at + backoff_request_seconds, written with them by
  -- set_step_backoff and on entering waiting_for_retry (now, when no backoff was recorded), so that
  -- due retries are found by index (discovery, retry timers)
  next_retry_at           timestamptz,
  inputs                  jsonb,
  results                 jsonb,
  priority                integer NOT NULL DEFAULT 0,
  checkpoint              jsonb,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  -- idempotent step creation, including concurrent decision/batch expansion
  UNIQUE (task_uuid, named_step_uuid)
);
-- readiness and per-task lookups: every step of a task (the unique key above leads with task_uuid)
-- retries: the steps waiting for retry by the time they come due (discovery, retry timers)
CREATE INDEX workflow_steps_retry_due_idx ON tasker.workflow_steps (next_retry_at)
  WHERE current_state = 'waiting_for_retry';
-- staleness of running batch workers is judged by their checkpoint
CREATE INDEX workflow_steps_checkpoint_idx ON tasker.workflow_steps (task_uuid) WHERE checkpoint IS NOT NULL;
CREATE INDEX workflow_steps_named_step_idx ON tasker.workflow_steps (named_step_uuid);

CREATE TABLE tasker.workflow_step_edges (
  workflow_step_edge_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  -- the parent (prerequisite)
  from_step_uuid          uuid NOT NULL REFERENCES tasker.workflow_steps,
  -- the dependent
  to_step_uuid            uuid NOT NULL REFERENCES tasker.workflow_steps,
  name                    varchar(64) NOT NULL DEFAULT 'provides',
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  CHECK (from_step_uuid <> to_step_uuid),
  UNIQUE (from_step_uuid, to_step_uuid, name)
);
-- parents of a step (readiness, ancestors); children come from the unique key's leading column
CREATE INDEX workflow_step_edges_to_idx ON tasker.workflow_step_edges (to_step_uuid);

CREATE TABLE tasker.task_transitions (
  task_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  task_uuid            uuid NOT NULL REFERENCES tasker.tasks,
  from_state           varchar(32),
  to_state             varchar(32) NOT NULL,
  -- state machine event (0002 rules) and the lifecycle event it publishes (A §4.5), if any
  event                varchar(64) NOT NULL,
  lifecycle_event      varchar(64),
  metadata             jsonb NOT NULL DEFAULT '{}',
  -- the orchestration instance that wrote the row (audit only: no ownership)
  processor_uuid       uuid,
  sort_key             integer NOT NULL,
  most_recent          boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (task_uuid, sort_key)
);
-- one current state per task
CREATE UNIQUE INDEX task_transitions_most_recent_idx ON tasker.task_transitions (task_uuid) WHERE most_recent;

CREATE TABLE tasker.workflow_step_transitions (
  workflow_step_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  workflow_step_uuid            uuid NOT NULL REFERENCES tasker.workflow_steps,
  from_state                    varchar(48),
  to_state                      varchar(48) NOT NULL,
  event                         varchar(64) NOT NULL,
  lifecycle_event               varchar(64),
  metadata                      jsonb NOT NULL DEFAULT '{}',
  -- the worker or orchestration instance that wrote the row (audit only)
  processor_uuid                uuid,
  sort_key                      integer NOT NULL,
  most_recent                   boolean NOT NULL DEFAULT false,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_step_uuid, sort_key)
);
CREATE UNIQUE INDEX workflow_step_transitions_most_recent_idx ON tasker.workflow_step_transitions (workflow_step_uuid) WHERE most_recent;
-- analytics over completion times
CREATE INDEX workflow_step_transitions_to_state_idx ON tasker.workflow_step_transitions (to_state, created_at);
-- readiness: a step's last failure (fallback backoff), among its failure transitions only
CREATE INDEX workflow_step_transitions_failures_idx ON tasker.workflow_step_transitions (workflow_step_uuid, created_at)
  WHERE to_state IN ('error', 'enqueued_as_error_for_orchestration');

-- Who produced each step result (SOC2 attribution, A §1.10 / §6.4): one row per worker result.
CREATE TABLE tasker.workflow_step_result_audit (
  workflow_step_result_audit_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  workflow_step_uuid              uuid NOT NULL REFERENCES tasker.workflow_steps,
  workflow_step_transition_uuid   uuid NOT NULL REFERENCES tasker.workflow_step_transitions,
  task_uuid                       uuid NOT NULL REFERENCES tasker.tasks,
  recorded_at                     timestamptz NOT NULL DEFAULT now(),
  worker_uuid                     uuid,
  correlation_id                  uuid,
  success                         boolean NOT NULL,
  execution_time_ms               bigint,
  created_at                      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_step_uuid, workflow_step_transition_uuid)
);
CREATE INDEX workflow_step_result_audit_task_idx ON tasker.workflow_step_result_audit (task_uuid);
CREATE INDEX workflow_step_result_audit_recorded_idx ON tasker.workflow_step_result_audit (recorded_at);

-- DLQ: an investigation tracker, not a queue (A §1.11).
CREATE TABLE tasker.tasks_dlq (
  dlq_entry_uuid       uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
  task_uuid            uuid NOT NULL REFERENCES tasker.tasks,
  original_state       varchar(50) NOT NULL,
  dlq_reason           tasker.dlq_reason NOT NULL,
  dlq_timestamp        timestamptz NOT NULL DEFAULT now(),
  resolution_status    tasker.dlq_resolution_status NOT NULL DEFAULT 'pending',
  resolution_timestamp timestamptz,
  resolution_notes     text,
  resolved_by          varchar(255),
  task_snapshot        jsonb NOT NULL,
  metadata             jsonb,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
-- at most one open investigation per task
CREATE UNIQUE INDEX tasks_dlq_pending_task_idx ON tasker.tasks_dlq (task_uuid) WHERE resolution_status = 'pending';
CREATE INDEX tasks_dlq_status_time_idx ON tasker.tasks_dlq (resolution_status, dlq_timestamp);
CREATE INDEX tasks_dlq_reason_idx ON tasker.tasks_dlq (dlq_reason);
CREATE INDEX tasks_dlq_task_idx ON tasker.tasks_dlq (task_uuid);

CREATE FUNCTION tasker.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;
CREATE TRIGGER tasks_dlq_touch BEFORE UPDATE ON tasker.tasks_dlq
  FOR EACH ROW EXECUTE FUNCTION tasker.touch_updated_at();
