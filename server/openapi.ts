/**
 * OpenAPI 3.1 from the routes' TypeBox schemas: the document at `/docs/json`
 * (and `/docs/yaml`), swagger-ui at `/docs`. Registered before the routes, as
 * @fastify/swagger collects them through the onRoute hook. The schemas the app
 * registers with `addSchema` (see `SHARED_SCHEMAS` in schemas.ts) are
 * `components.schemas`, named by their `$id`; the routes `$ref` them.
 * `redocly.yaml` lints the document (server/openapi.test.ts).
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

type Operation = { requestBody?: { required?: boolean }; [k: string]: unknown };
type Schema = {
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  oneOf?: Array<{ $ref?: string }>;
  properties?: Record<string, { enum?: unknown[]; const?: unknown }>;
};
type Document = { paths?: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } };

const COMPONENT = '#/components/schemas/';

/** Routes whose schema says `'x-body-optional': true` take an optional body (fastify's swagger marks every body required). */
function markOptionalBodies(doc: Document): void {
  for (const path of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(path)) {
      if (op['x-body-optional'] && op.requestBody) op.requestBody.required = false;
      delete op['x-body-optional'];
    }
  }
}

/**
 * The `discriminator.mapping` of each named `oneOf` whose branches are named
 * schemas fixing the discriminating property to one value: without it, OpenAPI
 * tools take the schema's name (`ExponentialBackoff`) as the value. Added here,
 * not in the schema, because Ajv (which validates with the same schema)
 * refuses `mapping`.
 */
function addDiscriminatorMappings(doc: Document): void {
  const schemas = doc.components?.schemas ?? {};
  for (const schema of Object.values(schemas)) {
    const d = schema.discriminator;
    if (!d || d.mapping || !schema.oneOf) continue;
    const mapping: Record<string, string> = {};
    for (const branch of schema.oneOf) {
      const name = branch.$ref?.startsWith(COMPONENT) ? branch.$ref.slice(COMPONENT.length) : undefined;
      const prop = name ? schemas[name]?.properties?.[d.propertyName] : undefined;
      const values = prop?.enum ?? (prop && 'const' in prop ? [prop.const] : []);
      if (!name || values.length !== 1 || typeof values[0] !== 'string') {
        throw new Error(`OpenAPI: a branch of a discriminated oneOf does not fix ${d.propertyName} to one value`);
      }
      mapping[values[0]] = branch.$ref!;
    }
    d.mapping = mapping;
  }
}

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ai-task-scheduler',
        version: '1',
        description:
          'Submit, inspect, cancel, redrive and delete jobs; submit them on cron schedules; read the job machine and the counts. ' +
          'Every error is {code, message} with a stable ATS_ERR_* code.',
      },
      // The server that serves this document (relative: the same origin).
      servers: [{ url: '/', description: 'This server' }],
      // The API has no authentication of its own: an empty list says so (deploy it behind a gateway that adds one).
      security: [],
      tags: [
        { name: 'jobs', description: 'Jobs and their lifecycle' },
        { name: 'schedules', description: 'Cron schedules: jobs submitted at the ticks of a cron expression' },
        { name: 'meta', description: 'The job machine and counts' },
        { name: 'workers', description: 'The worker processes: what each handles and whether it is live' },
        { name: 'limits', description: 'Concurrency and rate limits: how many jobs of a concurrency key run at once, and start per interval' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
    // A shared schema (app.addSchema) is a component named by its `$id` (the default is def-N).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (d) => {
      const doc = 'openapiObject' in d ? d.openapiObject : d.swaggerObject;
      markOptionalBodies(doc as Document);
      addDiscriminatorMappings(doc as Document);
      return doc;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
