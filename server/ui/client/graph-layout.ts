/**
 * Lays out the job machine with dagre: every position comes from the graph
 * `GET /v1/machine` returns, none is placed by hand, so a change to the machine
 * changes the picture. Pure (no DOM): text widths come from a `measure`
 * callback, so this also runs under node for tests.
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

interface EdgeLabel {
  width: number;
  height: number;
  labelpos: 'c';
  points?: Point[];
  x?: number;
  y?: number;
}

/** The machine's states and edges, positioned. */
export function layoutMachine(graph: MachineGraph, measure: Measure): MachineLayout {
  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 40, edgesep: 16, ranksep: 46, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));

  g.setNode(START, { width: START_SIZE, height: START_SIZE });
  for (const st of graph.states) {
    const width = Math.max(STATE_MIN_WIDTH, Math.ceil(measure(st.id, 'state')) + 2 * STATE_PAD_X);
    g.setNode(st.id, { width, height: STATE_HEIGHT });
  }
  const labelOf = (text: string): EdgeLabel => ({
    width: Math.ceil(measure(text, 'edge')) + 2 * LABEL_PAD_X, height: LABEL_HEIGHT, labelpos: 'c',
  });
  const entryKey = edgeKey(null, SUBMIT_EVENT, graph.initial);
  g.setEdge(START, graph.initial, labelOf('submit'), entryKey);
  // The edge's name keeps parallel edges (FAILED and LEASE_EXPIRED, both running→dead) apart.
  graph.edges.forEach((e, i) => g.setEdge(e.from, e.to, labelOf(e.event), `${i}`));

  layout(g);

  const box = (id: string): Box => {
    const n = g.node(id) as Box;
    return { x: n.x, y: n.y, width: n.width, height: n.height };
  };
  const shape = (from: string, to: string, name: string): Pick<EdgeShape, 'points' | 'path' | 'label'> => {
    const e = g.edge(from, to, name) as EdgeLabel;
    const label = { x: e.x ?? 0, y: e.y ?? 0, width: e.width, height: e.height };
    if (from === to) return selfLoop(box(from), label);
    const points = (e.points ?? []).map((p) => ({ x: p.x, y: p.y }));
    return { points, path: splinePath(points), label };
  };
  const size = g.graph() as { width?: number; height?: number };
  return {
    width: Math.ceil(size.width ?? 0),
    height: Math.ceil(size.height ?? 0),
    start: box(START),
    states: graph.states.map((st) => ({
      ...box(st.id), id: st.id, terminal: st.terminal, initial: st.id === graph.initial, description: st.description ?? '',
    })),
    edges: [
      { key: entryKey, from: 'start', to: graph.initial, event: 'submit', ...shape(START, graph.initial, entryKey) },
      ...graph.edges.map((e, i) => ({
        key: edgeKey(e.from, e.event, e.to), from: e.from, to: e.to, event: e.event,
        ...(e.guard ? { guard: e.guard } : {}),
        ...shape(e.from, e.to, `${i}`),
      })),
    ],
  };
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
  const labelX = Math.max(label.x, far + label.width / 2 - 2);
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
