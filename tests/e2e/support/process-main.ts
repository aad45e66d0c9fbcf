/** The body of a test child process: see processes.ts (roles orchestration, api, worker). */
import { fileURLToPath } from 'node:url';
import { jsonLogger, loadTemplates, TemplateRegistry } from '@tasker/core';
import { createPostgresDatabase } from '@tasker/db';
import { buildApiServer, OrchestrationEngine } from '@tasker/orchestration';
import { HandlerRegistry, TaskerWorker } from '@tasker/worker';
import { registerExampleHandlers } from '../../../examples/handlers/index.ts';

const [role, optionsJson = '{}'] = process.argv.slice(2);
const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is required');
const { poolMax = 4, ...options } = JSON.parse(optionsJson) as Record<string, unknown>;
const db = createPostgresDatabase({ url, pool: { max: Number(poolMax) } });
const logger = jsonLogger(`${role}-${process.pid}`, 'warn');

let service: { stop(): Promise<void> };
if (role === 'orchestration') {
  const engine = new OrchestrationEngine({ db, registry: new TemplateRegistry(db), logger, ...options });
  await engine.start();
  service = engine;
} else if (role === 'api') {
  // the engine and the REST API on 127.0.0.1:<port> (options.port; 0 picks a free port, printed)
  const { port = 0, ...engineOptions } = options;
  const registry = new TemplateRegistry(db);
  const engine = new OrchestrationEngine({ db, registry, logger, ...engineOptions });
  await engine.start();
  const server = buildApiServer({ db, engine, registry });
  await server.listen({ host: '127.0.0.1', port: Number(port) });
  const address = server.server.address();
  process.stdout.write(`port ${typeof address === 'object' && address !== null ? address.port : port}\n`);
  service = {
    async stop() {
      await server.close();
      await engine.stop();
    },
  };
} else if (role === 'worker') {
  const dirs = ['../../../examples/templates/', './templates/'].map((dir) =>
    fileURLToPath(new URL(dir, import.meta.url)),
  );
  const loaded = await loadTemplates(dirs);
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const handlers = new HandlerRegistry();
  registerExampleHandlers(handlers);
  const worker = new TaskerWorker({
    db,
    handlers,
    templates: loaded.templates.map(({ template }) => template),
    logger,
    ...options,
  });
  await worker.start();
  service = worker;
} else {
  throw new Error(`unknown role ${role}`);
}

process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  await service.stop();
  await db.close();
  process.stdout.write('stopped\n');
  process.exit(0);
});
