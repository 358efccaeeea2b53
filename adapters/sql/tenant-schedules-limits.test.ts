/**
 * Migration 0014 on a database made before tenants: its schedules (and their
 * ticks) become the default tenant's, keyed by (tenant, name) so another
 * tenant may take the same name; its limits stay under their bare keys, the
 * default tenant's, beside tenant-qualified ones. On SQLite and on MariaDB,
 * and on MariaDB a rerun (a crash before the ledger row) completes.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_TENANT } from '../../engine/auth.js';
import { storedLimitKey } from '../../engine/limits.js';
import type { LimitStore, ScheduleRecord, ScheduleStore } from '../../engine/ports.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from '../mysql/index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { createSqliteStore } from '../sqlite/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { SYSTEM_CLOCK } from './options.js';

const T = 1_900_000_000_000;
const JOB = JSON.stringify({ type: 'demo.echo', payload: null, queue: 'default', maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 30_000, priority: 0 });

/** The rows a database of version 13 holds: a schedule with a tick, and a limit with an attempt it admitted. */
const OLD_ROWS: Array<[string, unknown[]]> = [
  ['INSERT INTO schedules (name, cron, timezone, overlap, catch_up, paused, job, next_at, last_tick_at, last_job_id, submitted, skipped, missed, version, created_at, updated_at) '
    + 'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', ['nightly', '0 3 * * *', 'UTC', 'skip', 'none', 0, JOB, T + 1000, T, null, 1, 0, 0, 2, T - 1000, T]],
  ['INSERT INTO schedule_ticks (schedule_name, tick_at, outcome, job_id, at) VALUES (?, ?, ?, ?, ?)', ['nightly', T, 'submitted', '01J00000000000000000000000', T]],
  ['INSERT INTO limits (limit_key, concurrency, rate_max, rate_interval_ms, tat, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)', ['email', 2, null, null, 0, T, T]],
];

/** A folder holding the dialect's migrations before 0014. */
function migrationsBefore14(dir: string): { dir: string; remove(): void } {
  const to = mkdtempSync(join(tmpdir(), 'ats-migrations-'));
  for (const file of readdirSync(dir)) if (/^\d{4}_/.test(file) && Number(file.slice(0, 4)) < 14) cpSync(join(dir, file), join(to, file));
  return { dir: to, remove: () => rmSync(to, { recursive: true, force: true }) };
}

async function checkMoved(store: ScheduleStore & LimitStore): Promise<void> {
  const s = await store.getSchedule(DEFAULT_TENANT, 'nightly');
  assert.ok(s, 'the schedule is the default tenant\'s');
  assert.deepEqual([s.tenant, s.name, s.cron, s.nextAt, s.submitted, s.version, s.createdAt], [DEFAULT_TENANT, 'nightly', '0 3 * * *', T + 1000, 1, 2, T - 1000]);
  assert.deepEqual((await store.listTicks(DEFAULT_TENANT, 'nightly', 10)).map((t) => [t.tenant, t.schedule, t.tickAt, t.outcome]), [[DEFAULT_TENANT, 'nightly', T, 'submitted']]);
  assert.equal(await store.getSchedule('acme', 'nightly'), null);
  // Another tenant may take the name now; the default tenant's still may not.
  const acme: ScheduleRecord = { ...s, tenant: 'acme', version: 1, submitted: 0 };
  assert.equal(await store.createSchedule(acme), true);
  assert.equal(await store.createSchedule({ ...s, version: 1 }), false);
  assert.deepEqual((await store.listSchedules('acme')).map((x) => [x.tenant, x.name]), [['acme', 'nightly']]);
  assert.equal((await store.getSchedule(DEFAULT_TENANT, 'nightly'))?.version, 2);
  // The limit is the default tenant's, under its bare key, beside acme's of the same key.
  assert.equal((await store.getLimit('email'))?.concurrency, 2);
  await store.putLimit(storedLimitKey('acme', 'email'), { concurrency: 7, rate: null }, T);
  assert.deepEqual((await store.listLimits(10, DEFAULT_TENANT)).map((l) => [l.key, l.concurrency]), [['email', 2]]);
  assert.deepEqual((await store.listLimits(10, 'acme')).map((l) => [l.key, l.concurrency]), [['acme/email', 7]]);
}

describe('migration 0014: schedules and limits of tenants', () => {
  it('on SQLite: the rows before it are the default tenant\'s', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    const old = migrationsBefore14(SQLITE_MIGRATIONS_DIR);
    try {
      await migrateSqlite(store.db, SYSTEM_CLOCK, old.dir);
      for (const [sql, params] of OLD_ROWS) store.db.prepare(sql).run(...params);
      await store.migrate();
      await checkMoved(store);
    } finally {
      old.remove();
      await store.close();
    }
  });

  it('on MariaDB: the rows before it are the default tenant\'s, and a rerun completes', async () => {
    await requireMysql();
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 2 });
    const old = migrationsBefore14(MYSQL_MIGRATIONS_DIR);
    try {
      await migrateMysql(store.pool, SYSTEM_CLOCK, old.dir);
      for (const [sql, params] of OLD_ROWS) await store.pool.query(sql, params);
      await store.migrate();
      await checkMoved(store);
      // Died after its statements, before its ledger row: run again.
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 14');
      await store.migrate();
      assert.deepEqual((await store.listSchedules('acme')).map((x) => x.name), ['nightly']);
      assert.equal((await store.getSchedule(DEFAULT_TENANT, 'nightly'))?.version, 2);
      // The widest stored key fits.
      const longest = storedLimitKey('t'.repeat(63), 'k'.repeat(200));
      assert.equal((await store.putLimit(longest, { concurrency: 1, rate: null }, T)).limit.key, longest);
    } finally {
      old.remove();
      await store.close();
      await db.drop();
    }
  });
});

describe('the default limits a worker reads', () => {
  async function check(store: LimitStore): Promise<void> {
    for (const key of ['type:a', 'queue:q', 'mail', storedLimitKey('acme', 'type:b'), storedLimitKey('acme', 'queue:r'), storedLimitKey('acme', 'smtp')]) {
      await store.putLimit(key, { concurrency: 1, rate: null }, T);
    }
    // Many keyed limits of one tenant: they are not read, so they cannot crowd the default ones out.
    for (let i = 0; i < 50; i++) await store.putLimit(storedLimitKey('acme', `k${i}`), { concurrency: 1, rate: null }, T);
    assert.deepEqual((await store.defaultLimitKeys(10)).sort(), ['acme/queue:r', 'acme/type:b', 'queue:q', 'type:a']);
  }

  it('on SQLite: every tenant\'s type: and queue: limits, and no keyed one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-default-limits-'));
    const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    try {
      await store.migrate();
      await check(store);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on MariaDB: the same', async () => {
    await requireMysql();
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 2 });
    try {
      await store.migrate();
      await check(store);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
