/**
 * Workflow transitions on the stream, on both stores: a subscription with a
 * workflow filter (by instance id, by workflow name, or all) gets each step
 * of its tenant's instances as a `workflow` message, in seq order, live and
 * replayed from a cursor; a subscription to jobs gets none of them; bad
 * workflow filters and cursors get the protocol's errors. The steps are
 * written through the store as the WorkflowService writes them, and the
 * instance's `wake()` stands for the WorkflowService's commit hook.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import WebSocket from 'ws';
import { createClient } from '../../client/index.js';
import type { WebSocketConstructor } from '../../client/stream.js';
import type { JobStore, WorkflowEventType, WorkflowRecord, WorkflowStore, WorkflowWrite } from '../../engine/ports.js';
import type { PersistedWorkflow, WorkflowStatus } from '../../machines/workflow.js';
import { asyncApi } from '../../tests/helpers/asyncapi.js';
import { authWith, MemoryKeyStore } from '../../tests/helpers/keys.js';
import { STORE_BACKENDS } from '../../tests/helpers/stores.js';
import { spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';
import { decodeCursorPosition, encodeStreamCursor } from './cursor.js';
import type { StreamWorkflowMessage } from './protocol.js';

type Key = Awaited<ReturnType<MemoryKeyStore['make']>>;
type Store = JobStore & WorkflowStore;

const ulid = monotonicFactory();
const T = Date.now();

const persisted = (value: unknown, status: WorkflowStatus = 'active'): PersistedWorkflow =>
  ({ value, context: {}, history: [], status, children: [], timers: [] }) as unknown as PersistedWorkflow;

/** Starts an instance at state `value`, as WorkflowService.start writes it (without child jobs). */
async function startInstance(store: Store, tenant: string, name: string, value: unknown): Promise<WorkflowRecord> {
  const w: WorkflowRecord = {
    id: ulid(), tenant, name, definitionVersion: 1, input: { n: 1 }, state: persisted(value), version: 1,
    idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T,
  };
  const write: WorkflowWrite = {
    workflow: w, expectedVersion: null, jobs: [], cancel: null,
    event: { workflowId: w.id, seq: 1, type: 'START', at: T, data: { input: w.input, jobIds: [] }, status: 'active' },
  };
  assert.deepEqual(await store.insertWorkflow(write), { ok: true });
  return w;
}

/** One step of instance `id` to state `value`. */
async function step(store: Store, id: string, type: WorkflowEventType, value: unknown, status: WorkflowStatus = 'active'): Promise<void> {
  await store.updateWorkflow(id, (w) => {
    const next: WorkflowRecord = { ...w!, state: persisted(value, status), version: w!.version + 1, updatedAt: w!.updatedAt + 1 };
    const event = { workflowId: id, seq: next.version, type, at: next.updatedAt, data: { type, jobIds: [] }, status };
    return { write: { workflow: next, expectedVersion: w!.version, event, jobs: [], cancel: null }, result: null };
  });
}

const workflowsOf = (c: TestClient) => c.of('workflow') as unknown as StreamWorkflowMessage[];
/** `workflowId#seq value` of each workflow message: what arrived, in order. */
const steps = (c: TestClient) => workflowsOf(c).map((m) => `${m.workflowId}#${m.seq} ${m.type} ${JSON.stringify(m.value)} ${m.status}`);

for (const backend of STORE_BACKENDS) {
  describe(`stream workflows (${backend.name})`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let instance: StreamInstance;
    let acme: Key;
    let globex: Key;
    const clients: TestClient[] = [];
    const connect = async (as: Key, query = '') => {
      const c = await TestClient.connect(instance.url + query, { headers: as.headers });
      clients.push(c);
      return c;
    };
    const errorAfter = async (c: TestClient, message: unknown) => {
      const before = c.messages.length;
      c.send(message);
      return c.waitFor((ms) => ms.slice(before).find((m) => m.kind === 'error' || m.kind === 'subscribed'));
    };

    before(async () => {
      const opened = await backend.open();
      store = opened.store as unknown as Store;
      cleanup = opened.cleanup;
      await store.migrate();
      const keys = new MemoryKeyStore();
      acme = await keys.make('acme');
      globex = await keys.make('globex');
      instance = await startStreamInstance({ store, auth: authWith(keys, 'on'), options: { pollMs: 20, replayPageSize: 2 } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await cleanup?.();
    });

    it('by id and by name: the start and each step in order, live and replayed; other tenants and job subscribers get none', async () => {
      const name = `order-${ulid().slice(-6)}`;
      const byName = await connect(acme);
      const all = await connect(acme);
      const jobsOnly = await connect(acme);
      const theirs = await connect(globex);
      const start = await byName.subscribe({ workflowName: name });
      assert.equal(decodeCursorPosition(start).source, 'workflows', 'a workflow subscription is at a workflow position');
      await all.subscribe({ workflows: true });
      await jobsOnly.subscribe({});
      await theirs.subscribe({ workflows: true });

      const a = await startInstance(store, 'acme', name, 'charging');
      const byId = await connect(acme, `?workflowId=${a.id}&cursor=${start}`); // from the query string, replaying from the start
      const snoop = await connect(globex);
      await snoop.subscribe({ workflowId: a.id });
      const other = await startInstance(store, 'acme', `${name}-other`, 'idle');
      const c = await startInstance(store, 'globex', name, 'charging');
      const [job] = await instance.transitions.submitMany([spec('t.wf', 'q', { tenant: 'acme' })]);
      instance.wake();
      await step(store, a.id, 'CHILD', { fulfil: { stock: 'reserving', ship: 'booking' } });
      instance.wake();
      await step(store, a.id, 'SIGNAL', 'confirmed', 'done');
      await step(store, c.id, 'CANCEL', 'charging', 'cancelled');
      instance.wake();

      const expected = [
        `${a.id}#1 START "charging" active`,
        `${a.id}#2 CHILD {"fulfil":{"stock":"reserving","ship":"booking"}} active`,
        `${a.id}#3 SIGNAL "confirmed" done`,
      ];
      for (const client of [byName, byId]) await client.waitFor(() => workflowsOf(client).length >= 3 || undefined);
      await all.waitFor(() => workflowsOf(all).length >= 4 || undefined);
      await theirs.waitFor(() => workflowsOf(theirs).length >= 2 || undefined);
      await jobsOnly.waitFor(() => jobsOnly.events().some((e) => e.jobId === job!.job.id) || undefined);
      await sleep(300); // anything extra (a duplicate, another tenant's step) would arrive now
      assert.deepEqual(steps(byName), expected, 'by name: its instances only, in seq order');
      assert.deepEqual(steps(byId), expected, 'by id (query string, replayed from a cursor): the same');
      assert.deepEqual(steps(all).filter((s) => s.startsWith(a.id)), expected);
      assert.deepEqual(steps(all).filter((s) => !s.startsWith(a.id)), [`${other.id}#1 START "idle" active`], 'all: the tenant\'s other instance too');
      assert.deepEqual(steps(theirs), [`${c.id}#1 START "charging" active`, `${c.id}#2 CANCEL "charging" cancelled`], 'another tenant: its own only');
      assert.deepEqual(workflowsOf(snoop), [], 'another tenant\'s instance id matches nothing');
      assert.deepEqual(snoop.of('error'), []);
      assert.deepEqual(workflowsOf(jobsOnly), [], 'a job subscription gets no workflow message');
      assert.ok(jobsOnly.events().length > 0);
      assert.deepEqual(byName.events(), [], 'and a workflow subscription no job event');
      assert.deepEqual(byName.of('progress'), []);

      const m = workflowsOf(byName)[0]!;
      assert.deepEqual({ ...m, cursor: '' }, {
        kind: 'workflow', cursor: '', workflowId: a.id, name, seq: 1, type: 'START', at: new Date(T).toISOString(), status: 'active',
        value: 'charging', data: { input: { n: 1 }, jobIds: [] },
      });
      const positions = workflowsOf(all).map((x) => decodeCursorPosition(x.cursor));
      assert.ok(positions.every((p, i) => p.source === 'workflows' && (i === 0 || p.id > positions[i - 1]!.id)), 'cursors grow');

      // Replays: from the start (pages of 2), and resumed after the first step.
      const replay = await connect(acme);
      await replay.subscribe({ workflowName: name }, start);
      const resumed = await connect(acme);
      await resumed.subscribe({ workflowId: a.id }, m.cursor);
      await replay.waitFor(() => workflowsOf(replay).length >= 3 || undefined);
      await resumed.waitFor(() => workflowsOf(resumed).length >= 2 || undefined);
      await sleep(200);
      assert.deepEqual(steps(replay), expected, 'a replay is the live stream again');
      assert.deepEqual(steps(resumed), expected.slice(1), 'a resume sends what came after the cursor, once');
      const theirReplay = await connect(globex);
      await theirReplay.subscribe({ workflowName: name }, start);
      await theirReplay.waitFor(() => workflowsOf(theirReplay).length >= 2 || undefined);
      await sleep(200);
      assert.deepEqual(workflowsOf(theirReplay).map((x) => x.workflowId), [c.id, c.id], 'a replay skips the other tenant\'s steps too');

      // Live after the replay: the next step comes once.
      await step(store, other.id, 'SIGNAL', 'moving');
      instance.wake();
      await all.waitFor(() => workflowsOf(all).length >= 5 || undefined);
      await sleep(100);
      assert.deepEqual(steps(all).at(-1), `${other.id}#2 SIGNAL "moving" active`);
      assert.equal(workflowsOf(replay).length, 3, 'not of the name subscribed to');
    });

    it('the client\'s watch hands workflow messages to onWorkflow and resumes after the last one', async () => {
      const name = `client-${ulid().slice(-6)}`;
      const ats = createClient({ url: instance.url.replace(/^ws/, 'http').replace(/\/v1\/stream$/, ''), apiKey: acme.key, WebSocket: WebSocket as unknown as WebSocketConstructor });
      const got: StreamWorkflowMessage[] = [];
      const watch = ats.watch({ workflowName: name }, { onWorkflow: (m) => got.push(m), onEvent: () => assert.fail('no job event on a workflow watch') });
      try {
        await watch.ready;
        const w = await startInstance(store, 'acme', name, 'one');
        await step(store, w.id, 'SIGNAL', 'two');
        instance.wake();
        const deadline = Date.now() + 10_000;
        while (got.length < 2 && Date.now() < deadline) await sleep(20);
        assert.deepEqual(got.map((m) => [m.seq, m.value]), [[1, 'one'], [2, 'two']]);
        assert.equal(watch.cursor(), got[1]!.cursor, 'the watch stands after the last workflow message');
      } finally {
        watch.close();
      }
    });

    it('bad workflow filters and cursors get the protocol\'s errors; the subscription in force stays', async () => {
      const name = `bad-${ulid().slice(-6)}`;
      const c = await connect(acme);
      const start = await c.subscribe({ workflowName: name });
      const refusals: Array<[unknown, string]> = [
        [{ op: 'subscribe', filter: { workflowName: name, type: 't' } }, 'ATS_ERR_VALIDATION'],
        [{ op: 'subscribe', filter: { workflows: false } }, 'ATS_ERR_VALIDATION'],
        [{ op: 'subscribe', filter: { workflowId: 'nope' } }, 'ATS_ERR_VALIDATION'],
        [{ op: 'subscribe', filter: { workflowName: '' } }, 'ATS_ERR_VALIDATION'],
        [{ op: 'subscribe', filter: { workflows: true }, cursor: encodeStreamCursor(0) }, 'ATS_ERR_BAD_CURSOR'],
        [{ op: 'subscribe', filter: {}, cursor: start }, 'ATS_ERR_BAD_CURSOR'],
        [{ op: 'subscribe', filter: { workflows: true }, cursor: encodeStreamCursor(1e12, 'workflows') }, 'ATS_ERR_BAD_CURSOR'],
      ];
      for (const [message, code] of refusals) {
        const answer = await errorAfter(c, message);
        assert.equal(answer.kind, 'error', JSON.stringify(message));
        assert.equal(answer.code, code, JSON.stringify(message));
      }
      const fromQuery = await connect(acme, `?workflows=yes`);
      const refused = await fromQuery.waitFor((ms) => ms.find((m) => m.kind === 'error'));
      assert.equal(refused.code, 'ATS_ERR_VALIDATION');

      const w = await startInstance(store, 'acme', name, 'go');
      instance.wake();
      await c.waitFor(() => workflowsOf(c).length >= 1 || undefined);
      assert.deepEqual(steps(c), [`${w.id}#1 START "go" active`], 'the subscription in force still holds');
      assert.equal(c.closed, null);
    });

    // Last: the messages of every client of the tests above.
    it('every message the server sent in these tests matches docs/asyncapi.yaml', () => {
      const counts = asyncApi().assertStreamMessages(clients.flatMap((c) => c.messages));
      for (const kind of ['subscribed', 'workflow', 'error']) assert.ok((counts.get(kind) ?? 0) > 0, `no ${kind} message was checked`);
    });
  });
}
