/**
 * Retention's purge of the audit log (`purgeAudit`, once a minute) reads the
 * expired entries only (migration 0026: the index (at)). In id order, testing
 * each entry's time, it walked the whole log while none had expired: 300,000
 * entries kept 90 days were read at each pass to delete nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { createTestStore, rowsReadBy } from '../../tests/helpers/mysql.js';
import { PURGEABLE_AUDIT } from './audit.js';

const N = 20_000;
const T0 = Date.UTC(2031, 0, 1);

describe('the audit log\'s purge', () => {
  it('on SQLite, the query plan reads the index (at) from its start, with no sort', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const plan = store.db.prepare(`EXPLAIN QUERY PLAN ${PURGEABLE_AUDIT}`).all(T0, 500) as { detail: string }[];
      const details = plan.map((p) => p.detail).join(' | ');
      assert.match(details, /USING (COVERING )?INDEX ix_audit_log_at \(at<\?\)/, details);
      assert.doesNotMatch(details, /TEMP B-TREE/, 'no sort');
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, reads none of ${N} entries still kept, and the expired ones at most a batch`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      await store.recordAudit({ at: T0, keyId: null, tenant: 'acme', action: 'job.cancel', target: 'old' });
      await pool.query(`INSERT INTO audit_log (at, key_id, tenant, action, target) SELECT ? + s.seq, NULL, 'acme', 'job.cancel', CONCAT('kept-', s.seq) FROM seq_1_to_${N} s`, [T0 + 86_400_000]);
      await pool.query('ANALYZE TABLE audit_log');
      const analyze = async (before: number, limit: number): Promise<number> => {
        return Math.max(...(await rowsReadBy(pool, PURGEABLE_AUDIT, [before, limit])));
      };
      assert.ok(await analyze(T0 + 1000, 500) <= 1, 'only the expired entry');
      assert.ok(await analyze(T0 + 2 * 86_400_000, 500) <= 500, 'at most a batch');
      assert.equal(await store.purgeAudit(T0 + 1000, 500), 1);
      assert.equal(await store.purgeAudit(T0 + 1000, 500), 0);
      assert.deepEqual((await store.listAudit('acme', 1000)).length, 1000);
    } finally {
      await cleanup();
    }
  });
});
