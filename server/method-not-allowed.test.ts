/**
 * A path the API serves, asked with a method it does not take: 405
 * ATS_ERR_METHOD_NOT_ALLOWED with the Allow header HTTP requires (and the
 * body naming the methods); a path it does not serve stays 404.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { silentLogger } from '../engine/logger.js';
import { startSqliteTestApp, testClock, type TestApp } from '../tests/helpers/app.js';
import { buildApp } from './app.js';
import { metricsRoute } from './routes/metrics.js';
import { streamPlugin } from './stream/index.js';
import { uiPlugin } from './ui/index.js';

const JOB_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

function assert405(r: LightMyRequestResponse, allow: string, what: string): void {
  assert.equal(r.statusCode, 405, `${what}: ${r.body}`);
  assert.equal(r.headers.allow, allow, what);
  if (r.body === '') return; // a HEAD's answer has no body
  const body = r.json() as { code: string; message: string };
  assert.equal(body.code, 'ATS_ERR_METHOD_NOT_ALLOWED', what);
  assert.ok(body.message.includes(allow), `${what}: the message names the methods: ${body.message}`);
}

describe('a method the path does not take', () => {
  let t: TestApp;
  let app: FastifyInstance;
  before(async () => {
    t = await startSqliteTestApp();
    // The same store and deps with the plugins mounted (closed before `t.close()` closes the first app and the store).
    app = await buildApp({
      ...t.deps,
      plugins: [
        streamPlugin({ store: t.store, clock: testClock, logger: silentLogger }),
        uiPlugin,
        metricsRoute({ contentType: 'text/plain', metrics: async () => '' }),
      ],
    });
  });
  after(async () => {
    await app?.close();
    await t?.close();
  });
  const call = (method: InjectOptions['method'], url: string) => app.inject({ method, url });

  test('DELETE /v1/stats is 405 with Allow: GET, HEAD, naming them', async () => {
    const r = await call('DELETE', '/v1/stats');
    assert405(r, 'GET, HEAD', 'DELETE /v1/stats');
    assert.match(r.json().message, /DELETE/);
  });

  test('a path with parameters, or a query: the methods of the route it matches', async () => {
    assert405(await call('PUT', `/v1/jobs/${JOB_ID}`), 'GET, HEAD, DELETE', 'PUT a job');
    assert405(await call('PATCH', `/v1/jobs/${JOB_ID}?x=1`), 'GET, HEAD, DELETE', 'PATCH a job, with a query');
    assert405(await call('PUT', '/v1/schedules/nightly'), 'GET, HEAD, PATCH, DELETE', 'PUT a schedule');
    assert405(await call('DELETE', '/v1/jobs'), 'GET, HEAD, POST', 'DELETE the job list');
    assert405(await call('POST', '/v1/limits'), 'GET, HEAD', 'POST the limit list');
    assert405(await call('POST', '/healthz'), 'GET, HEAD', 'POST /healthz');
    assert405(await call('GET', `/v1/jobs/${JOB_ID}/cancel`), 'POST', 'GET a cancel');
    // The batch's POST, and a job's GET and DELETE (the id "batch" is then a 400): each route that matches counts.
    assert405(await call('PUT', '/v1/jobs/batch'), 'GET, HEAD, POST, DELETE', 'PUT /v1/jobs/batch');
  });

  test('HEAD where there is no GET is 405, without a body', async () => {
    const r = await call('HEAD', `/v1/jobs/${JOB_ID}/cancel`);
    assert405(r, 'POST', 'HEAD a cancel');
    assert.equal(r.body, '');
  });

  test('OPTIONS without CORS: 405 as well', async () => {
    assert405(await call('OPTIONS', '/v1/stats'), 'GET, HEAD', 'OPTIONS /v1/stats');
  });

  test('routes of plugins count: the stream, the UI, /metrics, /docs', async () => {
    for (const url of ['/v1/stream', '/ui', '/ui/assets/app.js', '/metrics', '/docs/json', '/', '/docs/static/index.html']) {
      assert405(await call('POST', url), 'GET, HEAD', `POST ${url}`);
    }
  });

  test('a path no route serves stays 404 ATS_ERR_ROUTE_NOT_FOUND, whatever the method', async () => {
    const long = 'a'.repeat(300);
    for (const [method, url] of [
      ['GET', '/v2/jobs'], ['DELETE', '/v2/jobs'], ['POST', '/v1/stats/x'], ['PUT', `/v1/jobs/${JOB_ID}/nope`],
      // A parameter over its length: no route of another method is served there.
      ['PATCH', `/v1/jobs/${long}/nope`], ['PUT', `/v1/jobs/${long}`],
    ] as const) {
      const r = await call(method, url);
      assert.equal(r.statusCode, 404, `${method} ${url}: ${r.body}`);
      assert.equal(r.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
      assert.equal(r.headers.allow, undefined);
    }
    // A file the docs' static route does not have: that GET route sends it to not-found itself.
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await call(method, '/docs/static/nonexistent.js');
      assert.equal(r.statusCode, 404, `${method} a missing static file: ${r.body}`);
      assert.equal(r.headers.allow, undefined);
    }
    // A URL the router cannot decode is bad input, whatever the method.
    const bad = await call('OPTIONS', '/v1/jobs/%zz');
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(bad.headers.allow, undefined);
  });

  test('the methods a path takes answer as before', async () => {
    assert.equal((await call('GET', '/v1/stats')).statusCode, 200);
    assert.equal((await call('HEAD', '/v1/stats')).statusCode, 200);
    assert.equal((await call('GET', `/v1/jobs/${JOB_ID}`)).json().code, 'ATS_ERR_JOB_NOT_FOUND');
  });
});

describe('a method the path does not take, with CORS on', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({ security: { corsOrigins: ['https://ops.ats.invalid'] } });
  });
  after(async () => {
    await t?.close();
  });

  test('OPTIONS is answered by CORS and listed in Allow; a path no route serves stays 404', async () => {
    const preflight = await t.app.inject({ method: 'OPTIONS', url: '/v1/stats' });
    assert.equal(preflight.statusCode, 204);
    assert405(await t.app.inject({ method: 'DELETE', url: '/v1/stats' }), 'GET, HEAD, OPTIONS', 'DELETE /v1/stats');
    const unknown = await t.app.inject({ method: 'DELETE', url: '/v2/jobs' });
    assert.equal(unknown.statusCode, 404, unknown.body);
    assert.equal(unknown.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
  });
});
