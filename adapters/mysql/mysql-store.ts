/**
 * The JobStore on MySQL 8.0 / MariaDB 10.11 (mysql2 pool). Reads and the
 * insert/update programs are shared with the SQLite store (adapters/sql);
 * here live the transactions, the row locks and the retries.
 */
import type { Pool } from 'mysql2/promise';
import type { AuditStore, Decide, Decision, InsertResult, JobStore, KeyStore, OutboxRow, LimitStore, ProgressStore, QueueStore, ScheduleStore, TransitionWrite, WorkerRegistryStore, WorkflowStore } from '../../engine/ports.js';
import { MYSQL_DIALECT as D } from '../sql/dialect.js';
import type { StoreClock, StoreFaults, StoreMetrics } from '../sql/options.js';
import type { StoreOp } from '../../engine/metrics.js';
import { runAsync, type Program } from '../sql/program.js';
import { guardStore } from '../sql/unavailable.js';
import { createSqlReads } from '../sql/reads.js';
import { createSqlSchedules } from '../sql/schedules.js';
import { createSqlProgress } from '../sql/progress.js';
import { createSqlKeptDispatches } from '../sql/kept-dispatches.js';
import { createSqlWorkers } from '../sql/workers.js';
import { createSqlLimits } from '../sql/limits.js';
import { createSqlKeys } from '../sql/keys.js';
import { createSqlAudit } from '../sql/audit.js';
import { createSqlQueues } from '../sql/queues.js';
import { PEEK_OUTBOX_ROWS, publishPicked, rowsToTake } from '../sql/outbox.js';
import type { Row } from '../sql/rows.js';
import { deleteProgram, deleteResult, purgeJobsInSteps } from '../sql/deletes.js';
import { insertProgram, updateProgram } from '../sql/writes.js';
import { createSqlWorkflowReads, deleteWorkflowProgram, insertWorkflowProgram, purgeWorkflowsInSteps, updateWorkflowProgram } from '../sql/workflows.js';
import { DEFAULT_QUERY_TIMEOUT_MS, queryPool } from './timed-query.js';
import { migrateMysql } from './migrate.js';
import { sqlText } from './sql-text.js';
import { DB_NOW, PING, PING_TIMEOUT_MS } from './statements.js';
import { inTransaction, isLostRace, MAX_TRIES, outcomeOf, withRetry, type TxOptions } from './tx.js';
import { mysqlOutage } from './unavailable.js';

export type MysqlStore = JobStore & ScheduleStore & ProgressStore & WorkerRegistryStore & LimitStore & KeyStore & AuditStore & QueueStore & WorkflowStore & {
  pool: Pool;
  /** The database server's clock, epoch ms: the one clock processes compare leases and due times by (engine/db-clock.ts). */
  dbNow(): Promise<number>;
};

/**
 * The store; a lost or refused connection, or a server that does not answer a
 * statement within `queryTimeoutMs`, rejects with ATS_ERR_STORE_UNAVAILABLE
 * (see unavailable.ts and timed-query.ts); a deadlock or lock wait timeout
 * that no retry took up, with ATS_ERR_CONCURRENT_UPDATE.
 */
export function mysqlStore(
  pool: Pool, clock: StoreClock, faults?: StoreFaults, metrics?: StoreMetrics, queryTimeoutMs = DEFAULT_QUERY_TIMEOUT_MS,
): MysqlStore {
  return guardStore(mysqlOperations(pool, clock, queryTimeoutMs, faults, metrics), mysqlOutage, isLostRace);
}

function mysqlOperations(pool: Pool, clock: StoreClock, queryTimeoutMs: number, faults?: StoreFaults, metrics?: StoreMetrics): MysqlStore {
  const send = (text: string) => queryPool(pool, text, queryTimeoutMs);
  const query = async (sql: string, params: readonly unknown[]) => (await send(sqlText(sql, params))) as Row[];
  // One statement outside a transaction (schedules, progress, kept dispatches, workers, limits, keys, audit, queues): its rows or changed rows, as a transaction's step gives them.
  // A deadlock or lock wait timeout rolled the statement back whole: it is run again as a transaction would be.
  const statement = (sql: string, params: readonly unknown[]) =>
    withRetry(async () => outcomeOf(await send(sqlText(sql, params)), false), MAX_TRIES);
  const beforeCommit = faults?.beforeCommit && (() => faults.beforeCommit!());
  // Per operation, made once: its transaction options and its lost-race hook (both report to the metrics).
  const tx = (op: StoreOp): TxOptions => ({ beforeCommit, queryTimeoutMs, observe: metrics && ((ms) => metrics.dbTransaction(op, ms)) });
  const lost = (op: StoreOp) => metrics && ((reason: Parameters<StoreMetrics['dbConflict']>[1]) => metrics.dbConflict(op, reason));
  const OPS = {
    insert: { tx: tx('insert'), lost: lost('insert') },
    // READ COMMITTED: see `update` below.
    update: { tx: { ...tx('update'), readCommitted: true }, lost: lost('update') },
    delete: { tx: tx('delete'), lost: lost('delete') },
    purge: { tx: tx('purge'), lost: lost('purge') },
    // Key changes are not a store operation the metrics know: no latency reported.
    keys: { tx: { beforeCommit, queryTimeoutMs } },
  };
  // A key change, an admission of queues, a limit set or deleted: one transaction, run again if it loses a race.
  const smallTx = <T>(program: () => Program<T>): Promise<T> =>
    withRetry(() => inTransaction(pool, (run) => runAsync(program(), run), OPS.keys.tx), MAX_TRIES);
  const relayTx: TxOptions = { ...tx('relay'), beforeCommit: undefined, readCommitted: true };

  return {
    pool,
    ...createSqlReads(query, D),
    // A new schedule: the tenant's count and the insert in one transaction, run again if it loses a race.
    ...createSqlSchedules(statement, D, smallTx),
    ...createSqlProgress(statement, D),
    ...createSqlKeptDispatches(statement),
    ...createSqlWorkers(statement, D),
    ...createSqlLimits(statement, D, smallTx),
    // A key change and its audit entry: one transaction, run again if it loses a race (a deadlock on the audit log's index).
    ...createSqlKeys(statement, D, smallTx),
    ...createSqlAudit(statement, D),
    // An admission of new queues: likewise (two on an empty list deadlock).
    ...createSqlQueues(statement, D, smallTx),
    ...createSqlWorkflowReads(query, D),
    migrate: (opts) => migrateMysql(pool, clock, undefined, { logger: opts?.logger }),

    insert: (writes: TransitionWrite[]): Promise<InsertResult[]> =>
      writes.length === 0
        ? Promise.resolve([])
        : withRetry(() => inTransaction(pool, (run) => runAsync(insertProgram(D, writes), run), OPS.insert.tx), MAX_TRIES, OPS.insert.lost),

    /**
     * Locks the rows (SELECT ... ORDER BY id FOR UPDATE), so the
     * compare-and-set only fails when `decide` wrote a job it did not lock;
     * deadlocks and lock wait timeouts are retried like version conflicts.
     * READ COMMITTED: the locking read takes no gap locks, and the subquery
     * that reads each job's last event opens no read view that a row locked
     * after a wait could be newer than (MariaDB's innodb_snapshot_isolation
     * refuses such a lock under REPEATABLE READ).
     */
    update: <T>(ids: readonly string[], decide: Decide<T> | Decision<T>): Promise<T> =>
      withRetry(() => inTransaction(pool, (run) => runAsync(updateProgram(D, ids, decide), run), OPS.update.tx), MAX_TRIES, OPS.update.lost),

    /** As `insert` (a workflow's child jobs are inserts), with the instance first. */
    insertWorkflow: (write) =>
      withRetry(() => inTransaction(pool, (run) => runAsync(insertWorkflowProgram(D, write), run), OPS.insert.tx), MAX_TRIES, OPS.insert.lost),
    /** As `update`: the instance row locked (then the jobs it cancels), READ COMMITTED, lost races run again. */
    updateWorkflow: (id, decide, read) =>
      withRetry(() => inTransaction(pool, (run) => runAsync(updateWorkflowProgram(D, id, decide, read), run), OPS.update.tx), MAX_TRIES, OPS.update.lost),

    /** Row-locks the job (as updates do), so a job redriven meanwhile is seen live and kept. */
    deleteJob: async (id: string) =>
      deleteResult(await withRetry(() => inTransaction(pool, (run) => runAsync(deleteProgram(D, [id]), run), OPS.delete.tx), MAX_TRIES, OPS.delete.lost), id),
    /** The candidates are read without locks, then locked by id: each transaction holds only the rows it deletes. */
    purgeJobs: (state, updatedBefore, limit, signal) => purgeJobsInSteps(
      (program) => withRetry(() => inTransaction(pool, (run) => runAsync(program(), run), OPS.purge.tx), MAX_TRIES, OPS.purge.lost),
      D, state, updatedBefore, limit, undefined, signal,
    ),
    /** As `purgeJobs`: candidates read without locks, then locked by id and checked again. */
    purgeWorkflows: (status, updatedBefore, limit, signal) => purgeWorkflowsInSteps(
      (program) => withRetry(() => inTransaction(pool, (run) => runAsync(program(), run), OPS.purge.tx), MAX_TRIES, OPS.purge.lost),
      D, status, updatedBefore, limit, undefined, signal,
    ),
    /** As `deleteJob`: the instance's row locked (as its steps lock it), its status read under the lock. */
    deleteWorkflow: (id) =>
      withRetry(() => inTransaction(pool, (run) => runAsync(deleteWorkflowProgram(D, id), run), OPS.delete.tx), MAX_TRIES, OPS.delete.lost),
    /**
     * The claim's transaction stays open while `publish` runs: its row locks
     * are what keeps other relays off these rows (SKIP LOCKED), and the rows
     * are deleted in it only after the log acked them. If the process dies,
     * the rollback frees them and they are published again (duplicates are
     * deduped downstream by the outbox id header). READ COMMITTED: under
     * REPEATABLE READ the claim would also lock the gaps of the outbox index
     * and, for as long as the log takes (a broker down: minutes), block every
     * transition, each of which inserts outbox rows.
     */
    relayOutbox: async (limit: number, publish: (rows: OutboxRow[]) => Promise<void>): Promise<number> => {
      // The peek takes no lock: it runs before the transaction, and a poll that finds nothing opens none.
      const picked = rowsToTake(await query(PEEK_OUTBOX_ROWS, [limit]), limit);
      if (picked.length === 0) return 0;
      return inTransaction(pool, (run) => publishPicked(D, picked, run, publish), relayTx);
    },

    dbNow: async () => Number(((await send(DB_NOW)) as Array<{ now: number | string }>)[0]!.now),

    ping: async () => {
      // Its own short bound: a write that waits on a lock (a backup's global read lock, a LOCK TABLES) must not hold
      // a connection of the pool for the whole query timeout at each probe; a connection given up on is destroyed.
      await queryPool(pool, PING, Math.min(queryTimeoutMs, PING_TIMEOUT_MS));
    },
    close: () => pool.end(),
  };
}
