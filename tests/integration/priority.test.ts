/**
 * Priorities order work, on MariaDB and Kafka: a job of a higher priority
 * starts ahead of the lower ones queued before it, and one of a negative
 * priority waits behind them.
 *
 * - Behind a backlog: 10,000 priority-0 jobs are dispatched and held by a
 *   busy worker (its handler slots taken by jobs blocked on a gate, the rest
 *   waiting in Kafka or for a slot); a priority-10 job submitted after them
 *   must start before at least 99% of them once the gate opens.
 * - At a worker's start: 2,000 priority-0 jobs of queue `reports`, one
 *   priority-10 and one priority -5 are all published before any worker
 *   runs; once one starts, the priority-10 job starts before at least 99% of
 *   the priority-0 ones and the priority -5 one after at least 99% of them.
 *   This exercises the lanes of a queue other than `default`
 *   (`ats.dispatch.reports`, `.high`, `.low`), found by a worker serving
 *   every queue.
 *
 * The assertions are on the start order only (the handlers record it as they
 * are called), never on speed.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, it } from 'node:test';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { FAST, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const TYPE = 'test.priority';
/** Handler slots of the worker: few, so nearly all the backlog waits. */
const CONCURRENCY = 8;
/** No dispatch is sent again while the test runs: every dispatch is the relay's one. */
const RAW: RawConfig = { concurrency: CONCURRENCY, publishedTimeoutMs: 600_000 };

/** What the running test must stop, last first; run when it ends (and after all, should it have thrown early). */
const cleanups: Array<() => Promise<void>> = [];
async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!().catch((err) => console.error('cleanup failed', err));
}
afterEach(cleanUp);
after(cleanUp);

const spec = (queue: string, priority: number, i: number): JobSpec => ({
  type: TYPE, payload: { i }, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 300_000, priority,
});

/** Submits the specs in transactions of 1,000 (the bulk path), returning the job ids in order. */
async function submitAll(system: System, specs: readonly JobSpec[]): Promise<string[]> {
  const ids: string[] = [];
  for (let at = 0; at < specs.length; at += 1000) {
    for (const r of await system.transitions.submitMany(specs.slice(at, at + 1000))) {
      assert.ok(r.ok, 'submitted');
      ids.push(r.job.id);
    }
  }
  return ids;
}

/** Jobs of the queue in these states (read from the jobs table). */
async function countIn(system: System, queue: string, states: readonly string[]): Promise<number> {
  const [rows] = await (system.store as MysqlStore).pool.query(
    `SELECT COUNT(*) AS n FROM jobs WHERE queue = ? AND state IN (${states.map(() => '?').join(',')})`, [queue, ...states],
  );
  return Number((rows as Array<{ n: number | string }>)[0]!.n);
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** 1st, 2nd, 3rd, 4th, 11th, 21st… */
const ordinal = (n: number): string => {
  const tens = n % 100, ones = n % 10;
  return `${n}${tens >= 11 && tens <= 13 ? 'th' : ones === 1 ? 'st' : ones === 2 ? 'nd' : ones === 3 ? 'rd' : 'th'}`;
};

/** Dispatches the worker read that wait for a handler slot. */
const waitingForSlot = (system: System): number => system.worker!.slotUsage().waiting;

/** Starts, in order: the first call of each job's handler (a redelivered dispatch is not counted twice). */
class StartOrder {
  private readonly seen = new Set<string>();
  readonly order: string[] = [];
  record(jobId: string): void {
    if (this.seen.has(jobId)) return;
    this.seen.add(jobId);
    this.order.push(jobId);
  }
  has(jobId: string): boolean {
    return this.seen.has(jobId);
  }
  /** How many of `among` started before `jobId` (which must have started). */
  before(jobId: string, among: ReadonlySet<string>): number {
    const at = this.order.indexOf(jobId);
    assert.ok(at >= 0, `${jobId} started`);
    return this.order.slice(0, at).filter((id) => among.has(id)).length;
  }
}

it('a priority-10 job submitted behind 10,000 queued priority-0 jobs of its queue starts before at least 99% of them', { timeout: 120_000 }, async () => {
  const BACKLOG = 10_000;
  const starts = new StartOrder();
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => { openGate = resolve; });
  const registry = new HandlerRegistry().register(TYPE, async (_payload, ctx) => {
    starts.record(ctx.jobId);
    await gate;
    return null;
  });
  const t: TestSystem = await startTestSystem({ registry, raw: RAW });
  cleanups.push(async () => { openGate(); await t.stop(); });
  const { system } = t;

  const low = new Set(await submitAll(system, Array.from({ length: BACKLOG }, (_, i) => spec('default', 0, i))));
  // Every one dispatched: the worker runs CONCURRENCY of them (blocked on the gate), the rest wait for a slot or in Kafka.
  await until('the backlog to be dispatched', async () => (await countIn(system, 'default', ['published', 'running'])) === BACKLOG, 60_000, 200);
  await until('the worker to run a full set of slots', () => starts.order.length === CONCURRENCY, 10_000);
  const waitingBefore = waitingForSlot(system);

  const [urgent] = await submitAll(system, [spec('default', 10, BACKLOG)]);
  await waitForJob(system.store, urgent!, (j) => ['published', 'running'].includes(j.snapshot.value), 30_000, 'published');
  // The high lane's consumer fetched it once it waits for a slot beside the normal lane's batches.
  await until('the priority-10 dispatch to wait for a slot', () => waitingForSlot(system) > waitingBefore, 15_000);
  assert.equal(starts.order.length, CONCURRENCY, 'nothing else started while the slots were taken');

  openGate();
  await until('the priority-10 job to start', () => starts.has(urgent!), 30_000);
  const ahead = starts.before(urgent!, low);
  const rank = ahead + 1;
  console.log(`priority 10 behind ${BACKLOG} priority-0 jobs of queue default: started ${ordinal(rank)} of ${BACKLOG + 1} `
    + `(after ${ahead} priority-0 jobs, ${CONCURRENCY} of them already running; ${waitingBefore} batches waiting for a slot)`);
  assert.ok(BACKLOG - ahead >= 0.99 * BACKLOG, `the priority-10 job started after ${ahead} of the ${BACKLOG} priority-0 jobs`);
});

it('jobs published before any worker runs start by priority once one starts: 10 ahead of 0, -5 behind (queue reports)', { timeout: 120_000 }, async () => {
  const JOBS = 2000;
  const QUEUE = 'reports';
  const starts = new StartOrder();
  const registry = new HandlerRegistry().register(TYPE, async (_payload, ctx) => {
    starts.record(ctx.jobId);
    return null;
  });
  // api, relay and timers only: the dispatches wait in Kafka.
  const t: TestSystem = await startTestSystem({ roles: 'api,relay,timers', registry, raw: RAW });
  cleanups.push(() => t.stop());
  const { system } = t;

  const normal = new Set(await submitAll(system, Array.from({ length: JOBS }, (_, i) => spec(QUEUE, 0, i))));
  const [urgent] = await submitAll(system, [spec(QUEUE, 10, JOBS)]);
  const [deferred] = await submitAll(system, [spec(QUEUE, -5, JOBS + 1)]);
  await until('every job to be published', async () => (await countIn(system, QUEUE, ['published'])) === JOBS + 2, 60_000, 200);

  // A worker serving every queue, on the same database and topics.
  const raw: RawConfig = {
    ...FAST, ...RAW, mysqlUrl: t.mysqlUrl, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: t.prefix,
    roles: 'worker', workerGroup: `${t.prefix}workers`, workerId: `priority-${process.pid}`,
  };
  const worker = await compose(compileConfig(raw, { hostname: 'test', pid: process.pid }), { registry, logger: silentLogger });
  cleanups.push(() => worker.stop());
  await worker.start();

  await until('every job to start', () => starts.order.length === JOBS + 2, 60_000);
  const urgentAhead = starts.before(urgent!, normal);
  const deferredAhead = starts.before(deferred!, normal);
  console.log(`published before the worker started, queue ${QUEUE}: priority 10 started ${ordinal(starts.order.indexOf(urgent!) + 1)} of ${JOBS + 2} `
    + `(after ${urgentAhead} of ${JOBS} priority-0 jobs); priority -5 started ${ordinal(starts.order.indexOf(deferred!) + 1)} `
    + `(after ${deferredAhead} of ${JOBS} priority-0 jobs)`);
  assert.ok(JOBS - urgentAhead >= 0.99 * JOBS, `the priority-10 job started after ${urgentAhead} of the ${JOBS} priority-0 jobs`);
  assert.ok(deferredAhead >= 0.99 * JOBS, `the priority -5 job started after only ${deferredAhead} of the ${JOBS} priority-0 jobs`);
});
