/**
 * Transactions on a pooled connection, and the retry of transactions that
 * lost a race (a version conflict, a deadlock, a lock wait timeout).
 */
import { performance } from 'node:perf_hooks';
import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import type { ConflictReason } from '../../engine/metrics.js';
import type { Outcome } from '../sql/program.js';
import type { Row } from '../sql/rows.js';
import type { Sql } from '../sql/statements.js';
import { VersionConflict } from '../sql/writes.js';
import { noteFailure, takeConnection } from './demoted.js';
import { sqlText } from './sql-text.js';
import { DEFAULT_QUERY_TIMEOUT_MS, queryOn } from './timed-query.js';
import { isMysqlUnavailable } from './unavailable.js';

/** InnoDB chose this transaction as a deadlock victim (it was rolled back). */
const ER_LOCK_DEADLOCK = 1213;
/** innodb_lock_wait_timeout elapsed. */
const ER_LOCK_WAIT_TIMEOUT = 1205;
/** Raised by `guardChangedRows` (statements.ts) alone: a checked statement changed other rows than it expected. */
const ER_TOO_MANY_ROWS = 1172;
/**
 * A locking read met a row changed since the transaction's read view
 * (MariaDB with innodb_snapshot_isolation, REPEATABLE READ): a lost race.
 */
const ER_CHECKREAD = 1020;

const START_TRANSACTION = 'START TRANSACTION';
/** Applies to the next transaction of the session only. */
const SET_READ_COMMITTED = 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED';

/** Tries of a transaction that keeps losing races before ATS_ERR_CONCURRENT_UPDATE. */
export const MAX_TRIES = 8;

/**
 * Run one statement; a SELECT gives rows, DML its affected rows (mysql2 sets
 * FOUND_ROWS: matched rows). A multi-statement (`s.multi`, DML only) gives
 * each statement's affected rows in `each`.
 */
async function exec(conn: PoolConnection, s: Sql, timeoutMs: number): Promise<Outcome> {
  return outcomeOf(await send(conn, sqlText(s.sql, s.params), timeoutMs), s.multi === true);
}

/**
 * One round trip (see timed-query.ts); a `guardChangedRows` that failed (the
 * statements after it, a COMMIT among them, did not run) rejects as the
 * VersionConflict it is.
 */
async function send(conn: PoolConnection, text: string, timeoutMs: number): Promise<unknown> {
  try {
    return await queryOn(conn, text, timeoutMs);
  } catch (err) {
    if ((err as { errno?: unknown } | null)?.errno !== ER_TOO_MANY_ROWS) throw err;
    throw new VersionConflict(null, 'a checked statement changed other rows than it expected (guardChangedRows)', { cause: err });
  }
}

/** A driver result as an Outcome: rows of a SELECT, changed rows of DML, each statement's of a multi-statement. */
export function outcomeOf(res: unknown, multi: boolean): Outcome {
  if (multi) {
    // One statement alone comes back as a single header, several as an array of them.
    const each = (Array.isArray(res) ? (res as ResultSetHeader[]) : [res as ResultSetHeader]).map((r) => r.affectedRows);
    return { rows: [], changes: each.reduce((a, b) => a + b, 0), each };
  }
  return Array.isArray(res) ? { rows: res as Row[], changes: 0 } : { rows: [], changes: (res as ResultSetHeader).affectedRows };
}

/** Runs one statement (or multi-statement) inside the transaction. */
export type Run = (s: Sql) => Promise<Outcome>;

/** How a transaction runs. */
export interface TxOptions {
  /** Runs after `fn`, before COMMIT (fault injection). */
  beforeCommit?: () => void;
  /**
   * READ COMMITTED for this one transaction (the session's level otherwise:
   * REPEATABLE READ). A locking read then locks only the rows it returns, no
   * gaps: what a transaction that stays open across a slow await needs, so
   * that it blocks no insert next to its rows.
   */
  readCommitted?: boolean;
  /** Told the milliseconds from the first statement to the end of a COMMIT (metrics). */
  observe?: (ms: number) => void;
  /** Longest wait for the answer to one round trip (timed-query.ts). @defaultValue DEFAULT_QUERY_TIMEOUT_MS */
  queryTimeoutMs?: number;
}

/**
 * A transaction on one pooled connection: `fn` runs its statements through
 * `run`, then `beforeCommit`, COMMIT; ROLLBACK on any throw. START
 * TRANSACTION (and SET TRANSACTION ISOLATION LEVEL, which applies to the
 * next transaction only) goes in the same round trip as the first statement,
 * and COMMIT in the same round trip as a statement marked `final` (the
 * connection allows multi-statements): two round trips less per transaction.
 * `beforeCommit` then runs before that statement is sent. A check `fn` makes
 * after a `final` statement comes after the COMMIT: if it throws, the error
 * says so and is not retried (see `CommittedThenFailed`). A connection whose
 * ROLLBACK fails is destroyed, not returned to the pool, so no later caller
 * inherits an open transaction; so is one whose server did not answer in
 * time (the transaction is then rolled back by the server, unless its COMMIT
 * was what went unanswered), and one whose server refused a statement as
 * unavailable (`isMysqlUnavailable`: read only after a failover, say).
 */
export async function inTransaction<T>(pool: Pool, fn: (run: Run) => Promise<T>, opts: TxOptions = {}): Promise<T> {
  const { beforeCommit, readCommitted = false, observe, queryTimeoutMs = DEFAULT_QUERY_TIMEOUT_MS } = opts;
  const conn = await takeConnection(pool, queryTimeoutMs);
  const began = observe ? performance.now() : 0;
  let broken = false;
  let begun = false;
  let committed = false;
  const begin = readCommitted ? [SET_READ_COMMITTED, START_TRANSACTION] : [START_TRANSACTION];
  const run: Run = async (s) => {
    if (committed) throw new AtsError('ATS_ERR_INTERNAL', 'a statement after the one that committed the transaction');
    const before = begun ? [] : begin;
    const commit = s.final === true;
    if (commit) beforeCommit?.();
    if (before.length === 0 && !commit) return exec(conn, s, queryTimeoutMs);
    begun = true;
    const res = await send(conn, sqlText([...before, s.sql, ...(commit ? ['COMMIT'] : [])].join(';\n'), s.params), queryTimeoutMs);
    if (commit) committed = true;
    const own = (res as unknown[]).slice(before.length, commit ? -1 : undefined);
    return outcomeOf(s.multi ? own : own[0], s.multi === true);
  };
  try {
    try {
      const result = await fn(run);
      if (!committed) {
        beforeCommit?.();
        if (begun) await queryOn(conn, 'COMMIT', queryTimeoutMs);
      }
      if (observe && begun) observe(performance.now() - began);
      return result;
    } catch (err) {
      if (committed) throw new CommittedThenFailed(err);
      // A server that refused the statement as unavailable (read only after a failover, out of space, going away) is
      // not one to hand this connection back to: it is destroyed, which rolls the transaction back, and the pool opens
      // a new one, to wherever the database's address leads now.
      noteFailure(pool, err);
      if (isMysqlUnavailable(err)) broken = true;
      else if (begun) await queryOn(conn, 'ROLLBACK', queryTimeoutMs).catch(() => { broken = true; });
      throw err;
    }
  } finally {
    if (broken) conn.destroy();
    else conn.release();
  }
}

/**
 * A transaction committed with its last statement, and a check after it
 * failed: nothing can be rolled back, and running it again could apply it
 * twice. It means a check in code and its guard in SQL disagree (a bug).
 */
export class CommittedThenFailed extends AtsError {
  constructor(cause: unknown) {
    super('ATS_ERR_INTERNAL', 'a transaction committed, then a check of its last statement failed', { cause });
    this.name = 'CommittedThenFailed';
  }
}

/** A lost race worth running the whole transaction again for. */
export function isTransient(err: unknown): boolean {
  return conflictReason(err) !== null;
}

/** A race the server says a statement lost (a deadlock, a lock wait timeout, a row changed since read); not the store's own VersionConflict. */
export function isLostRace(err: unknown): boolean {
  return typeof (err as { errno?: unknown } | null)?.errno === 'number' && conflictReason(err) !== null;
}

/** Which race a transaction lost, or null when the error is not one. */
export function conflictReason(err: unknown): ConflictReason | null {
  if (err instanceof VersionConflict) return 'version_conflict';
  const errno = (err as { errno?: unknown } | null)?.errno;
  return errno === ER_LOCK_DEADLOCK ? 'deadlock'
    : errno === ER_LOCK_WAIT_TIMEOUT ? 'lock_wait_timeout'
    : errno === ER_CHECKREAD ? 'version_conflict'
    : null;
}

/**
 * Run `attempt` until it does not lose a race, up to `MAX_TRIES` times with a
 * short jittered pause (so the racers spread out), then give up with
 * ATS_ERR_CONCURRENT_UPDATE. Other errors pass through at once.
 */
export async function withRetry<T>(
  attempt: () => Promise<T>, tries = MAX_TRIES, onConflict?: (reason: ConflictReason) => void,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      const reason = conflictReason(err);
      if (reason === null) throw err;
      onConflict?.(reason);
      if (i >= tries) throw new AtsError('ATS_ERR_CONCURRENT_UPDATE', undefined, { cause: err });
      // Jitter in an adapter, not the engine: it only spreads retries, it is never replayed.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 5 * 2 ** i)));
    }
  }
}
