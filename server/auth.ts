/**
 * Authentication and scopes. An `onRequest` hook gives every request its
 * `principal` (engine/auth.ts) before routing reaches a handler, and refuses
 * it when the route's scope is not among the key's: 401 without a working
 * key, 403 with a key that lacks the scope (it reveals nothing about any
 * job: no handler has run). Which scope each route needs is one table,
 * `ROUTE_SCOPES`; a route not in it needs `admin` (or the scope its plugin
 * declares in `config.scope`), so a new route is never open by accident.
 *
 * The key travels as `Authorization: Bearer <key>`. Browsers cannot set that
 * header on a WebSocket, so the stream also takes it as a subprotocol
 * `ats.key.<key>` offered beside `ats.v1` (never from the query string, which
 * lands in access logs).
 *
 * Keys are read by id and cached for `KEY_CACHE_MS`: a revoked key stops
 * working on every api instance within that time, and at once on the
 * instance that revoked it (`KeyCaches`). So does the count of keys that
 * holds `auto` open: the first key made ends it on every instance within
 * that time, at once on the one that made it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  bearerOf, keyIdOf, keyMatches, OPEN_PRINCIPAL, principalOf, type Principal, type Scope, type StoredApiKey,
} from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import type { Clock, KeyStore } from '../engine/ports.js';
import { DEFAULT_SECURITY, type AppDeps, type AuthDeps } from './deps.js';
import { addressHolderOf, securityOptionsOf } from './security.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who makes the request: set by the auth hook before any handler runs. */
    principal: Principal;
  }
  interface FastifyInstance {
    /** This instance's key caches (the auth hook's, the stream's, the workflow waits'): a revoke here drops the key from all. */
    atsKeyCaches: KeyCaches;
  }
}

/** Open to anyone who can reach the port: says nothing about jobs or tenants. */
export const PUBLIC = 'public';
export type RouteAccess = Scope | typeof PUBLIC;

/**
 * The scope each route needs, by `METHOD url` as registered. Reading
 * schedules and limits is `read`; changing them, keys and the audit log is
 * `admin`; cancel, redrive and delete are `operate`. Starting and signalling
 * a workflow instance is `submit` (as submitting a job), cancelling and deleting it `operate`.
 * A key's own scopes (`GET /v1/keys/self`) are `read`, what the console needs.
 */
export const ROUTE_SCOPES: ReadonlyMap<string, RouteAccess> = new Map<string, RouteAccess>([
  ['POST /v1/jobs', 'submit'],
  ['POST /v1/jobs/batch', 'submit'],
  ['GET /v1/jobs', 'read'],
  ['GET /v1/jobs/:id', 'read'],
  ['POST /v1/jobs/:id/cancel', 'operate'],
  ['POST /v1/jobs/:id/redrive', 'operate'],
  ['DELETE /v1/jobs/:id', 'operate'],
  ['GET /v1/jobs/:id/verify', 'read'],
  ['POST /v1/workflows', 'submit'],
  ['GET /v1/workflows', 'read'],
  ['GET /v1/workflows/:id', 'read'],
  ['GET /v1/workflows/:id/events', 'read'],
  ['POST /v1/workflows/:id/events', 'submit'],
  ['POST /v1/workflows/:id/cancel', 'operate'],
  ['DELETE /v1/workflows/:id', 'operate'],
  ['GET /v1/workflows/:id/verify', 'read'],
  ['GET /v1/workflows/:id/wait', 'read'],
  ['GET /v1/workflows/:id/graph', 'read'],
  ['GET /v1/stats', 'read'],
  ['GET /v1/stats/edges', 'read'],
  ['GET /v1/stats/outbox', 'read'],
  ['GET /v1/machine', 'read'],
  ['GET /v1/insights', 'read'],
  ['GET /v1/workers', 'read'],
  ['GET /v1/stream', 'read'],
  ['GET /v1/schedules', 'read'],
  ['GET /v1/schedules/:name', 'read'],
  ['POST /v1/schedules', 'admin'],
  ['PATCH /v1/schedules/:name', 'admin'],
  ['DELETE /v1/schedules/:name', 'admin'],
  ['GET /v1/limits', 'read'],
  ['GET /v1/limits/:key', 'read'],
  ['PUT /v1/limits/:key', 'admin'],
  ['DELETE /v1/limits/:key', 'admin'],
  ['GET /v1/keys/self', 'read'],
  ['GET /v1/keys', 'admin'],
  ['POST /v1/keys', 'admin'],
  ['DELETE /v1/keys/:id', 'admin'],
  ['GET /v1/audit', 'admin'],
  ['GET /healthz', PUBLIC],
  ['GET /readyz', PUBLIC],
  ['GET /metrics', PUBLIC],
  // The console's page and files hold no data: the page asks for a key and sends it with its calls.
  ['GET /', PUBLIC],
  ['GET /ui', PUBLIC],
  ['GET /ui/', PUBLIC],
  ['GET /ui/assets/:file', PUBLIC],
]);

/** The OpenAPI document and its viewer (every route under /docs) describe the API, not its data. */
const isDocs = (url: string): boolean => url === '/docs' || url.startsWith('/docs/');

/** The access a route needs: the table, else its plugin's `config.scope`, else `admin`. */
export function accessOf(method: string, url: string, declared?: unknown): RouteAccess {
  const m = method === 'HEAD' ? 'GET' : method;
  const fromTable = ROUTE_SCOPES.get(`${m} ${url}`);
  if (fromTable) return fromTable;
  if (isDocs(url)) return PUBLIC;
  if (typeof declared === 'string' && (declared === PUBLIC || ['submit', 'read', 'operate', 'admin'].includes(declared))) return declared as RouteAccess;
  return 'admin';
}

/** How long a key read from the store is trusted (a revocation takes effect within it). */
export const KEY_CACHE_MS = 2000;
/** Keys remembered at most, and apart from them ids found to be no key's: misses never evict keys. */
const KEY_CACHE_MAX = 10_000;
const MISS_CACHE_MAX = 10_000;

/** Keys by id, each read at most once per `KEY_CACHE_MS`, and whether any key exists. */
export class KeyCache {
  private readonly byId = new Map<string, { key: StoredApiKey; at: number }>();
  private readonly misses = new Map<string, number>();
  private active: { n: number; at: number } | null = null;
  /** Counts drops (`forget`, `forgetCount`): a read that began before one may have read the key or count as it was, and is not kept. */
  private forgets = 0;

  constructor(private readonly keys: KeyStore, private readonly clock: Clock) {}

  async get(id: string): Promise<StoredApiKey | null> {
    const now = this.clock.now();
    const hit = this.byId.get(id);
    if (hit && now - hit.at < KEY_CACHE_MS) return hit.key;
    const missedAt = this.misses.get(id);
    if (missedAt !== undefined && now - missedAt < KEY_CACHE_MS) return null;
    const forgets = this.forgets;
    const key = await this.keys.getKey(id);
    if (forgets !== this.forgets) return key;
    if (key) {
      if (this.byId.size >= KEY_CACHE_MAX) this.byId.clear();
      this.byId.set(id, { key, at: now });
      this.misses.delete(id);
    } else {
      if (this.misses.size >= MISS_CACHE_MAX) this.misses.clear();
      this.misses.set(id, now);
      this.byId.delete(id);
    }
    return key;
  }

  /** Whether some key is not revoked (read at most once per `KEY_CACHE_MS`). */
  async anyActive(): Promise<boolean> {
    const now = this.clock.now();
    if (this.active && now - this.active.at < KEY_CACHE_MS) return this.active.n > 0;
    const forgets = this.forgets;
    const n = await this.keys.countActiveKeys();
    if (forgets === this.forgets) this.active = { n, at: now };
    return n > 0;
  }

  /** Drops the count of keys: it is read again at its next use. */
  forgetCount(): void {
    this.forgets++;
    this.active = null;
  }

  /** Drops what is known of key `id`, and the count of keys: both are read again at their next use. */
  forget(id: string): void {
    this.forgetCount();
    this.byId.delete(id);
    this.misses.delete(id);
  }
}

/**
 * The key caches of one api instance: the auth hook's, the stream's
 * re-check's and the workflow waits' (each made here, `cache`). A key
 * revoked through this instance (`DELETE /v1/keys/:id`) is dropped from
 * every one (`revoked`), so the request after the 204, a stream upgrade
 * included, reads it again and is refused. A key made through it
 * (`POST /v1/keys`) makes every one count keys again (`created`), so the
 * first key ends the open mode of `auto` there from the 201 on. Other
 * instances, and a change written to the database by `ats keys create` or
 * `ats keys revoke`, wait out `KEY_CACHE_MS`.
 */
export class KeyCaches {
  private readonly caches = new Set<KeyCache>();

  cache(keys: KeyStore, clock: Clock): KeyCache {
    const c = new KeyCache(keys, clock);
    this.caches.add(c);
    return c;
  }

  revoked(id: string): void {
    for (const c of this.caches) c.forget(id);
  }

  created(): void {
    for (const c of this.caches) c.forgetCount();
  }
}

/** Failed authentications allowed per client a minute; beyond, 429 before any key is read. */
export const AUTH_FAILURES_PER_MINUTE = 60;
const FAILURES_WINDOW_MS = 60_000;
/** Clients whose failures are counted at once; one more lets the oldest go. */
export const AUTH_FAILURES_TRACKED_MAX = 10_000;

/**
 * The client a failed key is counted against: its address as the request
 * rate limit counts it (`holderOf`, server/security.ts), an IPv6 one by its
 * /64, so that a client cannot step around the count by rotating the
 * addresses of a prefix it holds. `request.ip` is the socket's peer, or,
 * when that is a proxy listed in ATS_TRUST_PROXY, the client's address it
 * forwards (X-Forwarded-For; server/app.ts): without the setting, behind a
 * reverse proxy every client has the proxy's address. A request whose
 * connection closed before it was counted is counted as `ip:(gone)`.
 */
export const failureHolderOf = (request: FastifyRequest): string => addressHolderOf(request);

/**
 * Failed authentications per client (`failureHolderOf`), in fixed one-minute
 * windows. The request rate limit (server/security.ts) counts per key and
 * runs after this hook, so it never sees a request refused here: without
 * this count, a client sending made-up keys would cost a key read each,
 * unlimited. (Hand-written: @fastify/rate-limit counts requests, not failures.)
 * At most AUTH_FAILURES_TRACKED_MAX clients are counted, in the order their
 * windows began: the oldest window, the first to end anyway, is let go to
 * make room, never the whole count (which would free every client held off).
 */
export class AuthFailures {
  private readonly byHolder = new Map<string, { n: number; since: number }>();

  constructor(private readonly clock: Clock, private readonly max = AUTH_FAILURES_PER_MINUTE) {}

  /** Seconds to wait when `holder` is over its failures, else 0. */
  retryAfterS(holder: string): number {
    const e = this.byHolder.get(holder);
    if (!e) return 0;
    const elapsed = this.clock.now() - e.since;
    if (elapsed >= FAILURES_WINDOW_MS) {
      this.byHolder.delete(holder);
      return 0;
    }
    return e.n >= this.max ? Math.ceil((FAILURES_WINDOW_MS - elapsed) / 1000) : 0;
  }

  failed(holder: string): void {
    const now = this.clock.now();
    const e = this.byHolder.get(holder);
    if (e && now - e.since < FAILURES_WINDOW_MS) {
      e.n++;
      return;
    }
    // Deleted first: a window that starts again goes to the end of the order (a Map keeps insertion order).
    this.byHolder.delete(holder);
    while (this.byHolder.size >= AUTH_FAILURES_TRACKED_MAX) this.byHolder.delete(this.byHolder.keys().next().value!);
    this.byHolder.set(holder, { n: 1, since: now });
  }
}

/** The key a request presents: its bearer token, or on the stream route an `ats.key.<key>` subprotocol. */
export function presentedKey(request: FastifyRequest, url: string | undefined): string | null {
  const bearer = bearerOf(request.headers.authorization);
  if (bearer) return bearer;
  if (url !== '/v1/stream') return null;
  const offered = request.headers['sec-websocket-protocol'];
  if (typeof offered !== 'string') return null;
  for (const p of offered.split(',')) {
    const t = p.trim();
    if (t.startsWith(STREAM_KEY_PROTOCOL)) return t.slice(STREAM_KEY_PROTOCOL.length);
  }
  return null;
}

/** The prefix of the subprotocol that carries a key on the stream. */
export const STREAM_KEY_PROTOCOL = 'ats.key.';

/** The challenge every 401 carries. */
export const WWW_AUTHENTICATE = 'Bearer realm="ats"';

const unauthorized = (reply: FastifyReply, why?: string): never => {
  reply.header('www-authenticate', WWW_AUTHENTICATE);
  throw new AtsError('ATS_ERR_UNAUTHORIZED', why);
};

/**
 * Whether requests go without keys: with no auth deps or ATS_AUTH=off
 * always; in `auto` only while no key exists, only on loopback and only
 * while no other host name is allowed (ATS_ALLOWED_HOSTS names the names a
 * proxy exposes it by) and no proxy is trusted (ATS_TRUST_PROXY: one forwards
 * other clients' requests). `local` is read from the settings, never from a
 * request: no header (X-Forwarded-For: 127.0.0.1) opens it. Revoking the last
 * key of a server on another interface does not open it.
 */
async function isOpen(auth: AuthDeps | undefined, cache: KeyCache | null, local: boolean): Promise<boolean> {
  if (!auth || auth.mode === 'off') return true;
  if (auth.mode === 'on' || !local) return false;
  return !(await cache!.anyActive());
}

export function installAuth(app: FastifyInstance, deps: AppDeps): void {
  const auth = deps.auth;
  const caches = new KeyCaches();
  app.decorate('atsKeyCaches', caches);
  const cache = auth ? caches.cache(auth.keys, deps.clock) : null;
  const failures = new AuthFailures(deps.clock);
  const sec = securityOptionsOf(deps);
  const local = sec.loopback && sec.allowedHosts.length === 0 && sec.trustProxy.length === 0;
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url;
    const access = url === undefined ? null : accessOf(request.method, url, request.routeOptions.config && (request.routeOptions.config as { scope?: unknown }).scope);
    if (access === PUBLIC || (await isOpen(auth, cache, local))) {
      request.principal = OPEN_PRINCIPAL;
      return;
    }
    const holder = failureHolderOf(request);
    const wait = failures.retryAfterS(holder);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      throw new AtsError('ATS_ERR_RATE_LIMITED', `Too many failed API keys from this address: retry in ${wait} s`);
    }
    const key = presentedKey(request, url);
    if (!key) return unauthorized(reply);
    const id = keyIdOf(key);
    const stored = id === null ? null : await cache!.get(id);
    if (!stored || stored.revokedAt !== null || !keyMatches(key, stored.hash)) {
      failures.failed(holder);
      return unauthorized(reply, 'The API key is not valid (unknown, revoked or mistyped)');
    }
    request.principal = principalOf(stored);
    // No route matched: a key of any scope may learn that (the 404, or the 405 of a method the path does not take, follows).
    if (access !== null && !request.principal.scopes.has(access)) {
      throw new AtsError('ATS_ERR_FORBIDDEN', `This route needs the ${access} scope; the key has ${[...request.principal.scopes].join(', ')}`);
    }
  });
}
