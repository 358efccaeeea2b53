/**
 * Workflows under faults a user meets. An instance whose definition was
 * changed under the same version so that its stored state is no longer one of
 * the machine's (a state, an invocation or an `after` delay renamed in a
 * deploy) is not stepped,
 * as one whose version this process lacks: its signals answer
 * definition-missing, its children's ends and timers wait, nothing is written
 * and its children keep running, until the old definition is registered again
 * or a migration moves it. An invocation added to the state an instance is
 * in is not started for it (verify says so), until a migration moves it. A child job redriven after its instance took its
 * end, or after its instance was cancelled, changes nothing when it ends
 * again. A child job a user cancels ends its invocation as cancelled (its
 * onError), from the log's message and from the sweep. Two processes firing
 * the same due timers at once: each fires once, and each process counts only
 * what it fired.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { job } from '../machines/workflow.js';
import { AtsError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import { mathRandom, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import type { Clock } from './ports.js';
import { WorkflowService } from './workflows.js';
import { intercept } from '../tests/helpers/intercept.js';
import { waitingWorkflows } from '../tests/helpers/waiting-workflows.js';

/** How a redeploy changed the saga under the same version. */
type Change = 'none' | 'a state renamed' | 'an invocation renamed' | 'a delay changed';

/** A saga: work, undone when it fails for good; `change` says what a redeploy changed in it. */
const saga = (change: Change = 'none') => {
  const working = change === 'a state renamed' ? 'doing' : 'working';
  return setup({
    types: { context: {} as { n: number } },
    actors: { work: job('saga.work', { maxAttempts: 1 }), undo: job('saga.undo') },
  }).createMachine({
    id: 'saga', initial: working, context: { n: 0 },
    states: {
      [working]: {
        invoke: { id: change === 'an invocation renamed' ? 'labour' : 'work', src: 'work', onDone: 'ok', onError: 'undoing' },
        on: { PING: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
        after: { [change === 'a delay changed' ? 120_000 : 60_000]: 'undoing' },
      },
      undoing: { invoke: { id: 'undo', src: 'undo', onDone: 'undone' } },
      ok: { type: 'final' },
      undone: { type: 'final' },
    },
  });
};

async function world() {
  let t = 1_800_000_000_000;
  const clock: Clock = { now: () => t, sleep: async () => undefined };
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  const service = (registry: HandlerRegistry) => new WorkflowService({ store, clock, ids: ulidIds(), definitions: registry });
  const old = service(new HandlerRegistry().workflow('saga', saga(), { version: 1 }));
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds() });
  const started = await old.start({ tenant: 'default', name: 'saga', input: null });
  assert.ok(started.ok);
  const id = started.workflow.id;
  const jobId = started.workflow.state.children[0]!.jobId;
  const succeed = async () => {
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: t + 60_000, workerId: 'w' });
    await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 7 });
  };
  return { store, old, service, transitions, id, jobId, succeed, tick: (ms: number) => (t += ms) };
}

for (const change of ['a state renamed', 'an invocation renamed', 'a delay changed'] as const) describe(`a definition changed under the same version: ${change}`, () => {
  it('does not step the instance: signals, children\'s ends and timers wait, nothing is written, its child keeps running', async () => {
    const { store, service, id, jobId, succeed, tick } = await world();
    const redeployed = service(new HandlerRegistry().workflow('saga', saga(change), { version: 1 }));
    const signal = await redeployed.signal(id, 'default', { type: 'PING' });
    assert.equal(signal.ok === false && signal.reason, 'definition-missing');
    let wf = (await store.getWorkflow(id))!;
    assert.equal(wf.state.status, 'active');
    assert.equal(wf.version, 1, 'nothing was written');
    assert.notEqual((await store.getJob(jobId))?.snapshot.value, 'cancelled', 'its child keeps running');
    assert.deepEqual(redeployed.accepts(wf), [], 'it takes no event');

    tick(61_000);
    assert.equal(await redeployed.fireDueTimers(10), 0, 'its timer waits');
    await succeed();
    assert.equal((await redeployed.sweep(10)).applied, 0, 'its child\'s end waits');
    wf = (await store.getWorkflow(id))!;
    assert.equal(wf.version, 1);
    assert.equal(wf.state.status, 'active');
    assert.deepEqual(wf.state.children.map((c) => c.jobId), [jobId]);
    assert.equal(wf.state.timers.length, 1);
    await store.close();
  });

  it('the old definition registered again takes the instance on where it was', async () => {
    const { store, old, service, id, succeed } = await world();
    const redeployed = service(new HandlerRegistry().workflow('saga', saga(change), { version: 1 }));
    assert.equal((await redeployed.signal(id, 'default', { type: 'PING' })).ok, false);
    await succeed();
    assert.equal((await redeployed.sweep(10)).applied, 0);
    assert.equal((await old.sweep(10)).applied, 1);
    const wf = (await store.getWorkflow(id))!;
    assert.equal(wf.state.status, 'done');
    assert.equal(wf.state.value, 'ok');
    assert.deepEqual((await store.getWorkflowEvents(id)).map((e) => e.type), ['START', 'CHILD']);
    assert.deepEqual(await old.verify(wf), { ok: true, events: 2 });
    await store.close();
  });

  it('a migration from that version moves it (the migration needs only the new definition)', async () => {
    const { store, service, id, jobId } = await world();
    const registry = new HandlerRegistry()
      .workflow('saga', saga(change), { version: 1 })
      .workflow('saga', saga('a state renamed'), { version: 2, migrate: { from: 1, state: ({ value, context }) => ({ value: value === 'working' ? 'doing' : value, context }) } });
    const migrated = service(registry);
    const r = await migrated.signal(id, 'default', { type: 'PING' });
    assert.ok(r.ok);
    assert.equal(r.workflow.definitionVersion, 2);
    assert.equal(r.workflow.state.value, 'doing');
    assert.deepEqual(r.workflow.state.context, { n: 1 });
    assert.deepEqual(r.workflow.state.children.map((c) => c.jobId), [jobId], 'the running job is kept');
    assert.deepEqual((await store.getWorkflowEvents(id)).map((e) => e.type), ['START', 'MIGRATE', 'SIGNAL']);
    await store.close();
  });

  it('a cancel still ends it, cancelling its child', async () => {
    const { store, service, id, jobId } = await world();
    const redeployed = service(new HandlerRegistry().workflow('saga', saga(change), { version: 1 }));
    const r = await redeployed.cancel(id, 'default', 'retired');
    assert.ok(r.ok && r.workflow.state.status === 'cancelled');
    assert.equal((await store.getJob(jobId))?.snapshot.value, 'cancelled');
    await store.close();
  });
});

describe('an invocation added under the same version to the state an instance is in', () => {
  /** The saga with a second invocation in `working`, which its running instances entered without. */
  const watched = () => setup({
    actors: { work: job('saga.work', { maxAttempts: 1 }), undo: job('saga.undo'), watch: job('saga.watch') },
  }).createMachine({
    id: 'saga', initial: 'working', context: { n: 0 },
    states: {
      working: {
        invoke: [{ id: 'work', src: 'work', onDone: 'ok', onError: 'undoing' }, { id: 'watch', src: 'watch' }],
        on: { PING: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
        after: { 60_000: 'undoing' },
      },
      undoing: { invoke: { id: 'undo', src: 'undo', onDone: 'undone' } },
      ok: { type: 'final' },
      undone: { type: 'final' },
    },
  });

  it('is not started for it, and verify says its replay differs; a migration to a new version starts its job', async () => {
    const { store, service, id } = await world();
    const redeployed = service(new HandlerRegistry().workflow('saga', watched(), { version: 1 }));
    const r = await redeployed.signal(id, 'default', { type: 'PING' });
    assert.ok(r.ok);
    assert.deepEqual(r.workflow.state.children.map((c) => c.invokeId), ['work'], 'no job for the added invocation');
    const v = await redeployed.verify(r.workflow);
    assert.equal(v.ok, false);
    const migrated = service(new HandlerRegistry()
      .workflow('saga', saga(), { version: 1 })
      .workflow('saga', watched(), { version: 2, migrate: { from: 1, state: (old) => old } }));
    const m = await migrated.signal(id, 'default', { type: 'PING' });
    assert.ok(m.ok);
    assert.deepEqual(m.workflow.state.children.map((c) => c.invokeId).sort(), ['watch', 'work']);
    await store.close();
  });
});

describe('a child job redriven after its instance took its end', () => {
  it('ends again without changing the instance: its first end was applied, once', async () => {
    const { store, old, transitions, id, jobId, tick } = await world();
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: tick(0) + 60_000, workerId: 'w' });
    await transitions.apply(jobId, { type: 'FAILED', attempt: 1, error: { message: 'boom', retryable: false } });
    assert.equal((await old.sweep(10)).applied, 1);
    const before = (await store.getWorkflow(id))!;
    assert.equal(before.state.value, 'undoing');
    assert.ok((await transitions.apply(jobId, { type: 'REDRIVE' })).ok);
    await transitions.apply(jobId, { type: 'STARTED', attempt: 2, leaseUntil: tick(0) + 60_000, workerId: 'w' });
    await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 2, result: 7 });
    const late = await old.deliver({ workflowId: id, invokeId: 'work', jobId, tenant: 'default', state: 'done', result: 7, at: tick(0) });
    assert.equal(late, false);
    assert.equal((await old.sweep(10)).applied, 0);
    const after = (await store.getWorkflow(id))!;
    assert.equal(after.version, before.version);
    assert.deepEqual(after.state, before.state);
    await store.close();
  });

  it('a cancelled child of a cancelled instance, redriven and done, does not bring the instance back', async () => {
    const { store, old, transitions, id, jobId, tick } = await world();
    const cancelled = await old.cancel(id, 'default', 'stop');
    assert.ok(cancelled.ok);
    assert.equal((await store.getJob(jobId))?.snapshot.value, 'cancelled');
    assert.ok((await transitions.apply(jobId, { type: 'REDRIVE' })).ok);
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: tick(0) + 60_000, workerId: 'w' });
    assert.ok((await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 7 })).ok);
    assert.equal(await old.deliver({ workflowId: id, invokeId: 'work', jobId, tenant: 'default', state: 'done', result: 7, at: tick(0) }), false);
    assert.equal((await old.sweep(10)).applied, 0);
    const wf = (await store.getWorkflow(id))!;
    assert.equal(wf.state.status, 'cancelled');
    assert.equal(wf.version, cancelled.workflow.version);
    await store.close();
  });
});

describe('a child job a user cancels (not its instance)', () => {
  it('ends its invocation as cancelled: the instance takes onError, not onDone, and replays', async () => {
    const { store, old, transitions, id, jobId, tick } = await world();
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: tick(0) + 60_000, workerId: 'w' });
    assert.ok((await transitions.apply(jobId, { type: 'CANCEL', reason: 'by hand' })).ok);
    assert.equal((await store.getJob(jobId))?.snapshot.value, 'cancelled');
    // As the log's child-ended message says it, and as the sweep reads the job.
    assert.ok(await old.deliver({ workflowId: id, invokeId: 'work', jobId, tenant: 'default', state: 'cancelled', error: { message: 'by hand', name: 'Cancelled' }, at: tick(0) }));
    assert.equal((await old.sweep(10)).applied, 0, 'applied once');
    const wf = (await store.getWorkflow(id))!;
    assert.equal(wf.state.value, 'undoing', 'onError took the cancelled end');
    const child = (await store.getWorkflowEvents(id))[1]!;
    assert.equal(child.type, 'CHILD');
    assert.equal((child.data as { outcome: { state: string } }).outcome.state, 'cancelled', 'recorded as the job ended');
    assert.deepEqual(await old.verify(wf), { ok: true, events: 2 });
    await store.close();
  });

  it('found by the sweep (its end lost by the log), ends its invocation as cancelled too', async () => {
    const { store, old, transitions, id, jobId, tick } = await world();
    assert.ok((await transitions.apply(jobId, { type: 'CANCEL', reason: 'by hand' })).ok);
    assert.equal((await old.sweep(10)).applied, 1);
    const wf = (await store.getWorkflow(id))!;
    assert.equal(wf.state.value, 'undoing', 'onError took the cancelled end');
    assert.equal(((await store.getWorkflowEvents(id))[1]!.data as { outcome: { state: string } }).outcome.state, 'cancelled');
    await store.close();
  });
});

const threeWaiting = () => waitingWorkflows(3);

describe('two processes firing the same due timers', () => {
  it('fire each once, and each pass counts only the timers it fired', async () => {
    const { store, clock, definitions, service: a, ids, tick } = await threeWaiting();
    tick(5_000);
    // Process b reads the due timers; process a fires them all before b steps their instances.
    let firedByA = 0;
    const raced = intercept(store, (name) => name === 'dueWorkflowTimers', async (call) => {
      const due = await call();
      firedByA += await a.fireDueTimers(10);
      return due;
    });
    const b = new WorkflowService({ store: raced, clock, ids: ulidIds(), definitions });
    assert.equal(await b.fireDueTimers(10), 0, 'b fired none: a had');
    assert.equal(firedByA, 3);
    for (const id of ids) {
      assert.equal((await store.getWorkflow(id))!.state.status, 'done');
      assert.deepEqual((await store.getWorkflowEvents(id)).map((e) => e.type), ['START', 'TIMER']);
    }
    await store.close();
  });
});

describe('an instance whose step the store refuses every time (its own data: a row too long, say)', () => {
  /** Three instances waiting on a timer; the store refuses every step of the first with `error`. */
  async function threeWaitingOneRefused(error: () => Error) {
    const { store, clock, definitions, ids, tick } = await threeWaiting();
    const refusing = intercept(store, (name) => name === 'updateWorkflow', async (call, args) => {
      if (args[0] === ids[0]) throw error();
      return call();
    });
    const errors: string[] = [];
    const logger = { ...silentLogger, error: (m: string) => void errors.push(m) };
    const service = new WorkflowService({ store: refusing, clock, ids: ulidIds(), definitions, logger });
    return { store, service, ids, errors, tick };
  }

  it('the timer pass fires the other instances\' timers, says which one failed, and tries it again a minute later', async () => {
    const { store, service, ids, errors, tick } = await threeWaitingOneRefused(() => new Error("Data too long for column 'state' at row 1"));
    tick(5_000);
    assert.equal(await service.fireDueTimers(10), 2);
    for (const id of ids.slice(1)) assert.equal((await store.getWorkflow(id))!.state.status, 'done');
    assert.equal((await store.getWorkflow(ids[0]!))!.state.status, 'active');
    assert.equal(errors.filter((m) => m.includes('a due timer of an instance could not be fired')).length, 1);
    assert.equal(await service.fireDueTimers(10), 0);
    assert.equal(errors.length, 1, 'set aside: not tried at every pass');
    tick(60_000);
    assert.equal(await service.fireDueTimers(10), 0);
    assert.equal(errors.length, 2, 'tried again a minute later');
    await store.close();
  });

  it('the database unreachable is thrown as it was: the pass, or the log\'s records, are tried again as a whole', async () => {
    const { store, service, tick } = await threeWaitingOneRefused(() => new AtsError('ATS_ERR_STORE_UNAVAILABLE'));
    tick(5_000);
    await assert.rejects(service.fireDueTimers(10), (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_STORE_UNAVAILABLE');
    await store.close();
  });

  it('the sweep delivers the other instances\' children\'s ends, and says which one failed', async () => {
    let t = 1_900_000_000_000;
    const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const one = setup({ actors: { work: job('sweep.work') } }).createMachine({
      initial: 'working', states: { working: { invoke: { id: 'work', src: 'work', onDone: 'done' } }, done: { type: 'final' } },
    });
    const definitions = new HandlerRegistry().workflow('one', one);
    const plain = new WorkflowService({ store, clock, ids: ulidIds(), definitions });
    const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds() });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await plain.start({ tenant: 'default', name: 'one', input: null });
      assert.ok(r.ok);
      ids.push(r.workflow.id);
      // The child ends; its end's message is lost with the in-process log.
      const jobId = r.workflow.state.children[0]!.jobId;
      await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: t + 60_000, workerId: 'w' });
      await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: i });
    }
    const refusing = intercept(store, (name) => name === 'updateWorkflow', async (call, args) => {
      if (args[0] === ids[0]) throw new Error('ER_NET_PACKET_TOO_LARGE');
      return call();
    });
    const errors: string[] = [];
    const service = new WorkflowService({ store: refusing, clock, ids: ulidIds(), definitions, logger: { ...silentLogger, error: (m: string) => void errors.push(m) } });
    t += 1000;
    assert.deepEqual(await service.sweep(10), { applied: 2, last: null });
    assert.deepEqual(await Promise.all(ids.map(async (id) => (await store.getWorkflow(id))!.state.status)), ['active', 'done', 'done']);
    assert.equal(errors.filter((m) => m.includes('could not be delivered by the sweep')).length, 1);
    await store.close();
  });
});
