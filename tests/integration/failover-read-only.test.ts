/**
 * A failover: the primary is demoted (read only for the scheduler's user) and
 * a new primary, with the same data, takes its address (two private MariaDB
 * servers behind a TCP proxy whose target moves). While the demoted server is
 * all there is, /readyz says the database is not ready (it answered reads, and
 * /readyz said ready while every write failed). Once the address leads to the
 * new primary, the pooled connections that still lead to the old one must not
 * be handed out again: within seconds every submit is created again. (They
 * were kept, and every write answered 503 for as long as traffic kept them busy.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { createPrivateMariadb, type PrivateMariadb } from '../helpers/mariadb-server.js';
import { freePort } from '../helpers/ports.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { FAST } from '../helpers/system.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DB = `ats_failover_${Date.now().toString(36)}`;
let old: PrivateMariadb;
let fresh: PrivateMariadb;
/** A private server whose user `ats` (the scheduler's) has no privilege over read_only, as a production user has none. */
async function server(): Promise<PrivateMariadb> {
  const m = createPrivateMariadb(await freePort());
  await m.start();
  await sql(m.port, "FLUSH PRIVILEGES; CREATE USER 'ats'@'%'; GRANT ALL ON `ats_failover_%`.* TO 'ats'@'%'");
  return m;
}
let proxy: TcpProxy;
const target = { host: '127.0.0.1', port: 0 };
let system: System;
let url = '';
const sql = async (port: number, text: string) => {
  const c = await createConnection({ host: '127.0.0.1', port, user: 'root', multipleStatements: true });
  try { return await c.query(text); } finally { await c.end(); }
};

before(async () => {
  old = await server();
  fresh = await server();
  await sql(old.port, `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  target.port = old.port;
  proxy = await startTcpProxy(target);
  const config = compileConfig({ ...FAST, mysqlUrl: `mysql://ats@127.0.0.1:${proxy.port}/${DB}`, mysqlQueryTimeoutMs: 3000, roles: 'api,relay,worker,timers' }, { hostname: 'test', pid: process.pid });
  system = await compose(config, { registry: new HandlerRegistry().register('t.work', async () => 'ok'), logger: silentLogger });
  url = (await system.start()).url!;
});
after(async () => {
  await system?.stop().catch(() => undefined);
  await proxy?.close();
  await old?.destroy();
  await fresh?.destroy();
});

const submit = async () => {
  const r = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 't.work', payload: {} }) });
  await r.arrayBuffer();
  return r.status;
};

test('after a failover to a new primary, submits are created again within seconds', { timeout: 120_000 }, async () => {
  // Some traffic, so the pool holds a few connections.
  for (let i = 0; i < 5; i++) assert.equal((await Promise.all([submit(), submit(), submit(), submit()])).every((s) => s === 201), true);
  // The failover: the old primary is demoted, its data copied to the new one, whose address new connections reach.
  await sql(old.port, 'SET GLOBAL read_only = ON');
  const demoted = await fetch(`${url}/readyz`);
  assert.equal(demoted.status, 503, await demoted.text());
  const dump = execFileSync('mariadb-dump', ['-h', '127.0.0.1', '-P', String(old.port), '-u', 'root', '--single-transaction', DB], { maxBuffer: 64 << 20 });
  await sql(fresh.port, `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  execFileSync('mariadb', ['-h', '127.0.0.1', '-P', String(fresh.port), '-u', 'root', DB], { input: dump });
  target.port = fresh.port;
  const failedOverAt = Date.now();
  const seen: Array<[number, number, number]> = [];
  let lastFailure = 0;
  while (Date.now() - failedOverAt < 20_000) {
    const statuses = await Promise.all([submit(), submit(), submit(), submit()]);
    const ready = await fetch(`${url}/readyz`);
    await ready.arrayBuffer();
    const t = Math.round((Date.now() - failedOverAt) / 1000);
    for (const s of statuses) if (s !== 201) lastFailure = Date.now();
    seen.push([t, statuses.filter((s) => s === 201).length, ready.status]);
    await sleep(250);
  }
  const summary = new Map<string, number>();
  for (const [t, ok, ready] of seen) summary.set(`${Math.floor(t / 5) * 5}s: ${ok}/4 created, readyz ${ready}`, (summary.get(`${Math.floor(t / 5) * 5}s: ${ok}/4 created, readyz ${ready}`) ?? 0) + 1);
  const late = seen.filter(([t]) => t >= 10);
  assert.ok(late.length > 0 && late.every(([, ok, ready]) => ok === 4 && ready === 200),
    `10 s after the failover, submits still fail or /readyz is not ready: ${JSON.stringify([...summary])} (last failure ${Math.round((lastFailure - failedOverAt) / 1000)} s after it)`);
});
