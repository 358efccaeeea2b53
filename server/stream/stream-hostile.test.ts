/**
 * Hostile WebSocket traffic on a server that requires keys: a thousand
 * connections opened and dropped (half of them mid-subscribe, without a close
 * frame), unauthenticated upgrades, and garbage frames. Afterwards no client
 * is left on the server, memory is back near where it was, and a fresh client
 * is served. (Malformed and oversized messages of one client: stream.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import { WebSocket } from 'ws';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { silentLogger } from '../../engine/logger.js';
import { TransitionService } from '../../engine/transitions.js';
import { TEST_DEFAULTS, testClock } from '../../tests/helpers/app.js';
import { authWith, MemoryKeyStore } from '../../tests/helpers/keys.js';
import { TestClient } from '../../tests/helpers/stream.js';
import { buildApp } from '../app.js';
import { streamPlugin, type StreamPlugin } from './plugin.js';

const CONNECTIONS = 1000;
/** Open at once: below the per-key cap, so none is refused for it. */
const WAVE = 25;

describe('the stream under a thousand connections opened and dropped', () => {
  let app: FastifyInstance;
  let stream: StreamPlugin;
  let transitions: TransitionService;
  let url = '';
  let dir = '';
  let store: ReturnType<typeof createSqliteStore>;
  const keys = new MemoryKeyStore();
  let headers: { authorization: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-stream-hostile-'));
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    headers = (await keys.make('acme', ['read', 'submit'])).headers;
    const ulid = monotonicFactory();
    stream = streamPlugin({ store, clock: testClock, logger: silentLogger });
    transitions = new TransitionService({
      store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() }, onCommit: () => stream.wake(),
    });
    app = await buildApp({
      transitions, store, clock: testClock, checks: { database: () => store.ping() }, limits: { bodyLimitBytes: 1024 * 1024 },
      defaults: TEST_DEFAULTS, auth: authWith(keys), plugins: [stream],
    });
    url = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws')}/v1/stream`;
  });
  after(async () => {
    await app?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens one connection and drops it: abruptly (no close frame) on odd `i`, with a close frame on even. */
  function openAndDrop(i: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.on('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`connection ${i} refused: ${res.statusCode}`)));
      ws.once('open', () => {
        ws.send(JSON.stringify({ op: 'subscribe', filter: {} }));
        if (i % 2 === 1) {
          ws.terminate();
          resolve();
        } else {
          ws.once('message', () => ws.close(1000));
          ws.once('close', () => resolve());
        }
      });
    });
  }

  const settle = async (until: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!until()) {
      assert.ok(Date.now() < deadline, what);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  test('every connection is let go; memory comes back; a new client is served', async () => {
    globalThis.gc?.();
    const baseline = process.memoryUsage().heapUsed;
    for (let i = 0; i < CONNECTIONS; i += WAVE) {
      await Promise.all(Array.from({ length: Math.min(WAVE, CONNECTIONS - i) }, (_, j) => openAndDrop(i + j)));
    }
    await settle(() => stream.clients() === 0, `clients left on the server: ${stream.clients()}`);
    globalThis.gc?.();
    const grown = process.memoryUsage().heapUsed - baseline;
    console.log(`stream: ${CONNECTIONS} connections opened and dropped; heap ${grown >= 0 ? '+' : ''}${(grown / 1048576).toFixed(1)} MiB after`);
    assert.ok(grown < 64 * 1048576, `heap grew ${(grown / 1048576).toFixed(1)} MiB`);

    const client = await TestClient.connect(url, { headers });
    try {
      await client.subscribe({});
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {} }, headers });
      assert.equal(res.statusCode, 201, res.body);
      const id = res.json().id as string;
      await client.waitFor((ms) => ms.find((m) => m.kind === 'event' && m.jobId === id), 10_000, 'the new job\'s event');
    } finally {
      await client.close();
    }
  });

  test('unauthenticated upgrades and garbage after the handshake hold nothing open', async () => {
    const refused = await Promise.all(Array.from({ length: 100 }, () => new Promise<number>((resolve) => {
      const ws = new WebSocket(url);
      ws.on('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => resolve(101));
    })));
    assert.deepEqual([...new Set(refused)], [401]);
    const garbage = await TestClient.connect(url, { headers });
    garbage.ws.send(Buffer.from([0xff, 0xfe, 0x00, 0x01]), { binary: true });
    garbage.send('{"op":"subscribe","filter":{"jobId":{"$gt":""}}}');
    garbage.send('x'.repeat(200_000));
    // Each answered with an error message; the connection serves on.
    await garbage.waitFor((ms) => ms.filter((m) => m.kind === 'error').length >= 3, 10_000, 'three error messages');
    // Beyond the hard limit of a frame: closed 1009.
    garbage.send('x'.repeat(2 * 1024 * 1024));
    assert.equal((await garbage.waitClosed()).code, 1009);
    await settle(() => stream.clients() === 0, `clients left: ${stream.clients()}`);
  });
});
