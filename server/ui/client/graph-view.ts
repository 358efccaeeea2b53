/**
 * Draws the laid-out machine as SVG and keeps it live: job counts on the
 * states, a short highlight on the edge a transition took, and the state and
 * edge of the time-travel step. While a job is time-travelled, other jobs'
 * flashes are held (the svg carries `data-flashes="paused"`) and shown once
 * when it ends. Test ids: `data-state` on each state's group (with a
 * `data-count` text inside), `data-edge="from-EVENT-to"` on each edge.
 */
import type { MachineGraph, StateCounts } from './api.js';
import { duration, s } from './dom.js';
import { layoutMachine, type EdgeShape, type Measure, type StateNode } from './graph-layout.js';

export interface MachineView {
  /** Show each state's job count (a state missing from `counts` shows 0). */
  setCounts(counts: StateCounts): void;
  /**
   * Briefly highlight the edge a live transition took (an unknown key is
   * ignored). While flashes are paused it is held, unless `evenIfPaused`.
   */
  flash(edgeKey: string, evenIfPaused?: boolean): void;
  /** Hold flashes (true), or show the held ones once and flash again as they come (false). */
  pauseFlashes(paused: boolean): void;
  /** Edges whose flash is held now. */
  readonly heldFlashes: number;
  /** Each edge's tooltip gains its count and median dwell over the window (`GET /v1/stats/edges`); null clears them. */
  setEdgeStats(stats: readonly { key: string; count: number; medianDwellMs: number | null }[] | null, windowMs?: number): void;
  /** Mark one step of a job's history (its state and the edge into it), or clear with null. */
  showStep(step: { state: string; edge: string } | null): void;
}

/** Fonts the page draws with; the layout measures the same ones. */
const FONTS = { state: '600 14px system-ui, sans-serif', edge: '500 11px ui-monospace, monospace' } as const;
const FLASH_MS = 1200;

function canvasMeasure(): Measure {
  const ctx = document.createElement('canvas').getContext('2d');
  return (text, kind) => {
    if (!ctx) return text.length * 8;
    ctx.font = FONTS[kind];
    return ctx.measureText(text).width;
  };
}

function arrowMarker(id: string): SVGMarkerElement {
  return s('marker', {
    id, class: id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z' }));
}

function stateGroup(st: StateNode): SVGGElement {
  const { x, y, width: w, height: hgt } = st;
  return s('g', { class: 'state', 'data-state': st.id, 'data-terminal': st.terminal },
    s('title', {}, st.description ? `${st.id}: ${st.description}` : st.id),
    s('rect', { class: 'state-box', x: x - w / 2, y: y - hgt / 2, width: w, height: hgt, rx: 12 }),
    // A final state gets a double border, as in UML statecharts.
    st.terminal && s('rect', { class: 'state-inner', x: x - w / 2 + 4, y: y - hgt / 2 + 4, width: w - 8, height: hgt - 8, rx: 9 }),
    s('text', { class: 'state-name', x, y: y - 6, 'text-anchor': 'middle' }, st.id),
    s('text', { class: 'state-count', 'data-count': '', x, y: y + 16, 'text-anchor': 'middle' }, '0'),
  );
}

const edgeTip = (e: EdgeShape): string => `${e.from} → ${e.to} on ${e.event}${e.guard ? ` [${e.guard}]` : ''}`;

function edgeLine(e: EdgeShape): SVGGElement {
  return s('g', { class: 'edge', 'data-edge': e.key, 'data-self': e.from === e.to },
    s('title', {}, edgeTip(e)),
    s('path', { class: 'edge-line', d: e.path }),
  );
}

function edgeLabel(e: EdgeShape): SVGGElement {
  const { x, y, width, height } = e.label;
  return s('g', { class: 'edge-label', 'data-edge-label': e.key },
    s('title', {}, edgeTip(e)),
    s('rect', { x: x - width / 2, y: y - height / 2, width, height, rx: 4 }),
    s('text', { x, y: y + 4, 'text-anchor': 'middle' }, e.event),
  );
}

/** Lay out `graph`, draw it into `svg` (replacing what it held) and return its live handle. */
export function renderMachine(svg: SVGSVGElement, graph: MachineGraph): MachineView {
  const layout = layoutMachine(graph, canvasMeasure());
  svg.replaceChildren(
    s('defs', {}, arrowMarker('arrow'), arrowMarker('arrow-hot'), arrowMarker('arrow-taken')),
    s('g', { class: 'edges' }, ...layout.edges.map(edgeLine)),
    s('g', { class: 'edge-labels' }, ...layout.edges.map(edgeLabel)),
    s('circle', { class: 'start', cx: layout.start.x, cy: layout.start.y, r: layout.start.width / 2 }),
    s('g', { class: 'states' }, ...layout.states.map(stateGroup)),
  );
  svg.setAttribute('viewBox', `0 0 ${layout.width} ${layout.height}`);
  return machineView(svg);
}

function machineView(svg: SVGSVGElement): MachineView {
  const edges = new Map<string, Element[]>();
  for (const el of Array.from(svg.querySelectorAll('[data-edge], [data-edge-label]'))) {
    const key = el.getAttribute('data-edge') ?? el.getAttribute('data-edge-label') ?? '';
    edges.set(key, [...(edges.get(key) ?? []), el]);
  }
  const states = new Map(Array.from(svg.querySelectorAll('[data-state]')).map((el) => [el.getAttribute('data-state') ?? '', el]));
  const flashTimers = new Map<string, number>();
  const held = new Set<string>();
  let paused = false;
  svg.setAttribute('data-flashes', 'live');

  return {
    setCounts(counts) {
      for (const [id, el] of states) {
        // Own keys only: a name missing from the JSON must read 0, never an inherited member.
        const n = Object.hasOwn(counts, id) ? Number(counts[id]) || 0 : 0;
        const text = el.querySelector('[data-count]');
        if (text && text.textContent !== String(n)) text.textContent = String(n);
        el.classList.toggle('empty', n === 0);
      }
    },
    flash(key, evenIfPaused = false) {
      const els = edges.get(key);
      if (!els) return;
      if (paused && !evenIfPaused) {
        held.add(key);
        return;
      }
      for (const el of els) el.classList.add('flash');
      // A busy edge stays lit: each transition pushes its end back.
      window.clearTimeout(flashTimers.get(key));
      flashTimers.set(key, window.setTimeout(() => {
        for (const el of els) el.classList.remove('flash');
        flashTimers.delete(key);
      }, FLASH_MS));
    },
    pauseFlashes(on) {
      if (on === paused) return;
      paused = on;
      svg.setAttribute('data-flashes', on ? 'paused' : 'live');
      if (on) return;
      const keys = [...held];
      held.clear();
      for (const key of keys) this.flash(key);
    },
    get heldFlashes() {
      return held.size;
    },
    setEdgeStats(stats, windowMs) {
      const byKey = new Map((stats ?? []).map((e) => [e.key, e]));
      const span = windowMs ? ` in the last ${duration(windowMs)}` : '';
      for (const [key, els] of edges) {
        const st = byKey.get(key);
        for (const el of els) {
          const title = el.querySelector('title');
          if (!title) continue;
          const base = title.getAttribute('data-base') ?? title.textContent ?? '';
          title.setAttribute('data-base', base);
          const from = key.slice(0, key.indexOf('-'));
          const dwell = st && from !== 'start'
            ? `; median time in ${from} before: ${st.medianDwellMs === null ? 'unknown' : duration(st.medianDwellMs)}` : '';
          title.textContent = st ? `${base}\n${st.count} taken${span}${dwell}` : base;
          if (st) el.setAttribute('data-edge-count', String(st.count));
          else el.removeAttribute('data-edge-count');
        }
      }
    },
    showStep(step) {
      for (const el of Array.from(svg.querySelectorAll('.is-current, .is-taken'))) el.classList.remove('is-current', 'is-taken');
      svg.classList.toggle('stepping', step !== null);
      if (!step) return;
      states.get(step.state)?.classList.add('is-current');
      for (const el of edges.get(step.edge) ?? []) el.classList.add('is-taken');
    },
  };
}
