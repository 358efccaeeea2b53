/**
 * The store's own query text: every value, however hostile, reaches MariaDB
 * as the same value (a round trip through a table), quotes in JSON are sent
 * unescaped, and anything without a literal is refused rather than guessed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { createTestDatabase, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import { formatQuery, MIN_MAX_ALLOWED_PACKET, openPool, smallPacket, unsupportedSession } from './connect.js';
import { literal, sqlText } from './sql-text.js';

const HOSTILE = [
  '', "'", "\\'", "\\", "'; DROP TABLE t; --", "\\'; DROP TABLE t; --", 'a\\', "ends with \\\\'",
  '"quoted" and \\"escaped\\"', 'line\nbreak\r\ttab', '\0nul\0', '\x1a ctrl-z', 'question ? mark ??',
  Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(''), 'héllo ✓ 𝄞 😀', '\u2028\u2029', '%_*',
  JSON.stringify({ a: "it's", b: 'back\\slash', c: '"', d: '\n' }),
];

describe('sqlText', () => {
  it('replaces each ? by its value, in order, and checks the counts', () => {
    assert.equal(sqlText('SELECT ?, ?, ?', [1, 'a', null]), "SELECT 1, 'a', NULL");
    assert.equal(sqlText('SELECT ?', ['?']), "SELECT '?'", 'a ? inside a value is not a placeholder');
    assert.throws(() => sqlText('SELECT ?, ?', [1]), RangeError);
    assert.throws(() => sqlText('SELECT ?', [1, 2]), RangeError);
    assert.equal(sqlText('SELECT 1', []), 'SELECT 1');
  });

  it('sends the double quotes of JSON as they are, and doubles a single quote', () => {
    assert.equal(literal('{"a":"b"}'), `'{"a":"b"}'`);
    assert.equal(literal("it's \\"), "'it''s \\\\'");
  });

  it('the pool refuses a session whose literals would mean something else', () => {
    assert.equal(unsupportedSession('STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', 'utf8mb4'), null);
    assert.equal(unsupportedSession('', 'utf8mb3'), null);
    assert.match(unsupportedSession('ANSI_QUOTES,NO_BACKSLASH_ESCAPES', 'utf8mb4') ?? '', /NO_BACKSLASH_ESCAPES/);
    assert.match(unsupportedSession('', 'gbk') ?? '', /gbk/);
  });

  it('the pool refuses a server whose max_allowed_packet is below 16 MiB, saying how to raise it', () => {
    assert.equal(smallPacket(MIN_MAX_ALLOWED_PACKET), null, 'MariaDB\'s default');
    assert.equal(smallPacket(64 * 1024 * 1024), null, 'MySQL 8\'s default');
    assert.equal(smallPacket(Number.NaN), null, 'not read: not refused');
    assert.match(smallPacket(1024 * 1024) ?? '', /^has max_allowed_packet at 1048576 bytes, below the 16777216 \(16 MiB\).*raise it on the server/);
  });

  it('refuses values with no literal instead of guessing one', () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY, [1, 2], { a: 1 }, new Date(0)]) assert.throws(() => literal(v), TypeError, String(v));
    assert.deepEqual([literal(true), literal(false), literal(12n), literal(-1.5), literal(undefined)], ['TRUE', 'FALSE', '12', '-1.5', 'NULL']);
  });
});

describe('sqlText on MariaDB', async () => {
  const up = await requireMysql();
  let db: TestDatabase;
  let conn: Connection;
  before(async () => {
    if (!up) return;
    db = await createTestDatabase();
    conn = await createConnection({ uri: db.url, charset: 'UTF8MB4_GENERAL_CI' });
    await conn.query('CREATE TABLE t (k INT PRIMARY KEY, v LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL)');
  });
  after(async () => {
    await conn?.end();
    await db?.drop();
  });

  it('every hostile string comes back exactly as written, and the table is still there', { skip: !up }, async () => {
    await conn.query(sqlText(`INSERT INTO t (k, v) VALUES ${HOSTILE.map(() => '(?, ?)').join(', ')}`, HOSTILE.flatMap((v, k) => [k, v])));
    const [rows] = await conn.query<RowDataPacket[]>('SELECT k, v FROM t ORDER BY k');
    assert.deepEqual(rows.map((r) => r.v as string), HOSTILE);
    const [found] = await conn.query<RowDataPacket[]>(sqlText('SELECT k FROM t WHERE v = ?', ["'; DROP TABLE t; --"]));
    assert.deepEqual(found.map((r) => r.k as number), [HOSTILE.indexOf("'; DROP TABLE t; --")]);
  });
});

describe('the store pool sends finished text as it is', async () => {
  const up = await requireMysql();
  let db: TestDatabase;
  before(async () => {
    if (up) db = await createTestDatabase();
  });
  after(async () => db?.drop());

  it('formatQuery: text without values unchanged (a ? inside a literal included), values through sqlText', () => {
    const text = sqlText('SELECT ?', ['what? who?']);
    assert.equal(formatQuery(text, []), text);
    assert.equal(formatQuery(text, undefined), text);
    assert.equal(formatQuery('SELECT ?, ?', [1, "it's"]), "SELECT 1, 'it''s'");
  });

  it('on MariaDB: a ? in a literal of finished text stays a ?; a call with values is formatted', { skip: !up }, async () => {
    const pool = await openPool({ url: db.url, poolSize: 1, connectTimeoutMs: 5000 });
    try {
      const [plain] = await pool.query<RowDataPacket[]>(sqlText('SELECT ? AS v', ['what? who?']));
      assert.equal(plain[0]!.v, 'what? who?');
      const [withValues] = await pool.query<RowDataPacket[]>('SELECT ? AS v, ? AS w', ['a?', 2]);
      assert.deepEqual([withValues[0]!.v, withValues[0]!.w], ['a?', 2]);
    } finally {
      await pool.end();
    }
  });
});
