/**
 * At most `maxConnections` connections open at once on a listening app
 * (server/connections.ts `installConnectionCap`): past it a new connection is
 * closed as it comes, unanswered, said at warn once a minute; once one of the
 * open ones closes, a request is answered again.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { connectionCapNotice, DEFAULT_CONNECTION_LIMITS, defaultMaxConnections } from './connections.js';

const MAX = 5;

/** A connection that sends nothing; resolves once connected, `ended` once the server closed it (with what it sent). */
function idle(port: number): Promise<{ socket: Socket; ended: Promise<string> }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, ended }));
    const ended = new Promise<string>((res) => socket.once('close', () => res(text)));
    socket.on('data', (d) => (text += d));
    socket.once('error', reject);
  });
}

const openConnections = (app: FastifyInstance) => new Promise<number>((resolve, reject) => app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

describe('the API\'s connection cap', () => {
  let t: TestApp;
  let port = 0;
  const lines: Array<{ level: string; msg: string; repeated?: unknown }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => { lines.push({ level, msg, repeated: fields?.repeated }); };
  before(async () => {
    t = await startSqliteTestApp({
      limits: { bodyLimitBytes: 1024 * 1024, maxConnections: MAX, headersTimeoutMs: 30_000, requestTimeoutMs: 30_000 },
      logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as { port: number }).port;
  });
  after(async () => {
    await t?.close();
  });

  test('past the cap a new connection is closed unanswered, said once; a request goes through once one closes', async () => {
    const open = [];
    for (let i = 0; i < MAX; i++) open.push(await idle(port));
    const deadline = Date.now() + 5000;
    while ((await openConnections(t.app)) < MAX && Date.now() < deadline) await sleep(10);
    assert.equal(await openConnections(t.app), MAX);
    const over = [await idle(port), await idle(port)];
    for (const c of over) {
      const sent = await Promise.race([c.ended, sleep(5000).then(() => 'still open')]);
      assert.equal(sent, '', 'closed as it came, nothing sent');
    }
    assert.equal(await openConnections(t.app), MAX, 'the open ones stay');
    const drops = lines.filter((l) => l.msg.startsWith('api: 5 connections open at once'));
    assert.deepEqual(drops.map((l) => l.level), ['warn', 'debug'], 'one warning; the next at debug');
    open.pop()!.socket.destroy();
    while ((await openConnections(t.app)) >= MAX && Date.now() < deadline + 5000) await sleep(10);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    for (const c of open) c.socket.destroy();
  });
});

describe('the connection cap and the open-file limit', () => {
  test('by default: 10,000, or half the open-file limit when that is lower, never below 64', () => {
    assert.equal(DEFAULT_CONNECTION_LIMITS.maxConnections, 10_000);
    assert.equal(defaultMaxConnections(null), 10_000, 'unknown or unlimited');
    assert.equal(defaultMaxConnections(1_048_576), 10_000);
    assert.equal(defaultMaxConnections(20_000), 10_000, 'half of it is the default exactly');
    assert.equal(defaultMaxConnections(19_999), 9_999);
    assert.equal(defaultMaxConnections(4096), 2048);
    assert.equal(defaultMaxConnections(1024), 512);
    assert.equal(defaultMaxConnections(129), 64);
    assert.equal(defaultMaxConnections(100), 64, 'never below the least ATS_HTTP_MAX_CONNECTIONS takes');
  });

  test('said at start: a default lowered at info, a setting at or above the limit at warn, naming both numbers; else nothing', () => {
    assert.equal(connectionCapNotice({ maxConnections: 10_000, set: false, openFileLimit: null }), null);
    assert.equal(connectionCapNotice({ maxConnections: 10_000, set: false, openFileLimit: 1_048_576 }), null, 'the default, not lowered');
    const lowered = connectionCapNotice({ maxConnections: 512, set: false, openFileLimit: 1024 });
    assert.equal(lowered?.level, 'info');
    assert.match(lowered!.message, /\b512\b.*\b1024\b.*ATS_HTTP_MAX_CONNECTIONS/);
    assert.deepEqual(lowered!.fields, { maxConnections: 512, openFileLimit: 1024 });
    const over = connectionCapNotice({ maxConnections: 5000, set: true, openFileLimit: 1024 });
    assert.equal(over?.level, 'warn');
    assert.match(over!.message, /ATS_HTTP_MAX_CONNECTIONS.*\b5000\b.*\b1024\b/);
    assert.deepEqual(over!.fields, { maxConnections: 5000, openFileLimit: 1024 });
    assert.equal(connectionCapNotice({ maxConnections: 1024, set: true, openFileLimit: 1024 })?.level, 'warn', 'as many as the limit: the process\'s own files come first');
    assert.equal(connectionCapNotice({ maxConnections: 1023, set: true, openFileLimit: 1024 }), null);
    assert.equal(connectionCapNotice({ maxConnections: 500, set: true, openFileLimit: 1024 }), null);
    assert.equal(connectionCapNotice({ maxConnections: 50_000, set: true, openFileLimit: null }), null, 'an unknown limit: nothing to compare');
    assert.equal(connectionCapNotice({ maxConnections: 10_000, set: true, openFileLimit: 1024 })?.level, 'warn', 'set to what the default would be: the setting, above the limit');
    const least = connectionCapNotice({ maxConnections: 64, set: false, openFileLimit: 100 });
    assert.equal(least?.level, 'info', 'a limit below 128: the least cap, 64, below it still');
    assert.match(least!.message, /\b64\b.*at least 64/);
    const floor = connectionCapNotice({ maxConnections: 64, set: false, openFileLimit: 64 });
    assert.equal(floor?.level, 'warn', 'a limit at or below 64: the least cap is not below it, unset or not');
    assert.match(floor!.message, /the least it can be.*\b64\b.*raise the limit/);
  });
});
