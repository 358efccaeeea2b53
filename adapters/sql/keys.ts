/**
 * The KeyStore port (API keys, engine/auth.ts) over one "run this statement"
 * function, shared by both stores: one statement each. Only a key's hash is
 * stored; a revoked key keeps its row (its id stays taken, its audit entries
 * keep naming it).
 */
import { SCOPES, type ApiKeyRecord, type Scope, type StoredApiKey } from '../../engine/auth.js';
import type { KeyStore } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import type { Exec } from './program.js';
import { toNum, type Row } from './rows.js';

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

export function createSqlKeys(exec: Exec, _d: Dialect): KeyStore {
  const rows = async (sql: string, params: readonly unknown[]) => (await exec(sql, params)).rows;
  return {
    createKey: async (k: StoredApiKey) => {
      await exec(`INSERT INTO api_keys (${RECORD}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [
        k.id, k.tenant, k.name, k.scopes.join(','), k.createdAt, k.revokedAt, k.createdBy, k.hash,
      ]);
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
    revokeKey: async (id, now) => (await exec('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])).changes === 1,
    countActiveKeys: async () => toNum((await rows('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL', []))[0]?.n ?? 0),
  };
}
