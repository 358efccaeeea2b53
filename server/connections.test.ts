/**
 * What a client can do to a connection, on a listening app with the stream
 * plugin registered (so the server has an `upgrade` listener, as in
 * production): an `Upgrade` request on an ordinary route is answered and its
 * socket closed; a client that sends its headers or its body slowly, or
 * declares a body it never sends, is answered 408 and cut off after the
 * configured time; an idle kept-alive connection is closed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { monotonicFactory } from 'ulid';
import WebSocket from 'ws';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { silentLogger } from '../engine/logger.js';
import { TransitionService } from '../engine/transitions.js';
import { buildApp, type AppLimits } from './app.js';
import { LINGER_MS } from './connections.js';
import { streamPlugin } from './stream/index.js';
import { TEST_DEFAULTS, testClock } from '../tests/helpers/app.js';

const LIMITS: AppLimits = { bodyLimitBytes: 1024 * 1024, headersTimeoutMs: 400, requestTimeoutMs: 1200, bodyTimeoutMs: 400, keepAliveTimeoutMs: 400 };
/** Generous bound on "cut off after the configured time" (the configured times are at most 1.2 s). */
const CUT_WITHIN_MS = 4000;

interface RawClient {
  socket: Socket;
  /** Everything the server sent until it closed the connection; rejects if it is still open after `ms`. */
  closedWithin(ms: number): Promise<{ text: string; ms: number }>;
}

function rawClient(port: number, first?: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1', () => {
      if (first) socket.write(first);
      resolve({
        socket,
        closedWithin: (ms) =>
          Promise.race([
            closed,
            new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`the server kept the connection open for ${ms} ms; it sent: ${JSON.stringify(text)}`)), ms).unref()),
          ]),
      });
    });
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('error', () => undefined);
    const closed = new Promise<{ text: string; ms: number }>((res) => socket.once('end', () => res({ text, ms: Date.now() - started })));
    socket.once('error', reject);
  });
}

/**
 * In a process of its own, as a client is (in this one, the server's reading and closing and the client's
 * writing take turns, and the reset below never lands): sends `head` then `bodyBytes` of body (as one chunk
 * when `chunked`) as fast as the server takes it, reading meanwhile. Resolves with all the server sent once
 * the connection ended, whether closed or reset.
 */
async function sendWhole(port: number, head: string, bodyBytes: number, chunked: boolean): Promise<string> {
  const client = `
    const body = Buffer.alloc(${bodyBytes}, 'x');
    const socket = require('node:net').connect(${port}, '127.0.0.1', () => {
      socket.write(${JSON.stringify(head)});
      socket.write(${chunked} ? Buffer.concat([Buffer.from(body.length.toString(16) + '\\r\\n'), body, Buffer.from('\\r\\n0\\r\\n\\r\\n')]) : body);
    });
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('error', () => undefined);
    socket.once('end', () => socket.destroy());
    socket.once('close', () => process.stdout.write(text));`;
  const child = spawn(process.execPath, ['-e', client], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  await once(child, 'close');
  return text;
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
const upgradeHeaders = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('connections: upgrades and slow clients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-connections-'));
  let store: SqliteStore;
  let transitions: TransitionService;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let port = 0;

  before(async () => {
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    const ulid = monotonicFactory();
    transitions = new TransitionService({ store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() } });
    app = await buildApp({
      transitions, store, clock: testClock, checks: { database: () => store.ping() }, limits: LIMITS, defaults: TEST_DEFAULTS,
      plugins: [streamPlugin({ store, clock: testClock, logger: silentLogger })],
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });

  after(async () => {
    await app?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const openConnections = () => new Promise<number>((resolve, reject) => app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  test('Upgrade: websocket on GET /v1/jobs: a 4xx with a registry code, and the server closes the socket', async () => {
    const c = await rawClient(port, `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n${upgradeHeaders}\r\n`);
    const { text } = await c.closedWithin(2000);
    assert.ok(statusOf(text) >= 400 && statusOf(text) < 500, text);
    assert.equal(bodyOf(text).code, 'ATS_ERR_VALIDATION');
    assert.match(bodyOf(text).message, /\/v1\/stream/);
  });

  test('Upgrade on POST /v1/jobs with a body, and on an unknown route: answered and closed', async () => {
    const body = JSON.stringify({ type: 'demo.echo', payload: {} });
    for (const head of [
      `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${upgradeHeaders}\r\n${body}`,
      `GET /nowhere HTTP/1.1\r\nHost: localhost\r\n${upgradeHeaders}\r\n`,
      `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    ]) {
      const c = await rawClient(port, head);
      const { text } = await c.closedWithin(2000);
      assert.ok(statusOf(text) >= 400 && statusOf(text) < 500, text);
      assert.ok(bodyOf(text).code.startsWith('ATS_ERR_'), text);
    }
    assert.equal((await store.listJobs({ limit: 10 })).length, 0, 'a refused upgrade writes nothing');
  });

  test('20 stray upgrades leave no connection open on the server', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient(port, `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n${upgradeHeaders}\r\n`)));
    await Promise.all(clients.map((c) => c.closedWithin(2000)));
    for (const c of clients) c.socket.destroy();
    for (let i = 0; i < 50 && (await openConnections()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await openConnections(), 0);
  });

  test('the stream still upgrades', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`);
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    ws.close();
  });

  test('headers that never finish: 408 and closed after the headers timeout', async () => {
    const c = await rawClient(port, 'GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n');
    const { text, ms } = await c.closedWithin(CUT_WITHIN_MS);
    assert.equal(statusOf(text), 408, text);
    assert.equal(bodyOf(text).code, 'ATS_ERR_REQUEST_TIMEOUT');
    assert.ok(ms >= 300, `cut after ${ms} ms, before the headers timeout`);
  });

  test('slowloris: headers sent one byte every 200 ms are cut by the headers timeout, however steadily they arrive', async () => {
    const headersTimeoutMs = 1000;
    const slow = await buildApp({
      transitions, store, clock: testClock, checks: { database: () => store.ping() }, defaults: TEST_DEFAULTS,
      limits: { ...LIMITS, headersTimeoutMs, requestTimeoutMs: 10 * headersTimeoutMs },
    });
    try {
      await slow.listen({ port: 0, host: '127.0.0.1' });
      const c = await rawClient((slow.server.address() as { port: number }).port);
      const head = `GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'a'.repeat(200)}\r\n\r\n`;
      let sent = 0;
      const drip = setInterval(() => c.socket.writable && sent < head.length && c.socket.write(head[sent++]!), 200);
      try {
        const { text, ms } = await c.closedWithin(CUT_WITHIN_MS);
        console.log(`slowloris cut after ${ms.toLocaleString('en')} ms, ${sent} bytes of headers sent (headersTimeoutMs ${headersTimeoutMs.toLocaleString('en')})`);
        assert.equal(statusOf(text), 408, text);
        assert.equal(bodyOf(text).code, 'ATS_ERR_REQUEST_TIMEOUT');
        assert.ok(ms >= headersTimeoutMs - 100, `cut after ${ms} ms, before the headers timeout`);
        assert.ok(ms < headersTimeoutMs + 1000, `cut after ${ms} ms: the trickle kept it alive`);
        assert.ok(sent < head.length, 'the headers never completed');
      } finally {
        clearInterval(drip);
      }
    } finally {
      await slow.close();
    }
  });

  test('a body that stops arriving: 408 ATS_ERR_REQUEST_TIMEOUT and closed after the body timeout', async () => {
    const c = await rawClient(port, 'POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":');
    const { text, ms } = await c.closedWithin(CUT_WITHIN_MS);
    assert.equal(statusOf(text), 408, text);
    assert.equal(bodyOf(text).code, 'ATS_ERR_REQUEST_TIMEOUT');
    assert.ok(ms >= 300, `cut after ${ms} ms`);
  });

  test('a chunk declared huge and never sent: cut off', async () => {
    const c = await rawClient(port, 'POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n{"a"');
    const { text } = await c.closedWithin(CUT_WITHIN_MS);
    assert.equal(statusOf(text), 408, text);
  });

  test('a body trickling in (never idle for the body timeout) is cut by the request timeout', async () => {
    const c = await rawClient(port, 'POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n');
    const drip = setInterval(() => c.socket.writable && c.socket.write(' '), 100);
    try {
      const { text, ms } = await c.closedWithin(CUT_WITHIN_MS);
      assert.equal(statusOf(text), 408, text);
      assert.ok(ms >= 1000, `cut after ${ms} ms, before the request timeout`);
    } finally {
      clearInterval(drip);
    }
  });

  test('an idle kept-alive connection is closed after the keep-alive timeout', async () => {
    const c = await rawClient(port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const { text } = await c.closedWithin(CUT_WITHIN_MS);
    assert.equal(statusOf(text), 200, text);
  });

  test('a body whose reader stopped before its end never fires the body timeout into the process (no uncaught error)', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const body = JSON.stringify({ name: 'k', scopes: ['read'] });
      for (const head of [
        // An upgrade to a route that does not take one (here one that does not exist), with a body.
        `POST /V1/KEYS HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${upgradeHeaders}\r\n${body}`,
        `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length + 20}\r\n${upgradeHeaders}\r\n${body}`,
        // A body longer than its Content-Length, and one over the limit.
        `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n${body}`,
        `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n${'x'.repeat(1100 * 1024)}`,
      ]) {
        const c = await rawClient(port, head);
        await c.closedWithin(CUT_WITHIN_MS).catch(() => c.socket.destroy());
      }
      // Past every body timeout.
      await new Promise((r) => setTimeout(r, 3 * LIMITS.bodyTimeoutMs!));
      assert.deepEqual(uncaught.map(String), []);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  test('an upgrade whose URL is refused before routing (bad encoding, a parameter too long): answered and closed', async () => {
    for (const path of ['/v1/limits/%zz', `/v1/jobs/${'A'.repeat(300)}`]) {
      const c = await rawClient(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${upgradeHeaders}\r\n`);
      const { text } = await c.closedWithin(2000);
      assert.equal(statusOf(text), 400, text);
    }
  });

  test('pipelined requests are answered in order; none after an answer that closes the connection is run', async () => {
    const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;
    const three = await rawClient(port, get('/v1/jobs?limit=1') + get('/healthz') + get('/v1/stats', 'Connection: close\r\n'));
    const answered = await three.closedWithin(2000);
    assert.deepEqual(answered.text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    assert.match(answered.text, /"status":"ok"[\s\S]*"byState"/, 'in the order asked');
    const before = (await store.listJobs({ limit: 1000 })).length;
    const submit = JSON.stringify({ type: 'demo.echo', payload: { smuggled: true } });
    const c = await rawClient(port,
      'POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{x' +
      `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${submit.length}\r\n\r\n${submit}`);
    const { text } = await c.closedWithin(2000);
    assert.equal(text.match(/HTTP\/1\.1 \d+/g)?.length, 1, text);
    assert.equal(statusOf(text), 400);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await store.listJobs({ limit: 1000 })).length, before, 'the submit behind the closing answer was not run');
  });

  // Answered before its body was read (a 413, a 415), the connection is closed; closed at once, with the rest of the
  // body still arriving, the kernel resets it, and the reset threw the answer away before the client read it: a
  // client (fetch, the ats client splitting a batch on a 413) saw EPIPE or ECONNRESET, never the 413.
  test('a body over the limit, or of another media type, still being sent when the answer comes: the client reads the answer', async () => {
    const body = Buffer.alloc(8 * 1024 * 1024, 'x');
    const json = 'Content-Type: application/json\r\n';
    for (const c of [
      { name: 'Content-Length over the limit', head: `${json}Content-Length: ${body.length}\r\n`, chunked: false, status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
      { name: 'chunked over the limit', head: `${json}Transfer-Encoding: chunked\r\n`, chunked: true, status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
      { name: 'text/plain', head: `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n`, chunked: false, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
    ]) {
      for (let i = 0; i < 3; i++) {
        const text = await sendWhole(port, `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n${c.head}\r\n`, body.length, c.chunked);
        assert.equal(statusOf(text), c.status, `${c.name}, try ${i + 1}: the client read ${JSON.stringify(text.slice(0, 200))}`);
        assert.equal(text.match(/HTTP\/1\.1 \d{3}/g)?.length, 1, `one answer, no other after it: ${text}`);
        assert.equal(bodyOf(text).code, c.code, text);
      }
    }
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 413);
    }
    assert.equal((await store.listJobs({ limit: 10 })).length, 0, 'a refused body writes nothing');
  });

  test('a connection answered while its body still came is let go: once the client closes its side, or LINGER_MS after the answer', async () => {
    const head = `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n`;
    const serverLetGo = async (within: number) => {
      const t0 = Date.now();
      while ((await openConnections()) > 0 && Date.now() - t0 < within) await new Promise((r) => setTimeout(r, 20));
      return openConnections();
    };
    const c = await rawClient(port, head);
    const { text } = await c.closedWithin(CUT_WITHIN_MS);
    assert.equal(statusOf(text), 413, text);
    c.socket.write('x'.repeat(1000));
    c.socket.end();
    assert.equal(await serverLetGo(LINGER_MS / 2), 0, 'destroyed once the client closed its side');
    // A client that keeps its side open and sends nothing more.
    const silent = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => silent.write(head));
    silent.on('error', () => undefined);
    let answer = '';
    silent.on('data', (d) => (answer += d));
    await once(silent, 'end');
    assert.equal(statusOf(answer), 413, answer);
    const t0 = Date.now();
    assert.equal(await serverLetGo(CUT_WITHIN_MS), 0, 'a client that sent nothing more is let go');
    assert.ok(Date.now() - t0 >= LINGER_MS / 2, 'read on for a while first');
    silent.destroy();
  });

  // Node answered an expectation it does not know itself: a bare 417, no {code, message}, no x-request-id.
  test('an Expect other than 100-continue: 417 ATS_ERR_EXPECTATION_FAILED {code, message}, nothing written; 100-continue still works', async () => {
    const job = JSON.stringify({ type: 'demo.echo', payload: { expect: true } });
    const before = (await store.listJobs({ limit: 1000 })).length;
    for (const expect of ['200-ok', 'foo=bar']) {
      const c = await rawClient(port,
        `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: ${expect}\r\nContent-Length: ${job.length}\r\nConnection: close\r\n\r\n${job}`);
      const { text } = await c.closedWithin(2000);
      assert.equal(statusOf(text), 417, text);
      assert.equal(bodyOf(text).code, 'ATS_ERR_EXPECTATION_FAILED', text);
      assert.match(bodyOf(text).message, /100-continue/);
      assert.match(text, /\r\nx-request-id: /i);
    }
    assert.equal((await store.listJobs({ limit: 1000 })).length, before, 'a refused expectation writes nothing');
    const c = await rawClient(port,
      `POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-Continue\r\nContent-Length: ${job.length}\r\nConnection: close\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 100));
    c.socket.write(job);
    const { text } = await c.closedWithin(2000);
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /, text);
  });

  // Node's HTTP server closed its side at the client's FIN: an answer not written by then (any that waits on
  // the database) was lost, the job written all the same. A client that half-closes once its request is sent
  // (`printf ... | nc -N`, shutdown(SHUT_WR)) could not tell whether it was.
  test('a client that closes its side once the request is sent still gets the answer', async () => {
    const job = JSON.stringify({ type: 'demo.echo', payload: { halfClosed: true } });
    for (const close of ['', 'Connection: close\r\n']) {
      const c = await rawClient(port);
      c.socket.end(`POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${close}Content-Length: ${job.length}\r\n\r\n${job}`);
      const { text } = await c.closedWithin(2000);
      assert.equal(statusOf(text), 201, JSON.stringify(text));
      const id = (bodyOf(text) as unknown as { id: string }).id;
      assert.equal((await store.getJob(id))?.id, id);
    }
  });

  test('a normal request is unaffected', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.echo', payload: { n: 1 } }) });
    assert.equal(r.status, 201);
  });
});
