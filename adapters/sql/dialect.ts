/**
 * What differs between the two SQL dialects the stores speak. Everything else
 * (statements, row mapping, the insert/update programs) is shared.
 */
export interface Dialect {
  readonly name: 'mysql' | 'sqlite';
  /** After a table name: read it through this index (where the planner, without statistics, might pick another). */
  useIndex(index: string): string;
  /**
   * Appended to the INSERT of jobs that carry an idempotency key: a row whose
   * (queue, idempotency_key) is taken is skipped instead of failing the batch.
   * Why not `INSERT IGNORE`: it also downgrades other errors (truncation, bad
   * values) to warnings, which would silently store a cut payload.
   */
  readonly skipDuplicate: string;
  /** Appended to a SELECT whose rows must stay locked until commit ('' where the transaction holds the whole database). */
  readonly forUpdate: string;
  /** Appended to a claim: lock the rows, skipping those another transaction holds. */
  readonly forUpdateSkipLocked: string;
  /**
   * The driver sends several `;`-separated statements in one round trip and
   * reports each one's changed rows (`Sql.multi`). Where a statement costs a
   * network round trip (MySQL), a batch of job updates goes as one.
   */
  readonly multiStatement: boolean;
  /**
   * Appended to a one-row INSERT into `job_counts`: an existing key adds the
   * delta (its last parameter) to its count instead of failing.
   */
  readonly addToCount: string;
  /**
   * A batch of job updates goes as one statement (`updateJobsCas`), where
   * each statement is parsed and planned by a server (MySQL); otherwise one
   * prepared `UPDATE_JOB_CAS` per job (SQLite: a function call each).
   */
  readonly batchUpdate: boolean;
  /**
   * A check of a statement's changed rows also runs in SQL, right after it
   * (`guardChangedRows`), so the write group of a transaction can carry its
   * COMMIT (MySQL: a round trip less per transaction). SQLite runs in process:
   * nothing to save there.
   */
  readonly guardChecks: boolean;
  /**
   * Appended to a one-row INSERT whose row may exist under `key`: the existing
   * row gets `columns` set to the values inserted instead of failing. With
   * `rebind`, those values are bound again, in `columns` order, after the
   * INSERT's own (MySQL: no `VALUES()`, no `AS alias`); otherwise the clause
   * reads them itself (SQLite's `excluded`).
   */
  setOnConflict(key: string, columns: readonly string[]): { sql: string; rebind: boolean };
  /**
   * The highest id `table`'s AUTO_INCREMENT key has handed out (0 for none), as
   * one row with column `id`; deletes do not lower it (MySQL/MariaDB: the
   * table's counter, persistent; SQLite: `sqlite_sequence` of an AUTOINCREMENT key).
   */
  lastIssuedId(table: string): string;
}

export const MYSQL_DIALECT: Dialect = Object.freeze({
  name: 'mysql',
  // `id = id` changes nothing; MySQL 8 and MariaDB both accept it (no `VALUES()`, no `AS alias`).
  skipDuplicate: 'ON DUPLICATE KEY UPDATE id = id',
  forUpdate: 'FOR UPDATE',
  forUpdateSkipLocked: 'FOR UPDATE SKIP LOCKED',
  multiStatement: true,
  addToCount: 'ON DUPLICATE KEY UPDATE n = n + ?',
  batchUpdate: true,
  guardChecks: true,
  useIndex: (index: string) => `FORCE INDEX (${index})`,
  setOnConflict: (_key: string, columns: readonly string[]) => ({ sql: `ON DUPLICATE KEY UPDATE ${columns.map((c) => `${c} = ?`).join(', ')}`, rebind: true }),
  lastIssuedId: (table: string) =>
    `SELECT COALESCE(AUTO_INCREMENT, 1) - 1 AS id FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}'`,
});

export const SQLITE_DIALECT: Dialect = Object.freeze({
  name: 'sqlite',
  // Unlike `INSERT OR IGNORE`, this only skips uniqueness conflicts, not NOT NULL/CHECK failures.
  skipDuplicate: 'ON CONFLICT DO NOTHING',
  forUpdate: '',
  forUpdateSkipLocked: '',
  // In process, a statement is a function call: nothing to save.
  multiStatement: false,
  addToCount: 'ON CONFLICT (tenant, queue, type, state, shard) DO UPDATE SET n = n + ?',
  batchUpdate: false,
  guardChecks: false,
  useIndex: (index: string) => `INDEXED BY ${index}`,
  setOnConflict: (key: string, columns: readonly string[]) => ({
    sql: `ON CONFLICT (${key}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`, rebind: false,
  }),
  lastIssuedId: (table: string) => `SELECT seq AS id FROM sqlite_sequence WHERE name = '${table}'`,
});
