/**
 * The graph the console draws of a workflow: every state node with its
 * invocations and delays, every transition with its event, kind and guard,
 * read from the two example machines and a small delayed one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setup } from 'xstate';
import * as album from '../examples/fan-out.js';
import * as saga from '../examples/order-saga.js';
import { activeNodeIds, workflowGraph, type WorkflowGraph } from './workflow-graph.js';
import { defineWorkflow, job } from './workflow.js';

const node = (g: WorkflowGraph, id: string) => {
  const n = g.nodes.find((x) => x.id === id);
  assert.ok(n, `no node ${id}`);
  return n;
};
const edgeList = (g: WorkflowGraph) => g.edges.map((e) => `${e.source} -${e.event || '(always)'}${e.guard ? `[${e.guard}]` : ''}-> ${e.target ?? '(stays)'}`);

describe('workflowGraph', () => {
  const order = workflowGraph(defineWorkflow('order.fulfil', saga.orderSaga, { version: 3 }));

  it('lists every state node of the order saga, parents first, with its type, parent, initial child and children', () => {
    assert.equal(order.root, 'order');
    assert.equal(order.name, 'order.fulfil');
    assert.equal(order.version, 3);
    assert.deepEqual(order.nodes.map((n) => n.id), [
      'order', 'order.charging', 'order.fulfilling', 'order.fulfilling.stock', 'order.fulfilling.stock.reserving',
      'order.fulfilling.stock.reserved', 'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
      'order.fulfilling.shipping.booked', 'order.releasing', 'order.refunding', 'order.confirmed', 'order.refunded', 'order.unresolved',
      'order.failed',
    ]);
    assert.deepEqual(
      Object.fromEntries(order.nodes.map((n) => [n.id, n.type])),
      {
        order: 'compound', 'order.charging': 'atomic', 'order.fulfilling': 'parallel', 'order.fulfilling.stock': 'compound',
        'order.fulfilling.stock.reserving': 'atomic', 'order.fulfilling.stock.reserved': 'final', 'order.fulfilling.shipping': 'compound',
        'order.fulfilling.shipping.booking': 'atomic', 'order.fulfilling.shipping.booked': 'final', 'order.releasing': 'atomic',
        'order.refunding': 'atomic', 'order.confirmed': 'final', 'order.refunded': 'final', 'order.unresolved': 'final', 'order.failed': 'final',
      },
    );
    const root = node(order, 'order');
    assert.equal(root.parent, null);
    assert.equal(root.initial, 'order.charging');
    assert.equal(node(order, 'order.fulfilling').initial, null, 'a parallel state has no initial child');
    assert.deepEqual(node(order, 'order.fulfilling').children, ['order.fulfilling.stock', 'order.fulfilling.shipping']);
    assert.equal(node(order, 'order.fulfilling.shipping.booking').parent, 'order.fulfilling.shipping');
    assert.equal(node(order, 'order.fulfilling.stock').initial, 'order.fulfilling.stock.reserving');
    assert.equal(node(order, 'order.fulfilling.stock').key, 'stock');
  });

  it('gives each invocation its id, its actor and the job type it runs', () => {
    assert.deepEqual(node(order, 'order.charging').invoke, [{ id: 'charge', src: 'charge', jobType: 'payment.charge' }]);
    assert.deepEqual(node(order, 'order.fulfilling.shipping.booking').invoke, [{ id: 'ship', src: 'ship', jobType: 'shipping.book' }]);
    assert.deepEqual(node(order, 'order.refunding').invoke, [{ id: 'refund', src: 'refund', jobType: 'payment.refund' }]);
    assert.deepEqual(node(order, 'order.fulfilling').invoke, []);
    assert.deepEqual(order.actors.map((a) => a.jobType).sort(), ['payment.charge', 'payment.refund', 'shipping.book', 'stock.release', 'stock.reserve']);
  });

  it('lists every transition of the order saga: child ends and errors, the parallel state\'s done', () => {
    assert.deepEqual(edgeList(order), [
      'order.charging -xstate.done.actor.charge-> order.fulfilling',
      'order.charging -xstate.error.actor.charge-> order.failed',
      'order.fulfilling -xstate.error.actor.reserve-> order.releasing',
      'order.fulfilling -xstate.error.actor.ship-> order.releasing',
      'order.fulfilling -xstate.done.state.order.fulfilling-> order.confirmed',
      'order.fulfilling.stock.reserving -xstate.done.actor.reserve-> order.fulfilling.stock.reserved',
      'order.fulfilling.shipping.booking -xstate.done.actor.ship-> order.fulfilling.shipping.booked',
      'order.releasing -xstate.done.actor.release-> order.refunding',
      'order.releasing -xstate.error.actor.release-> order.refunding',
      'order.refunding -xstate.done.actor.refund-> order.refunded',
      'order.refunding -xstate.error.actor.refund-> order.unresolved',
    ]);
    const kinds = new Map(order.edges.map((e) => [`${e.source} ${e.event}`, e.kind]));
    assert.equal(kinds.get('order.charging xstate.error.actor.charge'), 'error.actor');
    assert.equal(kinds.get('order.fulfilling xstate.done.state.order.fulfilling'), 'done.state');
    assert.ok(order.edges.every((e) => e.reenter === false));
  });

  it('the fan-out: targetless child-end transitions that stay, the spawned actor listed though no state invokes it', () => {
    const g = workflowGraph(defineWorkflow('album.make', album.albumMake));
    assert.deepEqual(g.nodes.map((n) => `${n.id}:${n.type}`), ['album:compound', 'album.resizing:atomic', 'album.publishing:atomic', 'album.published:final']);
    assert.deepEqual(edgeList(g), [
      'album.resizing -xstate.done.actor.*-> (stays)',
      'album.resizing -xstate.error.actor.*-> (stays)',
      'album.resizing -(always)[inline]-> album.publishing',
      'album.publishing -xstate.done.actor.publish-> album.published',
    ]);
    assert.deepEqual(node(g, 'album.resizing').invoke, [], 'spawned children are not invocations');
    assert.deepEqual(g.actors, [{ name: 'publish', jobType: 'album.publish' }, { name: 'resize', jobType: 'image.resize' }]);
  });

  it('a delay, a named guard, a signal, tags, an inline job and a re-entry', () => {
    const machine = setup({ guards: { approved: () => true } }).createMachine({
      id: 'hold',
      initial: 'waiting',
      states: {
        waiting: {
          tags: ['approval'],
          description: 'waits for a person',
          // An inline job (no name in setup): typed loosely, as setup() only types its own actors.
          invoke: { id: 'notify', src: job('mail.send') } as never,
          after: { 5000: 'expired' },
          on: { APPROVE: { guard: 'approved', target: 'done' }, POKE: { target: 'waiting', reenter: true } },
        },
        expired: { type: 'final' },
        done: { type: 'final' },
      },
    });
    const g = workflowGraph(defineWorkflow('hold', machine));
    const waiting = node(g, 'hold.waiting');
    assert.deepEqual(waiting.invoke, [{ id: 'notify', src: null, jobType: 'mail.send' }]);
    assert.deepEqual(waiting.after, [{ delay: 5000, event: 'xstate.after.5000.hold.waiting' }]);
    assert.deepEqual(waiting.tags, ['approval']);
    assert.equal(waiting.description, 'waits for a person');
    assert.deepEqual(g.edges.map((e) => [e.event, e.kind, e.target, e.guard, e.reenter]), [
      ['APPROVE', 'signal', 'hold.done', 'approved', false],
      ['POKE', 'signal', 'hold.waiting', null, true],
      ['xstate.after.5000.hold.waiting', 'after', 'hold.expired', null, false],
    ]);
  });
});

describe('activeNodeIds', () => {
  const g = workflowGraph(defineWorkflow('order.fulfil', saga.orderSaga));

  it('a sequential state: the root and the state', () => {
    assert.deepEqual(activeNodeIds(g, 'charging'), ['order', 'order.charging']);
  });

  it('a parallel state: every region and the state each is in', () => {
    assert.deepEqual(activeNodeIds(g, { fulfilling: { stock: 'reserved', shipping: 'booking' } }), [
      'order', 'order.fulfilling', 'order.fulfilling.stock', 'order.fulfilling.stock.reserved',
      'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
    ]);
  });

  it('a key the machine lacks is skipped, with what is under it', () => {
    assert.deepEqual(activeNodeIds(g, { nowhere: 'x' }), ['order']);
    assert.deepEqual(activeNodeIds(g, 'toString'), ['order']);
  });
});
