/**
 * Queue routing on MariaDB + Kafka: two workers serving different queues
 * (email, reports) each run only the jobs of their own queue, every band of
 * it; the registry shows each worker's queues; and jobs of a queue no live
 * worker serves wait, listed as unserved in `/v1/stats`, not failed or
 * claimed by a worker of another queue; jobs of a queue whose workers all
 * stopped are not dispatched again while none is up, nor those whose
 * dispatches wait unread in Kafka behind a live worker that reads nothing;
 * each runs once a worker reads its lane.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { FAST, isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const TYPE = 'test.queued';
const PUBLISHED_TIMEOUT_MS = 1000;
const registry = () => new HandlerRegistry().register(TYPE, async (_p, ctx) => ({ queue: ctx.queue }));

let t: TestSystem;
const workers: System[] = [];

/** A worker-only process's roles, in this process, on the same database and topics, serving `queues`. */
async function startWorker(workerId: string, queues: string): Promise<System> {
  const config = compileConfig({
    ...FAST, mysqlUrl: t.mysqlUrl, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: t.prefix,
    roles: 'worker', workerGroup: `${t.prefix}workers`, workerId, queues, advisor: 'off',
  }, { hostname: 'test', pid: process.pid });
  const system = await compose(config, { registry: registry(), logger: silentLogger });
  workers.push(system);
  await system.start();
  return system;
}

before(async () => {
  // api, relay and timers here, with no worker: only the workers below run jobs. A dispatch not started in 1 s is looked at.
  t = await startTestSystem({ roles: 'api,relay,timers', registry: registry(), raw: { advisor: 'off', publishedTimeoutMs: PUBLISHED_TIMEOUT_MS } });
});
after(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await t?.stop();
});

const spec = (queue: string, priority: number): JobSpec => ({
  type: TYPE, payload: {}, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 10_000, priority,
});

it('each job runs on a worker serving its queue; a queue no live worker serves waits, shown as unserved', { timeout: 60_000 }, async () => {
  const { store, transitions, app } = t.system;
  await Promise.all([startWorker('w-email', 'email'), startWorker('w-reports', 'reports')]);

  const served = { email: 'w-email', reports: 'w-reports' } as const;
  const jobs: Array<{ id: string; queue: keyof typeof served }> = [];
  for (const queue of ['email', 'reports'] as const) {
    for (const priority of [0, 0, 5, -5]) jobs.push({ id: (await transitions.submit(spec(queue, priority))).job.id, queue });
  }
  const nobody = [(await transitions.submit(spec('nobody', 0))).job.id, (await transitions.submit(spec('nobody', 3))).job.id];

  for (const { id, queue } of jobs) {
    const done = await waitForJob(store, id, isState('done'), 30_000, `done (queue ${queue})`);
    assert.deepEqual(done.snapshot.context.result, { queue });
    const started = (await store.getEvents(id)).filter((e) => e.type === 'STARTED');
    assert.deepEqual(started.map((e) => (e.data as { workerId?: string }).workerId), [served[queue]], `job ${id} of queue ${queue} started by its queue's worker`);
  }
  assert.deepEqual(workers.map((w) => w.worker?.counters.claimed), [4, 4], 'each worker claimed its own four jobs');
  assert.deepEqual(workers.map((w) => w.worker?.counters.skipped), [0, 0]);

  assert.ok(app, 'the api role runs here');
  const list = await app.inject({ method: 'GET', url: '/v1/workers' });
  assert.equal(list.statusCode, 200, list.body);
  const views = (list.json() as { workers: Array<{ id: string; queues: string[]; types: string[]; live: boolean }> }).workers;
  assert.deepEqual(
    views.map(({ id, queues, types, live }) => ({ id, queues, types, live })),
    [
      { id: 'w-email', queues: ['email'], types: [TYPE], live: true },
      { id: 'w-reports', queues: ['reports'], types: [TYPE], live: true },
    ],
  );

  // Both workers handle the type, but neither serves queue "nobody".
  const stats = await app.inject({ method: 'GET', url: '/v1/stats' });
  assert.equal(stats.statusCode, 200, stats.body);
  assert.deepEqual((stats.json() as { unserved?: unknown }).unserved, [{ type: TYPE, queue: 'nobody', waiting: 2 }]);

  // Still waiting a while later: dispatched on their lanes, never claimed, never failed.
  await sleep(1_000);
  for (const id of nobody) {
    const j = await store.getJob(id);
    assert.ok(j && ['pending', 'published'].includes(j.snapshot.value), `a job of queue nobody waits: ${j?.snapshot.value}`);
    assert.equal(j.snapshot.context.attempt, 0, 'never claimed');
    assert.ok(!(await store.getEvents(id)).some((e) => e.type === 'STARTED' || e.type === 'FAILED'));
  }
});

/** A worker of `queue` reads its lanes (its group commits there: a job of each band runs), then stops. */
async function lanesReadThenLeft(queue: string): Promise<void> {
  const { store, transitions } = t.system;
  const first = await startWorker(`w-${queue}-1`, queue);
  const warm = [(await transitions.submit(spec(queue, 0))).job.id, (await transitions.submit(spec(queue, -1))).job.id];
  for (const id of warm) await waitForJob(store, id, isState('done'), 30_000, 'done while its worker runs');
  await first.stop();
}

it('jobs of a queue whose workers are all gone are not dispatched again while none is up; a worker that comes runs each once', { timeout: 60_000 }, async () => {
  const { store, transitions, timers } = t.system;
  await lanesReadThenLeft('later');

  const ids = [(await transitions.submit(spec('later', 0))).job.id, (await transitions.submit(spec('later', -1))).job.id];
  await sleep(4 * PUBLISHED_TIMEOUT_MS);
  for (const id of ids) {
    assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED'], `job ${id}: one dispatch, queued in its lane`);
  }
  assert.ok(timers!.counters.unserved >= 2, 'kept by the timers: no live worker serves the queue');

  await startWorker('w-later-2', 'later');
  for (const id of ids) {
    await waitForJob(store, id, isState('done'), 30_000, 'done once a worker serves its queue again');
    // A worker slow to join its group (a loaded machine) may be live for a while before it reads the
    // dispatch: the timers then dispatch the job again, as they should once a live worker serves it.
    // Run once all the same.
    const types = (await store.getEvents(id)).map((e) => e.type);
    assert.deepEqual(types.filter((type) => type !== 'DISPATCH'), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED']);
    assert.ok(types.filter((type) => type === 'DISPATCH').length <= 1, `job ${id}: dispatched again at most once after the worker came: ${types.join(', ')}`);
  }
});

it('jobs whose dispatches wait unread behind a live worker that reads nothing are not dispatched again; read, each runs once', { timeout: 60_000 }, async () => {
  const { store, transitions, timers } = t.system;
  await lanesReadThenLeft('stuck');
  // A worker of the queue is live (its presence row is fresh, on the database's clock, as every process's) and reads nothing: a stuck process.
  const stuck = async (): Promise<void> => {
    const now = await (store as MysqlStore).dbNow();
    await store.upsertWorker({ id: 'w-stuck-live', host: 'test', pid: 1, queues: ['stuck'], types: [TYPE], concurrency: 1, startedAt: now, lastSeenAt: now });
  };
  await stuck();
  const beat = setInterval(() => void stuck().catch(() => undefined), 200);
  try {
    const queued = timers!.counters.queued;
    const ids = [(await transitions.submit(spec('stuck', 0))).job.id, (await transitions.submit(spec('stuck', -1))).job.id];
    await sleep(4 * PUBLISHED_TIMEOUT_MS);
    for (const id of ids) {
      assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED'], `job ${id}: one dispatch, queued in its lane`);
    }
    // Kept because the log says their dispatches wait unread (a queue no live worker served would count as unserved).
    assert.ok(timers!.counters.queued - queued >= 2, 'kept by the timers: the log says the dispatches wait unread');

    await startWorker('w-stuck-2', 'stuck');
    for (const id of ids) {
      await waitForJob(store, id, isState('done'), 30_000, 'done once a worker reads its lane');
      assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED']);
    }
  } finally {
    clearInterval(beat);
    await store.deleteWorker('w-stuck-live');
  }
});
