/**
 * `ATS_METRICS_PORT`: `/metrics` on a port of its own, with node:http, for
 * processes whose roles serve no HTTP (relay, worker, timers), and `/healthz`
 * (200 while the process answers: a liveness probe for those processes). An
 * api process serves both on its API port too.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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

const ROUTES: ReadonlySet<string> = new Set(['/metrics', '/healthz']);

/** Serves `GET /metrics` and `GET /healthz` (and nothing else: 404) on `host:port`. Resolves once listening. */
export async function serveMetrics(source: MetricsText, port: number, host: string): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
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
