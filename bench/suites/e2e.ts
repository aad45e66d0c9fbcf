/**
 * `npm run bench -- e2e`: create-to-complete latency of whole tasks (BENCH.md cases `linear`,
 * `diamond`, `conditional` (#23, amount 500), `batch_csv_1000` (#24 over the 1,000-row products
 * CSV: 5 workers) and their `_server` variants), one orchestration process and one worker process
 * on a throwaway PostgreSQL database, tasks run one at a time.
 *
 * - `linear`, `diamond`, `conditional`, `batch_csv_1000`: from just before the task is created (the
 *   call the API makes: validate, look up the template, create and start in one statement) until the
 *   completion notification (`tasker_task_finished`) reaches this process: no polling quantization.
 * - `*_server`: the same tasks measured by the database clock, `completed_at - created_at`.
 * - `*_inline`: the worker applies results in its completion transaction (hops 3 and 4 as one,
 *   DESIGN §3) instead of handing them to the orchestration process through the result queue.
 * `config.breakdown` splits the steps' time by their transitions (where the time goes): claim =
 * enqueued → in_progress, run = in_progress → enqueued_for_orchestration (handler and completion),
 * apply = enqueued_for_orchestration → complete; p50 per step, in ms.
 *
 * Options: --samples (200), --warmup (20), --modes=queue,inline.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  createTask,
  loadTemplates,
  TASKER_MIGRATIONS,
  type TaskRequest,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
import { createPostgresDatabase, type Database } from '@tasker/db';
import { TaskWatcher } from '@tasker/orchestration';
import { type Child, startChild } from '../../tests/e2e/support/processes.ts';
import {
  type BenchCase,
  createBenchDatabase,
  intOption,
  latencyCase,
  monotonicMs,
  type Suite,
  withTimeout,
} from '../lib.ts';

const SHAPES = {
  linear: {
    namespace: 'linear_workflow_ts',
    name: 'mathematical_sequence_ts',
    context: { even_number: 10 },
    steps: 4,
  },
  diamond: {
    namespace: 'diamond_workflow_ts',
    name: 'parallel_computation_ts',
    context: { even_number: 4 },
    steps: 4,
  },
  // #23: the decision routes 500 to auto_approve_ts only (validate, decide, approve, finalize)
  conditional: {
    namespace: 'conditional_approval_ts',
    name: 'approval_routing_ts',
    context: { amount: 500, requester: 'bench', purpose: 'benchmark' },
    steps: 4,
  },
  // #24 over the committed 1,000-row CSV: analyzer, 5 workers of 200 rows, aggregator
  batch_csv_1000: {
    namespace: 'csv_processing_ts',
    name: 'csv_product_inventory_analyzer_ts',
    context: { csv_file_path: 'examples/fixtures/products.csv', analysis_mode: 'inventory' },
    steps: 7,
  },
} as const;

const MODES = ['queue', 'inline'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  taskUuid: string;
  clientMs: number;
}

async function runShape(
  db: Database,
  registry: TemplateRegistry,
  watcher: TaskWatcher,
  shape: (typeof SHAPES)[keyof typeof SHAPES],
  count: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    const started = monotonicMs();
    const request: TaskRequest = validateTaskRequest({
      namespace: shape.namespace,
      name: shape.name,
      version: '1.0.0',
      context: { ...shape.context, run: randomUUID() },
    });
    const registered = await registry.get(request.namespace, request.name, request.version);
    const created = await createTask(db, request, registered, { start: { batchSize: 50 } });
    const state = await watcher.wait(created.taskUuid, 30_000);
    const clientMs = monotonicMs() - started;
    if (state !== 'complete') throw new Error(`task ${created.taskUuid} ended ${state}`);
    if (i === 0) await checkSteps(db, created.taskUuid, shape.steps);
    samples.push({ taskUuid: created.taskUuid, clientMs });
  }
  return samples;
}

/** The task ran the shape it stands for (e.g. five CSV workers), not a shortcut. */
async function checkSteps(db: Database, taskUuid: string, expected: number): Promise<void> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM tasker.workflow_steps
     WHERE task_uuid = $1 AND current_state = 'complete'`,
    [taskUuid],
  );
  if (rows[0]?.n !== expected) {
    throw new Error(`task ${taskUuid} completed ${rows[0]?.n} steps, expected ${expected}`);
  }
}

async function serverTimes(db: Database, tasks: readonly string[]): Promise<number[]> {
  const { rows } = await db.query<{ ms: number }>(
    `SELECT extract(epoch FROM completed_at - created_at)::float8 * 1000 AS ms
     FROM tasker.tasks WHERE task_uuid = ANY ($1::uuid[])`,
    [tasks],
  );
  return rows.map((row) => row.ms);
}

/** p50 per step of each hop, from the step transitions of the measured tasks. */
async function breakdown(db: Database, tasks: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ hop: string; p50: number }>(
    `WITH t AS (
       SELECT x.workflow_step_uuid, x.to_state, x.created_at,
              lag(x.created_at) OVER (PARTITION BY x.workflow_step_uuid ORDER BY x.sort_key) AS previous
       FROM tasker.workflow_step_transitions x
       JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = x.workflow_step_uuid
       WHERE ws.task_uuid = ANY ($1::uuid[]))
     SELECT CASE to_state WHEN 'in_progress' THEN 'claim' WHEN 'enqueued_for_orchestration' THEN 'run'
                          WHEN 'complete' THEN 'apply' END AS hop,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - previous) * 1000) AS p50
     FROM t WHERE to_state IN ('in_progress', 'enqueued_for_orchestration', 'complete') GROUP BY 1`,
    [tasks],
  );
  return Object.fromEntries(rows.map((row) => [`${row.hop}_p50_ms`, Math.round(row.p50 * 1000) / 1000]));
}

export const e2eSuite: Suite = async ({ options, log }) => {
  const samples = intOption(options, 'samples', 200, 1);
  const warmup = intOption(options, 'warmup', 20);
  const modes = (options.get('modes') ?? MODES.join(',')).split(',').map((mode) => {
    if (!(MODES as readonly string[]).includes(mode)) throw new Error(`--modes: unknown mode ${mode}`);
    return mode as Mode;
  });
  const cases: BenchCase[] = [];
  const breakdowns: Record<string, Record<string, number>> = {};
  let postgres = 'unknown';
  for (const mode of modes) {
    const bench = await createBenchDatabase(TASKER_MIGRATIONS);
    postgres = bench.postgresVersion;
    const db = createPostgresDatabase({
      url: bench.url,
      pool: { max: 2 },
      applicationName: 'tasker-bench-e2e',
    });
    const children: Child[] = [];
    let watcher: TaskWatcher | null = null;
    try {
      const registry = new TemplateRegistry(db);
      const loaded = await loadTemplates([
        fileURLToPath(new URL('../../examples/templates/', import.meta.url)),
      ]);
      for (const { template } of loaded.templates) await registry.register(template);
      children.push(await startChild('worker', bench.url, { applyResultsInline: mode === 'inline' }));
      children.push(await startChild('orchestration', bench.url));
      watcher = await TaskWatcher.open(db);
      for (const [name, shape] of Object.entries(SHAPES)) {
        log(`${mode}: ${name}, ${warmup} warm-up and ${samples} samples`);
        await withTimeout(runShape(db, registry, watcher, shape, warmup), 600_000, `${name} warm-up`);
        const measured = await withTimeout(runShape(db, registry, watcher, shape, samples), 600_000, name);
        const tasks = measured.map((sample) => sample.taskUuid);
        const suffix = mode === 'inline' ? '_inline' : '';
        cases.push(
          latencyCase(
            `${name}${suffix}`,
            measured.map((sample) => sample.clientMs),
          ),
        );
        cases.push(latencyCase(`${name}${suffix}_server`, await serverTimes(db, tasks)));
        breakdowns[`${name}${suffix}`] = await breakdown(db, tasks);
      }
    } finally {
      await watcher?.close();
      for (const child of children) child.process.kill('SIGTERM');
      await Promise.all(children.map((child) => child.exited));
      await db.close();
      await bench.dispose();
    }
  }
  return {
    postgres,
    backend: 'postgres',
    config: { orchestrators: 1, workers: 1, samples, warmup, modes, breakdown: breakdowns },
    cases,
  };
};
