/**
 * Lays out a workflow's machine (`GET /v1/workflows/:id/graph`) as nested
 * boxes, statechart style: a compound state's children in a column (in the
 * machine's order, so the initial one, usually first, is on top), a parallel
 * state's regions side by side. A transition between two neighbours of a
 * column, downwards, is a short arrow between them; any other one runs in a
 * lane on the right of its column, each in its own, the shortest spans
 * nearest. A transition without target (its actions run, the state stays)
 * is a line inside its state, as are the state's invocations (the jobs it
 * runs) and its `after` delays. Each state's header keeps room right of its
 * name for the live count of instances in it (`countBadge`). Every position comes from the graph; pure
 * (no DOM: text widths come from `measure`), so it runs under node for tests.
 */
import type { WorkflowEdgeKind, WorkflowGraphEdge, WorkflowGraphNode, WorkflowNodeType } from '../../../machines/workflow-graph.js';

/** A graph as the route answers it: nodes and edges (the rest is not needed to draw). */
export interface DrawableGraph {
  root: string;
  nodes: readonly WorkflowGraphNode[];
  edges: readonly WorkflowGraphEdge[];
}

/** Measures a text in px; `kind` tells which font the page draws it in. */
export type WorkflowMeasure = (text: string, kind: 'state' | 'line' | 'edge') => number;

export interface WfLine {
  text: string;
  kind: 'invoke' | 'after' | 'stays';
  /** For an invocation: its id (the view marks its job's state on it). */
  invokeId?: string;
  /** For `after` and `stays`: the edge's event. */
  event?: string;
}

/** A state's box, its top-left corner at (x, y). */
export interface WfBox {
  id: string;
  key: string;
  type: WorkflowNodeType;
  depth: number;
  x: number;
  y: number;
  width: number;
  height: number;
  lines: WfLine[];
  /** Whether it is its parent's initial state. */
  initial: boolean;
}

export interface WfArrow {
  /** `source|target`: one arrow per pair of states, however many events take it. */
  key: string;
  source: string;
  target: string;
  events: string[];
  kinds: WorkflowEdgeKind[];
  label: string;
  /** SVG path data. */
  path: string;
  /** The label's box, top-left. */
  labelBox: { x: number; y: number; width: number; height: number };
}

export interface WorkflowLayout {
  width: number;
  height: number;
  boxes: WfBox[];
  arrows: WfArrow[];
}

const HEADER = 26;
const LINE_H = 16;
const PAD = 14;
const GAP_Y = 38;
const GAP_X = 18;
const MIN_W = 110;
const TEXT_PAD = 10;
const LANE_GAP = 16;
const LABEL_H = 18;
const LABEL_PAD = 6;
const MARGIN = 10;
/** Room a header keeps right of the state's name for its count badge: five digits. */
export const COUNT_ROOM = 52;
const BADGE_H = 16;
const BADGE_DIGIT = 7;

/** `5 s`, `250 ms`, `2 min`: an `after` delay as said. */
function delayText(delay: number | string): string {
  if (typeof delay === 'string') return delay;
  if (delay < 1000) return `${delay} ms`;
  if (delay < 60_000) return `${+(delay / 1000).toFixed(1)} s`;
  if (delay < 3_600_000) return `${+(delay / 60_000).toFixed(1)} min`;
  return `${+(delay / 3_600_000).toFixed(1)} h`;
}

/**
 * An edge's event as the diagram says it: `done: charge` for a child's end,
 * `error: ship`, `done` for a state's own, `after 5 s`, `always`, a signal
 * by its name; `[guard]` after a guarded one.
 */
export function edgeText(e: Pick<WorkflowGraphEdge, 'event' | 'kind' | 'guard'>, after: readonly { delay: number | string; event: string }[] = []): string {
  let text: string;
  switch (e.kind) {
    case 'done.actor':
      text = `done: ${e.event.slice('xstate.done.actor.'.length)}`;
      break;
    case 'error.actor':
      text = `error: ${e.event.slice('xstate.error.actor.'.length)}`;
      break;
    case 'done.state':
      text = 'done';
      break;
    case 'after': {
      const a = after.find((x) => x.event === e.event);
      text = a ? `after ${delayText(a.delay)}` : e.event;
      break;
    }
    case 'always':
      text = 'always';
      break;
    default:
      text = e.event;
  }
  return e.guard ? `${text} [${e.guard}]` : text;
}

interface Sized {
  node: WorkflowGraphNode;
  width: number;
  height: number;
  children: Sized[];
  lines: WfLine[];
  /** For a compound state: its column's arrows, by kind of route. */
  column?: { adjacent: ColumnGroup[]; lanes: ColumnGroup[]; laneWidth: number; contentWidth: number };
}

interface ColumnGroup {
  source: string;
  target: string;
  from: number;
  to: number;
  edges: WorkflowGraphEdge[];
  label: string;
  labelWidth: number;
}

/** The machine's boxes and arrows, positioned. */
export function layoutWorkflow(graph: DrawableGraph, measure: WorkflowMeasure): WorkflowLayout {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const parentOf = (id: string) => byId.get(id)?.parent ?? null;
  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let p: string | null = id; p !== null; p = parentOf(p)) out.push(p);
    return out; // the node itself first, the root last
  };
  const afterOf = (id: string) => byId.get(id)?.after ?? [];
  const labelOf = (edges: readonly WorkflowGraphEdge[]) => [...new Set(edges.map((e) => edgeText(e, afterOf(e.source))))].join(' · ');

  // Each edge with a target goes to the column (compound state) holding both ends as two of its children, or is drawn straight.
  const columnEdges = new Map<string, WorkflowGraphEdge[]>();
  const straight: WorkflowGraphEdge[] = [];
  const stays = new Map<string, WorkflowGraphEdge[]>();
  for (const e of graph.edges) {
    if (e.target === null) {
      stays.set(e.source, [...(stays.get(e.source) ?? []), e]);
      continue;
    }
    if (!byId.has(e.source) || !byId.has(e.target)) continue;
    const up = ancestors(e.source);
    const down = ancestors(e.target);
    const common = up.find((a) => down.includes(a) && a !== e.source && a !== e.target);
    const container = common === undefined ? undefined : byId.get(common);
    if (e.source === e.target && e.source !== graph.root) {
      const parent = parentOf(e.source)!;
      if (byId.get(parent)?.type === 'compound') {
        columnEdges.set(parent, [...(columnEdges.get(parent) ?? []), e]);
        continue;
      }
    }
    if (container?.type === 'compound' && !up.slice(1).includes(e.target) && !down.slice(1).includes(e.source)) {
      columnEdges.set(container.id, [...(columnEdges.get(container.id) ?? []), e]);
    } else {
      straight.push(e);
    }
  }
  /** The child of `container` that `id` is or is inside. */
  const childUnder = (container: string, id: string): string => {
    const chain = ancestors(id);
    return chain[chain.indexOf(container) - 1]!;
  };

  const size = (node: WorkflowGraphNode): Sized => {
    const lines: WfLine[] = [
      ...node.invoke.map((i): WfLine => ({ text: `▶ ${i.jobType} (${i.id})`, kind: 'invoke', invokeId: i.id })),
      ...node.after.map((a): WfLine => ({ text: `◔ after ${delayText(a.delay)}`, kind: 'after', event: a.event })),
      ...(stays.get(node.id) ?? []).map((e): WfLine => ({ text: `↺ ${edgeText(e, node.after)}`, kind: 'stays', event: e.event })),
    ];
    const textWidth = Math.max(measure(node.key, 'state') + COUNT_ROOM, ...lines.map((l) => measure(l.text, 'line'))) + 2 * TEXT_PAD;
    const linesHeight = lines.length * LINE_H;
    const children = node.children.map((id) => size(byId.get(id)!));
    if (children.length === 0) {
      return { node, lines, children, width: Math.ceil(Math.max(MIN_W, textWidth)), height: HEADER + linesHeight + (lines.length ? 8 : 6) };
    }
    if (node.type === 'parallel') {
      const inner = children.reduce((w, c) => w + c.width, 0) + GAP_X * (children.length - 1);
      const tallest = Math.max(...children.map((c) => c.height));
      for (const c of children) c.height = tallest; // regions side by side, as tall as each other
      return { node, lines, children, width: Math.ceil(Math.max(textWidth, inner + 2 * PAD)), height: HEADER + linesHeight + tallest + PAD };
    }
    // A column: its arrows first, as they widen it.
    const index = new Map(node.children.map((id, i) => [id, i]));
    const groups = new Map<string, ColumnGroup>();
    for (const e of columnEdges.get(node.id) ?? []) {
      const source = e.source === e.target ? e.source : childUnder(node.id, e.source);
      const target = e.source === e.target ? e.source : childUnder(node.id, e.target!);
      const key = `${source}|${target}`;
      const g = groups.get(key) ?? { source, target, from: index.get(source)!, to: index.get(target)!, edges: [], label: '', labelWidth: 0 };
      g.edges.push(e);
      groups.set(key, g);
    }
    for (const g of groups.values()) {
      g.label = labelOf(g.edges);
      g.labelWidth = Math.ceil(measure(g.label, 'edge')) + 2 * LABEL_PAD;
    }
    const adjacent = [...groups.values()].filter((g) => g.to === g.from + 1);
    // Shortest spans nearest the states: fewer crossings.
    const lanes = [...groups.values()].filter((g) => g.to !== g.from + 1)
      .sort((a, b) => Math.abs(a.to - a.from) - Math.abs(b.to - b.from) || a.from - b.from);
    const widest = Math.max(...children.map((c) => c.width));
    const adjacentLabel = Math.max(0, ...adjacent.map((g) => g.labelWidth));
    const contentWidth = Math.ceil(Math.max(widest, adjacentLabel ? 2 * (8 + adjacentLabel) : 0));
    const laneWidth = lanes.length ? Math.max(...lanes.map((g, i) => LANE_GAP * (i + 1) + 4 + g.labelWidth)) : 0;
    const inner = children.reduce((h, c) => h + c.height, 0) + GAP_Y * (children.length - 1);
    return {
      node, lines, children,
      width: Math.ceil(Math.max(textWidth, contentWidth + laneWidth + 2 * PAD)),
      height: HEADER + linesHeight + inner + PAD,
      column: { adjacent, lanes, laneWidth, contentWidth },
    };
  };

  const boxes: WfBox[] = [];
  const boxOf = new Map<string, WfBox>();
  const arrows: WfArrow[] = [];
  const arrow = (g: Pick<ColumnGroup, 'source' | 'target' | 'edges' | 'label' | 'labelWidth'>, points: [number, number][], label: { x: number; y: number }): void => {
    arrows.push({
      key: `${g.source}|${g.target}`, source: g.source, target: g.target,
      events: g.edges.map((e) => e.event), kinds: [...new Set(g.edges.map((e) => e.kind))], label: g.label,
      path: points.map(([x, y], i) => `${i ? 'L' : 'M'}${round(x)},${round(y)}`).join(' '),
      labelBox: { x: round(label.x), y: round(label.y - LABEL_H / 2), width: g.labelWidth, height: LABEL_H },
    });
  };

  const place = (s: Sized, x: number, y: number, depth: number, initial: boolean): void => {
    const box: WfBox = { id: s.node.id, key: s.node.key, type: s.node.type, depth, x, y, width: s.width, height: s.height, lines: s.lines, initial };
    boxes.push(box);
    boxOf.set(box.id, box);
    const top = y + HEADER + s.lines.length * LINE_H;
    if (s.node.type === 'parallel') {
      let cx = x + PAD;
      for (const c of s.children) {
        place(c, cx, top, depth + 1, false);
        cx += c.width + GAP_X;
      }
      return;
    }
    if (!s.column) return;
    const { contentWidth, adjacent, lanes } = s.column;
    const left = x + PAD;
    const centre = left + contentWidth / 2;
    let cy = top;
    for (const c of s.children) {
      place(c, centre - c.width / 2, cy, depth + 1, c.node.id === s.node.initial);
      cy += c.height + GAP_Y;
    }
    for (const g of adjacent) {
      const a = boxOf.get(g.source)!;
      const b = boxOf.get(g.target)!;
      const y1 = a.y + a.height;
      const y2 = b.y;
      arrow(g, [[centre, y1], [centre, y2]], { x: centre + 8, y: (y1 + y2) / 2 });
    }
    const right = left + contentWidth;
    lanes.forEach((g, i) => {
      const a = boxOf.get(g.source)!;
      const b = boxOf.get(g.target)!;
      const laneX = right + LANE_GAP * (i + 1);
      const ya = a.y + a.height / 2 - 5 + (i % 3) * 4;
      const yb = b.y + b.height / 2 + 5 - (i % 3) * 4;
      arrow(g, [[a.x + a.width, ya], [laneX, ya], [laneX, yb], [b.x + b.width, yb]], { x: laneX + 4, y: (ya + yb) / 2 });
    });
  };

  const root = byId.get(graph.root);
  if (!root) return { width: 0, height: 0, boxes: [], arrows: [] };
  const sized = size(root);
  place(sized, MARGIN, MARGIN, 0, false);

  // What no column holds (between parallel regions, into an ancestor): a straight arrow, bottom to top.
  const pairs = new Map<string, WorkflowGraphEdge[]>();
  for (const e of straight) pairs.set(`${e.source}|${e.target}`, [...(pairs.get(`${e.source}|${e.target}`) ?? []), e]);
  for (const [key, edges] of pairs) {
    const [source, target] = key.split('|') as [string, string];
    const a = boxOf.get(source)!;
    const b = boxOf.get(target)!;
    const label = labelOf(edges);
    const from: [number, number] = [a.x + a.width / 2, a.y + a.height];
    const to: [number, number] = [b.x + b.width / 2, b.y];
    arrow({ source, target, edges, label, labelWidth: Math.ceil(measure(label, 'edge')) + 2 * LABEL_PAD }, [from, to],
      { x: (from[0] + to[0]) / 2 + 6, y: (from[1] + to[1]) / 2 });
  }
  spreadLabels(arrows);
  const width = Math.max(sized.width, ...arrows.map((a) => a.labelBox.x + a.labelBox.width)) + 2 * MARGIN;
  return { width: Math.ceil(width), height: Math.ceil(sized.height + 2 * MARGIN), boxes, arrows };
}

const round = (n: number) => Math.round(n * 10) / 10;

/** A count badge's pill, in the top-right corner of its state's header, as wide as its digits. */
export interface CountBadge {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Where its text's middle sits (text-anchor: middle). */
  textX: number;
  textY: number;
}

export function countBadge(box: Pick<WfBox, 'x' | 'y' | 'width'>, text: string): CountBadge {
  const width = Math.min(COUNT_ROOM - 6, 10 + BADGE_DIGIT * text.length);
  const x = box.x + box.width - TEXT_PAD / 2 - width;
  const y = box.y + (HEADER - BADGE_H) / 2;
  return { x: round(x), y: round(y), width, height: BADGE_H, textX: round(x + width / 2), textY: round(y + 12) };
}

type LabelBox = WfArrow['labelBox'];
const collide = (a: LabelBox, b: LabelBox) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/**
 * Moves a label that would cover one placed before it down its line, a
 * label's height at a time, until it covers none (lanes side by side can put
 * their labels at the same height).
 */
function spreadLabels(arrows: WfArrow[]): void {
  const placed: LabelBox[] = [];
  for (const a of arrows) {
    for (let tries = 0; tries < 20 && placed.some((p) => collide(p, a.labelBox)); tries++) {
      a.labelBox = { ...a.labelBox, y: a.labelBox.y + LABEL_H + 2 };
    }
    placed.push(a.labelBox);
  }
}
