/**
 * Opening the store's pool: what each session sets first, by the server's
 * version (and what happens when the server does not know a setting, or a
 * later connection refuses one), and what a server that answers with an error
 * is called.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import type { Logger } from '../../engine/ports.js';
import { createTestDatabase, mysqlUrl, requireMysql, withDatabase } from '../../tests/helpers/mysql.js';
import { openPool, sessionSetup, unreachable } from './connect.js';

describe('sessionSetup', () => {
  it('MySQL 8.0.3 and later read AUTO_INCREMENT live (no cache of information_schema statistics); MariaDB and older MySQL set nothing', () => {
    const live = ['SET SESSION information_schema_stats_expiry = 0'];
    assert.deepEqual(sessionSetup('8.0.36'), live);
    assert.deepEqual(sessionSetup('8.0.3-rc-log'), live);
    assert.deepEqual(sessionSetup('8.4.2'), live);
    assert.deepEqual(sessionSetup('9.1.0-commercial'), live);
    assert.deepEqual(sessionSetup('8.0.2-dmr'), [], 'the variable came with 8.0.3');
    assert.deepEqual(sessionSetup('5.7.44-log'), []);
    assert.deepEqual(sessionSetup('10.11.19-MariaDB-0+deb12u1'), []);
    assert.deepEqual(sessionSetup('11.4.2-MariaDB'), []);
    assert.deepEqual(sessionSetup(''), [], 'an unknown version: nothing it might refuse');
  });
});

describe('unreachable', () => {
  it('names every address that refused when the connect failed as an AggregateError without a message', () => {
    const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: 'ECONNREFUSED' });
    const all = new AggregateError([refused('::1:3306'), refused('127.0.0.1:3306')]);
    assert.equal(unreachable('mysql://ats:secret@localhost:3306/ats', all),
      'MySQL is not reachable at mysql://ats:***@localhost:3306/ats: connect ECONNREFUSED ::1:3306; connect ECONNREFUSED 127.0.0.1:3306');
  });
});

describe('openPool on MariaDB', async () => {
  const up = await requireMysql();

  it('sets nothing MariaDB lacks: the pool opens and its sessions work', { skip: !up }, async () => {
    const pool = await openPool({ url: mysqlUrl(), poolSize: 2, connectTimeoutMs: 5000 });
    try {
      const [rows] = await pool.query<RowDataPacket[]>('SELECT VERSION() AS v');
      assert.deepEqual(sessionSetup(String(rows[0]!.v)), []);
      // Two connections at once: the second one opened after the first statement.
      const answers = await Promise.all([pool.query('SELECT SLEEP(0.05) AS s'), pool.query('SELECT 1 AS one')]);
      assert.equal(answers.length, 2);
    } finally {
      await pool.end();
    }
  });

  /** A logger keeping each line but debug as `level: message [sql] code`, with its fields' `sql` and `code`, if any. */
  const recording = () => {
    const lines: string[] = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      lines.push(`${level}: ${msg}${fields?.sql ? ` [${String(fields.sql)}]` : ''}${fields?.code ? ` ${String(fields.code)}` : ''}`);
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    return { logger, lines: () => lines.filter((l) => !l.startsWith('debug')) };
  };
  /** The answers of two queries at once: the second goes on a connection opened for it. */
  const twoConnections = async (pool: Awaited<ReturnType<typeof openPool>>, sql: string) => {
    const [[a], [b]] = await Promise.all([
      pool.query<RowDataPacket[]>(`SELECT SLEEP(0.2) AS s, CONNECTION_ID() AS id, ${sql}`),
      pool.query<RowDataPacket[]>(`SELECT CONNECTION_ID() AS id, ${sql}`),
    ]);
    assert.notEqual(a[0]!.id, b[0]!.id, 'two connections');
    return [a[0]!, b[0]!];
  };

  it('a setting the server does not know (as a MySQL 8 without information_schema_stats_expiry): left unset on every connection, said once; the others set, the pool works', { skip: !up }, async () => {
    const log = recording();
    const pool = await openPool({
      url: mysqlUrl(), poolSize: 2, connectTimeoutMs: 5000, logger: log.logger,
      sessionSetup: () => ['SET SESSION ats_no_such_variable = 0', 'SET @ats_setup = 1'],
    });
    try {
      const [first, later] = await twoConnections(pool, '@ats_setup AS setup');
      assert.equal(first!.setup, 1);
      assert.equal(later!.setup, 1, 'the setting the server knows: set on the later connection too');
      // Said once, at the open; the later connection was not sent it (else it would have said so too).
      assert.deepEqual(log.lines(), [
        'info: mysql: the server does not know a session setting: left unset on every connection [SET SESSION ats_no_such_variable = 0] ER_UNKNOWN_SYSTEM_VARIABLE',
      ]);
    } finally {
      await pool.end();
    }
  });

  it('a setting a later connection refuses: said (warn), not swallowed; the connection still answers', { skip: !up }, async () => {
    const db = await createTestDatabase();
    const log = recording();
    const plain = await openPool({ url: db.url, poolSize: 1, connectTimeoutMs: 5000 });
    await plain.query('CREATE TABLE ats_probe (n INT)').finally(() => plain.end());
    const setting = 'SET @ats_setup = (SELECT COUNT(*) + 1 FROM ats_probe)';
    const pool = await openPool({ url: db.url, poolSize: 2, connectTimeoutMs: 5000, logger: log.logger, sessionSetup: () => [setting] });
    try {
      // Taken by the first connection; a later one's fails.
      await pool.query('DROP TABLE ats_probe');
      const [first, later] = await twoConnections(pool, '@ats_setup AS setup');
      assert.equal(first!.setup, 1);
      assert.equal(later!.setup, null, 'the later connection is without the setting');
      assert.deepEqual(log.lines(), [`warn: mysql: a new connection refused a session setting; it goes on without it [${setting}] ER_NO_SUCH_TABLE`]);
    } finally {
      await pool.end();
      await db.drop();
    }
  });

  it('a database that does not exist: the server was reached and refused the session, not "not reachable"', { skip: !up }, async () => {
    const url = withDatabase(mysqlUrl(), 'ats_no_such_database_here');
    await assert.rejects(openPool({ url, poolSize: 1, connectTimeoutMs: 5000 }), (err: unknown) => {
      assert.ok(err instanceof AtsError);
      assert.equal(err.code, 'ATS_ERR_STORE_UNAVAILABLE');
      assert.match(err.message, /^MySQL at mysql:\/\/\S+\/ats_no_such_database_here refused the session: Unknown database 'ats_no_such_database_here'$/);
      return true;
    });
  });

  it('nothing listening: "not reachable"', async () => {
    await assert.rejects(openPool({ url: 'mysql://root@127.0.0.1:1/ats', poolSize: 1, connectTimeoutMs: 2000 }), (err: unknown) => {
      assert.ok(err instanceof AtsError);
      assert.match(err.message, /^MySQL is not reachable at mysql:\/\/root@127\.0\.0\.1:1\/ats: /);
      return true;
    });
  });
});
