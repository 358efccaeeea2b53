/** A test's stand-in server on 127.0.0.1: listened on a free port, and closed with its connections. */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { WebSocketServer } from 'ws';

/** Listens `server` on a free port of 127.0.0.1; its URL, `http://127.0.0.1:<port>`. */
export async function listenLocal(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Ends every connection of `server` (kept-alive ones too) and closes it. */
export async function closeLocal(server: HttpServer): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

/**
 * Listens `server` as {@link listenLocal} does, its WebSocket upgrades to
 * `/v1/stream` handed to `wss` while `streaming()` holds (any other upgrade is
 * answered 404). Its URL, and a close that ends every WebSocket and connection.
 */
export async function listenLocalStream(
  server: HttpServer,
  wss: WebSocketServer,
  streaming: () => boolean = () => true,
): Promise<{ url: string; close: () => Promise<void> }> {
  server.on('upgrade', (req, socket, head) => {
    if (!streaming() || req.url !== '/v1/stream') return void socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  const url = await listenLocal(server);
  const close = async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await closeLocal(server);
  };
  return { url, close };
}
