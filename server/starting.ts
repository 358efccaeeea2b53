/**
 * The api role's port while the process starts (the store migrating, or
 * waiting up to 15 minutes for another process's migration, the topics being
 * made), before the API itself listens: `GET /healthz` answers 200 (the
 * process is alive and starting: an orchestrator's liveness probe must not
 * restart it, which would cut a long migration again and again), `GET
 * /readyz` and every other request 503 `ATS_ERR_NOT_READY` with Retry-After,
 * so no traffic is sent to it yet. node:http, no fastify: it serves before
 * anything the API needs exists. The composition root closes it just before
 * the API listens on the same port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RETRY_AFTER_S } from './error-handler.js';

export interface StartingServer {
  /** The port bound (the real one when 0 was asked). */
  readonly port: number;
  /** Stops listening and cuts its connections; resolves once the port is free. */
  close(): Promise<void>;
}

const NOT_READY = JSON.stringify({ code: 'ATS_ERR_NOT_READY', message: 'Not ready: the process is starting (migrating the database)' });

/** Listens on `host:port`; rejects (EADDRINUSE, ...) when the port cannot be bound. */
export async function serveWhileStarting(port: number, host: string): Promise<StartingServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = { 'content-type': 'application/json; charset=utf-8', connection: 'close' };
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, json).end(req.method === 'HEAD' ? undefined : JSON.stringify({ status: 'ok' }));
      return;
    }
    res.writeHead(503, { ...json, 'retry-after': String(RETRY_AFTER_S) }).end(req.method === 'HEAD' ? undefined : NOT_READY);
  });
  // A probe's connection is closed after its answer: none outlives the handover to the API.
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    port: bound,
    close: () => (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })),
  };
}
