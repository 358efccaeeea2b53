/**
 * After a failover, the connections the store's pool opened to the demoted
 * primary are not handed out again once one of them has said so. The pool
 * hands idle connections out last in, first out: before, each of the older
 * ones failed a statement of its own when traffic grew enough to reach it,
 * seconds or minutes after the failover (seen as a 503 from /readyz 10 s
 * after it, every submit in between created).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import { createPrivateMariadb, type PrivateMariadb } from '../helpers/mariadb-server.js';
import { freePort } from '../helpers/ports.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const DB = `ats_failover_pool_${Date.now().toString(36)}`;
const POOL = 6;
let old: PrivateMariadb;
let fresh: PrivateMariadb;
let proxy: TcpProxy;
let store: MysqlStore;
const target = { host: '127.0.0.1', port: 0 };

const sql = async (port: number, text: string) => {
  const c = await createConnection({ host: '127.0.0.1', port, user: 'root', multipleStatements: true });
  try { return await c.query(text); } finally { await c.end(); }
};
/** A private server whose user `ats` (the scheduler's) has no privilege over read_only. */
async function server(): Promise<PrivateMariadb> {
  const m = createPrivateMariadb(await freePort());
  await m.start();
  await sql(m.port, "FLUSH PRIVILEGES; CREATE USER 'ats'@'%'; GRANT ALL ON `ats_failover_pool_%`.* TO 'ats'@'%'");
  return m;
}

before(async () => {
  [old, fresh] = await Promise.all([server(), server()]);
  await sql(old.port, `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  target.port = old.port;
  proxy = await startTcpProxy(target);
  store = await createMysqlStore({ url: `mysql://ats@127.0.0.1:${proxy.port}/${DB}`, poolSize: POOL });
  await store.migrate();
});
after(async () => {
  await store?.close().catch(() => undefined);
  await proxy?.close();
  await old?.destroy();
  await fresh?.destroy();
});

/** How many of `n` pings at once failed. */
const failedOf = async (n: number) => (await Promise.allSettled(Array.from({ length: n }, () => store.ping()))).filter((r) => r.status === 'rejected').length;

test('once a connection to the demoted primary refuses a write, no other connection opened before is handed out', { timeout: 120_000 }, async () => {
  // The pool holds POOL connections to the primary, all idle.
  assert.equal(await failedOf(POOL), 0);
  // The failover: the primary is demoted, its data copied to the new one, whose address new connections reach.
  await sql(old.port, 'SET GLOBAL read_only = ON');
  const dump = execFileSync('mariadb-dump', ['-h', '127.0.0.1', '-P', String(old.port), '-u', 'root', '--single-transaction', DB], { maxBuffer: 64 << 20 });
  await sql(fresh.port, `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  execFileSync('mariadb', ['-h', '127.0.0.1', '-P', String(fresh.port), '-u', 'root', DB], { input: dump });
  target.port = fresh.port;
  // One statement at a time takes the connection last used: it still leads to the demoted server.
  await assert.rejects(store.ping(), (err: Error & { code?: string; cause?: { errno?: number } }) => err.code === 'ATS_ERR_STORE_UNAVAILABLE' && err.cause?.errno === 1290);
  // Then as many at once as the pool holds: each on a connection to the new primary.
  assert.equal(await failedOf(POOL), 0, 'a connection opened before the failover was handed out again');
  assert.equal(await failedOf(POOL), 0);
});
