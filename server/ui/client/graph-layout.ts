/**
 * Lays out the job machine with dagre: every position comes from the graph
 * `GET /v1/machine` returns, none is placed by hand, so a change to the machine
 * changes the picture. Pure (no DOM): text widths come from a `measure`
 * callback, so this also runs under node for tests.
 *
 * The user events (CANCEL from most states, REDRIVE back to the start) would
 * make dagre route long edges around the whole diagram: they are left out of
 * the layout and drawn after it, each the short way from its source to its
 * target, beside the states in between rather than around all of them. A
 * state only user events reach keeps one of them in the layout (the one from
 * its middle source), so it still sits beside the states it is left from.
 * Labels sit beside their line (dagre's `labelpos: 'r'`), not on it.
 */
import { graphlib, layout } from '@dagrejs/dagre';
import type { MachineGraph } from '../../../machines/lifecycle.js';

export interface Point {
  x: number;
  y: number;
}

/** A box centred on (x, y). */
export interface Box extends Point {
  width: number;
  height: number;
}

export interface StateNode extends Box {
  id: string;
  terminal: boolean;
  initial: boolean;
  description: string;
}

export interface EdgeShape {
  /** `from-event-to`: what `data-edge` holds and what a stream event maps to. */
  key: string;
  from: string;
  to: string;
  event: string;
  guard?: string;
  /** The route from the source's border to the target's (a loop for a self-transition). */
  points: Point[];
  /** SVG path data along `points`. */
  path: string;
  label: Box;
}

export interface MachineLayout {
  width: number;
  height: number;
  states: StateNode[];
  /** The dot a new job enters from: the machine's initial pseudo-state. */
  start: Box;
  edges: EdgeShape[];
}

/** Measures a text in px; `kind` tells which font the page draws it in. */
export type Measure = (text: string, kind: 'state' | 'edge') => number;

/** The edge a stored event took: `start` stands for the entry of a new job (from null). */
export const edgeKey = (from: string | null, event: string, to: string): string => `${from ?? 'start'}-${event}-${to}`;

/** The event type of a job's first event (the submit), drawn as the entry edge. */
export const SUBMIT_EVENT = 'SUBMITTED';

const START = '\u0000start';
const START_SIZE = 16;
const STATE_HEIGHT = 56;
const STATE_MIN_WIDTH = 120;
const STATE_PAD_X = 26;
const LABEL_PAD_X = 8;
const LABEL_HEIGHT = 20;
const LABEL_OFFSET = 6;
/** Clearance of a user edge from the states it passes. */
const LANE_GAP = 22;
/** Room between the diagram and a state placed beside it. */
const SIDE_GAP = 90;
/** Events a user sends (through the API), drawn after the layout. */
export const USER_EVENTS: ReadonlySet<string> = new Set(['CANCEL', 'REDRIVE']);

interface EdgeLabel {
  width: number;
  height: number;
  labelpos: 'c' | 'r';
  labeloffset?: number;
  points?: Point[];
  x?: number;
  y?: number;
}

type GraphEdge = MachineGraph['edges'][number];

const isUserEdge = (e: GraphEdge): boolean => USER_EVENTS.has(e.event) && e.from !== e.to;

/** The median of a non-empty list. */
const middle = (v: readonly number[]): number => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

type Shape = Pick<EdgeShape, 'points' | 'path' | 'label'>;

/** The machine's states and edges, positioned. */
export function layoutMachine(graph: MachineGraph, measure: Measure): MachineLayout {
  const labelOf = (text: string, onLine = false): EdgeLabel => ({
    width: Math.ceil(measure(text, 'edge')) + 2 * LABEL_PAD_X, height: LABEL_HEIGHT,
    ...(onLine ? { labelpos: 'c' } : { labelpos: 'r', labeloffset: LABEL_OFFSET }),
  });
  const stateWidth = (id: string) => Math.max(STATE_MIN_WIDTH, Math.ceil(measure(id, 'state')) + 2 * STATE_PAD_X);
  const entryKey = edgeKey(null, SUBMIT_EVENT, graph.initial);
  // States only user events lead to (cancelled): placed beside the diagram, not in it.
  const reached = new Set<string>([graph.initial, ...graph.edges.filter((e) => !isUserEdge(e)).map((e) => e.to)]);
  const aside = new Set<string>(graph.edges.filter(isUserEdge).map((e) => e.to).filter((to) => !reached.has(to)));

  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 40, edgesep: 16, ranksep: 46, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  g.setNode(START, { width: START_SIZE, height: START_SIZE });
  for (const st of graph.states) if (!aside.has(st.id)) g.setNode(st.id, { width: stateWidth(st.id), height: STATE_HEIGHT });
  g.setEdge(START, graph.initial, labelOf('submit'), entryKey);
  // The edge's name keeps parallel edges (FAILED and LEASE_EXPIRED, both running→dead) apart.
  // A self-transition's label is placed by selfLoop(), beside its loop: dagre gets it centred.
  graph.edges.forEach((e, i) => {
    if (!isUserEdge(e)) g.setEdge(e.from, e.to, labelOf(e.event, e.from === e.to), `${i}`);
  });
  layout(g);

  const boxes = new Map<string, Box>();
  for (const id of [START, ...graph.states.map((st) => st.id)]) {
    const n = g.node(id) as Box | undefined;
    if (n) boxes.set(id, { x: n.x, y: n.y, width: n.width, height: n.height });
  }
  const at = (id: string): Box => boxes.get(id)!;
  const dagreShape = (from: string, to: string, name: string): Shape => {
    const l = g.edge(from, to, name) as EdgeLabel;
    const label = { x: l.x ?? 0, y: l.y ?? 0, width: l.width, height: l.height };
    if (from === to) return selfLoop(at(from), label);
    const points = (l.points ?? []).map((p) => ({ x: p.x, y: p.y }));
    return { points, path: splinePath(points), label };
  };
  const shapes = new Map<number, Shape>();
  graph.edges.forEach((e, i) => {
    if (!isUserEdge(e)) shapes.set(i, dagreShape(e.from, e.to, `${i}`));
  });
  const entry = dagreShape(START, graph.initial, entryKey);
  const laid = [entry, ...shapes.values()];
  // dagre puts a label beside its line where the line passes its rank; a line bending on may still cut it: move it aside.
  const curves = laid.map((sh) => pathPoints(sh.path));
  for (const sh of laid) {
    const others = laid.filter((o) => o !== sh).map((o) => o.label);
    const free = (b: Box) => !curves.some((pts) => pts.some((pt) => inBox(pt, b, 1)))
      && ![...boxes.values(), ...others].some((o) => overlaps(b, o, 2));
    if (!free(sh.label)) sh.label = nearestFree(sh.label, free);
  }
  const labels = laid.map((sh) => sh.label);

  // Each state aside goes left or right of everything drawn at the heights of its sources, at their middle height.
  for (const id of aside) {
    const sources = graph.edges.filter((e) => isUserEdge(e) && e.to === id && !aside.has(e.from)).map((e) => at(e.from));
    if (!sources.length) continue;
    const ys = sources.map((b) => b.y);
    const lo = Math.min(...ys) - STATE_HEIGHT;
    const hi = Math.max(...ys) + STATE_HEIGHT;
    const xs = [
      ...[...boxes.values()].filter((b) => b.y >= lo && b.y <= hi).flatMap((b) => [b.x - b.width / 2, b.x + b.width / 2]),
      ...labels.filter((b) => b.y >= lo && b.y <= hi).flatMap((b) => [b.x - b.width / 2, b.x + b.width / 2]),
      ...laid.flatMap((sh) => sh.points).filter((p) => p.y >= lo && p.y <= hi).map((p) => p.x),
    ];
    const width = stateWidth(id);
    const y = (Math.min(...ys) + Math.max(...ys)) / 2;
    const candidates = [
      { x: Math.max(...xs) + SIDE_GAP + width / 2, y, width, height: STATE_HEIGHT },
      { x: Math.min(...xs) - SIDE_GAP - width / 2, y, width, height: STATE_HEIGHT },
    ];
    // The side where the lines from the sources run through fewer labels (then, the nearer side).
    const cost = (c: Box) => sources.reduce((n, src) => {
      const [p, q] = facing(src, c, 0);
      return n + labels.filter((l) => crosses(p, q, l, 2)).length * 1000 + Math.abs(c.x - src.x) / 1000;
    }, 0);
    boxes.set(id, candidates.sort((a, b) => cost(a) - cost(b))[0]!);
  }

  const placed: Box[] = [];
  const drawn: Point[][] = [];
  // Lines into and out of a state aside: straight, spread along its facing side; a pair both ways, apart.
  const asideShape = (e: GraphEdge): Shape => {
    const sideId = aside.has(e.to) ? e.to : e.from;
    const other = sideId === e.to ? e.from : e.to;
    const peers = [...new Set(graph.edges.filter((x) => isUserEdge(x) && (x.to === sideId || x.from === sideId))
      .map((x) => (x.to === sideId ? x.from : x.to)))].sort((a, b) => at(a).y - at(b).y);
    const sideBox = at(sideId);
    const k = peers.indexOf(other);
    const spread = peers.length > 1 ? Math.min(12, (sideBox.height - 20) / (peers.length - 1)) : 0;
    const arrive = sideBox.y + (k - (peers.length - 1) / 2) * spread;
    const both = graph.edges.some((x) => x.from === e.to && x.to === e.from);
    const shift = both ? (sideId === e.to ? 5 : -5) : 0;
    const [p0, q] = facing(at(other), { ...sideBox, y: arrive }, shift);
    // From the middle of the state's facing side, or a corner of it when that line would run through a label or a state.
    const src = at(other);
    const dir = q.x >= src.x ? 1 : -1;
    const corner = (vy: number): Point => ({ x: src.x + dir * (src.width / 2 - 16), y: src.y + vy * (src.height / 2) });
    const obstacles = [...labels, ...[...boxes.entries()].filter(([id]) => id !== other && id !== sideId).map(([, b]) => b)];
    const blocked = (a: Point, b: Point = q) => obstacles.some((o) => crosses(a, b, o, 2));
    const p = [p0, corner(-1), corner(1)].find((c) => !blocked(c));
    let route: Point[] = [p ?? p0, q];
    if (!p) {
      // Every straight line is in the way of something: bend it over (or under) what is in the way.
      const mid = { x: (p0.x + q.x) / 2, y: (p0.y + q.y) / 2 };
      for (let d = 12; d <= 120; d += 12) {
        const w = [{ ...mid, y: mid.y - d }, { ...mid, y: mid.y + d }].find((c) => !blocked(p0, c) && !blocked(c, q));
        if (w) {
          route = [p0, w, q];
          break;
        }
      }
    }
    const points = sideId === e.to ? route : [...route].reverse();
    // The label beside the line, near the state in the diagram (the lines fan out there): above it, or below for the second of a pair.
    const l = labelOf(e.event);
    const below = shift > 0;
    const [r0, r1] = [route[0]!, route[1]!];
    // Far enough above (below) the line that the box's corners clear it too, however steep the line.
    const slope = Math.abs((r1.y - r0.y) / (r1.x - r0.x || 1));
    const off = l.height / 2 + 4 + Math.min(slope * (l.width / 2), 60);
    const labelAt = (t: number): Box => ({
      x: r0.x + (r1.x - r0.x) * t, y: r0.y + (r1.y - r0.y) * t + (below ? 1 : -1) * off, width: l.width, height: l.height,
    });
    const taken = [...labels, ...boxes.values(), ...placed];
    const own = pathPoints(splinePath(points));
    const free = (b: Box) => !taken.some((o) => overlaps(b, o, 2))
      && ![...curves, ...drawn, own].some((pts) => pts.some((pt) => inBox(pt, b, 1)));
    const label = [0.35, 0.25, 0.5, 0.15, 0.6, 0.7, 0.1].map(labelAt).find(free) ?? nearestFree(labelAt(0.35), free);
    drawn.push(own);
    placed.push(label);
    return { points, path: splinePath(points), label };
  };

  const edges: EdgeShape[] = [
    { key: entryKey, from: 'start', to: graph.initial, event: 'submit', ...entry },
    ...graph.edges.map((e, i) => {
      let sh = shapes.get(i);
      if (!sh && (aside.has(e.to) || aside.has(e.from))) sh = asideShape(e);
      if (!sh) {
        const obstacles = [...[...boxes.entries()].filter(([id]) => id !== e.from && id !== e.to && id !== START).map(([, b]) => b), ...labels];
        const looped = (id: string) => graph.edges.some((x) => x.from === id && x.to === id);
        sh = sideRoute(at(e.from), at(e.to), obstacles, labelOf(e.event), { fromLooped: looped(e.from), toLooped: looped(e.to) });
      }
      return {
        key: edgeKey(e.from, e.event, e.to), from: e.from, to: e.to, event: e.event,
        ...(e.guard ? { guard: e.guard } : {}),
        ...sh,
      };
    }),
  ];
  const states = graph.states.map((st) => ({
    ...at(st.id), id: st.id, terminal: st.terminal, initial: st.id === graph.initial, description: st.description ?? '',
  }));
  const box = at;
  // The routes drawn after the layout may reach past dagre's drawing: move and grow it to hold them.
  const size = g.graph() as { width?: number; height?: number };
  const corners = (b: Box): Point[] => [{ x: b.x - b.width / 2, y: b.y - b.height / 2 }, { x: b.x + b.width / 2, y: b.y + b.height / 2 }];
  const extents = [...edges.flatMap((e) => [...e.points, ...corners(e.label)]), ...states.flatMap(corners)];
  const MARGIN = 16;
  const dx = Math.max(0, MARGIN - Math.min(...extents.map((p) => p.x)));
  const dy = Math.max(0, MARGIN - Math.min(...extents.map((p) => p.y)));
  const width = Math.max((size.width ?? 0) + dx, ...extents.map((p) => p.x + dx + MARGIN));
  const height = Math.max((size.height ?? 0) + dy, ...extents.map((p) => p.y + dy + MARGIN));
  const start = box(START);
  if (dx || dy) {
    const move = <T extends Point>(p: T): T => ({ ...p, x: p.x + dx, y: p.y + dy });
    for (const [i, st] of states.entries()) states[i] = move(st);
    for (const [i, e] of edges.entries()) {
      const points = e.points.map(move);
      edges[i] = { ...e, points, label: move(e.label), path: e.from === e.to ? shiftPath(e.path, dx, dy) : splinePath(points) };
    }
    Object.assign(start, move(start));
  }
  return { width: Math.ceil(width), height: Math.ceil(height), start, states, edges };
}

/** An SVG path's absolute coordinates (pairs `x,y`) moved by (dx, dy). */
function shiftPath(path: string, dx: number, dy: number): string {
  const f = (n: number) => Math.round(n * 10) / 10;
  return path.replace(/(-?[\d.]+),(-?[\d.]+)/g, (_m, x: string, y: string) => `${f(Number(x) + dx)},${f(Number(y) + dy)}`);
}

/** Does the segment a–b pass through the box (grown by `pad`)? Sampled: boxes are far larger than the step. */
function crosses(a: Point, b: Point, box: Box, pad: number): boolean {
  const steps = Math.max(2, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / 4));
  for (let k = 0; k <= steps; k++) {
    const x = a.x + ((b.x - a.x) * k) / steps;
    const y = a.y + ((b.y - a.y) * k) / steps;
    if (Math.abs(x - box.x) < box.width / 2 + pad && Math.abs(y - box.y) < box.height / 2 + pad) return true;
  }
  return false;
}

/**
 * A user edge drawn the short way: straight from border to border when no
 * other state is in the way, else through a lane just beside the states in
 * the way, on the side that is nearer. Its label sits beside the line.
 */
function sideRoute(
  from: Box, to: Box, others: readonly Box[], label: { width: number; height: number },
  loops: { fromLooped: boolean; toLooped: boolean } = { fromLooped: false, toLooped: false },
): Pick<EdgeShape, 'points' | 'path' | 'label'> {
  const a = borderToward(from, to);
  const b = borderToward(to, from);
  const inWay = others.filter((o) => crosses(a, b, o, 8));
  if (!inWay.length) {
    const points = [a, b];
    const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
    // Beside the line: off to the side its normal points to (the right-hand side going up, say).
    const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
    const nx = -(b.y - a.y) / len;
    const ny = (b.x - a.x) / len;
    const off = Math.abs(nx) * (label.width / 2) + Math.abs(ny) * (label.height / 2) + LABEL_OFFSET;
    return { points, path: splinePath(points), label: { ...label, x: mid.x + nx * off, y: mid.y + ny * off } };
  }
  // States between the two (by height) that a vertical lane must clear.
  const top = Math.min(from.y, to.y);
  const bottom = Math.max(from.y, to.y);
  const between = others.filter((o) => o.y + o.height / 2 > top && o.y - o.height / 2 < bottom);
  const right = Math.max(...between.map((o) => o.x + o.width / 2)) + LANE_GAP;
  const left = Math.min(...between.map((o) => o.x - o.width / 2)) - LANE_GAP;
  const midX = (from.x + to.x) / 2;
  const laneX = Math.abs(right - midX) <= Math.abs(midX - left) ? right : left;
  const side = laneX >= midX ? 1 : -1;
  // Leave and enter through the sides facing the lane (or the top/bottom when the lane is within the box).
  // A box with a self-loop on the lane's side is left through its top or bottom edge, clear of the loop.
  const exit = (bx: Box, looped: boolean): Point[] => {
    const edge = bx.x + (side * bx.width) / 2;
    const outward = bx.y < (from.y + to.y) / 2 ? -1 : 1;
    if (side * (laneX - edge) <= 0) return [{ x: bx.x, y: bx.y - outward * (bx.height / 2) }];
    if (!looped) return [{ x: edge, y: bx.y }];
    const p = { x: edge - side * 14, y: bx.y + outward * (bx.height / 2) };
    return [p, { x: p.x, y: p.y + outward * 12 }];
  };
  const [p0, ...a0] = exit(from, loops.fromLooped);
  const [p3, ...a3] = exit(to, loops.toLooped);
  const q0 = a0[0] ?? p0;
  const q3 = a3[0] ?? p3;
  const dir = to.y < from.y ? -1 : 1;
  const points = [p0, ...a0, { x: laneX, y: q0.y + dir * 10 }, { x: laneX, y: (q0.y + q3.y) / 2 }, { x: laneX, y: q3.y - dir * 10 }, ...a3, p3];
  const labelBox = { ...label, x: laneX + side * (label.width / 2 + LABEL_OFFSET), y: (p0.y + p3.y) / 2 };
  return { points, path: splinePath(points), label: labelBox };
}

/** The box moved to the nearest spot `free` accepts, within 96 px across and 48 px up or down (else where it was). */
function nearestFree(b: Box, free: (b: Box) => boolean): Box {
  const moves: Point[] = [];
  for (let x = -96; x <= 96; x += 8) for (let y = -48; y <= 48; y += 6) moves.push({ x, y });
  moves.sort((m, n) => Math.hypot(m.x, m.y * 2) - Math.hypot(n.x, n.y * 2));
  return moves.map((m) => ({ ...b, x: b.x + m.x, y: b.y + m.y })).find(free) ?? b;
}

/** Is the point inside the box (grown by `pad`)? */
const inBox = (p: Point, b: Box, pad: number): boolean => Math.abs(p.x - b.x) < b.width / 2 + pad && Math.abs(p.y - b.y) < b.height / 2 + pad;

/** Do two boxes overlap (with `pad` to spare)? */
function overlaps(a: Box, b: Box, pad: number): boolean {
  return Math.abs(a.x - b.x) * 2 < a.width + b.width + 2 * pad && Math.abs(a.y - b.y) * 2 < a.height + b.height + 2 * pad;
}

/** The ends of a line from `a`'s side facing `b` to `b`'s side facing `a`, both moved down by `shift`. */
function facing(a: Box, b: Box, shift: number): [Point, Point] {
  const dir = b.x >= a.x ? 1 : -1;
  return [{ x: a.x + (dir * a.width) / 2, y: a.y + shift }, { x: b.x - (dir * b.width) / 2, y: b.y + shift }];
}

/** Where the line from the centre of `box` toward `other`'s centre leaves `box`. */
function borderToward(box: Box, other: Point): Point {
  const dx = other.x - box.x;
  const dy = other.y - box.y;
  if (!dx && !dy) return { x: box.x, y: box.y };
  const sx = dx ? box.width / 2 / Math.abs(dx) : Infinity;
  const sy = dy ? box.height / 2 / Math.abs(dy) : Infinity;
  const k = Math.min(sx, sy);
  return { x: box.x + dx * k, y: box.y + dy * k };
}

/**
 * A self-transition as a loop off the state's right side, through the spot
 * dagre reserved for its label (a slot beside the state, in the same rank).
 */
function selfLoop(node: Box, label: Box): Pick<EdgeShape, 'points' | 'path' | 'label'> {
  const right = node.x + node.width / 2;
  // The loop reaches the slot's near side and the label sits just beyond it. The slot is
  // normally right of the state; if dagre put it elsewhere, the loop still clears the state.
  const far = Math.max(label.x - label.width / 2 + 2, right + 28);
  const start = { x: right, y: node.y - 12 };
  const end = { x: right, y: node.y + 12 };
  // A cubic whose control points share x = c reaches x = (right + 3c) / 4 at its middle: put that on `far`.
  const c = (4 * far - right) / 3;
  const f = (n: number) => Math.round(n * 10) / 10;
  const path = `M${f(start.x)},${f(start.y)} C${f(c)},${f(node.y - 40)} ${f(c)},${f(node.y + 40)} ${f(end.x)},${f(end.y)}`;
  const labelX = Math.max(label.x, far + label.width / 2 + 4);
  return { points: [start, { x: far, y: node.y }, end], path, label: { ...label, x: labelX, y: node.y } };
}

/**
 * An SVG path through dagre's points as a uniform cubic B-spline (what d3's
 * `curveBasis` draws): smooth, and it starts and ends on the first and last point.
 */
export function splinePath(points: readonly Point[]): string {
  const f = (n: number) => Math.round(n * 10) / 10;
  const [first, second] = points;
  if (!first) return '';
  if (!second || points.length === 2) return points.map((p, i) => `${i ? 'L' : 'M'}${f(p.x)},${f(p.y)}`).join(' ');
  const curve = (a: Point, b: Point, c: Point) =>
    `C${f((2 * a.x + b.x) / 3)},${f((2 * a.y + b.y) / 3)} ${f((a.x + 2 * b.x) / 3)},${f((a.y + 2 * b.y) / 3)} ` +
    `${f((a.x + 4 * b.x + c.x) / 6)},${f((a.y + 4 * b.y + c.y) / 6)}`;
  const parts = [`M${f(first.x)},${f(first.y)}`, `L${f((5 * first.x + second.x) / 6)},${f((5 * first.y + second.y) / 6)}`];
  let [a, b] = [first, second];
  for (const c of points.slice(2)) {
    parts.push(curve(a, b, c));
    [a, b] = [b, c];
  }
  parts.push(curve(a, b, b), `L${f(b.x)},${f(b.y)}`);
  return parts.join(' ');
}

/** Points along an SVG path of absolute M, L and C commands (what this module draws), about every `step` px. */
export function pathPoints(d: string, step = 2): Point[] {
  const out: Point[] = [];
  let cur: Point = { x: 0, y: 0 };
  for (const [, cmd, args] of d.matchAll(/([MLC])([^MLC]*)/g)) {
    const n = (args ?? '').trim().split(/[\s,]+/).filter(Boolean).map(Number);
    if (cmd === 'M') {
      cur = { x: n[0]!, y: n[1]! };
      out.push(cur);
    } else if (cmd === 'L') {
      const to = { x: n[0]!, y: n[1]! };
      const k = Math.max(1, Math.ceil(Math.hypot(to.x - cur.x, to.y - cur.y) / step));
      for (let i = 1; i <= k; i++) out.push({ x: cur.x + ((to.x - cur.x) * i) / k, y: cur.y + ((to.y - cur.y) * i) / k });
      cur = to;
    } else {
      const [c1, c2, to] = [{ x: n[0]!, y: n[1]! }, { x: n[2]!, y: n[3]! }, { x: n[4]!, y: n[5]! }];
      const len = Math.hypot(c1.x - cur.x, c1.y - cur.y) + Math.hypot(c2.x - c1.x, c2.y - c1.y) + Math.hypot(to.x - c2.x, to.y - c2.y);
      const k = Math.max(1, Math.ceil(len / step));
      const p0 = cur;
      for (let i = 1; i <= k; i++) {
        const t = i / k;
        const u = 1 - t;
        out.push({
          x: u * u * u * p0.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t * t * t * to.x,
          y: u * u * u * p0.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t * t * t * to.y,
        });
      }
      cur = to;
    }
  }
  return out;
}
