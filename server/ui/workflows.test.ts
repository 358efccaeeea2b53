/**
 * The workflows panel's data (server/ui/client/workflows.ts) and the layout
 * of a workflow's machine (server/ui/client/workflow-layout.ts), under node:
 * from the answers of `GET /v1/workflows`, `GET /v1/workflows/:id`, its
 * history and `GET /v1/workflows/:id/graph` (the order saga and fan-out
 * examples' graphs, as machines/workflow-graph.ts makes them): with its live
 * counts on the states and the time-travel slider over its steps.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as album from '../../examples/fan-out.js';
import * as saga from '../../examples/order-saga.js';
import { activeNodeIds, workflowGraph } from '../../machines/workflow-graph.js';
import { defineWorkflow } from '../../machines/workflow.js';
import { dateTime } from './client/dom.js';
import { COUNT_ROOM, countBadge, edgeText, layoutWorkflow, type WfBox, type WorkflowMeasure } from './client/workflow-layout.js';
import {
  childByInvoke, childRows, concernsChild, concernsWorkflow, countsNote, countTitle, eventSummary, highlighted, historyPatch, historyRows, historyShown, holdAt,
  HISTORY_SHOWN, isWorkflowGraph, isWorkflowPage, outcomeOf, stateCounts, stepShown, timerRows, valueText, workflowRows,
  type Workflow, type WorkflowEvent, type WorkflowGraphAnswer, type WorkflowGraphStep,
} from './client/workflows.js';

const NOW = 1_800_000_000_000;
const iso = (t: number) => new Date(t).toISOString();
const JOB = '01JABCDEFGHJKMNPQRSTVWXYZ0';

const instance = (over: Partial<Workflow> = {}): Workflow => ({
  id: '01JWF0000000000000000000AA', name: 'order.fulfil', definitionVersion: 1, version: 3, status: 'active',
  value: { fulfilling: { stock: 'reserved', shipping: 'booking' } }, context: {}, input: { orderId: 'o-1' }, output: null, error: null,
  children: [{ invokeId: 'ship', jobId: JOB, jobType: 'shipping.book', state: 'running' }],
  timers: [{ id: 'xstate.after.5000.order.waiting', dueAt: iso(NOW + 5000) }],
  accepts: [], idempotencyKey: null, createdAt: iso(NOW - 60_000), updatedAt: iso(NOW - 2000), ...over,
});

const sagaGraph = workflowGraph(defineWorkflow('order.fulfil', saga.orderSaga));
const answer = (value: unknown, status: Workflow['status'] = 'active'): WorkflowGraphAnswer => ({
  ...sagaGraph, id: '01JWF0000000000000000000AA', definitionVersion: 1, status, value, active: activeNodeIds(sagaGraph, value as never),
});

/** A step of the saga's history, and the states it left the instance in. */
const step = (seq: number, type: WorkflowGraphStep['type'], value: unknown, status: Workflow['status'] = 'active'): WorkflowGraphStep => ({
  seq, type, status, active: activeNodeIds(sagaGraph, value as never),
});
const FULFILLING = { fulfilling: { stock: 'reserving', shipping: 'booking' } };
const RESERVED = { fulfilling: { stock: 'reserved', shipping: 'booking' } };
/** The saga waiting for its shipping job after four steps. */
const SAGA_STEPS = [step(1, 'START', 'charging'), step(2, 'CHILD', FULFILLING), step(3, 'CHILD', RESERVED), step(4, 'SIGNAL', RESERVED)];
const travelled = (steps = SAGA_STEPS): WorkflowGraphAnswer => ({ ...answer(RESERVED), steps });

/** Text as wide as 7 px a character: what the page measures with a canvas. */
const measure: WorkflowMeasure = (text) => text.length * 7;

describe('the workflows panel', () => {
  test('accepts the answers the API gives, and refuses what it could not show', () => {
    assert.equal(isWorkflowPage(JSON.parse(JSON.stringify({ workflows: [instance()], nextCursor: null }))), true);
    assert.equal(isWorkflowPage({ workflows: [] }), true);
    assert.equal(isWorkflowPage({ code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'no route' }), false);
    assert.equal(isWorkflowPage({ workflows: [{ ...instance(), status: 'sleeping' }] }), false);
    assert.equal(isWorkflowPage({ workflows: [{ ...instance(), updatedAt: 'later' }] }), false);
    assert.equal(isWorkflowGraph(JSON.parse(JSON.stringify(answer('charging')))), true);
    assert.equal(isWorkflowGraph({ ...answer('charging'), active: 'charging' }), false);
    assert.equal(isWorkflowGraph({ ...answer('charging'), nodes: [{ id: 'x' }] }), false);
    const counted = { ...travelled(), counts: { instances: 3, capped: false, nodes: [{ id: 'order', active: 3 }] } };
    assert.equal(isWorkflowGraph(JSON.parse(JSON.stringify(counted))), true, 'with counts and steps');
    assert.equal(isWorkflowGraph({ ...counted, counts: { instances: 3, nodes: [] } }), false, 'counts without capped');
    assert.equal(isWorkflowGraph({ ...counted, counts: { instances: 3, capped: false, nodes: [{ id: 'order', active: '3' }] } }), false);
    assert.equal(isWorkflowGraph({ ...counted, steps: [{ seq: 1, type: 'START', status: 'active', active: 'order' }] }), false);
    assert.equal(isWorkflowGraph({ ...counted, steps: [{ seq: 1, type: 'START', status: 'paused', active: [] }] }), false);
  });

  test('live counts: a number on each state with instances in it, none on the others; what they count, and when capped', () => {
    const g = {
      ...answer(RESERVED),
      counts: { instances: 12, capped: false, nodes: [
        { id: 'order', active: 12 }, { id: 'order.charging', active: 9 }, { id: 'order.fulfilling', active: 3 },
        { id: 'order.releasing', active: 0 }, { id: '__proto__', active: 1 },
      ] },
    };
    const counts = stateCounts(g);
    assert.deepEqual([...counts], [['order', 12], ['order.charging', 9], ['order.fulfilling', 3], ['__proto__', 1]]);
    assert.equal(counts.get('order.releasing'), undefined, 'zero is left out: the box shows no number');
    assert.equal(counts.get('constructor'), undefined);
    assert.equal(stateCounts(answer('charging')).size, 0, 'an older server: no counts');
    assert.equal(countTitle('order.charging', 9, g), '9 active instances of order.fulfil v1 are in order.charging');
    assert.equal(countTitle('order.fulfilling', 1, g), '1 active instance of order.fulfil v1 is in order.fulfilling');
    assert.equal(countsNote(g), 'Numbers on the states: how many of the 12 active instances of order.fulfil v1 are in each, live.');
    assert.match(countsNote({ ...g, counts: { instances: 10_000, capped: true, nodes: [] } })!,
      /first 10,000 active instances of order\.fulfil v1 .*\(capped: more are active, so the numbers are at least these\)/);
    assert.equal(countsNote({ ...g, counts: { instances: 0, capped: false, nodes: [] } }), 'No active instance of order.fulfil v1 now: no state shows a number.');
    assert.equal(countsNote(answer('charging')), null);
  });

  test('time travel: at the last step the slider follows the instance, the states it is in now', () => {
    const shown = stepShown(travelled(), null)!;
    assert.deepEqual([shown.index, shown.total, shown.seq, shown.following], [4, 4, 4, true]);
    assert.deepEqual([...shown.active], [...highlighted(answer(RESERVED))]);
    assert.equal(shown.label, 'step 4 of 4: SIGNAL');
    // A live read brings a fifth step: a slider at the last step moves on with it.
    const later = travelled([...SAGA_STEPS, step(5, 'CHILD', 'confirmed', 'done')]);
    const next = stepShown({ ...later, active: activeNodeIds(sagaGraph, 'confirmed'), status: 'done' }, null)!;
    assert.deepEqual([next.index, next.total, next.following, next.status], [5, 5, true, 'done']);
    assert.deepEqual([...next.active], ['order', 'order.confirmed']);
    assert.equal(holdAt(later, 5), null, 'moved to the last step: follow');
    assert.equal(holdAt(later, 9), null);
    assert.equal(stepShown(answer('charging'), null), null, 'an older server: no steps, no slider');
  });

  test('time travel: stepped back, the step\'s states show and a live read leaves the slider on its step', () => {
    const hold = holdAt(travelled(), 2);
    assert.equal(hold, 2);
    const back = stepShown(travelled(), hold, [{ seq: 2, value: FULFILLING }])!;
    assert.deepEqual([back.index, back.total, back.seq, back.following], [2, 4, 2, false]);
    assert.deepEqual([...back.active].sort(), [
      'order', 'order.fulfilling', 'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
      'order.fulfilling.stock', 'order.fulfilling.stock.reserving',
    ]);
    assert.equal(back.label, 'step 2 of 4: CHILD → fulfilling: stock.reserving, shipping.booking');
    // The instance moves on while stepped back: the slider stays on step 2, of 5 now.
    const moved = stepShown({ ...travelled([...SAGA_STEPS, step(5, 'CHILD', 'confirmed', 'done')]), status: 'done' }, hold)!;
    assert.deepEqual([moved.index, moved.total, moved.seq, moved.following, moved.status], [2, 5, 2, false, 'active']);
    assert.equal(moved.label, 'step 2 of 5: CHILD');
    // Past the 500 steps the graph gives, the oldest ones drop out: the held one stays where it is...
    const trimmed = travelled(SAGA_STEPS.slice(1));
    const kept = stepShown(trimmed, hold)!;
    assert.deepEqual([kept.index, kept.total, kept.seq], [1, 3, 2]);
    // ...and one dropped gives way to the oldest still there.
    const gone = stepShown(travelled(SAGA_STEPS.slice(2)), hold)!;
    assert.deepEqual([gone.index, gone.seq, gone.following], [1, 3, false]);
  });

  test('time travel: a step that ended the instance in error highlights no state, as the instance would', () => {
    const steps = [step(1, 'START', 'charging'), step(2, 'CHILD', 'charging', 'error'), step(3, 'SIGNAL', 'charging', 'error')];
    const g = { ...answer('charging', 'error'), steps };
    assert.deepEqual([...stepShown(g, holdAt(g, 2))!.active], []);
    assert.deepEqual([...stepShown(g, holdAt(g, 1))!.active], ['order', 'order.charging']);
    assert.equal(stepShown(g, holdAt(g, 2))!.status, 'error');
  });

  test('a state value on one line: a name, a parallel state\'s regions, nested states', () => {
    assert.equal(valueText('charging'), 'charging');
    assert.equal(valueText({ fulfilling: { stock: 'reserved', shipping: 'booking' } }), 'fulfilling: stock.reserved, shipping.booking');
    assert.equal(valueText({ a: 'b', c: { d: 'e' } }), 'a.b, c.d.e');
    assert.equal(valueText({ toString: 'constructor' }), 'toString: constructor');
  });

  test('a row per instance: its name and version, status, state, live jobs, last step relative', () => {
    const rows = workflowRows({
      workflows: [
        instance(),
        instance({ id: '01JWF0000000000000000000AB', status: 'done', value: 'confirmed', children: [], updatedAt: iso(NOW - 120_000) }),
        instance({ id: '01JWF0000000000000000000AC', status: 'error', value: 'charging', children: [] }),
      ],
      nextCursor: null,
    }, NOW);
    assert.deepEqual(rows.map((r) => [r.status, r.state, r.children]), [
      ['active', 'fulfilling: stock.reserved, shipping.booking', '1 job'],
      ['done', 'confirmed', ''],
      ['error', 'charging (when it ended)', ''],
    ]);
    assert.equal(rows[0]!.name, 'order.fulfil');
    assert.equal(rows[0]!.version, 1);
    assert.equal(rows[0]!.updatedRelative, '2.0 s ago');
    assert.equal(rows[1]!.updatedRelative, '2 min ago');
    assert.equal(rows[0]!.updatedLocal, dateTime(iso(NOW - 2000)));
  });

  test('children with their jobs\' states, by invocation id; a job gone is unknown', () => {
    const w = instance({ children: [
      { invokeId: 'ship', jobId: JOB, jobType: 'shipping.book', state: 'running' },
      { invokeId: '__proto__', jobId: '01JABCDEFGHJKMNPQRSTVWXYZ1', jobType: 'x', state: null },
    ] });
    assert.deepEqual(childRows(w).map((c) => [c.invokeId, c.state]), [['ship', 'running'], ['__proto__', 'unknown']]);
    const by = childByInvoke(w);
    assert.equal(by.get('ship')!.jobId, JOB);
    assert.equal(by.get('__proto__')!.state, 'unknown');
    assert.equal(by.get('constructor'), undefined);
  });

  test('timers say which delay of which state, due when; outcomes by status', () => {
    const [t] = timerRows(instance(), NOW);
    assert.equal(t!.text, 'after 5 s in order.waiting');
    assert.equal(t!.dueRelative, 'in 5.0 s');
    assert.equal(timerRows(instance({ timers: [{ id: 'custom', dueAt: iso(NOW) }] }), NOW)[0]!.text, 'custom');
    assert.equal(outcomeOf(instance()), null);
    assert.deepEqual(outcomeOf(instance({ status: 'done', output: { ok: 1 } })), { kind: 'output', value: { ok: 1 } });
    assert.deepEqual(outcomeOf(instance({ status: 'error', error: { message: 'no carrier' } })), { kind: 'error', value: { message: 'no carrier' } });
    assert.equal(outcomeOf(instance({ status: 'cancelled' }))!.kind, 'cancelled');
  });

  test('the history, each step on a line', () => {
    const rows = historyRows([
      { seq: 1, type: 'START', at: iso(NOW - 3000), data: { input: { orderId: 'o-1' }, jobIds: [JOB], version: 1 }, status: 'active', value: 'a' },
      { seq: 2, type: 'CHILD', at: iso(NOW - 2000), data: { type: 'CHILD', jobId: JOB, outcome: { state: 'done', result: {} }, jobIds: [] }, status: 'active', value: 'a' },
      { seq: 3, type: 'SIGNAL', at: iso(NOW - 1000), data: { type: 'SIGNAL', event: { type: 'APPROVE' }, jobIds: [] }, status: 'active', value: 'a' },
      { seq: 4, type: 'TIMER', at: iso(NOW), data: { type: 'TIMER', timerId: 'xstate.after.5000.order.waiting', jobIds: [] }, status: 'done', value: 'a' },
    ]);
    assert.deepEqual(rows.map((r) => r.what), [
      'started with {"orderId":"o-1"}', `child job ${JOB} done`, 'signal APPROVE', 'timer xstate.after.5000.order.waiting',
    ]);
    assert.equal(rows[3]!.status, 'done');
    assert.equal(eventSummary({ type: 'CANCEL', data: { type: 'CANCEL', reason: 'by hand' } }), 'cancelled: by hand');
    assert.equal(eventSummary({ type: 'MIGRATE', data: { type: 'MIGRATE', from: 1, to: 2 } }), 'moved from version 1 to 2');
    assert.equal(eventSummary({ type: 'MESSAGE', data: { type: 'MESSAGE', from: 'W9', messageId: 'W9:3:0', event: { type: 'REPORT' } } }), 'message REPORT from workflow W9');
  });

  test('a long history: the last steps only, as many as the slider walks, and how many older ones are left out', () => {
    const signal = (seq: number): WorkflowEvent => ({
      seq, type: 'SIGNAL', at: iso(NOW - 100_000 + seq), data: { type: 'SIGNAL', event: { type: 'ADD' }, jobIds: [] }, status: 'active', value: 'counting',
    });
    const long = Array.from({ length: 10_000 }, (_, i) => signal(i + 1));
    assert.equal(HISTORY_SHOWN, 500, 'the graph\'s steps: what the slider walks');
    const shown = historyShown(long);
    assert.equal(shown.rows.length, HISTORY_SHOWN);
    assert.equal(shown.older, 10_000 - HISTORY_SHOWN);
    assert.deepEqual([shown.rows[0]!.seq, shown.rows.at(-1)!.seq], [9501, 10_000]);
    assert.equal(shown.rows[0]!.what, 'signal ADD');
    const short = historyShown(long.slice(0, 3));
    assert.deepEqual([short.rows.map((r) => r.seq), short.older], [[1, 2, 3], 0]);
    // Read with ?last=500: the older steps were never fetched, and their count is still known.
    const tail = historyShown(long.slice(-HISTORY_SHOWN));
    assert.equal(tail.older, 10_000 - HISTORY_SHOWN);
    assert.deepEqual([tail.rows[0]!.seq, tail.rows.length], [9501, HISTORY_SHOWN]);
  });

  test('a read that brings new steps adds their rows and drops those past the last 500; the rows drawn stay', () => {
    const rows = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i }));
    const seqs = (from: number, to: number) => rows(from, to).map((r) => r.seq);
    // Nothing new: nothing to do.
    assert.deepEqual(historyPatch(seqs(1, 3), rows(1, 3)), { drop: 0, append: [] });
    // Two new steps under the cap.
    assert.deepEqual(historyPatch(seqs(1, 3), rows(1, 5)), { drop: 0, append: rows(4, 5) });
    // At the cap: three new steps, the three oldest rows go.
    assert.deepEqual(historyPatch(seqs(1, 500), rows(4, 503)), { drop: 3, append: rows(501, 503) });
    // More new steps than rows shown: all drawn again.
    assert.equal(historyPatch(seqs(1, 500), rows(600, 1099)), null);
    // Nothing drawn, or rows that do not follow on (another instance): drawn again.
    assert.equal(historyPatch([], rows(1, 3)), null);
    assert.equal(historyPatch(seqs(1, 3), rows(2, 2)), null, 'fewer steps than drawn');
    assert.equal(historyPatch([1, 2, 4], rows(1, 5)), null, 'a gap');
    assert.equal(historyPatch(seqs(5, 7), rows(1, 8)), null, 'older steps than drawn');
  });

  test('what makes the panel read the selected instance again: a step of it, a transition of one of its children', () => {
    const w = instance();
    assert.equal(concernsWorkflow({ workflowId: w.id }, w.id), true);
    assert.equal(concernsWorkflow({ workflowId: 'other' }, w.id), false);
    assert.equal(concernsWorkflow({ workflowId: w.id }, null), false);
    assert.equal(concernsChild({ jobId: JOB }, w), true);
    assert.equal(concernsChild({ jobId: '01JABCDEFGHJKMNPQRSTVWXYZ9' }, w), false);
    assert.equal(concernsChild({ jobId: JOB }, null), false);
  });

  test('highlighted: the states it is in, none once it ended in error or was cancelled', () => {
    assert.deepEqual([...highlighted(answer('charging'))], ['order', 'order.charging']);
    assert.deepEqual([...highlighted(answer('confirmed', 'done'))], ['order', 'order.confirmed']);
    assert.deepEqual([...highlighted(answer('charging', 'cancelled'))], []);
  });
});

/** Whether `inner` lies inside `outer`. */
const inside = (inner: WfBox, outer: WfBox) =>
  inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
const overlap = (a: WfBox, b: WfBox) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('the layout of a workflow\'s machine', () => {
  const layout = layoutWorkflow(sagaGraph, measure);
  const box = (id: string) => {
    const b = layout.boxes.find((x) => x.id === id);
    assert.ok(b, `no box ${id}`);
    return b;
  };

  test('a box per state, each inside its parent, siblings apart; a column top to bottom, regions side by side', () => {
    assert.equal(layout.boxes.length, sagaGraph.nodes.length);
    for (const n of sagaGraph.nodes) {
      if (n.parent) assert.ok(inside(box(n.id), box(n.parent)), `${n.id} inside ${n.parent}`);
      const siblings = sagaGraph.nodes.filter((o) => o.parent === n.parent && o.id !== n.id);
      for (const o of siblings) assert.ok(!overlap(box(n.id), box(o.id)), `${n.id} and ${o.id} apart`);
    }
    assert.ok(box('order.charging').y < box('order.fulfilling').y);
    assert.ok(box('order.fulfilling').y < box('order.releasing').y);
    const [stock, shipping] = [box('order.fulfilling.stock'), box('order.fulfilling.shipping')];
    assert.equal(stock.y, shipping.y);
    assert.ok(stock.x + stock.width <= shipping.x);
    assert.equal(stock.height, shipping.height, 'regions as tall as each other');
    assert.ok(box('order.charging').initial);
    assert.ok(box('order.fulfilling.stock.reserving').initial);
    assert.equal(box('order.confirmed').initial, false);
    assert.ok(layout.width >= box('order').x + box('order').width);
    assert.ok(layout.height >= box('order').y + box('order').height);
  });

  test('each state\'s header keeps room right of its name for its count, which fits in the box', () => {
    for (const b of layout.boxes) {
      assert.ok(b.width >= measure(b.key, 'state') + COUNT_ROOM + 20, `${b.id} is wide enough`);
      const badge = countBadge(b, '10,000');
      assert.ok(badge.x > b.x + 10 + measure(b.key, 'state'), `the count of ${b.id} is right of its name`);
      assert.ok(badge.x + badge.width <= b.x + b.width && badge.y >= b.y && badge.y + badge.height <= b.y + 26, `the count of ${b.id} is in its header`);
    }
    const one = countBadge(box('order.charging'), '3');
    assert.ok(one.width < countBadge(box('order.charging'), '1,234').width, 'as wide as its digits');
    assert.equal(one.x + one.width, countBadge(box('order.charging'), '1,234').x + countBadge(box('order.charging'), '1,234').width, 'right-aligned');
  });

  test('a state\'s jobs and delays are lines in it', () => {
    assert.deepEqual(box('order.charging').lines, [{ text: '▶ payment.charge (charge)', kind: 'invoke', invokeId: 'charge' }]);
    assert.deepEqual(box('order.confirmed').lines, []);
  });

  test('an arrow per pair of states: neighbours straight down, others in lanes on the right; two events on one arrow', () => {
    const arrows = new Map(layout.arrows.map((a) => [a.key, a]));
    assert.deepEqual([...arrows.keys()].sort(), [
      'order.charging|order.failed', 'order.charging|order.fulfilling', 'order.fulfilling.shipping.booking|order.fulfilling.shipping.booked',
      'order.fulfilling.stock.reserving|order.fulfilling.stock.reserved', 'order.fulfilling|order.confirmed', 'order.fulfilling|order.releasing',
      'order.refunding|order.refunded', 'order.refunding|order.unresolved', 'order.releasing|order.refunding',
    ]);
    const down = arrows.get('order.charging|order.fulfilling')!;
    assert.equal(down.label, 'done: charge');
    assert.match(down.path, /^M[\d.]+,[\d.]+ L[\d.]+,[\d.]+$/, 'neighbours: one straight segment');
    assert.equal(arrows.get('order.fulfilling|order.releasing')!.label, 'error: reserve · error: ship');
    assert.deepEqual(arrows.get('order.fulfilling|order.releasing')!.kinds, ['error.actor']);
    assert.equal(arrows.get('order.releasing|order.refunding')!.label, 'done: release · error: release');
    const lane = arrows.get('order.charging|order.failed')!;
    assert.equal(lane.path.split(' ').length, 4, 'a lane: out, down, back in');
    const laneX = Number(lane.path.split(' ')[1]!.slice(1).split(',')[0]);
    assert.ok(laneX > box('order.fulfilling').x + box('order.fulfilling').width, 'the lane runs right of the column');
    assert.ok(laneX < box('order').x + box('order').width, 'inside its compound state');
    const labels = layout.arrows.map((a) => ({ key: a.key, ...a.labelBox }));
    for (const [i, a] of labels.entries()) {
      for (const b of labels.slice(i + 1)) {
        const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        assert.ok(apart, `the labels of ${a.key} and ${b.key} do not cover each other`);
      }
    }
  });

  test('the fan-out: transitions that stay are lines in their state; the guarded always is an arrow', () => {
    const g = workflowGraph(defineWorkflow('album.make', album.albumMake));
    const l = layoutWorkflow(g, measure);
    const resizing = l.boxes.find((b) => b.id === 'album.resizing')!;
    assert.deepEqual(resizing.lines.map((x) => x.text), ['↺ done: *', '↺ error: *']);
    assert.deepEqual(l.arrows.map((a) => a.label), ['always [inline]', 'done: publish']);
  });

  test('edge texts: a child\'s end, a state\'s done, a delay, a guard, a signal', () => {
    assert.equal(edgeText({ event: 'xstate.done.actor.charge', kind: 'done.actor', guard: null }), 'done: charge');
    assert.equal(edgeText({ event: 'xstate.error.actor.ship', kind: 'error.actor', guard: null }), 'error: ship');
    assert.equal(edgeText({ event: 'xstate.done.state.order.fulfilling', kind: 'done.state', guard: null }), 'done');
    assert.equal(edgeText({ event: 'xstate.after.90000.x.y', kind: 'after', guard: null }, [{ delay: 90_000, event: 'xstate.after.90000.x.y' }]), 'after 1.5 min');
    assert.equal(edgeText({ event: 'APPROVE', kind: 'signal', guard: 'isManager' }), 'APPROVE [isManager]');
  });
});
