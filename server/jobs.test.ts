/**
 * The jobs routes on the real MariaDB: submit, read, idempotency, cancel,
 * redrive, list and paging. One database for the file; each test works in a
 * queue of its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireMysql } from '../tests/helpers/mysql.js';
import type { EventView, JobDetail, JobView } from './schemas.js';
import { pageIds, randomQueue, startTestApp, type TestApp } from '../tests/helpers/app.js';
import { buildApp } from './app.js';

const mysqlReady = await requireMysql();
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('jobs API', { skip: mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const submit = (body: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body as object, headers });
  const get = async (id: string) => (await t.app.inject({ url: `/v1/jobs/${id}` })).json() as JobDetail;
  const action = (id: string, what: 'cancel' | 'redrive', body?: object) =>
    t.app.inject({ method: 'POST', url: `/v1/jobs/${id}/${what}`, ...(body ? { payload: body } : {}) });
  const created = async (body: object) => {
    const r = await submit(body);
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as JobView;
  };

  test('submit answers 201 with the job; GET shows its SUBMITTED event and allowed CANCEL', async () => {
    const queue = randomQueue();
    const r = await submit({ type: 'demo.echo', payload: { hello: 'world' }, queue });
    assert.equal(r.statusCode, 201);
    const job = r.json() as JobView;
    assert.equal(r.headers.location, `jobs/${job.id}`);
    assert.match(job.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(job.state, 'pending');
    assert.deepEqual(job.allowed, ['CANCEL']);

    const detail = await get(job.id);
    assert.equal(detail.id, job.id);
    assert.deepEqual(detail.payload, { hello: 'world' });
    assert.equal(detail.queue, queue);
    assert.equal(detail.attempt, 0);
    assert.equal(detail.maxAttempts, 3); // the default
    assert.equal(detail.version, 1);
    assert.equal(detail.result, null);
    assert.equal(detail.lastError, null);
    assert.equal(detail.idempotencyKey, null);
    for (const time of [detail.runAt, detail.createdAt, detail.updatedAt]) assert.match(time, ISO);
    assert.deepEqual(detail.allowed, ['CANCEL']);
    assert.deepEqual(detail.events.map((e: EventView) => [e.seq, e.type, e.from, e.to]), [[1, 'SUBMITTED', null, 'pending']]);
    assert.match(detail.events[0]!.at, ISO);
  });

  test('submit keeps every option given', async () => {
    const queue = randomQueue();
    const runAt = '2099-01-02T03:04:05.000Z';
    const job = await created({
      type: 'demo.sleep', payload: [1, 'two', null], queue, runAt, maxAttempts: 7,
      backoff: { kind: 'fixed', delayMs: 250 }, timeoutMs: 1234, priority: -5,
    });
    assert.equal(job.runAt, runAt);
    assert.equal(job.maxAttempts, 7);
    assert.deepEqual(job.backoff, { kind: 'fixed', delayMs: 250 });
    assert.equal(job.timeoutMs, 1234);
    assert.equal(job.priority, -5);
    assert.deepEqual(job.payload, [1, 'two', null]);
    const epoch = await created({ type: 'demo.echo', payload: 0, queue, runAt: Date.parse(runAt) });
    assert.equal(epoch.runAt, runAt);
  });

  test('a payload at the depth limit is accepted', async () => {
    let payload: unknown = 'leaf';
    for (let i = 0; i < 32; i++) payload = { k: payload };
    const job = await created({ type: 'demo.echo', payload, queue: randomQueue() });
    assert.deepEqual((await get(job.id)).payload, payload);
  });

  test('a body sent as is (Content-Encoding identity, or the header empty) is read; one with a byte order mark, or said to be UTF-8, too', async () => {
    const body = JSON.stringify({ type: 'demo.echo', payload: { é: '€' }, queue: randomQueue() });
    for (const [payload, headers] of [
      [body, { 'content-type': 'application/json', 'content-encoding': 'identity' }],
      [body, { 'content-type': 'application/json', 'content-encoding': 'Identity' }],
      [body, { 'content-type': 'application/json', 'content-encoding': '' }],
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]), { 'content-type': 'application/json' }],
      [body, { 'content-type': 'application/json; charset=utf-8' }],
      [body, { 'content-type': 'application/json;charset="UTF-8"' }],
      [body, { 'content-type': 'application/json; charset=utf8' }],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload, headers });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(r.json().payload, { é: '€' });
    }
  });

  test('the same Idempotency-Key and body answer 200 with the same job; another body is a 409 and writes nothing', async () => {
    const queue = randomQueue();
    const body = { type: 'demo.echo', payload: { n: 1 }, queue };
    const headers = { 'idempotency-key': 'order-42 #1' };
    const first = await submit(body, headers);
    assert.equal(first.statusCode, 201);
    const again = await submit({ queue, payload: { n: 1 }, type: 'demo.echo' }, headers); // key order does not matter
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, first.json().id);
    assert.equal(again.json().idempotencyKey, 'order-42 #1');

    const conflict = await submit({ ...body, payload: { n: 2 } }, headers);
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.json().code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
    assert.match(conflict.json().message, new RegExp(first.json().id));
    const jobs = await t.store.listJobs({ queue, limit: 10 });
    assert.equal(jobs.length, 1);
    assert.equal((await get(first.json().id)).version, 1);
  });

  test('the same Idempotency-Key and body sent to an instance with other defaults (ATS_DEFAULT_*) answer 200 with the same job; a field given that the job does not have is a 409', async () => {
    const other = await buildApp({
      ...t.deps, defaults: { ...t.deps.defaults, maxAttempts: 5, backoff: { kind: 'fixed', delayMs: 500 }, timeoutMs: 45_000, priority: 2 },
    });
    try {
      const queue = randomQueue();
      const body = { type: 'demo.echo', payload: { n: 1 }, queue };
      const headers = { 'idempotency-key': 'rolled-1' };
      const first = await submit(body, headers);
      assert.equal(first.statusCode, 201, first.body);
      const again = await other.inject({ method: 'POST', url: '/v1/jobs', payload: body, headers });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.json().id, first.json().id);
      assert.equal(again.json().maxAttempts, 3); // the job as the first instance made it
      const batch = await other.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: [{ ...body, idempotencyKey: 'rolled-1' }] } });
      assert.deepEqual(batch.json().results, [{ status: 200, id: first.json().id, state: 'pending' }]);
      // Given, a field must still be what the job has: 3 (the job's) is the same submit, 5 another.
      assert.equal((await other.inject({ method: 'POST', url: '/v1/jobs', payload: { ...body, maxAttempts: 3 }, headers })).statusCode, 200);
      const conflict = await other.inject({ method: 'POST', url: '/v1/jobs', payload: { ...body, maxAttempts: 5 }, headers });
      assert.equal(conflict.statusCode, 409);
      assert.equal(conflict.json().code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
      assert.equal((await other.inject({ method: 'POST', url: '/v1/jobs', payload: { ...body, payload: { n: 2 } }, headers })).statusCode, 409);
      assert.equal((await t.store.listJobs({ queue, limit: 10 })).length, 1);
    } finally {
      await other.close();
    }
  });

  test('an Idempotency-Key is per queue: the same key in another queue makes another job', async () => {
    const [q1, q2] = [randomQueue(), randomQueue()];
    const headers = { 'idempotency-key': 'order-43' };
    const first = await submit({ type: 'demo.echo', payload: 1, queue: q1 }, headers);
    const second = await submit({ type: 'demo.echo', payload: 1, queue: q2 }, headers);
    assert.equal(first.statusCode, 201);
    assert.equal(second.statusCode, 201);
    assert.notEqual(second.json().id, first.json().id);
    const again = await submit({ type: 'demo.echo', payload: 1, queue: q2 }, headers);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, second.json().id);
  });

  test('cancel answers 200 cancelled; cancelling again is a 409 that writes no event', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    const r = await action(job.id, 'cancel', { reason: 'not needed' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().state, 'cancelled');
    assert.equal(r.json().cancelReason, 'not needed');
    assert.deepEqual(r.json().allowed, ['REDRIVE']);

    const again = await action(job.id, 'cancel');
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'ATS_ERR_TRANSITION_NOT_ALLOWED');
    assert.match(again.json().message, /cancelled/);
    assert.match(again.json().message, /REDRIVE/);
    const events = await t.store.getEvents(job.id);
    assert.deepEqual(events.map((e) => e.type), ['SUBMITTED', 'CANCEL']);
  });

  test('cancel without a body uses the default reason', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    const r = await action(job.id, 'cancel');
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().cancelReason, 'cancelled');
  });

  test('a cancel whose body is the JSON null (not an object, not no body) is refused 400 and cancels nothing', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    const r = await t.app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, headers: { 'content-type': 'application/json' }, payload: 'null' });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
    assert.equal((await get(job.id)).state, 'pending');
  });

  test('a done job cannot be cancelled or redriven, and nothing is written', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    const now = t.clock.now();
    for (const event of [
      { type: 'PUBLISHED', attempt: 1 },
      { type: 'STARTED', attempt: 1, leaseUntil: now + 60_000, workerId: 'w1' },
      { type: 'SUCCEEDED', attempt: 1, result: { echoed: true } },
    ] as const) {
      assert.equal((await t.transitions.apply(job.id, event)).ok, true, event.type);
    }
    const done = await get(job.id);
    assert.equal(done.state, 'done');
    assert.deepEqual(done.result, { echoed: true });
    assert.deepEqual(done.allowed, []);

    for (const what of ['cancel', 'redrive'] as const) {
      const r = await action(job.id, what);
      assert.equal(r.statusCode, 409, what);
      assert.equal(r.json().code, 'ATS_ERR_TRANSITION_NOT_ALLOWED');
      assert.match(r.json().message, /state done/);
    }
    assert.equal((await t.store.getEvents(job.id)).length, 4);
    assert.equal((await get(job.id)).version, 4);
  });

  test('redrive puts a cancelled job back to pending; a pending job cannot be redriven', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    assert.equal((await action(job.id, 'cancel')).statusCode, 200);
    const r = await action(job.id, 'redrive');
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().state, 'pending');
    assert.deepEqual(r.json().allowed, ['CANCEL']);
    assert.equal(r.json().cancelReason, null);

    const again = await action(job.id, 'redrive');
    assert.equal(again.statusCode, 409);
    assert.match(again.json().message, /state pending.*CANCEL/);
    assert.deepEqual((await get(job.id)).events.map((e) => e.type), ['SUBMITTED', 'CANCEL', 'REDRIVE']);
  });

  test('a redrive takes no fields: an empty body is one, a field (new attempts, a reason) is a 400 that redrives nothing', async () => {
    const job = await created({ type: 'demo.echo', payload: 1, queue: randomQueue() });
    assert.equal((await action(job.id, 'cancel')).statusCode, 200);
    for (const body of [{ maxAttempts: 10 }, { reason: 'again' }]) {
      const r = await action(job.id, 'redrive', body);
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
      assert.match(r.json().message, new RegExp(Object.keys(body)[0]!));
    }
    assert.deepEqual((await get(job.id)).events.map((e) => e.type), ['SUBMITTED', 'CANCEL']);
    const r = await action(job.id, 'redrive', {});
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().state, 'pending');
  });

  test('an unknown id is a 404 for GET, cancel and redrive', async () => {
    const unknown = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    for (const r of [
      await t.app.inject({ url: `/v1/jobs/${unknown}` }),
      await action(unknown, 'cancel'),
      await action(unknown, 'redrive'),
    ]) {
      assert.equal(r.statusCode, 404);
      assert.deepEqual(Object.keys(r.json()).sort(), ['code', 'message']);
      assert.equal(r.json().code, 'ATS_ERR_JOB_NOT_FOUND');
    }
  });

  test('list pages newest first with a cursor and filters by type, queue and state', async () => {
    const queue = randomQueue();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await created({ type: i % 2 ? 'demo.odd' : 'demo.even', payload: i, queue })).id);
    const newestFirst = [...ids].reverse();

    const pages = await pageIds(t.app, `/v1/jobs?queue=${queue}&limit=3`, 'jobs');
    assert.deepEqual(pages.map((page) => page.length), [3, 3, 1]);
    assert.deepEqual(pages.flat(), newestFirst);

    const odd = (await t.app.inject({ url: `/v1/jobs?queue=${queue}&type=demo.odd` })).json();
    assert.deepEqual(odd.jobs.map((j: JobView) => j.id), newestFirst.filter((id) => ids.indexOf(id) % 2 === 1));
    assert.equal(odd.nextCursor, null);

    await action(ids[0]!, 'cancel');
    await action(ids[3]!, 'cancel');
    const cancelled = (await t.app.inject({ url: `/v1/jobs?queue=${queue}&state=cancelled` })).json();
    assert.deepEqual(cancelled.jobs.map((j: JobView) => j.id), [ids[3], ids[0]]);
    const pending = (await t.app.inject({ url: `/v1/jobs?queue=${queue}&state=pending&limit=500` })).json();
    assert.equal(pending.jobs.length, 5);
  });

  test('a page ends where its payloads pass the page\'s bytes, with a cursor to the rest; a job larger than that comes alone', async () => {
    const small = await startTestApp({ limits: { bodyLimitBytes: 1024 * 1024, listPageBytes: 30_000 } });
    try {
      const queue = randomQueue();
      const ids: string[] = [];
      const submitOne = async (payloadBytes: number) => {
        const r = await small.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: 'x'.repeat(payloadBytes), queue } });
        assert.equal(r.statusCode, 201, r.body);
        ids.push((r.json() as JobView).id);
      };
      for (let i = 0; i < 5; i++) await submitOne(10_000);
      await submitOne(50_000); // the newest
      const pages = await pageIds(small.app, `/v1/jobs?queue=${queue}&limit=500`, 'jobs');
      // Two jobs of 10 KB (and their snapshots) fit in 30,000 bytes, three do not.
      const [j0, j1, j2, j3, j4, big] = ids;
      assert.deepEqual(pages, [[big], [j4, j3], [j2, j1], [j0]]);
    } finally {
      await small.close();
    }
  });

  test('list filters by submit time: createdAfter inclusive, createdBefore exclusive; a bad time is a 400', async () => {
    const queue = randomQueue();
    const jobs: JobView[] = [];
    for (let i = 0; i < 3; i++) {
      if (i) await new Promise((r) => setTimeout(r, 5)); // distinct createdAt
      jobs.push(await created({ type: 'demo.echo', payload: i, queue }));
    }
    const [a, b, c] = jobs as [JobView, JobView, JobView];
    const list = async (query: string) => {
      const r = await t.app.inject({ url: `/v1/jobs?queue=${queue}&${query}` });
      assert.equal(r.statusCode, 200, r.body);
      return (r.json() as { jobs: JobView[] }).jobs.map((j) => j.id);
    };
    assert.deepEqual(await list(`createdAfter=${encodeURIComponent(b.createdAt)}`), [c.id, b.id]);
    assert.deepEqual(await list(`createdBefore=${encodeURIComponent(b.createdAt)}`), [a.id]);
    assert.deepEqual(await list(`createdAfter=${encodeURIComponent(a.createdAt)}&createdBefore=${encodeURIComponent(c.createdAt)}`), [b.id, a.id]);
    // Another offset names the same instant.
    const local = new Date(Date.parse(b.createdAt)).toISOString().replace('Z', '+00:00');
    assert.deepEqual(await list(`createdAfter=${encodeURIComponent(local)}&limit=1`), [c.id]);
    for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '2026-01-01']) {
      const r = await t.app.inject({ url: `/v1/jobs?createdAfter=${encodeURIComponent(bad)}` });
      assert.equal(r.statusCode, 400, bad);
      assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
    }
  });

  test('stats count jobs per state, type and queue', async () => {
    const queue = randomQueue();
    await created({ type: 'demo.stats', payload: 1, queue });
    const b = await created({ type: 'demo.stats', payload: 2, queue });
    await action(b.id, 'cancel');
    const r = await t.app.inject({ url: '/v1/stats' });
    assert.equal(r.statusCode, 200);
    const stats = r.json();
    assert.deepEqual(stats.byQueue[queue], { pending: 1, cancelled: 1 });
    const sum = Object.values(stats.byState as Record<string, number>).reduce((a, n) => a + n, 0);
    assert.equal(stats.total, sum);
    assert.ok(stats.total >= 2);
  });
});
