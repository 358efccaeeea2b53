/**
 * The SQL floor: on the same MariaDB, the least SQL one job's lifecycle
 * needs, batched as well as we can: insert (multi-row, `bulk` per
 * statement), claim (SELECT ... FOR UPDATE SKIP LOCKED + UPDATE by id, 500
 * per transaction), complete (UPDATE by id, 500 per transaction), with two
 * claim/complete loops running beside the inserts. No history, no outbox, no
 * snapshot: the scheduler writes those on purpose, so this is the bound, not
 * a target. Prints one `BENCH_RESULT {...}` line.
 *
 *   node --import tsx bench/limits/sql-floor.ts '{"jobs":20000,"bulkSize":1000}'
 */
import { createPool, type Pool, type PoolConnection } from 'mysql2/promise';
import { makeJobs, runId } from '../lib/driver.js';
import { CpuMeter, serverPids } from '../lib/proc.js';
import { createBenchDatabase } from '../lib/services.js';
import { round } from '../lib/stats.js';

/** The table: what a queue needs of a job, nothing more. */
const CREATE = `CREATE TABLE floor_jobs (
  id BIGINT NOT NULL PRIMARY KEY,
  state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempt INT NOT NULL,
  payload LONGTEXT NOT NULL,
  lease_until BIGINT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  KEY ix_floor_state_id (state, id)
) ENGINE=InnoDB`;

/** Insert jobs. Params: per job id, payload, created_at, updated_at. */
const insert = (n: number) => `INSERT INTO floor_jobs (id, state, attempt, payload, created_at, updated_at) VALUES ${Array(n).fill("(?, 'pending', 0, ?, ?, ?)").join(', ')}`;
/** Claim up to ? pending jobs, oldest first, skipping rows another claimer holds. Params: limit */
const CLAIM = "SELECT id FROM floor_jobs WHERE state = 'pending' ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
/** Mark claimed jobs running. Params: lease_until, updated_at, then the ids. */
const start = (n: number) => `UPDATE floor_jobs SET state = 'running', attempt = attempt + 1, lease_until = ?, updated_at = ? WHERE id IN (${Array(n).fill('?').join(', ')})`;
/** Mark jobs done. Params: updated_at, then the ids. */
const complete = (n: number) => `UPDATE floor_jobs SET state = 'done', lease_until = NULL, updated_at = ? WHERE id IN (${Array(n).fill('?').join(', ')})`;

/** A transaction, run again when InnoDB picks it as a deadlock victim (as the scheduler's store does). */
async function tx<T>(pool: Pool, fn: (c: PoolConnection) => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await once(pool, fn);
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if (i >= 8 || (errno !== 1213 && errno !== 1205)) throw err;
      deadlocks++;
    }
  }
}

let deadlocks = 0;

async function once<T>(pool: Pool, fn: (c: PoolConnection) => Promise<T>): Promise<T> {
  const c = await pool.getConnection();
  try {
    await c.beginTransaction();
    const r = await fn(c);
    await c.commit();
    return r;
  } catch (err) {
    await c.rollback().catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as { jobs?: number; bulkSize?: number; claimBatch?: number; loops?: number };
  const n = input.jobs ?? 20_000;
  const bulk = input.bulkSize ?? 1000;
  const claimBatch = input.claimBatch ?? 500;
  const loops = input.loops ?? 2;
  const db = await createBenchDatabase(`${runId()}_floor`);
  const pool = createPool({ uri: db.url, connectionLimit: loops + 2 });
  try {
    await pool.query(CREATE);
    const jobs = makeJobs(n, 0);
    const meter = new CpuMeter(() => ({ bench: [process.pid], ...serverPids(['mariadb']) }));
    meter.start();
    const t0 = Date.now();
    let inserted = 0;
    let done = 0;
    const producer = (async () => {
      for (let k = 0; k < n; k += bulk) {
        const part = jobs.slice(k, k + bulk);
        const now = Date.now();
        await pool.query(insert(part.length), part.flatMap((j) => [j.i + 1, JSON.stringify(j), now, now]));
        inserted += part.length;
      }
    })();
    const loop = async () => {
      while (done < n) {
        const ids = await tx(pool, async (c) => {
          const [rows] = await c.query(CLAIM, [claimBatch]);
          const got = (rows as Array<{ id: number }>).map((r) => r.id);
          if (got.length > 0) await c.query(start(got.length), [Date.now() + 30_000, Date.now(), ...got]);
          return got;
        });
        if (ids.length === 0) {
          if (inserted >= n && done >= n) break;
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        await tx(pool, (c) => c.query(complete(ids.length), [Date.now(), ...ids]));
        done += ids.length;
      }
    };
    await Promise.all([producer, ...Array.from({ length: loops }, loop)]);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = meter.stop();
    const result = {
      jobs: n, seconds: round(seconds, 2), jobsPerSec: round(n / seconds, 0),
      settings: `MariaDB, InnoDB defaults (innodb_flush_log_at_trx_commit as the server has it); inserts of ${bulk} rows per statement; ${loops} claim/complete loops, ${claimBatch} jobs per claim (SELECT ... FOR UPDATE SKIP LOCKED + UPDATE) and per complete (UPDATE)`,
      cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 2)])),
      cpuPer1k: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / n, 3)])),
      deadlocksRetried: deadlocks,
      peakMiB: { bench: round(process.resourceUsage().maxRSS / 1024, 0) },
    };
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await pool.end();
    await db.drop();
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`sql floor failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
