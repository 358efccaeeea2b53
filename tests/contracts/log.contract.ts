/**
 * The `EventLog` contract: one suite, run against every implementation
 * (Kafka in `adapters/kafka/kafka-log.test.ts`, the in-process log in
 * `adapters/memory/memory-log.test.ts`), like River's driver test suite.
 *
 * What the engine relies on: every message arrives with key, value and headers
 * intact; per-key order; every group sees everything; members of one group
 * split the work; nothing is committed before `handle` resolved, so a throw or
 * a stop gets the records delivered again; `fromBeginning` picks where a new
 * group starts; `unreadBefore` tells what a group has not read by a time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ulid } from 'ulid';
import {
  OUTBOX_ID_HEADER, TOPICS, type ConsumeOptions, type EventLog, type LogMessage, type LogRecord, type Subscription,
} from '../../engine/ports.js';
import { toLogMessage } from '../../engine/relay.js';
import { submitWrite, transitionWrite } from '../../engine/transitions.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { asyncApi } from '../helpers/asyncapi.js';
import { packedSampleMessages, sampleMessages, workflowMessageSamples } from '../helpers/sample-messages.js';

/** A fresh log for one test, and how to dispose of it (close it, drop its topics). */
export interface LogUnderTest {
  log: EventLog;
  cleanup(): Promise<void>;
}

export interface LogContractOptions {
  /** Longest wait for expected deliveries. @defaultValue 30000 */
  timeoutMs?: number;
  /** Quiet period after the expected deliveries, to catch duplicates and strays. @defaultValue 500 */
  settleMs?: number;
}

/** Registers the contract tests for one implementation. */
export function logContract(
  name: string, makeLog: () => Promise<LogUnderTest>, options: LogContractOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const env: Env = { makeLog, timeoutMs, settleMs: options.settleMs ?? 500 };
  const testOpts = { timeout: timeoutMs * 3 };
  describe(`EventLog contract: ${name}`, () => {
    it('ensureTopics is repeatable and ping answers', testOpts, () => withLog(env, ensureAndPing));
    it('delivers key, value and headers intact, under the logical topic', testOpts, () => withLog(env, intact));
    it('keeps per-key order over 200 messages on 20 keys', testOpts, () => withLog(env, perKeyOrder));
    it('delivers, in order, large messages of one key published together (more than a broker takes in one batch)', testOpts, () => withLog(env, largeTogether));
    it('its partitioner names the partition each keyed message lands on', testOpts, () => withLog(env, partitionerAgrees));
    it('gives every group every message', testOpts, () => withLog(env, twoGroups));
    it('splits one group over two consumers, each message once', testOpts, () => withLog(env, splitGroup));
    it('delivers again what a throwing handle got, skipping nothing', testOpts, () => withLog(env, redeliverOnThrow));
    it('gives a new group member what a stopped one did not commit', testOpts, () => withLog(env, stopWithoutCommit));
    it('commits on stop what was handled just before it: the next member gets nothing again', testOpts, () => withLog(env, stopRightAfterHandle));
    it('starts a new group at the beginning or at the end, per fromBeginning', testOpts, () => withLog(env, fromBeginning));
    it('tells the partitions where a group has not read a message published by a time', testOpts, () => withLog(env, unreadBefore));
    it('carries the scheduler\'s messages so that every record read still matches docs/asyncapi.yaml', testOpts, () => withLog(env, schedulerMessages));
  });
}

// ---------------------------------------------------------------- harness

interface Env {
  makeLog: () => Promise<LogUnderTest>;
  timeoutMs: number;
  settleMs: number;
}

interface Ctx extends Env {
  log: EventLog;
  consume(options: ConsumeOptions): Promise<Subscription>;
}

async function withLog(env: Env, body: (ctx: Ctx) => Promise<void>): Promise<void> {
  const { log, cleanup } = await env.makeLog();
  const subs: Subscription[] = [];
  const consume = async (o: ConsumeOptions) => {
    const sub = await log.consume(o);
    subs.push(sub);
    return sub;
  };
  try {
    await body({ ...env, log, consume });
  } finally {
    await Promise.allSettled(subs.map((s) => s.stop()));
    await cleanup();
  }
}

/** Records every `handle` call; `fail` decides whether a call throws (recorded as failed). */
class Recorder {
  readonly calls: { records: LogRecord[]; ok: boolean }[] = [];
  active = 0;
  constructor(private readonly fail: (records: LogRecord[]) => Promise<boolean> | boolean = () => false) {}

  readonly handle = async (records: LogRecord[]): Promise<void> => {
    this.active += 1;
    try {
      const failing = await this.fail(records);
      this.calls.push({ records, ok: !failing });
      if (failing) throw new Error('handle failed on purpose');
    } finally {
      this.active -= 1;
    }
  };

  /** Records of the calls that resolved (what got committed), in call order. */
  get handled(): LogRecord[] {
    return this.calls.filter((c) => c.ok).flatMap((c) => c.records);
  }

  values(): string[] {
    return this.handled.map((r) => r.value);
  }
}

async function waitFor(ctx: Env, what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + ctx.timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ctx.timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const settle = (ctx: Env) => sleep(ctx.settleMs);

const message = (topic: string, key: string, value: string, headers: Record<string, string> = {}): LogMessage =>
  ({ topic, key, value, headers });

/** `n` messages `prefix0..prefix{n-1}` on `keys` keys, round robin. */
const numbered = (topic: string, n: number, keys: number, prefix = ''): LogMessage[] =>
  Array.from({ length: n }, (_, i) => message(topic, `key-${i % keys}`, `${prefix}${i}`));

const sorted = (values: string[]) => [...values].sort();

/** Every call holds records of one partition, in strictly increasing offset order. */
function assertCallsArePartitionOrdered(recorder: Recorder): void {
  for (const { records } of recorder.calls) {
    assert.ok(records.length > 0, 'handle called with no records');
    for (let i = 1; i < records.length; i++) {
      assert.equal(records[i].partition, records[0].partition, 'one handle call mixes partitions');
      assert.ok(BigInt(records[i].offset) > BigInt(records[i - 1].offset), 'offsets not increasing within a call');
    }
  }
}

// ---------------------------------------------------------------- cases

async function ensureAndPing({ log }: Ctx): Promise<void> {
  await assert.doesNotReject(log.ensureTopics());
  await assert.doesNotReject(log.ensureTopics());
  await assert.doesNotReject(log.ping());
  await assert.doesNotReject(log.publish([]));
}

async function intact(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  const sent = [
    message(topic, 'job-1', JSON.stringify({ jobId: 'job-1', attempt: 1 }), { [OUTBOX_ID_HEADER]: '1', 'x-trace': 'abc' }),
    message(topic, 'job-2', 'héllo ✓ 𝄞 "quoted" \\ back', { [OUTBOX_ID_HEADER]: '2', 'x-empty': '' }),
    message(topic, 'job-3', '', {}),
    message(topic, 'job-1', 'second for job-1', { [OUTBOX_ID_HEADER]: '4' }),
  ];
  await ctx.log.ensureTopics();
  await ctx.log.publish(sent);
  const rec = new Recorder();
  await ctx.consume({ topic, groupId: 'intact', fromBeginning: true, handle: rec.handle });
  await waitFor(ctx, '4 records', () => rec.handled.length >= 4);
  await settle(ctx);

  const got = rec.handled;
  const strip = (m: LogMessage) => JSON.stringify([m.topic, m.key, m.value, m.headers]);
  assert.deepEqual(got.map(strip).sort(), sent.map(strip).sort());
  for (const r of got) {
    assert.ok(Number.isInteger(r.partition) && r.partition >= 0, `bad partition ${r.partition}`);
    assert.match(r.offset, /^\d+$/);
  }
  const job1 = got.filter((r) => r.key === 'job-1');
  assert.equal(job1[0].partition, job1[1].partition, 'one key, two partitions');
  assert.deepEqual(job1.map((r) => r.value), [sent[0].value, 'second for job-1']);
  assertCallsArePartitionOrdered(rec);
}

async function perKeyOrder(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  const rec = new Recorder();
  await ctx.consume({ topic, groupId: 'order', fromBeginning: true, handle: rec.handle });
  const all = numbered(topic, 200, 20);
  for (let i = 0; i < all.length; i += 50) await ctx.log.publish(all.slice(i, i + 50));
  await waitFor(ctx, '200 records', () => rec.handled.length >= 200);
  await settle(ctx);

  assert.equal(rec.handled.length, 200, 'duplicates or strays');
  const byKey = new Map<string, number[]>();
  for (const r of rec.handled) byKey.set(r.key, [...(byKey.get(r.key) ?? []), Number(r.value)]);
  assert.equal(byKey.size, 20);
  for (const [key, values] of byKey) {
    const expected = Array.from({ length: 10 }, (_, j) => Number(key.slice(4)) + 20 * j);
    assert.deepEqual(values, expected, `order of ${key}`);
  }
  assertCallsArePartitionOrdered(rec);
}

/**
 * `partitioner(topic)` says where `publish` puts a keyed message: what lets
 * the engine pack messages of one partition into one record keyed by any of
 * them (engine/transition-records.ts). 60 keys, so every partition is hit.
 */
async function largeTogether(ctx: Ctx): Promise<void> {
  const topic = TOPICS.events;
  // Three of 400,000 characters on one key, and small ones between: 1.2 MB for one partition (Kafka takes 1 MiB a batch).
  const sent = [0, 1, 2].flatMap((i) => [message(topic, 'big', `${i}:${'x'.repeat(400_000)}`), message(topic, 'big', `small ${i}`)]);
  await ctx.log.ensureTopics();
  await ctx.log.publish(sent);
  const rec = new Recorder();
  await ctx.consume({ topic, groupId: 'large', fromBeginning: true, handle: rec.handle });
  await waitFor(ctx, '6 records', () => rec.handled.length >= 6);
  await settle(ctx);
  assert.deepEqual(rec.handled.map((r) => r.value.slice(0, 8)), sent.map((m) => m.value.slice(0, 8)));
  assert.deepEqual(rec.handled.map((r) => r.value.length), sent.map((m) => m.value.length));
}

async function partitionerAgrees(ctx: Ctx): Promise<void> {
  const topic = TOPICS.events;
  const sent = numbered(topic, 60, 60);
  const partitionOf = await ctx.log.partitioner(topic);
  await ctx.log.publish(sent);
  const rec = new Recorder();
  await ctx.consume({ topic, groupId: 'partitioner', fromBeginning: true, handle: rec.handle });
  await waitFor(ctx, '60 records', () => rec.handled.length >= 60);

  const wrong = rec.handled.filter((r) => partitionOf(r.key) !== r.partition).map((r) => `${r.key}: on ${r.partition}, said ${partitionOf(r.key)}`);
  assert.deepEqual(wrong, []);
  assert.ok(new Set(rec.handled.map((r) => r.partition)).size > 1, 'the keys spread over more than one partition');
  assert.equal(partitionOf('key-7'), (await ctx.log.partitioner(topic))('key-7'), 'the same answer when asked again');
}

async function twoGroups(ctx: Ctx): Promise<void> {
  const topic = TOPICS.events;
  const [a, b] = [new Recorder(), new Recorder()];
  await ctx.log.ensureTopics();
  const sent = numbered(topic, 50, 7);
  await ctx.log.publish(sent);
  await ctx.consume({ topic, groupId: 'group-a', fromBeginning: true, handle: a.handle });
  await ctx.consume({ topic, groupId: 'group-b', fromBeginning: true, handle: b.handle });
  await waitFor(ctx, 'both groups to get 50', () => a.handled.length >= 50 && b.handled.length >= 50);
  await settle(ctx);

  const expected = sorted(sent.map((m) => m.value));
  assert.deepEqual(sorted(a.values()), expected);
  assert.deepEqual(sorted(b.values()), expected);
}

async function splitGroup(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  const [a, b] = [new Recorder(), new Recorder()];
  await ctx.consume({ topic, groupId: 'workers', fromBeginning: true, handle: a.handle });
  await ctx.consume({ topic, groupId: 'workers', fromBeginning: true, handle: b.handle });
  const sent = numbered(topic, 90, 30);
  await ctx.log.publish(sent);
  await waitFor(ctx, '90 records over both members', () => a.handled.length + b.handled.length >= 90);
  await settle(ctx);

  const values = [...a.values(), ...b.values()];
  assert.equal(values.length, 90, 'a message was delivered twice though nothing failed');
  assert.deepEqual(sorted(values), sorted(sent.map((m) => m.value)));
  assert.ok(a.handled.length > 0 && b.handled.length > 0, `work not split: ${a.handled.length}/${b.handled.length}`);
  const partitionsOf = (r: Recorder) => new Set(r.handled.map((x) => x.partition));
  const shared = [...partitionsOf(a)].filter((p) => partitionsOf(b).has(p));
  assert.deepEqual(shared, [], 'both members handled the same partition');
}

async function redeliverOnThrow(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  let failed = false;
  const rec = new Recorder((records) => {
    if (failed || !records.some((r) => r.value === '10')) return false;
    failed = true;
    return true;
  });
  const sent = numbered(topic, 30, 3);
  await ctx.log.ensureTopics();
  await ctx.log.publish(sent);
  await ctx.consume({ topic, groupId: 'throwing', fromBeginning: true, handle: rec.handle });
  await waitFor(ctx, 'all 30 handled', () => new Set(rec.values()).size >= 30);
  await settle(ctx);

  const failedAt = rec.calls.findIndex((c) => !c.ok);
  assert.ok(failedAt >= 0, 'the handle never threw');
  const failedCall = rec.calls[failedAt].records;
  const retry = rec.calls.slice(failedAt + 1).find((c) => c.records[0].partition === failedCall[0].partition);
  assert.ok(retry, 'the failed records were not delivered again');
  assert.equal(retry.records[0].offset, failedCall[0].offset, 'redelivery did not start at the failed record');
  assert.equal(rec.handled.length, 30, 'a record was handled twice or lost');
  assertContiguousPerPartition(rec.handled);
}

/** Per partition, the committed-handled offsets are consecutive: nothing was skipped. */
function assertContiguousPerPartition(records: LogRecord[]): void {
  const last = new Map<number, bigint>();
  for (const r of records) {
    const prev = last.get(r.partition);
    if (prev !== undefined) assert.equal(BigInt(r.offset), prev + 1n, `gap in partition ${r.partition} at ${r.offset}`);
    last.set(r.partition, BigInt(r.offset));
  }
}

async function stopRightAfterHandle(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  const sent = numbered(topic, 20, 1, 'm');
  const first = new Recorder();
  const sub = await ctx.consume({ topic, groupId: 'stop-after-handle', fromBeginning: true, handle: first.handle });
  await ctx.log.publish(sent);
  await waitFor(ctx, 'all 20 handled', () => first.handled.length >= 20);
  await sub.stop(); // at once: the last commit may not have gone out yet
  const second = new Recorder();
  await ctx.consume({ topic, groupId: 'stop-after-handle', fromBeginning: true, handle: second.handle });
  await settle(ctx);
  assert.deepEqual(second.values(), [], 'records handled before the stop were delivered again');
}

async function stopWithoutCommit(ctx: Ctx): Promise<void> {
  const topic = TOPICS.dispatch;
  let block = false;
  let entered!: () => void;
  const blocked = new Promise<void>((resolve) => { entered = resolve; });
  let release!: (error: Error) => void;
  const gate = new Promise<never>((_, reject) => { release = reject; });
  gate.catch(() => {});
  const first = new Recorder(async () => {
    if (!block) return false;
    entered();
    await gate; // throws once released: this handle never resolves, so nothing is committed
    return false;
  });
  const subA = await ctx.consume({ topic, groupId: 'handover', fromBeginning: true, handle: first.handle });
  const sent = numbered(topic, 20, 1, 'm');
  await ctx.log.publish(sent.slice(0, 10));
  await waitFor(ctx, 'the first 10 handled', () => first.handled.length >= 10);
  block = true;
  await ctx.log.publish(sent.slice(10));
  await blocked;

  const stopping = subA.stop();
  await sleep(50);
  release(new Error('consumer stopping'));
  await stopping;
  assert.equal(first.active, 0, 'stop() resolved while a handle was still running');
  assert.deepEqual(first.values(), sent.slice(0, 10).map((m) => m.value));

  const second = new Recorder();
  await ctx.consume({ topic, groupId: 'handover', fromBeginning: false, handle: second.handle });
  await waitFor(ctx, 'the 10 uncommitted records', () => second.handled.length >= 10);
  await settle(ctx);
  assert.deepEqual(second.values(), sent.slice(10).map((m) => m.value));
}

async function unreadBefore(ctx: Ctx): Promise<void> {
  const topic = `${TOPICS.dispatch}.unread`;
  const unread = async (group: string, before: number) => [...await ctx.log.unreadBefore(topic, group, before)].sort();
  assert.deepEqual(await unread('readers', Date.now()), [], 'a topic that does not exist');
  assert.ok(!(await ctx.log.listTopics()).includes(topic), 'asking created the topic');

  const partitionOf = await ctx.log.partitioner(topic);
  const first = numbered(topic, 30, 30, 'first-');
  assert.ok(new Set(first.map((m) => partitionOf(m.key))).size > 1, 'the keys spread over more than one partition');
  const beforeFirst = Date.now();
  await sleep(5);
  await ctx.log.publish(first);
  await sleep(5);
  const afterFirst = Date.now();
  assert.deepEqual(await unread('readers', afterFirst), [], 'a group that committed nothing on the topic tells nothing');

  const rec = new Recorder();
  const sub = await ctx.consume({ topic, groupId: 'readers', fromBeginning: true, handle: rec.handle });
  await waitFor(ctx, '30 records', () => rec.handled.length >= 30);
  await sub.stop(); // commits what was handled

  // Published once the group stopped reading: unread, but only for a time after it went out.
  const key = first[0]!.key;
  await sleep(5);
  await ctx.log.publish([message(topic, key, 'second-0')]);
  await sleep(5);
  const afterSecond = Date.now();
  const deadline = Date.now() + ctx.timeoutMs;
  while ((await unread('readers', afterSecond)).length === 0) {
    if (Date.now() > deadline) assert.fail('the group\'s commits never showed');
    await sleep(50);
  }
  assert.deepEqual(await unread('readers', afterSecond), [partitionOf(key)]);
  assert.deepEqual(await unread('readers', afterFirst), [], 'the group read all that was published by then; the later message does not count');
  assert.deepEqual(await unread('readers', beforeFirst), []);
}

async function fromBeginning(ctx: Ctx): Promise<void> {
  const topic = TOPICS.events;
  const old = numbered(topic, 5, 5, 'old-');
  const fresh = numbered(topic, 5, 5, 'new-');
  await ctx.log.ensureTopics();
  await ctx.log.publish(old);
  const [early, late] = [new Recorder(), new Recorder()];
  await ctx.consume({ topic, groupId: 'from-start', fromBeginning: true, handle: early.handle });
  await ctx.consume({ topic, groupId: 'from-end', fromBeginning: false, handle: late.handle });
  await ctx.log.publish(fresh);
  await waitFor(ctx, 'both groups', () => early.handled.length >= 10 && late.handled.length >= 5);
  await settle(ctx);

  assert.deepEqual(sorted(early.values()), sorted([...old, ...fresh].map((m) => m.value)));
  assert.deepEqual(sorted(late.values()), sorted(fresh.map((m) => m.value)));
}

/**
 * The engine's own messages of every kind (dispatch, cancel, transition,
 * packed transitions, dead letter, child ended, workflow message), built as
 * the relay publishes them, come out of every topic as records that match the
 * AsyncAPI document: key, value and headers (the schema version and the
 * outbox id included) intact.
 */
async function schedulerMessages(ctx: Ctx): Promise<void> {
  await ctx.log.ensureTopics();
  // Both formats of ats.events: a record per transition, and packed by this log's partitioner; and on ats.workflows,
  // workflows' children's ends and the notices of messages workflow instances send each other.
  const sent = [
    ...sampleMessages(), ...packedSampleMessages(await ctx.log.partitioner(TOPICS.events)), ...childEndedMessages(),
    ...await workflowMessageSamples(),
  ];
  await ctx.log.publish(sent);
  const rec = new Recorder();
  // Every topic, the dispatch lanes of other queues and priorities included.
  for (const topic of new Set([...Object.values(TOPICS), ...sent.map((m) => m.topic)])) {
    await ctx.consume({ topic, groupId: `contract-${topic}`, fromBeginning: true, handle: rec.handle });
  }
  await waitFor(ctx, `${sent.length} records`, () => rec.handled.length >= sent.length);
  await settle(ctx);

  const counts = asyncApi().assertRecords(rec.handled);
  assert.deepEqual([...counts.keys()].sort(), ['cancel', 'childEnded', 'deadLetter', 'dispatch', 'transition', 'transitions', 'workflowMessage']);
  assert.equal(counts.get('childEnded'), 2);
  assert.equal(counts.get('workflowMessage'), 6, 'the six notices workflowMessageSamples builds');
  const strip = (m: LogMessage) => JSON.stringify([m.topic, m.key, m.value, Object.entries(m.headers).sort()]);
  assert.deepEqual(rec.handled.map(strip).sort(), sent.map(strip).sort());
}

/**
 * The `child-ended` messages (on `ats.workflows`, keyed by workflow id) of two
 * workflows' child jobs, one done and one cancelled, built by the engine's own
 * code as the relay publishes them.
 */
function childEndedMessages(): LogMessage[] {
  const at = Date.now();
  const child = (workflowId: string) => submitWrite({
    type: 'demo.echo', payload: { n: 1 }, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0,
    parent: { workflowId, invokeId: 'step' },
  }, ulid(at), at).job;
  const started = transitionWrite(child(ulid(at)), { type: 'STARTED', at: at + 1, attempt: 1, leaseUntil: at + 30_001, workerId: 'w1' })!;
  const ends = [
    transitionWrite(started.job, { type: 'SUCCEEDED', at: at + 2, attempt: 1, result: { ok: true } })!,
    transitionWrite(child(ulid(at)), { type: 'CANCEL', at: at + 1, reason: 'not needed' })!,
  ];
  let id = 900_000;
  return ends.flatMap((w) => w.outbox).filter((m) => m.topic === TOPICS.workflows)
    .map((m) => toLogMessage({ ...m, id: ++id, createdAt: at, publishedAt: null }));
}
