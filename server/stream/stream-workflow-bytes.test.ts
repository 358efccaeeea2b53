/**
 * The stream's reads of `workflow_events` are bounded in bytes (`readBytes`),
 * on both stores: a signal's data may be a megabyte, and the tail and a
 * replay read up to 500 rows at a time, so each read takes no more rows than
 * their data and state values fit in `readBytes` (the first always comes),
 * and reads on at once after. Nothing is lost by it: a live client and one
 * replaying from a cursor get every step, in order, with its data whole.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import type { JobStore, WorkflowRecord, WorkflowStore, WorkflowStreamEventRecord, WorkflowWrite } from '../../engine/ports.js';
import type { PersistedWorkflow } from '../../machines/workflow.js';
import { STORE_BACKENDS } from '../../tests/helpers/stores.js';
import { startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';
import type { StreamWorkflowMessage } from './protocol.js';

type Store = JobStore & WorkflowStore;

const ulid = monotonicFactory();
const T = Date.now();
const READ_BYTES = 64 * 1024;
/** Each signal's note: five of them pass READ_BYTES. */
const NOTE = 20_000;
const SIGNALS = 12;

const persisted = (value: unknown): PersistedWorkflow =>
  ({ value, context: {}, history: [], status: 'active', children: [], timers: [] }) as unknown as PersistedWorkflow;

/** The bytes of a row's data and state value, as stored. */
const bytesOf = (r: WorkflowStreamEventRecord): number => Buffer.byteLength(JSON.stringify(r.data)) + Buffer.byteLength(JSON.stringify(r.value));

for (const backend of STORE_BACKENDS) {
  describe(`stream workflow reads bounded in bytes (${backend.name})`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let instance: StreamInstance;
    /** The bytes of each read of `workflow_events` the stream made with more than one row. */
    const reads: number[][] = [];
    const clients: TestClient[] = [];

    before(async () => {
      const opened = await backend.open();
      store = opened.store as unknown as Store;
      cleanup = opened.cleanup;
      await store.migrate();
      const read = store.readWorkflowEventsAfter.bind(store);
      store.readWorkflowEventsAfter = async (afterId, limit, throughId) => {
        const rows = await read(afterId, limit, throughId);
        reads.push(rows.map(bytesOf));
        return rows;
      };
      // The tail reads when woken only (a poll of a minute): each read is one the test asked for.
      instance = await startStreamInstance({ store, options: { pollMs: 60_000, readBytes: READ_BYTES } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await cleanup?.();
    });

    it('the tail and a replay read no more than readBytes at once, and deliver every step whole', async () => {
      const live = await TestClient.connect(instance.url);
      clients.push(live);
      const start = await live.subscribe({ workflows: true });

      // The start and twelve signals of 20 KB, committed before the tail reads (one wake after them all).
      const w: WorkflowRecord = {
        id: ulid(), tenant: 'default', name: 'big', definitionVersion: 1, input: { n: 1 }, state: persisted('s0'), version: 1,
        idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T,
      };
      const write: WorkflowWrite = {
        workflow: w, expectedVersion: null, jobs: [], cancel: null,
        event: { workflowId: w.id, seq: 1, type: 'START', at: T, data: { input: w.input, jobIds: [] }, status: 'active' },
      };
      assert.deepEqual(await store.insertWorkflow(write), { ok: true });
      for (let i = 1; i <= SIGNALS; i++) {
        await store.updateWorkflow(w.id, (cur) => {
          const next: WorkflowRecord = { ...cur!, state: persisted(`s${i}`), version: cur!.version + 1, updatedAt: cur!.updatedAt + 1 };
          const data = { type: 'SIGNAL', event: { type: 'NOTE', note: String(i % 10).repeat(NOTE) }, jobIds: [] };
          const event = { workflowId: w.id, seq: next.version, type: 'SIGNAL' as const, at: next.updatedAt, data, status: 'active' as const };
          return { write: { workflow: next, expectedVersion: cur!.version, event, jobs: [], cancel: null }, result: null };
        });
      }
      const expected = Array.from({ length: SIGNALS + 1 }, (_, i) => `${i + 1} s${i} ${i === 0 ? 0 : NOTE}`);
      const got = (c: TestClient) => (c.of('workflow') as unknown as StreamWorkflowMessage[])
        .map((m) => `${m.seq} ${m.value as string} ${(m.data as { event?: { note?: string } }).event?.note?.length ?? 0}`);

      instance.wake();
      await live.waitFor(() => got(live).length >= SIGNALS + 1, 15_000, 'every step live');
      assert.deepEqual(got(live), expected, 'live: every step, in order, whole');

      const replaying = await TestClient.connect(instance.url);
      clients.push(replaying);
      await replaying.subscribe({ workflows: true }, start);
      await replaying.waitFor(() => got(replaying).length >= SIGNALS + 1, 15_000, 'every step replayed');
      assert.deepEqual(got(replaying), expected, 'replayed: every step, in order, whole');

      const over = reads.filter((r) => r.length > 1 && r.reduce((a, b) => a + b, 0) > READ_BYTES);
      assert.deepEqual(over.map((r) => `${r.length} rows, ${r.reduce((a, b) => a + b, 0)} bytes`), [], `reads past ${READ_BYTES} bytes`);
    });
  });
}
