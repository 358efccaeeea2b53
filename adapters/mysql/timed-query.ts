/**
 * Statements that wait a bounded time for the server's answer. A server that
 * stops answering without closing the connection (a network partition, a
 * frozen host) would otherwise hold every caller for as long as TCP keeps the
 * socket open: hours. mysql2's own `timeout` answers the caller but leaves
 * the connection waiting for the lost reply, so a connection that timed out
 * is destroyed, never returned to the pool.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { noteFailure, takeConnection } from './demoted.js';
import { isMysqlUnavailable } from './unavailable.js';

/**
 * Above InnoDB's default lock wait (`innodb_lock_wait_timeout`, 50 s), so a
 * statement queued behind a row lock still ends as the lost race it is (and
 * is retried), not as an outage.
 */
export const DEFAULT_QUERY_TIMEOUT_MS = 60_000;

/** mysql2's code for a statement whose `timeout` elapsed; unavailable.ts counts it an outage. */
const TIMED_OUT = 'PROTOCOL_SEQUENCE_TIMEOUT';

/** One round trip on `conn`: its result, or a rejection once `timeoutMs` passed without an answer. */
export async function queryOn(conn: PoolConnection, sql: string, timeoutMs: number): Promise<unknown> {
  try {
    return (await conn.query({ sql, timeout: timeoutMs }))[0];
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code !== TIMED_OUT) throw err;
    conn.destroy();
    throw Object.assign(new Error(`MySQL did not answer within ${timeoutMs} ms`, { cause: err }), { code: TIMED_OUT });
  }
}

/**
 * One round trip on a pooled connection, as `queryOn`. A connection whose
 * server refused the statement as unavailable (read only, out of space, going
 * away: `isMysqlUnavailable`) is destroyed, not returned to the pool: after a
 * failover it still leads to the demoted server, and the pool, which keeps its
 * idle connections, would hand it out again for as long as traffic keeps it busy;
 * a read-only refusal retires the pool's older connections too (demoted.ts).
 */
export async function queryPool(pool: Pool, sql: string, timeoutMs: number): Promise<unknown> {
  const conn = await takeConnection(pool, timeoutMs);
  let unusable = false;
  try {
    return await queryOn(conn, sql, timeoutMs);
  } catch (err) {
    unusable = isMysqlUnavailable(err);
    noteFailure(pool, err);
    throw err;
  } finally {
    // Either is a no-op for a connection `queryOn` destroyed.
    if (unusable) conn.destroy();
    else conn.release();
  }
}
