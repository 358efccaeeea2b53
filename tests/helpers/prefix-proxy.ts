/**
 * A reverse proxy a test puts in front of a server, as nginx does with
 * `location /prefix/ { proxy_pass http://server/; }` and its WebSocket
 * settings: it serves the server under a path prefix, strips the prefix,
 * passes the Host the client sent on, and passes WebSocket upgrades. A
 * request outside the prefix is answered 404 here and remembered
 * (`outside`): a page that names the server's own paths (`/v1/...`) instead
 * of relative ones shows there.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface PrefixProxy {
  /** `http://127.0.0.1:<port><prefix>`: the server's root as the client reaches it. */
  url: string;
  /** The requests made outside the prefix (method and path). */
  outside: string[];
  close(): Promise<void>;
}

export async function startPrefixProxy(target: { host: string; port: number }, prefix: string): Promise<PrefixProxy> {
  const outside: string[] = [];
  const sockets = new Set<Socket>();
  const inner = (req: IncomingMessage): string | null => {
    const url = req.url ?? '/';
    if (!url.startsWith(`${prefix}/`)) {
      outside.push(`${req.method} ${url}`);
      return null;
    }
    return url.slice(prefix.length);
  };
  const server: Server = createServer((req, res) => {
    const path = inner(req);
    if (path === null) return void res.writeHead(404).end();
    const out = httpRequest({ host: target.host, port: target.port, method: req.method, path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    sockets.add(client);
    const path = inner(req);
    if (path === null) return void client.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    const upstream = connect(target.port, target.host, () => {
      const lines = [`${req.method} ${path} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    sockets.add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); };
    upstream.on('error', end).on('close', end);
    client.on('error', end).on('close', end);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    outside,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
