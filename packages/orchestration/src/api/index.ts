/**
 * The REST API of the orchestration server (reference B §2): `buildApiServer` returns a Fastify
 * instance with the task, step, template and health routes and the OpenAPI document.
 */
export type { ApiEngine } from './context.ts';
export { API_DEFAULTS, type ApiConfig, type ApiServerOptions, buildApiServer } from './server.ts';
