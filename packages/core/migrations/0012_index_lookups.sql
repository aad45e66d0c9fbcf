-- Task creation and the workflow's hot path plan their table reads as index lookups, whatever the
-- statistics say.
--
-- These functions read a task's rows by key: named steps by name, named tasks and namespaces by key,
-- tasks by identity hash (creation); a task's steps, edges and transitions (claim, completion, result
-- application, evaluation). A session keeps the plans it made first. Made while a table was empty or
-- small (a new database, autovacuum not yet run, or the small template tables even with fresh
-- statistics), they are sequential scans, repeated per item and growing with the table: in one
-- `e2e` bench run on a new database, 7,185 sequential scans of workflow_step_edges read 11 million
-- rows while 800 tasks ran. With enable_seqscan off for these entry points, and for everything they
-- call, every such read is an index lookup (the same run: none).
--
-- Measured, interleaved pairs of runs on this machine (before → after):
--   npm run bench -- api   create_rate 2,717 / 2,565 / 3,248 → 3,161 / 2,964 / 3,539 a second;
--                          create_linear p50 3.02 / 3.04 / 1.96 → 2.89 / 2.54 / 1.57 ms
--   npm run bench -- e2e --modes=inline, p50 ms:
--                          batch_csv_1000 44.8 / 35.8 / 45.9 → 33.1 / 33.7 / 28.9;
--                          conditional 27.2 / 24.9 / 27.0 → 17.7 / 22.9 / 18.5;
--                          diamond 21.6 / 20.2 / 16.4 → 17.4 / 17.9 / 14.7;
--                          linear 19.6 / 18.3 / 13.9 → 20.0 / 19.8 / 17.9 (within this machine's noise)
-- Read-only functions called by the API (summaries, readiness, execution context) are left as they
-- are: several are SQL functions the planner inlines, which a SET clause would prevent.
ALTER FUNCTION tasker.create_and_start_task(uuid, jsonb, jsonb, uuid, integer, boolean) SET enable_seqscan = off;
ALTER FUNCTION tasker.create_and_start_tasks(jsonb, uuid, integer) SET enable_seqscan = off;
ALTER FUNCTION tasker.evaluate_task(uuid, uuid, integer, boolean) SET enable_seqscan = off;
ALTER FUNCTION tasker.process_ready_tasks(integer, uuid, integer) SET enable_seqscan = off;
ALTER FUNCTION tasker.process_step_results(text, bigint[], integer, double precision, uuid, integer, double precision)
  SET enable_seqscan = off;
ALTER FUNCTION tasker.claim_step_messages(text, bigint[], integer, double precision, uuid, integer, integer)
  SET enable_seqscan = off;
ALTER FUNCTION tasker.complete_step_message(text, bigint, uuid, uuid, integer, jsonb, text, boolean, integer, integer,
                                            integer, integer)
  SET enable_seqscan = off;
ALTER FUNCTION tasker.checkpoint_step(uuid, uuid, integer, jsonb, text, bigint, integer) SET enable_seqscan = off;
