/**
 * The AuditStore port over one "run this statement" function, shared by both
 * stores: one statement each, but a purge's two. Retention deletes the
 * entries older than its limit (`purgeAudit`: the oldest first, through the
 * index (at)); a read takes one tenant's newest entries through the
 * (tenant, at) index. A key change writes its entry in its own transaction
 * (`auditStep`, keys.ts).
 */
import type { AuditEntry, AuditStore } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import type { Exec } from './program.js';
import { toNum, type Row } from './rows.js';
import { marks, type Sql } from './statements.js';

/** Most entries one read returns. */
export const MAX_AUDIT_LISTED = 1000;

/**
 * The oldest entries recorded before a time, at most a batch: a range of the
 * index (at) (migration 0026), which reads no entry still kept.
 * Params: before, limit
 */
export const PURGEABLE_AUDIT = 'SELECT id FROM audit_log WHERE at < ? ORDER BY at, id LIMIT ?';

/** The statement that records `e`. */
export const auditStep = (e: AuditEntry): Sql => ({
  sql: 'INSERT INTO audit_log (at, key_id, tenant, action, target) VALUES (?, ?, ?, ?, ?)',
  params: [e.at, e.keyId, e.tenant, e.action, e.target],
});

function rowToEntry(r: Row): AuditEntry {
  return {
    at: toNum(r.at), keyId: (r.key_id as string | null | undefined) ?? null, tenant: String(r.tenant),
    action: String(r.action), target: String(r.target),
  };
}

export function createSqlAudit(exec: Exec, _d: Dialect): AuditStore {
  return {
    recordAudit: async (e) => {
      const { sql, params } = auditStep(e);
      await exec(sql, params);
    },
    // Entries of one millisecond come newest first by their insertion order (the id).
    listAudit: async (tenant, limit) =>
      (await exec('SELECT at, key_id, tenant, action, target FROM audit_log WHERE tenant = ? ORDER BY at DESC, id DESC LIMIT ?', [
        tenant, Math.max(0, Math.min(limit, MAX_AUDIT_LISTED)),
      ])).rows.map(rowToEntry),
    // The ids first, then those rows: one statement on both databases (MySQL takes no LIMIT in an IN subquery).
    purgeAudit: async (before, limit) => {
      const ids = (await exec(PURGEABLE_AUDIT, [before, Math.max(0, limit)])).rows.map((r) => toNum(r.id));
      if (ids.length === 0) return 0;
      return (await exec(`DELETE FROM audit_log WHERE id IN (${marks(ids.length)})`, ids)).changes;
    },
  };
}
