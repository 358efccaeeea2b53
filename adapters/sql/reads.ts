/**
 * The read side of the JobStore port, written once over a "run this SELECT"
 * function: plain reads, no locks, shared by both stores.
 */
import type { DueJob, JobEventRecord, JobFilter, JobRecord, JobStore, WaitingAhead } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import { statsOf } from '../../engine/job-counts.js';
import { bandOf } from '../../engine/lanes.js';
import { RECOUNT_JOBS, RECOUNT_TENANT_JOBS, SELECT_JOB_COUNTS, SELECT_TENANT_JOB_COUNTS, rowsToCounts } from './counts.js';
import { readEdgeStats, readOutboxBacklog } from './edges.js';
import { rowToDue, rowToEvent, rowToLostDispatch, rowToJob, rowToStreamEvent, toNum, type Row } from './rows.js';
import {
  BAND_PRIORITIES, COUNT_UNPUBLISHED, countWaitingAhead, findDue, FIND_EXPIRED_LEASES, findLostDispatches, SELECT_EVENTS, SELECT_OLDEST_OUTBOX_AT, SELECT_EVENTS_AFTER, SELECT_JOB_EVENTS_AFTER, SELECT_EVENT_SIZES_AFTER, SELECT_LAST_EVENT_ID, SELECT_JOB,
  SELECT_JOB_BY_KEY, listJobs, listJobSizes, scanJobSizes, selectJobs, testsRows,
} from './statements.js';
import { readPage } from './pages.js';

/** Runs one SELECT and returns its rows. */
export type Query = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

export type SqlReads = Pick<
  JobStore,
  'getJob' | 'findByIdempotencyKey' | 'getEvents' | 'readEventsAfter' | 'readJobEventsAfter' | 'eventSizesAfter' | 'lastEventId' | 'lastIssuedEventId' | 'countWaitingAhead' | 'listJobs' | 'listJobPage' | 'stats' | 'jobCounts' | 'recountJobs' | 'countUnpublished' | 'outboxBacklog' | 'edgeStats' | 'findDue' | 'findExpiredLeases' | 'findLostDispatches' | 'oldestOutboxAt'
>;

export function createSqlReads(query: Query, d: Dialect): SqlReads {
  const dueSql = findDue(d);
  const lostSql = findLostDispatches(d);
  // Per band: the statements counting the jobs of the bands above (any id) and of its own (created
  // before it; for a job joining its lane when due, `joining`, any but it).
  const waitingAhead = new Map([...BAND_PRIORITIES].map(([band, p]) => [band, {
    same: countWaitingAhead(d, p.same, true), joining: countWaitingAhead(d, p.same, true, true),
    above: p.above === null ? null : countWaitingAhead(d, p.above, false),
  }]));
  const one = async (sql: string, params: unknown[]): Promise<JobRecord | null> => {
    const [row] = await query(sql, params);
    return row ? rowToJob(row) : null;
  };
  // One tenant's counters (a primary-key range), or every tenant's summed.
  const counts = async (tenant?: string) =>
    rowsToCounts(tenant === undefined ? await query(SELECT_JOB_COUNTS, []) : await query(SELECT_TENANT_JOB_COUNTS, [tenant]));
  const due = async (sql: string, params: unknown[]): Promise<DueJob[]> => (await query(sql, params)).map(rowToDue);
  return {
    getJob: (id) => one(SELECT_JOB, [id]),
    findByIdempotencyKey: (queue, key, tenant) => one(SELECT_JOB_BY_KEY, [tenant, queue, key]),
    getEvents: async (jobId, afterSeq = 0): Promise<JobEventRecord[]> =>
      (await query(SELECT_EVENTS, [jobId, afterSeq])).map(rowToEvent),
    readEventsAfter: async (afterId, limit, throughId = Number.MAX_SAFE_INTEGER) =>
      (await query(SELECT_EVENTS_AFTER, [afterId, throughId, limit])).map(rowToStreamEvent),
    readJobEventsAfter: async (jobId, afterId, limit, throughId = Number.MAX_SAFE_INTEGER) =>
      (await query(SELECT_JOB_EVENTS_AFTER, [jobId, afterId, throughId, limit])).map(rowToStreamEvent),
    eventSizesAfter: async (afterId, limit) =>
      (await query(SELECT_EVENT_SIZES_AFTER, [afterId, limit])).map((r) => ({ id: toNum(r.id), bytes: toNum(r.bytes) })),
    lastEventId: async () => toNum((await query(SELECT_LAST_EVENT_ID, []))[0]?.id ?? 0),
    lastIssuedEventId: async () => toNum((await query(d.lastIssuedId('job_events'), []))[0]?.id ?? 0),
    countWaitingAhead: async (queue, id, priority, maxRead, now, joining = false) => {
      const sql = waitingAhead.get(bandOf(priority))!;
      const read = async (statement: string, params: unknown[]): Promise<WaitingAhead> => {
        const [row] = await query(statement, [...params, maxRead]);
        return { ahead: toNum(row?.n ?? 0), complete: toNum(row?.n_read ?? 0) < maxRead };
      };
      const above = sql.above === null ? { ahead: 0, complete: true } : await read(sql.above, [queue, now]);
      const same = await read(joining ? sql.joining : sql.same, [queue, now, id]);
      return { ahead: above.ahead + same.ahead, complete: above.complete && same.complete };
    },
    listJobs: async (filter: JobFilter) => {
      const { sql, params } = listJobs(d, filter);
      return (await query(sql, params)).map(rowToJob);
    },
    listJobPage: async (filter: JobFilter, maxBytes: number) => {
      // A time range that holds nothing: the last page, read at once (tested row by row, its pages
      // would walk the tenant's whole history, MAX_PAGE_SCAN jobs a request, to find nothing).
      if (filter.createdAfter !== undefined && filter.createdBefore !== undefined && filter.createdAfter >= filter.createdBefore) {
        return { jobs: [], nextAfterId: null };
      }
      const { records, nextAfterId } = await readPage(query, {
        sizes: (afterId, limit) => listJobSizes(d, { ...filter, limit, ...(afterId === undefined ? {} : { afterId }) }),
        rows: selectJobs,
        toRecord: rowToJob,
        // The other filters are fixed for a job's life; its state is not.
        matches: (job) => filter.state === undefined || job.snapshot.value === filter.state,
        ...(testsRows(filter)
          ? { scan: (afterId: string | undefined, take: number) => scanJobSizes(d, { ...filter, limit: take, ...(afterId === undefined ? {} : { afterId }) }) }
          : {}),
      }, filter.afterId, filter.limit, maxBytes);
      return { jobs: records, nextAfterId };
    },
    stats: async (tenant) => statsOf(await counts(tenant)),
    jobCounts: counts,
    recountJobs: async (tenant) => rowsToCounts(tenant === undefined ? await query(RECOUNT_JOBS, []) : await query(RECOUNT_TENANT_JOBS, [tenant])),
    countUnpublished: async () => toNum((await query(COUNT_UNPUBLISHED, []))[0]?.n ?? 0),
    outboxBacklog: () => readOutboxBacklog(query),
    edgeStats: (since, maxEvents, tenant) => readEdgeStats(query, since, maxEvents, tenant),
    findDue: (now, limit) => {
      const { sql, params } = dueSql(now, limit);
      return due(sql, params);
    },
    findExpiredLeases: (now, limit) => due(FIND_EXPIRED_LEASES, [now, now, limit]),
    findLostDispatches: async (before, limit) => {
      const { sql, params } = lostSql(before, limit);
      return (await query(sql, params)).map(rowToLostDispatch);
    },
    oldestOutboxAt: async () => {
      const [row] = await query(SELECT_OLDEST_OUTBOX_AT, []);
      return row ? toNum(row.created_at) : null;
    },
  };
}
