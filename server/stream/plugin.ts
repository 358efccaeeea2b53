/**
 * `GET /v1/stream`: the WebSocket stream (protocol v1: docs/stream.md) as an
 * encapsulated fastify plugin for `buildApp({ plugins })`.
 *
 * Each API instance runs one tail reader over `job_events` (tail.ts): woken
 * at once by the commits of its own process (`wake()`, wired to the
 * TransitionService's `onCommit`), and polling the table for the commits of
 * other processes. Every instance reads the one table, so any instance can
 * serve any client and resume any cursor; nothing is registered on a broker
 * per instance.
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import type { Metrics } from '../../engine/metrics.js';
import type { Anomaly } from '../../engine/advisor/types.js';
import type { Clock, JobStore, Logger } from '../../engine/ports.js';
import { StreamHub } from './hub.js';
import { compileStreamOptions, type StreamOptions } from './options.js';
import { CLOSE } from './session.js';

export interface StreamDeps {
  store: JobStore;
  clock: Clock;
  logger: Logger;
  options?: StreamOptions;
  /** Told of each slow consumer closed (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'streamSlowConsumer'>;
}

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
      options: { maxPayload: opts.hardMaxMessageBytes },
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
    const hub = new StreamHub({ store: deps.store, clock: deps.clock, logger: deps.logger, onSlowConsumer }, opts);
    app.route({
      method: 'GET',
      url: '/v1/stream',
      schema: { hide: true },
      handler: async () => {
        throw new AtsError('ATS_ERR_VALIDATION', 'GET /v1/stream is a WebSocket endpoint: connect with an Upgrade: websocket request');
      },
      wsHandler: (socket, request) => {
        hub.accept(socket, (request.query ?? {}) as Record<string, unknown>);
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
      for (const hub of hubs) hub.tail.wake();
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
