/**
 * The JobStore contract: one suite, run against every store (River's
 * driver tests, bullmq's backend interface). Each case gets a fresh store
 * from `makeStore` (its own database or file) and migrates it.
 *
 * ```ts
 * storeContract('sqlite', async () => ({ store, cleanup }));
 * ```
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { monotonicFactory } from 'ulid';
import { readWithin } from '../../engine/event-tail.js';
import { outboxFor } from '../../engine/messages.js';
import type { JobCount, JobFilter, JobRecord, JobRecordPage, JobStore, OutboxRow, TransitionWrite } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { TERMINAL_STATES, type JobEvent, type JobState } from '../../machines/job.machine.js';
import { start } from '../../machines/lifecycle.js';

export type MakeStore = () => Promise<{ store: JobStore; cleanup(): Promise<void> }>;

/** What a JSON client gets (own keys only, prototypes gone). */
const onTheWire = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/** A fixed "now" (epoch ms), so times in assertions are exact. */
const T0 = 1_700_000_000_000;
const ulid = monotonicFactory();

interface NewJob {
  type?: string;
  queue?: string;
  payload?: unknown;
  runAt?: number;
  key?: string;
  requestHash?: string;
  /** @defaultValue 'default' */
  tenant?: string;
  at?: number;
  maxAttempts?: number;
  /** @defaultValue 0 */
  priority?: number;
}

/** A submit's write, built like TransitionService does. */
export function newJobWrite(o: NewJob = {}): TransitionWrite {
  const at = o.at ?? T0;
  const input = { at, maxAttempts: o.maxAttempts ?? 3, backoff: DEFAULT_BACKOFF, ...(o.runAt !== undefined ? { runAt: o.runAt } : {}) };
  const { next, effects } = start(input);
  const id = ulid(at);
  const job: JobRecord = {
    id, tenant: o.tenant ?? 'default', type: o.type ?? 'demo.echo', queue: o.queue ?? 'default', payload: o.payload ?? { n: 1 }, priority: o.priority ?? 0,
    timeoutMs: 30_000, idempotencyKey: o.key ?? null, requestHash: o.key ? (o.requestHash ?? 'a'.repeat(64)) : null,
    version: 1, snapshot: next, createdAt: at, updatedAt: at,
  };
  const event = { jobId: id, seq: 1, type: 'SUBMITTED' as const, from: null, to: next.value, at, data: input };
  return { job, expectedVersion: null, event, outbox: outboxFor(job, event, effects) };
}

/** The write of `event` on `job`; fails the test if the machine rejects it. */
function writeOf(job: JobRecord, event: JobEvent): TransitionWrite {
  const w = transitionWrite(job, event);
  assert.ok(w, `${event.type} rejected in ${job.snapshot.value}`);
  return w;
}

/** Apply events to a stored job, one update each; returns the job after the last. */
async function drive(store: JobStore, id: string, events: JobEvent[]): Promise<JobRecord> {
  for (const e of events) {
    await store.update([id], (jobs) => ({ writes: [writeOf(jobs.get(id)!, e)], result: null }));
  }
  return (await store.getJob(id))!;
}

const published = (at: number): JobEvent => ({ type: 'PUBLISHED', at, attempt: 1 });
const started = (at: number, leaseUntil = at + 30_000): JobEvent => ({ type: 'STARTED', at, attempt: 1, leaseUntil, workerId: 'w1' });
const failed = (at: number): JobEvent => ({ type: 'FAILED', at, attempt: 1, rand: 0.5, error: { message: 'boom', retryable: true } });

/** Relay everything, returning the rows in the order published. */
async function drain(store: JobStore, limit = 100): Promise<OutboxRow[]> {
  const out: OutboxRow[] = [];
  while ((await store.relayOutbox(limit, async (rows) => void out.push(...rows))) > 0);
  return out;
}

async function insertAll(store: JobStore, writes: TransitionWrite[]): Promise<TransitionWrite[]> {
  const results = await store.insert(writes);
  assert.ok(results.every((r) => r.ok));
  return writes;
}

/** Counts in one order, for comparing the maintained ones with a recount. */
const sortedCounts = (counts: JobCount[]): string[] => counts.map((c) => JSON.stringify([c.queue, c.type, c.state, c.n])).sort();

/** The tenants the contract's jobs belong to. */
const TENANTS = ['default', 'acme', 'globex'];

async function assertCountsExact(store: JobStore, context = ''): Promise<void> {
  assert.deepEqual(sortedCounts(await store.jobCounts()), sortedCounts(await store.recountJobs()), `counters differ from a recount ${context}`);
  for (const tenant of TENANTS) {
    assert.deepEqual(sortedCounts(await store.jobCounts(tenant)), sortedCounts(await store.recountJobs(tenant)), `${tenant}'s counters differ from a recount of its jobs ${context}`);
  }
}

/** An event of `kind` for a job as it is now (the machine may still reject it). */
function eventFor(job: JobRecord, kind: string, at: number): JobEvent {
  const attempt = job.snapshot.context.attempt;
  switch (kind) {
    case 'PUBLISHED': return { type: 'PUBLISHED', at, attempt: attempt + 1 };
    case 'STARTED': return { type: 'STARTED', at, attempt: attempt + 1, leaseUntil: at + 30_000, workerId: 'w1' };
    case 'SUCCEEDED': return { type: 'SUCCEEDED', at, attempt, result: { ok: true } };
    case 'FAILED': return { type: 'FAILED', at, attempt, rand: 0.5, error: { message: 'boom', retryable: true } };
    case 'RETRY_DUE': return { type: 'RETRY_DUE', at };
    case 'REDRIVE': return { type: 'REDRIVE', at };
    default: return { type: 'CANCEL', at };
  }
}

/** Operations of the counters' property: submits, transitions (several jobs per transaction), deletes, retention batches. */
const counterOp = fc.oneof(
  fc.record({
    op: fc.constant('submit' as const),
    jobs: fc.array(fc.record({
      queue: fc.constantFrom('q1', 'Q1', '__proto__'), type: fc.constantFrom('t1', 'constructor'), key: fc.option(fc.constantFrom('a', 'b')),
      tenant: fc.constantFrom('default', 'acme'),
    }), { minLength: 1, maxLength: 4 }),
  }),
  fc.record({
    op: fc.constant('step' as const),
    steps: fc.array(fc.record({ job: fc.nat(), kind: fc.constantFrom('PUBLISHED', 'STARTED', 'SUCCEEDED', 'FAILED', 'RETRY_DUE', 'CANCEL', 'REDRIVE') }), { minLength: 1, maxLength: 5 }),
  }),
  fc.record({ op: fc.constant('delete' as const), job: fc.nat() }),
  fc.record({ op: fc.constant('purge' as const), state: fc.constantFrom(...TERMINAL_STATES), ageMs: fc.nat({ max: 50 }), limit: fc.integer({ min: 1, max: 3 }) }),
);

export function storeContract(name: string, makeStore: MakeStore): void {
  /** A case on a fresh, migrated store, cleaned up whatever happens. */
  const test = (title: string, fn: (store: JobStore) => Promise<void>) =>
    it(title, async () => {
      const { store, cleanup } = await makeStore();
      try {
        await store.migrate();
        await fn(store);
      } finally {
        await cleanup();
      }
    });

  describe(`JobStore contract: ${name}`, () => {
    test('migrate twice is harmless and ping answers', async (store) => {
      await store.migrate();
      await store.ping();
      assert.equal(await store.countUnpublished(), 0);
    });

    test('insert then getJob returns the job as written', async (store) => {
      const w = newJobWrite({ payload: { text: 'héllo ✓ 😀', list: [1, 2.5, null, true], nested: { a: { b: 'c' } } } });
      assert.deepEqual(await store.insert([w]), [{ ok: true }]);
      assert.deepEqual(await store.getJob(w.job.id), w.job);
      assert.equal(await store.getJob('01H00000000000000000000000'), null);
      assert.deepEqual(await store.insert([]), []);
    });

    test('insert writes the SUBMITTED event and the outbox rows with the job', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      assert.deepEqual(await store.getEvents(w!.job.id), [w!.event]);
      assert.equal(await store.countUnpublished(), 2);
      const rows = await drain(store);
      assert.deepEqual(rows.map(({ topic, key, payload, headers }) => ({ topic, key, payload, headers })), w!.outbox);
      assert.ok(rows.every((r) => r.createdAt === T0 && r.publishedAt === null && Number.isInteger(r.id)));
    });

    test('a taken idempotency key is reported and the rest of the batch commits', async (store) => {
      const first = newJobWrite({ key: 'k1' });
      await insertAll(store, [first]);
      const batch = [
        newJobWrite({ key: 'k1' }), // taken by `first`
        newJobWrite(), // no key
        newJobWrite({ key: 'k2' }),
        newJobWrite({ key: 'k2' }), // taken by the one before, in the same batch
        newJobWrite({ key: 'K1' }), // keys are case-sensitive
        newJobWrite({ key: 'k1', queue: 'other' }), // keys are per queue
      ];
      const dup = { ok: false, reason: 'duplicate-key' };
      assert.deepEqual(await store.insert(batch), [dup, { ok: true }, { ok: true }, dup, { ok: true }, { ok: true }]);
      assert.equal((await store.findByIdempotencyKey('default', 'k1', 'default'))?.id, first.job.id);
      assert.equal((await store.findByIdempotencyKey('default', 'k2', 'default'))?.id, batch[2]!.job.id);
      assert.equal(await store.findByIdempotencyKey('default', 'nope', 'default'), null);
      for (const i of [0, 3]) {
        assert.equal(await store.getJob(batch[i]!.job.id), null);
        assert.deepEqual(await store.getEvents(batch[i]!.job.id), []);
      }
      const keys = new Set((await drain(store)).map((r) => r.key));
      assert.equal(keys.size, 5);
      assert.ok(!keys.has(batch[0]!.job.id) && !keys.has(batch[3]!.job.id));
    });

    test('update commits a chain of writes on one job (compare-and-set per step)', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      const id = w!.job.id;
      let seen: string[] = [];
      const result = await store.update([id, 'missing-id'], (jobs) => {
        seen = [...jobs.keys()];
        const a = writeOf(jobs.get(id)!, published(T0 + 1));
        const b = writeOf(a.job, started(T0 + 2));
        return { writes: [a, b], result: 'done' as const };
      });
      assert.equal(result, 'done');
      assert.deepEqual(seen, [id]);
      const job = (await store.getJob(id))!;
      assert.equal(job.version, 3);
      assert.equal(job.snapshot.value, 'running');
      assert.equal(job.updatedAt, T0 + 2);
      const events = await store.getEvents(id);
      assert.deepEqual(events.map((e) => [e.seq, e.type, e.from, e.to]), [
        [1, 'SUBMITTED', null, 'pending'], [2, 'PUBLISHED', 'pending', 'published'], [3, 'STARTED', 'published', 'running'],
      ]);
      assert.deepEqual((await store.getEvents(id, 2)).map((e) => e.seq), [3]);
      assert.equal(await store.countUnpublished(), 4);
    });

    test('a write on a stale version is retried, then fails with ATS_ERR_CONCURRENT_UPDATE', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      const id = w!.job.id;
      let calls = 0;
      await assert.rejects(
        store.update([id], (jobs) => {
          calls++;
          const write = writeOf(jobs.get(id)!, published(T0 + 1));
          return { writes: [{ ...write, expectedVersion: 7 }], result: null };
        }),
        (err: { code?: string }) => err.code === 'ATS_ERR_CONCURRENT_UPDATE',
      );
      assert.ok(calls > 1, `decide ran ${calls} time(s)`);
      assert.equal((await store.getJob(id))!.version, 1);
      assert.equal((await store.getEvents(id)).length, 1);
      assert.equal(await store.countUnpublished(), 2);
    });

    test('a broken chain (second write not on the first one\'s version) writes nothing', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      const id = w!.job.id;
      await assert.rejects(
        store.update([id], (jobs) => {
          const a = writeOf(jobs.get(id)!, published(T0 + 1));
          const b = writeOf(jobs.get(id)!, { type: 'CANCEL', at: T0 + 2 }); // also from version 1
          return { writes: [a, b], result: null };
        }),
        (err: { code?: string }) => err.code === 'ATS_ERR_CONCURRENT_UPDATE',
      );
      assert.equal((await store.getJob(id))!.snapshot.value, 'pending');
      assert.equal((await store.getEvents(id)).length, 1);
    });

    test('a decide that writes nothing, or throws, changes nothing', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      const id = w!.job.id;
      assert.equal(await store.update([id], () => ({ writes: [], result: 42 })), 42);
      await assert.rejects(store.update([id], () => { throw new Error('decide failed'); }), /decide failed/);
      assert.deepEqual(await store.getJob(id), w!.job);
      assert.equal((await store.getEvents(id)).length, 1);
      assert.equal(await store.countUnpublished(), 2);
    });

    test('relayOutbox publishes oldest first, whole rows until it holds `limit` messages, and deletes them', async (store) => {
      // Three transactions: three rows of two messages (each job's SUBMITTED and its dispatch).
      for (let i = 0; i < 3; i++) await insertAll(store, [newJobWrite()]);
      const batches: number[][] = [];
      const publish = async (rows: OutboxRow[]) => void batches.push(rows.map((r) => r.id));
      assert.equal(await store.relayOutbox(3, publish), 4, 'two rows: the first alone holds fewer than 3');
      assert.equal(await store.countUnpublished(), 2);
      assert.equal(await store.relayOutbox(3, publish), 2, 'fewer than the limit: nothing left');
      assert.equal(await store.relayOutbox(3, publish), 0);
      assert.equal(batches.length, 2, 'publish is not called with no rows');
      const ids = batches.flat();
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.equal(new Set(ids).size, 6);
    });

    test('one transaction\'s messages are one row, never split, each with its own id, in the order written', async (store) => {
      const writes = await insertAll(store, [newJobWrite(), newJobWrite(), newJobWrite()]);
      const rows: OutboxRow[] = [];
      assert.equal(await store.relayOutbox(1, async (batch) => void rows.push(...batch)), 6);
      assert.equal(await store.countUnpublished(), 0);
      assert.deepEqual(rows.map((r) => [r.topic, r.key]), writes.flatMap((w) => w.outbox.map((m) => [m.topic, m.key])));
      assert.deepEqual(rows.map((r) => r.payload), writes.flatMap((w) => w.outbox.map((m) => m.payload)));
      assert.deepEqual(rows.map((r) => r.headers), writes.flatMap((w) => w.outbox.map((m) => m.headers)));
      const ids = rows.map((r) => r.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.equal(new Set(ids).size, 6);
    });

    test('a throwing publish leaves the rows unpublished and they come again', async (store) => {
      await insertAll(store, [newJobWrite()]);
      await insertAll(store, [newJobWrite()]);
      await insertAll(store, [newJobWrite()]);
      let firstIds: number[] = [];
      await assert.rejects(
        store.relayOutbox(3, async (rows) => {
          firstIds = rows.map((r) => r.id);
          throw new Error('broker down');
        }),
        /broker down/,
      );
      assert.equal(firstIds.length, 4);
      assert.equal(await store.countUnpublished(), 6);
      let againIds: number[] = [];
      assert.equal(await store.relayOutbox(3, async (rows) => void (againIds = rows.map((r) => r.id))), 4);
      assert.deepEqual(againIds, firstIds);
      assert.equal(await store.countUnpublished(), 2);
    });

    test('two relays at once never publish the same row', async (store) => {
      // Fifteen transactions: fifteen rows of two messages.
      for (let i = 0; i < 15; i++) await insertAll(store, [newJobWrite()]);
      const seen: number[] = [];
      const relay = async () => {
        const mine: number[] = [];
        while (await store.relayOutbox(4, async (rows) => {
          mine.push(...rows.map((r) => r.id));
          await new Promise((r) => setTimeout(r, 15));
        }) > 0);
        assert.deepEqual(mine, [...mine].sort((a, b) => a - b), 'each relay publishes in id order');
        seen.push(...mine);
      };
      // A relay that finds the rows it picked held by another stops (as the loop would until its next poll): go again until all are out.
      for (let round = 0; round < 10 && (await store.countUnpublished()) > 0; round++) await Promise.all([relay(), relay(), relay()]);
      assert.equal(seen.length, 30);
      assert.equal(new Set(seen).size, 30, 'a row was handed to two relays');
      assert.equal(await store.countUnpublished(), 0);
    });

    test('a relay deletes only the rows it published: rows another relay held and failed to publish come again', async (store) => {
      // Two transactions: two rows of two messages.
      await insertAll(store, [newJobWrite()]);
      await insertAll(store, [newJobWrite()]);
      const published: number[] = [];
      let entered!: () => void;
      const holding = new Promise<void>((r) => (entered = r));
      let fail!: () => void;
      const failing = new Promise<void>((r) => (fail = r));
      // The first relay claims the first row and holds it, its publish pending.
      const first = store.relayOutbox(1, async () => {
        entered();
        await failing;
        throw new Error('broker down');
      });
      await holding;
      // The second peeks both rows while the first holds one (on SQLite it waits for the first to finish).
      let secondPublished = false;
      const second = store.relayOutbox(3, async (rows) => {
        secondPublished = true;
        published.push(...rows.map((r) => r.id));
      });
      for (let i = 0; i < 20 && !secondPublished; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      // The first relay's publish fails: its row was not published, and must stay.
      fail();
      await assert.rejects(first, /broker down/);
      await second;
      published.push(...(await drain(store)).map((r) => r.id));
      assert.equal(await store.countUnpublished(), 0);
      assert.equal(published.length, 4, `every message is published by a publish that succeeded (got ids ${published.join(', ')})`);
      assert.equal(new Set(published).size, 4);
    });

    test('findDue finds delayed jobs and retries once due, most overdue first', async (store) => {
      const [late, now] = await insertAll(store, [newJobWrite({ runAt: T0 + 1000 }), newJobWrite()]);
      const earlier = await insertAll(store, [newJobWrite({ runAt: T0 + 500 })]);
      assert.deepEqual(await store.findDue(T0 + 499, 10), []);
      assert.deepEqual(await store.findDue(T0 + 1000, 10), [
        { id: earlier[0]!.job.id, state: 'pending', attempt: 0, version: 1 },
        { id: late!.job.id, state: 'pending', attempt: 0, version: 1 },
      ]);
      assert.equal((await store.findDue(T0 + 1000, 1)).length, 1);
      const retrying = await drive(store, now!.job.id, [published(T0 + 1), started(T0 + 2), failed(T0 + 3)]);
      assert.equal(retrying.snapshot.value, 'retrying');
      const due = retrying.snapshot.context.runAt;
      assert.ok(!(await store.findDue(due - 1, 10)).some((j) => j.id === now!.job.id));
      assert.deepEqual((await store.findDue(due, 10)).find((j) => j.id === now!.job.id), { id: now!.job.id, state: 'retrying', attempt: 1, version: retrying.version });
    });

    test('findExpiredLeases finds running jobs whose lease ended', async (store) => {
      const [a, b] = await insertAll(store, [newJobWrite(), newJobWrite()]);
      await drive(store, a!.job.id, [started(T0 + 1, T0 + 5000)]);
      await drive(store, b!.job.id, [started(T0 + 1, T0 + 9000)]);
      assert.deepEqual(await store.findExpiredLeases(T0 + 4999, 10), []);
      assert.deepEqual(await store.findExpiredLeases(T0 + 5000, 10), [{ id: a!.job.id, state: 'running', attempt: 1, version: 2 }]);
      assert.deepEqual((await store.findExpiredLeases(T0 + 9000, 10)).map((j) => j.id), [a!.job.id, b!.job.id]);
      await drive(store, a!.job.id, [{ type: 'HEARTBEAT', at: T0 + 10, attempt: 1, leaseUntil: T0 + 20_000 }]);
      assert.deepEqual((await store.findExpiredLeases(T0 + 9000, 10)).map((j) => j.id), [b!.job.id]);
    });

    test('findLostDispatches finds dispatched jobs not started since a time, published or not, with their type and lane', async (store) => {
      const [a, b, c, d] = await insertAll(store, [newJobWrite(), newJobWrite(), newJobWrite({ at: T0 + 15, type: 'report.render', queue: 'reports', priority: -2 }), newJobWrite({ runAt: T0 + 50 })]);
      await drive(store, a!.job.id, [published(T0 + 10)]);
      await drive(store, b!.job.id, [published(T0 + 20), started(T0 + 30)]);
      assert.deepEqual(await store.findLostDispatches(T0 + 9, 10), []);
      // c: pending, dispatched at submit, PUBLISHED never recorded; d: delayed, never dispatched.
      assert.deepEqual(await store.findLostDispatches(T0 + 10_000, 10), [
        { id: a!.job.id, state: 'published', attempt: 0, version: 2, type: 'demo.echo', queue: 'default', priority: 0, lastTransitionAt: T0 + 10 },
        { id: c!.job.id, state: 'pending', attempt: 0, version: 1, type: 'report.render', queue: 'reports', priority: -2, lastTransitionAt: T0 + 15 },
      ]);
      assert.ok(d);
    });

    test('keepDispatches moves the update time of jobs waiting for a worker only, never back, so findLostDispatches passes them over', async (store) => {
      const [a, b, c, d, e] = await insertAll(store, [newJobWrite(), newJobWrite(), newJobWrite({ at: T0 + 15 }), newJobWrite({ runAt: T0 + 50 }), newJobWrite()]);
      await drive(store, a!.job.id, [published(T0 + 10)]);
      await drive(store, b!.job.id, [published(T0 + 20), started(T0 + 30)]);
      await drive(store, e!.job.id, [published(T0 + 10)]);
      const before = await Promise.all([a, b, c, d, e].map((w) => store.getJob(w!.job.id)));
      // a (published), b (running), c (pending, dispatch issued), d (delayed, never dispatched), and an unknown id: a and c change.
      assert.equal(await store.keepDispatches([c!.job.id, a!.job.id, b!.job.id, d!.job.id, 'no-such-job', a!.job.id], T0 + 5000), 2);
      const after = await Promise.all([a, b, c, d, e].map((w) => store.getJob(w!.job.id)));
      assert.deepEqual(after.map((j) => j!.updatedAt), [T0 + 5000, before[1]!.updatedAt, T0 + 5000, before[3]!.updatedAt, before[4]!.updatedAt]);
      // Nothing else of the job changes: no version, no snapshot, no event.
      assert.deepEqual(after.map((j) => [j!.version, j!.snapshot]), before.map((j) => [j!.version, j!.snapshot]));
      assert.equal((await store.getEvents(a!.job.id)).length, 2);
      assert.deepEqual(await store.findLostDispatches(T0 + 4999, 10), [{ id: e!.job.id, state: 'published', attempt: 0, version: 2, type: 'demo.echo', queue: 'default', priority: 0, lastTransitionAt: T0 + 10 }]);
      // An earlier time changes nothing.
      assert.equal(await store.keepDispatches([a!.job.id], T0 + 100), 0);
      assert.equal((await store.getJob(a!.job.id))!.updatedAt, T0 + 5000);
      assert.equal(await store.keepDispatches([], T0 + 6000), 0);
      // More ids than one statement names.
      const many = await insertAll(store, Array.from({ length: 1200 }, () => newJobWrite()));
      assert.equal(await store.keepDispatches(many.map((w) => w.job.id), T0 + 7000), 1200);
      assert.deepEqual((await store.findLostDispatches(T0 + 6999, 2000)).map((j) => j.id).sort(), [a!.job.id, c!.job.id, e!.job.id].sort());
    });

    test('listJobs pages newest first and filters by state, type and queue', async (store) => {
      const writes = await insertAll(store, [
        newJobWrite({ type: 't1', queue: 'q1' }), newJobWrite({ type: 't2', queue: 'q1' }), newJobWrite({ type: 't1', queue: 'q2' }),
        newJobWrite({ type: 't2', queue: 'q2' }), newJobWrite({ type: 't1', queue: 'q1' }),
      ]);
      const ids = writes.map((w) => w.job.id);
      await drive(store, ids[1]!, [published(T0 + 1)]);
      const newestFirst = [...ids].reverse();
      const page1 = await store.listJobs({ limit: 2 });
      const page2 = await store.listJobs({ limit: 2, afterId: page1.at(-1)!.id });
      const page3 = await store.listJobs({ limit: 2, afterId: page2.at(-1)!.id });
      assert.deepEqual([...page1, ...page2, ...page3].map((j) => j.id), newestFirst);
      assert.equal(page3.length, 1);
      const idsOf = (jobs: JobRecord[]) => jobs.map((j) => j.id);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, type: 't1' })), [ids[4], ids[2], ids[0]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, queue: 'q2' })), [ids[3], ids[2]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, state: 'published' })), [ids[1]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, state: 'pending', type: 't2', queue: 'q2' })), [ids[3]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, type: 't1', afterId: ids[4] })), [ids[2], ids[0]]);
      assert.equal((await store.listJobs({ limit: 1, state: 'published' }))[0]!.version, 2);
    });

    test('listJobPage cuts a page by the bytes of payloads and snapshots: the first job always, nextAfterId where the next page starts', async (store) => {
      const text = (n: number) => 'x'.repeat(n);
      // Oldest first: four jobs of about 10 KB, one of about 30 KB (of another type) among them.
      const writes = await insertAll(store, [
        newJobWrite({ payload: text(10_000) }), newJobWrite({ payload: text(10_000) }), newJobWrite({ payload: text(10_000) }),
        newJobWrite({ payload: text(30_000), type: 't2' }), newJobWrite({ payload: text(10_000) }),
      ]);
      const [j0, j1, j2, j3, j4] = writes.map((w) => w.job.id);
      const pages = async (filter: JobFilter, maxBytes: number) => {
        const seen: string[][] = [];
        let afterId: string | null = null;
        do {
          const page: JobRecordPage = await store.listJobPage({ ...filter, ...(afterId ? { afterId } : {}) }, maxBytes);
          seen.push(page.jobs.map((j) => j.id));
          afterId = page.nextAfterId;
          if (afterId !== null) assert.equal(afterId, page.jobs.at(-1)!.id);
        } while (afterId !== null && seen.length < 10);
        return seen;
      };
      // 25,000 bytes: two small jobs fit, a small one and the big one do not; the big one comes alone.
      assert.deepEqual(await pages({ limit: 10 }, 25_000), [[j4], [j3], [j2, j1], [j0]]);
      assert.deepEqual(await pages({ limit: 10, type: 'demo.echo' }, 25_000), [[j4, j2], [j1, j0]]);
      // The rows bound still holds; a budget that fits all leaves only it.
      assert.deepEqual(await pages({ limit: 4 }, 1 << 30), [[j4, j3, j2, j1], [j0]]);
      assert.deepEqual(await pages({ limit: 5 }, 1 << 30), [[j4, j3, j2, j1, j0]]);
      // Smaller than any job: a job per page.
      assert.deepEqual(await pages({ limit: 10 }, 1), [[j4], [j3], [j2], [j1], [j0]]);
      assert.deepEqual(await store.listJobPage({ limit: 10, tenant: 'nobody' }, 25_000), { jobs: [], nextAfterId: null });
      const [big] = (await store.listJobPage({ limit: 10, afterId: j4! }, 25_000)).jobs;
      assert.deepEqual(big, (await store.getJob(j3!))!, 'a page holds the whole job');
    });

    test('listJobs filters by creation time: createdAfter inclusive, createdBefore exclusive, with the other filters and paging', async (store) => {
      const writes = await insertAll(store, [
        newJobWrite({ at: T0 }), newJobWrite({ at: T0 + 1000, type: 't1' }), newJobWrite({ at: T0 + 2000 }), newJobWrite({ at: T0 + 3000, type: 't1' }),
      ]);
      const ids = writes.map((w) => w.job.id);
      const idsOf = (jobs: JobRecord[]) => jobs.map((j) => j.id);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, createdAfter: T0 + 1000 })), [ids[3], ids[2], ids[1]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, createdBefore: T0 + 2000 })), [ids[1], ids[0]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, createdAfter: T0 + 1000, createdBefore: T0 + 3000 })), [ids[2], ids[1]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 10, createdAfter: T0 + 1, createdBefore: T0 + 3001, type: 't1' })), [ids[3], ids[1]]);
      assert.deepEqual(idsOf(await store.listJobs({ limit: 1, createdAfter: T0 + 1000, afterId: ids[3] })), [ids[2]]);
      assert.deepEqual(await store.listJobs({ limit: 10, createdAfter: T0 + 3001 }), []);
      assert.deepEqual(await store.listJobs({ limit: 10, createdAfter: T0 + 2000, createdBefore: T0 + 2000 }), []);
    });

    /** Two jobs of two types, queues and tenants: b cancelled, then a published and started in one update (five events). */
    const twoJobsMoved = async (store: JobStore) => {
      const [a, b] = await insertAll(store, [newJobWrite({ type: 't1', queue: 'q1' }), newJobWrite({ type: 't2', queue: 'q2', tenant: 'acme' })]);
      await drive(store, b!.job.id, [{ type: 'CANCEL', at: T0 + 1 }]);
      await store.update([a!.job.id], (jobs) => {
        const p = writeOf(jobs.get(a!.job.id)!, published(T0 + 2));
        return { writes: [p, writeOf(p.job, started(T0 + 3))], result: null };
      });
      return [a!, b!] as const;
    };

    test('readEventsAfter returns every job\'s events in id order, with the job\'s type, queue and tenant, paged by id', async (store) => {
      const [a, b] = await twoJobsMoved(store);
      const all = await store.readEventsAfter(0, 100);
      assert.equal(all.length, 5);
      const ids = all.map((e) => e.id);
      assert.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id > ids[i - 1]!)), `ids not increasing: ${ids}`);
      for (const w of [a!, b!]) {
        const mine = all.filter((e) => e.jobId === w.job.id);
        assert.deepEqual(mine.map(({ id, jobType, queue, tenant, ...event }) => event), await store.getEvents(w.job.id), 'same events as getEvents, in seq order');
        assert.ok(mine.every((e) => e.jobType === w.job.type && e.queue === w.job.queue && e.tenant === w.job.tenant));
      }
      const paged = [];
      for (let after = 0, page; (page = await store.readEventsAfter(after, 2)).length > 0; after = page.at(-1)!.id) {
        assert.ok(page.length <= 2);
        paged.push(...page);
      }
      assert.deepEqual(paged, all);
      assert.deepEqual(await store.readEventsAfter(ids.at(-1)!, 10), []);
      assert.deepEqual((await store.readEventsAfter(ids[2]!, 10)).map((e) => e.id), ids.slice(3));
      // Their sizes, read without them: the same rows, each with the bytes of its data as stored.
      assert.deepEqual(await store.eventSizesAfter(0, 100), all.map((e) => ({ id: e.id, bytes: Buffer.byteLength(JSON.stringify(e.data)) })));
      assert.deepEqual((await store.eventSizesAfter(ids[1]!, 2)).map((r) => r.id), [ids[2], ids[3]]);
      assert.deepEqual(await store.eventSizesAfter(ids.at(-1)!, 10), []);
    });

    test('readJobEventsAfter is readEventsAfter of one job: its events after a position (and up to throughId), in id order, which is seq order', async (store) => {
      const [a, b] = await twoJobsMoved(store);
      const all = await store.readEventsAfter(0, 100);
      const mine = all.filter((e) => e.jobId === a!.job.id);
      assert.deepEqual(mine.map((e) => e.seq), [1, 2, 3]);
      assert.deepEqual(await store.readJobEventsAfter(a!.job.id, 0, 100), mine);
      assert.deepEqual(await store.readJobEventsAfter(a!.job.id, 0, 2), mine.slice(0, 2), 'at most limit');
      assert.deepEqual(await store.readJobEventsAfter(a!.job.id, mine[0]!.id, 100), mine.slice(1));
      assert.deepEqual(await store.readJobEventsAfter(a!.job.id, 0, 100, mine[1]!.id), mine.slice(0, 2), 'none past throughId');
      assert.deepEqual(await store.readJobEventsAfter(a!.job.id, mine[2]!.id, 100), []);
      assert.deepEqual(await store.readJobEventsAfter(b!.job.id, 0, 100), all.filter((e) => e.jobId === b!.job.id));
      assert.deepEqual(await store.readJobEventsAfter('01J00000000000000000000000', 0, 100), []);
    });

    test('readEventsAfter with throughId reads no row past it; readWithin on it reads no row it did not size, whatever is deleted meanwhile', async (store) => {
      // Ids in this order: A's two, B's three, D's two, B's large SUCCEEDED, C's one. A and D end cancelled (deletable).
      const [a] = await insertAll(store, [newJobWrite()]);
      await drive(store, a!.job.id, [{ type: 'CANCEL', at: T0 + 1 }]);
      const [b] = await insertAll(store, [newJobWrite()]);
      await drive(store, b!.job.id, [published(T0 + 1), started(T0 + 2)]);
      const [d] = await insertAll(store, [newJobWrite()]);
      await drive(store, d!.job.id, [{ type: 'CANCEL', at: T0 + 3 }]);
      await drive(store, b!.job.id, [{ type: 'SUCCEEDED', at: T0 + 4, attempt: 1, result: 'r'.repeat(20_000) }]);
      await insertAll(store, [newJobWrite()]);
      const all = await store.readEventsAfter(0, 100);
      const ids = all.map((e) => e.id);
      const bytes = (await store.eventSizesAfter(0, 100)).map((r) => r.bytes);
      const jobOf = all.map((e) => (e.jobId === a!.job.id ? 'A' : e.jobId === b!.job.id ? 'B' : e.jobId === d!.job.id ? 'D' : 'C'));
      assert.deepEqual(jobOf, ['A', 'A', 'B', 'B', 'B', 'D', 'D', 'B', 'C']);

      assert.deepEqual((await store.readEventsAfter(ids[0]!, 10, ids[3]!)).map((e) => e.id), ids.slice(1, 4));
      assert.deepEqual((await store.readEventsAfter(ids[0]!, 2, ids[5]!)).map((e) => e.id), ids.slice(1, 3), 'and at most limit');
      assert.deepEqual(await store.readEventsAfter(ids[3]!, 10, ids[3]!), []);

      /** readWithin over the store, with `meanwhile` run between its sizes read and its rows read. */
      const within = (afterId: number, maxBytes: number, meanwhile: () => Promise<unknown>) => readWithin(
        async (after, limit) => {
          const sizes = await store.eventSizesAfter(after, limit);
          await meanwhile();
          return sizes;
        },
        (after, limit, throughId) => store.readEventsAfter(after, limit, throughId), afterId, 100, maxBytes,
      );
      const sum = (from: number, to: number) => bytes.slice(from, to).reduce((n, b) => n + b, 0);
      // The seven small rows fit; A is deleted before they are read: the large row must not take A's places.
      const page = await within(0, sum(0, 7), () => store.deleteJob(a!.job.id));
      assert.deepEqual(page.rows.map((e) => e.id), ids.slice(2, 7));
      assert.equal(page.cut, true);
      // After B's three, D's two fit; D is deleted meanwhile: the large row comes alone (a first row comes whatever
      // its size), not the rows after it too, and not nothing (an empty page would say the table ended).
      const next = await within(ids[4]!, sum(5, 7), () => store.deleteJob(d!.job.id));
      assert.deepEqual(next.rows.map((e) => e.id), [ids[7]]);
      assert.equal(next.cut, true);
    });

    test('lastEventId is 0 on an empty table, then the newest committed event id, and ignores a rollback', async (store) => {
      assert.equal(await store.lastEventId(), 0);
      const [w] = await insertAll(store, [newJobWrite(), newJobWrite()]);
      await drive(store, w!.job.id, [published(T0 + 1)]);
      const ids = (await store.readEventsAfter(0, 10)).map((e) => e.id);
      assert.equal(ids.length, 3);
      assert.equal(await store.lastEventId(), ids.at(-1));
      await assert.rejects(store.update([w!.job.id], () => { throw new Error('decide failed'); }), /decide failed/);
      assert.equal(await store.lastEventId(), ids.at(-1));
    });

    test('readEventsAfter sees nothing of a transition that rolled back', async (store) => {
      const [w] = await insertAll(store, [newJobWrite()]);
      const before = await store.readEventsAfter(0, 10);
      await assert.rejects(store.update([w!.job.id], () => { throw new Error('decide failed'); }), /decide failed/);
      assert.deepEqual(await store.readEventsAfter(0, 10), before);
      await drive(store, w!.job.id, [published(T0 + 1)]);
      const after = await store.readEventsAfter(before.at(-1)!.id, 10);
      assert.deepEqual(after.map((e) => [e.jobId, e.seq, e.type]), [[w!.job.id, 2, 'PUBLISHED']]);
    });

    test('stats counts jobs per state, per type and per queue', async (store) => {
      const writes = await insertAll(store, [
        newJobWrite({ type: 't1', queue: 'q1' }), newJobWrite({ type: 't1', queue: 'q2' }), newJobWrite({ type: 't2', queue: 'q1' }),
      ]);
      await drive(store, writes[0]!.job.id, [{ type: 'CANCEL', at: T0 + 1 }]);
      const stats = await store.stats();
      assert.equal(Object.getPrototypeOf(stats.byQueue), null);
      assert.equal(Object.getPrototypeOf(stats.byType['t1']), null);
      assert.deepEqual(JSON.parse(JSON.stringify(stats)), {
        byState: { pending: 2, published: 0, running: 0, retrying: 0, done: 0, dead: 0, cancelled: 1 },
        byType: { t1: { pending: 1, cancelled: 1 }, t2: { pending: 1 } },
        byQueue: { q1: { pending: 1, cancelled: 1 }, q2: { pending: 1 } },
      });
    });

    test('deleteJob deletes a terminal job with its events and uncounts it; a live job stays', async (store) => {
      const [done, cancelled, live] = await insertAll(store, [newJobWrite({ key: 'k' }), newJobWrite(), newJobWrite()]);
      await drive(store, done!.job.id, [published(T0 + 1), started(T0 + 2), { type: 'SUCCEEDED', at: T0 + 3, attempt: 1 }]);
      await drive(store, cancelled!.job.id, [{ type: 'CANCEL', at: T0 + 1 }]);
      await drive(store, live!.job.id, [published(T0 + 1), started(T0 + 2)]);
      const unpublished = await store.countUnpublished();

      assert.deepEqual(await store.deleteJob(live!.job.id), { ok: false, reason: 'live', state: 'running' });
      assert.equal((await store.getJob(live!.job.id))!.version, 3);
      assert.equal((await store.getEvents(live!.job.id)).length, 3);

      assert.deepEqual(await store.deleteJob(done!.job.id), { ok: true });
      assert.equal(await store.getJob(done!.job.id), null);
      assert.deepEqual(await store.getEvents(done!.job.id), []);
      assert.equal(await store.findByIdempotencyKey('default', 'k', 'default'), null, 'the key is free again');
      assert.ok((await store.readEventsAfter(0, 100)).every((e) => e.jobId !== done!.job.id));
      assert.deepEqual(await store.deleteJob(done!.job.id), { ok: false, reason: 'not-found' });
      assert.deepEqual(await store.deleteJob('01H00000000000000000000000'), { ok: false, reason: 'not-found' });
      assert.deepEqual(await store.deleteJob(cancelled!.job.id), { ok: true });

      assert.equal(await store.countUnpublished(), unpublished, 'outbox rows are the relay\'s');
      const stats = await store.stats();
      assert.deepEqual(stats.byState, { pending: 0, published: 0, running: 1, retrying: 0, done: 0, dead: 0, cancelled: 0 });
      assert.deepEqual(JSON.parse(JSON.stringify(stats.byQueue)), { default: { running: 1 } });
      await assertCountsExact(store);
      const again = newJobWrite({ key: 'k' });
      assert.deepEqual(await store.insert([again]), [{ ok: true }], 'a deleted job\'s key can be used again');
    });

    test('purgeJobs deletes old jobs of one terminal state, oldest first, at most `limit`', async (store) => {
      const jobs = await insertAll(store, Array.from({ length: 5 }, () => newJobWrite()));
      const ids = jobs.map((w) => w.job.id);
      // Cancelled at T0+50, +40, +30, +20 (oldest last in id order); the fifth job stays pending.
      for (const [i, id] of ids.slice(0, 4).entries()) await drive(store, id, [{ type: 'CANCEL', at: T0 + 50 - 10 * i }]);
      const done = await insertAll(store, [newJobWrite()]);
      await drive(store, done[0]!.job.id, [published(T0 + 1), started(T0 + 2), { type: 'SUCCEEDED', at: T0 + 3, attempt: 1 }]);

      assert.equal(await store.purgeJobs('cancelled', T0 + 19, 10), 0);
      assert.equal(await store.purgeJobs('cancelled', T0 + 40, 2), 2);
      assert.deepEqual(await store.getJob(ids[3]!), null, 'the oldest went first');
      assert.deepEqual(await store.getJob(ids[2]!), null);
      assert.deepEqual(await store.getEvents(ids[3]!), []);
      assert.equal(await store.purgeJobs('cancelled', T0 + 40, 2), 1, 'only what is old enough');
      assert.ok(await store.getJob(ids[0]!), 'cancelled at T0+50: younger than the cutoff');
      assert.ok(await store.getJob(done[0]!.job.id), 'another state is left alone');
      assert.equal(await store.purgeJobs('done', T0 + 3, 10), 1, 'the cutoff is inclusive');
      await assert.rejects(store.purgeJobs('pending' as JobState, T0 + 1_000_000, 10), /terminal/);
      assert.equal((await store.getJob(ids[4]!))!.snapshot.value, 'pending');
      assert.equal((await store.stats()).byState.cancelled, 1);
      await assertCountsExact(store);
    });

    test('property: after random submits, transitions, deletes and retention batches, the counters equal a recount', async (store) => {
      const ids: string[] = [];
      let at = T0;
      await fc.assert(
        fc.asyncProperty(fc.array(counterOp, { minLength: 1, maxLength: 12 }), async (ops) => {
          for (const o of ops) {
            at += 1;
            if (o.op === 'submit') {
              const writes = o.jobs.map((j) => newJobWrite({ queue: j.queue, type: j.type, tenant: j.tenant, at, ...(j.key ? { key: j.key } : {}) }));
              const results = await store.insert(writes);
              writes.forEach((w, i) => results[i]!.ok && ids.push(w.job.id));
            } else if (o.op === 'step' && ids.length > 0) {
              const targets = o.steps.map((s) => ({ id: ids[s.job % ids.length]!, kind: s.kind }));
              await store.update(targets.map((t) => t.id), (jobs) => {
                const current = new Map(jobs);
                const writes: TransitionWrite[] = [];
                for (const t of targets) {
                  const job = current.get(t.id);
                  const w = job && transitionWrite(job, eventFor(job, t.kind, at));
                  if (!w) continue;
                  current.set(t.id, w.job);
                  writes.push(w);
                }
                return { writes, result: null };
              });
            } else if (o.op === 'delete' && ids.length > 0) {
              await store.deleteJob(ids[o.job % ids.length]!);
            } else if (o.op === 'purge') {
              await store.purgeJobs(o.state, at - o.ageMs, o.limit);
            }
          }
          await assertCountsExact(store, JSON.stringify(ops));
          const stats = await store.stats();
          const total = Object.values(stats.byState).reduce((a, n) => a + n, 0);
          assert.equal(total, (await store.recountJobs()).reduce((a, c) => a + c.n, 0));
          // Each tenant's counters are its jobs' (every state, counted from its list).
          for (const tenant of ['default', 'acme']) {
            const listed = await store.listJobs({ tenant, limit: 10_000 });
            const byState = new Map<string, number>();
            for (const j of listed) byState.set(j.snapshot.value, (byState.get(j.snapshot.value) ?? 0) + 1);
            const counted = (await store.stats(tenant)).byState;
            for (const [state, n] of Object.entries(counted)) assert.equal(n, byState.get(state) ?? 0, `${tenant} ${state}`);
          }
        }),
        { numRuns: 25 },
      );
    });

    test('tenants: a job keeps its tenant; the same idempotency key in two tenants makes two jobs, found per tenant', async (store) => {
      const mine = newJobWrite({ key: 'k', tenant: 'acme' });
      const theirs = newJobWrite({ key: 'k', tenant: 'globex' });
      const dup = { ok: false, reason: 'duplicate-key' };
      assert.deepEqual(await store.insert([mine, theirs, newJobWrite({ key: 'k', tenant: 'acme' })]), [{ ok: true }, { ok: true }, dup]);
      assert.deepEqual(await store.insert([newJobWrite({ key: 'k', tenant: 'globex' })]), [dup]);
      assert.equal((await store.getJob(mine.job.id))?.tenant, 'acme');
      assert.equal((await store.findByIdempotencyKey('default', 'k', 'acme'))?.id, mine.job.id);
      assert.equal((await store.findByIdempotencyKey('default', 'k', 'globex'))?.id, theirs.job.id);
      assert.equal(await store.findByIdempotencyKey('default', 'k', 'default'), null);
      // A transition keeps the tenant (it is not among the columns an update sets).
      assert.equal((await drive(store, mine.job.id, [published(T0 + 1)])).tenant, 'acme');
    });

    test('tenants: lists, stats, counters and edges are per tenant when asked, every tenant\'s otherwise', async (store) => {
      const [a1, a2, g1, d1] = await insertAll(store, [
        newJobWrite({ tenant: 'acme', queue: 'q1' }), newJobWrite({ tenant: 'acme', queue: 'q2', type: 't2' }),
        newJobWrite({ tenant: 'globex', queue: 'q1' }), newJobWrite({ queue: 'q1' }),
      ]);
      await drive(store, a1!.job.id, [published(T0 + 1)]);
      const idsOf = (jobs: JobRecord[]) => jobs.map((j) => j.id);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'acme', limit: 10 })), [a2!.job.id, a1!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'acme', queue: 'q1', limit: 10 })), [a1!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'acme', state: 'published', limit: 10 })), [a1!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'acme', type: 't2', limit: 10 })), [a2!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'acme', limit: 1, afterId: a2!.job.id })), [a1!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'globex', limit: 10 })), [g1!.job.id]);
      assert.deepEqual(idsOf(await store.listJobs({ tenant: 'default', limit: 10 })), [d1!.job.id]);
      assert.deepEqual(await store.listJobs({ tenant: 'nobody', limit: 10 }), []);
      assert.equal((await store.listJobs({ limit: 10 })).length, 4, 'no tenant: every tenant\'s');

      const acme = await store.stats('acme');
      assert.equal(acme.byState.published, 1);
      assert.equal(acme.byState.pending, 1);
      assert.equal(acme.byQueue['q1']!.published, 1);
      assert.equal(acme.byQueue['q1']!.pending, undefined, 'globex\'s and default\'s pending jobs of q1 are not acme\'s');
      assert.equal((await store.stats('globex')).byState.pending, 1);
      assert.equal((await store.stats('globex')).byState.published, 0);
      assert.equal((await store.stats('nobody')).byState.pending, 0);
      assert.equal((await store.stats()).byState.pending, 3, 'no tenant: summed');
      assert.deepEqual(sortedCounts(await store.jobCounts('globex')), sortedCounts([{ queue: 'q1', type: 'demo.echo', state: 'pending', n: 1 }]));
      assert.deepEqual(sortedCounts(await store.recountJobs('globex')), sortedCounts([{ queue: 'q1', type: 'demo.echo', state: 'pending', n: 1 }]));
      assert.deepEqual(await store.recountJobs('nobody'), []);
      await assertCountsExact(store);

      const edges = await store.edgeStats(0, 1000, 'acme');
      assert.deepEqual(edges.edges.map((e) => [e.event, e.count]).sort(), [['PUBLISHED', 1], ['SUBMITTED', 2]]);
      assert.deepEqual((await store.edgeStats(0, 1000, 'globex')).edges.map((e) => [e.event, e.count]), [['SUBMITTED', 1]]);
      assert.deepEqual((await store.edgeStats(0, 1000)).edges.map((e) => [e.event, e.count]).sort(), [['PUBLISHED', 1], ['SUBMITTED', 4]]);

      // Deleting uncounts the job from its own tenant's counters.
      await drive(store, g1!.job.id, [{ type: 'CANCEL', at: T0 + 2 }]);
      assert.deepEqual(await store.deleteJob(g1!.job.id), { ok: true });
      assert.deepEqual(await store.jobCounts('globex'), []);
      assert.equal((await store.stats('acme')).byState.published, 1);
      await assertCountsExact(store);
    });

    test('stats of a queue named __proto__ and a type named constructor are counted as any other', async (store) => {
      const writes = await insertAll(store, [
        newJobWrite({ type: 'constructor', queue: '__proto__' }), newJobWrite({ type: 'constructor', queue: '__proto__' }),
        newJobWrite({ type: 'toString', queue: 'hasOwnProperty' }),
      ]);
      await drive(store, writes[0]!.job.id, [{ type: 'CANCEL', at: T0 + 1 }]);
      const stats = await store.stats();
      assert.equal(({} as Record<string, unknown>).pending, undefined, 'Object.prototype was written to');
      assert.deepEqual(Object.keys(stats.byQueue).sort(), ['__proto__', 'hasOwnProperty']);
      assert.deepEqual({ ...stats.byQueue['__proto__'] }, { pending: 1, cancelled: 1 });
      assert.deepEqual({ ...stats.byType['constructor'] }, { pending: 1, cancelled: 1 });
      assert.deepEqual({ ...stats.byType['toString'] }, { pending: 1 });
      assert.equal(stats.byState.pending, 2);
    });

    test('stats count queues and types named after Object.prototype members like any other', async (store) => {
      const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
      await insertAll(store, names.flatMap((n, i) => Array.from({ length: i + 1 }, () => newJobWrite({ type: n, queue: n }))));
      const stats = await store.stats();
      assert.equal(({} as Record<string, unknown>).pending, undefined, 'Object.prototype gained a member');
      const own = (o: object, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value as object | undefined;
      for (const [i, n] of names.entries()) {
        assert.deepEqual(onTheWire(own(stats.byQueue, n)), { pending: i + 1 }, `byQueue ${n}`);
        assert.deepEqual(onTheWire(own(stats.byType, n)), { pending: i + 1 }, `byType ${n}`);
      }
      assert.deepEqual(Object.keys(stats.byQueue).sort(), [...names].sort());
      assert.equal(JSON.stringify(onTheWire(stats.byQueue)), JSON.stringify(stats.byQueue), 'JSON keeps every name');
    });
  });
}
