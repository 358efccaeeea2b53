/** The KeyStore and AuditStore (keys.ts, audit.ts) on both SQL stores. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import { keyMatches, newApiKey, type StoredApiKey } from '../../engine/auth.js';
import { isAtsError } from '../../engine/errors.js';
import type { AuditEntry } from '../../engine/ports.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';
import { MAX_AUDIT_LISTED } from './audit.js';
import { scopesOf } from './keys.js';

const ulid = monotonicFactory();

function stored(o: Partial<StoredApiKey> = {}): StoredApiKey & { key: string } {
  const id = o.id ?? ulid();
  const { key, hash } = newApiKey(id, randomBytes(32));
  return { id, tenant: 'acme', name: 'ci-bot', scopes: ['submit', 'read'], createdAt: 1_000, revokedAt: null, createdBy: null, hash, key, ...o };
}
const record = ({ key: _key, hash: _hash, ...r }: StoredApiKey & { key?: string }) => r;

describe('scopesOf', () => {
  it('reads a stored comma list in SCOPES order, leaving out a scope this version does not know', () => {
    assert.deepEqual(scopesOf('admin,read,submit'), ['submit', 'read', 'admin']);
    assert.deepEqual(scopesOf('read,deploy'), ['read']);
    assert.deepEqual(scopesOf(''), []);
  });
});

for (const backend of STORE_BACKENDS) {
  describe(`keys and audit on ${backend.name}`, { timeout: 60_000 }, () => {
    const withStore = (fn: (store: TestStore) => Promise<void>) => withMigratedStore(backend, fn);

    it('stores a key by id with its hash; a key of the id hashes to it; an unknown id is null', () => withStore(async (store) => {
      const k = stored({ scopes: ['submit', 'read', 'operate', 'admin'], createdBy: ulid(), name: 'a.b:c-d_e' });
      await store.createKey(k);
      const got = await store.getKey(k.id);
      assert.deepEqual(got, { ...record(k), hash: k.hash });
      assert.ok(keyMatches(k.key, got!.hash));
      assert.equal(await store.getKey(ulid()), null);
      await assert.rejects(store.createKey(stored({ id: k.id })), 'an id is never taken twice');
    }));

    it('lists keys newest first, without hashes, only the tenant\'s when given, at most the limit', () => withStore(async (store) => {
      const a = stored({ tenant: 'acme', createdAt: 1_000 });
      const b = stored({ tenant: 'other', createdAt: 2_000 });
      const c = stored({ tenant: 'acme', createdAt: 3_000, scopes: ['admin'] });
      for (const k of [a, b, c]) await store.createKey(k);
      assert.deepEqual(await store.listKeys(10), [c, b, a].map(record));
      assert.deepEqual(await store.listKeys(10, 'acme'), [c, a].map(record));
      assert.deepEqual(await store.listKeys(10, 'nobody'), []);
      assert.deepEqual((await store.listKeys(2)).map((k) => k.id), [c.id, b.id]);
      for (const k of await store.listKeys(10)) assert.ok(!('hash' in k), 'a listed key carries no hash');
    }));

    it('revokes a key once: it keeps its row with revokedAt; the active count goes down', () => withStore(async (store) => {
      const a = stored();
      const b = stored();
      await store.createKey(a);
      await store.createKey(b);
      assert.equal(await store.countActiveKeys(), 2);
      assert.equal(await store.revokeKey(a.id, 5_000), true);
      assert.equal(await store.revokeKey(a.id, 6_000), false, 'revoked already');
      assert.equal(await store.revokeKey(ulid(), 6_000), false, 'no such key');
      assert.equal((await store.getKey(a.id))!.revokedAt, 5_000);
      assert.equal((await store.getKey(b.id))!.revokedAt, null);
      assert.equal(await store.countActiveKeys(), 1);
      assert.deepEqual((await store.listKeys(10)).map((k) => [k.id, k.revokedAt]), [[b.id, null], [a.id, 5_000]]);
    }));

    const tooMany = (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_TOO_MANY_KEYS' && e.status === 409 && /3 API keys/.test(e.message);

    it('with a cap, a tenant holds at most that many keys not revoked: one more is ATS_ERR_TOO_MANY_KEYS and writes nothing; other tenants, and a create without a cap, are not held', () => withStore(async (store) => {
      const made = [stored(), stored(), stored()];
      for (const k of made) await store.createKey(k, undefined, 3);
      const refused = stored();
      const audit: AuditEntry = { at: 2_000, keyId: null, tenant: 'acme', action: 'key.create', target: refused.id };
      await assert.rejects(store.createKey(refused, audit, 3), tooMany);
      assert.equal(await store.getKey(refused.id), null, 'no key');
      assert.deepEqual(await store.listAudit('acme', 10), [], 'no audit entry');
      assert.deepEqual((await store.listKeys(10, 'acme')).map((k) => k.id).sort(), made.map((k) => k.id).sort());
      await store.createKey(stored({ tenant: 'other' }), undefined, 3);
      // The operator's (ats keys create): no cap.
      const unbounded = stored();
      await store.createKey(unbounded);
      assert.equal((await store.listKeys(10, 'acme')).length, 4);
      // A revoked key frees a place.
      await store.revokeKey(unbounded.id, 3_000);
      await assert.rejects(store.createKey(stored(), undefined, 3), tooMany, 'still 3 not revoked');
      await store.revokeKey(made[0]!.id, 3_000);
      const next = stored();
      await store.createKey(next, undefined, 3);
      assert.ok(await store.getKey(next.id));
    }));

    it('with a cap, a tenant holds at most that many keys, revoked ones too: a new one deletes its longest-revoked keys beyond', () => withStore(async (store) => {
      const [a, b, c, d] = [stored({ createdAt: 1 }), stored({ createdAt: 2 }), stored({ createdAt: 3 }), stored({ createdAt: 4 })];
      for (const k of [a, b, c, d]) await store.createKey(k);
      await store.revokeKey(c.id, 10);
      await store.revokeKey(a.id, 20);
      await store.revokeKey(b.id, 30);
      const e = stored({ createdAt: 5 });
      // 4 keys (1 not revoked), a cap of 3: c and a (revoked first) go to keep 3 with e.
      await store.createKey(e, undefined, 3);
      assert.deepEqual((await store.listKeys(10, 'acme')).map((k) => k.id), [e.id, d.id, b.id]);
      assert.equal(await store.getKey(c.id), null);
      assert.equal(await store.getKey(a.id), null);
      await store.createKey(stored({ createdAt: 6 }), undefined, 3);
      assert.equal((await store.listKeys(10, 'acme')).length, 3, 'b went');
      assert.equal(await store.getKey(b.id), null);
      await assert.rejects(store.createKey(stored({ createdAt: 7 }), undefined, 3), tooMany, 'none revoked left: full');
    }));

    it('with a cap, keys created at once with one place left: one is made, the others are ATS_ERR_TOO_MANY_KEYS; also on an empty tenant', () => withStore(async (store) => {
      for (let i = 0; i < 2; i++) await store.createKey(stored(), undefined, 3);
      const tries = Array.from({ length: 8 }, () => stored());
      const settled = await Promise.allSettled(tries.map((k) => store.createKey(k, undefined, 3)));
      assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 1, JSON.stringify(settled.filter((s) => s.status === 'rejected').map((s) => String(s.reason))));
      assert.ok(settled.every((s) => s.status === 'fulfilled' || tooMany(s.reason)));
      assert.equal((await store.listKeys(10, 'acme')).length, 3);
      const fresh = Array.from({ length: 8 }, () => stored({ tenant: 'empty' }));
      const first = await Promise.allSettled(fresh.map((k) => store.createKey(k, undefined, 3)));
      assert.equal(first.filter((s) => s.status === 'fulfilled').length, 3, JSON.stringify(first.filter((s) => s.status === 'rejected').map((s) => String(s.reason))));
      assert.ok(first.every((s) => s.status === 'fulfilled' || tooMany(s.reason)));
      assert.equal(await store.countActiveKeys(), 6);
    }));

    it('counts no active key in a fresh database', () => withStore(async (store) => {
      assert.equal(await store.countActiveKeys(), 0);
      assert.deepEqual(await store.listKeys(10), []);
    }));

    it('records audit entries and reads a tenant\'s newest first (insertion order within a millisecond), at most the limit', () => withStore(async (store) => {
      const keyId = ulid();
      const entries: AuditEntry[] = [
        { at: 1_000, keyId, tenant: 'acme', action: 'key.create', target: ulid() },
        { at: 2_000, keyId: null, tenant: 'acme', action: 'job.cancel', target: ulid() },
        { at: 2_000, keyId, tenant: 'acme', action: 'job.delete', target: ulid() },
        { at: 1_500, keyId, tenant: 'other', action: 'key.revoke', target: ulid() },
      ];
      for (const e of entries) await store.recordAudit(e);
      assert.deepEqual(await store.listAudit('acme', 10), [entries[2], entries[1], entries[0]]);
      assert.deepEqual(await store.listAudit('other', 10), [entries[3]]);
      assert.deepEqual(await store.listAudit('nobody', 10), []);
      assert.deepEqual(await store.listAudit('acme', 1), [entries[2]]);
    }));

    it('purges the entries recorded before a time, every tenant\'s, the oldest first, at most the limit', () => withStore(async (store) => {
      const at = [1_000, 1_500, 2_000, 2_500, 3_000];
      for (const [i, t] of at.entries()) await store.recordAudit({ at: t, keyId: null, tenant: i % 2 ? 'other' : 'acme', action: 'job.cancel', target: String(t) });
      assert.equal(await store.purgeAudit(2_500, 2), 2);
      assert.deepEqual([...await store.listAudit('acme', 10), ...await store.listAudit('other', 10)].map((e) => e.target), ['3000', '2000', '2500']);
      assert.equal(await store.purgeAudit(2_500, 10), 1);
      assert.equal(await store.purgeAudit(2_500, 10), 0);
      assert.deepEqual([...await store.listAudit('acme', 10), ...await store.listAudit('other', 10)].map((e) => e.target), ['3000', '2500']);
    }));

    it(`reads at most ${MAX_AUDIT_LISTED} audit entries at once, and keeps every entry`, () => withStore(async (store) => {
      const n = MAX_AUDIT_LISTED + 5;
      for (let from = 0; from < n; from += 50) {
        await Promise.all(Array.from({ length: Math.min(50, n - from) }, (_, i) =>
          store.recordAudit({ at: from + i, keyId: null, tenant: 't', action: 'job.cancel', target: String(from + i) })));
      }
      const read = await store.listAudit('t', n);
      assert.equal(read.length, MAX_AUDIT_LISTED);
      assert.equal(read[0]!.target, String(n - 1));
      assert.equal(read.at(-1)!.target, String(n - MAX_AUDIT_LISTED));
    }));
  });
}

