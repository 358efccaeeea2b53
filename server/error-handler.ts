/**
 * Turns every error into `{code, message}` with a code from the one registry
 * (`engine/errors.ts`). Bad input is a 4xx; only what the server got wrong is
 * a 500, and its message never leaks internals (the log has them).
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { cutText, ERRORS, isAtsError, isStoreUnavailableWhy, type ErrorCode } from '../engine/errors.js';
import { errorFields } from '../engine/logger.js';
import { responseStarted } from './connections.js';
import { clip, type ServerErrorLog } from './error-log.js';
import { MAX_NAME_CHARS } from './schemas.js';

export interface ErrorReply {
  status: number;
  body: { code: ErrorCode; message: string };
}

/**
 * The longest message an error answers with. Messages name what was wrong,
 * and some quote a part of the request (a path, a field); cut here, no input
 * comes back at length whatever a message quotes.
 */
export const MAX_MESSAGE_CHARS = 300;

const bounded = (m: string): string => (m.length > MAX_MESSAGE_CHARS ? `${cutText(m, MAX_MESSAGE_CHARS - 3)}...` : m);

const reply = (code: ErrorCode, message?: string): ErrorReply => ({
  status: ERRORS[code].status,
  body: { code, message: bounded(message ?? ERRORS[code].message) },
});

/**
 * A 5xx answers with its registry message: what the server got wrong (SQL,
 * a file path, an address) is for the log. Only ATS_ERR_NOT_READY keeps its
 * own: the server writes it to say which dependency is down, or that it is
 * shutting down, which a caller can act on; and ATS_ERR_STORE_UNAVAILABLE one
 * of its fixed texts (STORE_UNAVAILABLE_WHY: read only, disk full).
 */
const keepsMessage = (code: ErrorCode, message: string): boolean =>
  ERRORS[code].status < 500 || code === 'ATS_ERR_NOT_READY' || (code === 'ATS_ERR_STORE_UNAVAILABLE' && isStoreUnavailableWhy(message));

/** fastify's own error codes, by what they mean to a caller. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_VALIDATION: 'ATS_ERR_VALIDATION',
  FST_ERR_CTP_BODY_TOO_LARGE: 'ATS_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'ATS_ERR_MALFORMED_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'ATS_ERR_MALFORMED_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ATS_ERR_VALIDATION',
  FST_ERR_BAD_URL: 'ATS_ERR_VALIDATION',
  FST_ERR_MAX_PARAM_LENGTH: 'ATS_ERR_VALIDATION',
};

/** By HTTP status, for other 4xx errors fastify or a plugin may raise. */
const BY_STATUS: Record<number, ErrorCode> = {
  401: 'ATS_ERR_UNAUTHORIZED',
  403: 'ATS_ERR_FORBIDDEN',
  404: 'ATS_ERR_ROUTE_NOT_FOUND',
  405: 'ATS_ERR_METHOD_NOT_ALLOWED',
  413: 'ATS_ERR_PAYLOAD_TOO_LARGE',
  415: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE',
  429: 'ATS_ERR_RATE_LIMITED',
};

/** The reply for any thrown value. */
export function toErrorReply(err: unknown): ErrorReply {
  if (isAtsError(err)) return reply(err.code, keepsMessage(err.code, err.message) ? err.message : undefined);
  const e = err as Partial<FastifyError>;
  // fastify's message quotes the whole path: a 10 KB parameter would come back whole.
  if (e.code === 'FST_ERR_MAX_PARAM_LENGTH') return reply('ATS_ERR_VALIDATION', `A path parameter is longer than ${MAX_NAME_CHARS} characters`);
  const known = e.code ? FASTIFY_CODES[e.code] : undefined;
  if (known) return reply(known, known === 'ATS_ERR_VALIDATION' ? e.message : undefined);
  const status = e.statusCode ?? 500;
  if (status >= 400 && status < 500) return reply(BY_STATUS[status] ?? 'ATS_ERR_VALIDATION', e.message);
  return reply('ATS_ERR_INTERNAL');
}

/**
 * Seconds a client is asked to wait before retrying a 503 (the database or
 * the log is unreachable, or this instance is shutting down): long enough not
 * to hammer a recovering database, short enough to notice it is back.
 */
export const RETRY_AFTER_S = 5;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The setting that raises this route's body limit, as its 413 names it: ATS_BODY_LIMIT_BYTES when not given. */
    bodyLimitSetting?: string;
  }
}

/** The setting that raises a route's body limit, unless the route names its own (the batch route does). */
const BODY_LIMIT_SETTING = 'ATS_BODY_LIMIT_BYTES';

/**
 * The 413 of a body over its route's limit, naming the limit, the body's
 * size when the request declared it, and the setting: routes differ (a
 * batch may be larger than one job), and the bare status says neither which
 * limit nor by how much.
 */
export function bodyTooLargeReply(request: Pick<FastifyRequest, 'routeOptions' | 'headers'>): ErrorReply {
  const { bodyLimit, config } = request.routeOptions;
  const setting = config?.bodyLimitSetting ?? BODY_LIMIT_SETTING;
  const declared = Number(request.headers['content-length']);
  const size = Number.isSafeInteger(declared) && declared > 0 ? ` of ${declared} bytes` : '';
  return reply('ATS_ERR_PAYLOAD_TOO_LARGE', `The request body${size} is larger than the ${bodyLimit}-byte limit of this route (${setting})`);
}

const isBodyTooLarge = (err: unknown): boolean => (err as Partial<FastifyError> | null)?.code === 'FST_ERR_CTP_BODY_TOO_LARGE';

/**
 * Send the error reply. Every 5xx is logged with the request id the response
 * carries (`x-request-id`), as `ServerErrorLog` says: a 500 is a bug to fix
 * (error, with the internals the reply hides, every time), a 503 an outage to
 * watch (warn, once a minute while it lasts).
 */
function sendError(errors: ServerErrorLog, err: unknown, request: FastifyRequest, res: FastifyReply) {
  const { status, body } = isBodyTooLarge(err) ? bodyTooLargeReply(request) : toErrorReply(err);
  if (status >= 500) errors.failed(request, status, body.code, err);
  if (status === 503) res.header('retry-after', String(RETRY_AFTER_S));
  return res.code(status).send(body);
}

/** The order an Allow header lists methods in; others (none of ours today) after these. */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const methodRank = (m: string): number => {
  const i = METHOD_ORDER.indexOf(m);
  return i === -1 ? METHOD_ORDER.length : i;
};

/**
 * The methods whose routes serve `url` (a request's, query and all), in
 * METHOD_ORDER; empty when none does. HEAD wherever GET is (fastify adds it).
 * OPTIONS alone does not make a path served: with CORS on, its preflight
 * route takes OPTIONS on every path.
 *
 * `findRoute` matches a concrete URL as the router does for a request (find-my-way's
 * `find`: parameters, wildcards, the query cut off), on every route of the app,
 * plugins' included. A parameter over `maxParamLength` makes it answer with a
 * stand-in that raises the 400 (no `searchParams`): no route of that method serves the path.
 * Only the not-found handler calls this: a served request never pays for it.
 */
export function allowedMethods(app: FastifyInstance, url: string): string[] {
  const served = app.supportedMethods.filter((method) => {
    const found = app.findRoute({ method: method as HTTPMethods, url });
    return found !== null && found.searchParams !== undefined;
  });
  if (!served.some((m) => m !== 'OPTIONS')) return [];
  return served.sort((a, b) => methodRank(a) - methodRank(b) || (a < b ? -1 : 1));
}

/**
 * No route of this method: 405 with the Allow header HTTP requires when the
 * path is served with other methods, else 404.
 */
function onNotFound(request: FastifyRequest, res: FastifyReply) {
  const allow = allowedMethods(request.server, request.url);
  // A route of this very method matched and sent the request here (a file the docs' static route does not have): a 404.
  if (allow.length > 0 && !allow.includes(request.method)) {
    const list = allow.join(', ');
    res.header('allow', list);
    const { status, body } = reply('ATS_ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${clip(request.url)}: it takes ${list}`);
    return res.code(status).send(body);
  }
  const { status, body } = reply('ATS_ERR_ROUTE_NOT_FOUND', `No route ${request.method} ${clip(request.url)}`);
  return res.code(status).send(body);
}

/** fastify's `frameworkErrors` option: errors raised before routing (bad URL encoding, long params). */
export function frameworkErrorHandler(errors: ServerErrorLog) {
  return (err: FastifyError, request: FastifyRequest, res: FastifyReply) => {
    // No hook runs for these, the upgrade guard's neither (server/connections.ts): an upgrade's
    // socket has left Node's HTTP server, and nothing else would ever close it.
    if ((request.raw as { upgrade?: boolean }).upgrade === true) {
      res.header('connection', 'close');
      res.raw.once('finish', () => request.raw.socket.destroySoon());
    }
    return sendError(errors, err, request, res);
  };
}

/** Protocol errors Node's HTTP parser raises before fastify sees a request. */
const CLIENT_ERRORS: Record<string, { code: ErrorCode; status: number; message: string }> = {
  HPE_HEADER_OVERFLOW: { code: 'ATS_ERR_HEADERS_TOO_LARGE', status: 431, message: ERRORS.ATS_ERR_HEADERS_TOO_LARGE.message },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'ATS_ERR_REQUEST_TIMEOUT', status: 408, message: ERRORS.ATS_ERR_REQUEST_TIMEOUT.message },
};

/**
 * fastify's `clientErrorHandler`: the raw socket answer for requests Node
 * could not parse (huge headers, garbage), with the status HTTP prescribes.
 */
export function onClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const known = (err.code && CLIENT_ERRORS[err.code]) || { code: 'ATS_ERR_VALIDATION', status: 400, message: 'The request is not valid HTTP' };
  const body = JSON.stringify({ code: known.code, message: known.message });
  // Not `{ err }`: Node's parse errors carry the request's bytes (`rawPacket`), its Authorization header included.
  this.log.debug({ ...errorFields(err), code: err.code }, 'client error');
  // A response already under way (the request timed out while its reply was
  // being written) cannot be followed by another one: only cut the socket.
  if (socket.writable && !responseStarted(socket)) {
    socket.write(
      `HTTP/1.1 ${known.status} ${STATUS_CODES[known.status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Install the error and not-found handlers on the root, so every plugin inherits them. */
export function installErrorHandlers(app: FastifyInstance, errors: ServerErrorLog): void {
  app.setErrorHandler((err, request, res) => sendError(errors, err, request, res));
  app.setNotFoundHandler(onNotFound);
}
