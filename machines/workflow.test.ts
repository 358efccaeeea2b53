/**
 * The workflow core (workflow.ts): registration checks, and the effects each
 * pure step gives (jobs started and cancelled, timers set and dropped), on
 * sequential, parallel and delayed machines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, createMachine, enqueueActions, fromCallback, fromPromise, raise, sendParent, sendTo, setup, spawnChild, stopChild } from 'xstate';
import {
  acceptedEvents, applyWorkflowEvent, cancelWorkflow, checkStorable, defineWorkflow, deliverChild, job, MAX_STARTS_PER_STEP, MAX_TIMER_DUE_AT, MAX_TIMER_ID_CHARS,
  MAX_WORKFLOW_ERROR_JSON_CHARS, MAX_WORKFLOW_ERROR_MESSAGE_CHARS, MAX_WORKFLOW_STEP_BYTES, MAX_WORKFLOW_VALUE_BYTES, MAX_TIMERS_PER_INSTANCE,
  recordedJobIds, startWorkflow, stepWorkflow,
  sendToWorkflow, WorkflowDefinitionError, type PersistedWorkflow, type WorkflowDefinition, type WorkflowInputEvent, type WorkflowStep,
} from './workflow.js';
import { replayHistory } from './workflow-migration.js';
import { MAX_NESTING_DEPTH } from './json-integers.js';

const ids = (prefix: string) => (invokeId: string, i: number) => `${prefix}-${invokeId}-${i}`;

const order = setup({
  types: { context: {} as { orderId: string; charge: unknown; refunded: boolean }, input: {} as { orderId: string } },
  actors: {
    charge: job<unknown, { orderId: string }>('payment.charge', { maxAttempts: 5 }),
    reserve: fromPromise(async ({ input }: { input: { orderId: string } }) => ({ reserved: input.orderId })),
    ship: job<unknown, { orderId: string }>('shipping.book'),
    refund: job<unknown, { orderId: string }>('payment.refund'),
  },
}).createMachine({
  id: 'order',
  initial: 'charging',
  context: ({ input }) => ({ orderId: input.orderId, charge: null, refunded: false }),
  states: {
    charging: {
      invoke: {
        id: 'charge', src: 'charge', input: ({ context }) => ({ orderId: context.orderId }),
        onDone: { target: 'fulfilling', actions: assign({ charge: ({ event }) => event.output }) },
        onError: 'failed',
      },
    },
    fulfilling: {
      type: 'parallel',
      states: {
        stock: {
          initial: 'reserving',
          states: {
            reserving: { invoke: { id: 'reserve', src: 'reserve', input: ({ context }) => ({ orderId: context.orderId }), onDone: 'reserved' } },
            reserved: { type: 'final' },
          },
        },
        shipping: {
          initial: 'booking',
          states: {
            booking: { invoke: { id: 'ship', src: 'ship', input: ({ context }) => ({ orderId: context.orderId }), onDone: 'booked' } },
            booked: { type: 'final' },
          },
        },
      },
      onDone: 'confirming',
      on: { ABORT: 'refunding' },
    },
    confirming: { after: { 60_000: 'confirmed' }, on: { CONFIRM: 'confirmed' } },
    refunding: { invoke: { id: 'refund', src: 'refund', input: ({ context }) => ({ orderId: context.orderId }), onDone: 'failed' } },
    confirmed: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({ orderId: context.orderId, charge: context.charge }),
});

const def = defineWorkflow('order.fulfil', order, { version: 3 });

/** One recorded step, as replay takes it. */
type RecordedWorkflowEvent = Parameters<typeof replayHistory>[2][number];

/** Replays a history of one version (no MIGRATE): the state it must have stored. */
const replayWorkflow = (d: WorkflowDefinition, start: { input: unknown; at: number; jobIds: readonly string[] }, events: readonly RecordedWorkflowEvent[]) =>
  replayHistory(() => d, { version: d.version, ...start }, events).state;

const jobOf = (s: PersistedWorkflow, invokeId: string): string => s.children.find((c) => c.invokeId === invokeId)?.jobId ?? `none-${invokeId}`;

function ok(r: WorkflowStep): Extract<WorkflowStep, { ok: true }> {
  assert.ok(r.ok, 'the step was taken');
  return r;
}

describe('workflow definitions', () => {
  it('lists the actors as job types: job(type) as given, fromPromise as <workflow>.<actor>', () => {
    assert.deepEqual(def.actors.map((a) => [a.name, a.jobType, typeof a.run]).sort(), [
      ['charge', 'payment.charge', 'undefined'],
      ['refund', 'payment.refund', 'undefined'],
      ['reserve', 'order.fulfil.reserve', 'function'],
      ['ship', 'shipping.book', 'undefined'],
    ].sort());
    assert.equal(def.version, 3);
  });

  it('runs a fromPromise actor as its handler would', async () => {
    const reserve = def.actors.find((a) => a.name === 'reserve')!;
    assert.deepEqual(await reserve.run!({ input: { orderId: 'o1' }, signal: new AbortController().signal }), { reserved: 'o1' });
  });

  it('refuses a callback actor, naming the state', () => {
    const m = setup({ actors: { listen: fromCallback(() => () => undefined) } }).createMachine({
      initial: 'a', states: { a: { invoke: { id: 'l', src: 'listen' } } },
    });
    assert.throws(() => defineWorkflow('w', m), (err: Error) => err instanceof WorkflowDefinitionError && /state \(machine\)\.a/.test(err.message) && /callback/.test(err.message));
  });

  it('refuses an invoked machine and a bad name or version', () => {
    const child = setup({}).createMachine({ initial: 'x', states: { x: {} } });
    const m = setup({ actors: { child } }).createMachine({ initial: 'a', states: { a: { invoke: { src: 'child' } } } });
    assert.throws(() => defineWorkflow('w', m), WorkflowDefinitionError);
    assert.throws(() => defineWorkflow('bad name', order), /workflow name/);
    assert.throws(() => defineWorkflow('w', order, { version: 0 }), /version/);
  });
});

describe('workflow steps', () => {
  const at = 1_000_000;
  const begin = () => startWorkflow(def, { orderId: 'o1' }, at, ids('a'));

  it('starts the first invocation as a job, with its input', () => {
    const { next, effects } = begin();
    assert.equal(next.status, 'active');
    assert.equal(next.value, 'charging');
    assert.deepEqual(effects.start, [{ invokeId: 'charge', jobType: 'payment.charge', input: { orderId: 'o1' }, options: { maxAttempts: 5 }, jobId: 'a-charge-0' }]);
    assert.deepEqual(next.children, [{ invokeId: 'charge', jobId: 'a-charge-0', jobType: 'payment.charge' }]);
  });

  it('a done child moves on, and the parallel state fans out to two jobs', () => {
    const s0 = begin().next;
    const r = ok(deliverChild(def, s0, jobOf(s0, 'charge'), { state: 'done', result: { paid: 10 } }, at + 5, ids('b')));
    assert.deepEqual(r.next.value, { fulfilling: { stock: 'reserving', shipping: 'booking' } });
    assert.deepEqual((r.next.context as { charge: unknown }).charge, { paid: 10 });
    assert.deepEqual(r.effects.start.map((s) => s.jobType).sort(), ['order.fulfil.reserve', 'shipping.book']);
    assert.deepEqual(r.effects.cancel, [], 'the finished child is not cancelled');
    assert.deepEqual(r.next.children.map((c) => c.invokeId).sort(), ['reserve', 'ship']);
  });

  it('joins, sets the after timer, and ends with the output', () => {
    let s = begin().next;
    s = ok(deliverChild(def, s, jobOf(s, 'charge'), { state: 'done', result: 1 }, at, ids('b'))).next;
    s = ok(deliverChild(def, s, jobOf(s, 'reserve'), { state: 'done', result: 2 }, at, ids('c'))).next;
    const joined = ok(deliverChild(def, s, jobOf(s, 'ship'), { state: 'done', result: 3 }, at + 10, ids('d')));
    assert.equal(joined.next.value, 'confirming');
    assert.deepEqual(joined.effects.setTimers.map((t) => [t.dueAt, t.event.type]), [[at + 10 + 60_000, 'xstate.after.60000.order.confirming']]);
    const fired = ok(stepWorkflow(def, joined.next, joined.next.timers[0]!.event, at + 60_010, ids('e')));
    assert.equal(fired.next.status, 'done');
    assert.deepEqual(fired.next.output, { orderId: 'o1', charge: 1 });
    assert.deepEqual(fired.next.timers, []);
  });

  it('an outside event that leaves a state drops its timer', () => {
    let s = begin().next;
    for (const [id, n] of [['charge', 1], ['reserve', 2], ['ship', 3]] as const) s = ok(deliverChild(def, s, jobOf(s, id), { state: 'done', result: n }, at, ids(id))).next;
    const r = ok(stepWorkflow(def, s, { type: 'CONFIRM' }, at + 1, ids('x')));
    assert.equal(r.next.status, 'done');
    assert.deepEqual(r.effects.dropTimers, ['xstate.after.60000.order.confirming']);
  });

  it('leaving a state with live invocations cancels their jobs (and starts the compensation)', () => {
    let s = begin().next;
    s = ok(deliverChild(def, s, jobOf(s, 'charge'), { state: 'done', result: 1 }, at, ids('b'))).next;
    const r = ok(stepWorkflow(def, s, { type: 'ABORT' }, at, ids('c')));
    assert.equal(r.next.value, 'refunding');
    assert.deepEqual(r.effects.cancel.map((c) => c.jobId).sort(), ['b-reserve-0', 'b-ship-1'].sort());
    assert.deepEqual(r.effects.start.map((x) => x.jobType), ['payment.refund']);
  });

  it('an event no state takes changes nothing; a late child event of a left state neither', () => {
    const s0 = begin().next;
    assert.equal(stepWorkflow(def, s0, { type: 'CONFIRM' }, at, ids('b')).ok, false);
    assert.equal(deliverChild(def, s0, jobOf(s0, 'ship'), { state: 'done', result: 1 }, at, ids('b')).ok, false);
  });

  it('an event a transition takes is taken though it leaves the state as it was (a target it is in); a forbidden or guarded-off one is not', () => {
    const m = setup({ guards: { never: () => false } }).createMachine({
      initial: 'a',
      states: {
        a: {
          initial: 'x', states: { x: {}, y: {} },
          on: { SELF: 'a', CHILD: '.x', FORBIDDEN: {}, GUARDED: { target: '.y', guard: 'never' } },
          after: { 5000: 'b' },
        },
        b: {},
      },
    });
    const d = defineWorkflow('noop', m);
    const s0 = startWorkflow(d, null, at, ids('s')).next;
    assert.deepEqual(acceptedEvents(d, s0), ['CHILD', 'GUARDED', 'SELF']);
    for (const type of ['SELF', 'CHILD']) {
      const r = ok(stepWorkflow(d, s0, { type }, at + 1, ids('n')));
      assert.deepEqual(r.next, s0, `${type}: the state as it was, its timer too`);
      assert.deepEqual(r.effects.dropTimers, [], `${type}: its timer kept`);
      assert.deepEqual(replayWorkflow(d, { input: null, at, jobIds: [] }, [{ input: { type: 'SIGNAL', event: { type } }, at: at + 1, jobIds: [] }]), JSON.parse(JSON.stringify(r.next)));
    }
    assert.deepEqual(stepWorkflow(d, s0, { type: 'FORBIDDEN' }, at, ids('n')), { ok: false });
    assert.deepEqual(stepWorkflow(d, s0, { type: 'GUARDED' }, at, ids('n')), { ok: false });
  });

  it('an error child with onError takes it; one without fails the instance and cancels the rest', () => {
    const s0 = begin().next;
    const failed = ok(deliverChild(def, s0, jobOf(s0, 'charge'), { state: 'dead', error: { message: 'card declined' } }, at, ids('b')));
    assert.equal(failed.next.value, 'failed');
    assert.equal(failed.next.status, 'done');
    let s = ok(deliverChild(def, s0, jobOf(s0, 'charge'), { state: 'done', result: 1 }, at, ids('b'))).next;
    const r = ok(deliverChild(def, s, jobOf(s, 'reserve'), { state: 'dead', error: { message: 'no stock' } }, at, ids('c')));
    assert.equal(r.next.status, 'error');
    assert.deepEqual(r.next.error, { message: 'no stock' });
    assert.deepEqual(r.effects.cancel.map((c) => c.invokeId), ['ship']);
    s = r.next;
    assert.equal(stepWorkflow(def, s, { type: 'ABORT' }, at, ids('d')).ok, false, 'an ended instance takes nothing');
  });

  it('cancel ends an active instance, cancelling its children', () => {
    const s0 = begin().next;
    const r = ok(cancelWorkflow(s0));
    assert.equal(r.next.status, 'cancelled');
    assert.deepEqual(r.effects.cancel.map((c) => c.jobId), ['a-charge-0']);
    assert.equal(cancelWorkflow(r.next).ok, false);
  });

  it('survives JSON: a stored state steps as the live one does', () => {
    let s: PersistedWorkflow = JSON.parse(JSON.stringify(begin().next));
    s = JSON.parse(JSON.stringify(ok(deliverChild(def, s, jobOf(s, 'charge'), { state: 'done', result: 1 }, at, ids('b'))).next));
    assert.deepEqual(acceptedEvents(def, s), ['ABORT']);
    const r = ok(deliverChild(def, s, jobOf(s, 'ship'), { state: 'done', result: 2 }, at, ids('c')));
    assert.deepEqual(r.next.value, { fulfilling: { stock: 'reserving', shipping: 'booked' } });
  });
});

describe('workflow deliveries and replay', () => {
  const at = 2_000_000;
  const begin = () => startWorkflow(def, { orderId: 'o9' }, at, ids('a')).next;

  it('a duplicate or unknown delivery changes nothing (fenced by job id)', () => {
    const s0 = begin();
    const first = ok(deliverChild(def, s0, 'a-charge-0', { state: 'done', result: 1 }, at, ids('b')));
    assert.equal(deliverChild(def, first.next, 'a-charge-0', { state: 'done', result: 1 }, at, ids('c')).ok, false, 'the same end again');
    assert.equal(deliverChild(def, s0, 'someone-else', { state: 'done', result: 1 }, at, ids('c')).ok, false, 'a job that is not a child');
  });

  it('a replaced invocation fences off the old job: its late end changes nothing', () => {
    const loop = setup({ actors: { work: job('w.run') } }).createMachine({
      initial: 'working',
      states: { working: { invoke: { id: 'work', src: 'work', onDone: 'ended' }, on: { RESTART: { target: 'working', reenter: true } } }, ended: { type: 'final' } },
    });
    const d = defineWorkflow('loop', loop);
    const s0 = startWorkflow(d, undefined, at, ids('first')).next;
    const restarted = ok(stepWorkflow(d, s0, { type: 'RESTART' }, at, ids('second')));
    assert.deepEqual(restarted.effects.cancel.map((c) => c.jobId), ['first-work-0']);
    assert.deepEqual(restarted.next.children.map((c) => c.jobId), ['second-work-0']);
    assert.equal(deliverChild(d, restarted.next, 'first-work-0', { state: 'cancelled', error: {} }, at, ids('x')).ok, false);
    assert.equal(ok(deliverChild(d, restarted.next, 'second-work-0', { state: 'done', result: 1 }, at, ids('x'))).next.status, 'done');
  });

  it('a done child whose state has no onDone is dropped from the instance, which stays where it is', () => {
    const m = setup({ actors: { work: job('w.run') } }).createMachine({ initial: 'a', states: { a: { invoke: { id: 'work', src: 'work' }, on: { GO: 'b' } }, b: {} } });
    const d = defineWorkflow('quiet', m);
    const s0 = startWorkflow(d, undefined, at, ids('q')).next;
    const r = ok(deliverChild(d, s0, 'q-work-0', { state: 'done', result: 1 }, at, ids('x')));
    assert.equal(r.next.value, 'a');
    assert.deepEqual(r.next.children, []);
    assert.equal(ok(stepWorkflow(d, r.next, { type: 'GO' }, at, ids('y'))).effects.cancel.length, 0, 'nothing left to cancel');
  });

  it('a timer fires once; one the instance no longer holds changes nothing', () => {
    let s = begin();
    for (const id of ['charge', 'reserve', 'ship']) s = ok(deliverChild(def, s, jobOf(s, id), { state: 'done', result: id }, at, ids(id))).next;
    const timerId = s.timers[0]!.id;
    const fired = ok(applyWorkflowEvent(def, s, { type: 'TIMER', timerId }, at + 60_000, ids('t')));
    assert.equal(fired.next.status, 'done');
    assert.equal(applyWorkflowEvent(def, fired.next, { type: 'TIMER', timerId }, at + 60_001, ids('t')).ok, false);
    assert.equal(applyWorkflowEvent(def, s, { type: 'TIMER', timerId: 'nope' }, at, ids('t')).ok, false);
  });

  it('replaying the recorded steps gives the stored state; a changed history does not', () => {
    const jobIdsOf = (r: { next: PersistedWorkflow }, before: PersistedWorkflow) =>
      r.next.children.filter((c) => !before.children.some((b) => b.jobId === c.jobId)).map((c) => c.jobId);
    const first = startWorkflow(def, { orderId: 'o9' }, at, ids('s'));
    const recorded: RecordedWorkflowEvent[] = [];
    let s = first.next;
    const inputs: WorkflowInputEvent[] = [
      { type: 'CHILD', jobId: 's-charge-0', outcome: { state: 'done', result: { paid: 3 } } },
      { type: 'SIGNAL', event: { type: 'ABORT' } },
    ];
    for (const [i, input] of inputs.entries()) {
      const r = ok(applyWorkflowEvent(def, s, input, at + i, ids(`e${i}`)));
      recorded.push({ input, at: at + i, jobIds: jobIdsOf(r, s) });
      s = r.next;
    }
    const start = { input: { orderId: 'o9' }, at, jobIds: first.next.children.map((c) => c.jobId) };
    assert.deepEqual(replayWorkflow(def, start, recorded), s);
    assert.throws(() => replayWorkflow(def, start, [...recorded, { input: { type: 'SIGNAL', event: { type: 'CONFIRM' } }, at, jobIds: [] }]), /not taken/);
    assert.throws(() => recordedJobIds([])('x', 0), /recorded 0/);
  });
});

describe('workflow definitions, more', () => {
  it('an inline job(type) invocation is a job of that type', () => {
    const m = createMachine({ initial: 'a', states: { a: { invoke: { id: 'x', src: job('demo.echo'), onDone: 'b' } }, b: { type: 'final' } } });
    const d = defineWorkflow('inline', m);
    const { effects } = startWorkflow(d, undefined, 1, (id) => `j-${id}`);
    assert.deepEqual(effects.start.map((s) => [s.jobType, s.jobId]), [['demo.echo', 'j-x']]);
  });

  it('XState\'s own sendTo (inline or named in setup) sends to another instance durably; the machine as given is unchanged', () => {
    const m = setup({
      types: { context: {} as { peer: string } },
      actions: { tell: sendTo(({ context }) => context.peer, { type: 'TOLD' }) },
    }).createMachine({
      initial: 'a', context: { peer: 'PEER1' },
      states: { a: { on: { GO: { actions: [sendTo('OTHER1', ({ event }) => ({ type: 'X', from: event.type })), 'tell'] } } } },
    });
    const d = defineWorkflow('talker', m);
    const r = ok(stepWorkflow(d, startWorkflow(d, null, 1, ids('s')).next, { type: 'GO' }, 2, ids('t')));
    assert.deepEqual(r.effects.send, [{ to: 'OTHER1', event: { type: 'X', from: 'GO' } }, { to: 'PEER1', event: { type: 'TOLD' } }]);
    const original = m.root.states.a!.transitions.get('GO')![0]!.actions[0] as { type?: string };
    assert.equal(original.type, 'xstate.sendTo', 'the machine given keeps its own actions');
  });

  it('a sendTo in an initial transition\'s actions (the root\'s and a nested state\'s) is made durable too', () => {
    const m = setup({}).createMachine({
      id: 'm',
      initial: { target: 'a', actions: sendTo('T1', { type: 'ROOT' }) },
      states: {
        a: { on: { GO: 'c' } },
        c: { initial: { target: 'c1', actions: sendTo('T3', { type: 'NESTED' }) }, states: { c1: {} } },
      },
    });
    const d = defineWorkflow('initials', m);
    const first = startWorkflow(d, null, 1, ids('s'));
    assert.deepEqual(first.effects.send, [{ to: 'T1', event: { type: 'ROOT' } }]);
    const r = ok(stepWorkflow(d, first.next, { type: 'GO' }, 2, ids('t')));
    assert.equal(r.next.status, 'active');
    assert.deepEqual(r.effects.send, [{ to: 'T3', event: { type: 'NESTED' } }]);
    const clock = setup({}).createMachine({
      initial: { target: 'a', actions: raise({ type: 'X' }, { delay: () => Date.now() % 100 }) }, states: { a: {} },
    });
    assert.throws(() => defineWorkflow('clocked', clock), /a delayed raise reads the clock/);
  });

  it('refuses sendParent and a delayed sendTo, naming the state; a send to a child job or an actor reference ends the instance in error', () => {
    const refused = (actions: unknown, says: RegExp) => {
      const m = setup({}).createMachine({ initial: 'a', states: { a: { on: { GO: { actions: actions as never } } } } });
      assert.throws(() => defineWorkflow('talker', m), (err: Error) => err instanceof WorkflowDefinitionError && says.test(err.message), String(says));
    };
    refused(sendParent({ type: 'UP' } as never), /state \(machine\)\.a: sendParent .* a workflow instance has no parent actor/);
    refused(sendTo('OTHER1', { type: 'X' }, { delay: 1000 }), /\(machine\)\.a: a delayed sendTo cannot be made durable/);
    const poker = setup({ actors: { work: job('w') } }).createMachine({
      initial: 'a',
      states: {
        a: {
          invoke: { id: 'work', src: 'work' },
          on: { POKE: { actions: sendTo('work', { type: 'X' }) }, REF: { actions: sendTo(() => ({ send: () => undefined }) as never, { type: 'X' } as never) } },
        },
      },
    });
    const d = defineWorkflow('poker', poker);
    const s0 = startWorkflow(d, null, 1, ids('s')).next;
    for (const [type, says] of [['POKE', /a send to work, a child of the instance: a job takes no events/], ['REF', /sendToWorkflow needs an instance id/]] as const) {
      const r = ok(stepWorkflow(d, s0, { type }, 2, ids('t')));
      assert.equal(r.next.status, 'error');
      assert.match(String((r.next.error as { message: string }).message), says);
    }
  });

  it('an input the context factory refuses throws at the start', () => {
    const m = setup({ types: { input: {} as { n: number } | undefined } }).createMachine({
      initial: 'a',
      context: ({ input }) => {
        if (!input) throw new TypeError('input.n is required');
        return { n: input.n };
      },
      states: { a: {} },
    });
    const d = defineWorkflow('strict', m);
    assert.throws(() => startWorkflow(d, undefined, 1, () => 'j'), /input\.n is required/);
    assert.equal(startWorkflow(d, { n: 1 }, 1, () => 'j').next.status, 'active');
  });
});

describe('workflow fan-out (spawnChild)', () => {
  const fan = setup({
    types: { context: {} as { items: number[]; done: number; sum: number }, input: {} as { items: number[] } },
    actors: { square: job<number, { n: number }>('math.square') },
  }).createMachine({
    id: 'fan',
    initial: 'fanning',
    context: ({ input }) => ({ items: input.items, done: 0, sum: 0 }),
    states: {
      fanning: {
        entry: enqueueActions(({ context, enqueue }) => {
          for (const [i, n] of context.items.entries()) enqueue.spawnChild('square', { id: `item-${i}`, input: { n } });
        }),
        on: {
          'xstate.done.actor.*': {
            actions: assign({ done: ({ context }) => context.done + 1, sum: ({ context, event }) => context.sum + (event as unknown as { output: number }).output }),
          },
          DROP_FIRST: { actions: stopChild('item-0') },
          LEAVE: 'left',
        },
        always: { guard: ({ context }) => context.done === context.items.length, target: 'joined' },
      },
      left: {},
      joined: { type: 'final' },
    },
    output: ({ context }) => ({ sum: context.sum }),
  });
  const d = defineWorkflow('fan', fan);
  const at = 3_000_000;

  it('spawns a job per item, joins when every one is done, and ends with the output', () => {
    const first = startWorkflow(d, { items: [1, 2, 3] }, at, ids('f'));
    assert.deepEqual(first.effects.start.map((x) => [x.invokeId, x.jobType, x.input]), [
      ['item-0', 'math.square', { n: 1 }], ['item-1', 'math.square', { n: 2 }], ['item-2', 'math.square', { n: 3 }],
    ]);
    assert.ok(first.next.children.every((c) => c.spawned));
    let s: PersistedWorkflow = JSON.parse(JSON.stringify(first.next));
    for (const [i, n] of [[2, 9], [0, 1]] as const) s = ok(deliverChild(d, s, `f-item-${i}-${i}`, { state: 'done', result: n }, at, ids('x'))).next;
    assert.equal(s.value, 'fanning');
    assert.deepEqual(s.children.map((c) => c.invokeId), ['item-1']);
    const last = ok(deliverChild(d, s, 'f-item-1-1', { state: 'done', result: 4 }, at, ids('x')));
    assert.equal(last.next.status, 'done');
    assert.deepEqual(last.next.output, { sum: 14 });
  });

  it('a spawned child outlives a state change; stopChild cancels it; the end of the instance cancels the rest', () => {
    const s0 = startWorkflow(d, { items: [1, 2] }, at, ids('g')).next;
    const dropped = ok(stepWorkflow(d, s0, { type: 'DROP_FIRST' }, at, ids('x')));
    assert.deepEqual(dropped.effects.cancel.map((c) => c.invokeId), ['item-0']);
    const left = ok(stepWorkflow(d, dropped.next, { type: 'LEAVE' }, at, ids('x')));
    assert.deepEqual(left.effects.cancel, [], 'leaving the state that spawned it does not stop a spawned child');
    assert.deepEqual(left.next.children.map((c) => c.invokeId), ['item-1']);
    assert.deepEqual(ok(cancelWorkflow(left.next)).effects.cancel.map((c) => c.invokeId), ['item-1']);
  });
});

describe('workflow steps that cannot be taken as written', () => {
  const at = 5_000_000;

  it('a guard or assign that throws ends the instance in error, with the message, and replay ends the same', () => {
    const m = setup({ types: { context: {} as { n: number } } }).createMachine({
      initial: 'a', context: { n: 0 },
      states: {
        a: {
          on: {
            BAD_GUARD: { guard: () => { throw new RangeError('guard broke'); }, target: 'b' },
            BAD_ASSIGN: { actions: assign({ n: () => { throw new TypeError('assign broke'); } }) },
          },
        },
        b: {},
      },
    });
    const d = defineWorkflow('throwing', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    for (const [type, says] of [['BAD_GUARD', /guard broke/], ['BAD_ASSIGN', /assign broke/]] as const) {
      const r = ok(stepWorkflow(d, s0, { type }, at, ids('x')));
      assert.equal(r.next.status, 'error');
      assert.match(String((r.next.error as { message: string }).message), says);
      assert.deepEqual(replayWorkflow(d, { input: undefined, at, jobIds: [] }, [{ input: { type: 'SIGNAL', event: { type } }, at, jobIds: [] }]), JSON.parse(JSON.stringify(r.next)));
    }
  });

  it('a thrown value JSON cannot store, or too long to keep, ends the instance in error with one it can (a thrown value it can keeps)', () => {
    const m = setup({ types: { context: {} as { n: number } } }).createMachine({
      initial: 'a', context: { n: 0 },
      states: {
        a: {
          on: {
            BIGINT: { actions: assign({ n: () => { throw 10n; } }) },
            HUGE: { actions: assign({ n: () => { throw { blob: 'x'.repeat(MAX_WORKFLOW_ERROR_JSON_CHARS) }; } }) },
            LONG: { actions: assign({ n: () => { throw new Error('y'.repeat(MAX_WORKFLOW_ERROR_MESSAGE_CHARS * 2)); } }) },
            PLAIN: { actions: assign({ n: () => { throw { code: 'E42' }; } }) },
            UNREADABLE: { actions: assign({ n: () => { const e = new Error(); (e as { message: unknown }).message = Object.create(null); throw e; } }) },
          },
        },
      },
    });
    const d = defineWorkflow('thrown', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const errorOf = (type: string) => {
      const r = ok(stepWorkflow(d, s0, { type }, at, ids('x')));
      assert.equal(r.next.status, 'error', type);
      assert.ok(JSON.stringify(r.next).length < MAX_WORKFLOW_ERROR_JSON_CHARS + 1000, `${type}: the state JSON can write, within bounds`);
      return r.next.error as { name?: string; message?: string; code?: string };
    };
    assert.equal(errorOf('BIGINT').message, 'a thrown value too large to keep, or that JSON cannot store: 10');
    assert.match(errorOf('HUGE').message!, /^a thrown value too large to keep, or that JSON cannot store: \[object Object\]$/);
    assert.deepEqual(errorOf('UNREADABLE'), { name: 'Error', message: 'an Error whose message cannot be read as text' });
    assert.equal(errorOf('LONG').message!.length, MAX_WORKFLOW_ERROR_MESSAGE_CHARS);
    assert.deepEqual(errorOf('PLAIN'), { code: 'E42' });
  });

  it('a timer fires only once its time has come (one set again under the same id waits for its own)', () => {
    const m = setup({}).createMachine({ initial: 'a', states: { a: { after: { 1000: 'b' } }, b: { type: 'final' } } });
    const d = defineWorkflow('early', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const timerId = s0.timers[0]!.id;
    assert.equal(applyWorkflowEvent(d, s0, { type: 'TIMER', timerId }, at + 999, ids('x')).ok, false);
    assert.equal(ok(applyWorkflowEvent(d, s0, { type: 'TIMER', timerId }, at + 1000, ids('x'))).next.status, 'done');
  });

  it('a spawn without an id fails the instance; an id given as a function is the one XState resolved', () => {
    const spawner = (id: unknown) => setup({ types: { context: {} as { k: string } }, actors: { work: job('w.run') } }).createMachine({
      initial: 'a', context: { k: 'seven' },
      states: { a: { on: { GO: { actions: enqueueActions(({ enqueue }) => enqueue.spawnChild('work', id === undefined ? {} : { id: id as string }) ) } } } },
    });
    const none = defineWorkflow('anon', spawner(undefined));
    const r = ok(stepWorkflow(none, startWorkflow(none, undefined, at, ids('t')).next, { type: 'GO' }, at, ids('x')));
    assert.equal(r.next.status, 'error');
    assert.match(String((r.next.error as { message: string }).message), /spawnChild needs an id/);
    const byFn = defineWorkflow('fn', spawner(({ context }: { context: { k: string } }) => `item-${context.k}`));
    const s = ok(stepWorkflow(byFn, startWorkflow(byFn, undefined, at, ids('t')).next, { type: 'GO' }, at, ids('x')));
    assert.deepEqual(s.next.children.map((c) => c.invokeId), ['item-seven']);
  });

  it('a delayed raise without an id gets one of its own: two of them are two timers', () => {
    const m = setup({}).createMachine({
      type: 'parallel',
      states: {
        left: { entry: raise({ type: 'L' }, { delay: 500 }), on: { L: '.done' }, initial: 'wait', states: { wait: {}, done: {} } },
        right: { entry: raise({ type: 'R' }, { delay: 500 }), on: { R: '.done' }, initial: 'wait', states: { wait: {}, done: {} } },
      },
    });
    const d = defineWorkflow('raises', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    assert.equal(s0.timers.length, 2);
    assert.deepEqual(s0.timers.map((t) => t.event.type).sort(), ['L', 'R']);
    assert.equal(new Set(s0.timers.map((t) => t.id)).size, 2);
  });

  it('a spawnChild id written as an invocation\'s id is refused at registration, inline or named', () => {
    const inline = setup({ actors: { work: job('w.run') } }).createMachine({
      initial: 'a',
      states: { a: { invoke: { id: 'charge', src: 'work' }, on: { GO: 'b' } }, b: { entry: spawnChild('work', { id: 'charge' }) } },
    });
    assert.throws(() => defineWorkflow('clash', inline), /workflow clash, state .*b: spawnChild id "charge" is also an invocation's id/);
    const named = setup({ actors: { work: job('w.run') }, actions: { more: spawnChild('work', { id: 'charge' }) } }).createMachine({
      initial: 'a',
      states: { a: { invoke: { id: 'charge', src: 'work' }, on: { GO: { actions: 'more' } } } },
    });
    assert.throws(() => defineWorkflow('clash', named), /workflow clash, action more: spawnChild id "charge" is also an invocation's id/);
    const apart = setup({ actors: { work: job('w.run') } }).createMachine({
      initial: 'a',
      states: { a: { invoke: { id: 'charge', src: 'work' }, entry: spawnChild('work', { id: 'item-1' }) } },
    });
    assert.doesNotThrow(() => defineWorkflow('apart', apart));
  });

  it('a spawn registration cannot see (enqueueActions, an id a function gives) named as an invocation of a state the instance is not in fails the instance, not a job that never starts', () => {
    const publisher = (spawn: unknown, initial: 'idle' | 'running') => setup({ actors: { work: job('w.run') } }).createMachine({
      initial,
      states: {
        idle: { on: { GO: 'running' } },
        running: { entry: spawn as never, on: { 'xstate.done.actor.publish': 'publishing' } },
        publishing: { invoke: { id: 'publish', src: 'work' } },
      },
    });
    const queued = enqueueActions(({ enqueue }) => enqueue.spawnChild('work', { id: 'publish' }));
    const byFn = spawnChild('work', { id: () => 'publish' });
    for (const [what, spawn] of [['enqueueActions', queued], ['an id a function gives', byFn]] as const) {
      const d = defineWorkflow('publisher', publisher(spawn, 'idle'));
      const s0 = startWorkflow(d, undefined, at, ids('t')).next;
      const drawn: string[] = [];
      const r = ok(stepWorkflow(d, s0, { type: 'GO' }, at, (invokeId, i) => { drawn[i] = ids('x')(invokeId, i); return drawn[i]; }));
      assert.equal(r.next.status, 'error', what);
      assert.match(String((r.next.error as { message: string }).message), /workflow publisher: spawnChild id "publish" is the id of an invocation of a state the instance is not in/, what);
      assert.deepEqual(r.effects.start, [], `${what}: no job started`);
      assert.deepEqual(replayWorkflow(d, { input: undefined, at, jobIds: [] }, [{ input: { type: 'SIGNAL', event: { type: 'GO' } }, at, jobIds: drawn }]), JSON.parse(JSON.stringify(r.next)), `${what}: replay ends the same`);
      // As the first step: the start is refused (the API answers 400).
      assert.throws(() => startWorkflow(defineWorkflow('publisher', publisher(spawn, 'running')), undefined, at, ids('t')), (err: Error) => err instanceof WorkflowDefinitionError && /spawnChild id "publish"/.test(err.message), what);
    }
    // An invocation of a state a step enters and leaves (an eventless transition) is no such spawn: its job is not started, nothing fails.
    const passing = defineWorkflow('passing', setup({ actors: { work: job('w.run') } }).createMachine({
      initial: 'idle',
      states: { idle: { on: { GO: 'through' } }, through: { invoke: { id: 'publish', src: 'work' }, always: 'after' }, after: { on: { BACK: 'idle' } } },
    }));
    const passed = ok(stepWorkflow(passing, startWorkflow(passing, undefined, at, ids('t')).next, { type: 'GO' }, at, ids('x')));
    assert.equal(passed.next.status, 'active');
    assert.equal(passed.next.value, 'after');
    assert.deepEqual([passed.effects.start, passed.next.children], [[], []]);
  });

  it('a context or a job input JSON cannot store, or a step starting more than MAX_STARTS_PER_STEP jobs, fails the instance', () => {
    const m = setup({ types: { context: {} as { big: unknown; items: number } }, actors: { work: job('w.run') } }).createMachine({
      initial: 'a', context: { big: null, items: 0 },
      states: {
        a: {
          on: {
            BIGINT: { actions: assign({ big: () => 10n }) },
            BIG_INPUT: 'big',
            BIG_SPAWN: { actions: spawnChild('work', { id: 'b', input: () => ({ n: 10n }) }) },
            MANY: { actions: enqueueActions(({ enqueue }) => { for (let i = 0; i <= MAX_STARTS_PER_STEP; i++) enqueue.spawnChild('work', { id: `i${i}` }); }) },
          },
        },
        big: { invoke: { id: 'cyc', src: 'work', input: () => { const o: Record<string, unknown> = {}; o.self = o; return o; } } },
      },
    });
    const d = defineWorkflow('unstorable', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const big = ok(stepWorkflow(d, s0, { type: 'BIGINT' }, at, ids('x')));
    assert.equal(big.next.status, 'error');
    assert.match(String((big.next.error as { message: string }).message), /cannot be stored as JSON/);
    for (const [type, what] of [['BIG_INPUT', /the input of cyc \(w\.run\) cannot be stored as JSON/], ['BIG_SPAWN', /the input of b \(w\.run\) cannot be stored as JSON/]] as const) {
      const r = ok(stepWorkflow(d, s0, { type }, at, ids('x')));
      assert.equal(r.next.status, 'error', type);
      assert.match(String((r.next.error as { message: string }).message), what);
      assert.deepEqual(r.effects.start, [], `${type}: nothing of the refused step is started`);
    }
    const many = ok(stepWorkflow(d, s0, { type: 'MANY' }, at, ids('x')));
    assert.equal(many.next.status, 'error');
    assert.deepEqual(many.effects.start, [], 'nothing of the refused step is started');
  });

  it(`a step may start ${MAX_STARTS_PER_STEP} jobs and send as many messages; one more of either fails the instance`, () => {
    const m = setup({ types: { events: {} as { type: 'SPAWN' | 'SEND'; n: number } }, actors: { work: job('w.many') } }).createMachine({
      initial: 'a',
      states: {
        a: {
          on: {
            SPAWN: { actions: enqueueActions(({ enqueue, event }) => { for (let i = 0; i < event.n; i++) enqueue.spawnChild('work', { id: `i${i}` }); }) },
            SEND: { actions: enqueueActions(({ enqueue, event }) => { for (let i = 0; i < event.n; i++) enqueue(sendToWorkflow('01HXPEER', { type: 'PING', i })); }) },
          },
        },
      },
    });
    const d = defineWorkflow('many', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const spawned = ok(stepWorkflow(d, s0, { type: 'SPAWN', n: MAX_STARTS_PER_STEP }, at, ids('x')));
    assert.equal(spawned.next.status, 'active');
    assert.equal(spawned.effects.start.length, MAX_STARTS_PER_STEP);
    const sent = ok(stepWorkflow(d, s0, { type: 'SEND', n: MAX_STARTS_PER_STEP }, at, ids('x')));
    assert.equal(sent.next.status, 'active');
    assert.equal(sent.effects.send.length, MAX_STARTS_PER_STEP);
    for (const [type, what] of [['SPAWN', /starts 1001 jobs, more than 1000/], ['SEND', /sends 1001 messages, more than 1000/]] as const) {
      const r = ok(stepWorkflow(d, s0, { type, n: MAX_STARTS_PER_STEP + 1 }, at, ids('x')));
      assert.equal(r.next.status, 'error', type);
      assert.match(String((r.next.error as { message: string }).message), what);
      assert.deepEqual([r.effects.start, r.effects.send], [[], []], `${type}: nothing of the refused step is started or sent`);
    }
  });

  it('an output JSON cannot store, or a state, a job input or a message past MAX_WORKFLOW_VALUE_BYTES, or a step past MAX_WORKFLOW_STEP_BYTES, fails the instance, naming it', () => {
    const size = (bytes: number) => 'x'.repeat(bytes);
    const m = setup({
      types: { context: {} as { blob: string }, events: {} as { type: 'KEEP' | 'INPUT' | 'FAN' | 'SEND'; bytes: number } | { type: 'END' } },
      actors: { work: job('w.size') },
    }).createMachine({
      initial: 'a', context: { blob: '' },
      states: {
        a: {
          on: {
            KEEP: { actions: assign({ blob: ({ event }) => size(event.bytes) }) },
            INPUT: { actions: enqueueActions(({ enqueue, event }) => void enqueue.spawnChild('work', { id: 'one', input: size(event.bytes) })) },
            FAN: {
              actions: enqueueActions(({ enqueue, event }) => {
                for (let i = 0; i < 5; i++) enqueue.spawnChild('work', { id: `f${i}`, input: size(event.bytes) });
              }),
            },
            SEND: { actions: sendToWorkflow('01HXPEER', ({ event }) => ({ type: 'PING', blob: size(event.bytes) })) },
            END: 'end',
          },
        },
        end: { type: 'final' },
      },
      output: () => ({ n: 10n }),
    });
    const d = defineWorkflow('sizes', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const failed = (event: Parameters<typeof stepWorkflow>[2], message: RegExp) => {
      const r = ok(stepWorkflow(d, s0, event, at, ids('x')));
      assert.equal(r.next.status, 'error', event.type);
      assert.match(String((r.next.error as { message: string }).message), message);
      assert.deepEqual([r.effects.start, r.effects.send], [[], []], `${event.type}: nothing of the refused step is started or sent`);
    };
    failed({ type: 'END' }, /the output cannot be stored as JSON/);
    const over = MAX_WORKFLOW_VALUE_BYTES + 1;
    failed({ type: 'KEEP', bytes: over }, new RegExp(`the context is ${over + 11} bytes of JSON, more than the ${MAX_WORKFLOW_VALUE_BYTES}`));
    failed({ type: 'INPUT', bytes: over }, new RegExp(`the input of one \\(w\\.size\\) is ${over + 2} bytes of JSON`));
    failed({ type: 'SEND', bytes: over }, /a message to 01HXPEER is \d+ bytes of JSON/);
    const fifth = Math.ceil(MAX_WORKFLOW_STEP_BYTES / 5);
    failed({ type: 'FAN', bytes: fifth }, new RegExp(`one step writes \\d+ bytes of JSON \\(its state, 5 job inputs and 0 messages\\), more than the ${MAX_WORKFLOW_STEP_BYTES}`));
    // Within the bounds, the same steps are taken.
    const kept = ok(stepWorkflow(d, s0, { type: 'KEEP', bytes: MAX_WORKFLOW_VALUE_BYTES - 200 }, at, ids('x')));
    assert.equal(kept.next.status, 'active');
    const fan = ok(stepWorkflow(d, s0, { type: 'FAN', bytes: fifth - 200_000 }, at, ids('x')));
    assert.equal(fan.effects.start.length, 5);
  });
});

describe('workflow steps the stores could not keep', () => {
  const at = 5_000_000;

  it('an invocation started twice in one step (entered, left and entered again) starts one job, not an orphan beside the child', () => {
    const m = setup({ types: { context: {} as { n: number } }, actors: { work: job('w.run') } }).createMachine({
      initial: 'idle', context: { n: 0 },
      states: {
        idle: { on: { GO: 'a' } },
        a: { invoke: { id: 'w', src: 'work' }, always: { target: 'b', guard: ({ context }) => context.n === 0, actions: assign({ n: 1 }) } },
        b: { always: 'a' },
      },
    });
    const d = defineWorkflow('twice', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    const s1 = ok(stepWorkflow(d, s0, { type: 'GO' }, at, ids('x')));
    assert.equal(s1.effects.start.length, 1);
    assert.deepEqual(s1.effects.start.map((j) => j.jobId), s1.next.children.map((c) => c.jobId), 'every job started is a child of the instance');
    assert.deepEqual(s1.effects.cancel, []);
  });

  it('a spawnChild id given twice in one step starts one job: the last', () => {
    const m = setup({ actors: { work: job('w.run') } }).createMachine({
      initial: 'a',
      states: { a: { on: { GO: { actions: enqueueActions(({ enqueue }) => { for (const item of ['a', 'a', 'b']) enqueue.spawnChild('work', { id: item, input: { item } }); }) } } } },
    });
    const d = defineWorkflow('dupes', m);
    const s1 = ok(stepWorkflow(d, startWorkflow(d, undefined, at, ids('t')).next, { type: 'GO' }, at, ids('x')));
    assert.deepEqual(s1.effects.start.map((j) => j.invokeId), ['a', 'b']);
    assert.deepEqual(s1.effects.start.map((j) => j.jobId).sort(), s1.next.children.map((c) => c.jobId).sort());
    assert.deepEqual(s1.effects.cancel, []);
  });

  it('two delayed raises without an id falling due in the same millisecond are two timers, in two steps as in one', () => {
    const m = setup({}).createMachine({
      initial: 'a',
      states: {
        a: {
          on: {
            LONG: { actions: raise({ type: 'REMIND', note: 'rent' }, { delay: 1000 }) },
            SHORT: { actions: raise({ type: 'REMIND', note: 'bins' }, { delay: 500 }) },
          },
        },
      },
    });
    const d = defineWorkflow('reminders', m);
    const s1 = ok(stepWorkflow(d, startWorkflow(d, undefined, at, ids('t')).next, { type: 'LONG' }, at, ids('x'))).next;
    const s2 = ok(stepWorkflow(d, s1, { type: 'SHORT' }, at + 500, ids('y'))).next;
    assert.deepEqual(s2.timers.map((t) => [t.dueAt, (t.event as unknown as { note: string }).note]).sort(), [[at + 1000, 'bins'], [at + 1000, 'rent']]);
  });

  it('a delay that is not a finite number of milliseconds, or falls due before 1970 or after the year 9999, ends the instance in error', () => {
    const m = setup({ types: { context: {} as { ms: number } } }).createMachine({
      initial: 'a', context: { ms: 0 },
      states: { a: { on: { WAIT: { actions: raise({ type: 'LATER' }, { delay: ({ event }) => (event as unknown as { ms: number }).ms }) } } } },
    });
    const d = defineWorkflow('delays', m);
    const s0 = startWorkflow(d, undefined, at, ids('t')).next;
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, MAX_TIMER_DUE_AT - at + 1, 10_000 * 365 * 86_400_000, -at - 1, -1e20]) {
      const r = ok(stepWorkflow(d, s0, { type: 'WAIT', ms }, at, ids('x')));
      assert.equal(r.next.status, 'error', String(ms));
      assert.match(String((r.next.error as { message: string }).message), /a delay is a finite number of milliseconds/);
      assert.deepEqual(r.next.timers, []);
    }
    // A fraction of a millisecond is kept as given (the stores round the due time up as they keep it).
    const frac = ok(stepWorkflow(d, s0, { type: 'WAIT', ms: 2.5 }, at, ids('x')));
    assert.deepEqual([frac.next.status, frac.next.timers.map((t) => t.dueAt)], ['active', [at + 2.5]]);
  });

  it('a job type longer than a submit\'s is refused at registration: job(type), and a fromPromise actor\'s <workflow>.<actor>', () => {
    assert.throws(() => job('x'.repeat(201)), /a job type is at most 200 characters/);
    assert.doesNotThrow(() => job('x'.repeat(200)));
    const m = setup({ actors: { [`r${'x'.repeat(150)}`]: fromPromise(async () => 1) } }).createMachine({ initial: 'a', states: { a: {} } });
    assert.throws(() => defineWorkflow(`w${'x'.repeat(60)}`, m), /its jobs' type .*\(<workflow>\.<actor>\): a job type is at most 200/);
  });

  it('a job type a submit refuses (outside A-Z a-z 0-9 . _ : -) is refused at registration: job(type), and a fromPromise actor\'s <workflow>.<actor>', () => {
    for (const type of ['send email', '(other)', 'mail/send', 'é']) {
      assert.throws(() => job(type), WorkflowDefinitionError, type);
    }
    assert.doesNotThrow(() => job('mail.send:v2_x-y'));
    const m = setup({ actors: { 'send email': fromPromise(async () => 1) } }).createMachine({ initial: 'a', states: { a: {} } });
    assert.throws(() => defineWorkflow('w', m), /its jobs' type "w\.send email" \(<workflow>\.<actor>\): a job type is 1 to 200 of A-Z a-z 0-9/);
  });

  it(`an after timer whose id would be longer than ${MAX_TIMER_ID_CHARS} characters is refused at registration, naming the state`, () => {
    const deep = 's'.repeat(MAX_TIMER_ID_CHARS);
    const m = setup({}).createMachine({ id: 'w', initial: deep, states: { [deep]: { after: { 1000: 'done' } }, done: { type: 'final' } } });
    assert.throws(() => defineWorkflow('deep', m), /its after timer's id is \d+ characters, more than the 512 a store keeps/);
  });
});

describe('workflow messages and delays', () => {
  const at = 7_000_000;
  const sender = setup({ types: { context: {} as { peer: string }, events: {} as { type: 'TELL'; n: number } | { type: 'TELL_BAD'; to: unknown } } }).createMachine({
    initial: 'a', context: ({ input }) => ({ peer: (input as { peer: string }).peer }),
    entry: sendToWorkflow(({ context }) => context.peer, { type: 'HELLO' }),
    states: {
      a: {
        on: {
          TELL: { actions: [sendToWorkflow(({ context }) => context.peer, ({ event }) => ({ type: 'N', n: event.n })), sendToWorkflow('OTHER1', { type: 'N', n: 0 })] },
          TELL_BAD: { actions: sendToWorkflow(({ event }) => event.to as string, { type: 'N' }) },
        },
      },
    },
  });
  const d = defineWorkflow('sender', sender);

  it('sendToWorkflow is a send effect, in order, from the first step on, and leaves the state as it was', () => {
    const first = startWorkflow(d, { peer: 'PEER1' }, at, ids('s'));
    assert.deepEqual(first.effects.send, [{ to: 'PEER1', event: { type: 'HELLO' } }]);
    const r = ok(stepWorkflow(d, first.next, { type: 'TELL', n: 3 }, at, ids('t')));
    assert.deepEqual(r.effects.send, [{ to: 'PEER1', event: { type: 'N', n: 3 } }, { to: 'OTHER1', event: { type: 'N', n: 0 } }]);
    assert.deepEqual([r.next.value, r.next.context], [first.next.value, first.next.context]);
  });

  it('a send to something that is not an instance id, or of an XState event, ends the instance in error', () => {
    const s0 = startWorkflow(d, { peer: 'PEER1' }, at, ids('s')).next;
    for (const to of [undefined, '', 'has space', 42]) {
      const r = ok(stepWorkflow(d, s0, { type: 'TELL_BAD', to }, at, ids('x')));
      assert.equal(r.next.status, 'error');
      assert.match(String((r.next.error as { message: string }).message), /sendToWorkflow needs an instance id/);
    }
    const xstateEvent = setup({}).createMachine({ initial: 'a', states: { a: { on: { GO: { actions: sendToWorkflow('P1', { type: 'xstate.done.actor.x' }) } } } } });
    const dx = defineWorkflow('xsend', xstateEvent);
    const r = ok(stepWorkflow(dx, startWorkflow(dx, null, at, ids('s')).next, { type: 'GO' }, at, ids('x')));
    assert.match(String((r.next.error as { message: string }).message), /not XState's own/);
  });

  it('a MESSAGE is taken as the event it carries, and replays the same', () => {
    const receiver = setup({ types: { context: {} as { n: number } } }).createMachine({
      initial: 'a', context: { n: 0 }, states: { a: { on: { N: { actions: assign({ n: ({ event }) => (event as unknown as { n: number }).n }) } } } },
    });
    const dr = defineWorkflow('receiver', receiver);
    const s0 = startWorkflow(dr, null, at, ids('r')).next;
    const input: WorkflowInputEvent = { type: 'MESSAGE', from: 'SENDER1', messageId: 'SENDER1:2:0', event: { type: 'N', n: 9 } };
    const r = ok(applyWorkflowEvent(dr, s0, input, at, ids('m')));
    assert.deepEqual(r.next.context, { n: 9 });
    assert.deepEqual(replayWorkflow(dr, { input: null, at, jobIds: [] }, [{ input, at, jobIds: [] }]), JSON.parse(JSON.stringify(r.next)));
    assert.deepEqual(applyWorkflowEvent(dr, s0, { ...input, event: { type: 'UNKNOWN' } }, at, ids('m')), { ok: false });
  });

  it('refuses a delay that reads the clock or draws a random number, naming the state; one from the context is kept', () => {
    const clockDelay = setup({ delays: { untilNoon: () => 43_200_000 - (Date.now() % 86_400_000) } }).createMachine({
      initial: 'waiting', states: { waiting: { after: { untilNoon: 'done' } }, done: { type: 'final' } },
    });
    assert.throws(
      () => defineWorkflow('noon', clockDelay),
      (err: Error) => err instanceof WorkflowDefinitionError && /state \(machine\)\.waiting: after delay untilNoon reads the clock or draws a random number/.test(err.message),
    );
    const randomRaise = setup({}).createMachine({
      initial: 'a', states: { a: { entry: raise({ type: 'GO' }, { delay: () => Math.random() * 1000 }), on: { GO: 'b' } }, b: {} },
    });
    assert.throws(() => defineWorkflow('jitter', randomRaise), (err: Error) => err instanceof WorkflowDefinitionError && /\(machine\)\.a: a delayed raise reads the clock/.test(err.message));
    const dateDelay = setup({ delays: { later: () => new Date().getTime() % 1000 } }).createMachine({
      initial: 'a', states: { a: { on: { GO: { actions: raise({ type: 'X' }, { delay: 'later' }) } } } },
    });
    assert.throws(() => defineWorkflow('dated', dateDelay), /a raise delayed by later reads the clock/);
    const fromContext = setup({ types: { context: {} as { waitMs: number } }, delays: { wait: ({ context }) => context.waitMs } }).createMachine({
      initial: 'waiting', context: { waitMs: 500 }, states: { waiting: { after: { wait: 'done' } }, done: { type: 'final' } },
    });
    const df = defineWorkflow('patient', fromContext);
    assert.deepEqual(startWorkflow(df, null, at, ids('p')).next.timers.map((t) => t.dueAt), [at + 500]);
  });
});

describe('workflow job options', () => {
  /** job(type, options) as a plain-JS module calls it: the options unchecked by the type system. */
  const jobWith = (options: unknown) => job('w.run', options as never);
  const refused = (says: RegExp) => (err: Error) => err instanceof WorkflowDefinitionError && says.test(err.message);
  /** A workflow whose one fromPromise actor runs under `options` (defineWorkflow's `jobs`). */
  const promised = (options: unknown) => defineWorkflow('w', setup({ actors: { work: fromPromise(async () => 1) } }).createMachine({
    initial: 'a', states: { a: { invoke: { id: 'work', src: 'work' } } },
  }), { jobs: new Map([['work', options as never]]) });

  it('job(type, options) refuses attempts no job could make, naming the option and its bounds', () => {
    for (const maxAttempts of [0, -1, 1.5, 101, Number.NaN, '3']) {
      assert.throws(() => jobWith({ maxAttempts }), refused(/^job\(w\.run\): maxAttempts must be an integer from 1 to 100, got /), String(maxAttempts));
    }
  });

  it('job(type, options) refuses a backoff missing a field, or out of its bounds', () => {
    const cases: [unknown, RegExp][] = [
      [{ kind: 'fixed' }, /backoff\.delayMs must be an integer from 0 to 604800000, got undefined/],
      [{ kind: 'exponential', maxMs: 5000, jitter: 'full' }, /backoff\.baseMs must be an integer from 1 to 86400000, got undefined/],
      [{ kind: 'exponential', baseMs: 1000, jitter: 'none' }, /backoff\.maxMs must be an integer from 1 to 604800000, got undefined/],
      [{ kind: 'exponential', baseMs: 5000, maxMs: 1000 }, /backoff\.maxMs must be at least backoff\.baseMs \(5000\), got 1000/],
      [{ kind: 'exponential', baseMs: 1000, maxMs: 5000, jitter: 'some' }, /backoff\.jitter must be 'full', 'equal', 'none' or left out/],
      [{ kind: 'linear', delayMs: 10 }, /backoff\.kind must be 'exponential' or 'fixed'/],
      [{ kind: 'fixed', delayMs: 10, baseMs: 1 }, /backoff "baseMs" is not a field of a fixed backoff/],
    ];
    for (const [backoff, says] of cases) assert.throws(() => jobWith({ backoff }), refused(says), JSON.stringify(backoff));
  });

  it('job(type, options) refuses a timeout, priority or queue outside a submit\'s bounds, and an option that is not one', () => {
    assert.throws(() => jobWith({ timeoutMs: 0 }), refused(/timeoutMs must be an integer from 1 to 86400000, got 0/));
    assert.throws(() => jobWith({ priority: 1001 }), refused(/priority must be an integer from -1000 to 1000, got 1001/));
    assert.throws(() => jobWith({ queue: 'two words' }), refused(/queue must be 1 to 200 of A-Z a-z 0-9 \. _ : -, got "two words"/));
    assert.throws(() => jobWith({ maxAttempt: 3 }), refused(/"maxAttempt" is not a job option/));
    assert.throws(() => jobWith(null), refused(/the options must be an object/));
  });

  it('defineWorkflow refuses the same in a fromPromise actor\'s jobs options, naming the actor', () => {
    assert.throws(() => promised({ maxAttempts: 0 }), refused(/^workflow w, jobs work: maxAttempts must be an integer from 1 to 100, got 0$/));
    assert.throws(() => promised({ backoff: { kind: 'fixed' } }), refused(/^workflow w, jobs work: backoff\.delayMs must be/));
  });

  it('accepts options at their bounds, and a job starts with them; an exponential backoff without jitter gets full, as a submit does', () => {
    const edges = { queue: 'q.a:b-c_d', maxAttempts: 100, timeoutMs: 86_400_000, priority: -1000, backoff: { kind: 'fixed', delayMs: 0 } } as const;
    const noJitter = { maxAttempts: 1, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 5000 } };
    const m = setup({ actors: { a: job('w.a', edges), b: jobWith(noJitter) } }).createMachine({
      type: 'parallel', states: { x: { invoke: { id: 'a', src: 'a' } }, y: { invoke: { id: 'b', src: 'b' } } },
    });
    const started = startWorkflow(defineWorkflow('w', m), null, 1, ids('s')).effects.start;
    assert.deepEqual(started.map((s) => s.options), [edges, { maxAttempts: 1, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 5000, jitter: 'full' } }]);
    assert.deepEqual(promised({ maxAttempts: 2 }).actors[0]!.options, { maxAttempts: 2 });
  });

  it('keeps the options as checked: changing the object given afterwards does not reach the jobs', () => {
    const given = { maxAttempts: 3, backoff: { kind: 'fixed' as const, delayMs: 10 } };
    const m = setup({ actors: { a: job('w.a', given) } }).createMachine({ initial: 'x', states: { x: { invoke: { id: 'a', src: 'a' } } } });
    given.maxAttempts = 0;
    given.backoff.delayMs = Number.NaN;
    assert.deepEqual(startWorkflow(defineWorkflow('w', m), null, 1, ids('s')).effects.start[0]!.options, { maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 10 } });
  });
});

describe('checkStorable: what an instance may hold', () => {
  const plain = defineWorkflow('w', createMachine({ context: { n: 0 }, initial: 'a', states: { a: {} } }));
  const base = startWorkflow(plain, null, 1, ids('s')).next;
  const timers = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, dueAt: 10, event: { type: 'T' } }));
  const effects = (setTimers: number) => ({ start: [], cancel: [], setTimers: timers(setTimers), dropTimers: [], send: [] });

  it(`a step setting a timer past ${MAX_TIMERS_PER_INSTANCE} is refused, unless the instance held as many before (an earlier release's)`, () => {
    const over = { ...base, timers: timers(MAX_TIMERS_PER_INSTANCE + 1) };
    assert.throws(() => checkStorable(plain, over, effects(1), MAX_TIMERS_PER_INSTANCE), /would hold 1001 timers, more than the 1000/);
    assert.doesNotThrow(() => checkStorable(plain, over, effects(0), MAX_TIMERS_PER_INSTANCE), 'a step setting none');
    // Held 1,001 before: a timer set again in a place it freed keeps the count, and is no reason to refuse the step.
    assert.doesNotThrow(() => checkStorable(plain, over, effects(1), MAX_TIMERS_PER_INSTANCE + 1));
    assert.throws(() => checkStorable(plain, { ...base, timers: timers(MAX_TIMERS_PER_INSTANCE + 2) }, effects(1), MAX_TIMERS_PER_INSTANCE + 1), /would hold 1002 timers/);
  });

  it('an invalid Date (JSON writes null) is refused as a Date is; a boxed number, string or boolean takes no level', () => {
    assert.throws(() => checkStorable(plain, { ...base, context: { at: new Date(Number.NaN) } }, effects(0)), /the context holds a Date/);
    let boxed: unknown = [new Number(5), new String('x'), new Boolean(true)];
    for (let i = 1; i < MAX_NESTING_DEPTH; i++) boxed = [boxed];
    assert.doesNotThrow(() => checkStorable(plain, { ...base, context: { boxed: (boxed as unknown[])[0] } }, effects(0)));
    assert.throws(() => checkStorable(plain, { ...base, context: { boxed: [boxed] } }, effects(0)), /nests deeper than 32 levels/);
  });
});
