/**
 * Which mysql2 errors mean "the database cannot be reached or used now"
 * (an outage: the API answers 503 and the caller may retry), as opposed to
 * errors of the statement itself (a bug: 500) or lost races (retried).
 */
import { AtsError, type StoreUnavailableWhy } from '../../engine/errors.js';

/**
 * Errors that say the connection, not the statement, failed, by the `code`
 * mysql2 or Node's socket gives them. CR_* are client codes some drivers and
 * proxies send.
 */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
  'CR_SERVER_GONE_ERROR', // 2006 server has gone away
  'CR_SERVER_LOST', // 2013 lost connection during query
  'CR_CONNECTION_ERROR', 'CR_CONN_HOST_ERROR',
]);

/** The server errors that say it takes no writes now: a failover's (demoted.ts retires the pool's older connections on one). */
export const READ_ONLY_ERRNOS: ReadonlySet<number> = new Set([
  // Read-only: a failover in progress (the old primary demoted, the replica not yet promoted).
  1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only / super_read_only
  1836, // ER_READ_ONLY_MODE
  1874, // ER_INNODB_READ_ONLY
  1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: transaction_read_only set on the server or by a proxy (the store never asks for it)
]);

/** The server errors that say it is out of space. */
const FULL_ERRNOS: ReadonlySet<number> = new Set([
  1021, // ER_DISK_FULL
  1114, // ER_RECORD_FILE_FULL: the table is full (disk or tablespace)
]);

/**
 * Server error packets that say the server cannot take the statement now,
 * whatever it is: the same statement succeeds once the server is back to
 * normal (a failover ends, disk is freed). By number, as the server sends
 * them: mysql2 names errors from MySQL's list, so MariaDB's own (1927, 1969)
 * reach us with no `code` at all. MySQL and MariaDB agree on numbers below
 * 1900; MySQL has none in 1900-1999.
 */
const UNAVAILABLE_ERRNOS = new Set([
  // The server refuses connections or is going away.
  1040, // ER_CON_COUNT_ERROR: too many connections
  1203, // ER_TOO_MANY_USER_CONNECTIONS
  1053, // ER_SERVER_SHUTDOWN
  1927, // ER_CONNECTION_KILLED (MariaDB)
  1129, // ER_HOST_IS_BLOCKED
  1158, 1159, 1160, 1161, // ER_NET_READ_ERROR, ER_NET_READ_INTERRUPTED, ER_NET_ERROR_ON_WRITE, ER_NET_WRITE_INTERRUPTED
  ...READ_ONLY_ERRNOS,
  // Out of space or memory.
  ...FULL_ERRNOS,
  1037, // ER_OUTOFMEMORY
  1041, // ER_OUT_OF_RESOURCES
  // The statement was stopped by an operator or the server's own time bound, as our own timeout is.
  1317, // ER_QUERY_INTERRUPTED: KILL QUERY
  1969, // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
  3024, // ER_QUERY_TIMEOUT (MySQL max_execution_time)
]);

/**
 * The pool's own errors carry no code, only these messages (mysql2
 * lib/base/pool.js): the pool was ended, or callers queue for a connection
 * beyond `queueLimit`.
 */
const POOL_MESSAGES = new Set(['Pool is closed.', 'Queue limit reached.', 'No connections available.']);

/** True for an error that means the server is unreachable, or refuses statements for a while. */
export function isMysqlUnavailable(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof AtsError) return false;
  const e = err as Error & { code?: unknown; errno?: unknown; fatal?: unknown };
  // mysql2 marks every error that broke the connection itself `fatal`.
  if (e.fatal === true) return true;
  if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
  // Node's socket errors carry negative errnos: no clash with a server's numbers.
  if (typeof e.errno === 'number' && UNAVAILABLE_ERRNOS.has(e.errno)) return true;
  return e.code === undefined && POOL_MESSAGES.has(e.message);
}

/** `isMysqlUnavailable`, telling a caller more where it can: read only, or out of space (see `guardStore`). */
export function mysqlOutage(err: unknown): boolean | StoreUnavailableWhy {
  if (!isMysqlUnavailable(err)) return false;
  const { errno } = err as { errno?: unknown };
  if (typeof errno !== 'number') return true;
  return READ_ONLY_ERRNOS.has(errno) ? 'readOnly' : FULL_ERRNOS.has(errno) ? 'full' : true;
}
