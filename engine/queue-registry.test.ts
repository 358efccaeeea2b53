/**
 * The queue registry (queue-registry.ts) on the embedded store, through each
 * path that makes jobs: a submit, a batch, a schedule, a workflow's start and
 * its steps. With ATS_MAX_QUEUES places taken, a job naming a new queue is
 * ATS_ERR_QUEUE_LIMIT and nothing is written; a queue listed, and the
 * default queue, are always admitted; a known queue costs no statement.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { job } from '../machines/workflow.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { isAtsError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import type { JobSpec } from './ports.js';
import { QueueRegistry } from './queue-registry.js';
import { silentLogger } from './logger.js';
import { ScheduleRunner, ScheduleService } from './schedules.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { WorkflowService } from './workflows.js';

const spec = (queue: string): JobSpec => ({
  type: 'demo.echo', payload: { queue }, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0,
});
const isQueueLimit = (queue: string) => (e: unknown) =>
  isAtsError(e) && e.code === 'ATS_ERR_QUEUE_LIMIT' && e.status === 409 && e.message.includes(`'${queue}'`) && e.message.includes('ATS_MAX_QUEUES');

/** A workflow that starts a job in `first` at once and, on GO, one in `then`. */
const twoQueues = (first: string, then: string) => setup({
  actors: { a: job('wf.a', { queue: first }), b: job('wf.b', { queue: then }) },
}).createMachine({
  id: 'two', initial: 'one',
  states: {
    one: { invoke: { id: 'a', src: 'a' }, on: { GO: 'two' } },
    two: { invoke: { id: 'b', src: 'b' } },
  },
});

/** The embedded store with a registry of `max` places, and the services that make jobs, all through it. */
async function world(max: number) {
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  let admissions = 0;
  const counted = { admitQueues: (...a: Parameters<typeof store.admitQueues>) => (admissions++, store.admitQueues(...a)), countQueues: () => store.countQueues() };
  const queues = new QueueRegistry({ store: counted, clock: systemClock, max, defaultQueue: 'default' });
  const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds(), queues });
  const registry = new HandlerRegistry();
  registry.workflow('two', twoQueues('wa', 'wb'), { version: 1 });
  registry.workflow('full', twoQueues('a', 'late'), { version: 1 });
  const workflows = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: registry, queues });
  const schedules = new ScheduleService({ store, clock: systemClock, queues });
  const jobsIn = async (queue: string) => (await store.listJobs({ queue, limit: 10 })).length;
  return { store, queues, transitions, workflows, schedules, jobsIn, admissions: () => admissions };
}

describe('the queue registry', () => {
  it('a submit naming a new queue beyond the limit is a 409 and writes nothing; listed queues go on', async () => {
    const w = await world(2);
    await w.transitions.submit(spec('a'));
    await w.transitions.submit(spec('b'));
    await assert.rejects(w.transitions.submit(spec('c')), isQueueLimit('c'));
    assert.equal(await w.jobsIn('c'), 0);
    await w.transitions.submit(spec('a'));
    assert.equal(await w.jobsIn('a'), 2);
    assert.equal(await w.store.countQueues(), 2);
    await w.store.close();
  });

  it('the default queue is always admitted, and counted once named', async () => {
    const w = await world(1);
    await w.transitions.submit(spec('a'));
    await w.transitions.submit(spec('default'));
    assert.equal(await w.jobsIn('default'), 1);
    assert.equal(await w.store.countQueues(), 2);
    await assert.rejects(w.transitions.submit(spec('b')), isQueueLimit('b'));
    await w.store.close();
  });

  it('a batch answers an item of a refused queue on its own; the others are written', async () => {
    const w = await world(2);
    // New queues take the places in the order the batch first names them.
    const r = await w.transitions.submitManySettled([spec('a'), spec('c'), spec('b'), spec('d'), spec('a'), spec('b')]);
    assert.deepEqual(r.map((x) => x.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected']);
    assert.ok(isQueueLimit('b')((r[2] as PromiseRejectedResult).reason));
    assert.ok(isQueueLimit('d')((r[3] as PromiseRejectedResult).reason));
    assert.deepEqual([await w.jobsIn('a'), await w.jobsIn('b'), await w.jobsIn('c'), await w.jobsIn('d')], [2, 0, 1, 0]);
    const ids = r.flatMap((x) => (x.status === 'fulfilled' && x.value.ok ? [x.value.job.queue] : []));
    assert.deepEqual(ids, ['a', 'c', 'a'], 'each written item answered with its own job');
    await w.store.close();
  });

  it('a known queue costs no statement; a refused one is asked for again (the limit may have been raised)', async () => {
    const w = await world(1);
    await w.transitions.submit(spec('a'));
    const after = w.admissions();
    await w.transitions.submitMany([spec('a'), spec('a')]);
    await w.transitions.submit(spec('a'));
    assert.equal(w.admissions(), after);
    await assert.rejects(w.transitions.submit(spec('b')), isQueueLimit('b'));
    await assert.rejects(w.transitions.submit(spec('b')), isQueueLimit('b'));
    assert.equal(w.admissions(), after + 2);
    await w.store.close();
  });

  it('a schedule is refused when its jobs\' queue is new beyond the limit, at creation and at a change', async () => {
    const w = await world(1);
    const input = (name: string, queue: string) => ({
      name, cron: '* * * * *', job: { type: 'demo.echo', payload: null, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0 },
    });
    await w.schedules.create('default', input('ok', 'a'));
    await assert.rejects(w.schedules.create('default', input('new', 'b')), isQueueLimit('b'));
    assert.equal(await w.store.getSchedule('default', 'new'), null);
    await assert.rejects(w.schedules.update('default', 'ok', { job: input('ok', 'c').job }), isQueueLimit('c'));
    assert.equal((await w.store.getSchedule('default', 'ok'))?.job.queue, 'a', 'the schedule is unchanged');
    await w.store.close();
  });

  it('a schedule request refused for another reason lists no queue: a bad expression, a name in use', async () => {
    const w = await world(100);
    const template = (queue: string) => ({ type: 'demo.echo', payload: null, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0 });
    await w.schedules.create('default', { name: 's', cron: '0 3 * * *', job: template('a') });
    assert.equal(await w.store.countQueues(), 1);
    await assert.rejects(w.schedules.update('default', 's', { cron: '61 * * * *', job: template('typo1') }), { code: 'ATS_ERR_INVALID_CRON' });
    await assert.rejects(w.schedules.create('default', { name: 's', cron: '0 3 * * *', job: template('typo2') }), { code: 'ATS_ERR_SCHEDULE_EXISTS' });
    await assert.rejects(w.schedules.create('default', { name: 't', cron: '61 * * * *', job: template('typo3') }), { code: 'ATS_ERR_INVALID_CRON' });
    assert.equal(await w.store.countQueues(), 1, 'queues listed by requests that wrote nothing');
    await w.store.close();
  });

  it('a stored schedule\'s tick is never refused for its queue (one written by a process without the list, in a rolling upgrade)', async () => {
    const w = await world(1);
    await w.transitions.submit(spec('a'));
    const template = { type: 'demo.echo', payload: null, queue: 'r', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0 };
    const now = Date.now();
    await w.store.createSchedule({
      tenant: 'default', name: 'old', cron: '* * * * *', timezone: 'UTC', overlap: 'allow', catchUp: 'none', paused: false, job: template,
      nextAt: now - 1_000, lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0, version: 1, createdAt: now - 60_000, updatedAt: now - 60_000,
    });
    const runner = new ScheduleRunner({ store: w.store, transitions: w.transitions, clock: systemClock, logger: silentLogger });
    assert.equal(await runner.runOnce(), 1);
    assert.equal(await w.jobsIn('r'), 1);
    await assert.rejects(w.transitions.submit(spec('b')), isQueueLimit('b'), 'new queues are still refused');
    await w.store.close();
  });

  it('a workflow start or step that starts a job in a refused queue is a 409 and writes nothing; within the limit it admits the queue', async () => {
    const w = await world(3);
    const started = await w.workflows.start({ tenant: 'default', name: 'two', input: null });
    assert.ok(started.ok);
    assert.equal(await w.jobsIn('wa'), 1);
    // A step into a new queue with room left: admitted, the job written.
    assert.ok((await w.workflows.signal(started.workflow.id, 'default', { type: 'GO' })).ok);
    assert.equal(await w.jobsIn('wb'), 1);
    assert.equal(await w.store.countQueues(), 2);
    // One place left: `full` starts in `a` (the last place), and its step into `late` is refused.
    const full = await w.workflows.start({ tenant: 'default', name: 'full', input: null });
    assert.ok(full.ok);
    await assert.rejects(w.workflows.signal(full.workflow.id, 'default', { type: 'GO' }), isQueueLimit('late'));
    assert.equal((await w.workflows.get(full.workflow.id, 'default'))?.version, 1, 'the instance did not move');
    assert.equal(await w.jobsIn('late'), 0);
    await w.store.close();
  });

  it('a workflow start whose first job is in a refused queue is a 409 and writes nothing', async () => {
    const w = await world(1);
    await w.transitions.submit(spec('x'));
    await assert.rejects(w.workflows.start({ tenant: 'default', name: 'two', input: null }), isQueueLimit('wa'));
    assert.deepEqual(await w.store.listWorkflows({ tenant: 'default', limit: 10 }), []);
    assert.equal(await w.jobsIn('wa'), 0);
    await w.store.close();
  });

  it('a tenant other than the default lists at most a quarter of the places: each path refuses its jobs beyond, others go on', async () => {
    const w = await world(8); // a tenant's share: 2
    const of = (tenant: string, queue: string): JobSpec => ({ ...spec(queue), tenant });
    const isShare = (queue: string) => (e: unknown) => isQueueLimit(queue)(e) && (e as Error).message.includes('your tenant named 2 of the 8 queues (ATS_MAX_QUEUES) first');
    await w.transitions.submit(of('acme', 'a1'));
    await w.transitions.submit(of('acme', 'default')); // the default queue takes no share
    await w.transitions.submit(of('acme', 'a2'));
    await assert.rejects(w.transitions.submit(of('acme', 'a3')), isShare('a3'));
    assert.equal(await w.jobsIn('a3'), 0);
    // A batch of two tenants: each item is judged by its own tenant's share.
    const r = await w.transitions.submitManySettled([of('acme', 'a4'), of('globex', 'a4'), of('acme', 'a1'), of('acme', 'a5')]);
    assert.deepEqual(r.map((x) => x.status), ['rejected', 'fulfilled', 'fulfilled', 'rejected']);
    assert.ok(isShare('a4')((r[0] as PromiseRejectedResult).reason));
    assert.ok(isShare('a5')((r[3] as PromiseRejectedResult).reason));
    // a4 was listed by globex's job: acme's jobs may name it now.
    await w.transitions.submit(of('acme', 'a4'));
    assert.equal(await w.jobsIn('a4'), 2);
    // The default tenant's jobs have no share, only the limit.
    for (const q of ['d1', 'd2', 'd3']) await w.transitions.submit(spec(q));
    const template = { type: 'demo.echo', payload: null, queue: 's1', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0 };
    await assert.rejects(w.schedules.create('acme', { name: 'n', cron: '0 3 * * *', job: template }), isShare('s1'));
    await assert.rejects(w.workflows.start({ tenant: 'acme', name: 'two', input: null }), isShare('wa'));
    assert.deepEqual(await w.store.listWorkflows({ tenant: 'acme', limit: 10 }), []);
    assert.equal(await w.store.countQueues(), 7, 'a1, a2 (acme), a4 (globex), default, d1-d3');
    await w.store.close();
  });

  it('a workflow step of a tenant\'s instance into a new queue counts against that tenant\'s share', async () => {
    const w = await world(4); // a tenant's share: 1
    const started = await w.workflows.start({ tenant: 'acme', name: 'two', input: null });
    assert.ok(started.ok, 'wa is acme\'s one queue');
    await assert.rejects(w.workflows.signal(started.workflow.id, 'acme', { type: 'GO' }), (e: unknown) => isQueueLimit('wb')(e) && (e as Error).message.includes('your tenant named 1 of the 4 queues'));
    assert.equal(await w.jobsIn('wb'), 0);
    await w.transitions.submit(spec('wb'));
    assert.ok((await w.workflows.signal(started.workflow.id, 'acme', { type: 'GO' })).ok, 'listed by the default tenant\'s job: admitted');
    await w.store.close();
  });

  it('a limit lowered below the queues already listed: the refusal names the limit, not a count of the queues in use', async () => {
    const w = await world(4);
    for (const q of ['d1', 'd2', 'd3']) await w.transitions.submit(spec(q));
    const lowered = new QueueRegistry({ store: w.store, clock: systemClock, max: 1, defaultQueue: 'default' });
    const transitions = new TransitionService({ store: w.store, clock: systemClock, random: mathRandom, ids: ulidIds(), queues: lowered });
    await assert.rejects(transitions.submit(spec('e')), (e: unknown) => {
      assert.ok(isQueueLimit('e')(e));
      const { message } = e as Error;
      assert.doesNotMatch(message, /1 queues are in use/);
      assert.match(message, /the queue list is full \(ATS_MAX_QUEUES = 1\)/);
      return true;
    });
    await w.store.close();
  });

  it('a tenant\'s job refused because the whole list is full says so, not that its share is', async () => {
    const w = await world(3); // a tenant's share: 1, none of it used
    for (const q of ['d1', 'd2', 'd3']) await w.transitions.submit(spec(q));
    const refused = (e: unknown) => isQueueLimit('a1')(e) && (e as Error).message.includes('the queue list is full (ATS_MAX_QUEUES = 3)') && !(e as Error).message.includes('your tenant');
    await assert.rejects(w.transitions.submit({ ...spec('a1'), tenant: 'acme' }), refused);
    const [r] = await w.transitions.submitManySettled([{ ...spec('a1'), tenant: 'acme' }]);
    assert.ok(r!.status === 'rejected' && refused(r.reason));
    await w.store.close();
  });
});
