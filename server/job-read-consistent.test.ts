/**
 * `GET /v1/jobs/:id` reads the job, then its events: a transition or a
 * delete that commits between the two reads must not show a history that
 * disagrees with the job beside it. On MariaDB and SQLite, the write is made
 * to land exactly between the reads (the store's `readJobEventsAfter` makes it first).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { JobStore } from '../engine/ports.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { buildApp } from './app.js';
import { encodeStreamCursor } from './stream/cursor.js';
import type { JobDetail, JobView } from './schemas.js';
import { randomQueue, startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

for (const [name, start] of [['SQLite', startSqliteTestApp], ['MariaDB', startTestApp]] as const) {
  describe(`GET /v1/jobs/:id while the job moves on (${name})`, { skip: name === 'MariaDB' && !mysqlReady ? 'MariaDB not reachable (ATS_ALLOW_SKIP=1)' : false }, () => {
    let t: TestApp;
    let app: FastifyInstance;
    /** Runs once, between the route's read of the job and its read of the events. */
    let between: (() => Promise<void>) | null = null;
    before(async () => {
      t = await start();
      const store = new Proxy(t.store, {
        get(target, prop) {
          if (prop !== 'readJobEventsAfter') return Reflect.get(target, prop) as unknown;
          return async (...args: Parameters<JobStore['readJobEventsAfter']>) => {
            const step = between;
            between = null;
            if (step) await step();
            return target.readJobEventsAfter(...args);
          };
        },
      });
      app = await buildApp({ ...t.deps, store });
    });
    after(async () => {
      await app?.close();
      await t?.close();
    });

    const created = async () => {
      const r = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: 1, queue: randomQueue() } });
      assert.equal(r.statusCode, 201, r.body);
      return r.json() as JobView;
    };

    test('a cancel committed between the reads: the history ends where the job shown is (its version, its state)', async () => {
      const job = await created();
      between = async () => assert.equal((await t.transitions.apply(job.id, { type: 'CANCEL' })).ok, true);
      const r = await app.inject({ url: `/v1/jobs/${job.id}` });
      assert.equal(r.statusCode, 200, r.body);
      const shown = r.json() as JobDetail;
      assert.equal(between, null, 'the cancel was made between the reads');
      assert.equal(shown.state, 'pending');
      assert.deepEqual(shown.allowed, ['CANCEL']);
      assert.deepEqual(shown.events.map((e) => [e.seq, e.to]), [[1, 'pending']], 'no event past the version shown');
      const [submitted, cancelled] = await t.store.readJobEventsAfter(job.id, 0, 10);
      assert.equal(shown.streamCursor, encodeStreamCursor(submitted!.id), 'the stream cursor of the newest event shown, not of the cancel');
      // Read again, both agree on the cancel.
      const again = (await app.inject({ url: `/v1/jobs/${job.id}` })).json() as JobDetail;
      assert.equal(again.state, 'cancelled');
      assert.deepEqual(again.events.map((e) => [e.seq, e.to]), [[1, 'pending'], [2, 'cancelled']]);
      assert.equal(again.streamCursor, encodeStreamCursor(cancelled!.id));
    });

    test('a delete committed between the reads: 404, not the job with no history', async () => {
      const job = await created();
      assert.equal((await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` })).statusCode, 200);
      between = async () => assert.equal((await t.store.deleteJob(job.id)).ok, true);
      const r = await app.inject({ url: `/v1/jobs/${job.id}` });
      assert.equal(between, null, 'the delete was made between the reads');
      assert.equal(r.statusCode, 404, r.body);
      assert.equal(r.json().code, 'ATS_ERR_JOB_NOT_FOUND');
    });
  });
}
