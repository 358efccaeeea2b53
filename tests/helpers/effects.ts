/**
 * The crash test's job handler, for child processes (`ATS_HANDLERS=<this file>`):
 * `crash.effect` records every invocation, fails about 30% of attempts
 * (decided by a hash of job id and attempt, so a run can be checked
 * afterwards), takes a little while (so kills land mid-handler), then records
 * its effect once per job: `INSERT IGNORE` keyed by `ctx.idempotencyKey`.
 *
 * Tables live in the test's database (`MYSQL_URL`); `createEffectTables`
 * makes them.
 */
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { createPool, type Pool, type ResultSetHeader } from 'mysql2/promise';
import type { HandlerRegistry } from '../../engine/handlers.js';
import type { Handler } from '../../engine/ports.js';

export const CRASH_JOB_TYPE = 'crash.effect';
/** Share of attempts that fail. */
export const FAILURE_RATE = 0.3;

/**
 * Tables of the crash test. Params: none.
 * - effects: the idempotent effect, one row per idempotency key (the job).
 * - invocations: one row per handler call (append).
 * - suppressed: effects a later attempt tried again and INSERT IGNORE dropped.
 */
export const CREATE_EFFECT_TABLES = [
  `CREATE TABLE effects (
    idempotency_key VARCHAR(64) NOT NULL PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL,
    attempt INT NOT NULL,
    at BIGINT NOT NULL
  )`,
  `CREATE TABLE invocations (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL,
    attempt INT NOT NULL,
    worker VARCHAR(64) NOT NULL,
    at BIGINT NOT NULL,
    KEY ix_invocations_job (job_id, attempt)
  )`,
  `CREATE TABLE suppressed (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL,
    attempt INT NOT NULL,
    at BIGINT NOT NULL
  )`,
];

/**
 * Append one handler call.
 * Params: job_id, attempt, worker, at
 */
const INSERT_INVOCATION = 'INSERT INTO invocations (job_id, attempt, worker, at) VALUES (?, ?, ?, ?)';

/**
 * Record the effect unless this key already has it.
 * Params: idempotency_key, job_id, attempt, at
 */
const INSERT_EFFECT = 'INSERT IGNORE INTO effects (idempotency_key, job_id, attempt, at) VALUES (?, ?, ?, ?)';

/**
 * Note an effect that was already there (a duplicate the key suppressed).
 * Params: job_id, attempt, at
 */
const INSERT_SUPPRESSED = 'INSERT INTO suppressed (job_id, attempt, at) VALUES (?, ?, ?)';

/** A number in [0, 1) from a job id and an attempt: the same every time. */
export function attemptHash(jobId: string, attempt: number): number {
  return createHash('sha256').update(`${jobId}:${attempt}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** Whether this attempt of this job fails (about `FAILURE_RATE` of them). */
export const failsAttempt = (jobId: string, attempt: number): boolean => attemptHash(jobId, attempt) < FAILURE_RATE;

export function effectHandler(pool: Pool, worker: string): Handler {
  return async (_payload, ctx) => {
    await pool.query(INSERT_INVOCATION, [ctx.jobId, ctx.attempt, worker, Date.now()]);
    // 0-150 ms of "work": long enough that a SIGKILL often lands between the effect and the outcome.
    await delay(Math.floor(attemptHash(ctx.jobId, -ctx.attempt) * 150), undefined, { signal: ctx.signal });
    if (failsAttempt(ctx.jobId, ctx.attempt)) throw new Error(`planned failure of attempt ${ctx.attempt}`);
    const [res] = await pool.query<ResultSetHeader>(INSERT_EFFECT, [ctx.idempotencyKey, ctx.jobId, ctx.attempt, Date.now()]);
    if (res.affectedRows === 0) await pool.query(INSERT_SUPPRESSED, [ctx.jobId, ctx.attempt, Date.now()]);
    return { attempt: ctx.attempt };
  };
}

/** `ATS_HANDLERS` entry point: registers `crash.effect` on the database in `MYSQL_URL`. */
export function register(registry: HandlerRegistry): void {
  const url = process.env.MYSQL_URL;
  if (!url) throw new Error('tests/helpers/effects.ts needs MYSQL_URL');
  const pool = createPool({ uri: url, connectionLimit: 4 });
  registry.register(CRASH_JOB_TYPE, effectHandler(pool, process.env.ATS_WORKER_ID ?? `pid-${process.pid}`));
}
