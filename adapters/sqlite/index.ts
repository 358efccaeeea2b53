/**
 * The embedded JobStore: SQLite through better-sqlite3, so `npm start` needs
 * no server and keeps its data across restarts.
 *
 * ```ts
 * const store = createSqliteStore({ file: 'data/ats.sqlite' });
 * await store.migrate();
 * ```
 */
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { AtsError } from '../../engine/errors.js';
import { SYSTEM_CLOCK, type SqlStoreOptions } from '../sql/options.js';
import { groupSync, type GroupSync } from './group-sync.js';
import { makeFolder } from './make-folder.js';
import { cannotUse, sqliteStore, type SqliteStore } from './sqlite-store.js';
import { walFile } from './wal-file.js';

export type { SqliteStore } from './sqlite-store.js';
export type { StoreClock, StoreFaults } from '../sql/options.js';

export interface SqliteStoreOptions extends SqlStoreOptions {
  /** Database file (its folder is created), or ':memory:'. */
  file: string;
  /** How long a write waits for another process's lock before SQLITE_BUSY. @defaultValue 5000 */
  busyTimeoutMs?: number;
  /**
   * What the write-ahead log is cut back to once checkpointed (`journal_size_limit`).
   * Without it the file keeps the size of the largest stretch of writes between two
   * checkpoints for as long as the process runs (a migration rebuilding `jobs`: about
   * the size of the table). @defaultValue 64 MiB
   */
  walSizeLimitBytes?: number;
  /**
   * Test-only: replaces the sync of the write-ahead log that every answer
   * waits for (adapters/sqlite/group-sync.ts). @defaultValue an fdatasync of `<file>-wal`
   */
  walSync?: () => Promise<void>;
}

/** The default of `walSizeLimitBytes`: 64 checkpoints' worth of the usual 1,000 pages of 4 KiB, and then some. */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Runs `step` again while SQLite answers SQLITE_BUSY, for up to `timeoutMs`.
 * The switch to WAL can fail at once, without waiting out busy_timeout, when
 * another process opens the same fresh file at the same moment.
 */
function retryWhileBusy<T>(step: () => T, timeoutMs: number): T {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      return step();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(pause, 0, 0, 10); // a synchronous 10 ms pause: the store opens synchronously
    }
  }
}

/** Open (or create) the database in WAL mode. Does not migrate: call `migrate()`. */
export function createSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  const memory = opts.file === ':memory:' || opts.file === '';
  if (!memory) makeFolder(dirname(resolve(opts.file)));
  const busyTimeoutMs = Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000));
  const walLimit = Math.max(0, Math.trunc(opts.walSizeLimitBytes ?? WAL_SIZE_LIMIT_BYTES));
  const db = open(opts.file, memory, busyTimeoutMs, walLimit);
  const sync = inWal(db) ? walSync(db, resolve(opts.file), opts.walSync) : undefined;
  return sqliteStore(db, opts.clock ?? SYSTEM_CLOCK, opts.faults, opts.metrics, sync);
}

/** A file in WAL mode (not memory, and not a file system that refused WAL): its commits go to `<file>-wal`. */
const inWal = (db: Database.Database): boolean => !db.memory && db.pragma('journal_mode', { simple: true }) === 'wal';

/**
 * The group commit of a file's write-ahead log (group-sync.ts). A sync that
 * fails closes the connection: every operation after it, and every one still
 * waiting, fails with ATS_ERR_STORE_UNAVAILABLE. What reached the disk is then
 * unknown (the kernel may still hold pages it failed to write, which a new
 * process would read): the disk needs an operator's look before a restart.
 */
function walSync(db: Database.Database, file: string, sync: (() => Promise<void>) | undefined): GroupSync {
  const wal = walFile(file);
  return groupSync({
    sync: async () => {
      try {
        await (sync ?? wal.sync)();
      } catch (err) {
        throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', `the write-ahead log of the SQLite database ${file} could not be synced to disk: ${(err as Error).message}`, { cause: err });
      }
    },
    release: () => wal.release(),
    onFailure: () => db.close(),
  });
}

/** The connection, set up; a file that cannot be opened (a folder, not a database, no permission) throws naming it. */
function open(file: string, memory: boolean, busyTimeoutMs: number, walLimit: number): Database.Database {
  let db: Database.Database | null = null;
  try {
    db = new Database(file);
    // busy_timeout first: switching to WAL takes a lock another process may hold.
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // WAL: readers do not block the writer. An accepted job must survive a
    // power cut, not only a process crash: a file's commits do not wait for the
    // disk (NORMAL), its answers do, through one shared sync (group-sync.ts).
    if (!memory) retryWhileBusy(() => db!.pragma('journal_mode = WAL'), busyTimeoutMs);
    // Without WAL (memory, or a file system that refused it) every commit syncs as before.
    db.pragma(inWal(db) ? 'synchronous = NORMAL' : 'synchronous = FULL');
    db.pragma(`journal_size_limit = ${walLimit}`);
    // A deleted job is deleted for privacy too: zero what a delete (or an update) frees, in its
    // page and in pages freed whole, so that a payload, result or error deleted is not left in
    // the file's free space until reused. Pages the log still holds go as it is checkpointed and
    // written over (README.md, "What a delete leaves").
    db.pragma('secure_delete = ON');
    return db;
  } catch (err) {
    db?.close();
    throw cannotUse(resolve(file), err);
  }
}
