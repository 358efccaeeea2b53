/**
 * OpenAPI 3.1 from the routes' TypeBox schemas: the document at `/docs/json`
 * (and `/docs/yaml`), swagger-ui at `/docs`. Registered before the routes, as
 * @fastify/swagger collects them through the onRoute hook. The schemas the app
 * registers with `addSchema` (see `SHARED_SCHEMAS` in schemas.ts) are
 * `components.schemas`, named by their `$id`; the routes `$ref` them.
 * `redocly.yaml` lints the document (server/openapi.test.ts).
 */
import { createHash } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

type Header = { required?: boolean; description?: string; schema?: unknown; $ref?: string };
type Response = { headers?: Record<string, Header>; [k: string]: unknown };
type Operation = { requestBody?: { required?: boolean }; responses?: Record<string, Response>; [k: string]: unknown };
type Schema = {
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  oneOf?: Array<{ $ref?: string }>;
  properties?: Record<string, { enum?: unknown[]; const?: unknown }>;
};
type Document = { paths?: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema>; headers?: Record<string, Header> } };

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
 * The response headers the guards and the error handler send, as `components.headers`: the
 * error handler answers every 503 with `Retry-After` (server/error-handler.ts), every 429 has
 * one (server/security.ts, server/auth.ts), every 401 `WWW-Authenticate` (server/auth.ts).
 */
const GUARD_HEADERS: Record<string, { statuses: string[]; header: Header }> = {
  'Retry-After': {
    statuses: ['429', '503'],
    header: { required: true, description: 'Seconds to wait before sending the request again', schema: { type: 'integer', minimum: 0 } },
  },
  'WWW-Authenticate': {
    statuses: ['401'],
    header: { required: true, description: 'The scheme to authenticate with: `Bearer realm="ats"`', schema: { type: 'string' } },
  },
};

/**
 * Each response's headers: those of GUARD_HEADERS on their statuses (by `$ref`), and those a
 * route declares (`withLocation`, server/schemas.ts), which it always sends: required.
 */
function addResponseHeaders(doc: Document): void {
  const components = (doc.components ??= {});
  const headers = (components.headers ??= {});
  for (const [name, { header }] of Object.entries(GUARD_HEADERS)) headers[name] = header;
  for (const path of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(path)) {
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        for (const h of Object.values(response.headers ?? {})) h.required = true;
        for (const [name, { statuses }] of Object.entries(GUARD_HEADERS)) {
          if (statuses.includes(status)) response.headers = { ...response.headers, [name]: { $ref: `#/components/headers/${name}` } };
        }
      }
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

/**
 * The one inline style swagger-ui's bundle renders: the `<style>` inside its
 * inline SVG logo in the top bar. Allowed by its hash, so no other inline
 * style is (a newer swagger-ui with another logo only loses the logo's colours).
 */
const SWAGGER_LOGO_STYLE = '.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}';

/**
 * swagger-ui's policy, on every response under /docs (swagger-ui sets it
 * itself with `staticCSP`, over helmet's policy of the JSON API). Its page
 * loads its scripts and styles from /docs/static and runs no inline script;
 * its logo is a data: URL; "Try it out" calls this origin. Nothing else is
 * allowed: no framing, no other origin (not even swagger-ui's own default
 * of fonts and styles from any https: origin). Checked in Chromium: the page
 * renders and "Try it out" works without a violation.
 */
export const DOCS_CSP = [
  "default-src 'self'", "script-src 'self'", "script-src-attr 'none'",
  `style-src 'self' 'sha256-${createHash('sha256').update(SWAGGER_LOGO_STYLE).digest('base64')}'`, "img-src 'self' data:", "font-src 'self' data:",
  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

/** A request path with its percent-escapes decoded; as it came if one is malformed (the router refuses that path anyway). */
function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
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
          'Every error is {code, message} with a stable ATS_ERR_* code. A request body is JSON (application/json), UTF-8 and uncompressed: ' +
          'another type, a charset other than UTF-8 or a Content-Encoding other than identity is a 415 ATS_ERR_UNSUPPORTED_MEDIA_TYPE, bytes that are not UTF-8 a 400 ATS_ERR_MALFORMED_JSON. ' +
          'A body is at most 1 MiB by default (ATS_BODY_LIMIT_BYTES; POST /v1/jobs/batch 16 MiB, ATS_BATCH_BODY_LIMIT_BYTES): a larger one is a 413 ' +
          'ATS_ERR_PAYLOAD_TOO_LARGE; one that goes silent for ATS_HTTP_BODY_TIMEOUT_MS (10 s by default) a 408 ATS_ERR_REQUEST_TIMEOUT, and its connection is closed. A key __proto__, or constructor holding prototype, anywhere in a body is a 400 ATS_ERR_VALIDATION. ' +
          'So is an integer (no fraction, no exponent) anywhere in a body that a JSON number would not give back as written, as most past ±9007199254740991 (2^53 − 1): 9007199254740993 would be stored as 9007199254740992. Send such a value as a string. ' +
          'An integer in a query string is decimal digits (limit=16, not 0x10, 1e2, +16 or 16.0, nor with spaces): anything else is a 400 ATS_ERR_VALIDATION naming the parameter. ' +
          'A path no operation here serves is a 404 ATS_ERR_ROUTE_NOT_FOUND; a method a path does not take a 405 ATS_ERR_METHOD_NOT_ALLOWED, ' +
          'its Allow header listing the methods the path takes (HEAD wherever GET is). ' +
          'An Upgrade request on any route but the WebSocket stream (GET /v1/stream, described in docs/asyncapi.yaml, not here) is a 400 ATS_ERR_VALIDATION, its connection then closed. ' +
          'An Idempotency-Key header is read only by the operations that declare it (POST /v1/jobs, POST /v1/workflows/{id}/events): ' +
          'any other write operation refuses one with a 400 ATS_ERR_VALIDATION rather than do a request sent again twice.',
      },
      // The server that serves this document, relative to where it is served (/docs/json, /docs/yaml): the root of
      // its origin, or the path prefix a reverse proxy serves the server under, which "Try it out" then keeps.
      servers: [{ url: '..', description: 'This server' }],
      // Every route takes an API key (server/auth.ts) unless it says `security: []` (health); whether one is required depends on ATS_AUTH.
      security: [{ apiKey: [] }],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http', scheme: 'bearer',
            description: 'An API key (`ats keys create`) as `Authorization: Bearer <key>`. Without one: 401 ATS_ERR_UNAUTHORIZED; without the scope the route needs: 403 ATS_ERR_FORBIDDEN (docs/security.md). A server on loopback with no key at all (or ATS_AUTH=off) is open.',
          },
        },
      },
      tags: [
        { name: 'jobs', description: 'Jobs and their lifecycle' },
        { name: 'schedules', description: 'Cron schedules: jobs submitted at the ticks of a cron expression' },
        { name: 'workflows', description: 'Workflow instances: XState machines whose invocations run as jobs, started, signalled and cancelled' },
        { name: 'meta', description: 'The job machine and counts' },
        { name: 'workers', description: 'The worker processes: what each handles and whether it is live' },
        { name: 'limits', description: 'Concurrency and rate limits: how many jobs of a concurrency key run at once, and start per interval' },
        { name: 'keys', description: 'API keys of the caller\'s tenant: create, list, revoke (admin scope); the caller\'s own key and scopes (read scope)' },
        { name: 'audit', description: 'What operators did, and with which key (admin scope)' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
    // The paths are the routes' own: nothing to strip (a relative server URL is no base path to strip either).
    stripBasePath: false,
    // A shared schema (app.addSchema) is a component named by its `$id` (the default is def-N).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (d) => {
      const doc = 'openapiObject' in d ? d.openapiObject : d.swaggerObject;
      markOptionalBodies(doc as Document);
      addDiscriminatorMappings(doc as Document);
      addResponseHeaders(doc as Document);
      return doc;
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs', staticCSP: DOCS_CSP,
    // swagger-ui's page names its files by absolute paths (/docs/static/...) when asked for as /docs, by relative ones
    // (./static/...) as /docs/, and only without a query (its check reads the whole URL, and its script appends to
    // it): /docs, with a query or not, redirects to docs/, and /docs/ with a query to ./ (relative both: behind a
    // proxy's path prefix the page stays in it). swagger-ui's own redirect of /docs/static/index.html names /docs/ by
    // its absolute path (and, with a query, itself again): answered here by ../, relative, the query dropped.
    uiHooks: {
      onRequest: (request, reply, done) => {
        const q = request.url.indexOf('?');
        const path = q === -1 ? request.url : request.url.slice(0, q);
        if (path === '/docs') void reply.redirect('docs/');
        else if (path === '/docs/' && q !== -1) void reply.redirect('./');
        // Decoded, as the router matches it: /docs/static/%69ndex.html reaches swagger-ui's redirect too.
        else if (decodedPath(path) === '/docs/static/index.html') void reply.redirect('../');
        else done();
      },
    },
  });
}
