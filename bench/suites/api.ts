/**
 * `npm run bench -- api`: task creation over HTTP (BENCH.md cases `create_linear`, `create_diamond`
 * and `create_rate`) against the REST API of an orchestration process (engine + API, no worker) on a
 * throwaway PostgreSQL database.
 *
 * - `create_linear` / `create_diamond`: latency of one `POST /v1/tasks` (validation, template lookup,
 *   task and steps created and started — the first steps enqueued — in one statement, the response
 *   built), one request at a time from this process, after warm-up.
 * - `create_rate`: sustained creations per second with autocannon at `--connections` (50) for
 *   `--seconds` (10), each request with a unique context (so no identity conflicts). Only 201
 *   answers count; anything else is reported in `config.rate_non_2xx`.
 *
 * Options: --samples (200), --warmup (20), --connections (50), --seconds (10).
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadTemplates, TASKER_MIGRATIONS, TemplateRegistry } from '@tasker/core';
import autocannon from 'autocannon';
import { type Child, startChild } from '../../tests/e2e/support/processes.ts';
import {
  type BenchCase,
  createBenchDatabase,
  intOption,
  latencyCase,
  monotonicMs,
  type Suite,
} from '../lib.ts';

const SHAPES = {
  create_linear: {
    namespace: 'linear_workflow_ts',
    name: 'mathematical_sequence_ts',
    context: { even_number: 10 },
  },
  create_diamond: {
    namespace: 'diamond_workflow_ts',
    name: 'parallel_computation_ts',
    context: { even_number: 4 },
  },
} as const;

function body(shape: (typeof SHAPES)[keyof typeof SHAPES], run: string): Record<string, unknown> {
  return {
    namespace: shape.namespace,
    name: shape.name,
    version: '1.0.0',
    context: { ...shape.context, run },
    initiator: 'bench',
    source_system: 'bench',
    reason: 'api benchmark',
  };
}

async function create(url: string, payload: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${url}/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  await response.arrayBuffer();
  if (response.status !== 201) throw new Error(`POST /v1/tasks answered ${response.status}`);
}

export const apiSuite: Suite = async ({ options, log }) => {
  const samples = intOption(options, 'samples', 200, 1);
  const warmup = intOption(options, 'warmup', 20);
  const connections = intOption(options, 'connections', 50, 1);
  const seconds = intOption(options, 'seconds', 10, 1);
  const bench = await createBenchDatabase(TASKER_MIGRATIONS);
  const cases: BenchCase[] = [];
  let child: Child | null = null;
  let rateNon2xx = 0;
  try {
    const registry = new TemplateRegistry(bench.admin);
    const loaded = await loadTemplates([
      fileURLToPath(new URL('../../examples/templates/', import.meta.url)),
    ]);
    for (const { template } of loaded.templates) await registry.register(template);
    // the pool of the default configuration (config/tasker.toml: max_connections = 10)
    child = await startChild('api', bench.url, { port: 0, poolMax: 10 });
    const port = child.lines
      .map((line) => /^port (\d+)$/.exec(line)?.[1])
      .find((value) => value !== undefined);
    if (port === undefined) throw new Error('the api process printed no port');
    const url = `http://127.0.0.1:${port}`;
    for (const [name, shape] of Object.entries(SHAPES)) {
      log(`${name}: ${warmup} warm-up and ${samples} samples`);
      for (let i = 0; i < warmup; i++) await create(url, body(shape, randomUUID()));
      const times: number[] = [];
      for (let i = 0; i < samples; i++) {
        const payload = body(shape, randomUUID());
        const started = monotonicMs();
        await create(url, payload);
        times.push(monotonicMs() - started);
      }
      cases.push(latencyCase(name, times));
    }
    log(`create_rate: ${connections} connections for ${seconds} s`);
    // autocannon puts a fresh id wherever [<id>] stands, so every task has its own identity
    const template = JSON.stringify(body(SHAPES.create_linear, '[<id>]'));
    const result = await autocannon({
      url: `${url}/v1/tasks`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: template,
      idReplacement: true,
      connections,
      duration: seconds,
    });
    rateNon2xx = result.non2xx + result.errors + result.timeouts;
    cases.push({
      name: 'create_rate',
      n: result['2xx'],
      rate_per_s: Math.round((result['2xx'] / (result.duration || seconds)) * 10) / 10,
      unit: 'tasks',
    });
  } finally {
    if (child !== null) {
      child.process.kill('SIGTERM');
      await child.exited;
    }
    await bench.dispose();
  }
  return {
    postgres: bench.postgresVersion,
    backend: 'postgres',
    config: { samples, warmup, connections, seconds, rate_non_2xx: rateNon2xx, workers: 0 },
    cases,
  };
};
