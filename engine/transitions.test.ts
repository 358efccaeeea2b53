/**
 * TransitionService on the real stores (MariaDB, and SQLite): each transition
 * is one transaction holding the job row, its event and its outbox rows.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import { monotonicFactory } from 'ulid';
import { createMysqlStore, type MysqlStore } from '../adapters/mysql/index.js';
import type { StoreFaults } from '../adapters/sql/options.js';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { JOB_EVENT_TYPES, JOB_MACHINE_VERSION } from '../machines/job.machine.js';
import { AtsError, isAtsError } from './errors.js';
import type { TransitionMessage } from './messages.js';
import { createTestDatabase, requireMysql } from '../tests/helpers/mysql.js';
import type { Clock, JobSpec, JobStore, OutboxRow } from './ports.js';
import { TransitionService, type EventInput } from './transitions.js';
import { verifyJob } from './verify.js';
import { intercept } from '../tests/helpers/intercept.js';

/** Opens stores on one fresh database; `cleanup` closes them all and removes the database. */
interface Backend {
  name: string;
  available: () => Promise<boolean>;
  create(): Promise<{ open(faults?: StoreFaults): Promise<JobStore>; cleanup(): Promise<void> }>;
  /** Overwrites a job's stored snapshot text, as another version of the code would have written it. */
  writeSnapshot(store: JobStore, id: string, text: string): Promise<void>;
  /** The job's stored snapshot text. */
  readSnapshot(store: JobStore, id: string): Promise<string>;
}

const mysql: Backend = {
  name: 'mysql',
  available: requireMysql,
  async create() {
    const db = await createTestDatabase();
    const stores: JobStore[] = [];
    return {
      open: async (faults) => {
        const store = await createMysqlStore({ url: db.url, poolSize: 8, faults });
        stores.push(store);
        return store;
      },
      cleanup: async () => {
        await Promise.all(stores.map((s) => s.close()));
        await db.drop();
      },
    };
  },
  async writeSnapshot(store, id, text) {
    await (store as MysqlStore).pool.query('UPDATE jobs SET snapshot = ? WHERE id = ?', [text, id]);
  },
  async readSnapshot(store, id) {
    const [rows] = await (store as MysqlStore).pool.query('SELECT snapshot FROM jobs WHERE id = ?', [id]);
    return String((rows as { snapshot: unknown }[])[0]!.snapshot);
  },
};

const sqlite: Backend = {
  name: 'sqlite',
  available: async () => true,
  async create() {
    const dir = mkdtempSync(join(tmpdir(), 'ats-transitions-'));
    const stores: JobStore[] = [];
    return {
      open: async (faults) => {
        const store = createSqliteStore({ file: join(dir, 'ats.sqlite'), faults });
        stores.push(store);
        return store;
      },
      cleanup: async () => {
        await Promise.all(stores.map((s) => s.close()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async writeSnapshot(store, id, text) {
    (store as SqliteStore).db.prepare('UPDATE jobs SET snapshot = ? WHERE id = ?').run(text, id);
  },
  async readSnapshot(store, id) {
    return String(((store as SqliteStore).db.prepare('SELECT snapshot FROM jobs WHERE id = ?').get(id) as { snapshot: unknown }).snapshot);
  },
};

const clock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
const nextId = monotonicFactory();
const service = (store: JobStore) =>
  new TransitionService({ store, clock, random: { next: Math.random }, ids: { jobId: () => nextId() } });

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'demo.echo', payload: { hello: 'world' }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF,
  timeoutMs: 30_000, priority: 0, ...o,
});

async function drain(store: JobStore): Promise<OutboxRow[]> {
  const out: OutboxRow[] = [];
  while ((await store.relayOutbox(100, async (rows) => void out.push(...rows))) > 0);
  return out;
}

/** Apply events in order, each must be accepted. */
async function applyAll(svc: TransitionService, id: string, events: EventInput[]): Promise<void> {
  for (const e of events) {
    const r = await svc.apply(id, e);
    assert.ok(r.ok, `${e.type} was not accepted: ${JSON.stringify(r)}`);
  }
}

const toRunning = (): EventInput[] => [
  { type: 'PUBLISHED', attempt: 1 },
  { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w1' },
];

for (const backend of [mysql, sqlite]) {
  const up = await backend.available();

  /** A case with a store (and its fault switch) on a fresh database. */
  const withStore = (title: string, fn: (ctx: { store: JobStore; svc: TransitionService; failing: { on: boolean }; open(): Promise<JobStore> }) => Promise<void>) => {
    if (!up) return test(`${backend.name}: ${title}`, (t) => t.skip(`${backend.name} not reachable`));
    return it(title, async () => {
      const { open, cleanup } = await backend.create();
      try {
        const failing = { on: false };
        const store = await open({ beforeCommit: () => { if (failing.on) throw new Error('injected fault'); } });
        await store.migrate();
        await fn({ store, svc: service(store), failing, open: () => open() });
      } finally {
        await cleanup();
      }
    });
  };

  describe(`TransitionService on ${backend.name}`, () => {
    withStore('a submit writes the job, its SUBMITTED event and its outbox rows together', async ({ store, svc }) => {
      const r = await svc.submit(spec());
      assert.ok(r.ok && r.created);
      assert.deepEqual(await store.getJob(r.job.id), r.job);
      const events = await store.getEvents(r.job.id);
      assert.deepEqual(events.map((e) => [e.seq, e.type, e.from, e.to]), [[1, 'SUBMITTED', null, 'pending']]);
      const rows = await drain(store);
      assert.deepEqual(rows.map((m) => [m.topic, m.key]), [['ats.events', r.job.id], ['ats.dispatch', r.job.id]]);
      assert.equal((rows[1]!.payload as { attempt: number }).attempt, 1);
    });

    withStore('a failure inside the transaction leaves no job, event or outbox row', async ({ store, svc, failing }) => {
      failing.on = true;
      await assert.rejects(svc.submit(spec({ idempotencyKey: 'k1' })), /injected fault/);
      failing.on = false;
      assert.deepEqual(await store.listJobs({ limit: 10 }), []);
      assert.equal(await store.countUnpublished(), 0);
      assert.equal(await store.findByIdempotencyKey('default', 'k1', 'default'), null);

      const r = await svc.submit(spec());
      assert.ok(r.ok);
      failing.on = true;
      await assert.rejects(svc.apply(r.job.id, { type: 'CANCEL' }), /injected fault/);
      failing.on = false;
      assert.deepEqual(await store.getJob(r.job.id), r.job);
      assert.equal((await store.getEvents(r.job.id)).length, 1);
      assert.equal(await store.countUnpublished(), 2);
    });

    withStore('a repeated submit returns the same job; another body with the key conflicts', async ({ store, svc }) => {
      const first = await svc.submit(spec({ idempotencyKey: 'order-42' }));
      const again = await svc.submit(spec({ idempotencyKey: 'order-42' }));
      const other = await svc.submit(spec({ idempotencyKey: 'order-42', payload: { hello: 'mars' } }));
      assert.ok(first.ok && first.created);
      assert.ok(again.ok && !again.created);
      assert.deepEqual(again.job, first.job);
      assert.equal(other.ok, false);
      assert.ok(!other.ok && other.reason === 'idempotency-conflict' && other.job.id === first.job.id);
      assert.equal((await store.listJobs({ limit: 10 })).length, 1);
      assert.equal(await store.countUnpublished(), 2);
    });

    withStore('a submit with the key and any one field of its body changed conflicts, and writes nothing', async ({ store, svc }) => {
      const body = spec({ idempotencyKey: 'order-43', runAt: Date.now() + 60_000, concurrencyKey: 'k1' });
      const first = await svc.submit(body);
      assert.ok(first.ok && first.created);
      const unpublished = await store.countUnpublished();
      const changed: Partial<JobSpec>[] = [
        { type: 'demo.other' }, { payload: { hello: 'mars' } }, { runAt: body.runAt! + 1 }, { runAt: undefined },
        { maxAttempts: body.maxAttempts + 1 }, { backoff: { kind: 'fixed', delayMs: 10 } }, { timeoutMs: body.timeoutMs + 1 },
        { priority: body.priority + 1 }, { concurrencyKey: 'k2' }, { concurrencyKey: undefined },
      ];
      for (const change of changed) {
        const other = await svc.submit({ ...body, ...change });
        assert.ok(!other.ok && other.reason === 'idempotency-conflict' && other.job.id === first.job.id, `${JSON.stringify(change)}: ${JSON.stringify(other)}`);
      }
      const again = await svc.submit({ ...body });
      assert.ok(again.ok && !again.created && again.job.id === first.job.id);
      assert.equal((await store.listJobs({ limit: 10 })).length, 1);
      assert.equal(await store.countUnpublished(), unpublished);
    });

    withStore('every event of every kind is written to the outbox for ats.events, with its seq and states', async ({ store, svc }) => {
      const r = await svc.submit(spec({ runAt: Date.now() + 30, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 } }));
      assert.ok(r.ok);
      const id = r.job.id;
      await new Promise((res) => setTimeout(res, 40));
      const lease = () => Date.now() + 60_000;
      const boom = (retryable: boolean) => ({ message: 'boom', retryable });
      await applyAll(svc, id, [
        { type: 'DISPATCH' }, { type: 'PUBLISHED', attempt: 1 }, { type: 'STARTED', attempt: 1, leaseUntil: lease(), workerId: 'w1' },
        { type: 'HEARTBEAT', attempt: 1, leaseUntil: lease() }, { type: 'FAILED', attempt: 1, error: boom(true) }, { type: 'RETRY_DUE' },
        { type: 'STARTED', attempt: 2, leaseUntil: Date.now() - 1, workerId: 'w1' }, { type: 'LEASE_EXPIRED', attempt: 2 }, { type: 'RETRY_DUE' },
        { type: 'STARTED', attempt: 3, leaseUntil: lease(), workerId: 'w2' }, { type: 'FAILED', attempt: 3, error: boom(false) },
        { type: 'REDRIVE' }, { type: 'CANCEL' }, { type: 'REDRIVE' }, { type: 'STARTED', attempt: 4, leaseUntil: lease(), workerId: 'w2' },
        { type: 'HEARTBEAT', attempt: 4, leaseUntil: lease() }, { type: 'HEARTBEAT', attempt: 4, leaseUntil: lease() + 1 },
        { type: 'SUCCEEDED', attempt: 4 },
      ]);
      const events = await store.getEvents(id);
      const kinds = new Set(events.map((e) => e.type));
      for (const type of ['SUBMITTED', ...JOB_EVENT_TYPES]) assert.ok(kinds.has(type as (typeof events)[number]['type']), `the history holds no ${type}`);
      const sent = (await drain(store)).filter((m) => m.topic === 'ats.events').map((m) => m.payload as TransitionMessage);
      assert.deepEqual(sent.map((m) => [m.jobId, m.seq, m.type, m.from, m.to]), events.map((e) => [id, e.seq, e.type, e.from, e.to]));
    });

    withStore('an event the machine rejects writes nothing', async ({ store, svc }) => {
      const r = await svc.submit(spec());
      assert.ok(r.ok);
      const id = r.job.id;
      await applyAll(svc, id, [...toRunning(), { type: 'SUCCEEDED', attempt: 1, result: { echoed: true } }]);
      const before = await store.countUnpublished();
      const cancel = await svc.apply(id, { type: 'CANCEL' });
      assert.ok(!cancel.ok && cancel.reason === 'not-allowed' && cancel.job.snapshot.value === 'done');
      assert.equal(await store.countUnpublished(), before);
      const job = (await store.getJob(id))!;
      assert.equal(job.version, 4);
      assert.deepEqual(job.snapshot.context.result, { echoed: true });
      assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED']);
      assert.deepEqual(await svc.apply('01H00000000000000000000000', { type: 'CANCEL' }), { ok: false, reason: 'not-found' });
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: 4, problems: [] });
    });

    withStore('20 concurrent applies on one job from two stores: each accepted or rejected, history gap-free', async ({ store, svc, open }) => {
      const r = await svc.submit(spec());
      assert.ok(r.ok);
      const id = r.job.id;
      await applyAll(svc, id, toRunning());
      const services = [svc, service(await open())];
      const events: EventInput[] = Array.from({ length: 20 }, (_, i) =>
        i === 12 ? { type: 'SUCCEEDED', attempt: 1 } : { type: 'HEARTBEAT', attempt: 1, leaseUntil: Date.now() + 60_000 + i });
      const results = await Promise.all(events.map((e, i) => services[i % 2]!.apply(id, e)));
      for (const res of results) assert.ok(res.ok || res.reason === 'not-allowed', JSON.stringify(res));
      assert.ok(results[12]!.ok, 'SUCCEEDED on a running job is accepted');
      const job = (await store.getJob(id))!;
      assert.equal(job.snapshot.value, 'done');
      // Accepted heartbeats coalesce into one event (the first of the attempt), SUCCEEDED follows it.
      const heartbeats = results.filter((x, i) => x.ok && i !== 12).length;
      assert.equal(job.version, 3 + Math.min(heartbeats, 1) + 1);
      assert.deepEqual((await store.getEvents(id)).map((e) => e.seq), Array.from({ length: job.version }, (_, i) => i + 1));
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: job.version, problems: [] });
    });

    withStore('heartbeats of one attempt keep one event row, updated in place; replay still gives the stored job', async ({ store, svc }) => {
      const r = await svc.submit(spec());
      assert.ok(r.ok);
      const id = r.job.id;
      await applyAll(svc, id, toRunning());
      await drain(store);
      const base = Date.now() + 60_000;
      for (let i = 1; i <= 30; i++) await applyAll(svc, id, [{ type: 'HEARTBEAT', attempt: 1, leaseUntil: base + i }]);
      const job = (await store.getJob(id))!;
      assert.equal(job.snapshot.context.leaseUntil, base + 30);
      const events = await store.getEvents(id);
      assert.deepEqual(events.map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'HEARTBEAT']);
      assert.equal((events[3]!.data as { leaseUntil: number }).leaseUntil, base + 30, 'the row holds the latest lease');
      assert.equal(job.version, 4);
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: 4, problems: [] });
      // One transition message for the first heartbeat; the rest write no outbox row.
      assert.deepEqual((await drain(store)).map((m) => (m.payload as { type: string }).type), ['HEARTBEAT']);
      // The next attempt's first heartbeat is an event of its own; a heartbeat after another event is too.
      await applyAll(svc, id, [
        { type: 'CANCEL' }, { type: 'REDRIVE' }, { type: 'STARTED', attempt: 2, leaseUntil: base, workerId: 'w2' },
        { type: 'HEARTBEAT', attempt: 2, leaseUntil: base + 1 }, { type: 'HEARTBEAT', attempt: 2, leaseUntil: base + 2 },
      ]);
      const later = await store.getEvents(id, 4);
      assert.deepEqual(later.map((e) => e.type), ['CANCEL', 'REDRIVE', 'STARTED', 'HEARTBEAT']);
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: 8, problems: [] });
      // Several heartbeats in one applyMany coalesce too.
      const many = await svc.applyMany([1, 2, 3].map((i) => ({ jobId: id, event: { type: 'HEARTBEAT' as const, attempt: 2, leaseUntil: base + 10 + i } })));
      assert.ok(many.every((m) => m.ok));
      assert.equal((await store.getEvents(id, 4)).length, 4);
      assert.equal((await store.getJob(id))!.snapshot.context.leaseUntil, base + 13);
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: 8, problems: [] });
    });

    withStore('a submit whose key\'s holder is deleted between the insert and the lookup is inserted anew; its batch is answered', async ({ store }) => {
      const svc0 = service(store);
      const held = await svc0.submit(spec({ idempotencyKey: 'race' }));
      assert.ok(held.ok);
      assert.ok((await svc0.apply(held.job.id, { type: 'CANCEL' })).ok);
      // The job holding the key goes (DELETE /v1/jobs/:id, or retention) just after an insert found the key taken.
      let once = true;
      const racing = intercept(store, (name) => name === 'insert', async (call) => {
        const r = await call();
        if (once) {
          once = false;
          assert.deepEqual(await store.deleteJob(held.job.id), { ok: true });
        }
        return r;
      });
      const [other, again] = await service(racing).submitMany([spec({ payload: 'other' }), spec({ idempotencyKey: 'race' })]);
      assert.ok(other!.ok && other!.created);
      assert.ok(again!.ok && again!.created, JSON.stringify(again));
      assert.notEqual(again!.job.id, held.job.id);
      assert.equal((await store.findByIdempotencyKey('default', 'race', 'default'))?.id, again!.job.id);
    });

    withStore('a group of single submits whose commit may have happened (its answer lost) is not written again: each submit fails with that error', async ({ store }) => {
      const queue = `q-${nextId().toLowerCase()}`;
      let once = true;
      // The insert commits, then its answer is lost: the caller sees an outage, not whether it committed.
      const losing = intercept(store, (name) => name === 'insert', async (call) => {
        const r = await call();
        if (once) {
          once = false;
          throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'the connection was lost after the commit was sent');
        }
        return r;
      });
      const svc = service(losing);
      const results = await Promise.allSettled([1, 2, 3].map((i) => svc.submit(spec({ queue, payload: { i } }))));
      assert.ok(!once, 'the submits went as one group');
      for (const r of results) assert.ok(r.status === 'rejected' && isAtsError(r.reason) && r.reason.code === 'ATS_ERR_STORE_UNAVAILABLE', JSON.stringify(r));
      const jobs = await store.listJobs({ queue, limit: 100 });
      assert.deepEqual(jobs.map((j) => JSON.stringify(j.payload)).sort(), ['{"i":1}', '{"i":2}', '{"i":3}'], 'each submit once: written by the lost commit, never again');
    });

    withStore('a submitMany whose one lookup fails answers only once its other items stopped writing', async ({ store }) => {
      const svc0 = service(store);
      const held = await Promise.all(['fails', 'gone'].map((k) => svc0.submit(spec({ idempotencyKey: k }))));
      assert.ok(held.every((h) => h.ok));
      let lastWrite = 0;
      const racing = intercept(store, (name) => name === 'insert' || name === 'findByIdempotencyKey', async (call, args, name) => {
        if (name === 'insert') {
          const r = await call();
          lastWrite = performance.now();
          return r;
        }
        if (args[1] === 'fails') throw new Error('lookup failed');
        // The holder of the other key goes meanwhile: that item is inserted anew, a little later.
        await new Promise((r) => setTimeout(r, 50));
        if (held[1]!.ok) await store.deleteJob(held[1]!.job.id);
        return call();
      });
      for (const h of held) if (h.ok) assert.ok((await svc0.apply(h.job.id, { type: 'CANCEL' })).ok);
      await assert.rejects(service(racing).submitMany([spec({ idempotencyKey: 'fails' }), spec({ idempotencyKey: 'gone' })]), /lookup failed/);
      const answered = performance.now();
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(lastWrite > 0 && lastWrite <= answered, 'the other item\'s insert ran after the call had failed');
      assert.ok(await store.findByIdempotencyKey('default', 'gone', 'default'), 'the other item was inserted anew');
    });

    withStore('the snapshot stores its machine version; a row stored before versions reads as version 1 and steps on', async ({ store, svc }) => {
      const r = await svc.submit(spec());
      assert.ok(r.ok);
      const id = r.job.id;
      assert.equal(r.job.snapshot.machine, JOB_MACHINE_VERSION);
      assert.equal(JSON.parse(await backend.readSnapshot(store, id)).machine, JOB_MACHINE_VERSION);
      // As a process before versions wrote it: no `machine` in the JSON.
      const { machine: _, ...unversioned } = JSON.parse(await backend.readSnapshot(store, id)) as Record<string, unknown>;
      await backend.writeSnapshot(store, id, JSON.stringify(unversioned));
      const old = (await store.getJob(id))!;
      assert.equal(old.snapshot.machine, 1);
      assert.deepEqual(old, r.job);
      assert.equal((await store.listJobs({ limit: 10 }))[0]!.snapshot.machine, 1);
      await applyAll(svc, id, toRunning());
      assert.equal(JSON.parse(await backend.readSnapshot(store, id)).machine, JOB_MACHINE_VERSION, 'the next write stores the version');
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: 3, problems: [] });
    });

    withStore('a job a newer machine version wrote is refused (503, nothing written), still read, and verify names the version; its batch goes on', async ({ store, svc }) => {
      const r = await svc.submit(spec());
      const other = await svc.submit(spec());
      assert.ok(r.ok && other.ok);
      const id = r.job.id;
      await applyAll(svc, id, toRunning());
      const newer = JOB_MACHINE_VERSION + 1;
      const text = JSON.stringify({ ...JSON.parse(await backend.readSnapshot(store, id)), machine: newer });
      await backend.writeSnapshot(store, id, text);
      await drain(store);
      const before = (await store.getJob(id))!;
      assert.equal(before.snapshot.machine, newer);
      for (const event of [{ type: 'SUCCEEDED', attempt: 1 }, { type: 'CANCEL' }] as EventInput[]) {
        await assert.rejects(svc.apply(id, event), (err: unknown) => {
          assert.ok(isAtsError(err), String(err));
          assert.equal(err.code, 'ATS_ERR_JOB_MACHINE_UNKNOWN');
          assert.equal(err.status, 503);
          assert.match(err.message, new RegExp(`job ${id}: .*version ${newer}, and this code runs version ${JOB_MACHINE_VERSION} \\(a newer deployment wrote it\\)`));
          assert.deepEqual(err.details, { jobId: id, machine: newer });
          return true;
        });
      }
      // In a batch it is refused on its own: the other items are decided and written.
      const [first, second] = await svc.applyMany([{ jobId: other.job.id, event: { type: 'CANCEL' } }, { jobId: id, event: { type: 'CANCEL' } }]);
      assert.ok(first!.ok, JSON.stringify(first));
      assert.ok(!second!.ok && second!.reason === 'machine-unknown');
      assert.equal(second.error.code, 'ATS_ERR_JOB_MACHINE_UNKNOWN');
      assert.deepEqual(second.job, before);
      assert.equal((await store.getJob(other.job.id))!.snapshot.value, 'cancelled');
      await drain(store);
      assert.deepEqual(await store.getJob(id), before);
      assert.equal(await backend.readSnapshot(store, id), text);
      assert.equal((await store.getEvents(id)).length, 3);
      assert.equal(await store.countUnpublished(), 0);
      assert.deepEqual(await verifyJob(store, id), {
        jobId: id, ok: false, events: 3, problems: [`the snapshot was written by job machine version ${newer}, and this code replays with version ${JOB_MACHINE_VERSION}`],
      });
    });
  });
}
