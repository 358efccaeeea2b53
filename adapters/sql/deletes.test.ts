/**
 * Deleting finished jobs (adapters/sql/deletes.ts) on SQLite and on MariaDB:
 * retention keeps a workflow's finished child while its instance still waits
 * for the child's end, and goes on past such children to the jobs behind
 * them; `deleteJob` refuses such a child (`awaited`, with its instance), writing
 * nothing, and deletes it once the instance took its end; and a delete leaves no counter rows (`job_counts`) of keys whose
 * count came back to zero, so that table stays as small as the jobs kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { outboxFor } from '../../engine/messages.js';
import type { JobEventRecord, JobParent, JobRecord, TransitionWrite, WorkflowRecord, WorkflowStore } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import type { JobEvent } from '../../machines/job.machine.js';
import { start } from '../../machines/lifecycle.js';
import type { WorkflowChild, WorkflowStatus } from '../../machines/workflow.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';
import { createMysqlStore, type MysqlStore } from '../mysql/index.js';
import { inTransaction } from '../mysql/tx.js';
import type { SqliteStore } from '../sqlite/index.js';
import { PURGE_MAX_JOB_EVENTS, purgeProgram, type JobPurgeStep } from './deletes.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import type { StoreMetrics } from './options.js';
import { runAsync, runSync, type Program } from './program.js';
import type { Row } from './rows.js';

type Store = TestStore & WorkflowStore;

const T = 1_900_000_000_000;
const wid = (n: number): string => `01W${String(n).padStart(23, '0')}`;
const jid = (n: number): string => `01J${String(n).padStart(23, '0')}`;

/** A child job's submit, as a workflow step writes it. */
function childWrite(id: string, parent: JobParent): TransitionWrite {
  const input = { at: T, maxAttempts: 1, backoff: { kind: 'fixed' as const, delayMs: 0 } };
  const { next, effects } = start(input);
  const job: JobRecord = {
    id, tenant: 'default', type: 'wf.step', queue: 'default', payload: {}, priority: 0, timeoutMs: 30_000,
    idempotencyKey: null, requestHash: null, version: 1, snapshot: next, createdAt: T, updatedAt: T, parent,
  };
  const event: JobEventRecord = { jobId: id, seq: 1, type: 'SUBMITTED', from: null, to: next.value, at: T, data: input };
  return { job, expectedVersion: null, event, outbox: outboxFor(job, event, effects) };
}

const child = (jobId: string, invokeId = `i.${jobId}`): WorkflowChild => ({ invokeId, jobId, jobType: 'wf.step' });

/** Starts instance `id` waiting on child jobs `ids` (inserted with it, pending). */
async function startWaiting(store: Store, id: string, ids: readonly string[]): Promise<WorkflowRecord> {
  const children = ids.map((j) => child(j));
  const w: WorkflowRecord = {
    id, tenant: 'default', name: 'order', definitionVersion: 1, input: {}, version: 1, idempotencyKey: null, requestHash: null,
    state: { value: 'a', context: {}, history: [], status: 'active', children, timers: [] }, createdAt: T, updatedAt: T,
  };
  const jobs = children.map((c) => childWrite(c.jobId, { workflowId: id, invokeId: c.invokeId }));
  const r = await store.insertWorkflow({
    workflow: w, expectedVersion: null, jobs, cancel: null,
    event: { workflowId: id, seq: 1, type: 'START', at: T, data: { input: {}, jobIds: ids }, status: 'active' },
  });
  assert.deepEqual(r, { ok: true });
  return w;
}

/** A step of instance `id` that leaves it waiting on `waits` only, with `status`. */
async function stepTo(store: Store, id: string, waits: readonly string[], status: WorkflowStatus = 'active'): Promise<void> {
  await store.updateWorkflow(id, (w) => {
    const at = w!.updatedAt + 1;
    const state = { ...w!.state, status, children: w!.state.children.filter((c) => waits.includes(c.jobId)) };
    return {
      write: {
        workflow: { ...w!, state, version: w!.version + 1, updatedAt: at }, expectedVersion: w!.version, jobs: [], cancel: null,
        event: { workflowId: id, seq: w!.version + 1, type: 'CHILD', at, data: { jobIds: [] }, status },
      },
      result: null,
    };
  });
}

/** Runs `events` on job `id`, one update each, the last at `at`. */
async function drive(store: Store, id: string, at: number, events: readonly string[]): Promise<void> {
  for (const type of events) {
    await store.update([id], (jobs) => {
      const job = jobs.get(id)!;
      const e = eventOf(type, at, job.snapshot.context.attempt);
      const w = transitionWrite(job, e);
      assert.ok(w, `${type} in ${job.snapshot.value}`);
      return { writes: [w], result: null };
    });
  }
}

function eventOf(type: string, at: number, attempt: number): JobEvent {
  switch (type) {
    case 'STARTED': return { type, at, attempt: attempt + 1, leaseUntil: at + 30_000, workerId: 'w' };
    case 'SUCCEEDED': return { type, at, attempt, result: 7 };
    case 'CANCEL': return { type, at };
    default: throw new Error(type);
  }
}

const toDone = (store: Store, id: string, at: number) => drive(store, id, at, ['STARTED', 'SUCCEEDED']);

/** The rows of `job_counts` (all tenants, keys and shards, or those `where` says), read from the table itself. */
async function countRows(store: Store, where = 'TRUE'): Promise<number> {
  const sql = `SELECT COUNT(*) AS n FROM job_counts WHERE ${where}`;
  if ('db' in store) return Number(((store as unknown as SqliteStore).db.prepare(sql).get() as { n: number }).n);
  const [rows] = await (store as unknown as MysqlStore).pool.query<RowDataPacket[]>(sql);
  return Number(rows[0]!.n);
}

/** A plain statement on the store's database: its rows (none for DML). */
async function sql(store: Store, text: string, params: readonly unknown[] = []): Promise<Row[]> {
  if ('db' in store) {
    const stmt = (store as unknown as SqliteStore).db.prepare(text);
    if (stmt.reader) return stmt.all([...params]) as Row[];
    stmt.run([...params]);
    return [];
  }
  const [res] = await (store as unknown as MysqlStore).pool.query(text, [...params] as (string | number | null)[]);
  return Array.isArray(res) ? (res as Row[]) : [];
}

/** One retention transaction of `purgeProgram`, run on the store's database as the store runs it. */
async function purgeTransaction(store: Store, state: 'done', updatedBefore: number, limit: number, maxEvents?: number): Promise<JobPurgeStep> {
  if ('db' in store) {
    const { db } = store as unknown as SqliteStore;
    const program = (): Program<JobPurgeStep> => purgeProgram(SQLITE_DIALECT, state, updatedBefore, limit, maxEvents);
    const exec = (s: { sql: string; params: readonly unknown[] }) => {
      const stmt = db.prepare(s.sql);
      return stmt.reader ? { rows: stmt.all([...s.params]) as Row[], changes: 0 } : { rows: [], changes: stmt.run([...s.params]).changes };
    };
    return db.transaction(() => runSync(program(), exec)).immediate();
  }
  const { pool } = store as unknown as MysqlStore;
  return inTransaction(pool, (run) => runAsync(purgeProgram(MYSQL_DIALECT, state, updatedBefore, limit, maxEvents), run));
}

const countEvents = async (store: Store): Promise<number> => Number((await sql(store, 'SELECT COUNT(*) AS n FROM job_events'))[0]!.n);

/** `n` done jobs last changed at `at`, each with a history of `events` rows (padded straight into the table, its version with it). */
async function doneWithHistories(store: Store, n: number, events: number, at: number): Promise<string[]> {
  const writes = Array.from({ length: n }, () => newJobWrite({ at: T }));
  await store.insert(writes);
  const ids = writes.map((w) => w.job.id);
  for (const type of ['STARTED', 'SUCCEEDED']) {
    await store.update(ids, (jobs) => ({
      writes: ids.map((id) => {
        const job = jobs.get(id)!;
        const w = transitionWrite(job, eventOf(type, at, job.snapshot.context.attempt));
        assert.ok(w);
        return w;
      }),
      result: null,
    }));
  }
  const rows = ids.flatMap((id) => Array.from({ length: events - 3 }, (_, i) => [id, 4 + i]));
  for (let i = 0; i < rows.length; i += 1000) {
    const part = rows.slice(i, i + 1000);
    await sql(store, `INSERT INTO job_events (job_id, seq, type, from_state, to_state, at, data) VALUES ${part.map(() => "(?, ?, 'HEARTBEAT', 'done', 'done', ?, '{}')").join(', ')}`,
      part.flatMap(([id, seq]) => [id, seq, at]));
  }
  await sql(store, `UPDATE jobs SET version = ? WHERE id IN (${ids.map(() => '?').join(', ')})`, [events, ...ids]);
  return ids;
}

const key = (c: { queue: string; type: string; state: string; n: number }) => JSON.stringify([c.queue, c.type, c.state, c.n]);
async function assertCountsExact(store: Store): Promise<void> {
  assert.deepEqual((await store.jobCounts()).map(key).sort(), (await store.recountJobs()).map(key).sort(), 'counters equal a recount');
}

for (const backend of STORE_BACKENDS) {
  const run = (fn: (store: Store) => Promise<void>) => () => withMigratedStore(backend, (store) => fn(store as Store));

  describe(`deleting finished jobs (${backend.name})`, () => {
    it('purgeJobs keeps a finished child its active instance still waits on, and deletes it once the instance took its end or ended', run(async (store) => {
      await startWaiting(store, wid(1), [jid(1), jid(2)]);
      await startWaiting(store, wid(2), [jid(3)]);
      await startWaiting(store, wid(3), [jid(4)]);
      for (const id of [jid(1), jid(2), jid(3), jid(4)]) await toDone(store, id, T + 10);
      await stepTo(store, wid(1), [jid(1)]); // took jid(2)'s end, still waits on jid(1)
      await stepTo(store, wid(3), [], 'done'); // ended
      assert.equal(await store.purgeJobs('done', T + 10, 10), 2, 'the children no instance waits on');
      assert.equal(await store.getJob(jid(2)), null);
      assert.equal(await store.getJob(jid(4)), null);
      assert.equal((await store.getJob(jid(1)))?.snapshot.value, 'done', 'its instance still waits on it');
      assert.equal((await store.getJob(jid(3)))?.snapshot.value, 'done');
      assert.equal(await store.purgeJobs('done', T + 10, 10), 0);

      await stepTo(store, wid(1), []);
      assert.equal(await store.purgeJobs('done', T + 10, 10), 1, 'its end taken, the child goes');
      assert.equal(await store.getJob(jid(1)), null);
      // An instance deleted (by its own retention) waits on nothing.
      await stepTo(store, wid(2), [jid(3)], 'cancelled');
      assert.equal(await store.purgeWorkflows('cancelled', Number.MAX_SAFE_INTEGER, 10), 1);
      assert.equal(await store.purgeJobs('done', T + 10, 10), 1);
      assert.deepEqual(await store.recountJobs(), []);
      await assertCountsExact(store);
    }));

    it('deleteJob refuses a finished child its active instance still waits on, writing nothing, and deletes it once the instance took its end or ended', run(async (store) => {
      await startWaiting(store, wid(1), [jid(1), jid(2)]);
      await startWaiting(store, wid(2), [jid(3)]);
      assert.deepEqual(await store.deleteJob(jid(1)), { ok: false, reason: 'live', state: 'pending' }, 'a live child is live, as any job');
      for (const id of [jid(1), jid(2), jid(3)]) await toDone(store, id, T + 10);
      const before = JSON.stringify([await store.getEvents(jid(1)), await store.jobCounts(), await countRows(store)]);
      assert.deepEqual(await store.deleteJob(jid(1)), { ok: false, reason: 'awaited', state: 'done', workflowId: wid(1) });
      assert.equal((await store.getJob(jid(1)))?.snapshot.value, 'done', 'kept');
      assert.equal(JSON.stringify([await store.getEvents(jid(1)), await store.jobCounts(), await countRows(store)]), before, 'nothing written');

      await stepTo(store, wid(1), [jid(2)]); // took jid(1)'s end, still waits on jid(2)
      assert.deepEqual(await store.deleteJob(jid(1)), { ok: true });
      assert.deepEqual(await store.deleteJob(jid(2)), { ok: false, reason: 'awaited', state: 'done', workflowId: wid(1) });
      await stepTo(store, wid(2), [jid(3)], 'cancelled'); // ended, its child listed still
      assert.deepEqual(await store.deleteJob(jid(3)), { ok: true });
      await assertCountsExact(store);
    }));

    it('purgeJobs goes on past kept children to the jobs behind them, a batch at a time, and ends', run(async (store) => {
      const kept = [1, 2, 3, 4, 5].map(jid);
      await startWaiting(store, wid(1), kept);
      for (const id of kept) await toDone(store, id, T + 1); // the oldest
      // Three done jobs of their own, younger than the kept children.
      const own = [newJobWrite({ at: T }), newJobWrite({ at: T }), newJobWrite({ at: T })];
      await store.insert(own);
      for (const [i, w] of own.entries()) await toDone(store, w.job.id, T + 2 + i);

      assert.equal(await store.purgeJobs('done', T + 10, 2), 2);
      assert.equal(await store.purgeJobs('done', T + 10, 2), 1);
      assert.equal(await store.purgeJobs('done', T + 10, 2), 0);
      for (const w of own) assert.equal(await store.getJob(w.job.id), null);
      for (const id of kept) assert.equal((await store.getJob(id))?.snapshot.value, 'done');
      await assertCountsExact(store);
    }));

    it(`one retention transaction deletes at most PURGE_MAX_JOB_EVENTS (${PURGE_MAX_JOB_EVENTS}) job events, however long the histories; purgeJobs still deletes its \`limit\`, over several`, run(async (store) => {
      // 400 done jobs of 30 events each (a job that failed ten attempts): 12,000 events in one batch of 500.
      await doneWithHistories(store, 400, 30, T + 1);
      assert.equal(await countEvents(store), 12_000);

      const step = await purgeTransaction(store, 'done', T + 10, 500);
      const deleted = 12_000 - (await countEvents(store));
      assert.ok(deleted <= PURGE_MAX_JOB_EVENTS, `one transaction deleted ${deleted} job events, over ${PURGE_MAX_JOB_EVENTS}`);
      assert.deepEqual(step, { deleted: Math.floor(PURGE_MAX_JOB_EVENTS / 30), full: true }, 'the oldest jobs whose histories fit, whole');
      assert.equal(deleted, step.deleted * 30, 'each job with all its events');

      assert.equal(await store.purgeJobs('done', T + 10, 500), 400 - step.deleted, 'the rest, in as many transactions as they need');
      assert.equal(await countEvents(store), 0);
      assert.deepEqual(await store.recountJobs(), []);
      await assertCountsExact(store);
    }));

    it('a job whose history alone is longer than the bound goes whole, in a transaction of its own', run(async (store) => {
      await doneWithHistories(store, 3, 30, T + 1);
      assert.deepEqual(await purgeTransaction(store, 'done', T + 10, 500, 10), { deleted: 1, full: true });
      assert.equal(await countEvents(store), 60, 'the first job with its 30 events; the others untouched');
      assert.deepEqual(await purgeTransaction(store, 'done', T + 10, 500, 100), { deleted: 2, full: false });
      await assertCountsExact(store);
    }));

    it('a delete of the last jobs of a (tenant, queue, type) drops its counter rows; the counters equal a recount', run(async (store) => {
      // Jobs of several tenants, queues and types, moved through states (each transition leaves a key at zero).
      const writes = [];
      for (let i = 0; i < 12; i++) writes.push(newJobWrite({ at: T, tenant: i % 3 ? 'default' : 'acme', queue: `q${i % 2}`, type: `t${i % 4}` }));
      await store.insert(writes);
      for (const [i, w] of writes.entries()) {
        if (i % 3 === 0) await drive(store, w.job.id, T + 1, ['CANCEL']);
        else await toDone(store, w.job.id, T + 1);
      }
      const live = newJobWrite({ at: T, tenant: 'default', queue: 'q1', type: 't1' });
      await store.insert([live]);
      await drive(store, live.job.id, T + 1, ['STARTED']);
      assert.ok(await countRows(store) > 0);

      assert.deepEqual(await store.deleteJob(writes[1]!.job.id), { ok: true });
      await assertCountsExact(store);
      for (const state of ['done', 'cancelled'] as const) while (await store.purgeJobs(state, T + 1, 3) > 0) await assertCountsExact(store);
      await assertCountsExact(store);
      assert.deepEqual((await store.recountJobs()).map(key), [key({ queue: 'q1', type: 't1', state: 'running', n: 1 })]);
      // What is left: the rows of the running job's (tenant, queue, type) only.
      assert.equal(await countRows(store, "NOT (tenant = 'default' AND queue = 'q1' AND type = 't1')"), 0);
      assert.ok(await countRows(store) > 0);

      await drive(store, live.job.id, T + 2, ['SUCCEEDED']);
      assert.equal(await store.purgeJobs('done', T + 2, 10), 1);
      assert.equal(await countRows(store), 0, 'no jobs, no counter rows');
      assert.deepEqual(await store.jobCounts(), []);
      // A key counted again after its rows went starts from zero.
      const again = newJobWrite({ at: T, queue: 'q1', type: 't1' });
      await store.insert([again]);
      await assertCountsExact(store);
      assert.equal((await store.stats()).byState.pending, 1);
    }));
  });
}

describe('deleting finished jobs (mysql, concurrent)', () => {
  it('deletes racing submits, transitions and each other: no deadlock, counters exact, no rows left of types without jobs', async (t) => {
    if (!(await requireMysql())) return t.skip('MariaDB is not reachable (ATS_ALLOW_SKIP=1)');
    const db = await createTestDatabase();
    const lost: string[] = [];
    const metrics: StoreMetrics = {
      dbTransaction: () => undefined,
      dbConflict: (op, reason) => void (reason !== 'version_conflict' && lost.push(`${op}: ${reason}`)),
    };
    const stores = await Promise.all([0, 1, 2, 3].map(() => createMysqlStore({ url: db.url, poolSize: 4, metrics })));
    const [a] = stores as [MysqlStore];
    const cancelAll = (store: MysqlStore, ids: string[]) =>
      store.update(ids, (jobs) => ({ writes: ids.map((id) => transitionWrite(jobs.get(id)!, { type: 'CANCEL', at: T })!), result: null }));
    try {
      await a.migrate();
      // Hot types: a running job in each of 2 x 2 (queue, type)s while every store submits, cancels and deletes more.
      const live = [0, 1, 2, 3].map((i) => newJobWrite({ at: T, queue: `q${i % 2}`, type: `t${i >> 1}` }));
      await a.insert(live);
      for (const w of live) await drive(a as Store, w.job.id, T, ['STARTED']);
      await Promise.all(stores.map(async (store, s) => {
        for (let round = 0; round < 15; round++) {
          const writes = [0, 1, 2, 3].map((i) => newJobWrite({ at: T, queue: `q${(i + round) % 2}`, type: `t${(i + s) % 2}` }));
          await store.insert(writes);
          const ids = writes.map((w) => w.job.id);
          await cancelAll(store, ids);
          if (round % 3 === 0) await store.deleteJob(ids[0]!);
          await store.purgeJobs('cancelled', T, 2 + (round % 3));
        }
      }));
      await assertCountsExact(a as Store);
      // Cold types: the last jobs of each deleted by four stores at once; the last delete to commit drops the rows.
      const cold = Array.from({ length: 12 }, (_, n) => [0, 1, 2, 3].map(() => newJobWrite({ at: T, queue: 'cold', type: `c${n}` })));
      for (const jobs of cold) {
        await a.insert(jobs);
        await cancelAll(a, jobs.map((w) => w.job.id));
      }
      await Promise.all(stores.map(async (store, s) => {
        for (const jobs of cold) assert.deepEqual(await store.deleteJob(jobs[s]!.job.id), { ok: true });
      }));
      const rowsOf = async (where: string) =>
        Number((await a.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM job_counts WHERE ${where}`))[0][0]!.n);
      assert.equal(await rowsOf("queue = 'cold'"), 0, 'no rows of types whose jobs are all deleted');
      assert.deepEqual(lost, [], 'no transaction lost a race but on versions');

      for (const w of live) await drive(a as Store, w.job.id, T, ['SUCCEEDED']);
      for (const state of ['cancelled', 'done'] as const) while (await a.purgeJobs(state, T, 50) > 0);
      assert.deepEqual(await a.recountJobs(), []);
      assert.deepEqual(await a.jobCounts(), []);
      assert.equal(await rowsOf('TRUE'), 0);
    } finally {
      for (const s of stores) await s.close();
      await db.drop();
    }
  });
});
