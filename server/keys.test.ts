/**
 * `/v1/keys` and `/v1/audit` on both stores: an admin key creates keys of its
 * own tenant (the secret shown once, its hash stored), lists them without
 * secrets, revokes them; another tenant's key is a 404, never confirmed;
 * every change is in the audit log with the key that made it, in the same
 * transaction: a change whose entry cannot be written is not made (a failed
 * create leaves no key, a failed revoke leaves the key as it was and its
 * retry is recorded). Bad input is a 400 that writes nothing. The routes are
 * documented (OpenAPI) and served only with their deps.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { monotonicFactory } from 'ulid';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { keyIdOf, keyMatches, newApiKey, SCOPES, type Scope } from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import type { AuditStore } from '../engine/ports.js';
import { AUDIT_SCHEMAS, KEY_SCHEMAS } from './key-schemas.js';
import { startSqliteTestApp, startTestApp, type TestApp, type TestAppOptions } from '../tests/helpers/app.js';
import { refuseWrites } from '../tests/helpers/refuse-writes.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const KEY = /^ats_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/;
const ulid = monotonicFactory();
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A key made in the store, as `ats keys create` makes the first one. */
async function bootstrap(t: TestApp, tenant: string, scopes: readonly Scope[] = SCOPES) {
  const id = ulid();
  const { key, hash } = newApiKey(id, randomBytes(32));
  await t.store.createKey({ id, tenant, name: 'boot', scopes: [...scopes], createdAt: Date.now() - 60_000, revokedAt: null, createdBy: null, hash });
  return { id, key, headers: bearer(key) };
}

async function create(t: TestApp, headers: Record<string, string>, body: unknown) {
  const r = await t.app.inject({ method: 'POST', url: '/v1/keys', headers, payload: body as object });
  assert.equal(r.statusCode, 201, r.body);
  return { body: r.json() as Record<string, unknown> & { id: string; key: string }, headers: r.headers };
}

async function list(t: TestApp, headers: Record<string, string>) {
  const r = await t.app.inject({ url: '/v1/keys', headers });
  assert.equal(r.statusCode, 200, r.body);
  return (r.json() as { keys: Array<Record<string, unknown>> }).keys;
}

async function auditOf(t: TestApp, headers: Record<string, string>, query = '') {
  const r = await t.app.inject({ url: `/v1/audit${query}`, headers });
  assert.equal(r.statusCode, 200, r.body);
  return (r.json() as { entries: Array<Record<string, unknown>> }).entries;
}

const BACKENDS: Array<[string, (o: TestAppOptions) => Promise<TestApp>]> = [
  ['sqlite', (o) => startSqliteTestApp({}, o)],
  ['mysql', (o) => startTestApp({}, o)],
];

for (const [name, start] of BACKENDS) {
  describe(`/v1/keys with keys required, on ${name}`, () => {
    let t: TestApp;
    before(async () => {
      t = await start({ auth: 'on' });
    });
    after(async () => {
      await t?.close();
    });

    test('an admin key creates a key of its tenant, shown once; it works, is listed without its secret, and once revoked is refused', async () => {
      const admin = await bootstrap(t, 'acme');
      const { body, headers } = await create(t, admin.headers, { name: 'ci-bot', scopes: ['read', 'submit', 'read'] });
      assert.match(body.key, KEY);
      assert.equal(keyIdOf(body.key), body.id);
      assert.deepEqual({ ...body, key: undefined, createdAt: undefined }, {
        id: body.id, tenant: 'acme', name: 'ci-bot', scopes: ['submit', 'read'], revokedAt: null, createdBy: admin.id, key: undefined, createdAt: undefined,
      });
      assert.match(String(body.createdAt), ISO);
      assert.equal(headers['cache-control'], 'no-store');
      const stored = await t.store.getKey(body.id);
      assert.ok(stored && keyMatches(body.key, stored.hash), 'the store holds the hash of the key shown');
      assert.ok(!JSON.stringify(body).includes(stored.hash), 'the answer carries no hash');

      // The new key acts for its tenant with its scopes.
      assert.equal((await t.app.inject({ url: '/v1/jobs', headers: bearer(body.key) })).statusCode, 200);
      assert.equal((await t.app.inject({ url: '/v1/keys', headers: bearer(body.key) })).statusCode, 403);

      const listed = await list(t, admin.headers);
      assert.deepEqual(listed.map((k) => k.id), [body.id, admin.id], 'newest first');
      for (const k of listed) assert.deepEqual(Object.keys(k).sort(), ['createdAt', 'createdBy', 'id', 'name', 'revokedAt', 'scopes', 'tenant']);

      const revoke = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${body.id}`, headers: admin.headers });
      assert.equal(revoke.statusCode, 204, revoke.body);
      assert.match(String((await list(t, admin.headers)).find((k) => k.id === body.id)!.revokedAt), ISO);
      const again = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${body.id}`, headers: admin.headers });
      assert.equal(again.statusCode, 204, 'revoking a revoked key of the tenant is a no-op');

      // Revoked through this instance: refused at once here, though the key was read a moment ago.
      const refused = await t.app.inject({ url: '/v1/jobs', headers: bearer(body.key) });
      assert.equal(refused.statusCode, 401, 'a revoked key is refused');

      const entries = await auditOf(t, admin.headers);
      assert.deepEqual(entries.map((e) => [e.action, e.keyId, e.tenant, e.target]), [
        ['key.revoke', admin.id, 'acme', body.id],
        ['key.create', admin.id, 'acme', body.id],
      ], 'one key.revoke: the second revoke changed nothing');
      for (const e of entries) assert.match(String(e.at), ISO);
    });

    test('a tenant never sees, revokes or reads the audit of another tenant\'s keys: their ids are a 404 like unknown ones', async () => {
      const acme = await bootstrap(t, 'acme2');
      const globex = await bootstrap(t, 'globex');
      const theirs = (await create(t, globex.headers, { name: 'their-bot', scopes: ['read'] })).body;
      const ours = (await create(t, acme.headers, { name: 'our-bot', scopes: ['operate'] })).body;
      assert.equal(theirs.tenant, 'globex');
      assert.deepEqual((await list(t, acme.headers)).map((k) => k.id), [ours.id, acme.id]);
      assert.deepEqual((await list(t, globex.headers)).map((k) => k.id), [theirs.id, globex.id]);

      const cross = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${theirs.id}`, headers: acme.headers });
      const unknown = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${ulid()}`, headers: acme.headers });
      assert.equal(cross.statusCode, 404);
      assert.equal(cross.json().code, 'ATS_ERR_KEY_NOT_FOUND');
      assert.equal(unknown.statusCode, 404);
      assert.equal(cross.json().message.replace(theirs.id, 'ID'), unknown.json().message.replace(/[0-9A-Z]{26}/, 'ID'), 'the same answer as an unknown id');
      assert.equal((await t.store.getKey(theirs.id))!.revokedAt, null, 'their key still works');
      const revokeOwn = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${globex.id}`, headers: acme.headers });
      assert.equal(revokeOwn.statusCode, 404, 'not even the other tenant\'s admin key');

      assert.deepEqual((await auditOf(t, acme.headers)).map((e) => [e.action, e.target]), [['key.create', ours.id]]);
      assert.deepEqual((await auditOf(t, globex.headers)).map((e) => [e.action, e.target]), [['key.create', theirs.id]]);
    });

    test('GET /v1/audit?limit=N answers the newest N', async () => {
      const admin = await bootstrap(t, 'many');
      const made = [];
      for (let i = 0; i < 3; i++) made.push((await create(t, admin.headers, { name: `k${i}`, scopes: ['read'] })).body.id);
      assert.deepEqual((await auditOf(t, admin.headers, '?limit=2')).map((e) => e.target), [made[2], made[1]]);
      assert.equal((await auditOf(t, admin.headers)).length, 3);
    });

    // The database refuses the audit entry (and, for the create, the revoke that would undo the key):
    // a change is written with its entry or not at all.
    test('a create whose audit entry cannot be written leaves no key, not even with the key table refusing updates', async () => {
      const admin = await bootstrap(t, 'tx-create');
      const lift = [await refuseWrites(t.store, { table: 'audit_log', op: 'INSERT' }), await refuseWrites(t.store, { table: 'api_keys', op: 'UPDATE' })];
      try {
        const r = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: admin.headers, payload: { name: 'lost', scopes: ['admin'] } });
        assert.equal(r.statusCode, 500, r.body);
        assert.ok(!r.body.includes('ats_'), 'no key in the answer');
      } finally {
        for (const l of lift) await l();
      }
      assert.deepEqual((await t.store.listKeys(10, 'tx-create')).map((k) => k.id), [admin.id], 'no key but the admin\'s');
      assert.deepEqual(await t.store.listAudit('tx-create', 10), []);
    });

    test('a revoke whose audit entry cannot be written leaves the key as it was; run again, it is revoked and recorded once', async () => {
      const admin = await bootstrap(t, 'tx-revoke');
      const victim = await bootstrap(t, 'tx-revoke', ['read']);
      const lift = await refuseWrites(t.store, { table: 'audit_log', op: 'INSERT' });
      try {
        const r = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${victim.id}`, headers: admin.headers });
        assert.equal(r.statusCode, 500, r.body);
      } finally {
        await lift();
      }
      assert.equal((await t.store.getKey(victim.id))!.revokedAt, null, 'not revoked without its audit entry');
      for (let i = 0; i < 2; i++) {
        const r = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${victim.id}`, headers: admin.headers });
        assert.equal(r.statusCode, 204, r.body);
      }
      assert.notEqual((await t.store.getKey(victim.id))!.revokedAt, null);
      assert.deepEqual((await auditOf(t, admin.headers)).map((e) => [e.action, e.keyId, e.target]), [['key.revoke', admin.id, victim.id]]);
    });
  });
}

for (const [name, start] of BACKENDS) {
  describe(`/v1/keys in the open mode (no key yet, loopback), on ${name}`, () => {
    let t: TestApp;
    before(async () => {
      t = await start({ auth: 'auto' });
    });
    after(async () => {
      await t?.close();
    });

    test('bad input is a 400 ATS_ERR_VALIDATION that writes nothing', async () => {
      const bodies: unknown[] = [
        {}, { name: 'x' }, { scopes: ['read'] }, { name: '', scopes: ['read'] }, { name: ' x', scopes: ['read'] }, { name: 'a/b', scopes: ['read'] },
        { name: 'x'.repeat(101), scopes: ['read'] }, { name: 'x', scopes: [] }, { name: 'x', scopes: ['root'] }, { name: 'x', scopes: 'read' },
        { name: 'x', scopes: ['read'], tenant: 'other' }, { name: 'é', scopes: ['read'] },
      ];
      for (const body of bodies) {
        const r = await t.app.inject({ method: 'POST', url: '/v1/keys', payload: body as object });
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)}: ${r.body}`);
        assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
      }
      // A create is not made repeatable by a key: a client retrying it with one made a second key.
      const keyed = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: { 'idempotency-key': 'k-1' }, payload: { name: 'x', scopes: ['read'] } });
      assert.equal(keyed.statusCode, 400, keyed.body);
      assert.equal(keyed.json().code, 'ATS_ERR_VALIDATION');
      assert.match(keyed.json().message, /idempotency-key is not read by POST \/v1\/keys/);
      for (const url of ['/v1/keys/abc', `/v1/keys/${'I'.repeat(26)}`]) {
        const r = await t.app.inject({ method: 'DELETE', url });
        assert.equal(r.statusCode, 400, url);
        assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
      }
      for (const q of ['?limit=0', '?limit=1001', '?limit=x', '?since=1', '?limit=0x10', '?limit=1e2']) {
        const r = await t.app.inject({ url: `/v1/audit${q}` });
        assert.equal(r.statusCode, 400, q);
        assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
      }
      assert.deepEqual(await t.store.listKeys(10), []);
      assert.deepEqual(await t.store.listAudit('default', 10), []);
    });

    test('a key made without one belongs to the default tenant, made by no key; so is its audit entry', async () => {
      const { body } = await create(t, {}, { name: 'first-admin', scopes: ['admin'] });
      try {
        assert.equal(body.tenant, 'default');
        assert.equal(body.createdBy, null);
        assert.deepEqual((await t.store.listAudit('default', 10)).map((e) => [e.action, e.keyId, e.target]), [['key.create', null, body.id]]);
        // From now on a key is needed (auto): the open mode ends with the first key, at once on the
        // instance that made it, though it counted no key a moment ago (for the create itself).
        const refused = await t.app.inject({ url: '/v1/keys' });
        assert.equal(refused.statusCode, 401, refused.body);
        assert.deepEqual((await list(t, bearer(body.key))).map((k) => k.id), [body.id]);
      } finally {
        await t.store.revokeKey(body.id, Date.now());
      }
    });
  });
}

describe('GET /v1/keys/self: the caller\'s own key, tenant and scopes (what the console disables actions by)', () => {
  test('a key with the read scope learns its id, tenant and scopes, never its secret; one without read is a 403', async () => {
    const t = await startSqliteTestApp({}, { auth: 'on' });
    try {
      const reader = await bootstrap(t, 'acme', ['read']);
      const r = await t.app.inject({ url: '/v1/keys/self', headers: reader.headers });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { keyId: reader.id, tenant: 'acme', scopes: ['read'] });
      const all = await bootstrap(t, 'acme', ['admin', 'read', 'submit', 'operate']);
      assert.deepEqual((await t.app.inject({ url: '/v1/keys/self', headers: all.headers })).json().scopes, [...SCOPES], 'in the order of SCOPES');
      const submitter = await bootstrap(t, 'acme', ['submit']);
      assert.equal((await t.app.inject({ url: '/v1/keys/self', headers: submitter.headers })).statusCode, 403);
      assert.equal((await t.app.inject({ url: '/v1/keys/self' })).statusCode, 401);
    } finally {
      await t.close();
    }
  });

  test('without keys (the open mode, or no key store at all) the caller is the default tenant with every scope, and no key', async () => {
    for (const auth of ['auto', 'off', undefined] as const) {
      const t = await startSqliteTestApp({}, auth ? { auth } : {});
      try {
        const r = await t.app.inject({ url: '/v1/keys/self' });
        assert.equal(r.statusCode, 200, `${auth}: ${r.body}`);
        assert.deepEqual(r.json(), { keyId: null, tenant: 'default', scopes: [...SCOPES] }, String(auth));
      } finally {
        await t.close();
      }
    }
  });
});

describe('/v1/keys and /v1/audit when the database goes away in the middle of a change', () => {
  let t: TestApp;
  let dir: string;
  let store: SqliteStore;
  let failing = false;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-keys-down-'));
    // The key store's transactions fail before their COMMIT as an outage does (503), while `failing`.
    const beforeCommit = () => {
      if (failing) throw new AtsError('ATS_ERR_STORE_UNAVAILABLE');
    };
    store = createSqliteStore({ file: join(dir, 'ats.sqlite'), faults: { beforeCommit } });
    await store.migrate();
    t = await startSqliteTestApp({ auth: { keys: store, mode: 'on', newKeyId: () => ulid(), randomBytes: (n) => randomBytes(n) }, audit: store });
  });
  after(async () => {
    await t?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a create answers 503 and leaves no key; a revoke answers 503 and leaves the key working; neither is in the audit log', async () => {
    const id = ulid();
    const { key, hash } = newApiKey(id, randomBytes(32));
    await store.createKey({ id, tenant: 'acme', name: 'boot', scopes: [...SCOPES], createdAt: Date.now(), revokedAt: null, createdBy: null, hash });
    failing = true;
    try {
      const r = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(key), payload: { name: 'x', scopes: ['read'] } });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().code, 'ATS_ERR_STORE_UNAVAILABLE');
      assert.ok(!r.body.includes('ats_'), 'no key in the answer');
      const revoke = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${id}`, headers: bearer(key) });
      assert.equal(revoke.statusCode, 503, revoke.body);
    } finally {
      failing = false;
    }
    assert.deepEqual((await store.listKeys(10)).map((k) => [k.id, k.revokedAt]), [[id, null]]);
    assert.deepEqual(await store.listAudit('acme', 10), []);
  });

  test('an audit log that cannot be read: 503', async () => {
    const down: AuditStore = {
      recordAudit: async () => {
        throw new AtsError('ATS_ERR_STORE_UNAVAILABLE');
      },
      listAudit: async () => {
        throw new AtsError('ATS_ERR_STORE_UNAVAILABLE');
      },
      purgeAudit: async () => {
        throw new AtsError('ATS_ERR_STORE_UNAVAILABLE');
      },
    };
    const open = await startSqliteTestApp({ audit: down }, { auth: 'auto' });
    try {
      const read = await open.app.inject({ url: '/v1/audit' });
      assert.equal(read.statusCode, 503);
      assert.equal(read.json().code, 'ATS_ERR_STORE_UNAVAILABLE');
    } finally {
      await open.close();
    }
  });
});

describe('the key and audit routes are served only with their deps', () => {
  test('without auth: no /v1/keys; without audit: no /v1/audit', async () => {
    const t = await startSqliteTestApp();
    try {
      for (const [method, url] of [['POST', '/v1/keys'], ['GET', '/v1/keys'], ['GET', '/v1/audit']] as const) {
        const r = await t.app.inject({ method, url, payload: method === 'POST' ? { name: 'x', scopes: ['read'] } : undefined });
        assert.equal(r.statusCode, 404, `${method} ${url}`);
        assert.equal(r.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
      }
      const doc = (await t.app.inject({ url: '/docs/json' })).json() as Doc;
      const names = Object.keys(doc.components.schemas);
      for (const s of [...KEY_SCHEMAS, ...AUDIT_SCHEMAS]) assert.ok(!names.includes(s.$id!), `${s.$id} is no component without its routes`);
    } finally {
      await t.close();
    }
    // ATS_AUTH=off: no key routes (every caller is an admin there; keys made then would count once keys are on).
    const off = await startSqliteTestApp({}, { auth: 'off' });
    try {
      for (const [method, url] of [['POST', '/v1/keys'], ['GET', '/v1/keys'], ['DELETE', '/v1/keys/01ARZ3NDEKTSV4RRFFQ69G5FAV']] as const) {
        const r = await off.app.inject({ method, url, payload: method === 'POST' ? { name: 'x', scopes: ['read'] } : undefined });
        assert.equal(r.statusCode, 404, `${method} ${url} with ATS_AUTH=off`);
      }
      assert.equal(await off.store.countActiveKeys(), 0);
    } finally {
      await off.close();
    }
    const noAudit = await startSqliteTestApp({ audit: undefined }, { auth: 'auto' });
    try {
      assert.equal((await noAudit.app.inject({ url: '/v1/audit' })).statusCode, 404);
      assert.equal((await noAudit.app.inject({ url: '/v1/keys' })).statusCode, 200);
      // A create without an audit log records nothing and still works.
      const r = await noAudit.app.inject({ method: 'POST', url: '/v1/keys', payload: { name: 'x', scopes: ['read'] } });
      assert.equal(r.statusCode, 201, r.body);
    } finally {
      await noAudit.close();
    }
  });
});

type Schema = Record<string, unknown> & { $ref?: string; properties?: Record<string, Schema>; description?: string; items?: Schema };
type Operation = {
  operationId?: string; summary?: string; description?: string; tags?: string[]; parameters?: Array<{ name: string; description?: string }>;
  requestBody?: { content: Record<string, { schema: Schema }> }; responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
};
type Doc = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> }; tags: Array<{ name: string }> };

describe('the key and audit routes in the OpenAPI document', () => {
  let t: TestApp;
  let doc: Doc;
  let dir: string;
  before(async () => {
    t = await startSqliteTestApp({}, { auth: 'on' });
    doc = (await t.app.inject({ url: '/docs/json' })).json() as Doc;
    dir = mkdtempSync(join(tmpdir(), 'ats-keys-openapi-'));
  });
  after(async () => {
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('each operation: its id, tag, summary, description, body, answers as components; every field described', () => {
    const op = (path: string, method: string) => doc.paths[path]?.[method];
    const json = (o: Operation | undefined, status: string) => o?.responses[status]?.content?.['application/json']?.schema.$ref;
    const C = '#/components/schemas/';
    const tags = new Set(doc.tags.map((x) => x.name));
    const ops: Array<[string, string, string, string]> = [
      ['/v1/keys', 'post', 'createKey', 'keys'], ['/v1/keys', 'get', 'listKeys', 'keys'],
      ['/v1/keys/{id}', 'delete', 'revokeKey', 'keys'], ['/v1/audit', 'get', 'listAudit', 'audit'],
    ];
    for (const [path, method, id, tag] of ops) {
      const o = op(path, method);
      assert.ok(o, `${method} ${path} is documented`);
      assert.equal(o.operationId, id);
      assert.deepEqual(o.tags, [tag]);
      assert.ok(tags.has(tag), `the tag ${tag} is declared`);
      assert.ok(o.summary && o.description && o.description.length > o.summary.length, id);
      for (const p of o.parameters ?? []) assert.ok(p.description, `${id}: ${p.name} is described`);
    }
    assert.equal(op('/v1/keys', 'post')!.requestBody!.content['application/json']!.schema.$ref, `${C}CreateApiKeyRequest`);
    assert.equal(json(op('/v1/keys', 'post'), '201'), `${C}CreatedApiKey`);
    assert.equal(json(op('/v1/keys', 'post'), '400'), `${C}Error`);
    assert.equal(json(op('/v1/keys', 'post'), '409'), `${C}Error`, 'a tenant with as many keys as it may: ATS_ERR_TOO_MANY_KEYS');
    assert.match(op('/v1/keys', 'post')!.description!, /409 ATS_ERR_TOO_MANY_KEYS/);
    assert.equal(json(op('/v1/keys', 'get'), '200'), `${C}ApiKeyList`);
    assert.equal(json(op('/v1/keys/{id}', 'delete'), '404'), `${C}Error`);
    assert.equal(json(op('/v1/audit', 'get'), '200'), `${C}AuditLog`);
    assert.equal(doc.components.schemas.ApiKeyList!.properties!.keys!.items!.$ref, `${C}ApiKey`);
    assert.deepEqual(Object.keys(doc.components.schemas.ApiKey!.properties!).sort(), ['createdAt', 'createdBy', 'id', 'name', 'revokedAt', 'scopes', 'tenant']);
    for (const s of [...KEY_SCHEMAS, ...AUDIT_SCHEMAS]) {
      const c = doc.components.schemas[s.$id!];
      assert.ok(c?.description, `${s.$id} is a described component`);
      for (const [field, f] of Object.entries(c.properties ?? {})) assert.ok(f.description || f.$ref, `${s.$id}.${field} is described`);
    }
    const codes = (doc.components.schemas.Error!.properties!.code as Schema & { enum: string[] }).enum;
    assert.ok(codes.includes('ATS_ERR_KEY_NOT_FOUND'));
    assert.ok(codes.includes('ATS_ERR_TOO_MANY_KEYS'));
  });

  test('redocly lint (redocly.yaml) finds no error and no warning in the document with these routes', async () => {
    const root = fileURLToPath(new URL('../', import.meta.url));
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true' };
    const args = [join(root, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', '--config', join(root, 'redocly.yaml'), '--format=json', file];
    const run = await promisify(execFile)(process.execPath, args, { cwd: root, env, maxBuffer: 16 << 20 }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code?: number; stdout?: string }) => ({ code: e.code ?? 1, stdout: e.stdout ?? '' }),
    );
    const report = JSON.parse(run.stdout) as { problems: unknown[] };
    assert.deepEqual(report.problems, [], JSON.stringify(report.problems, null, 2).slice(0, 4000));
    assert.equal(run.code, 0);
  });
});
