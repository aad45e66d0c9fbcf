/** A worker process: the handlers of `worker.handler_modules` for the templates of `worker.template_dirs`. See runtime.ts. */
import { run } from './runtime.ts';

await run('worker');
