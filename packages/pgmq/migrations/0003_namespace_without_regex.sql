-- pgmq.extract_queue_namespace without regular expressions for the queues every notifying send names
-- (worker_{ns}_queue, orchestration*): each enqueue of a step announces it, and the two regular
-- expressions of 0001 cost more than the rest of the announcement. Still PL/pgSQL: its simple
-- expressions run without a plan, where a SQL function called from PL/pgSQL is not inlined and costs
-- more than either. The results are 0001's; queue.test.ts checks the cases of names.test.ts.
CREATE OR REPLACE FUNCTION pgmq.extract_queue_namespace(queue_name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF starts_with(queue_name, 'orchestration') THEN
    RETURN 'orchestration';
  END IF;
  -- worker_ + at least one character + _queue; 'worker__queue' and 'worker_queue' name no namespace
  IF starts_with(queue_name, 'worker_') AND right(queue_name, 6) = '_queue' THEN
    RETURN CASE WHEN length(queue_name) > 13 THEN substr(queue_name, 8, length(queue_name) - 13) ELSE 'worker' END;
  END IF;
  RETURN coalesce((regexp_match(queue_name, '^([a-zA-Z][a-zA-Z0-9_]*)_queue$'))[1], 'default');
END;
$$;
