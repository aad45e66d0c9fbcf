/**
 * The REST API server (B §2): a Fastify instance with the task, step, template and health routes,
 * the OpenAPI document generated from the route schemas and Swagger UI. It is returned not
 * listening; the caller decides where (`listen`) or tests it in-process (`inject`).
 *
 * Request lifecycle: request id → CORS (only when origins are configured, AUDIT O-11) → routing →
 * [authentication will plug in here, in an onRequest hook, before the body is read] → body parsing
 * (JSON only, `bodyLimitBytes`) → schema validation of params, query and body (AUDIT O-4) → handler
 * (bounded by `requestTimeoutMs`) → serialization from the response schema. Every error on the way
 * becomes the JSON envelope of `errors.ts`.
 *
 * Operations: one API database circuit breaker guards every database call of the routes; a
 * supervised health evaluator (started when the server is ready, stopped when it closes) caches
 * the backpressure decision that `POST /v1/tasks` consults before reading its body; `/metrics`
 * serves the server's own prom-client registry; `/config` is registered only when enabled.
 */
import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { type Logger, SILENT_LOGGER, TaskerError, type TemplateRegistry } from '@tasker/core';
import type { Database } from '@tasker/db';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { CircuitBreaker, type CircuitBreakerConfig, guardedDatabase } from './circuit-breaker.ts';
import type { ApiContext, ApiEngine } from './context.ts';
import { ApiError, mapError } from './errors.ts';
import { type BackpressureConfig, type BackpressureDecision, HealthEvaluator } from './health-evaluator.ts';
import { createApiMetrics } from './metrics.ts';
import { EVENTS_ROUTE_URL, eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { configRoute, metricsRoute } from './routes/operations.ts';
import { taskRoutes } from './routes/tasks.ts';
import { templateRoutes } from './routes/templates.ts';

export interface ApiConfig {
  /** A request that has no response after this long gets 408. @default 30000 */
  requestTimeoutMs?: number;
  /** A larger request body gets 413. @default 1048576 (1 MiB) */
  bodyLimitBytes?: number;
  /** Cross-origin requests are allowed from these origins only; none (the default) turns CORS off. */
  cors?: { origins: readonly string[] };
  /** Bound on the readiness checks' and the health evaluator's database queries. @default 1000 */
  healthCheckTimeoutMs?: number;
  /** The API database circuit breaker (B §5.3). */
  circuitBreaker?: CircuitBreakerConfig;
  /** The health evaluator and the queue depth thresholds of task-creation backpressure (B §5.1). */
  backpressure?: BackpressureConfig;
  /** Registers `GET /config` (the effective configuration, secrets redacted). @default false */
  configEndpoint?: boolean;
}

export const API_DEFAULTS = {
  requestTimeoutMs: 30_000,
  bodyLimitBytes: 1_048_576,
  healthCheckTimeoutMs: 1_000,
  configEndpoint: false,
} as const satisfies ApiConfig;

export interface ApiServerOptions {
  db: Database;
  engine: ApiEngine;
  registry: TemplateRegistry;
  /**
   * One line per request (method, route, status, duration) and the detail of server errors. A pino
   * instance fits; `pinoLogger(level)` adds the field order of DESIGN §7.
   */
  logger?: Logger;
  config?: ApiConfig;
  /**
   * More configuration for `GET /config` (e.g. the whole loaded TOML), shown under `process` and
   * redacted like the rest.
   */
  effectiveConfig?: Record<string, unknown>;
}

/** The operational parts of a built server, for the process that runs it and for tests. */
export interface ApiOperations {
  breaker: CircuitBreaker;
  evaluator: HealthEvaluator;
  metrics: Registry;
}

const operations = new WeakMap<FastifyInstance, ApiOperations>();

/** The breaker, health evaluator and metrics registry of a server built by `buildApiServer`. */
export function apiOperations(app: FastifyInstance): ApiOperations {
  const found = operations.get(app);
  if (found === undefined) throw new TaskerError('INVALID_STATE', 'not a server built by buildApiServer');
  return found;
}

const VERSION = '0.1.0';

/** The text of a backpressure refusal. */
function backpressureError(decision: BackpressureDecision): ApiError {
  return new ApiError(
    503,
    'SERVICE_UNAVAILABLE',
    `Service under backpressure: ${decision.reasons.join('; ') || 'overloaded'}`,
    { retryAfterSeconds: decision.retry_after_seconds ?? 30 },
  );
}

/** Retry-After of a creation refused because the intake queue was full: it drains in moments. */
const INTAKE_RETRY_AFTER_SECONDS = 5;

/** An inbound `x-request-id` is kept when it looks like an id; anything else is replaced. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved <= 0) {
    throw new TaskerError('INVALID_CONFIG', `api.${name} must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

function corsOrigins(config: ApiConfig['cors']): string[] {
  const origins = [...(config?.origins ?? [])];
  for (const origin of origins) {
    if (typeof origin !== 'string' || !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new TaskerError(
        'INVALID_CONFIG',
        `api.cors.origins must hold origins like https://example.com, got ${JSON.stringify(origin)}`,
      );
    }
  }
  return origins;
}

/** Route patterns (`/v1/tasks/:uuid`) as expressions over paths, to tell 405 from 404. */
function patternOf(url: string): RegExp {
  const escaped = url
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) return '[^/]+';
      if (part === '*') return '.*';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${escaped}$`);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Two validators: bodies are JSON and must have the declared types (no coercion: `"5"` is not a
 * priority); params and query strings are text, so their numbers and booleans are coerced.
 */
function validators() {
  const common = {
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    allowUnionTypes: true,
  } as const;
  const body = new Ajv({ ...common, coerceTypes: false });
  const text = new Ajv({ ...common, coerceTypes: 'array' });
  for (const ajv of [body, text]) ajv.addFormat('date-time', RFC3339);
  return (httpPart: string | undefined) => (httpPart === 'body' ? body : text);
}

/** Builds the server; nothing listens until the caller says so. */
export function buildApiServer(options: ApiServerOptions): FastifyInstance {
  const { db, engine, registry } = options;
  const logger = options.logger ?? SILENT_LOGGER;
  const config = options.config ?? {};
  const requestTimeoutMs = positiveInteger(
    'requestTimeoutMs',
    config.requestTimeoutMs,
    API_DEFAULTS.requestTimeoutMs,
  );
  const bodyLimit = positiveInteger('bodyLimitBytes', config.bodyLimitBytes, API_DEFAULTS.bodyLimitBytes);
  const healthCheckTimeoutMs = positiveInteger(
    'healthCheckTimeoutMs',
    config.healthCheckTimeoutMs,
    API_DEFAULTS.healthCheckTimeoutMs,
  );
  const origins = corsOrigins(config.cors);

  const breaker = new CircuitBreaker({
    ...config.circuitBreaker,
    onStateChange: (from, to) => {
      const fields = { breaker: 'api_database', from_state: from, to_state: to };
      if (to === 'open') logger.warn(fields, 'Circuit breaker opened');
      else logger.info(fields, 'Circuit breaker state changed');
    },
  });
  const evaluator = new HealthEvaluator({
    db,
    breaker,
    engine,
    checkTimeoutMs: healthCheckTimeoutMs,
    logger,
    ...(config.backpressure ? { config: config.backpressure } : {}),
  });
  const metrics = createApiMetrics({ engine, breaker, evaluator, version: VERSION });
  const shed = (): ApiError | undefined => {
    const decision = evaluator.decision();
    if (decision.accept_tasks) return undefined;
    const breakerOpen = decision.reasons.some((reason) => reason.startsWith('Circuit breaker'));
    metrics.rejected('/v1/tasks', breakerOpen ? 'circuit_breaker_open' : 'backpressure');
    return backpressureError(decision);
  };
  // the engine's intake queue at capacity (create-batcher.ts): refused before anything was written
  const overloaded = (error: unknown): ApiError | undefined => {
    if (!(error instanceof TaskerError && error.code === 'INTAKE_OVERLOADED')) return undefined;
    metrics.rejected('/v1/tasks', 'intake_queue_full');
    return new ApiError(
      503,
      'SERVICE_UNAVAILABLE',
      'Service under backpressure: the task intake queue is full',
      {
        retryAfterSeconds: INTAKE_RETRY_AFTER_SECONDS,
      },
    );
  };
  const effectiveConfig = () => ({
    api: {
      requestTimeoutMs,
      bodyLimitBytes: bodyLimit,
      healthCheckTimeoutMs,
      cors: { origins },
      circuitBreaker: breaker.config,
      backpressure: evaluator.config,
      configEndpoint: true,
    },
    engine: 'settings' in engine ? engine.settings : null,
    database: { backend: db.backend },
    ...(options.effectiveConfig ? { process: options.effectiveConfig } : {}),
  });

  /** The envelope for what the router refuses before any route runs (bad URL, long parameter). */
  const frameworkErrors = (error: Error, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = mapError(error, request.id);
    return reply.code(mapped.status).header('x-request-id', request.id).send(mapped.body);
  };
  const app = Fastify({
    logger: false,
    frameworkErrors,
    bodyLimit,
    requestIdHeader: false,
    genReqId: (request) => {
      const inbound = request.headers['x-request-id'];
      return typeof inbound === 'string' && REQUEST_ID.test(inbound) ? inbound : randomUUID();
    },
  });
  const validatorFor = validators();
  app.setValidatorCompiler(({ schema, httpPart }) => validatorFor(httpPart).compile(schema));

  // JSON is the only request media type; without this a text/plain body would reach validation
  app.removeContentTypeParser('text/plain');

  const routes: { method: string; pattern: RegExp }[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, pattern: patternOf(route.url) });
  });

  // Every route is bounded by the request timeout (408) except the event stream, which lasts as long
  // as its task runs. A plain timer per request: Fastify's `handlerTimeout` does the same with an
  // AbortController that it aborts when every request closes, and the DOMException of that abort
  // cost about a tenth of this process's CPU under load.
  const deadlines = new WeakMap<FastifyRequest, NodeJS.Timeout>();
  const clearDeadline = async (request: FastifyRequest) => {
    clearTimeout(deadlines.get(request));
  };
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url === EVENTS_ROUTE_URL) return;
    const timer = setTimeout(() => {
      if (!reply.sent && !request.raw.destroyed) reply.send(new ApiError(408, 'TIMEOUT', 'Request timeout'));
    }, requestTimeoutMs);
    timer.unref();
    deadlines.set(request, timer);
  });
  app.addHook('onResponse', clearDeadline);
  app.addHook('onRequestAbort', clearDeadline);

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? null;
    const durationMs = Math.round(reply.elapsedTime * 1000) / 1000;
    // the route pattern, never the URL: unmatched requests share one label value
    metrics.observeRequest(request.method, route ?? 'unmatched', reply.statusCode, durationMs);
    logger.info(
      {
        request_id: request.id,
        method: request.method,
        route,
        status: reply.statusCode,
        duration_ms: durationMs,
      },
      'request',
    );
  });

  // the first decision is there before the first request; then the supervised loop keeps it fresh
  app.addHook('onReady', async () => {
    try {
      await evaluator.evaluate();
    } catch (error) {
      logger.error({ loop: 'health-evaluator', error }, 'Health evaluation failed');
    }
    evaluator.start();
  });
  app.addHook('onClose', async () => {
    await evaluator.stop();
  });

  app.setErrorHandler((error, request, reply) => {
    const mapped = mapError(error, request.id);
    if (mapped.server) {
      logger.error(
        { request_id: request.id, method: request.method, route: request.routeOptions.url ?? null, error },
        'request failed',
      );
    }
    const retryAfter = mapped.body.error.retry_after_seconds;
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    return reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = [
      ...new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method)),
    ];
    // a path that matches a route of this very method was refused by the router for another reason
    // (e.g. a parameter over maxParamLength): not a method problem
    const sameMethod =
      allowed.includes(request.method) || (request.method === 'HEAD' && allowed.includes('GET'));
    if (allowed.length > 0 && !sameMethod) {
      return reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send({
          error: { code: 'METHOD_NOT_ALLOWED', message: `Method ${request.method} is not allowed here` },
        });
    }
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'Route not found' } });
  });

  if (origins.length > 0) void app.register(cors, { origin: origins });
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tasker orchestration API',
        version: '0.1.0',
        description: 'Tasks, steps, templates and health. Every error is {"error":{"code","message"}}.',
      },
      tags: [
        { name: 'tasks', description: 'Task intake and state' },
        { name: 'steps', description: "A task's workflow steps" },
        { name: 'templates', description: 'Registered task templates' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
  });
  void app.register(swaggerUi, { routePrefix: '/api-docs/ui' });

  // the routes' database calls go through the breaker; health checks probe the database itself
  const guarded: ApiContext = { db: guardedDatabase(db, breaker), engine, registry, healthCheckTimeoutMs };
  const direct: ApiContext = { db, engine, registry, healthCheckTimeoutMs };
  void app.register(async (scope) => {
    taskRoutes(scope, guarded, { breaker, shed, overloaded });
    eventRoutes(scope, guarded, logger);
    templateRoutes(scope, guarded, breaker);
    healthRoutes(scope, direct, { breaker, evaluator });
    metricsRoute(scope, metrics.registry);
    if (config.configEndpoint === true) configRoute(scope, effectiveConfig);
    scope.get('/api-docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });
  operations.set(app, { breaker, evaluator, metrics: metrics.registry });
  return app;
}
