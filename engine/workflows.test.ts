/**
 * The workflow service on the SQLite store: versions side by side, and a
 * migration moving a live instance at its next step (a MIGRATE in its
 * history, which `verify` replays across the move), or on demand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { job } from '../machines/workflow.js';
import { HandlerRegistry } from './handlers.js';
import { systemClock, ulidIds } from './system.js';
import { WorkflowService } from './workflows.js';

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
