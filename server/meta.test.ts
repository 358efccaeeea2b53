/**
 * OpenAPI, the machine graph, health and readiness, extra plugins.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { machineGraph } from '../machines/lifecycle.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { buildApp, type AppDeps } from './app.js';
import { startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();
const skip = mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)';

const ROUTES: [string, string][] = [
  ['/v1/jobs', 'post'],
  ['/v1/jobs/batch', 'post'],
  ['/v1/jobs', 'get'],
  ['/v1/jobs/{id}', 'get'],
  ['/v1/jobs/{id}/cancel', 'post'],
  ['/v1/jobs/{id}/redrive', 'post'],
  ['/v1/jobs/{id}', 'delete'],
  ['/v1/machine', 'get'],
  ['/v1/stats', 'get'],
  ['/v1/workers', 'get'],
  ['/healthz', 'get'],
  ['/readyz', 'get'],
];

type Operation = { operationId?: string; responses: Record<string, unknown>; requestBody?: { required: boolean } };

describe('OpenAPI, machine, health', { skip }, () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({
      plugins: [async (app) => { app.get('/v1/extra', async () => ({ extra: true })); }],
    });
  });
  after(async () => {
    await t?.close();
  });

  test('/docs/json is a valid OpenAPI 3.1 document listing every route', async () => {
    const r = await t.app.inject({ url: '/docs/json' });
    assert.equal(r.statusCode, 200);
    const doc = r.json();
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 2000));
    assert.equal(doc.openapi, '3.1.0');
    for (const [path, method] of ROUTES) {
      const op = doc.paths[path]?.[method] as Operation | undefined;
      assert.ok(op, `${method.toUpperCase()} ${path} is documented`);
      assert.ok(op.operationId, `${path} has an operationId`);
      assert.ok(Object.keys(op.responses).some((s) => s.startsWith('2')), `${path} documents a success`);
    }
    assert.ok(doc.paths['/v1/jobs'].post.responses['409'], 'the idempotency conflict is documented');
    assert.equal(doc.paths['/v1/jobs'].post.requestBody.required, true);
    assert.equal(doc.paths['/v1/jobs/{id}/cancel'].post.requestBody.required, false);
    // The batch documents each item's full schema (the route itself checks items one by one).
    const batch = doc.paths['/v1/jobs/batch'].post.requestBody.content['application/json'].schema;
    assert.equal(batch.properties.jobs.maxItems, 1000);
    assert.ok(batch.properties.jobs.items.properties.idempotencyKey, 'an item carries its own idempotencyKey');
    assert.ok(batch.properties.jobs.items.properties.payload && batch.properties.jobs.items.required.includes('type'));
    assert.ok(doc.paths['/v1/jobs/batch'].post.responses['413'], 'the batch body limit is documented');
    const header = doc.paths['/v1/jobs'].post.parameters.find((p: { name: string }) => p.name === 'idempotency-key');
    assert.equal(header?.in, 'header');
  });

  test('/docs redirects to /docs/ (relative), which serves swagger-ui by relative URLs: under a proxy\'s path prefix it stays in it', async () => {
    const bare = await t.app.inject({ url: '/docs' });
    assert.equal(bare.statusCode, 302);
    assert.equal(bare.headers.location, 'docs/');
    assert.equal(new URL('docs/', 'https://ats.invalid/scheduler/docs').pathname, '/scheduler/docs/');
    const r = await t.app.inject({ url: '/docs/' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /text\/html/);
    assert.match(r.body, /swagger-ui/i);
    const urls = [...r.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(urls.length >= 3, urls.join(' '));
    assert.deepEqual(urls.filter((u) => u.startsWith('/') || /^[a-z]+:/i.test(u)), []);
    for (const u of urls) assert.equal((await t.app.inject({ url: new URL(u, 'http://ats.invalid/docs/').pathname })).statusCode, 200, u);
    // With a query, swagger-ui would name its files by absolute paths again: /docs?… goes to docs/, /docs/?… to ./ (the query dropped).
    for (const [url, location] of [['/docs?x=1', 'docs/'], ['/docs/?x=1', './']]) {
      const q = await t.app.inject({ url });
      assert.equal(q.statusCode, 302, url);
      assert.equal(q.headers.location, location, url);
      assert.equal(new URL(location!, `https://ats.invalid/scheduler${url}`).href, 'https://ats.invalid/scheduler/docs/', url);
    }
  });

  test('the document names its server relative to where it is served (/docs/json): the root, or a proxy\'s prefix', async () => {
    const doc = (await t.app.inject({ url: '/docs/json' })).json() as { servers: { url: string }[] };
    assert.equal(doc.servers.length, 1);
    const url = doc.servers[0]!.url;
    assert.equal(new URL(url, 'http://ats.invalid/docs/json').pathname, '/');
    assert.equal(new URL(url, 'https://ats.invalid/scheduler/docs/json').pathname, '/scheduler/');
  });

  test('/v1/machine is the machine graph', async () => {
    const r = await t.app.inject({ url: '/v1/machine' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), machineGraph());
    assert.equal(r.json().initial, 'pending');
  });

  test('/healthz and /readyz answer 200', async () => {
    assert.deepEqual((await t.app.inject({ url: '/healthz' })).json(), { status: 'ok' });
    const ready = await t.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { database: 'ok', log: 'absent' });
  });

  test('extra plugins are registered, and inherit the error handling', async () => {
    assert.deepEqual((await t.app.inject({ url: '/v1/extra' })).json(), { extra: true });
    const missing = await t.app.inject({ url: '/v1/extra/nope' });
    assert.equal(missing.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
  });
});

describe('app variants: readiness checks and limits', { skip }, () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => {
    await t?.close();
  });
  /** One request to a variant of the app, on the same database. */
  const variant = async (overrides: Partial<AppDeps>, req: InjectOptions) => {
    const app = await buildApp({ ...t.deps, ...overrides });
    try {
      return await app.inject(req);
    } finally {
      await app.close();
    }
  };
  const readyz = (overrides: Partial<AppDeps>) => variant(overrides, { url: '/readyz' });

  test('all checks pass: 200 with both ok', async () => {
    const r = await readyz({ checks: { database: async () => {}, log: async () => {} } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { database: 'ok', log: 'ok' });
  });

  test('database throws: 503 ATS_ERR_NOT_READY naming the database', async () => {
    const r = await readyz({ checks: { database: async () => { throw new Error('ECONNREFUSED'); }, log: async () => {} } });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().code, 'ATS_ERR_NOT_READY');
    assert.match(r.json().message, /database: unreachable/);
    assert.doesNotMatch(r.json().message, /log/);
  });

  test('a failing check\'s error names an internal address: the 503 names only the dependency, the log has the detail', async () => {
    const logged: { msg: string; fields?: Record<string, unknown> }[] = [];
    const keep = (msg: string, fields?: Record<string, unknown>) => void logged.push({ msg, fields });
    const logger = { debug: keep, info: keep, warn: keep, error: keep };
    const r = await readyz({
      logger,
      checks: { database: async () => { throw new Error('connect ECONNREFUSED 10.1.2.3:3306'); }, log: async () => { throw new Error('Connection timeout to broker kafka-0.internal:9092'); } },
    });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().message, 'Not ready: database: unreachable');
    assert.doesNotMatch(r.body, /10\.1\.2\.3|3306|kafka-0|9092|ECONNREFUSED/);
    const text = JSON.stringify(logged);
    assert.match(text, /ECONNREFUSED 10\.1\.2\.3:3306/, 'the detail is logged');
    assert.match(text, /kafka-0\.internal:9092/);
  });

  test('the log fails (thrown at once, rejected, or no answer in time): still ready, the log reported unreachable', async () => {
    // The API serves without Kafka (submits go to the outbox): a load balancer must keep sending it traffic.
    const logged: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, warn: (m: string) => void logged.push(m), error: () => undefined };
    for (const log of [() => { throw new Error('broker down'); }, async () => { throw new Error('broker down'); }, () => new Promise<void>(() => {})]) {
      const r = await readyz({ logger, checks: { database: async () => {}, log }, limits: { bodyLimitBytes: 1024, readyTimeoutMs: 50 } });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { database: 'ok', log: 'unreachable' });
    }
    assert.equal(logged.filter((m) => m.startsWith('readyz: the log check')).length, 3, 'each failure logged with its detail');
  });

  test('a check failing probe after probe is logged as an outage: its first failure, then its recovery, not a line per probe', async () => {
    const logged: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void logged.push({ level, msg, fields });
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    let up = false;
    const app = await buildApp({
      ...t.deps, logger,
      checks: { database: async () => {}, log: async () => { if (!up) throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'); } },
    });
    try {
      for (let i = 0; i < 6; i++) assert.deepEqual((await app.inject({ url: '/readyz' })).json(), { database: 'ok', log: 'unreachable' });
      up = true;
      for (let i = 0; i < 2; i++) assert.deepEqual((await app.inject({ url: '/readyz' })).json(), { database: 'ok', log: 'ok' });
    } finally {
      await app.close();
    }
    const lines = logged.filter((l) => l.msg.startsWith('readyz: the log check'));
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
      ['warn', 'readyz: the log check failed'],
      ['info', 'readyz: the log check works again'],
    ]);
    assert.match(String(lines[0].fields?.err ?? JSON.stringify(lines[0].fields)), /ECONNREFUSED 127\.0\.0\.1:9092/);
    assert.equal(lines[1].fields?.failures, 6);
  });

  test('a hung check times out: 503', async () => {
    const r = await readyz({
      checks: { database: () => new Promise<void>(() => {}) },
      limits: { bodyLimitBytes: 1024, readyTimeoutMs: 50 },
    });
    assert.equal(r.statusCode, 503);
    assert.match(r.json().message, /database: timed out after 50 ms/);
  });

  test('bodyLimitBytes is configurable: a larger body is a 413 and writes nothing', async () => {
    const body = { type: 'demo.echo', payload: 'x'.repeat(200), queue: 'limits' };
    const r = await variant({ limits: { bodyLimitBytes: 100 } }, { method: 'POST', url: '/v1/jobs', payload: body });
    assert.equal(r.statusCode, 413);
    assert.equal(r.json().code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
    assert.deepEqual(await t.store.listJobs({ queue: 'limits', limit: 1 }), []);
  });

  test('maxPayloadDepth is configurable', async () => {
    const limits = { bodyLimitBytes: 1024, maxPayloadDepth: 2 };
    const submit = (payload: unknown) => variant({ limits }, { method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload, queue: 'depth' } });
    assert.equal((await submit({ a: [1] })).statusCode, 201);
    const deep = await submit({ a: [[1]] });
    assert.equal(deep.statusCode, 400);
    assert.match(deep.json().message, /deeper than 2/);
    assert.equal((await t.store.listJobs({ queue: 'depth', limit: 5 })).length, 1);
  });
});
