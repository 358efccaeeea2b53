/**
 * A job's progress over HTTP, on SQLite and on MariaDB: `GET /v1/jobs/:id`
 * carries the latest progress its handler reported (`ctx.progress`, stored by
 * the worker through the ProgressStore port) with its attempt and time, and
 * null when none was reported; a progress read that fails answers the job
 * without it, and an app without the port always answers null.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { JobSpec, Logger } from '../engine/ports.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { randomQueue, startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';
import type { AppDeps } from './deps.js';
import type { JobDetail } from './schemas.js';

const mysqlReady = await requireMysql();
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const spec = (queue: string): JobSpec => ({ type: 'demo.sleep', payload: {}, queue, maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 });

const backends: Array<[string, (o?: Partial<AppDeps>) => Promise<TestApp>, string | false]> = [
  ['SQLite', (o) => startSqliteTestApp(o), false],
  ['MariaDB', (o) => startTestApp(o), mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
];

async function getJob(t: TestApp, id: string): Promise<JobDetail> {
  const r = await t.app.inject({ url: `/v1/jobs/${id}` });
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as JobDetail;
}

for (const [name, start, skip] of backends) {
  describe(`a job's progress on GET /v1/jobs/:id on ${name}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await start();
    });
    after(async () => {
      await t?.close();
    });

    /** A job of its own queue, running its first attempt. */
    async function running(): Promise<string> {
      const s = await t.transitions.submit(spec(randomQueue()));
      assert.ok(s.ok);
      assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
      return s.job.id;
    }

    test('a running job that reported progress shows the latest, with its attempt and time', async () => {
      const id = await running();
      const at = Date.now();
      assert.equal(await t.store.setProgress(id, 1, '40', at), true);
      const job = await getJob(t, id);
      assert.equal(job.state, 'running');
      assert.deepEqual(job.progress, { value: 40, attempt: 1, at: new Date(at).toISOString() });
      assert.match(job.progress!.at, ISO);

      // Replaced by the next report, an object as it was reported (nested values and all).
      const value = { step: 'upload', done: 3, of: 10, ratio: 0.3, tags: ['a', null, true], nested: { deep: { ok: false } }, note: 'é "quoted"' };
      assert.equal(await t.store.setProgress(id, 1, JSON.stringify(value), at + 1), true);
      assert.deepEqual((await getJob(t, id)).progress, { value, attempt: 1, at: new Date(at + 1).toISOString() });

      // The attempt's end keeps its last progress on the job.
      assert.ok((await t.transitions.apply(id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      const done = await getJob(t, id);
      assert.equal(done.state, 'done');
      assert.deepEqual(done.progress?.value, value);
    });

    test('a job without progress shows null: waiting, and running before its first report', async () => {
      const s = await t.transitions.submit(spec(randomQueue()));
      assert.equal((await getJob(t, s.job.id)).progress, null);
      const id = await running();
      const job = await getJob(t, id);
      assert.equal(job.state, 'running');
      assert.equal(job.progress, null);
      assert.ok('progress' in job, 'the field is there, as null');
    });
  });
}

describe('an app whose progress read fails', () => {
  let t: TestApp;
  const warned: string[] = [];
  const logger: Logger = {
    debug: () => undefined, info: () => undefined, error: () => undefined,
    warn: (message: string) => void warned.push(message),
  };
  before(async () => {
    t = await startSqliteTestApp({
      logger,
      progress: {
        getProgress: async () => {
          throw new Error('the store blinked');
        },
      },
    });
  });
  after(async () => {
    await t?.close();
  });

  test('answers the job with progress null, not an error, and logs why', async () => {
    const s = await t.transitions.submit(spec('q'));
    const job = await getJob(t, s.job.id);
    assert.equal(job.id, s.job.id);
    assert.equal(job.progress, null);
    assert.deepEqual(warned, ['api: the progress could not be read; answered without it']);
  });
});

describe('an app without the progress port', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({ progress: undefined });
  });
  after(async () => {
    await t?.close();
  });

  test('answers progress null even when the store holds some', async () => {
    const s = await t.transitions.submit(spec('q'));
    assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
    assert.equal(await t.store.setProgress(s.job.id, 1, '10', Date.now()), true);
    assert.equal((await getJob(t, s.job.id)).progress, null);
  });
});
