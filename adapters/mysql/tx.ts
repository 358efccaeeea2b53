/**
 * Transactions on a pooled connection, and the retry of transactions that
 * lost a race (a version conflict, a deadlock, a lock wait timeout).
 */
import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import type { Outcome } from '../sql/program.js';
import type { Row } from '../sql/rows.js';
import type { Sql } from '../sql/statements.js';
import { VersionConflict } from '../sql/writes.js';

/** InnoDB chose this transaction as a deadlock victim (it was rolled back). */
const ER_LOCK_DEADLOCK = 1213;
/** innodb_lock_wait_timeout elapsed. */
const ER_LOCK_WAIT_TIMEOUT = 1205;

/** Tries of a transaction that keeps losing races before ATS_ERR_CONCURRENT_UPDATE. */
export const MAX_TRIES = 8;

/** Run one statement; a SELECT gives rows, DML its affected rows (mysql2 sets FOUND_ROWS: matched rows). */
export async function exec(conn: PoolConnection, s: Sql): Promise<Outcome> {
  const [res] = await conn.query(s.sql, s.params);
  return Array.isArray(res) ? { rows: res as Row[], changes: 0 } : { rows: [], changes: (res as ResultSetHeader).affectedRows };
}

/**
 * BEGIN, `fn`, `beforeCommit`, COMMIT on one pooled connection; ROLLBACK on
 * any throw. A connection whose ROLLBACK fails is destroyed, not returned to
 * the pool, so no later caller inherits an open transaction.
 */
export async function inTransaction<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>, beforeCommit?: () => void): Promise<T> {
  const conn = await pool.getConnection();
  let broken = false;
  try {
    await conn.beginTransaction();
    try {
      const result = await fn(conn);
      beforeCommit?.();
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => { broken = true; });
      throw err;
    }
  } finally {
    if (broken) conn.destroy();
    else conn.release();
  }
}

/** A lost race worth running the whole transaction again for. */
export function isTransient(err: unknown): boolean {
  if (err instanceof VersionConflict) return true;
  const errno = (err as { errno?: unknown } | null)?.errno;
  return errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT;
}

/**
 * Run `attempt` until it does not lose a race, up to `MAX_TRIES` times with a
 * short jittered pause (so the racers spread out), then give up with
 * ATS_ERR_CONCURRENT_UPDATE. Other errors pass through at once.
 */
export async function withRetry<T>(attempt: () => Promise<T>, tries = MAX_TRIES): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isTransient(err)) throw err;
      if (i >= tries) throw new AtsError('ATS_ERR_CONCURRENT_UPDATE', undefined, { cause: err });
      // Jitter in an adapter, not the engine: it only spreads retries, it is never replayed.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 5 * 2 ** i)));
    }
  }
}
