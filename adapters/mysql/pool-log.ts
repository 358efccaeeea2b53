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

interface ConnectionEvents {
  threadId?: number | null;
  on(event: 'error' | 'warn', listener: (err: Error & { code?: string }) => void): unknown;
}

export function logPoolEvents(pool: Pool, logger: Logger): void {
  pool.on('connection', (connection) => {
    const conn = connection as unknown as ConnectionEvents;
    const fields = (err: Error & { code?: string }) => ({ component: 'mysql2', threadId: conn.threadId ?? null, code: err.code, ...errorFields(err) });
    conn.on('error', (err) => logger.warn('mysql: a pooled connection failed; the pool opens a new one when needed', fields(err)));
    conn.on('warn', (err) => logger.warn('mysql: driver warning', fields(err)));
  });
}
