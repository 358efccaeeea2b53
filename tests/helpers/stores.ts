/**
 * Both SQL stores, each fresh (SQLite in memory, MariaDB in a database of its
 * own), for tests that run the same cases on each.
 */
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { AuditStore, JobStore, KeyStore, LimitStore, ProgressStore, QueueStore, ScheduleStore, WorkerRegistryStore } from '../../engine/ports.js';
import { createTestDatabase, requireMysql } from './mysql.js';

/** What both SQL stores are. */
export type TestStore = JobStore & ScheduleStore & ProgressStore & WorkerRegistryStore & LimitStore & KeyStore & AuditStore & QueueStore;

export interface StoreBackend {
  name: 'sqlite' | 'mysql';
  /** A new, not yet migrated store and how to close it (and drop its database). */
  open(): Promise<{ store: TestStore; cleanup(): Promise<void> }>;
}

/** Runs `fn` on a new, migrated store of `backend`, then closes it (and drops its database). */
export async function withMigratedStore(backend: StoreBackend, fn: (store: TestStore) => Promise<void>): Promise<void> {
  const { store, cleanup } = await backend.open();
  try {
    await store.migrate();
    await fn(store);
  } finally {
    await cleanup();
  }
}

export const STORE_BACKENDS: readonly StoreBackend[] = [
  {
    name: 'sqlite',
    open: async () => {
      const store = createSqliteStore({ file: ':memory:' });
      return { store, cleanup: () => store.close() };
    },
  },
  {
    name: 'mysql',
    open: async () => {
      await requireMysql();
      const db = await createTestDatabase();
      const store = await createMysqlStore({ url: db.url, poolSize: 4 });
      return { store, cleanup: async () => { await store.close(); await db.drop(); } };
    },
  },
];

/** Runs one write statement on either SQL store, as a test sets rows up that the store's own calls would not write. */
export async function runSql(store: JobStore, sql: string, params: readonly (string | number | null)[]): Promise<void> {
  if ('db' in store) (store as SqliteStore).db.prepare(sql).run(...params);
  else await (store as MysqlStore).pool.query(sql, [...params]);
}

/** Rewrites a job's stored snapshot as a deployment of another job machine version would have written it. */
export async function writeMachineVersion(store: JobStore, id: string, machine: number): Promise<void> {
  const read = (text: unknown) => JSON.stringify({ ...JSON.parse(String(text)), machine });
  if ('db' in store) {
    const { db } = store as SqliteStore;
    db.prepare('UPDATE jobs SET snapshot = ? WHERE id = ?').run(read((db.prepare('SELECT snapshot FROM jobs WHERE id = ?').get(id) as { snapshot: unknown }).snapshot), id);
  } else {
    const { pool } = store as MysqlStore;
    const [rows] = await pool.query('SELECT snapshot FROM jobs WHERE id = ?', [id]);
    await pool.query('UPDATE jobs SET snapshot = ? WHERE id = ?', [read((rows as { snapshot: unknown }[])[0]!.snapshot), id]);
  }
}

