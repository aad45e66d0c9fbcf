/**
 * Templates (B §2.2 rows 10–11, §2.3.6): the registered templates and one template's steps. Details
 * come through the template registry (cached, validated when read); the stored configuration as a
 * whole is never exposed.
 */

import type { Static } from '@sinclair/typebox';
import { NotFoundError } from '@tasker/core';
import type { FastifyInstance } from 'fastify';
import type { CircuitBreaker } from '../circuit-breaker.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { listTemplates } from '../queries.ts';
import {
  ERROR_RESPONSES,
  TemplateDetail,
  TemplateListQuery,
  TemplateListResponse,
  TemplateParams,
} from '../schemas.ts';

export function templateRoutes(
  app: FastifyInstance,
  { db, registry }: ApiContext,
  breaker: CircuitBreaker,
): void {
  app.get<{ Querystring: Static<typeof TemplateListQuery> }>(
    '/v1/templates',
    {
      schema: {
        tags: ['templates'],
        summary: 'Registered templates and their namespaces',
        querystring: TemplateListQuery,
        response: { 200: TemplateListResponse, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const listing = await listTemplates(db, request.query.namespace ?? null);
      return { ...listing, total_count: listing.templates.length };
    },
  );

  app.get<{ Params: Static<typeof TemplateParams> }>(
    '/v1/templates/:namespace/:name/:version',
    {
      schema: {
        tags: ['templates'],
        summary: "One template's steps",
        params: TemplateParams,
        response: { 200: TemplateDetail, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { namespace, name, version } = request.params;
      let template: Awaited<ReturnType<typeof registry.get>>['template'];
      try {
        ({ template } = await breaker.execute(() => registry.get(namespace, name, version)));
      } catch (error) {
        if (error instanceof NotFoundError) {
          throw new ApiError(404, 'NOT_FOUND', `Template not found: ${namespace}/${name}/${version}`);
        }
        throw error;
      }
      return {
        name: template.name,
        namespace: template.namespace_name,
        version: template.version,
        description: template.description,
        steps: template.steps.map((step) => ({
          name: step.name,
          description: step.description,
          default_retryable: step.retry.retryable,
          default_max_attempts: step.retry.max_attempts,
          result_schema: step.result_schema,
        })),
      };
    },
  );
}
