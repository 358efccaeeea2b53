/**
 * The schema-version header as a worker reads it (SQLite in memory, the
 * in-process log): a dispatch or a cancel of a major version this code does
 * not know (a newer producer) is skipped without a crash and without
 * stalling its partition, and the job is not lost: the timers dispatch it
 * again once the published timeout passed, and it runs. A message without
 * the header (an older producer) is read as version 1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryLog } from '../adapters/memory/index.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import { SCHEMA_HEADER } from './messages.js';
import { TOPICS, type JobRecord, type JobSpec, type LogMessage, type Logger } from './ports.js';
import { Relay, toLogMessage } from './relay.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { Timers } from './timers.js';
import { TransitionService } from './transitions.js';
import { Waker } from './wake.js';
import { Worker } from './worker.js';

const spec = (type: string): JobSpec => ({
  type, payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0,
});

const PUBLISHED_TIMEOUT_MS = 400;

async function harness() {
  const clock = systemClock;
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const log = createMemoryLog();
  await log.ensureTopics();
  const waker = new Waker();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  const runs: Array<{ jobId: string; attempt: number }> = [];
  const aborted = new Map<string, string>();
  const registry = new HandlerRegistry()
    .register('test.count', async (_p, ctx) => void runs.push({ jobId: ctx.jobId, attempt: ctx.attempt }))
    .register('test.block', (_p, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => {
      aborted.set(ctx.jobId, (ctx.signal.reason as { kind?: string }).kind ?? '?');
      reject(ctx.signal.reason);
    })));
  const warnings: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  const logger: Logger = { ...silentLogger, warn: (msg, fields) => void warnings.push({ msg, fields }) };
  const worker = new Worker(
    { log, transitions, clock, logger, registry },
    { workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: 30_000, heartbeatMs: 10_000, shutdownGraceMs: 200 },
  );
  const relay = new Relay({ store, log, transitions, clock, logger: silentLogger, waker }, { batchSize: 100, pollMs: 20, errorBackoffMs: 50, publishedDelayMs: 0 });
  const timers = new Timers({ store, transitions, clock, logger: silentLogger }, { pollMs: 50, batchSize: 100, publishedTimeoutMs: PUBLISHED_TIMEOUT_MS });
  await worker.start();
  /** Publishes what the outbox holds as a producer would, with `headers` changed by `edit`. */
  const publishAs = (edit: (m: LogMessage) => LogMessage) =>
    store.relayOutbox(100, (rows) => log.publish(rows.map((r) => edit(toLogMessage(r)))));
  const waitFor = async (id: string, ok: (j: JobRecord) => boolean, what: string, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    let last: JobRecord | null = null;
    while (Date.now() < deadline) {
      last = await store.getJob(id);
      if (last && ok(last)) return last;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail(`job ${id} did not reach ${what} (state ${last?.snapshot.value})`);
  };
  return {
    store, log, transitions, worker, relay, timers, runs, aborted, warnings, publishAs, waitFor,
    async stop() {
      await worker.stop();
      await relay.stop();
      await timers.stop();
      await log.close();
      await store.close();
    },
  };
}

const withSchema = (version: string | null) => (m: LogMessage): LogMessage => {
  const { [SCHEMA_HEADER]: _, ...headers } = m.headers;
  return { ...m, headers: version === null ? headers : { ...headers, [SCHEMA_HEADER]: version } };
};

describe('worker: the ats-schema header', () => {
  it('skips a dispatch of an unknown major version without stalling; the timers dispatch the job again and it runs once', async () => {
    const h = await harness();
    try {
      const newer = await h.transitions.submit(spec('test.count'));
      assert.ok(newer.ok);
      await h.publishAs(withSchema('2'));
      // Behind it, on whatever partition: messages of a known version (and one without the header).
      const known = await h.transitions.submitMany([spec('test.count'), spec('test.count'), spec('test.count')]);
      await h.publishAs(withSchema('1'));
      const unversioned = await h.transitions.submit(spec('test.count'));
      assert.ok(unversioned.ok);
      await h.publishAs(withSchema(null));
      for (const r of [...known, unversioned]) await h.waitFor(r.job.id, (j) => j.snapshot.value === 'done', 'done');
      await h.log.drain(); // every partition committed: nothing waits behind the skipped record
      assert.equal(h.worker.counters.unknownSchema, 1);
      assert.equal(h.log.pendingCount('ats-workers'), 0);
      assert.ok(h.warnings.some((w) => /unknown schema version/.test(w.msg) && w.fields?.schema === '2' && w.fields?.key === newer.job.id));
      const waiting = (await h.store.getJob(newer.job.id))!;
      assert.equal(waiting.snapshot.value, 'pending', 'not started, not lost');
      assert.equal(h.runs.filter((r) => r.jobId === newer.job.id).length, 0);

      // This version's relay and timers: once the published timeout passed, the job is dispatched again.
      h.relay.start();
      h.timers.start();
      const done = await h.waitFor(newer.job.id, (j) => j.snapshot.value === 'done', 'done after the redispatch', 10_000);
      assert.equal(done.snapshot.context.dispatches, 2);
      const types = (await h.store.getEvents(newer.job.id)).map((e) => e.type);
      assert.ok(types.includes('DISPATCH'), `history ${types}`);
      assert.ok(done.updatedAt - newer.job.createdAt >= PUBLISHED_TIMEOUT_MS, 'redispatched only after the published timeout');
      assert.deepEqual(h.runs.filter((r) => r.jobId === newer.job.id), [{ jobId: newer.job.id, attempt: 1 }]);
      assert.equal(h.worker.counters.unknownSchema, 1);
    } finally {
      await h.stop();
    }
  });

  it('skips a cancel of an unknown major version (the job is cancelled all the same); the same cancel as version 1 aborts the handler', async () => {
    const h = await harness();
    try {
      h.relay.start();
      const [a, b] = await h.transitions.submitMany([spec('test.block'), spec('test.block')]);
      for (const r of [a!, b!]) await h.waitFor(r.job.id, (j) => j.snapshot.value === 'running', 'running');
      await h.relay.stop();
      for (const r of [a!, b!]) assert.ok((await h.transitions.apply(r.job.id, { type: 'CANCEL', reason: 'test' })).ok);
      // Both cancels go out as a newer producer's, then the outbox is empty.
      const sent: LogMessage[] = [];
      await h.publishAs((m) => {
        sent.push(m);
        return m.topic === TOPICS.dispatch ? withSchema('3.0')(m) : m;
      });
      await h.log.drain();
      assert.equal(h.worker.counters.unknownSchema, 2);
      assert.equal(h.warnings.filter((w) => /unknown schema version/.test(w.msg)).length, 1, 'one warning a minute per version');
      assert.equal(h.aborted.size, 0, 'neither cancel was read');
      // The same cancel of b again, as this version writes it: b's handler is aborted.
      const cancelOfB = sent.find((m) => m.key === b!.job.id && m.headers['ats-kind'] === 'cancel');
      assert.ok(cancelOfB);
      await h.log.publish([cancelOfB]);
      await h.log.drain();
      assert.equal(h.aborted.get(b!.job.id), 'cancelled');
      assert.equal(h.aborted.has(a!.job.id), false);
      assert.equal((await h.store.getJob(a!.job.id))!.snapshot.value, 'cancelled', 'a is cancelled whatever its handler does');
    } finally {
      await h.stop();
    }
  });
});
