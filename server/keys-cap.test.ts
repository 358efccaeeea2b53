/**
 * A tenant's API keys are bounded, on the real MariaDB and on SQLite: at most
 * 1,000 not revoked (MAX_KEYS_PER_TENANT). `POST /v1/keys` beyond is 409
 * ATS_ERR_TOO_MANY_KEYS and writes nothing (no key, no audit entry), also
 * when creates race for the last place (the count and the insert are one
 * transaction). A tenant keeps at most 1,000 keys, revoked ones too: a new
 * key then deletes the tenant's longest-revoked one, so every key it has
 * stays listed. Another tenant's keys are not counted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { monotonicFactory } from 'ulid';
import { newApiKey, SCOPES } from '../engine/auth.js';
import { MAX_KEYS_PER_TENANT } from './key-schemas.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const ulid = monotonicFactory();

/** Stores a key of `tenant` (as `ats keys create` does: no cap); its id and bearer header. */
async function stored(t: TestApp, tenant: string, createdAt: number) {
  const id = ulid();
  const { key, hash } = newApiKey(id, randomBytes(32));
  await t.store.createKey({ id, tenant, name: 'seeded', scopes: [...SCOPES], createdAt, revokedAt: null, createdBy: null, hash });
  return { id, headers: { authorization: `Bearer ${key}` } };
}

for (const [name, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  test(`${name}: a tenant holds at most ${MAX_KEYS_PER_TENANT} keys not revoked; creates racing for the last place make one, the others are 409 and write nothing; revoked keys make room and go`, async () => {
    assert.equal(MAX_KEYS_PER_TENANT, 1000);
    const t = await start({}, { auth: 'on' });
    try {
      const base = Date.now() - 3_600_000;
      const admin = await stored(t, 'acme', base);
      const seeded = [];
      for (let i = 1; i < MAX_KEYS_PER_TENANT - 1; i++) seeded.push(await stored(t, 'acme', base + i));
      const other = await stored(t, 'globex', base);
      const post = (headers: Record<string, string>, n: string) =>
        t.app.inject({ method: 'POST', url: '/v1/keys', headers, payload: { name: n, scopes: ['read'] } });

      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => post(admin.headers, `racer-${i}`)));
      assert.deepEqual(rs.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409, 409, 409], rs.map((r) => r.body).join('\n'));
      for (const r of rs.filter((x) => x.statusCode === 409)) {
        assert.deepEqual(Object.keys(r.json()).sort(), ['code', 'message']);
        assert.equal(r.json().code, 'ATS_ERR_TOO_MANY_KEYS');
        assert.match(r.json().message, /1000 API keys/);
      }
      const listed = async (headers: Record<string, string>) => {
        const r = await t.app.inject({ url: '/v1/keys', headers });
        assert.equal(r.statusCode, 200, r.body);
        return (r.json() as { keys: Array<{ id: string; name: string; revokedAt: string | null }> }).keys;
      };
      assert.equal((await listed(admin.headers)).length, MAX_KEYS_PER_TENANT, 'every key of the tenant is listed');
      assert.equal((await listed(admin.headers)).filter((k) => k.name.startsWith('racer-')).length, 1);
      const audit = await t.app.inject({ url: '/v1/audit?limit=1000', headers: admin.headers });
      assert.equal(audit.json().entries.filter((e: { action: string }) => e.action === 'key.create').length, 1, 'a refused create records nothing');

      // Another tenant's keys are not counted.
      assert.equal((await post(other.headers, 'theirs')).statusCode, 201);

      // A revoked key frees a place; once the tenant holds 1,000 keys, the longest-revoked one goes for the new one.
      const [first, second] = [seeded[0]!, seeded[1]!];
      for (const k of [first, second]) assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/keys/${k.id}`, headers: admin.headers })).statusCode, 204);
      assert.equal((await post(admin.headers, 'after-revoke')).statusCode, 201);
      const now = await listed(admin.headers);
      assert.equal(now.length, MAX_KEYS_PER_TENANT);
      assert.equal(now.find((k) => k.id === first.id), undefined, 'the longest-revoked key went');
      assert.ok(now.find((k) => k.id === second.id)?.revokedAt, 'the other revoked key stays listed');
      assert.equal(await t.store.getKey(first.id), null);
      assert.equal((await post(admin.headers, 'one-more')).statusCode, 201);
      assert.equal(await t.store.getKey(second.id), null);
      const full = await post(admin.headers, 'too-many');
      assert.equal(full.statusCode, 409, full.body);
      assert.equal(full.json().code, 'ATS_ERR_TOO_MANY_KEYS');
      assert.equal((await listed(admin.headers)).length, MAX_KEYS_PER_TENANT);
    } finally {
      await t.close();
    }
  });
}
