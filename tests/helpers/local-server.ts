/** A test's stand-in server on 127.0.0.1: listened on a free port, and closed with its connections. */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';

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
