/**
 * mysql2 through the process's logger: a pooled connection the server kills
 * (as a restart or a network cut would) is a warn line naming the driver's
 * error code; the pool opens a new connection and the store works on.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createConnection } from 'mysql2/promise';
import type { Logger } from '../../engine/ports.js';
import { createTestStore, mysqlUrl, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import type { MysqlStore } from './index.js';

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
