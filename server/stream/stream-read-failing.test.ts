/**
 * The tail's read failing while the sizes read before it answers (the stream
 * reads the rows' sizes first, then the rows that fit: hub.ts, readWithin): a
 * live client is told once, as for any outage, not once per failed read. The
 * sizes answering is no sign the rows can be read again; only a read that
 * answers (or sizes that leave nothing to read) ends the outage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobStore } from '../../engine/ports.js';
import { STORE_BACKENDS } from '../../tests/helpers/stores.js';
import { key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const ERROR_BACKOFF_MS = 50;
const backend = STORE_BACKENDS.find((b) => b.name === 'sqlite') ?? STORE_BACKENDS[0]!;

describe(`the stream while its rows cannot be read but their sizes can (${backend.name})`, () => {
  let cleanup: () => Promise<void>;
  let instance: StreamInstance;
  let failing = false;
  let failedReads = 0;
  const clients: TestClient[] = [];

  before(async () => {
    const opened = await backend.open();
    const store: JobStore = opened.store;
    cleanup = opened.cleanup;
    await store.migrate();
    const readAll = store.readEventsAfter.bind(store);
    store.readEventsAfter = async (afterId, limit, throughId) => {
      if (failing) {
        failedReads++;
        throw new Error('the read timed out');
      }
      return readAll(afterId, limit, throughId);
    };
    instance = await startStreamInstance({ store, options: { errorBackoffMs: ERROR_BACKOFF_MS } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await instance?.close();
    await cleanup?.();
  });

  it('tells a live client once, not once per failed read, and delivers the rows once they read again', async () => {
    const live = await TestClient.connect(instance.url);
    clients.push(live);
    await live.subscribe({});
    failing = true;
    const [job] = (await instance.transitions.submitMany([spec('t.failing', 'default')])).map((r) => r.job.id);
    await live.waitFor(() => live.of('error')[0], 15_000, 'the outage error');
    const before = failedReads;
    await sleep(20 * ERROR_BACKOFF_MS);
    assert.ok(failedReads - before >= 5, `the tail tried again (${failedReads - before} reads)`);
    assert.equal(live.of('error').length, 1, `told once per outage, not once per failed read (${failedReads} failed reads)`);
    failing = false;
    instance.wake();
    await live.waitFor(() => live.events().some((e) => e.jobId === job) || undefined, 15_000, 'the event');
    assert.ok(live.events().map(key).length >= 1);
    assert.equal(live.closed, null);
  });
});
