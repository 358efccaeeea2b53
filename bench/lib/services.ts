/**
 * The machine's services, as the benchmark finds them: where they are
 * (environment overrides), a throwaway MariaDB database per run, Kafka topic
 * cleanup.
 */
import { createConnection } from 'mysql2/promise';

/** MariaDB server URL without a database. @defaultValue mysql://root@127.0.0.1:3306 */
export const mysqlServerUrl = (): string => process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export { kafkaBrokers } from '../../tests/helpers/kafka.js';
export const redisUrl = (): { host: string; port: number } => {
  const u = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  return { host: u.hostname, port: Number(u.port || 6379) };
};
/** PostgreSQL server URL without a database. */
export const postgresServerUrl = (): string => process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432';

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs one statement on the MariaDB server (no database selected). */
export async function mysqlAdmin(sql: string): Promise<void> {
  const conn = await createConnection({ uri: withDatabase(mysqlServerUrl(), ''), connectTimeout: 5000 });
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}

/** A fresh `ats_bench_<id>` database; `drop()` removes it. */
export async function createBenchDatabase(id: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `ats_bench_${id}`;
  await mysqlAdmin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  return { name, url: withDatabase(mysqlServerUrl(), name), drop: () => mysqlAdmin(`DROP DATABASE IF EXISTS \`${name}\``) };
}

/** Deletes the topics whose names start with `prefix` (one run's): the tests' helper serves here too. */
export { deleteTopicsWithPrefix } from '../../tests/helpers/kafka.js';
