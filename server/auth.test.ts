/**
 * Keys and scopes at the door (server/auth.ts): who gets in, with what, and
 * when the API is open without keys.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import { WebSocket } from 'ws';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { silentLogger } from '../engine/logger.js';
import { TransitionService } from '../engine/transitions.js';
import { SCOPES } from '../engine/auth.js';
import type { Clock } from '../engine/ports.js';
import { authWith, MemoryKeyStore } from '../tests/helpers/keys.js';
import { ManualClock } from '../tests/helpers/manual-clock.js';
import { startSqliteTestApp, TEST_DEFAULTS, testClock, type TestApp } from '../tests/helpers/app.js';
import { buildApp } from './app.js';
import { streamPlugin } from './stream/plugin.js';
import {
  accessOf, AUTH_FAILURES_PER_MINUTE, AUTH_FAILURES_TRACKED_MAX, AuthFailures, KEY_CACHE_MS, KeyCaches, presentedKey, PUBLIC, ROUTE_SCOPES,
} from './auth.js';
import type { AppDeps } from './deps.js';

const job = { type: 'demo.echo', payload: { n: 1 } };

async function appWith(overrides: Partial<AppDeps>): Promise<TestApp> {
  return startSqliteTestApp(overrides);
}

describe('auth: keys required once a key exists', () => {
  let t: TestApp;
  let keys: MemoryKeyStore;
  let clock: ManualClock;
  let reader: Awaited<ReturnType<MemoryKeyStore['make']>>;
  let submitter: Awaited<ReturnType<MemoryKeyStore['make']>>;
  before(async () => {
    keys = new MemoryKeyStore();
    clock = new ManualClock();
    reader = await keys.make('acme', ['read']);
    submitter = await keys.make('acme', ['submit', 'read']);
    t = await appWith({ auth: authWith(keys), clock: clock as Clock });
  });
  after(() => t.close());

  test('no key: 401 with WWW-Authenticate, and nothing is written', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: job });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().code, 'ATS_ERR_UNAUTHORIZED');
    assert.match(String(res.headers['www-authenticate']), /^Bearer/);
    assert.equal((await t.store.listJobs({ limit: 10 })).length, 0);
  });

  test('a key that is not ours, a mistyped secret, or a scheme other than Bearer: 401', async () => {
    const wrongSecret = reader.key.slice(0, -4) + (reader.key.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const authorization of ['Bearer nope', `Bearer ${wrongSecret}`, `Basic ${reader.key}`, `Bearer ${'x'.repeat(5000)}`, 'Bearer']) {
      const res = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization } });
      assert.equal(res.statusCode, 401, authorization.slice(0, 40));
      assert.equal(res.json().code, 'ATS_ERR_UNAUTHORIZED');
      assert.ok(res.body.length < 300, 'the answer does not echo the key');
    }
  });

  test('a working key with the scope gets in; without the scope: 403, nothing written', async () => {
    const ok = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers });
    assert.equal(ok.statusCode, 200);
    const denied = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: job, headers: reader.headers });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().code, 'ATS_ERR_FORBIDDEN');
    assert.equal((await t.store.listJobs({ limit: 10 })).length, 0);
    const created = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: job, headers: submitter.headers });
    assert.equal(created.statusCode, 201);
  });

  test('health, metrics-free public routes, the console page and the docs need no key', async () => {
    for (const url of ['/healthz', '/readyz', '/docs/json']) {
      const res = await t.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
    }
  });

  test('an unknown route: 401 without a key, 404 with any working key', async () => {
    assert.equal((await t.app.inject({ method: 'GET', url: '/v1/nothing' })).statusCode, 401);
    assert.equal((await t.app.inject({ method: 'GET', url: '/v1/nothing', headers: reader.headers })).statusCode, 404);
  });

  test('a revoked key stops working once the cache has expired (within KEY_CACHE_MS)', async () => {
    const k = await keys.make('acme', ['read']);
    assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: k.headers })).statusCode, 200);
    await keys.revokeKey(k.record.id, clock.now());
    await clock.advance(KEY_CACHE_MS);
    const res = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: k.headers });
    assert.equal(res.statusCode, 401);
  });

  test('a key is read from the store at most once per KEY_CACHE_MS', async () => {
    await clock.advance(KEY_CACHE_MS);
    const before = keys.reads;
    for (let i = 0; i < 20; i++) await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers });
    assert.equal(keys.reads - before, 1);
  });
});

describe('auth: a key revoked through this instance', () => {
  test('is refused at once, however recently it was read: its cached entry is dropped', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const admin = await keys.make('acme');
    const reader = await keys.make('acme', ['read']);
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers })).statusCode, 200);
      const del = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${reader.record.id}`, headers: admin.headers });
      assert.equal(del.statusCode, 204, del.body);
      // The clock has not moved: a cached entry would still be trusted.
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers })).statusCode, 401);
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: admin.headers })).statusCode, 200, 'another key stays');
    } finally {
      await t.close();
    }
  });

  test('every cache of the instance drops it, and a read in flight when it is revoked is not kept', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const k = await keys.make('acme', ['read']);
    const caches = new KeyCaches();
    const [a, b] = [caches.cache(keys, clock), caches.cache(keys, clock)];
    assert.equal((await a.get(k.record.id))?.revokedAt, null);
    assert.equal((await b.get(k.record.id))?.revokedAt, null);
    // A read that began before the revoke and answers after it: the key as it was.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = Object.assign(new MemoryKeyStore(), { getKey: async (id: string) => {
      const before = await keys.getKey(id);
      await gate;
      return before;
    } });
    const c = caches.cache(slow, clock);
    const inFlight = c.get(k.record.id);
    await keys.revokeKey(k.record.id, clock.now());
    caches.revoked(k.record.id);
    release();
    assert.equal((await inFlight)?.revokedAt, null, 'the read answers what it read');
    for (const cache of [a, b]) assert.notEqual((await cache.get(k.record.id))?.revokedAt, null, 'read again, revoked');
    slow.getKey = (id: string) => keys.getKey(id);
    assert.notEqual((await c.get(k.record.id))?.revokedAt, null, 'the stale answer was not kept');
  });

  test('the last key revoked on loopback (auto) opens the API at once', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const admin = await keys.make('default');
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
      const del = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${admin.record.id}`, headers: admin.headers });
      assert.equal(del.statusCode, 204, del.body);
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 200);
    } finally {
      await t.close();
    }
  });
});

describe('auth: a key created through this instance', () => {
  test('the first one closes the open mode (auto, loopback) at once, though no key was counted a moment ago', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 200, 'open: no key yet');
      const made = await t.app.inject({ method: 'POST', url: '/v1/keys', payload: { name: 'first', scopes: ['admin', 'read'] } });
      assert.equal(made.statusCode, 201, made.body);
      // The clock has not moved: a cached count (no key) would still be trusted.
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
      const withKey = { authorization: `Bearer ${made.json().key as string}` };
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: withKey })).statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('a create whose answer was lost after the key was written (the store throws after its commit) still ends the open mode here', async () => {
    const keys = new MemoryKeyStore();
    const createKey = keys.createKey.bind(keys);
    keys.createKey = async (...args: Parameters<MemoryKeyStore['createKey']>) => {
      await createKey(...args);
      throw new Error('the connection closed before the commit was acknowledged');
    };
    const clock = new ManualClock();
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 200, 'open: no key yet');
      const made = await t.app.inject({ method: 'POST', url: '/v1/keys', payload: { name: 'first', scopes: ['admin', 'read'] } });
      assert.notEqual(made.statusCode, 201, made.body);
      // The key exists although its maker never got it: keys are required from now on, here at once.
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
    } finally {
      await t.close();
    }
  });

  test('every cache of the instance counts keys again, and a count read in flight while it is made is not kept', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const caches = new KeyCaches();
    const [a, b] = [caches.cache(keys, clock), caches.cache(keys, clock)];
    assert.equal(await a.anyActive(), false);
    assert.equal(await b.anyActive(), false);
    // A count that began before the create and answers after it: no key, as it was.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = Object.assign(new MemoryKeyStore(), { countActiveKeys: async () => {
      const before = await keys.countActiveKeys();
      await gate;
      return before;
    } });
    const c = caches.cache(slow, clock);
    const inFlight = c.anyActive();
    await keys.make('default');
    caches.created();
    release();
    assert.equal(await inFlight, false, 'the read answers what it read');
    for (const cache of [a, b]) assert.equal(await cache.anyActive(), true, 'counted again: a key exists');
    slow.countActiveKeys = () => keys.countActiveKeys();
    assert.equal(await c.anyActive(), true, 'the stale count was not kept');
  });
});

describe('auth: when the API is open', () => {
  test('no auth deps: every request is the default tenant with every scope', async () => {
    const t = await appWith({});
    try {
      const res = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: job });
      assert.equal(res.statusCode, 201, res.body);
    } finally {
      await t.close();
    }
  });

  test('auto on loopback: open while no key exists, closed from the first key on', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 200);
      await keys.make('default', ['read']);
      await clock.advance(KEY_CACHE_MS);
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
    } finally {
      await t.close();
    }
  });

  test('auto on another interface: never open, even with no key at all', async () => {
    const t = await appWith({ auth: authWith(new MemoryKeyStore()), security: { loopback: false } });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
    } finally {
      await t.close();
    }
  });

  test('on: closed with no key; off: open with keys', async () => {
    const on = await appWith({ auth: authWith(new MemoryKeyStore(), 'on') });
    const withKey = new MemoryKeyStore();
    await withKey.make('acme', ['read']);
    const off = await appWith({ auth: authWith(withKey, 'off') });
    try {
      assert.equal((await on.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
      assert.equal((await off.app.inject({ method: 'POST', url: '/v1/jobs', payload: job })).statusCode, 201);
    } finally {
      await on.close();
      await off.close();
    }
  });
});

describe('auth: the route table', () => {
  test('every route of the OpenAPI document has its scope in ROUTE_SCOPES', async () => {
    const t = await appWith({ auth: authWith(new MemoryKeyStore()) });
    try {
      const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> };
      const missing: string[] = [];
      for (const [path, ops] of Object.entries(doc.paths)) {
        const url = path.replace(/\{(\w+)\}/g, ':$1');
        for (const method of Object.keys(ops)) if (!ROUTE_SCOPES.has(`${method.toUpperCase()} ${url}`)) missing.push(`${method.toUpperCase()} ${url}`);
      }
      assert.deepEqual(missing, []);
    } finally {
      await t.close();
    }
  });

  test('a route in no table needs admin unless its plugin declares a scope; the docs are public', () => {
    assert.equal(accessOf('GET', '/v1/something-new'), 'admin');
    assert.equal(accessOf('GET', '/v1/something-new', 'read'), 'read');
    assert.equal(accessOf('GET', '/v1/something-new', 'root'), 'admin');
    assert.equal(accessOf('HEAD', '/v1/jobs'), 'read');
    assert.equal(accessOf('GET', '/docs/static/index.html'), PUBLIC);
    for (const access of ROUTE_SCOPES.values()) assert.ok(access === PUBLIC || (SCOPES as readonly string[]).includes(access));
  });

  test('the stream takes the key from an ats.key.<key> subprotocol; other routes only from Authorization', () => {
    const req = (headers: Record<string, string>) => ({ headers }) as never;
    assert.equal(presentedKey(req({ 'sec-websocket-protocol': 'ats.v1, ats.key.ats_K' }), '/v1/stream'), 'ats_K');
    assert.equal(presentedKey(req({ 'sec-websocket-protocol': 'ats.v1, ats.key.ats_K' }), '/v1/jobs'), null);
    assert.equal(presentedKey(req({ authorization: 'Bearer ats_B', 'sec-websocket-protocol': 'ats.key.ats_K' }), '/v1/stream'), 'ats_B');
    assert.equal(presentedKey(req({}), '/v1/stream'), null);
  });
});

test('docs/security.md lists every route of ROUTE_SCOPES with its scope, and no other', async () => {
  const { readFile } = await import('node:fs/promises');
  const doc = await readFile(new URL('../docs/security.md', import.meta.url), 'utf8');
  const listed = [...doc.matchAll(/^\| `((?:GET|POST|PUT|PATCH|DELETE) [^`]+)` \| (\w+) \|$/gm)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(listed, [...ROUTE_SCOPES].map(([route, access]) => `${route} ${access}`));
});

describe('auth: the stream', () => {
  let app: FastifyInstance;
  let url = '';
  let keys: MemoryKeyStore;
  let dir = '';
  let store: ReturnType<typeof createSqliteStore>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-auth-stream-'));
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    keys = new MemoryKeyStore();
    const ulid = monotonicFactory();
    app = await buildApp({
      transitions: new TransitionService({ store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() } }),
      store, clock: testClock, checks: { database: () => store.ping() }, limits: { bodyLimitBytes: 1024 * 1024 }, defaults: TEST_DEFAULTS,
      auth: authWith(keys), plugins: [streamPlugin({ store, clock: testClock, logger: silentLogger })],
    });
    url = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws')}/v1/stream`;
  });
  after(async () => {
    await app?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The upgrade's outcome: the HTTP status of a refusal, or the subprotocol selected. */
  function connect(protocols: string[], headers: Record<string, string> = {}): Promise<{ status: number } | { protocol: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers });
      ws.once('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0 });
        res.resume();
        ws.terminate();
      });
      ws.once('open', () => {
        resolve({ protocol: ws.protocol });
        ws.close();
      });
      ws.on('error', reject); // after a refusal, terminate() errors too: the promise is settled by then
    });
  }

  test('without a key, with a bad one, or with a key in the query string: the upgrade is refused 401', async () => {
    const k = await keys.make('acme', ['read']);
    assert.deepEqual(await connect([]), { status: 401 });
    assert.deepEqual(await connect(['ats.v1', 'ats.key.ats_nope']), { status: 401 });
    const inQuery = new WebSocket(`${url}?key=${encodeURIComponent(k.key)}&apiKey=${encodeURIComponent(k.key)}`);
    inQuery.on('error', () => undefined); // terminated before it opened
    const status = await new Promise<number>((resolve) => inQuery.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0)));
    inQuery.terminate();
    assert.equal(status, 401);
  });

  test('a key as the ats.key.<key> subprotocol (beside ats.v1) or as Authorization opens it; ats.v1 is selected, never the key', async () => {
    const k = await keys.make('acme', ['read']);
    assert.deepEqual(await connect(['ats.v1', `ats.key.${k.key}`]), { protocol: 'ats.v1' });
    assert.deepEqual(await connect([], k.headers), { protocol: '' });
  });

  test('a key without the read scope: 403', async () => {
    const k = await keys.make('acme', ['submit']);
    assert.deepEqual(await connect(['ats.v1', `ats.key.${k.key}`]), { status: 403 });
  });
});

describe('auth: made-up keys', () => {
  test(`after ${AUTH_FAILURES_PER_MINUTE} failed keys a minute an address gets 429 with Retry-After, and no key is read for it`, async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    const good = await keys.make('acme', ['read']);
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      const madeUp = (i: number) => `Bearer ats_${String(i).padStart(26, '0')}_${'A'.repeat(43)}`;
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) {
        assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: madeUp(i) } })).statusCode, 401);
      }
      const reads = keys.reads;
      const over = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: madeUp(9999) } });
      assert.equal(over.statusCode, 429);
      assert.equal(over.json().code, 'ATS_ERR_RATE_LIMITED');
      assert.ok(Number(over.headers['retry-after']) > 0);
      assert.equal(keys.reads, reads, 'no key read for a refused address');
      // The address is held off even with a good key until the window ends; then it is served.
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: good.headers })).statusCode, 429);
      await clock.advance(60_000);
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: good.headers })).statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('failed keys are counted per client as the request rate limit counts it: an IPv6 address by its /64', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    await keys.make('acme', ['read']);
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      const send = (remoteAddress: string, i: number) => t.app.inject({
        method: 'GET', url: '/v1/jobs', remoteAddress, headers: { authorization: `Bearer ats_${String(i).padStart(26, '0')}_${'A'.repeat(43)}` },
      });
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) assert.equal((await send('2001:db8::1', i)).statusCode, 401);
      const reads = keys.reads;
      // Other addresses of the same /64 (a client holds the whole prefix): held off, no key read.
      for (const [i, address] of ['2001:db8::2', '2001:db8::ffff:1', '2001:db8:0:0:abcd::7'].entries()) {
        const r = await send(address, 1000 + i);
        assert.equal(r.statusCode, 429, address);
        assert.equal(r.json().code, 'ATS_ERR_RATE_LIMITED');
      }
      assert.equal(keys.reads, reads, 'no key read for the refused /64');
      assert.equal((await send('2001:db8:0:1::1', 2000)).statusCode, 401, 'the next /64 is another client');
    } finally {
      await t.close();
    }
  });

  test('with as many addresses tracked as it keeps, the oldest is let go: the others stay held off', async () => {
    const clock = new ManualClock();
    const failures = new AuthFailures(clock);
    const block = (address: string) => {
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) failures.failed(address);
    };
    block('ip:a');
    await clock.advance(1000);
    block('ip:b');
    for (let i = 2; i < AUTH_FAILURES_TRACKED_MAX; i++) failures.failed(`ip:${i}`);
    assert.ok(failures.retryAfterS('ip:a') > 0 && failures.retryAfterS('ip:b') > 0, 'both held off');
    failures.failed('ip:one-more');
    assert.equal(failures.retryAfterS('ip:a'), 0, 'the oldest is let go');
    assert.ok(failures.retryAfterS('ip:b') > 0, 'the others stay held off');
    // A window that starts again counts from then: it is the newest, let go last.
    await clock.advance(60_000);
    block('ip:b');
    failures.failed('ip:two-more');
    assert.ok(failures.retryAfterS('ip:b') > 0, 'b, held off again in a new window, is kept');
  });

  test('an id found to be no key\'s is read at most once per KEY_CACHE_MS', async () => {
    const keys = new MemoryKeyStore();
    const clock = new ManualClock();
    await keys.make('acme', ['read']);
    const t = await appWith({ auth: authWith(keys), clock: clock as Clock });
    try {
      const before = keys.reads;
      const authorization = `Bearer ats_${'1'.repeat(26)}_${'B'.repeat(43)}`;
      for (let i = 0; i < 5; i++) await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization } });
      assert.equal(keys.reads - before, 1);
    } finally {
      await t.close();
    }
  });

  test('auto on loopback with ATS_ALLOWED_HOSTS naming hosts (exposed through a proxy): never open', async () => {
    const t = await appWith({ auth: authWith(new MemoryKeyStore()), security: { allowedHosts: ['localhost', 'ats.example.com'] } });
    try {
      assert.equal((await t.app.inject({ method: 'GET', url: '/v1/jobs' })).statusCode, 401);
    } finally {
      await t.close();
    }
  });
});
