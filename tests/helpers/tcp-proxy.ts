/**
 * A TCP proxy a test puts between a client and a real server (MariaDB), so it
 * can make the server unreachable without stopping it: `cut()` stops
 * accepting and resets every open connection, `restore()` listens again on
 * the same port. `stall()` keeps every connection open but forwards nothing
 * (a server that stops answering, as behind a network partition), `unstall()`
 * forwards again.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1). */
  port: number;
  /** Connections made through the proxy so far. */
  connections(): number;
  /** Unreachable: refuse new connections and reset the open ones. */
  cut(): Promise<void>;
  /** Reachable again, on the same port. */
  restore(): Promise<void>;
  /** Connections stay open (new ones too), but no byte goes through in either direction. */
  stall(): void;
  /** Bytes go through again, those held back first. */
  unstall(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let made = 0;
  let stalled = false;
  const hold = ([client, upstream]: [Socket, Socket]) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };
  const flow = ([client, upstream]: [Socket, Socket]) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const make = (): Server =>
    createServer((client) => {
      made++;
      const upstream = createConnection(target);
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      open.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        open.delete(client);
        open.delete(upstream);
        pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      if (stalled) hold(pair);
      else flow(pair);
    });
  const listen = (srv: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve((srv.address() as { port: number }).port));
    });
  let server: Server | null = make();
  const port = await listen(server, 0);
  const stop = async () => {
    const s = server;
    server = null;
    // A reset, as a network that drops the connection sends; a socket already closing is only destroyed
    // (Node 20's resetAndDestroy() on one leaves its handle open, and the test process with it).
    for (const sock of open) {
      if (sock.readyState === 'open') sock.resetAndDestroy();
      else sock.destroy();
    }
    open.clear();
    pairs.clear();
    if (s) await new Promise((r) => s.close(r));
  };
  return {
    port,
    connections: () => made,
    cut: stop,
    async restore() {
      if (server) return;
      server = make();
      await listen(server, port);
    },
    stall() {
      if (stalled) return;
      stalled = true;
      for (const pair of pairs) hold(pair);
    },
    unstall() {
      if (!stalled) return;
      stalled = false;
      for (const pair of pairs) flow(pair);
    },
    close: stop,
  };
}
