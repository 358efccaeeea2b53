/**
 * Edges of the job routes: a batch item nested thousands deep is that item's
 * 400 (the other items still go in), a runAt past 9999-12-31T23:59:59.999Z is
 * a 400 whether given as epoch ms or as an ISO string with an offset, and the
 * OpenAPI document declares the 503 every job route can answer (the store
 * unreachable), and the 415 and 413 of the routes that take a body.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_EPOCH_MS, type BatchResult } from '../server/schemas.js';
import { startSqliteTestApp, type TestApp } from './helpers/app.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
/** The last instant runAt takes, written with an offset that puts it a day later in UTC. */
const PAST_MAX_ISO = '9999-12-31T23:59:59.999-23:59';

describe('job routes at their edges', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const jobCount = async () => (await t.store.recountJobs()).reduce((n, c) => n + c.n, 0);
  const batch = async (body: string) => {
    const r = await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: body, headers: JSON_HEADERS });
    assert.equal(r.statusCode, 200, r.body);
    return (r.json() as { results: BatchResult[] }).results;
  };

  test('a batch item nested 5,000 deep is its own 400; the item beside it is created', async () => {
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    const results = await batch(`{"jobs":[{"type":"demo.echo","payload":"beside"},{"type":"demo.echo","payload":${deep}}]}`);
    assert.equal(results.length, 2);
    const [created, refused] = results as [BatchResult & { id: string }, BatchResult & { code: string; message: string }];
    assert.equal(created.status, 201, JSON.stringify(created));
    const job = await t.app.inject({ url: `/v1/jobs/${created.id}` });
    assert.equal(job.json().payload, 'beside');
    assert.equal(refused.status, 400);
    assert.equal(refused.code, 'ATS_ERR_VALIDATION');
    assert.match(refused.message, /^body\/jobs\/1\/payload nests deeper than 32 levels$/);
  });

  test('an item both nested too deep and over the one-job size limit is its own 413, as POST /v1/jobs answers it, not the batch\'s 500', async () => {
    const deep = `${'['.repeat(20_000)}"${'x'.repeat(1024 * 1024)}"${']'.repeat(20_000)}`;
    const results = await batch(`{"jobs":[{"type":"demo.echo","payload":${deep}},{"type":"demo.echo","payload":2}]}`);
    assert.equal(results[0]!.status, 413, JSON.stringify(results[0]).slice(0, 300));
    assert.equal(results[1]!.status, 201);
  });

  test('runAt past 9999-12-31T23:59:59.999Z is a 400 as an ISO string, as it is in epoch ms; nothing is written', async () => {
    const before = await jobCount();
    const submit = (runAt: string | number) =>
      t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: 1, runAt } });
    const epoch = await submit(MAX_EPOCH_MS + 1);
    assert.equal(epoch.statusCode, 400, epoch.body);
    for (const runAt of [PAST_MAX_ISO, '9999-12-31T23:00:00-01:00']) {
      const iso = await submit(runAt);
      assert.equal(iso.statusCode, 400, `${runAt}: ${iso.body}`);
      assert.equal(iso.json().code, epoch.json().code);
      assert.match(iso.json().message, /^body\/runAt /);
    }
    assert.equal(await jobCount(), before);
    // The last instant itself is taken, in either form, and shown as RFC 3339.
    for (const runAt of ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999+00:00', MAX_EPOCH_MS]) {
      const ok = await submit(runAt);
      assert.equal(ok.statusCode, 201, `${runAt}: ${ok.body}`);
      assert.equal(ok.json().runAt, '9999-12-31T23:59:59.999Z');
    }
  });

  test('a batch item with runAt past the last instant is its own 400; the others are created', async () => {
    const results = await batch(JSON.stringify({ jobs: [
      { type: 'demo.echo', payload: 1, runAt: PAST_MAX_ISO },
      { type: 'demo.echo', payload: 2 },
      { type: 'demo.echo', payload: 3, runAt: MAX_EPOCH_MS + 1 },
    ] }));
    assert.deepEqual(results.map((r) => r.status), [400, 201, 400]);
    const [iso, , epoch] = results as Array<BatchResult & { code: string; message: string }>;
    assert.equal(iso!.code, 'ATS_ERR_VALIDATION');
    assert.equal(iso!.code, epoch!.code);
    assert.match(iso!.message, /^body\/jobs\/0\/runAt /);
  });

  test('OpenAPI: every /v1/jobs operation declares 503; DELETE /v1/jobs/{id} declares 415', async () => {
    const r = await t.app.inject({ url: '/docs/json' });
    assert.equal(r.statusCode, 200);
    type Op = { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> };
    const paths = (r.json() as { paths: Record<string, Record<string, Op>> }).paths;
    const ops = Object.entries(paths).filter(([p]) => p.startsWith('/v1/jobs'))
      .flatMap(([p, item]) => Object.entries(item).map(([m, op]) => [`${m.toUpperCase()} ${p}`, op] as const));
    assert.deepEqual(ops.map(([name]) => name).sort(), [
      'DELETE /v1/jobs/{id}', 'GET /v1/jobs', 'GET /v1/jobs/{id}', 'GET /v1/jobs/{id}/verify', 'POST /v1/jobs', 'POST /v1/jobs/batch',
      'POST /v1/jobs/{id}/cancel', 'POST /v1/jobs/{id}/redrive',
    ]);
    for (const [name, op] of ops) {
      assert.equal(op.responses['503']?.content?.['application/json']?.schema.$ref, '#/components/schemas/Error', `${name} declares no 503`);
    }
    assert.ok(paths['/v1/jobs/{id}']!.delete!.responses['415'], 'DELETE /v1/jobs/{id} declares no 415');
    // A body over the body limit is refused before the route runs, on the routes that take one.
    for (const [path, method] of [['/v1/jobs/{id}', 'delete'], ['/v1/jobs/{id}/cancel', 'post'], ['/v1/jobs/{id}/redrive', 'post']] as const) {
      assert.ok(paths[path]![method]!.responses['413'], `${method.toUpperCase()} ${path} declares no 413`);
    }
  });

  test('DELETE /v1/jobs/{id} answers the 415 and 413 it declares: a text body, a body over the limit', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: 1 } });
    const url = `/v1/jobs/${created.json().id}`;
    const text = await t.app.inject({ method: 'DELETE', url, payload: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.statusCode, 415, text.body);
    assert.equal(text.json().code, 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE');
    const big = await t.app.inject({ method: 'DELETE', url, payload: JSON.stringify({ a: 'x'.repeat(2 * 1024 * 1024) }), headers: JSON_HEADERS });
    assert.equal(big.statusCode, 413, big.body);
    assert.equal(big.json().code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
  });
});
