/**
 * How long a client may hold a connection, and what happens to connections
 * the HTTP server does not manage itself. Every limit here bounds what one
 * slow or stray client can cost: a socket, a parser, and the server's
 * shutdown, which waits for every open connection.
 */
import type { IncomingMessage, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AtsError, quoteCut } from '../engine/errors.js';
import type { Logger } from '../engine/ports.js';
import { RepeatedLines } from '../engine/repeated-lines.js';
import { clip } from './error-log.js';

export interface ConnectionLimits {
  /** Time to receive the request line and headers. */
  headersTimeoutMs: number;
  /** Time to receive the whole request, headers and body. */
  requestTimeoutMs: number;
  /** Longest silence while a request body arrives. */
  bodyTimeoutMs: number;
  /** How long an idle kept-alive connection stays open. */
  keepAliveTimeoutMs: number;
  /** Connections open at once (requests, kept-alive ones and streams); beyond, a new one is closed as it comes. */
  maxConnections: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  bodyTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 10_000,
});

/**
 * The connection cap when ATS_HTTP_MAX_CONNECTIONS is not set, given the
 * process's open-file limit (cli/open-file-limit.ts; null: unknown or
 * unlimited): 10,000, or half the limit when that is lower, never below 64
 * (the least the setting takes). Every connection is a file descriptor, and
 * the cap only acts while one can still be accepted: past the limit accept()
 * fails (EMFILE) and so does every other open of the process. The other half
 * is left to what the process needs besides: the SQLite file and its
 * journal, the MySQL pool, Kafka's connections (a few per broker, for each
 * producer and consumer), the metrics port's 64, stdio and Node's own, and
 * whatever the job handlers open (their outbound requests grow with the
 * worker's concurrency). Half is a plain rule an operator can check: at a
 * limit of 4,096, 2,048 connections, and still 2,000 files for the rest.
 */
export function defaultMaxConnections(openFileLimit: number | null): number {
  const max = DEFAULT_CONNECTION_LIMITS.maxConnections;
  return openFileLimit === null ? max : Math.max(MIN_MAX_CONNECTIONS, Math.min(max, Math.floor(openFileLimit / 2)));
}

/** The least ATS_HTTP_MAX_CONNECTIONS takes. */
export const MIN_MAX_CONNECTIONS = 64;

export interface ConnectionCapNotice {
  level: 'info' | 'warn';
  message: string;
  fields: { maxConnections: number; openFileLimit: number };
}

/**
 * What the start says of the cap, once, or null: at warn, a cap at or above
 * the open-file limit, set so by ATS_HTTP_MAX_CONNECTIONS or, at 64 files
 * or fewer, the least default (kept: refusing the start would stop a process
 * that ran before; but the cap then never acts, since the process's own
 * files count against the limit too); at info, the default lowered to half
 * the limit.
 */
export function connectionCapNotice(cap: { maxConnections: number; set: boolean; openFileLimit: number | null }): ConnectionCapNotice | null {
  const { maxConnections, openFileLimit } = cap;
  if (openFileLimit === null) return null;
  const fields = { maxConnections, openFileLimit };
  if (maxConnections >= openFileLimit) {
    const what = cap.set ? `ATS_HTTP_MAX_CONNECTIONS (--http-max-connections) is ${maxConnections}` : `the connection cap is ${maxConnections}, the least it can be`;
    const fix = cap.set ? `set it to ${defaultMaxConnections(openFileLimit)} or less, or raise the limit` : 'raise the limit';
    return {
      level: 'warn', fields,
      message: `api: ${what}, not below the process's open-file limit (${openFileLimit}): `
        + 'a flood of connections would use up the file descriptors (accept fails with EMFILE, and so does every other open: the database\'s and the log\'s connections, the SQLite file, the handlers\' files) '
        + `before the cap closes any; ${fix} (ulimit -n, systemd's LimitNOFILE, the container's nofile) and restart`,
    };
  }
  if (cap.set || maxConnections >= DEFAULT_CONNECTION_LIMITS.maxConnections) return null;
  return {
    level: 'info', fields,
    message: `api: at most ${maxConnections} connections open at once (half the process's open-file limit, ${openFileLimit}, and at least ${MIN_MAX_CONNECTIONS}), `
      + `not ${DEFAULT_CONNECTION_LIMITS.maxConnections}: the rest is left to the process's other files, its database and log connections and its handlers' (ATS_HTTP_MAX_CONNECTIONS, --http-max-connections, sets it)`,
  };
}

/**
 * At most `max` connections open at once: Node closes a new one past it as
 * soon as it is accepted (no answer: the server takes no request from it), so
 * that a flood of connections, idle or slow, cannot take every file
 * descriptor of the process, which its database and Kafka connections, and
 * the SQLite file, need too. Each one closed so is said, at warn once a minute
 * (the rest at debug, counted by the next).
 */
export function installConnectionCap(app: FastifyInstance, max: number, logger: Pick<Logger, 'warn' | 'debug'>, now: () => number): void {
  app.server.maxConnections = max;
  const said = new RepeatedLines(now);
  app.server.on('drop', (data?: { remoteAddress?: string }) => {
    said.warn(logger, 'drop', `api: ${max} connections open at once (the most ATS_HTTP_MAX_CONNECTIONS allows): a new one was closed as it came`, {
      maxConnections: max, remoteAddress: data?.remoteAddress,
    });
  });
}

/**
 * On close, in-flight requests get this long to finish; then every
 * connection still open (a body that never ends, a request stuck on the
 * database) is cut, so a shutdown never waits for a client.
 */
export const CLOSE_DRAIN_MS = 2_000;

/**
 * fastify's options for Node's timeouts. Node checks the headers and request
 * timeouts only every `connectionsCheckingInterval` (30 s by default, which
 * would double a 30 s limit), so it is derived from the limits.
 */
export function serverTimeouts(l: ConnectionLimits): { requestTimeout: number; keepAliveTimeout: number; http: ServerOptions } {
  const checkEvery = Math.max(50, Math.min(1000, Math.floor(Math.min(l.headersTimeoutMs, l.requestTimeoutMs) / 4)));
  return {
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    http: { headersTimeout: Math.min(l.headersTimeoutMs, l.requestTimeoutMs), connectionsCheckingInterval: checkEvery },
  };
}

const isUpgrade = (request: FastifyRequest): boolean => (request.raw as { upgrade?: boolean }).upgrade === true;

/**
 * Upgrade requests reach fastify through the WebSocket plugin's `upgrade`
 * listener, on a socket Node's HTTP server has already let go of: no parser,
 * no timeouts, no keep-alive handling, and nothing closes it after the
 * response. Only a WebSocket route takes the socket over; an upgrade on any
 * other route is refused before its body is read (the body bytes are not
 * delivered to an upgraded request anyway) and its socket closed once the
 * refusal is written.
 */
export function installUpgradeGuard(app: FastifyInstance): void {
  const wsRoutes = new Set<string>();
  app.addHook('onRoute', (route) => {
    const r = route as { wsHandler?: unknown; websocket?: unknown };
    if (r.wsHandler || r.websocket) wsRoutes.add(`GET ${route.url}`);
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!isUpgrade(request)) return;
    if (wsRoutes.has(`${request.method} ${request.routeOptions.url}`)) return;
    reply.header('connection', 'close');
    const where = wsRoutes.size ? `only ${[...wsRoutes].join(', ')} accepts` : 'this server accepts no';
    throw new AtsError('ATS_ERR_VALIDATION', `${request.method} ${clip(request.url)} is not a WebSocket endpoint: ${where} Upgrade requests`);
  });
  app.addHook('onResponse', async (request) => {
    if (isUpgrade(request)) request.raw.socket.destroySoon();
  });
}

/**
 * The body timeout: a request body that goes silent for `ms` fails with 408
 * ATS_ERR_REQUEST_TIMEOUT and its connection is closed (the rest of the body
 * never arrives, so the connection cannot serve another request). Node's
 * request timeout bounds the whole request; this catches a stalled body
 * sooner, and a declared chunk that is never sent.
 */
export function installBodyTimeout(app: FastifyInstance, ms: number): void {
  app.addHook('preParsing', async (request, reply, payload) => {
    const h = request.headers;
    if (!h['transfer-encoding'] && !(Number(h['content-length']) > 0)) return payload;
    const idle = new IdleTimeout(ms, () => {
      reply.header('connection', 'close');
      return new AtsError('ATS_ERR_REQUEST_TIMEOUT', `No part of the request body arrived for ${ms} ms`);
    });
    payload.on('error', (err) => idle.destroy(err));
    // The body's reader may stop reading before the end (a body longer than its Content-Length,
    // one over the limit) and take its error listener with it: the timer would then fire into an
    // error nobody listens to, and that crashes the process. Once the answer is out, the timer has
    // nothing left to guard; an error of it before then still reaches a reader that listens.
    idle.on('error', () => undefined);
    reply.raw.once('close', () => idle.destroy());
    return payload.pipe(idle);
  });
}

/** A pass-through that fails when no chunk passes for `ms` before the end. */
class IdleTimeout extends Transform {
  private timer: NodeJS.Timeout;
  constructor(private readonly ms: number, private readonly onIdle: () => Error) {
    super();
    this.timer = this.arm();
  }
  private arm(): NodeJS.Timeout {
    return setTimeout(() => this.destroy(this.onIdle()), this.ms).unref();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    clearTimeout(this.timer);
    done();
  }
  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    clearTimeout(this.timer);
    done(err);
  }
}

/**
 * Pipelined requests (sent on one connection before the answer to the one
 * before them) run one after another, and none runs after an answer that
 * closes the connection: Node parses and hands over every request it has
 * read, but the client, having read `Connection: close`, takes the ones
 * after it as not done and sends them again, so running them would do them
 * twice (a body that fails to parse, then a submit behind it). Registered
 * before every other hook: the order in which requests reach it must be the
 * order they came in (a later one ahead of an earlier one would wait for an
 * answer Node writes only after the earlier one's).
 */
export function installPipelineGate(app: FastifyInstance): void {
  const last = new WeakMap<Socket, Promise<void>>();
  const closing = new WeakSet<Socket>();
  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket;
    const before = last.get(socket);
    let done!: () => void;
    last.set(socket, new Promise<void>((resolve) => (done = resolve)));
    const settled = () => {
      if (!reply.raw.shouldKeepAlive || /close/i.test(String(reply.raw.getHeader('connection') ?? ''))) closing.add(socket);
      done();
    };
    reply.raw.once('finish', settled).once('close', settled);
    if (before) await before;
    if (closing.has(socket)) {
      reply.hijack();
      socket.destroy();
    }
  });
}

/**
 * A client that closes its side once its request is sent (shutdown(SHUT_WR),
 * `printf ... | nc -N`) is still answered, and the connection closed once
 * the answer is written. Node's server closed its own side at the client's
 * FIN: an answer not written by then (any that waits on the database) was
 * lost, while what the request did was done. `httpAllowHalfOpen` is the
 * server's own switch for this (Node's, not in its typings).
 */
export function installHalfCloseAnswers(app: FastifyInstance): void {
  (app.server as typeof app.server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
}

/** An Expect header Node answers itself (it writes `100 Continue`, then the request runs): as Node matches it. */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * An `Expect` of HTTP/1.1 other than `100-continue` is answered `417
 * ATS_ERR_EXPECTATION_FAILED` as the API answers every error, after the
 * checks before it (Host, Origin, key, rate): Node's own 417 had no body,
 * no code and no `x-request-id`, and no hook saw it. Node hands such a
 * request over as any other once the server listens for `checkExpectation`.
 */
export function installExpectationCheck(app: FastifyInstance): void {
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
  app.addHook('onRequest', async (request) => {
    const expect = request.headers.expect;
    if (expect === undefined || request.raw.httpVersion !== '1.1' || CONTINUE.test(expect)) return;
    throw new AtsError('ATS_ERR_EXPECTATION_FAILED', `Expect ${quoteCut(expect, 50)} is not met by this server: it takes 100-continue only`);
  });
}

/** How long a connection answered before its request's body had all arrived is read on: see installLingeringClose. */
export const LINGER_MS = 2_000;

/**
 * Lingering close. An answer sent before its request's body has all arrived
 * (a 413 over the limit, a 415, a 401, 403 or 429 refused before the body is
 * read) closes the connection: kept alive, it would read the rest for nothing,
 * and a body still trickling in when the request timeout came got a second
 * answer, a 408, after the first. But closed at once while the client still
 * sends, the kernel answers the bytes that keep coming with a reset, and a
 * reset that reaches the client before it has read the answer throws the
 * answer away: the client saw EPIPE or ECONNRESET, not the 413 (and the ats
 * client, which splits a batch refused as too large, gave up as if the
 * server were unreachable). So the connection is half-closed instead: the
 * answer goes out with a FIN, the rest of the body is read and dropped, and
 * the socket is destroyed once the client closes its side or the body ends
 * (and the answer is written), or `ms` after the answer at most.
 */
export function installLingeringClose(app: FastifyInstance, ms: number): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const req = request.raw;
    // `complete` is Node's (an injected request, which has none, arrives whole).
    if ((req as Partial<IncomingMessage>).complete !== false || isUpgrade(request) || !hasBody(request)) return payload;
    reply.header('connection', 'close');
    lingerOnClose(req, ms);
    return payload;
  });
}

const hasBody = (request: FastifyRequest): boolean =>
  request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length']) > 0;

/**
 * Node's HTTP server ends a connection whose answer said `Connection: close`
 * with `socket.destroySoon()` (end, then destroy once written) as soon as the
 * answer is written: for this socket, that one call lingers instead.
 */
function lingerOnClose(req: IncomingMessage, ms: number): void {
  const socket = req.socket;
  if (Object.hasOwn(socket, 'destroySoon')) return;
  socket.destroySoon = function lingeringDestroySoon(this: Socket) {
    delete (socket as Partial<Pick<Socket, 'destroySoon'>>).destroySoon;
    let clientDone = false;
    const destroy = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(destroy, ms).unref();
    const settle = () => {
      clientDone = true;
      if (socket.writableFinished) destroy();
    };
    socket.once('finish', () => clientDone && destroy());
    socket.once('end', settle);
    socket.once('close', () => clearTimeout(timer));
    if (req.complete) settle();
    else req.once('end', settle);
    // Dropped as it comes: nothing reads it any more (the body's reader stopped at the error).
    req.unpipe();
    req.resume();
    socket.end();
  };
}

/** Once close starts, in-flight requests get `drainMs`; then every connection left is cut. */
export function installCloseDrain(app: FastifyInstance, drainMs: number): void {
  app.addHook('preClose', async () => {
    const server = app.server;
    if (!server.listening) return;
    const cut = setTimeout(() => server.closeAllConnections(), drainMs).unref();
    server.once('close', () => clearTimeout(cut));
  });
}

/** Whether a response is already under way on this socket (Node's own field: no public accessor). */
export const responseStarted = (socket: Socket): boolean =>
  (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
