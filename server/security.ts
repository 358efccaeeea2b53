/**
 * What guards the API beyond keys (docs/security.md):
 *
 * - The Host check, against DNS rebinding: a page on an attacker's name that
 *   resolves to 127.0.0.1 reaches a loopback-bound server from the victim's
 *   browser, but its requests name the attacker's Host. A server answers only
 *   the names it is reached by (`allowedHosts`; on loopback without them,
 *   localhost and the loopback addresses); anything else is 421. `/metrics`,
 *   on the API port and on ATS_METRICS_PORT, keeps that rule and answers
 *   any IP-literal Host too (`metricsHostRefusal`).
 * - The Origin check, against cross-site requests: a browser sends `Origin`
 *   on every POST/PUT/PATCH/DELETE and WebSocket handshake. One from a page
 *   of another origin (not this server's, not in `corsOrigins`) is 403 before
 *   anything runs: a hostile page can neither cancel a job with a form-less
 *   `fetch` nor read the stream. Clients that are not browsers send no
 *   Origin and are not affected.
 * - CORS (off unless `corsOrigins` names origins): their pages may call the
 *   API with an `Authorization` header (never cookies), and read the headers
 *   a client needs (Location, the rate limit's, Retry-After, X-Request-Id).
 * - Security headers (helmet) on every response: nosniff, no framing, no
 *   referrer, and a Content-Security-Policy that allows nothing on the JSON
 *   API (the console and the docs set their own).
 * - Rate limits per key (per client address without one), and per tenant
 *   other than the default (TENANT_RATE_KEYS times a key's).
 */
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isIP } from 'node:net';
import { DEFAULT_TENANT, isLoopbackHost } from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import { DEFAULT_SECURITY, type AppDeps, type SecurityOptions } from './deps.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The security options in force (the stream plugin reads its per-key cap here). */
    atsSecurity: Readonly<SecurityOptions>;
  }
}

/** The options of `deps` over the defaults (an undefined field keeps its default). */
export function securityOptionsOf(deps: Pick<AppDeps, 'security'>): Readonly<SecurityOptions> {
  const given = Object.fromEntries(Object.entries(deps.security ?? {}).filter(([, v]) => v !== undefined));
  return Object.freeze({ ...DEFAULT_SECURITY, ...given });
}

/**
 * Routes that answer whatever Host is named and are never rate limited: the
 * probes. An orchestrator addresses a pod by its IP (a Kubernetes probe sends
 * `Host: <pod IP>:<port>`), which no `allowedHosts` lists, and what they
 * answer (ok, or which dependency is down) is nothing a rebinding page could
 * use. `/metrics` is rate-limit exempt (Prometheus scrapes on a fixed
 * schedule) but keeps the Host check: it tells queue names and counts. It
 * answers an IP-literal Host too (`metricsHostRefusal`).
 */
const ANY_HOST_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz']);
const RATE_EXEMPT_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** Methods that change something: a foreign Origin is refused on these (and on upgrades). */
const STATE_CHANGING: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The JSON API's policy: a response of ours rendered as a document (opened
 * in a tab, framed) may load and run nothing. The console (server/ui) and
 * swagger-ui (server/openapi.ts) send their own over it. A constant set by
 * our hook, not by helmet: helmet builds its middleware again on every
 * request, and a policy is most of that work (4 µs of 5 a request).
 */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The name of a Host header value, lower case and without its port
 * (`[::1]:3000` → `::1`, `Ats.Example.com:443` → `ats.example.com`); null
 * when it is not a host name or address.
 */
export function hostNameOf(value: string | undefined): string | null {
  if (!value) return null;
  const v = value.trim().toLowerCase();
  const v6 = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(v);
  if (v6) return v6[1]!;
  const name = /^([a-z0-9_.-]+)(?::\d{1,5})?$/.exec(v);
  return name ? name[1]! : null;
}

/** How many Host header lines a request has (`rawHeaders`: names and values in turn, as sent). */
function hostLines(rawHeaders: readonly string[] | undefined): number {
  let n = 0;
  for (let i = 0; i < (rawHeaders?.length ?? 0); i += 2) if (rawHeaders![i]!.toLowerCase() === 'host') n++;
  return n;
}

/** Whether `host` (a Host header value) is answered under these options. */
export function hostAllowed(host: string | undefined, allowed: ReadonlySet<string>, loopback: boolean): boolean {
  if (allowed.size === 0 && !loopback) return true;
  const name = hostNameOf(host);
  if (name === null) return false;
  return allowed.size > 0 ? allowed.has(name) : isLoopbackHost(name);
}

/**
 * Whether `value` (a Host header value) names an IP address, not a host
 * name: a dotted-quad IPv4 address or a bracketed IPv6 one, each with an
 * optional port (`10.1.2.3:9464`, `[fd00::1]:9464`). `1.2.3`,
 * `10.1.2.3.evil.example`, `[10.1.2.3]` and a bare `fd00::1` are not.
 */
export function isAddressHost(value: string | undefined): boolean {
  const name = hostNameOf(value);
  return name !== null && isIP(name) === (value!.trim().startsWith('[') ? 6 : 4);
}

/** An allowed-hosts entry as compared: its name (a bare IPv6 address as is). */
const allowedHostName = (entry: string): string => hostNameOf(entry) ?? entry.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');

/**
 * The Host check of these options, against DNS rebinding: null when a
 * request naming `host` (its Host header) is answered, else the message of
 * its 421 ATS_ERR_HOST_NOT_ALLOWED. The API port's rule (its hook below),
 * which leaves the probes out of it; `/metrics` adds IP-literal Hosts
 * ({@link metricsHostRefusal}).
 */
export function hostRefusal(options: Pick<SecurityOptions, 'allowedHosts' | 'loopback'>): (host: string | undefined) => string | null {
  const allowed: ReadonlySet<string> = new Set(options.allowedHosts.map(allowedHostName));
  // The message does not quote the Host: whatever a client sends is not echoed.
  const message = allowed.size
    ? 'This server answers only the host names in ATS_ALLOWED_HOSTS'
    : 'This server is bound to loopback: it answers only localhost, 127.0.0.1 and [::1] (list other names in ATS_ALLOWED_HOSTS)';
  return (host) => (hostAllowed(host, allowed, options.loopback) ? null : message);
}

/**
 * The Host check of `/metrics` on both ports that serve it (the API's hook
 * below, ATS_METRICS_PORT's in cli/metrics.ts): {@link hostRefusal}'s names,
 * and any IP-literal Host ({@link isAddressHost}), as Prometheus scrapes a
 * pod by its IP, which no list can name in advance. Rebinding cannot make
 * such a request: a rebinding page is reached through a host name, so its
 * requests name that Host; a Host that is an address means the page's own
 * origin is that address, whose responses it may read anyway.
 */
export function metricsHostRefusal(options: Pick<SecurityOptions, 'allowedHosts' | 'loopback'>): (host: string | undefined) => string | null {
  const byName = hostRefusal(options);
  const message = options.allowedHosts.length
    ? 'This server answers /metrics only to the host names in ATS_ALLOWED_HOSTS and to IP addresses'
    : 'This server is bound to loopback: it answers /metrics only to localhost and IP addresses (list other names in ATS_ALLOWED_HOSTS)';
  return (host) => (byName(host) === null || isAddressHost(host) ? null : message);
}

/** An origin as compared (`https://Ops.Example.com:443` → `https://ops.example.com`), or null when it is none. */
function originOf(value: string): string | null {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
  } catch {
    return null;
  }
}

/**
 * Whether a request with this `Origin` may change something: the origin is
 * listed, or it is this server's own (the host and port the request names;
 * the scheme's default port may be left out on either side). `null` (a
 * sandboxed frame, a file) and anything unparsable are foreign.
 */
export function originAllowed(origin: string, host: string | undefined, listed: ReadonlySet<string>): boolean {
  const o = originOf(origin);
  if (o === null) return false;
  if (listed.has(o)) return true;
  if (!host) return false;
  const url = new URL(o);
  const h = host.trim().toLowerCase();
  const defaultPort = url.protocol === 'https:' ? ':443' : ':80';
  return url.host === (h.endsWith(defaultPort) ? h.slice(0, -defaultPort.length) : h);
}

/**
 * Why a page of this server's own host name is refused when the `Host` names
 * no port and its origin one (not the scheme's default): most often a proxy
 * in front that passes the host without the port the browser used (nginx's
 * `$host`); null for any other origin, and for a `Host` that names a port of
 * its own (a page of another port of the same host, a development server:
 * ATS_CORS_ORIGINS is its fix). Both values are clipped: they are the
 * caller's own.
 */
function portDropped(origin: string, host: string | undefined): string | null {
  const o = originOf(origin);
  if (o === null || !host) return null;
  const h = host.trim().toLowerCase();
  const page = new URL(o);
  // A Host with a port (`name:3000`, `[::1]:3000`), or a page on its scheme's default port: not a port dropped.
  if (/:\d+$/.test(h) || page.port === '') return null;
  if (page.hostname !== h) return null;
  return `The page's origin ${o.slice(0, 200)} is not the Host this request names (Host ${h.slice(0, 200)}): ` +
    'a proxy in front must pass the Host the browser sent, with its port (nginx: proxy_set_header Host $http_host)';
}

/**
 * Whom a request is counted against (rate limits, stream connections): its
 * key, or without one its client address (an IPv6 one by its /64: one
 * client holds the whole prefix). Keys and addresses never share a count.
 */
export function holderOf(request: FastifyRequest): string {
  const keyId = request.principal?.keyId;
  return keyId ? `key:${keyId}` : addressHolderOf(request);
}

/**
 * A request's client address as the counts take it (an IPv6 one by its /64),
 * `request.ip`: the TCP peer's, or behind a proxy listed in ATS_TRUST_PROXY
 * the client's it forwards (server/app.ts); `ip:(gone)` once its connection
 * closed: Node no longer knows the peer of a destroyed socket (`request.ip`
 * is undefined), and a client that went away while its request waited (for
 * the auth hook's read of the keys, say) cannot be answered anyway. Never an
 * error: that would be a 500 logged for a client that only hung up.
 */
export function addressHolderOf(request: FastifyRequest): string {
  let ip = request.ip as string | undefined;
  // From a listed proxy, the entry of X-Forwarded-For it names may be no bare address (`1.2.3.4:51234`, `unknown`, or
  // what a client wrote): counted as the peer itself, not a new count a connection, or a long string as a key.
  if (ip !== undefined && isIP(ip) === 0) ip = request.socket?.remoteAddress;
  return ip === undefined ? 'ip:(gone)' : `ip:${normalizeIP(ip)}`;
}

/**
 * The tenant whose share of the slots a request counts against (server/slots.ts):
 * its key's, unless that is the default tenant (the operator's own, and the only
 * one of a deployment without tenants, which may use every slot); null without a key.
 */
export function tenantOfKey(request: FastifyRequest): string | null {
  const p = request.principal;
  return p?.keyId && p.tenant !== DEFAULT_TENANT ? p.tenant : null;
}

const isUpgrade = (request: FastifyRequest): boolean =>
  (request.raw as { upgrade?: boolean }).upgrade === true || request.headers.upgrade !== undefined;

/** Registered before the auth hook: runs on every request first. */
export async function installSecurity(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const options = securityOptionsOf(deps);
  app.decorate('atsSecurity', options);

  // First, so that every answer carries them, refusals included: nosniff,
  // X-Frame-Options DENY, Referrer-Policy no-referrer, Cross-Origin-Opener-
  // and -Resource-Policy same-origin, and helmet's other defaults.
  await app.register(helmet, {
    contentSecurityPolicy: false,
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // The API speaks plain HTTP; a TLS proxy in front sets HSTS for its own name.
    strictTransportSecurity: false,
  });
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('content-security-policy', API_CSP);
    done();
  });

  const refusal = hostRefusal(options);
  const metricsRefusal = metricsHostRefusal(options);
  app.addHook('onRequest', async (request) => {
    // HTTP/1.1 requires a Host (Node's own check is off: it answers without a body or a code).
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      throw new AtsError('ATS_ERR_VALIDATION', 'An HTTP/1.1 request needs a Host header');
    }
    // Node keeps the first of two and drops the other: the checks here would read one name while a proxy in front may have
    // routed by the other. HTTP requires a 400 (RFC 9112, 3.2).
    if (hostLines(request.raw.rawHeaders) > 1) throw new AtsError('ATS_ERR_VALIDATION', 'A request may have one Host header only');
    const route = request.routeOptions.url ?? '';
    if (ANY_HOST_ROUTES.has(route)) return;
    const refused = (route === '/metrics' ? metricsRefusal : refusal)(request.headers.host);
    if (refused !== null) throw new AtsError('ATS_ERR_HOST_NOT_ALLOWED', refused);
  });

  const listed: ReadonlySet<string> = new Set(options.corsOrigins.map((o) => originOf(o) ?? o));
  app.addHook('onRequest', async (request) => {
    const origin = request.headers.origin;
    if (origin === undefined || !(STATE_CHANGING.has(request.method) || isUpgrade(request))) return;
    if (!originAllowed(origin, request.headers.host, listed)) {
      throw new AtsError('ATS_ERR_ORIGIN_NOT_ALLOWED', portDropped(origin, request.headers.host) ??
        'A page of another origin may not change anything here or open the stream (list its origin in ATS_CORS_ORIGINS to allow it)');
    }
  });

  if (listed.size > 0) {
    await app.register(cors, {
      origin: [...listed],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'],
      // What a page needs to read (a browser hides any other response header from it): where a created
      // thing is, the rate limit's count and wait (server/rate-limit-headers.test.ts), the id a log line has.
      exposedHeaders: ['Location', 'Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'X-Request-Id'],
      // A key is a header the page sends, never a cookie.
      credentials: false,
      maxAge: 600,
      // An OPTIONS without the preflight's headers is answered (204, no CORS headers), not 400 in plain text.
      strictPreflight: false,
    });
  }
}

/**
 * The keys of one tenant other than the default together make at most this
 * many times one key's requests (`ATS_RATE_LIMIT`): a tenant admin minting keys
 * does not multiply the tenant's rate (up to 1,000 keys of 6,000 a minute each).
 */
export const TENANT_RATE_KEYS = 4;

/**
 * Registered after the auth hook: the limits count per `request.principal.keyId`, or per address;
 * and, for a tenant other than the default, its keys' requests together (TENANT_RATE_KEYS).
 */
export async function installRateLimit(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const perMinute = securityOptionsOf(deps).rateLimitPerMinute;
  if (!(perMinute > 0)) return;
  await app.register(rateLimit, {
    global: true,
    max: perMinute,
    timeWindow: 60_000,
    keyGenerator: holderOf,
    allowList: (request) => RATE_EXEMPT_ROUTES.has(request.routeOptions.url ?? ''),
    // Thrown: the error handler answers it as every error, {code, message}, with the Retry-After set here.
    errorResponseBuilder: (_request, context) =>
      new AtsError('ATS_ERR_RATE_LIMITED', `Too many requests: at most ${context.max} a minute per API key (per address without one); retry in ${Math.ceil(context.ttl / 1000)} s`),
  });
  // The plugin's own store, another count: the tenant's. Same window, same exempt routes.
  const tenantMax = perMinute * TENANT_RATE_KEYS;
  const tenantCount = app.createRateLimit({ max: tenantMax, timeWindow: 60_000, keyGenerator: (request) => `tenant:${request.principal.tenant}` });
  const perTenant = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.principal.tenant === DEFAULT_TENANT) return;
    const count = await tenantCount(request);
    if (count.isAllowed || !count.isExceeded) return;
    // A client pacing on the headers waits too: none left now, until the tenant's window resets.
    reply.header('retry-after', count.ttlInSeconds).header('x-ratelimit-remaining', 0).header('x-ratelimit-reset', count.ttlInSeconds);
    throw new AtsError(
      'ATS_ERR_RATE_LIMITED',
      `Too many requests: at most ${tenantMax} a minute for the keys of one tenant together (${TENANT_RATE_KEYS} times ATS_RATE_LIMIT); retry in ${count.ttlInSeconds} s`,
    );
  };
  // After the per-key count of each route (the plugin adds its hook to each route as it is declared, first):
  // a request that one refuses is not counted against the tenant.
  app.addHook('onRoute', (route) => {
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...hooks, perTenant];
  });
}
