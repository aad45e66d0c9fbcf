/**
 * Health (B §2.2 rows 21–24, §2.3.10). Public, so messages are fixed texts: a failed database
 * check never shows the driver's error (B §7.2 lists that leak of the original).
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.ts';
import { BasicHealth, DetailedHealthResponse, ReadinessResponse } from '../schemas.ts';

type Check = Static<typeof ReadinessResponse>['checks']['web_database'];

const VERSION = '0.1.0';

async function databaseCheck({ db, healthCheckTimeoutMs }: ApiContext): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), healthCheckTimeoutMs);
  });
  const query = db.query('SELECT 1').then(
    () => 'ok' as const,
    () => 'failed' as const,
  );
  const outcome = await Promise.race([query, timeout]);
  clearTimeout(timer);
  const duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
  if (outcome === 'ok') return { status: 'healthy', message: null, duration_ms };
  const message = outcome === 'timeout' ? 'Database check timed out' : 'Database check failed';
  return { status: 'unhealthy', message, duration_ms };
}

function engineCheck({ engine }: ApiContext): Check {
  const started = performance.now();
  const health = engine.health();
  const duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
  switch (health.status) {
    case 'healthy':
      return { status: 'healthy', message: null, duration_ms };
    case 'degraded':
      return {
        status: 'degraded',
        message: 'A loop restarted recently or the listener is down',
        duration_ms,
      };
    default:
      return { status: 'unhealthy', message: 'The engine is not running', duration_ms };
  }
}

export function healthRoutes(app: FastifyInstance, context: ApiContext): void {
  const now = () => new Date().toISOString();
  const tags = ['health'];

  app.get(
    '/health',
    { schema: { tags, summary: 'The server answers', response: { 200: BasicHealth } } },
    async () => ({ status: 'healthy', timestamp: now() }),
  );

  app.get(
    '/health/live',
    { schema: { tags, summary: 'Liveness', response: { 200: BasicHealth } } },
    async () => ({ status: 'alive', timestamp: now() }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags,
        summary: 'Readiness: 200 when every check is healthy, else 503 with the same body',
        response: { 200: ReadinessResponse, 503: ReadinessResponse },
      },
    },
    async (_request, reply) => {
      const checks = {
        web_database: await databaseCheck(context),
        orchestration_system: engineCheck(context),
      };
      const ready = Object.values(checks).every((check) => check.status === 'healthy');
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not_ready', timestamp: now(), checks });
    },
  );

  app.get(
    '/health/detailed',
    {
      schema: {
        tags,
        summary: 'Every check and what the engine runs (always 200)',
        response: { 200: DetailedHealthResponse },
      },
    },
    async (): Promise<Static<typeof DetailedHealthResponse>> => {
      const checks = {
        web_database: await databaseCheck(context),
        orchestration_system: engineCheck(context),
      };
      const health = context.engine.health();
      return {
        status: Object.values(checks).every((check) => check.status === 'healthy') ? 'healthy' : 'degraded',
        timestamp: now(),
        checks,
        info: {
          version: VERSION,
          processor_uuid: health.processorUuid,
          database_backend: context.db.backend,
          listener_connected: health.listenerConnected,
          // a loop's last error text is left out: it may hold SQL (AUDIT S-2)
          loops: health.loops.map((loop) => ({
            name: loop.name,
            running: loop.running,
            restarts: loop.restarts,
            last_error_at: loop.lastErrorAt?.toISOString() ?? null,
          })),
        },
      };
    },
  );
}
