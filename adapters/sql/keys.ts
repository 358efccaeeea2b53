/**
 * The KeyStore port (API keys, engine/auth.ts), shared by both stores: reads
 * are one statement each over a "run this statement" function; a create or
 * revoke is a program (program.ts) the store runs as one transaction, the
 * change and its audit entry together. Only a key's hash is stored; a
 * revoked key keeps its row (listed as revoked; its audit entries keep
 * naming it) until a create with a cap (`createBoundedKeyProgram`) needs
 * its place.
 */
import { SCOPES, type ApiKeyRecord, type Scope, type StoredApiKey } from '../../engine/auth.js';
import { AtsError } from '../../engine/errors.js';
import type { AuditEntry, KeyStore } from '../../engine/ports.js';
import { auditStep } from './audit.js';
import type { Dialect } from './dialect.js';
import type { Exec, Program } from './program.js';
import { toNum, type Row } from './rows.js';
import { marks } from './statements.js';

/** Runs a program as one transaction (each store's own: `BEGIN IMMEDIATE` or a pooled connection's). */
export type InTransaction = <T>(program: () => Program<T>) => Promise<T>;

const RECORD = 'id, tenant, name, scopes, created_at, revoked_at, created_by';
/** Most keys listed. */
export const MAX_KEYS_LISTED = 1000;

/**
 * The scopes of a stored comma list, in SCOPES order. One this version does
 * not know (written by a newer one) is left out: it grants nothing here,
 * rather than failing every request of the key.
 */
export function scopesOf(text: string): Scope[] {
  const listed = new Set(text.split(','));
  return SCOPES.filter((s) => listed.has(s));
}

function rowToKey(r: Row): ApiKeyRecord {
  return {
    id: String(r.id), tenant: String(r.tenant), name: String(r.name), scopes: scopesOf(String(r.scopes)),
    createdAt: toNum(r.created_at), revokedAt: r.revoked_at === null || r.revoked_at === undefined ? null : toNum(r.revoked_at),
    createdBy: (r.created_by as string | null | undefined) ?? null,
  };
}

/** Inserts the key, then its audit entry when given. */
export function* createKeyProgram(k: StoredApiKey, audit?: AuditEntry): Program<void> {
  yield {
    sql: `INSERT INTO api_keys (${RECORD}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    params: [k.id, k.tenant, k.name, k.scopes.join(','), k.createdAt, k.revokedAt, k.createdBy, k.hash],
  };
  if (audit) yield auditStep(audit);
}

/**
 * Inserts the key (and its audit entry) while its tenant has fewer than `max`
 * keys not revoked: 'full' otherwise, writing nothing (or, `whenFull`
 * 'create', inserting it all the same). Should the tenant's
 * keys, revoked ones too, be more than `max` with the new one, those revoked
 * longest ago are deleted first, to leave `max`: the rows of a tenant stay at
 * most `max` however many keys it makes and revokes (more only when the
 * operator made keys past a full tenant, `ats keys create`). The count's lock
 * (MySQL: the tenant's range of its index, FOR UPDATE; SQLite: the write
 * transaction) makes two creates at once count one after the other.
 */
export function* createBoundedKeyProgram(
  d: Dialect, k: StoredApiKey, max: number, audit?: AuditEntry, whenFull: 'refuse' | 'create' = 'refuse',
): Program<'created' | 'full'> {
  const { rows: [count] } = yield {
    sql: `SELECT COUNT(*) AS n, COUNT(revoked_at) AS revoked FROM api_keys ${d.useIndex('ix_api_keys_tenant')} WHERE tenant = ? ${d.forUpdate}`,
    params: [k.tenant],
  };
  const n = toNum(count?.n ?? 0);
  const revoked = toNum(count?.revoked ?? 0);
  if (n - revoked >= max && whenFull === 'refuse') return 'full';
  // Fewer than `max` not revoked: at least this many are revoked (with 'create', as many as there are).
  const over = Math.min(n + 1 - max, revoked);
  if (over > 0) {
    const { rows } = yield {
      sql: 'SELECT id FROM api_keys WHERE tenant = ? AND revoked_at IS NOT NULL ORDER BY revoked_at, id LIMIT ?', params: [k.tenant, over],
    };
    const ids = rows.map((r) => String(r.id));
    if (ids.length > 0) yield { sql: `DELETE FROM api_keys WHERE id IN (${marks(ids.length)})`, params: ids };
  }
  yield* createKeyProgram(k, audit);
  return 'created';
}

/** Revokes the key if it is not revoked, then records its audit entry when given; whether it did. */
export function* revokeKeyProgram(id: string, now: number, audit?: AuditEntry): Program<boolean> {
  const { changes } = yield { sql: 'UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [now, id] };
  if (changes !== 1) return false;
  if (audit) yield auditStep(audit);
  return true;
}

export function createSqlKeys(exec: Exec, d: Dialect, inTransaction: InTransaction): KeyStore {
  const rows = async (sql: string, params: readonly unknown[]) => (await exec(sql, params)).rows;
  return {
    createKey: async (k, audit, max, whenFull) => {
      if (max === undefined) return inTransaction(() => createKeyProgram(k, audit));
      if ((await inTransaction(() => createBoundedKeyProgram(d, k, max, audit, whenFull))) === 'full') {
        throw new AtsError('ATS_ERR_TOO_MANY_KEYS', `The tenant has ${max} API keys that are not revoked, the most it may: revoke one before creating another`);
      }
    },
    getKey: async (id) => {
      const [r] = await rows(`SELECT ${RECORD}, hash FROM api_keys WHERE id = ?`, [id]);
      return r ? { ...rowToKey(r), hash: String(r.hash) } : null;
    },
    listKeys: async (limit, tenant) => {
      const n = Math.max(0, Math.min(limit, MAX_KEYS_LISTED));
      const list = tenant === undefined
        ? await rows(`SELECT ${RECORD} FROM api_keys ORDER BY created_at DESC, id DESC LIMIT ?`, [n])
        : await rows(`SELECT ${RECORD} FROM api_keys WHERE tenant = ? ORDER BY created_at DESC, id DESC LIMIT ?`, [tenant, n]);
      return list.map(rowToKey);
    },
    revokeKey: (id, now, audit) => inTransaction(() => revokeKeyProgram(id, now, audit)),
    countActiveKeys: async () => toNum((await rows('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL', []))[0]?.n ?? 0),
  };
}
