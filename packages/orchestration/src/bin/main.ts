/**
 * The all-in-one process (`npm start`): embedded PostgreSQL (PGlite under `.tasker/`) or the
 * PostgreSQL of `DATABASE_URL`, the orchestration engine, the REST API and a worker running the
 * configured handlers (the examples by default). See runtime.ts.
 */
import { run } from './runtime.ts';

await run('main');
