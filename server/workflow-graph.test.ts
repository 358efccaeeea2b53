/**
 * `GET /v1/workflows/:id/graph` on the SQLite store, with the order saga
 * example: the machine of the instance's definition version with the states
 * it is in, moving as its children end (delivered as the driver would),
 * with live counts per state and the states of each step of its history; an
 * unknown id and another tenant's instance are the same 404; an instance
 * whose definition version this process lacks is a 503; the route needs the
 * read scope. The steps are read without the events' data (a signal's may be
 * a megabyte, and the last 500 steps are drawn), on either store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ulid } from 'ulid';
import { assign, setup } from 'xstate';
import * as saga from '../examples/order-saga.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import type { WorkflowDefinitions } from '../engine/workflows.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { authWith, injectAs, MemoryKeyStore, type MadeKey } from '../tests/helpers/keys.js';
import type { WorkflowGraphView, WorkflowView } from './schemas.js';
import { stepsOf } from './routes/workflow-graph.js';
import { workflowGraph } from '../machines/workflow-graph.js';
import type { WorkflowEventRecord, WorkflowEventType, WorkflowRecord } from '../engine/ports.js';

const mysqlReady = await requireMysql();

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

/** Counts each ADD (by `n`, else 1) in `counting`; STOP ends it: its states are what its steps draw, the signals' notes are data. */
const counter = setup({ types: { context: {} as { count: number } } }).createMachine({
  id: 'counter', context: { count: 0 }, initial: 'counting',
  states: {
    counting: { on: { ADD: { actions: assign({ count: ({ context, event }) => context.count + ((event as { n?: number }).n ?? 1) }) }, STOP: 'stopped' } },
    stopped: { type: 'final' },
  },
});

/**
 * An instance's graph on `p`, after signals that carry 100 KB each and a
 * migration to version 2: its steps are those of its history (each step's
 * states, the versions either side of the MIGRATE), and the history's
 * events whole (their data) are not read for them. Closes `p`.
 */
async function stepsWithoutData(p: TestApp, versions: HandlerRegistry): Promise<void> {
  try {
    const started = await p.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'g.counter' } });
    assert.equal(started.statusCode, 201, started.body);
    const id = (started.json() as WorkflowView).id;
    const send = async (body: object) => {
      const r = await p.app.inject({ method: 'POST', url: `/v1/workflows/${id}/events`, payload: body });
      assert.equal(r.statusCode, 200, r.body);
    };
    for (let i = 0; i < 3; i++) await send({ type: 'ADD', note: 'x'.repeat(100_000) });
    versions.workflow('g.counter', counter, { version: 2, migrate: { from: 1, state: ({ context }) => ({ value: 'counting', context }) } });
    await send({ type: 'ADD', note: 'y'.repeat(100_000) });
    await send({ type: 'STOP' });

    const wf = (await p.store.getWorkflow(id))!;
    assert.equal(wf.definitionVersion, 2);
    const expected = stepsOf(workflowGraph(versions.workflowDefinition('g.counter', 2)!), wf, await p.store.getWorkflowEvents(id));
    assert.deepEqual(expected.map((s) => [s.seq, s.type, s.definitionVersion, s.active.at(-1) ?? null]), [
      [1, 'START', 1, null], [2, 'SIGNAL', 1, null], [3, 'SIGNAL', 1, null], [4, 'SIGNAL', 1, null],
      [5, 'MIGRATE', 2, 'counter.counting'], [6, 'SIGNAL', 2, 'counter.counting'], [7, 'SIGNAL', 2, 'counter.stopped'],
    ]);

    const whole: number[] = [];
    const read = p.store.getWorkflowEvents;
    p.store.getWorkflowEvents = async (wid, afterSeq, limit) => {
      whole.push(afterSeq ?? 0);
      return read.call(p.store, wid, afterSeq, limit);
    };
    try {
      const r = await p.app.inject({ url: `/v1/workflows/${id}/graph` });
      assert.equal(r.statusCode, 200, r.body);
      const g = r.json() as WorkflowGraphView;
      assert.deepEqual([g.status, g.definitionVersion, g.active], ['done', 2, ['counter', 'counter.stopped']]);
      assert.deepEqual(g.steps, expected);
    } finally {
      p.store.getWorkflowEvents = read;
    }
    assert.deepEqual(whole, [], 'the graph read no event whole (with its data)');
  } finally {
    await p.close();
  }
}

const counterDefinitions = (): HandlerRegistry => registerDemoHandlers(new HandlerRegistry()).workflow('g.counter', counter);

describe('the graph\'s steps are read without the events\' data', () => {
  test('on SQLite', async () => {
    const versions = counterDefinitions();
    await stepsWithoutData(await startSqliteTestApp({}, { workflows: versions }), versions);
  });

  test('on MariaDB', async () => {
    assert.ok(mysqlReady);
    const versions = counterDefinitions();
    await stepsWithoutData(await startTestApp({}, { workflows: versions }), versions);
  });
});
