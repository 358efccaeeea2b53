/**
 * What guards the API beyond keys (server/security.ts, server/stream/plugin.ts,
 * docs/security.md): the Host check against DNS rebinding, the Origin check
 * and CORS, the security headers, the rate limits, the stream's connection
 * caps and subprotocols, and error messages that stay small.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { chromium } from 'playwright-core';
import { monotonicFactory } from 'ulid';
import WebSocket from 'ws';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { SCOPES, type Principal } from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import { createLogger, silentLogger } from '../engine/logger.js';
import { TransitionService } from '../engine/transitions.js';
import { buildApp, type AppDeps, type AppPlugin } from './app.js';
import { streamPlugin, type StreamDeps } from './stream/index.js';
import { createUiPlugin } from './ui/index.js';
import { TEST_DEFAULTS, testClock } from '../tests/helpers/app.js';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'ats-security-'));
let store: SqliteStore;
let transitions: TransitionService;
const apps: FastifyInstance[] = [];
const sockets: WebSocket[] = [];

before(async () => {
  store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  await store.migrate();
  const ulid = monotonicFactory();
  transitions = new TransitionService({ store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() } });
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  for (const app of apps) await app.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An app on the shared store; `overrides` replace deps. Closed after the file. */
async function build(overrides: Partial<AppDeps> = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    transitions, store, clock: testClock, checks: { database: () => store.ping() },
    limits: { bodyLimitBytes: 1024 * 1024 }, defaults: TEST_DEFAULTS, ...overrides,
  });
  apps.push(app);
  return app;
}

/** An app with the stream, listening on 127.0.0.1; resolves to its ws:// URL of /v1/stream. */
async function listening(overrides: Partial<AppDeps> = {}, stream: Partial<StreamDeps> = {}, wrap?: (plugin: AppPlugin) => AppPlugin): Promise<{ app: FastifyInstance; url: string; port: number }> {
  const plugin = streamPlugin({ store, clock: testClock, logger: silentLogger, ...stream });
  const app = await build({ plugins: [wrap ? wrap(plugin) : plugin], ...overrides });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  return { app, url: `ws://127.0.0.1:${port}/v1/stream`, port };
}

const submit = async (app: FastifyInstance, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/v1/jobs', headers, payload: { type: 'demo.echo', payload: {} } });

/** The principal a test names with `x-test-key` (the lead's auth sets it from a real key). */
const principal = (keyId: string): Principal => ({ keyId, tenant: 'default', scopes: new Set(SCOPES) });

/**
 * A hook on the root (the plugin skips encapsulation) that sets the principal
 * from `x-test-key`: it runs after the auth hook and before the route-level
 * rate limit, as a real key's principal would be.
 */
const testKeys: AppPlugin = Object.assign(
  async (app: FastifyInstance) => {
    app.addHook('onRequest', async (request) => {
      const k = request.headers['x-test-key'];
      if (typeof k === 'string') request.principal = principal(k);
    });
  },
  { [Symbol.for('skip-override')]: true },
);

type Opened = { ws: WebSocket; protocolHeader: string | undefined };
type Refused = { status: number; body: { code?: string; message?: string } };

/** Opens a client: resolves with the open socket, or with the HTTP answer that refused the upgrade. */
function connect(url: string, opts: { protocols?: string[]; origin?: string; headers?: Record<string, string> } = {}): Promise<Opened | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { origin: opts.origin, headers: opts.headers });
    sockets.push(ws);
    let protocolHeader: string | undefined;
    ws.once('upgrade', (res: IncomingMessage) => {
      protocolHeader = res.headers['sec-websocket-protocol'] as string | undefined;
    });
    ws.once('open', () => resolve({ ws, protocolHeader }));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Refused['body']) : {} });
      });
    });
    ws.once('error', reject);
  });
}
const isOpen = (r: Opened | Refused): r is Opened => 'ws' in r;
const closed = (ws: WebSocket) => new Promise<void>((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve() : ws.once('close', () => resolve())));

/** Writes `data` on a new connection to `port`; resolves with what came back once the server closed it. */
const raw = (port: number, data: string) => new Promise<string>((resolve, reject) => {
  const socket = connectTcp(port, '127.0.0.1', () => socket.end(data));
  let text = '';
  socket.on('data', (d) => (text += d));
  socket.on('close', () => resolve(text));
  socket.on('error', reject);
});

// ------------------------------------------------------------------ Host

describe('Host check (DNS rebinding)', () => {
  test('on loopback without allowed hosts: localhost and loopback addresses answered, any other name 421 ATS_ERR_HOST_NOT_ALLOWED', async () => {
    const app = await build();
    for (const host of ['localhost:80', 'localhost', 'LocalHost:3000', '127.0.0.1:3000', '127.8.9.10', '[::1]:3000', '[::1]']) {
      const r = await app.inject({ url: '/v1/jobs', headers: { host } });
      assert.equal(r.statusCode, 200, `${host}: ${r.body}`);
    }
    for (const host of ['evil.example.com', 'localhost.evil.example.com:3000', '127.0.0.1.nip.io', '10.0.0.1:3000', '[::2]:3000', '1270.0.0.1']) {
      const r = await app.inject({ url: '/v1/jobs', headers: { host } });
      assert.equal(r.statusCode, 421, host);
      assert.equal(r.json().code, 'ATS_ERR_HOST_NOT_ALLOWED', host);
      assert.ok(!r.body.includes(host), 'the refusal does not echo the Host');
    }
  });

  test('a refused submit writes nothing', async () => {
    const app = await build();
    const before = (await store.listJobs({ limit: 1000 })).length;
    const r = await submit(app, { host: 'rebound.example.com' });
    assert.equal(r.statusCode, 421);
    assert.equal((await store.listJobs({ limit: 1000 })).length, before);
  });

  test('with allowed hosts: only those names, port ignored, case-insensitive; loopback names too are refused', async () => {
    const app = await build({ security: { allowedHosts: ['ats.example.com', 'Ops.Example:8443', '[::1]'] } });
    for (const host of ['ats.example.com', 'ATS.example.COM:443', 'ops.example', 'ops.example:9999', '[::1]:3000']) {
      assert.equal((await app.inject({ url: '/v1/jobs', headers: { host } })).statusCode, 200, host);
    }
    for (const host of ['localhost', '127.0.0.1:3000', 'evil.ats.example.com', 'example.com']) {
      assert.equal((await app.inject({ url: '/v1/jobs', headers: { host } })).statusCode, 421, host);
    }
  });

  test('not on loopback and no allowed hosts: any Host', async () => {
    const app = await build({ security: { loopback: false } });
    for (const host of ['ats.internal:3000', '10.1.2.3', 'whatever']) {
      assert.equal((await app.inject({ url: '/v1/jobs', headers: { host } })).statusCode, 200, host);
    }
  });

  test('an HTTP/1.1 request without a Host: 400 ATS_ERR_VALIDATION {code, message}, on loopback or not, the probes too; HTTP/1.0 keeps the Host rule', async () => {
    for (const loopback of [true, false]) {
      const app = await build({ security: { loopback } });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      for (const path of ['/v1/jobs', '/healthz', '/ui']) {
        const answer = await raw(port, `GET ${path} HTTP/1.1\r\nConnection: close\r\n\r\n`);
        assert.match(answer, /^HTTP\/1\.1 400 /, `${path}: ${answer}`);
        const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
        assert.equal(body.code, 'ATS_ERR_VALIDATION', path);
        assert.match(body.message, /Host/);
      }
      const old = await raw(port, 'GET /v1/jobs HTTP/1.0\r\n\r\n');
      assert.match(old, loopback ? /^HTTP\/1\.1 421 / : /^HTTP\/1\.1 200 /, old);
    }
  });

  // Node kept the first Host of two and answered: the Host and Origin checks read one name while a proxy
  // in front may have routed by the other. HTTP requires a 400 (RFC 9112, 3.2).
  test('a request with two Host headers: 400 ATS_ERR_VALIDATION, on loopback or not, whether they agree or not; nothing written', async () => {
    const jobs = async () => (await store.listJobs({ limit: 10_000 })).length;
    const before = await jobs();
    for (const loopback of [true, false]) {
      const app = await build({ security: { loopback } });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      const job = JSON.stringify({ type: 'demo.echo', payload: 1 });
      for (const [first, second] of [['localhost', 'localhost'], ['localhost', 'evil.example'], ['evil.example', 'localhost']]) {
        for (const path of ['/v1/jobs', '/healthz']) {
          const answer = await raw(port, `POST ${path} HTTP/1.1\r\nHost: ${first}\r\nContent-Type: application/json\r\nhost: ${second}\r\nContent-Length: ${job.length}\r\nConnection: close\r\n\r\n${job}`);
          assert.match(answer, /^HTTP\/1\.1 400 /, `${path} ${first} ${second}: ${answer}`);
          const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
          assert.equal(body.code, 'ATS_ERR_VALIDATION');
          assert.match(body.message, /one Host/);
        }
      }
    }
    assert.equal(await jobs(), before, 'nothing was submitted');
  });

  test('the probes /healthz and /readyz answer any Host (an orchestrator addresses the pod by its IP); /docs does not', async () => {
    const app = await build({ security: { allowedHosts: ['ats.example.com'] } });
    for (const url of ['/healthz', '/readyz']) assert.equal((await app.inject({ url, headers: { host: '10.4.5.6:3000' } })).statusCode, 200, url);
    assert.equal((await app.inject({ url: '/docs/json', headers: { host: '10.4.5.6:3000' } })).statusCode, 421);
  });
});

// ------------------------------------------------------------------ Origin and CORS

describe('Origin check and CORS', () => {
  const EVIL = 'https://evil.example';

  test('cancel, redrive and delete from a foreign Origin: 403 ATS_ERR_ORIGIN_NOT_ALLOWED, and the job is unchanged', async () => {
    const app = await build();
    const id = (await submit(app)).json().id as string;
    const state = async () => (await app.inject({ url: `/v1/jobs/${id}` })).json().state as string;
    const before = await state();
    for (const origin of [EVIL, 'null', 'http://localhost:3000', 'http://localhost.evil.example']) {
      for (const [method, url] of [['POST', `/v1/jobs/${id}/cancel`], ['POST', `/v1/jobs/${id}/redrive`], ['DELETE', `/v1/jobs/${id}`]] as const) {
        const r = await app.inject({ method, url, headers: { origin } });
        assert.equal(r.statusCode, 403, `${method} ${url} from ${origin}: ${r.body}`);
        assert.equal(r.json().code, 'ATS_ERR_ORIGIN_NOT_ALLOWED');
      }
    }
    assert.equal(await state(), before, 'nothing changed');
    // The same origin (the Host the request names) and no Origin at all (the CLI, the client) pass.
    assert.equal((await app.inject({ method: 'POST', url: `/v1/jobs/${id}/cancel`, headers: { origin: 'http://localhost' } })).statusCode, 200);
    assert.equal(await state(), 'cancelled');
    assert.equal((await app.inject({ method: 'DELETE', url: `/v1/jobs/${id}` })).statusCode, 204);
  });

  test('the page\'s own origin on a port the Host does not name (a proxy that passes $host, which drops it): 403 saying so, not "list it in CORS"', async () => {
    const app = await build({ security: { allowedHosts: ['ats.invalid'] } });
    const r = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { origin: 'https://ats.invalid:8443', host: 'ats.invalid' }, payload: { type: 'demo.echo', payload: {} } });
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().code, 'ATS_ERR_ORIGIN_NOT_ALLOWED');
    assert.match(r.json().message, /https:\/\/ats\.invalid:8443/);
    assert.match(r.json().message, /Host ats\.invalid\b/);
    assert.match(r.json().message, /proxy/);
    assert.doesNotMatch(r.json().message, /ATS_CORS_ORIGINS/);
    // Another site's page keeps the CORS hint.
    const foreign = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { origin: EVIL, host: 'ats.invalid' }, payload: { type: 'demo.echo', payload: {} } });
    assert.match(foreign.json().message, /ATS_CORS_ORIGINS/);
    // A page of another port of the same host (a development server) calling the API on its own port: a CORS matter.
    const dev = await build();
    const other = await dev.inject({ method: 'POST', url: '/v1/jobs', headers: { origin: 'http://localhost:5173', host: 'localhost:3000' }, payload: { type: 'demo.echo', payload: {} } });
    assert.equal(other.statusCode, 403);
    assert.match(other.json().message, /ATS_CORS_ORIGINS/);
  });

  test('a submit from a foreign Origin writes nothing; a read from one is answered, without CORS headers', async () => {
    const app = await build();
    const before = (await store.listJobs({ limit: 1000 })).length;
    assert.equal((await submit(app, { origin: EVIL })).statusCode, 403);
    assert.equal((await store.listJobs({ limit: 1000 })).length, before);
    const read = await app.inject({ url: '/v1/jobs', headers: { origin: EVIL } });
    assert.equal(read.statusCode, 200);
    assert.equal(read.headers['access-control-allow-origin'], undefined);
  });

  test('the same origin behind its own port, and https on 443', async () => {
    const app = await build({ security: { allowedHosts: ['ats.example.com'] } });
    assert.equal((await submit(app, { host: 'ats.example.com:8080', origin: 'http://ats.example.com:8080' })).statusCode, 201);
    assert.equal((await submit(app, { host: 'ats.example.com', origin: 'https://ats.example.com' })).statusCode, 201);
    assert.equal((await submit(app, { host: 'ats.example.com:443', origin: 'https://ats.example.com' })).statusCode, 201);
    assert.equal((await submit(app, { host: 'ats.example.com:8080', origin: 'http://ats.example.com:8081' })).statusCode, 403);
  });

  test('CORS off by default: a preflight gets no CORS headers', async () => {
    const app = await build();
    const r = await app.inject({ method: 'OPTIONS', url: '/v1/jobs', headers: { origin: EVIL, 'access-control-request-method': 'POST' } });
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.ok(r.statusCode >= 400, `${r.statusCode}`);
  });

  test('with corsOrigins: preflights of those origins answered with the headers the API needs, their requests allowed; others not', async () => {
    const OPS = 'https://ops.example.com';
    const app = await build({ security: { corsOrigins: [OPS] } });
    const pre = await app.inject({
      method: 'OPTIONS', url: '/v1/jobs/01J00000000000000000000000/cancel',
      headers: { origin: OPS, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,idempotency-key' },
    });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], OPS);
    const allowed = String(pre.headers['access-control-allow-headers']).toLowerCase();
    for (const h of ['authorization', 'content-type', 'idempotency-key']) assert.ok(allowed.includes(h), allowed);
    const methods = String(pre.headers['access-control-allow-methods']);
    for (const m of ['GET', 'POST', 'PUT', 'DELETE']) assert.ok(methods.includes(m), methods);
    assert.equal(pre.headers['access-control-allow-credentials'], undefined, 'keys are sent as a header, never cookies');

    const created = await submit(app, { origin: OPS });
    assert.equal(created.statusCode, 201);
    assert.equal(created.headers['access-control-allow-origin'], OPS);
    assert.match(String(created.headers.vary), /origin/i);

    const other = await app.inject({ method: 'OPTIONS', url: '/v1/jobs', headers: { origin: EVIL, 'access-control-request-method': 'POST' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    assert.equal((await submit(app, { origin: EVIL })).statusCode, 403);
    const read = await app.inject({ url: '/v1/jobs', headers: { origin: EVIL } });
    assert.equal(read.headers['access-control-allow-origin'], undefined);
  });

  test('the stream refuses an upgrade from a foreign Origin, accepts its own and a listed one', async () => {
    const { url, port } = await listening({ security: { corsOrigins: ['https://ops.example.com'] } });
    const refused = await connect(url, { origin: EVIL });
    assert.ok(!isOpen(refused));
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'ATS_ERR_ORIGIN_NOT_ALLOWED');
    for (const origin of [`http://127.0.0.1:${port}`, 'https://ops.example.com', undefined]) {
      const ok = await connect(url, { origin });
      assert.ok(isOpen(ok), `${origin}: ${JSON.stringify(ok)}`);
      ok.ws.close();
    }
  });
});

// ------------------------------------------------------------------ headers

describe('security headers', () => {
  let app: FastifyInstance;
  before(async () => {
    app = await build({ plugins: [createUiPlugin({ minify: false })] });
  });
  const common = (h: Record<string, unknown>, what: string) => {
    assert.equal(h['x-content-type-options'], 'nosniff', what);
    assert.equal(h['x-frame-options'], 'DENY', what);
    assert.equal(h['referrer-policy'], 'no-referrer', what);
    assert.equal(h['strict-transport-security'], undefined, `${what}: no HSTS on plain http`);
    assert.match(String(h['content-security-policy']), /frame-ancestors 'none'/, what);
  };

  test('GET /ui: the console\'s policy (this origin only, nothing inline) and the rest', async () => {
    for (const url of ['/ui', '/ui/assets/app.js']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 200, url);
      common(r.headers, url);
      const csp = String(r.headers['content-security-policy']);
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'"]) assert.ok(csp.includes(d), `${url}: ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    }
  });

  test('GET /docs: swagger-ui\'s policy (this origin only) and the rest', async () => {
    for (const url of ['/docs/', '/docs/static/swagger-ui-bundle.js', '/docs/json']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 200, url);
      common(r.headers, url);
      const csp = String(r.headers['content-security-policy']);
      for (const d of ["default-src 'self'", "script-src 'self'", "object-src 'none'"]) assert.ok(csp.includes(d), `${url}: ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https:/);
    }
  });

  test('the JSON API: nosniff, no framing, a policy that allows nothing; errors too', async () => {
    for (const url of ['/v1/jobs', '/v1/nowhere', '/healthz']) {
      const r = await app.inject({ url });
      common(r.headers, url);
      assert.match(String(r.headers['content-security-policy']), /default-src 'none'/, url);
    }
    const refused = await app.inject({ url: '/v1/jobs', headers: { host: 'evil.example' } });
    assert.equal(refused.statusCode, 421);
    common(refused.headers, 'a refused Host');
  });
});

describe('the pages run under their policies (Chromium)', () => {
  test('/docs renders and "Try it out" works, /ui loads and streams: no policy violation', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/ensure-chromium.sh`);
    const { port } = await listening({ plugins: [createUiPlugin({ minify: false })] });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const open = async (path: string) => {
        const page = await browser.newPage();
        const violations: string[] = [];
        await page.exposeFunction('reportViolation', (v: string) => violations.push(v));
        await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) =>
          void (window as unknown as { reportViolation(v: string): void }).reportViolation(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`)));
        const res = await page.goto(`http://localhost:${port}${path}`);
        assert.equal(res?.status(), 200, path);
        return { page, violations };
      };
      const docs = await open('/docs');
      const op = docs.page.locator('#operations-health-healthz');
      await op.click();
      await op.locator('.try-out__btn').click();
      await op.locator('.execute').click();
      assert.equal((await op.locator('.live-responses-table tbody .response-col_status').first().textContent())?.trim(), '200');
      assert.ok(await docs.page.locator('.opblock').count() > 5, 'the operations are listed');
      assert.deepEqual(docs.violations, []);

      const ui = await open('/ui');
      await ui.page.waitForFunction(() => document.querySelectorAll('#machine *').length > 0, null, { timeout: 10_000 });
      assert.deepEqual(ui.violations, []);
    } finally {
      await browser.close();
    }
  });
});

// ------------------------------------------------------------------ rate limits

describe('rate limits', () => {
  test('per address: the N+1th request in a minute is 429 ATS_ERR_RATE_LIMITED with Retry-After; another address is unaffected; probes are exempt', async () => {
    const app = await build({ security: { rateLimitPerMinute: 3 } });
    const get = (remoteAddress = '127.0.0.1', url = '/v1/jobs') => app.inject({ url, remoteAddress } as InjectOptions);
    for (let i = 0; i < 3; i++) {
      const r = await get();
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['x-ratelimit-remaining'], String(2 - i));
    }
    const limited = await get();
    assert.equal(limited.statusCode, 429);
    assert.deepEqual(Object.keys(limited.json()).sort(), ['code', 'message']);
    assert.equal(limited.json().code, 'ATS_ERR_RATE_LIMITED');
    assert.match(limited.json().message, /3/);
    const retry = Number(limited.headers['retry-after']);
    assert.ok(retry > 0 && retry <= 60, `retry-after ${limited.headers['retry-after']}`);
    assert.equal((await get('10.9.8.7')).statusCode, 200, 'another address has its own count');
    for (const url of ['/healthz', '/readyz']) assert.equal((await get('127.0.0.1', url)).statusCode, 200, url);
    // A limited submit writes nothing.
    const before = (await store.listJobs({ limit: 1000 })).length;
    assert.equal((await submit(app)).statusCode, 429);
    assert.equal((await store.listJobs({ limit: 1000 })).length, before);
  });

  test('per key: a key has its own count, apart from other keys and from its address', async () => {
    const app = await build({ security: { rateLimitPerMinute: 2 }, plugins: [testKeys] });
    const get = (key?: string) => app.inject({ url: '/v1/jobs', headers: key ? { 'x-test-key': key } : {} });
    assert.equal((await get('key-a')).statusCode, 200);
    assert.equal((await get('key-a')).statusCode, 200);
    assert.equal((await get('key-a')).statusCode, 429);
    assert.equal((await get('key-b')).statusCode, 200);
    assert.equal((await get()).statusCode, 200, 'the address without a key is counted apart');
  });

  test('0: no limit and no rate-limit headers', async () => {
    const app = await build({ security: { rateLimitPerMinute: 0 } });
    for (let i = 0; i < 20; i++) {
      const r = await app.inject({ url: '/v1/jobs' });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['x-ratelimit-limit'], undefined);
    }
  });
});

// ------------------------------------------------------------------ stream caps and subprotocols

describe('stream: connection caps and subprotocols', () => {
  test('per address: streamMaxPerKey open, one more refused 429 ATS_ERR_TOO_MANY_STREAMS; after one closes a new one is accepted', async () => {
    const { url } = await listening({ security: { streamMaxPerKey: 2 } });
    const a = await connect(url);
    const b = await connect(url);
    assert.ok(isOpen(a) && isOpen(b));
    const refused = await connect(url);
    assert.ok(!isOpen(refused), 'the third is refused');
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'ATS_ERR_TOO_MANY_STREAMS');
    a.ws.close();
    await closed(a.ws);
    let again: Opened | Refused = refused;
    for (let i = 0; i < 50 && !isOpen(again); i++) {
      await new Promise((r) => setTimeout(r, 20));
      again = await connect(url);
    }
    assert.ok(isOpen(again), 'a slot freed by a close is taken again');
    assert.ok(!isOpen(await connect(url)), 'and the cap holds again');
  });

  test('per key: another key still connects', async () => {
    const withKeys = (plugin: AppPlugin): AppPlugin => async (app) => {
      app.addHook('onRequest', async (request) => {
        const k = request.headers['x-test-key'];
        if (typeof k === 'string') request.principal = principal(k);
      });
      await plugin(app);
    };
    const { url } = await listening({ security: { streamMaxPerKey: 1 } }, {}, withKeys);
    assert.ok(isOpen(await connect(url, { headers: { 'x-test-key': 'key-a' } })));
    const refused = await connect(url, { headers: { 'x-test-key': 'key-a' } });
    assert.ok(!isOpen(refused) && refused.body.code === 'ATS_ERR_TOO_MANY_STREAMS');
    assert.ok(isOpen(await connect(url, { headers: { 'x-test-key': 'key-b' } })), 'key-b has its own count');
    assert.ok(isOpen(await connect(url)), 'so does the address without a key');
  });

  test('per tenant: the keys of one tenant other than the default together hold at most a quarter of the process\'s connections; another tenant still connects', async () => {
    // Each key may hold 100 (more than its tenant's share): a tenant minting keys cannot take every slot.
    const withTenants = (plugin: AppPlugin): AppPlugin => async (app) => {
      app.addHook('onRequest', async (request) => {
        const k = request.headers['x-test-key'];
        if (typeof k === 'string') request.principal = { ...principal(k), tenant: k.split('/')[0]! };
      });
      await plugin(app);
    };
    const { url } = await listening({ security: { streamMaxPerKey: 100 } }, { maxConnections: 8 }, withTenants);
    const as = (key: string) => connect(url, { headers: { 'x-test-key': key } });
    assert.ok(isOpen(await as('acme/key-1')));
    assert.ok(isOpen(await as('acme/key-2')));
    const refused = await as('acme/key-3');
    assert.ok(!isOpen(refused), 'a third key of the same tenant is refused (8 / 4 = 2)');
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'ATS_ERR_TOO_MANY_STREAMS');
    assert.match(String(refused.body.message), /tenant/);
    assert.ok(isOpen(await as('globex/key-1')), 'another tenant has its own count');
    assert.ok(isOpen(await connect(url)), 'so does an address without a key');
    // The default tenant (a deployment without tenants has no other) is held to the process's cap only.
    for (const k of [1, 2, 3]) assert.ok(isOpen(await as(`default/key-${k}`)), `default/key-${k}`);
  });

  test('the process-wide cap refuses one more whoever asks', async () => {
    const { url } = await listening({ security: { streamMaxPerKey: 100 } }, { maxConnections: 2 });
    assert.ok(isOpen(await connect(url)));
    assert.ok(isOpen(await connect(url)));
    const refused = await connect(url);
    assert.ok(!isOpen(refused));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'ATS_ERR_TOO_MANY_STREAMS');
    assert.match(String(refused.body.message), /server/);
  });

  test('subprotocols: ats.v1 is selected, the key a browser sends as ats.key.<key> is never echoed', async () => {
    const { url } = await listening();
    const key = 'ats_01JABCDEFGHJKMNPQRSTVWXYZ0_' + 'k'.repeat(43);
    const r = await connect(url, { protocols: [`ats.key.${key}`, 'ats.v1'] });
    assert.ok(isOpen(r));
    assert.equal(r.protocolHeader, 'ats.v1');
    assert.equal(r.ws.protocol, 'ats.v1');
    r.ws.close();
    // Offered only the key: nothing is selected (the client then gives up), the key is not sent back.
    let header: string | undefined = 'unset';
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(url, [`ats.key.${key}`]);
      sockets.push(ws);
      ws.once('upgrade', (res) => (header = res.headers['sec-websocket-protocol'] as string | undefined));
      ws.once('error', () => resolve());
      ws.once('open', () => resolve());
    });
    assert.equal(header, undefined);
  });
});

// ------------------------------------------------------------------ error messages

describe('error messages stay small and hide internals', () => {
  const LONG = 'x'.repeat(5000);
  const small = (r: { statusCode: number; body: string }, what: string) => {
    assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${what}: ${r.statusCode}`);
    assert.ok(Buffer.byteLength(r.body) < 600, `${what}: ${Buffer.byteLength(r.body)} bytes: ${r.body.slice(0, 700)}`);
    assert.match(JSON.parse(r.body).code, /^ATS_ERR_/);
  };

  test('a 5,000-character path, parameter, query value, header value or body field yields a body under 600 bytes', async () => {
    const app = await build();
    small(await app.inject({ url: `/${LONG}` }), 'path');
    small(await app.inject({ url: `/v1/jobs/${LONG}` }), 'path parameter');
    small(await app.inject({ url: `/v1/jobs/${LONG}/cancel`, method: 'POST' }), 'path parameter of an action');
    small(await app.inject({ url: `/v1/jobs?state=${LONG}` }), 'query value');
    small(await app.inject({ url: `/v1/jobs?queue=${LONG}` }), 'query value');
    small(await app.inject({ url: `/v1/jobs?${LONG}=1` }), 'query name');
    small(await submit(app, { 'idempotency-key': LONG }), 'header value');
    small(await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: LONG, payload: {} } }), 'body value');
    small(await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, [LONG]: 1 } }), 'body field name');
    small(await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: LONG } }), 'queue');
    small(await app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'nightly', cron: `0 0 * * * ${LONG}`, type: 'demo.echo' } }), 'cron expression');
    small(await app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'nightly', cron: '0 0 * * *', timezone: LONG, type: 'demo.echo' } }), 'time zone');
    small(await app.inject({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': `application/${LONG}` }, payload: '{}' }), 'content type');
    small(await app.inject({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: `{"type": "${LONG}` }), 'malformed JSON');
  });

  test('a message built from input (a payload check quoting what it read) is cut: the body stays under 600 bytes', async () => {
    const app = await build({ checkPayload: (_type, payload) => `payload/${Object.keys(payload as object)[0]} must be a number` });
    small(await app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { [LONG]: 'x' } } }), 'payload check');
  });

  test('an internal error with SQL text and a file path: 500 ATS_ERR_INTERNAL "Internal error", nothing else', async () => {
    const SQL = "You have an error in your SQL syntax near 'SELECT * FROM jobs WHERE id = ?' at /work/main/adapters/mysql/mysql-store.ts:120:7";
    for (const leaky of [new Error(`ER_PARSE_ERROR: ${SQL}`), new AtsError('ATS_ERR_INTERNAL', `a statement failed: ${SQL}`)]) {
      const failing = new Proxy(store, {
        get: (target, prop, receiver) => (prop === 'getJob' || prop === 'listJobs' || prop === 'listJobPage' ? async () => { throw leaky; } : Reflect.get(target, prop, receiver)),
      });
      const app = await build({ store: failing });
      for (const url of ['/v1/jobs/01J00000000000000000000000', '/v1/jobs']) {
        const r = await app.inject({ url });
        assert.equal(r.statusCode, 500, url);
        assert.deepEqual(r.json(), { code: 'ATS_ERR_INTERNAL', message: 'Internal error' });
      }
    }
  });
});

describe('keys stay out of the log', () => {
  test('a request Node cannot parse is logged (at debug) without its bytes, so without its Authorization header', async () => {
    const lines: string[] = [];
    const app = await build({ loggerInstance: createLogger('debug', {}, (line) => lines.push(line)).pino });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const secret = 'Zm9vYmFyLXRoZS1zZWNyZXQtb2YtYS1rZXktMDEyMzQ1';
    const auth = `Authorization: Bearer ats_01J00000000000000000000000_${secret}\r\n`;
    const answers = [
      await raw(port, `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n${auth}NoColon\r\n\r\n`),
      await raw(port, `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n${auth}X-Big: ${'y'.repeat(20 * 1024)}\r\n\r\n`),
    ];
    assert.match(answers[0]!, /^HTTP\/1\.1 400 [^]*"code":"ATS_ERR_VALIDATION"/);
    assert.match(answers[1]!, /^HTTP\/1\.1 431 [^]*"code":"ATS_ERR_HEADERS_TOO_LARGE"/);
    const clientErrors = lines.filter((l) => l.includes('"msg":"client error"'));
    assert.equal(clientErrors.length, 2, lines.join('\n'));
    assert.match(clientErrors[0]!, /HPE_INVALID_HEADER_TOKEN/);
    // Neither the key as text nor the request's bytes in any form (pino writes a Buffer as its bytes).
    const secretBytes = [...Buffer.from(secret)].join(',');
    for (const line of lines) {
      assert.ok(!line.includes(secret) && !line.includes(secretBytes), `a log line holds the key: ${line.slice(0, 300)}`);
      assert.ok(!line.includes('rawPacket'), `a log line holds the request's bytes: ${line.slice(0, 300)}`);
    }
  });

  test('a key put in a query string (which is refused) is not written to the log with the URL', async () => {
    const lines: string[] = [];
    const logger = createLogger('debug', {}, (line) => lines.push(line)).pino;
    const secret = 'cXVlcnktc3RyaW5nLXNlY3JldC1vZi1hLWtleS0wMTIz';
    const key = `ats_01J00000000000000000000000_${secret}`;
    const { app, port } = await listening({ loggerInstance: logger });
    // A REST call and a stream upgrade with the key where a user may try it: ?key=, ?apiKey=, ?access_token=,
    // and under a name of their own (the key's `ats_` prefix gives it away).
    for (const query of [`key=${key}`, `apiKey=${encodeURIComponent(key)}`, `limit=5&access_token=${key}`, `mine=${key}`, `X-Api-Key=${secret}`, `key%5B%5D=${secret}`, key]) {
      await app.inject({ method: 'GET', url: `/v1/jobs?${query}` });
      await app.inject({ method: 'GET', url: `/v1/nowhere?${query}` });
    }
    await app.inject({ method: 'DELETE', url: `/v1/keys/${key}` });
    // An Upgrade request to a route that is no WebSocket endpoint: its 400 quotes the URL, without the key.
    const upgrade = await raw(port, `GET /v1/stats?key=${key} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    assert.match(upgrade, /^HTTP\/1\.1 400 [^]*"message":"GET \/v1\/stats\?key=\[redacted\] is not a WebSocket endpoint/);
    // A name that merely holds `ats_` is no key: a filter a reader of the log needs stays.
    await app.inject({ method: 'GET', url: '/v1/jobs?type=stats_daily&queue=Formats_pdf' });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?key=${key}`);
    await new Promise<void>((resolve) => { ws.once('close', () => resolve()); ws.once('error', () => resolve()); ws.once('open', () => ws.close()); });
    const urls = lines.filter((l) => l.includes('"url"'));
    assert.ok(urls.length >= 8, lines.join('\n'));
    for (const line of lines) assert.ok(!line.includes(secret), `a log line holds the key: ${line.slice(0, 300)}`);
    // The rest of the URL is still there to read.
    assert.ok(urls.some((l) => l.includes('/v1/jobs?limit=5&access_token=[redacted]')), urls.join('\n'));
    assert.ok(urls.some((l) => l.includes('/v1/keys/ats_01J00000000000000000000000_[redacted]')), urls.join('\n'));
    assert.ok(urls.some((l) => l.includes('/v1/jobs?type=stats_daily&queue=Formats_pdf')), urls.join('\n'));
  });
});
