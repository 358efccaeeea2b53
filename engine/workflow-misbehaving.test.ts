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
import { assign, enqueueActions, raise, setup } from 'xstate';
import { job, MAX_MICROSTEPS_PER_STEP, MAX_TIMERS_PER_INSTANCE } from '../machines/workflow.js';
import { STORE_BACKENDS, withMigratedStore } from '../tests/helpers/stores.js';
import { AtsError } from './errors.js';
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

/** Signals WORK to instance `id` (its machine invokes a child job on it), then runs that job to success with `result`: the child's end waits for the sweep. */
const endChild = async (store: JobStore & WorkflowStore, service: WorkflowService, id: string, result: unknown) => {
  const worked = await service.signal(id, 'default', { type: 'WORK' });
  assert.ok(worked.ok);
  const jobId = worked.workflow.state.children[0]!.jobId;
  const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
  await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
  await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result });
};

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
      await endChild(store, service, started.workflow.id, 1);
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

/** `{ a: { a: ... { leaf: 1 } } }`, `levels` objects deep, built without recursion. */
const nested = (levels: number): Record<string, unknown> => {
  let v: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
};

/** Values JSON would store as something else, or cannot store at all. */
const odd = (kind: string): unknown => {
  switch (kind) {
    case 'a Map': return new Map([['k', 1]]);
    case 'a Set': return new Set([1]);
    case 'NaN': return Number.NaN;
    case 'Infinity': return Number.POSITIVE_INFINITY;
    case 'a Date': return new Date(0);
    case 'a BigInt': return 10n;
    default: {
      const cycle: Record<string, unknown> = {};
      cycle.self = cycle;
      return cycle;
    }
  }
};

/** A context `levels` deep from the start, made so by DEEPEN, filled by GROW, given an odd value by ODD; a job input and an output too deep. */
const nester = setup({
  types: { context: {} as Record<string, unknown>, input: {} as { levels: number } | null },
  actors: { work: job('nester.work', { maxAttempts: 1 }) },
}).createMachine({
  id: 'nester', initial: 'open',
  context: ({ input }) => (input ? nested(input.levels) : { blob: '' }),
  states: {
    open: {
      on: {
        DEEPEN: { actions: assign(({ event }) => nested((event as unknown as { levels: number }).levels)) },
        GROW: { actions: assign({ blob: ({ context, event }) => String(context.blob ?? '') + 'x'.repeat((event as unknown as { bytes: number }).bytes) }) },
        ODD: { actions: assign({ odd: ({ event }) => odd((event as unknown as { kind: string }).kind) }) },
        SEND_DEEP: 'sending',
        WORK: 'working',
        END_DEEP: 'ended',
        // `n` delayed events, an hour away, each with an id of its own.
        TIMERS: {
          actions: enqueueActions(({ enqueue, event }) => {
            const { n, from } = event as unknown as { n: number; from: number };
            for (let i = from; i < from + n; i++) enqueue.raise({ type: 'TICK' }, { id: `tick.${i}`, delay: 3_600_000 });
          }),
        },
        TICK: {},
        // The machine's own code throwing: the instance ends in error, with what it threw.
        THROW_DEEP: { actions: assign(() => { throw nested(1_000); }) },
      },
    },
    sending: { invoke: { id: 'deep', src: 'work', input: () => nested(33) } },
    // The child's result (a handler's may nest 32 levels) kept one level down in the context: 33.
    working: { invoke: { id: 'work', src: 'work', onDone: { target: 'open', actions: assign({ got: ({ event }) => event.output }) } } },
    ended: { type: 'final' },
  },
  output: ({ context }) => (context.blob === undefined ? null : nested(40)),
});

const TOO_DEEP = (what: string) => new RegExp(`${what} nests deeper than 32 levels of arrays and objects`);

for (const backend of STORE_BACKENDS) {
  describe(`a machine whose step cannot be stored as it is (${backend.name})`, () => {
    const run = (fn: (store: JobStore & WorkflowStore, service: WorkflowService) => Promise<void>) => withMigratedStore(backend, async (s) => {
      const store = s as unknown as JobStore & WorkflowStore;
      await fn(store, new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('nester', nester) }));
    });
    /** A signal refused with `code` and a message matching `message`, the instance as it was (nothing written), still read and listed. */
    const refusedSignal = async (store: WorkflowStore, service: WorkflowService, id: string, event: { type: string }, code: string, message: RegExp) => {
      const before = (await store.getWorkflow(id))!;
      await assert.rejects(service.signal(id, 'default', event as never), (err: unknown) => {
        assert.ok(err instanceof AtsError, String(err));
        assert.equal(err.code, code, err.message);
        assert.match(err.message, message);
        return true;
      });
      const after = (await store.getWorkflow(id))!;
      assert.equal(after.version, before.version, 'nothing was written');
      assert.equal(after.state.status, 'active');
      assert.deepEqual(after.state.context, before.state.context);
      assert.equal((await service.list({ tenant: 'default', limit: 10 }, 1 << 20)).workflows.length, 1);
    };

    it('a context factory nesting deeper than 32 levels is refused at the start with one reason, however deep', () => run(async (store, service) => {
      assert.ok((await service.start({ tenant: 'default', name: 'nester', input: { levels: 32 } })).ok, '32 levels are kept');
      for (const levels of [33, 5_000, 100_000]) {
        const r = await service.start({ tenant: 'default', name: 'nester', input: { levels } });
        assert.ok(!r.ok && r.reason === 'invalid-input' && TOO_DEEP('the context').test(r.message ?? ''), `${levels}: ${JSON.stringify(r)}`);
      }
      assert.equal((await store.listWorkflowPage({ tenant: 'default', limit: 10 }, 1 << 20)).workflows.length, 1);
    }));

    it('a signal whose assign nests the context deeper than 32 levels is refused (400), writing nothing', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      const id = started.workflow.id;
      for (const levels of [33, 5_000]) await refusedSignal(store, service, id, { type: 'DEEPEN', levels } as never, 'ATS_ERR_VALIDATION', TOO_DEEP('the context'));
      const fits = await service.signal(id, 'default', { type: 'DEEPEN', levels: 32 });
      assert.ok(fits.ok && fits.workflow.state.status === 'active');
    }));

    it('a signal growing the context past 4 MiB is refused (413), writing nothing; the instance goes on', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      const id = started.workflow.id;
      for (let i = 0; i < 3; i++) assert.ok((await service.signal(id, 'default', { type: 'GROW', bytes: 1024 * 1024 })).ok);
      await refusedSignal(store, service, id, { type: 'GROW', bytes: 1024 * 1024 } as never, 'ATS_ERR_PAYLOAD_TOO_LARGE', /the context is \d+ bytes of JSON, more than the 4194304/);
      assert.ok((await service.signal(id, 'default', { type: 'GROW', bytes: 1000 })).ok, 'a smaller one still fits');
      const wf = (await store.getWorkflow(id))!;
      assert.deepEqual(await service.verify(wf), { ok: true, events: 5 });
    }));

    for (const kind of ['a Map', 'a Set', 'NaN', 'Infinity', 'a Date', 'a BigInt', 'a cycle']) {
      it(`a signal that puts ${kind} in the context is refused (400), writing nothing`, () => run(async (store, service) => {
        const started = await service.start({ tenant: 'default', name: 'nester', input: null });
        assert.ok(started.ok);
        await refusedSignal(store, service, started.workflow.id, { type: 'ODD', kind } as never, 'ATS_ERR_VALIDATION', /the context (holds|cannot be stored as JSON)/);
      }));
    }

    it(`a signal setting timers past ${MAX_TIMERS_PER_INSTANCE} on the instance is refused (400), writing nothing; a step setting none still goes`, () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      const id = started.workflow.id;
      const over = new RegExp(`^TIMERS is not taken: .*the instance would hold ${MAX_TIMERS_PER_INSTANCE + 1} timers, more than the ${MAX_TIMERS_PER_INSTANCE}`);
      await refusedSignal(store, service, id, { type: 'TIMERS', n: MAX_TIMERS_PER_INSTANCE + 1, from: 0 } as never, 'ATS_ERR_VALIDATION', over);
      const half = await service.signal(id, 'default', { type: 'TIMERS', n: MAX_TIMERS_PER_INSTANCE, from: 0 });
      assert.ok(half.ok && half.workflow.state.timers.length === MAX_TIMERS_PER_INSTANCE);
      await refusedSignal(store, service, id, { type: 'TIMERS', n: 1, from: MAX_TIMERS_PER_INSTANCE } as never, 'ATS_ERR_VALIDATION', over);
      const again = await service.signal(id, 'default', { type: 'TIMERS', n: 1, from: 0 });
      assert.ok(again.ok && again.workflow.state.timers.length === MAX_TIMERS_PER_INSTANCE, 'a timer set again in its own place');
      assert.ok((await service.signal(id, 'default', { type: 'GROW', bytes: 1 })).ok);
    }));

    it('a job input deeper than 32 levels is refused with the signal that would start it', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      await refusedSignal(store, service, started.workflow.id, { type: 'SEND_DEEP' }, 'ATS_ERR_VALIDATION', TOO_DEEP('the input of deep \\(nester.work\\)'));
    }));

    it('a final output deeper than 32 levels: the signal is refused', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      await refusedSignal(store, service, started.workflow.id, { type: 'END_DEEP' }, 'ATS_ERR_VALIDATION', TOO_DEEP('the output'));
    }));

    it('an assign throwing a value nested deeper than 32 levels ends the instance in error, the value kept as text', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      const r = await service.signal(started.workflow.id, 'default', { type: 'THROW_DEEP' });
      assert.ok(r.ok && r.workflow.state.status === 'error');
      const stored = (await store.getWorkflow(started.workflow.id))!;
      assert.equal((stored.state.error as { name: string }).name, 'Error');
      assert.match((stored.state.error as { message: string }).message, /^a thrown value too large to keep, or that JSON cannot store/);
      assert.deepEqual(await service.verify(stored), { ok: true, events: 2 });
    }));

    it('a child\'s result kept deeper than 32 levels in the context ends the instance in error with the reason, recorded and replayable', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'nester', input: null });
      assert.ok(started.ok);
      await endChild(store, service, started.workflow.id, nested(32));
      assert.equal((await service.sweep(10)).applied, 1);
      assert.equal((await service.sweep(10)).applied, 0, 'taken once: no delivery left to try again');
      const stored = (await store.getWorkflow(started.workflow.id))!;
      assert.equal(stored.state.status, 'error');
      assert.match(String((stored.state.error as { message: string }).message), TOO_DEEP('the context'));
      assert.deepEqual(await service.verify(stored), { ok: true, events: 3 });
    }));
  });
}
