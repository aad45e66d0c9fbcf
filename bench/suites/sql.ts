/**
 * `npm run bench -- sql`: latency of the core SQL functions at 5,000 and 100,000 tasks (BENCH.md
 * cases `next_ready_tasks@N`, `step_readiness@N`, `execution_context@N`, `transition@N`).
 *
 * The suite seeds its own data with set-based INSERTs (bench-only; production creates tasks through
 * `tasker.create_task`): linear 4-step tasks, 85% complete with a full transition history, the rest
 * spread over pending, steps_in_process, waiting_for_dependencies and waiting_for_retry. Each sample
 * is one call from the client (round trip included) on one connection; `config.round_trip_floor` is
 * `SELECT 1` on the same connection and `config.commit_floor` a one-row durable INSERT, for scale.
 * Writes are timed with synchronous_commit off: the WAL flush is a disk cost, not the SQL's. After measuring, each
 * function runs once under auto_explain with nested statements, and the plans' index and sequential
 * scans are reported in `config.plans` (the evidence of index use).
 */
import { createPostgresDatabase, type Database } from '@tasker/db';
import { TASKER_MIGRATIONS } from '../../packages/core/src/migrations.ts';
import {
  type BenchCase,
  createBenchDatabase,
  intOption,
  latencyCase,
  monotonicMs,
  type Suite,
} from '../lib.ts';

const SIZES = [5000, 100_000];

export async function seedForTools(db: Database, tasks: number): Promise<void> {
  await db.exec(`
    INSERT INTO tasker.task_namespaces (name) VALUES ('bench') ON CONFLICT DO NOTHING;
    INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version, configuration)
    SELECT task_namespace_uuid, 'bench_linear', '1.0.0', '{}' FROM tasker.task_namespaces WHERE name = 'bench'
    ON CONFLICT DO NOTHING;
    INSERT INTO tasker.named_steps (name) VALUES ('s1'), ('s2'), ('s3'), ('s4') ON CONFLICT DO NOTHING;
  `);
  // Task i: state by i mod 20 — 0 pending, 1 steps_in_process, 2 waiting_for_dependencies,
  // 3 waiting_for_retry, anything else complete.
  await db.query(
    `WITH nt AS (SELECT named_task_uuid FROM tasker.named_tasks WHERE name = 'bench_linear')
     INSERT INTO tasker.tasks (task_uuid, named_task_uuid, current_state, complete, identity_hash, correlation_id,
                               context, created_at, state_entered_at)
     SELECT tasker.uuid_generate_v7(), nt.named_task_uuid,
            CASE g % 20 WHEN 0 THEN 'pending' WHEN 1 THEN 'steps_in_process' WHEN 2 THEN 'waiting_for_dependencies'
                        WHEN 3 THEN 'waiting_for_retry' ELSE 'complete' END,
            g % 20 >= 4, 'bench:' || g || ':' || random(), gen_random_uuid(), jsonb_build_object('n', g),
            now() - make_interval(secs => ($1 - g) * 0.01), now() - interval '1 minute'
     FROM nt, generate_series(1, $1) g`,
    [tasks],
  );
  await db.exec(`
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, current_state, attempts,
                                       processed, in_process, last_attempted_at, backoff_request_seconds, next_retry_at)
    SELECT tasker.uuid_generate_v7(), t.task_uuid, ns.named_step_uuid,
           CASE
             WHEN t.current_state = 'complete' THEN 'complete'
             WHEN t.current_state = 'pending' THEN 'pending'
             WHEN ns.name = 's1' AND t.current_state = 'waiting_for_retry' THEN 'waiting_for_retry'
             WHEN ns.name = 's1' THEN 'complete'
             WHEN ns.name = 's2' AND t.current_state = 'steps_in_process' THEN 'in_progress'
             ELSE 'pending'
           END,
           CASE WHEN t.current_state = 'pending' THEN 0 ELSE 1 END,
           t.current_state = 'complete' OR (ns.name = 's1' AND t.current_state NOT IN ('pending', 'waiting_for_retry')),
           ns.name = 's2' AND t.current_state = 'steps_in_process',
           CASE WHEN t.current_state <> 'pending' THEN now() - interval '1 minute' END,
           CASE WHEN t.current_state = 'waiting_for_retry' AND ns.name = 's1' THEN 3600 END,
           CASE WHEN t.current_state = 'waiting_for_retry' AND ns.name = 's1' THEN now() + interval '59 minutes' END
    FROM tasker.tasks t CROSS JOIN tasker.named_steps ns
    WHERE ns.name IN ('s1', 's2', 's3', 's4');

    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
    SELECT p.workflow_step_uuid, c.workflow_step_uuid
    FROM tasker.workflow_steps p
    JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
    JOIN tasker.workflow_steps c ON c.task_uuid = p.task_uuid
    JOIN tasker.named_steps cn ON cn.named_step_uuid = c.named_step_uuid
    WHERE (pn.name, cn.name) IN (('s1', 's2'), ('s2', 's3'), ('s3', 's4'));

    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, most_recent)
    SELECT task_uuid, NULL, 'pending', 'initialize', 1, current_state = 'pending' FROM tasker.tasks;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, sort_key, most_recent)
    SELECT task_uuid, 'pending', current_state, 'bench_seed', 2, true FROM tasker.tasks WHERE current_state <> 'pending';

    -- a full history for finished steps (5 rows), one current row for the others
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, sort_key, most_recent)
    SELECT s.workflow_step_uuid, h.from_state, h.to_state, 'bench_seed', h.sort_key, h.sort_key = 5
    FROM tasker.workflow_steps s
    CROSS JOIN (VALUES (1, NULL, 'pending'), (2, 'pending', 'enqueued'), (3, 'enqueued', 'in_progress'),
                       (4, 'in_progress', 'enqueued_for_orchestration'), (5, 'enqueued_for_orchestration', 'complete'))
               AS h(sort_key, from_state, to_state)
    WHERE s.current_state = 'complete';
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, sort_key, most_recent)
    SELECT s.workflow_step_uuid, NULL, s.current_state, 'bench_seed', 1, true
    FROM tasker.workflow_steps s WHERE s.current_state <> 'complete';
  `);
  await db.exec('VACUUM ANALYZE');
}

async function measure(samples: number, warmup: number, call: (i: number) => Promise<unknown>) {
  for (let i = 0; i < warmup; i++) await call(i);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = monotonicMs();
    await call(warmup + i);
    times.push(monotonicMs() - start);
  }
  return times;
}

/** Index and sequential scans in the plans of everything `sql` runs (auto_explain, nested statements). */
async function scans(url: string, sql: string, params: unknown[]): Promise<string[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  const notices: string[] = [];
  client.on('notice', (notice) => notices.push(notice.message ?? ''));
  await client.connect();
  try {
    await client.query(`LOAD 'auto_explain'`);
    await client.query('SET auto_explain.log_min_duration = 0');
    await client.query('SET auto_explain.log_nested_statements = on');
    await client.query('SET auto_explain.log_analyze = on');
    await client.query('SET client_min_messages = log');
    await client.query('BEGIN');
    await client.query(sql, params);
    await client.query('ROLLBACK');
  } finally {
    await client.end();
  }
  const found = new Set<string>();
  for (const text of notices) {
    for (const match of text.matchAll(
      /(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)? (?:using|on) (\S+)/g,
    )) {
      found.add(`${match[1]} ${match[2]}`);
    }
  }
  return [...found].sort();
}

export const sqlSuite: Suite = async ({ options, log }) => {
  const samples = intOption(options, 'samples', 500);
  const warmup = intOption(options, 'warmup', 50);
  const sizes = options.has('tasks') ? [intOption(options, 'tasks', 5000)] : SIZES;
  const cases: BenchCase[] = [];
  const plans: Record<string, string[]> = {};
  const commitFloor: Record<string, { p50_ms: number; p95_ms: number }> = {};
  const roundTrip: Record<string, { p50_ms: number; p95_ms: number }> = {};
  let postgres = 'unknown';
  for (const size of sizes) {
    const bench = await createBenchDatabase(TASKER_MIGRATIONS);
    postgres = bench.postgresVersion;
    const db = createPostgresDatabase({
      url: bench.url,
      pool: { max: 1 },
      applicationName: 'tasker-bench-sql',
    });
    try {
      log(`seeding ${size} tasks`);
      const seedStart = monotonicMs();
      // seeding 100,000 tasks takes longer than the default statement timeout
      const seeder = createPostgresDatabase({
        url: bench.url,
        pool: { max: 1 },
        statementTimeoutMs: 600_000,
      });
      try {
        await seedForTools(seeder, size);
      } finally {
        await seeder.close();
      }
      log(`seeded in ${Math.round(monotonicMs() - seedStart)} ms`);
      const active = (
        await db.query<{ task_uuid: string }>(
          `SELECT task_uuid FROM tasker.tasks WHERE current_state IN ('steps_in_process', 'waiting_for_dependencies', 'waiting_for_retry')
           ORDER BY random() LIMIT 1000`,
        )
      ).rows.map((row) => row.task_uuid);
      const roots = (
        await db.query<{ workflow_step_uuid: string }>(
          `SELECT s.workflow_step_uuid FROM tasker.workflow_steps s
           JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
           JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
           WHERE n.name = 's1' AND t.current_state = 'pending' ORDER BY random() LIMIT $1`,
          [samples + warmup],
        )
      ).rows.map((row) => row.workflow_step_uuid);
      const pick = (list: readonly string[], i: number): string => list[i % list.length] ?? '';
      // A durable commit waits for the WAL flush; that disk cost is the same for any write and is
      // measured on its own (commit_floor), so the cases time the SQL, with synchronous_commit off.
      await db.exec('CREATE TABLE IF NOT EXISTS public.bench_commit_floor (n integer)');
      const floor = latencyCase(
        'commit_floor',
        await measure(samples, warmup, (i) =>
          db.query('INSERT INTO public.bench_commit_floor VALUES ($1)', [i]),
        ),
      );
      const select1 = latencyCase('select_1', await measure(samples, warmup, () => db.query('SELECT 1')));
      commitFloor[`@${size}`] = { p50_ms: floor.p50_ms, p95_ms: floor.p95_ms };
      roundTrip[`@${size}`] = { p50_ms: select1.p50_ms, p95_ms: select1.p95_ms };
      await db.exec('SET synchronous_commit = off');

      const calls: [string, string, (i: number) => unknown[]][] = [
        ['next_ready_tasks', 'SELECT * FROM tasker.get_next_ready_tasks(5)', () => []],
        ['step_readiness', 'SELECT * FROM tasker.get_step_readiness_status($1)', (i) => [pick(active, i)]],
        [
          'execution_context',
          'SELECT * FROM tasker.get_task_execution_context($1)',
          (i) => [pick(active, i)],
        ],
        [
          'transition',
          `SELECT tasker.transition_step_state($1, 'pending', 'enqueue', 'enqueued') AS ok`,
          (i) => [pick(roots, i)],
        ],
      ];
      for (const [name, sql, params] of calls) {
        const times = await measure(samples, warmup, (i) => db.query(sql, params(i)));
        const latency = latencyCase(`${name}@${size}`, times);
        cases.push(latency);
        log(
          `${name}@${size}: p50 ${cases.at(-1) && 'p50_ms' in (cases.at(-1) as object) ? (cases.at(-1) as { p50_ms: number }).p50_ms : '?'} ms`,
        );
        const planParams = name === 'transition' ? [pick(roots, samples + warmup - 1)] : params(0);
        plans[`${name}@${size}`] = await scans(bench.url, sql, planParams);
      }
    } finally {
      await db.close();
      await bench.dispose();
    }
  }
  return {
    postgres,
    backend: 'postgres',
    config: {
      sizes,
      samples,
      warmup,
      connection: 'one pg connection, autocommit, synchronous_commit off (the WAL flush is commit_floor)',
      commit_floor: commitFloor,
      round_trip_floor: roundTrip,
      plans,
    },
    cases,
  };
};
