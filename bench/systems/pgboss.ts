/**
 * pg-boss on the machine's PostgreSQL (database `ats_bench`, a schema of its
 * own per run), producer and worker in the benchmark process. Settings from
 * pg-boss's docs for throughput: `insert()` for bulk submits, `send()` for
 * one; `work()` fetching `batchSize` jobs per poll (the batch = the worker
 * concurrency) with per-job results, `burstWhenBatchFull` (fetch again at
 * once while batches come back full), the queue's `notify` with the
 * instance's `useListenNotify` (workers woken by NOTIFY instead of waiting
 * for the poll), the minimum polling interval (0.5 s). Start and done times
 * are `started_on` / `completed_on`, stamped by PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import { PgBoss } from 'pg-boss';
import pg from 'pg';
import { runBenchJob, runId, type BenchJob, type CaseOptions, type Driver, type JobTimes } from '../lib/driver.js';
import { postgresServerUrl, withDatabase } from '../lib/services.js';

export const PGBOSS_DATABASE = 'ats_bench';

/** Creates the `ats_bench` database once (trust auth on 127.0.0.1, user postgres). */
async function ensureDatabase(): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(postgresServerUrl(), 'postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [PGBOSS_DATABASE]);
    if (!rowCount) await client.query(`CREATE DATABASE ${PGBOSS_DATABASE}`);
  } finally {
    await client.end();
  }
}

export async function pgboss(opts: CaseOptions): Promise<Driver> {
  await ensureDatabase();
  const schema = `bench_${runId()}`;
  const name = 'bench';
  const boss = new PgBoss({ connectionString: withDatabase(postgresServerUrl(), PGBOSS_DATABASE), schema, useListenNotify: true });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue(name, { notify: true, retryLimit: 1, retryDelay: 0 });
  // pg-boss hands the handler a batch; "fail once" is kept here (a job's retry count is metadata).
  const failedOnce = new Set<number>();
  await boss.work<BenchJob>(name, {
    batchSize: opts.concurrency, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true, perJobResults: true,
  }, async (jobs) => Promise.all(jobs.map(async (job) => {
    try {
      runBenchJob(job.data, failedOnce.has(job.data.i) ? 2 : 1);
      return { id: job.id, status: 'completed' as const };
    } catch {
      failedOnce.add(job.data.i);
      return { id: job.id, status: 'failed' as const };
    }
  })));
  const db = boss.getDb();
  const sql = async <T>(text: string, values: unknown[] = []) => (await db.executeSql(text, values)).rows as T[];
  return {
    settings: `insert() (${opts.bulkSize} per call), send() for one; one work() with batchSize ${opts.concurrency} (= concurrency), perJobResults, burstWhenBatchFull, pollingIntervalSeconds 0.5; queue notify + useListenNotify; retryLimit 1, retryDelay 0; PostgreSQL defaults (synchronous_commit on)`,
    servers: ['postgres'],
    processes: () => ({}),
    submitBulk: async (jobs) => {
      // Ids made here, so insert() need not return them (returnId costs pg-boss a RETURNING).
      const rows = jobs.map((data) => ({ id: randomUUID(), data }));
      await boss.insert(name, rows);
      return rows.map((r) => r.id);
    },
    submitOne: async (job) => (await boss.send(name, job))!,
    countFinished: async () => Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.job WHERE name = $1 AND state IN ('completed', 'failed')`, [name]))[0]!.n),
    times: async () => {
      const rows = await sql<{ id: string; s: string; c: string }>(
        `SELECT id, (extract(epoch FROM started_on) * 1000)::float8 AS s, (extract(epoch FROM completed_on) * 1000)::float8 AS c
         FROM ${schema}.job WHERE name = $1 AND state = 'completed'`, [name]);
      return new Map<string, JobTimes>(rows.map((r) => [r.id, { started: Number(r.s), done: Number(r.c) }]));
    },
    async stop() {
      await boss.stop({ graceful: true, timeout: 10_000 });
      const client = new pg.Client({ connectionString: withDatabase(postgresServerUrl(), PGBOSS_DATABASE) });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
    },
  };
}
