/**
 * The advisor on the page (docs/advisor.md): the insights panel (what it
 * learned per job type and queue, from `GET /v1/insights` every 5 seconds
 * while the page is visible), the anomaly banner (the stream's `insight`
 * messages as they come, and the recent anomalies of the insights), and a
 * badge on each type with an active anomaly in the jobs-per-type table.
 * Dismissing an anomaly hides it from the banner and the badges (for this
 * tab, across reloads); the panel keeps listing it.
 *
 * Test ids: `#insights-rows [data-insight]` per type and queue (its
 * `data-insight-type`, `data-insight-queue`), `tr[data-verdict]` per
 * signature, `#anomaly-list li[data-anomaly]` per active anomaly with its
 * `button[data-dismiss]`, `.anomaly-badge[data-anomaly-type]` on a type.
 */
import type { Api } from './api.js';
import { byId, clockTime, dateTime, duration, h, timeEl } from './dom.js';
import { panelRefresh, pollWhileVisible } from './panel.js';
import {
  AnomalyBoard, MODE_TEXT, anomaliesOf, anomalyBadge, anomalyFromMessage, anomalyKey, anomalyParts, anomalyText, attemptsText,
  changesTitle, evidenceText, leaseText, recoveryText, relative, runTimeText, sortSignatures, sortTypes,
  type Anomaly, type Insights, type TypeInsight,
} from './insights.js';

export interface InsightsView {
  /** Read the insights now, then every 5 s while the page is visible. */
  start(): Promise<void>;
  /** A stream message of kind `insight`. */
  onInsight(message: unknown): void;
  /** Put the anomaly badges back on the jobs-per-type table (after it is redrawn). */
  markTypes(): void;
}

const POLL_MS = 5000;
/** After a live anomaly, read the insights again this soon (its type's card then lists it). */
const SOON_MS = 1000;
const STORAGE_KEY = 'ats.dismissed-anomalies';

function loadDismissed(): string[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((k): k is string => typeof k === 'string') : [];
  } catch {
    return [];
  }
}

function saveDismissed(keys: string[]): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(keys));
  } catch {
    // storage off or full: dismissals last until the page is closed
  }
}

/** `failure rate of <code>type</code> (queue q) rose from 2% to 31%`. */
function anomalySentence(a: Anomaly): HTMLSpanElement {
  const p = anomalyParts(a);
  return h('span', { class: 'anomaly-text' },
    `${p.what[0]!.toUpperCase()}${p.what.slice(1)} of `, h('code', {}, p.type), ` (queue ${p.queue}) ${p.verb} from `,
    h('strong', {}, p.from), ' to ', h('strong', {}, p.to));
}

/** `15:02:41.147, 2 min ago` (the banner's, moved on in place), the date in its tooltip. */
const whenText = (at: number, now: number): string => `${clockTime(new Date(at).toISOString())}, ${relative(at, now)}`;
const whenEl = (at: number, now: number): HTMLTimeElement => {
  const iso = new Date(at).toISOString();
  return h('time', { datetime: iso, title: dateTime(iso), 'data-at': at }, whenText(at, now));
};

function signatureTable(t: TypeInsight): HTMLElement {
  if (!t.signatures.length) return h('p', { class: 'hint' }, 'No failure seen.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'grid-table signatures' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Failure signature'), h('th', { class: 'num' }, 'Failures'), h('th', {}, 'Evidence'), h('th', {}, 'Verdict'))),
    h('tbody', {}, ...sortSignatures(t.signatures).map((s) => h('tr', { 'data-verdict': s.verdict, class: `verdict-${s.verdict}` },
      h('td', { class: 'signature' }, h('code', { title: s.signature }, s.signature)),
      h('td', { class: 'num' }, String(s.failures)),
      h('td', {}, evidenceText(s), recoveryText(s.recoveryMs) && h('span', { class: 'muted' }, ` · ${recoveryText(s.recoveryMs)}`)),
      h('td', {}, h('span', { class: 'verdict', 'data-verdict': s.verdict }, s.verdict)),
    )))));
}

function typeCard(t: TypeInsight, mode: Insights['mode'], board: AnomalyBoard): HTMLElement {
  const anomalies = [...t.anomalies].sort((a, b) => b.at - a.at);
  const hopeless = t.signatures.filter((s) => s.verdict === 'hopeless').length;
  return h('article', {
    class: anomalies.length || hopeless ? 'insight alarming' : 'insight', 'data-insight': '', 'data-insight-type': t.type, 'data-insight-queue': t.queue,
  },
  h('h3', {}, h('code', {}, t.type), h('span', { class: 'muted' }, ` · queue ${t.queue}`),
    hopeless ? h('span', { class: 'verdict', 'data-verdict': 'hopeless' }, `${hopeless} hopeless`) : null),
  h('dl', { class: 'facts' },
    h('div', { 'data-insight-fact': 'attempts' }, h('dt', {}, 'attempts'), h('dd', {}, attemptsText(t))),
    h('div', { 'data-insight-fact': 'run-time' }, h('dt', {}, 'run time'), h('dd', {}, runTimeText(t.runMs))),
    h('div', { 'data-insight-fact': 'lease' }, h('dt', {}, 'suggested lease'), h('dd', {}, leaseText(t.lease))),
    typeof t.timeoutMs !== 'number' ? null : h('div', { 'data-insight-fact': 'timeout' }, h('dt', {}, 'handler timeout'), h('dd', {}, duration(t.timeoutMs))),
  ),
  signatureTable(t),
  anomalies.length ? h('div', { class: 'insight-anomalies' }, h('h4', {}, 'Anomalies'),
    h('ul', {}, ...anomalies.map((a) => h('li', { 'data-insight-anomaly': a.metric, class: board.isDismissed(a) ? 'dismissed' : null },
      anomalySentence(a), ' — ', timeEl(new Date(a.at).toISOString()))))) : null,
  t.changes.length ? h('div', { class: 'insight-changes' }, h('h4', {}, changesTitle(mode)),
    h('ul', {}, ...t.changes.map((c) => h('li', {}, c)))) : null,
  );
}

export function createInsightsView(api: Api, now: () => number): InsightsView {
  const board = new AnomalyBoard({ dismissed: loadDismissed() });
  const modeEl = byId('insights-mode');
  const noteEl = byId('insights-note');
  const rowsEl = byId('insights-rows');
  const banner = byId('anomaly-banner');
  const list = byId('anomaly-list');
  const dismissAll = byId<HTMLButtonElement>('anomaly-dismiss-all');
  let last: Insights | null = null;
  /** What the panel and the banner were last drawn from: unchanged, they are not redrawn (a hover or a click stays). */
  let panelDrawn = '';
  let bannerDrawn = '';
  let soon: number | undefined;

  const renderBanner = () => {
    const t = now();
    const active = board.active(t);
    const drawn = JSON.stringify(active.map(anomalyKey));
    if (drawn === bannerDrawn) {
      for (const el of Array.from(list.querySelectorAll('time[data-at]'))) el.textContent = whenText(Number(el.getAttribute('data-at')), t);
      return;
    }
    bannerDrawn = drawn;
    banner.hidden = active.length === 0;
    list.replaceChildren(...active.map((a) => h('li', { 'data-anomaly': anomalyKey(a), 'data-anomaly-type': a.type, 'data-metric': a.metric },
      h('span', { class: 'anomaly-icon', 'aria-hidden': 'true' }, '⚠'), anomalySentence(a), ' ', h('span', { class: 'muted' }, '— ', whenEl(a.at, t)),
      h('button', { type: 'button', class: 'quiet', 'data-dismiss': anomalyKey(a), 'aria-label': `Dismiss: ${anomalyText(a)}` }, 'Dismiss'))));
    dismissAll.hidden = active.length < 2;
  };

  const markTypes = () => {
    const byType = board.byType(now());
    for (const row of Array.from(byId('counts-type-rows').querySelectorAll('tr[data-name]'))) {
      const th = row.querySelector('th');
      if (!th) continue;
      th.querySelector('.anomaly-badge')?.remove();
      // Compared as strings, never put in a selector: a type is any string.
      const anomalies = byType.get(row.getAttribute('data-name') ?? '');
      if (!anomalies?.length) continue;
      th.append(h('a', {
        class: 'anomaly-badge', href: '#anomaly-banner', 'data-anomaly-type': anomalies[0]!.type,
        title: anomalies.map(anomalyText).join('\n'),
      }, anomalyBadge(anomalies[0]!), anomalies.length > 1 ? ` +${anomalies.length - 1}` : ''));
    }
  };

  const renderPanel = () => {
    if (!last) return;
    const drawn = JSON.stringify([last, board.dismissedKeys()]);
    if (drawn === panelDrawn) return;
    panelDrawn = drawn;
    modeEl.replaceChildren(
      h('span', { class: 'advisor-mode', 'data-mode': last.mode }, last.mode),
      ` — ${MODE_TEXT[last.mode] ?? ''}`,
      last.mode === 'off' ? '' : h('span', { class: 'muted' }, ` · learned from ${last.events} event${last.events === 1 ? '' : 's'}`),
    );
    const types = sortTypes(last.types);
    rowsEl.replaceChildren(...(types.length
      ? types.map((ty) => typeCard(ty, last!.mode, board))
      : [h('p', { class: 'hint empty-note' }, last.mode === 'off'
        ? 'The advisor is off on this server: nothing is learned.'
        : 'Nothing learned yet: the advisor needs attempts of a job type to have ended.')]));
  };

  const render = () => {
    renderPanel();
    renderBanner();
    markTypes();
  };

  const refresh = panelRefresh({
    route: 'GET /v1/insights', absentWhy: ' (an older version)', pollMs: POLL_MS, note: noteEl, now,
    read: () => api.insights(),
    absent: () => {
      rowsEl.replaceChildren();
      panelDrawn = '';
    },
    got: (next) => {
      last = next;
      board.addAll(anomaliesOf(next));
      render();
    },
  });

  const dismiss = (key: string | null) => {
    if (key === null) board.dismissAll(now());
    else board.dismiss(key);
    saveDismissed(board.dismissedKeys());
    render();
  };

  list.addEventListener('click', (ev) => {
    const button = (ev.target as Element).closest('button[data-dismiss]');
    if (button) dismiss(button.getAttribute('data-dismiss') ?? '');
  });
  dismissAll.addEventListener('click', () => dismiss(null));

  return {
    async start() {
      await refresh();
      pollWhileVisible(refresh, POLL_MS);
    },
    onInsight(message) {
      const a = anomalyFromMessage(message);
      if (!a || !board.add(a)) return;
      render();
      if (soon === undefined) {
        soon = window.setTimeout(() => {
          soon = undefined;
          void refresh();
        }, SOON_MS);
      }
    },
    markTypes,
  };
}
