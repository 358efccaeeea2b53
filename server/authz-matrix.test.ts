/**
 * The authorization matrix: every route of `ROUTE_SCOPES` × no key and each
 * single scope × an object of the caller's own tenant and of another tenant,
 * on the real MariaDB. The expected status of every cell comes from the one
 * table: no key 401; a key without the route's scope 403, changing nothing;
 * with it, the route answers for an object of its own tenant, and for another
 * tenant's object 404 (never 403: that would confirm it exists), while lists
 * and counts hold only the caller's tenant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { createMachine } from 'xstate';
import { SCOPES, type Scope } from '../engine/auth.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startTestApp, type TestApp } from '../tests/helpers/app.js';
import { makeKey } from '../tests/helpers/keys.js';
import { PUBLIC, ROUTE_SCOPES } from './auth.js';

const mysqlReady = await requireMysql();

const TENANTS = ['acme', 'globex'] as const;
type Tenant = (typeof TENANTS)[number];
type Who = Scope | 'none';
const WHO: readonly Who[] = ['none', ...SCOPES];

interface Fixture {
  t: TestApp;
  /** Every-scope key headers per tenant: to make and inspect objects. */
  admin: Map<Tenant, Record<string, string>>;
  /** Single-scope key headers per tenant and scope. */
  single: Map<string, Record<string, string>>;
}

let seq = 0;
const unique = (p: string) => `${p}-${++seq}`;

async function call(f: Fixture, tenant: Tenant, req: InjectOptions): Promise<{ status: number; body: any }> {
  const res = await f.t.app.inject({ ...req, headers: { ...(req.headers as Record<string, string>), ...f.admin.get(tenant) } });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : null };
}

async function newJob(f: Fixture, tenant: Tenant, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await call(f, tenant, { method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { tenant }, ...extra } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id as string;
}

async function cancelledJob(f: Fixture, tenant: Tenant): Promise<string> {
  const id = await newJob(f, tenant);
  assert.equal((await call(f, tenant, { method: 'POST', url: `/v1/jobs/${id}/cancel` })).status, 200);
  return id;
}

async function newSchedule(f: Fixture, tenant: Tenant): Promise<string> {
  const name = unique('sched');
  const r = await call(f, tenant, { method: 'POST', url: '/v1/schedules', payload: { name, cron: '0 3 * * *', type: 'demo.echo' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return name;
}

async function newLimit(f: Fixture, tenant: Tenant): Promise<string> {
  const key = unique('limit');
  const r = await call(f, tenant, { method: 'PUT', url: `/v1/limits/${key}`, payload: { concurrency: 2 } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return key;
}

async function newKeyId(f: Fixture, tenant: Tenant): Promise<string> {
  const r = await call(f, tenant, { method: 'POST', url: '/v1/keys', payload: { name: unique('k'), scopes: ['read'] } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id as string;
}

/** A workflow that takes GO in either of its states, for ever: every signal of the matrix is taken. */
const PING_PONG = createMachine({ id: 'ping-pong', initial: 'ping', states: { ping: { on: { GO: 'pong' } }, pong: { on: { GO: 'ping' } } } });

async function newWorkflow(f: Fixture, tenant: Tenant): Promise<string> {
  const r = await call(f, tenant, { method: 'POST', url: '/v1/workflows', payload: { name: 'ping-pong', input: { tenant } } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id as string;
}

/** An instance that has ended (cancelled): a wait for its end answers at once. */
async function endedWorkflow(f: Fixture, tenant: Tenant): Promise<string> {
  const id = await newWorkflow(f, tenant);
  assert.equal((await call(f, tenant, { method: 'POST', url: `/v1/workflows/${id}/cancel` })).status, 200);
  return id;
}

/**
 * A route's cell: `prepare` makes what the request acts on in `owner`'s
 * tenant and returns the request; `allowed` are the statuses of an allowed
 * request on its own tenant's object. `ofOther: 'not-found'` for routes of
 * one object; `'own-only'` for lists and counts, checked by `seesOnly`.
 */
interface RouteCase {
  prepare(f: Fixture, owner: Tenant): Promise<InjectOptions & { marker?: string }>;
  allowed: readonly number[];
  ofOther: 'not-found' | 'own-only' | 'created-own';
  /** For 'own-only': whether the body of a caller of `caller` mentions the marker made by another tenant. */
  mentions?(body: unknown, marker: string): boolean;
}

const mentionsText = (body: unknown, marker: string) => JSON.stringify(body).includes(marker);

const CASES = new Map<string, RouteCase>([
  ['POST /v1/jobs', { prepare: async () => ({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {} } }), allowed: [201], ofOther: 'created-own' }],
  ['POST /v1/jobs/batch', { prepare: async () => ({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: [{ type: 'demo.echo', payload: {} }] } }), allowed: [200, 201, 207], ofOther: 'created-own' }],
  ['GET /v1/jobs', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/jobs?limit=500', marker: await newJob(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['GET /v1/jobs/:id', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/jobs/${await newJob(f, owner)}` }), allowed: [200], ofOther: 'not-found' }],
  ['POST /v1/jobs/:id/cancel', { prepare: async (f, owner) => ({ method: 'POST', url: `/v1/jobs/${await newJob(f, owner)}/cancel` }), allowed: [200], ofOther: 'not-found' }],
  ['POST /v1/jobs/:id/redrive', { prepare: async (f, owner) => ({ method: 'POST', url: `/v1/jobs/${await cancelledJob(f, owner)}/redrive` }), allowed: [200], ofOther: 'not-found' }],
  ['DELETE /v1/jobs/:id', { prepare: async (f, owner) => ({ method: 'DELETE', url: `/v1/jobs/${await cancelledJob(f, owner)}` }), allowed: [204], ofOther: 'not-found' }],
  ['GET /v1/jobs/:id/verify', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/jobs/${await newJob(f, owner)}/verify` }), allowed: [200], ofOther: 'not-found' }],
  ['POST /v1/workflows', { prepare: async () => ({ method: 'POST', url: '/v1/workflows', payload: { name: 'ping-pong' } }), allowed: [201], ofOther: 'created-own' }],
  ['GET /v1/workflows', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/workflows?limit=500', marker: await newWorkflow(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['GET /v1/workflows/:id', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/workflows/${await newWorkflow(f, owner)}` }), allowed: [200], ofOther: 'not-found' }],
  ['GET /v1/workflows/:id/events', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/workflows/${await newWorkflow(f, owner)}/events` }), allowed: [200], ofOther: 'not-found' }],
  ['POST /v1/workflows/:id/events', {
    prepare: async (f, owner) => ({ method: 'POST', url: `/v1/workflows/${await newWorkflow(f, owner)}/events`, payload: { type: 'GO' } }), allowed: [200], ofOther: 'not-found',
  }],
  ['POST /v1/workflows/:id/cancel', { prepare: async (f, owner) => ({ method: 'POST', url: `/v1/workflows/${await newWorkflow(f, owner)}/cancel` }), allowed: [200], ofOther: 'not-found' }],
  ['DELETE /v1/workflows/:id', { prepare: async (f, owner) => ({ method: 'DELETE', url: `/v1/workflows/${await endedWorkflow(f, owner)}` }), allowed: [204], ofOther: 'not-found' }],
  ['GET /v1/workflows/:id/verify', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/workflows/${await newWorkflow(f, owner)}/verify` }), allowed: [200], ofOther: 'not-found' }],
  ['GET /v1/workflows/:id/wait', {
    prepare: async (f, owner) => ({ method: 'GET', url: `/v1/workflows/${await endedWorkflow(f, owner)}/wait?until=done&timeoutMs=0` }), allowed: [200], ofOther: 'not-found',
  }],
  ['GET /v1/workflows/:id/graph', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/workflows/${await newWorkflow(f, owner)}/graph` }), allowed: [200], ofOther: 'not-found' }],
  ['GET /v1/stats', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/stats', marker: await newJobOfType(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['GET /v1/stats/edges', { prepare: async () => ({ method: 'GET', url: '/v1/stats/edges' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/stats/outbox', { prepare: async () => ({ method: 'GET', url: '/v1/stats/outbox' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/machine', { prepare: async () => ({ method: 'GET', url: '/v1/machine' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/insights', { prepare: async () => ({ method: 'GET', url: '/v1/insights' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/workers', { prepare: async () => ({ method: 'GET', url: '/v1/workers' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/schedules', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/schedules', marker: await newSchedule(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['GET /v1/schedules/:name', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/schedules/${await newSchedule(f, owner)}` }), allowed: [200], ofOther: 'not-found' }],
  ['POST /v1/schedules', {
    prepare: async () => ({ method: 'POST', url: '/v1/schedules', payload: { name: unique('created'), cron: '0 3 * * *', type: 'demo.echo' } }), allowed: [201], ofOther: 'created-own',
  }],
  ['PATCH /v1/schedules/:name', {
    prepare: async (f, owner) => ({ method: 'PATCH', url: `/v1/schedules/${await newSchedule(f, owner)}`, payload: { paused: true } }), allowed: [200], ofOther: 'not-found',
  }],
  ['DELETE /v1/schedules/:name', { prepare: async (f, owner) => ({ method: 'DELETE', url: `/v1/schedules/${await newSchedule(f, owner)}` }), allowed: [204], ofOther: 'not-found' }],
  ['GET /v1/limits', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/limits', marker: await newLimit(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['GET /v1/limits/:key', { prepare: async (f, owner) => ({ method: 'GET', url: `/v1/limits/${await newLimit(f, owner)}` }), allowed: [200], ofOther: 'not-found' }],
  ['PUT /v1/limits/:key', {
    // Another tenant's key of the same name is not touched: the PUT makes the caller's own (201).
    prepare: async (f, owner) => ({ method: 'PUT', url: `/v1/limits/${await newLimit(f, owner)}`, payload: { concurrency: 9 } }), allowed: [200], ofOther: 'created-own',
  }],
  ['DELETE /v1/limits/:key', { prepare: async (f, owner) => ({ method: 'DELETE', url: `/v1/limits/${await newLimit(f, owner)}` }), allowed: [204], ofOther: 'not-found' }],
  ['GET /v1/keys/self', { prepare: async () => ({ method: 'GET', url: '/v1/keys/self' }), allowed: [200], ofOther: 'own-only' }],
  ['GET /v1/keys', {
    prepare: async (f, owner) => ({ method: 'GET', url: '/v1/keys', marker: await newKeyId(f, owner) }), allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
  ['POST /v1/keys', { prepare: async () => ({ method: 'POST', url: '/v1/keys', payload: { name: unique('made'), scopes: ['read'] } }), allowed: [201], ofOther: 'created-own' }],
  ['DELETE /v1/keys/:id', { prepare: async (f, owner) => ({ method: 'DELETE', url: `/v1/keys/${await newKeyId(f, owner)}` }), allowed: [204], ofOther: 'not-found' }],
  ['GET /v1/audit', {
    prepare: async (f, owner) => {
      const id = await cancelledJob(f, owner);
      return { method: 'GET', url: '/v1/audit?limit=1000', marker: id };
    },
    allowed: [200], ofOther: 'own-only', mentions: mentionsText,
  }],
]);

/** A job of a type named after its tenant's marker, so per-type counts show whose it is. */
async function newJobOfType(f: Fixture, owner: Tenant): Promise<string> {
  const queue = unique(`q-${owner}`);
  await newJob(f, owner, { queue });
  return queue;
}

/** Routes the matrix does not drive through inject: the stream (a WebSocket; server/auth.test.ts and the stream tests cover it). */
const NOT_INJECTED = new Set(['GET /v1/stream']);

describe('the authorization matrix (every route × every scope × own and other tenant)', () => {
  let f: Fixture;
  const results: string[] = [];
  before(async () => {
    assert.ok(mysqlReady);
    // Keys and the audit log in the app's own store (MariaDB), as the api role runs them.
    const t = await startTestApp({}, { auth: 'auto', workflows: registerDemoHandlers(new HandlerRegistry()).workflow('ping-pong', PING_PONG) });
    const admin = new Map<Tenant, Record<string, string>>();
    const single = new Map<string, Record<string, string>>();
    for (const tenant of TENANTS) {
      admin.set(tenant, (await makeKey(t.store, tenant, SCOPES, `all-${tenant}`)).headers);
      for (const s of SCOPES) single.set(`${tenant}/${s}`, (await makeKey(t.store, tenant, [s], `${s}-${tenant}`)).headers);
    }
    f = { t, admin, single };
  });
  after(async () => {
    console.log(`authorization matrix: ${results.length} cells`);
    await f?.t.close();
  });

  test('every route of ROUTE_SCOPES is in the matrix (or named as driven elsewhere)', () => {
    const routes = [...ROUTE_SCOPES].filter(([, a]) => a !== PUBLIC).map(([r]) => r);
    assert.deepEqual(routes.filter((r) => !CASES.has(r) && !NOT_INJECTED.has(r)), []);
  });

  for (const [route, rc] of CASES) {
    const needs = ROUTE_SCOPES.get(route)!;
    test(`${route} (needs ${needs})`, async () => {
      for (const who of WHO) {
        for (const relation of ['own', 'other'] as const) {
          const caller: Tenant = 'acme';
          const owner: Tenant = relation === 'own' ? 'acme' : 'globex';
          const req = await rc.prepare(f, owner);
          const headers = who === 'none' ? {} : f.single.get(`${caller}/${who}`)!;
          const res = await f.t.app.inject({ ...req, headers: { ...(req.headers as Record<string, string>), ...headers } });
          const cell = `${route} as ${who} on ${relation}: ${res.statusCode}`;
          results.push(cell);
          if (who === 'none') {
            assert.equal(res.statusCode, 401, cell);
          } else if (who !== needs) {
            assert.equal(res.statusCode, 403, cell);
            assert.equal(res.json().code, 'ATS_ERR_FORBIDDEN', cell);
          } else if (relation === 'own' || rc.ofOther === 'created-own') {
            assert.ok(rc.allowed.includes(res.statusCode) || (rc.ofOther === 'created-own' && res.statusCode === 201), `${cell} ${res.body.slice(0, 300)}`);
            // A list shows its own tenant's object (so that its not showing another's means something).
            if (rc.mentions && req.marker) assert.equal(rc.mentions(res.json(), req.marker), true, `${cell}: does not show acme's own ${req.marker}`);
          } else if (rc.ofOther === 'not-found') {
            assert.equal(res.statusCode, 404, `${cell} ${res.body.slice(0, 300)}`);
          } else {
            assert.ok(rc.allowed.includes(res.statusCode), cell);
            if (rc.mentions && req.marker) assert.equal(rc.mentions(res.json(), req.marker), false, `${cell}: shows globex's ${req.marker}`);
          }
        }
      }
    });
  }

  test('a PUT of a limit key another tenant has sets the caller\'s own; the other\'s is as it was', async () => {
    const key = await newLimit(f, 'globex');
    const put = await f.t.app.inject({ method: 'PUT', url: `/v1/limits/${key}`, payload: { concurrency: 9 }, headers: f.single.get('acme/admin')! });
    assert.equal(put.statusCode, 201);
    assert.equal((await call(f, 'globex', { method: 'GET', url: `/v1/limits/${key}` })).body.concurrency, 2);
    assert.equal((await call(f, 'acme', { method: 'GET', url: `/v1/limits/${key}` })).body.concurrency, 9);
  });

  test('a refused request changed nothing: another tenant\'s objects are as they were', async () => {
    // Cancel, redrive and delete of globex's objects by acme's operators were all 404: globex's job is still pending.
    const id = await newJob(f, 'globex');
    for (const url of [`/v1/jobs/${id}/cancel`, `/v1/jobs/${id}/redrive`]) {
      const res = await f.t.app.inject({ method: 'POST', url, headers: f.single.get('acme/operate')! });
      assert.equal(res.statusCode, 404);
    }
    assert.equal((await f.t.app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: f.single.get('acme/operate')! })).statusCode, 404);
    const after = await call(f, 'globex', { method: 'GET', url: `/v1/jobs/${id}` });
    assert.equal(after.status, 200);
    assert.equal(after.body.state, 'pending');
    // Signal and cancel of globex's workflow by acme's keys were 404: it is where it was, at version 1.
    const wf = await newWorkflow(f, 'globex');
    assert.equal((await f.t.app.inject({ method: 'POST', url: `/v1/workflows/${wf}/events`, payload: { type: 'GO' }, headers: f.single.get('acme/submit')! })).statusCode, 404);
    assert.equal((await f.t.app.inject({ method: 'POST', url: `/v1/workflows/${wf}/cancel`, headers: f.single.get('acme/operate')! })).statusCode, 404);
    const wfAfter = await call(f, 'globex', { method: 'GET', url: `/v1/workflows/${wf}` });
    assert.deepEqual([wfAfter.status, wfAfter.body.version, wfAfter.body.status, wfAfter.body.value], [200, 1, 'active', 'ping']);
    // A delete of globex's ended instance by acme's operator was a 404: it is still there, with its history.
    const ended = await endedWorkflow(f, 'globex');
    assert.equal((await f.t.app.inject({ method: 'DELETE', url: `/v1/workflows/${ended}`, headers: f.single.get('acme/operate')! })).statusCode, 404);
    const endedAfter = await call(f, 'globex', { method: 'GET', url: `/v1/workflows/${ended}/events` });
    assert.deepEqual([endedAfter.status, endedAfter.body.events.length], [200, 2]);
  });
});
