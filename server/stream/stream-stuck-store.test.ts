/**
 * The API's close while the store stops answering (a MySQL read then waits
 * up to its query timeout, longer than the shutdown deadline): the stream's
 * reads in flight (the tail's, the progress tail's, the key re-check's) are
 * not waited for, so app.close() resolves.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { JobStore } from '../../engine/ports.js';
import { silentLogger } from '../../engine/logger.js';
import { settlesWithin } from '../../engine/loop.js';
import { authWith, makeKey, MemoryKeyStore } from '../../tests/helpers/keys.js';
import { startStreamInstance, TestClient } from '../../tests/helpers/stream.js';

describe('the stream over a store that stops answering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-stuck-'));
  let store: SqliteStore | undefined;
  const clients: TestClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets app.close() resolve while a tail read never answers', async () => {
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    const real = store;
    let stuck = false;
    let hung = 0;
    const hang = <T>(fn: () => Promise<T>): Promise<T> => {
      if (!stuck) return fn();
      hung++;
      return new Promise<T>(() => undefined);
    };
    const double = Object.create(real) as JobStore;
    double.lastEventId = () => hang(() => real.lastEventId());
    double.readEventsAfter = (afterId, limit) => hang(() => real.readEventsAfter(afterId, limit));
    const instance = await startStreamInstance({ store: double, options: { idlePollMs: 20 } });
    stuck = true;
    for (let i = 0; i < 200 && hung === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(hung > 0, 'a tail read is in flight and never answers');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
  });

  it('lets app.close() resolve while a progress read, with a client connected, never answers', async () => {
    await store?.close();
    store = createSqliteStore({ file: join(dir, 'ats-progress.sqlite') });
    await store.migrate();
    const real = store;
    let stuck = false;
    let hung = 0;
    const double = Object.create(real) as SqliteStore;
    double.readProgressSince = (since, limit) => {
      if (!stuck) return real.readProgressSince(since, limit);
      hung++;
      return new Promise(() => undefined);
    };
    const instance = await startStreamInstance({ store: double, options: { pollMs: 20 } });
    clients.push(await TestClient.connect(instance.url));
    stuck = true;
    for (let i = 0; i < 200 && hung === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(hung > 0, 'a progress read is in flight and never answers');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
  });

  it('lets app.close() resolve while a key re-check read never answers, and logs no key store outage for it', async () => {
    await store?.close();
    store = createSqliteStore({ file: join(dir, 'ats-keys.sqlite') });
    await store.migrate();
    let stuck = false;
    let hung = 0;
    const keys = new MemoryKeyStore();
    const getKey = keys.getKey.bind(keys);
    keys.getKey = (id) => {
      if (!stuck) return getKey(id);
      hung++;
      return new Promise(() => undefined);
    };
    const key = await makeKey(keys, 'default');
    const warned: string[] = [];
    const logger = { ...silentLogger, warn: (msg: string) => void warned.push(msg) };
    const instance = await startStreamInstance({ store, auth: authWith(keys), logger, options: { keyCheckMs: 20 } });
    clients.push(await TestClient.connect(instance.url, { headers: key.headers }));
    stuck = true;
    for (let i = 0; i < 200 && hung === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(hung > 0, 'a key re-check read is in flight and never answers');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
    assert.deepEqual(warned.filter((m) => m.includes('re-check')), [], 'the stop is no key store outage');
  });
});
