/**
 * `ats start` with a low ATS_HTTP_MAX_CONNECTIONS (an embedded scheduler, in
 * process): streams take at most half of the connections, the rest refused
 * with 429 ATS_ERR_TOO_MANY_STREAMS, so requests (a health probe) are still
 * answered while the streams are full.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { compose, type System } from '../cli/compose.js';
import { configFrom } from '../cli/start.js';

const MAX = 64;
let system: System;
let url = '';
const dataDir = mkdtempSync(join(tmpdir(), 'ats-stream-cap-test-'));

before(async () => {
  const config = configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_HTTP_MAX_CONNECTIONS: String(MAX) }, []);
  system = await compose(config, { registry: registerDemoHandlers(new HandlerRegistry()), logger: silentLogger });
  url = (await system.start()).url!.replace('localhost', '127.0.0.1');
});

after(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Opens a stream: 'open', or the status its upgrade was refused with. */
function openStream(): Promise<{ ws: WebSocket; outcome: 'open' | number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/stream`, 'ats.v1');
    ws.once('open', () => resolve({ ws, outcome: 'open' }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws, outcome: res.statusCode ?? 0 }));
    ws.once('error', () => undefined);
  });
}

test('streams take at most half of ATS_HTTP_MAX_CONNECTIONS; requests are answered while they are full', async () => {
  const streams = [];
  try {
    for (let i = 0; i < MAX / 2; i++) {
      const s = await openStream();
      streams.push(s.ws);
      assert.equal(s.outcome, 'open', `stream ${i + 1}`);
    }
    const refused = await openStream();
    streams.push(refused.ws);
    assert.equal(refused.outcome, 429, 'one more stream than half the connections');
    const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(health.status, 200);
  } finally {
    for (const ws of streams) ws.terminate();
  }
});
