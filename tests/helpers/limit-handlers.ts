/**
 * The limits test's job handler, for child processes (`ATS_HANDLERS=<this file>`):
 * `test.limited` records each attempt in the test's database (`MYSQL_URL`):
 * a row in `limit_runs` when its handler starts and when it ends, and a
 * gauge per `payload.gauge` counting the handlers that run at once, with
 * the most ever seen. The gauge is moved by the database, one statement at
 * a time, so it needs no clock: a handler starts after its claim is
 * written and ends before its outcome is, so the gauge never reads more
 * than the attempts the store counted against the key.
 *
 * `payload.ms`: how long the handler works. `payload.block`: it never
 * returns (until its attempt is aborted), holding its slot; for kills.
 * `createLimitTables` makes the tables.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { createPool, type Pool } from 'mysql2/promise';
import type { HandlerRegistry } from '../../engine/handlers.js';
import type { Handler } from '../../engine/ports.js';

export const LIMITED_JOB_TYPE = 'test.limited';

export interface LimitedJob {
  /** The gauge this handler counts in. */
  gauge: string;
  ms: number;
  block?: boolean;
}

/**
 * Tables of the limits test. Params: none.
 * - limit_runs: one row per handler call, its start and (once it returned) its end, epoch ms.
 * - limit_gauges: per gauge, the handlers running now and the most that ever ran at once.
 */
export const CREATE_LIMIT_TABLES = [
  `CREATE TABLE limit_runs (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL,
    attempt INT NOT NULL,
    gauge VARCHAR(64) NOT NULL,
    worker VARCHAR(64) NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NULL
  )`,
  `CREATE TABLE limit_gauges (
    gauge VARCHAR(64) NOT NULL PRIMARY KEY,
    running INT NOT NULL,
    peak INT NOT NULL
  )`,
];

/**
 * One more handler of the gauge runs. `peak` is assigned first, from the old
 * `running`, so the statement means the same whether the server assigns left
 * to right or all at once. Params: gauge.
 */
const ENTER = `INSERT INTO limit_gauges (gauge, running, peak) VALUES (?, 1, 1)
  ON DUPLICATE KEY UPDATE peak = GREATEST(peak, running + 1), running = running + 1`;
/** One handler of the gauge less. Params: gauge. */
const LEAVE = 'UPDATE limit_gauges SET running = running - 1 WHERE gauge = ?';
/** Params: job_id, attempt, gauge, worker, started_at. */
const INSERT_RUN = 'INSERT INTO limit_runs (job_id, attempt, gauge, worker, started_at) VALUES (?, ?, ?, ?, ?)';
/** Params: ended_at, id. */
const END_RUN = 'UPDATE limit_runs SET ended_at = ? WHERE id = ?';

export function limitedHandler(pool: Pool, worker: string): Handler {
  return async (input, ctx) => {
    const payload = input as LimitedJob;
    await pool.query(ENTER, [payload.gauge]);
    const [res] = await pool.query(INSERT_RUN, [ctx.jobId, ctx.attempt, payload.gauge, worker, Date.now()]);
    const id = (res as { insertId: number }).insertId;
    if (payload.block) await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    await delay(payload.ms, undefined, { signal: ctx.signal });
    await pool.query(END_RUN, [Date.now(), id]);
    await pool.query(LEAVE, [payload.gauge]);
    return null;
  };
}

/** `ATS_HANDLERS` entry point: registers `test.limited` on the database in `MYSQL_URL`. */
export function register(registry: HandlerRegistry): void {
  const url = process.env.MYSQL_URL;
  if (!url) throw new Error('tests/helpers/limit-handlers.ts needs MYSQL_URL');
  const pool = createPool({ uri: url, connectionLimit: 8 });
  registry.register(LIMITED_JOB_TYPE, limitedHandler(pool, process.env.ATS_WORKER_ID ?? `pid-${process.pid}`));
}
