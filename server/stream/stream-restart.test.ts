/**
 * The stream of an api instance that has just started (SQLite): its tail
 * begins `startupRewindIds` below the newest event, and a client subscribing
 * without a cursor at once gets only what commits after it subscribed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import { encodeStreamCursor as cursorOf } from './cursor.js';
import { idOf, spec, startStreamInstance, TestClient } from '../../tests/helpers/stream.js';

describe('the stream of a freshly started instance (SQLite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-restart-'));
  let store: SqliteStore;

  before(async () => {
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a subscribe without a cursor right after the start gets no event of before it', async () => {
    const before = await startStreamInstance({ store });
    const old = (await before.transitions.submitMany(Array.from({ length: 20 }, () => spec('t.restart', 'default')))).map((r) => r.job.id);
    for (const id of old) await before.transitions.apply(id, { type: 'CANCEL' });
    await before.close();

    const started = await startStreamInstance({ store, options: { gapTimeoutMs: 500 } });
    // Subscribed by the query string: in the same step as the connection is taken, before the tail's first read.
    const client = await TestClient.connect(`${started.url}?type=t.restart`);
    try {
      await client.waitFor((ms) => ms.find((m) => m.kind === 'subscribed'), 10_000, 'subscribed');
      const [fresh] = await started.transitions.submitMany([spec('t.restart', 'default')]);
      await client.waitFor((ms) => ms.find((m) => m.kind === 'event' && m.jobId === fresh!.job.id), 10_000, 'the new job\'s event');
      await sleep(200);
      assert.deepEqual([...new Set(client.events().map((e) => e.jobId))], [fresh!.job.id], 'only the job submitted after the subscribe');
    } finally {
      await client.close();
      await started.close();
    }
  });

  it('a cursor it issued is still taken by another instance after the job of that event was deleted', async () => {
    const first = await startStreamInstance({ store });
    const client = await TestClient.connect(first.url);
    let cursor: string;
    let jobId: string;
    try {
      await client.subscribe({ type: 't.deleted' });
      const [job] = await first.transitions.submitMany([spec('t.deleted', 'default')]);
      jobId = job!.job.id;
      await first.transitions.apply(jobId, { type: 'CANCEL' });
      await client.waitFor((ms) => ms.filter((m) => m.kind === 'event' && m.jobId === jobId).length >= 2 ? true : undefined, 10_000, 'both events');
      cursor = client.lastCursor()!;
    } finally {
      await client.close();
      await first.close();
    }
    assert.deepEqual(await store.deleteJob(jobId), { ok: true }); // its events go with it
    const other = await startStreamInstance({ store, options: { gapTimeoutMs: 200 } });
    const resumed = await TestClient.connect(other.url);
    try {
      const at = await resumed.subscribe({ type: 't.deleted' }, cursor);
      assert.equal(at, cursor, 'subscribed from that cursor');
      // A cursor beyond every id handed out is still refused.
      resumed.send({ op: 'subscribe', filter: {}, cursor: cursorOf(idOf(cursor) + 1_000) });
      await resumed.waitFor((ms) => ms.find((m) => m.kind === 'error' && m.code === 'ATS_ERR_BAD_CURSOR'), 10_000, 'a forged cursor refused');
    } finally {
      await resumed.close();
      await other.close();
    }
  });
});

