/**
 * How long a slow client can hold a connection to the API with the default
 * settings (or ATS_HTTP_* from the environment): starts the app on a temp
 * SQLite store, opens one client per kind of slowness, and prints when the
 * server closed each. Loopback only; ends by itself.
 *
 *   node --import tsx scripts/slow-clients.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { compileConfig, rawFromEnv } from '../cli/config.js';
import { mathRandom, systemClock, ulidIds } from '../engine/system.js';
import { TransitionService } from '../engine/transitions.js';
import { buildApp } from '../server/app.js';

const config = compileConfig(rawFromEnv(process.env));
const dir = mkdtempSync(join(tmpdir(), 'ats-slow-clients-'));
const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
await store.migrate();
const app = await buildApp({
  transitions: new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() }),
  store, clock: systemClock, checks: { database: () => store.ping() }, limits: config.api, defaults: config.defaults,
});
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as { port: number }).port;
const POST = 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';

/** Opens a connection, sends `first`, then `drip` every `everyMs`; resolves with how long the server kept it and its status. */
function hold(name: string, first: string, drip?: { text: string; everyMs: number }): Promise<string> {
  return new Promise((resolve) => {
    const started = Date.now();
    let got = '';
    const s = connect(port, '127.0.0.1', () => s.write(first));
    const timer = drip && setInterval(() => s.writable && s.write(drip.text), drip.everyMs);
    s.on('data', (d) => (got += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      resolve(`${name.padEnd(46)} held ${((Date.now() - started) / 1000).toFixed(1)} s, answer: ${got.split('\r\n')[0] || '(none)'}`);
    });
  });
}

console.log(`limits: ${JSON.stringify(config.api)}`);
const lines = await Promise.all([
  hold('headers never finish', 'GET /v1/jobs HTTP/1.1\r\nHost: x\r\n'),
  hold('headers trickle (1 byte / 2 s)', 'GET /v1/jobs HTTP/1.1\r\nHost: x\r\n', { text: 'X', everyMs: 2000 }),
  hold('body declared, never sent', `${POST}Content-Length: 1000\r\n\r\n`),
  hold('chunk declared huge, never sent', `${POST}Transfer-Encoding: chunked\r\n\r\nfffffff\r\n`),
  hold('body trickle (1 byte / 5 s)', `${POST}Content-Length: 100000\r\n\r\n`, { text: ' ', everyMs: 5000 }),
  hold('idle kept-alive after one request', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'),
]);
for (const l of lines) console.log(l);
await app.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
