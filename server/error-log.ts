/**
 * The log of the API's 5xx answers. A 500 is a bug: each is logged at
 * `error`, with the internals its answer hides. A 503 is an outage (the
 * database down, the server shutting down, a deployment that lacks a
 * machine or workflow version): every request that needs the dependency
 * answers it, so a busy API cut from its database for 30 s would write
 * thousands of identical warnings. Each 503 code is logged as the loops log
 * their outages (engine/error-backoff.ts, OutageLog): the first 503 at
 * `warn` with its request's fields, the next ones within a minute at
 * `debug` (each still with its request id), then one `warn` a minute with
 * the count so far, and an `info` line once it works again.
 *
 * Works again: a 2xx from a route (method and route template) that answered
 * that 503 during the outage, OUTAGE_SETTLE_MS or more after the last 503 of
 * the code (a route may answer the 503 to some requests and 2xx to others:
 * a job a newer deployment wrote; that is one outage, not a warning and a
 * works-again line per 503). Only such a route tells: a route that needs no
 * dependency (/healthz, /metrics, the console's files) answers 200 through
 * an outage, and a 4xx may have been decided before the store was asked (a
 * body that fails its schema). A route that answered it may not be asked
 * again for long (a rare route, a client that gave up): a 503 of the code
 * after OUTAGE_QUIET_MS without one is a new outage, warned of as the first,
 * not a line of one that ended unseen.
 */
import type { FastifyRequest } from 'fastify';
import { quoteCut, type ErrorCode } from '../engine/errors.js';
import { OutageLog } from '../engine/error-backoff.js';
import { errorFields } from '../engine/logger.js';
import type { Clock, Logger } from '../engine/ports.js';

/** A request's route for the log and the metrics: its template (`/v1/jobs/:id`), null when no route matched. */
export const routeOf = (request: FastifyRequest): string | null => request.routeOptions.url ?? null;

/** The routes (`METHOD template`) that answered one 503 code during its outage, and the outage's log. */
interface Outage {
  log: OutageLog;
  routes: Set<string>;
  /** When it last answered this 503. */
  lastAt: number;
}

/** A 503 this long after the last of its code, with no sign between that the outage ended, starts a new one. */
export const OUTAGE_QUIET_MS = 5 * 60_000;
/**
 * An outage ends at a 2xx of a route that answered its 503 only this long after the last 503 of its code:
 * a route that answers the 503 to some requests and 2xx to others (a job a newer deployment wrote, a pool
 * with dead connections among good ones) is one outage, not a warning and a works-again line per 503.
 */
export const OUTAGE_SETTLE_MS = 60_000;

export class ServerErrorLog {
  /** By 503 code (a fixed set: the registry's); an entry stays once made, its routes emptied when the outage ends. */
  private readonly outages = new Map<ErrorCode, Outage>();
  /** Outages under way: a response needs looking at only while one is. */
  private failing = 0;

  constructor(private readonly logger: Logger, private readonly clock: Pick<Clock, 'now'>) {}

  /** A request answered a 5xx: `code` and `err` as the error reply says them. */
  failed(request: FastifyRequest, status: number, code: ErrorCode, err: unknown): void {
    const fields = { reqId: request.id, method: request.method, url: clip(request.url), status, code };
    if (status !== 503) {
      this.logger.error('request failed', { ...fields, ...errorFields(err) });
      return;
    }
    const now = this.clock.now();
    let outage = this.outages.get(code);
    if (outage?.log.failing && now - outage.lastAt > OUTAGE_QUIET_MS) {
      // Its end went unseen (no route that answered it answered 2xx since): this 503 is of a new outage.
      this.failing--;
      outage = undefined;
    }
    if (!outage) {
      outage = {
        log: new OutageLog(this.logger, 'api: request', { level: 'warn', failedMessage: 'request failed: unavailable', repeats: 'debug' }), routes: new Set(), lastAt: now,
      };
      this.outages.set(code, outage);
    }
    if (!outage.log.failing) this.failing++;
    outage.routes.add(routeKey(request));
    outage.lastAt = now;
    outage.log.failed(err, now, fields);
  }

  /** A request was answered `status` (every request, in onResponse): a 2xx may end an outage. */
  responded(request: FastifyRequest, status: number): void {
    if (this.failing === 0 || status < 200 || status >= 300) return;
    const key = routeKey(request);
    const now = this.clock.now();
    for (const [code, outage] of this.outages) {
      // Still answering this 503 to other requests of the route a moment ago: the outage goes on.
      if (!outage.routes.has(key) || now - outage.lastAt < OUTAGE_SETTLE_MS) continue;
      outage.log.succeeded({ code, method: request.method, route: routeOf(request), reqId: request.id });
      outage.routes.clear();
      this.failing--;
    }
  }
}

const routeKey = (request: FastifyRequest): string => `${request.method} ${routeOf(request) ?? ''}`;

/**
 * A URL as a log line quotes it: at most 200 characters, and without a key a
 * client put in it. The API takes keys only in headers (a key in a URL lands
 * in access logs, docs/security.md) and refuses one elsewhere, but the refused
 * request's URL is logged all the same: an API key's secret anywhere in it
 * (`ats_<id>_<secret>`: the id is public and stays), and the value of a query
 * parameter named as credentials are (`key`, `apiKey`, `access_token`,
 * `password`, ...), are written `[redacted]`. Other values stay, a job type
 * with `ats_` in its name among them.
 */
export const clip = (url: string) => quoteCut(redactUrl(url), 200);

const CREDENTIAL_PARAM =
  /^(?:x[-_])?(?:(?:api|access|auth|id|refresh)?[-_.]?(?:key|token)|auth(?:orization)?|bearer|jwt|pass(?:word|wd)?|(?:client[-_.]?)?secret|session(?:[-_.]?id)?)(?:\[\])?$/i;
/** An API key (engine/auth.ts): `ats_`, its id (a ULID), `_`, its secret (base64url). */
const KEY = /(ats_[0-9A-HJKMNP-TV-Z]{26}_)[A-Za-z0-9_-]+/gi;
const hasKey = (text: string) => text.search(KEY) >= 0;

function redactUrl(url: string): string {
  const start = url.indexOf('?');
  const path = (start < 0 ? url : url.slice(0, start)).replace(KEY, '$1[redacted]');
  if (start < 0) return path;
  const pairs = url.slice(start + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq < 0) return hasKey(decoded(pair)) ? '[redacted]' : pair;
    const name = pair.slice(0, eq);
    return hasKey(decoded(pair.slice(eq + 1))) || CREDENTIAL_PARAM.test(decoded(name)) ? `${name}=[redacted]` : pair;
  });
  return `${path}?${pairs.join('&')}`;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
