/**
 * Retention on the embedded store with a clock the test moves: what is deleted
 * when, in batches, and what a resubmit of a deleted job's Idempotency-Key does;
 * ended workflow instances by the same limits.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import { createSqliteStore, type SqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { WorkflowStatus } from '../machines/workflow.js';
import { intercept } from '../tests/helpers/intercept.js';
import { oneStepWorkflow } from '../tests/helpers/workflow-machines.js';
import { AtsError, isAtsError } from './errors.js';
import { createLogger } from './logger.js';
import type { Clock, JobSpec, WorkflowRecord } from './ports.js';
import { Retention, type RetentionOptions } from './retention.js';
import { ulidIds } from './system.js';
import { TransitionService, type EventInput } from './transitions.js';
import { WorkflowService } from './workflows.js';

const DAY = 86_400_000;
const T0 = 1_700_000_000_000;

describe('retention', () => {
  let now = T0;
  const clock: Clock = {
    now: () => now,
    sleep: (ms, signal) => delay(Math.min(ms, 5), undefined, signal ? { signal } : undefined),
  };
  let store: SqliteStore;
  let svc: TransitionService;
  const opts: RetentionOptions = { doneMs: 7 * DAY, deadMs: 30 * DAY, auditMs: 90 * DAY, batchSize: 500, pollMs: 60_000 };
  const retention = (o: Partial<RetentionOptions> = {}) => new Retention({ store, clock, logger: createLogger('silent') }, { ...opts, ...o });

  beforeEach(async () => {
    now = T0;
    store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    const ulid = monotonicFactory();
    svc = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid(now) } });
  });
  afterEach(() => store.close());

  const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
    type: 'demo.echo', payload: { n: 1 }, queue: 'q', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0, ...o,
  });
  const submit = async (o: Partial<JobSpec> = {}) => {
    const r = await svc.submit(spec(o));
    assert.ok(r.ok);
    return r.job.id;
  };
  const apply = async (id: string, ...events: EventInput[]) => {
    for (const e of events) assert.ok((await svc.apply(id, e)).ok, `${e.type} on ${id}`);
  };
  const toDone = (id: string) =>
    apply(id, { type: 'PUBLISHED', attempt: 1 }, { type: 'STARTED', attempt: 1, leaseUntil: now + 30_000, workerId: 'w' }, { type: 'SUCCEEDED', attempt: 1 });
  const toDead = (id: string) =>
    apply(id, { type: 'STARTED', attempt: 1, leaseUntil: now + 30_000, workerId: 'w' }, { type: 'FAILED', attempt: 1, error: { message: 'x', retryable: false } });

  it('deletes done jobs after doneMs and dead or cancelled ones after deadMs, counted from the last transition', async () => {
    const done = await submit();
    const dead = await submit();
    const cancelled = await submit();
    const live = await submit();
    now += DAY; // the last transitions happen a day after the submits
    await toDone(done);
    await toDead(dead);
    await apply(cancelled, { type: 'CANCEL' });
    await apply(live, { type: 'STARTED', attempt: 1, leaseUntil: now + 1000 * DAY, workerId: 'w' });
    const r = retention();

    now = T0 + DAY + 7 * DAY - 1;
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 0, deletedAudit: 0, more: false });
    now += 1;
    assert.deepEqual(await r.runOnce(), { deleted: 1, deletedWorkflows: 0, deletedAudit: 0, more: false });
    assert.equal(await store.getJob(done), null);
    assert.deepEqual(await store.getEvents(done), []);
    assert.ok(await store.getJob(dead));

    now = T0 + DAY + 30 * DAY;
    assert.deepEqual(await r.runOnce(), { deleted: 2, deletedWorkflows: 0, deletedAudit: 0, more: false });
    assert.equal(await store.getJob(dead), null);
    assert.equal(await store.getJob(cancelled), null);
    assert.equal((await store.getJob(live))!.snapshot.value, 'running', 'a live job is never deleted, however old');
    assert.equal(r.deleted, 3);
    const stats = await store.stats();
    assert.deepEqual(stats.byState, { pending: 0, published: 0, running: 1, retrying: 0, done: 0, dead: 0, cancelled: 0 });
  });

  it('a redriven job is live again and its age starts over when it ends again', async () => {
    const id = await submit();
    await apply(id, { type: 'CANCEL' });
    now += 29 * DAY;
    await apply(id, { type: 'REDRIVE' });
    now += 2 * DAY;
    assert.equal((await retention().runOnce()).deleted, 0);
    await apply(id, { type: 'CANCEL' });
    now += 30 * DAY - 1;
    assert.equal((await retention().runOnce()).deleted, 0);
    now += 1;
    assert.equal((await retention().runOnce()).deleted, 1);
  });

  it('works in batches of batchSize, and the loop goes on at once after a full batch', async () => {
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push(await submit());
    for (const id of ids) await apply(id, { type: 'CANCEL' });
    now += 30 * DAY;
    const r = retention({ batchSize: 3 });
    assert.deepEqual(await r.runOnce(), { deleted: 3, deletedWorkflows: 0, deletedAudit: 0, more: true });
    r.start();
    for (let i = 0; i < 200 && (await store.stats()).byState.cancelled > 0; i++) await delay(5);
    await r.stop();
    assert.equal((await store.stats()).byState.cancelled, 0);
    assert.equal(r.deleted, 7);
    assert.deepEqual(await store.recountJobs(), []);
  });

  it('leaves a deleted job\'s unpublished outbox rows to the relay, and keeps the job counts exact', async () => {
    const ids = [await submit(), await submit()];
    for (const id of ids) await apply(id, { type: 'CANCEL' });
    const unpublished = await store.countUnpublished();
    assert.ok(unpublished > 0, 'the submits\' dispatches are not published yet');
    now += 30 * DAY;
    assert.equal((await retention().runOnce()).deleted, 2);
    assert.equal(await store.countUnpublished(), unpublished, 'their outbox rows are the relay\'s');
    assert.deepEqual(await store.recountJobs(), []);
    assert.deepEqual((await store.stats()).byState.cancelled, 0);
  });

  it('an Idempotency-Key is remembered as long as its job exists; after retention a resubmit creates a new job', async () => {
    const first = await svc.submit(spec({ idempotencyKey: 'order-42' }));
    assert.ok(first.ok && first.created);
    await toDone(first.job.id);
    const repeat = await svc.submit(spec({ idempotencyKey: 'order-42' }));
    assert.ok(repeat.ok && !repeat.created);
    assert.equal(repeat.job.id, first.job.id);

    now += 7 * DAY;
    assert.equal((await retention().runOnce()).deleted, 1);
    const after = await svc.submit(spec({ idempotencyKey: 'order-42' }));
    assert.ok(after.ok && after.created, 'a new job');
    assert.notEqual(after.job.id, first.job.id);
    assert.equal((await store.getJob(after.job.id))!.snapshot.value, 'pending');
  });

  /** A workflow instance of `status` whose last step is now, as the store holds it (no timers: ended instances have none). */
  const instance = async (id: string, status: WorkflowStatus, idempotencyKey: string | null = null): Promise<WorkflowRecord> => {
    const w: WorkflowRecord = {
      id, tenant: 'default', name: 'order', definitionVersion: 1, input: {}, version: 1, idempotencyKey, requestHash: idempotencyKey && 'a'.repeat(64),
      state: { value: 'x', context: {}, history: [], status, children: [], timers: [] }, createdAt: now, updatedAt: now,
    };
    const r = await store.insertWorkflow({
      workflow: w, expectedVersion: null, jobs: [], cancel: null,
      event: { workflowId: id, seq: 1, type: 'START', at: now, data: { input: {}, jobIds: [] }, status },
    });
    assert.deepEqual(r, { ok: true });
    return w;
  };
  const wid = (n: number) => `01W${String(n).padStart(23, '0')}`;

  it('deletes ended workflow instances by the same limits: done after doneMs, error and cancelled after deadMs, never an active one', async () => {
    now += DAY;
    await instance(wid(1), 'done', 'k');
    await instance(wid(2), 'error');
    await instance(wid(3), 'cancelled');
    await instance(wid(4), 'active');
    const job = await submit(); // a job of its own, live: its own limits
    const r = retention();

    now = T0 + DAY + 7 * DAY - 1;
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 0, deletedAudit: 0, more: false });
    now += 1;
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 1, deletedAudit: 0, more: false });
    assert.equal(await store.getWorkflow(wid(1)), null);
    assert.deepEqual(await store.getWorkflowEvents(wid(1)), []);
    assert.ok(await store.getWorkflow(wid(2)));
    // Its idempotency key is free again.
    assert.equal(await store.findWorkflowByIdempotencyKey('default', 'order', 'k'), null);
    await instance(wid(5), 'active', 'k');

    now = T0 + DAY + 30 * DAY;
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 2, deletedAudit: 0, more: false });
    assert.equal(await store.getWorkflow(wid(2)), null);
    assert.equal(await store.getWorkflow(wid(3)), null);
    now += 1000 * DAY;
    assert.equal((await r.runOnce()).deletedWorkflows, 0);
    assert.deepEqual((await store.listWorkflows({ tenant: 'default', limit: 10 })).map((w) => w.id), [wid(5), wid(4)], 'active instances are never deleted, however old');
    assert.equal(r.deletedWorkflows, 3);
    assert.equal(r.deleted, 0);
    assert.ok(await store.getJob(job));
  });

  it('keeps a workflow\'s finished child until its instance took the end: a lost end delivered late still carries the result', async () => {
    const workflows = new WorkflowService({ store, clock, ids: ulidIds(), definitions: oneStepWorkflow('m', 'w') });
    const started = await workflows.start({ tenant: 'default', name: 'm', input: null });
    assert.ok(started.ok);
    const childId = started.workflow.state.children[0]!.jobId;
    await apply(childId, { type: 'STARTED', attempt: 1, leaseUntil: now + 30_000, workerId: 'w' }, { type: 'SUCCEEDED', attempt: 1, result: 7 });
    // Its end never reached the instance (the in-process log lost it) and it is older than doneMs
    // before the sweep delivers it.
    now += 7 * DAY;
    assert.deepEqual(await retention().runOnce(), { deleted: 0, deletedWorkflows: 0, deletedAudit: 0, more: false });
    assert.equal((await store.getJob(childId))?.snapshot.value, 'done');
    assert.equal((await workflows.sweep(10)).applied, 1);
    const wf = (await store.getWorkflow(started.workflow.id))!;
    assert.deepEqual([wf.state.status, wf.state.value], ['done', 'ok'], 'the child succeeded: onDone');
    // The end taken, the child goes by the jobs' limits; the instance by its own.
    assert.deepEqual(await retention().runOnce(), { deleted: 1, deletedWorkflows: 0, deletedAudit: 0, more: false });
    assert.equal(await store.getJob(childId), null);
  });

  it('jobs and instances are counted apart, and a full batch of instances makes the loop go on at once', async () => {
    for (let n = 1; n <= 5; n++) await instance(wid(n), 'cancelled');
    await apply(await submit(), { type: 'CANCEL' });
    now += 30 * DAY;
    const r = retention({ batchSize: 2 });
    assert.deepEqual(await r.runOnce(), { deleted: 1, deletedWorkflows: 2, deletedAudit: 0, more: true });
    r.start();
    for (let i = 0; i < 200 && (await store.listWorkflows({ tenant: 'default', limit: 10 })).length > 0; i++) await delay(5);
    await r.stop();
    assert.deepEqual(await store.listWorkflows({ tenant: 'default', limit: 10 }), []);
    assert.deepEqual([r.deleted, r.deletedWorkflows], [1, 5]);
  });

  it('deletes audit log entries auditMs after they were recorded, in batches, and the loop goes on at once after a full batch', async () => {
    for (let i = 0; i < 5; i++) await store.recordAudit({ at: now + i, keyId: null, tenant: i % 2 ? 'acme' : 'default', action: 'job.cancel', target: String(i) });
    now += 90 * DAY;
    const r = retention({ batchSize: 2 });
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 0, deletedAudit: 0, more: false }, 'none is old enough yet');
    now += 2;
    assert.deepEqual(await r.runOnce(), { deleted: 0, deletedWorkflows: 0, deletedAudit: 2, more: true }, 'the two recorded first');
    assert.deepEqual((await store.listAudit('default', 10)).map((e) => e.target), ['4', '2']);
    now += 10;
    r.start();
    for (let i = 0; i < 200 && (await store.listAudit('default', 10)).length + (await store.listAudit('acme', 10)).length > 0; i++) await delay(5);
    await r.stop();
    assert.equal(r.deletedAudit, 5);
  });

  it('a batch that keeps failing holds back none of the others: the rest of the pass runs, then the failure is thrown', async () => {
    const done = await submit();
    await toDone(done);
    const dead = await submit();
    await toDead(dead);
    await instance(wid(1), 'done');
    await store.recordAudit({ at: now, keyId: null, tenant: 'default', action: 'job.cancel', target: 'x' });
    now += 100 * DAY;
    const broken = new Error('a purge of done jobs that keeps failing');
    const failing = intercept(store, (name) => name === 'purgeJobs', async (call, args) => {
      if (args[0] === 'done') throw broken;
      return call();
    });
    const r = new Retention({ store: failing, clock, logger: createLogger('silent') }, opts);
    await assert.rejects(r.runOnce(), broken);
    assert.ok(await store.getJob(done), 'the failing batch deleted nothing');
    assert.equal(await store.getJob(dead), null, 'the batches after it ran');
    assert.equal(await store.getWorkflow(wid(1)), null);
    assert.deepEqual(await store.listAudit('default', 10), []);
    assert.deepEqual([r.deleted, r.deletedWorkflows, r.deletedAudit], [1, 1, 1], 'what went is counted');
  });

  it('stopped during a pass, gives up at its next batch: stop() waits for the batch in flight only; the rest go at the next pass', async () => {
    const done = await submit();
    await toDone(done);
    const cancelled = await submit();
    await apply(cancelled, { type: 'CANCEL' });
    await instance(wid(1), 'done');
    now += 30 * DAY;
    // The batch of cancelled jobs, the third of the pass, is held in flight until the test lets it go on.
    const calls: string[] = [];
    let inFlight!: () => void;
    const held = new Promise<void>((r) => (inFlight = r));
    let letGo!: () => void;
    const released = new Promise<void>((r) => (letGo = r));
    const holding = intercept(store, (name) => name.startsWith('purge'), async (call, args, name) => {
      calls.push(`${name} ${String(args[0])}`);
      if (calls.length === 3) {
        inFlight();
        await released;
      }
      return call();
    });
    const r = new Retention({ store: holding, clock, logger: createLogger('silent') }, opts);
    r.start();
    await held;
    let stopped = false;
    const stopping = r.stop().then(() => (stopped = true));
    await delay(20);
    assert.equal(stopped, false, 'stop() waits for the batch in flight');
    letGo();
    await stopping;
    assert.deepEqual(calls, ['purgeJobs done', 'purgeJobs dead', 'purgeJobs cancelled'], 'no batch after the stop');
    assert.equal(await store.getJob(done), null);
    assert.equal(await store.getJob(cancelled), null, 'the batch in flight deleted, as the ones before');
    assert.ok(await store.getWorkflow(wid(1)), 'the next batches wait');
    // The next pass (this process started again, or another) deletes it.
    assert.deepEqual(await retention().runOnce(), { deleted: 0, deletedWorkflows: 1, deletedAudit: 0, more: false });
    assert.equal(await store.getWorkflow(wid(1)), null);
  });

  it('a batch of instances is given the pass\'s signal: one whose histories take several transactions gives up between them at a stop', async () => {
    const given: unknown[] = [];
    const watching = intercept(store, (name) => name === 'purgeWorkflows', async (call, args) => {
      given.push(args[3]);
      return call();
    });
    const stop = new AbortController();
    await new Retention({ store: watching, clock, logger: createLogger('silent') }, opts).runOnce(stop.signal);
    assert.equal(given.length, 3);
    for (const signal of given) assert.equal(signal, stop.signal);
  });

  it('a store that fails mid-pass: the pass throws, what went before is counted, the loop logs it and goes on', async () => {
    await apply(await submit(), { type: 'CANCEL' });
    for (let n = 1; n <= 2; n++) await instance(wid(n), 'cancelled');
    now += 30 * DAY;
    // Each pass tries all three statuses' batches: the first pass's three fail, and the loop's first pass's first.
    let down = 4;
    const unavailable = () => new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'The database is not reachable');
    const flaky = intercept(store, (name) => name === 'purgeWorkflows', async (call) => {
      if (down-- > 0) throw unavailable();
      return call();
    });
    const errors: string[] = [];
    const logger = { ...createLogger('silent'), error: (msg: string) => void errors.push(msg) };
    const r = new Retention({ store: flaky, clock, logger }, opts);
    await assert.rejects(r.runOnce(), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_STORE_UNAVAILABLE');
    assert.equal(r.deleted, 1, 'the job deleted before the store failed is counted');
    r.start();
    for (let i = 0; i < 400 && r.deletedWorkflows < 2; i++) await delay(5);
    await r.stop();
    assert.deepEqual([r.deleted, r.deletedWorkflows], [1, 2]);
    assert.deepEqual(errors, ['retention: batch failed, will retry']);
    assert.deepEqual(await store.recountJobs(), []);
  });
});
