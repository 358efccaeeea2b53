/**
 * The visualizer's layout, under node (no browser): every state and edge of
 * the machine gets a place from dagre, and a different machine gets a
 * different picture.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { machineGraph, type MachineGraph } from '../../machines/lifecycle.js';
import { edgeKey, layoutMachine, pathPoints, splinePath, USER_EVENTS, type Box, type MachineLayout, type Point } from './client/graph-layout.js';

const measure = (text: string) => text.length * 8;

const overlap = (a: Box, b: Box) =>
  Math.abs(a.x - b.x) * 2 < a.width + b.width && Math.abs(a.y - b.y) * 2 < a.height + b.height;

const finite = (...ns: number[]) => ns.every(Number.isFinite);

describe('layoutMachine', () => {
  const graph = machineGraph();
  const layout = layoutMachine(graph, measure);

  test('places every state once, inside the drawing, none overlapping another', () => {
    assert.deepEqual(layout.states.map((s) => s.id), graph.states.map((s) => s.id));
    for (const s of layout.states) {
      assert.ok(finite(s.x, s.y), s.id);
      assert.ok(s.x - s.width / 2 >= 0 && s.x + s.width / 2 <= layout.width, `${s.id} within width`);
      assert.ok(s.y - s.height / 2 >= 0 && s.y + s.height / 2 <= layout.height, `${s.id} within height`);
    }
    for (const [i, a] of layout.states.entries()) {
      for (const b of layout.states.slice(i + 1)) assert.ok(!overlap(a, b), `${a.id} overlaps ${b.id}`);
    }
    assert.deepEqual(layout.states.filter((s) => s.initial).map((s) => s.id), [graph.initial]);
    assert.deepEqual(layout.states.filter((s) => s.terminal).map((s) => s.id), graph.states.filter((s) => s.terminal).map((s) => s.id));
  });

  test('draws every edge of the machine, plus the entry edge into the initial state', () => {
    const keys = layout.edges.map((e) => e.key);
    assert.equal(keys[0], edgeKey(null, 'SUBMITTED', graph.initial));
    assert.deepEqual(keys.slice(1), graph.edges.map((e) => `${e.from}-${e.event}-${e.to}`));
    for (const e of layout.edges) {
      assert.ok(e.points.length >= 2 && e.points.every((p) => finite(p.x, p.y)), e.key);
      assert.match(e.path, /^M[\d.-]+,[\d.-]+ [LC]/, e.key);
      assert.ok(finite(e.label.x, e.label.y) && e.label.width > 0, e.key);
    }
  });

  test('an edge starts at its source state and ends at its target (on the border)', () => {
    const at = (id: string) => layout.states.find((s) => s.id === id)!;
    const near = (p: { x: number; y: number }, b: Box) =>
      Math.abs(p.x - b.x) <= b.width / 2 + 1 && Math.abs(p.y - b.y) <= b.height / 2 + 1;
    for (const e of layout.edges.slice(1)) {
      assert.ok(near(e.points[0]!, at(e.from)), `${e.key} leaves ${e.from}`);
      assert.ok(near(e.points.at(-1)!, at(e.to)), `${e.key} reaches ${e.to}`);
    }
  });

  test('a self-transition is a loop on the right of its state, its label outside the state', () => {
    const loops = layout.edges.filter((e) => e.from === e.to);
    assert.ok(loops.length >= 2, 'the machine has self-transitions (DISPATCH, HEARTBEAT)');
    for (const e of loops) {
      const s = layout.states.find((st) => st.id === e.from)!;
      assert.ok(e.label.x - e.label.width / 2 > s.x + s.width / 2 - 4, `${e.key} label right of ${s.id}`);
      assert.match(e.path, /^M[\d.]+,[\d.]+ C/);
    }
  });

  const inside = (p: Point, b: Box, shrink = 0) =>
    Math.abs(p.x - b.x) < b.width / 2 - shrink && Math.abs(p.y - b.y) < b.height / 2 - shrink;
  const stateOf = (id: string) => layout.states.find((s) => s.id === id)!;

  test('CANCEL and REDRIVE go the short way: between their states\' heights, through no other state', () => {
    const user = layout.edges.filter((e) => USER_EVENTS.has(e.event) && e.from !== e.to);
    assert.ok(user.length >= 6, 'the machine has CANCEL and REDRIVE edges');
    const xs = layout.states.flatMap((s) => [s.x - s.width / 2, s.x + s.width / 2]);
    const diagram = Math.max(...xs) - Math.min(...xs);
    for (const e of user) {
      const [a, b] = [stateOf(e.from), stateOf(e.to)];
      // It may enter a state through its top or bottom (clear of a self-loop), from no further than a lane's width.
      const top = Math.min(a.y - a.height / 2, b.y - b.height / 2) - 24;
      const bottom = Math.max(a.y + a.height / 2, b.y + b.height / 2) + 24;
      for (const p of e.points) assert.ok(p.y >= top && p.y <= bottom, `${e.key} goes around above or below its states: ${JSON.stringify(p)}`);
      const px = e.points.map((p) => p.x);
      // At most one lane beside the states: never out to the far side of the diagram and back.
      assert.ok(Math.max(...px) - Math.min(...px) <= Math.abs(a.x - b.x) + diagram / 2, `${e.key} wraps around: ${px}`);
      for (const other of layout.states.filter((s) => s.id !== e.from && s.id !== e.to)) {
        assert.ok(!pathPoints(e.path).some((p) => inside(p, other)), `${e.key} crosses ${other.id}`);
      }
    }
  });

  test('labels sit beside the lines: no edge runs through a label', () => {
    for (const e of layout.edges) {
      for (const other of layout.edges) {
        const hit = pathPoints(other.path).find((p) => inside(p, e.label, 1));
        assert.equal(hit, undefined, `${other.key} runs through the label of ${e.key}`);
      }
      for (const st of layout.states) assert.ok(!overlap(e.label, st), `the label of ${e.key} overlaps ${st.id}`);
      for (const other of layout.edges) {
        if (other !== e) assert.ok(!overlap(e.label, other.label), `the labels of ${e.key} and ${other.key} overlap`);
      }
    }
  });

  test('a change to the machine changes the picture', () => {
    const changed: MachineGraph = {
      ...graph,
      states: [...graph.states, { id: 'paused' as never, terminal: false }],
      edges: [...graph.edges, { from: 'running', to: 'paused' as never, event: 'PAUSE' as never }],
    };
    const other: MachineLayout = layoutMachine(changed, measure);
    assert.ok(other.states.some((s) => s.id === 'paused'));
    assert.ok(other.edges.some((e) => e.key === 'running-PAUSE-paused'));
    const where = (l: MachineLayout) => l.states.filter((s) => s.id !== 'paused').map((s) => [s.x, s.y]);
    assert.notDeepEqual(where(other), where(layout));
  });
});

describe('splinePath', () => {
  test('starts on the first point and ends on the last', () => {
    const d = splinePath([{ x: 0, y: 0 }, { x: 10, y: 20 }, { x: 30, y: 20 }, { x: 40, y: 50 }]);
    assert.match(d, /^M0,0 /);
    assert.match(d, / L40,50$/);
  });

  test('two points make a straight line; none, nothing', () => {
    assert.equal(splinePath([{ x: 1, y: 2 }, { x: 3, y: 4 }]), 'M1,2 L3,4');
    assert.equal(splinePath([]), '');
  });
});

describe('pathPoints', () => {
  test('samples lines and cubic curves from their start to their end', () => {
    const pts = pathPoints('M0,0 L10,0 C10,10 20,10 20,0', 1);
    assert.deepEqual(pts[0], { x: 0, y: 0 });
    assert.deepEqual(pts.at(-1), { x: 20, y: 0 });
    assert.ok(pts.some((p) => p.y > 7), 'the curve bulges');
  });
});
