/**
 * Opening the mysql2 pool, failing fast (with the URL, never its password)
 * when the server cannot be reached.
 */
import { createPool, type Pool, type PoolOptions as PoolOptionsOfDriver } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import type { Logger } from '../../engine/ports.js';
import { messageOf } from '../../engine/thrown.js';
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
  /** What each connection runs first, by the server's `VERSION()`. @defaultValue {@link sessionSetup} (tests name others) */
  sessionSetup?: (version: string) => readonly string[];
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
  let pool: Pool;
  try {
    pool = makePool(o);
  } catch (err) {
    // The driver checks some options (an ssl profile) as it makes the pool: the URL's to change, not a server to wait for.
    throw new AtsError('ATS_ERR_CONFIG', `the driver refuses its options: ${err instanceof Error ? messageOf(err) : String(err)} (${redactUrl(o.url)})`, { cause: err });
  }
  trackConnections(pool);
  if (o.logger) logPoolEvents(pool, o.logger);
  let session: { sql_mode?: unknown; charset?: unknown; max_packet?: unknown; version?: unknown };
  try {
    const [rows] = await withTimeout(pool.query(SESSION_SETTINGS), o.connectTimeoutMs, () => new Error(`no connection within ${o.connectTimeoutMs} ms`));
    session = (rows as Array<typeof session>)[0] ?? {};
    // The connection open now (the pool's only one) runs them here; every later one before its first statement.
    const setup = await setUpFirst(pool, (o.sessionSetup ?? sessionSetup)(String(session.version ?? '')), o.logger);
    if (setup.length > 0) setUpLater(pool, setup, o.logger);
  } catch (err) {
    // Not awaited: ending a pool whose connect hangs would hang too.
    pool.end().catch(() => {});
    throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', unreachable(o.url, err), { cause: err });
  }
  const problem = unsupportedSession(String(session.sql_mode ?? ''), String(session.charset ?? ''));
  if (problem) {
    pool.end().catch(() => {});
    throw new AtsError('ATS_ERR_CONFIG', `MySQL at ${redactUrl(o.url)} ${problem}, which the store does not support`);
  }
  // Not read (NULL from a proxy, say): not refused.
  const small = smallPacket(session.max_packet == null ? Number.NaN : Number(session.max_packet));
  if (small) {
    pool.end().catch(() => {});
    throw new AtsError('ATS_ERR_CONFIG', `MySQL at ${redactUrl(o.url)} ${small}`);
  }
  return pool;
}

/** The driver's pool of `o` (no connection yet); throws when the driver refuses an option. */
function makePool(o: PoolOptions): Pool {
  return createPool({
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
}

/** mysql2's code for a SET of a variable the server does not have. */
const UNKNOWN_VARIABLE = 'ER_UNKNOWN_SYSTEM_VARIABLE';

/**
 * Runs `setup` on the pool's one connection, and answers the statements every
 * later connection runs too. A setting the server does not know (a MySQL 8
 * build or look-alike without `information_schema_stats_expiry`) is left unset
 * on every connection, said once: the cache such a variable turns off is one
 * such a server does not have (see `sessionSetup`). Any other refusal is the
 * caller's to throw: the session is refused.
 */
async function setUpFirst(pool: Pool, setup: readonly string[], logger: Logger | undefined): Promise<string[]> {
  const kept: string[] = [];
  for (const sql of setup) {
    try {
      await pool.query(sql);
      kept.push(sql);
    } catch (err) {
      if ((err as { code?: unknown }).code !== UNKNOWN_VARIABLE) throw err;
      logger?.info('mysql: the server does not know a session setting: left unset on every connection', { sql, code: UNKNOWN_VARIABLE, ...errorFields(err) });
    }
  }
  return kept;
}

/**
 * Each connection the pool opens later runs `setup` before its first
 * statement (a connection's commands go in order). One it refuses (the
 * server behind the URL changed since the first, or the connection failed) is
 * said, not swallowed; the connection goes on without it: its caller's
 * statement is queued behind the setting already, and a connection that
 * failed fails that statement too.
 */
function setUpLater(pool: Pool, setup: readonly string[], logger: Logger | undefined): void {
  pool.on('connection', (connection) => {
    // The driver hands its callback-style connection to this event (as pool-log.ts reads it too).
    const conn = connection as unknown as { threadId?: number | null; query(sql: string, done: (err: unknown) => void): unknown };
    for (const sql of setup) {
      conn.query(sql, (err) => {
        if (err === null || err === undefined) return;
        logger?.warn('mysql: a new connection refused a session setting; it goes on without it', {
          sql, threadId: conn.threadId ?? null, code: (err as { code?: unknown }).code, ...errorFields(err),
        });
      });
    }
  });
}

/**
 * Why the first statement failed, for people: a server that answered with an
 * error (an unknown database, a refused user: the driver's error has the
 * server's `sqlState`) was reached, and is not called unreachable.
 */
export function unreachable(url: string, err: unknown): string {
  // Node's connect throws an AggregateError without a message of its own when every address of the host refused.
  const why = err instanceof Error ? messageOf(err) : String(err);
  const answered = typeof (err as { sqlState?: unknown } | null)?.sqlState === 'string';
  return answered ? `MySQL at ${redactUrl(url)} refused the session: ${why}` : `MySQL is not reachable at ${redactUrl(url)}: ${why}`;
}

/**
 * What each connection sets first on the server of `version` (`VERSION()`).
 * MySQL from 8.0.3 on answers `information_schema.TABLES.AUTO_INCREMENT` from
 * a cache of up to `information_schema_stats_expiry` seconds (a day by
 * default), which the highest event id ever issued is read from
 * (`Dialect.lastIssuedId`, for the stream's cursor check): a stale value would
 * refuse a real cursor whose event was deleted since. A session with the
 * expiry at 0 reads the table's counter itself. MariaDB (no such cache, no
 * such variable) and older MySQL set nothing; a server that gives such a
 * version yet does not know the variable has it left unset (`setUpFirst`).
 */
export function sessionSetup(version: string): string[] {
  if (/mariadb/i.test(version)) return [];
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return [];
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const cached = major > 8 || (major === 8 && (minor > 0 || patch >= 3));
  return cached ? ['SET SESSION information_schema_stats_expiry = 0'] : [];
}

/**
 * The least `max_allowed_packet` the store runs on: MariaDB's default. One
 * statement may hold a request body of up to 4 MiB as SQL text (escaped, with
 * the job's other columns, or a batch's rows grouped up to 4 MiB of values),
 * and a workflow's row up to 15 MiB (engine/workflows.ts
 * `MAX_START_ROW_SQL_BYTES`). Under it, such a request fails where the server
 * refuses or drops the statement (a 500 or a 503 the client retries for ever).
 */
export const MIN_MAX_ALLOWED_PACKET = 16 * 1024 * 1024;

/** Why a server's `max_allowed_packet` is too small for the store, or null (also when it was not read). */
export function smallPacket(maxPacket: number): string | null {
  if (!Number.isFinite(maxPacket) || maxPacket >= MIN_MAX_ALLOWED_PACKET) return null;
  return `has max_allowed_packet at ${maxPacket} bytes, below the ${MIN_MAX_ALLOWED_PACKET} (16 MiB) one statement of the store may take; `
    + 'raise it on the server (max_allowed_packet = 16M in its settings, or SET GLOBAL max_allowed_packet = 16777216) and start again';
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
