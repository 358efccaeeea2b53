/**
 * Concurrency and rate limits (engine/limits.ts) in SQL, shared by both
 * stores: the LimitStore port (a PUT and a DELETE each one transaction, the
 * reads one statement each), and
 * the statements a claim runs inside its transaction (`limitReadSteps`,
 * `limitWriteSteps`, used by writes.ts `updateProgram`).
 *
 * `limit_running` holds the attempts a limit admitted. A claim of a key first
 * deletes its rows whose job no longer runs that attempt, then counts those
 * whose lease holds: a dead worker's attempt stops counting once its lease is
 * over, and counts again should a heartbeat still renew it. Rows of deleted
 * jobs go with them (deletes.ts), and a limit's rows with the limit.
 *
 * Keys are stored tenant-qualified (engine/limits.ts `storedLimitKey`): the
 * default tenant's bare, another's `<tenant>/<key>`. A tenant's limits are
 * a range of the primary key: `<tenant>/` up to before `<tenant>0` (`0`
 * follows `/`; both collations compare by code point), the default tenant's
 * those without a `/`.
 */
import type { LimitClaim, LimitStore } from '../../engine/ports.js';
import { DEFAULT_TENANT } from '../../engine/auth.js';
import { AtsError } from '../../engine/errors.js';
import { replacedTat, splitLimitKey, type LimitRecord, type LimitSpec } from '../../engine/limits.js';
import type { Dialect } from './dialect.js';
import type { InTransaction } from './keys.js';
import { runAsync, type Exec, type Program } from './program.js';
import { toNum, type Row } from './rows.js';
import { isDuplicateKey } from './schedules.js';
import { marks, tuples, type Sql } from './statements.js';

const COLUMNS = 'limit_key, concurrency, rate_max, rate_interval_ms, tat, created_at, updated_at';
/** Most limits listed. */
export const MAX_LIMITS_LISTED = 1000;

const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : toNum(v));

/** The condition (and its parameters) on `limit_key` that selects one tenant's limits; none for all tenants. */
function tenantKeys(tenant: string | undefined): Sql {
  if (tenant === undefined) return { sql: '', params: [] };
  if (tenant === DEFAULT_TENANT) return { sql: "WHERE limit_key NOT LIKE '%/%'", params: [] };
  return { sql: 'WHERE limit_key >= ? AND limit_key < ?', params: [`${tenant}/`, `${tenant}0`] };
}

export function rowToLimit(r: Row): LimitRecord {
  const max = numOrNull(r.rate_max);
  const intervalMs = numOrNull(r.rate_interval_ms);
  return {
    key: String(r.limit_key), concurrency: numOrNull(r.concurrency),
    rate: max !== null && intervalMs !== null ? { max, intervalMs } : null,
    tat: toNum(r.tat), createdAt: toNum(r.created_at), updatedAt: toNum(r.updated_at),
  };
}

/** A `limit_running` row (alias `r`) whose job `j` still runs its attempt with a lease that holds at the bound time. */
const live = (r: string): string => `j.id = ${r}.job_id AND j.state = 'running' AND j.attempt = ${r}.attempt AND j.lease_until > ?`;

/**
 * Deletes the key's rows of attempts that no longer run (their job ended the
 * attempt, or was deleted). A row whose attempt still runs stays, its lease
 * over or not: a heartbeat that renews the lease (one stamped before the lease
 * ended, committed after) makes it count again.
 */
function pruneRunning(keys: readonly string[]): Sql {
  return {
    sql: `DELETE FROM limit_running WHERE limit_key IN (${marks(keys.length)})
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = limit_running.job_id AND j.state = 'running' AND j.attempt = limit_running.attempt)`,
    params: [...keys],
  };
}

/** Per key, its rows whose attempt runs with a lease that holds at `now`. */
const countRunning = (keys: readonly string[], now: number): Sql => ({
  sql: `SELECT r.limit_key, COUNT(*) AS n FROM limit_running r JOIN jobs j ON ${live('r')}
    WHERE r.limit_key IN (${marks(keys.length)}) GROUP BY r.limit_key`,
  params: [now, ...keys],
});

/**
 * Inside a claim's transaction, in order: lock the keys' limit rows (sorted,
 * so two claims never wait on each other in a circle), prune their stale
 * running rows, count the live ones.
 */
export function limitReadSteps(d: Dialect, sortedKeys: readonly string[], now: number): { lock: Sql; prune: Sql; count: Sql } {
  return {
    lock: { sql: `SELECT ${COLUMNS} FROM limits WHERE limit_key IN (${marks(sortedKeys.length)}) ORDER BY limit_key ${d.forUpdate}`, params: [...sortedKeys] },
    prune: pruneRunning(sortedKeys),
    count: countRunning(sortedKeys, now),
  };
}

/** After the claims' writes: each admitted start's rate state and running row. */
export function limitWriteSteps(d: Dialect, claims: readonly LimitClaim[]): Sql[] {
  if (claims.length === 0) return [];
  // The last state of each key (claims of one key come in order).
  const tat = new Map<string, number>();
  for (const c of claims) tat.set(c.key, c.tat);
  const keep = d.name === 'mysql' ? 'ON DUPLICATE KEY UPDATE attempt = VALUES(attempt)' : 'ON CONFLICT (limit_key, job_id) DO UPDATE SET attempt = excluded.attempt';
  return [
    ...[...tat].map(([key, t]): Sql => ({ sql: 'UPDATE limits SET tat = ? WHERE limit_key = ?', params: [t, key] })),
    {
      sql: `INSERT INTO limit_running (limit_key, job_id, attempt) VALUES ${tuples(claims.length, 3)} ${keep}`,
      params: claims.flatMap((c) => [c.key, c.jobId, c.attempt]),
    },
  ];
}

type PutLimit = { limit: LimitRecord; created: boolean };

const rateColumns = (spec: LimitSpec) => [spec.rate?.max ?? null, spec.rate?.intervalMs ?? null];

/**
 * Replaces the key's limit, as one transaction: its row read and locked, then
 * written (created_at stays; the rate state moves by `replacedTat`), and
 * committed with that write. The lock orders it with claims of the key, other
 * PUTs and DELETEs: it answers the limit it wrote. Null when the key has none.
 */
function* replaceProgram(d: Dialect, key: string, spec: LimitSpec, now: number): Program<PutLimit | null> {
  const { rows: [row] } = yield { sql: `SELECT ${COLUMNS} FROM limits WHERE limit_key = ? ${d.forUpdate}`, params: [key] };
  if (!row) return null;
  const old = rowToLimit(row);
  const limit: LimitRecord = { key, ...spec, tat: replacedTat(old, spec.rate), createdAt: old.createdAt, updatedAt: now };
  yield {
    sql: 'UPDATE limits SET concurrency = ?, rate_max = ?, rate_interval_ms = ?, tat = ?, updated_at = ? WHERE limit_key = ?',
    params: [spec.concurrency, ...rateColumns(spec), limit.tat, now, key], final: true,
  };
  return { limit, created: false };
}

/**
 * Creates the key's limit while its tenant has fewer than `max` ('full'
 * otherwise), as one transaction; replaces it when another request created it
 * meanwhile. The count comes first and locks the tenant's key range (MySQL:
 * FOR UPDATE, the new key's gap with it; SQLite: the write transaction), so
 * creations at once wait for each other at the count instead of each locking
 * the missing row first and then deadlocking on the other's insert; but for a
 * tenant's first keys, whose empty range locks no row: creations at once may
 * deadlock there, and are run again (the store's retries).
 */
function* createProgram(d: Dialect, key: string, spec: LimitSpec, now: number, max: number | undefined): Program<PutLimit | 'full'> {
  let count = 0;
  if (max !== undefined) {
    const where = tenantKeys(splitLimitKey(key).tenant);
    const { rows: [row] } = yield { sql: `SELECT COUNT(*) AS n FROM limits ${where.sql} ${d.forUpdate}`, params: where.params };
    count = toNum(row?.n ?? 0);
  }
  const replaced = yield* replaceProgram(d, key, spec, now);
  if (replaced) return replaced;
  if (max !== undefined && count >= max) return 'full';
  yield { sql: `INSERT INTO limits (${COLUMNS}) VALUES (?, ?, ?, ?, 0, ?, ?)`, params: [key, spec.concurrency, ...rateColumns(spec), now, now], final: true };
  return { limit: { key, ...spec, tat: 0, createdAt: now, updatedAt: now }, created: true };
}

/**
 * @param inTransaction runs a program as one transaction (the store's); without it, its
 *   statements run one by one, with no lock between (for tests that interleave statements).
 */
export function createSqlLimits(exec: Exec, d: Dialect, inTransaction?: InTransaction): LimitStore {
  const rows = async (sql: string, params: readonly unknown[]) => (await exec(sql, params)).rows;
  const transact: InTransaction = inTransaction ?? ((program) => runAsync(program(), (step) => exec(step.sql, step.params)));
  const getLimit = async (key: string) => {
    const [r] = await rows(`SELECT ${COLUMNS} FROM limits WHERE limit_key = ?`, [key]);
    return r ? rowToLimit(r) : null;
  };
  return {
    /**
     * The common case first: a key that has a limit is replaced, locking its
     * row only; a new key is created under the tenant's count (`createProgram`).
     */
    putLimit: async (key, spec, now, maxPerTenant) => {
      const put = async () => {
        const replaced = await transact(() => replaceProgram(d, key, spec, now));
        if (replaced) return replaced;
        const out = await transact(() => createProgram(d, key, spec, now, maxPerTenant));
        if (out === 'full') throw new AtsError('ATS_ERR_TOO_MANY_LIMITS', `The tenant has ${maxPerTenant} limits, the most it may: delete one before setting one on a new key`);
        return out;
      };
      try {
        return await put();
      } catch (err) {
        // Created by another request between the read of the missing row and the insert (the locks keep it out on
        // both stores as they run; not with statements run one by one, nor on a MySQL session in READ COMMITTED): ours replaces it.
        if (!isDuplicateKey(err)) throw err;
        return put();
      }
    },
    getLimit,
    listLimits: async (limit, tenant) => {
      const where = tenantKeys(tenant);
      return (await rows(`SELECT ${COLUMNS} FROM limits ${where.sql} ORDER BY limit_key LIMIT ?`, [...where.params, Math.min(limit, MAX_LIMITS_LISTED)])).map(rowToLimit);
    },
    // Only the default limits, a page at a time in key order (the primary key's).
    defaultLimitKeys: async (limit, after) => (await rows(
      `SELECT limit_key FROM limits WHERE limit_key > ?
         AND (limit_key LIKE 'type:%' OR limit_key LIKE 'queue:%' OR limit_key LIKE '%/type:%' OR limit_key LIKE '%/queue:%')
       ORDER BY limit_key LIMIT ?`,
      [after ?? '', limit],
    )).map((r) => String(r.limit_key)),
    // One transaction: a limit set on the key again, and a claim under it, between the two deletes would
    // have its running row deleted (the new limit then counting nothing), and a failure between them
    // would leave a limit that lost the count of what it admitted. The limit first: a claim locks it.
    deleteLimit: (key) => transact(function* (): Program<boolean> {
      const { changes } = yield { sql: 'DELETE FROM limits WHERE limit_key = ?', params: [key] };
      yield { sql: 'DELETE FROM limit_running WHERE limit_key = ?', params: [key] };
      return changes === 1;
    }),
    // Per attempt, its job's latest STARTED (the attempt's own: it runs it): the events' (job_id, seq) key read
    // backwards from the job's newest event, a row or two (the STARTED, a HEARTBEAT merged into one row after it).
    runningStarts: async (key, now, first) => (await rows(
      `SELECT s.started_at FROM (
         SELECT (SELECT e.at FROM job_events e WHERE e.job_id = r.job_id AND e.type = 'STARTED' ORDER BY e.seq DESC LIMIT 1) AS started_at
         FROM limit_running r JOIN jobs j ON ${live('r')} WHERE r.limit_key = ?
       ) s WHERE s.started_at IS NOT NULL ORDER BY s.started_at LIMIT ?`,
      [now, key, first],
    )).map((r) => toNum(r.started_at)),
    runningByKey: async (keys, now) => {
      const out = new Map<string, number>();
      if (keys.length === 0) return out;
      // Read only: the rows of attempts still live (a claim prunes those of ended attempts).
      const { sql, params } = countRunning(keys, now);
      const counted = await rows(sql, params);
      for (const r of counted) out.set(String(r.limit_key), toNum(r.n));
      return out;
    },
  };
}
