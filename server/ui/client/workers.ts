/**
 * What the page shows of the workers (`GET /v1/workers`) and of the waiting
 * jobs no live worker can run (`unserved` of `GET /v1/stats`), shaped for
 * display. Pure (no DOM, time passed in): tested under node.
 *
 * A worker's id, host, job types and queues are strings the operator chose:
 * they are shown as text and never key a plain object.
 */
import type { Worker, WorkerList } from '../../../client/index.js';
import { dateTime } from './dom.js';
import { relative } from './insights.js';

/** A worker as `GET /v1/workers` lists it (times are ISO 8601 strings; `queues` `'*'`: every queue). */
export type WorkerView = Worker;
export type { WorkerList };

/** A job type of a queue with jobs waiting to start (pending or published) that no live worker handles. */
export interface UnservedView {
  type: string;
  queue: string;
  waiting: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Whether a body is a worker as the API answers it (what the panel relies on). */
export function isWorker(v: unknown): v is WorkerView {
  return isObject(v) && typeof v.id === 'string' && typeof v.host === 'string' && isCount(v.pid)
    && isStrings(v.queues) && isStrings(v.types) && isCount(v.concurrency)
    && isTime(v.startedAt) && isTime(v.lastSeenAt) && typeof v.live === 'boolean';
}

/** Whether a body is the list `GET /v1/workers` answers. */
export function isWorkerList(v: unknown): v is WorkerList {
  return isObject(v) && Array.isArray(v.workers) && v.workers.every(isWorker);
}

/** Whether a value is an `unserved` entry of `GET /v1/stats`. */
export function isUnserved(v: unknown): v is UnservedView {
  return isObject(v) && typeof v.type === 'string' && typeof v.queue === 'string' && isCount(v.waiting);
}

/**
 * The `unserved` of a stats body: the entries when it has them (a server
 * that knows its workers), else null (an older server, or the stream's stats
 * messages, which do not carry them). Malformed entries are left out.
 */
export function unservedOf(stats: unknown): UnservedView[] | null {
  if (!isObject(stats) || !Array.isArray(stats.unserved)) return null;
  return stats.unserved.filter(isUnserved);
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One warning line: "no live worker handles `email.send` in queue `email` (3 waiting)". */
export interface UnservedLine {
  type: string;
  queue: string;
  waiting: number;
  /** The whole line as text. */
  text: string;
}

/** The warning lines, most waiting first, then by type and queue. */
export function unservedLines(entries: readonly UnservedView[]): UnservedLine[] {
  return [...entries]
    .sort((a, b) => b.waiting - a.waiting || byText(a.type, b.type) || byText(a.queue, b.queue))
    .map((u) => ({
      type: u.type, queue: u.queue, waiting: u.waiting,
      text: `no live worker handles ${u.type} in queue ${u.queue} (${u.waiting} waiting)`,
    }));
}

/** One row of the panel. */
export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  /** The job types it handles, sorted. */
  types: string[];
  /** `every queue` for `'*'`, else the queues joined. */
  queues: string;
  concurrency: number;
  live: boolean;
  /** `live` or `stale`. */
  status: 'live' | 'stale';
  lastSeenAt: string;
  lastSeenMs: number;
  /** `2026-01-31 12:34:56.789`, local time. */
  lastSeenLocal: string;
  /** `3 s ago`, `now`. */
  lastSeenRelative: string;
  startedAt: string;
  startedLocal: string;
}

export function workerRow(w: WorkerView, now: number): WorkerRow {
  const seen = Date.parse(w.lastSeenAt);
  return {
    id: w.id, host: w.host, pid: w.pid,
    types: [...w.types].sort(byText),
    queues: w.queues.includes('*') ? 'every queue' : [...w.queues].sort(byText).join(', '),
    concurrency: w.concurrency,
    live: w.live, status: w.live ? 'live' : 'stale',
    lastSeenAt: w.lastSeenAt, lastSeenMs: seen, lastSeenLocal: dateTime(w.lastSeenAt), lastSeenRelative: relative(seen, now),
    startedAt: w.startedAt, startedLocal: dateTime(w.startedAt),
  };
}

/** The rows, by id (as the server sorts them; sorted again so the page does not depend on it). */
export function workerRows(list: WorkerList, now: number): WorkerRow[] {
  return [...list.workers].sort((a, b) => byText(a.id, b.id)).map((w) => workerRow(w, now));
}

/** `3 workers · 1 stale`, `1 worker`, `no worker`. */
export function workersSummary(rows: readonly WorkerRow[]): string {
  if (!rows.length) return 'no worker';
  const stale = rows.filter((r) => !r.live).length;
  return `${rows.length} worker${rows.length === 1 ? '' : 's'}${stale ? ` · ${stale} stale` : ''}`;
}
