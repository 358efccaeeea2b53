/**
 * A rolling deploy that adds a job type: the api already accepts it while the
 * only worker running has no handler for it. The job waits (it is not
 * claimed, not failed, and shows as unserved), and once a worker with the
 * handler replaces the old one, it runs. Nothing is lost. On MariaDB + Kafka,
 * with the workers as child processes.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { unserved } from '../../engine/worker-presence.js';
import { PROGRESS_JOB_TYPE } from '../helpers/progress-handlers.js';
import { startRole, waitForReady, type RoleProcess } from '../helpers/processes.js';
import { startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const HANDLERS = fileURLToPath(new URL('../helpers/progress-handlers.ts', import.meta.url));
let t: TestSystem;
const procs: RoleProcess[] = [];

before(async () => {
  // api, relay and timers here; the workers are child processes. A lost dispatch is re-sent after 2 s.
  t = await startTestSystem({ roles: 'api,relay,timers', raw: { publishedTimeoutMs: 2000 } });
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await t?.stop();
});

async function waitFor<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

it('a job whose type only the next version of the workers handles waits, unserved, and runs once they are deployed', { timeout: 180_000 }, async () => {
  const { store, transitions } = t.system;
  // Presence rows carry the database's clock (as every process's leases do).
  const now = () => (store as MysqlStore).dbNow();
  const env = { ...t.env, ATS_PUBLISHED_TIMEOUT_MS: '2000', LOG_LEVEL: 'info' };
  const old = startRole('worker-old', 'worker', env); // the demo handlers only
  procs.push(old);
  await waitForReady(old);
  await waitFor('the old worker to register', async () => ((await store.listWorkers()).some((w) => w.id === 'worker-old') ? true : undefined));

  // The api of the new version accepts the type (submitted here as its route would).
  const { job } = await transitions.submit({
    type: PROGRESS_JOB_TYPE, payload: { reports: [50], ms: 0 }, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 10_000, priority: 0,
  });
  // Long enough for the dispatch to reach the old worker, which skips it; the timers keep it while no live worker can run it.
  await waitFor('the old worker to skip the dispatch', async () => (old.output().includes('dispatch skipped: no handler is registered here') ? true : undefined));
  await sleep(3_000);
  const waiting = await store.getJob(job.id);
  assert.ok(waiting && ['pending', 'published'].includes(waiting.snapshot.value), `the job waits: ${waiting?.snapshot.value}`);
  assert.equal(waiting.snapshot.context.attempt, 0, 'never claimed, so no attempt spent');
  assert.deepEqual((await store.getEvents(job.id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED'], 'not dispatched again while no live worker can run it');
  assert.deepEqual(unserved(await store.jobCounts(), await store.listWorkers(), await now()), [{ type: PROGRESS_JOB_TYPE, queue: 'default', waiting: 1 }]);

  // The deploy: a worker with the handler starts, the old one stops.
  const next = startRole('worker-new', 'worker', { ...env, ATS_HANDLERS: HANDLERS });
  procs.push(next);
  // Ready: it has its signal handler, so the stop below is a graceful one (its row is written before it is ready).
  await waitForReady(next);
  await waitFor('the new worker to register', async () => ((await store.listWorkers()).some((w) => w.id === 'worker-new' && w.types.includes(PROGRESS_JOB_TYPE)) ? true : undefined));
  assert.deepEqual(unserved(await store.jobCounts(), await store.listWorkers(), await now()), [], 'a live worker handles it now');
  assert.equal(await old.stop(), 0);
  assert.ok(!(await store.listWorkers()).some((w) => w.id === 'worker-old'), 'a worker stopped gracefully deletes its row');

  const done = await waitForJob(store, job.id, (j) => j.snapshot.value === 'done', 60_000, 'done');
  assert.deepEqual(done.snapshot.context.result, { reported: 1 });
  const events = await store.getEvents(job.id);
  assert.ok(!events.some((e) => e.type === 'FAILED'), `no attempt failed: ${events.map((e) => e.type).join(',')}`);
  assert.equal(events.filter((e) => e.type === 'STARTED').length, 1);
  assert.ok(events.filter((e) => e.type === 'DISPATCH').length >= 1, 'dispatched again by the timers');
  assert.equal(await next.stop(), 0);
});
