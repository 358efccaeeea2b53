/**
 * The `Location` of every create (POST /v1/jobs, POST /v1/workflows, PUT
 * /v1/limits/:key, POST /v1/schedules), and of the redirect of
 * /docs/static/index.html, is a relative reference: resolved against the URL
 * the client sent (RFC 3986, as fetch and `curl -L` do) it lands on the
 * resource, at the root and under a reverse proxy's stripped path prefix
 * (tests/helpers/prefix-proxy.ts), whatever the request's query or trailing
 * slash; a name is percent-encoded in it.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { startSqliteTestApp, randomQueue, type TestApp } from '../tests/helpers/app.js';
import { startPrefixProxy, type PrefixProxy } from '../tests/helpers/prefix-proxy.js';
import { instant } from '../tests/helpers/workflow-machines.js';
import { relativeLocation } from './location.js';

const PREFIXES = ['', '/ats', '/a/b/scheduler'];

/** A key PATH_NAME_PATTERN takes that uses every character it allows (200 of them, MAX_NAME_CHARS), a `:` first. */
const WIDEST_KEY = `:${'AZaz09._-:'.repeat(19)}Zz.-_:09a`.slice(0, 200);

describe('the Location of a create is relative: it resolves to the resource at the root and under a prefix', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({}, { workflows: registerDemoHandlers(new HandlerRegistry()).workflow('instant', instant) });
  });
  after(async () => {
    await t?.close();
  });

  /**
   * Sends `req`, expects `status`, and checks its Location: relative (not `/…`, no scheme), and
   * resolved against the request's URL under each prefix, the path of `resource` under it.
   */
  const created = async (req: InjectOptions, status: number, resourceOf: string | ((made: { id: string }) => string)) => {
    const r = await t.app.inject(req);
    assert.equal(r.statusCode, status, r.body);
    const resource = typeof resourceOf === 'string' ? resourceOf : resourceOf(r.json() as { id: string });
    const location = r.headers.location;
    assert.equal(typeof location, 'string', `${req.url}: no Location`);
    assert.doesNotMatch(location as string, /^(\/|[A-Za-z][A-Za-z0-9+.-]*:)/, `${req.url}: ${location} is not relative`);
    for (const prefix of PREFIXES) {
      const at = new URL(location as string, `https://ats.invalid${prefix}${req.url as string}`);
      assert.equal(at.pathname, `${prefix}${resource}`, `${prefix}${req.url}: ${location}`);
      assert.equal(at.search, '', `${prefix}${req.url}: ${location}`);
      // It is the resource: the server answers its path.
      const got = await t.app.inject({ url: at.pathname.slice(prefix.length) });
      assert.equal(got.statusCode, 200, `GET ${at.pathname}: ${got.body}`);
    }
    return r;
  };

  // A query these routes do not take is a 400, an empty one is none; POST /v1/workflows takes `wait`.
  test('POST /v1/jobs, with an empty query or none: jobs/<id>', async () => {
    for (const url of ['/v1/jobs', '/v1/jobs?']) {
      const r = await created({ method: 'POST', url, payload: { type: 'demo.echo', payload: {}, queue: randomQueue() } }, 201, (j) => `/v1/jobs/${j.id}`);
      assert.equal(r.headers.location, `jobs/${(r.json() as { id: string }).id}`);
    }
    // The same Idempotency-Key again: 200, with the same Location.
    const body = { type: 'demo.echo', payload: {}, queue: randomQueue() };
    const first = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body, headers: { 'idempotency-key': 'loc-1' } });
    const id = (first.json() as { id: string }).id;
    await created({ method: 'POST', url: '/v1/jobs', payload: body, headers: { 'idempotency-key': 'loc-1' } }, 200, `/v1/jobs/${id}`);
  });

  test('POST /v1/workflows (201, and 200 for the same idempotencyKey): workflows/<id>', async () => {
    const body = { name: 'instant', idempotencyKey: 'loc-wf-1' };
    const r = await created({ method: 'POST', url: '/v1/workflows', payload: body }, 201, (w) => `/v1/workflows/${w.id}`);
    const id = (r.json() as { id: string }).id;
    assert.equal(r.headers.location, `workflows/${id}`);
    await created({ method: 'POST', url: '/v1/workflows?wait=done', payload: body }, 200, `/v1/workflows/${id}`);
  });

  test('PUT /v1/limits/<key>: the key, percent-encoded, the widest key the schema takes too', async () => {
    for (const key of ['email', WIDEST_KEY, 'a:b', '...', '-', '_.']) {
      const r = await created({ method: 'PUT', url: `/v1/limits/${encodeURIComponent(key)}`, payload: { concurrency: 2 } }, 201, `/v1/limits/${encodeURIComponent(key)}`);
      assert.equal(r.headers.location, encodeURIComponent(key));
      const view = (await t.app.inject({ url: new URL(r.headers.location as string, `http://h/v1/limits/${key}`).pathname })).json() as { key: string };
      assert.equal(view.key, key);
    }
    // Sent with its `:` as is, and an empty query: the same.
    const r = await created({ method: 'PUT', url: '/v1/limits/x:y?', payload: { concurrency: 2 } }, 201, '/v1/limits/x%3Ay');
    assert.equal(r.headers.location, 'x%3Ay');
  });

  test('POST /v1/schedules: schedules/<name>, the widest name too', async () => {
    for (const name of ['every-15', `a:${'Zz09._-:'.repeat(12)}`.slice(0, 100), '...']) {
      const r = await created(
        { method: 'POST', url: '/v1/schedules', payload: { name, cron: '*/15 * * * *', type: 'demo.echo', payload: {} } },
        201, `/v1/schedules/${encodeURIComponent(name)}`,
      );
      assert.equal(r.headers.location, `schedules/${encodeURIComponent(name)}`);
      const view = (await t.app.inject({ url: `/v1/schedules/${encodeURIComponent(name)}` })).json() as { name: string };
      assert.equal(view.name, name);
    }
  });

  test('through a proxy that strips /scheduler: each Location, followed as fetch resolves it, is the resource, under the prefix', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const proxy: PrefixProxy = await startPrefixProxy({ host: '127.0.0.1', port }, '/scheduler');
    try {
      const send = async (method: string, path: string, body: unknown) => {
        const url = `${proxy.url}${path}`;
        const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const text = await res.text();
        assert.equal(res.status, 201, `${method} ${path}: ${text}`);
        const location = res.headers.get('location');
        assert.ok(location);
        const made = JSON.parse(text) as Record<string, unknown>;
        const got = await fetch(new URL(location, url));
        assert.equal(got.status, 200, `${location} from ${url}`);
        return { made, got: await got.json() as Record<string, unknown> };
      };
      const job = await send('POST', '/v1/jobs', { type: 'demo.echo', payload: {}, queue: randomQueue() });
      assert.equal(job.got.id, job.made.id);
      const wf = await send('POST', '/v1/workflows?wait=done', { name: 'instant' });
      assert.equal(wf.got.id, wf.made.id);
      const limit = await send('PUT', `/v1/limits/${encodeURIComponent('p:q')}`, { concurrency: 1 });
      assert.equal(limit.got.key, 'p:q');
      const schedule = await send('POST', '/v1/schedules', { name: 'proxied:1', cron: '0 * * * *', type: 'demo.echo', payload: {} });
      assert.equal(schedule.got.name, 'proxied:1');
      assert.deepEqual(proxy.outside, []);
    } finally {
      await proxy.close();
    }
  });
});

describe('/docs/static/index.html redirects to the docs page by a relative Location', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  test('with a query or not, it lands on /docs/ under any prefix', async () => {
    // Its name percent-encoded reaches the same page: decoded, as the router matches it.
    for (const url of ['/docs/static/index.html', '/docs/static/index.html?x=1', '/docs/static/%69ndex.html', '/docs/static/index%2Ehtml?x=1']) {
      const r = await t.app.inject({ url });
      assert.equal(r.statusCode, 302, url);
      const location = r.headers.location as string;
      assert.doesNotMatch(location, /^(\/|[A-Za-z][A-Za-z0-9+.-]*:)/, `${url}: ${location}`);
      for (const prefix of PREFIXES) {
        const at = new URL(location, `https://ats.invalid${prefix}${url}`);
        assert.equal(`${at.pathname}${at.search}`, `${prefix}/docs/`, `${prefix}${url}: ${location}`);
      }
      assert.equal((await t.app.inject({ url: new URL(location, `http://h${url}`).pathname })).statusCode, 200);
    }
  });
});

describe('relativeLocation', () => {
  test('from the request path\'s folders to the resource, climbing only out of the folders it does not share', () => {
    const cases: Array<[string, string[], string]> = [
      ['/v1/jobs', ['v1', 'jobs', 'X'], 'jobs/X'],
      ['/v1/jobs?x=/a/b/', ['v1', 'jobs', 'X'], 'jobs/X'],
      ['/v1/jobs/', ['v1', 'jobs', 'X'], 'X'],
      ['/v1/jobs/#f', ['v1', 'jobs', 'X'], 'X'],
      ['/v1//jobs', ['v1', 'jobs', 'X'], '../jobs/X'],
      ['/v1/limits/k', ['v1', 'limits', 'k'], 'k'],
      ['/v1/limits/k/', ['v1', 'limits', 'k'], '../k'],
      ['/v1/limits/a%3Ab', ['v1', 'limits', 'a:b'], 'a%3Ab'],
      ['/v%31/jobs', ['v1', 'jobs', 'X'], '../v1/jobs/X'],
      ['/', ['v1', 'jobs', 'X'], 'v1/jobs/X'],
    ];
    // A request in absolute form: by its path.
    assert.equal(relativeLocation('http://127.0.0.1:3000/v1/jobs?x=1', ['v1', 'jobs', 'X']), 'jobs/X');
    assert.equal(relativeLocation('http://127.0.0.1:3000', ['v1', 'jobs', 'X']), 'v1/jobs/X');
    for (const [url, segments, expected] of cases) {
      const got = relativeLocation(url, segments);
      assert.equal(got, expected, url);
      for (const prefix of PREFIXES) {
        assert.equal(new URL(got, `http://h${prefix}${url}`).pathname, `${prefix}/${segments.map(encodeURIComponent).join('/')}`, `${prefix}${url}`);
      }
    }
  });
});
