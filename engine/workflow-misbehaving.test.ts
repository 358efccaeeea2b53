/**
 * A user's machine that misbehaves, on both SQL stores: a step that would
 * never end (an eventless transition or a raised event looping for ever) is
 * cut at MAX_MICROSTEPS_PER_STEP microsteps, instead of holding the process's
 * event loop for ever (every instance and tenant of the process waiting on
 * it, and the sweep of the next process stuck on it again). At the start it
 * is refused, writing nothing; on a signal or a child's end the instance
 * ends in error with the reason, recorded and replayable, and still reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, raise, setup } from 'xstate';
import { job, MAX_MICROSTEPS_PER_STEP } from '../machines/workflow.js';
import { STORE_BACKENDS, withMigratedStore } from '../tests/helpers/stores.js';
import { HandlerRegistry } from './handlers.js';
import type { JobStore, WorkflowStore } from './ports.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { WorkflowService } from './workflows.js';

/** `spin` is an eventless loop (a state re-entering itself, counting), `bounce` two states raising an event at each other. */
const looper = setup({
  types: { context: {} as { n: number }, input: {} as { at?: 'spin' } | null },
  actors: { work: job('looper.work', { maxAttempts: 1 }) },
}).createMachine({
  id: 'looper', context: { n: 0 },
  initial: 'open',
  states: {
    open: { on: { SPIN: 'spin', BOUNCE: 'ping', WORK: 'working', COUNT: 'counting' }, always: { guard: ({ event }) => (event as { input?: { at?: string } }).input?.at === 'spin', target: 'spin' } },
    spin: { always: { target: 'spin', reenter: true, actions: assign({ n: ({ context }) => context.n + 1 }) } },
    ping: { entry: raise({ type: 'PONG' }), on: { PONG: 'pong' } },
    pong: { entry: raise({ type: 'PING' }), on: { PING: 'ping' } },
    working: { invoke: { id: 'work', src: 'work', onDone: 'spin' } },
    // A loop that ends: well under the bound.
    counting: { always: [{ guard: ({ context }) => context.n >= 1000, target: 'counted' }, { target: 'counting', reenter: true, actions: assign({ n: ({ context }) => context.n + 1 }) }] },
    counted: {},
  },
});

const LOOPED = new RegExp(`more than ${MAX_MICROSTEPS_PER_STEP} microsteps`);

for (const backend of STORE_BACKENDS) {
  describe(`a machine whose step never ends (${backend.name})`, () => {
    const run = (fn: (store: JobStore & WorkflowStore, service: WorkflowService) => Promise<void>) => withMigratedStore(backend, async (s) => {
      const store = s as unknown as JobStore & WorkflowStore;
      await fn(store, new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('looper', looper) }));
    });

    it('at the start: refused as the input, writing nothing', () => run(async (store, service) => {
      const r = await service.start({ tenant: 'default', name: 'looper', input: { at: 'spin' } });
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.reason === 'invalid-input' && LOOPED.test(r.message ?? ''), JSON.stringify(r));
      assert.deepEqual((await store.listWorkflowPage({ tenant: 'default', limit: 10 }, 1 << 20)).workflows, []);
    }));

    for (const signal of ['SPIN', 'BOUNCE']) {
      it(`on a signal (${signal}): the instance ends in error with the reason, the step replays, the instance still reads`, () => run(async (store, service) => {
        const started = await service.start({ tenant: 'default', name: 'looper', input: null });
        assert.ok(started.ok);
        const r = await service.signal(started.workflow.id, 'default', { type: signal });
        assert.ok(r.ok, JSON.stringify(r));
        const stored = (await store.getWorkflow(started.workflow.id))!;
        assert.equal(stored.state.status, 'error');
        assert.match(String((stored.state.error as { message: string }).message), LOOPED);
        assert.equal((stored.state.context as { n: number }).n, 0, 'the context before the step is kept');
        assert.deepEqual(await service.verify(stored), { ok: true, events: 2 });
        assert.equal((await service.list({ tenant: 'default', limit: 10 }, 1 << 20)).workflows.length, 1);
      }));
    }

    it('on a child\'s end: the instance ends in error with the reason', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'looper', input: null });
      assert.ok(started.ok);
      const worked = await service.signal(started.workflow.id, 'default', { type: 'WORK' });
      assert.ok(worked.ok);
      const jobId = worked.workflow.state.children[0]!.jobId;
      const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
      await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
      await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 1 });
      assert.equal((await service.sweep(10)).applied, 1);
      const stored = (await store.getWorkflow(started.workflow.id))!;
      assert.equal(stored.state.status, 'error');
      assert.match(String((stored.state.error as { message: string }).message), LOOPED);
      assert.deepEqual(await service.verify(stored), { ok: true, events: 3 });
    }));

    it('a loop that ends within the bound runs as written', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'looper', input: null });
      assert.ok(started.ok);
      const r = await service.signal(started.workflow.id, 'default', { type: 'COUNT' });
      assert.ok(r.ok && r.workflow.state.status === 'active' && r.workflow.state.value === 'counted', JSON.stringify(r).slice(0, 500));
      assert.equal((r.workflow.state.context as { n: number }).n, 1000);
      assert.equal((await store.getWorkflow(started.workflow.id))!.version, 2);
    }));
  });
}
