/**
 * API keys for tests: an in-memory KeyStore and keys made with the real key
 * format (engine/auth.ts), so a test app can be called as different tenants
 * with different scopes. `authWith(store)` is the `auth` dep of `buildApp`.
 */
import { randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { newApiKey, SCOPES, type ApiKeyRecord, type Scope, type StoredApiKey } from '../../engine/auth.js';
import { AtsError } from '../../engine/errors.js';
import type { AuditEntry, KeyStore } from '../../engine/ports.js';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { AuthDeps } from '../../server/deps.js';
import { startSqliteTestApp, type TestApp } from './app.js';

const ulid = monotonicFactory();

export class MemoryKeyStore implements KeyStore {
  readonly keys = new Map<string, StoredApiKey>();
  /** getKey calls, to check caching. */
  reads = 0;
  /** The audit entries key changes wrote with them (the port writes both or neither). */
  readonly audit: AuditEntry[] = [];

  async createKey(key: StoredApiKey, audit?: AuditEntry, maxPerTenant?: number, whenFull: 'refuse' | 'create' = 'refuse'): Promise<void> {
    if (maxPerTenant !== undefined) {
      // As the SQL stores do: at most that many not revoked; the longest-revoked go beyond that many in all.
      const mine = [...this.keys.values()].filter((k) => k.tenant === key.tenant);
      if (mine.filter((k) => k.revokedAt === null).length >= maxPerTenant && whenFull === 'refuse') throw new AtsError('ATS_ERR_TOO_MANY_KEYS');
      const revoked = mine.filter((k) => k.revokedAt !== null).sort((a, b) => a.revokedAt! - b.revokedAt! || (a.id < b.id ? -1 : 1));
      for (const k of revoked.slice(0, Math.max(0, mine.length + 1 - maxPerTenant))) this.keys.delete(k.id);
    }
    this.keys.set(key.id, { ...key, scopes: [...key.scopes] });
    if (audit) this.audit.push(audit);
  }

  async getKey(id: string): Promise<StoredApiKey | null> {
    this.reads++;
    const k = this.keys.get(id);
    return k ? { ...k, scopes: [...k.scopes] } : null;
  }

  async listKeys(limit: number, tenant?: string): Promise<ApiKeyRecord[]> {
    return [...this.keys.values()]
      .filter((k) => tenant === undefined || k.tenant === tenant)
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, limit)
      .map(({ hash: _hash, ...record }) => record);
  }

  async revokeKey(id: string, now: number, audit?: AuditEntry): Promise<boolean> {
    const k = this.keys.get(id);
    if (!k || k.revokedAt !== null) return false;
    k.revokedAt = now;
    if (audit) this.audit.push(audit);
    return true;
  }

  async countActiveKeys(): Promise<number> {
    return [...this.keys.values()].filter((k) => k.revokedAt === null).length;
  }

  /** Makes and stores a key; returns the bearer token and its record. */
  make(tenant: string, scopes: readonly Scope[] = SCOPES, name = 'test'): Promise<MadeKey> {
    return makeKey(this, tenant, scopes, name);
  }
}

export interface MadeKey {
  key: string;
  record: StoredApiKey;
  headers: { authorization: string };
}

/** Makes a key of `tenant` with `scopes` and stores it in `keys` (any KeyStore: the SQL stores too). */
export async function makeKey(keys: Pick<KeyStore, 'createKey'>, tenant: string, scopes: readonly Scope[] = SCOPES, name = 'test'): Promise<MadeKey> {
  const id = ulid();
  const { key, hash } = newApiKey(id, randomBytes(32));
  const record: StoredApiKey = { id, tenant, name, scopes: [...scopes], createdAt: Date.now(), revokedAt: null, createdBy: null, hash };
  await keys.createKey(record);
  return { key, record, headers: { authorization: `Bearer ${key}` } };
}

/** The `auth` dep over `keys` (mode `auto`: keys required once one exists). */
export const authWith = (keys: KeyStore, mode: AuthDeps['mode'] = 'auto'): AuthDeps => ({
  keys, mode, newKeyId: () => ulid(), randomBytes: (n) => randomBytes(n),
});

/** The test app (SQLite) with keys of three tenants, every scope each: `acme`, `globex`, and `other` of the default tenant. */
export async function startTenantApp(): Promise<{ t: TestApp; acme: MadeKey; globex: MadeKey; other: MadeKey }> {
  const keys = new MemoryKeyStore();
  const [acme, globex, other] = [await keys.make('acme'), await keys.make('globex'), await keys.make('default')];
  return { t: await startSqliteTestApp({ auth: authWith(keys) }), acme, globex, other };
}

/** `req` sent with `key`'s Authorization header. */
export const injectAs = (t: TestApp, key: MadeKey, req: InjectOptions): Promise<LightMyRequestResponse> =>
  t.app.inject({ ...req, headers: { ...req.headers, ...key.headers } });
