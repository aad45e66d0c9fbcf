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
 */
import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { type Logger, SILENT_LOGGER, TaskerError, type TemplateRegistry } from '@tasker/core';
import type { Database } from '@tasker/db';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ApiContext, ApiEngine } from './context.ts';
import { mapError } from './errors.ts';
import { healthRoutes } from './routes/health.ts';
import { taskRoutes } from './routes/tasks.ts';
import { templateRoutes } from './routes/templates.ts';

export interface ApiConfig {
  /** A request that has no response after this long gets 408. @default 30000 */
  requestTimeoutMs?: number;
  /** A larger request body gets 413. @default 1048576 (1 MiB) */
  bodyLimitBytes?: number;
  /** Cross-origin requests are allowed from these origins only; none (the default) turns CORS off. */
  cors?: { origins: readonly string[] };
  /** Bound on the readiness checks' database query. @default 1000 */
  healthCheckTimeoutMs?: number;
}

export const API_DEFAULTS = {
  requestTimeoutMs: 30_000,
  bodyLimitBytes: 1_048_576,
  healthCheckTimeoutMs: 1_000,
} as const satisfies ApiConfig;

export interface ApiServerOptions {
  db: Database;
  engine: ApiEngine;
  registry: TemplateRegistry;
  /** One line per request (method, route, status, duration) and the detail of server errors. */
  logger?: Logger;
  config?: ApiConfig;
}

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

  /** The envelope for what the router refuses before any route runs (bad URL, long parameter). */
  const frameworkErrors = (error: Error, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = mapError(error, request.id);
    return reply.code(mapped.status).header('x-request-id', request.id).send(mapped.body);
  };
  const app = Fastify({
    logger: false,
    frameworkErrors,
    bodyLimit,
    handlerTimeout: requestTimeoutMs,
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

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    logger.info(
      {
        request_id: request.id,
        method: request.method,
        route: request.routeOptions.url ?? null,
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 1000) / 1000,
      },
      'request',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const mapped = mapError(error, request.id);
    if (mapped.server) {
      logger.error(
        { request_id: request.id, method: request.method, route: request.routeOptions.url ?? null, error },
        'request failed',
      );
    }
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

  const context: ApiContext = { db, engine, registry, healthCheckTimeoutMs };
  void app.register(async (scope) => {
    taskRoutes(scope, context);
    templateRoutes(scope, context);
    healthRoutes(scope, context);
    scope.get('/api-docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });
  return app;
}
