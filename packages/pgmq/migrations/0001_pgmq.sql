-- @tasker/pgmq: a PGMQ-compatible queue in plain SQL (PostgreSQL 14+ and PGlite, no extension).
--
-- Layout: one table of live messages and one archive table, both keyed by (queue_name, msg_id),
-- instead of PGMQ's table pair per queue. Statements are therefore static SQL (planned once, no
-- identifier ever built from input); the only per-queue object is the sequence that numbers a
-- queue's messages, created from a name that passed the validator below (AUDIT S-1, P-2).
--
-- Custom SQLSTATEs raised here (the TypeScript client maps them to typed errors):
--   TQ001 invalid queue name, TQ002 queue does not exist, TQ003 invalid argument.

CREATE SCHEMA pgmq;

CREATE TABLE pgmq.meta (
  queue_name text PRIMARY KEY CHECK (queue_name ~ '^[A-Za-z_][A-Za-z0-9_]{0,46}$'),
  -- numbers this queue's messages; its last value is the queue's total sent
  seq        regclass NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE pgmq.messages (
  queue_name  text NOT NULL,
  msg_id      bigint NOT NULL,
  read_ct     integer NOT NULL DEFAULT 0,
  enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- visible again (or for the first time, after a delay) at this instant
  vt          timestamptz NOT NULL,
  -- json, not jsonb: the text is kept byte for byte, as the producer wrote it
  message     json NOT NULL,
  headers     json,
  PRIMARY KEY (queue_name, msg_id)
);
-- No index on vt: `vt <= clock_timestamp()` is volatile, so it is only ever a filter, never an index
-- condition; such an index would only cost writes, prevent HOT updates of the claim and tempt the
-- planner into scanning a whole queue. Reads walk the primary key in msg_id order instead.

CREATE TABLE pgmq.archive (
  queue_name  text NOT NULL,
  msg_id      bigint NOT NULL,
  read_ct     integer NOT NULL,
  enqueued_at timestamptz NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  vt          timestamptz NOT NULL,
  message     json NOT NULL,
  headers     json,
  PRIMARY KEY (queue_name, msg_id)
);
-- retention cleanup deletes the oldest archived rows first.
CREATE INDEX archive_archived_at_idx ON pgmq.archive (archived_at);

CREATE TYPE pgmq.message_record AS (
  msg_id      bigint,
  read_ct     integer,
  enqueued_at timestamptz,
  vt          timestamptz,
  message     json,
  headers     json
);

CREATE TYPE pgmq.metrics_result AS (
  queue_name           text,
  queue_length         bigint,
  queue_visible_length bigint,
  newest_msg_age_sec   double precision,
  oldest_msg_age_sec   double precision,
  total_messages       bigint,
  scrape_time          timestamptz
);

-- Namespace of a queue, for notification channels (reference D §1.5):
-- orchestration* -> orchestration; worker_{ns}_queue -> ns (worker when empty);
-- {ns}_queue -> ns; anything else -> default.
CREATE FUNCTION pgmq.extract_queue_namespace(queue_name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF queue_name ~ '^orchestration' THEN
    RETURN 'orchestration';
  END IF;
  IF queue_name ~ '^worker_.*_queue$' THEN
    RETURN coalesce((regexp_match(queue_name, '^worker_(.+?)_queue$'))[1], 'worker');
  END IF;
  IF queue_name ~ '^[a-zA-Z][a-zA-Z0-9_]*_queue$' THEN
    RETURN coalesce((regexp_match(queue_name, '^([a-zA-Z][a-zA-Z0-9_]*)_queue$'))[1], 'default');
  END IF;
  RETURN 'default';
END;
$$;

-- Full message in the notification below this many bytes (pg_notify's limit is 8000 bytes; the
-- envelope around the message stays under 400 bytes because queue names are at most 47 chars).
CREATE FUNCTION pgmq.payload_size_threshold() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7000 $$;

CREATE FUNCTION pgmq.assert_queue_name(p_queue text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_queue IS NULL OR p_queue !~ '^[A-Za-z_][A-Za-z0-9_]{0,46}$' THEN
    RAISE EXCEPTION 'invalid queue name %', coalesce(quote_literal(p_queue), 'NULL') USING ERRCODE = 'TQ001';
  END IF;
END;
$$;

CREATE FUNCTION pgmq.create(p_queue text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_seq text;
  v_created timestamptz;
BEGIN
  PERFORM pgmq.assert_queue_name(p_queue);
  -- Serializes concurrent creators of the same queue: the second sees the first's row.
  PERFORM pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext(p_queue));
  IF EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = p_queue) THEN
    RETURN;
  END IF;
  v_seq := format('pgmq.%I', 'q_' || p_queue || '_seq');
  EXECUTE format('CREATE SEQUENCE %s AS bigint', v_seq);
  INSERT INTO pgmq.meta (queue_name, seq) VALUES (p_queue, v_seq::regclass)
  RETURNING created_at INTO v_created;
  PERFORM pg_notify('pgmq_queue_created', json_build_object(
    'event_type', 'queue_created',
    'queue_name', p_queue,
    'namespace', pgmq.extract_queue_namespace(p_queue),
    'created_at', v_created)::text);
END;
$$;

CREATE FUNCTION pgmq.drop_queue(p_queue text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_seq regclass;
BEGIN
  SELECT seq INTO v_seq FROM pgmq.meta WHERE queue_name = p_queue FOR UPDATE;
  IF v_seq IS NULL THEN
    RETURN false;
  END IF;
  -- First, because it waits for senders still in flight (they hold the sequence): the deletes below
  -- then see their committed messages, and none is left behind for a re-created queue.
  -- (regclass renders as a quoted, schema-qualified name of an existing sequence)
  EXECUTE format('DROP SEQUENCE %s', v_seq);
  DELETE FROM pgmq.meta WHERE queue_name = p_queue;
  DELETE FROM pgmq.messages WHERE queue_name = p_queue;
  DELETE FROM pgmq.archive WHERE queue_name = p_queue;
  RETURN true;
END;
$$;

CREATE FUNCTION pgmq.purge_queue(p_queue text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_count bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = p_queue) THEN
    RAISE EXCEPTION 'queue % does not exist', quote_literal(p_queue) USING ERRCODE = 'TQ002';
  END IF;
  DELETE FROM pgmq.messages WHERE queue_name = p_queue;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

CREATE FUNCTION pgmq.list_queues() RETURNS TABLE (queue_name text, created_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT m.queue_name, m.created_at FROM pgmq.meta m ORDER BY m.queue_name
$$;

CREATE FUNCTION pgmq.assert_seconds(p_name text, p_value double precision) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_value IS NULL OR p_value < 0 OR p_value = 'Infinity'::double precision OR p_value <> p_value THEN
    RAISE EXCEPTION '% must be a finite number of seconds >= 0', p_name USING ERRCODE = 'TQ003';
  END IF;
END;
$$;

-- Sends without a notification (PGMQ's pgmq.send). Delay in seconds, fractions allowed.
CREATE FUNCTION pgmq.send(p_queue text, p_message json, p_delay double precision DEFAULT 0,
                          p_headers json DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM pgmq.assert_seconds('delay', p_delay);
  INSERT INTO pgmq.messages (queue_name, msg_id, vt, message, headers)
  SELECT m.queue_name, nextval(m.seq), clock_timestamp() + make_interval(secs => p_delay), p_message, p_headers
  FROM pgmq.meta m WHERE m.queue_name = p_queue
  RETURNING msg_id INTO v_id;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'queue % does not exist', quote_literal(p_queue) USING ERRCODE = 'TQ002';
  END IF;
  RETURN v_id;
END;
$$;

-- The notification for one message: on pgmq_message_ready.{namespace} and on pgmq_message_ready.
-- Below the threshold it carries the whole message, otherwise queue and id only; either way the
-- payload is valid JSON under pg_notify's 8000-byte limit.
CREATE FUNCTION pgmq.notify_message(p_queue text, p_id bigint, p_message json, p_ready_at timestamptz,
                                    p_delay double precision) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_namespace text := pgmq.extract_queue_namespace(p_queue);
  v_payload text;
BEGIN
  IF octet_length(p_message::text) < pgmq.payload_size_threshold() THEN
    v_payload := json_build_object('event_type', 'message_with_payload', 'msg_id', p_id, 'queue_name', p_queue,
      'namespace', v_namespace, 'message', p_message, 'ready_at', p_ready_at, 'delay_seconds', p_delay)::text;
  ELSE
    v_payload := json_build_object('event_type', 'message_ready', 'msg_id', p_id, 'queue_name', p_queue,
      'namespace', v_namespace, 'ready_at', p_ready_at, 'delay_seconds', p_delay, 'payload_omitted', true)::text;
  END IF;
  PERFORM pg_notify('pgmq_message_ready.' || v_namespace, v_payload);
  PERFORM pg_notify('pgmq_message_ready', v_payload);
END;
$$;

CREATE FUNCTION pgmq.send_with_notify(p_queue text, p_message json, p_delay double precision DEFAULT 0,
                                      p_headers json DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_vt timestamptz;
BEGIN
  PERFORM pgmq.assert_seconds('delay', p_delay);
  INSERT INTO pgmq.messages (queue_name, msg_id, vt, message, headers)
  SELECT m.queue_name, nextval(m.seq), clock_timestamp() + make_interval(secs => p_delay), p_message, p_headers
  FROM pgmq.meta m WHERE m.queue_name = p_queue
  RETURNING msg_id, vt INTO v_id, v_vt;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'queue % does not exist', quote_literal(p_queue) USING ERRCODE = 'TQ002';
  END IF;
  PERFORM pgmq.notify_message(p_queue, v_id, p_message, v_vt, p_delay);
  RETURN v_id;
END;
$$;

-- Ids are assigned in array order and returned in that order.
CREATE FUNCTION pgmq.send_batch(p_queue text, p_messages json[], p_delay double precision DEFAULT 0,
                                p_headers json[] DEFAULT NULL) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_seq regclass;
BEGIN
  PERFORM pgmq.assert_seconds('delay', p_delay);
  SELECT m.seq INTO v_seq FROM pgmq.meta m WHERE m.queue_name = p_queue;
  IF v_seq IS NULL THEN
    RAISE EXCEPTION 'queue % does not exist', quote_literal(p_queue) USING ERRCODE = 'TQ002';
  END IF;
  IF p_headers IS NOT NULL AND cardinality(p_headers) <> cardinality(p_messages) THEN
    RAISE EXCEPTION 'headers must have one entry per message' USING ERRCODE = 'TQ003';
  END IF;
  RETURN QUERY
  WITH ordered AS (
    SELECT u.message, p_headers[u.ord] AS headers, u.ord
    FROM unnest(p_messages) WITH ORDINALITY AS u(message, ord)
    ORDER BY u.ord
  ), numbered AS (
    SELECT o.message, o.headers, o.ord, nextval(v_seq) AS msg_id FROM ordered o
  ), inserted AS (
    INSERT INTO pgmq.messages (queue_name, msg_id, vt, message, headers)
    SELECT p_queue, n.msg_id, clock_timestamp() + make_interval(secs => p_delay), n.message, n.headers
    FROM numbered n
    RETURNING msg_id
  )
  SELECT i.msg_id FROM inserted i ORDER BY i.msg_id;
END;
$$;

-- One batch_ready notification per chunk of ids (at most 300 ids, so always under 8000 bytes).
CREATE FUNCTION pgmq.send_batch_with_notify(p_queue text, p_messages json[], p_delay double precision DEFAULT 0,
                                            p_headers json[] DEFAULT NULL) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
  v_namespace text := pgmq.extract_queue_namespace(p_queue);
  v_ready_at timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(p_delay, 0), 0));
  v_payload text;
  v_start integer := 1;
  v_chunk constant integer := 300;
BEGIN
  v_ids := ARRAY(SELECT pgmq.send_batch(p_queue, p_messages, p_delay, p_headers));
  WHILE v_start <= coalesce(cardinality(v_ids), 0) LOOP
    v_payload := json_build_object('event_type', 'batch_ready', 'msg_ids', v_ids[v_start:v_start + v_chunk - 1],
      'queue_name', p_queue, 'namespace', v_namespace,
      'message_count', cardinality(v_ids[v_start:v_start + v_chunk - 1]),
      'ready_at', v_ready_at, 'delay_seconds', p_delay)::text;
    PERFORM pg_notify('pgmq_message_ready.' || v_namespace, v_payload);
    PERFORM pg_notify('pgmq_message_ready', v_payload);
    v_start := v_start + v_chunk;
  END LOOP;
  RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- The ids of up to p_qty visible messages of a queue, oldest first, locked FOR UPDATE SKIP LOCKED on
-- the table rows: concurrent callers get disjoint sets, and a row another caller just claimed fails
-- the re-checked vt condition and is skipped. The plan is pinned to the primary key in msg_id order
-- (stopping after p_qty rows) whatever the statistics say: with the planner free, a session that
-- first ran on an empty queue kept a plan that sorted the whole backlog on every read.
CREATE FUNCTION pgmq.claim_visible(p_queue text, p_qty integer) RETURNS bigint[]
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
AS $$
BEGIN
  IF p_qty IS NULL OR p_qty < 1 THEN
    RAISE EXCEPTION 'qty must be at least 1' USING ERRCODE = 'TQ003';
  END IF;
  RETURN ARRAY(
    SELECT q.msg_id FROM pgmq.messages q
    WHERE q.queue_name = p_queue AND q.vt <= clock_timestamp()
    ORDER BY q.msg_id
    LIMIT p_qty
    FOR UPDATE SKIP LOCKED);
END;
$$;

-- Claims up to p_qty visible messages for p_vt seconds (read count + 1).
CREATE FUNCTION pgmq.read(p_queue text, p_vt double precision, p_qty integer) RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
BEGIN
  PERFORM pgmq.assert_seconds('visibility timeout', p_vt);
  v_ids := pgmq.claim_visible(p_queue, p_qty);
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
  UPDATE pgmq.messages m
  SET vt = clock_timestamp() + make_interval(secs => p_vt), read_ct = m.read_ct + 1
  WHERE m.queue_name = p_queue AND m.msg_id = ANY (v_ids)
    AND m.msg_id BETWEEN v_ids[1] AND v_ids[cardinality(v_ids)]
  RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END;
$$;

-- The atomic claim of one known message (used for signal-only notifications): returns the
-- message when it was visible, nothing when it is missing, claimed by someone else or archived.
CREATE FUNCTION pgmq.read_specific_message(p_queue text, p_msg_id bigint, p_vt double precision DEFAULT 30)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pgmq.assert_seconds('visibility timeout', p_vt);
  RETURN QUERY
  UPDATE pgmq.messages m
  SET vt = clock_timestamp() + make_interval(secs => p_vt), read_ct = m.read_ct + 1
  WHERE m.queue_name = p_queue AND m.msg_id = p_msg_id AND m.vt <= clock_timestamp()
  RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END;
$$;

-- Reads and deletes up to p_qty visible messages (at-most-once delivery).
CREATE FUNCTION pgmq.pop(p_queue text, p_qty integer DEFAULT 1) RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[] := pgmq.claim_visible(p_queue, p_qty);
BEGIN
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
  DELETE FROM pgmq.messages m
  WHERE m.queue_name = p_queue AND m.msg_id = ANY (v_ids)
    AND m.msg_id BETWEEN v_ids[1] AND v_ids[cardinality(v_ids)]
  RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END;
$$;

-- PL/pgSQL rather than SQL: a SQL function with DML is planned on every call (before PostgreSQL 18);
-- the id range bound keeps the plan on the primary key.
CREATE FUNCTION pgmq.delete(p_queue text, p_msg_ids bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
  RETURN QUERY
  DELETE FROM pgmq.messages m
  WHERE m.queue_name = p_queue AND m.msg_id = ANY (p_msg_ids)
    AND m.msg_id BETWEEN (SELECT min(i) FROM unnest(p_msg_ids) i) AND (SELECT max(i) FROM unnest(p_msg_ids) i)
  RETURNING m.msg_id;
END;
$$;

-- Acknowledge by moving to the archive, which is kept for audit until archive_cleanup removes it.
CREATE FUNCTION pgmq.archive(p_queue text, p_msg_ids bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
  RETURN QUERY
  WITH moved AS (
    DELETE FROM pgmq.messages m
    WHERE m.queue_name = p_queue AND m.msg_id = ANY (p_msg_ids)
      AND m.msg_id BETWEEN (SELECT min(i) FROM unnest(p_msg_ids) i) AND (SELECT max(i) FROM unnest(p_msg_ids) i)
    RETURNING m.queue_name, m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers
  )
  INSERT INTO pgmq.archive (queue_name, msg_id, read_ct, enqueued_at, vt, message, headers)
  SELECT mv.queue_name, mv.msg_id, mv.read_ct, mv.enqueued_at, mv.vt, mv.message, mv.headers FROM moved mv
  RETURNING msg_id;
END;
$$;

-- A consumer's step in one round trip and one commit: acknowledge (archive) what it finished and
-- claim the next messages.
CREATE FUNCTION pgmq.archive_and_read(p_queue text, p_ack bigint[], p_vt double precision, p_qty integer)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_ack) > 0 THEN
    PERFORM pgmq.archive(p_queue, p_ack);
  END IF;
  RETURN QUERY SELECT * FROM pgmq.read(p_queue, p_vt, p_qty);
END;
$$;

-- Makes a message visible p_vt seconds from now (0 = visible again at once). Not additive.
CREATE FUNCTION pgmq.set_vt(p_queue text, p_msg_id bigint, p_vt double precision)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pgmq.assert_seconds('visibility timeout', p_vt);
  RETURN QUERY
  UPDATE pgmq.messages m SET vt = clock_timestamp() + make_interval(secs => p_vt)
  WHERE m.queue_name = p_queue AND m.msg_id = p_msg_id
  RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END;
$$;

-- Metrics of one queue (p_queue) or of all queues (NULL): length, visible length, message ages in
-- seconds, and total sent (the last value of the queue's sequence).
CREATE FUNCTION pgmq.collect_metrics(p_queue text) RETURNS SETOF pgmq.metrics_result
LANGUAGE sql STABLE AS $$
  SELECT meta.queue_name,
         count(q.msg_id),
         count(q.msg_id) FILTER (WHERE q.vt <= clock_timestamp()),
         extract(epoch FROM clock_timestamp() - max(q.enqueued_at))::double precision,
         extract(epoch FROM clock_timestamp() - min(q.enqueued_at))::double precision,
         coalesce(pg_sequence_last_value(meta.seq), 0),
         clock_timestamp()
  FROM pgmq.meta meta
  LEFT JOIN pgmq.messages q ON q.queue_name = meta.queue_name
  WHERE p_queue IS NULL OR meta.queue_name = p_queue
  GROUP BY meta.queue_name, meta.seq
  ORDER BY meta.queue_name
$$;

CREATE FUNCTION pgmq.metrics_all() RETURNS SETOF pgmq.metrics_result
LANGUAGE sql STABLE AS $$ SELECT * FROM pgmq.collect_metrics(NULL) $$;

CREATE FUNCTION pgmq.metrics(p_queue text) RETURNS SETOF pgmq.metrics_result
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF p_queue IS NULL OR NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = p_queue) THEN
    RAISE EXCEPTION 'queue % does not exist', coalesce(quote_literal(p_queue), 'NULL') USING ERRCODE = 'TQ002';
  END IF;
  RETURN QUERY SELECT * FROM pgmq.collect_metrics(p_queue);
END;
$$;

-- Retention: deletes up to p_batch archived rows older than p_older_than seconds; returns how many.
-- Call until it returns less than p_batch to clear everything due.
CREATE FUNCTION pgmq.archive_cleanup(p_older_than double precision, p_batch integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_count bigint;
BEGIN
  PERFORM pgmq.assert_seconds('older_than', p_older_than);
  IF p_batch IS NULL OR p_batch < 1 THEN
    RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'TQ003';
  END IF;
  DELETE FROM pgmq.archive a
  USING (
    SELECT queue_name, msg_id FROM pgmq.archive
    WHERE archived_at < clock_timestamp() - make_interval(secs => p_older_than)
    ORDER BY archived_at
    LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  ) due
  WHERE a.queue_name = due.queue_name AND a.msg_id = due.msg_id;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;
