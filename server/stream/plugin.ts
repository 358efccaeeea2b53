/**
 * `GET /v1/stream`: the WebSocket stream (protocol v1: docs/stream.md) as an
 * encapsulated fastify plugin for `buildApp({ plugins })`.
 *
 * Each API instance runs one tail reader over `job_events` (tail.ts), and
 * one over `workflow_events` where the store keeps workflows: woken at once
 * by the commits of its own process (`wake()`, wired to the
 * TransitionService's and the WorkflowService's `onCommit`), and polling the
 * tables for the commits of other processes. Every instance reads the one table, so any instance can
 * serve any client and resume any cursor; nothing is registered on a broker
 * per instance.
 *
 * What one client can hold: at most `streamMaxPerKey` (server/deps.ts,
 * SecurityOptions) connections open at once per API key (per address
 * without one), the keys of a tenant other than the default together a quarter of the process's
 * `maxConnections`, and the process at most `maxConnections` (server/slots.ts).
 * One more upgrade is refused before it is accepted: an HTTP 429
 * ATS_ERR_TOO_MANY_STREAMS. A slot is given back when the connection's TCP
 * socket closes: a handshake that fails after the check gives it back too.
 *
 * Subprotocols: a browser cannot set `Authorization` on a WebSocket, so it
 * offers its key as a subprotocol, `Sec-WebSocket-Protocol: ats.v1,
 * ats.key.<key>` (the auth hook reads it there). The server selects `ats.v1`
 * and nothing else: the key is never echoed back in the handshake.
 *
 * The key is checked at the upgrade (the auth hook) and again every
 * `keyCheckMs` while the connection is open (key-check.ts): given `auth`, a
 * connection whose key is revoked, or one opened without a key while keys
 * are now required, is closed with 4401.
 */
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import type { Metrics } from '../../engine/metrics.js';
import type { Anomaly } from '../../engine/advisor/types.js';
import type { Clock, JobStore, Logger, WorkflowStore } from '../../engine/ports.js';
import { DEFAULT_SECURITY } from '../deps.js';
import { holderOf, tenantOfKey } from '../security.js';
import { Slots, slotLimits } from '../slots.js';
import { StreamHub } from './hub.js';
import { compileStreamOptions, type StreamOptions } from './options.js';
import { CLOSE } from './session.js';
import { keyChecker, type StreamAuth } from './key-check.js';

export interface StreamDeps {
  /** With the WorkflowStore's stream reads, the stream also sends workflow transitions (docs/stream.md). */
  store: JobStore & Partial<Pick<WorkflowStore, 'readWorkflowEventsAfter' | 'lastWorkflowEventId' | 'lastIssuedWorkflowEventId'>>;
  clock: Clock;
  logger: Logger;
  options?: StreamOptions;
  /** Told of each slow consumer closed (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'streamSlowConsumer'>;
  /** Stream connections open at once in this process, whoever holds them. @defaultValue MAX_STREAM_CONNECTIONS */
  maxConnections?: number;
  /**
   * The API's keys: the same store and mode as `buildApp`'s `auth`. Given,
   * every open connection's key is checked again every `keyCheckMs`.
   * Omit only for an API without keys: a key revoked would keep its open
   * streams. @defaultValue none
   */
  auth?: StreamAuth;
}

/**
 * The process-wide cap on open stream connections. Each costs a socket, a
 * session and its send buffer (up to the stream's slow-consumer limit); a
 * thousand is far above what one console per operator needs, and bounds
 * what a flood of upgrades can hold.
 */
export const MAX_STREAM_CONNECTIONS = 1000;

/** The subprotocol of stream protocol v1: the one a client offering subprotocols gets. */
export const STREAM_SUBPROTOCOL = 'ats.v1';

/** ws's `handleProtocols`: `ats.v1` when offered; never another (an `ats.key.<key>` offer stays unanswered). */
export const selectSubprotocol = (offered: Set<string>): string | false => (offered.has(STREAM_SUBPROTOCOL) ? STREAM_SUBPROTOCOL : false);

/** The plugin, plus `wake()`: call it after each commit of this process so live clients get it at once. */
export interface StreamPlugin {
  (app: FastifyInstance): Promise<void>;
  /** A commit happened in this process: the tail reads now instead of at its next poll. */
  wake(): void;
  /** WebSocket clients connected now (metrics). */
  clients(): number;
  /** An advisor anomaly, sent live to the clients whose filter wants it. */
  insight(anomaly: Anomaly): void;
}

/**
 * The stream plugin. When the app closes, it closes every client with 1001
 * and stops its tail reader (an `onClose` hook).
 */
export function streamPlugin(deps: StreamDeps): StreamPlugin {
  const opts = compileStreamOptions(deps.options);
  const hubs = new Set<StreamHub>();
  const plugin = async function stream(app: FastifyInstance): Promise<void> {
    await app.register(websocket, {
      options: { maxPayload: opts.hardMaxMessageBytes, handleProtocols: selectSubprotocol },
      preClose: async function closeClients(this: FastifyInstance) {
        await closeAll(this.websocketServer, deps.clock, CLOSE_GRACE_MS);
      },
      errorHandler: (error, socket) => {
        deps.logger.debug('stream: socket error', errorFields(error));
        socket.terminate();
      },
    });
    const metrics = deps.metrics;
    const onSlowConsumer = metrics && (() => metrics.streamSlowConsumer());
    // Among the app's key caches: a key revoked through this app is read again at once (server/auth.ts KeyCaches).
    const standing = deps.auth && keyChecker(deps.auth, deps.clock, app.hasDecorator('atsKeyCaches') ? app.atsKeyCaches : undefined);
    const hub = new StreamHub({ store: deps.store, clock: deps.clock, logger: deps.logger, onSlowConsumer, ...(standing ? { standing } : {}) }, opts);
    let unchecked = false;
    const perKey = app.hasDecorator('atsSecurity') ? app.atsSecurity.streamMaxPerKey : DEFAULT_SECURITY.streamMaxPerKey;
    const slots = new Slots(slotLimits(perKey, deps.maxConnections ?? MAX_STREAM_CONNECTIONS), { code: 'ATS_ERR_TOO_MANY_STREAMS', what: 'stream connections', free: 'close one first' });
    const release = new WeakMap<object, () => void>();
    app.route({
      method: 'GET',
      url: '/v1/stream',
      schema: { hide: true },
      // After the auth hook (request.principal is known), before the upgrade is accepted.
      preHandler: async (request, reply) => {
        if (!request.ws) return;
        // ws would refuse these itself, with a bare text/html 400 and no code: refused here as the API refuses bad input.
        const problem = handshakeProblem(request.headers);
        if (problem) {
          if (problem.header === 'Sec-WebSocket-Version') reply.header('sec-websocket-version', '13, 8');
          reply.header('connection', 'close');
          throw new AtsError('ATS_ERR_VALIDATION', problem.message);
        }
        const giveBack = slots.take(holderOf(request), tenantOfKey(request));
        release.set(request.raw, giveBack);
        const tcp = request.raw.socket as Socket | undefined;
        if (!tcp) return; // fastify's injectWS: the WebSocket's close gives it back
        if (tcp.destroyed) giveBack();
        else tcp.once('close', giveBack);
      },
      handler: async () => {
        throw new AtsError('ATS_ERR_VALIDATION', 'GET /v1/stream is a WebSocket endpoint: connect with an Upgrade: websocket request');
      },
      wsHandler: (socket, request) => {
        const giveBack = release.get(request.raw);
        if (giveBack) socket.once('close', giveBack);
        if (!standing && request.principal?.keyId && !unchecked) {
          // The app has keys and the plugin was not given them: say so once, loudly.
          unchecked = true;
          deps.logger.warn('stream: the plugin was given no auth, so open connections\' keys are not re-checked: a revoked key keeps its open streams');
        }
        hub.accept(socket, (request.query ?? {}) as Record<string, unknown>, request.principal);
      },
    });

    await hub.start();
    hubs.add(hub);
    app.addHook('onClose', async () => {
      hubs.delete(hub);
      await hub.stop();
    });
  };
  return Object.assign(plugin, {
    wake: () => {
      for (const hub of hubs) hub.wake();
    },
    insight: (a: Anomaly) => {
      for (const hub of hubs) hub.insight(a);
    },
    clients: () => {
      let n = 0;
      for (const hub of hubs) n += hub.size;
      return n;
    },
  });
}

/** A subprotocol's name: an HTTP token (RFC 7230). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** ws's key check: 16 bytes in base64. */
const HANDSHAKE_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * What is wrong with an upgrade request's WebSocket headers, or null: the
 * checks ws's `handleUpgrade` makes before it accepts one (which it answers
 * with a bare text/html 400, no error code), made before the upgrade so that
 * the client gets the API's JSON error (a 400 ATS_ERR_VALIDATION) instead.
 */
export function handshakeProblem(headers: Readonly<Record<string, string | string[] | undefined>>): { header: string; message: string } | null {
  const one = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  if (one('upgrade')?.toLowerCase() !== 'websocket') return { header: 'Upgrade', message: 'The stream takes an Upgrade: websocket request' };
  if (!HANDSHAKE_KEY.test(one('sec-websocket-key') ?? '')) {
    return { header: 'Sec-WebSocket-Key', message: 'A WebSocket upgrade needs a Sec-WebSocket-Key header of 16 bytes in base64' };
  }
  const version = one('sec-websocket-version');
  if (version !== '13' && version !== '8') {
    return { header: 'Sec-WebSocket-Version', message: 'A WebSocket upgrade needs a Sec-WebSocket-Version header of 13 (or 8)' };
  }
  const offered = one('sec-websocket-protocol');
  if (offered !== undefined) {
    const names = offered.split(',').map((p) => p.replace(/^[ \t]+|[ \t]+$/g, ''));
    if (!names.every((p) => TOKEN.test(p)) || new Set(names).size !== names.length) {
      return { header: 'Sec-WebSocket-Protocol', message: 'The Sec-WebSocket-Protocol header must be a comma-separated list of distinct subprotocol names' };
    }
  }
  return null;
}

/** How long clients get to answer the 1001 close before their sockets are cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * Closes every client with 1001 and waits for their close handshakes, at most
 * `graceMs`, then cuts the rest: an unresponsive client must not hold the
 * server's shutdown for ws's 30 s close timeout.
 */
async function closeAll(wss: FastifyInstance['websocketServer'], clock: Clock, graceMs: number): Promise<void> {
  for (const client of wss.clients) client.close(CLOSE.goingAway.code, CLOSE.goingAway.reason);
  const graceOver = new AbortController();
  const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
  await Promise.race([closed, clock.sleep(graceMs, graceOver.signal).catch(() => undefined)]);
  graceOver.abort();
  for (const client of wss.clients) client.terminate();
}
