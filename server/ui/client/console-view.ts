/**
 * The operator's panels below the machine: throughput and queue-wait charts
 * (last 15 minutes), job counts per type and per queue, the machine's edges
 * with their counts and median dwell (`GET /v1/stats/edges`), what waits for
 * the relay, and the workers seen on the stream. Where the data comes from: see
 * console-data.ts.
 */
import { errorText, type Api, type CountStats, type EdgeStats, type OutboxStats } from './api.js';
import { drawChart } from './charts.js';
import {
  BUCKET_MS, CountsShown, KINDS, QueueWait, Throughput, WINDOW_MS, WorkerSeen, type CountTable, type Kind, type LiveEvent,
} from './console-data.js';
import { byId, countText as count, duration, h } from './dom.js';
import { edgeKey } from './graph-layout.js';
import type { MachineView } from './graph-view.js';

export interface ConsoleView {
  onEvent(e: LiveEvent): void;
  onStats(stats: CountStats): void;
  /** Fill the throughput chart from the jobs submitted in the last 15 minutes, then keep it and the edges fresh. */
  start(): Promise<void>;
}

const KIND_LABEL: Record<Kind, string> = { submitted: 'submitted', done: 'done', dead: 'dead' };
/** The backfill reads at most this many pages of 500 jobs. */
const BACKFILL_PAGES = 4;
const REDRAW_MS = 2000;
const EDGES_MS = 10_000;

const own = (o: Record<string, number | undefined>, k: string): number => (Object.hasOwn(o, k) ? Number(o[k]) || 0 : 0);

/** Draw a counts table (past COUNT_ROWS names, those with the most jobs and a line for the rest). */
function countsTable(body: HTMLElement, table: CountTable, states: readonly string[], what: string): void {
  const colspan = states.length + 2;
  if (!table.rows.length) {
    body.replaceChildren(h('tr', { class: 'empty-note' }, h('td', { colspan }, `No ${what} yet.`)));
    return;
  }
  body.replaceChildren(
    ...table.rows.map((r) => h('tr', { 'data-name': r.name },
      h('th', { scope: 'row' }, r.name),
      ...states.map((st, i) => h('td', { class: r.counts[i] ? 'num' : 'num zero', 'data-state-count': st }, String(r.counts[i] ?? 0))),
      h('td', { class: 'num total' }, String(r.total)),
    )),
    ...(table.more > 0 ? [h('tr', { class: 'empty-note', 'data-more': table.more },
      h('td', { colspan }, `… and ${count(table.more)} more ${what} (${count(table.moreJobs)} jobs): only the ${count(table.rows.length)} with the most jobs are listed, most first.`))] : []),
  );
}

export function createConsoleView(api: Api, view: MachineView, states: readonly string[], now: () => number): ConsoleView {
  const throughput = new Throughput();
  const waits = new QueueWait();
  const workers = new WorkerSeen();
  let edges: EdgeStats | null = null;
  /** undefined: not read yet; null: the server has no GET /v1/stats/outbox. */
  let outbox: OutboxStats | null | undefined;
  /** Why the last read of GET /v1/stats/outbox failed ('' when it answered): the last answer stays shown. */
  let outboxError = '';
  let lastStats: CountStats | null = null;
  const typeCounts = new CountsShown(states);
  const queueCounts = new CountsShown(states);

  const tChart = byId<SVGSVGElement>('throughput-chart');
  const wChart = byId<SVGSVGElement>('wait-chart');
  const tLegend = byId('throughput-legend');
  const wLegend = byId('wait-legend');
  const backfillNote = byId('backfill-note');

  for (const id of ['counts-type-head', 'counts-queue-head']) {
    byId(id).replaceChildren(h('tr', {}, h('th', {}, id.includes('type') ? 'type' : 'queue'),
      ...states.map((st) => h('th', { class: 'num' }, st)), h('th', { class: 'num' }, 'total')));
  }

  /** The STARTED edge taken most: its median dwell is the server's view of the queue wait. */
  const serverWait = (): { value: number; label: string } | null => {
    const started = (edges?.edges ?? []).filter((e) => e.event === 'STARTED' && e.medianDwellMs !== null && e.count > 0);
    const top = started.sort((a, b) => b.count - a.count)[0];
    return top && top.medianDwellMs !== null
      ? { value: top.medianDwellMs, label: `server: median ${duration(top.medianDwellMs)} in ${top.from ?? 'start'} (${top.count} starts)` }
      : null;
  };

  const redraw = () => {
    const t = now();
    throughput.prune(t);
    waits.prune(t);
    workers.prune(t);
    const series = KINDS.map((k) => ({ key: k, label: `${KIND_LABEL[k]} per ${BUCKET_MS / 1000} s`, values: throughput.series(k, t) }));
    drawChart(tChart, { series, windowMs: WINDOW_MS, format: (v) => String(Math.round(v)) });
    tLegend.replaceChildren(...series.map((s) => h('span', { class: `legend series-${s.key}`, 'data-legend': s.key },
      `${s.key}: ${s.values.reduce((a, v) => a + v, 0)}`)));

    const w = waits.series(t);
    const reference = serverWait();
    drawChart(wChart, {
      series: [
        { key: 'median', label: 'median wait', values: w.map((p) => p.median) },
        { key: 'max', label: 'longest wait', values: w.map((p) => p.max) },
      ],
      windowMs: WINDOW_MS, format: (v) => duration(v), reference,
    });
    const n = w.reduce((a, p) => a + p.n, 0);
    wLegend.replaceChildren(
      h('span', { class: 'legend series-median' }, 'median'), h('span', { class: 'legend series-max' }, 'longest'),
      h('span', { class: 'muted', 'data-wait-count': n }, `${n} attempt${n === 1 ? '' : 's'} started since the page opened`),
    );

    renderWorkers();
  };

  const renderWorkers = () => {
    const rows = workers.list();
    const body = byId('workers-rows');
    const t = now();
    body.replaceChildren(...(rows.length
      ? rows.map((w) => h('tr', { 'data-worker': w.workerId },
        h('td', {}, h('code', {}, w.workerId)),
        h('td', { class: 'num' }, String(w.running)),
        h('td', { class: 'num' }, String(w.started)),
        h('td', { class: w.leasesLost ? 'num warn' : 'num' }, String(w.leasesLost)),
        h('td', {}, `${duration(Math.max(0, t - w.lastSeen))} ago`),
      ))
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: 5 }, 'No worker seen yet: none started an attempt since the page opened.'))]));
  };

  const renderBacklog = () => {
    const box = byId('backlog');
    const c = lastStats?.byState ?? {};
    const rows = outbox === undefined ? '…' : outbox === null ? 'not available' : String(outbox.rows);
    const age = !outbox || outbox.oldestAgeMs === null ? '–' : duration(outbox.oldestAgeMs);
    box.replaceChildren(
      h('div', {}, h('dt', {}, 'outbox rows'), h('dd', { 'data-backlog': 'outbox' }, rows)),
      h('div', {}, h('dt', {}, 'oldest waits'), h('dd', { 'data-backlog': 'outbox-age' }, age)),
      h('div', {}, h('dt', {}, 'pending'), h('dd', { 'data-backlog': 'pending' }, String(own(c, 'pending')))),
      h('div', {}, h('dt', {}, 'published'), h('dd', { 'data-backlog': 'published' }, String(own(c, 'published')))),
      h('div', {}, h('dt', {}, 'retrying'), h('dd', { 'data-backlog': 'retrying' }, String(own(c, 'retrying')))),
      outboxError && h('div', {}, h('dt', {}, 'outbox read'),
        h('dd', { class: 'error-text', 'data-backlog': 'outbox-error' }, `Could not read GET /v1/stats/outbox: ${outboxError}`)),
    );
  };

  const renderEdges = (err?: string) => {
    const body = byId('edge-rows');
    const note = byId('edge-note');
    view.setEdgeStats(edges ? edges.edges.map((e) => ({ ...e, key: edgeKey(e.from, e.event, e.to) })) : null, edges?.windowMs);
    if (err) {
      note.textContent = `Could not read GET /v1/stats/edges: ${err}`;
      return;
    }
    if (!edges) {
      note.textContent = 'Not available: this server has no GET /v1/stats/edges (the metrics are not enabled or not in this version).';
      body.replaceChildren();
      return;
    }
    note.textContent = `Last ${duration(edges.windowMs)}, from GET /v1/stats/edges; also in each edge's tooltip on the machine.`;
    const sorted = [...edges.edges].sort((a, b) => b.count - a.count);
    body.replaceChildren(...(sorted.length
      ? sorted.map((e) => h('tr', { 'data-edge-stat': edgeKey(e.from, e.event, e.to) },
        h('td', {}, e.from ?? '∅'), h('td', {}, e.to), h('td', {}, h('code', {}, e.event)),
        h('td', { class: 'num' }, String(e.count)),
        h('td', { class: 'num' }, e.medianDwellMs === null ? '–' : duration(e.medianDwellMs)),
      ))
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: 5 }, 'No transition in the window.'))]));
  };

  const pollEdges = async () => {
    try {
      edges = await api.edges();
      renderEdges();
    } catch (err) {
      renderEdges(errorText(err));
    }
    try {
      outbox = await api.outbox();
      outboxError = '';
    } catch (err) {
      // Not "not available" (that is a server without the route): the server or its database did not answer.
      outboxError = errorText(err);
    }
    renderBacklog();
  };

  const backfill = async () => {
    const t0 = now();
    const since = new Date(t0 - WINDOW_MS).toISOString();
    let seen = 0;
    let cursor: string | undefined;
    try {
      for (let page = 0; page < BACKFILL_PAGES; page++) {
        // Newest first, stopping at the first job older than the window: the
        // pages read are those of the window (plus one), never the whole table.
        const res = await api.listJobs({ limit: 500, ...(cursor ? { cursor } : {}) });
        const inWindow = res.jobs.filter((j) => j.createdAt >= since);
        for (const j of inWindow) throughput.addJob(j, t0);
        seen += inWindow.length;
        cursor = inWindow.length === res.jobs.length ? (res.nextCursor ?? undefined) : undefined;
        if (!cursor) break;
      }
      backfillNote.textContent = cursor
        ? `Filled from the newest ${seen} jobs submitted in the last 15 minutes (older ones left out), then live from the stream.`
        : `Filled from the ${seen} job${seen === 1 ? '' : 's'} submitted in the last 15 minutes, then live from the stream.`;
    } catch (err) {
      backfillNote.textContent = `Live from the stream since the page opened (the backfill failed: ${errorText(err)}).`;
    }
    redraw();
  };

  return {
    onEvent(e) {
      const t = now();
      throughput.addEvent(e, t);
      waits.addEvent(e);
      workers.addEvent(e);
    },
    onStats(stats) {
      lastStats = stats;
      // Once a second, each with every name: redrawn only when what they show changed.
      const types = typeCounts.update(stats.byType);
      if (types) countsTable(byId('counts-type-rows'), types, states, 'job types');
      const queues = queueCounts.update(stats.byQueue);
      if (queues) countsTable(byId('counts-queue-rows'), queues, states, 'queues');
      renderBacklog();
    },
    async start() {
      redraw();
      await Promise.all([backfill(), pollEdges()]);
      window.setInterval(redraw, REDRAW_MS);
      window.setInterval(() => void pollEdges(), EDGES_MS);
    },
  };
}
