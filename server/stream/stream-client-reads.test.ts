/**
 * Many clients replaying from an old cursor at once: their pages are read
 * `clientReadsInFlight` at a time over the whole process (2 by default),
 * each client in its turn, so they cannot take the database pool that the
 * API's requests share (each replaying client read a page as soon as its
 * last one returned: twelve clients kept twelve reads under way). Every
 * client still gets its whole replay, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { JobStore } from '../../engine/ports.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const CLIENTS = 12;
const PAGE = 7;
const JOBS = 140;

describe('clients replaying at once', () => {
  let store: SqliteStore;
  let instance: StreamInstance;
  const clients: TestClient[] = [];
  let inFlight = 0;
  let most = 0;

  before(async () => {
    store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    await store.migrate();
    const counted = Object.create(store) as JobStore;
    counted.readEventsAfter = async (afterId, limit, throughId) => {
      // A replay's page (the tail reads pages of its own size): held a moment, as a database read over the network is.
      if (limit !== PAGE) return store.readEventsAfter(afterId, limit, throughId);
      most = Math.max(most, ++inFlight);
      try {
        await new Promise((r) => setTimeout(r, 3));
        return await store.readEventsAfter(afterId, limit, throughId);
      } finally {
        inFlight--;
      }
    };
    instance = await startStreamInstance({ store: counted, options: { replayPageSize: PAGE } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await instance?.close();
    await store?.close();
  });

  it(`${CLIENTS} clients replay ${JOBS} events each with at most 2 pages read at once`, async () => {
    const first = await TestClient.connect(instance.url);
    clients.push(first);
    const start = await first.subscribe({});
    const ids = (await instance.transitions.submitMany(Array.from({ length: JOBS }, () => spec('t.replays', 'default')))).map((r) => r.job.id);
    const expected = await history(store, ids);
    await first.waitFor(() => first.events().length >= expected.length || undefined);
    const replaying = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.connect(instance.url)));
    clients.push(...replaying);
    await Promise.all(replaying.map((c) => c.subscribe({}, start)));
    for (const c of replaying) {
      await c.waitFor(() => c.events().length >= expected.length || undefined, 30_000);
      assert.deepEqual(c.events().map(key), first.events().map(key));
      assertOrdered(c.events());
    }
    assert.ok(most >= 1 && most <= 2, `pages read at once: ${most}`);
  });
});
