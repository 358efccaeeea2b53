/**
 * OpenAPI 3.1 from the routes' TypeBox schemas: the document at `/docs/json`
 * (and `/docs/yaml`), swagger-ui at `/docs`. Registered before the routes, as
 * @fastify/swagger collects them through the onRoute hook.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

type Operation = { requestBody?: { required?: boolean }; [k: string]: unknown };
type Document = { paths?: Record<string, Record<string, Operation>> };

/** Routes whose schema says `'x-body-optional': true` take an optional body (fastify's swagger marks every body required). */
function markOptionalBodies<T>(doc: T): T {
  for (const path of Object.values((doc as Document).paths ?? {})) {
    for (const op of Object.values(path)) {
      if (op['x-body-optional'] && op.requestBody) op.requestBody.required = false;
      delete op['x-body-optional'];
    }
  }
  return doc;
}

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ai-task-scheduler',
        version: '1',
        description: 'Submit, inspect, cancel and redrive jobs. Every error is {code, message} with a stable ATS_ERR_* code.',
      },
      tags: [
        { name: 'jobs', description: 'Jobs and their lifecycle' },
        { name: 'meta', description: 'The job machine and counts' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
    // A shared schema (app.addSchema) is a component named by its `$id` (the default is def-N).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (d) => markOptionalBodies('openapiObject' in d ? d.openapiObject : d.swaggerObject),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
