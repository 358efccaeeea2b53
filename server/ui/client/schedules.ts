/**
 * What the page shows of the cron schedules (`GET /v1/schedules`,
 * docs/scheduling.md), shaped for display. Pure (no DOM, time passed in):
 * tested under node.
 *
 * A schedule's name, job type and queue are user-chosen strings: they are
 * shown as text and never key a plain object.
 */
import { dateTime } from './dom.js';
import { relative } from './insights.js';

/** A schedule as `GET /v1/schedules` lists it (times are ISO 8601 strings). */
export interface ScheduleView {
  name: string;
  cron: string;
  timezone: string;
  overlap: string;
  catchUp: string;
  paused: boolean;
  job: { type: string; queue: string; [field: string]: unknown };
  nextRunAt: string | null;
  lastTickAt: string | null;
  lastJobId: string | null;
  submitted: number;
  skipped: number;
  missed: number;
  createdAt: string;
  updatedAt: string;
}

/** `GET /v1/schedules`. */
export interface ScheduleList {
  schedules: ScheduleView[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is string | null => v === null || (typeof v === 'string' && !Number.isNaN(Date.parse(v)));
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Whether a body is a schedule as the API answers it (what the panel relies on). */
export function isSchedule(v: unknown): v is ScheduleView {
  return isObject(v) && typeof v.name === 'string' && typeof v.cron === 'string' && typeof v.timezone === 'string'
    && typeof v.paused === 'boolean' && isObject(v.job) && typeof v.job.type === 'string' && typeof v.job.queue === 'string'
    && isTime(v.nextRunAt) && isTime(v.lastTickAt) && (v.lastJobId === null || typeof v.lastJobId === 'string')
    && isCount(v.submitted) && isCount(v.skipped) && isCount(v.missed);
}

/** Whether a body is the list `GET /v1/schedules` answers. */
export function isScheduleList(v: unknown): v is ScheduleList {
  return isObject(v) && Array.isArray(v.schedules) && v.schedules.every(isSchedule);
}

/** A time the panel shows: the local date and time, relative to now, and the instant for the tooltip. */
export interface ShownTime {
  iso: string;
  at: number;
  /** `2026-01-31 12:34:56.789`, local time. */
  local: string;
  /** `in 12 s`, `3 min ago`, `now`. */
  relative: string;
}

export function shownTime(iso: string, now: number): ShownTime {
  const at = Date.parse(iso);
  return { iso, at, local: dateTime(iso), relative: relative(at, now) };
}

/** One row of the panel. */
export interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  queue: string;
  /** `overlap skip · catch-up none`. */
  policy: string;
  paused: boolean;
  /** `paused` or `active`. */
  status: 'paused' | 'active';
  /** The next run, or null with `nextText` saying why (paused, or the expression fires no more). */
  next: ShownTime | null;
  nextText: string;
  last: ShownTime | null;
  lastText: string;
  lastJobId: string | null;
  submitted: number;
  skipped: number;
  missed: number;
}

export function scheduleRow(s: ScheduleView, now: number): ScheduleRow {
  const next = s.nextRunAt === null ? null : shownTime(s.nextRunAt, now);
  const last = s.lastTickAt === null ? null : shownTime(s.lastTickAt, now);
  return {
    name: s.name, cron: s.cron, timezone: s.timezone, type: s.job.type, queue: s.job.queue,
    policy: `overlap ${s.overlap} · catch-up ${s.catchUp}`,
    paused: s.paused, status: s.paused ? 'paused' : 'active',
    next, nextText: next ? `${next.local} (${next.relative})` : s.paused ? 'paused' : 'never (the expression fires no more)',
    last, lastText: last ? `${last.local} (${last.relative})` : 'no tick yet',
    lastJobId: s.lastJobId,
    submitted: s.submitted, skipped: s.skipped, missed: s.missed,
  };
}

/** The rows, by name (as the server sorts them; sorted again so the page does not depend on it). */
export function scheduleRows(list: ScheduleList, now: number): ScheduleRow[] {
  return [...list.schedules].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((s) => scheduleRow(s, now));
}

/** `3 schedules · 1 paused`, `no schedule`. */
export function schedulesSummary(rows: readonly ScheduleRow[]): string {
  if (!rows.length) return 'no schedule';
  const paused = rows.filter((r) => r.paused).length;
  return `${rows.length} schedule${rows.length === 1 ? '' : 's'}${paused ? ` · ${paused} paused` : ''}`;
}
