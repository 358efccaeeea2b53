/**
 * The SQL both stores run, one named constant (or builder, where a list of `?`
 * varies with the batch) per statement. Every statement here is valid on
 * MySQL 8.0, MariaDB 10.11 and SQLite 3.4x; the few dialect words come from
 * `Dialect`.
 */
import type { Band } from '../../engine/lanes.js';
import type { JobFilter } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import { EVENT_COLUMNS, EVENT_SELECT, JOB_COLUMNS, JOB_SELECT } from './rows.js';

/** A statement and its parameters. */
export interface Sql {
  sql: string;
  params: unknown[];
  /**
   * Several `;`-separated statements for a `multiStatement` dialect: the
   * outcome's `each` gives each one's changed rows, in order.
   */
  multi?: boolean;
  /**
   * The transaction's last statement: nothing runs in it after this one, and
   * every check of its outcome also runs in SQL (`guardChangedRows`), so a
   * store may send COMMIT in the same round trip.
   */
  final?: boolean;
}

/**
 * `?, ?, ?`. Built by `repeat`, not an array joined: a batch's statement of a
 * thousand rows took milliseconds of arrays and template strings at each call.
 */
export const marks = (n: number): string => (n > 0 ? `${'?, '.repeat(n - 1)}?` : '');

/** `(?, ?), (?, ?)`: `rows` tuples of `width` marks. */
export const tuples = (rows: number, width: number): string => {
  if (rows <= 0) return '';
  const one = `(${marks(width)})`;
  return `${`${one}, `.repeat(rows - 1)}${one}`;
};

/**
 * Several statements sent as one (`multiStatement` dialects only): one round
 * trip; the outcome's `each` has each statement's changed rows, in order.
 * Params: each statement's, in order.
 */
export function multiStatement(steps: readonly Sql[]): Sql {
  return { sql: steps.map((s) => s.sql).join(';\n'), params: steps.flatMap((s) => s.params), multi: true };
}

/**
 * Fails the round trip unless the statement just before it changed (with
 * mysql2's FOUND_ROWS flag: matched) exactly `changes` rows: two rows selected
 * `INTO` a variable raise ER_TOO_MANY_ROWS (1172), and the statements after it
 * in the same round trip, a COMMIT among them, do not run. MySQL only: the
 * check of a compare-and-set made in SQL, so its transaction can commit in the
 * round trip of its last statement.
 */
export const guardChangedRows = (changes: number): Sql => ({
  sql: `SELECT 1 FROM (SELECT 1 UNION ALL SELECT 2) ats_guard WHERE ROW_COUNT() <> ${Math.trunc(changes)} INTO @ats_guard`,
  params: [],
});

// ---------------------------------------------------------------- jobs

/**
 * Insert new jobs, one tuple per job; with `skipDuplicate`, a job whose
 * (tenant, queue, idempotency_key) is taken is skipped (the caller checks which).
 * Params: per job, the `JOB_COLUMNS` values (`jobValues`).
 */
export function insertJobs(d: Dialect, rows: readonly unknown[][], skipDuplicate: boolean): Sql {
  const sql = `INSERT INTO jobs (${JOB_COLUMNS.join(', ')}) VALUES ${tuples(rows.length, JOB_COLUMNS.length)}`;
  return { sql: skipDuplicate ? `${sql} ${d.skipDuplicate}` : sql, params: rows.flat() };
}

/**
 * Which of these job ids exist (after an insert that may have skipped some).
 * Params: the ids.
 */
export function selectJobIds(ids: readonly string[]): Sql {
  return { sql: `SELECT id FROM jobs WHERE id IN (${marks(ids.length)})`, params: [...ids] };
}

/**
 * Read jobs for a transition, locked until commit, with the type of each
 * one's last event (`last_event_type`: may a heartbeat coalesce into it). Locks
 * are taken in id order so two transactions over overlapping sets cannot
 * deadlock each other.
 *
 * Only the job rows are locked: the last event is read by a subquery, which a
 * locking read does not lock (InnoDB). A join would lock the event rows too,
 * and with them the gap before each one in `(job_id, seq)`, where the next
 * event of the job with the id just below goes: two transactions over
 * interleaved ids then deadlock on each other's inserts. A subquery that reads
 * an older snapshot than the locked row may miss that row's last event; that
 * costs only a heartbeat appended instead of coalesced.
 * Params: the ids, sorted.
 */
export function selectJobsForUpdate(d: Dialect, sortedIds: readonly string[]): Sql {
  return {
    sql: `SELECT ${JOB_SELECT_J},
        (SELECT e.type FROM job_events e WHERE e.job_id = j.id AND e.seq = j.version) AS last_event_type
      FROM jobs j
      WHERE j.id IN (${marks(sortedIds.length)}) ORDER BY j.id ${d.forUpdate}`,
    params: [...sortedIds],
  };
}

/** `JOB_SELECT` qualified by the alias `j`. */
const JOB_SELECT_J = JOB_SELECT.split(', ').map((c) => `j.${c}`).join(', ');

/**
 * Replace a job's last event, a heartbeat, by a later heartbeat of the same
 * attempt (see `TransitionWrite.coalesce`). Matches no row unless the event is
 * still the heartbeat the writer read (its `at`): a compare-and-set, like the
 * job's.
 * Params: at, data, job_id, seq, previous at
 */
export const COALESCE_HEARTBEAT = `UPDATE job_events SET at = ?, data = ?
  WHERE job_id = ? AND seq = ? AND type = 'HEARTBEAT' AND at = ?`;

/**
 * Compare-and-set a job to its next version; matches no row when the job is
 * not at `expected_version` any more (someone else moved it).
 * Type, queue, payload, priority, timeout, key and created_at never change.
 * Params: state, version, attempt, due_at, lease_until, snapshot, updated_at, id, expected_version
 */
export const UPDATE_JOB_CAS = `UPDATE jobs
  SET state = ?, version = ?, attempt = ?, due_at = ?, lease_until = ?, snapshot = ?, updated_at = ?
  WHERE id = ? AND version = ?`;

/**
 * Compare-and-set many jobs in one statement (MySQL): the new values are a
 * derived table joined to `jobs` by id and expected version, so the
 * statement changes exactly as many rows as it has tuples unless a job moved
 * (the caller compares). One statement parsed and planned instead of one per
 * job; `UPDATE_JOB_CAS`'s columns, in its order.
 * Params: per job, state, version, attempt, due_at, lease_until, snapshot, updated_at, id, expected_version
 */
export function updateJobsCas(rows: number): Sql['sql'] {
  const first = 'SELECT ? AS state, ? AS version, ? AS attempt, ? AS due_at, ? AS lease_until, ? AS snapshot, ? AS updated_at, ? AS id, ? AS expected_version';
  const rest = ' UNION ALL SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?'.repeat(rows - 1);
  return `UPDATE jobs j JOIN (${first}${rest}) v ON j.id = v.id AND j.version = v.expected_version
  SET j.state = v.state, j.version = v.version, j.attempt = v.attempt, j.due_at = v.due_at,
    j.lease_until = v.lease_until, j.snapshot = v.snapshot, j.updated_at = v.updated_at`;
}

/**
 * One job by id.
 * Params: id
 */
export const SELECT_JOB = `SELECT ${JOB_SELECT} FROM jobs WHERE id = ?`;

/**
 * The job of a tenant holding an idempotency key in a queue (unique key
 * `tenant, queue, idempotency_key`).
 * Params: tenant, queue, idempotency_key
 */
export const SELECT_JOB_BY_KEY = `SELECT ${JOB_SELECT} FROM jobs WHERE tenant = ? AND queue = ? AND idempotency_key = ?`;

/**
 * The index a tenant's page of jobs is read through, newest first with no
 * sort: its queue's or type's `(tenant, …, id)`, else, by state, `(state,
 * tenant, id)`, else `(tenant, id)`: each holds just the tenant's jobs in id
 * order, so a page reads no other tenant's. Named, because MariaDB otherwise
 * intersects two of them and sorts every matching job to return a page.
 */
function tenantListIndex(f: JobFilter): string {
  if (f.queue !== undefined) return 'ix_jobs_tenant_queue_id';
  if (f.type !== undefined) return 'ix_jobs_tenant_type_id';
  if (f.state !== undefined) return 'ix_jobs_state_tenant_id';
  return 'ix_jobs_tenant_id';
}

/** Conditions joined by AND, and their params. */
interface Conditions {
  where: string[];
  params: unknown[];
}

/**
 * A page's conditions, in two parts: those the index `tenantListIndex` names
 * holds (the tenant, its column, the cursor: a range of the index), and
 * those tested on each row it reads (a state over a type's or queue's index,
 * a type over a queue's, the creation time).
 */
function jobPageConditions(f: JobFilter): { ranged: Conditions; tested: Conditions } {
  const ranged: Conditions = { where: [], params: [] };
  const tested: Conditions = { where: [], params: [] };
  const add = (into: Conditions, clause: string, v: unknown) => {
    into.where.push(clause);
    into.params.push(v);
  };
  const index = f.tenant === undefined ? null : tenantListIndex(f);
  if (f.tenant !== undefined) add(ranged, 'tenant = ?', f.tenant);
  if (f.state !== undefined) add(index === 'ix_jobs_state_tenant_id' ? ranged : tested, 'state = ?', f.state);
  if (f.type !== undefined) add(index === 'ix_jobs_tenant_type_id' ? ranged : tested, 'type = ?', f.type);
  if (f.queue !== undefined) add(ranged, 'queue = ?', f.queue);
  if (f.afterId !== undefined) add(ranged, 'id < ?', f.afterId);
  // Not bounds of the id: rows of earlier releases on MySQL hold ids of their host's clock and
  // creation times of the database's, which may be apart by any amount (README, clock skew).
  if (f.createdAfter !== undefined) add(tested, 'created_at >= ?', f.createdAfter);
  if (f.createdBefore !== undefined) add(tested, 'created_at < ?', f.createdBefore);
  return { ranged, tested };
}

/** The FROM and WHERE of a page of jobs (`listJobs`, `listJobSizes`), and their params. */
function jobPageFilter(d: Dialect, f: JobFilter): Sql {
  const { ranged, tested } = jobPageConditions(f);
  const where = [...ranged.where, ...tested.where];
  const filter = where.length ? ` WHERE ${where.join(' AND ')}` : '';
  const index = f.tenant === undefined ? '' : ` ${d.useIndex(tenantListIndex(f))}`;
  return { sql: `FROM jobs${index}${filter}`, params: [...ranged.params, ...tested.params] };
}

/**
 * Whether a tenant's page of `f` tests a state, a type or a creation time on
 * each row its index reads (`jobPageConditions`): what the tenant's jobs
 * seldom match would walk all of them to fill a page (a million rows for none
 * found; a list by `createdAfter` walked the tenant's history to its first
 * job on its last page), so such a page is read by `scanJobSizes`, at most
 * `MAX_PAGE_SCAN` index entries a read (pages.ts).
 */
export function testsRows(f: JobFilter): boolean {
  return f.tenant !== undefined && jobPageConditions(f).tested.where.length > 0;
}

/** The bytes a job's payload and snapshot (which holds its result and last error) take. */
const JOB_BYTES = 'COALESCE(OCTET_LENGTH(payload), 0) + OCTET_LENGTH(snapshot)';

/**
 * `limit` index entries of a page that `testsRows` after the previous one's
 * last id, newest first: each one's id, and the bytes of those that match
 * every filter (null for the others, whose large columns are not read).
 * Params: [the tested conditions'], tenant, [its column], [after_id], limit
 */
export function scanJobSizes(d: Dialect, f: JobFilter): Sql {
  const { ranged, tested } = jobPageConditions(f);
  return {
    sql: `SELECT id, CASE WHEN ${tested.where.join(' AND ')} THEN ${JOB_BYTES} END AS bytes FROM jobs ${d.useIndex(tenantListIndex(f))}`
      + ` WHERE ${ranged.where.join(' AND ')} ORDER BY id DESC LIMIT ?`,
    params: [...tested.params, ...ranged.params, f.limit],
  };
}

/**
 * A page of jobs, newest first (ids are ULIDs: they sort by creation time),
 * optionally filtered by tenant, state, type, queue and creation time, after
 * the previous page's last id. With a tenant (every API list), through the
 * index `tenantListIndex` names.
 * Params: those of the index's range ([tenant], [its column], [after_id]), then those tested on each row it reads ([state], [type], [created times]) (`jobPageConditions`), limit
 */
export function listJobs(d: Dialect, f: JobFilter): Sql {
  const { sql, params } = jobPageFilter(d, f);
  return { sql: `SELECT ${JOB_SELECT} ${sql} ORDER BY id DESC LIMIT ?`, params: [...params, f.limit] };
}

/**
 * The ids of `listJobs`'s page and the bytes each job's payload and snapshot
 * (which holds its result and last error) take: the page is cut by size
 * before those rows are read. Params: as `listJobs`.
 */
export function listJobSizes(d: Dialect, f: JobFilter): Sql {
  const { sql, params } = jobPageFilter(d, f);
  return { sql: `SELECT id, ${JOB_BYTES} AS bytes ${sql} ORDER BY id DESC LIMIT ?`, params: [...params, f.limit] };
}

/**
 * Jobs by id, newest first. Params: the ids.
 */
export function selectJobs(ids: readonly string[]): Sql {
  return { sql: `SELECT ${JOB_SELECT} FROM jobs WHERE id IN (${marks(ids.length)}) ORDER BY id DESC`, params: [...ids] };
}

/**
 * The first `limit` rows of two ranges of one index, one per state, merged in
 * the order of `order`: each range is read in the index's order and stops at
 * `limit` rows, where `state IN (a, b) … ORDER BY` sorted every row of both
 * (a backlog of a million due jobs, sorted at each pass of the timers).
 * `where` takes one param, `value`.
 */
function firstOfTwoStates(
  d: Dialect, columns: string, states: readonly [string, string], where: string, order: string,
): (value: number, limit: number) => Sql {
  // Named: MariaDB may otherwise read another index of the state in order, testing `due_at` on every row of a
  // backlog (it chose `(state, updated_at)` before migration 0027 dropped it).
  const range = (state: string) => `SELECT * FROM (SELECT ${columns}, ${order} AS sort_key FROM jobs ${d.useIndex('ix_jobs_state_due_updated')}`
    + ` WHERE state = '${state}' AND ${where} ORDER BY ${order} LIMIT ?) AS s_${state}`;
  const sql = `SELECT * FROM (${range(states[0])} UNION ALL ${range(states[1])}) AS firsts ORDER BY sort_key LIMIT ?`;
  return (value, limit) => ({ sql, params: [value, limit, value, limit, limit] });
}

/**
 * Delayed jobs and retries whose due time has come, the most overdue first
 * (index `state, due_at, updated_at`, a range of each state; `due_at` is NULL
 * unless the timers must act), as a statement of (now, limit).
 */
export const findDue = (d: Dialect): ((now: number, limit: number) => Sql) => firstOfTwoStates(d, 'id, state, attempt, version', ['pending', 'retrying'], 'due_at <= ?', 'due_at');

/**
 * Running jobs whose lease ended, the oldest lease first (index `state, due_at, updated_at`:
 * a running job's `due_at` is its lease end, see `project`). Also a running
 * job whose `due_at` is NULL, as a process from before migration 0004 writes
 * it during a rolling upgrade, by its `lease_until` (NULL sorts first: one
 * index range).
 * Params: now, now, limit
 */
export const FIND_EXPIRED_LEASES = `SELECT id, state, attempt, version FROM jobs
  WHERE state = 'running' AND (due_at <= ? OR (due_at IS NULL AND lease_until <= ?)) ORDER BY due_at LIMIT ?`;

/**
 * Jobs whose dispatch went out (or may have) and that no worker started since
 * `before`, the oldest first (index `state, due_at, updated_at`: the three conditions, a range of each state): published ones, and
 * pending ones whose dispatch was issued (`due_at` NULL: see `project`) but
 * whose PUBLISHED was never recorded (the relay's bookkeeping write failed,
 * or the relay died before it). As a statement of (before, limit).
 */
export const findLostDispatches = (d: Dialect): ((before: number, limit: number) => Sql) => firstOfTwoStates(
  d, "id, state, attempt, version, type, queue, priority, json_extract(snapshot, '$.context.updatedAt') AS last_transition_at",
  ['pending', 'published'], 'due_at IS NULL AND updated_at <= ?', 'updated_at',
);

/** When the oldest row still in the outbox was written: the first entry of the primary key. */
export const SELECT_OLDEST_OUTBOX_AT = 'SELECT created_at FROM outbox ORDER BY id LIMIT 1';

/**
 * Dispatches a live worker holds (`keepDispatches`): the jobs among `n` ids
 * still waiting for a worker, as `findLostDispatches` sees them, get a later
 * update time. Primary-key lookups; never moves the time back.
 * Params: at, the ids, at
 */
export const keepDispatches = (n: number): string => `UPDATE jobs SET updated_at = ?
  WHERE id IN (${marks(n)}) AND state IN ('pending', 'published') AND due_at IS NULL AND updated_at < ?`;

// ---------------------------------------------------------------- events

/**
 * Append job events (`seq` unique per job: a second writer of the same seq fails).
 * Params: per event, the `EVENT_COLUMNS` values (`eventValues`).
 */
export function insertEvents(rows: readonly unknown[][]): Sql {
  return {
    sql: `INSERT INTO job_events (${EVENT_COLUMNS.join(', ')}) VALUES ${tuples(rows.length, EVENT_COLUMNS.length)}`,
    params: rows.flat(),
  };
}

/**
 * A job's events in seq order, from `after_seq + 1`.
 * Params: job_id, after_seq
 */
export const SELECT_EVENTS = `SELECT ${EVENT_SELECT} FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq`;

/**
 * Every job's events after a global position, in id order, with the type,
 * queue and tenant of their job (the WebSocket stream's tail and replay; the PK range
 * scan plus one PK lookup per row). Only committed rows are seen, so the ids
 * returned may have gaps: the stream's tail handles those (engine/event-tail.ts).
 * Params: after_id, through_id (the highest id to read), limit
 */
export const SELECT_EVENTS_AFTER = `SELECT e.id, e.job_id, e.seq, e.type, e.from_state, e.to_state, e.at, e.data,
    j.type AS job_type, j.queue AS job_queue, j.tenant AS job_tenant
  FROM job_events e JOIN jobs j ON j.id = e.job_id
  WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?`;

/**
 * One job's events after a global position, in id order, as `SELECT_EVENTS_AFTER` reads them (the unique
 * (job_id, seq) index, then a PK lookup per row; a job's ids grow with its seq: server/stream/cursor.ts). The job
 * view's history with its stream cursor, and a stream replay for one job. Params: job_id, after_id, through_id, limit
 */
export const SELECT_JOB_EVENTS_AFTER = `SELECT e.id, e.job_id, e.seq, e.type, e.from_state, e.to_state, e.at, e.data,
    j.type AS job_type, j.queue AS job_queue, j.tenant AS job_tenant
  FROM job_events e JOIN jobs j ON j.id = e.job_id
  WHERE e.job_id = ? AND e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?`;

/**
 * The bytes of every job's events after a global position, in id order (the
 * rows `SELECT_EVENTS_AFTER` would read, without reading their data, nor their
 * jobs: the PK range alone): the stream reads first these, then only the rows
 * that fit its bytes. Params: after_id, limit
 */
export const SELECT_EVENT_SIZES_AFTER = 'SELECT id, OCTET_LENGTH(data) AS bytes FROM job_events WHERE id > ? ORDER BY id LIMIT ?';

/**
 * The priority bands of engine/lanes.ts (`bandOf`) as conditions on the
 * `priority` column: a band's own jobs, and those of the bands above it
 * (null: none is above).
 */
export const BAND_PRIORITIES: ReadonlyMap<Band, { same: string; above: string | null }> = new Map([
  ['high', { same: 'priority > 0', above: null }],
  ['normal', { same: 'priority = 0', above: 'priority > 0' }],
  ['low', { same: 'priority < 0', above: 'priority >= 0' }],
]);

/**
 * How many jobs of a queue wait ahead of one (the advisor's ETA): pending or
 * published, due by now (a pending job's `due_at` is its run time until its
 * dispatch is issued, then NULL), in `priorities`, and with `below` created
 * before it (ids sort by creation), or with `below` and `joining` any but it
 * (a job that joins the end of its lane when due: engine/ports.ts). Reads at most `limit` waiting jobs of
 * every queue (with `below`, those created before it, or any but it), through
 * `ix_jobs_state_id` (a range on the id), and counts those of the queue among them: `n_read` is
 * how many were read, so fewer than `limit` means every one was. The limit
 * is on the rows read, not on those counted: the index has no queue, so a
 * limit on the count alone would still read every other queue's waiting
 * jobs (and a job of a band below the top one, every waiting job, for the
 * bands above). Never the queue's whole history, which the planner would
 * walk on an index of the queue (SQLite, without statistics, picks one).
 * Params: queue, now, [id,] limit
 */
export const countWaitingAhead = (d: Dialect, priorities: string, below: boolean, joining = false): string =>
  `SELECT COUNT(*) AS n_read, COALESCE(SUM(CASE WHEN queue = ? AND (due_at IS NULL OR due_at <= ?) AND ${priorities} THEN 1 ELSE 0 END), 0) AS n
  FROM (SELECT queue, due_at, priority FROM jobs ${d.useIndex('ix_jobs_state_id')}
  WHERE state IN ('pending', 'published')${below ? (joining ? ' AND id <> ?' : ' AND id < ?') : ''} LIMIT ?) waiting`;

/** The newest event id (NULL for an empty table): one index read. */
export const SELECT_LAST_EVENT_ID = 'SELECT MAX(id) AS id FROM job_events';

// ---------------------------------------------------------------- outbox

/**
 * Delete outbox rows the log acknowledged: a published row has no further use
 * (consumers dedupe by the outbox id header, which needs no row). On MySQL
 * the LIMIT stops the scan at the last of them: InnoDB merges consecutive ids
 * into one range and would otherwise read (and wait for the lock of) the row
 * after it, which another relay may hold and be deleting: a deadlock.
 * Params: the ids (then, on MySQL, their count).
 */
export function deleteOutbox(d: Dialect, ids: readonly number[]): Sql {
  const sql = `DELETE FROM outbox WHERE id IN (${marks(ids.length)})`;
  return d.name === 'mysql' ? { sql: `${sql} LIMIT ?`, params: [...ids, ids.length] } : { sql, params: [...ids] };
}

/** The messages the outbox holds, as an SQL aggregate: a row's `message_count`, or one where that is NULL (outbox.ts). */
export const OUTBOX_MESSAGES = 'COALESCE(SUM(COALESCE(message_count, 1)), 0)';

/**
 * How many messages wait for the relay (every row's: a row holds
 * `message_count` messages, or one when that is NULL). Params: none.
 */
export const COUNT_UNPUBLISHED = `SELECT ${OUTBOX_MESSAGES} AS n FROM outbox`;

// ---------------------------------------------------------------- migrations

/**
 * The migrations ledger: one row per applied migration file. Params: none.
 * BIGINT is 64-bit on both (SQLite stores any INTEGER in up to 8 bytes).
 */
export const CREATE_SCHEMA_MIGRATIONS = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  applied_at BIGINT NOT NULL
)`;

/**
 * Applied migration versions. Params: none.
 */
export const SELECT_APPLIED_MIGRATIONS = 'SELECT version FROM schema_migrations ORDER BY version';

/**
 * Record one applied migration.
 * Params: version, name, applied_at
 */
export const INSERT_MIGRATION = 'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)';
