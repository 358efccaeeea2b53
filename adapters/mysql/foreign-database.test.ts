/**
 * A MYSQL_URL naming a database that is another program's: an application's
 * own database with a `jobs` or `outbox` table, or another migration tool's
 * `schema_migrations`. The migration refuses it before writing anything
 * (ATS_ERR_CONFIG), instead of creating its other tables beside the foreign
 * ones and failing half way; a database holding only tables of other names
 * is migrated, those left as they are.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { isAtsError } from '../../engine/errors.js';
import { foreignTables, loadMigrations, tablesCreatedBy } from '../sql/migrations.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from './index.js';
import { MYSQL_MIGRATIONS_DIR } from './migrate.js';

const migrations = loadMigrations(MYSQL_MIGRATIONS_DIR);

test('the tables the migrations create are read from the files', () => {
  const tables = tablesCreatedBy(migrations);
  for (const t of ['jobs', 'job_events', 'outbox', 'schedules', 'workflows', 'api_keys']) assert.ok(tables.includes(t), t);
  assert.ok(!tables.includes('schema_migrations'), 'the ledger is made apart, before the migrations');
});

test('foreignTables: a table of the scheduler\'s names without its ledger, or a ledger of other columns, is another program\'s', () => {
  assert.equal(foreignTables(migrations, { tables: [], ledgerColumns: null }), null, 'an empty database');
  assert.equal(foreignTables(migrations, { tables: ['users', 'orders'], ledgerColumns: null }), null, 'other names only');
  assert.match(foreignTables(migrations, { tables: ['users', 'jobs', 'Outbox'], ledgerColumns: null }) ?? '', /tables named as the scheduler's \(jobs, outbox\)/);
  assert.match(foreignTables(migrations, { tables: ['schema_migrations'], ledgerColumns: ['version'] }) ?? '', /no column name, applied_at/);
  // Its own ledger: a database it migrated (or began to: the ledger is made first), whatever else it holds.
  assert.equal(foreignTables(migrations, { tables: ['schema_migrations', 'jobs'], ledgerColumns: ['version', 'name', 'applied_at'] }), null);
});

/** The tables of the pool's database, by name. */
async function contentsOf(pool: Pool): Promise<string[]> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name');
  return rows.map((r) => String(r.t));
}

test('a MySQL database that is another program\'s is refused before anything is written; one of other tables only is migrated beside them', { timeout: 120_000 }, async (t) => {
  if (!(await requireMysql())) return t.skip('MariaDB not reachable');
  const cases = [
    { name: 'an application\'s jobs table', ddl: ['CREATE TABLE jobs (id INT PRIMARY KEY, title VARCHAR(100))', "INSERT INTO jobs VALUES (1, 'kept')"], said: /holds a table named as the scheduler's \(jobs\) and no record of the scheduler's migrations/ },
    { name: 'another tool\'s ledger', ddl: ['CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY)', "INSERT INTO schema_migrations VALUES ('20240101120000')"], said: /its table schema_migrations is not the scheduler's \(it has no column name, applied_at/ },
  ];
  for (const c of cases) {
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 2 });
    try {
      for (const sql of c.ddl) await store.pool.query(sql);
      const before = await contentsOf(store.pool);
      const err = await store.migrate().then(() => null, (e: unknown) => e);
      assert.ok(isAtsError(err) && err.code === 'ATS_ERR_CONFIG', `${c.name}: ${String(err)}`);
      assert.match(err.message, new RegExp(`^the MySQL database ${db.name} is not the scheduler's: `), c.name);
      assert.match(err.message, c.said, c.name);
      assert.match(err.message, /nothing was written to it/, c.name);
      assert.deepEqual(await contentsOf(store.pool), before, `${c.name}: no table made`);
      const [[row]] = await store.pool.query<RowDataPacket[]>(c.name.includes('ledger') ? 'SELECT COUNT(*) AS n FROM schema_migrations' : 'SELECT COUNT(*) AS n FROM jobs');
      assert.equal(Number(row!.n), 1, `${c.name}: its rows as they were`);
    } finally {
      await store.close();
      await db.drop();
    }
  }

  const db = await createTestDatabase();
  const store = await createMysqlStore({ url: db.url, poolSize: 2 });
  try {
    await store.pool.query('CREATE TABLE users (id INT PRIMARY KEY)');
    await store.migrate();
    const tables = await contentsOf(store.pool);
    assert.ok(tables.includes('users') && tables.includes('jobs') && tables.includes('schema_migrations'), tables.join(', '));
    // Its second start finds its own ledger.
    await assert.doesNotReject(store.migrate());
  } finally {
    await store.close();
    await db.drop();
  }
});
