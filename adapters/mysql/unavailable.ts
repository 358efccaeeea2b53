/**
 * Which mysql2 errors mean "the database cannot be reached or used now"
 * (an outage: the API answers 503 and the caller may retry), as opposed to
 * errors of the statement itself (a bug: 500) or lost races (retried).
 */
import { AtsError } from '../../engine/errors.js';

/**
 * Server errors that say the connection, not the statement, failed. mysql2
 * names them by `code`; CR_* are client codes some drivers and proxies send.
 */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR', // 1040 too many connections
  'ER_TOO_MANY_USER_CONNECTIONS', // 1203
  'ER_SERVER_SHUTDOWN', // 1053
  'ER_CONNECTION_KILLED', // 1927 (MariaDB)
  'ER_HOST_IS_BLOCKED',
  'ER_NET_READ_INTERRUPTED', 'ER_NET_WRITE_INTERRUPTED', 'ER_NET_READ_ERROR', 'ER_NET_ERROR_ON_WRITE',
  'CR_SERVER_GONE_ERROR', // 2006 server has gone away
  'CR_SERVER_LOST', // 2013 lost connection during query
  'CR_CONNECTION_ERROR', 'CR_CONN_HOST_ERROR',
]);

/**
 * The pool's own errors carry no code, only these messages (mysql2
 * lib/base/pool.js): the pool was ended, or callers queue for a connection
 * beyond `queueLimit`.
 */
const POOL_MESSAGES = new Set(['Pool is closed.', 'Queue limit reached.', 'No connections available.']);

/** True for an error that means the server is unreachable or refuses connections. */
export function isMysqlUnavailable(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof AtsError) return false;
  const e = err as Error & { code?: unknown; fatal?: unknown };
  // mysql2 marks every error that broke the connection itself `fatal`.
  if (e.fatal === true) return true;
  if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
  return e.code === undefined && POOL_MESSAGES.has(e.message);
}
