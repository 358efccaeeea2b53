/**
 * A tenant's page of jobs created after some time (`GET /v1/jobs?createdAfter=…`)
 * reads the index from that time's first id (job-ids.ts `firstJobIdAt`):
 * filtered on `created_at` alone, the page that ended the list walked the
 * tenant's whole history down to its first job, as no row told the index
 * range where the time's jobs stop. Ids follow the scheduler's clock, so a
 * job's id is never older than its creation time.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeTime, encodeTime } from 'ulid';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { createTestStore } from '../../tests/helpers/mysql.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { JOB_ID_CLOCK_MARGIN_MS, firstJobIdAt, ulidIds } from '../../engine/job-ids.js';
import { systemClock } from '../../engine/system.js';
import { compose } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { silentLogger } from '../../engine/logger.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { listJobSizes } from './statements.js';

const N = 20_000;
const DAY = 86_400_000;
const COLUMNS = 'type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, payload, snapshot, updated_at, tenant';

describe('a tenant\'s page of jobs created after a time', () => {
  it('the first id of a time sorts at or below every id drawn from that time on, the margin before it', () => {
    const at = Date.UTC(2031, 4, 6, 7, 8, 9, 10);
    const floor = firstJobIdAt(at);
    assert.equal(decodeTime(floor), at - JOB_ID_CLOCK_MARGIN_MS);
    const ids = ulidIds({ now: () => at });
    const drawn = Array.from({ length: 100 }, () => ids.jobId());
    assert.ok(drawn.every((id) => id > floor && decodeTime(id) === at));
    assert.deepEqual([...drawn].sort(), drawn, 'ids drawn in one ms still sort');
    // Out of a ULID's range: clamped, never a throw.
    assert.equal(firstJobIdAt(-5 * DAY), '0'.repeat(26));
    assert.equal(firstJobIdAt(8.64e15), `${encodeTime(2 ** 48 - 1, 10)}${'0'.repeat(16)}`);
  });

  it('on SQLite, the query plan bounds the id from below as well as the cursor from above', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const q = listJobSizes(SQLITE_DIALECT, { tenant: 'acme', createdAfter: Date.now() - DAY, afterId: '01ZZ', limit: 501 });
      const plan = store.db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as { detail: string }[];
      const details = plan.map((p) => p.detail).join(' | ');
      assert.match(details, /USING INDEX ix_jobs_tenant_id \(tenant=\? AND id>\? AND id<\?\)/, details);
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, the page after a time reads none of the tenant's ${N} older jobs`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const now = Date.now();
      const [recent] = await store.insert([newJobWrite({ tenant: 'acme', at: now })]);
      assert.ok(recent!.ok);
      const source = (await store.listJobs({ limit: 1, tenant: 'acme' }))[0]!.id;
      // The tenant's history: a day old, ids of their day.
      const old = now - DAY;
      await pool.query(
        `INSERT INTO jobs (id, created_at, ${COLUMNS}) SELECT CONCAT(?, LPAD(s.seq, 16, '0')), ?, ${COLUMNS} FROM jobs j JOIN seq_1_to_${N} s WHERE j.id = ?`,
        [encodeTime(old, 10), old, source],
      );
      await pool.query('ANALYZE TABLE jobs');
      const filter = { tenant: 'acme', createdAfter: now - 3_600_000, limit: 500 };
      const page = await store.listJobPage(filter, 1 << 20);
      assert.deepEqual(page.jobs.map((j) => j.id), [source]);
      assert.equal(page.nextAfterId, null);
      // All of them, from before the history began.
      assert.equal((await store.listJobPage({ ...filter, createdAfter: old - 1, limit: N + 10 }, 1 << 30)).jobs.length, N + 1);
      assert.equal((await store.listJobPage({ ...filter, createdAfter: old + 1, limit: N + 10 }, 1 << 30)).jobs.length, 1);
      const q = listJobSizes(MYSQL_DIALECT, { ...filter, limit: 501 });
      let text = q.sql;
      for (const p of q.params) text = text.replace('?', typeof p === 'number' ? String(p) : `'${String(p)}'`);
      const [rows] = await pool.query(`ANALYZE FORMAT=JSON ${text}`);
      const analyzed = JSON.stringify(JSON.parse((rows as { ANALYZE: string }[])[0]!.ANALYZE));
      const read = [...analyzed.matchAll(/"r_rows":\s*([\d.]+)/g)].map((m) => Number(m[1]));
      assert.ok(read.length > 0 && read.every((n) => n <= 1), `rows read: ${read.join(', ')}`);
    } finally {
      await cleanup();
    }
  });

  it('the scheduler\'s ids follow its clock: a job submitted at its time, far from the machine\'s, is listed from its creation time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-created-after-'));
    const at = Date.UTC(2035, 0, 1);
    const system = await compose(compileConfig({ dataDir: dir, port: 0, logLevel: 'silent' }), { logger: silentLogger, clock: { now: () => at, sleep: systemClock.sleep } });
    try {
      const { job } = await system.transitions.submit({ type: 'demo.echo', queue: 'default', payload: 1, priority: 0, maxAttempts: 1, timeoutMs: 1000, backoff: DEFAULT_BACKOFF });
      assert.equal(decodeTime(job.id), at);
      const page = await system.store.listJobPage({ tenant: 'default', createdAfter: at, limit: 10 }, 1 << 20);
      assert.deepEqual(page.jobs.map((j) => j.id), [job.id]);
    } finally {
      await system.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
