/**
 * `GET /v1/stream`: the WebSocket stream (protocol v1, notes/STREAM.md) as an
 * encapsulated fastify plugin for `buildApp({ plugins })`.
 *
 * Each API instance runs one tail reader over `job_events` and follows
 * `ats.events` in a consumer group of its own (`ats-stream-<instanceId>`),
 * so every instance sees every transition and any instance can serve any
 * client. The log messages only wake the tail; events always come from the
 * table (see tail.ts and cursor.ts for why).
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import { TOPICS, type Clock, type EventLog, type JobStore, type Logger, type Subscription } from '../../engine/ports.js';
import { StreamHub } from './hub.js';
import { compileStreamOptions, type CompiledStreamOptions, type StreamOptions } from './options.js';
import { CLOSE } from './session.js';

export interface StreamDeps {
  store: JobStore;
  log: EventLog;
  clock: Clock;
  logger: Logger;
  /** Unique per running API instance (names its consumer group on `ats.events`). */
  instanceId: string;
  options?: StreamOptions;
}

/** The consumer group an instance follows `ats.events` with: its own, so it gets every message. */
export const streamGroupId = (instanceId: string): string => `ats-stream-${instanceId}`;

/**
 * The stream plugin. When the app closes, it closes every client with 1001,
 * stops its tail reader and leaves its consumer group (an `onClose` hook).
 */
export function streamPlugin(deps: StreamDeps): (app: FastifyInstance) => Promise<void> {
  const opts = compileStreamOptions(deps.options);
  return async function stream(app: FastifyInstance): Promise<void> {
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
    const hub = new StreamHub({ store: deps.store, clock: deps.clock, logger: deps.logger }, opts);
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
    const wakeups = followEvents(deps, opts, () => hub.tail.wake());
    app.addHook('onClose', async () => {
      await wakeups.stop();
      await hub.stop();
    });
    await wakeups.ready;
  };
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

/**
 * Consumes `ats.events` as wake-ups for the tail. If the log cannot be joined
 * now, the stream still works on the tail's fallback poll, and joining is
 * retried in the background until the app closes.
 */
function followEvents(deps: StreamDeps, opts: CompiledStreamOptions, wake: () => void): { ready: Promise<void>; stop(): Promise<void> } {
  const stopping = new AbortController();
  let subscription: Subscription | null = null;
  const join = () => deps.log.consume({
    topic: TOPICS.events,
    groupId: streamGroupId(deps.instanceId),
    fromBeginning: false,
    handle: async () => wake(),
  });
  const retry = async () => {
    while (!stopping.signal.aborted && !subscription) {
      await deps.clock.sleep(opts.errorBackoffMs * 5, stopping.signal).catch(() => undefined);
      if (stopping.signal.aborted) return;
      subscription = await join().catch((err) => {
        deps.logger.warn('stream: cannot follow ats.events yet; polling meanwhile', errorFields(err));
        return null;
      });
    }
  };
  let retrying: Promise<void> | null = null;
  const ready = join().then(
    (s) => void (subscription = s),
    (err) => {
      deps.logger.warn('stream: cannot follow ats.events; polling meanwhile, retrying', errorFields(err));
      retrying = retry();
    },
  );
  return {
    ready,
    async stop() {
      stopping.abort();
      await ready;
      await retrying;
      await subscription?.stop();
    },
  };
}
