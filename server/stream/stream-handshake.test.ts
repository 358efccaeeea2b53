/**
 * A malformed WebSocket handshake on `GET /v1/stream` (a missing or invalid
 * `Sec-WebSocket-Key`, a version other than 13 or 8, a `Sec-WebSocket-Protocol`
 * that is no list of tokens, an `Upgrade` other than websocket) is answered
 * as every other refusal of the API: a 400 with the JSON error body and a
 * stable code (`ATS_ERR_VALIDATION`), before the upgrade, holding no
 * connection slot; not ws's bare text/html page.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import { startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const GOOD: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': KEY, 'sec-websocket-version': '13' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends one upgrade request with these headers (a header given as null is left out), and reads the answer. */
function upgrade(url: string, change: Record<string, string | null>): Promise<Answer> {
  const headers = Object.fromEntries(Object.entries({ ...GOOD, ...change }).filter((e): e is [string, string] => e[1] !== null));
  return new Promise((resolve, reject) => {
    const req = request(url.replace(/^ws/, 'http'), { headers });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a malformed stream handshake', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stream-handshake-'));
  let store: SqliteStore;
  let instance: StreamInstance;

  before(async () => {
    store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    await store.migrate();
    instance = await startStreamInstance({ store });
  });
  after(async () => {
    await instance?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is a 400 ATS_ERR_VALIDATION with the JSON error body, naming the header', async () => {
    const cases: Array<[Record<string, string | null>, RegExp]> = [
      [{ 'sec-websocket-key': null }, /Sec-WebSocket-Key/],
      [{ 'sec-websocket-key': 'short' }, /Sec-WebSocket-Key/],
      [{ 'sec-websocket-version': null }, /Sec-WebSocket-Version/],
      [{ 'sec-websocket-version': '12' }, /Sec-WebSocket-Version/],
      [{ 'sec-websocket-protocol': 'a b,,' }, /Sec-WebSocket-Protocol/],
      [{ 'sec-websocket-protocol': 'ats.v1, ats.v1' }, /Sec-WebSocket-Protocol/],
      [{ upgrade: 'h2c' }, /Upgrade/],
    ];
    for (const [change, names] of cases) {
      const answer = await upgrade(instance.url, change);
      const what = JSON.stringify(change);
      assert.equal(answer.status, 400, what);
      assert.match(String(answer.headers['content-type']), /^application\/json/, what);
      const body = JSON.parse(answer.body) as { code: string; message: string };
      assert.equal(body.code, 'ATS_ERR_VALIDATION', what);
      assert.match(body.message, names, what);
    }
    // The versions a client may try are named, as RFC 6455 asks.
    assert.equal((await upgrade(instance.url, { 'sec-websocket-version': '12' })).headers['sec-websocket-version'], '13, 8');
  });

  it('a good handshake is still upgraded, with the subprotocol when offered, and a client is served after the refusals', async () => {
    assert.equal((await upgrade(instance.url, {})).status, 101);
    const offered = await upgrade(instance.url, { 'sec-websocket-protocol': 'ats.v1, ats.key.x' });
    assert.equal(offered.status, 101);
    assert.equal(offered.headers['sec-websocket-protocol'], 'ats.v1');
    assert.equal((await upgrade(instance.url, { 'sec-websocket-version': '8', upgrade: 'WebSocket' })).status, 101);
    const client = await TestClient.connect(instance.url);
    try {
      assert.ok(await client.subscribe({}));
    } finally {
      await client.close();
    }
  });
});
