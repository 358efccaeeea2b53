/**
 * The client's key and audit calls against the API with keys required (the
 * test app on SQLite, listening on a free port): create (the secret once),
 * list, revoke, the audit log; refusals as ApiErrors; and a create whose
 * answer was lost is not sent again (a second key nobody saw would be made).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { monotonicFactory } from 'ulid';
import { keyMatches, newApiKey, SCOPES } from '../engine/auth.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { ApiError, createClient, UnreachableError, type AtsClient } from './index.js';

const ulid = monotonicFactory();
const is = (status: number, code: string) => (e: unknown) => e instanceof ApiError && e.status === status && e.code === code;

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
