/**
 * Operations routes (B §2.2 rows 20 and 25): `GET /metrics` (Prometheus text, always) and
 * `GET /config` (only when enabled; otherwise not registered, so 404). Neither is in the OpenAPI
 * document: they are for operators, not API clients.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { redactConfig } from '../redact.ts';

export function metricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(text);
  });
}

/** `effective` is read per request (so later changes show) and redacted every time. */
export function configRoute(app: FastifyInstance, effective: () => Record<string, unknown>): void {
  app.get('/config', { schema: { hide: true } }, async (_request, reply) => {
    return reply.header('cache-control', 'no-store').send(redactConfig(effective()));
  });
}
