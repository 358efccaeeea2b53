/**
 * Concurrency and rate limits across three worker processes on MariaDB and
 * Kafka (docs/limits.md): a key's observed concurrency never passes its
 * limit while unlimited jobs go on past the limited ones, a rate spaces the
 * key's starts whichever worker claims them, a paused key (concurrency 0)
 * starts nothing until raised, and a SIGKILLed worker's slot frees once its
 * lease is over.
 *
 * The api, relay and timers run in this process; the workers are child
 * processes with the handler of tests/helpers/limit-handlers.ts, which counts
 * the handlers of a key running at once in the database (a gauge moved by
 * one statement at a time, so no clock is compared).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import type { JobEventRecord, JobSpec } from '../../engine/ports.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { CREATE_LIMIT_TABLES, LIMITED_JOB_TYPE, type LimitedJob } from '../helpers/limit-handlers.js';
import { startRole, waitForReady, type RoleProcess } from '../helpers/processes.js';
import { isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const HANDLERS = fileURLToPath(new URL('../helpers/limit-handlers.ts', import.meta.url));
const WORKERS = ['worker-a', 'worker-b', 'worker-c'];

let t: TestSystem;
const procs: RoleProcess[] = [];

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: LIMITED_JOB_TYPE, payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...o,
});
const limited = (key: string, payload: LimitedJob): JobSpec => spec({ concurrencyKey: key, payload });

const pool = () => (t.system.store as MysqlStore).pool;
async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const [rows] = await pool().query(sql, params);
  return rows as T[];
}

async function waitFor<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; workers: ${procs.map((p) => `${p.name}: ${p.output().slice(-2000)}`).join('\n')}`);
    await sleep(50);
  }
}

async function submit(specs: JobSpec[]): Promise<string[]> {
  const results = await t.system.transitions.submitMany(specs);
  return results.map((r) => {
    assert.ok(r.ok);
    return r.job.id;
  });
}

/** Waits until every job is in a final state; returns the states that are not `done`. */
async function waitAllFinal(ids: string[], timeoutMs = 60_000): Promise<Map<string, string>> {
  return waitFor(`${ids.length} jobs to finish`, async () => {
    const rows = await query<{ id: string; state: string }>(`SELECT id, state FROM jobs WHERE id IN (${ids.map(() => '?').join(',')})`, ids);
    if (rows.some((r) => !['done', 'failed', 'cancelled'].includes(r.state))) return undefined;
    return new Map(rows.filter((r) => r.state !== 'done').map((r) => [r.id, r.state]));
  }, timeoutMs);
}

const eventsOf = (ids: string[]): Promise<JobEventRecord[][]> => Promise.all(ids.map((id) => t.system.store.getEvents(id)));
const started = (events: JobEventRecord[]) => events.filter((e) => e.type === 'STARTED').map((e) => e.data as { at: number; attempt: number; workerId: string; leaseUntil: number });

/** The most half-open intervals [start, end) that overlap at one instant. */
function maxOverlap(intervals: Array<[number, number]>): number {
  // At equal times an end comes before a start: one attempt handing over to the next is not two at once.
  const edges = intervals.flatMap(([s, e]) => [[s, 1], [e, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, (now += d));
  return most;
}

const gauge = async (name: string) => (await query<{ running: number; peak: number }>('SELECT running, peak FROM limit_gauges WHERE gauge = ?', [name]))[0];

before(async () => {
  // A lost dispatch (one a dead worker held back) is sent again after 5 s.
  t = await startTestSystem({ roles: 'api,relay,timers', raw: { publishedTimeoutMs: 5000 } });
  for (const sql of CREATE_LIMIT_TABLES) await pool().query(sql);
  // Short leases (t.env: ATS_LEASE_MS=2000, ATS_HEARTBEAT_MS=500): a dead worker's slot frees within 2 s.
  const env: Record<string, string> = { ...t.env, ATS_HANDLERS: HANDLERS, ATS_PUBLISHED_TIMEOUT_MS: '5000', LOG_LEVEL: 'info' };
  assert.equal(env.ATS_LEASE_MS, '2000');
  assert.equal(env.ATS_HEARTBEAT_MS, '500');
  for (const name of WORKERS) procs.push(startRole(name, 'worker', env));
  await Promise.all(procs.map((p) => waitForReady(p)));
  // Each lane's consumer group holds the three workers before any job is sent (no rebalance mid-test).
  const admin = new Kafka({ clientId: 'ats-test-limits', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await waitFor('the three workers to join every lane\'s group', async () => {
      // The workers' lane groups (the timers role here has its own, `ats-workflows`, with one member).
      const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${t.prefix}${t.prefix}workers`));
      if (ids.length < 3) return undefined;
      const { groups } = await admin.describeGroups(ids);
      return groups.every((g) => g.state === 'Stable' && g.members.length === WORKERS.length) ? true : undefined;
    });
  } finally {
    await admin.disconnect();
  }
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await t?.stop();
});

it('three workers never run more attempts of a key at once than its limit, and unlimited jobs are not held back behind it', { timeout: 60_000 }, async () => {
  const { store } = t.system;
  await store.putLimit('smtp', { concurrency: 3, rate: null }, Date.now());
  const smtp = await submit(Array.from({ length: 60 }, () => limited('smtp', { gauge: 'smtp', ms: 100 })));
  // Submitted after the limited ones: in each partition they come behind them.
  const free = await submit(Array.from({ length: 300 }, () => spec({ type: 'demo.echo', payload: { n: 1 } })));

  // The moment every unlimited job is done: how many limited handlers had started by then.
  const startedThen = await waitFor('the unlimited jobs to be done', async () => {
    const [row] = await query<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'done' AND type = 'demo.echo'`);
    if (Number(row!.n) < free.length) return undefined;
    const [runs] = await query<{ n: number }>(`SELECT COUNT(*) AS n FROM limit_runs WHERE gauge = 'smtp'`);
    return Number(runs!.n);
  });
  console.log(`unlimited jobs all done while ${smtp.length - startedThen} of ${smtp.length} limited jobs had not started`);
  assert.ok(startedThen < smtp.length, 'the 300 unlimited jobs finished before the last limited job started: the waiting ones did not hold them back');

  assert.deepEqual([...(await waitAllFinal([...smtp, ...free]))], [], 'every job done');
  const smtpEvents = await eventsOf(smtp);
  for (const events of smtpEvents) {
    assert.deepEqual(started(events).map((s) => s.attempt), [1], `one attempt, the first, started: ${events.map((e) => e.type)}`);
    assert.ok(!events.some((e) => e.type === 'FAILED' || e.type === 'LEASE_EXPIRED'), 'no attempt failed or lost its lease while waiting');
  }
  const done = await Promise.all(smtp.map((id) => store.getJob(id)));
  assert.ok(done.every((j) => j!.snapshot.context.attempt === 1), 'no attempt spent waiting');

  const g = await gauge('smtp');
  assert.equal(g?.running, 0);
  const runs = await query<{ worker: string; started_at: number; ended_at: number }>(`SELECT worker, started_at, ended_at FROM limit_runs WHERE gauge = 'smtp'`);
  assert.equal(runs.length, smtp.length, 'each limited job ran its handler once');
  const overlap = maxOverlap(runs.map((r) => [Number(r.started_at), Number(r.ended_at)]));
  console.log(`observed max concurrency of smtp: ${g!.peak} of limit 3 (from the handlers' start and end times: ${overlap})`);
  assert.ok(g!.peak <= 3, `at most 3 at once, observed ${g!.peak}`);
  assert.ok(overlap <= 3, `at most 3 at once by the handlers' times, observed ${overlap}`);
  assert.ok(g!.peak >= 2, `the limit was reached for the test to mean something: observed ${g!.peak}`);

  const first = Math.min(...runs.map((r) => Number(r.started_at)));
  const last = Math.max(...runs.map((r) => Number(r.ended_at)));
  const busy = runs.reduce((n, r) => n + Number(r.ended_at) - Number(r.started_at), 0);
  console.log(`the limited handlers ran from first start to last end in ${last - first} ms: the 3 slots were busy ${Math.round((100 * busy) / (3 * (last - first)))}% of it`);
  const limitedWorkers = new Set(runs.map((r) => r.worker));
  const freeWorkers = new Set((await eventsOf(free.slice(0, 60))).flatMap((e) => started(e).map((s) => s.workerId)));
  console.log(`limited jobs ran on ${[...limitedWorkers].sort().join(', ')}; unlimited on ${[...freeWorkers].sort().join(', ')}`);
  assert.ok(limitedWorkers.size > 1, 'the limited jobs ran on more than one worker');
  assert.ok(freeWorkers.size > 1, 'the unlimited jobs ran on more than one worker');
});

it('a rate limit spaces the starts of a key across three workers: never more than max in an interval', { timeout: 60_000 }, async () => {
  await t.system.store.putLimit('rated', { concurrency: null, rate: { max: 5, intervalMs: 1000 } }, Date.now());
  const ids = await submit(Array.from({ length: 15 }, () => limited('rated', { gauge: 'rated', ms: 10 })));
  assert.deepEqual([...(await waitAllFinal(ids))], [], 'every job done');
  const starts = (await eventsOf(ids)).map((events) => {
    const s = started(events);
    assert.equal(s.length, 1, 'one attempt each');
    return s[0]!;
  });
  const times = starts.map((s) => s.at).sort((a, b) => a - b);
  const gaps = times.slice(1).map((at, i) => at - times[i]!);
  console.log(`rate 5/1s: starts ${Math.min(...gaps)} ms apart at least (${gaps.join(', ')}), on ${new Set(starts.map((s) => s.workerId)).size} workers`);
  // A start's `at` is the time its claim was admitted at, in the store's terms (the rate's state is set from it): exact, whichever worker's clock.
  for (const [i, gap] of gaps.entries()) assert.ok(gap >= 200, `starts ${i} and ${i + 1} only ${gap} ms apart`);
  for (let i = 0; i + 5 < times.length; i++) assert.ok(times[i + 5]! - times[i]! >= 1000, `6 starts within 1 s from start ${i}`);
  assert.ok(new Set(starts.map((s) => s.workerId)).size > 1, 'claimed by more than one worker');
});

it('a paused key (concurrency 0) starts none of its jobs on any worker, past the published timeout, while others run; raised, they run on their first attempt', { timeout: 60_000 }, async () => {
  const { store } = t.system;
  await store.putLimit('paused', { concurrency: 0, rate: null }, Date.now());
  const held = await submit(Array.from({ length: 9 }, () => limited('paused', { gauge: 'paused', ms: 20 })));
  const free = await submit(Array.from({ length: 30 }, () => spec({ type: 'demo.echo', payload: { n: 1 } })));
  assert.deepEqual([...(await waitAllFinal(free))], [], 'the others run meanwhile');
  const dispatches = async () => (await eventsOf(held)).map((events) => events.filter((e) => e.type === 'DISPATCH').length);
  const dispatchedBefore = await dispatches();
  // Longer than the published timeout (5 s): the workers keep what they hold from the timers' re-dispatch.
  await sleep(6000);
  assert.deepEqual(await dispatches(), dispatchedBefore, 'no job dispatched again meanwhile');
  const runs = await query<{ n: number }>(`SELECT COUNT(*) AS n FROM limit_runs WHERE gauge = 'paused'`);
  assert.equal(Number(runs[0]!.n), 0, 'none of the paused key\'s jobs started');
  for (const id of held) {
    const job = await store.getJob(id);
    assert.equal(job!.snapshot.value, 'published');
    assert.equal(job!.snapshot.context.attempt, 0, 'no attempt spent');
  }
  await store.putLimit('paused', { concurrency: 2, rate: null }, Date.now());
  assert.deepEqual([...(await waitAllFinal(held))], [], 'every held job done once raised');
  for (const events of await eventsOf(held)) assert.deepEqual(started(events).map((s) => s.attempt), [1]);
  assert.ok((await gauge('paused'))!.peak <= 2, 'the raised limit holds');
});

it('a worker SIGKILLed while running the only slot of a key frees it when its lease ends, and another worker runs the next job', { timeout: 60_000 }, async () => {
  const { store } = t.system;
  await store.putLimit('solo', { concurrency: 1, rate: null }, Date.now());
  const [blocker] = await submit([limited('solo', { gauge: 'solo-blocker', ms: 0, block: true })]);
  const running = await waitForJob(store, blocker!, isState('running'), 30_000, 'running');
  const victim = procs.find((p) => p.name === running.snapshot.context.workerId);
  assert.ok(victim, `ran on one of the workers: ${running.snapshot.context.workerId}`);

  // Several waiting jobs, so some wait in a worker that survives.
  const waiting = await submit(Array.from({ length: 6 }, () => limited('solo', { gauge: 'solo', ms: 100 })));
  // Its heartbeats keep the lease: none starts meanwhile (a lease is 2 s, this waits longer).
  await sleep(3000);
  const early = await query<{ n: number }>(`SELECT COUNT(*) AS n FROM limit_runs WHERE gauge = 'solo'`);
  assert.equal(Number(early[0]!.n), 0, 'no waiting job started while the slot\'s holder was alive');
  assert.equal((await store.getJob(blocker!))!.snapshot.value, 'running');

  await victim.kill();
  // The lease as the dead worker's last heartbeat left it.
  const dead = await store.getJob(blocker!);
  const leaseUntil = dead!.snapshot.context.leaseUntil!;
  assert.equal(dead!.snapshot.value, 'running');

  assert.deepEqual([...(await waitAllFinal(waiting))], [], 'every waiting job done');
  const starts = (await eventsOf(waiting)).map((events) => started(events)[0]!).sort((a, b) => a.at - b.at);
  const expired = (await store.getEvents(blocker!)).find((e) => e.type === 'LEASE_EXPIRED');
  console.log(`solo: the dead worker's lease ended at ${leaseUntil}; the first waiting job started ${starts[0]!.at - leaseUntil} ms after,`
    + ` on ${starts[0]!.workerId}; the timers recorded LEASE_EXPIRED ${expired ? `${expired.at - leaseUntil} ms after` : 'not yet'}`);
  for (const s of starts) {
    // The claim's `at` is the time it was admitted at, compared with the lease in the store.
    assert.ok(s.at >= leaseUntil, `a waiting job started at ${s.at}, before the dead worker's lease ended at ${leaseUntil}`);
    assert.notEqual(s.workerId, victim.name);
    assert.equal(s.attempt, 1);
  }
  assert.equal((await gauge('solo'))!.peak, 1, 'one at a time after the slot freed');
  const runs = await query<{ started_at: number; ended_at: number }>(`SELECT started_at, ended_at FROM limit_runs WHERE gauge = 'solo'`);
  assert.equal(maxOverlap(runs.map((r) => [Number(r.started_at), Number(r.ended_at)])), 1);
  const dead2 = await waitForJob(store, blocker!, isState('dead'), 30_000, 'dead (its lease expired, one attempt allowed)');
  assert.equal(dead2.snapshot.context.attempt, 1);
});
