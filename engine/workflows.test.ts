/**
 * The workflow service on the SQLite store: versions side by side, and a
 * migration moving a live instance at its next step (a MIGRATE in its
 * history, which `verify` replays across the move), or on demand. Messages
 * between instances, each taken once. And the driver's order of deliveries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { job, sendToWorkflow } from '../machines/workflow.js';
import { AtsError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { silentLogger } from './logger.js';
import { CHILD_ENDED_KIND, KIND_HEADER, WORKFLOW_MESSAGE_KIND, type ChildEndedMessage } from './messages.js';
import type { Clock, EventLog, LogRecord, WorkflowRecord } from './ports.js';
import { WorkflowDriver, WorkflowService } from './workflows.js';
import { intercept } from '../tests/helpers/intercept.js';
import { waitingWorkflows } from '../tests/helpers/waiting-workflows.js';

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

  it('the last events of an instance read before its next step: still only as many as asked', async () => {
    const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
    const read = await service.get(started.workflow.id, 'default');
    assert.ok(read);
    assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
    const last = await service.events(read, { last: 1 });
    assert.deepEqual(last.events.map((e) => e.seq), [3], 'the newest one, not the one the record knew and the one after');
    assert.equal(last.next, null);
    assert.equal((await service.events(read, { after: 0, limit: 10 })).events.length, 3);
    await store.close();
  });

  it('a long history: pages of at most their limit, each naming the next until the end; verify replays it a page at a time, up to the version it read', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const id = started.workflow.id;
    for (let i = 0; i < 2_100; i++) assert.ok((await service.signal(id, 'default', { type: 'ADD' })).ok);
    const read = (await service.get(id, 'default'))!;
    assert.equal(read.version, 2_101);

    const seqs: number[] = [];
    const nexts: Array<number | null> = [];
    for (let after: number | null = 0; after !== null;) {
      const page = await service.events(read, { after, limit: 1_000 });
      assert.ok(page.events.length <= 1_000);
      seqs.push(...page.events.map((e) => e.seq));
      nexts.push(page.next);
      after = page.next;
    }
    assert.deepEqual(nexts, [1_000, 2_000, null]);
    assert.deepEqual(seqs, Array.from({ length: 2_101 }, (_, i) => i + 1), 'every event once, in order');

    // A step taken after the read is not part of what the read instance holds: verify replays up to its version.
    assert.ok((await service.signal(id, 'default', { type: 'ADD' })).ok);
    // Between its pages, the event loop's other work runs (the embedded store reads synchronously).
    let ticks = 0;
    let ticking = true;
    const tick = (): void => {
      ticks++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    assert.deepEqual(await service.verify(read), { ok: true, events: 2_101 });
    ticking = false;
    assert.ok(ticks >= 2, `the event loop turned ${ticks} times while 3 pages were replayed`);
    assert.deepEqual(await service.verify((await service.get(id, 'default'))!), { ok: true, events: 2_102 });

    // A history with an event missing on its second page (a store answers a full page across the gap).
    const gapped = Object.assign(Object.create(store) as typeof store, {
      getWorkflowEvents: async (wid: string, afterSeq?: number, limit?: number) =>
        (await store.getWorkflowEvents(wid, afterSeq, limit === undefined ? undefined : limit + 1)).filter((e) => e.seq !== 1_500).slice(0, limit),
    });
    const tampered = new WorkflowService({ store: gapped, clock: systemClock, ids: ulidIds(), definitions: registry });
    assert.deepEqual(await tampered.verify(read), { ok: false, events: 2_100, problem: 'the history has a gap before seq 1501' });
    await store.close();
  });

  it('a start whose idempotency key\'s holder is purged between the insert and the lookup starts anew', async () => {
    const { store, registry } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const held = await new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: registry })
      .start({ tenant: 'default', name: 'counter', input: null, idempotencyKey: 'race' });
    assert.ok(held.ok && held.created);
    assert.ok((await new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: registry }).cancel(held.workflow.id, 'default')).ok);
    // Retention purges the ended instance holding the key just after an insert found the key taken.
    let once = true;
    const racing = intercept(store, (name) => name === 'insertWorkflow', async (call) => {
      const r = await call();
      if (once) {
        once = false;
        assert.equal(await store.purgeWorkflows('cancelled', Date.now() + 1_000, 10), 1);
      }
      return r;
    });
    const service = new WorkflowService({ store: racing, clock: systemClock, ids: ulidIds(), definitions: registry });
    const again = await service.start({ tenant: 'default', name: 'counter', input: null, idempotencyKey: 'race' });
    assert.ok(again.ok && again.created, JSON.stringify(again));
    assert.notEqual(again.workflow.id, held.workflow.id);
    assert.equal((await store.findWorkflowByIdempotencyKey('default', 'counter', 'race'))?.id, again.workflow.id);
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
    // A START written before STARTs recorded their version: the first MIGRATE's `from` says it.
    const unversioned = Object.assign(Object.create(store) as typeof store, {
      getWorkflowEvents: async (wid: string, afterSeq?: number, limit?: number) => (await store.getWorkflowEvents(wid, afterSeq, limit))
        .map((e) => (e.type === 'START' ? { ...e, data: { ...(e.data as object), version: undefined } } : e)),
    });
    const legacy = new WorkflowService({ store: unversioned, clock: systemClock, ids: ulidIds(), definitions: registry });
    assert.deepEqual(await legacy.verify(r.workflow), { ok: true, events: 4 });
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

/** A version 2 of 'counter' that refuses an input `{ n }` over `max`, and starts its job in queue `queue`. */
const stricter = (max: number, queue = 'default') => setup({
  types: { context: {} as { n: number }, input: {} as { n: number } | null },
  actors: { work: job('w.v2', { queue }) },
}).createMachine({
  id: 'counter', initial: 'counting',
  context: ({ input }) => {
    if ((input?.n ?? 0) > max) throw new Error(`n is over ${max}`);
    return { n: input?.n ?? 0 };
  },
  states: { counting: { invoke: { id: 'work', src: 'work' } } },
});

describe('a start sent again with its idempotency key', () => {
  it('after a deploy whose machine refuses that input, answers the instance the first start made, not a 400, and writes nothing', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const first = await service.start({ tenant: 'default', name: 'counter', input: { n: 5 }, idempotencyKey: 'order-1' });
    assert.ok(first.ok && first.created);
    registry.workflow('counter', stricter(1), { version: 2 });
    const again = await service.start({ tenant: 'default', name: 'counter', input: { n: 5 }, idempotencyKey: 'order-1' });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(again.created, false);
    assert.equal(again.workflow.id, first.workflow.id);
    assert.equal(again.workflow.definitionVersion, 1);
    // The key with another input is still a conflict, not the new machine's refusal.
    const other = await service.start({ tenant: 'default', name: 'counter', input: { n: 6 }, idempotencyKey: 'order-1' });
    assert.equal(other.ok === false && other.reason, 'idempotency-conflict');
    // Without the key, the new machine's refusal stands.
    const fresh = await service.start({ tenant: 'default', name: 'counter', input: { n: 5 } });
    assert.equal(fresh.ok === false && fresh.reason, 'invalid-input');
    // A deploy without the workflow at all: the instance it started is still the answer.
    const without = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry() });
    const gone = await without.start({ tenant: 'default', name: 'counter', input: { n: 5 }, idempotencyKey: 'order-1' });
    assert.ok(gone.ok && !gone.created && gone.workflow.id === first.workflow.id, JSON.stringify(gone));
    assert.equal((await without.start({ tenant: 'default', name: 'counter', input: { n: 5 } })).ok === false, true);
    assert.equal((await service.list({ tenant: 'default', limit: 10 }, Number.MAX_SAFE_INTEGER)).workflows.length, 1, 'nothing written');
    await store.close();
  });

  it('when its first step would now name a queue past the limit, answers the instance the first start made, not a 409', async () => {
    const { store, registry, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const first = await service.start({ tenant: 'default', name: 'counter', input: null, idempotencyKey: 'order-2' });
    assert.ok(first.ok && first.created);
    registry.workflow('counter', stricter(10, 'elsewhere'), { version: 2 });
    const full = new WorkflowService({
      store, clock: systemClock, ids: ulidIds(), definitions: registry,
      queues: {
        knows: (q) => q === 'default',
        admit: async (names) => {
          for (const q of names) if (q !== 'default') throw new AtsError('ATS_ERR_QUEUE_LIMIT', `queue '${q}' is new, and the list is full`);
        },
      },
    });
    assert.equal(await full.start({ tenant: 'default', name: 'counter', input: null }).catch((err: AtsError) => err.code), 'ATS_ERR_QUEUE_LIMIT');
    const again = await full.start({ tenant: 'default', name: 'counter', input: null, idempotencyKey: 'order-2' });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(again.created, false);
    assert.equal(again.workflow.id, first.workflow.id);
    await store.close();
  });
});

describe('verify', () => {
  it('compares the whole stored state with the replay: a context, a child or a status the history does not give is reported', async () => {
    const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    for (let i = 0; i < 2; i++) assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
    const wf = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(await service.verify(wf), { ok: true, events: 3 });
    const different = { ok: false, events: 3, problem: 'replaying the history gives a different state than the stored one' };
    // The same state value each time: only what else the instance stores differs.
    const child = wf.state.children[0]!;
    const changed: [string, WorkflowRecord['state']][] = [
      ['a context', { ...wf.state, context: { n: 5 } }],
      ['a child', { ...wf.state, children: [{ ...child, jobId: `${child.jobId}X` }] }],
      ['no child', { ...wf.state, children: [] }],
      ['a status', { ...wf.state, status: 'cancelled' }],
    ];
    for (const [what, state] of changed) {
      assert.deepEqual(await service.verify({ ...wf, state }), different, what);
    }
    await store.close();
  });
});

describe('a migration that cannot move an instance', () => {
  it('a context JSON cannot store: the instance stays on its version, the event goes to its own machine (logged), and verify replays it', async () => {
    const warned: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const registry = new HandlerRegistry().workflow('counter', machine(1), { version: 1 });
    const logger = { ...silentLogger, warn: (message: string, fields?: Record<string, unknown>) => void warned.push({ message, fields }) };
    const service = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: registry, logger });
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const id = started.workflow.id;
    const work = started.workflow.state.children[0]!;
    // Version 2 adds an invocation the move would start (a job id drawn), and gives a BigInt context.
    const v2 = setup({ types: { context: {} as { n: number } }, actors: { work: job('w.v2'), audit: job('w.audit') } }).createMachine({
      id: 'counter', initial: 'tallying', context: { n: 0 },
      states: {
        tallying: { invoke: [{ id: 'work', src: 'work' }, { id: 'audit', src: 'audit' }], on: { ADD: { actions: assign({ n: ({ context }) => context.n + 1 }) } } },
      },
    });
    registry.workflow('counter', v2, { version: 2, migrate: { from: 1, state: () => ({ value: 'tallying', context: { n: 10n } }) } });
    const r = await service.signal(id, 'default', { type: 'ADD' });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.workflow.definitionVersion, 1);
    assert.equal(r.workflow.state.value, 'counting');
    assert.deepEqual(r.workflow.state.context, { n: 1 }, 'version 1 took the signal');
    assert.equal(warned.length, 1);
    assert.match(warned[0]!.message, /a migration cannot move this instance/);
    assert.match(String(warned[0]!.fields?.error), /the context cannot be stored as JSON/);
    // A child's end, too, goes to version 1 (no transition takes it: the child is gone, the instance waits on).
    assert.equal(await service.deliver({ workflowId: id, invokeId: 'work', jobId: work.jobId, state: 'done', result: null, at: Date.now(), tenant: 'default' }), true);
    const events = await store.getWorkflowEvents(id);
    assert.deepEqual(events.map((e) => e.type), ['START', 'SIGNAL', 'CHILD']);
    assert.deepEqual((events[1]!.data as { jobIds: string[] }).jobIds, [], 'the refused move\'s drawn job id is not recorded with the signal');
    assert.deepEqual(await service.verify((await store.getWorkflow(id))!), { ok: true, events: 3 });
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
      receive: async (workflowId: string) => {
        order.push(`${workflowId}:messages`);
        return 0;
      },
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
    const notice = (workflowId: string, messageId: string): LogRecord => ({
      topic: 'ats.workflows', partition: 0, offset: '0', key: workflowId,
      value: JSON.stringify({ workflowId, messageId, tenant: 'default' }),
      headers: { [KIND_HEADER]: WORKFLOW_MESSAGE_KIND, 'ats-schema': '1' },
    });
    await handle!([
      record('a', '1'), record('b', '1'), notice('a', 'm1'), notice('a', 'm2'), record('a', '2'), record('b', '2'), notice('a', 'm3'), record('a', '3'),
    ], { behind: 0 });
    await driver.stop();
    assert.equal(most, 1, 'never two ends of one instance at once');
    assert.ok(overlapped, 'two instances were delivered to at once');
    assert.deepEqual(order.filter((o) => o.startsWith('a:')), ['a:1', 'a:messages', 'a:2', 'a:messages', 'a:3'], 'announcements in a row take the instance\'s messages once');
    assert.deepEqual(order.filter((o) => o.startsWith('b:')), ['b:1', 'b:2']);
  });
});

describe('the workflow driver, when a delivery fails', () => {
  const record = (workflowId: string, jobId: string): LogRecord => ({
    topic: 'ats.workflows', partition: 0, offset: '0', key: workflowId,
    value: JSON.stringify({ workflowId, invokeId: 'x', jobId, state: 'done', result: null, at: 1, tenant: 'default' }),
    headers: { [KIND_HEADER]: CHILD_ENDED_KIND, 'ats-schema': '1' },
  });
  /** A driver whose service fails every delivery to instance `bad` with `error`; what it delivered, and what it logged. */
  async function driverFailing(error: () => Error) {
    let handle: ((records: LogRecord[], info: { behind: number }) => Promise<void>) | null = null;
    const log = { consume: async (o: { handle: typeof handle }) => ((handle = o.handle), { stop: async () => undefined }) } as unknown as EventLog;
    const delivered: string[] = [];
    const service = {
      deliver: async (m: ChildEndedMessage) => {
        if (m.workflowId === 'bad') throw error();
        delivered.push(`${m.workflowId}:${m.jobId}`);
        return true;
      },
      receive: async () => 0,
      fireDueTimers: async () => 0,
    } as unknown as WorkflowService;
    const errors: string[] = [];
    const logger = { ...silentLogger, error: (m: string) => void errors.push(m) };
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger }, { pollMs: 60_000, batchSize: 10 });
    await driver.start();
    return { handle: (records: LogRecord[]) => handle!(records, { behind: 0 }), delivered, errors, stop: () => driver.stop() };
  }

  it('an instance whose own step fails (a write the store refuses every time) is logged and left to the sweep; the others\' are delivered', async () => {
    const d = await driverFailing(() => new Error("Data too long for column 'state' at row 1"));
    await d.handle([record('good', '1'), record('bad', '1'), record('good', '2'), record('bad', '2')]);
    assert.deepEqual(d.delivered, ['good:1', 'good:2']);
    assert.equal(d.errors.filter((m) => m.includes('a delivery to an instance failed')).length, 1, 'once for the instance');
    await d.stop();
  });

  it('the database unreachable fails the records, for the log to deliver them again', async () => {
    const d = await driverFailing(() => new AtsError('ATS_ERR_STORE_UNAVAILABLE'));
    await assert.rejects(d.handle([record('good', '1'), record('bad', '1')]), (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_STORE_UNAVAILABLE');
    await d.stop();
  });
});

describe('the workflow driver stopped while it joins', () => {
  it('stops the subscription a join that ended after the stop returned, and runs no timer pass', async () => {
    let joined!: () => void;
    const join = new Promise<void>((r) => (joined = r));
    let stops = 0;
    let timerPasses = 0;
    const service = { sweepMessages: async () => 0, fireDueTimers: async () => (timerPasses++, 0) } as unknown as WorkflowService;
    // A join that ends once the test says, whatever the signal (the stop came as it completed).
    const log = {
      consume: async () => {
        await join;
        return { stop: async () => void stops++ };
      },
    } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger: silentLogger }, { pollMs: 5, batchSize: 10, sweepMs: 60_000 });
    const starting = driver.start();
    await new Promise((r) => setImmediate(r));
    await driver.stop();
    joined();
    await starting;
    assert.equal(stops, 1, 'the subscription is stopped as soon as the join ends');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(timerPasses, 0, 'no timer pass after the stop');
  });
});

describe('the workflow driver\'s sweep', () => {
  it('stops with the driver: a stop during a long sweep does not wait for the rest of it', async () => {
    let pages = 0;
    let stopping = false;
    let pagesAfterStop = 0;
    const service = {
      // Every active instance, a page at a time: never the last page, as with very many instances.
      sweep: async (_limit: number, _after?: string, _endedBefore?: number, signal?: AbortSignal) => {
        pages++;
        if (stopping) pagesAfterStop++;
        await new Promise((r) => setTimeout(r, 2));
        return { applied: 0, last: signal?.aborted ? null : `page-${pages}` };
      },
      sweepMessages: async () => 0,
      fireDueTimers: async () => 0,
    } as unknown as WorkflowService;
    const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger: silentLogger }, { pollMs: 5, batchSize: 10, sweepMs: 60_000 });
    await driver.start();
    while (pages < 3) await new Promise((r) => setTimeout(r, 2));
    stopping = true;
    const stopped = driver.stop().then(() => 'stopped');
    const waited = await Promise.race([stopped, new Promise((r) => setTimeout(r, 2_000, 'still sweeping'))]);
    assert.equal(waited, 'stopped');
    assert.ok(pagesAfterStop <= 1, `${pagesAfterStop} pages read after stop`);
  });

  it('runs beside the timer passes: timers fire while a long sweep is still reading', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let sweeps = 0;
    let timerPasses = 0;
    const service = {
      sweep: async () => {
        sweeps++;
        await held;
        return { applied: 0, last: null };
      },
      sweepMessages: async () => 0,
      fireDueTimers: async () => {
        timerPasses++;
        return 0;
      },
    } as unknown as WorkflowService;
    const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger: silentLogger }, { pollMs: 5, batchSize: 10, sweepMs: 60_000 });
    await driver.start();
    const deadline = Date.now() + 5_000;
    while (timerPasses < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(timerPasses >= 5, `timers fired ${timerPasses} times during the sweep`);
    assert.equal(sweeps, 1, 'one sweep at a time');
    release();
    await driver.stop();
  });
});

/**
 * A counter instance whose child job has ended, its child-ended message left in
 * the outbox and never delivered (the log lost it).
 */
async function counterWithEndedChild() {
  const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
  const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
  const started = await service.start({ tenant: 'default', name: 'counter', input: null });
  assert.ok(started.ok);
  const jobId = started.workflow.state.children[0]!.jobId;
  await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
  await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 7 });
  return { store, service, started, jobId };
}

describe('workflows the log or the registry failed', () => {
  it('sweep delivers a child\'s end the log lost (the embedded log after a restart); a second sweep changes nothing', async () => {
    const { store, service, started, jobId } = await counterWithEndedChild();
    assert.deepEqual((await store.getWorkflow(started.workflow.id))!.state.children.map((c) => c.jobId), [jobId]);
    const first = await service.sweep(10);
    assert.equal(first.applied, 1);
    const after = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(after.state.children, [], 'the instance heard of its child\'s end');
    assert.deepEqual((await store.getWorkflowEvents(after.id)).map((e) => e.type), ['START', 'CHILD']);
    assert.equal((await service.sweep(10)).applied, 0);
    assert.deepEqual(await service.verify(after), { ok: true, events: 2 });
    await store.close();
  });

  it('sweep delivers the end of a child whose job is gone (deleted) as cancelled: the instance does not wait for it for ever', async () => {
    const { store, service } = await world((r) => r.workflow('counter', machine(1), { version: 1 }));
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const jobId = started.workflow.state.children[0]!.jobId;
    // The row went by a way the API refuses (a child still awaited is not deleted through it).
    store.db.prepare('DELETE FROM jobs WHERE id = ?').run(jobId);
    assert.equal(await store.getJob(jobId), null);
    assert.equal((await service.sweep(10)).applied, 1);
    const after = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(after.state.children, [], 'the instance no longer waits for the job');
    // The counter has no onError: a cancelled child fails it.
    assert.equal(after.state.status, 'error');
    const events = await store.getWorkflowEvents(after.id);
    assert.deepEqual(events.map((e) => e.type), ['START', 'CHILD']);
    const child = events[1]!.data as { jobId: string; outcome: { state: string } };
    assert.deepEqual([child.jobId, child.outcome.state], [jobId, 'cancelled'], 'its end is delivered as the job stands: gone, so cancelled');
    assert.equal((await service.sweep(10)).applied, 0);
    assert.deepEqual(await service.verify(after), { ok: true, events: 2 });
    await store.close();
  });

  it('the sweep delivers a lost end to an instance stepped while the sweep reads: it keeps its place', async () => {
    const { store, service, started, jobId } = await counterWithEndedChild();
    // Each page the sweep reads, the instance has just taken a signal (a busy instance, a long sweep).
    const busy = intercept(store, (name) => /ActiveWorkflow/.test(name), async (call) => {
      await new Promise((r) => setTimeout(r, 2));
      assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
      return call();
    });
    const sweeping = new WorkflowService({ store: busy, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('counter', machine(1), { version: 1 }) });
    const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service: sweeping, clock: systemClock, logger: silentLogger }, { pollMs: 60_000, batchSize: 10, sweepAtStart: true });
    await driver.start();
    await driver.stop();
    const wf = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(wf.state.children, [], 'the instance heard of its child\'s end');
    assert.equal((await store.getWorkflowEvents(wf.id)).filter((e) => e.type === 'CHILD').length, 1);
    await store.close();
  });

  it('the driver\'s minute sweep delivers a lost end to an instance that keeps taking signals (not only to quiet ones)', async () => {
    const { clock, advance, asleep, release } = steppedClock();
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const registry = new HandlerRegistry().workflow('counter', machine(1), { version: 1 });
    const service = new WorkflowService({ store, clock, ids: ulidIds(), definitions: registry });
    const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds() });
    const started = await service.start({ tenant: 'default', name: 'counter', input: null });
    assert.ok(started.ok);
    const jobId = started.workflow.state.children[0]!.jobId;
    await transitions.apply(jobId, { type: 'STARTED', attempt: 1, leaseUntil: clock.now() + 60_000, workerId: 'w' });
    await transitions.apply(jobId, { type: 'SUCCEEDED', attempt: 1, result: 7 });
    // The log lost the child's end: it never reaches the driver.
    const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service, clock, logger: silentLogger }, { pollMs: 30_000, batchSize: 10, sweepMs: 60_000 });
    let first = asleep();
    await driver.start();
    await first;
    for (let i = 0; i < 8; i++) {
      // A signal every 30 s: the instance is never quiet for a minute.
      advance(30_000);
      assert.ok((await service.signal(started.workflow.id, 'default', { type: 'ADD' })).ok);
      first = asleep();
      release();
      await first;
    }
    await driver.stop();
    const wf = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual(wf.state.children, [], 'the instance heard of its child\'s end');
    assert.deepEqual((await store.getWorkflowEvents(wf.id)).filter((e) => e.type === 'CHILD').length, 1);
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

describe('timers of instances whose definition version this process lacks', () => {
  /**
   * `goneCount` instances of `gone`, then one of `kept`, each waiting 1 s, started by `a` (which has both
   * definitions); `b` has only `kept`'s. The clock is then past every timer, `gone`'s coming first.
   */
  async function lackingWorld(goneCount: number) {
    let t = 1_900_000_000_000;
    const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
    const waits = setup({}).createMachine({ initial: 'wait', states: { wait: { after: { 1000: 'done' } }, done: { type: 'final' } } });
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const a = new WorkflowService({ store, clock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('gone', waits).workflow('kept', waits) });
    const gone: string[] = [];
    for (let i = 0; i < goneCount; i++) {
      const r = await a.start({ tenant: 'default', name: 'gone', input: null });
      assert.ok(r.ok);
      gone.push(r.workflow.id);
    }
    t += 1;
    const kept = await a.start({ tenant: 'default', name: 'kept', input: null });
    assert.ok(kept.ok);
    const b = new WorkflowService({ store, clock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('kept', waits) });
    t += 5_000;
    return { store, a, b, gone, kept: kept.workflow.id, now: () => t };
  }

  it('wait, and do not hold back the other instances\' timers however many come first', async () => {
    // The 25 timers of `gone` come first, pages of 10 at a time, for a process without its definition.
    const { store, a, b, gone, kept, now } = await lackingWorld(25);
    assert.equal(await b.fireDueTimers(10), 1);
    assert.equal((await store.getWorkflow(kept))!.state.status, 'done');
    for (const id of gone) assert.equal((await store.getWorkflow(id))!.state.status, 'active');
    assert.equal((await store.dueWorkflowTimers(now(), 100)).length, 25, 'their timers wait');
    // A process that has it fires them.
    let fired = 0;
    for (let pass = 0; pass < 20 && fired < 25; pass++) fired += await a.fireDueTimers(10);
    assert.equal(fired, 25);
    for (const id of gone) assert.equal((await store.getWorkflow(id))!.state.status, 'done');
    await store.close();
  });

  it('a pass reads at most ten pages; the next goes on from there', async () => {
    const { store, b, kept } = await lackingWorld(30);
    assert.equal(await b.fireDueTimers(2), 0, 'ten pages of two: twenty of the thirty');
    assert.equal((await store.getWorkflow(kept))!.state.status, 'active');
    assert.equal(await b.fireDueTimers(2), 1, 'the next pass reads on');
    assert.equal((await store.getWorkflow(kept))!.state.status, 'done');
    await store.close();
  });
});

describe('the workflow driver stopped during a timer pass', () => {
  it('the pass gives up at its next step: stop() waits for the step in flight only; what it fired stays fired, the rest is fired by the next pass', async () => {
    const { store, clock, definitions, ids, tick } = await waitingWorkflows(10);
    const t = tick(5_000);
    // The second timer's step is held in flight until the test lets it write.
    let steps = 0;
    let inSecond!: () => void;
    const secondInFlight = new Promise<void>((r) => (inSecond = r));
    let letWrite!: () => void;
    const written = new Promise<void>((r) => (letWrite = r));
    const held = intercept(store, (name) => name === 'updateWorkflow', async (call) => {
      if (++steps === 2) {
        inSecond();
        await written;
      }
      return call();
    });
    const service = new WorkflowService({ store: held, clock, ids: ulidIds(), definitions });
    const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
    const driver = new WorkflowDriver({ log, service, clock: systemClock, logger: silentLogger }, { pollMs: 60_000, batchSize: 100, sweepMs: 60_000 });
    await driver.start();
    await secondInFlight;
    let stopped = false;
    const stopping = driver.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(stopped, false, 'stop() waits for the step in flight');
    letWrite();
    await stopping;
    assert.equal(steps, 2, 'no step after the stop');
    const states = await Promise.all(ids.map(async (id) => (await store.getWorkflow(id))!.state.status));
    assert.deepEqual(states.filter((s) => s === 'done').length, 2, 'the step in flight wrote, as the one before');
    assert.equal((await store.dueWorkflowTimers(t, 100)).length, 8, 'the others wait');
    // The next pass (this process started again, or another) fires them.
    assert.equal(await service.fireDueTimers(100), 8);
    for (const id of ids) assert.equal((await store.getWorkflow(id))!.state.status, 'done');
    await store.close();
  });
});

describe('a step decided again after a lost race', () => {
  it('starts its jobs under the ids it drew the first time: one id drawn per job, the same in both decisions', async () => {
    const go = setup({ actors: { work: job('w.go') } }).createMachine({
      id: 'go', initial: 'idle', states: { idle: { on: { GO: 'run' } }, run: { invoke: { id: 'work', src: 'work' } } },
    });
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const ulids = ulidIds();
    const drawn: string[] = [];
    const ids = { ...ulids, jobId: () => { const id = ulids.jobId(); drawn.push(id); return id; } };
    // Two decisions dropped, as after lost compare-and-sets, then the one committed: each on the same read.
    const decided: string[][] = [];
    const racing = intercept(store, (name) => name === 'updateWorkflow', async (_call, args) => {
      const [id, decide, read] = args as Parameters<typeof store.updateWorkflow>;
      const twice: typeof decide = (wf, message, signalled) => {
        for (let i = 0; i < 2; i++) decided.push(decide(wf, message, signalled).write?.jobs.map((w) => w.job.id) ?? []);
        return decide(wf, message, signalled);
      };
      return store.updateWorkflow(id, twice, read);
    });
    const service = new WorkflowService({ store: racing, clock: systemClock, ids, definitions: new HandlerRegistry().workflow('go', go) });
    const started = await service.start({ tenant: 'default', name: 'go', input: null });
    assert.ok(started.ok);
    drawn.length = 0;
    const r = await service.signal(started.workflow.id, 'default', { type: 'GO' });
    assert.ok(r.ok);
    const jobId = r.workflow.state.children[0]!.jobId;
    assert.deepEqual(drawn, [jobId], 'one id drawn for the one job, however often the step is decided');
    assert.deepEqual(decided, [[jobId], [jobId]], 'each dropped decision started the job committed');
    assert.equal((await store.getJob(jobId))?.idempotencyKey, `ats:workflow:${started.workflow.id}:2:0`);
    assert.deepEqual(await service.verify(r.workflow), { ok: true, events: 2 });
    await store.close();
  });
});

describe('an instance that ends while it holds a timer', () => {
  /** Waits a minute for its job: the job's end moves on, and so does the timer; POKE's guard throws, which fails it. */
  const waiting = setup({ actors: { work: job('w.wait') } }).createMachine({
    id: 'waiting', initial: 'working',
    states: {
      working: {
        invoke: { id: 'work', src: 'work', onDone: 'done' },
        after: { 60_000: 'late' },
        on: { POKE: { guard: () => { throw new Error('a broken guard'); }, target: 'done' } },
      },
      late: { type: 'final' },
      done: { type: 'final' },
    },
  });

  for (const end of ['cancelled', 'error'] as const) {
    it(`ended ${end === 'error' ? 'in error (its machine threw)' : 'by a cancel'}, drops its timer: nothing is left to fire, and none fires`, async () => {
      let t = 1_900_000_000_000;
      const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
      const store = createSqliteStore({ file: ':memory:' });
      await store.migrate();
      const service = new WorkflowService({ store, clock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('waiting', waiting) });
      const started = await service.start({ tenant: 'default', name: 'waiting', input: null });
      assert.ok(started.ok);
      assert.equal(started.workflow.state.timers.length, 1);
      t += 1_000;
      const r = end === 'cancelled' ? await service.cancel(started.workflow.id, 'default') : await service.signal(started.workflow.id, 'default', { type: 'POKE' });
      assert.ok(r.ok);
      const ended = (await store.getWorkflow(started.workflow.id))!;
      assert.equal(ended.state.status, end);
      assert.deepEqual(ended.state.timers, [], 'the ended instance holds no timer');
      assert.deepEqual(await store.dueWorkflowTimers(Number.MAX_SAFE_INTEGER, 10), [], 'its timer row is gone');
      t += 120_000;
      assert.equal(await service.fireDueTimers(10), 0);
      assert.equal((await store.getWorkflow(started.workflow.id))!.version, ended.version, 'nothing was written after its end');
      assert.deepEqual(await service.verify(ended), { ok: true, events: 2 });
      await store.close();
    });
  }
});

describe('a job input JSON cannot store', () => {
  const bigInput = (initial: 'idle' | 'run') => setup({ actors: { work: job('w.big') } }).createMachine({
    initial,
    states: {
      idle: { on: { GO: 'run' } },
      run: { invoke: { id: 'big', src: 'work', input: () => ({ n: 10n }) } },
    },
  });

  it('refuses the start that gives it (400, nothing written), and the signal whose step gives it (400, nothing written)', async () => {
    const { store, service } = await world((r) => r.workflow('big-now', bigInput('run')).workflow('big-later', bigInput('idle')));
    const now = await service.start({ tenant: 'default', name: 'big-now', input: null });
    assert.ok(!now.ok && now.reason === 'invalid-input', JSON.stringify(now));
    assert.match(now.message, /the input of big \(w\.big\) cannot be stored as JSON/);
    assert.deepEqual(await store.listJobs({ limit: 10 }), []);
    const later = await service.start({ tenant: 'default', name: 'big-later', input: null });
    assert.ok(later.ok);
    await assert.rejects(service.signal(later.workflow.id, 'default', { type: 'GO' }), (err: unknown) =>
      err instanceof AtsError && err.code === 'ATS_ERR_VALIDATION' && /^GO is not taken: .*the input of big \(w\.big\) cannot be stored as JSON/.test(err.message));
    const stored = (await store.getWorkflow(later.workflow.id))!;
    assert.equal(stored.state.status, 'active');
    assert.equal(stored.version, 1, 'nothing written');
    assert.deepEqual(await store.listJobs({ limit: 10 }), [], 'no job started');
    await store.close();
  });
});

/** SEND makes it send PING to another instance; PINGs it takes are kept in order; CLOSE ends it. */
const peer = setup({
  types: {
    context: {} as { got: number[] },
    events: {} as { type: 'SEND'; to: string; n: number } | { type: 'PING'; n: number } | { type: 'CLOSE' },
  },
}).createMachine({
  id: 'peer', initial: 'open', context: { got: [] },
  states: {
    open: {
      on: {
        SEND: { actions: sendToWorkflow(({ event }) => event.to, ({ event }) => ({ type: 'PING', n: event.n })) },
        PING: { actions: assign({ got: ({ context, event }) => [...context.got, event.n] }) },
        CLOSE: 'closed',
      },
    },
    closed: { type: 'final' },
  },
});

async function peers(tenants: [string, string] = ['default', 'default']) {
  const w = await world((r) => r.workflow('peer', peer));
  const a = await w.service.start({ tenant: tenants[0], name: 'peer', input: null });
  const b = await w.service.start({ tenant: tenants[1], name: 'peer', input: null });
  assert.ok(a.ok && b.ok);
  return { ...w, a: a.workflow, b: b.workflow };
}

describe('messages between instances (sendToWorkflow)', () => {
  it('are stored with the sender\'s step and announced on ats.workflows; the target takes them in order, once, and both replay', async () => {
    const { store, service, a, b } = await peers();
    for (const n of [1, 2, 3]) assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n })).ok);
    assert.equal((await store.getWorkflow(b.id))!.version, 1, 'nothing reached the target yet');
    const waiting = await store.pendingWorkflowMessages(b.id, 10);
    assert.deepEqual(waiting, [`${a.id}:2:0`, `${a.id}:3:0`, `${a.id}:4:0`]);
    const notices: unknown[] = [];
    await store.relayOutbox(100, async (rows) => {
      for (const r of rows) if (r.headers[KIND_HEADER] === WORKFLOW_MESSAGE_KIND) notices.push([r.topic, r.key, r.payload]);
    });
    assert.deepEqual(notices, waiting.map((messageId) => ['ats.workflows', b.id, { workflowId: b.id, messageId, tenant: 'default' }]));

    assert.equal(await service.receive(b.id), 3);
    const after = (await store.getWorkflow(b.id))!;
    assert.deepEqual(after.state.context, { got: [1, 2, 3] });
    const events = await store.getWorkflowEvents(b.id);
    assert.deepEqual(events.map((e) => [e.type, (e.data as { from?: string }).from]), [['START', undefined], ['MESSAGE', a.id], ['MESSAGE', a.id], ['MESSAGE', a.id]]);
    assert.equal(await service.receive(b.id), 0, 'a second delivery takes nothing');
    assert.deepEqual(await store.pendingWorkflowMessages(b.id, 10), []);
    assert.deepEqual(await service.verify(after), { ok: true, events: 4 });
    assert.deepEqual(await service.verify((await store.getWorkflow(a.id))!), { ok: true, events: 4 });
    await store.close();
  });

  it('delivered several times at once, a message is taken once', async () => {
    const { store, service, a, b } = await peers();
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n: 7 })).ok);
    const applied = await Promise.all([service.receive(b.id), service.receive(b.id), service.receive(b.id)]);
    assert.equal(applied.reduce((x, y) => x + y, 0), 1);
    assert.deepEqual((await store.getWorkflow(b.id))!.state.context, { got: [7] });
    assert.deepEqual((await store.getWorkflowEvents(b.id)).map((e) => e.type), ['START', 'MESSAGE']);
    await store.close();
  });

  it('one the target does not take now, one to no instance, and one to another tenant\'s instance are dropped and change nothing', async () => {
    const { store, service, a, b } = await peers();
    assert.ok((await service.signal(b.id, 'default', { type: 'CLOSE' })).ok);
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n: 1 })).ok);
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: '01ARZ3NDEKTSV4RRFFQ69G5FAV', n: 2 })).ok);
    assert.equal(await service.receive(b.id), 0);
    assert.equal(await service.receive('01ARZ3NDEKTSV4RRFFQ69G5FAV'), 0);
    assert.deepEqual(await store.pendingWorkflowMessages(b.id, 10), [], 'the dropped message is gone');
    assert.deepEqual(await store.pendingWorkflowMessages('01ARZ3NDEKTSV4RRFFQ69G5FAV', 10), []);
    assert.equal((await store.getWorkflow(b.id))!.version, 2, 'the ended target is as it was');
    await store.close();

    const other = await peers(['t1', 'default']);
    assert.ok((await other.service.signal(other.a.id, 't1', { type: 'SEND', to: other.b.id, n: 3 })).ok);
    assert.equal(await other.service.receive(other.b.id), 0);
    const target = (await other.store.getWorkflow(other.b.id))!;
    assert.deepEqual([target.version, target.state.context], [1, { got: [] }], 'another tenant\'s message reaches nothing');
    await other.store.close();
  });

  it('sweepMessages delivers a message whose announcement the log lost', async () => {
    const { store, service, a, b } = await peers();
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n: 5 })).ok);
    assert.equal(await service.sweepMessages(Date.now() - 60_000, 10), 0, 'a message younger than the sweep\'s age waits for its announcement');
    assert.equal(await service.sweepMessages(Date.now(), 10), 1);
    assert.deepEqual((await store.getWorkflow(b.id))!.state.context, { got: [5] });
    assert.equal(await service.sweepMessages(Date.now(), 10), 0);
    await store.close();
  });

  it('a message to an ended instance is dropped even where its definition version is gone', async () => {
    const { store, service, a, b } = await peers();
    assert.ok((await service.signal(b.id, 'default', { type: 'CLOSE' })).ok);
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n: 1 })).ok);
    const lacking = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('peer', peer, { version: 2 }) });
    assert.equal(await lacking.receive(b.id), 0);
    assert.deepEqual(await store.pendingWorkflowMessages(b.id, 10), [], 'dropped, not kept for a process that has version 1');
    await store.close();
  });

  it('a message to an instance whose version this process lacks waits, and a process that has it takes it', async () => {
    const { store, service, a, b } = await peers();
    assert.ok((await service.signal(a.id, 'default', { type: 'SEND', to: b.id, n: 4 })).ok);
    const lacking = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('peer', peer, { version: 2 }) });
    assert.equal(await lacking.receive(b.id), 0);
    assert.equal((await store.pendingWorkflowMessages(b.id, 10)).length, 1, 'still waiting');
    assert.equal(await service.receive(b.id), 1);
    await store.close();
  });
});

/**
 * A clock the test moves: `now` stands until `advance`; the driver's loop
 * waits in `sleep` until `release` lets it pass once, and `asleep()`
 * resolves when it sleeps next.
 */
function steppedClock(start = 1_800_000_000_000) {
  let t = start;
  let release: (() => void) | null = null;
  let sleeping: (() => void) | null = null;
  const clock: Clock = {
    now: () => t,
    sleep: (_ms, signal) => new Promise<void>((resolve, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      release = resolve;
      sleeping?.();
    }),
  };
  return {
    clock,
    advance: (ms: number) => { t += ms; },
    asleep: () => new Promise<void>((r) => (sleeping = r)),
    release: () => release!(),
  };
}

/**
 * The lines a driver's minute sweeps say over four minutes, the first two failing (the database down), and how many
 * sweeps ran. `slowFirst`: the first failing sweep fails only half a minute later (a connect timeout), the others at once.
 */
async function sweepOutageLines(slowFirst = false) {
  const { clock, advance, asleep, release } = steppedClock();
  let down = true;
  let sweeps = 0;
  let failFirst: (() => void) | null = null;
  const service = {
    fireDueTimers: async () => 0,
    sweep: async () => {
      sweeps++;
      if (sweeps === 1 && slowFirst) await new Promise<void>((r) => (failFirst = r));
      if (down) throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'The database is not reachable', { cause: new Error('connect ECONNREFUSED 127.0.0.1:3306') });
      return { applied: 0, last: null };
    },
    sweepMessages: async () => 0,
  } as unknown as WorkflowService;
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
  const log = { consume: async () => ({ stop: async () => undefined }) } as unknown as EventLog;
  const driver = new WorkflowDriver({ log, service, clock, logger }, { pollMs: 30_000, batchSize: 10, sweepMs: 60_000 });
  let next = asleep();
  await driver.start();
  await next;
  const minute = async () => {
    for (let i = 0; i < 2; i++) {
      advance(30_000);
      next = asleep();
      release();
      await next;
      if (failFirst) {
        (failFirst as () => void)();
        failFirst = null;
        for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
      }
    }
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  await minute();
  await minute();
  down = false;
  await minute();
  await minute();
  await driver.stop();
  return { said: lines.filter((l) => l.msg.startsWith('workflows: sweep')), sweeps };
}

describe('the driver\'s minute sweep with the database down', () => {
  it('tells the failed sweeps as an outage: each with the failures so far, then once when a sweep works again', async () => {
    const { said, sweeps } = await sweepOutageLines();
    assert.ok(sweeps >= 4);
    assert.deepEqual(said.map((l) => [l.level, l.msg, l.fields?.failures]), [
      ['error', 'workflows: sweep failed, will run again', 1],
      ['error', 'workflows: sweep failed, will run again', 2],
      ['error', 'workflows: sweep failed, will run again', 3],
      ['info', 'workflows: sweep works again', 3],
    ]);
    assert.match(String(said[0]!.fields!.cause), /ECONNREFUSED/, 'it names what failed');
  });

  it('tells each failed sweep also when the first took long to fail (a connect timeout) and the next failed at once', async () => {
    const { said } = await sweepOutageLines(true);
    assert.deepEqual(said.map((l) => [l.level, l.fields?.failures]), [['error', 1], ['error', 2], ['error', 3], ['info', 3]]);
  });
});
