/**
 * Throwaway MySQL/MariaDB databases for tests: each test gets its own
 * `ats_test_<random>` database on `MYSQL_URL` and drops it after.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { createMysqlStore, type MysqlStore, type MysqlStoreOptions } from '../../adapters/mysql/index.js';
import { requireService } from './services.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** The server tests use. @defaultValue mysql://root@127.0.0.1:3306 */
export const mysqlUrl = (): string => process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

/** The server URL with `database` as its path (keeping user, password and query). */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Connects once and disconnects; rejects when the server is not reachable. */
export async function probeMysql(): Promise<void> {
  const conn = await createConnection({ uri: withDatabase(mysqlUrl(), ''), connectTimeout: 2000 });
  await conn.end();
}

/** `requireService('MariaDB', probeMysql)`: true, false (skip allowed) or a throw. */
export const requireMysql = (): Promise<boolean> => requireService('MariaDB', probeMysql);

export interface TestDatabase {
  /** `MYSQL_URL` with this database as its path. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Create a fresh, empty database with a random name. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `ats_test_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  return {
    url: withDatabase(mysqlUrl(), name),
    name,
    drop: () => admin(`DROP DATABASE IF EXISTS \`${name}\``),
  };
}

/** A migrated store on a fresh database; `cleanup` closes it and drops the database. */
export async function createTestStore(
  opts: Omit<MysqlStoreOptions, 'url'> = {},
): Promise<{ store: MysqlStore; db: TestDatabase; cleanup(): Promise<void> }> {
  const db = await createTestDatabase();
  try {
    const store = await createMysqlStore({ ...opts, url: db.url });
    await store.migrate();
    return { store, db, cleanup: async () => { await store.close(); await db.drop(); } };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

async function admin(sql: string): Promise<void> {
  const conn = await createConnection({ uri: withDatabase(mysqlUrl(), ''), connectTimeout: 5000 });
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}

/**
 * A migrated store on a fresh database, reached through a TCP proxy the test
 * can cut (`proxy.cut()`: the server becomes unreachable without stopping it)
 * and restore. `cleanup` closes the store and the proxy and drops the database.
 */
export async function createProxiedTestStore(
  opts: Omit<MysqlStoreOptions, 'url'> = {},
): Promise<{ store: MysqlStore; db: TestDatabase; proxy: TcpProxy; cleanup(): Promise<void> }> {
  const db = await createTestDatabase();
  const target = new URL(mysqlUrl());
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 3306) });
  const via = new URL(withDatabase(mysqlUrl(), db.name));
  via.hostname = '127.0.0.1';
  via.port = String(proxy.port);
  try {
    const store = await createMysqlStore({ ...opts, url: via.toString() });
    await store.migrate();
    const cleanup = async () => {
      await store.close().catch(() => undefined);
      await proxy.close();
      await db.drop();
    };
    return { store, db, proxy, cleanup };
  } catch (err) {
    await proxy.close();
    await db.drop();
    throw err;
  }
}

/** What MariaDB's `ANALYZE FORMAT=JSON` of a statement says it did. */
export interface Analyzed {
  /** The rows each step read (`r_rows`). */
  read: number[];
  /** The index each step used (`key`). */
  keys: string[];
  /** The index parts each range used (`used_key_parts`). */
  keyParts: string[][];
  /** The whole analysis, compact, for a failure's message. */
  json: string;
}

/** MariaDB's `ANALYZE FORMAT=JSON` of `sql`, its params written into it (numbers as they are, the rest quoted). */
export async function analyzeOn(pool: MysqlStore['pool'], sql: string, params: readonly unknown[]): Promise<Analyzed> {
  let text = sql;
  for (const p of params) text = text.replace('?', typeof p === 'number' ? String(p) : `'${String(p)}'`);
  const [rows] = await pool.query(`ANALYZE FORMAT=JSON ${text}`);
  const json = JSON.stringify(JSON.parse((rows as { ANALYZE: string }[])[0]!.ANALYZE));
  return {
    read: [...json.matchAll(/"r_rows":\s*([\d.]+)/g)].map((m) => Number(m[1])),
    keys: [...json.matchAll(/"key":"(\w+)"/g)].map((m) => m[1]!),
    keyParts: [...json.matchAll(/"used_key_parts":(\[[^\]]*\])/g)].map((m) => JSON.parse(m[1]!) as string[]),
    json,
  };
}

/** The rows each step of `sql` read on MariaDB (`analyzeOn`'s `read`). */
export async function rowsReadBy(pool: MysqlStore['pool'], sql: string, params: readonly unknown[]): Promise<number[]> {
  return (await analyzeOn(pool, sql, params)).read;
}
