/**
 * The whole system in one process for end-to-end tests: a fresh database (PostgreSQL or PGlite)
 * with the Tasker schema, the example templates, an orchestration engine, a worker running the
 * example handlers, and a task watcher. `run` creates a task the way the API does and waits for
 * its end through the completion notification.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  type JsonObject,
  loadTemplates,
  TASKER_MIGRATIONS,
  type TaskTemplate,
  TemplateRegistry,
} from '@tasker/core';
import type { Backend } from '@tasker/db';
import { createTestDatabase, type TestDatabase } from '@tasker/db/testing';
import { type EngineOptions, OrchestrationEngine, TaskWatcher } from '@tasker/orchestration';
import { HandlerRegistry, TaskerWorker, type TaskerWorkerOptions } from '@tasker/worker';
import { registerExampleHandlers } from '../../../examples/handlers/index.ts';

const TEMPLATES_DIR = fileURLToPath(new URL('../../../examples/templates/', import.meta.url));
const WAIT_MS = 60_000;

export type StepRow = {
  name: string;
  current_state: string;
  attempts: number;
  results: {
    success?: boolean;
    result?: JsonObject;
    error?: { error_type?: string };
    metadata?: JsonObject;
  } | null;
};

export interface Finished {
  taskUuid: string;
  state: string;
  steps: Map<string, StepRow>;
}

export async function exampleTemplates(): Promise<TaskTemplate[]> {
  const loaded = await loadTemplates([TEMPLATES_DIR]);
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  return loaded.templates.map(({ template }) => template);
}

export interface SystemOptions {
  engine?: Partial<Omit<EngineOptions, 'db'>>;
  worker?: Partial<Omit<TaskerWorkerOptions, 'db' | 'handlers' | 'templates'>>;
}

/**
 * The two result modes, push only (a lost notification fails a test instead of waiting for a
 * poller): the worker applies results inline (the default), or hands them to the engine through
 * the result queue.
 */
export const PUSH_MODES: Record<string, SystemOptions> = {
  inline: {
    worker: { mode: 'EventDrivenOnly' },
    engine: { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
  },
  'result queue': {
    worker: { mode: 'EventDrivenOnly', applyResultsInline: false },
    engine: { orchestrationMode: 'EventDrivenOnly', readinessMode: 'EventDrivenOnly' },
  },
};

export class System {
  readonly t: TestDatabase;
  readonly engine: OrchestrationEngine;
  readonly worker: TaskerWorker;
  readonly watcher: TaskWatcher;

  private constructor(
    t: TestDatabase,
    engine: OrchestrationEngine,
    worker: TaskerWorker,
    watcher: TaskWatcher,
  ) {
    this.t = t;
    this.engine = engine;
    this.worker = worker;
    this.watcher = watcher;
  }

  static async start(backend: Backend, options: SystemOptions = {}): Promise<System> {
    const t = await createTestDatabase(backend, { migrations: TASKER_MIGRATIONS });
    const templates = await exampleTemplates();
    const registry = new TemplateRegistry(t.db);
    const handlers = new HandlerRegistry();
    registerExampleHandlers(handlers);
    const worker = new TaskerWorker({ db: t.db, handlers, templates, ...options.worker });
    await worker.start();
    const engine = new OrchestrationEngine({
      db: t.db,
      registry,
      fallbackPollIntervalMs: 1000,
      readinessPollIntervalMs: 1000,
      shutdownTimeoutMs: 5000,
      ...options.engine,
    });
    await engine.start();
    const watcher = await TaskWatcher.open(t.db);
    return new System(t, engine, worker, watcher);
  }

  /** Creates a task (with a `_test_run_id` so equal contexts never collide) and waits for its end. */
  async run(namespace: string, name: string, context: JsonObject = {}): Promise<Finished> {
    const created = await this.engine.createTask({
      namespace,
      name,
      version: '1.0.0',
      context: { ...context, _test_run_id: randomUUID() },
      initiator: 'e2e-test',
      source_system: 'test',
      reason: 'end-to-end test',
      tags: ['e2e'],
      priority: 5,
    });
    const state = await this.watcher.wait(created.taskUuid, WAIT_MS);
    return { taskUuid: created.taskUuid, state, steps: await this.steps(created.taskUuid) };
  }

  async steps(taskUuid: string): Promise<Map<string, StepRow>> {
    const { rows } = await this.t.db.query<StepRow>(
      `SELECT ns.name, ws.current_state, ws.attempts, ws.results FROM tasker.workflow_steps ws
       JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
       WHERE ws.task_uuid = $1`,
      [taskUuid],
    );
    return new Map(rows.map((row) => [row.name, row]));
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    await this.engine.stop();
    await this.watcher.close();
    await this.t.dispose();
  }
}
