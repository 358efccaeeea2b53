/**
 * Every message a running scheduler publishes matches docs/asyncapi.yaml:
 * jobs go through every path (done; retry then done; delayed; dead → ats.dlq,
 * redriven, dead again; cancelled while running; a workflow's child done),
 * and one workflow instance sends another a message (`sendToWorkflow`);
 * then every record of `ats.dispatch`, `ats.events`, `ats.dlq` and
 * `ats.workflows` is read from the beginning and checked against the
 * document. Also what the document promises about them: one transition
 * message per stored event, in seq order per job; a dispatch for every
 * attempt started; a cancel for the running attempt; a dead letter each time
 * the job died; one child-ended, keyed by its workflow id, when the child
 * ended; one workflow-message, keyed by the target instance's id, naming the
 * message its target took. (The child's workflow is not stored: the job
 * carries its `parent`, which is all its end's message needs; the driver
 * finds no such instance and drops the delivery.)
 *
 * Twice: on the embedded backends (SQLite, the in-process log, read through
 * the EventLog port) and on MariaDB + Kafka (fresh topics under a unique
 * prefix, read with a plain kafkajs consumer, as another service would).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { setup } from 'xstate';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { CHILD_ENDED_KIND, KIND_HEADER, WORKFLOW_MESSAGE_KIND, type TransitionMessage } from '../../engine/messages.js';
import { laneTopic } from '../../engine/lanes.js';
import { OUTBOX_ID_HEADER, TOPICS, type JobSpec, type LogRecord, type Subscription } from '../../engine/ports.js';
import { EVENTS_FORMATS, transitionsOf, type EventsFormat } from '../../engine/transition-records.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { sendToWorkflow } from '../../machines/workflow.js';
import { asyncApi, type KafkaRecord } from '../helpers/asyncapi.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { FAST, isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const spec = (type: string, payload: unknown, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...extra,
});
const fixed = (delayMs: number) => ({ kind: 'fixed', delayMs }) as const;
/** The cancelled job's queue and priority: its dispatch and cancel travel on a lane other than ats.dispatch. */
const CANCELLED_LANE = { queue: 'other', priority: 5 } as const;
/** The workflow invocation the child job runs (no such instance is stored). */
const CHILD_PARENT = { workflowId: '01M8TKNKB2B4NX57686KVQMQXZ', invokeId: 'echo' } as const;
/** Every dispatch lane the jobs use. */
const LANES = [TOPICS.dispatch, laneTopic(CANCELLED_LANE.queue, CANCELLED_LANE.priority)];
/** What the readers read: every topic, and the lanes. */
const READ_TOPICS = [...new Set([...Object.values(TOPICS), ...LANES])];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tenant of the workflow instances. */
const TENANT = 'default';

/** Sends the instance named in its input one PING as it starts (its step seq 1), and ends: no job, no child. */
const pinger = setup({
  types: { context: {} as { to: string }, input: {} as { to: string } },
}).createMachine({
  id: 'contract.pinger', initial: 'sending', context: ({ input }) => input,
  states: {
    sending: { always: { target: 'sent', actions: sendToWorkflow(({ context }) => context.to, { type: 'PING' }) } },
    sent: { type: 'final' },
  },
});

/** Waits for a PING, and ends. */
const ponger = setup({ types: { events: {} as { type: 'PING' } } }).createMachine({
  id: 'contract.ponger', initial: 'waiting',
  states: { waiting: { on: { PING: 'pinged' } }, pinged: { type: 'final' } },
});

/**
 * The demo handlers plus `test.block`: runs until aborted, and records why;
 * and the workflows `test.pinger` and `test.ponger`, one sending the other a message.
 */
function registry(aborted: Map<string, string>): HandlerRegistry {
  return registerDemoHandlers(new HandlerRegistry()).register('test.block', (_p, ctx) => new Promise((_, reject) => {
    ctx.signal.addEventListener('abort', () => {
      aborted.set(ctx.jobId, String((ctx.signal.reason as { kind?: string })?.kind));
      reject(ctx.signal.reason);
    });
  })).workflow('test.pinger', pinger).workflow('test.ponger', ponger);
}

interface Paths {
  done: string;
  retried: string;
  delayed: string;
  dead: string;
  cancelled: string;
  child: string;
}

/** The two workflow instances: `sender` (test.pinger) sent `receiver` (test.ponger) a message. */
interface Messaging {
  sender: string;
  receiver: string;
}

/** What ran: the jobs, one per path, and the instances. */
interface Run {
  ids: Paths;
  messaging: Messaging;
}

/** Starts an instance of workflow `name`. */
async function startWorkflow(system: System, name: string, input: unknown): Promise<string> {
  const r = await system.workflows.start({ tenant: TENANT, name, input });
  assert.ok(r.ok, `${name} started: ${JSON.stringify(r)}`);
  return r.workflow.id;
}

/** Waits until instance `id` ended, and returns how. */
async function waitForWorkflowEnd(system: System, id: string, timeoutMs = 30_000): Promise<{ status: string; value: unknown }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wf = await system.workflows.get(id, TENANT);
    if (wf && wf.state.status !== 'active') return { status: wf.state.status, value: wf.state.value };
    if (Date.now() >= deadline) assert.fail(`workflow ${id} did not end within ${timeoutMs} ms (status ${wf?.state.status})`);
    await sleep(50);
  }
}

/**
 * Submits one job per path and starts a receiver and a sender that sends it
 * a message; waits until each job ended as expected, both instances ended
 * (the receiver on the message, so its notice went through the log) and the
 * outbox is empty.
 */
async function runAllPaths(system: System, aborted: Map<string, string>): Promise<Run> {
  const { store, transitions } = system;
  const submit = async (s: JobSpec) => {
    const r = await transitions.submit(s);
    assert.ok(r.ok);
    return r.job.id;
  };
  const ids: Paths = {
    done: await submit(spec('demo.echo', { hello: 'world' })),
    retried: await submit(spec('demo.fail', { failTimes: 1 }, { backoff: fixed(50) })),
    delayed: await submit(spec('demo.echo', { delayed: true }, { runAt: Date.now() + 300 })),
    dead: await submit(spec('demo.fail', { always: true }, { maxAttempts: 2, backoff: fixed(50) })),
    cancelled: await submit(spec('test.block', {}, CANCELLED_LANE)),
    child: await submit(spec('demo.echo', { child: true }, { parent: CHILD_PARENT })),
  };
  const receiver = await startWorkflow(system, 'test.ponger', null);
  const messaging: Messaging = { receiver, sender: await startWorkflow(system, 'test.pinger', { to: receiver }) };
  await waitForJob(store, ids.cancelled, isState('running'));
  assert.ok((await transitions.apply(ids.cancelled, { type: 'CANCEL', reason: 'no longer needed' })).ok);
  await waitForJob(store, ids.done, isState('done'));
  await waitForJob(store, ids.retried, (j) => j.snapshot.value === 'done' && j.snapshot.context.attempt === 2);
  await waitForJob(store, ids.delayed, isState('done'));
  await waitForJob(store, ids.child, isState('done'));
  await waitForJob(store, ids.dead, isState('dead'));
  assert.ok((await transitions.apply(ids.dead, { type: 'REDRIVE' })).ok);
  await waitForJob(store, ids.dead, (j) => j.snapshot.value === 'dead' && j.snapshot.context.attempt === 4);
  const deadline = Date.now() + 15_000;
  while (!aborted.has(ids.cancelled) && Date.now() < deadline) await sleep(20);
  assert.equal(aborted.get(ids.cancelled), 'cancelled', 'the cancel message aborted the running handler');
  assert.deepEqual(await waitForWorkflowEnd(system, messaging.sender), { status: 'done', value: 'sent' });
  assert.deepEqual(await waitForWorkflowEnd(system, messaging.receiver), { status: 'done', value: 'pinged' }, 'the receiver took the message');
  while ((await store.countUnpublished()) > 0 && Date.now() < deadline) await sleep(20);
  assert.equal(await store.countUnpublished(), 0, 'the outbox emptied');
  return { ids, messaging };
}

/**
 * Waits until `records()` holds every message the jobs' histories call for
 * and the message's notice, then checks them all against the document and
 * against one another. `format` is the system's ATS_EVENTS_FORMAT: which kind
 * carries transitions.
 */
async function checkEveryRecord(
  system: System, { ids, messaging }: Run, records: () => KafkaRecord[], prefix: string, format: EventsFormat = 'batch',
): Promise<void> {
  const jobs = Object.values(ids);
  const history = new Map(await Promise.all(jobs.map(async (id) => [id, await system.store.getEvents(id)] as const)));
  const expectedTransitions = [...history.values()].reduce((n, evs) => n + evs.length, 0);
  const on = (topic: string) => records().filter((r) => r.topic === `${prefix}${topic}`);
  /** Transitions on ats.events, each once: a duplicate (a record published again) is dropped by (jobId, seq). */
  const transitions = () => {
    const seen = new Map<string, TransitionMessage>();
    for (const t of on(TOPICS.events).flatMap(transitionsOf)) if (!seen.has(`${t.jobId}#${t.seq}`)) seen.set(`${t.jobId}#${t.seq}`, t);
    return [...seen.values()];
  };
  const kindOn = (topic: string, kind: string) => on(topic).filter((r) => r.headers[KIND_HEADER] === kind);
  const allRead = () => transitions().length >= expectedTransitions
    && kindOn(TOPICS.workflows, CHILD_ENDED_KIND).length > 0 && kindOn(TOPICS.workflows, WORKFLOW_MESSAGE_KIND).length > 0;
  const deadline = Date.now() + 30_000;
  while (!allRead() && Date.now() < deadline) await sleep(50);
  await sleep(300); // anything more (a stray) would arrive now

  const all = records();
  const counts = asyncApi().assertRecords(all, prefix);
  const transitionKind = format === 'batch' ? 'transitions' : 'transition';
  assert.deepEqual(
    [...counts.keys()].sort(), ['cancel', 'childEnded', 'deadLetter', 'dispatch', transitionKind, 'workflowMessage'].sort(),
    'every kind of message was produced and checked',
  );
  /** Other topics' payloads (of the `ats-kind` `kind` only, when given), each once (after dedupe by outbox id). */
  const payloads = (topic: string, kind?: string) => {
    const seen = new Map<string, KafkaRecord>();
    for (const r of kind === undefined ? on(topic) : kindOn(topic, kind)) seen.set(r.headers[OUTBOX_ID_HEADER]!, r);
    return [...seen.values()].map((r) => JSON.parse(r.value));
  };

  // ats.events: exactly the stored history of each job, each event once, in seq order.
  const published = transitions();
  for (const id of jobs) {
    const stored = history.get(id)!.map((e) => [e.seq, e.type, e.from, e.to]);
    const got = published.filter((t) => t.jobId === id).map((t) => [t.seq, t.type, t.from, t.to]);
    assert.deepEqual(got, stored, `transitions of ${id}: one per stored event, in order`);
  }
  // The dispatch lanes: a dispatch for every attempt started; the cancel of the running attempt, on its job's lane.
  const onDispatch = LANES.flatMap((lane) => payloads(lane));
  assert.ok(payloads(LANES[1]!).some((d) => d.jobId === ids.cancelled && d.kind === 'cancel'), 'the cancel on the lane of the job it cancels');
  for (const id of jobs) {
    for (const e of history.get(id)!.filter((ev) => ev.type === 'STARTED')) {
      const attempt = (e.data as { attempt: number }).attempt;
      assert.ok(onDispatch.some((d) => d.jobId === id && d.attempt === attempt && d.kind === undefined), `a dispatch of ${id} attempt ${attempt}`);
    }
  }
  assert.deepEqual(onDispatch.filter((d) => d.kind === 'cancel'), [{ kind: 'cancel', jobId: ids.cancelled, attempt: 1, reason: 'no longer needed' }]);
  // ats.dlq: one dead letter per death (before and after the redrive).
  const dlq = payloads(TOPICS.dlq);
  assert.deepEqual(dlq.map((d) => [d.jobId, d.attempts, d.lastError.attempt]), [[ids.dead, 2, 2], [ids.dead, 2, 4]]);
  // ats.workflows: one child-ended, the child's first (and only) end, with its result.
  const child = (await system.store.getJob(ids.child))!;
  assert.deepEqual(child.parent, CHILD_PARENT);
  assert.deepEqual(payloads(TOPICS.workflows, CHILD_ENDED_KIND), [{
    ...CHILD_PARENT, jobId: ids.child, state: 'done', at: history.get(ids.child)!.at(-1)!.at, tenant: TENANT, result: { child: true },
  }]);
  // ats.workflows: one workflow-message, for the receiver, naming the message sent by the sender's start (its seq 1,
  // first of the step) and taken by the receiver's MESSAGE step.
  const messageId = `${messaging.sender}:1:0`;
  assert.deepEqual(payloads(TOPICS.workflows, WORKFLOW_MESSAGE_KIND), [{ workflowId: messaging.receiver, messageId, tenant: TENANT }]);
  const taken = await system.store.getWorkflowEvents(messaging.receiver);
  assert.deepEqual(
    taken.map((e) => [e.type, (e.data as { from?: string }).from, (e.data as { messageId?: string }).messageId]),
    [['START', undefined, undefined], ['MESSAGE', messaging.sender, messageId]],
  );
  assert.equal(payloads(TOPICS.workflows).length, 2, 'nothing else on ats.workflows');
  // Keys: the job id (a packed record's first job), so one job's messages share a partition (checked per record by the
  // document's key rule); a child's end, its workflow's id; a message's notice, its target's id.
  const keyedByWorkflow = new Set([CHILD_ENDED_KIND, WORKFLOW_MESSAGE_KIND]);
  const keyOf = (r: KafkaRecord) => (keyedByWorkflow.has(r.headers[KIND_HEADER]!) ? JSON.parse(r.value).workflowId : transitionsOf(r)[0]?.jobId ?? JSON.parse(r.value).jobId);
  assert.ok(all.every((r) => r.key === keyOf(r)));
  assert.ok(kindOn(TOPICS.workflows, CHILD_ENDED_KIND).every((r) => r.key === CHILD_PARENT.workflowId));
  assert.ok(kindOn(TOPICS.workflows, WORKFLOW_MESSAGE_KIND).every((r) => r.key === messaging.receiver));
}

for (const format of EVENTS_FORMATS) {
  describe(`every published message matches docs/asyncapi.yaml: embedded (SQLite + in-process log), ATS_EVENTS_FORMAT=${format}`, () => {
    const aborted = new Map<string, string>();
    let dir: string;
    let system: System;
    const records: LogRecord[] = [];
    const subs: Subscription[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'ats-contract-'));
      const config = compileConfig({ ...FAST, dataDir: dir, eventsFormat: format }, { hostname: 'test', pid: process.pid });
      system = await compose(config, { registry: registry(aborted), logger: silentLogger });
      for (const topic of READ_TOPICS) {
        subs.push(await system.log.consume({
          topic, groupId: 'contract-reader', fromBeginning: true, handle: async (rs) => void records.push(...rs),
        }));
      }
      await system.start();
    });
    after(async () => {
      await Promise.all(subs.map((s) => s.stop()));
      await system?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('done, retry then done, delayed, dead → dlq → redrive → dead, cancel while running, a workflow\'s child done, a workflow\'s message to another', { timeout: 120_000 }, async () => {
      const run = await runAllPaths(system, aborted);
      await checkEveryRecord(system, run, () => records, '', format);
    });
  });
}

describe('every published message matches docs/asyncapi.yaml: MariaDB + Kafka', () => {
  const aborted = new Map<string, string>();
  let t: TestSystem;
  before(async () => {
    t = await startTestSystem({ registry: registry(aborted) });
  });
  after(async () => t?.stop());

  it('done, retry then done, delayed, dead → dlq → redrive → dead, cancel while running, a workflow\'s child done, a workflow\'s message to another; read from the beginning of fresh topics', { timeout: 180_000 }, async () => {
    const run = await runAllPaths(t.system, aborted);
    const kafka = new Kafka({ clientId: 'contract-reader', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${t.prefix}contract-reader`, sessionTimeout: 6000, heartbeatInterval: 500 });
    const records: KafkaRecord[] = [];
    /** Each transition read, and the partition of the record that carried it. */
    const placed: Array<{ jobId: string; partition: number }> = [];
    await consumer.connect();
    try {
      const topics = READ_TOPICS.map((topic) => `${t.prefix}${topic}`);
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
          const record = { topic, key: String(message.key), value: String(message.value), headers };
          records.push(record);
          for (const tr of transitionsOf(record)) placed.push({ jobId: tr.jobId, partition });
        },
      });
      await checkEveryRecord(t.system, run, () => records, t.prefix);
      // Packed, each job's transitions are still on the partition its id maps to (kafkajs's murmur2, as for its dispatches).
      const partitionOf = await t.system.log.partitioner(TOPICS.events);
      assert.ok(placed.length > 0);
      assert.deepEqual(placed.filter((p) => partitionOf(p.jobId) !== p.partition), []);
    } finally {
      await consumer.disconnect();
    }
  });
});
