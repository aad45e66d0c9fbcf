/** The orchestration server: the engine and the REST API. See runtime.ts. */
import { run } from './runtime.ts';

await run('orchestration');
