/**
 * The API through a database outage, on SQLite with its reads made to fail
 * as an unreachable store's do: the 503s are logged as an outage (one
 * warning, repeats at debug, one warning a minute, a line once a request
 * that needed the store works again), a 500 every time at error; and
 * `ats_http_responses_total` counts the answers by method, route template
 * and status, every URL no route matched as route="unmatched".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import { PrometheusMetrics } from '../adapters/metrics/prometheus.js';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { OUTAGE_LOG_EVERY_MS } from '../engine/error-backoff.js';
import { AtsError } from '../engine/errors.js';
import { createLogger } from '../engine/logger.js';
import { TransitionService } from '../engine/transitions.js';
import { parseExposition } from '../tests/helpers/exposition.js';
import { ManualClock } from '../tests/helpers/manual-clock.js';
import { TEST_DEFAULTS } from '../tests/helpers/app.js';
import { buildApp } from './app.js';
import { OUTAGE_QUIET_MS, OUTAGE_SETTLE_MS } from './error-log.js';
import { metricsRoute } from './routes/metrics.js';

describe('the API through a database outage', () => {
  let dir: string;
  let store: SqliteStore;
  let app: FastifyInstance;
  const clock = new ManualClock();
  const metrics = new PrometheusMetrics({ defaultMetrics: false });
  const lines: Array<Record<string, unknown>> = [];
  /** What the store's reads do: answer, fail as an unreachable database, or throw a bug. */
  let mode: 'up' | 'down' | 'bug' = 'up';
  let jobId = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-outage-'));
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    // getJob (GET /v1/jobs/:id) and stats (GET /v1/stats) fail as `mode` says; the rest works.
    const faulty = new Proxy(store, {
      get(target, name) {
        const value = Reflect.get(target, name) as unknown;
        if (typeof value !== 'function') return value;
        if ((name === 'getJob' || name === 'stats') && mode !== 'up') {
          return async () => {
            throw mode === 'down' ? new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:3306') : new TypeError('cannot read x of undefined');
          };
        }
        return (value as (...args: unknown[]) => unknown).bind(target);
      },
    });
    const ulid = monotonicFactory();
    app = await buildApp({
      transitions: new TransitionService({ store: faulty, clock, random: { next: Math.random }, ids: { jobId: () => ulid() } }),
      store: faulty, clock, metrics,
      checks: { database: () => faulty.ping() },
      limits: { bodyLimitBytes: 1024 * 1024 },
      defaults: TEST_DEFAULTS,
      logger: createLogger('debug', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
      plugins: [metricsRoute(metrics)],
    });
    const created = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {} } });
    assert.equal(created.statusCode, 201, created.body);
    jobId = created.json().id;
  });

  after(async () => {
    await app?.close();
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const getJob = async (status: number) => {
    const r = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` });
    assert.equal(r.statusCode, status, r.body);
    return r.headers['x-request-id'];
  };
  const failedLines = () => lines.filter((l) => l.msg === 'request failed: unavailable');
  const worksAgain = () => lines.filter((l) => l.msg === 'api: request works again');

  test('many 503s: one warning, each repeat at debug with its request id, one warning a minute, a line once the route works again', async () => {
    mode = 'down';
    const ids: unknown[] = [];
    for (let i = 0; i < 50; i++) ids.push(await getJob(503));
    // A route that needs no store answers through the outage: it does not end it.
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    ids.push(await getJob(503));
    const warned = failedLines().filter((l) => l.level === 'warn');
    assert.equal(warned.length, 1, `one warning for 51 answers: ${warned.length}`);
    assert.deepEqual(
      [warned[0]!.reqId, warned[0]!.method, warned[0]!.url, warned[0]!.status, warned[0]!.code, warned[0]!.failures],
      [ids[0], 'GET', `/v1/jobs/${jobId}`, 503, 'ATS_ERR_STORE_UNAVAILABLE', 1],
    );
    assert.match(String(warned[0]!.err), /ECONNREFUSED/, 'the warning names the underlying error');
    const debug = failedLines().filter((l) => l.level === 'debug');
    assert.deepEqual(debug.map((l) => l.reqId), ids.slice(1), 'each repeat is at debug, with its request id');
    assert.deepEqual(worksAgain(), []);

    await clock.advance(OUTAGE_LOG_EVERY_MS);
    await getJob(503);
    assert.deepEqual(failedLines().filter((l) => l.level === 'warn').map((l) => l.failures), [1, 52], 'a minute on: a warning with the count so far');

    mode = 'up';
    // A 2xx right after the last 503 does not end it yet (the route may be answering both: see below).
    await getJob(200);
    assert.deepEqual(worksAgain(), []);
    await clock.advance(OUTAGE_SETTLE_MS);
    const back = await getJob(200);
    await getJob(200);
    assert.deepEqual(worksAgain().map((l) => [l.level, l.code, l.method, l.route, l.reqId, l.failures]), [
      ['info', 'ATS_ERR_STORE_UNAVAILABLE', 'GET', '/v1/jobs/:id', back, 52],
    ]);

    // The next outage is warned of again, at once.
    mode = 'down';
    await getJob(503);
    mode = 'up';
    await clock.advance(OUTAGE_SETTLE_MS);
    await getJob(200);
    assert.deepEqual(failedLines().filter((l) => l.level === 'warn').map((l) => l.failures), [1, 52, 1]);
    assert.equal(worksAgain().length, 2);
  });

  test('a 503 long after the last of its code, whose route never answered 2xx since, is warned of as a new outage', async () => {
    // A route answers 503 once and is not asked again: the outage's end is never seen.
    mode = 'down';
    await app.inject({ method: 'GET', url: '/v1/stats' });
    mode = 'up';
    const warnedBefore = failedLines().filter((l) => l.level === 'warn').length;
    await clock.advance(OUTAGE_QUIET_MS + 1);
    mode = 'down';
    try {
      await getJob(503);
    } finally {
      mode = 'up';
    }
    const warned = failedLines().filter((l) => l.level === 'warn').slice(warnedBefore);
    assert.deepEqual(warned.map((l) => [l.url, l.failures]), [[`/v1/jobs/${jobId}`, 1]], 'the first of a new outage, not the second of the old one');
    const againBefore = worksAgain().length;
    await clock.advance(OUTAGE_SETTLE_MS);
    await getJob(200);
    assert.deepEqual(worksAgain().slice(againBefore).map((l) => l.failures), [1]);
  });

  test('a route answering its 503 to some requests and 2xx to others (a job a newer deployment wrote): one warning a minute, not two lines a 503', async () => {
    const warnedBefore = failedLines().filter((l) => l.level === 'warn').length;
    const againBefore = worksAgain().length;
    try {
      for (let i = 0; i < 20; i++) {
        mode = 'down';
        await getJob(503);
        mode = 'up';
        await getJob(200);
        await clock.advance(1000);
      }
    } finally {
      mode = 'up';
    }
    const warned = failedLines().filter((l) => l.level === 'warn').slice(warnedBefore);
    assert.deepEqual(warned.map((l) => l.failures), [1], 'one warning for 20 503s within 20 s');
    assert.equal(worksAgain().length - againBefore, 0, 'no works-again line while the 503s go on');
    // Once its 503s stopped for a while, the route's next 2xx ends the outage, with its count.
    await clock.advance(OUTAGE_SETTLE_MS);
    await getJob(200);
    assert.deepEqual(worksAgain().slice(againBefore).map((l) => l.failures), [20]);
  });

  test('a 500 (a bug) is logged at error every time', async () => {
    mode = 'bug';
    const ids: unknown[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const r = await app.inject({ method: 'GET', url: '/v1/stats' });
        assert.equal(r.statusCode, 500, r.body);
        ids.push(r.headers['x-request-id']);
      }
    } finally {
      mode = 'up';
    }
    const errors = lines.filter((l) => l.level === 'error' && ids.includes(l.reqId as string));
    assert.deepEqual(errors.map((l) => [l.msg, l.status, l.code]), Array(3).fill(['request failed', 500, 'ATS_ERR_INTERNAL']));
    assert.match(String(errors[0]!.err), /cannot read x/);
  });

  test('ats_http_responses_total: by method, route template and status; an unmatched URL is route="unmatched"', async () => {
    const count = async () => {
      const { samples } = parseExposition(await (await app.inject({ method: 'GET', url: '/metrics' })).body);
      return samples.filter((s) => s.name === 'ats_http_responses_total');
    };
    const of = (samples: Awaited<ReturnType<typeof count>>, labels: Record<string, string>) =>
      samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value ?? 0;
    const before = await count();
    await getJob(200);
    await getJob(200);
    assert.equal((await app.inject({ method: 'GET', url: '/no/such/route/chosen-by-the-caller' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'PROPFIND', url: '/no/such/route' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'PROPFIND', url: '/v1/jobs' })).statusCode, 405);
    mode = 'down';
    try {
      await getJob(503);
    } finally {
      mode = 'up';
    }
    const now = await count();
    const grew = (labels: Record<string, string>) => of(now, labels) - of(before, labels);
    assert.equal(grew({ method: 'GET', route: '/v1/jobs/:id', status: '200' }), 2);
    assert.equal(grew({ method: 'GET', route: '/v1/jobs/:id', status: '503' }), 1);
    assert.equal(grew({ method: 'GET', route: 'unmatched', status: '404' }), 1);
    assert.equal(grew({ method: 'other', route: 'unmatched', status: '404' }), 1, 'a method outside the fixed set is "other"');
    assert.equal(grew({ method: 'other', route: 'unmatched', status: '405' }), 1, 'a method the path does not take: no route matched either');
    assert.equal(of(now, { method: 'POST', route: '/v1/jobs', status: '201' }), 1, 'the submit of before()');
    assert.equal(of(now, { method: 'GET', route: '/metrics', status: '200' }), 1, 'the scrape before this one');
    for (const s of now) assert.ok(!/chosen-by-the-caller|\/no\/|01[0-9A-HJKMNP-TV-Z]{24}/.test(s.labels.route!), `route ${s.labels.route}`);
  });
});
