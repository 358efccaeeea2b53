/**
 * The visualizer at `/ui`, an operator's console: the job machine drawn from
 * `GET /v1/machine` with live counts and transitions (the stream, or polling
 * without it), the job list with filters and bulk actions, a job inspector
 * with time travel, throughput and queue-wait charts, counts, edges and
 * workers, and a submit form (docs/console.md). Served entirely by this
 * process: the page loads nothing from elsewhere.
 *
 * Routes: `GET /` (redirects to /ui), `GET /ui`, `GET /ui/` (redirects to
 * /ui), `GET /ui/assets/:file`. Every URL the page and its redirects use is
 * relative (`ui/assets/app.js`, `docs/`, a Location of `ui`), and its script
 * calls the API under the folder the page was loaded from
 * (client/api-base.ts): behind a reverse proxy that serves the server under
 * a path prefix (and strips it), the console stays under that prefix and
 * scheme (docs/console.md).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { createUiAssets, noneMatch, type Asset, type UiAssetOptions } from './assets.js';

export { createUiAssets, type Asset, type UiAssets, type UiAssetOptions } from './assets.js';

/**
 * Only this origin: scripts, styles, fetches and the WebSocket (`connect-src
 * 'self'` covers ws:/wss: to the same host). Nothing inline, so a job payload
 * that slipped into the page as markup still could not run. Sent with the
 * page and its assets (a script's own policy would govern it if it ever ran
 * as a worker); the other security headers (nosniff, X-Frame-Options DENY,
 * Referrer-Policy no-referrer) come from helmet, on every response
 * (server/security.ts).
 */
const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

/** Not part of the REST API: kept out of the OpenAPI document. */
const hidden = { schema: { hide: true } };

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  // no-cache: the browser revalidates every time, and gets a 304 while the asset is unchanged
  // (its tag weakened by a proxy, or in a list, matches too: noneMatch).
  reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('x-content-type-options', 'nosniff').header('content-security-policy', CSP);
  if (noneMatch(request.headers['if-none-match'], asset.etag)) return reply.code(304).send();
  return reply.type(asset.contentType).send(asset.body);
}

/** Build the plugin with options (tests bundle unminified, say); `uiPlugin` uses the defaults. */
export function createUiPlugin(opts: UiAssetOptions = {}): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    const assets = createUiAssets(opts);
    const page = async (request: FastifyRequest, reply: FastifyReply) => {
      void assets.get('app.js').catch(() => undefined); // start bundling while the browser parses the page
      reply.header('referrer-policy', 'no-referrer');
      return send(request, reply, await assets.page());
    };
    // Relative Locations: `/` → `/ui`, `/ui/` → `/ui`, and `/scheduler/` → `/scheduler/ui` through a proxy's prefix.
    app.get('/', hidden, async (_request, reply) => reply.redirect('ui'));
    app.get('/ui', hidden, page);
    // The page's URLs are relative to /ui: from /ui/ they would name /ui/ui/assets/...
    app.get('/ui/', hidden, async (_request, reply) => reply.redirect('../ui'));
    app.get<{ Params: { file: string } }>('/ui/assets/:file', hidden, async (request, reply) => {
      const asset = await assets.get(request.params.file);
      if (!asset) throw new AtsError('ATS_ERR_ROUTE_NOT_FOUND', `No asset ${request.params.file.slice(0, 100)}`);
      return send(request, reply, asset);
    });
  };
}

/** The visualizer's routes; add it to `buildApp`'s `plugins`. */
export const uiPlugin: (app: FastifyInstance) => Promise<void> = createUiPlugin();
