/**
 * `/v1/limits` on SQLite (the embedded store): set (201 created, 200
 * replaced, the whole limit replaced), read one, list by key, delete (204,
 * then 404), the attempts of a key running now in each view, and a job's
 * `concurrencyKey` through `POST /v1/jobs`, the batch, `GET /v1/jobs/:id` and
 * the list. An app without the limit store serves no /v1/limits. With keys:
 * each tenant has its own limits (another's is a 404), holding its jobs only.
 * (PUTs and DELETEs of one key at once: limits-race.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { request as httpRequest } from 'node:http';
import { buildApp } from './app.js';
import { randomQueue, startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { injectAs, startTenantApp, type MadeKey } from '../tests/helpers/keys.js';

const put = (key: string, body: unknown): InjectOptions => ({ method: 'PUT', url: `/v1/limits/${key}`, payload: body as object });
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('/v1/limits', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const list = async () => {
    const r = await t.app.inject({ url: '/v1/limits' });
    assert.equal(r.statusCode, 200, r.body);
    return (r.json() as { limits: Array<Record<string, unknown>> }).limits;
  };
  const get = async (key: string) => {
    const r = await t.app.inject({ url: `/v1/limits/${key}` });
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as Record<string, unknown>;
  };
  const submit = async (body: Record<string, unknown>) => {
    const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: randomQueue(), ...body } });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { id: string; concurrencyKey: string | null };
  };
  /** A worker's claim of the job's first attempt, through the transition service (the claim a limit counts). */
  const start = async (id: string) => {
    const now = t.clock.now();
    assert.equal((await t.transitions.apply(id, { type: 'PUBLISHED', attempt: 1 })).ok, true);
    return t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: now + 60_000, workerId: 'w1' });
  };

  test('no limit set: an empty list', async () => {
    assert.deepEqual(await list(), []);
  });

  test('PUT a new key: 201 with its Location and the view; times ISO, nothing running', async () => {
    const r = await t.app.inject(put('email', { concurrency: 5, rate: { max: 100, intervalMs: 60_000 } }));
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.headers.location, 'email');
    const v = r.json();
    assert.deepEqual(Object.keys(v).sort(), ['concurrency', 'createdAt', 'key', 'rate', 'running', 'updatedAt']);
    assert.deepEqual({ ...v, createdAt: undefined, updatedAt: undefined }, {
      key: 'email', concurrency: 5, rate: { max: 100, intervalMs: 60_000 }, running: 0, createdAt: undefined, updatedAt: undefined,
    });
    assert.match(v.createdAt, ISO);
    assert.equal(v.updatedAt, v.createdAt);
    assert.deepEqual(await get('email'), v);
  });

  test('PUT concurrency 0 pauses a key: stored and shown as 0 (not as no cap), with or without a rate', async () => {
    const r = await t.app.inject(put('paused', { concurrency: 0 }));
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.json().concurrency, 0);
    assert.equal((await get('paused')).concurrency, 0);
    const rated = await t.app.inject(put('paused', { concurrency: 0, rate: { max: 5, intervalMs: 1000 } }));
    assert.equal(rated.statusCode, 200, rated.body);
    assert.deepEqual({ concurrency: rated.json().concurrency, rate: rated.json().rate }, { concurrency: 0, rate: { max: 5, intervalMs: 1000 } });
    assert.ok((await list()).some((l) => l.key === 'paused' && l.concurrency === 0));
    assert.equal((await t.app.inject({ method: 'DELETE', url: '/v1/limits/paused' })).statusCode, 204);
  });

  test('PUT an existing key: 200, and the new limit replaces the whole old one (a field left out is no cap)', async () => {
    const before = await get('email');
    await new Promise((r) => setTimeout(r, 5));
    const rateOnly = await t.app.inject(put('email', { rate: { max: 10, intervalMs: 1000 } }));
    assert.equal(rateOnly.statusCode, 200, rateOnly.body);
    assert.equal(rateOnly.headers.location, undefined);
    const v = rateOnly.json();
    assert.equal(v.concurrency, null, 'the concurrency of the old limit is not kept');
    assert.deepEqual(v.rate, { max: 10, intervalMs: 1000 });
    assert.equal(v.createdAt, before.createdAt);
    assert.ok(Date.parse(v.updatedAt) > Date.parse(before.createdAt as string), `${v.updatedAt} after ${before.createdAt}`);

    const concurrencyOnly = await t.app.inject(put('email', { concurrency: 3, rate: null }));
    assert.equal(concurrencyOnly.statusCode, 200, concurrencyOnly.body);
    assert.equal(concurrencyOnly.json().concurrency, 3);
    assert.equal(concurrencyOnly.json().rate, null, 'the rate of the old limit is not kept');
    assert.deepEqual({ ...(await get('email')), updatedAt: undefined }, { ...concurrencyOnly.json(), updatedAt: undefined });
  });

  test('the list holds every limit, by key', async () => {
    for (const key of ['zeta', 'alpha.2', 'alpha:1', 'm-9', 'b_x']) {
      assert.equal((await t.app.inject(put(key, { concurrency: 1 }))).statusCode, 201);
    }
    const keys = (await list()).map((l) => l.key);
    assert.deepEqual(keys, ['alpha.2', 'alpha:1', 'b_x', 'email', 'm-9', 'zeta']);
    assert.deepEqual(keys, [...keys].sort());
    const zeta = (await list()).find((l) => l.key === 'zeta');
    assert.deepEqual({ ...zeta, createdAt: undefined, updatedAt: undefined }, {
      key: 'zeta', concurrency: 1, rate: null, running: 0, createdAt: undefined, updatedAt: undefined,
    });
  });

  test('a key of 200 characters (the longest) and of names like an object\'s own properties are keys like any other', async () => {
    const long = 'k'.repeat(200);
    for (const key of [long, '__proto__', 'constructor', 'hasOwnProperty']) {
      const r = await t.app.inject(put(key, { concurrency: 2 }));
      assert.equal(r.statusCode, 201, `${key.slice(0, 20)}: ${r.body}`);
      assert.equal((await get(key)).key, key);
    }
    assert.ok(!('polluted' in {}), 'Object.prototype was changed');
    for (const key of [long, '__proto__', 'constructor', 'hasOwnProperty']) {
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/limits/${key}` })).statusCode, 204);
    }
  });

  test('DELETE: 204, then the key has no limit: GET and DELETE answer 404 ATS_ERR_LIMIT_NOT_FOUND', async () => {
    const r = await t.app.inject({ method: 'DELETE', url: '/v1/limits/zeta' });
    assert.equal(r.statusCode, 204);
    assert.equal(r.body, '');
    for (const req of [{ url: '/v1/limits/zeta' }, { method: 'DELETE', url: '/v1/limits/zeta' }] as InjectOptions[]) {
      const gone = await t.app.inject(req);
      assert.equal(gone.statusCode, 404, `${req.method ?? 'GET'}: ${gone.body}`);
      assert.deepEqual(Object.keys(gone.json()).sort(), ['code', 'message']);
      assert.equal(gone.json().code, 'ATS_ERR_LIMIT_NOT_FOUND');
      assert.match(gone.json().message, /zeta/);
    }
    assert.ok(!(await list()).some((l) => l.key === 'zeta'));
    // Set again after a delete: created anew.
    assert.equal((await t.app.inject(put('zeta', { concurrency: 1 }))).statusCode, 201);
  });

  test('running: the attempts of the key running now, in GET one and in the list; an attempt that ends stops counting', async () => {
    const key = 'reports';
    assert.equal((await t.app.inject(put(key, { concurrency: 2 }))).statusCode, 201);
    const jobs = [await submit({ concurrencyKey: key }), await submit({ concurrencyKey: key }), await submit({ concurrencyKey: key })];
    // A job of another key, and one without a key, count for none.
    const other = await submit({ concurrencyKey: 'alpha:1' });
    const none = await submit({});
    assert.equal((await start(none.id)).ok, true);
    assert.equal((await get(key)).running, 0);

    assert.equal((await start(jobs[0]!.id)).ok, true);
    assert.equal((await get(key)).running, 1);
    assert.equal((await start(jobs[1]!.id)).ok, true);
    assert.equal((await get(key)).running, 2);
    // The third is over the limit: it is not started, and the count stays.
    const third = await start(jobs[2]!.id);
    assert.equal(third.ok, false);
    assert.equal((await get(key)).running, 2);
    assert.equal((await list()).find((l) => l.key === key)?.running, 2);
    assert.equal((await list()).find((l) => l.key === 'alpha:1')?.running, 0);

    assert.equal((await t.transitions.apply(jobs[0]!.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok, true);
    assert.equal((await get(key)).running, 1);
    assert.equal((await start(other.id)).ok, true);
    assert.equal((await get('alpha:1')).running, 1);
    assert.equal((await list()).find((l) => l.key === key)?.running, 1);
  });

  test('concurrencyKey round-trips: POST /v1/jobs, GET /v1/jobs/:id, the list and the batch; null without one', async () => {
    const queue = randomQueue();
    const keyed = await submit({ concurrencyKey: 'tenant:42', queue });
    assert.equal(keyed.concurrencyKey, 'tenant:42');
    const got = (await t.app.inject({ url: `/v1/jobs/${keyed.id}` })).json();
    assert.equal(got.concurrencyKey, 'tenant:42');
    const plain = await submit({ queue });
    assert.equal(plain.concurrencyKey, null);
    assert.equal((await t.app.inject({ url: `/v1/jobs/${plain.id}` })).json().concurrencyKey, null);
    const page = (await t.app.inject({ url: `/v1/jobs?queue=${queue}` })).json() as { jobs: Array<{ id: string; concurrencyKey: string | null }> };
    assert.deepEqual(new Map(page.jobs.map((j) => [j.id, j.concurrencyKey])), new Map([[keyed.id, 'tenant:42'], [plain.id, null]]));

    const batch = await t.app.inject({
      method: 'POST', url: '/v1/jobs/batch',
      payload: { jobs: [{ type: 'demo.echo', payload: 1, queue, concurrencyKey: 'tenant:7' }, { type: 'demo.echo', payload: 2, queue, concurrencyKey: 'a b' }] },
    });
    assert.equal(batch.statusCode, 200, batch.body);
    const [ok, bad] = batch.json().results as Array<{ status: number; id?: string; code?: string; message?: string }>;
    assert.equal(ok!.status, 201);
    assert.equal((await t.app.inject({ url: `/v1/jobs/${ok!.id}` })).json().concurrencyKey, 'tenant:7');
    assert.equal(bad!.status, 400);
    assert.equal(bad!.code, 'ATS_ERR_VALIDATION');
    assert.match(bad!.message!, /concurrencyKey/);
  });

  test('keys . and .. are refused: fetch, browsers and the CLI resolve their paths to other ones, so such a limit could never be read, changed or deleted', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const before = await list();
    // A client that sends the path as written (curl --path-as-is, node:http) reaches the key itself.
    for (const path of ['/v1/limits/..', '/v1/limits/.', '/v1/limits/%2E%2E']) {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(address);
        const req = httpRequest({ host: u.hostname, port: u.port, path, method: 'PUT', headers: { 'content-type': 'application/json' } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ concurrency: 1 }));
      });
      assert.equal(r.status, 400, `${path}: ${r.body}`);
      assert.equal(JSON.parse(r.body).code, 'ATS_ERR_VALIDATION');
    }
    assert.deepEqual(await list(), before, 'no limit was set');
    for (const concurrencyKey of ['.', '..']) {
      const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: randomQueue(), concurrencyKey } });
      assert.equal(r.statusCode, 400, r.body);
      assert.match(r.json().message, /concurrencyKey/);
    }
  });

  test('the same Idempotency-Key with another concurrencyKey is a conflict; with the same one, the first job', async () => {
    const queue = randomQueue();
    const body = { type: 'demo.echo', payload: 1, queue, concurrencyKey: 'k1' };
    const first = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body, headers: { 'idempotency-key': 'once' } });
    assert.equal(first.statusCode, 201, first.body);
    const again = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body, headers: { 'idempotency-key': 'once' } });
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json().id, first.json().id);
    const other = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { ...body, concurrencyKey: 'k2' }, headers: { 'idempotency-key': 'once' } });
    assert.equal(other.statusCode, 409, other.body);
    assert.equal(other.json().code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
  });

  test('an app without the limit store serves no /v1/limits, and its document has no limit schema', async () => {
    const bare = await buildApp({ ...t.deps, limitStore: undefined });
    try {
      for (const req of [{ url: '/v1/limits' }, put('email', { concurrency: 1 }), { url: '/v1/limits/email' }] as InjectOptions[]) {
        const r = await bare.inject(req);
        assert.equal(r.statusCode, 404, r.body);
        assert.equal(r.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
      }
      const doc = (await bare.inject({ url: '/docs/json' })).json() as { components: { schemas: Record<string, unknown> } };
      for (const name of ['Limit', 'LimitList', 'LimitRate', 'PutLimitRequest']) assert.ok(!(name in doc.components.schemas), name);
    } finally {
      await bare.close();
    }
  });
});

describe('/v1/limits: each tenant has its own', () => {
  type Key = MadeKey;
  let t: TestApp;
  let acme: Key;
  let globex: Key;
  let other: Key;
  before(async () => {
    ({ t, acme, globex, other } = await startTenantApp());
  });
  after(() => t?.close());
  const as = (k: Key, req: InjectOptions) => injectAs(t, k, req);
  const view = async (k: Key, key: string) => {
    const r = await as(k, { url: `/v1/limits/${key}` });
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as { key: string; concurrency: number | null; running: number };
  };
  const listed = async (k: Key) => {
    const r = await as(k, { url: '/v1/limits' });
    assert.equal(r.statusCode, 200, r.body);
    return (r.json().limits as Array<{ key: string; concurrency: number | null; running: number }>).map((l) => [l.key, l.concurrency, l.running]);
  };

  test('two tenants may each set a limit on key email: each is created (201), shown with the bare key, and listed only to its tenant', async () => {
    const a = await as(acme, put('email', { concurrency: 1 }));
    assert.equal(a.statusCode, 201, a.body);
    assert.equal(a.headers.location, 'email');
    assert.equal(a.json().key, 'email');
    const g = await as(globex, put('email', { concurrency: 5 }));
    assert.equal(g.statusCode, 201, g.body);
    assert.equal(g.json().key, 'email');
    assert.equal((await view(acme, 'email')).concurrency, 1);
    assert.equal((await view(globex, 'email')).concurrency, 5);
    assert.deepEqual(await listed(acme), [['email', 1, 0]]);
    assert.deepEqual(await listed(globex), [['email', 5, 0]]);
    assert.deepEqual(await listed(other), []);
    // As stored: tenant-qualified.
    assert.deepEqual((await t.store.listLimits(100)).map((l) => l.key), ['acme/email', 'globex/email']);
  });

  test('another tenant\'s limit is not there: GET and DELETE are 404 (never 403); its PUT sets its own; the first stays', async () => {
    assert.equal((await as(acme, put('smtp', { concurrency: 2 }))).statusCode, 201);
    const before = await view(acme, 'smtp');
    for (const k of [globex, other]) {
      for (const req of [{ url: '/v1/limits/smtp' }, { method: 'DELETE', url: '/v1/limits/smtp' }] as InjectOptions[]) {
        const r = await as(k, req);
        assert.equal(r.statusCode, 404, `${req.method ?? 'GET'} ${r.body}`);
        assert.equal(r.json().code, 'ATS_ERR_LIMIT_NOT_FOUND');
      }
    }
    const own = await as(globex, put('smtp', { concurrency: 9 }));
    assert.equal(own.statusCode, 201, own.body);
    assert.deepEqual(await view(acme, 'smtp'), before);
    assert.equal((await as(globex, { method: 'DELETE', url: '/v1/limits/smtp' })).statusCode, 204);
    assert.deepEqual(await view(acme, 'smtp'), before);
  });

  test('a limit holds only its tenant\'s jobs of the key, and counts only theirs as running', async () => {
    const submit = async (k: Key) => {
      const r = await as(k, { method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: randomQueue(), concurrencyKey: 'email' } });
      assert.equal(r.statusCode, 201, r.body);
      return r.json().id as string;
    };
    const start = async (id: string) => {
      assert.equal((await t.transitions.apply(id, { type: 'PUBLISHED', attempt: 1 })).ok, true);
      return t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: t.clock.now() + 60_000, workerId: 'w1' });
    };
    // acme's email: concurrency 1; globex's: 5.
    const [a1, a2] = [await submit(acme), await submit(acme)];
    const [g1, g2] = [await submit(globex), await submit(globex)];
    assert.equal((await start(a1)).ok, true);
    assert.equal((await start(g1)).ok, true);
    assert.equal((await start(g2)).ok, true);
    const held = await start(a2);
    assert.ok(!held.ok && held.reason === 'throttled');
    assert.equal((await view(acme, 'email')).running, 1);
    assert.equal((await view(globex, 'email')).running, 2);
    assert.deepEqual(await listed(acme), [['email', 1, 1], ['smtp', 2, 0]]);
  });

  test('a tenant has at most 1,000 limits: a new key beyond is 409 ATS_ERR_TOO_MANY_LIMITS, writing nothing; its own keys can still change, and other tenants\' are not counted', async () => {
    // The default tenant's (key `other`), stored bare.
    for (let i = 0; i < 1000; i++) await t.store.putLimit(`k${i}`, { concurrency: 1, rate: null }, t.clock.now());
    const refused = await as(other, put('one-more', { concurrency: 2 }));
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(refused.json().code, 'ATS_ERR_TOO_MANY_LIMITS');
    assert.equal((await as(other, { url: '/v1/limits/one-more' })).statusCode, 404);
    assert.equal((await as(other, put('k0', { concurrency: 3 }))).statusCode, 200, 'a key it has is replaced');
    assert.equal((await listed(other)).length, 1000, 'every limit of the tenant is listed');
    assert.equal((await as(acme, put('fresh', { concurrency: 1 }))).statusCode, 201, 'another tenant sets its own');
    assert.equal((await as(other, { method: 'DELETE', url: '/v1/limits/k1' })).statusCode, 204);
    assert.equal((await as(other, put('one-more', { concurrency: 2 }))).statusCode, 201, 'a place freed is taken');
  });
});
