import type { TemplateRegistry } from '@tasker/core';
import type { Database } from '@tasker/db';
import type { OrchestrationEngine } from '../engine.ts';

/** What the routes need of the engine: task intake and its health. */
export type ApiEngine = Pick<OrchestrationEngine, 'createTask' | 'health'>;

/** What every route family is built with. */
export interface ApiContext {
  db: Database;
  engine: ApiEngine;
  registry: TemplateRegistry;
  /** Bound on the readiness checks' database query. */
  healthCheckTimeoutMs: number;
}
