/**
 * The workflows panel: the newest instances (`GET /v1/workflows`, every 5 s
 * while the page is visible and at each workflow step the stream brings),
 * and the one selected: its machine drawn as nested states with the ones it
 * is in highlighted and each invocation's job state, its live children (a
 * click opens the job in the inspector), its timers, its status and output or
 * error, and its history. On each state, the number of the workflow's active
 * instances (of that definition version) in it, from the graph's `counts`:
 * live, read with the instance. A time-travel slider over the graph's `steps`
 * highlights the states a step left the instance in and marks its row of the
 * history; at the last step it follows the instance, and while stepped back
 * a live read keeps it on its step (as the job inspector does).
 *
 * Live: the panel follows the stream's `workflow` messages (its own
 * subscription, `{workflows: true}`: a subscription is of job or of workflow
 * transitions) and reads the selected instance again at each step of it, and
 * at each job transition of one of its children (from the page's job stream).
 * While its workflow stream is not subscribed (not served, dropped), it reads
 * the selected active instance every second instead.
 *
 * Test ids: `#workflow-rows tr[data-workflow-id]` (its `data-status`);
 * `#workflow-detail[data-workflow-id]`, `#workflow-graph [data-wf-state]`
 * (`data-active`, `data-type`), `[data-invoke]` lines (`data-job-state`),
 * `[data-wf-edge]`; `#workflow-children tr[data-job-id]` with its
 * `button[data-open-job]`; `#workflow-timers li`, `#workflow-outcome`,
 * `#workflow-history tr[data-seq]` (`aria-current="step"` on the step shown;
 * its last 500 steps), `#workflow-history tr[data-older]` (how many older);
 * `#workflow-live[data-mode]`; `[data-wf-count]` in a state's group (its
 * number), `#workflow-counts[data-capped]`; `#workflow-travel[data-following]`
 * with `#workflow-step` (the slider) and `#workflow-step-label`.
 */
import type { Api } from './api.js';
import { errorText } from './api.js';
import { byId, clockTime, countText, h, jsonText, moveOn, s, stateBadge } from './dom.js';
import { relative } from './insights.js';
import { panelRefresh, pollWhileVisible } from './panel.js';
import { countBadge, layoutWorkflow, type WfBox, type WorkflowLayout, type WorkflowMeasure } from './workflow-layout.js';
import {
  childByInvoke, childRows, concernsChild, concernsWorkflow, countsNote, countTitle, highlighted, historyPatch, historyShown, holdAt, outcomeOf, stateCounts,
  stepShown, timerRows, workflowRows, HISTORY_SHOWN, type HistoryRow, type TravelHold, type Workflow, type WorkflowEvent, type WorkflowGraphAnswer,
  type WorkflowPage,
} from './workflows.js';

export interface WorkflowsView {
  /** Read the instances now, then every 5 s while the page is visible; follow the stream. */
  start(): Promise<void>;
  /** A job transition from the page's stream: read the selected instance again if it is one of its children's. */
  onJobEvent(e: { jobId: string }): void;
  /** Select an instance (null: none). */
  select(id: string | null): Promise<void>;
  readonly selected: string | null;
}

const LIST_POLL_MS = 5000;
/** The relative times ("3 s ago", "in 12 s") move on this often, in place. */
const TICK_MS = 1000;
const POLL_MS = 1000;
const LIST_LIMIT = 30;
const COLUMNS = 6;
/** A list read re-reads the selected instance (for its counts, which other instances move) when its last read is older. */
const COUNTS_MS = 2000;

const FONTS = { state: '600 13px system-ui, sans-serif', line: '12px ui-monospace, monospace', edge: '500 11px ui-monospace, monospace' } as const;

function canvasMeasure(): WorkflowMeasure {
  const ctx = document.createElement('canvas').getContext('2d');
  return (text, kind) => {
    if (!ctx) return text.length * 8;
    ctx.font = FONTS[kind];
    return ctx.measureText(text).width;
  };
}

function boxGroup(b: WfBox): SVGGElement {
  return s('g', { class: `wf-state wf-${b.type}`, 'data-wf-state': b.id, 'data-type': b.type, 'data-depth': b.depth },
    s('title', {}, stateTip(b)),
    s('rect', { class: 'wf-box', x: b.x, y: b.y, width: b.width, height: b.height, rx: b.type === 'parallel' ? 4 : 10 }),
    b.type === 'final' && s('rect', { class: 'wf-inner', x: b.x + 3, y: b.y + 3, width: b.width - 6, height: b.height - 6, rx: 8 }),
    b.initial && s('circle', { class: 'wf-initial', cx: b.x - 7, cy: b.y + 13, r: 4 }),
    s('text', { class: 'wf-name', x: b.x + 10, y: b.y + 18 }, b.key),
    ...b.lines.map((l, i) => s('text', {
      class: `wf-line wf-line-${l.kind}`, x: b.x + 10, y: b.y + 36 + i * 16,
      ...(l.invokeId !== undefined ? { 'data-invoke': l.invokeId } : {}),
    }, l.text)),
  );
}

const stateTip = (b: Pick<WfBox, 'id' | 'type'>) => `${b.id} (${b.type})`;

/**
 * The live counts on the drawn states: a badge with the number on each state
 * with instances in it (none on the others), its tooltip saying what it counts.
 */
function drawCounts(svg: SVGSVGElement, layout: WorkflowLayout, graph: WorkflowGraphAnswer): void {
  const counts = stateCounts(graph);
  const boxes = new Map(layout.boxes.map((b) => [b.id, b]));
  for (const el of Array.from(svg.querySelectorAll('[data-wf-state]'))) {
    const id = el.getAttribute('data-wf-state') ?? '';
    const box = boxes.get(id);
    const n = counts.get(id) ?? 0;
    el.querySelector(':scope > [data-wf-count]')?.remove();
    const tip = el.querySelector(':scope > title');
    if (box && tip) tip.textContent = n ? `${stateTip(box)}\n${countTitle(id, n, graph)}` : stateTip(box);
    if (!box || n === 0) continue;
    const text = countText(n);
    const b = countBadge(box, text);
    el.append(s('g', { class: 'wf-count', 'data-wf-count': n },
      s('title', {}, countTitle(id, n, graph)),
      s('rect', { x: b.x, y: b.y, width: b.width, height: b.height, rx: b.height / 2 }),
      s('text', { x: b.textX, y: b.textY, 'text-anchor': 'middle' }, text)));
  }
}

function drawGraph(svg: SVGSVGElement, layout: WorkflowLayout): void {
  const marker = s('marker', {
    id: 'wf-arrow', class: 'wf-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z' }));
  // Outer states first, so the inner ones are drawn over them.
  const boxes = [...layout.boxes].sort((a, b) => a.depth - b.depth);
  svg.replaceChildren(
    s('defs', {}, marker),
    s('g', { class: 'wf-states' }, ...boxes.map(boxGroup)),
    s('g', { class: 'wf-edges' }, ...layout.arrows.map((a) => s('g', { class: 'wf-edge', 'data-wf-edge': a.key, 'data-kinds': a.kinds.join(' ') },
      s('title', {}, `${a.source} → ${a.target} on ${a.events.map((e) => e || 'always').join(', ')}`),
      s('path', { class: 'wf-edge-line', d: a.path, 'marker-end': 'url(#wf-arrow)' }),
      s('rect', { class: 'wf-edge-label', x: a.labelBox.x, y: a.labelBox.y, width: a.labelBox.width, height: a.labelBox.height, rx: 4 }),
      s('text', { class: 'wf-edge-text', x: a.labelBox.x + 6, y: a.labelBox.y + 13 }, a.label),
    ))),
  );
  svg.setAttribute('viewBox', `0 0 ${layout.width} ${layout.height}`);
  svg.setAttribute('width', String(layout.width));
  svg.setAttribute('height', String(layout.height));
}

export function createWorkflowsView(api: Pick<Api, 'workflows' | 'workflow' | 'workflowEvents' | 'workflowGraph' | 'watch'>, now: () => number, openJob: (id: string) => void): WorkflowsView {
  const rows = byId('workflow-rows');
  const note = byId('workflows-note');
  const count = byId('workflows-count');
  const detail = byId('workflow-detail');
  const title = byId('workflow-title');
  const facts = byId('workflow-facts');
  const svg = byId<SVGSVGElement>('workflow-graph');
  const children = byId('workflow-children');
  const timers = byId('workflow-timers');
  const outcome = byId('workflow-outcome');
  const history = byId('workflow-history');
  const live = byId('workflow-live');
  const error = byId('workflow-error');
  const countsLine = byId('workflow-counts');
  const travel = byId('workflow-travel');
  const slider = byId<HTMLInputElement>('workflow-step');
  const stepLabel = byId('workflow-step-label');
  const measure = canvasMeasure();

  let selected: string | null = null;
  let instance: Workflow | null = null;
  /** The machine drawn: of which name and definition version. */
  let drawnGraph = '';
  let layout: WorkflowLayout | null = null;
  /** The last graph and history read of the selected instance: what the slider walks. */
  let graphRead: WorkflowGraphAnswer | null = null;
  let eventsRead: WorkflowEvent[] = [];
  /** The history rows drawn (their seqs, in order), and of which instance. */
  let historySeqs: number[] = [];
  let historyOf = '';
  /** The step the slider holds, or null: at the last step, following the instance. */
  let hold: TravelHold = null;
  /** When the selected instance was last read (the page's clock). */
  let readAt = 0;
  let streaming = false;
  let listSig = '';
  let available = false;
  let watching = false;
  let refreshTimer: number | undefined;
  let listTimer: number | undefined;
  let reading = false;
  let again = false;

  const setLive = (mode: 'stream' | 'polling' | 'off') => {
    live.setAttribute('data-mode', mode);
    live.textContent = mode === 'stream' ? 'live (stream)' : mode === 'polling' ? 'live (reading the instance every second: the workflow stream is not connected)' : '';
  };

  const drawList = (page: WorkflowPage) => {
    const sig = JSON.stringify(page.workflows.map((w) => [w.id, w.status, w.value, w.updatedAt, w.children.length]));
    count.textContent = `· ${page.workflows.length}${page.nextCursor ? '+' : ''} instance${page.workflows.length === 1 ? '' : 's'}`;
    if (sig === listSig) return;
    listSig = sig;
    const list = workflowRows(page, now());
    rows.replaceChildren(...(list.length ? list.map((r) => {
      const tr = h('tr', { 'data-workflow-id': r.id, 'data-status': r.status, class: r.id === selected ? 'wf-row selected' : 'wf-row' },
        h('td', {}, h('button', { type: 'button', class: 'link', 'data-select-workflow': r.id, title: r.id }, r.id.slice(-10))),
        h('td', {}, h('code', {}, r.name), h('span', { class: 'muted' }, ` v${r.version}`)),
        h('td', {}, h('span', { class: 'wf-status', 'data-status': r.status }, r.status)),
        h('td', { class: 'wf-value' }, r.state),
        h('td', { class: 'num' }, r.children),
        h('td', {}, h('time', {
          datetime: r.updatedAt, title: `${r.updatedLocal} (${r.updatedAt})`, 'data-relative-at': Date.parse(r.updatedAt),
        }, r.updatedRelative)),
      );
      tr.addEventListener('click', () => void select(r.id));
      return tr;
    }) : [h('tr', { class: 'empty-note' }, h('td', { colspan: COLUMNS }, 'No workflow instance yet: start one with POST /v1/workflows.'))]));
  };

  const refreshList = panelRefresh({
    route: 'GET /v1/workflows', pollMs: LIST_POLL_MS, note, now,
    read: () => api.workflows(LIST_LIMIT),
    absent: () => {
      available = false;
      count.textContent = '';
      rows.replaceChildren();
    },
    got: (page) => {
      available = true;
      drawList(page);
      follow();
      // Other instances' steps move the counts: read them again with the list, at most every COUNTS_MS.
      if (selected && !reading && now() - readAt >= COUNTS_MS) selectedSoon();
    },
    absentWhy: ' (no workflow is registered)',
  });

  const listSoon = () => {
    window.clearTimeout(listTimer);
    listTimer = window.setTimeout(() => void refreshList(), 150);
  };

  const historyRow = (r: HistoryRow) => h('tr', { 'data-seq': r.seq, 'data-type': r.type },
    h('td', { class: 'num' }, String(r.seq)), h('td', {}, h('code', {}, r.type)), h('td', {}, r.what),
    h('td', {}, h('span', { class: 'wf-status', 'data-status': r.status }, r.status)),
    h('td', { title: r.at }, clockTime(r.at)));

  /**
   * The history's last HISTORY_SHOWN steps (the slider's), under a line
   * counting the older ones: at each step of the instance, its new rows are
   * appended and the oldest past the cap removed; the others stay as drawn.
   */
  const drawHistory = (id: string, events: readonly WorkflowEvent[]) => {
    const shown = historyShown(events);
    const patch = historyOf === id ? historyPatch(historySeqs, shown.rows) : null;
    if (patch) {
      const drawn = history.querySelectorAll('tr[data-seq]');
      for (let i = 0; i < patch.drop; i++) drawn[i]?.remove();
      history.append(...patch.append.map(historyRow));
    } else {
      history.replaceChildren(...shown.rows.map(historyRow));
    }
    historyOf = id;
    historySeqs = shown.rows.map((r) => r.seq);
    let older = history.querySelector('tr[data-older]');
    if (shown.older === 0) {
      older?.remove();
      return;
    }
    if (!older) {
      older = h('tr', { class: 'empty-note' }, h('td', { colspan: 5 }));
      history.prepend(older);
    }
    older.setAttribute('data-older', String(shown.older));
    older.firstElementChild!.textContent = `${countText(shown.older)} older step${shown.older === 1 ? '' : 's'} not shown: `
      + `the history lists the last ${countText(shown.rows.length)}${shown.rows.length < HISTORY_SHOWN ? ` (at most ${HISTORY_SHOWN}: their data fill a page)` : ''}, `
      + `the slider walks the last ${HISTORY_SHOWN} (all of them: GET /v1/workflows/${id}/events a page at a time, or ats workflow history ${id}).`;
  };

  const drawInstance = (w: Workflow, graph: WorkflowGraphAnswer, events: Awaited<ReturnType<Api['workflowEvents']>>) => {
    detail.hidden = false;
    detail.setAttribute('data-workflow-id', w.id);
    detail.setAttribute('data-status', w.status);
    title.replaceChildren(h('code', {}, w.name), ` v${w.definitionVersion} `, h('span', { class: 'wf-status', 'data-status': w.status }, w.status));
    facts.replaceChildren(
      h('dt', {}, 'Id'), h('dd', {}, h('code', {}, w.id)),
      h('dt', {}, 'Started'), h('dd', { title: w.createdAt }, clockTime(w.createdAt)),
      h('dt', {}, 'Last step'), h('dd', { title: w.updatedAt }, `${clockTime(w.updatedAt)} (`,
        h('span', { 'data-relative-at': Date.parse(w.updatedAt) }, relative(Date.parse(w.updatedAt), now())), ')'),
      h('dt', {}, 'Takes now'), h('dd', {}, w.accepts.length ? w.accepts.join(', ') : h('span', { class: 'muted' }, 'no signal')),
    );
    const sig = `${graph.name}\u0000${graph.definitionVersion}`;
    if (sig !== drawnGraph || !layout) {
      layout = layoutWorkflow(graph, measure);
      drawGraph(svg, layout);
      drawnGraph = sig;
    }
    drawCounts(svg, layout, graph);
    const note = countsNote(graph);
    countsLine.hidden = note === null;
    countsLine.textContent = note ?? '';
    countsLine.setAttribute('data-capped', String(graph.counts?.capped ?? false));
    const jobs = childByInvoke(w);
    for (const el of Array.from(svg.querySelectorAll('[data-invoke]'))) {
      const c = jobs.get(el.getAttribute('data-invoke') ?? '');
      if (c) el.setAttribute('data-job-state', c.state);
      else el.removeAttribute('data-job-state');
    }
    const kids = childRows(w);
    children.replaceChildren(...(kids.length ? kids.map((c) => {
      const open = h('button', { type: 'button', class: 'link', 'data-open-job': c.jobId, title: 'Open the job in the inspector' }, c.jobId);
      open.addEventListener('click', () => openJob(c.jobId));
      return h('tr', { 'data-job-id': c.jobId, 'data-invoke-id': c.invokeId },
        h('td', {}, h('code', {}, c.invokeId)), h('td', {}, h('code', {}, c.jobType)), h('td', {}, stateBadge(c.state)), h('td', {}, open));
    }) : [h('tr', { class: 'empty-note' }, h('td', { colspan: 4 }, w.status === 'active' ? 'No job running for it now.' : 'It has ended: no live child.'))]));
    const t = timerRows(w, now());
    timers.replaceChildren(...(t.length
      ? t.map((r) => h('li', { 'data-timer-id': r.id }, r.text, ' · due ',
        h('time', { datetime: r.dueAt, title: `${r.dueLocal} (${r.dueAt})`, 'data-relative-at': Date.parse(r.dueAt) }, r.dueRelative)))
      : [h('li', { class: 'muted' }, 'none')]));
    const out = outcomeOf(w);
    outcome.setAttribute('data-kind', out?.kind ?? 'running');
    outcome.textContent = out ? `${out.kind === 'output' ? 'Output' : out.kind === 'error' ? 'Error' : 'Cancelled'}: ${jsonText(out.value)}` : 'Running.';
    drawHistory(w.id, events);
    graphRead = graph;
    eventsRead = events;
    showStep();
  };

  /**
   * Show the step the slider is on: its states highlighted (the current ones
   * at the last step), its row of the history marked, later rows dimmed.
   */
  const showStep = () => {
    const shown = graphRead ? stepShown(graphRead, hold, eventsRead) : null;
    if (shown?.following) hold = null;
    travel.hidden = shown === null;
    travel.setAttribute('data-following', String(shown?.following ?? true));
    svg.classList.toggle('stepping', shown !== null && !shown.following);
    if (shown) {
      slider.max = String(shown.total);
      slider.value = String(shown.index);
      slider.disabled = shown.total < 2;
      stepLabel.textContent = shown.following ? `${shown.label} (now)` : shown.label;
    }
    const on = shown?.active ?? (graphRead ? highlighted(graphRead) : new Set<string>());
    svg.setAttribute('data-status', shown?.status ?? graphRead?.status ?? '');
    for (const el of Array.from(svg.querySelectorAll('[data-wf-state]'))) {
      el.setAttribute('data-active', String(on.has(el.getAttribute('data-wf-state') ?? '')));
    }
    for (const tr of Array.from(history.querySelectorAll('tr[data-seq]'))) {
      const seq = Number(tr.getAttribute('data-seq'));
      tr.classList.toggle('future', shown !== null && seq > shown.seq);
      if (shown && seq === shown.seq) tr.setAttribute('aria-current', 'step');
      else tr.removeAttribute('aria-current');
    }
  };

  /**
   * Nothing of the selected instance could be read yet: take down what the
   * detail shows of the one selected before (its facts, machine, children,
   * timers, outcome and history), so the error stands under this one's id.
   */
  const drawUnread = (id: string) => {
    detail.hidden = false;
    detail.setAttribute('data-workflow-id', id);
    detail.removeAttribute('data-status');
    title.replaceChildren(h('code', {}, id));
    facts.replaceChildren();
    svg.replaceChildren();
    svg.removeAttribute('data-status');
    drawnGraph = '';
    layout = null;
    countsLine.hidden = true;
    countsLine.textContent = '';
    travel.hidden = true;
    children.replaceChildren();
    timers.replaceChildren();
    outcome.removeAttribute('data-kind');
    outcome.textContent = '';
    history.replaceChildren();
    historyOf = '';
    historySeqs = [];
  };

  /** Read the selected instance, its graph and its history; one read at a time, a call during one asks for another after it. */
  const refreshSelected = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    const id = selected;
    if (!id) return;
    reading = true;
    try {
      const [w, graph, events] = await Promise.all([api.workflow(id), api.workflowGraph(id), api.workflowEvents(id, HISTORY_SHOWN)]);
      if (id !== selected) return;
      if (!graph) throw new Error('the instance is gone');
      instance = w;
      readAt = now();
      error.textContent = '';
      drawInstance(w, graph, events);
    } catch (err) {
      if (id === selected) {
        if (instance === null) drawUnread(id);
        error.textContent = `Could not read workflow instance ${id}: ${errorText(err)}`;
      }
    } finally {
      reading = false;
      if (again) {
        again = false;
        void refreshSelected();
      }
    }
  };

  const selectedSoon = () => {
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(() => void refreshSelected(), 50);
  };

  async function select(id: string | null): Promise<void> {
    selected = id;
    instance = null;
    graphRead = null;
    eventsRead = [];
    historyOf = '';
    hold = null;
    for (const tr of Array.from(rows.querySelectorAll('tr[data-workflow-id]'))) tr.classList.toggle('selected', tr.getAttribute('data-workflow-id') === id);
    if (!id) {
      detail.hidden = true;
      detail.removeAttribute('data-workflow-id');
      return;
    }
    await refreshSelected();
  }

  /** The workflow stream: once the server is known to have workflows. */
  function follow(): void {
    if (watching || !available) return;
    watching = true;
    api.watch({ workflows: true }, {
      reconnect: { minMs: 2000, maxMs: 30_000 },
      retryFirstConnect: true,
      onWorkflow(m) {
        listSoon();
        if (concernsWorkflow(m, selected)) selectedSoon();
      },
      onConnection(state) {
        streaming = state === 'subscribed';
        setLive(streaming ? 'stream' : 'polling');
        // Steps may have been missed while it was down: read again.
        if (streaming && selected) selectedSoon();
      },
    });
  }

  return {
    get selected() {
      return selected;
    },
    select,
    onJobEvent(e) {
      if (concernsChild(e, instance)) selectedSoon();
    },
    async start() {
      setLive('off');
      await refreshList();
      pollWhileVisible(refreshList, LIST_POLL_MS);
      // The list is redrawn only when an instance changed: its "last step" times (and the selected one's, and its
      // timers' due times) are moved on here, or a quiet instance would say "3 s ago" for as long as it waits.
      const section = byId('workflows-section');
      window.setInterval(() => moveOn(section, 'data-relative-at', relative, now()), TICK_MS);
      // Without the workflow stream: the selected instance, every second while it is active and the page visible.
      window.setInterval(() => {
        if (streaming || !selected || document.visibilityState !== 'visible') return;
        if (available) setLive('polling');
        if (instance === null || instance.status === 'active') void refreshSelected();
      }, POLL_MS);
      byId('workflow-close').addEventListener('click', () => void select(null));
      slider.addEventListener('input', () => {
        if (!graphRead) return;
        hold = holdAt(graphRead, Number(slider.value));
        showStep();
      });
      // A row of the history is a step too: a click shows it (one older than the graph's steps shows the oldest it has).
      history.addEventListener('click', (ev) => {
        const seq = (ev.target as Element).closest('tr[data-seq]')?.getAttribute('data-seq');
        if (!seq || !graphRead?.steps?.length) return;
        const last = graphRead.steps[graphRead.steps.length - 1]!;
        hold = Number(seq) >= last.seq ? null : Number(seq);
        showStep();
      });
    },
  };
}
