/**
 * `DELETE /v1/jobs/:id` on the real MariaDB, what a deleted job's
 * Idempotency-Key does afterwards, and `/v1/stats` (served from the
 * maintained counters) for queues named like Object.prototype's properties.
 * On MariaDB and SQLite: a workflow's finished child its instance has not
 * taken the end of yet is refused (409 ATS_ERR_JOB_AWAITED) and stays, so
 * that the sweep tells the instance how it really ended; then it goes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireMysql } from '../tests/helpers/mysql.js';
import { oneStepWorkflow } from '../tests/helpers/workflow-machines.js';
import type { JobView } from './schemas.js';
import { randomQueue, startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

describe('DELETE /v1/jobs/:id and stats', { skip: mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const submit = (body: object, headers: Record<string, string> = {}) => t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body, headers });
  const created = async (body: object) => {
    const r = await submit(body);
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as JobView;
  };
  const cancel = async (id: string) => assert.equal((await t.app.inject({ method: 'POST', url: `/v1/jobs/${id}/cancel` })).statusCode, 200);
  const del = (id: string) => t.app.inject({ method: 'DELETE', url: `/v1/jobs/${id}` });
  const stats = async () => (await t.app.inject({ url: '/v1/stats' })).json();

  test('a cancelled job is deleted (204, no body) with its events, and no longer counted', async () => {
    const queue = randomQueue();
    const job = await created({ type: 'demo.echo', payload: 1, queue });
    await created({ type: 'demo.echo', payload: 2, queue });
    await cancel(job.id);
    const r = await del(job.id);
    assert.equal(r.statusCode, 204);
    assert.equal(r.body, '');
    assert.equal((await t.app.inject({ url: `/v1/jobs/${job.id}` })).statusCode, 404);
    assert.deepEqual(await t.store.getEvents(job.id), []);
    assert.deepEqual((await stats()).byQueue[queue], { pending: 1 });
    const again = await del(job.id);
    assert.equal(again.statusCode, 404);
    assert.equal(again.json().code, 'ATS_ERR_JOB_NOT_FOUND');
  });

  test('a live job is a 409 ATS_ERR_JOB_LIVE naming its state, and stays', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    const r = await del(job.id);
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().code, 'ATS_ERR_JOB_LIVE');
    assert.match(r.json().message, /is pending/);
    assert.equal((await t.app.inject({ url: `/v1/jobs/${job.id}` })).json().version, 1);
  });

  test('an unknown id is a 404, a malformed one a 400', async () => {
    const unknown = await del('01ARZ3NDEKTSV4RRFFQ69G5FAV');
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, 'ATS_ERR_JOB_NOT_FOUND');
    const bad = await del('not-an-id');
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'ATS_ERR_VALIDATION');
  });

  test('an Idempotency-Key is remembered while its job exists; after the job is deleted the same submit creates a new job', async () => {
    const body = { type: 'demo.echo', payload: { order: 42 }, queue: randomQueue() };
    const key = { 'idempotency-key': `order-${Math.random()}` };
    const first = await submit(body, key);
    assert.equal(first.statusCode, 201);
    const repeat = await submit(body, key);
    assert.equal(repeat.statusCode, 200);
    assert.equal(repeat.json().id, first.json().id);
    await cancel(first.json().id);
    assert.equal((await del(first.json().id)).statusCode, 204);
    const after = await submit(body, key);
    assert.equal(after.statusCode, 201, 'a new job');
    assert.notEqual(after.json().id, first.json().id);
    assert.equal(after.json().state, 'pending');
  });

  test('stats count queues and types named __proto__, constructor and toString like any other', async () => {
    const a = await created({ type: 'constructor', payload: 1, queue: '__proto__' });
    await created({ type: 'toString', payload: 1, queue: '__proto__' });
    await cancel(a.id);
    const s = await stats();
    assert.deepEqual(s.byQueue['__proto__'], { pending: 1, cancelled: 1 });
    assert.deepEqual(s.byType['constructor'], { cancelled: 1 });
    assert.deepEqual(s.byType['toString'], { pending: 1 });
    assert.equal(({} as Record<string, unknown>).pending, undefined);
    assert.equal(s.total, Object.values(s.byState as Record<string, number>).reduce((x, n) => x + n, 0));
  });
});


const backends: [string, typeof startTestApp, string | false][] = [
  ['MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
  ['SQLite', startSqliteTestApp, false],
];

for (const [name, start, skip] of backends) {
  describe(`DELETE /v1/jobs/:id of a workflow's child (${name})`, { skip }, () => {
    test('a finished child its instance still waits on is a 409 ATS_ERR_JOB_AWAITED and stays; once the instance took its end, it goes', async () => {
      const t = await start({}, { workflows: oneStepWorkflow('one-step', 'wf.step') });
      try {
        const r = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'one-step', input: null } });
        assert.equal(r.statusCode, 201, r.body);
        const wf = r.json() as { id: string; children: { jobId: string }[] };
        const childId = wf.children[0]!.jobId;
        const del = () => t.app.inject({ method: 'DELETE', url: `/v1/jobs/${childId}` });
        const instance = async () => (await t.app.inject({ url: `/v1/workflows/${wf.id}` })).json() as { status: string; value: unknown };

        assert.equal((await del()).json().code, 'ATS_ERR_JOB_LIVE', 'a pending child is live, as any job');
        const at = Date.now();
        assert.ok((await t.transitions.apply(childId, { type: 'STARTED', attempt: 1, leaseUntil: at + 30_000, workerId: 'w' })).ok);
        assert.ok((await t.transitions.apply(childId, { type: 'SUCCEEDED', attempt: 1, result: 7 })).ok);

        // No log runs here: the end has not reached the instance, as when the in-process log lost it at a restart.
        const refused = await del();
        assert.equal(refused.statusCode, 409, refused.body);
        assert.equal(refused.json().code, 'ATS_ERR_JOB_AWAITED');
        assert.match(refused.json().message, new RegExp(`is done, but its workflow instance ${wf.id} `));
        const kept = await t.app.inject({ url: `/v1/jobs/${childId}` });
        assert.equal(kept.json().state, 'done', 'nothing deleted');
        assert.equal((await t.store.getEvents(childId)).length, 3, 'its events stay');
        assert.deepEqual((await t.store.jobCounts()).filter((c) => c.type === 'wf.step').map((c) => [c.state, c.n]), [['done', 1]], 'still counted');

        // The sweep tells the instance the child's end as the job stands: it succeeded.
        await t.workflows!.sweep(10);
        const ended = await instance();
        assert.deepEqual([ended.status, ended.value], ['done', 'ok'], 'onDone, not onError');
        const deleted = await del();
        assert.equal(deleted.statusCode, 204, deleted.body);
        assert.equal((await t.app.inject({ url: `/v1/jobs/${childId}` })).statusCode, 404);
      } finally {
        await t.close();
      }
    });
  });
}
