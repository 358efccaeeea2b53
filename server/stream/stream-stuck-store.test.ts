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

/**
 * The calls of a double: `call(answer)` answers through `answer` until
 * `stick()`, and never after; `stick()` returns once such a call is in flight.
 */
function answersUntilStuck() {
  let stuck = false;
  let hung = 0;
  return {
    call<T>(answer: () => Promise<T>): Promise<T> {
      if (!stuck) return answer();
      hung++;
      return new Promise<T>(() => undefined);
    },
    async stick(what: string): Promise<void> {
      stuck = true;
      for (let i = 0; i < 200 && hung === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(hung > 0, `${what} is in flight and never answers`);
    },
  };
}

describe('the stream over a store that stops answering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-stuck-'));
  let store: SqliteStore | undefined;
  const clients: TestClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** A migrated store in `file` of the scratch folder, in place of the last test's (closed). */
  async function freshStore(file: string): Promise<SqliteStore> {
    await store?.close();
    store = createSqliteStore({ file: join(dir, file) });
    await store.migrate();
    return store;
  }

  it('lets app.close() resolve while a tail read never answers', async () => {
    const real = await freshStore('ats.sqlite');
    const reads = answersUntilStuck();
    const double = Object.create(real) as JobStore;
    double.lastEventId = () => reads.call(() => real.lastEventId());
    double.readEventsAfter = (afterId, limit, throughId) => reads.call(() => real.readEventsAfter(afterId, limit, throughId));
    const instance = await startStreamInstance({ store: double, options: { idlePollMs: 20 } });
    await reads.stick('a tail read');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
  });

  it('lets app.close() resolve while a progress read, with a client connected, never answers', async () => {
    const real = await freshStore('ats-progress.sqlite');
    const reads = answersUntilStuck();
    const double = Object.create(real) as SqliteStore;
    double.readProgressSince = (since, limit) => reads.call(() => real.readProgressSince(since, limit));
    const instance = await startStreamInstance({ store: double, options: { pollMs: 20 } });
    clients.push(await TestClient.connect(instance.url));
    await reads.stick('a progress read');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
  });

  it('lets app.close() resolve while a key re-check read never answers, and logs no key store outage for it', async () => {
    const own = await freshStore('ats-keys.sqlite');
    const reads = answersUntilStuck();
    const keys = new MemoryKeyStore();
    const getKey = keys.getKey.bind(keys);
    keys.getKey = (id) => reads.call(() => getKey(id));
    const key = await makeKey(keys, 'default');
    const warned: string[] = [];
    const logger = { ...silentLogger, warn: (msg: string) => void warned.push(msg) };
    const instance = await startStreamInstance({ store: own, auth: authWith(keys), logger, options: { keyCheckMs: 20 } });
    clients.push(await TestClient.connect(instance.url, { headers: key.headers }));
    await reads.stick('a key re-check read');
    assert.equal(await settlesWithin(instance.app.close(), 5000), true, 'app.close() resolves');
    assert.deepEqual(warned.filter((m) => m.includes('re-check')), [], 'the stop is no key store outage');
  });
});
