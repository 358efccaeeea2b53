/**
 * Opening the mysql2 pool, failing fast (with the URL, never its password)
 * when the server cannot be reached.
 */
import { createPool, type Pool, type PoolOptions as PoolOptionsOfDriver } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import type { Logger } from '../../engine/ports.js';
import { withTimeout } from '../../engine/with-timeout.js';
import { trackConnections } from './demoted.js';
import { logPoolEvents } from './pool-log.js';
import { sqlText } from './sql-text.js';
import { SESSION_SETTINGS } from './statements.js';

export interface PoolOptions {
  url: string;
  poolSize: number;
  connectTimeoutMs: number;
  /** Where the pool's connection failures and driver warnings go. @defaultValue nowhere */
  logger?: Logger;
}

/** The URL with its password masked, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable MySQL URL>';
  }
}

/** The pool's `queryFormat`: text without values goes as it is. */
export function formatQuery(sql: string, values: unknown): string {
  return Array.isArray(values) && values.length > 0 ? sqlText(sql, values) : sql;
}

/** A pool whose first connection worked; rejects within about `connectTimeoutMs` otherwise. */
export async function openPool(o: PoolOptions): Promise<Pool> {
  const pool = createPool({
    uri: o.url,
    connectionLimit: o.poolSize,
    connectTimeout: o.connectTimeoutMs,
    charset: 'UTF8MB4_GENERAL_CI',
    // Epoch-ms BIGINTs and ids fit in a double: numbers, not strings.
    supportBigNumbers: true,
    bigNumberStrings: false,
    enableKeepAlive: true,
    // A transition's statements go as one multi-statement (one round trip
    // instead of one per statement). Safe only because every statement is
    // built from constants with `?` placeholders and its values become
    // escaped literals (sql-text.ts): never splice a value into SQL text.
    multipleStatements: true,
    // No call-site stack captured for every query (an Error's worth of work per
    // statement on the hot path); a failed query still says what failed, and
    // the store's own errors carry it as their cause.
    trace: false,
    // The store sends finished text (sql-text.ts); the driver's own formatting
    // would still scan every statement for placeholders, values or not (3% of
    // the scheduler's CPU, the outbox and snapshot JSON being long). A call
    // with values (migrations, tests) is formatted by the same sqlText.
    queryFormat: formatQuery as unknown as PoolOptionsOfDriver['queryFormat'],
  });
  trackConnections(pool);
  if (o.logger) logPoolEvents(pool, o.logger);
  let session: { sql_mode?: unknown; charset?: unknown };
  try {
    const [rows] = await withTimeout(pool.query(SESSION_SETTINGS), o.connectTimeoutMs, () => new Error(`no connection within ${o.connectTimeoutMs} ms`));
    session = (rows as Array<typeof session>)[0] ?? {};
  } catch (err) {
    // Not awaited: ending a pool whose connect hangs would hang too.
    pool.end().catch(() => {});
    const why = err instanceof Error ? err.message : String(err);
    throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', `MySQL is not reachable at ${redactUrl(o.url)}: ${why}`, { cause: err });
  }
  const problem = unsupportedSession(String(session.sql_mode ?? ''), String(session.charset ?? ''));
  if (problem) {
    pool.end().catch(() => {});
    throw new AtsError('ATS_ERR_CONFIG', `MySQL at ${redactUrl(o.url)} ${problem}, which the store does not support`);
  }
  return pool;
}

/**
 * Why a session cannot take the store's literals (sql-text.ts), or null: they
 * escape with backslashes, which NO_BACKSLASH_ESCAPES turns into plain
 * characters, and are sent as UTF-8, which the server must read as UTF-8.
 */
export function unsupportedSession(sqlMode: string, charset: string): string | null {
  if (/\bNO_BACKSLASH_ESCAPES\b/i.test(sqlMode)) return 'runs with sql_mode NO_BACKSLASH_ESCAPES';
  if (!/^utf8(mb4|mb3)?$/i.test(charset)) return `reads client text as ${charset || 'an unknown character set'}`;
  return null;
}
