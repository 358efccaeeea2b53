/**
 * `waiting` in `GET /v1/jobs/:id`, on SQLite and on MariaDB: what a job that
 * has not started waits for (engine/waiting.ts), from its state, the worker
 * registry and the limit its attempts count against, as a claim made now
 * would find them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
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

for (const [name, start, skip] of backends) {
  describe(`what a waiting job waits for, on ${name}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await start({});
      // A live worker runs demo.echo in every queue (seen an hour ahead: live for the whole test); none runs demo.unserved.
      const w: WorkerRecord = { id: 'w-echo', host: 'test', pid: 1, queues: ['*'], types: ['demo.echo'], concurrency: 1, startedAt: Date.now(), lastSeenAt: Date.now() + HOUR };
      await t.store.upsertWorker(w);
    });
    after(async () => {
      await t?.close();
    });

    const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
      type: 'demo.echo', payload: {}, queue: randomQueue(), maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0, ...o,
    });
    const submit = async (o: Partial<JobSpec> = {}) => {
      const r = await t.transitions.submit(spec(o));
      assert.ok(r.ok);
      return r.job.id;
    };
    const publish = async (id: string) => assert.ok((await t.transitions.apply(id, { type: 'PUBLISHED', attempt: 1 })).ok);
    const claim = (id: string) => t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w-echo' });
    const waiting = async (id: string) => {
      const r = await t.app.inject({ url: `/v1/jobs/${id}` });
      assert.equal(r.statusCode, 200, r.body);
      return (r.json() as JobDetail).waiting;
    };

    test('a job for later waits for its run time, a due one for its dispatch, a failed one for its retry; a running or ended one for nothing', async () => {
      const at = Date.now() + HOUR;
      const later = await submit({ runAt: at });
      assert.deepEqual(await waiting(later), { reason: 'scheduled', until: new Date(at).toISOString(), limit: null });
      // Its retry an hour after its failure: the default backoff draws a delay from 0 to 1 s, which a slow read can
      // outlast (the retry then due, and `dispatching`).
      const due = await submit({ backoff: { kind: 'fixed', delayMs: HOUR } });
      assert.deepEqual(await waiting(due), { reason: 'dispatching', until: null, limit: null });
      await publish(due);
      assert.ok((await claim(due)).ok);
      assert.equal(await waiting(due), null, 'running');
      const failed = await t.transitions.apply(due, { type: 'FAILED', attempt: 1, error: { message: 'boom', retryable: true } });
      assert.ok(failed.ok && failed.job.snapshot.value === 'retrying');
      const retry = await waiting(due);
      assert.equal(retry?.reason, 'backoff');
      assert.equal(retry.until, new Date(failed.job.snapshot.context.runAt).toISOString());
      const cancelled = await submit();
      assert.ok((await t.transitions.apply(cancelled, { type: 'CANCEL', reason: 'test' })).ok);
      assert.equal(await waiting(cancelled), null, 'ended');
    });

    test('a dispatched job waits for a free slot, or for a worker when no live one runs its type on its queue', async () => {
      const queued = await submit();
      await publish(queued);
      assert.deepEqual(await waiting(queued), { reason: 'queued', until: null, limit: null });
      const unserved = await submit({ type: 'demo.unserved' });
      await publish(unserved);
      assert.deepEqual(await waiting(unserved), { reason: 'no-worker', until: null, limit: null });
    });

    test('a dispatched job over its limit waits for it: paused, its concurrency taken, or its rate, with the limit as /v1/limits shows it', async () => {
      const key = `k-${randomQueue()}`;
      await t.store.putLimit(key, { concurrency: 1, rate: { max: 1, intervalMs: HOUR } }, Date.now());
      const first = await submit({ concurrencyKey: key });
      const second = await submit({ concurrencyKey: key });
      for (const id of [first, second]) await publish(id);
      const free = await waiting(second);
      assert.equal(free?.reason, 'queued', 'under its limit: a free slot is all it waits for');
      assert.equal(free.limit?.key, key);
      assert.equal(free.limit.running, 0);
      assert.ok((await claim(first)).ok);
      const taken = await waiting(second);
      assert.equal(taken?.reason, 'concurrency');
      assert.deepEqual({ concurrency: taken.limit?.concurrency, running: taken.limit?.running }, { concurrency: 1, running: 1 });
      // The slot free, the rate is what holds it: the next start is allowed an hour after the first.
      await t.store.putLimit(key, { concurrency: 5, rate: { max: 1, intervalMs: HOUR } }, Date.now());
      const rated = await waiting(second);
      assert.equal(rated?.reason, 'rate');
      const until = Date.parse(rated.until!);
      assert.ok(until > Date.now() + HOUR - 60_000 && until <= Date.now() + HOUR, rated.until!);
      const refused = await claim(second);
      assert.ok(!refused.ok && refused.reason === 'throttled' && refused.why === 'rate', 'a claim now is refused as the view says');
      await t.store.putLimit(key, { concurrency: 0, rate: null }, Date.now());
      const paused = await waiting(second);
      assert.equal(paused?.reason, 'paused');
      assert.equal(paused.until, null);
      assert.equal(paused.limit?.concurrency, 0);
    });

    test('a due job not yet dispatched already says what will hold it: its paused limit, or no live worker', async () => {
      const key = `k-${randomQueue()}`;
      await t.store.putLimit(key, { concurrency: 0, rate: null }, Date.now());
      const paused = await waiting(await submit({ concurrencyKey: key }));
      assert.equal(paused?.reason, 'paused');
      assert.equal(paused.limit?.key, key);
      assert.equal((await waiting(await submit({ type: 'demo.unserved' })))?.reason, 'no-worker');
      // Not due yet: its run time is what it waits for, whatever holds it after.
      const later = await waiting(await submit({ concurrencyKey: key, runAt: Date.now() + HOUR }));
      assert.deepEqual({ reason: later?.reason, limit: later?.limit }, { reason: 'scheduled', limit: null });
    });

    test('a job without a key waits on its type\'s default limit, else its queue\'s', async () => {
      const queue = randomQueue();
      const type = 'demo.echo';
      await t.store.putLimit(`queue:${queue}`, { concurrency: 0, rate: null }, Date.now());
      const id = await submit({ queue, type });
      await publish(id);
      const byQueue = await waiting(id);
      assert.equal(byQueue?.reason, 'paused');
      assert.equal(byQueue.limit?.key, `queue:${queue}`);
      // The type's default comes first, as the claim takes it.
      await t.store.putLimit(`type:${type}`, { concurrency: 100, rate: null }, Date.now());
      try {
        const byType = await waiting(id);
        assert.equal(byType?.reason, 'queued');
        assert.equal(byType.limit?.key, `type:${type}`);
      } finally {
        await t.store.deleteLimit(`type:${type}`);
      }
    });
  });
}

describe('what a waiting job waits for, when the server cannot tell all of it', () => {
  test('without the worker registry, a dispatched job of a type no worker runs is only queued (not known otherwise)', async () => {
    const t = await startSqliteTestApp({ workers: undefined });
    try {
      const r = await t.transitions.submit({ type: 'demo.unserved', payload: {}, queue: randomQueue(), maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 });
      assert.ok(r.ok && (await t.transitions.apply(r.job.id, { type: 'PUBLISHED', attempt: 1 })).ok);
      const got = await t.app.inject({ url: `/v1/jobs/${r.job.id}` });
      assert.equal((got.json() as JobDetail).waiting?.reason, 'queued');
    } finally {
      await t.close();
    }
  });

  test('a read of the limit that fails answers the job without waiting and without an ETA, not an error', async () => {
    let failing = false;
    let t!: TestApp;
    t = await startSqliteTestApp({
      limitStore: new Proxy({} as NonNullable<AppDeps['limitStore']>, {
        get: (_, name: string) => (name === 'getLimit' && failing
          ? () => Promise.reject(new Error('the store blinked'))
          : (t.store as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!.bind(t.store)),
      }),
      advisor: { eta: async (job: { id: string }) => ({ start: Date.now(), finish: Date.now() + 1000, basis: { ahead: 0, startsPerSecond: 1, medianRunMs: 1000, startLatencyMs: null }, lowerBound: false, jobId: job.id }), insights: async () => { throw new Error('unused'); } } as unknown as AppDeps['advisor'],
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    try {
      await t.store.upsertWorker({ id: 'w-echo', host: 'test', pid: 1, queues: ['*'], types: ['demo.echo'], concurrency: 1, startedAt: Date.now(), lastSeenAt: Date.now() + HOUR });
      const r = await t.transitions.submit({ type: 'demo.echo', payload: {}, queue: randomQueue(), maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 });
      assert.ok(r.ok);
      const read = async () => (await t.app.inject({ url: `/v1/jobs/${r.job.id}` })).json() as JobDetail & { eta: unknown };
      const fine = await read();
      assert.equal(fine.waiting?.reason, 'dispatching');
      assert.ok(fine.eta, 'the ETA, with the reads fine');
      failing = true;
      const blinked = await read();
      assert.equal(blinked.id, r.job.id);
      assert.equal(blinked.waiting, null);
      assert.equal(blinked.eta, null, 'no ETA it could not check');
    } finally {
      await t.close();
    }
  });
});
