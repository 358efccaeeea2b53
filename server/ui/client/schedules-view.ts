/**
 * The schedules panel: every cron schedule of `GET /v1/schedules`
 * (docs/scheduling.md), read every 5 seconds while the page is visible (and
 * at once when it becomes visible again), with its expression and time zone,
 * its job, its next run and last tick (local date and time, and relative,
 * moved on every second), whether it is paused, and its counters of ticks
 * submitted, skipped (overlap) and missed (catch-up). The last tick's job
 * opens in the inspector (`#<job id>`).
 *
 * Test ids: `#schedule-rows tr[data-schedule]` per schedule (its
 * `data-paused`), its cells `td[data-col="cron"|"timezone"|"job"|"next"|
 * "last"|"status"|"submitted"|"skipped"|"missed"]`; `#schedules-note`.
 */
import type { Api } from './api.js';
import { byId, h } from './dom.js';
import { panelRefresh, pollWhileVisible } from './panel.js';
import { relative } from './insights.js';
import { scheduleRows, schedulesSummary, type ScheduleList, type ScheduleRow, type ShownTime } from './schedules.js';

export interface SchedulesView {
  /** Read the schedules now, then every 5 s while the page is visible. */
  start(): Promise<void>;
  /** Read them again now (the page's own refresh). */
  refresh(): Promise<void>;
}

const POLL_MS = 5000;
/** The relative times move on this often. */
const TICK_MS = 1000;
const COLUMNS = 10;

/** `2026-01-31 12:34:56.789 (in 12 s)`: the instant in the tooltip, the relative part moved on in place. */
function timeCell(t: ShownTime): HTMLElement {
  return h('span', {},
    h('time', { datetime: t.iso, title: t.iso }, t.local), ' ',
    h('span', { class: 'muted', 'data-relative-at': t.at }, `(${t.relative})`));
}

function row(r: ScheduleRow): HTMLTableRowElement {
  const count = (col: 'submitted' | 'skipped' | 'missed', n: number, warn: boolean) =>
    h('td', { class: n === 0 ? 'num zero' : warn ? 'num warn' : 'num', 'data-col': col }, String(n));
  return h('tr', { 'data-schedule': r.name, 'data-paused': String(r.paused), class: r.paused ? 'schedule paused' : 'schedule' },
    h('th', { scope: 'row' }, h('code', {}, r.name)),
    h('td', { 'data-col': 'cron' }, h('code', { title: r.policy }, r.cron)),
    h('td', { 'data-col': 'timezone' }, r.timezone),
    h('td', { 'data-col': 'job' }, h('code', {}, r.type), h('span', { class: 'muted' }, ` · ${r.queue}`)),
    h('td', { 'data-col': 'next' }, r.next ? timeCell(r.next) : h('span', { class: 'muted' }, r.nextText)),
    h('td', { 'data-col': 'last' }, r.last ? timeCell(r.last) : h('span', { class: 'muted' }, r.lastText),
      r.lastJobId ? h('a', { class: 'schedule-job', href: `#${encodeURIComponent(r.lastJobId)}`, title: `Open job ${r.lastJobId}` }, 'job') : null),
    h('td', { 'data-col': 'status' }, h('span', { class: 'schedule-status', 'data-status': r.status, title: r.policy }, r.status)),
    count('submitted', r.submitted, false),
    count('skipped', r.skipped, false),
    count('missed', r.missed, true),
  );
}

export function createSchedulesView(api: Pick<Api, 'schedules'>, now: () => number): SchedulesView {
  const body = byId('schedule-rows');
  const note = byId('schedules-note');
  const count = byId('schedules-count');
  let last: ScheduleList | null = null;
  /** What the table was last drawn from: unchanged, it is not redrawn (a hover or a selection stays). */
  let drawn = '';

  const render = () => {
    if (!last) return;
    const sig = JSON.stringify(last);
    if (sig === drawn) return tick();
    drawn = sig;
    const rows = scheduleRows(last, now());
    count.textContent = `· ${schedulesSummary(rows)}`;
    body.replaceChildren(...(rows.length
      ? rows.map(row)
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: COLUMNS },
        'No schedule yet: create one with ', h('code', {}, 'POST /v1/schedules'), ' or ', h('code', {}, 'ats schedule add'), '.'))]));
  };

  /** Move the relative times on, in place. */
  const tick = () => {
    const t = now();
    for (const el of Array.from(body.querySelectorAll('[data-relative-at]'))) {
      el.textContent = `(${relative(Number(el.getAttribute('data-relative-at')), t)})`;
    }
  };

  const refresh = panelRefresh({
    route: 'GET /v1/schedules', pollMs: POLL_MS, note, now,
    read: () => api.schedules(),
    absent: () => {
      count.textContent = '';
      body.replaceChildren();
      last = null;
      drawn = '';
    },
    got: (next) => {
      last = next;
      render();
    },
  });

  return {
    refresh,
    async start() {
      await refresh();
      pollWhileVisible(refresh, POLL_MS);
      window.setInterval(tick, TICK_MS);
    },
  };
}
