/**
 * The ScheduleStore port over one "run this statement" function, shared by
 * both stores. Each operation is one statement (or, for ticks, an insert and
 * a prune that need not be atomic; for the jobs of ticks, a read per number of
 * digits of their times): a schedule's row moves on by compare-and-set on its
 * version, so no transaction spans statements.
 * A schedule is keyed by (tenant, name), and so are its ticks: every
 * statement on one names both, so no tenant reaches another's.
 */
import type { ScheduleRecord, ScheduleStore, ScheduleTick, TickJob } from '../../engine/ports.js';
import { MAX_SCHEDULES, scheduleTickKeyPrefix, tooManySchedules } from '../../engine/schedules.js';
import type { Dialect } from './dialect.js';
import type { InTransaction } from './keys.js';
import { runAsync, type Exec, type Program } from './program.js';
import type { Sql } from './statements.js';
import { JOB_SELECT, rowToJob, toJson, toNum, type Row } from './rows.js';

const COLUMNS = [
  'tenant', 'name', 'cron', 'timezone', 'overlap', 'catch_up', 'paused', 'job', 'next_at', 'last_tick_at', 'last_job_id',
  'submitted', 'skipped', 'missed', 'version', 'firing_queue', 'created_at', 'updated_at',
] as const;
const SELECT = `SELECT ${COLUMNS.join(', ')} FROM schedules`;
const SETS = COLUMNS.filter((c) => c !== 'tenant' && c !== 'name' && c !== 'created_at').map((c) => `${c} = ?`).join(', ');

function values(s: ScheduleRecord): unknown[] {
  return [
    s.tenant, s.name, s.cron, s.timezone, s.overlap, s.catchUp, s.paused ? 1 : 0, toJson(s.job), s.nextAt, s.lastTickAt, s.lastJobId,
    s.submitted, s.skipped, s.missed, s.version, s.firingQueue ?? null, s.createdAt, s.updatedAt,
  ];
}

const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : toNum(v));

function rowToSchedule(r: Row): ScheduleRecord {
  return {
    tenant: String(r.tenant), name: String(r.name), cron: String(r.cron), timezone: String(r.timezone),
    overlap: r.overlap as ScheduleRecord['overlap'], catchUp: r.catch_up as ScheduleRecord['catchUp'], paused: toNum(r.paused) === 1,
    job: JSON.parse(String(r.job)) as ScheduleRecord['job'],
    nextAt: numOrNull(r.next_at), lastTickAt: numOrNull(r.last_tick_at), lastJobId: (r.last_job_id as string | null) ?? null,
    submitted: toNum(r.submitted), skipped: toNum(r.skipped), missed: toNum(r.missed), version: toNum(r.version),
    createdAt: toNum(r.created_at), updatedAt: toNum(r.updated_at),
    ...(r.firing_queue === null || r.firing_queue === undefined ? {} : { firingQueue: String(r.firing_queue) }),
  };
}

function rowToTick(r: Row): ScheduleTick {
  return {
    tenant: String(r.tenant), schedule: String(r.schedule_name), tickAt: toNum(r.tick_at), outcome: r.outcome as ScheduleTick['outcome'],
    jobId: (r.job_id as string | null) ?? null, at: toNum(r.at),
  };
}

/**
 * Due schedules in the order of ix_schedules_due (next_at, tenant, name), a
 * total order: a page after a row reads on from there, through the index, past
 * rows that share its next_at. SQLite seeks to the row with a row value;
 * MariaDB does not range-scan a row value, so it gets the comparison spelled
 * out, bounded below by next_at (rows that share the row's next_at are read
 * again from the first of them). Params: now, limit; or now, the row's
 * next_at, tenant and name (SQLite), or next_at three times, tenant twice and
 * name (MariaDB), then limit.
 */
const SELECT_DUE = `${SELECT} WHERE next_at <= ? AND paused = 0 ORDER BY next_at, tenant, name LIMIT ?`;
const SELECT_DUE_AFTER_ROW = `${SELECT} WHERE next_at <= ? AND paused = 0 AND (next_at, tenant, name) > (?, ?, ?)
  ORDER BY next_at, tenant, name LIMIT ?`;
const SELECT_DUE_AFTER_SPELLED = `${SELECT} WHERE next_at <= ? AND paused = 0 AND next_at >= ?
  AND (next_at > ? OR (next_at = ? AND (tenant > ? OR (tenant = ? AND name > ?)))) ORDER BY next_at, tenant, name LIMIT ?`;

/**
 * A tenant's jobs in a queue whose idempotency keys are in a range (both ends in it) and of a length in bytes,
 * greatest first, through the unique key (tenant, queue, idempotency_key); keys compare bytewise (utf8mb4_bin,
 * SQLite's BINARY). The length is checked in SQL, before the limit: keys of another length sort inside the
 * range too (`…:19000000000000`, a tick of more digits; `…:1900000030000:1900000060000`, of a schedule named
 * as this one's keys begin, `nightly:<createdAt>`), and as many of those as the limit would leave none for
 * the ticks' own.
 * Params: tenant, queue, lowest key, highest key, the keys' length in bytes, limit
 */
const SELECT_JOBS_BY_KEY_RANGE = `SELECT ${JOB_SELECT} FROM jobs WHERE tenant = ? AND queue = ? AND idempotency_key >= ? AND idempotency_key <= ?
  AND OCTET_LENGTH(idempotency_key) = ? ORDER BY idempotency_key DESC LIMIT ?`;

/**
 * The ticks from `from` to before `to` as ranges of times of as many digits each, the highest first:
 * the keys of ticks of one number of digits sort as their times do (a tick key ends with its time),
 * those of more or fewer digits do not (`…:999` sorts after `…:1000`).
 */
export function sameDigitRanges(from: number, to: number): Array<[lowest: number, highest: number]> {
  const out: Array<[number, number]> = [];
  for (let lo = from; lo < to; lo = 10 ** String(lo).length) out.unshift([lo, Math.min(to, 10 ** String(lo).length) - 1]);
  return out;
}

/** Most schedules listed: as many as a tenant may have (engine/schedules.ts MAX_SCHEDULES). */
export const MAX_SCHEDULES_LISTED = MAX_SCHEDULES;

/**
 * Inserts a schedule while its tenant has fewer than `max`: 'full' otherwise. The count's lock
 * (MySQL: the tenant's range of the primary key, FOR UPDATE; SQLite: the write transaction) makes
 * two creations at once count one after the other. A name inserted meanwhile is a duplicate-key error;
 * one in use is 'exists', also at the cap.
 */
function* insertBoundedProgram(d: Dialect, insert: Sql, tenant: string, name: string, max: number): Program<'created' | 'exists' | 'full'> {
  const { rows: [count] } = yield { sql: `SELECT COUNT(*) AS n FROM schedules WHERE tenant = ? ${d.forUpdate}`, params: [tenant] };
  if (toNum(count?.n ?? 0) >= max) {
    // A name in use is that conflict, whatever the count.
    const { rows: [taken] } = yield { sql: 'SELECT 1 AS n FROM schedules WHERE tenant = ? AND name = ?', params: [tenant, name] };
    return taken ? 'exists' : 'full';
  }
  yield insert;
  return 'created';
}

/** A driver error that says the primary key is taken (MySQL ER_DUP_ENTRY, SQLite's constraint codes). */
export function isDuplicateKey(err: unknown): boolean {
  const e = err as { errno?: unknown; code?: unknown } | null;
  return e?.errno === 1062 || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * @param inTransaction runs a program as one transaction (the store's); without it, its
 *   statements run one by one, with no lock between (for tests that interleave statements).
 */
export function createSqlSchedules(exec: Exec, d: Dialect, inTransaction?: InTransaction): ScheduleStore {
  const keepDuplicate = d.name === 'mysql' ? 'ON DUPLICATE KEY UPDATE tick_at = tick_at' : 'ON CONFLICT DO NOTHING';
  // A plain INSERT: with FOUND_ROWS (mysql2's default) a duplicate left as it is by ON DUPLICATE KEY counts as a changed row.
  const insertSchedule = `INSERT INTO schedules (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`;
  const rows = async (sql: string, params: readonly unknown[]) => (await exec(sql, params)).rows;
  const transact: InTransaction = inTransaction ?? ((program) => runAsync(program(), (step) => exec(step.sql, step.params)));
  return {
    createSchedule: async (s, max) => {
      try {
        if (max === undefined) {
          await exec(insertSchedule, values(s));
          return true;
        }
        const outcome = await transact(() => insertBoundedProgram(d, { sql: insertSchedule, params: values(s) }, s.tenant, s.name, max));
        if (outcome === 'full') {
          throw tooManySchedules(max);
        }
        return outcome === 'created';
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    },
    getSchedule: async (tenant, name) => {
      const [r] = await rows(`${SELECT} WHERE tenant = ? AND name = ?`, [tenant, name]);
      return r ? rowToSchedule(r) : null;
    },
    countSchedules: async (tenant) => toNum((await rows('SELECT COUNT(*) AS n FROM schedules WHERE tenant = ?', [tenant]))[0]?.n ?? 0),
    listSchedules: async (tenant) => (tenant === undefined
      ? await rows(`${SELECT} ORDER BY tenant, name LIMIT ?`, [MAX_SCHEDULES_LISTED])
      : await rows(`${SELECT} WHERE tenant = ? ORDER BY name LIMIT ?`, [tenant, MAX_SCHEDULES_LISTED])).map(rowToSchedule),
    replaceSchedule: async (s, expectedVersion) => {
      const v = values(s);
      // SETS skips tenant and name (the first two) and created_at (second last).
      // And only the schedule `s` was read from: one deleted and created again under its name starts again at version 1,
      // and a change read before (a PATCH, the runner's pass) must not write the old one over it.
      const params = [...v.slice(2, COLUMNS.length - 2), v[COLUMNS.length - 1], s.tenant, s.name, expectedVersion, s.createdAt];
      return (await exec(`UPDATE schedules SET ${SETS} WHERE tenant = ? AND name = ? AND version = ? AND created_at = ?`, params)).changes === 1;
    },
    // The schedule first, then its ticks: a runner recording ticks meanwhile either finds the schedule
    // gone (and deletes what it recorded, below) or recorded them before this deletes them.
    deleteSchedule: async (tenant, name) => {
      const deleted = (await exec('DELETE FROM schedules WHERE tenant = ? AND name = ?', [tenant, name])).changes === 1;
      await exec('DELETE FROM schedule_ticks WHERE tenant = ? AND schedule_name = ?', [tenant, name]);
      return deleted;
    },
    dueSchedules: async (now, limit, after) => (after === undefined
      ? await rows(SELECT_DUE, [now, limit])
      : d.name === 'sqlite'
        ? await rows(SELECT_DUE_AFTER_ROW, [now, after.nextAt, after.tenant, after.name, limit])
        : await rows(SELECT_DUE_AFTER_SPELLED, [now, after.nextAt, after.nextAt, after.nextAt, after.tenant, after.tenant, after.name, limit])).map(rowToSchedule),
    tickJobs: async (s, queue, from, to, limit) => {
      const prefix = scheduleTickKeyPrefix(s);
      const found: TickJob[] = [];
      for (const [lowest, highest] of sameDigitRanges(from, to)) {
        if (found.length >= limit) break;
        const bytes = Buffer.byteLength(prefix + lowest);
        const range = await rows(SELECT_JOBS_BY_KEY_RANGE, [s.tenant, queue, prefix + lowest, prefix + highest, bytes, limit - found.length]);
        for (const job of range.map(rowToJob)) {
          // Of its length and in its range, a key is of one of its ticks' times (only the scheduler makes `ats:` keys); checked all the same.
          const tickAt = Number(job.idempotencyKey!.slice(prefix.length));
          if (tickAt >= lowest && tickAt <= highest) found.push({ tickAt, job });
        }
      }
      return found;
    },
    recordTicks: async (ticks, keep) => {
      if (ticks.length === 0) return;
      const params = ticks.flatMap((t) => [t.tenant, t.schedule, t.tickAt, t.outcome, t.jobId, t.at]);
      await exec(`INSERT INTO schedule_ticks (tenant, schedule_name, tick_at, outcome, job_id, at) VALUES ${
        ticks.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')} ${keepDuplicate}`, params);
      // Each schedule once: a Map from tenant and name (neither holds a NUL) to the pair.
      const schedules = new Map(ticks.map((t) => [`${t.tenant}\u0000${t.schedule}`, [t.tenant, t.schedule] as const]));
      for (const [tenant, name] of schedules.values()) {
        const [oldest] = await rows('SELECT tick_at FROM schedule_ticks WHERE tenant = ? AND schedule_name = ? ORDER BY tick_at DESC LIMIT 1 OFFSET ?', [tenant, name, keep - 1]);
        if (oldest) await exec('DELETE FROM schedule_ticks WHERE tenant = ? AND schedule_name = ? AND tick_at < ?', [tenant, name, oldest.tick_at]);
        // Deleted while its runner was recording: no ticks of it may stay behind.
        const [kept] = await rows('SELECT 1 AS n FROM schedules WHERE tenant = ? AND name = ?', [tenant, name]);
        if (!kept) await exec('DELETE FROM schedule_ticks WHERE tenant = ? AND schedule_name = ?', [tenant, name]);
      }
    },
    listTicks: async (tenant, name, limit) =>
      (await rows('SELECT tenant, schedule_name, tick_at, outcome, job_id, at FROM schedule_ticks WHERE tenant = ? AND schedule_name = ? ORDER BY tick_at DESC LIMIT ?', [tenant, name, limit])).map(rowToTick),
  };
}
