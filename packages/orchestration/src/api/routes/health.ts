/**
 * Health (B §2.2 rows 21–24, §2.3.10). Public, so messages are fixed texts: a failed database
 * check never shows the driver's error (B §7.2 lists that leak of the original).
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { CircuitBreaker } from '../circuit-breaker.ts';
import type { ApiContext } from '../context.ts';
import type { HealthEvaluator } from '../health-evaluator.ts';
import { BasicHealth, DetailedHealthResponse, ReadinessResponse } from '../schemas.ts';

/** The breaker and the evaluator the health routes report on. */
export interface HealthSources {
  breaker: CircuitBreaker;
  evaluator: HealthEvaluator;
}

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

/** Closed or half-open (trials allowed) is healthy; open is degraded (B §2.3.10). */
function breakerCheck({ breaker }: HealthSources): Check {
  const state = breaker.state;
  if (state === 'open')
    return { status: 'degraded', message: 'Database circuit breaker is open', duration_ms: 0 };
  return {
    status: 'healthy',
    message: state === 'half_open' ? 'Circuit breaker half-open' : null,
    duration_ms: 0,
  };
}

/** The evaluator's last depth tier: warning is degraded, critical and overflow unhealthy. */
function queueDepthCheck({ evaluator }: HealthSources): Check {
  const tier = evaluator.decision().queue_depth_tier;
  switch (tier) {
    case 'normal':
      return { status: 'healthy', message: null, duration_ms: 0 };
    case 'warning':
      return { status: 'degraded', message: 'An orchestration queue is at warning depth', duration_ms: 0 };
    case 'critical':
    case 'overflow':
      return { status: 'unhealthy', message: `An orchestration queue is at ${tier} depth`, duration_ms: 0 };
    default:
      return { status: 'unknown', message: 'Queue depths not measured yet', duration_ms: 0 };
  }
}

export function healthRoutes(app: FastifyInstance, context: ApiContext, sources: HealthSources): void {
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
        circuit_breaker: breakerCheck(sources),
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
        circuit_breaker: breakerCheck(sources),
        queue_depth: queueDepthCheck(sources),
      };
      const health = context.engine.health();
      const decision = sources.evaluator.decision();
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
          circuit_breaker_state: sources.breaker.state,
          backpressure: {
            accept_tasks: decision.accept_tasks,
            retry_after_seconds: decision.retry_after_seconds,
            reasons: decision.reasons,
            warnings: decision.warnings,
            evaluated_at: decision.evaluated_at,
          },
          loops: [...health.loops, ...sources.evaluator.loops()].map((loop) => ({
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
