/**
 * Kafka delivery end to end, on the real MariaDB and the real Kafka broker:
 * relay, workers, retries with backoff, delayed jobs, the DLQ and redrive,
 * duplicate dispatches, a relay crash between produce and mark, cancel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { toLogMessage } from '../../engine/relay.js';
import { transitionsOf } from '../../engine/transition-records.js';
import { TOPICS, type JobSpec, type OutboxRow } from '../../engine/ports.js';
import { verifyJob } from '../../engine/verify.js';
import { asyncApi } from '../helpers/asyncapi.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const spec = (type: string, payload: unknown, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...extra,
});
const fixed = (delayMs: number) => ({ kind: 'fixed', delayMs }) as const;

describe('Kafka delivery (MariaDB + Kafka)', () => {
  let t: TestSystem;
  const calls = new Map<string, number[]>();
  const aborted = new Map<string, string>();
  const gates = new Map<string, () => void>();
  const count = (jobId: string, attempt: number) => calls.set(jobId, [...(calls.get(jobId) ?? []), attempt]);

  before(async () => {
    const registry = registerDemoHandlers(new HandlerRegistry());
    registry.register('test.count', async (payload, ctx) => {
      count(ctx.jobId, ctx.attempt);
      return { ok: true, payload };
    });
    registry.register('test.block', async (_p, ctx) => {
      count(ctx.jobId, ctx.attempt);
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => {
        aborted.set(ctx.jobId, String((ctx.signal.reason as Error)?.message ?? ctx.signal.reason));
        resolve();
      }));
      return 'finished after abort';
    });
    // Runs until released (or aborted); records which attempts were aborted and why.
    registry.register('test.gate', async (_p, ctx) => {
      count(ctx.jobId, ctx.attempt);
      await new Promise<void>((resolve, reject) => {
        gates.set(`${ctx.jobId}#${ctx.attempt}`, resolve);
        ctx.signal.addEventListener('abort', () => {
          aborted.set(`${ctx.jobId}#${ctx.attempt}`, String((ctx.signal.reason as Error)?.message ?? ctx.signal.reason));
          reject(ctx.signal.reason);
        });
      });
      return { attempt: ctx.attempt };
    });
    t = await startTestSystem({ registry });
  });
  after(async () => t?.stop());

  const events = async (id: string) => (await t.system.store.getEvents(id)).map((e) => e.type);

  it('runs a job to done with the handler result and a valid history', async () => {
    const r = await t.system.transitions.submit(spec('demo.echo', { hello: 'world' }));
    assert.ok(r.ok);
    const job = await waitForJob(t.system.store, r.job.id, isState('done'));
    assert.deepEqual(job.snapshot.context.result, { hello: 'world' });
    const types = await events(job.id);
    const expected = [['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED'], ['SUBMITTED', 'STARTED', 'SUCCEEDED']];
    assert.ok(expected.some((e) => JSON.stringify(e) === JSON.stringify(types)), `history ${types}`);
    assert.deepEqual((await verifyJob(t.system.store, job.id)).problems, []);
  });

  it('retries with backoff: failTimes 2 → done on attempt 3, each retry after its delay', async () => {
    const r = await t.system.transitions.submit(spec('demo.fail', { failTimes: 2 }, { maxAttempts: 5, backoff: fixed(300) }));
    assert.ok(r.ok);
    const job = await waitForJob(t.system.store, r.job.id, isState('done'));
    assert.equal(job.snapshot.context.attempt, 3);
    const evs = await t.system.store.getEvents(job.id);
    const failed = evs.filter((e) => e.type === 'FAILED');
    const due = evs.filter((e) => e.type === 'RETRY_DUE');
    assert.equal(failed.length, 2);
    assert.equal(due.length, 2);
    for (let i = 0; i < 2; i++) assert.ok(due[i]!.at - failed[i]!.at >= 300, `retry ${i + 1} came ${due[i]!.at - failed[i]!.at} ms after the failure`);
  });

  it('dead after maxAttempts, a DLQ message on ats.dlq, and redrive runs it again', async () => {
    const kafka = new Kafka({ clientId: 'dlq-reader', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${t.prefix}dlq-reader`, sessionTimeout: 6000, heartbeatInterval: 500 });
    const dlq: Array<{ key: string; value: any; headers: Record<string, string> }> = [];
    await consumer.connect();
    await consumer.subscribe({ topic: `${t.prefix}${TOPICS.dlq}`, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
        dlq.push({ key: String(message.key), value: JSON.parse(String(message.value)), headers });
      },
    });
    try {
      const r = await t.system.transitions.submit(spec('demo.fail', { always: true }, { maxAttempts: 3, backoff: fixed(50) }));
      assert.ok(r.ok);
      const dead = await waitForJob(t.system.store, r.job.id, isState('dead'));
      assert.equal(dead.snapshot.context.attempt, 3);
      assert.match(dead.snapshot.context.lastError?.message ?? '', /failure on attempt 3/);
      const deadline = Date.now() + 30_000;
      while (!dlq.some((m) => m.key === r.job.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
      const msg = dlq.find((m) => m.key === r.job.id);
      assert.ok(msg, 'the dead job reached ats.dlq');
      assert.equal(msg.value.attempts, 3);
      assert.equal(msg.value.type, 'demo.fail');
      assert.match(msg.value.lastError.message, /attempt 3/);
      assert.ok(msg.headers['ats-outbox-id'], 'the outbox id travels in a header');
      asyncApi().assertRecords(dlq.map((m) => ({ topic: TOPICS.dlq, key: m.key, value: JSON.stringify(m.value), headers: m.headers })));

      const redriven = await t.system.transitions.apply(r.job.id, { type: 'REDRIVE' });
      assert.ok(redriven.ok);
      const again = await waitForJob(t.system.store, r.job.id, (j) => j.snapshot.value === 'dead' && j.snapshot.context.attempt === 6);
      assert.equal(again.snapshot.context.attemptBase, 3);
    } finally {
      await consumer.disconnect();
    }
  });

  it('a delayed job does not start before its runAt', async () => {
    const runAt = Date.now() + 1500;
    const r = await t.system.transitions.submit(spec('test.count', { delayed: true }, { runAt }));
    assert.ok(r.ok);
    await new Promise((res) => setTimeout(res, 700));
    assert.equal((await t.system.store.getJob(r.job.id))?.snapshot.value, 'pending');
    assert.equal(calls.get(r.job.id), undefined);
    await waitForJob(t.system.store, r.job.id, isState('done'));
    const started = (await t.system.store.getEvents(r.job.id)).find((e) => e.type === 'STARTED');
    assert.ok(started && started.at >= runAt, `started at ${started?.at}, runAt ${runAt}`);
  });

  it('the same dispatch message delivered twice runs the attempt once', async () => {
    const r = await t.system.transitions.submit(spec('test.count', { dup: 1 }));
    assert.ok(r.ok);
    await waitForJob(t.system.store, r.job.id, isState('done'));
    const skippedBefore = t.system.worker!.counters.skipped;
    // Produce the job's dispatch message again, by hand, as a redelivery would.
    const row: OutboxRow = {
      id: 999_999, topic: TOPICS.dispatch, key: r.job.id, createdAt: 0, publishedAt: null, headers: {},
      payload: { jobId: r.job.id, attempt: 1, type: 'test.count', queue: 'default', priority: 0, dispatch: 1 },
    };
    const m = toLogMessage(row);
    await t.system.log.publish([m, m]);
    const deadline = Date.now() + 15_000;
    while (t.system.worker!.counters.skipped < skippedBefore + 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(t.system.worker!.counters.skipped, skippedBefore + 2, 'both copies were skipped');
    assert.deepEqual(calls.get(r.job.id), [1]);
    assert.equal((await events(r.job.id)).filter((e) => e === 'STARTED').length, 1);
  });

  it('cancel while running aborts the handler signal, ends cancelled, and a late outcome is ignored', async () => {
    const r = await t.system.transitions.submit(spec('test.block', {}));
    assert.ok(r.ok);
    await waitForJob(t.system.store, r.job.id, isState('running'));
    const c = await t.system.transitions.apply(r.job.id, { type: 'CANCEL', reason: 'test' });
    assert.ok(c.ok);
    const deadline = Date.now() + 15_000;
    while (!aborted.has(r.job.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.match(aborted.get(r.job.id) ?? '', /cancelled/);
    const late = await t.system.transitions.apply(r.job.id, { type: 'SUCCEEDED', attempt: 1, result: 'late' });
    assert.equal(late.ok, false);
    await new Promise((res) => setTimeout(res, 300));
    const job = await t.system.store.getJob(r.job.id);
    assert.equal(job?.snapshot.value, 'cancelled');
    assert.equal((await events(r.job.id)).at(-1), 'CANCEL');
  });

  it('a cancel delivered again while a later attempt runs leaves that attempt alone', async () => {
    const r = await t.system.transitions.submit(spec('test.gate', {}));
    assert.ok(r.ok);
    const id = r.job.id;
    await waitForJob(t.system.store, id, isState('running'));
    assert.ok((await t.system.transitions.apply(id, { type: 'CANCEL', reason: 'test' })).ok);
    const until = async (ok: () => boolean, what: string) => {
      const deadline = Date.now() + 15_000;
      while (!ok() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      assert.ok(ok(), what);
    };
    await until(() => aborted.has(`${id}#1`), 'attempt 1 was aborted by the cancel');
    assert.match(aborted.get(`${id}#1`)!, /cancelled/);
    assert.ok((await t.system.transitions.apply(id, { type: 'REDRIVE' })).ok);
    await waitForJob(t.system.store, id, (j) => j.snapshot.value === 'running' && j.snapshot.context.attempt === 2);

    // Read back whatever carried the cancel (any topic), and produce it again, as a redelivery would.
    const kafka = new Kafka({ clientId: 'cancel-reader', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${t.prefix}cancel-reader`, sessionTimeout: 6000, heartbeatInterval: 500 });
    const carriers: Array<{ topic: string; key: string; value: string; headers: Record<string, string> }> = [];
    await consumer.connect();
    try {
      for (const topic of [TOPICS.events, TOPICS.dispatch]) await consumer.subscribe({ topic: `${t.prefix}${topic}`, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ topic, message }) => {
          const value = String(message.value);
          const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, h]) => [k, String(h)]));
          // On ats.events the CANCEL transition may sit in a packed record keyed by another job of its partition.
          const cancelTransition = transitionsOf({ value, headers }).some((tr) => tr.jobId === id && tr.type === 'CANCEL');
          const cancelMessage = String(message.key) === id && (JSON.parse(value) as { kind?: string }).kind === 'cancel';
          if (!cancelTransition && !cancelMessage) return;
          carriers.push({ topic: topic.slice(t.prefix.length), key: String(message.key), value, headers });
        },
      });
      await until(() => carriers.length > 0, 'the message that carried the cancel was read back');
      await new Promise((res) => setTimeout(res, 500)); // the other topic's copy, if any
    } finally {
      await consumer.disconnect();
    }
    asyncApi().assertRecords(carriers);
    const ignoredBefore = t.system.worker!.counters.cancelsIgnored ?? 0;
    await t.system.log.publish(carriers);
    await until(
      () => aborted.has(`${id}#2`) || (t.system.worker!.counters.cancelsIgnored ?? 0) > ignoredBefore,
      'the stale cancel was delivered',
    );
    assert.equal(aborted.get(`${id}#2`), undefined, 'attempt 2 was not aborted by the stale cancel');
    gates.get(`${id}#2`)?.();
    const done = await waitForJob(t.system.store, id, isState('done'), 10_000);
    assert.equal(done.snapshot.context.attempt, 2);
  });
});
