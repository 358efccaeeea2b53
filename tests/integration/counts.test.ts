/**
 * The job counters (`job_counts`, adapters/sql/counts.ts) stay exact through
 * every path that makes, moves or deletes jobs, on the embedded store and on
 * MariaDB: a whole scheduler in process (api, relay, worker, timers, on the
 * in-process log) is driven through submits (single, batch, keyed, delayed,
 * invalid), the worker's outcomes (success, retry, dead, timeout), the
 * timers' repairs (delayed jobs due, retries due, leases expired), cancels in
 * every live state, redrives, deletes, retention, workflows and their child
 * jobs, a schedule, a limit refusing a claim, two tenants on one queue and
 * type, and racing writers; after each step `verifyCounts`, a per-tenant
 * recount and `GET /v1/stats` must agree with the jobs. Then, on a store of
 * its own, transactions that fail before their commit (or midway) change no
 * counter, and one that loses its race and is run again counts once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setup } from 'xstate';
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import { VersionConflict } from '../../adapters/sql/writes.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { NonRetryableError } from '../../engine/errors.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobRecord, JobSpec, JobStore } from '../../engine/ports.js';
import { Retention } from '../../engine/retention.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { submitWrite, TransitionService } from '../../engine/transitions.js';
import { verifyCounts } from '../../engine/verify.js';
import { JOB_STATES } from '../../machines/job.machine.js';
import { job } from '../../machines/workflow.js';
import { createTestDatabase, requireMysql } from '../helpers/mysql.js';
import { FAST, isState, waitForJob } from '../helpers/system.js';

/** Waits on its signal: a job that runs until its timeout or a cancel ends the attempt. */
const hang = (_p: unknown, ctx: { signal: AbortSignal }) =>
  new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));

/** One child job, then done. */
const once = setup({ actors: { work: job('c.ok') } }).createMachine({
  id: 'once', initial: 'working',
  states: { working: { invoke: { id: 'work', src: 'work', onDone: 'done' } }, done: { type: 'final' } },
});

/** One child job that runs until cancelled. */
const holding = setup({ actors: { wait: job('c.hang') } }).createMachine({
  id: 'holding', initial: 'running', states: { running: { invoke: { id: 'wait', src: 'wait' } } },
});

function registry(): HandlerRegistry {
  const r = new HandlerRegistry();
  r.register('c.ok', async () => 1);
  r.register('c.flaky', async (_p, ctx) => {
    if (ctx.attempt === 1) throw new Error('first attempt fails');
    return ctx.attempt;
  });
  r.register('c.fatal', async () => {
    throw new NonRetryableError('never works');
  });
  r.register('c.hang', hang);
  r.workflow('c.once', once);
  r.workflow('c.holding', holding);
  return r;
}

/** The worker serves these queues; `manual`'s jobs wait, published, for the test to move them. */
const SERVED = 'default,work';
const FIXED_10 = { kind: 'fixed', delayMs: 10 } as const;
/** The tenants the jobs here belong to. */
const TENANTS = ['default', 'acme', 'globex'];

type Row = Record<string, unknown>;

/** Rows of a read on either SQL store. */
async function rowsOf(store: JobStore, sql: string): Promise<Row[]> {
  if ('db' in store) return (store as SqliteStore).db.prepare(sql).all() as Row[];
  const [rows] = await (store as MysqlStore).pool.query(sql);
  return rows as Row[];
}

const keyed = (rows: Row[]): string[] =>
  rows.map((r) => JSON.stringify([r.tenant, r.queue, r.type, r.state, Number(r.n)])).filter((k) => !k.endsWith(',0]')).sort();

/** The counters per (tenant, queue, type, state), summed over shards, and a recount of the jobs: `verifyCounts` sums over tenants. */
async function perTenant(store: JobStore): Promise<{ kept: string[]; recounted: string[] }> {
  return {
    kept: keyed(await rowsOf(store, 'SELECT tenant, queue, type, state, SUM(n) AS n FROM job_counts GROUP BY tenant, queue, type, state')),
    recounted: keyed(await rowsOf(store, 'SELECT tenant, queue, type, state, COUNT(*) AS n FROM jobs GROUP BY tenant, queue, type, state')),
  };
}

/** `GET /v1/stats` (the default tenant's) as it should be from a recount of that tenant's jobs. */
async function statsFromJobs(store: JobStore): Promise<Record<string, number>> {
  const byState: Record<string, number> = Object.fromEntries(JOB_STATES.map((s) => [s, 0]));
  for (const r of await rowsOf(store, "SELECT state, COUNT(*) AS n FROM jobs WHERE tenant = 'default' GROUP BY state")) byState[String(r.state)] = Number(r.n);
  return byState;
}

/**
 * The counters equal the jobs: `verifyCounts`, per tenant, and `/v1/stats`. The roles may still be
 * moving a job between the reads, so a difference is read again for a while; a drift stays.
 */
async function assertExact(system: System, step: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const counts = await verifyCounts(system.store, TENANTS);
    const tenants = await perTenant(system.store);
    const res = await system.app!.inject({ url: '/v1/stats' });
    assert.equal(res.statusCode, 200, res.body);
    const stats = res.json() as { total: number; byState: Record<string, number> };
    const expected = await statsFromJobs(system.store);
    const total = Object.values(expected).reduce((a, n) => a + n, 0);
    const same = counts.ok && JSON.stringify(tenants.kept) === JSON.stringify(tenants.recounted)
      && JSON.stringify(stats.byState) === JSON.stringify(expected) && stats.total === total;
    if (same) return;
    if (Date.now() > deadline) {
      assert.deepEqual(counts.problems, [], `${step}: verifyCounts`);
      assert.deepEqual(tenants.kept, tenants.recounted, `${step}: per tenant`);
      assert.deepEqual(stats.byState, expected, `${step}: /v1/stats byState`);
      assert.equal(stats.total, total, `${step}: /v1/stats total`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function post(system: System, url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await system.app!.inject({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
}

async function submit(system: System, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const r = await post(system, '/v1/jobs', { payload: null, ...body }, headers);
  assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r));
  return r.body.id as string;
}

async function del(system: System, url: string): Promise<number> {
  return (await system.app!.inject({ method: 'DELETE', url })).statusCode;
}

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'c.ok', payload: null, queue: 'manual', maxAttempts: 3, backoff: FIXED_10, timeoutMs: 30_000, priority: 0, ...o,
});

/** A worker that is no process: its attempts end only by the lease (the timers') or a cancel. */
async function startGhost(system: System, id: string, leaseMs: number): Promise<JobRecord> {
  const j = (await system.store.getJob(id))!;
  const r = await system.transitions.apply(id, { type: 'STARTED', attempt: j.snapshot.context.attempt + 1, leaseUntil: Date.now() + leaseMs, workerId: 'ghost' });
  assert.ok(r.ok, JSON.stringify(r));
  return r.job;
}

function suite(name: string, open: (raw: RawConfig) => Promise<{ system: System; stop(): Promise<void> }>): void {
  describe(name, { timeout: 120_000 }, () => {
    let system: System;
    let stop: () => Promise<void>;
    const wait = (id: string, ...states: string[]) => waitForJob(system.store, id, isState(...states), 20_000, states.join(' or '));

    before(async () => ({ system, stop } = await open({ ...FAST, queues: SERVED, leaseMs: 3000 })));
    after(() => stop?.());

    it('submits: single, keyed again, delayed, batch with keys taken inside and across batches and invalid items', async () => {
      await assertExact(system, 'empty');
      const a = await submit(system, { type: 'c.ok', payload: null, queue: 'work' });
      const k1 = await submit(system, { type: 'c.ok', payload: null, queue: 'work' }, { 'idempotency-key': 'k1' });
      assert.equal(await submit(system, { type: 'c.ok', payload: null, queue: 'work' }, { 'idempotency-key': 'k1' }), k1, 'the same submit again');
      assert.equal((await post(system, '/v1/jobs', { type: 'c.ok', queue: 'work', payload: 2 }, { 'idempotency-key': 'k1' })).status, 409);
      assert.equal((await post(system, '/v1/jobs', { queue: 'work', payload: null })).status, 400, 'no type');
      const soon = await submit(system, { type: 'c.ok', payload: null, queue: 'work', runAt: Date.now() + 600 });
      const later = await submit(system, { type: 'c.ok', payload: null, queue: 'work', runAt: Date.now() + 3_600_000 });
      await assertExact(system, 'single submits');

      const batch = await post(system, '/v1/jobs/batch', {
        jobs: [
          { type: 'c.ok', payload: null, queue: 'work' },
          { type: 'c.ok', payload: null, queue: 'work', idempotencyKey: 'b1' },
          { type: 'c.ok', payload: null, queue: 'work', idempotencyKey: 'b1' },
          { type: 'c.ok', queue: 'work', idempotencyKey: 'b1', payload: 'other' },
          { type: 'c.ok', payload: null, queue: 'work', idempotencyKey: 'k1' },
          { queue: 'work', payload: null },
          { type: 'c.ok', payload: null, queue: 'work', maxAttempts: 0 },
          { type: 'c.ok', payload: null, queue: 'work', runAt: Date.now() + 3_600_000, idempotencyKey: 'b2' },
        ],
      });
      assert.equal(batch.status, 200, JSON.stringify(batch));
      const results = batch.body.results as Array<{ status: number; id?: string }>;
      assert.deepEqual(results.map((r) => r.status), [201, 201, 200, 409, 200, 400, 400, 201]);
      assert.equal(results[2]!.id, results[1]!.id);
      assert.equal(results[4]!.id, k1);
      const again = await post(system, '/v1/jobs/batch', { jobs: [{ type: 'c.ok', payload: null, queue: 'work', idempotencyKey: 'b1' }, { type: 'c.ok', payload: null, queue: 'work', idempotencyKey: 'b3' }] });
      assert.deepEqual((again.body.results as Array<{ status: number }>).map((r) => r.status), [200, 201]);
      await assertExact(system, 'batches');

      for (const id of [a, k1, soon, results[0]!.id!, results[1]!.id!]) await wait(id, 'done');
      assert.equal((await system.store.getJob(later))!.snapshot.value, 'pending');
      await assertExact(system, 'submitted jobs done');
      assert.equal((await post(system, `/v1/jobs/${later}/cancel`)).status, 200, 'a delayed job cancelled while pending');
      assert.equal((await post(system, `/v1/jobs/${results[7]!.id}/cancel`)).status, 200);
      await assertExact(system, 'delayed jobs cancelled');
    });

    it('the worker\'s outcomes: a retry, a dead job, a timeout; a cancel while running; redrives of dead and cancelled jobs', async () => {
      const flaky = await submit(system, { type: 'c.flaky', queue: 'work', backoff: FIXED_10 });
      const fatal = await submit(system, { type: 'c.fatal', queue: 'work' });
      const timeout = await submit(system, { type: 'c.hang', queue: 'work', timeoutMs: 200, maxAttempts: 2, backoff: FIXED_10 });
      const running = await submit(system, { type: 'c.hang', queue: 'work' });
      await wait(flaky, 'done');
      await wait(fatal, 'dead');
      await wait(timeout, 'dead');
      await wait(running, 'running');
      await assertExact(system, 'worker outcomes');
      assert.equal((await post(system, `/v1/jobs/${running}/cancel`)).status, 200, 'cancelled while running');
      await assertExact(system, 'cancelled while running');

      assert.equal((await post(system, `/v1/jobs/${fatal}/redrive`)).status, 200);
      assert.equal((await post(system, `/v1/jobs/${running}/redrive`)).status, 200);
      await wait(fatal, 'dead');
      await wait(running, 'running');
      assert.equal((await post(system, `/v1/jobs/${running}/cancel`)).status, 200);
      assert.equal((await post(system, `/v1/jobs/${flaky}/redrive`)).status, 409, 'a done job is not redriven');
      await assertExact(system, 'redriven');
    });

    it('jobs no worker serves: cancelled while published and while retrying; leases that expire into a retry and into dead', async () => {
      const published = (await system.transitions.submit(spec())).job.id;
      const retrying = (await system.transitions.submit(spec({ backoff: { kind: 'fixed', delayMs: 3_600_000 } }))).job.id;
      const dead = (await system.transitions.submit(spec({ maxAttempts: 1 }))).job.id;
      const retried = (await system.transitions.submit(spec({ maxAttempts: 2 }))).job.id;
      for (const id of [published, retrying, dead, retried]) await wait(id, 'published');
      await assertExact(system, 'published by the relay');
      for (const id of [retrying, dead, retried]) await startGhost(system, id, 200);
      await assertExact(system, 'started by a ghost');
      await wait(retrying, 'retrying');
      await wait(dead, 'dead');
      // Expired into retrying, due again 10 ms later, published again: a second ghost attempt that expires too.
      await wait(retried, 'published');
      await startGhost(system, retried, 200);
      await wait(retried, 'dead');
      await assertExact(system, 'leases expired');
      assert.equal((await post(system, `/v1/jobs/${published}/cancel`)).status, 200, 'cancelled while published');
      assert.equal((await post(system, `/v1/jobs/${retrying}/cancel`)).status, 200, 'cancelled while retrying');
      await assertExact(system, 'cancelled while published and retrying');
      assert.equal((await post(system, `/v1/jobs/${published}/redrive`)).status, 200);
      await wait(published, 'published');
      await assertExact(system, 'a cancelled job redriven');
    });

    it('a limit that refuses a claim changes nothing', async () => {
      const put = await system.app!.inject({ method: 'PUT', url: '/v1/limits/ck', payload: { concurrency: 1 } });
      assert.ok(put.statusCode === 201 || put.statusCode === 200, put.body);
      const first = (await system.transitions.submit(spec({ concurrencyKey: 'ck' }))).job.id;
      const second = (await system.transitions.submit(spec({ concurrencyKey: 'ck' }))).job.id;
      await wait(first, 'published');
      await wait(second, 'published');
      await startGhost(system, first, 60_000);
      await assertExact(system, 'one claim of the key');
      const before = JSON.stringify(await perTenant(system.store));
      const j = (await system.store.getJob(second))!;
      const r = await system.transitions.apply(second, { type: 'STARTED', attempt: j.snapshot.context.attempt + 1, leaseUntil: Date.now() + 60_000, workerId: 'ghost' });
      assert.equal(r.ok ? 'ok' : r.reason, 'throttled');
      assert.equal(JSON.stringify(await perTenant(system.store)), before, 'a refused claim writes no counter');
      for (const id of [first, second]) assert.equal((await post(system, `/v1/jobs/${id}/cancel`)).status, 200);
      await assertExact(system, 'limited jobs cancelled');
    });

    it('workflows: children counted as they start and end; a cancelled instance cancels its child; a deleted instance leaves its children', async () => {
      const done = await system.workflows.start({ tenant: 'default', name: 'c.once', input: null });
      assert.ok(done.ok);
      const held = await system.workflows.start({ tenant: 'default', name: 'c.holding', input: null });
      assert.ok(held.ok);
      const deadline = Date.now() + 20_000;
      while ((await system.workflows.get(done.workflow.id, 'default'))?.state.status === 'active') {
        assert.ok(Date.now() < deadline, 'the instance ends');
        await new Promise((r) => setTimeout(r, 50));
      }
      const childOf = async (id: string) => (await system.store.getWorkflowEvents(id)).flatMap((e) => (e.data as { jobIds?: string[] }).jobIds ?? []);
      const [heldChild] = await childOf(held.workflow.id);
      await wait(heldChild!, 'running');
      await assertExact(system, 'workflow children');
      const cancelled = await system.workflows.cancel(held.workflow.id, 'default', 'enough');
      assert.ok(cancelled.ok);
      await wait(heldChild!, 'cancelled');
      await assertExact(system, 'instance cancelled');
      assert.equal(await del(system, `/v1/workflows/${done.workflow.id}`), 204);
      assert.equal(await del(system, `/v1/workflows/${held.workflow.id}`), 204);
      await assertExact(system, 'instances deleted, children kept');
      for (const id of [...await childOf(done.workflow.id), heldChild!]) await del(system, `/v1/jobs/${id}`);
      await assertExact(system, 'children deleted');
    });

    it('a schedule submits its ticks\' jobs', async () => {
      const r = await post(system, '/v1/schedules', { name: 'every-second', cron: '* * * * * *', type: 'c.ok', queue: 'work' });
      assert.equal(r.status, 201, JSON.stringify(r));
      const deadline = Date.now() + 15_000;
      while ((await system.store.listJobs({ tenant: 'default', queue: 'work', limit: 1000 })).filter((j) => j.idempotencyKey?.startsWith('ats:schedule:every-second:')).length < 2) {
        assert.ok(Date.now() < deadline, 'two ticks submitted');
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(await del(system, '/v1/schedules/every-second'), 204);
      await assertExact(system, 'schedule ticks');
    });

    it('two tenants on one queue and type, and writers racing over the same jobs', async () => {
      const of = (tenant: string) => system.transitions.submit(spec({ tenant, queue: 'manual', runAt: Date.now() + 3_600_000 }));
      const acme = await Promise.all([of('acme'), of('acme'), of('acme')]);
      const globex = await Promise.all([of('globex'), of('globex')]);
      await system.transitions.apply(acme[0]!.job.id, { type: 'CANCEL' });
      await assertExact(system, 'two tenants');
      assert.equal((await system.store.deleteJob(acme[0]!.job.id)).ok, true);
      assert.equal((await system.store.stats('acme')).byState.pending, 2);
      assert.equal((await system.store.stats('globex')).byState.pending, 2);
      await assertExact(system, 'a tenant\'s job deleted');

      // Every job of one (tenant, queue, type) cancelled, then redriven, cancelled again and deleted by racing
      // writers, while more of that type are submitted: the last deletes race the new jobs' first counts.
      const ids = [...acme.slice(1), ...globex].map((r) => r.job.id);
      const racers = (await Promise.all(Array.from({ length: 10 }, () => of('acme')))).map((r) => r.job.id);
      ids.push(...racers);
      await system.transitions.applyMany(ids.map((jobId) => ({ jobId, event: { type: 'CANCEL' as const } })));
      await assertExact(system, 'all cancelled');
      for (let round = 0; round < 3; round++) {
        await Promise.allSettled(ids.flatMap((id) => [
          system.transitions.apply(id, { type: 'REDRIVE' }),
          system.store.deleteJob(id),
          system.transitions.apply(id, { type: 'CANCEL' }),
          system.store.deleteJob(id),
          of('acme'),
        ]));
        await assertExact(system, `race ${round}`);
        const left = await Promise.all(ids.map((id) => system.store.getJob(id)));
        await system.transitions.applyMany(left.filter((j) => j !== null).map((j) => ({ jobId: j.id, event: { type: 'CANCEL' as const } })));
        const more = (await system.store.listJobs({ tenant: 'acme', queue: 'manual', state: 'pending', limit: 100 })).map((j) => j.id);
        await system.transitions.applyMany(more.map((jobId) => ({ jobId, event: { type: 'CANCEL' as const } })));
        ids.splice(0, ids.length, ...left.filter((j) => j !== null).map((j) => j.id), ...more);
      }
      await Promise.all(ids.map((id) => system.store.deleteJob(id)));
      await assertExact(system, 'raced jobs deleted');
    });

    it('deletes of a (tenant, queue, type)\'s last jobs racing its new jobs and redrives; its counter rows go with its last job', async () => {
      const of = () => system.transitions.submit(spec({ tenant: 'globex', queue: 'race', runAt: Date.now() + 3_600_000 }));
      const cancel = (ids: string[]) => system.transitions.applyMany(ids.map((jobId) => ({ jobId, event: { type: 'CANCEL' as const } })));
      for (let round = 0; round < 12; round++) {
        const ids = (await Promise.all([of(), of(), of()])).map((r) => r.job.id);
        await cancel(ids);
        // The deletes find only finished jobs of the key (the locked path), while a redrive and new jobs add live ones.
        await Promise.allSettled([
          ...ids.map((id) => system.store.deleteJob(id)),
          system.transitions.apply(ids[round % 3]!, { type: 'REDRIVE' }),
          of(),
          ...ids.map((id) => system.store.deleteJob(id)),
        ]);
        await assertExact(system, `last jobs raced, round ${round}`);
        const left = (await system.store.listJobs({ tenant: 'globex', queue: 'race', limit: 100 })).map((j) => j.id);
        await cancel(left);
        for (const id of left) assert.equal((await system.store.deleteJob(id)).ok, true);
        assert.deepEqual(await rowsOf(system.store, "SELECT shard, state, n FROM job_counts WHERE tenant = 'globex' AND queue = 'race'"), [], 'no job of the key left, no counter row');
      }
      await assertExact(system, 'last jobs raced');
    });

    it('retention deletes every finished job, a few per transaction', async () => {
      const retention = new Retention({ store: system.store, clock: systemClock, logger: silentLogger }, {
        doneMs: 0, deadMs: 0, auditMs: 3_600_000, batchSize: 3, pollMs: 60_000,
      });
      while ((await retention.runOnce()).more) await assertExact(system, 'retention batch');
      await assertExact(system, 'retention');
      const left = await rowsOf(system.store, "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('done', 'dead', 'cancelled')");
      assert.equal(Number(left[0]!.n), 0);
    });
  });
}

/**
 * A store whose transactions throw just before their commit while `armed`: each write path, failed so,
 * leaves every counter as it was; and a batch that fails midway (a job whose id is taken) likewise.
 */
function faultSuite(name: string, open: (beforeCommit: () => void) => Promise<{ store: JobStore; close(): Promise<void> }>): void {
  it(`${name}: a write that fails before its commit changes no counter`, async () => {
    let armed = false;
    const { store, close } = await open(() => {
      if (armed) throw new Error('injected before commit');
    });
    try {
      await store.migrate();
      const svc = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
      const made = await svc.submitMany([spec({ queue: 'q' }), spec({ queue: 'q', idempotencyKey: 'a' }), spec({ queue: 'q', tenant: 'acme' }), spec({ queue: 'q' })]);
      const [j1, j2, j3, j4] = made.map((r) => r.job.id);
      await svc.applyMany([{ jobId: j1!, event: { type: 'CANCEL' } }, { jobId: j2!, event: { type: 'PUBLISHED', attempt: 1 } }, { jobId: j4!, event: { type: 'CANCEL' } }]);
      const before = JSON.stringify(await perTenant(store));
      const refused = async (what: string, write: () => Promise<unknown>) => {
        armed = true;
        try {
          await assert.rejects(write(), /injected before commit/, what);
        } finally {
          armed = false;
        }
        assert.equal(JSON.stringify(await perTenant(store)), before, `${what}: no counter changed`);
      };
      await refused('a submit', () => svc.submit(spec({ queue: 'q' })));
      await refused('a keyed batch', () => svc.submitMany([spec({ queue: 'q', idempotencyKey: 'a' }), spec({ queue: 'q', idempotencyKey: 'b' }), spec({ queue: 'r' })]));
      await refused('a chain of transitions', () => svc.applyMany([
        { jobId: j2!, event: { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' } },
        { jobId: j2!, event: { type: 'SUCCEEDED', attempt: 1 } },
        { jobId: j3!, event: { type: 'CANCEL' } },
        { jobId: j1!, event: { type: 'REDRIVE' } },
      ]));
      await refused('a delete', () => store.deleteJob(j1!));
      await refused('a retention batch', () => store.purgeJobs('cancelled', Date.now() + 1000, 10));
      // Midway: the second job's id is taken, so its INSERT fails after the first one's went in.
      const collides = submitWriteOf(spec({ queue: 'q', tenant: 'acme' }));
      await assert.rejects(store.insert([submitWriteOf(spec({ queue: 'q' })), { ...collides, job: { ...collides.job, id: j3! } }]));
      assert.equal(JSON.stringify(await perTenant(store)), before, 'a batch failed midway: no counter changed');
      // The same writes, not failed, are counted.
      assert.deepEqual((await store.deleteJob(j1!)).ok, true);
      assert.equal(await store.purgeJobs('cancelled', Date.now() + 1000, 10), 1);
      assert.deepEqual((await verifyCounts(store, TENANTS)).problems, []);
      const counts = await perTenant(store);
      assert.deepEqual(counts.kept, counts.recounted);
    } finally {
      await close();
    }
  });

  it(`${name}: a transaction that loses its race is run again and counts once`, async () => {
    // Each write's first transaction fails as a lost race (a version conflict) after its statements ran: the store runs it again.
    let lose = false;
    const { store, close } = await open(() => {
      if (!lose) return;
      lose = false;
      throw new VersionConflict(null, 'injected lost race');
    });
    try {
      await store.migrate();
      const svc = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
      const raced = async <T>(write: () => Promise<T>): Promise<T> => {
        lose = true;
        const r = await write();
        assert.equal(lose, false, 'the first transaction lost');
        return r;
      };
      const made = await raced(() => svc.submitMany([spec({ queue: 'q' }), spec({ queue: 'q', idempotencyKey: 'a' }), spec({ queue: 'q', tenant: 'acme' })]));
      const [j1, j2, j3] = made.map((r) => r.job.id);
      await raced(() => svc.submit(spec({ queue: 'q', tenant: 'globex' })));
      await raced(() => svc.applyMany([
        { jobId: j1!, event: { type: 'CANCEL' } },
        { jobId: j2!, event: { type: 'PUBLISHED', attempt: 1 } },
        { jobId: j2!, event: { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' } },
        { jobId: j3!, event: { type: 'CANCEL' } },
      ]));
      await raced(() => svc.apply(j2!, { type: 'SUCCEEDED', attempt: 1 }));
      assert.deepEqual((await verifyCounts(store, TENANTS)).problems, []);
      assert.equal((await raced(() => store.deleteJob(j1!))).ok, true);
      assert.equal(await raced(() => store.purgeJobs('cancelled', Date.now() + 1000, 10)), 1);
      assert.equal((await raced(() => svc.apply(j2!, { type: 'REDRIVE' }))).ok, false, 'a done job: nothing to write, nothing lost');
      lose = false;
      assert.deepEqual((await verifyCounts(store, TENANTS)).problems, []);
      const counts = await perTenant(store);
      assert.deepEqual(counts.kept, counts.recounted);
      assert.deepEqual(counts.recounted, ['["default","q","c.ok","done",1]', '["globex","q","c.ok","pending",1]']);
    } finally {
      await close();
    }
  });
}

const submitWriteOf = (s: JobSpec) => submitWrite(s, ulidIds().jobId(), Date.now());

faultSuite('the embedded store', async (beforeCommit) => {
  const store = createSqliteStore({ file: ':memory:', faults: { beforeCommit } });
  return { store, close: () => store.close() };
});

faultSuite('MariaDB', async (beforeCommit) => {
  await requireMysql();
  const db = await createTestDatabase();
  const store = await createMysqlStore({ url: db.url, poolSize: 2, faults: { beforeCommit } });
  return { store, close: async () => { await store.close(); await db.drop(); } };
});

const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function composed(raw: RawConfig): Promise<{ system: System; stop(): Promise<void> }> {
  const system = await compose(compileConfig(raw, { hostname: 'test', pid: process.pid }), { registry: registry(), logger: silentLogger });
  try {
    await system.start();
  } catch (err) {
    await system.stop().catch(() => undefined);
    throw err;
  }
  return { system, stop: () => system.stop() };
}

suite('the embedded store', async (raw) => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-counts-'));
  dirs.push(dir);
  return composed({ ...raw, dataDir: dir });
});

suite('MariaDB', async (raw) => {
  await requireMysql();
  const db = await createTestDatabase();
  try {
    const { system, stop } = await composed({ ...raw, mysqlUrl: db.url });
    return { system, stop: async () => { try { await stop(); } finally { await db.drop(); } } };
  } catch (err) {
    await db.drop();
    throw err;
  }
});
