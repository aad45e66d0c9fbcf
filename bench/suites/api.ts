/**
 * `npm run bench -- api`: task creation over HTTP (BENCH.md cases `create_linear`, `create_diamond`
 * and `create_rate`) against the REST API of an orchestration process (engine + API, no worker) on a
 * throwaway PostgreSQL database.
 *
 * - `create_linear` / `create_diamond`: latency of one `POST /v1/tasks` (validation, template lookup,
 *   task and steps created and started — the first steps enqueued — in one statement, the response
 *   built), one request at a time from this process over a kept-alive connection, after warm-up.
 *
 * The database is not empty: before the API process starts, it holds `--existing` (2,000) started
 * tasks and has been analyzed, as autovacuum keeps a running system. (On a new database whose
 * tables were never analyzed, plans made while they are nearly empty, foreign-key checks included,
 * are kept by each connection as the tables grow: not the steady state being measured.)
 * - `create_rate`: sustained creations per second with autocannon at `--connections` (50) for
 *   `--seconds` (10), each request with a unique context (so no identity conflicts). Only 201
 *   answers count; anything else is reported in `config.rate_non_2xx`.
 *
 * Options: --samples (500), --warmup (200: every connection of the API's pool plans its statements;
 * the first executions of each are planned anew), --connections (50), --seconds (10), --existing (2000).
 */
import { randomUUID } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  createStartedTasks,
  loadTemplates,
  prepareTask,
  TASKER_MIGRATIONS,
  TemplateRegistry,
  validateTaskRequest,
} from '@tasker/core';
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

/**
 * One `POST /v1/tasks` over a kept-alive HTTP/1.1 connection (node:http, as autocannon's raw
 * requests): the client's own cost stays out of the server's latency (undici's fetch adds about
 * 0.4 ms per request on this machine).
 */
function create(agent: Agent, url: URL, payload: Record<string, unknown>): Promise<void> {
  const body = JSON.stringify(payload);
  return new Promise<void>((resolve, reject) => {
    const request = httpRequest(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: '/v1/tasks',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.resume();
        response.on('error', reject);
        response.on('end', () =>
          response.statusCode === 201
            ? resolve()
            : reject(new Error(`POST /v1/tasks answered ${response.statusCode}`)),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

export const apiSuite: Suite = async ({ options, log }) => {
  const samples = intOption(options, 'samples', 500, 1);
  const warmup = intOption(options, 'warmup', 200);
  const connections = intOption(options, 'connections', 50, 1);
  const seconds = intOption(options, 'seconds', 10, 1);
  const existing = intOption(options, 'existing', 2000);
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
    log(`${existing} tasks created beforehand, then ANALYZE`);
    const shapes = await Promise.all(
      Object.values(SHAPES).map(async (shape) => ({
        shape,
        registered: await registry.get(shape.namespace, shape.name, '1.0.0'),
      })),
    );
    for (let done = 0; done < existing; done += 50) {
      const prepared = Array.from({ length: Math.min(50, existing - done) }, (_, i) => {
        const { shape, registered } = shapes[i % shapes.length] as (typeof shapes)[number];
        return prepareTask(validateTaskRequest(body(shape, randomUUID())), registered);
      });
      await createStartedTasks(bench.admin, prepared, { batchSize: 50 });
    }
    await bench.admin.exec('ANALYZE');
    // the pool of the default configuration (config/tasker.toml: max_connections = 10)
    child = await startChild('api', bench.url, { port: 0, poolMax: 10 });
    const port = child.lines
      .map((line) => /^port (\d+)$/.exec(line)?.[1])
      .find((value) => value !== undefined);
    if (port === undefined) throw new Error('the api process printed no port');
    const url = `http://127.0.0.1:${port}`;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const [name, shape] of Object.entries(SHAPES)) {
        log(`${name}: ${warmup} warm-up and ${samples} samples`);
        for (let i = 0; i < warmup; i++) await create(agent, new URL(url), body(shape, randomUUID()));
        const times: number[] = [];
        for (let i = 0; i < samples; i++) {
          const payload = body(shape, randomUUID());
          const started = monotonicMs();
          await create(agent, new URL(url), payload);
          times.push(monotonicMs() - started);
        }
        cases.push(latencyCase(name, times));
      }
    } finally {
      agent.destroy();
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
    config: { samples, warmup, connections, seconds, existing, rate_non_2xx: rateNon2xx, workers: 0 },
    cases,
  };
};
