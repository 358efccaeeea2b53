/**
 * Connections opened before the server refused a write as read only. After a
 * failover the database's address leads to the new primary, but a connection
 * opened before it still leads to the demoted server. One that refuses a
 * statement is destroyed (timed-query.ts, tx.ts), but the pool hands its idle
 * connections out last in, first out: one left idle beneath the few in use
 * met its first statement seconds or minutes later, when traffic grew, and
 * failed it. Once any connection reports the server read only, every
 * connection opened before that moment is destroyed when next taken from the
 * pool instead of used, and the pool opens a new one, to wherever the address
 * leads now.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { READ_ONLY_ERRNOS } from './unavailable.js';

/** Per pool: how many read-only refusals it has met; each connection is stamped with that count when opened. */
const refusals = new WeakMap<Pool, { seen: number }>();
/** The refusals its pool had met when each (driver-level) connection opened. */
const openedAfter = new WeakMap<object, number>();

/** Stamps each connection `pool` opens from now on; call it before the pool's first statement. */
export function trackConnections(pool: Pool): void {
  const state = { seen: 0 };
  refusals.set(pool, state);
  pool.on('connection', (conn: object) => openedAfter.set(conn, state.seen));
}

/** Call with every error a pooled statement failed with: a read-only refusal retires the connections opened before it. */
export function noteFailure(pool: Pool, err: unknown): void {
  const errno = (err as { errno?: unknown } | null)?.errno;
  const state = refusals.get(pool);
  if (state && typeof errno === 'number' && READ_ONLY_ERRNOS.has(errno)) state.seen++;
}

/**
 * A connection of `pool` opened since its last read-only refusal; older ones met on the way are destroyed.
 * Rejects once `waitMs` passed without one (as unavailable: `ETIMEDOUT`). The pool's queue of callers is
 * unbounded, and a server that stops answering holds each connection it opens for the driver's connect
 * timeout: without a bound, callers queue behind one another for as long as there are more of them. A
 * connection that comes after its caller gave up goes back to the pool, to the next caller.
 */
export async function takeConnection(pool: Pool, waitMs: number): Promise<PoolConnection> {
  const state = refusals.get(pool);
  for (;;) {
    const conn = await connectionWithin(pool, waitMs);
    const opened = openedAfter.get(conn.connection);
    if (state === undefined || opened === undefined || opened === state.seen) return conn;
    conn.destroy();
  }
}

/** `pool.getConnection()`, or a rejection once `waitMs` passed; a connection that comes later is released. */
function connectionWithin(pool: Pool, waitMs: number): Promise<PoolConnection> {
  return new Promise((resolve, reject) => {
    let waiting = true;
    const timer = setTimeout(() => {
      waiting = false;
      reject(Object.assign(new Error(`no MySQL connection within ${waitMs} ms`), { code: 'ETIMEDOUT' }));
    }, waitMs);
    pool.getConnection().then(
      (conn) => {
        clearTimeout(timer);
        if (waiting) resolve(conn);
        else conn.release();
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (waiting) reject(err);
      },
    );
  });
}
