/**
 * A watch that has been subscribed and then reconnects to a server that
 * refuses its cursor with ATS_ERR_BAD_CURSOR (the server's database was reset,
 * or restored from an older backup: the cursor names a position beyond every
 * event it has issued) ends with that error: retrying the same cursor cannot
 * succeed. A reconnect refused with ATS_ERR_STORE_UNAVAILABLE is still retried.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { ApiError, createClient, type WebSocketConstructor } from './index.js';

const cursor = (id: number) => Buffer.from(`v1:${id}`, 'utf8').toString('base64url');

/**
 * A stream server whose first connection subscribes, sends one event and
 * closes with 1001 (a restart); every later subscribe is answered by `later(n)`
 * (n: 2 for the second connection), an error message the socket stays open after, or null to subscribe.
 */
async function restartingServer(later: (n: number) => string | null) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const subscribes: Array<string | undefined> = [];
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { op: string; cursor?: string };
      if (msg.op !== 'subscribe') return;
      subscribes.push(msg.cursor);
      const n = subscribes.length;
      const refusal = n === 1 ? null : later(n);
      if (refusal) return void ws.send(JSON.stringify({ kind: 'error', code: refusal, message: `refused with ${refusal}` }));
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: msg.cursor ?? cursor(7) }));
      if (n !== 1) return;
      ws.send(JSON.stringify({
        kind: 'event', cursor: cursor(8), jobId: '01J00000000000000000000001', seq: 1, type: 'SUBMITTED', from: null, to: 'pending',
        at: new Date(0).toISOString(), data: {}, jobType: 'demo.echo', queue: 'default',
      }));
      setTimeout(() => ws.close(1001, 'server going away'), 20);
    });
  });
  const url = `http://127.0.0.1:${(wss.address() as { port: number }).port}`;
  const close = async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
  };
  return { url, subscribes, close };
}

/** `p`'s outcome, or 'pending' after `ms`. */
const within = <T>(p: Promise<T>, ms: number): Promise<T | 'pending'> =>
  Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms).unref())]);

test('a reconnect whose cursor is refused with ATS_ERR_BAD_CURSOR ends the watch with that error, not retried', async () => {
  const server = await restartingServer(() => 'ATS_ERR_BAD_CURSOR');
  const notices: string[] = [];
  const w = createClient({ url: server.url, WebSocket: WebSocket as unknown as WebSocketConstructor })
    .watch({}, { reconnect: { minMs: 20, maxMs: 40 }, onNotice: (m) => notices.push(m) });
  try {
    await w.ready;
    const first = await w.next();
    assert.equal(first.done, false);
    const ended = await within(w.next().then(() => assert.fail('the iterator finished without the error'), (e: unknown) => e), 2_000);
    assert.notEqual(ended, 'pending', `the watch went on retrying: ${server.subscribes.length} subscribes, notices:\n${notices.join('\n')}`);
    assert.ok(ended instanceof ApiError && ended.code === 'ATS_ERR_BAD_CURSOR', String(ended));
    assert.match(ended.message, /refused with ATS_ERR_BAD_CURSOR/);
    assert.deepEqual(server.subscribes, [undefined, cursor(8)], 'one reconnect, with the last cursor; none after the refusal');
  } finally {
    w.close();
    await server.close();
  }
});

test('a reconnect refused with ATS_ERR_STORE_UNAVAILABLE is still retried, and resumes from the last cursor', async () => {
  const server = await restartingServer((n) => (n === 2 ? 'ATS_ERR_STORE_UNAVAILABLE' : null));
  const connected: string[] = [];
  const w = createClient({ url: server.url, WebSocket: WebSocket as unknown as WebSocketConstructor })
    .watch({}, { reconnect: { minMs: 20, maxMs: 40 }, onConnection: (s) => connected.push(s) });
  try {
    await w.ready;
    await w.next();
    const deadline = Date.now() + 2_000;
    while (connected.filter((s) => s === 'subscribed').length < 2) {
      assert.ok(Date.now() < deadline, `not subscribed again: ${connected.join(', ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(server.subscribes, [undefined, cursor(8), cursor(8)]);
  } finally {
    w.close();
    await server.close();
  }
});
