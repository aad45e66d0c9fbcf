-- pgmq.notify_batch: the batch_ready notification of messages already sent, on its own, so that a
-- producer that claims some of its messages in the same transaction (Tasker's chained claims) can
-- notify only the others. send_batch_with_notify is send_batch followed by it.

-- One batch_ready notification per chunk of ids (at most 300 ids, so always under 8000 bytes), on
-- the queue's namespace channel and the global channel.
CREATE FUNCTION pgmq.notify_batch(p_queue text, p_msg_ids bigint[], p_delay double precision DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_namespace text := pgmq.extract_queue_namespace(p_queue);
  v_ready_at timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(p_delay, 0), 0));
  v_payload text;
  v_start integer := 1;
  v_chunk constant integer := 300;
BEGIN
  WHILE v_start <= coalesce(cardinality(p_msg_ids), 0) LOOP
    v_payload := json_build_object('event_type', 'batch_ready', 'msg_ids', p_msg_ids[v_start:v_start + v_chunk - 1],
      'queue_name', p_queue, 'namespace', v_namespace,
      'message_count', cardinality(p_msg_ids[v_start:v_start + v_chunk - 1]),
      'ready_at', v_ready_at, 'delay_seconds', p_delay)::text;
    PERFORM pg_notify('pgmq_message_ready.' || v_namespace, v_payload);
    PERFORM pg_notify('pgmq_message_ready', v_payload);
    v_start := v_start + v_chunk;
  END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch_with_notify(p_queue text, p_messages json[], p_delay double precision DEFAULT 0,
                                                       p_headers json[] DEFAULT NULL) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[] := ARRAY(SELECT pgmq.send_batch(p_queue, p_messages, p_delay, p_headers));
BEGIN
  PERFORM pgmq.notify_batch(p_queue, v_ids, p_delay);
  RETURN QUERY SELECT unnest(v_ids);
END;
$$;
