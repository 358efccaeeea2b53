/**
 * `ATS_METRICS_PORT`: `/metrics` on a port of its own, with node:http, for
 * processes whose roles serve no HTTP (relay, worker, timers), and `/healthz`
 * (200 while the process answers: a liveness probe for those processes). An
 * api process serves both on its API port too. Every path but `/healthz`
 * answers only the Host names the given check lets through (the API port's
 * rule for `/metrics`, passed in by cli/metrics.ts), else 421
 * ATS_ERR_HOST_NOT_ALLOWED.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ERRORS } from '../../engine/errors.js';

/** What renders the metrics text (PrometheusMetrics). */
export interface MetricsText {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface MetricsServer {
  /** `http://host:port` as bound (the port is the real one when 0 was asked). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The Host check: null when a request naming `host` (its Host header) is
 * answered, else why not (the message of its 421). Without one, every Host is.
 */
export type HostRefusal = (host: string | undefined) => string | null;

const ROUTES: ReadonlySet<string> = new Set(['/metrics', '/healthz']);

/** Connections the metrics port keeps open at once; beyond, a new one is closed as it comes. */
export const METRICS_MAX_CONNECTIONS = 64;

/**
 * Serves `GET /metrics` and `GET /healthz` (and nothing else: 404) on
 * `host:port`; `refuseHost` guards every path but `/healthz` (a liveness
 * probe names the pod's address). Resolves once listening.
 */
export async function serveMetrics(source: MetricsText, port: number, host: string, refuseHost: HostRefusal = () => null): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const refused = path === '/healthz' ? null : refuseHost(req.headers.host);
    if (refused !== null) {
      const { code, status } = ERRORS.ATS_ERR_HOST_NOT_ALLOWED;
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : JSON.stringify({ code, message: refused }));
      return;
    }
    if (!ROUTES.has(path)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: this port serves GET /metrics and GET /healthz\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : JSON.stringify({ status: 'ok' }));
      return;
    }
    source.metrics().then(
      (text) => res.writeHead(200, { 'content-type': source.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  // Scrapes are short; an idle kept-alive connection must not hold the close.
  server.keepAliveTimeout = 5000;
  // A scraper or a probe needs a connection or two, and a request a moment: a flood of connections, or a slow one,
  // holds little here (a process without the api role serves nothing else).
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port: bound } = server.address() as AddressInfo;
  const shown = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${shown}:${bound}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
