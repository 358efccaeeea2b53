/**
 * The limits panel: every concurrency and rate limit of `GET /v1/limits`
 * (docs/limits.md), read every 5 seconds while the page is visible (and at
 * once when it becomes visible again): its key, the attempts of the key
 * running now against its concurrency (with a bar, marked full when its jobs
 * wait; paused at concurrency 0), its rate, and when it was last set (local and relative, moved on
 * every second).
 *
 * Test ids: `#limit-rows tr[data-limit]` per limit (its `data-level`: paused,
 * full, busy, ok or none), its cells `td[data-col="running"|"rate"|"updated"]`;
 * `#limits-note`, `#limits-count`.
 */
import type { Api } from './api.js';
import { byId, h } from './dom.js';
import { panelRefresh, pollWhileVisible } from './panel.js';
import { relative } from './insights.js';
import { limitRows, limitsSummary, type LimitList, type LimitRow } from './limits.js';

export interface LimitsView {
  /** Read the limits now, then every 5 s while the page is visible. */
  start(): Promise<void>;
  /** Read them again now. */
  refresh(): Promise<void>;
}

const POLL_MS = 5000;
/** The relative times move on this often. */
const TICK_MS = 1000;
const COLUMNS = 4;

const LEVEL_TITLE: ReadonlyMap<LimitRow['level'], string> = new Map([
  ['paused', 'paused (concurrency 0): none of its jobs starts until the limit is raised or deleted'],
  ['full', 'at its concurrency: more jobs of the key wait until one ends'],
  ['busy', 'at 80 % of its concurrency or more'],
  ['ok', 'below its concurrency'],
  ['none', 'no concurrency cap'],
]);

function row(r: LimitRow): HTMLTableRowElement {
  const bar = r.fill === null ? null : h('progress', { max: 1, value: Math.min(1, r.fill), 'aria-label': `${r.key}: ${r.runningText} running` });
  return h('tr', { 'data-limit': r.key, 'data-level': r.level, class: `limit level-${r.level}` },
    h('th', { scope: 'row' }, h('code', {}, r.key)),
    h('td', { 'data-col': 'running', class: 'num', title: LEVEL_TITLE.get(r.level) ?? '' },
      h('span', { class: 'limit-running' }, r.runningText), bar ? ' ' : null, bar),
    h('td', { 'data-col': 'rate', title: r.rateHint }, r.rateText === 'none' ? h('span', { class: 'muted' }, 'none') : r.rateText),
    h('td', { 'data-col': 'updated' },
      h('time', { datetime: r.updatedAt, title: `${r.updatedLocal} (${r.updatedAt})`, 'data-relative-at': r.updatedMs }, r.updatedRelative)),
  );
}

export function createLimitsView(api: Pick<Api, 'limits'>, now: () => number): LimitsView {
  const body = byId('limit-rows');
  const note = byId('limits-note');
  const count = byId('limits-count');
  let last: LimitList | null = null;
  /** What the table was last drawn from: unchanged, it is not redrawn. */
  let drawn = '';

  const render = () => {
    if (!last) return;
    const sig = JSON.stringify(last);
    if (sig === drawn) return tick();
    drawn = sig;
    const rows = limitRows(last, now());
    count.textContent = `· ${limitsSummary(rows)}`;
    body.replaceChildren(...(rows.length
      ? rows.map(row)
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: COLUMNS },
        'No limit set: jobs of every concurrency key run unlimited. Set one with ', h('code', {}, 'PUT /v1/limits/{key}'),
        ' or ', h('code', {}, 'ats limits set'), '.'))]));
  };

  /** Move the relative times on, in place. */
  const tick = () => {
    const t = now();
    for (const el of Array.from(body.querySelectorAll('[data-relative-at]'))) {
      el.textContent = relative(Number(el.getAttribute('data-relative-at')), t);
    }
  };

  const refresh = panelRefresh({
    route: 'GET /v1/limits', pollMs: POLL_MS, note, now,
    read: () => api.limits(),
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
