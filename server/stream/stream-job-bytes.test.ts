/**
 * The stream's reads of `job_events` are bounded in bytes (`readBytes`), on
 * both stores, as its reads of `workflow_events` are: a SUCCEEDED event
 * carries the handler's result (up to 256 KiB), and the tail and a replay read
 * up to 500 rows at a time, so each read takes no more rows than their data
 * fit in `readBytes` (the first always comes), and reads on at once after.
 * Nothing is lost by it: a live client and one replaying from a cursor get
 * every transition, in order, with its data whole.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JobStore, StreamEventRecord } from '../../engine/ports.js';
import { STORE_BACKENDS } from '../../tests/helpers/stores.js';
import { key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const READ_BYTES = 64 * 1024;
/** Each result's characters: four of them pass READ_BYTES. */
const RESULT = 20_000;
const JOBS = 8;

/** The bytes of a row's data, as stored. */
const bytesOf = (r: StreamEventRecord): number => Buffer.byteLength(JSON.stringify(r.data));

for (const backend of STORE_BACKENDS) {
  describe(`stream job reads bounded in bytes (${backend.name})`, () => {
    let store: JobStore;
    let cleanup: () => Promise<void>;
    let instance: StreamInstance;
    let readAll: JobStore['readEventsAfter'];
    /** The bytes of each read of `job_events` the stream made with more than one row. */
    const reads: number[][] = [];
    const clients: TestClient[] = [];

    before(async () => {
      const opened = await backend.open();
      store = opened.store;
      cleanup = opened.cleanup;
      await store.migrate();
      readAll = store.readEventsAfter.bind(store);
      store.readEventsAfter = async (afterId, limit, throughId) => {
        const rows = await readAll(afterId, limit, throughId);
        reads.push(rows.map(bytesOf));
        return rows;
      };
      // The tail reads when woken only (not on commits, and a poll of a minute): each read is one the test asked for.
      instance = await startStreamInstance({ store, wakeOnCommit: false, options: { pollMs: 60_000, readBytes: READ_BYTES } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await cleanup?.();
    });

    it('the tail and a replay read no more than readBytes at once, and deliver every transition whole', async () => {
      const live = await TestClient.connect(instance.url);
      clients.push(live);
      const start = await live.subscribe({});

      // Eight jobs run to their end, each with a result of 20 KB, committed before the tail reads (one wake after them all).
      const ids = (await instance.transitions.submitMany(Array.from({ length: JOBS }, () => spec('t.bytes', 'default')))).map((r) => r.job.id);
      for (const [i, id] of ids.entries()) {
        await instance.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
        await instance.transitions.apply(id, { type: 'SUCCEEDED', attempt: 1, result: String(i).repeat(RESULT) });
      }
      const resultLength = (data: unknown) => ((data as { result?: unknown }).result as string | undefined)?.length ?? 0;
      const expected = (await readAll(0, 1000)).map((e) => `${key(e)} ${e.type} ${resultLength(e.data)}`);
      assert.equal(expected.length, JOBS * 3);
      const got = (c: TestClient) => c.events().map((e) => `${key(e)} ${e.type} ${resultLength(e.data)}`);

      instance.wake();
      await live.waitFor(() => got(live).length >= expected.length, 15_000, 'every transition live');
      assert.deepEqual(got(live), expected, 'live: every transition, in order, whole');

      const replaying = await TestClient.connect(instance.url);
      clients.push(replaying);
      await replaying.subscribe({}, start);
      await replaying.waitFor(() => got(replaying).length >= expected.length, 15_000, 'every transition replayed');
      assert.deepEqual(got(replaying), expected, 'replayed: every transition, in order, whole');

      const over = reads.filter((r) => r.length > 1 && r.reduce((a, b) => a + b, 0) > READ_BYTES);
      assert.deepEqual(over.map((r) => `${r.length} rows, ${r.reduce((a, b) => a + b, 0)} bytes`), [], `reads past ${READ_BYTES} bytes`);
    });
  });
}
