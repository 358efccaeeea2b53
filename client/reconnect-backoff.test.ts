/**
 * A watch whose reconnects are each confirmed and then dropped at once (the
 * server sends `subscribed`, then its replay's read fails: ATS_ERR_STORE_UNAVAILABLE
 * and a close with 1011, as during a database outage) backs off as its
 * reconnects keep failing: the pause doubles from reconnect.minMs up to
 * reconnect.maxMs, as for reconnects that fail before the subscription holds.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { createClient, type WebSocketConstructor } from './index.js';
import { WebSocket } from 'ws';

const CURSOR = Buffer.from('v1:5', 'utf8').toString('base64url');

test('reconnects that are subscribed and dropped at once back off, doubling up to maxMs', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const at: number[] = [];
  wss.on('connection', (ws) => {
    at.push(Date.now());
    const first = at.length === 1;
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { op: string };
      if (msg.op !== 'subscribe') return;
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: CURSOR }));
      // The first connection holds a moment; each later one is confirmed, then its replay fails.
      setTimeout(() => {
        ws.send(JSON.stringify({ kind: 'error', code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }));
        ws.close(1011, 'stream read failed: resume with your last cursor');
      }, first ? 50 : 0);
    });
  });
  const url = `http://127.0.0.1:${(wss.address() as { port: number }).port}`;
  const w = createClient({ url, WebSocket: WebSocket as unknown as WebSocketConstructor }).watch({}, { reconnect: { minMs: 50, maxMs: 800 } });
  try {
    await w.ready;
    await new Promise((r) => setTimeout(r, 2_000));
    // Doubling pauses (50, 100, 200, 400, 800, 800...) allow about 6 connections in 2 s; a pause stuck at minMs about 40.
    assert.ok(at.length <= 8, `${at.length} connections in 2 s: the pauses were ${at.slice(1).map((t, i) => t - at[i]!).join(', ')} ms`);
  } finally {
    w.close();
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
  }
});
