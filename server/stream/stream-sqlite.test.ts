/** The stream on the embedded default (SQLite + the in-process log): live, then a replay from the start cursor. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMemoryLog, type MemoryLog } from '../../adapters/memory/index.js';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

describe('WebSocket stream (SQLite + in-process log)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-'));
  let store: SqliteStore;
  let log: MemoryLog;
  let instance: StreamInstance;
  const clients: TestClient[] = [];

  before(async () => {
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    log = createMemoryLog();
    await log.ensureTopics();
    instance = await startStreamInstance({ store, log, options: { replayPageSize: 5 } });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await instance?.close();
    await log?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every transition live, and replays the same from the start cursor', async () => {
    const live = await TestClient.connect(instance.url);
    clients.push(live);
    const start = await live.subscribe({});
    const ids = (await instance.transitions.submitMany(Array.from({ length: 12 }, () => spec('t.sqlite', 'default')))).map((r) => r.job.id);
    for (const id of ids) await instance.transitions.apply(id, { type: 'CANCEL' });
    const expected = await history(store, ids);
    await live.waitFor(() => live.events().length >= expected.length || undefined);
    await sleep(100);
    assert.deepEqual(live.events().map(key).sort(), [...expected].sort());
    assertOrdered(live.events());

    const replay = await TestClient.connect(instance.url);
    clients.push(replay);
    await replay.subscribe({}, start);
    await replay.waitFor(() => replay.events().length >= expected.length || undefined);
    await sleep(100);
    assert.deepEqual(replay.events().map(key), live.events().map(key), 'the replay is the live stream again, in the same order');
  });
});
