/**
 * `GET /v1/jobs/:id/verify` on the embedded store: a job's history replays to
 * it; a row that no longer agrees with its history is reported, problem by
 * problem, and left as it is; an id no job has, or a job deleted while it is
 * checked, is a 404, and a malformed id a 400. (Another tenant's job is a 404:
 * server/authz-matrix.test.ts, on MariaDB.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildApp } from './app.js';
import { intercept } from '../tests/helpers/intercept.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import type { createSqliteStore } from '../adapters/sqlite/index.js';
import type { JobView } from './schemas.js';

describe('GET /v1/jobs/:id/verify', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const created = async () => {
    const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { n: 1 } } });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as JobView;
  };
  const verify = (id: string) => t.app.inject({ url: `/v1/jobs/${id}/verify` });

  test('a job\'s history replays to it: ok, the events checked, no problems', async () => {
    const job = await created();
    assert.deepEqual((await verify(job.id)).json(), { ok: true, events: 1, problems: [] });
    assert.equal((await t.app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, payload: { reason: 'x' } })).statusCode, 200);
    const r = await verify(job.id);
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { ok: true, events: 2, problems: [] });
  });

  test('a row its history does not replay to is reported (200, ok false) and left as it is', async () => {
    const job = await created();
    const db = (t.store as ReturnType<typeof createSqliteStore>).db;
    const snapshot = JSON.parse(String((db.prepare('SELECT snapshot FROM jobs WHERE id = ?').get(job.id) as { snapshot: unknown }).snapshot));
    snapshot.context.maxAttempts += 4;
    const tampered = JSON.stringify(snapshot);
    db.prepare('UPDATE jobs SET snapshot = ? WHERE id = ?').run(tampered, job.id);
    const r = await verify(job.id);
    assert.equal(r.statusCode, 200);
    const body = r.json() as { ok: boolean; events: number; problems: string[] };
    assert.equal(body.ok, false);
    assert.equal(body.events, 1);
    assert.equal(body.problems.length, 1);
    assert.match(body.problems[0]!, /^replay gives pending .*"maxAttempts":3.*, stored pending .*"maxAttempts":7/);
    assert.equal(String((db.prepare('SELECT snapshot FROM jobs WHERE id = ?').get(job.id) as { snapshot: unknown }).snapshot), tampered);
  });

  test('an id no job has is a 404, a malformed one a 400', async () => {
    const missing = await verify('01ARZ3NDEKTSV4RRFFQ69G5FAV');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'ATS_ERR_JOB_NOT_FOUND');
    const bad = await verify('not-an-id');
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'ATS_ERR_VALIDATION');
  });

  test('a job deleted after the tenant\'s check is a 404, not a failed verification', async () => {
    const job = await created();
    assert.equal((await t.app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` })).statusCode, 200);
    let reads = 0;
    // The route's read is its tenant's check, and the one replayed to; the job is deleted before its events are read
    // (the second read, verify's, finds it gone).
    const store = intercept(t.store, (name) => name === 'getJob' || name === 'getEvents', async (call, args, name) => {
      if (name === 'getJob') reads++;
      else assert.equal((await t.store.deleteJob(args[0] as string)).ok, true);
      return call();
    });
    const app = await buildApp({ ...t.deps, store });
    try {
      const r = await app.inject({ url: `/v1/jobs/${job.id}/verify` });
      assert.equal(r.statusCode, 404, r.body);
      assert.equal(r.json().code, 'ATS_ERR_JOB_NOT_FOUND');
      assert.equal(reads, 2);
    } finally {
      await app.close();
    }
  });
});
