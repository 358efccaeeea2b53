/**
 * Migration 0013 (tenants) on both stores: a database with jobs, events,
 * counters and an idempotency key made before it has them as the default
 * tenant's afterwards, and the key is then per tenant.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { JobStore, TransitionWrite } from '../../engine/ports.js';
import { createMysqlStore } from '../mysql/index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { createSqliteStore } from '../sqlite/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createTestDatabase } from '../../tests/helpers/mysql.js';
import { loadMigrations } from './migrations.js';
import { eventValues, JOB_COLUMNS, jobValues } from './rows.js';

const clock = { now: () => Date.now() };
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A folder with the migrations of `dir` numbered below 13: the schema as it was before tenants. */
function before0013(dir: string): string {
  const out = mkdtempSync(join(tmpdir(), 'ats-mig-'));
  dirs.push(out);
  for (const m of loadMigrations(dir).filter((m) => m.version < 13)) copyFileSync(join(dir, `${String(m.version).padStart(4, '0')}_${m.name}.sql`), join(out, `${String(m.version).padStart(4, '0')}_${m.name}.sql`));
  return out;
}

/** The statements an older process wrote a job with: every column but `tenant` (and the later `parent`), its SUBMITTED event, its counter. */
function oldInserts(w: TransitionWrite, shard: number): { sql: string; params: unknown[] }[] {
  const columns = JOB_COLUMNS.filter((c) => c !== 'tenant' && c !== 'parent');
  const values = jobValues(w.job).slice(0, columns.length);
  return [
    { sql: `INSERT INTO jobs (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, params: values },
    { sql: 'INSERT INTO job_events (job_id, seq, type, from_state, to_state, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)', params: eventValues(w.event, 'default').slice(0, 7) },
    { sql: 'INSERT INTO job_counts (queue, type, state, shard, n) VALUES (?, ?, ?, ?, 1)', params: [w.job.queue, w.job.type, w.job.snapshot.value, shard] },
  ];
}

/** What must hold once 0013 ran over `old` (jobs written before it, one of them with key `k`). */
async function assertMigrated(store: JobStore, old: TransitionWrite[]): Promise<void> {
  for (const w of old) {
    const job = await store.getJob(w.job.id);
    assert.equal(job?.tenant, 'default', 'a job made before tenants is the default tenant\'s');
    assert.deepEqual({ ...job, tenant: undefined }, { ...w.job, tenant: undefined }, 'and otherwise as it was');
  }
  assert.deepEqual((await store.listJobs({ tenant: 'default', limit: 10 })).map((j) => j.id).sort(), old.map((w) => w.job.id).sort());
  assert.equal((await store.stats('default')).byState.pending, old.length, 'its counters are the default tenant\'s');
  assert.equal((await store.stats('acme')).byState.pending, 0);
  assert.ok((await store.readEventsAfter(0, 10)).every((e) => e.tenant === 'default'));
  const keyed = old.find((w) => w.job.idempotencyKey !== null)!;
  assert.equal((await store.findByIdempotencyKey(keyed.job.queue, 'k', 'default'))?.id, keyed.job.id);
  // The key stays taken in the default tenant, and is free in another.
  const dup = { ok: false, reason: 'duplicate-key' };
  assert.deepEqual(await store.insert([newJobWrite({ key: 'k' }), newJobWrite({ key: 'k', tenant: 'acme' })]), [dup, { ok: true }]);
  assert.equal((await store.stats('acme')).byState.pending, 1);
  assert.deepEqual(
    (await store.jobCounts()).map((c) => [c.queue, c.type, c.state, c.n]),
    (await store.recountJobs()).map((c) => [c.queue, c.type, c.state, c.n]),
  );
}

const oldJobs = (): TransitionWrite[] => [newJobWrite({ key: 'k' }), newJobWrite(), newJobWrite({ queue: 'other' })];

describe('migration 0013: jobs made before tenants are the default tenant\'s', () => {
  it('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-0013-'));
    dirs.push(dir);
    const file = join(dir, 'ats.sqlite');
    const store = createSqliteStore({ file });
    try {
      await migrateSqlite(store.db, clock, before0013(SQLITE_MIGRATIONS_DIR));
      const old = oldJobs();
      for (const [i, w] of old.entries()) for (const s of oldInserts(w, i)) store.db.prepare(s.sql).run(...s.params);
      await store.migrate();
      await assertMigrated(store, old);
      const indexes = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND name LIKE 'ix_%' ORDER BY name").all();
      assert.deepEqual(indexes.map((r) => (r as { name: string }).name), [
        'ix_jobs_state_due_updated', 'ix_jobs_state_id', 'ix_jobs_state_tenant_id', 'ix_jobs_tenant_id', 'ix_jobs_tenant_queue_id', 'ix_jobs_tenant_type_id',
      ], 'the indexes of jobs are made again with the table');
    } finally {
      await store.close();
    }
  });

  it('MySQL', async () => {
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 2 });
    try {
      await migrateMysql(store.pool, clock, before0013(MYSQL_MIGRATIONS_DIR));
      const old = oldJobs();
      for (const [i, w] of old.entries()) for (const s of oldInserts(w, i)) await store.pool.query(s.sql, s.params);
      await store.migrate();
      await assertMigrated(store, old);
      // Run again after dying before the ledger row (MySQL DDL is not rolled back): every statement finds its work done.
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 13');
      await store.migrate();
      assert.equal((await store.getJob(old[0]!.job.id))?.tenant, 'default');
      const dup = { ok: false, reason: 'duplicate-key' };
      assert.deepEqual(await store.insert([newJobWrite({ key: 'k', tenant: 'acme' })]), [dup], 'the unique key per tenant is there again');
      const [indexes] = await store.pool.query(
        "SELECT DISTINCT index_name AS i FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'jobs'");
      assert.deepEqual((indexes as { i: string }[]).map((r) => r.i).sort(), [
        'PRIMARY', 'ix_jobs_state_due_updated', 'ix_jobs_state_id', 'ix_jobs_state_tenant_id', 'ix_jobs_tenant_id', 'ix_jobs_tenant_queue_id', 'ix_jobs_tenant_type_id',
        'uq_jobs_tenant_queue_key',
      ]);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
