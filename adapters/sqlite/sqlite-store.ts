/**
 * The JobStore on SQLite (better-sqlite3: one synchronous connection). Reads
 * and the insert/update programs are shared with the MySQL store
 * (adapters/sql). Writes run as `BEGIN IMMEDIATE` transactions, entirely
 * synchronous: `decide` is synchronous too, so read-decide-write is atomic
 * with no row locks at all. The price: a write that finds another process
 * holding the file's write lock blocks this thread (up to busy_timeout).
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Database, Statement } from 'better-sqlite3';
import { AtsError, type StoreUnavailableWhy } from '../../engine/errors.js';
import type { ConflictReason, StoreOp } from '../../engine/metrics.js';
import type { AuditStore, Decide, Decision, InsertResult, JobStore, KeyStore, OutboxRow, LimitStore, ProgressStore, QueueStore, ScheduleStore, TransitionWrite, WorkerRegistryStore, WorkflowStore } from '../../engine/ports.js';
import { SQLITE_DIALECT as D } from '../sql/dialect.js';
import type { StoreClock, StoreFaults, StoreMetrics } from '../sql/options.js';
import { runSync, type Outcome, type Program } from '../sql/program.js';
import { createSqlReads } from '../sql/reads.js';
import { createSqlSchedules } from '../sql/schedules.js';
import { createSqlProgress } from '../sql/progress.js';
import { createSqlKeptDispatches } from '../sql/kept-dispatches.js';
import { createSqlWorkers } from '../sql/workers.js';
import { createSqlLimits } from '../sql/limits.js';
import { createSqlKeys } from '../sql/keys.js';
import { createSqlAudit } from '../sql/audit.js';
import { createSqlQueues } from '../sql/queues.js';
import { guardStore, wrapMethods } from '../sql/unavailable.js';
import { PEEK_OUTBOX_ROWS, publishPicked, rowsToTake } from '../sql/outbox.js';
import type { Row } from '../sql/rows.js';
import type { Sql } from '../sql/statements.js';
import { deleteProgram, deleteResult, purgeJobsInSteps } from '../sql/deletes.js';
import { insertProgram, updateProgram, VersionConflict } from '../sql/writes.js';
import { createSqlWorkflowReads, deleteWorkflowProgram, insertWorkflowProgram, purgeWorkflowsInSteps, updateWorkflowProgram } from '../sql/workflows.js';
import { MigrationFailed } from '../sql/migrations.js';
import { migrateSqlite } from './migrate.js';
import { Mutex } from './mutex.js';
import type { GroupSync } from './group-sync.js';

export type SqliteStore = JobStore & ScheduleStore & ProgressStore & WorkerRegistryStore & LimitStore & KeyStore & AuditStore & QueueStore & WorkflowStore & { db: Database };

/** Tries of a transaction whose compare-and-set keeps failing (another process wrote the file). */
const MAX_TRIES = 8;
/** Prepared statements kept; IN lists of varying length make distinct statements. */
const CACHE_SIZE = 256;

/**
 * The store; a file locked past busy_timeout, an I/O error, a full disk or a
 * closed connection rejects with ATS_ERR_STORE_UNAVAILABLE. With `sync` (a
 * file opened with `synchronous = NORMAL`, see group-sync.ts) no operation
 * answers before what it wrote or read is on disk.
 */
export function sqliteStore(db: Database, clock: StoreClock, faults?: StoreFaults, metrics?: StoreMetrics, sync?: GroupSync): SqliteStore {
  const durable = sync ? whenDurable(db, sync) : undefined;
  const operations = sqliteOperations(db, clock, faults, metrics, sync, durable);
  return guardStore(durable ? answerWhenDurable(operations, durable) : operations, (err) => !db.open || sqliteOutage(err));
}

/**
 * Resolves once everything this connection may have seen is on disk: what it
 * wrote, and what another connection on the file (another process: the CLI's
 * key commands, a second role) committed since the last look, which this
 * connection may have read before that connection's own sync (`data_version`
 * moves on another connection's commit only).
 */
function whenDurable(db: Database, sync: GroupSync): () => Promise<void> {
  // Prepared once: it runs before every answer (db.pragma() compiles the statement at each call, 3 µs against 1).
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  let seen: unknown = dataVersion.get();
  return () => {
    if (db.open) {
      const version = dataVersion.get();
      if (version !== seen) {
        sync.wrote();
        seen = version;
      }
    }
    return sync.durable();
  };
}

/** Operations whose answer does not wait for the sync: `close` syncs what is left itself; the relay's publish waits for it (a delete lost to a power cut only publishes its rows again). */
const NOT_HELD = new Set(['close', 'relayOutbox']);

/**
 * `store` with every method's answer held until everything committed before it
 * is on disk: its result, and its error too (a conflict may stem from a row
 * not yet on disk).
 */
function answerWhenDurable<S extends object>(store: S, durable: () => Promise<void>): S {
  return wrapMethods(store, (name, fn) => (NOT_HELD.has(name) ? undefined : async (...args: unknown[]) => {
    try {
      return await fn(...args);
    } finally {
      await durable();
    }
  }));
}

function sqliteOperations(
  db: Database, clock: StoreClock, faults?: StoreFaults, metrics?: StoreMetrics, sync?: GroupSync, durable?: () => Promise<void>,
): SqliteStore {
  const exec = executor(db, sync);
  const relayLock = new Mutex();
  const inTx = db.transaction(<T>(program: Program<T>): T => {
    const result = runSync(program, exec);
    faults?.beforeCommit?.();
    return result;
  });
  // A key change, an admission of queues, a limit set or deleted: one `BEGIN IMMEDIATE` transaction.
  const smallTx = async <T>(program: () => Program<T>): Promise<T> => inTx.immediate(program()) as T;
  const write = <T>(op: StoreOp, program: () => Program<T>): T => {
    if (!metrics) return retrying(() => inTx.immediate(program()) as T);
    return retrying(() => {
      const began = performance.now();
      const result = inTx.immediate(program()) as T;
      metrics.dbTransaction(op, performance.now() - began);
      return result;
    }, (reason) => metrics.dbConflict(op, reason));
  };

  return {
    db,
    ...createSqlReads(async (sql, params) => exec({ sql, params: [...params] }).rows, D),
    ...createSqlSchedules(async (sql, params) => exec({ sql, params: [...params] }), D, smallTx),
    ...createSqlProgress(async (sql, params) => exec({ sql, params: [...params] }), D),
    ...createSqlKeptDispatches(async (sql, params) => exec({ sql, params: [...params] })),
    ...createSqlWorkers(async (sql, params) => exec({ sql, params: [...params] }), D),
    ...createSqlLimits(async (sql, params) => exec({ sql, params: [...params] }), D, smallTx),
    // A key change and its audit entry: one `BEGIN IMMEDIATE` transaction (no version to compare: nothing to retry).
    ...createSqlKeys(async (sql, params) => exec({ sql, params: [...params] }), D, smallTx),
    ...createSqlAudit(async (sql, params) => exec({ sql, params: [...params] }), D),
    ...createSqlQueues(async (sql, params) => exec({ sql, params: [...params] }), D, smallTx),
    ...createSqlWorkflowReads(async (sql, params) => exec({ sql, params: [...params] }).rows, D),
    migrate: async (opts) => {
      try {
        await migrateSqlite(db, clock, undefined, { logger: opts?.logger });
        sync?.wrote();
      } catch (err) {
        // Unusable now (locked, read-only, a full disk), or a migration that failed on what the file holds: either names the file.
        throw isSqliteUnavailable(err) || err instanceof MigrationFailed ? cannotUse(db.memory ? db.name : resolve(db.name), err) : err;
      }
    },
    insert: async (writes: TransitionWrite[]): Promise<InsertResult[]> =>
      writes.length === 0 ? [] : write('insert', () => insertProgram(D, writes)),
    update: async <T>(ids: readonly string[], decide: Decide<T> | Decision<T>): Promise<T> => write('update', () => updateProgram(D, ids, decide)),
    insertWorkflow: async (w) => write('insert', () => insertWorkflowProgram(D, w)),
    updateWorkflow: async (id, decide, read) => write('update', () => updateWorkflowProgram(D, id, decide, read)),
    deleteJob: async (id: string) => deleteResult(write('delete', () => deleteProgram(D, [id])), id),
    purgeJobs: (state, updatedBefore, limit, signal) => purgeJobsInSteps(async (program) => write('purge', program), D, state, updatedBefore, limit, undefined, signal),
    purgeWorkflows: (status, updatedBefore, limit, signal) => purgeWorkflowsInSteps(async (program) => write('purge', program), D, status, updatedBefore, limit, undefined, signal),
    deleteWorkflow: async (id) => write('delete', () => deleteWorkflowProgram(D, id)),

    /**
     * One connection cannot hold a transaction across an await (every other
     * caller would write inside it). So: claim without a lock, publish, then
     * delete the acked rows in one statement; the mutex keeps this process's relays off each
     * other's rows. Two processes on one file may publish a row twice, which
     * the at-least-once contract allows. A row is published only once it is
     * on disk.
     */
    relayOutbox: (limit: number, publish: (rows: OutboxRow[]) => Promise<void>): Promise<number> =>
      relayLock.run(async () => {
        const picked = rowsToTake(exec({ sql: PEEK_OUTBOX_ROWS, params: [limit] }).rows, limit);
        if (picked.length === 0) return 0;
        return publishPicked(D, picked, exec, durable ? async (rows) => { await durable(); await publish(rows); } : publish);
      }),

    ping: async () => {
      db.prepare('SELECT 1').get();
    },
    close: async () => {
      await relayLock.run(async () => {
        if (sync) await sync.close(() => db.close());
        else db.close();
      });
    },
  };
}

/** Runs a statement, preparing it once (bounded cache); tells `sync` of each statement that changed rows. */
function executor(db: Database, sync?: GroupSync): (s: Sql) => Outcome {
  const cache = new Map<string, Statement>();
  const prepare = (sql: string): Statement => {
    let stmt = cache.get(sql);
    if (!stmt) {
      if (cache.size >= CACHE_SIZE) cache.clear();
      stmt = db.prepare(sql);
      cache.set(sql, stmt);
    }
    return stmt;
  };
  // The parameters go as one array (better-sqlite3 binds an array's items in order):
  // spread into the call, a multi-row insert's thousands of values cost a copy each time.
  return (s) => {
    const stmt = prepare(s.sql);
    if (stmt.reader) {
      const rows = stmt.all(s.params) as Row[];
      if (!stmt.readonly) sync?.wrote(); // RETURNING
      return { rows, changes: 0 };
    }
    const { changes } = stmt.run(s.params);
    // A statement that changed no row dirtied no page: nothing to sync (a trigger fires only on a changed row).
    if (changes > 0) sync?.wrote();
    return { rows: [], changes };
  };
}

/** Runs a synchronous transaction again after a version conflict, then gives up. */
function retrying<T>(fn: () => T, onConflict?: (reason: ConflictReason) => void): T {
  for (let i = 1; ; i++) {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof VersionConflict)) throw err;
      onConflict?.('version_conflict');
      if (i >= MAX_TRIES) throw new AtsError('ATS_ERR_CONCURRENT_UPDATE', undefined, { cause: err });
    }
  }
}

/**
 * Primary result codes whose extended codes (SQLITE_IOERR_WRITE...) all mean
 * the file cannot be used now. SQLITE_READONLY: the file opened read-only (no
 * write permission, a read-only mount); like a full disk, an outage an
 * operator fixes, not a bug.
 */
const UNAVAILABLE_CODES = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_FULL', 'SQLITE_PROTOCOL', 'SQLITE_READONLY'];

/** True for a better-sqlite3 error that means the database is unusable now (not a constraint or a bug). */
export function isSqliteUnavailable(err: unknown): boolean {
  return err instanceof Error && sqliteCodeIn(err, UNAVAILABLE_CODES) !== undefined;
}

/** `isSqliteUnavailable`, telling a caller more where it can: a read-only file, or a full disk (see `guardStore`). */
export function sqliteOutage(err: unknown): boolean | StoreUnavailableWhy {
  if (!isSqliteUnavailable(err)) return false;
  const code = sqliteCodeIn(err, ['SQLITE_FULL', 'SQLITE_READONLY'] as const);
  return code === 'SQLITE_FULL' ? 'full' : code === 'SQLITE_READONLY' ? 'readOnly' : true;
}

/** The primary code among `codes` whose family `err`'s SQLite code is of (SQLITE_IOERR for SQLITE_IOERR_WRITE), or undefined. */
export function sqliteCodeIn<C extends string>(err: unknown, codes: readonly C[]): C | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? codes.find((c) => code === c || code.startsWith(`${c}_`)) : undefined;
}

/** What SQLite answers for a file this user may not open or write: no permission, a read-only file system. */
export const UNWRITABLE_CODES = ['SQLITE_CANTOPEN', 'SQLITE_READONLY', 'SQLITE_PERM'] as const;

/**
 * What SQLite answers at a start that no restart gets past, by code (its
 * extended codes too), with what to do: a file this user may not open or
 * write, and one that is not a database SQLite can read.
 */
const AT_START_AS_GIVEN: ReadonlyMap<string, string> = new Map([
  ...UNWRITABLE_CODES.map((c) => [c, 'the folder and its files must be writable by this user'] as const),
  ['SQLITE_NOTADB', 'it is no SQLite database (another program\'s file, or a damaged one): move it away, and the scheduler makes a new one, or put back a copy'],
  ['SQLITE_CORRUPT', 'the file is damaged: put back a copy, or move it away and the scheduler makes a new one'],
]);

/**
 * A better-sqlite3 error at open or migrate (the start) as an AtsError naming
 * the file, for the start's message: the driver's says only "unable to open
 * database file". ATS_ERR_CONFIG for a file that cannot work as it is (a
 * start's exit 2: `AT_START_AS_GIVEN`), else ATS_ERR_STORE_UNAVAILABLE (a
 * full disk, a lock held: what may change by itself). Not used for requests:
 * clients get no paths.
 */
export function cannotUse(file: string, err: unknown): unknown {
  if (err instanceof AtsError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const why = `${(err as Error | null)?.message ?? String(err)}${typeof code === 'string' ? ` (${code})` : ''}`;
  const asGiven = sqliteCodeIn(err, [...AT_START_AS_GIVEN.keys()]);
  // A folder in the file's place opens as SQLITE_CANTOPEN too: not a permission to change.
  const todo = asGiven === 'SQLITE_CANTOPEN' && isFolder(file)
    ? 'it is a folder, not a file: move it away, and the scheduler makes a new one'
    : asGiven && `${AT_START_AS_GIVEN.get(asGiven)!}${asGiven === 'SQLITE_CORRUPT' || asGiven === 'SQLITE_NOTADB' ? withItsLog(file) : ''}`;
  return todo
    ? new AtsError('ATS_ERR_CONFIG', `the SQLite database ${file} cannot be used: ${why}; ${todo}`, { cause: err })
    : new AtsError('ATS_ERR_STORE_UNAVAILABLE', `the SQLite database ${file} cannot be used: ${why}`, { cause: err });
}

/**
 * What to add to the advice for a damaged file that has a write-ahead log beside
 * it: that log goes with the file. SQLite applies a `-wal` it finds to whatever
 * file is in its place, so a copy put back beside the log of the file it
 * replaces (a crashed scheduler's) is damaged by it, or silently becomes that
 * file again (docs/backups.md).
 */
function withItsLog(file: string): string {
  return existsSync(`${file}-wal`)
    ? `; ${file}-wal and ${file}-shm belong to the damaged file: move them away with it (or delete them) before the start, or SQLite applies them to the copy put back`
    : '';
}

/** Whether `file` is a folder (false when it cannot be read at all). */
function isFolder(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}
