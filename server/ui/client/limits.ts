/**
 * What the page shows of the concurrency and rate limits (`GET /v1/limits`,
 * docs/limits.md), shaped for display. Pure (no DOM, time passed in): tested
 * under node.
 *
 * A limit's key is a string the operator chose: it is shown as text and
 * never keys a plain object.
 */
import { dateTime } from './dom.js';
import { relative } from './insights.js';

/** A limit as `GET /v1/limits` lists it (times are ISO 8601 strings; null: no cap). */
export interface LimitView {
  key: string;
  concurrency: number | null;
  rate: { max: number; intervalMs: number } | null;
  running: number;
  createdAt: string;
  updatedAt: string;
}

/** `GET /v1/limits`. */
export interface LimitList {
  limits: LimitView[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isPositive = (v: unknown): v is number => isCount(v) && v > 0;

/** Whether a body is a limit as the API answers it (what the panel relies on). */
export function isLimit(v: unknown): v is LimitView {
  return isObject(v) && typeof v.key === 'string' && (v.concurrency === null || isCount(v.concurrency))
    && (v.rate === null || (isObject(v.rate) && isPositive(v.rate.max) && isPositive(v.rate.intervalMs)))
    && isCount(v.running) && isTime(v.createdAt) && isTime(v.updatedAt);
}

/** Whether a body is the list `GET /v1/limits` answers. */
export function isLimitList(v: unknown): v is LimitList {
  return isObject(v) && Array.isArray(v.limits) && v.limits.every(isLimit);
}

const UNITS: ReadonlyArray<readonly [string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];

/** `1 min`, `30 s`, `500 ms`, `1.5 s`: an interval as a person reads it. */
export function intervalText(ms: number): string {
  for (const [unit, size] of UNITS) {
    if (ms >= size && ms % size === 0) return ms === size ? `1 ${unit}` : `${ms / size} ${unit}`;
  }
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

/** One row of the panel. */
export interface LimitRow {
  key: string;
  running: number;
  concurrency: number | null;
  /** `3 / 5`, `3` with no concurrency cap, `1 / 0 (paused)`. */
  runningText: string;
  /** `running / concurrency` from 0 to 1 (null with no cap, and for a paused key): how full the key is. */
  fill: number | null;
  /**
   * `paused` at concurrency 0 (none of its jobs starts), `full` when running
   * reaches the cap (its jobs wait), `busy` from 80 %, else `ok`; `none` with no cap.
   */
  level: 'paused' | 'full' | 'busy' | 'ok' | 'none';
  /** `100 per 1 min`, or `none`. */
  rateText: string;
  /** `one start every 600 ms at most`, or '' with no rate. */
  rateHint: string;
  updatedAt: string;
  updatedMs: number;
  /** `2026-01-31 12:34:56.789`, local time. */
  updatedLocal: string;
  /** `3 min ago`. */
  updatedRelative: string;
}

export function limitRow(l: LimitView, now: number): LimitRow {
  const paused = l.concurrency === 0;
  const fill = l.concurrency === null || paused ? null : l.running / l.concurrency;
  const level = paused ? 'paused' : fill === null ? 'none' : fill >= 1 ? 'full' : fill >= 0.8 ? 'busy' : 'ok';
  const updated = Date.parse(l.updatedAt);
  return {
    key: l.key, running: l.running, concurrency: l.concurrency,
    runningText: l.concurrency === null ? String(l.running) : `${l.running} / ${l.concurrency}${paused ? ' (paused)' : ''}`,
    fill, level,
    rateText: l.rate ? `${l.rate.max} per ${intervalText(l.rate.intervalMs)}` : 'none',
    rateHint: l.rate ? `one start every ${Math.ceil(l.rate.intervalMs / l.rate.max)} ms at most` : '',
    updatedAt: l.updatedAt, updatedMs: updated, updatedLocal: dateTime(l.updatedAt), updatedRelative: relative(updated, now),
  };
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The rows, by key (as the server sorts them; sorted again so the page does not depend on it). */
export function limitRows(list: LimitList, now: number): LimitRow[] {
  return [...list.limits].sort((a, b) => byText(a.key, b.key)).map((l) => limitRow(l, now));
}

/** `3 limits · 1 full · 1 paused`, `1 limit`, `no limit`. */
export function limitsSummary(rows: readonly LimitRow[]): string {
  if (!rows.length) return 'no limit';
  const full = rows.filter((r) => r.level === 'full').length;
  const paused = rows.filter((r) => r.level === 'paused').length;
  return `${rows.length} limit${rows.length === 1 ? '' : 's'}${full ? ` · ${full} full` : ''}${paused ? ` · ${paused} paused` : ''}`;
}
