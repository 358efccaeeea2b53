/**
 * A tenant's per-edge figures (`edgeStats` with a tenant, behind
 * `GET /v1/stats/edges`) are read from its own events only: the window and
 * the row cap bound the tenant's events, so a busier tenant beside it changes
 * neither its edges nor its `truncated`, on both stores. The read goes
 * through `(tenant, id)` of `job_events` (migration 0028): at most the cap of
 * the tenant's newest events, however long its history or busy the others.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EdgeStat, JobStore } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { analyzeOn as analyze, createTestStore } from '../../tests/helpers/mysql.js';
import { runSql, STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import type { MysqlStore } from '../mysql/index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { MYSQL_DIALECT } from './dialect.js';
import { TENANT_EDGE_EVENTS, TENANT_EVENT_ID_AT_OFFSET } from './edges.js';
import { loadMigrations } from './migrations.js';
import { eventValues, jobValues } from './rows.js';
import { insertJobs } from './statements.js';

const T0 = Date.UTC(2031, 0, 1);
const DAY = 86_400_000;
const N = 20_000;

/** Inserts a job of `tenant` submitted at `at`; returns its id. */
async function submitted(store: JobStore, tenant: string, at: number): Promise<string> {
  const w = newJobWrite({ tenant, at });
  assert.ok((await store.insert([w]))[0]!.ok);
  return w.job.id;
}

/** Records the dispatch of job `id` at `at`. */
async function publish(store: JobStore, id: string, at: number): Promise<void> {
  await store.update([id], (jobs) => {
    const w = transitionWrite(jobs.get(id)!, { type: 'PUBLISHED', at, attempt: 1 });
    assert.ok(w);
    return { writes: [w], result: null };
  });
}

const summary = (edges: readonly EdgeStat[]) => edges.map((e) => [e.event, e.count, e.medianDwellMs]);

describe('a tenant\'s edge figures beside a busier tenant', () => {
  for (const backend of STORE_BACKENDS) {
    it(`on ${backend.name}, count its own events only, under a cap of its own events`, () => withMigratedStore(backend, async (store) => {
      // Before the window: a job of acme's whose events do not count.
      await submitted(store, 'acme', T0 - 10);
      const a1 = await submitted(store, 'acme', T0 + 1);
      await submitted(store, 'acme', T0 + 2);
      await publish(store, a1, T0 + 5);
      // Newer, and more than the cap: another tenant's.
      for (let i = 0; i < 8; i++) await submitted(store, 'busy', T0 + 10 + i);

      const acme = await store.edgeStats(T0, 5, 'acme');
      assert.deepEqual(summary(acme.edges), [['SUBMITTED', 2, null], ['PUBLISHED', 1, 4]]);
      assert.equal(acme.truncated, false, 'acme\'s window held 3 of its events, under the cap of 5');

      const busy = await store.edgeStats(T0, 5, 'busy');
      assert.deepEqual(summary(busy.edges), [['SUBMITTED', 5, null]]);
      assert.equal(busy.truncated, true, 'busy\'s window held 8 of its events');

      // acme's own window cut by a cap below its own events: the newest of them.
      const capped = await store.edgeStats(T0, 2, 'acme');
      assert.deepEqual(summary(capped.edges), [['SUBMITTED', 1, null], ['PUBLISHED', 1, 4]]);
      assert.equal(capped.truncated, true);
      // Its newest 3 events reach back past the window's start: nothing was cut.
      assert.equal((await store.edgeStats(T0 + 2, 3, 'acme')).truncated, false);
      assert.deepEqual(await store.edgeStats(T0 + 100, 5, 'acme'), { edges: [], truncated: false });
      assert.deepEqual(await store.edgeStats(T0, 5, 'nobody'), { edges: [], truncated: false });

      // Without a tenant: every tenant's events, under the same cap.
      const all = await store.edgeStats(T0, 5);
      assert.deepEqual(summary(all.edges), [['SUBMITTED', 5, null]]);
      assert.equal(all.truncated, true);
      assert.equal((await store.edgeStats(T0, 20)).edges.reduce((n, e) => n + e.count, 0), 11);
      assert.equal((await store.edgeStats(T0, 20)).truncated, false);
    }));
  }
});

/** A folder with the migrations of `dir` numbered below 28: the schema before events named their tenant. */
function before0028(dir: string): { dir: string; remove(): void } {
  const out = mkdtempSync(join(tmpdir(), 'ats-mig-'));
  for (const m of loadMigrations(dir).filter((m) => m.version < 28)) {
    const file = `${String(m.version).padStart(4, '0')}_${m.name}.sql`;
    copyFileSync(join(dir, file), join(out, file));
  }
  return { dir: out, remove: () => rmSync(out, { recursive: true, force: true }) };
}

describe('migration 0028: events written before it take their job\'s tenant', () => {
  for (const backend of STORE_BACKENDS) {
    it(`on ${backend.name}`, async () => {
      const { store, cleanup } = await backend.open();
      const old = before0028(backend.name === 'sqlite' ? SQLITE_MIGRATIONS_DIR : MYSQL_MIGRATIONS_DIR);
      try {
        const clock = { now: () => Date.now() };
        if (backend.name === 'sqlite') await migrateSqlite((store as unknown as SqliteStore).db, clock, old.dir);
        else await migrateMysql((store as unknown as MysqlStore).pool, clock, old.dir);
        // As a process of the build before wrote them: the job with its tenant, its event without.
        for (const [tenant, at] of [['acme', T0 + 1], ['default', T0 + 2], ['acme', T0 + 3]] as const) {
          const w = newJobWrite({ tenant, at });
          const job = insertJobs(MYSQL_DIALECT, [jobValues(w.job)], false);
          await runSql(store, job.sql, job.params as (string | number | null)[]);
          await runSql(store, 'INSERT INTO job_events (job_id, seq, type, from_state, to_state, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
            eventValues(w.event, tenant).slice(0, 7) as (string | number | null)[]);
        }
        await store.migrate();
        const counts = async (tenant: string) => (await store.edgeStats(T0, 10, tenant)).edges.map((e) => [e.event, e.count]);
        assert.deepEqual(await counts('acme'), [['SUBMITTED', 2]]);
        assert.deepEqual(await counts('default'), [['SUBMITTED', 1]]);
        if (backend.name === 'mysql') {
          // Run again after dying before the ledger row (MySQL DDL is not rolled back): every statement finds its work done.
          await runSql(store, 'DELETE FROM schema_migrations WHERE version = ?', [28]);
          await store.migrate();
          assert.deepEqual(await counts('acme'), [['SUBMITTED', 2]]);
        }
        // Events written now name their tenant.
        await submitted(store, 'acme', T0 + 4);
        assert.deepEqual(await counts('acme'), [['SUBMITTED', 3]]);
      } finally {
        old.remove();
        await cleanup();
      }
    });
  }
});

describe('a tenant\'s edge read is bounded by its own newest events', () => {
  it('on SQLite, the query plan reads (tenant, id): the offset in the index alone, the events by a range on the id', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const plan = (sql: string, params: unknown[]) =>
        (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((p) => p.detail).join(' | ');
      const offset = plan(TENANT_EVENT_ID_AT_OFFSET, ['acme', 100]);
      assert.match(offset, /USING COVERING INDEX ix_job_events_tenant_id \(tenant=\?\)/, offset);
      const events = plan(TENANT_EDGE_EVENTS, ['acme', 5, T0]);
      assert.match(events, /SEARCH e USING INDEX ix_job_events_tenant_id \(tenant=\? AND id>\?\)/, events);
      assert.match(events, /SEARCH p USING INDEX sqlite_autoindex_job_events_1 \(job_id=\? AND seq=\?\)/, events);
      for (const details of [offset, events]) assert.doesNotMatch(details, /TEMP B-TREE|SCAN/, details);
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, reads at most the cap of its events beside ${N} newer events of another tenant and ${N} old ones of its own`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    /** Copies job `id`'s first event `N` times as its later events, `step` ms apart from `at`. */
    const history = (id: string, at: number) => pool.query(
      `INSERT INTO job_events (job_id, seq, type, from_state, to_state, at, data, tenant)
        SELECT job_id, 1 + s.seq, type, from_state, to_state, ? + s.seq, data, tenant FROM job_events e JOIN seq_1_to_${N} s WHERE e.job_id = ? AND e.seq = 1`,
      [at, id]);
    try {
      await history(await submitted(store, 'acme', T0 - DAY), T0 - DAY);
      for (let i = 1; i <= 3; i++) await submitted(store, 'acme', T0 + i);
      await history(await submitted(store, 'busy', T0 + 10), T0 + 10);
      await pool.query('ANALYZE TABLE job_events');
      const cap = 100;
      const acme = await store.edgeStats(T0, cap, 'acme');
      assert.deepEqual(summary(acme.edges), [['SUBMITTED', 3, null]]);
      assert.equal(acme.truncated, false);
      assert.equal((await store.edgeStats(T0, cap, 'busy')).truncated, true);

      const offset = await analyze(pool, TENANT_EVENT_ID_AT_OFFSET, ['acme', cap]);
      assert.deepEqual(offset.keys, ['ix_job_events_tenant_id']);
      assert.ok(offset.read.every((n) => n <= cap + 1), `entries read: ${offset.read.join(', ')}`);
      const [[below]] = await pool.query(TENANT_EVENT_ID_AT_OFFSET, ['acme', cap]) as unknown as [{ id: number }[]];
      const events = await analyze(pool, TENANT_EDGE_EVENTS, ['acme', below!.id, T0]);
      assert.deepEqual(events.keys[0], 'ix_job_events_tenant_id', `keys: ${events.keys.join(', ')}`);
      assert.ok(events.read.length > 0 && events.read.every((n) => n <= cap), `rows read: ${events.read.join(', ')}`);
    } finally {
      await cleanup();
    }
  });
});

