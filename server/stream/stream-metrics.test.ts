/**
 * The stream's metrics (SQLite): `clients()` counts the connected clients,
 * and a client closed for falling behind (4000) is reported once to the
 * metrics' slow-consumer hook.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { monotonicFactory } from 'ulid';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { silentLogger } from '../../engine/logger.js';
import { TransitionService } from '../../engine/transitions.js';
import { TEST_DEFAULTS, testClock } from '../../tests/helpers/app.js';
import { spec, TestClient } from '../../tests/helpers/stream.js';
import { buildApp } from '../app.js';
import { streamPlugin } from './plugin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('clients are counted, and a slow consumer closed with 4000 is reported once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-metrics-'));
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  await store.migrate();
  let slowReported = 0;
  const stream = streamPlugin({
    store, clock: testClock, logger: silentLogger, options: { maxBufferedBytes: 64 * 1024 },
    metrics: { streamSlowConsumer: () => void slowReported++ },
  });
  const ulid = monotonicFactory();
  const transitions = new TransitionService({
    store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() }, onCommit: () => stream.wake(),
  });
  const app = await buildApp({
    transitions, store, clock: testClock, checks: { database: () => store.ping() },
    limits: { bodyLimitBytes: 1024 * 1024 }, defaults: TEST_DEFAULTS, plugins: [stream],
  });
  try {
    const url = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws')}/v1/stream`;
    assert.equal(stream.clients(), 0);
    const fast = await TestClient.connect(url);
    const slow = await TestClient.connect(url);
    await fast.subscribe({ queue: 'other' });
    await slow.subscribe({ queue: 'slow' });
    assert.equal(stream.clients(), 2);

    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause(); // stops reading: the server's buffer fills
    const ids = (await transitions.submitMany(Array.from({ length: 48 }, () => spec('t.slow', 'slow')))).map((r) => r.job.id);
    const reason = 'r'.repeat(256 * 1024); // each CANCEL event carries it: ~12 MiB in all
    for (let i = 0; i < ids.length; i += 8) {
      await transitions.applyMany(ids.slice(i, i + 8).map((id) => ({ jobId: id, event: { type: 'CANCEL' as const, reason } })));
    }
    await sleep(500);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    assert.deepEqual(await slow.waitClosed(), { code: 4000, reason: 'slow consumer: resume with your last cursor' });
    assert.equal(slowReported, 1);
    for (let i = 0; stream.clients() !== 1; i++) {
      assert.ok(i < 100, `clients: ${stream.clients()}`);
      await sleep(20);
    }
    await fast.close();
  } finally {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
