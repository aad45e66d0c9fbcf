-- Referential integrity of the three tables a task's structure is written to (tasks,
-- workflow_steps, workflow_step_edges) is checked once per statement instead of once per row.
--
-- Why: a foreign key checks each inserted row with a query of its own (plan, lock, executor start
-- and end per row). These tables are written many rows per statement: a task with its steps and
-- edges at creation, batches of tasks (create_and_start_tasks), the steps a decision or batch
-- outcome creates. Creating and starting a linear task ran 24 such checks; for a batch of 25 linear
-- tasks that was 600 queries and about a fifth of the statement's time. Here one query per statement
-- and reference checks all the new rows of that statement. Measured with pgbench on the batch (25
-- linear tasks, synchronous_commit off, interleaved runs): 12.5 ms with all foreign keys, 10.2 ms
-- with statement checks on all five tables that write rows there.
--
-- The two transition tables keep their foreign keys. They are written one row per statement on the
-- hot path (every claim, completion and result of a step), where a statement trigger costs more
-- than a foreign key check: 5,000 single-row inserts took 24 µs each unchecked, 30 µs with the
-- foreign key, 42 µs with a statement check. Over a task's life (a linear task writes about 17
-- transitions one by one after the 9 of its creation) the foreign key is the cheaper of the two.
--
-- The guarantees are those of the foreign keys they replace (ON DELETE/UPDATE NO ACTION), with the
-- constraint names kept in the messages and SQLSTATE 23503 (foreign_key_violation):
--   * Insert: every new row's parent exists. The parents are locked FOR KEY SHARE, as a foreign
--     key check locks them, so a concurrent DELETE of a parent waits for the inserting transaction.
--   * Delete of a parent: refused while a row references it. Raced with an insert, either the
--     delete waits for the insert's lock and then sees the new row (it checks with a new snapshot,
--     so only under READ COMMITTED, which these deletes therefore require), or it deletes first and
--     the insert's check, finding the parent gone, fails.
--   * Truncate of a parent: refused unless the tables that reference it are truncated in the same
--     statement (they must be empty afterwards). Unlike with a foreign key, TRUNCATE ... CASCADE
--     does not add them by itself: name them.
--   * Keys and references never change: an UPDATE that gives one of the checked columns a new
--     value is refused (stricter than a foreign key; nothing in Tasker changes them). The trigger
--     fires only for an UPDATE that names such a column, so the hot path's updates do not pay.

ALTER TABLE tasker.tasks DROP CONSTRAINT tasks_named_task_uuid_fkey;
ALTER TABLE tasker.workflow_steps DROP CONSTRAINT workflow_steps_task_uuid_fkey,
                                  DROP CONSTRAINT workflow_steps_named_step_uuid_fkey;
ALTER TABLE tasker.workflow_step_edges DROP CONSTRAINT workflow_step_edges_from_step_uuid_fkey,
                                       DROP CONSTRAINT workflow_step_edges_to_step_uuid_fkey;

CREATE FUNCTION tasker.raise_missing_reference(p_table text, p_constraint text, p_column text, p_key uuid,
                                               p_parent text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', p_table, p_constraint
    USING ERRCODE = 'foreign_key_violation', TABLE = p_table, CONSTRAINT = p_constraint,
          DETAIL = format('Key (%s)=(%s) is not present in table "%s".', p_column, p_key, p_parent);
END;
$$;

-- AFTER INSERT ... FOR EACH STATEMENT on the three tables (new_rows: the statement's new rows).
-- Each key is looked up once, by its parent's primary key, and the parent row locked FOR KEY SHARE.
-- enable_seqscan is off for the function's plans: a session keeps the plans it made first, and
-- made on tables that were empty then (a new database, autovacuum not yet run) a lookup would be a
-- sequential scan of the parent table per key for as long as the session lives. Measured with the
-- `api` bench on a new database (--existing=0): 350 creations a second without the setting, about
-- 2,000 with it; the foreign keys had the same flaw (560).
CREATE FUNCTION tasker.check_inserted_references() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
  v_missing uuid;
  v_column text;
BEGIN
  CASE TG_TABLE_NAME
  WHEN 'tasks' THEN
    SELECT n.id INTO v_missing FROM (SELECT DISTINCT r.named_task_uuid AS id FROM new_rows r) n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.named_tasks p WHERE p.named_task_uuid = n.id FOR KEY SHARE OF p)
    LIMIT 1;
    IF FOUND THEN
      PERFORM tasker.raise_missing_reference('tasks', 'tasks_named_task_uuid_fkey', 'named_task_uuid', v_missing,
                                             'named_tasks');
    END IF;
  WHEN 'workflow_steps' THEN
    SELECT n.id INTO v_missing FROM (SELECT DISTINCT r.task_uuid AS id FROM new_rows r) n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.tasks p WHERE p.task_uuid = n.id FOR KEY SHARE OF p)
    LIMIT 1;
    IF FOUND THEN
      PERFORM tasker.raise_missing_reference('workflow_steps', 'workflow_steps_task_uuid_fkey', 'task_uuid',
                                             v_missing, 'tasks');
    END IF;
    SELECT n.id INTO v_missing FROM (SELECT DISTINCT r.named_step_uuid AS id FROM new_rows r) n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.named_steps p WHERE p.named_step_uuid = n.id FOR KEY SHARE OF p)
    LIMIT 1;
    IF FOUND THEN
      PERFORM tasker.raise_missing_reference('workflow_steps', 'workflow_steps_named_step_uuid_fkey',
                                             'named_step_uuid', v_missing, 'named_steps');
    END IF;
  WHEN 'workflow_step_edges' THEN
    -- both ends in one statement, each distinct end once
    SELECT n.id, n.col INTO v_missing, v_column
    FROM (SELECT r.from_step_uuid AS id, 'from_step_uuid' AS col FROM new_rows r
          UNION SELECT r.to_step_uuid, 'to_step_uuid' FROM new_rows r) n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_steps p WHERE p.workflow_step_uuid = n.id FOR KEY SHARE OF p)
    LIMIT 1;
    IF FOUND THEN
      PERFORM tasker.raise_missing_reference('workflow_step_edges', format('workflow_step_edges_%s_fkey', v_column),
                                             v_column, v_missing, 'workflow_steps');
    END IF;
  END CASE;
  RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_references AFTER INSERT ON tasker.tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tasker.check_inserted_references();
CREATE TRIGGER workflow_steps_references AFTER INSERT ON tasker.workflow_steps
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tasker.check_inserted_references();
CREATE TRIGGER workflow_step_edges_references AFTER INSERT ON tasker.workflow_step_edges
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tasker.check_inserted_references();

-- AFTER DELETE (old_rows: the deleted rows) and AFTER TRUNCATE ... FOR EACH STATEMENT on a parent.
-- Arguments: the parent's key column, then per referencing table its name, its column and the
-- constraint's name. Deletes and truncations of these tables are rare: the statements are built here.
CREATE FUNCTION tasker.restrict_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_key uuid;
  v_child text;
  v_column text;
  v_constraint text;
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('transaction_isolation') <> 'read committed' THEN
    -- the check below must see rows that concurrent transactions committed while this one waited
    RAISE EXCEPTION 'rows of tasker.% can only be deleted under READ COMMITTED isolation', TG_TABLE_NAME
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  FOR i IN 0 .. (TG_NARGS - 1) / 3 - 1 LOOP
    v_child := TG_ARGV[1 + 3 * i];
    v_column := TG_ARGV[2 + 3 * i];
    v_constraint := TG_ARGV[3 + 3 * i];
    IF TG_OP = 'TRUNCATE' THEN
      EXECUTE format('SELECT c.%I FROM tasker.%I c LIMIT 1', v_column, v_child) INTO v_key;
      IF v_key IS NOT NULL THEN
        RAISE EXCEPTION 'cannot truncate table "%" while table "%" references it (foreign key constraint "%")',
                        TG_TABLE_NAME, v_child, v_constraint
          USING ERRCODE = 'foreign_key_violation', TABLE = v_child, CONSTRAINT = v_constraint,
                HINT = format('Truncate table "%s" in the same statement.', v_child);
      END IF;
    ELSE
      EXECUTE format('SELECT o.%I FROM old_rows o WHERE EXISTS (SELECT 1 FROM tasker.%I c WHERE c.%I = o.%I) LIMIT 1',
                     TG_ARGV[0], v_child, v_column, TG_ARGV[0])
        INTO v_key;
      IF v_key IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%" on table "%"',
                        TG_TABLE_NAME, v_constraint, v_child
          USING ERRCODE = 'foreign_key_violation', TABLE = v_child, CONSTRAINT = v_constraint,
                DETAIL = format('Key (%s)=(%s) is still referenced from table "%s".', TG_ARGV[0], v_key, v_child);
      END IF;
    END IF;
  END LOOP;
  RETURN NULL;
END;
$$;

CREATE TRIGGER named_tasks_referenced AFTER DELETE ON tasker.named_tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('named_task_uuid', 'tasks', 'named_task_uuid', 'tasks_named_task_uuid_fkey');
CREATE TRIGGER named_tasks_truncate_referenced AFTER TRUNCATE ON tasker.named_tasks
  FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('named_task_uuid', 'tasks', 'named_task_uuid', 'tasks_named_task_uuid_fkey');
CREATE TRIGGER named_steps_referenced AFTER DELETE ON tasker.named_steps
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('named_step_uuid', 'workflow_steps', 'named_step_uuid',
                                              'workflow_steps_named_step_uuid_fkey');
CREATE TRIGGER named_steps_truncate_referenced AFTER TRUNCATE ON tasker.named_steps
  FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('named_step_uuid', 'workflow_steps', 'named_step_uuid',
                                              'workflow_steps_named_step_uuid_fkey');
CREATE TRIGGER tasks_referenced AFTER DELETE ON tasker.tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('task_uuid', 'workflow_steps', 'task_uuid', 'workflow_steps_task_uuid_fkey');
CREATE TRIGGER tasks_truncate_referenced AFTER TRUNCATE ON tasker.tasks
  FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced('task_uuid', 'workflow_steps', 'task_uuid', 'workflow_steps_task_uuid_fkey');
CREATE TRIGGER workflow_steps_referenced AFTER DELETE ON tasker.workflow_steps
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced(
    'workflow_step_uuid',
    'workflow_step_edges', 'from_step_uuid', 'workflow_step_edges_from_step_uuid_fkey',
    'workflow_step_edges', 'to_step_uuid', 'workflow_step_edges_to_step_uuid_fkey');
CREATE TRIGGER workflow_steps_truncate_referenced AFTER TRUNCATE ON tasker.workflow_steps
  FOR EACH STATEMENT
  EXECUTE FUNCTION tasker.restrict_referenced(
    'workflow_step_uuid',
    'workflow_step_edges', 'from_step_uuid', 'workflow_step_edges_from_step_uuid_fkey',
    'workflow_step_edges', 'to_step_uuid', 'workflow_step_edges_to_step_uuid_fkey');

-- BEFORE UPDATE OF <columns> ... FOR EACH ROW: refuses a new value in any of the columns named as
-- arguments (the keys and references checked above). Fires only for an UPDATE that names one.
CREATE FUNCTION tasker.refuse_reference_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 0 .. TG_NARGS - 1 LOOP
    IF to_jsonb(NEW) -> TG_ARGV[i] IS DISTINCT FROM to_jsonb(OLD) -> TG_ARGV[i] THEN
      RAISE EXCEPTION 'column "%" of table "%" cannot change: rows reference it or it references a row',
                      TG_ARGV[i], TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = TG_ARGV[i];
    END IF;
  END LOOP;
  RETURN NEW;
END;
$$;

CREATE TRIGGER named_tasks_keys BEFORE UPDATE OF named_task_uuid ON tasker.named_tasks
  FOR EACH ROW EXECUTE FUNCTION tasker.refuse_reference_change('named_task_uuid');
CREATE TRIGGER named_steps_keys BEFORE UPDATE OF named_step_uuid ON tasker.named_steps
  FOR EACH ROW EXECUTE FUNCTION tasker.refuse_reference_change('named_step_uuid');
CREATE TRIGGER tasks_keys BEFORE UPDATE OF task_uuid, named_task_uuid ON tasker.tasks
  FOR EACH ROW EXECUTE FUNCTION tasker.refuse_reference_change('task_uuid', 'named_task_uuid');
CREATE TRIGGER workflow_steps_keys BEFORE UPDATE OF workflow_step_uuid, task_uuid, named_step_uuid ON tasker.workflow_steps
  FOR EACH ROW EXECUTE FUNCTION tasker.refuse_reference_change('workflow_step_uuid', 'task_uuid', 'named_step_uuid');
CREATE TRIGGER workflow_step_edges_keys BEFORE UPDATE OF from_step_uuid, to_step_uuid ON tasker.workflow_step_edges
  FOR EACH ROW EXECUTE FUNCTION tasker.refuse_reference_change('from_step_uuid', 'to_step_uuid');
