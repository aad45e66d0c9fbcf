/**
 * The REST API of the orchestration server (reference B §2): `buildApiServer` returns a Fastify
 * instance with the task, step, template, health and metrics routes and the OpenAPI document;
 * `apiOperations` gives its circuit breaker, health evaluator and metrics registry; `pinoLogger`
 * is a `Logger` on pino with the field order of DESIGN §7; `TASK_EVENTS_CHANNEL` is the channel of
 * the task and step transition notifications behind `GET /v1/tasks/{uuid}/events`.
 */
export { CircuitBreaker } from './circuit-breaker.ts';
export type { ApiEngine } from './context.ts';
export { orderFields, pinoLogger } from './pino-logger.ts';
export { REDACTED, redactConfig } from './redact.ts';
export {
  API_DEFAULTS,
  type ApiConfig,
  type ApiServerOptions,
  apiOperations,
  buildApiServer,
} from './server.ts';
export { TASK_EVENTS_CHANNEL } from './task-events.ts';
