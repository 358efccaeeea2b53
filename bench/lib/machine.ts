/** A description of the machine and its services, for RESULTS.md and the JSON. */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import pg from 'pg';
import { mysqlServerUrl, postgresServerUrl, redisUrl, withDatabase } from './services.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  mariadb: string;
  kafka: string;
  redis: string;
  postgres: string;
  packages: Record<string, string>;
  loadAvgAtStart: number[];
}

const attempt = async (f: () => Promise<string>): Promise<string> => f().catch((e: Error) => `unavailable (${e.message})`);

export async function describeMachine(root: string): Promise<Machine> {
  const pkg = (name: string) => {
    try {
      return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  };
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
    mariadb: await attempt(async () => {
      const c = await createConnection({ uri: withDatabase(mysqlServerUrl(), ''), connectTimeout: 3000 });
      try {
        const [rows] = await c.query("SELECT VERSION() AS v, @@innodb_flush_log_at_trx_commit AS f, @@innodb_buffer_pool_size AS b");
        const r = (rows as Array<{ v: string; f: number; b: number }>)[0]!;
        return `${r.v} (innodb_flush_log_at_trx_commit=${r.f}, buffer pool ${Math.round(Number(r.b) / 2 ** 20)} MiB)`;
      } finally {
        await c.end();
      }
    }),
    kafka: kafkaVersion(root),
    redis: await attempt(async () => {
      const r = new Redis({ ...redisUrl(), lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await r.connect();
        const info = await r.info('server');
        const [, aof] = (await r.config('GET', 'appendonly')) as string[];
        const [, save] = (await r.config('GET', 'save')) as string[];
        return `${/redis_version:(\S+)/.exec(info)?.[1]} (as found: appendonly ${aof}, save "${save}")`;
      } finally {
        r.disconnect();
      }
    }),
    postgres: await attempt(async () => {
      const c = new pg.Client({ connectionString: withDatabase(postgresServerUrl(), 'postgres') });
      await c.connect();
      try {
        const v = (await c.query('SHOW server_version')).rows[0].server_version as string;
        const sc = (await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit as string;
        return `${v} (synchronous_commit ${sc})`;
      } finally {
        await c.end();
      }
    }),
    packages: Object.fromEntries(['bullmq', 'ioredis', 'pg-boss', 'pg', 'kafkajs', 'mysql2', 'better-sqlite3'].map((n) => [n, pkg(n)])),
    loadAvgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function kafkaVersion(root: string): string {
  try {
    const jar = readdirSync(join(root, '.cache/kafka/libs')).find((f) => /^kafka_2\.\d+-[\d.]+\.jar$/.test(f));
    return jar ? `Apache Kafka ${/-([\d.]+)\.jar$/.exec(jar)![1]} (KRaft, 1 broker, scripts/kafka/kafka.sh)` : 'unknown';
  } catch {
    return 'unknown';
  }
}
