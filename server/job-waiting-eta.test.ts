/**
 * The ETA of a job its limit holds, on SQLite and on MariaDB: `GET /v1/jobs/:id`
 * answers `eta` and `waiting` together, and the ETA does not contradict the
 * wait. A job its limit's rate holds starts no sooner than `waiting.until`; one
 * its limit's concurrency holds, not before a slot of its key frees (not now),
 * reckoned from when the key's running attempt started (the same at each read).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { Advisor } from '../engine/advisor/advisor.js';
import { silentLogger } from '../engine/logger.js';
import type { JobSpec, WorkerRecord } from '../engine/ports.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { randomQueue, startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';
import type { AppDeps } from './deps.js';
import type { JobDetail } from './schemas.js';

const mysqlReady = await requireMysql();

const backends: Array<[string, (o: Partial<AppDeps>) => Promise<TestApp>, string | false]> = [
  ['SQLite', (o) => startSqliteTestApp(o), false],
  ['MariaDB', (o) => startTestApp(o), mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
];

const HOUR = 3_600_000;
/** How long each attempt of the history runs, at least: the type's median run time. */
const RUN_MS = 60;
/** The same, for a test whose reads must all come within the key's running attempt's median run. */
const LONG_RUN_MS = 800;

type Detail = JobDetail & { eta: { start: string; finish: string; lowerBound: boolean; basis: { held?: string; medianRunMs: number } } | null };

for (const [name, start, skip] of backends) {
  describe(`the ETA of a job its limit holds, on ${name}`, { skip }, () => {
    let t: TestApp;
    let advisor: Advisor;
    before(async () => {
      // The app is built before the store exists for the advisor: it reaches it through this late binding.
      t = await start({ advisor: { eta: (...a) => advisor.eta(...a), insights: () => advisor.insights() } });
      advisor = new Advisor({ store: t.store, clock: t.clock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000 });
      // A live worker runs demo.echo in every queue (seen an hour ahead: live for the whole test).
      const w: WorkerRecord = { id: 'w-echo', host: 'test', pid: 1, queues: ['*'], types: ['demo.echo'], concurrency: 1, startedAt: Date.now(), lastSeenAt: Date.now() + HOUR };
      await t.store.upsertWorker(w);
    });
    after(async () => {
      await t?.close();
    });

    const spec = (queue: string, o: Partial<JobSpec> = {}): JobSpec => ({
      type: 'demo.echo', payload: {}, queue, maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0, ...o,
    });
    const submit = async (queue: string, o: Partial<JobSpec> = {}) => {
      const r = await t.transitions.submit(spec(queue, o));
      assert.ok(r.ok);
      assert.ok((await t.transitions.apply(r.job.id, { type: 'PUBLISHED', attempt: 1 })).ok);
      return r.job.id;
    };
    const claim = (id: string) => t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w-echo' });
    /** Six attempts of demo.echo on the queue, each of `runMs` or more, learned by the advisor: its median run time. */
    const history = async (queue: string, runMs = RUN_MS) => {
      for (let i = 0; i < 6; i++) {
        const s = await t.transitions.submit(spec(queue));
        assert.ok(s.ok && (await claim(s.job.id)).ok);
        await sleep(runMs);
        assert.ok((await t.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      }
    };
    /** A queue of its own with the history above, and a key of its own under `spec`. */
    const limited = async (spec: Parameters<TestApp['store']['putLimit']>[1], runMs = RUN_MS) => {
      const queue = randomQueue();
      await history(queue, runMs);
      const key = `k-${queue}`;
      await t.store.putLimit(key, spec, Date.now());
      return { queue, key };
    };
    const read = async (id: string) => {
      await advisor.init();
      await advisor.catchUp();
      const r = await t.app.inject({ url: `/v1/jobs/${id}` });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as Detail;
    };

    test('a job its limit\'s rate holds starts no sooner than the next start the rate allows (`waiting.until`)', async () => {
      const { queue, key } = await limited({ concurrency: 5, rate: { max: 1, intervalMs: HOUR } });
      const first = await submit(queue, { concurrencyKey: key });
      const second = await submit(queue, { concurrencyKey: key });
      const free = await read(second);
      assert.equal(free.waiting?.reason, 'queued');
      assert.ok(free.eta && !free.eta.lowerBound, 'under its limit: an ETA as before');
      assert.ok((await claim(first)).ok, 'the first takes the rate\'s start: the next is allowed in an hour');
      const held = await read(second);
      assert.equal(held.waiting?.reason, 'rate');
      assert.ok(held.eta, 'an ETA');
      assert.ok(Date.parse(held.eta.start) >= Date.parse(held.waiting.until!), `starts ${held.eta.start}, not before ${held.waiting.until}`);
      assert.ok(Date.parse(held.eta.finish) > Date.parse(held.eta.start));
      assert.equal(held.eta.lowerBound, true, 'the key\'s jobs waiting ahead of it are not counted');
      assert.equal(held.eta.basis.held, 'rate');
    });

    test('a job not due yet whose limit\'s rate allows no start by its due time starts no sooner than the rate allows', async () => {
      const { queue, key } = await limited({ concurrency: 5, rate: { max: 1, intervalMs: HOUR } });
      const first = await submit(queue, { concurrencyKey: key });
      const claimed = Date.now();
      assert.ok((await claim(first)).ok, 'the first takes the rate\'s start: the next is allowed in an hour');
      const s = await t.transitions.submit(spec(queue, { concurrencyKey: key, runAt: Date.now() + 60_000 }));
      assert.ok(s.ok);
      const later = await read(s.job.id);
      assert.equal(later.waiting?.reason, 'scheduled', 'it waits for its run time first');
      assert.ok(later.eta, 'an ETA');
      assert.ok(Date.parse(later.eta.start) >= claimed + HOUR - 1000, `starts ${Date.parse(later.eta.start) - claimed} ms after the first's start, not at its run time in a minute`);
      assert.deepEqual([later.eta.lowerBound, later.eta.basis.held], [true, 'rate']);
      // Due after the rate's next start: not held, its run time as before.
      const after = await t.transitions.submit(spec(queue, { concurrencyKey: key, runAt: claimed + 2 * HOUR }));
      assert.ok(after.ok);
      const free = await read(after.job.id);
      assert.equal(free.eta?.basis.held, undefined, 'the rate allows a start by its run time: not held');
      assert.equal(Date.parse(free.eta!.start) >= claimed + 2 * HOUR, true);
      // The rate lifted: nothing holds the first one either.
      await t.store.putLimit(key, { concurrency: 5, rate: null }, Date.now());
      const lifted = await read(s.job.id);
      assert.equal(lifted.eta?.basis.held, undefined, 'no rate: not held');
      assert.ok(Date.parse(lifted.eta!.start) < claimed + HOUR - 1000, 'at its run time, in a minute');
    });

    test('a job its limit\'s concurrency holds starts once a slot of its key frees, not now', async () => {
      const { queue, key } = await limited({ concurrency: 1, rate: null });
      const first = await submit(queue, { concurrencyKey: key });
      const second = await submit(queue, { concurrencyKey: key });
      const claimed = Date.now();
      assert.ok((await claim(first)).ok);
      const held = await read(second);
      assert.equal(held.waiting?.reason, 'concurrency');
      assert.equal(held.waiting.limit?.running, 1);
      assert.ok(held.eta, 'an ETA');
      // The key's one running attempt frees its slot a median run time (RUN_MS or more) after it started (or now, once past).
      const start = Date.parse(held.eta.start);
      assert.ok(start >= claimed + RUN_MS - 5, `starts ${start - claimed} ms after the claim`);
      assert.ok(start <= Math.max(claimed + 30 * RUN_MS, Date.now()), `starts ${start - claimed} ms after the claim: about a median run, not later`);
      assert.equal(held.eta.lowerBound, false, 'when a slot frees is an estimate (the running attempt may end sooner), not a bound');
      assert.equal(held.eta.basis.held, 'concurrency');
      // Paused: no ETA at all, as before.
      await t.store.putLimit(key, { concurrency: 0, rate: null }, Date.now());
      const paused = await read(second);
      assert.equal(paused.waiting?.reason, 'paused');
      assert.equal(paused.eta, null);
    });

    test('a concurrency hold reckons from when the key\'s running attempt started: the same start at every read while it runs', async () => {
      const { queue } = await limited({ concurrency: 1, rate: null }, LONG_RUN_MS);
      // The reads must end within the running attempt's median run: a stall of the machine longer than that tries
      // again on a key of its own (the jobs of a try before stay as they are: another key's, they hold nothing here).
      for (let tries = 1; ; tries++) {
        const key = `k-${queue}-${tries}`;
        await t.store.putLimit(key, { concurrency: 1, rate: null }, Date.now());
        const first = await submit(queue, { concurrencyKey: key });
        const second = await submit(queue, { concurrencyKey: key });
        const claimed = await claim(first);
        assert.ok(claimed.ok);
        const started = claimed.job.updatedAt; // the STARTED event's time
        const a = await read(second);
        await sleep(100);
        const b = await read(second);
        const readsDone = Date.now();
        assert.ok(a.eta && b.eta, 'ETAs');
        const frees = started + a.eta.basis.medianRunMs;
        if (frees <= readsDone && tries < 3) continue;
        assert.ok(frees > readsDone, `the reads ended ${readsDone - started} ms after the start, within the median run (${a.eta.basis.medianRunMs} ms): what this test needs`);
        assert.equal(a.eta.basis.held, 'concurrency');
        assert.ok(Math.abs(Date.parse(a.eta.start) - frees) <= 1, `starts ${Date.parse(a.eta.start) - started} ms after the running attempt's start, a median run (${a.eta.basis.medianRunMs} ms)`);
        assert.equal(b.eta.start, a.eta.start, 'read 100 ms later: the same start, not a median run from the read');
        break;
      }
    });

    test('a job held by its limit\'s concurrency whose rate allows no start yet starts no sooner than the rate allows', async () => {
      const { queue, key } = await limited({ concurrency: 1, rate: { max: 1, intervalMs: HOUR } });
      const first = await submit(queue, { concurrencyKey: key });
      const second = await submit(queue, { concurrencyKey: key });
      const claimed = Date.now();
      assert.ok((await claim(first)).ok, 'the first takes the slot and the rate\'s start');
      const held = await read(second);
      // The claim asks the rate only once a slot is free: the wait says concurrency, and the rate's next start is an hour away.
      assert.equal(held.waiting?.reason, 'concurrency');
      assert.ok(held.eta, 'an ETA');
      assert.ok(Date.parse(held.eta.start) >= claimed + HOUR - 1000, `starts ${Date.parse(held.eta.start) - claimed} ms after the first's start, not before the rate allows (an hour)`);
    });
  });
}
