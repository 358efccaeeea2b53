/**
 * The client's key and audit calls against the API with keys required (the
 * test app on SQLite, listening on a free port): create (the secret once),
 * list, revoke, the audit log; refusals as ApiErrors; and a create whose
 * answer was lost is not sent again (a second key nobody saw would be made).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import { WebSocket } from 'ws';
import { compose, type System } from '../cli/compose.js';
import { configFrom } from '../cli/start.js';
import { keyMatches, newApiKey, SCOPES } from '../engine/auth.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { KEY_CACHE_MS } from '../server/auth.js';
import { startTcpProxy } from '../tests/helpers/tcp-proxy.js';
import { ApiError, createClient, UnreachableError, type AtsClient, type WebSocketConstructor } from './index.js';

const ulid = monotonicFactory();
const is = (status: number, code: string) => (e: unknown) => e instanceof ApiError && e.status === status && e.code === code;

/** A socket with the standard WebSocket API only (a browser's, Node 22's global): it cannot show a refused upgrade's HTTP status. */
class StandardSocket {
  private readonly ws: WebSocket;
  constructor(url: string, protocols?: string[]) {
    this.ws = new WebSocket(url, protocols);
    this.ws.on('error', () => undefined);
  }
  get readyState(): number {
    return this.ws.readyState;
  }
  send(data: string): void {
    this.ws.send(data);
  }
  close(code?: number, reason?: string): void {
    try {
      this.ws.close(code, reason);
    } catch {
      // not open yet: it ends anyway
    }
  }
  set onopen(f: ((e: unknown) => void) | null) {
    this.ws.onopen = f as never;
  }
  set onmessage(f: ((e: { data: unknown }) => void) | null) {
    this.ws.onmessage = f as never;
  }
  set onclose(f: ((e: { code: number; reason: string }) => void) | null) {
    this.ws.onclose = f as never;
  }
  set onerror(f: ((e: unknown) => void) | null) {
    this.ws.onerror = f as never;
  }
}

describe('keys and audit through the client', () => {
  let t: TestApp;
  let url: string;
  let admin: AtsClient;
  let adminId: string;
  before(async () => {
    t = await startSqliteTestApp({}, { auth: 'on' });
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    adminId = ulid();
    const { key, hash } = newApiKey(adminId, randomBytes(32));
    await t.store.createKey({ id: adminId, tenant: 'acme', name: 'boot', scopes: [...SCOPES], createdAt: Date.now() - 60_000, revokedAt: null, createdBy: null, hash });
    admin = createClient({ url, apiKey: key, retries: 0 });
  });
  after(async () => {
    await t?.close();
  });

  test('createKey shows the secret once; listKeys lists it without; revokeKey revokes it; listAudit shows both', async () => {
    const made = await admin.createKey({ name: 'ci-bot', scopes: ['submit', 'read'] });
    assert.equal(made.tenant, 'acme');
    assert.equal(made.createdBy, adminId);
    assert.deepEqual(made.scopes, ['submit', 'read']);
    assert.ok(keyMatches(made.key, (await t.store.getKey(made.id))!.hash));
    const listed = await admin.listKeys();
    assert.deepEqual(listed.map((k) => k.id), [made.id, adminId]);
    assert.ok(!('key' in listed[0]!));
    const asBot = createClient({ url, apiKey: made.key, retries: 0 });
    assert.ok(Array.isArray((await asBot.listPage()).jobs), 'the new key works');
    await assert.rejects(asBot.listKeys(), is(403, 'ATS_ERR_FORBIDDEN'));
    assert.deepEqual(await asBot.whoAmI(), { keyId: made.id, tenant: 'acme', scopes: ['submit', 'read'] }, 'whoAmI: the key\'s own id, tenant and scopes');

    await admin.revokeKey(made.id);
    await admin.revokeKey(made.id);
    assert.ok((await admin.listKeys()).find((k) => k.id === made.id)!.revokedAt);
    const audit = await admin.listAudit();
    assert.deepEqual(audit.map((e) => [e.action, e.keyId, e.target]), [['key.revoke', adminId, made.id], ['key.create', adminId, made.id]]);
    assert.deepEqual((await admin.listAudit({ limit: 1 })).map((e) => e.action), ['key.revoke']);
  });

  test('refusals are ApiErrors with the server\'s code', async () => {
    await assert.rejects(admin.revokeKey(ulid()), is(404, 'ATS_ERR_KEY_NOT_FOUND'));
    await assert.rejects(admin.revokeKey('a/b'), is(400, 'ATS_ERR_VALIDATION'));
    await assert.rejects(admin.createKey({ name: 'bad name', scopes: ['read'] }), is(400, 'ATS_ERR_VALIDATION'));
    await assert.rejects(admin.listAudit({ limit: 0 }), is(400, 'ATS_ERR_VALIDATION'));
    await assert.rejects(createClient({ url, retries: 0 }).listKeys(), is(401, 'ATS_ERR_UNAUTHORIZED'));
  });

  test('a create whose answer was lost is thrown, not sent again', async () => {
    const before = (await t.store.listKeys(1000)).length;
    let posts = 0;
    const losing = createClient({
      url, apiKey: (await admin.createKey({ name: 'helper', scopes: ['admin'] })).key, retries: 3, retryDelayMs: { min: 1, max: 1 },
      fetch: async (input, init) => {
        const r = await fetch(input, init);
        if (init?.method !== 'POST') return r;
        posts++;
        await r.text();
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
      },
    });
    await assert.rejects(losing.createKey({ name: 'lost', scopes: ['read'] }), (e: unknown) => e instanceof UnreachableError);
    assert.equal(posts, 1);
    assert.equal((await t.store.listKeys(1000)).length, before + 2, 'the helper and the one lost answer\'s key');
  });
});

describe('a watch whose key is revoked while it is away (keys required, the stream served)', () => {
  let system: System;
  let url: string;
  let admin: AtsClient;
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-client-keys-'));
  before(async () => {
    system = await compose(configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_AUTH: 'on' }, []), { registry: new HandlerRegistry(), logger: silentLogger });
    url = (await system.start()).url!.replace('localhost', '127.0.0.1');
    const id = ulid();
    const { key, hash } = newApiKey(id, randomBytes(32));
    await system.store.createKey({ id, tenant: 'default', name: 'boot', scopes: [...SCOPES], createdAt: Date.now(), revokedAt: null, createdBy: null, hash });
    admin = createClient({ url, apiKey: key, retries: 0 });
  });
  after(async () => {
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const socket of ['ws', 'standard'] as const) {
    test(`its reconnect ends it with the server's 401 ATS_ERR_UNAUTHORIZED (${socket} socket)`, async () => {
      const made = await admin.createKey({ name: `watcher-${socket}`, scopes: ['read'] });
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(url).port) });
      const w = createClient({
        url: `http://127.0.0.1:${proxy.port}`, apiKey: made.key, retries: 0,
        ...(socket === 'standard' ? { WebSocket: StandardSocket as unknown as WebSocketConstructor } : {}),
      }).watch({}, { reconnect: { minMs: 20, maxMs: 100 } });
      try {
        await w.ready;
        await proxy.cut();
        await admin.revokeKey(made.id);
        // Reconnects refused by the network meanwhile are retried; past the server's key cache the upgrade is answered 401.
        await delay(KEY_CACHE_MS + 300);
        await proxy.restore();
        const ended = await Promise.race([w.next().then(() => 'an event', (e: unknown) => e), delay(5000).then(() => 'still retrying after 5 s')]);
        assert.ok(is(401, 'ATS_ERR_UNAUTHORIZED')(ended), String(ended));
      } finally {
        w.close();
        await proxy.close();
      }
    });
  }
});
