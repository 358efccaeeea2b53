/**
 * What mysql2 has to say, through the process's Logger. The driver logs
 * little itself: a pooled connection that fails (the server restarted or went
 * away, a network cut) is an `error` event on that connection, after which
 * the pool drops it and opens a new one when needed; a protocol oddity is a
 * `warn` event. The store's own failures reach the log through the engine (the
 * loops' and the API's error lines), so these say only what happened to the
 * connections.
 */
import type { Pool } from 'mysql2/promise';
import { errorFields } from '../../engine/logger.js';
import type { Logger } from '../../engine/ports.js';
import { RepeatedLines } from '../../engine/repeated-lines.js';

interface ConnectionEvents {
  threadId?: number | null;
  on(event: 'error' | 'warn', listener: (err: Error & { code?: string }) => void): unknown;
}

/**
 * A server restart fails every pooled connection at once, each with the same
 * code: the first is a warning, the others like it within a minute debug
 * lines (`repeated` on the next warning says how many).
 */
export function logPoolEvents(pool: Pool, logger: Logger, now: () => number = Date.now): void {
  const said = new RepeatedLines(now);
  const line = (msg: string, conn: ConnectionEvents, err: Error & { code?: string }) =>
    said.warn(logger, `${msg}\0${err.code ?? ''}`, msg, { component: 'mysql2', threadId: conn.threadId ?? null, code: err.code, ...errorFields(err) });
  pool.on('connection', (connection) => {
    const conn = connection as unknown as ConnectionEvents;
    conn.on('error', (err) => line('mysql: a pooled connection failed; the pool opens a new one when needed', conn, err));
    conn.on('warn', (err) => line('mysql: driver warning', conn, err));
  });
}
