/**
 * The read side of the JobStore port, written once over a "run this SELECT"
 * function: plain reads, no locks, shared by both stores.
 */
import { JOB_STATES, type JobState } from '../../machines/job.machine.js';
import type { DueJob, JobEventRecord, JobFilter, JobRecord, JobStore, Stats } from '../../engine/ports.js';
import { rowToDue, rowToEvent, rowToJob, rowToStreamEvent, toNum, type Row } from './rows.js';
import {
  COUNT_BY_QUEUE_STATE, COUNT_BY_STATE, COUNT_BY_TYPE_STATE, COUNT_UNPUBLISHED, FIND_DUE, FIND_EXPIRED_LEASES,
  FIND_LOST_DISPATCHES, SELECT_EVENTS, SELECT_EVENTS_AFTER, SELECT_JOB, SELECT_JOB_BY_KEY, listJobs,
} from './statements.js';

/** Runs one SELECT and returns its rows. */
export type Query = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

export type SqlReads = Pick<
  JobStore,
  'getJob' | 'findByIdempotencyKey' | 'getEvents' | 'readEventsAfter' | 'listJobs' | 'stats' | 'countUnpublished' | 'findDue' | 'findExpiredLeases' | 'findLostDispatches'
>;

export function createSqlReads(query: Query): SqlReads {
  const one = async (sql: string, params: unknown[]): Promise<JobRecord | null> => {
    const [row] = await query(sql, params);
    return row ? rowToJob(row) : null;
  };
  const due = async (sql: string, at: number, limit: number): Promise<DueJob[]> =>
    (await query(sql, [at, limit])).map(rowToDue);
  return {
    getJob: (id) => one(SELECT_JOB, [id]),
    findByIdempotencyKey: (queue, key) => one(SELECT_JOB_BY_KEY, [queue, key]),
    getEvents: async (jobId, afterSeq = 0): Promise<JobEventRecord[]> =>
      (await query(SELECT_EVENTS, [jobId, afterSeq])).map(rowToEvent),
    readEventsAfter: async (afterId, limit) => (await query(SELECT_EVENTS_AFTER, [afterId, limit])).map(rowToStreamEvent),
    listJobs: async (filter: JobFilter) => {
      const { sql, params } = listJobs(filter);
      return (await query(sql, params)).map(rowToJob);
    },
    stats: async () => foldStats(await query(COUNT_BY_STATE, []), await query(COUNT_BY_TYPE_STATE, []), await query(COUNT_BY_QUEUE_STATE, [])),
    countUnpublished: async () => toNum((await query(COUNT_UNPUBLISHED, []))[0]?.n ?? 0),
    findDue: (now, limit) => due(FIND_DUE, now, limit),
    findExpiredLeases: (now, limit) => due(FIND_EXPIRED_LEASES, now, limit),
    findLostDispatches: (before, limit) => due(FIND_LOST_DISPATCHES, before, limit),
  };
}

/** GROUP BY rows into `Stats`; `byState` lists every state, 0 when none. */
export function foldStats(byState: Row[], byType: Row[], byQueue: Row[]): Stats {
  const states = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  for (const r of byState) states[r.state as JobState] = toNum(r.n);
  return { byState: states, byType: nest(byType), byQueue: nest(byQueue) };
}

function nest(rows: Row[]): Record<string, Partial<Record<JobState, number>>> {
  const out: Record<string, Partial<Record<JobState, number>>> = {};
  for (const r of rows) (out[String(r.k)] ??= {})[r.state as JobState] = toNum(r.n);
  return out;
}
