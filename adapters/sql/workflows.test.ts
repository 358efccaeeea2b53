/**
 * The WorkflowStore of both SQL stores (adapters/sql/workflows.ts), on SQLite
 * and on MariaDB: an instance's row, history and timers, and what one step
 * does to jobs (child jobs inserted, children cancelled), all in one
 * transaction or not at all; messages between instances, stored with the
 * sender's step and taken once by the target's; retention's purge of ended
 * instances; migration 0015 over a database before it, and 0029 (timer ids byte for byte) and 0030
 * (definition versions past 32 bits) on MariaDB.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AtsError } from '../../engine/errors.js';
import { readWithin } from '../../engine/event-tail.js';
import { outboxFor, workflowMessageNotice, WORKFLOW_MESSAGE_KIND } from '../../engine/messages.js';
import type {
  Decide, JobEventRecord, JobParent, JobRecord, OutboxRow, TransitionWrite, WorkflowEventType, WorkflowMessageRecord, WorkflowRecord, WorkflowStore,
  WorkflowWrite,
} from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import { start } from '../../machines/lifecycle.js';
import type { PersistedWorkflow, WorkflowStatus, WorkflowTimer } from '../../machines/workflow.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';
import { createMysqlStore, type MysqlStore } from '../mysql/index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { createSqliteStore } from '../sqlite/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { SYSTEM_CLOCK } from './options.js';

type Store = TestStore & WorkflowStore;

const T = 1_900_000_000_000;

/** Sortable 26-character ids: `wid(2) > wid(1)`, as ULIDs made later are. */
const wid = (n: number): string => `01W${String(n).padStart(23, '0')}`;
const jid = (n: number): string => `01J${String(n).padStart(23, '0')}`;

/** A child job's submit, as the engine writes it: pending, version 1, with its SUBMITTED event and dispatch. */
function childWrite(id: string, parent: JobParent | undefined, extra: Partial<JobRecord> = {}): TransitionWrite {
  const input = { at: T, maxAttempts: 3, backoff: { kind: 'fixed' as const, delayMs: 0 } };
  const { next, effects } = start(input);
  const job: JobRecord = {
    id, tenant: 'default', type: 'wf.step', queue: 'default', payload: { n: id }, priority: 0, timeoutMs: 30_000,
    idempotencyKey: null, requestHash: null, version: 1, snapshot: next, createdAt: T, updatedAt: T, ...extra,
  };
  if (parent) job.parent = parent;
  const event: JobEventRecord = { jobId: id, seq: 1, type: 'SUBMITTED', from: null, to: next.value, at: T, data: input };
  return { job, expectedVersion: null, event, outbox: outboxFor(job, event, effects) };
}

function state(status: WorkflowStatus, timers: WorkflowTimer[] = [], value = 'a'): PersistedWorkflow {
  return { value, context: { n: 1, nested: { s: 'é' } }, history: [], status, children: [], timers };
}

const timer = (id: string, dueAt: number): WorkflowTimer => ({ id, dueAt, event: { type: `xstate.after.${id}` } });

function instance(id: string, extra: Partial<WorkflowRecord> = {}): WorkflowRecord {
  return {
    id, tenant: 'default', name: 'order', definitionVersion: 2, input: { order: 7, items: ['x'] }, state: state('active'),
    version: 1, idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T, ...extra,
  };
}

/** The START of a new instance, with its child jobs. */
function startWrite(w: WorkflowRecord, jobs: TransitionWrite[] = []): WorkflowWrite {
  return {
    workflow: w, expectedVersion: null, jobs, cancel: null,
    event: { workflowId: w.id, seq: 1, type: 'START', at: w.createdAt, data: { input: w.input, jobIds: jobs.map((j) => j.job.id) }, status: w.state.status },
  };
}

/** The next step of `w`. */
function stepWrite(
  w: WorkflowRecord, next: PersistedWorkflow, opts: { type?: WorkflowEventType; jobs?: TransitionWrite[]; cancel?: WorkflowWrite['cancel']; expectedVersion?: number } = {},
): WorkflowWrite {
  const at = w.updatedAt + 1000;
  const jobs = opts.jobs ?? [];
  return {
    workflow: { ...w, state: next, version: w.version + 1, updatedAt: at },
    expectedVersion: opts.expectedVersion ?? w.version,
    event: { workflowId: w.id, seq: w.version + 1, type: opts.type ?? 'SIGNAL', at, data: { event: { type: 'GO' }, jobIds: jobs.map((j) => j.job.id) }, status: next.status },
    jobs,
    cancel: opts.cancel ?? null,
  };
}

/** Cancels each job of the ids read, as the engine's decide would. */
const cancelJobs: Decide<unknown> = (jobs) => ({
  writes: [...jobs.values()].map((job) => transitionWrite(job, { type: 'CANCEL', at: T + 5000, reason: 'workflow left the state' })!),
  result: null,
});

/** The outbox rows waiting, taken (and deleted) as the relay would. */
async function drain(store: Store): Promise<OutboxRow[]> {
  const rows: OutboxRow[] = [];
  while ((await store.relayOutbox(100, async (batch) => void rows.push(...batch))) > 0);
  return rows;
}

const pendingCount = async (store: Store, state = 'pending'): Promise<number> =>
  (await store.jobCounts()).filter((c) => c.state === state && c.type === 'wf.step').reduce((n, c) => n + c.n, 0);

const timersOf = async (store: Store, id: string) =>
  (await store.dueWorkflowTimers(Number.MAX_SAFE_INTEGER, 100)).filter((t) => t.workflowId === id).map((t) => [t.timerId, t.dueAt]);

for (const backend of STORE_BACKENDS) {
  const run = (fn: (store: Store) => Promise<void>) => () => withMigratedStore(backend, (store) => fn(store as Store));

  describe(`WorkflowStore (${backend.name})`, () => {
    it('an instance reads back as inserted: row, state, input, START event, timers due soonest first', run(async (store) => {
      const w = instance(wid(1), { state: state('active', [timer('late', T + 1000), timer('soon', T + 500)]) });
      const write = startWrite(w);
      assert.deepEqual(await store.insertWorkflow(write), { ok: true });
      assert.deepEqual(await store.getWorkflow(w.id), w);
      assert.deepEqual(await store.getWorkflowEvents(w.id), [{ ...write.event, value: 'a' }], 'with the state value after it');
      assert.deepEqual(await store.getWorkflowEvents(w.id, 1), []);
      assert.equal(await store.getWorkflow(wid(99)), null);
      assert.deepEqual(await store.dueWorkflowTimers(T + 499, 10), []);
      assert.deepEqual(await store.dueWorkflowTimers(T + 600, 10), [{ workflowId: w.id, timerId: 'soon', dueAt: T + 500 }]);
      assert.deepEqual((await store.dueWorkflowTimers(T + 1000, 10)).map((t) => t.timerId), ['soon', 'late']);
      assert.deepEqual((await store.dueWorkflowTimers(T + 1000, 1)).map((t) => t.timerId), ['soon']);
    }));

    it('a timer due at a fraction of a millisecond (a computed delay) is kept, due at the next whole one', run(async (store) => {
      const w = instance(wid(1), { state: state('active', [timer('frac', T + 2.5)]) });
      assert.deepEqual(await store.insertWorkflow(startWrite(w)), { ok: true });
      assert.deepEqual((await store.getWorkflow(w.id))!.state.timers, [timer('frac', T + 2.5)], 'the state as the machine gave it');
      assert.deepEqual(await store.dueWorkflowTimers(T + 2, 10), [], 'not before its time');
      assert.deepEqual(await store.dueWorkflowTimers(T + 3, 10), [{ workflowId: w.id, timerId: 'frac', dueAt: T + 3 }]);
    }));

    it('due timers page on after a position: by due time, then instance, then timer id', run(async (store) => {
      const a = instance(wid(1), { state: state('active', [timer('x', T + 500), timer('y', T + 500), timer('z', T + 700)]) });
      const b = instance(wid(2), { state: state('active', [timer('a', T + 500)]) });
      for (const w of [a, b]) assert.deepEqual(await store.insertWorkflow(startWrite(w)), { ok: true });
      const order = (ts: readonly { workflowId: string; timerId: string }[]) => ts.map((t) => `${t.workflowId === a.id ? 'a' : 'b'}.${t.timerId}`);
      const all = await store.dueWorkflowTimers(T + 1000, 10);
      assert.deepEqual(order(all), ['a.x', 'a.y', 'b.a', 'a.z']);
      const pages: string[][] = [];
      for (let after: (typeof all)[number] | undefined, page; (page = await store.dueWorkflowTimers(T + 1000, 2, after)).length > 0; after = page.at(-1)) pages.push(order(page));
      assert.deepEqual(pages, [['a.x', 'a.y'], ['b.a', 'a.z']]);
      assert.deepEqual(order(await store.dueWorkflowTimers(T + 600, 10, all[1])), ['b.a'], 'not past now');
    }));

    it('timer ids that differ only by trailing spaces (a delayed raise\'s own id: `tick` and `tick `) are two timers, paged apart', run(async (store) => {
      const w = instance(wid(1), { state: state('active', [timer('tick', T + 500), timer('tick ', T + 500), timer('tick  ', T + 500)]) });
      assert.deepEqual(await store.insertWorkflow(startWrite(w)), { ok: true });
      assert.deepEqual(await timersOf(store, w.id), [['tick', T + 500], ['tick ', T + 500], ['tick  ', T + 500]]);
      const first = (await store.dueWorkflowTimers(T + 500, 1))[0]!;
      assert.deepEqual((await store.dueWorkflowTimers(T + 500, 10, first)).map((t) => t.timerId), ['tick ', 'tick  '], 'after `tick` come the others');
      // A step that keeps one of them keeps that one.
      await store.updateWorkflow(w.id, (current) => ({ write: stepWrite(current!, state('active', [timer('tick ', T + 500)])), result: null }));
      assert.deepEqual(await timersOf(store, w.id), [['tick ', T + 500]]);
    }));

    it('a start with its child jobs: each readable with its parent, its SUBMITTED event, its dispatch and its count', run(async (store) => {
      const w = instance(wid(1));
      const parent = { workflowId: w.id, invokeId: 'charge' };
      assert.deepEqual(await store.insertWorkflow(startWrite(w, [childWrite(jid(1), parent)])), { ok: true });
      const child = await store.getJob(jid(1));
      assert.deepEqual(child?.parent, parent);
      assert.deepEqual((await store.getEvents(jid(1))).map((e) => e.type), ['SUBMITTED']);
      assert.ok((await drain(store)).some((r) => r.key === jid(1)), 'the child\'s dispatch is in the outbox');
      assert.equal(await pendingCount(store), 1);
      // A job of its own has no parent, read one way or another.
      await store.insert([childWrite(jid(2), undefined)]);
      assert.ok(!('parent' in (await store.getJob(jid(2)))!));
      assert.deepEqual((await store.listJobs({ tenant: 'default', limit: 10 })).map((j) => [j.id, j.parent]), [[jid(2), undefined], [jid(1), parent]]);
    }));

    it('jobStates reads the state of many jobs at once; a job that does not exist is absent', run(async (store) => {
      const w = instance(wid(1));
      const parent = { workflowId: w.id, invokeId: 'charge' };
      await store.insertWorkflow(startWrite(w, [childWrite(jid(1), parent), childWrite(jid(2), parent)]));
      const states = await store.jobStates([jid(1), jid(2), jid(3), jid(1)]);
      assert.deepEqual([...states].sort(), [[jid(1), 'pending'], [jid(2), 'pending']]);
      assert.deepEqual([...(await store.jobStates([]))], []);
    }));

    it('activeWorkflowIds pages the active instances in id order, whenever each was last stepped', run(async (store) => {
      for (const [i, at] of [[1, T + 30], [2, T + 10], [3, T + 20], [4, T + 10]] as const) {
        await store.insertWorkflow(startWrite(instance(wid(i), { updatedAt: at, createdAt: at })));
      }
      await store.insertWorkflow(startWrite(instance(wid(5), { state: state('done'), updatedAt: T })));
      assert.deepEqual(await store.activeWorkflowIds(10), [wid(1), wid(2), wid(3), wid(4)]);
      const first = await store.activeWorkflowIds(2);
      assert.deepEqual(first, [wid(1), wid(2)]);
      assert.deepEqual(await store.activeWorkflowIds(2, first.at(-1)), [wid(3), wid(4)]);
      assert.deepEqual(await store.activeWorkflowIds(2, wid(4)), []);
    }));

    it('a taken idempotency key (tenant, name) writes nothing: no instance, event, timer or child job', run(async (store) => {
      const keyed = (id: string, extra: Partial<WorkflowRecord> = {}) =>
        instance(id, { idempotencyKey: 'k', requestHash: 'a'.repeat(64), state: state('active', [timer('t', T)]), ...extra });
      assert.deepEqual(await store.insertWorkflow(startWrite(keyed(wid(1)), [childWrite(jid(1), { workflowId: wid(1), invokeId: 'i' })])), { ok: true });
      await drain(store);
      const dup = await store.insertWorkflow(startWrite(keyed(wid(2)), [childWrite(jid(2), { workflowId: wid(2), invokeId: 'i' })]));
      assert.deepEqual(dup, { ok: false, reason: 'duplicate-key' });
      assert.equal(await store.getWorkflow(wid(2)), null);
      assert.deepEqual(await store.getWorkflowEvents(wid(2)), []);
      assert.deepEqual(await timersOf(store, wid(2)), []);
      assert.equal(await store.getJob(jid(2)), null);
      assert.equal(await store.countUnpublished(), 0);
      assert.equal(await pendingCount(store), 1);
      assert.equal((await store.findWorkflowByIdempotencyKey('default', 'order', 'k'))?.id, wid(1));
      // The key is the tenant's own, per name.
      assert.deepEqual(await store.insertWorkflow(startWrite(keyed(wid(3), { tenant: 'acme' }))), { ok: true });
      assert.deepEqual(await store.insertWorkflow(startWrite(keyed(wid(4), { name: 'refund' }))), { ok: true });
      assert.equal((await store.findWorkflowByIdempotencyKey('acme', 'order', 'k'))?.id, wid(3));
      assert.equal(await store.findWorkflowByIdempotencyKey('acme', 'refund', 'k'), null);
      // Instances without a key never collide.
      assert.deepEqual(await store.insertWorkflow(startWrite(instance(wid(5)))), { ok: true });
      assert.deepEqual(await store.insertWorkflow(startWrite(instance(wid(6)))), { ok: true });
    }));

    it('a step commits the instance (compare-and-set), its event, a child job, and replaces the timers', run(async (store) => {
      const w = instance(wid(1), { state: state('active', [timer('a', T + 100), timer('b', T + 200)]) });
      await store.insertWorkflow(startWrite(w));
      const parent = { workflowId: w.id, invokeId: 'ship' };
      const next = state('active', [timer('b', T + 200), timer('c', T + 300)], 'shipping');
      let seen: WorkflowRecord | null = null;
      const result = await store.updateWorkflow(w.id, (current) => {
        seen = current;
        return { write: stepWrite(current!, next, { jobs: [childWrite(jid(1), parent)] }), result: 'stepped' };
      });
      assert.equal(result, 'stepped');
      assert.deepEqual(seen, w, 'decide gets the instance as stored');
      const after = await store.getWorkflow(w.id);
      assert.deepEqual([after?.version, after?.state, after?.updatedAt], [2, next, T + 1000]);
      assert.deepEqual((await store.getWorkflowEvents(w.id)).map((e) => [e.seq, e.type, e.status]), [[1, 'START', 'active'], [2, 'SIGNAL', 'active']]);
      assert.deepEqual((await store.getWorkflowEvents(w.id, 1)).map((e) => e.data), [{ event: { type: 'GO' }, jobIds: [jid(1)] }]);
      assert.deepEqual((await store.getWorkflowEvents(w.id, 0, 1)).map((e) => e.seq), [1], 'at most the limit, oldest first');
      assert.deepEqual(await timersOf(store, w.id), [['b', T + 200], ['c', T + 300]]);
      assert.deepEqual((await store.getJob(jid(1)))?.parent, parent);
      assert.deepEqual((await store.getEvents(jid(1))).map((e) => e.type), ['SUBMITTED']);
      assert.ok((await drain(store)).some((r) => r.key === jid(1)));
      assert.equal(await pendingCount(store), 1);
      assert.deepEqual(await store.jobCounts(), await store.recountJobs());

      // The instance ends: no timers left, and its status is listed as such.
      const done = { ...state('done'), output: { ok: true } };
      await store.updateWorkflow(w.id, (current) => ({ write: stepWrite(current!, done, { type: 'CHILD' }), result: null }));
      assert.deepEqual(await timersOf(store, w.id), []);
      assert.deepEqual((await store.getWorkflow(w.id))?.state, done);
      assert.deepEqual((await store.listWorkflows({ tenant: 'default', status: 'done', limit: 10 })).map((x) => x.id), [w.id]);
      assert.deepEqual(await store.listWorkflows({ tenant: 'default', status: 'active', limit: 10 }), []);
    }));

    it('the steps of a history read without their data but a MIGRATE\'s: seq, type, status, the state value after each', run(async (store) => {
      const w = instance(wid(1));
      await store.insertWorkflow(startWrite(w));
      const big = (current: WorkflowRecord, next: PersistedWorkflow, type: WorkflowEventType): WorkflowWrite => {
        const write = stepWrite(current, next, { type });
        return { ...write, event: { ...write.event, data: { event: { type: 'GO', note: 'x'.repeat(50_000) }, jobIds: [] } } };
      };
      await store.updateWorkflow(w.id, (current) => ({ write: big(current!, state('active', [], 'b'), 'SIGNAL'), result: null }));
      const migrated = (current: WorkflowRecord): WorkflowWrite => {
        const write = stepWrite(current, state('active', [], 'b'), { type: 'MIGRATE' });
        return { ...write, event: { ...write.event, data: { type: 'MIGRATE', from: 2, to: 3, carryTimers: true, jobIds: [] } } };
      };
      await store.updateWorkflow(w.id, (current) => ({ write: migrated(current!), result: null }));
      const parallel = { ...state('done'), value: { fulfil: { stock: 'reserved', ship: 'booked' } } } as PersistedWorkflow;
      await store.updateWorkflow(w.id, (current) => ({ write: big(current!, parallel, 'CHILD'), result: null }));

      assert.deepEqual(await store.workflowEventSteps(w.id, 0), [
        { seq: 1, type: 'START', status: 'active', data: null, value: 'a' },
        { seq: 2, type: 'SIGNAL', status: 'active', data: null, value: 'b' },
        { seq: 3, type: 'MIGRATE', status: 'active', data: { type: 'MIGRATE', from: 2, to: 3, carryTimers: true, jobIds: [] }, value: 'b' },
        { seq: 4, type: 'CHILD', status: 'done', data: null, value: { fulfil: { stock: 'reserved', ship: 'booked' } } },
      ]);
      // The same steps as the events read whole say, but their data.
      assert.deepEqual(
        (await store.workflowEventSteps(w.id, 0)).map(({ data: _d, ...step }) => step),
        (await store.getWorkflowEvents(w.id)).map(({ seq, type, status, value }) => ({ seq, type, status, value })),
      );
      assert.deepEqual((await store.workflowEventSteps(w.id, 2)).map((s) => s.seq), [3, 4], 'after a seq');
      assert.deepEqual((await store.workflowEventSteps(w.id, 1, 2)).map((s) => s.seq), [2, 3], 'at most the limit, oldest first');
      assert.deepEqual(await store.workflowEventSteps(wid(9), 0), [], 'no such instance');
    }));

    it('a step cancels children through the decide given, and starts others, in the same transaction', run(async (store) => {
      const w = instance(wid(1));
      const children = [childWrite(jid(1), { workflowId: w.id, invokeId: 'a' }), childWrite(jid(2), { workflowId: w.id, invokeId: 'b' })];
      await store.insertWorkflow(startWrite(w, children));
      await drain(store);
      // Leaves the state invoking a and b for one invoking c.
      await store.updateWorkflow(w.id, (current) => ({
        write: stepWrite(current!, state('active', [], 'c'), {
          cancel: { ids: [jid(2), jid(1)], decide: cancelJobs }, jobs: [childWrite(jid(3), { workflowId: w.id, invokeId: 'c' })],
        }),
        result: null,
      }));
      for (const id of [jid(1), jid(2)]) {
        const job = await store.getJob(id);
        assert.deepEqual([job?.snapshot.value, job?.version], ['cancelled', 2]);
        assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED', 'CANCEL']);
      }
      assert.deepEqual((await store.getJob(jid(3)))?.parent, { workflowId: w.id, invokeId: 'c' });
      assert.equal(await pendingCount(store), 1);
      assert.equal(await pendingCount(store, 'cancelled'), 2);
      // A cancelled child's outbox rows (its transition) and the new child's dispatch.
      const keys = new Set((await drain(store)).map((r) => r.key));
      assert.ok([jid(1), jid(2), jid(3)].every((id) => keys.has(id)), [...keys].join());
      assert.deepEqual(await store.jobCounts(), await store.recountJobs());

      // The instance is cancelled: its running child goes too.
      await store.updateWorkflow(w.id, (current) => ({
        write: stepWrite(current!, state('cancelled'), { type: 'CANCEL', cancel: { ids: [jid(3)], decide: cancelJobs } }),
        result: null,
      }));
      assert.equal((await store.getJob(jid(3)))?.snapshot.value, 'cancelled');
      assert.equal(await pendingCount(store), 0);
      assert.equal((await store.getWorkflow(w.id))?.state.status, 'cancelled');
      assert.deepEqual(await store.jobCounts(), await store.recountJobs());
    }));

    it('a null write commits nothing; decide gets null for no such instance', run(async (store) => {
      const w = instance(wid(1), { state: state('active', [timer('t', T)]) });
      await store.insertWorkflow(startWrite(w));
      assert.equal(await store.updateWorkflow(w.id, () => ({ write: null, result: 'ignored' })), 'ignored');
      assert.deepEqual(await store.getWorkflow(w.id), w);
      assert.equal((await store.getWorkflowEvents(w.id)).length, 1);
      assert.deepEqual(await store.updateWorkflow(wid(9), (current) => ({ write: null, result: current })), null);
    }));

    it('a step that fails writes nothing: a child job whose key is taken rolls the step back', run(async (store) => {
      const w = instance(wid(1));
      await store.insertWorkflow(startWrite(w));
      await store.insert([childWrite(jid(1), undefined, { idempotencyKey: 'taken' })]);
      await drain(store);
      await assert.rejects(
        store.updateWorkflow(w.id, (current) => ({
          write: stepWrite(current!, state('active', [timer('x', T)]), { jobs: [childWrite(jid(2), { workflowId: w.id, invokeId: 'i' }, { idempotencyKey: 'taken' })] }),
          result: null,
        })),
        (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_INTERNAL',
      );
      assert.deepEqual(await store.getWorkflow(w.id), w);
      assert.equal((await store.getWorkflowEvents(w.id)).length, 1);
      assert.deepEqual(await timersOf(store, w.id), []);
      assert.equal(await store.getJob(jid(2)), null);
      assert.equal(await store.countUnpublished(), 0);
    }));

    it('a lost race (a stale expected version) runs decide again, and gives up with ATS_ERR_CONCURRENT_UPDATE', run(async (store) => {
      const w = instance(wid(1));
      await store.insertWorkflow(startWrite(w));
      let calls = 0;
      await store.updateWorkflow(w.id, (current) => {
        calls++;
        return { write: stepWrite(current!, state('active', [], 'b'), calls === 1 ? { expectedVersion: 0, jobs: [childWrite(jid(1), { workflowId: w.id, invokeId: 'i' })] } : {}), result: null };
      });
      assert.equal(calls, 2);
      assert.equal((await store.getWorkflow(w.id))?.version, 2);
      assert.equal(await store.getJob(jid(1)), null, 'the lost try\'s child job is rolled back');

      await assert.rejects(
        store.updateWorkflow(w.id, (current) => ({ write: stepWrite(current!, state('done'), { expectedVersion: 1 }), result: null })),
        (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_CONCURRENT_UPDATE',
      );
      assert.deepEqual([(await store.getWorkflow(w.id))?.version, (await store.getWorkflowEvents(w.id)).length], [2, 2]);

      // Steps racing on one instance each commit once, one after the other (the row is locked).
      await Promise.all(Array.from({ length: 6 }, () =>
        store.updateWorkflow(w.id, (current) => ({ write: stepWrite(current!, state('active', [timer(`v${current!.version}`, T)])), result: null }))));
      assert.deepEqual((await store.getWorkflowEvents(w.id)).map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.deepEqual(await timersOf(store, w.id), [['v7', T]]);
    }));

    it('lists a tenant\'s instances newest first, by page, by name and status; no other tenant\'s', run(async (store) => {
      for (let n = 1; n <= 5; n++) await store.insertWorkflow(startWrite(instance(wid(n), { name: n % 2 ? 'order' : 'refund' })));
      await store.insertWorkflow(startWrite(instance(wid(6), { tenant: 'acme' })));
      await store.insertWorkflow(startWrite(instance(wid(7), { state: state('error') })));
      const ids = async (f: Partial<Parameters<WorkflowStore['listWorkflows']>[0]>) =>
        (await store.listWorkflows({ tenant: 'default', limit: 10, ...f })).map((w) => w.id);
      assert.deepEqual(await ids({}), [wid(7), wid(5), wid(4), wid(3), wid(2), wid(1)]);
      assert.deepEqual(await ids({ limit: 2 }), [wid(7), wid(5)]);
      assert.deepEqual(await ids({ limit: 2, afterId: wid(5) }), [wid(4), wid(3)]);
      assert.deepEqual(await ids({ name: 'order' }), [wid(7), wid(5), wid(3), wid(1)]);
      assert.deepEqual(await ids({ name: 'order', afterId: wid(5), limit: 1 }), [wid(3)]);
      assert.deepEqual(await ids({ name: 'refund', status: 'active' }), [wid(4), wid(2)]);
      assert.deepEqual(await ids({ status: 'error' }), [wid(7)]);
      assert.deepEqual(await ids({ name: 'order', status: 'error' }), [wid(7)]);
      assert.deepEqual(await ids({ tenant: 'acme' }), [wid(6)]);
      assert.deepEqual(await ids({ tenant: 'nobody' }), []);
    }));

    it('purgeWorkflows deletes old ended instances of one status with their events and timers, oldest first, at most `limit`', run(async (store) => {
      const ended = (n: number, status: WorkflowStatus, updatedAt: number, extra: Partial<WorkflowRecord> = {}) =>
        store.insertWorkflow(startWrite(instance(wid(n), { state: state(status), updatedAt, ...extra })));
      // Cancelled with a timer row left (an ended state has none; retention deletes such a row all the same).
      await ended(1, 'cancelled', T + 10, { state: state('cancelled', [timer('t', T)]), idempotencyKey: 'k', requestHash: 'a'.repeat(64) });
      // Cancelled by a step, with a child job (left alone: jobs have their own retention).
      const w2 = instance(wid(2), { updatedAt: T - 980 });
      await store.insertWorkflow(startWrite(w2, [childWrite(jid(1), { workflowId: w2.id, invokeId: 'i' })]));
      await store.updateWorkflow(w2.id, (current) => ({ write: stepWrite(current!, state('cancelled'), { type: 'CANCEL' }), result: null }));
      await ended(3, 'cancelled', T + 30);
      await ended(4, 'cancelled', T + 100);
      await store.insertWorkflow(startWrite(instance(wid(5), { state: state('active', [timer('t', T)]), updatedAt: T - 5000 })));
      await ended(6, 'done', T + 5);
      await ended(7, 'error', T + 5);
      assert.equal((await store.getWorkflow(wid(2)))?.updatedAt, T + 20);
      const exists = async () => {
        const found: number[] = [];
        for (let n = 1; n <= 7; n++) if (await store.getWorkflow(wid(n))) found.push(n);
        return found;
      };

      assert.equal(await store.purgeWorkflows('cancelled', T + 9, 10), 0);
      assert.equal(await store.purgeWorkflows('cancelled', T + 40, 2), 2);
      assert.deepEqual(await exists(), [3, 4, 5, 6, 7], 'the two oldest');
      for (const id of [wid(1), wid(2)]) {
        assert.deepEqual(await store.getWorkflowEvents(id), []);
        assert.deepEqual(await timersOf(store, id), []);
      }
      assert.deepEqual((await store.getJob(jid(1)))?.parent, { workflowId: wid(2), invokeId: 'i' }, 'the child job stays');
      assert.equal(await store.purgeWorkflows('cancelled', T + 40, 2), 1, 'only what is old enough');
      assert.equal(await store.purgeWorkflows('cancelled', T + 100, 10), 1, 'the cutoff is inclusive');
      assert.deepEqual(await exists(), [5, 6, 7]);
      assert.equal(await store.purgeWorkflows('done', Number.MAX_SAFE_INTEGER, 10), 1);
      assert.deepEqual(await exists(), [5, 7]);
      assert.equal(await store.purgeWorkflows('error', Number.MAX_SAFE_INTEGER, 10), 1);
      await assert.rejects(store.purgeWorkflows('active' as 'done', Number.MAX_SAFE_INTEGER, 10), /ended/);
      assert.deepEqual(await exists(), [5], 'an active instance is never deleted, however old');
      assert.equal((await store.getWorkflowEvents(wid(5))).length, 1);
      assert.deepEqual(await timersOf(store, wid(5)), [['t', T]]);

      // The deleted instance's idempotency key is free: a start with it makes a new instance.
      assert.equal(await store.findWorkflowByIdempotencyKey('default', 'order', 'k'), null);
      const again = instance(wid(8), { idempotencyKey: 'k', requestHash: 'b'.repeat(64) });
      assert.deepEqual(await store.insertWorkflow(startWrite(again)), { ok: true });
      assert.equal((await store.findWorkflowByIdempotencyKey('default', 'order', 'k'))?.id, wid(8));
    }));

    it('the stream reads every instance\'s events by global id: in commit order, with name, tenant and the state value after each', run(async (store) => {
      assert.equal(await store.lastWorkflowEventId(), 0);
      assert.deepEqual(await store.readWorkflowEventsAfter(0, 10), []);
      const a = instance(wid(1));
      const b = instance(wid(2), { tenant: 'acme', name: 'refund', state: state('active', [], 'waiting') });
      await store.insertWorkflow(startWrite(a));
      await store.insertWorkflow(startWrite(b));
      const parallel = { ...state('active'), value: { fulfil: { stock: 'reserving', ship: 'booking' } } } as PersistedWorkflow;
      await store.updateWorkflow(a.id, (current) => ({ write: stepWrite(current!, parallel), result: null }));
      await store.updateWorkflow(b.id, (current) => ({ write: stepWrite(current!, state('cancelled', [], 'waiting'), { type: 'CANCEL' }), result: null }));
      await store.updateWorkflow(a.id, (current) => ({ write: stepWrite(current!, state('done', [], 'confirmed'), { type: 'CHILD' }), result: null }));

      const rows = await store.readWorkflowEventsAfter(0, 10);
      assert.deepEqual(rows.map((r) => [r.workflowId, r.seq, r.type, r.status, r.name, r.tenant, r.value]), [
        [a.id, 1, 'START', 'active', 'order', 'default', 'a'],
        [b.id, 1, 'START', 'active', 'refund', 'acme', 'waiting'],
        [a.id, 2, 'SIGNAL', 'active', 'order', 'default', { fulfil: { stock: 'reserving', ship: 'booking' } }],
        [b.id, 2, 'CANCEL', 'cancelled', 'refund', 'acme', 'waiting'],
        [a.id, 3, 'CHILD', 'done', 'order', 'default', 'confirmed'],
      ]);
      const ids = rows.map((r) => r.id);
      assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids grow in commit order: ${ids.join()}`);
      assert.equal(await store.lastWorkflowEventId(), ids.at(-1));
      // The event as the history has it, plus the stream's fields.
      const [history] = await store.getWorkflowEvents(a.id);
      const { id: _id, name: _name, tenant: _tenant, ...event } = rows[0]!;
      assert.deepEqual(event, history);
      assert.deepEqual((await store.getWorkflowEvents(a.id)).map((e) => e.value), ['a', { fulfil: { stock: 'reserving', ship: 'booking' } }, 'confirmed']);
      // Pages: after a position, at most `limit`.
      assert.deepEqual((await store.readWorkflowEventsAfter(ids[1]!, 2)).map((r) => r.id), [ids[2], ids[3]]);
      // Their sizes, read without them: the same rows, each with the bytes of its data and state value as stored.
      const stored = (r: (typeof rows)[number]) => Buffer.byteLength(JSON.stringify(r.data)) + Buffer.byteLength(JSON.stringify(r.value));
      assert.deepEqual(await store.workflowEventSizesAfter(0, 10), rows.map((r) => ({ id: r.id, bytes: stored(r) })));
      assert.deepEqual((await store.workflowEventSizesAfter(ids[1]!, 2)).map((r) => r.id), [ids[2], ids[3]]);
      assert.deepEqual(await store.readWorkflowEventsAfter(ids.at(-1)!, 10), []);

      // Retention takes an instance's events with it; ids are never reused, so a cursor past them stays past.
      assert.equal(await store.purgeWorkflows('done', T + 10_000, 10), 1);
      assert.deepEqual((await store.readWorkflowEventsAfter(0, 10)).map((r) => r.workflowId), [b.id, b.id]);
      await store.insertWorkflow(startWrite(instance(wid(3))));
      const [fresh] = await store.readWorkflowEventsAfter(ids.at(-1)!, 10);
      assert.ok(fresh && fresh.workflowId === wid(3) && fresh.id > ids.at(-1)!, `a new event after a purge gets a new id (${fresh?.id})`);
      assert.equal(await store.lastWorkflowEventId(), fresh.id);
    }));

    it('the stream\'s read with throughId reads no row past it; readWithin on it reads no row it did not size, whatever retention deletes meanwhile', run(async (store) => {
      // Ids in this order: A's START and end (A purgeable), B's START, B's large step, C's START.
      const a = instance(wid(1));
      const b = instance(wid(2));
      await store.insertWorkflow(startWrite(a));
      await store.updateWorkflow(a.id, (current) => ({ write: stepWrite(current!, state('done', [], 'confirmed'), { type: 'CHILD' }), result: null }));
      await store.insertWorkflow(startWrite(b));
      await store.updateWorkflow(b.id, (current) => ({ write: stepWrite(current!, state('active', [], 'v'.repeat(20_000))), result: null }));
      await store.insertWorkflow(startWrite(instance(wid(3))));
      const ids = (await store.readWorkflowEventsAfter(0, 10)).map((r) => r.id);
      const bytes = (await store.workflowEventSizesAfter(0, 10)).map((r) => r.bytes);
      assert.equal(ids.length, 5);

      assert.deepEqual((await store.readWorkflowEventsAfter(0, 10, ids[2]!)).map((r) => r.id), ids.slice(0, 3));
      assert.deepEqual((await store.readWorkflowEventsAfter(ids[0]!, 1, ids[3]!)).map((r) => r.id), [ids[1]], 'and at most limit');

      // A's two and B's START fit; retention takes A before the rows are read: B's large step must not take A's places.
      const page = await readWithin(
        async (after, limit) => {
          const sizes = await store.workflowEventSizesAfter(after, limit);
          assert.equal(await store.purgeWorkflows('done', T + 10_000, 10), 1);
          return sizes;
        },
        (after, limit, throughId) => store.readWorkflowEventsAfter(after, limit, throughId), 0, 10, bytes[0]! + bytes[1]! + bytes[2]!,
      );
      assert.deepEqual(page.rows.map((r) => r.id), [ids[2]]);
      assert.equal(page.cut, true);
    }));

    it('a step\'s messages are stored with it and announced in the outbox; the target\'s step takes one once, read and deleted with it', run(async (store) => {
      const sender = instance(wid(1));
      const target = instance(wid(2));
      await store.insertWorkflow(startWrite(sender));
      await store.insertWorkflow(startWrite(target));
      await drain(store);
      const message = (n: number, to = target.id): WorkflowMessageRecord => ({
        messageId: `${sender.id}:2:${n}`, targetId: to, tenant: 'default', senderId: sender.id, event: { type: 'PING', n, text: 'é' }, createdAt: T + 1000,
      });
      const rows = [message(0), message(1), message(2, wid(9))];
      const messages = { rows, outbox: rows.map((m) => workflowMessageNotice({ workflowId: m.targetId, messageId: m.messageId, tenant: m.tenant })) };
      // A step that fails (its compare-and-set lost) stores none of its messages.
      await assert.rejects(store.updateWorkflow(sender.id, (current) => ({ write: { ...stepWrite(current!, state('active'), { expectedVersion: 7 }), messages }, result: null })));
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 10), []);
      await store.updateWorkflow(sender.id, (current) => ({ write: { ...stepWrite(current!, state('active')), messages }, result: null }));
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 10), [rows[0]!.messageId, rows[1]!.messageId]);
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 1), [rows[0]!.messageId]);
      assert.deepEqual(await store.pendingWorkflowMessages(wid(9), 10), [rows[2]!.messageId]);
      const notices = (await drain(store)).filter((r) => r.headers['ats-kind'] === WORKFLOW_MESSAGE_KIND);
      assert.deepEqual(notices.map((r) => [r.topic, r.key, r.payload]), rows.map((m) => ['ats.workflows', m.targetId, { workflowId: m.targetId, messageId: m.messageId, tenant: 'default' }]));
      assert.deepEqual((await store.staleWorkflowMessageTargets(T + 999, 10)), []);
      assert.deepEqual(await store.staleWorkflowMessageTargets(T + 1000, 10), [target.id, wid(9)], 'in id order');
      assert.deepEqual(await store.staleWorkflowMessageTargets(T + 1000, 1), [target.id]);
      assert.deepEqual(await store.staleWorkflowMessageTargets(T + 1000, 1, target.id), [wid(9)], 'the page after a target');

      // The target's step reads the message with the instance, and deletes it with its own write.
      const seen: (WorkflowMessageRecord | null)[] = [];
      await store.updateWorkflow(target.id, (current, m) => {
        seen.push(m);
        return { write: stepWrite(current!, state('active'), { type: 'MESSAGE' }), result: null, consumeMessage: true };
      }, { messageId: rows[0]!.messageId });
      assert.deepEqual([...seen], [rows[0]]);
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 10), [rows[1]!.messageId]);
      // Taken already: null, and nothing to delete.
      await store.updateWorkflow(target.id, (_current, m: WorkflowMessageRecord | null) => {
        seen.push(m);
        return { write: null, result: null, consumeMessage: true };
      }, { messageId: rows[0]!.messageId });
      assert.equal(seen[1], null);
      // Dropped (no write) still deletes it; kept (consumeMessage false) leaves it; a failed step leaves it.
      await assert.rejects(store.updateWorkflow(target.id, (current) => ({
        write: stepWrite(current!, state('active'), { expectedVersion: 9 }), result: null, consumeMessage: true,
      }), { messageId: rows[1]!.messageId }));
      await store.updateWorkflow(target.id, () => ({ write: null, result: null, consumeMessage: false }), { messageId: rows[1]!.messageId });
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 10), [rows[1]!.messageId]);
      await store.updateWorkflow(target.id, () => ({ write: null, result: null, consumeMessage: true }), { messageId: rows[1]!.messageId });
      assert.deepEqual(await store.pendingWorkflowMessages(target.id, 10), []);
      assert.equal((await store.getWorkflow(target.id))!.version, 2, 'only the step that took a message changed the target');
      // A message to no instance: the decide sees no instance and the message, and may drop it.
      await store.updateWorkflow(wid(9), (current, m) => (assert.equal(current, null), assert.equal(m?.targetId, wid(9)), { write: null, result: null, consumeMessage: true }), { messageId: rows[2]!.messageId });
      assert.deepEqual(await store.staleWorkflowMessageTargets(Number.MAX_SAFE_INTEGER, 10), []);
    }));

    it('two steps taking one message at once: one takes it, the other reads it gone', run(async (store) => {
      const target = instance(wid(2));
      await store.insertWorkflow(startWrite(instance(wid(1))));
      await store.insertWorkflow(startWrite(target));
      const m: WorkflowMessageRecord = { messageId: `${wid(1)}:2:0`, targetId: target.id, tenant: 'default', senderId: wid(1), event: { type: 'PING' }, createdAt: T };
      await store.updateWorkflow(wid(1), (current) => ({
        write: { ...stepWrite(current!, state('active')), messages: { rows: [m], outbox: [] } }, result: null,
      }));
      const took = await Promise.all([0, 1, 2].map(() => store.updateWorkflow(target.id, (current, msg) => (msg
        ? { write: stepWrite(current!, state('active'), { type: 'MESSAGE' }), result: true, consumeMessage: true }
        : { write: null, result: false }), { messageId: m.messageId })));
      assert.deepEqual(took.filter(Boolean).length, 1, took.join());
      assert.equal((await store.getWorkflow(target.id))!.version, 2);
      assert.deepEqual((await store.getWorkflowEvents(target.id)).map((e) => e.type), ['START', 'MESSAGE']);
    }));

    it('activeWorkflowValues: the state values of one tenant\'s active instances of a name and version, each from its last step', run(async (store) => {
      const parallel = { ...state('active'), value: { fulfil: { stock: 'reserving', ship: 'booking' } } } as PersistedWorkflow;
      await store.insertWorkflow(startWrite(instance(wid(1))));
      await store.insertWorkflow(startWrite(instance(wid(2))));
      await store.updateWorkflow(wid(2), (current) => ({ write: stepWrite(current!, parallel), result: null }));
      await store.insertWorkflow(startWrite(instance(wid(3))));
      await store.updateWorkflow(wid(3), (current) => ({ write: stepWrite(current!, state('done', [], 'confirmed')), result: null }));
      await store.insertWorkflow(startWrite(instance(wid(4), { tenant: 'acme' })));
      await store.insertWorkflow(startWrite(instance(wid(5), { definitionVersion: 3 })));
      await store.insertWorkflow(startWrite(instance(wid(6), { name: 'refund' })));
      const values = await store.activeWorkflowValues('default', 'order', 2, 10);
      assert.deepEqual(values.map((v) => JSON.stringify(v)).sort(), ['"a"', JSON.stringify(parallel.value)].sort());
      assert.equal((await store.activeWorkflowValues('default', 'order', 2, 1)).length, 1);
      assert.deepEqual(await store.activeWorkflowValues('acme', 'order', 2, 10), ['a']);
      assert.deepEqual(await store.activeWorkflowValues('default', 'order', 9, 10), []);
    }));

    it('a definition version past 32 bits (registration takes any positive safe integer: a timestamp) is kept, as a migration to another', run(async (store) => {
      const big = Number.MAX_SAFE_INTEGER - 1;
      const w = instance(wid(1), { definitionVersion: 2 ** 31 });
      assert.deepEqual(await store.insertWorkflow(startWrite(w)), { ok: true });
      assert.deepEqual(await store.getWorkflow(w.id), w);
      assert.deepEqual(await store.activeWorkflowValues('default', 'order', 2 ** 31, 10), ['a']);
      // A migration's step moves it to another version.
      await store.updateWorkflow(w.id, (current) => {
        const write = stepWrite(current!, state('active'), { type: 'MIGRATE' });
        return { write: { ...write, workflow: { ...write.workflow, definitionVersion: big } }, result: null };
      });
      assert.equal((await store.getWorkflow(w.id))!.definitionVersion, big);
      assert.deepEqual(await store.activeWorkflowValues('default', 'order', big, 10), ['a']);
    }));

    it('purges racing each other delete each instance once', run(async (store) => {
      for (let n = 1; n <= 7; n++) await store.insertWorkflow(startWrite(instance(wid(n), { state: state('done'), updatedAt: T + n })));
      const counts = await Promise.all([1, 2, 3].map(() => store.purgeWorkflows('done', T + 6, 3)));
      assert.ok(counts.every((n) => n <= 3), counts.join());
      let total = counts.reduce((a, b) => a + b, 0);
      for (let n = await store.purgeWorkflows('done', T + 6, 3); n > 0; n = await store.purgeWorkflows('done', T + 6, 3)) total += n;
      assert.equal(total, 6);
      assert.deepEqual((await store.listWorkflows({ tenant: 'default', limit: 10 })).map((w) => w.id), [wid(7)]);
    }));
  });
}

/** A folder holding the dialect's migrations before `version`. */
function migrationsBefore(dir: string, version: number): { dir: string; remove(): void } {
  const to = mkdtempSync(join(tmpdir(), 'ats-migrations-'));
  for (const file of readdirSync(dir)) if (/^\d{4}_/.test(file) && Number(file.slice(0, 4)) < version) cpSync(join(dir, file), join(to, file));
  return { dir: to, remove: () => rmSync(to, { recursive: true, force: true }) };
}

/** A MariaDB store of a database of its own, migrated up to `version` (not included); dropped after `body`. */
async function onMariadbBefore(version: number, body: (store: MysqlStore) => Promise<void>): Promise<void> {
  await requireMysql();
  const db = await createTestDatabase();
  const store = await createMysqlStore({ url: db.url, poolSize: 2 });
  const old = migrationsBefore(MYSQL_MIGRATIONS_DIR, version);
  try {
    await migrateMysql(store.pool, SYSTEM_CLOCK, old.dir);
    await body(store);
  } finally {
    old.remove();
    await store.close();
    await db.drop();
  }
}

/** A job written before 0015 reads back without a parent; workflows and children work after it. */
async function checkMigrated(store: Store, old: TransitionWrite): Promise<void> {
  assert.deepEqual(await store.getJob(old.job.id), old.job);
  const w = instance(wid(1), { state: state('active', [timer('t', T)]) });
  assert.deepEqual(await store.insertWorkflow(startWrite(w, [childWrite(jid(2), { workflowId: w.id, invokeId: 'i' })])), { ok: true });
  assert.deepEqual(await store.getWorkflow(w.id), w);
  assert.deepEqual((await store.getJob(jid(2)))?.parent, { workflowId: w.id, invokeId: 'i' });
}

describe('migration 0015: workflows', () => {
  it('on SQLite: jobs before it have no parent', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    const old = migrationsBefore(SQLITE_MIGRATIONS_DIR, 15);
    try {
      await migrateSqlite(store.db, SYSTEM_CLOCK, old.dir);
      const job = childWrite(jid(1), undefined);
      // Written as a process before 0015 writes it: without the column.
      const cols = ['id', 'tenant', 'type', 'queue', 'state', 'version', 'attempt', 'priority', 'timeout_ms', 'payload', 'snapshot', 'created_at', 'updated_at'];
      store.db.prepare(`INSERT INTO jobs (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
        .run(job.job.id, 'default', job.job.type, job.job.queue, 'pending', 1, 0, 0, 30_000, JSON.stringify(job.job.payload), JSON.stringify(job.job.snapshot), T, T);
      await store.migrate();
      await checkMigrated(store, job);
    } finally {
      old.remove();
      await store.close();
    }
  });

  it('on MariaDB: jobs before it have no parent, and a rerun completes', async () => {
    await onMariadbBefore(15, async (store) => {
      const job = childWrite(jid(1), undefined);
      const cols = ['id', 'tenant', 'type', 'queue', 'state', 'version', 'attempt', 'priority', 'timeout_ms', 'payload', 'snapshot', 'created_at', 'updated_at'];
      await store.pool.query(`INSERT INTO jobs (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
        [job.job.id, 'default', job.job.type, job.job.queue, 'pending', 1, 0, 0, 30_000, JSON.stringify(job.job.payload), JSON.stringify(job.job.snapshot), T, T]);
      await store.migrate();
      await checkMigrated(store, job);
      // Died after its statements, before its ledger row: run again.
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 15');
      await store.migrate();
      assert.equal((await store.getWorkflow(wid(1)))?.version, 1);
      // 0016 too (its index made already).
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 16');
      await store.migrate();
      assert.deepEqual(await store.activeWorkflowValues('default', 'order', 2, 10), ['a']);
      // And 0017 (its index made already).
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 17');
      await store.migrate();
      assert.deepEqual(await store.activeWorkflowIds(10), [wid(1)]);
    });
  });
});

describe('migration 0029: timer ids compared byte for byte on MariaDB', () => {
  it('timers written before it are kept and read back; then `t` and `t ` are two timers; a rerun completes', async () => {
    await onMariadbBefore(29, async (store) => {
      const before = instance(wid(1), { state: state('active', [timer('xstate.after.1000.w.é', T + 5), timer('t', T + 10)]) });
      assert.deepEqual(await store.insertWorkflow(startWrite(before)), { ok: true });
      await store.migrate();
      assert.deepEqual(await timersOf(store, wid(1)), [['xstate.after.1000.w.é', T + 5], ['t', T + 10]]);
      const after = instance(wid(2), { state: state('active', [timer('t', T + 10), timer('t ', T + 10)]) });
      assert.deepEqual(await store.insertWorkflow(startWrite(after)), { ok: true });
      assert.deepEqual(await timersOf(store, wid(2)), [['t', T + 10], ['t ', T + 10]]);
      // Died after its statement, before its ledger row: run again.
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 29');
      await store.migrate();
      assert.deepEqual(await timersOf(store, wid(2)), [['t', T + 10], ['t ', T + 10]]);
    });
  });
});

describe('migration 0030: definition versions past 32 bits on MariaDB', () => {
  it('instances written before it are kept; then a version past INT is kept; a rerun completes', async () => {
    await onMariadbBefore(30, async (store) => {
      const before = instance(wid(1), { definitionVersion: 2 ** 31 - 1 });
      assert.deepEqual(await store.insertWorkflow(startWrite(before)), { ok: true });
      await store.migrate();
      assert.deepEqual(await store.getWorkflow(wid(1)), before);
      const after = instance(wid(2), { definitionVersion: 2 ** 31 });
      assert.deepEqual(await store.insertWorkflow(startWrite(after)), { ok: true });
      assert.deepEqual(await store.getWorkflow(wid(2)), after);
      // Died after its statement, before its ledger row: run again.
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 30');
      await store.migrate();
      assert.deepEqual(await store.activeWorkflowValues('default', 'order', 2 ** 31, 10), ['a']);
    });
  });
});
