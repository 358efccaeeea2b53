/**
 * A user with only SELECT, INSERT, UPDATE and DELETE on the database (no DDL),
 * as a shared server's DBA gives an application, on a database the DBA
 * migrated beforehand: the store's migrate finds nothing to do and runs no DDL
 * (not even `CREATE TABLE IF NOT EXISTS schema_migrations`, which such a user
 * is refused); on a database that lacks migrations it says what is missing and
 * who may run it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { createTestDatabase, mysqlUrl, requireMysql, withDatabase, type TestDatabase } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from './index.js';

describe('a least-privilege MySQL user (SELECT, INSERT, UPDATE, DELETE)', async () => {
  const up = await requireMysql();
  const user = `ats_lp_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  let migrated: TestDatabase;
  let empty: TestDatabase;
  /** Migrated, then told it lacks the migrations from 0027 on (as a database of an older build would). */
  let behind: TestDatabase;
  const admin = async (sql: string) => {
    const conn = await createConnection({ uri: withDatabase(mysqlUrl(), ''), connectTimeout: 5000 });
    try { await conn.query(sql); } finally { await conn.end(); }
  };
  /** `db`'s URL as the least-privilege user. */
  const asUser = (db: TestDatabase) => {
    const u = new URL(db.url);
    u.username = user;
    u.password = password;
    return u.toString();
  };

  before(async () => {
    if (!up) return;
    migrated = await createTestDatabase();
    empty = await createTestDatabase();
    behind = await createTestDatabase();
    for (const db of [migrated, behind]) {
      const dba = await createMysqlStore({ url: db.url });
      try { await dba.migrate(); } finally { await dba.close(); }
    }
    await admin(`DELETE FROM \`${behind.name}\`.schema_migrations WHERE version >= 27`);
    for (const host of ['%', 'localhost']) {
      await admin(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
      for (const db of [migrated, empty, behind]) await admin(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${db.name}\`.* TO '${user}'@'${host}'`);
    }
  });
  after(async () => {
    if (!up) return;
    for (const host of ['%', 'localhost']) await admin(`DROP USER IF EXISTS '${user}'@'${host}'`);
    await migrated?.drop();
    await empty?.drop();
    await behind?.drop();
  });

  it('starts on a database migrated beforehand: migrate runs no DDL, and the store answers', { skip: !up }, async () => {
    const store = await createMysqlStore({ url: asUser(migrated) });
    try {
      await store.migrate();
      await store.ping();
      assert.equal(await store.getJob('01M00000000000000000000000'), null);
    } finally {
      await store.close();
    }
  });

  /** The user's migrate of `db` is refused, naming the migrations from `first` on, before any of them ran. */
  const refused = async (db: TestDatabase, first: string) => {
    const store = await createMysqlStore({ url: asUser(db) });
    try {
      await assert.rejects(store.migrate(), (err: Error) => {
        assert.match(err.message, new RegExp(`^the MySQL database ${db.name} lacks \\d+ migrations \\(${first} to \\d{4}_\\w+\\), and this user may not run them: CREATE command denied`));
        assert.match(err.message, /migrate it with a user that has CREATE, ALTER, INDEX and DROP besides SELECT, INSERT, UPDATE and DELETE \(or ALL\) on the database/);
        return true;
      });
    } finally {
      await store.close();
    }
  };

  it('on a database not migrated yet, says what it lacks and that a user with DDL privileges must migrate it', { skip: !up }, () => refused(empty, '0001_init'));

  it('on a database an older build migrated, says what it lacks before running any of it (a migration may begin with an UPDATE)', { skip: !up },
    () => refused(behind, '0027_jobs_state_updated_dropped'));
});
