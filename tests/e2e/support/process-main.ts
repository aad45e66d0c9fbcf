/** The body of a test child process: see processes.ts. */
import { fileURLToPath } from 'node:url';
import { jsonLogger, loadTemplates, TemplateRegistry } from '@tasker/core';
import { createPostgresDatabase } from '@tasker/db';
import { OrchestrationEngine } from '@tasker/orchestration';
import { HandlerRegistry, TaskerWorker } from '@tasker/worker';
import { registerExampleHandlers } from '../../../examples/handlers/index.ts';

const [role, optionsJson = '{}'] = process.argv.slice(2);
const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is required');
const options = JSON.parse(optionsJson) as Record<string, unknown>;
const db = createPostgresDatabase({ url, pool: { max: 4 } });
const logger = jsonLogger(`${role}-${process.pid}`, 'warn');

let service: { stop(): Promise<void> };
if (role === 'orchestration') {
  const engine = new OrchestrationEngine({ db, registry: new TemplateRegistry(db), logger, ...options });
  await engine.start();
  service = engine;
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
