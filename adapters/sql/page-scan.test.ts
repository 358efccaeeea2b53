/**
 * A tenant's page of jobs filtered on a state with a type or queue (or on a
 * type with a queue) reads its type's or queue's index and tests the state on
 * each row: a state that type seldom has made the page walk every job of the
 * type (a dashboard asking for a type's dead jobs, none there, read a million
 * rows each time). Such a page now reads at most MAX_PAGE_SCAN index entries,
 * in growing steps: it may end short, or empty, with a cursor from where it
 * stopped. Following the
 * cursors still lists every matching job once, in order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeTime } from 'ulid';
import type { JobRecordPage, JobStore } from '../../engine/ports.js';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { createTestStore, rowsReadBy } from '../../tests/helpers/mysql.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { MAX_PAGE_SCAN } from './pages.js';
import { scanJobSizes, testsRows } from './statements.js';

const COLUMNS = 'tenant, type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, payload, snapshot, updated_at, created_at';
/** More than a page reads (MAX_PAGE_SCAN): pages stop at their bound, empty, with a cursor. */
const MANY = 6 * MAX_PAGE_SCAN;

/** acme: one dead job of type t.rare (its oldest), then MANY pending ones of that type, and one more dead job, its newest. */
async function fill(store: JobStore, copy: (sql: string, params: unknown[]) => Promise<unknown>): Promise<{ oldest: string; newest: string }> {
  const source = newJobWrite({ tenant: 'acme', type: 't.rare', queue: 'q1' });
  assert.ok((await store.insert([source]))[0]!.ok);
  const now = Date.now();
  const [oldest, newest] = [`${encodeTime(now - 3000, 10)}${'0'.repeat(16)}`, `${encodeTime(now + 60_000, 10)}${'0'.repeat(16)}`];
  // Each created when its id says (the copies' ids and creation times of one moment).
  const created = (at: number) => COLUMNS.replace('created_at', String(at));
  for (const [id, at] of [[oldest, now - 3000], [newest, now + 60_000]] as const) {
    // Dead, as far as a page reads: the state column and the snapshot's value.
    await copy(`INSERT INTO jobs (id, ${COLUMNS}) SELECT ?, ${created(at).replace('state, ', "'dead', ").replace('snapshot', `REPLACE(snapshot, '"value":"pending"', '"value":"dead"')`)} FROM jobs WHERE id = ?`, [id, source.job.id]);
  }
  await copy(`INSERT INTO jobs (id, ${COLUMNS}) SELECT ? || printf('%016d', s.n), ${created(now - 2000)} FROM jobs j JOIN seq s WHERE j.id = ?`, [encodeTime(now - 2000, 10), source.job.id]);
  return { oldest, newest };
}

/** Every page of `filter`, following the cursors: the ids of each. */
async function allPages(store: JobStore, filter: { tenant: string; state?: 'dead'; type?: string; queue?: string; createdAfter?: number }): Promise<string[][]> {
  const pages: string[][] = [];
  let page: JobRecordPage = { jobs: [], nextAfterId: null };
  do {
    page = await store.listJobPage({ ...filter, limit: 50, ...(page.nextAfterId ? { afterId: page.nextAfterId } : {}) }, 1 << 20);
    pages.push(page.jobs.map((j) => j.id));
    assert.ok(pages.length < 20, 'the cursors end');
  } while (page.nextAfterId !== null);
  return pages;
}

async function checkPages(store: JobStore, ids: { oldest: string; newest: string }): Promise<void> {
  for (const filter of [{ tenant: 'acme', state: 'dead' as const, type: 't.rare' }, { tenant: 'acme', state: 'dead' as const, queue: 'q1' }]) {
    const pages = await allPages(store, filter);
    // The newest dead job first; then pages that stopped at their bound, empty; the oldest on the last.
    assert.deepEqual(pages[0], [ids.newest], JSON.stringify(filter));
    assert.deepEqual(pages.flat(), [ids.newest, ids.oldest], JSON.stringify(filter));
    assert.ok(pages.length >= 2 && pages.slice(1, -1).every((p) => p.length === 0), `pages: ${pages.map((p) => p.length).join(', ')}`);
  }
  // By creation time: the jobs after a time, the tenant's history before it read a bound at a time.
  const recent = await allPages(store, { tenant: 'acme', createdAfter: Date.now() + 30_000 });
  assert.deepEqual(recent.flat(), [ids.newest]);
  assert.deepEqual(recent[0], [ids.newest]);
  assert.ok(recent.length >= 2, `pages: ${recent.map((p) => p.length).join(', ')}`);
  // A page with a matching job on every row still ends at `limit`, as before.
  const pending = await store.listJobPage({ tenant: 'acme', state: 'pending', type: 't.rare', limit: 50 }, 1 << 20);
  assert.equal(pending.jobs.length, 50);
  assert.equal(pending.nextAfterId, pending.jobs.at(-1)!.id);
}

describe('a page filtered on what its index does not hold', () => {
  it('only such filters are tested row by row', () => {
    assert.equal(testsRows({ tenant: 'a', state: 'dead', type: 't', limit: 1 }), true);
    assert.equal(testsRows({ tenant: 'a', state: 'dead', queue: 'q', limit: 1 }), true);
    assert.equal(testsRows({ tenant: 'a', type: 't', queue: 'q', limit: 1 }), true);
    assert.equal(testsRows({ tenant: 'a', state: 'dead', limit: 1 }), false);
    assert.equal(testsRows({ tenant: 'a', type: 't', limit: 1 }), false);
    assert.equal(testsRows({ state: 'dead', type: 't', limit: 1 }), false, 'engine reads of every tenant are not pages of the API');
    assert.equal(testsRows({ tenant: 'a', createdAfter: 1, limit: 1 }), true);
    assert.equal(testsRows({ tenant: 'a', state: 'dead', createdBefore: 1, limit: 1 }), true);
    const q = scanJobSizes(SQLITE_DIALECT, { tenant: 'acme', state: 'dead', type: 't.rare', afterId: '01ZZ', limit: 7 });
    assert.equal(q.sql, 'SELECT id, CASE WHEN state = ? THEN COALESCE(OCTET_LENGTH(payload), 0) + OCTET_LENGTH(snapshot) END AS bytes FROM jobs INDEXED BY ix_jobs_tenant_type_id WHERE tenant = ? AND type = ? AND id < ? ORDER BY id DESC LIMIT ?');
    assert.deepEqual(q.params, ['dead', 'acme', 't.rare', '01ZZ', 7]);
  });

  it(`on SQLite, a rare state among ${MANY} jobs of a type: short pages with cursors, every match once`, async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      store.db.exec(`CREATE TEMP TABLE seq (n INTEGER PRIMARY KEY); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${MANY}) INSERT INTO seq SELECT n FROM c`);
      const ids = await fill(store, async (sql, params) => store.db.prepare(sql).run(...params));
      await checkPages(store, ids);
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, the same, and one read of the scan reads no more index entries than it asks for`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const ids = await fill(store, async (sql, params) => pool.query(
        sql.replace("? || printf('%016d', s.n)", "CONCAT(?, LPAD(s.seq, 16, '0'))").replace('JOIN seq s', `JOIN seq_1_to_${MANY} s`),
        params,
      ));
      await pool.query('ANALYZE TABLE jobs');
      await checkPages(store, ids);
      const q = scanJobSizes(MYSQL_DIALECT, { tenant: 'acme', state: 'dead', type: 't.rare', limit: 1000 });
      const read = await rowsReadBy(pool, q.sql, q.params);
      assert.ok(read.length > 0 && read.every((n) => n <= 1000), `rows read: ${read.join(', ')}`);
    } finally {
      await cleanup();
    }
  });
});
