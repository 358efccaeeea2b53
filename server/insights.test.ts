/**
 * The advisor over HTTP, on SQLite and on MariaDB: `GET /v1/insights` shows
 * what it learned from the jobs' events, `GET /v1/jobs/:id` carries the ETA
 * of a live job (the waiting jobs ahead of it counted by the store), and an
 * app without an advisor answers `off` and no ETA.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { Advisor } from '../engine/advisor/advisor.js';
import { silentLogger } from '../engine/logger.js';
import type { Insights } from '../engine/advisor/types.js';
import type { JobSpec, WorkerRecord } from '../engine/ports.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp, testClock, type TestApp } from '../tests/helpers/app.js';
import { INSIGHTS_CACHE_MS } from './routes/insights.js';
import { ETA_WORKERS_CACHE_MS } from './routes/jobs-read.js';
import type { AppDeps } from './deps.js';

const mysqlReady = await requireMysql();
const spec = (queue: string): JobSpec => ({ type: 'demo.echo', payload: {}, queue, maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 });

/** A worker's presence row, seen an hour ahead of now (live for the whole test). */
const worker = (id: string, types: string[], queues: string[]): WorkerRecord => ({
  id, host: 'test', pid: 1, queues, types, concurrency: 1, startedAt: Date.now(), lastSeenAt: Date.now() + 3_600_000,
});

const backends: Array<[string, (o: Partial<AppDeps>) => Promise<TestApp>, string | false]> = [
  ['SQLite', (o) => startSqliteTestApp(o), false],
  ['MariaDB', (o) => startTestApp(o), mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
];

for (const [name, start, skip] of backends) {
  describe(`the advisor's insights and ETAs over HTTP on ${name}`, { skip }, () => {
    let t: TestApp;
    let advisor: Advisor;
    /** How many times the app read the worker registry. */
    let registryReads = 0;
    before(async () => {
      // The app is built before the store exists for the advisor: it reaches the advisor (and the registry) through
      // this late binding.
      t = await start({
        advisor: { eta: (job, s) => advisor.eta(job, s), insights: () => advisor.insights() },
        workers: { listWorkers: () => ((registryReads += 1), t.store.listWorkers()) },
      });
      advisor = new Advisor(
        { store: t.store, clock: t.clock, logger: silentLogger },
        { mode: 'advise', pollMs: 1000, historyEvents: 100_000, model: { minRunSamples: 5 } },
      );
      // A live worker runs demo.echo in every queue (seen an hour ahead: live for the whole test).
      await t.store.upsertWorker(worker('w-echo', ['demo.echo'], ['*']));
    });
    after(async () => {
      await t?.close();
    });
    /** The app's jobs waiting (pending or published), of every queue. */
    const waitingJobs = async () =>
      (await t.store.listJobs({ state: 'pending', limit: 1000 })).length + (await t.store.listJobs({ state: 'published', limit: 1000 })).length;

    test('GET /v1/insights and the ETA of a waiting job', async () => {
      for (let i = 0; i < 6; i++) {
        const s = await t.transitions.submit(spec('q-eta'));
        assert.ok(s.ok);
        assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
        assert.ok((await t.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      }
      const waiting = [];
      for (let i = 0; i < 3; i++) waiting.push((await t.transitions.submit(spec('q-eta'))).job);
      await t.transitions.submit(spec('q-elsewhere'));
      await advisor.init();
      await advisor.catchUp();

      const insights = await t.app.inject({ method: 'GET', url: '/v1/insights' });
      assert.equal(insights.statusCode, 200);
      const body = insights.json() as { mode: string; events: number; types: Array<{ type: string; queue: string; attempts: number; runMs: { count: number } | null }> };
      assert.equal(body.mode, 'advise');
      assert.equal(body.events, await t.store.lastEventId());
      const echo = body.types.find((x) => x.type === 'demo.echo' && x.queue === 'q-eta');
      assert.equal(echo?.attempts, 6);
      assert.equal(echo?.runMs?.count, 6);

      const last = await t.app.inject({ method: 'GET', url: `/v1/jobs/${waiting[2]!.id}` });
      assert.equal(last.statusCode, 200);
      const eta = (last.json() as { eta: { start: string; finish: string; basis: { ahead: number }; lowerBound?: boolean } | null }).eta;
      assert.ok(eta, 'a waiting job of a type with history has an ETA');
      assert.equal(eta.basis.ahead, 2, 'two jobs of its queue wait ahead of it; the other queue\'s job does not count');
      assert.equal(eta.lowerBound, false, 'every job ahead was counted');
      assert.ok(Date.parse(eta.finish) >= Date.parse(eta.start));

      const doneId = (await t.store.listJobs({ state: 'done', limit: 1 }))[0]!.id;
      assert.equal((await t.app.inject({ method: 'GET', url: `/v1/jobs/${doneId}` })).json().eta, null, 'no ETA for a finished job');
    });

    test('a job due at the very end of the year 9999 answers 200 without an ETA, which would end after it', async () => {
      for (let i = 0; i < 6; i++) {
        const s = await t.transitions.submit(spec('q-far'));
        assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
        await new Promise((r) => setTimeout(r, 5)); // a run time above 0
        assert.ok((await t.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      }
      const last = '9999-12-31T23:59:59.999Z';
      const far = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: 'q-far', runAt: last } });
      assert.equal(far.statusCode, 201, far.body);
      const near = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: 'q-far', runAt: '9999-12-30T00:00:00.000Z' } });
      await advisor.init();
      await advisor.catchUp();
      const got = await t.app.inject({ url: `/v1/jobs/${(far.json() as { id: string }).id}` });
      assert.equal(got.statusCode, 200, got.body);
      const view = got.json() as { runAt: string; eta: unknown };
      assert.equal(view.runAt, last);
      assert.equal(view.eta, null);
      const nearEta = (await t.app.inject({ url: `/v1/jobs/${(near.json() as { id: string }).id}` })).json().eta as { start: string } | null;
      assert.equal(nearEta?.start.slice(0, 10), '9999-12-30', 'a job due a day earlier has its ETA');
    });

    test('the insights read each pair\'s handler timeout by its newest job\'s id: no list of the jobs, which scans them', async () => {
      await t.transitions.submit({ ...spec('q-timeout'), timeoutMs: 4_000 });
      await t.transitions.submit({ ...spec('q-timeout'), timeoutMs: 6_000 });
      const reads: string[] = [];
      const watched = new Proxy(t.store, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            reads.push(String(prop));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const a = new Advisor({ store: watched, clock: t.clock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000 });
      await a.init();
      await a.catchUp();
      reads.length = 0;
      const { types } = await a.insights();
      assert.equal(types.find((x) => x.queue === 'q-timeout')?.timeoutMs, 6_000, 'the newest job\'s');
      assert.ok(types.every((x) => x.timeoutMs !== null), 'every pair\'s newest job is read');
      assert.deepEqual(reads, types.map(() => 'getJob'), 'one read by primary key per pair');
    });

    test('the store counts the waiting jobs ahead among at most `maxRead` it reads, and says whether it read them all', async () => {
      const now = t.clock.now();
      const earlier = await waitingJobs(); // left waiting by the tests before: all created before these
      const last = (await t.transitions.submit(spec('q-limit'))).job;
      for (let i = 0; i < 3; i++) await t.transitions.submit(spec('q-limit'));
      const newest = (await t.transitions.submit(spec('q-limit'))).job;
      const all = earlier + 5;
      assert.deepEqual(await t.store.countWaitingAhead('q-limit', last.id, 0, all + 1, now), { ahead: 0, complete: true });
      assert.deepEqual(await t.store.countWaitingAhead('q-limit', newest.id, 0, all + 1, now), { ahead: 4, complete: true });
      assert.deepEqual(await t.store.countWaitingAhead('q-limit', newest.id, 0, earlier + 2, now), { ahead: 2, complete: false });
    });

    test('the jobs of other queues waiting ahead count against `maxRead`: the count stops there, not at `maxRead` of its queue\'s', async () => {
      const now = t.clock.now();
      for (let i = 0; i < 8; i++) await t.transitions.submit(spec('q-busy'));
      for (let i = 0; i < 3; i++) await t.transitions.submit(spec('q-quiet'));
      const job = (await t.transitions.submit(spec('q-quiet'))).job;
      // Every waiting job of the app: the 8 of q-busy, the 4 of q-quiet, and those the tests before left waiting.
      const waiting = await waitingJobs();
      assert.deepEqual(await t.store.countWaitingAhead('q-quiet', job.id, 0, waiting + 1, now), { ahead: 3, complete: true });
      const read = await t.store.countWaitingAhead('q-quiet', job.id, 0, waiting - 4, now);
      assert.equal(read.complete, false, 'not every waiting job before it was read');
      assert.ok(read.ahead < 3, `a lower bound: ${read.ahead}`);
    });

    test('jobs of a higher priority band are ahead whenever they came, those of a lower one never', async () => {
      const now = t.clock.now();
      const submit = async (priority: number) => (await t.transitions.submit({ ...spec('q-prio'), priority })).job;
      const [l1] = [await submit(-5), await submit(-1), await submit(-5)];
      await submit(0);
      await submit(0);
      await submit(3);
      const normal = await submit(0);
      const high = await submit(7);
      const low = await submit(-1);
      const ahead = async (j: { id: string; priority: number }, maxRead = 100) => (await t.store.countWaitingAhead('q-prio', j.id, j.priority, maxRead, now)).ahead;
      assert.equal(await ahead(high), 1, 'the high one before it; not the normal and low ones before it');
      assert.equal(await ahead(normal), 4, 'both high ones (one came after it) and the normal ones before it');
      assert.equal(await ahead(l1!), 5, 'every job of a higher band');
      assert.equal(await ahead(low), 8);
    });

    test('a waiting job of a type no live worker runs in its queue has no ETA (it would not start), until one does', async () => {
      const job = (type: string) => ({ ...spec('q-unserved'), type });
      for (let i = 0; i < 6; i++) {
        const s = await t.transitions.submit(job('demo.unserved'));
        assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
        assert.ok((await t.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      }
      // Its workers stopped since (the last one seen long ago), or one runs the type in other queues only.
      await t.store.upsertWorker({ ...worker('w-gone', ['demo.unserved'], ['*']), lastSeenAt: Date.now() - 3_600_000 });
      await t.store.upsertWorker(worker('w-elsewhere', ['demo.unserved'], ['q-other']));
      const waiting = (await t.transitions.submit(job('demo.unserved'))).job;
      await advisor.init();
      await advisor.catchUp();
      const etaOf = async () => (await t.app.inject({ url: `/v1/jobs/${waiting.id}` })).json().eta as { start: string } | null;
      assert.equal(await etaOf(), null, 'no live worker runs demo.unserved in q-unserved: no start to predict');
      await t.store.upsertWorker(worker('w-back', ['demo.unserved'], ['q-unserved']));
      await sleep(ETA_WORKERS_CACHE_MS + 50);
      assert.ok(await etaOf(), 'a live worker runs it again: the ETA is back (once the registry read before is past)');
    });

    test('the ETAs of waiting jobs read the worker registry once a second, however often they are asked', async () => {
      const waiting = (await t.transitions.submit(spec('q-polled'))).job;
      await sleep(ETA_WORKERS_CACHE_MS + 50);
      const before = registryReads;
      const polls = await Promise.all(Array.from({ length: 5 }, () => t.app.inject({ url: `/v1/jobs/${waiting.id}` })));
      for (let i = 0; i < 5; i++) polls.push(await t.app.inject({ url: `/v1/jobs/${waiting.id}` }));
      assert.deepEqual(polls.map((r) => r.statusCode), Array(10).fill(200));
      assert.equal(registryReads - before, 1, 'ten reads of a waiting job within a second: one read of the registry');
      await sleep(ETA_WORKERS_CACHE_MS + 50);
      assert.equal((await t.app.inject({ url: `/v1/jobs/${waiting.id}` })).statusCode, 200);
      assert.equal(registryReads - before, 2, 'a second later, read again');
    });

    test('a job scheduled for later is not ahead of one due now, until it is due', async () => {
      const now = t.clock.now();
      const day = 86_400_000;
      for (let i = 0; i < 5; i++) await t.transitions.submit({ ...spec('q-later'), runAt: now + day });
      const due = (await t.transitions.submit(spec('q-later'))).job;
      assert.equal((await t.store.countWaitingAhead('q-later', due.id, 0, 100, now)).ahead, 0);
      assert.equal((await t.store.countWaitingAhead('q-later', due.id, 0, 100, now + day)).ahead, 5);
    });

    test('a job that joins its lane when due (a retry, a delayed job) has the jobs of its band waiting now ahead, whenever they came, never itself', async () => {
      const now = t.clock.now();
      const delayed = (await t.transitions.submit({ ...spec('q-joins'), runAt: now + 60_000 })).job;
      for (let i = 0; i < 3; i++) await t.transitions.submit(spec('q-joins'));
      await t.transitions.submit({ ...spec('q-joins'), runAt: now + 120_000 }); // not waiting now
      await t.transitions.submit({ ...spec('q-joins'), priority: -1 }); // a band below
      await t.transitions.submit({ ...spec('q-joins'), priority: 2 }); // a band above
      const count = (at: number, joining: boolean) => t.store.countWaitingAhead('q-joins', delayed.id, 0, 100, at, joining);
      assert.deepEqual(await count(now, false), { ahead: 1, complete: true }, 'by its place: the job above alone');
      assert.deepEqual(await count(now, true), { ahead: 4, complete: true }, 'joining: the three of its band created after it too');
      // Due and not yet dispatched: still not ahead of itself.
      assert.deepEqual(await count(now + 60_000, true), { ahead: 4, complete: true });
      assert.deepEqual(await count(now + 120_000, true), { ahead: 5, complete: true });
    });
  });
}

describe('an app whose advisor takes longer than the answer is kept', () => {
  let t: TestApp;
  let now = 1_000_000;
  let reads = 0;
  let finish: (i: Insights) => void = () => {};
  before(async () => {
    t = await startSqliteTestApp({
      clock: { ...testClock, now: () => now },
      advisor: {
        eta: async () => null,
        insights: () => {
          reads += 1;
          return new Promise<Insights>((resolve) => (finish = resolve));
        },
      },
    });
  });
  after(async () => {
    await t?.close();
  });

  test('consoles polling during a slow read share it: one read, not one per poll', async () => {
    const polls = [t.app.inject({ method: 'GET', url: '/v1/insights' })];
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 3; i++) {
      now += 5_000; // each console asks every 5 s; the read is still running
      polls.push(t.app.inject({ method: 'GET', url: '/v1/insights' }));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(reads, 1);
    finish({ mode: 'advise', events: 3, types: [] });
    for (const res of await Promise.all(polls)) assert.deepEqual(res.json(), { mode: 'advise', events: 3, types: [] });
    now += INSIGHTS_CACHE_MS;
    const later = t.app.inject({ method: 'GET', url: '/v1/insights' });
    await new Promise((r) => setImmediate(r));
    assert.equal(reads, 2, 'read again once the answer is older than the window');
    finish({ mode: 'advise', events: 4, types: [] });
    assert.equal((await later).json().events, 4);
  });
});

describe('an app whose advisor cannot read the ETA', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({
      advisor: {
        eta: async () => {
          throw new Error('the store blinked');
        },
        insights: async () => ({ mode: 'advise', events: 0, types: [] }),
      },
    });
  });
  after(async () => {
    await t?.close();
  });

  test('answers the job without an ETA, not an error', async () => {
    const s = await t.transitions.submit(spec('q'));
    const res = await t.app.inject({ method: 'GET', url: `/v1/jobs/${s.job.id}` });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().eta, null);
    assert.equal(res.json().id, s.job.id);
  });
});

describe('an app whose advisor answers an ETA that is a lower bound', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({
      advisor: {
        eta: async () => ({
          start: 2_000_000, finish: 2_001_000, lowerBound: true,
          basis: { startsPerSecond: 2, medianRunMs: 1000, ahead: 1000, startLatencyMs: null },
        }),
        insights: async () => ({ mode: 'advise', events: 0, types: [] }),
      },
    });
    await t.store.upsertWorker(worker('w-echo', ['demo.echo'], ['q']));
  });
  after(async () => {
    await t?.close();
  });

  test('GET /v1/jobs/:id carries lowerBound with the ETA', async () => {
    const s = await t.transitions.submit(spec('q'));
    const res = await t.app.inject({ method: 'GET', url: `/v1/jobs/${s.job.id}` });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().eta, {
      start: new Date(2_000_000).toISOString(), finish: new Date(2_001_000).toISOString(), lowerBound: true,
      basis: { startsPerSecond: 2, medianRunMs: 1000, ahead: 1000, startLatencyMs: null },
    });
  });
});

describe('an app whose job waits on a paused limit', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({
      advisor: {
        eta: async () => ({ start: 2_000_000, finish: 2_001_000, lowerBound: false, basis: { startsPerSecond: 2, medianRunMs: 1000, ahead: 0, startLatencyMs: null } }),
        insights: async () => ({ mode: 'advise', events: 0, types: [] }),
      },
    });
    await t.store.upsertWorker(worker('w-echo', ['demo.echo'], ['q', 'r']));
  });
  after(async () => {
    await t?.close();
  });

  const etaOf = async (id: string) => (await t.app.inject({ method: 'GET', url: `/v1/jobs/${id}` })).json().eta;

  test('no ETA while the limit its attempts count against is paused (concurrency 0): its own key, else its type\'s, else its queue\'s; one again once raised', async () => {
    const keyed = await t.transitions.submit({ ...spec('q'), concurrencyKey: 'smtp' });
    const plain = await t.transitions.submit(spec('q'));
    const other = await t.transitions.submit(spec('r'));
    assert.ok(keyed.ok && plain.ok && other.ok);
    assert.notEqual(await etaOf(keyed.job.id), null, 'no limit: an ETA');
    await t.store.putLimit('smtp', { concurrency: 0, rate: null }, Date.now());
    assert.equal(await etaOf(keyed.job.id), null, 'its own key paused');
    assert.notEqual(await etaOf(plain.job.id), null, 'another key\'s pause is not this job\'s');
    await t.store.putLimit('queue:q', { concurrency: 0, rate: null }, Date.now());
    assert.equal(await etaOf(plain.job.id), null, 'its queue\'s default limit paused');
    assert.notEqual(await etaOf(other.job.id), null, 'a job of another queue');
    await t.store.putLimit('type:demo.echo', { concurrency: 3, rate: null }, Date.now());
    assert.notEqual(await etaOf(plain.job.id), null, 'its type\'s limit, not paused, is the one it counts against');
    assert.equal(await etaOf(keyed.job.id), null, 'its own key still wins');
    await t.store.putLimit('smtp', { concurrency: 1, rate: null }, Date.now());
    assert.notEqual(await etaOf(keyed.job.id), null, 'raised: an ETA again');
  });
});

describe('an app without an advisor', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  test('answers mode off, no types, and no ETA', async () => {
    const insights = await t.app.inject({ method: 'GET', url: '/v1/insights' });
    assert.deepEqual(insights.json(), { mode: 'off', events: 0, types: [] });
    const s = await t.transitions.submit(spec('q'));
    assert.equal((await t.app.inject({ method: 'GET', url: `/v1/jobs/${s.job.id}` })).json().eta, null);
  });
});
