/**
 * The database goes away under a running API (MariaDB behind a TCP proxy the
 * test cuts): every route that touches the store answers 503
 * ATS_ERR_STORE_UNAVAILABLE with a Retry-After header, never a 500; /readyz
 * says 503 too; each 5xx is logged with its request id (the outage's first
 * 503 as a warning, the next ones at debug); and the API serves again once
 * the database is back, which the log says once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { monotonicFactory } from 'ulid';
import { createMysqlStore, type MysqlStore } from '../adapters/mysql/index.js';
import { Advisor } from '../engine/advisor/advisor.js';
import { createLogger, silentLogger } from '../engine/logger.js';
import { TransitionService } from '../engine/transitions.js';
import type { Clock } from '../engine/ports.js';
import { createProxiedTestStore, requireMysql, type TestDatabase } from '../tests/helpers/mysql.js';
import type { TcpProxy } from '../tests/helpers/tcp-proxy.js';
import { buildApp } from './app.js';
import { OUTAGE_SETTLE_MS } from './error-log.js';
import { TEST_DEFAULTS, testClock } from '../tests/helpers/app.js';

await requireMysql();

describe('the database becomes unreachable under a running API', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let store: MysqlStore;
  let cleanup: (() => Promise<void>) | undefined;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let jobId = '';
  const lines: Array<Record<string, unknown>> = [];
  /** The app's clock, moved on past OUTAGE_SETTLE_MS once the database is back (its 503s then are a while ago). */
  let shift = 0;
  const appClock: Clock = { now: () => testClock.now() + shift, sleep: (ms, signal) => testClock.sleep(ms, signal) };

  before(async () => {
    ({ db, proxy, store, cleanup } = await createProxiedTestStore({ poolSize: 3, connectTimeoutMs: 1000 }));
    const ulid = monotonicFactory();
    const transitions = new TransitionService({ store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() } });
    const advisor = new Advisor({ store, clock: testClock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 1000 });
    app = await buildApp({
      transitions, store, clock: appClock, advisor,
      checks: { database: () => store.ping() },
      limits: { bodyLimitBytes: 1024 * 1024, readyTimeoutMs: 1000 },
      defaults: TEST_DEFAULTS,
      logger: createLogger('debug', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    });
    const created = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { a: 1 } } });
    assert.equal(created.statusCode, 201, created.body);
    jobId = created.json().id;
    // The advisor has learned the job's type: its insights read the type's handler timeout from the store.
    await advisor.init();
    await advisor.catchUp();
    await proxy.cut();
  });

  after(async () => {
    await app?.close();
    await cleanup?.();
  });

  const routes: Array<[string, () => InjectOptions]> = [
    ['POST /v1/jobs', () => ({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { a: 2 } } })],
    ['POST /v1/jobs with an Idempotency-Key', () => ({ method: 'POST', url: '/v1/jobs', headers: { 'idempotency-key': 'k-1' }, payload: { type: 'demo.echo', payload: {} } })],
    ['POST /v1/jobs/batch', () => ({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: [{ type: 'demo.echo', payload: 1 }, { type: 'demo.echo', payload: 2, idempotencyKey: 'k-2' }] } })],
    ['GET /v1/jobs', () => ({ method: 'GET', url: '/v1/jobs' })],
    ['GET /v1/jobs?state=pending', () => ({ method: 'GET', url: '/v1/jobs?state=pending' })],
    ['GET /v1/jobs/:id', () => ({ method: 'GET', url: `/v1/jobs/${jobId}` })],
    ['POST /v1/jobs/:id/cancel', () => ({ method: 'POST', url: `/v1/jobs/${jobId}/cancel` })],
    ['POST /v1/jobs/:id/redrive', () => ({ method: 'POST', url: `/v1/jobs/${jobId}/redrive` })],
    ['GET /v1/stats', () => ({ method: 'GET', url: '/v1/stats' })],
    ['GET /v1/insights', () => ({ method: 'GET', url: '/v1/insights' })],
  ];

  const loggedFor = (r: LightMyRequestResponse) => {
    const id = r.headers['x-request-id'];
    assert.ok(typeof id === 'string' && id.length > 0, 'the response names its request id');
    return lines.filter((l) => l.reqId === id);
  };

  const warnings = (code: string) => lines.filter((l) => l.msg === 'request failed: unavailable' && l.level === 'warn' && l.code === code);

  for (const [name, req] of routes) {
    test(`${name}: 503 ATS_ERR_STORE_UNAVAILABLE with Retry-After, logged with its request id`, async () => {
      const r = await app.inject(req());
      assert.equal(r.statusCode, 503, r.body);
      assert.deepEqual(Object.keys(r.json()).sort(), ['code', 'message']);
      assert.equal(r.json().code, 'ATS_ERR_STORE_UNAVAILABLE');
      assert.match(String(r.headers['retry-after']), /^\d+$/);
      const logged = loggedFor(r);
      assert.equal(logged.length, 1, `one log line for the request: ${JSON.stringify(lines.slice(-3))}`);
      // The outage's first 503 is the warning; the ones after it within the minute are at debug.
      assert.equal(logged[0]!.level, name === routes[0]![0] ? 'warn' : 'debug');
      assert.equal(logged[0]!.msg, 'request failed: unavailable');
      assert.equal(logged[0]!.status, 503);
      assert.equal(logged[0]!.code, 'ATS_ERR_STORE_UNAVAILABLE');
      assert.match(String(logged[0]!.cause ?? logged[0]!.err), /ECONN|closed|lost|Pool/i, 'the log names the driver error');
    });
  }

  test('/readyz: 503 ATS_ERR_NOT_READY naming the database, within the ready timeout', async () => {
    const started = Date.now();
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(r.json().code, 'ATS_ERR_NOT_READY');
    assert.match(r.json().message, /database/);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  test('the outage is one warning, however many requests it failed', () => {
    assert.equal(warnings('ATS_ERR_STORE_UNAVAILABLE').length, 1, JSON.stringify(warnings('ATS_ERR_STORE_UNAVAILABLE')));
  });

  test('a plain bug is still a 500 ATS_ERR_INTERNAL, logged with its request id and the error', async () => {
    const broken = await buildApp({
      transitions: new TransitionService({ store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => 'x' } }),
      store: { ...store, stats: async () => { throw new TypeError('cannot read x of undefined'); } },
      clock: testClock, checks: { database: async () => {} }, limits: { bodyLimitBytes: 1024 }, defaults: TEST_DEFAULTS,
      logger: createLogger('info', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    });
    try {
      const r = await broken.inject({ method: 'GET', url: '/v1/stats' });
      assert.equal(r.statusCode, 500);
      assert.deepEqual(r.json(), { code: 'ATS_ERR_INTERNAL', message: 'Internal error' });
      const logged = loggedFor(r);
      assert.equal(logged.length, 1);
      assert.equal(logged[0]!.level, 'error');
      assert.match(String(logged[0]!.err), /cannot read x/);
    } finally {
      await broken.close();
    }
  });

  test('the database back: the same app serves again, and says so once', async () => {
    await proxy.restore();
    shift = OUTAGE_SETTLE_MS;
    const r = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` });
    assert.equal(r.statusCode, 200, r.body);
    const again = lines.filter((l) => l.msg === 'api: request works again' && l.code === 'ATS_ERR_STORE_UNAVAILABLE');
    assert.deepEqual(again.map((l) => [l.level, l.route, l.failures]), [['info', '/v1/jobs/:id', routes.length]]);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
  });
});
