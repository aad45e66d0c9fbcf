/**
 * What the three entry points share: read and validate the configuration, open the database
 * (PostgreSQL from `database.url`, else embedded PGlite in `database.data_dir`), migrate, start the
 * parts of the role, log where the API listens, and stop gracefully on SIGINT/SIGTERM — worker first,
 * then the engine, then the HTTP server, then the database — within the configured shutdown timeouts
 * (exit 0). A second signal (more than a second after the first: Ctrl-C under npm arrives twice at
 * once), or a shutdown that outlives its deadline, exits 1. An invalid
 * configuration exits 2 before anything starts, with every problem listed on stderr.
 *
 * Roles: `orchestration` (engine + REST API), `worker` (handlers from `worker.handler_modules`),
 * `main` (all of it in one process: the embedded default of `npm start`).
 */
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  applyOrchestrationSettings,
  type Logger,
  loadTemplates,
  TASKER_MIGRATIONS,
  TaskerError,
  TemplateRegistry,
} from '@tasker/core';
import { createPgliteDatabase, createPostgresDatabase, type Database, migrate } from '@tasker/db';
import { HandlerRegistry, StepHandler, type StepHandlerClass, TaskerWorker } from '@tasker/worker';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApiServer, pinoLogger } from '../api/index.ts';
import { ConfigError, type LoadedConfig, loadConfig, type TaskerConfig } from '../config/index.ts';
import { OrchestrationEngine } from '../engine.ts';
import type { EngineSettings } from '../options.ts';

export type Role = 'orchestration' | 'worker' | 'main';

/** Exit code of an invalid configuration (nothing was started). */
const EXIT_CONFIG = 2;
/** Time past the components' own shutdown timeouts for closing the HTTP server and the database. */
const SHUTDOWN_GRACE_MS = 5000;
/** A signal this soon after the first is the same request delivered twice, not a second one. */
const DUPLICATE_SIGNAL_MS = 1000;

interface Running {
  worker?: TaskerWorker;
  engine?: OrchestrationEngine;
  http?: FastifyInstance;
  db?: Database;
}

function engineSettingsOf(config: TaskerConfig['orchestration']): Partial<EngineSettings> {
  return {
    orchestrationMode: config.orchestration_mode,
    readinessMode: config.readiness_mode,
    fallbackPollIntervalMs: config.fallback_poll_interval_ms,
    fallbackMinAgeSeconds: config.fallback_min_age_seconds,
    messageBatchSize: config.message_batch_size,
    readinessPollIntervalMs: config.readiness_poll_interval_ms,
    readinessBatchSize: config.readiness_batch_size,
    stepEnqueueBatchSize: config.step_enqueue_batch_size,
    createBatchSize: config.create_batch_size,
    createBatchesInFlight: config.create_batches_in_flight,
    createQueueCapacity: config.create_queue_capacity,
    requestVisibilityTimeoutSeconds: config.request_visibility_timeout_seconds,
    resultRetryDelaySeconds: config.result_retry_delay_seconds,
    maxRetryTimers: config.max_retry_timers,
    shutdownTimeoutMs: config.shutdown_timeout_ms,
    queues: { stepResults: config.queues.step_results, taskRequests: config.queues.task_requests },
  };
}

async function openDatabase(config: TaskerConfig['database'], logger: Logger): Promise<Database> {
  if (config.url !== '') {
    const db = createPostgresDatabase({
      url: config.url,
      pool: {
        max: config.pool.max_connections,
        min: config.pool.min_connections,
        idleTimeoutMs: config.pool.idle_timeout_ms,
        connectTimeoutMs: config.pool.connect_timeout_ms,
      },
      statementTimeoutMs: config.statement_timeout_ms,
      idleInTransactionTimeoutMs: config.idle_in_transaction_timeout_ms,
      applicationName: config.application_name,
    });
    logger.info({ backend: 'postgres' }, 'database opened');
    return db;
  }
  const dataDir = resolve(config.data_dir);
  await mkdir(dataDir, { recursive: true });
  const db = await createPgliteDatabase({ dataDir });
  logger.info({ backend: 'pglite', data_dir: config.data_dir }, 'database opened');
  return db;
}

function isHandlerClass(value: unknown): value is StepHandlerClass & { handlerName: string } {
  return (
    typeof value === 'function' &&
    value.prototype instanceof StepHandler &&
    'handlerName' in value &&
    typeof value.handlerName === 'string'
  );
}

/** `path#fn` calls the export `fn(registry)`; a directory or a file registers its handler classes. */
async function loadHandlerModule(registry: HandlerRegistry, entry: string): Promise<void> {
  const hash = entry.lastIndexOf('#');
  const path = resolve(hash === -1 ? entry : entry.slice(0, hash));
  if (hash === -1 && (await stat(path)).isDirectory()) {
    await registry.loadDirectory(path);
    return;
  }
  const module: Record<string, unknown> = await import(pathToFileURL(path).href);
  if (hash !== -1) {
    const name = entry.slice(hash + 1);
    const register = module[name];
    if (typeof register !== 'function') {
      throw new TaskerError('INVALID_CONFIG', `worker.handler_modules: ${entry} exports no function ${name}`);
    }
    await register(registry);
    return;
  }
  for (const value of Object.values(module)) {
    if (isHandlerClass(value) && !registry.isRegistered(value.handlerName)) {
      registry.register(value.handlerName, value);
    }
  }
}

async function createWorker(
  config: TaskerConfig['worker'],
  db: Database,
  logger: Logger,
): Promise<TaskerWorker> {
  const loaded = await loadTemplates(config.template_dirs);
  if (loaded.errors.length > 0) {
    throw new TaskerError('INVALID_TEMPLATES', loaded.errors.map((error) => error.message).join('\n'));
  }
  const handlers = new HandlerRegistry();
  for (const entry of config.handler_modules) await loadHandlerModule(handlers, entry);
  logger.info(
    { templates: loaded.templates.length, handlers: handlers.handlerCount },
    'worker templates and handlers loaded',
  );
  return new TaskerWorker({
    db,
    handlers,
    templates: loaded.templates.map(({ template }) => template),
    logger,
    ...(config.worker_id === '' ? {} : { workerId: config.worker_id }),
    mode: config.mode,
    maxConcurrentHandlers: config.max_concurrent_handlers,
    defaultTimeoutMs: config.default_timeout_ms,
    leaseGraceSeconds: config.lease_grace_seconds,
    pollIntervalMs: config.poll_interval_ms,
    pollMinAgeSeconds: config.poll_min_age_seconds,
    resultQueue: config.result_queue,
    applyResultsInline: config.apply_results_inline,
    claimSuccessors: config.claim_successors,
    batchSize: config.batch_size,
    shutdownTimeoutMs: config.shutdown_timeout_ms,
    maxDeferredIds: config.max_deferred_ids,
    completionAttempts: config.completion_attempts,
    completionBackoffMs: config.completion_backoff_ms,
    restartBackoffMs: { min: config.restart_backoff_min_ms, max: config.restart_backoff_max_ms },
  });
}

/** The URL to show for where the API listens (a wildcard bind address is shown as localhost). */
function publicUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return `http://${shown.includes(':') && !shown.startsWith('[') ? `[${shown}]` : shown}:${port}`;
}

function banner(url: string, config: TaskerConfig): string {
  const body = JSON.stringify({
    namespace: 'linear_workflow_ts',
    name: 'mathematical_sequence_ts',
    version: '1.0.0',
    context: { even_number: 10 },
    initiator: 'readme',
    source_system: 'curl',
    reason: 'first task',
  });
  const database =
    config.database.url === '' ? `embedded PostgreSQL in ${config.database.data_dir}` : 'PostgreSQL';
  return [
    '',
    `Tasker is running (${database}). Ctrl-C stops it.`,
    `  API:        ${url}`,
    `  Swagger UI: ${url}/api-docs/ui`,
    '',
    'Create a linear task:',
    `  curl -s -X POST ${url}/v1/tasks -H 'content-type: application/json' -d '${body}'`,
    `Then read it with: curl -s ${url}/v1/tasks/<task_uuid>  (and …/<task_uuid>/workflow_steps)`,
    '',
  ].join('\n');
}

/** Stops what runs, in order: worker, engine, HTTP server, database. */
async function stopAll(running: Running): Promise<void> {
  await running.worker?.stop();
  await running.engine?.stop();
  await running.http?.close();
  await running.db?.close();
}

async function start(role: Role, loaded: LoadedConfig, logger: Logger, running: Running): Promise<void> {
  const { config } = loaded;
  const db = await openDatabase(config.database, logger);
  running.db = db;
  if (config.database.migrate) {
    const report = await migrate(db, TASKER_MIGRATIONS);
    logger.info(
      { applied: report.applied.length, already_applied: report.alreadyApplied.length },
      'database migrated',
    );
  }
  let url: string | undefined;
  if (role !== 'worker') {
    // results (and so decisions) are applied in SQL, by workers too: the limits live in the database
    const decisions = config.orchestration.decision_points;
    await applyOrchestrationSettings(db, {
      decisionPoints: {
        enabled: decisions.enabled,
        maxStepsPerDecision: decisions.max_steps_per_decision,
        warnStepsPerDecision: decisions.warn_threshold_steps,
        maxDecisionDepth: decisions.max_decision_depth,
        warnDecisionDepth: decisions.warn_threshold_depth,
      },
      batchProcessing: {
        enabled: config.orchestration.batch_processing.enabled,
        maxParallelBatches: config.orchestration.batch_processing.max_parallel_batches,
      },
    });
    const registry = new TemplateRegistry(db);
    const engine = new OrchestrationEngine({
      db,
      registry,
      logger,
      ...engineSettingsOf(config.orchestration),
    });
    running.engine = engine;
    await engine.start();
    const { web } = config.orchestration;
    if (web.enabled) {
      const http = buildApiServer({
        db,
        engine,
        registry,
        logger,
        config: {
          requestTimeoutMs: web.request_timeout_ms,
          bodyLimitBytes: web.body_limit_bytes,
          healthCheckTimeoutMs: web.health_check_timeout_ms,
          ...(web.cors_origins.length > 0 ? { cors: { origins: web.cors_origins } } : {}),
          configEndpoint: web.config_endpoint_enabled,
          circuitBreaker: {
            failureThreshold: web.circuit_breaker.failure_threshold,
            openDurationMs: web.circuit_breaker.open_duration_ms,
            successThreshold: web.circuit_breaker.success_threshold,
          },
          backpressure: {
            evaluationIntervalMs: web.backpressure.evaluation_interval_ms,
            queueDepthWarning: web.backpressure.queue_depth_warning,
            queueDepthCritical: web.backpressure.queue_depth_critical,
            queueDepthOverflow: web.backpressure.queue_depth_overflow,
          },
        },
        effectiveConfig: { environment: loaded.environment, ...config },
      });
      running.http = http;
      await http.listen({ host: web.host, port: web.port });
      const address = http.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : web.port;
      url = publicUrl(web.host, port);
      logger.info({ url, swagger_ui: `${url}/api-docs/ui` }, 'api listening');
    }
  }
  if (role === 'worker' || (role === 'main' && config.worker.enabled)) {
    const worker = await createWorker(config.worker, db, logger);
    running.worker = worker;
    await worker.start();
  }
  logger.info({ role, environment: loaded.environment, config_files: loaded.files }, 'tasker started');
  if (role === 'main' && url !== undefined) process.stdout.write(`${banner(url, config)}\n`);
}

/** Runs `role` until SIGINT/SIGTERM; never returns normally (the process exits). */
export async function run(role: Role): Promise<void> {
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`tasker-${role}: ${error.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const { config } = loaded;
  // logs go to stderr (synchronously, so the last lines are written before exit); stdout is for people
  const logger = pinoLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
  const running: Running = {};
  let stopping = false;
  let starting: Promise<void> = Promise.resolve();
  let firstSignalAt = 0;

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      // Ctrl-C under `npm start` arrives twice at once (from the terminal and forwarded by npm)
      if (Date.now() - firstSignalAt < DUPLICATE_SIGNAL_MS) return;
      logger.warn({ signal }, 'second signal: forced exit');
      process.exit(1);
    }
    stopping = true;
    firstSignalAt = Date.now();
    const deadlineMs =
      (role === 'orchestration' ? 0 : config.worker.shutdown_timeout_ms) +
      (role === 'worker' ? 0 : config.orchestration.shutdown_timeout_ms) +
      SHUTDOWN_GRACE_MS;
    logger.info({ signal, deadline_ms: deadlineMs }, 'stopping');
    setTimeout(() => {
      logger.error({ deadline_ms: deadlineMs }, 'shutdown deadline passed: forced exit');
      process.exit(1);
    }, deadlineMs).unref();
    // a signal during start-up stops what started once start-up has settled
    await starting.catch(() => undefined);
    try {
      await stopAll(running);
    } catch (error) {
      logger.error({ error }, 'shutdown failed');
      process.exit(1);
    }
    logger.info({ role }, 'tasker stopped');
    process.exit(0);
  };
  process.on('SIGINT', (signal) => void shutdown(signal));
  process.on('SIGTERM', (signal) => void shutdown(signal));

  try {
    starting = start(role, loaded, logger, running);
    await starting;
  } catch (error) {
    logger.error({ error }, 'start failed');
    if (!stopping) {
      stopping = true;
      await stopAll(running).catch((stopError: unknown) => logger.error({ error: stopError }, 'stop failed'));
    }
    process.exit(1);
  }
}
