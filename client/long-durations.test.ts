/**
 * The client's durations longer than a timer holds (2^31-1 ms, about 24.8
 * days: Node fires a longer one after 1 ms). A month's request timeout
 * waits for the answer instead of timing out at once, and a watch whose
 * reconnect pause doubles past 2^31 ms keeps pausing between tries instead of
 * reconnecting without a pause.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { createClient } from './index.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

let server: Server;
let url: string;
let upgrades = 0;
before(async () => {
  server = createServer((req, res) => {
    // Answers after 100 ms, as a busy server does.
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ total: 0, byState: {}, byType: {}, byQueue: {} })), 100);
  });
  // The stream: every upgrade is refused (503), as while the server's database is down.
  server.on('upgrade', (_req, socket) => {
    upgrades++;
    socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
  });
  url = await listenLocal(server);
});
after(() => closeLocal(server));

test('a client with a 30-day request timeout waits for a 100 ms answer', async () => {
  const client = createClient({ url, timeoutMs: 30 * 86_400_000, retries: 0 });
  const stats = await client.stats();
  assert.equal(stats.total, 0);
});

test('a watch whose reconnect pauses are 25 days or more keeps pausing between tries', async () => {
  // Pauses from 2^31 ms (24.9 days) up to a month: each overflows setTimeout. With { minMs: 1000,
  // maxMs: a month } the same happens after 21 failed tries in a row (the pause doubles past 2^31 ms).
  const client = createClient({ url, retries: 0 });
  upgrades = 0;
  const w = client.watch({}, { retryFirstConnect: true, reconnect: { minMs: 2 ** 31, maxMs: 30 * 86_400_000 }, onNotice: () => undefined });
  void w.ready?.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  w.close();
  // One try at once; the next after 2^31 ms: nothing more in half a second.
  assert.ok(upgrades <= 2, `${upgrades} connection tries in 500 ms`);
});
