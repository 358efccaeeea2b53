/**
 * The workflow service on the SQLite store: versions side by side, and a
 * migration moving a live instance at its next step (a MIGRATE in its
 * history, which `verify` replays across the move), or on demand. And the
 * driver's order of deliveries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { job } from '../machines/workflow.js';
import { HandlerRegistry } from './handlers.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { silentLogger } from './logger.js';
import { CHILD_ENDED_KIND, KIND_HEADER, type ChildEndedMessage } from './messages.js';
import type { EventLog, LogRecord } from './ports.js';
import { WorkflowDriver, WorkflowService } from './workflows.js';

const machine = (version: number) => setup({
  types: { context: {} as { n: number } },
  actors: { work: job(`w.v${version}`) },
}).createMachine({
  id: 'counter', initial: version === 1 ? 'counting' : 'tallying', context: { n: 0 },
  states: {
    [version === 1 ? 'counting' : 'tallying']: {
      invoke: { id: 'work', src: 'work' },
      on: { ADD: { actions: assign({ n: ({ context }) => context.n + 1 }) }, STOP: 'stopped' },
    },
    stopped: { type: 'final' },
  },
});

async function world(register: (r: HandlerRegistry) => void) {
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  const registry = new HandlerRegistry();
  register(registry);
  const service = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: registry });
  return { store, registry, service };
}

describe('workflow versions', () => {
  it('a new version without a migration leaves running instances on theirs; new ones start on it', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const old = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(old.ok);
    registry.workflow('counter', machine(2), { version: 2 });
    const fresh = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(fresh.ok && fresh.workflow.definitionVersion === 2 && fresh.workflow.state.value === 'tallying');
    const r = await service.signal(old.workflow.id, 'default', { type: 'ADD' });
    assert.ok(r.ok);
    assert.equal(r.workflow.definitionVersion, 1);
    assert.equal(r.workflow.state.value, 'counting');
    await store.close();
  });

  it('a version with a migration moves a live instance at its next step, keeping its job, and verify replays across the move', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const jobId = started.workflow.state.children[0]!.jobId;
    assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
    registry.workflow('counter', machine(2), {
      version: 2, migrate: { from: 1, state: ({ value, context }) => ({ value: value === 'counting' ? 'tallying' : value, context }) },
    });
    const r = await service.signal(started.workflow.id, 'default', { type: 'ADD' });
    assert.ok(r.ok);
    assert.equal(r.workflow.definitionVersion, 2);
    assert.equal(r.workflow.state.value, 'tallying');
    assert.deepEqual(r.workflow.state.context, { n: 2 });
    // The invocation kept its id: its running job is kept, none started, none cancelled.
    assert.deepEqual(r.workflow.state.children.map((c) => c.jobId), [jobId]);
    const events = await store.getWorkflowEvents(started.workflow.id);
    assert.deepEqual(events.map((e) => e.type), ['START', 'SIGNAL', 'MIGRATE', 'SIGNAL']);
    assert.deepEqual(await service.verify(r.workflow), { ok: true, events: 4 });
    const stored = (await store.getWorkflow(started.workflow.id))!;
    assert.equal(stored.definitionVersion, 2, 'the row says the version it runs now');
    await store.close();
  });

  it('migrate() moves on demand; an instance with nothing to move to is not-accepted', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const a = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(a.ok);
    assert.equal((await service.migrate(a.workflow.id, 'default')).ok, false);
    registry.workflow('counter', machine(2), { version: 2, migrate: { from: 1, state: ({ context }) => ({ value: 'tallying', context }) } });
    const moved = await service.migrate(a.workflow.id, 'default');
    assert.ok(moved.ok && moved.workflow.definitionVersion === 2);
    assert.equal((await service.migrate(a.workflow.id, 'default')).ok, false, 'already on the newest');
    assert.equal((await service.migrate(a.workflow.id, 'other-tenant')).ok, false);
    await store.close();
  });
});

describe('the workflow driver', () => {
  it('delivers one instance\'s ends in order, one at a time, and different instances\' at once', async () => {
    let handle: ((records: LogRecord[], info: { behind: number }) => Promise<void>) | null = null;
    const log = { consume: async (o: { handle: typeof handle }) => ((handle = o.handle), { stop: async () => undefined }) } as unknown as EventLog;
    const inFlight = new Map<string, number>();
    let most = 0;
    let overlapped = false;
    const order: string[] = [];
    const service = {
      deliver: async (m: ChildEndedMessage) => {
        const n = (inFlight.get(m.workflowId) ?? 0) + 1;
        inFlight.set(m.workflowId, n);
        most = Math.max(most, n);
        if ([...inFlight.values()].filter((v) => v > 0).length > 1) overlapped = true;
        await new Promise((r) => setTimeout(r, 5));
        order.push(`${m.workflowId}:${m.jobId}`);
        inFlight.set(m.workflowId, n - 1);
        return true;
      },
      fireDueTimers: async () => 0,
    } as unknown as WorkflowService;
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger: silentLogger }, { pollMs: 60_000, batchSize: 10 });
    await driver.start();
    const record = (workflowId: string, jobId: string): LogRecord => ({
      topic: 'ats.workflows', partition: 0, offset: '0', key: workflowId,
      value: JSON.stringify({ workflowId, invokeId: 'x', jobId, state: 'done', result: null, at: 1, tenant: 'default' }),
      headers: { [KIND_HEADER]: CHILD_ENDED_KIND, 'ats-schema': '1' },
    });
    await handle!([record('a', '1'), record('b', '1'), record('a', '2'), record('b', '2'), record('a', '3')], { behind: 0 });
    await driver.stop();
    assert.equal(most, 1, 'never two ends of one instance at once');
    assert.ok(overlapped, 'two instances were delivered to at once');
    assert.deepEqual(order.filter((o) => o.startsWith('a:')), ['a:1', 'a:2', 'a:3']);
    assert.deepEqual(order.filter((o) => o.startsWith('b:')), ['b:1', 'b:2']);
  });
});

describe('workflows the log or the registry failed', () => {
  it('sweep delivers a child\'s end the log lost (the embedded log after a restart); a second sweep changes nothing', async () => {
    const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const jobId = started.workflow.state.children[0]!.jobId;
    // The child ends; its child-ended message sits in the outbox and is never delivered (the log lost it).
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
    await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 7 });
    assert.deepEqual((await store.getWorkflow(started.workflow.id))!.state.children.map((c) => c.jobId), [jobId]);
    const first = await service.sweep(Date.now(), 10);
    assert.equal(first.applied, 1);
    const after = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(after.state.children, [], 'the instance heard of its child\'s end');
    assert.deepEqual((await store.getWorkflowEvents(after.id)).map((e) => e.type), ['START', 'CHILD']);
    assert.equal((await service.sweep(Date.now(), 10)).applied, 0);
    assert.deepEqual(await service.verify(after), { ok: true, events: 2 });
    await store.close();
  });

  it('an instance whose definition version is gone can still be cancelled, and its signals answer definition-missing', async () => {
    const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    // A registry without version 1, on the same database.
    const other = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('counter', machine(2), { version: 2 }) });
    const signal = await other.signal(started.workflow.id, 'default', { type: 'ADD' });
    assert.equal(signal.ok === false && signal.reason, 'definition-missing');
    const cancelled = await other.cancel(started.workflow.id, 'default', 'retired');
    assert.ok(cancelled.ok && cancelled.workflow.state.status === 'cancelled');
    assert.equal((await store.getJob(started.workflow.state.children[0]!.jobId))?.snapshot.value, 'cancelled');
    assert.deepEqual(await service.verify(cancelled.workflow), { ok: true, events: 2 }, 'a process that has version 1 replays it');
    await store.close();
  });
});
