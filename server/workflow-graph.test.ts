/**
 * `GET /v1/workflows/:id/graph` on the SQLite store, with the order saga
 * example: the machine of the instance's definition version with the states
 * it is in, moving as its children end (delivered as the driver would),
 * with live counts per state and the states of each step of its history; an
 * unknown id and another tenant's instance are the same 404; an instance
 * whose definition version this process lacks is a 503; the route needs the
 * read scope.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ulid } from 'ulid';
import * as saga from '../examples/order-saga.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import type { WorkflowDefinitions } from '../engine/workflows.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { authWith, injectAs, MemoryKeyStore, type MadeKey } from '../tests/helpers/keys.js';
import type { WorkflowGraphView, WorkflowView } from './schemas.js';
import { stepsOf } from './routes/workflow-graph.js';
import { workflowGraph } from '../machines/workflow-graph.js';
import type { WorkflowEventRecord, WorkflowEventType, WorkflowRecord } from '../engine/ports.js';

/** The saga's definitions, with a switch that makes this process lack them (as one without the module). */
function sagaDefinitions(): WorkflowDefinitions & { missing: boolean } {
  const registry = registerDemoHandlers(new HandlerRegistry());
  saga.register(registry);
  const defs = {
    missing: false,
    workflowDefinition: (name: string, version?: number) => (defs.missing ? undefined : registry.workflowDefinition(name, version)),
  };
  return defs;
}

const start = { method: 'POST' as const, url: '/v1/workflows', payload: { name: 'order.fulfil', input: { orderId: 'o-1', amount: 30 } } };

describe('GET /v1/workflows/:id/graph', () => {
  let t: TestApp;
  const defs = sagaDefinitions();
  before(async () => {
    t = await startSqliteTestApp({}, { workflows: defs });
  });
  after(async () => {
    await t?.close();
  });

  const graph = async (id: string): Promise<WorkflowGraphView> => {
    const r = await t.app.inject({ url: `/v1/workflows/${id}/graph` });
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as WorkflowGraphView;
  };
  const view = async (id: string): Promise<WorkflowView> => (await t.app.inject({ url: `/v1/workflows/${id}` })).json() as WorkflowView;
  /** The child of `invokeId` ends done with `result`, delivered as the driver delivers it. */
  const childDone = async (wf: WorkflowView, invokeId: string, result: unknown) => {
    const child = wf.children.find((c) => c.invokeId === invokeId);
    assert.ok(child, `no live child ${invokeId}`);
    assert.equal(await t.workflows!.deliver({
      workflowId: wf.id, invokeId, jobId: child.jobId, state: 'done', result, at: Date.now(), tenant: 'default',
    }), true);
  };

  test('the machine of the instance\'s version, with the states it is in, moving as its children end', async () => {
    const r = await t.app.inject(start);
    assert.equal(r.statusCode, 201, r.body);
    const wf = r.json() as WorkflowView;
    const g = await graph(wf.id);
    assert.equal(g.id, wf.id);
    assert.equal(g.name, 'order.fulfil');
    assert.equal(g.definitionVersion, 1);
    assert.equal(g.status, 'active');
    assert.equal(g.value, 'charging');
    assert.equal(g.root, 'order');
    assert.deepEqual(g.active, ['order', 'order.charging']);
    assert.equal(g.nodes.length, 15);
    const charging = g.nodes.find((n) => n.id === 'order.charging')!;
    assert.deepEqual(charging.invoke, [{ id: 'charge', src: 'charge', jobType: 'payment.charge' }]);
    assert.ok(g.edges.some((e) => e.source === 'order.charging' && e.target === 'order.fulfilling' && e.kind === 'done.actor'));
    assert.ok(g.edges.some((e) => e.source === 'order.refunding' && e.target === 'order.unresolved' && e.kind === 'error.actor'));
    assert.equal(g.actors.length, 5);

    assert.deepEqual(g.steps, [{ seq: 1, type: 'START', status: 'active', definitionVersion: 1, active: ['order', 'order.charging'] }]);

    await childDone(wf, 'charge', { chargeId: 'ch-1' });
    await childDone(await view(wf.id), 'reserve', { reservationId: 'rs-1' });
    const parallel = await graph(wf.id);
    assert.deepEqual(parallel.steps.map((s) => [s.seq, s.type, s.active.at(-1)]), [
      [1, 'START', 'order.charging'], [2, 'CHILD', 'order.fulfilling.shipping.booking'], [3, 'CHILD', 'order.fulfilling.shipping.booking'],
    ]);
    assert.ok(parallel.steps[1]!.active.includes('order.fulfilling.stock.reserving') && parallel.steps[2]!.active.includes('order.fulfilling.stock.reserved'));
    assert.deepEqual(parallel.value, { fulfilling: { stock: 'reserved', shipping: 'booking' } });
    assert.deepEqual(parallel.active, [
      'order', 'order.fulfilling', 'order.fulfilling.stock', 'order.fulfilling.stock.reserved',
      'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
    ]);

    await childDone(await view(wf.id), 'ship', { trackingId: 'tr-1' });
    const done = await graph(wf.id);
    assert.equal(done.status, 'done');
    assert.deepEqual(done.active, ['order', 'order.confirmed']);
  });

  test('live counts: the active instances of the name and version in each state node', async () => {
    const before = await graph((await t.app.inject(start)).json().id);
    const count = (g: WorkflowGraphView, id: string) => g.counts.nodes.find((n) => n.id === id)?.active ?? 0;
    const charging = count(before, 'order.charging');
    assert.ok(charging >= 1 && before.counts.capped === false);
    assert.equal(count(before, 'order'), before.counts.instances, 'the root holds every active instance');
    const second = (await t.app.inject(start)).json() as WorkflowView;
    await childDone(second, 'charge', { chargeId: 'ch-2' });
    const after = await graph(second.id);
    assert.equal(count(after, 'order.charging'), charging, 'one more started, one moved on');
    assert.equal(count(after, 'order.fulfilling') - count(before, 'order.fulfilling'), 1);
    assert.equal(count(after, 'order.fulfilling.stock.reserving') - count(before, 'order.fulfilling.stock.reserving'), 1);
    assert.equal(after.counts.instances, before.counts.instances + 1);
    assert.ok(after.counts.nodes.every((n) => n.active >= 1));
    assert.ok(!after.counts.nodes.some((n) => n.id === 'order.confirmed'), 'an ended instance is not counted');
  });

  test('an unknown id is a 404; a malformed one a 400', async () => {
    const r = await t.app.inject({ url: `/v1/workflows/${ulid()}/graph` });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().code, 'ATS_ERR_WORKFLOW_NOT_FOUND');
    assert.equal((await t.app.inject({ url: '/v1/workflows/nope/graph' })).statusCode, 400);
  });

  test('an instance whose definition version this process lacks is a 503 with Retry-After; the instance itself still reads', async () => {
    const wf = (await t.app.inject(start)).json() as WorkflowView;
    defs.missing = true;
    try {
      const r = await t.app.inject({ url: `/v1/workflows/${wf.id}/graph` });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().code, 'ATS_ERR_WORKFLOW_DEFINITION_MISSING');
      assert.ok(r.headers['retry-after'], 'Retry-After');
      assert.equal((await t.app.inject({ url: `/v1/workflows/${wf.id}` })).statusCode, 200);
    } finally {
      defs.missing = false;
    }
    assert.equal((await t.app.inject({ url: `/v1/workflows/${wf.id}/graph` })).statusCode, 200);
  });
});

describe('the graph\'s steps across a migration', () => {
  test('a step before a MIGRATE names its version and draws no state on this version\'s machine', () => {
    const defs = sagaDefinitions();
    const g = workflowGraph(defs.workflowDefinition('order.fulfil')!);
    const ev = (seq: number, type: WorkflowEventType, value: unknown, data: unknown = {}): WorkflowEventRecord =>
      ({ workflowId: 'W', seq, type, at: seq, data, status: 'active', value });
    const wf = { id: 'W', definitionVersion: 3 } as WorkflowRecord;
    const steps = stepsOf(g, wf, [
      ev(1, 'START', 'charging'), ev(2, 'MIGRATE', 'charging', { type: 'MIGRATE', from: 1, to: 2 }),
      ev(3, 'SIGNAL', 'charging'), ev(4, 'MIGRATE', 'charging', { type: 'MIGRATE', from: 2, to: 3 }), ev(5, 'CHILD', 'confirmed'),
    ]);
    assert.deepEqual(steps.map((s) => [s.seq, s.definitionVersion, s.active.at(-1) ?? null]), [
      [1, 1, null], [2, 2, null], [3, 2, null], [4, 3, 'order.charging'], [5, 3, 'order.confirmed'],
    ]);
  });
});

describe('GET /v1/workflows/:id/graph with keys', () => {
  let t: TestApp;
  let acme: MadeKey;
  let globex: MadeKey;
  let acmeSubmitOnly: MadeKey;
  before(async () => {
    const keys = new MemoryKeyStore();
    [acme, globex, acmeSubmitOnly] = [await keys.make('acme'), await keys.make('globex'), await keys.make('acme', ['submit'])];
    t = await startSqliteTestApp({ auth: authWith(keys) }, { workflows: sagaDefinitions() });
  });
  after(async () => {
    await t?.close();
  });

  test('another tenant\'s instance is the 404 of an unknown id; a key without the read scope is a 403', async () => {
    const wf = (await injectAs(t, acme, start)).json() as WorkflowView;
    const mine = await injectAs(t, acme, { url: `/v1/workflows/${wf.id}/graph` });
    assert.equal(mine.statusCode, 200, mine.body);
    assert.deepEqual(mine.json().active, ['order', 'order.charging']);
    const theirs = await injectAs(t, globex, { url: `/v1/workflows/${wf.id}/graph` });
    const unknown = await injectAs(t, globex, { url: `/v1/workflows/${ulid()}/graph` });
    assert.equal(theirs.statusCode, 404);
    assert.equal(theirs.json().code, unknown.json().code);
    assert.doesNotMatch(theirs.body, /order\.charging/);
    assert.equal((await injectAs(t, acmeSubmitOnly, { url: `/v1/workflows/${wf.id}/graph` })).statusCode, 403);
  });
});
