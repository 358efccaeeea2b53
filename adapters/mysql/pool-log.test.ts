/**
 * mysql2 through the process's logger: a pooled connection the server kills
 * (as a restart or a network cut would) is a warn line naming the driver's
 * error code; the pool opens a new connection and the store works on.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, test } from 'node:test';
import { createConnection, type Pool } from 'mysql2/promise';
import type { Logger } from '../../engine/ports.js';
import { createTestStore, mysqlUrl, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import type { MysqlStore } from './index.js';
import { logPoolEvents } from './pool-log.js';

await requireMysql();

type Line = { level: string; msg: string } & Record<string, unknown>;
const lines: Line[] = [];
const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...fields });
const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };

let store: MysqlStore;
let db: TestDatabase;
let cleanup: () => Promise<void>;

before(async () => {
  ({ store, db, cleanup } = await createTestStore({ poolSize: 2, logger }));
});
after(async () => {
  await cleanup?.();
});

test('a pooled connection killed by the server is a warn line; the store goes on', { timeout: 30_000 }, async () => {
  await store.ping();
  assert.equal(lines.length, 0, `nothing to say while all is well: ${JSON.stringify(lines)}`);
  const admin = await createConnection(mysqlUrl());
  try {
    const [rows] = await admin.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ?', [db.name]);
    const ids = (rows as Array<{ id: number }>).map((r) => r.id);
    assert.ok(ids.length >= 1, 'the pool holds an idle connection');
    for (const id of ids) await admin.query(`KILL ${Number(id)}`);
  } finally {
    await admin.end();
  }
  const end = Date.now() + 10_000;
  while (!lines.some((l) => l.level === 'warn') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const warned = lines.filter((l) => l.msg === 'mysql: a pooled connection failed; the pool opens a new one when needed');
  assert.ok(warned.length >= 1, JSON.stringify(lines));
  for (const l of warned) {
    assert.equal(l.level, 'warn');
    assert.equal(l.component, 'mysql2');
    assert.equal(typeof l.code, 'string');
    assert.equal(typeof l.err, 'string');
  }
  await store.ping();
});

test('a server restart failing every pooled connection is one warning a minute per error code, the rest at debug', () => {
  const mine: Line[] = [];
  const to = (level: string) => (msg: string, fields?: Record<string, unknown>) => void mine.push({ level, msg, ...fields });
  const pool = new EventEmitter();
  let t = 0;
  logPoolEvents(pool as unknown as Pool, { debug: to('debug'), info: to('info'), warn: to('warn'), error: to('error') }, () => t);
  const conns = [1, 2, 3, 4].map((threadId) => Object.assign(new EventEmitter(), { threadId }));
  for (const c of conns) pool.emit('connection', c);
  const lost = () => Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST' });
  for (const c of conns.slice(0, 3)) c.emit('error', lost());
  conns[3]!.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
  assert.deepEqual(mine.map((l) => [l.level, l.code, l.threadId]), [
    ['warn', 'PROTOCOL_CONNECTION_LOST', 1], ['debug', 'PROTOCOL_CONNECTION_LOST', 2], ['debug', 'PROTOCOL_CONNECTION_LOST', 3], ['warn', 'ECONNRESET', 4],
  ]);
  t += 60_000;
  conns[0]!.emit('error', lost());
  assert.equal(mine.at(-1)!.level, 'warn', 'a minute later, a warning again');
  assert.equal(mine.at(-1)!.repeated, 2, 'saying how many were lowered since');
});
