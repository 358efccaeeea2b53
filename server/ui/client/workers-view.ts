/**
 * The workers panel: every worker of `GET /v1/workers` (its id, host and pid,
 * the job types it handles, its concurrency, when it was last seen, local
 * and relative, moved on every second, and whether it is live or stale), read
 * every 5 seconds while the page is visible (and at once when it becomes
 * visible again); and, above the page, a warning line for each job type of a
 * queue whose waiting jobs no live worker handles (`unserved` of
 * `GET /v1/stats`: read with the workers, and from every stats body that
 * carries it; the stream's stats messages do not).
 *
 * Test ids: `#presence-rows tr[data-worker-id]` per worker (its `data-live`),
 * its cells `td[data-col="host"|"pid"|"types"|"queues"|"concurrency"|
 * "last-seen"|"status"]`; `#presence-note`, `#presence-count`;
 * `#unserved-banner` (hidden when empty), `#unserved-list li[data-type][data-queue]`.
 */
import type { Api } from './api.js';
import { byId, h } from './dom.js';
import { panelRefresh, pollWhileVisible } from './panel.js';
import { relative } from './insights.js';
import {
  unservedLines, unservedOf, workerRows, workersSummary, type UnservedView, type WorkerList, type WorkerRow,
} from './workers.js';

export interface WorkersView {
  /** Read the workers now, then every 5 s while the page is visible. */
  start(): Promise<void>;
  /** Read them again now. */
  refresh(): Promise<void>;
  /** A stats body (`GET /v1/stats` or a stream message): its `unserved`, when it has some, is shown. */
  onStats(stats: unknown): void;
}

const POLL_MS = 5000;
/** The relative times move on this often. */
const TICK_MS = 1000;
const COLUMNS = 8;

function row(r: WorkerRow): HTMLTableRowElement {
  return h('tr', { 'data-worker-id': r.id, 'data-live': String(r.live), class: r.live ? 'presence' : 'presence stale' },
    h('th', { scope: 'row' }, h('code', { title: `started ${r.startedLocal}` }, r.id)),
    h('td', { 'data-col': 'host' }, r.host),
    h('td', { 'data-col': 'pid', class: 'num' }, String(r.pid)),
    h('td', { 'data-col': 'types', class: 'worker-types' }, ...(r.types.length
      ? r.types.flatMap((t, i) => [i ? ' ' : null, h('code', {}, t)])
      : [h('span', { class: 'muted' }, 'none')])),
    h('td', { 'data-col': 'queues' }, r.queues),
    h('td', { 'data-col': 'concurrency', class: 'num' }, String(r.concurrency)),
    h('td', { 'data-col': 'last-seen' },
      h('time', { datetime: r.lastSeenAt, title: `${r.lastSeenLocal} (${r.lastSeenAt})`, 'data-relative-at': r.lastSeenMs }, r.lastSeenRelative)),
    h('td', { 'data-col': 'status' }, h('span', {
      class: 'worker-status', 'data-status': r.status,
      title: r.live ? 'seen within the last 15 s' : 'not seen for 15 s: stopped, or lost the database',
    }, r.status)),
  );
}

export function createWorkersView(api: Pick<Api, 'workers' | 'stats'>, now: () => number): WorkersView {
  const body = byId('presence-rows');
  const note = byId('presence-note');
  const count = byId('presence-count');
  const banner = byId('unserved-banner');
  const list = byId('unserved-list');
  let last: WorkerList | null = null;
  /** What the table and the banner were last drawn from: unchanged, they are not redrawn. */
  let drawn = '';
  let drawnUnserved = '';

  const render = () => {
    if (!last) return;
    const sig = JSON.stringify(last);
    if (sig === drawn) return tick();
    drawn = sig;
    const rows = workerRows(last, now());
    count.textContent = `· ${workersSummary(rows)}`;
    body.replaceChildren(...(rows.length
      ? rows.map(row)
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: COLUMNS }, 'No worker registered: none runs, or none has reached the database yet.'))]));
  };

  const showUnserved = (entries: readonly UnservedView[]) => {
    const sig = JSON.stringify(entries);
    if (sig === drawnUnserved) return;
    drawnUnserved = sig;
    const lines = unservedLines(entries);
    list.replaceChildren(...lines.map((l) => h('li', { 'data-type': l.type, 'data-queue': l.queue, 'data-waiting': l.waiting },
      h('span', { class: 'unserved-icon', 'aria-hidden': 'true' }, '⚠'), ' ',
      'no live worker handles ', h('code', {}, l.type), ' in queue ', h('code', {}, l.queue), ` (${l.waiting} waiting)`)));
    banner.hidden = lines.length === 0;
  };

  /** Move the relative times on, in place. */
  const tick = () => {
    const t = now();
    for (const el of Array.from(body.querySelectorAll('[data-relative-at]'))) {
      el.textContent = relative(Number(el.getAttribute('data-relative-at')), t);
    }
  };

  const readUnserved = async () => {
    try {
      const entries = unservedOf(await api.stats());
      if (entries) showUnserved(entries);
    } catch {
      // The counts say when the server does not answer; the last warnings stay until it does.
    }
  };

  const refresh = panelRefresh({
    route: 'GET /v1/workers', pollMs: POLL_MS, note, now,
    read: () => api.workers(),
    absent: () => {
      count.textContent = '';
      body.replaceChildren();
      last = null;
      drawn = '';
    },
    got: async (next) => {
      last = next;
      render();
      await readUnserved();
    },
  });

  return {
    refresh,
    onStats(stats) {
      const entries = unservedOf(stats);
      if (entries) showUnserved(entries);
    },
    async start() {
      await refresh();
      pollWhileVisible(refresh, POLL_MS);
      window.setInterval(tick, TICK_MS);
    },
  };
}
