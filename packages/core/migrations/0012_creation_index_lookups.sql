-- Task creation plans its table reads as index lookups, whatever the statistics say.
--
-- create_and_start_task and create_and_start_tasks (0010) read named steps by name, named tasks and
-- namespaces by key and tasks by identity hash, one row per item each. A session keeps the plans it
-- made first; made while a table was empty or small (a new database, autovacuum not yet run), or
-- for the small template tables even with fresh statistics, the planner picks sequential scans,
-- repeated per item and growing with the table (named steps grow with every template). With
-- enable_seqscan off for these functions, and the functions they call (create_task, evaluate_task,
-- the pgmq sends), every such read is an index lookup. Measured with `npm run bench -- api`, three
-- interleaved pairs of runs: create_rate 2,717 / 2,565 / 3,248 a second before, 3,161 / 2,964 / 3,539
-- after; create_linear p50 3.02 / 3.04 / 1.96 ms before, 2.89 / 2.54 / 1.57 ms after.
ALTER FUNCTION tasker.create_and_start_task(uuid, jsonb, jsonb, uuid, integer, boolean) SET enable_seqscan = off;
ALTER FUNCTION tasker.create_and_start_tasks(jsonb, uuid, integer) SET enable_seqscan = off;
