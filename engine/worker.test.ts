/**
 * The worker on the embedded backends (SQLite in memory, the in-process log):
 * cancels fenced by attempt, and outcome writes retried while the lease holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryLog, type MemoryLog } from '../adapters/memory/index.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import { TOPICS, type Clock, type JobRecord, type JobSpec, type JobStore, type Logger } from './ports.js';
import { Relay } from './relay.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { Waker } from './wake.js';
import { MAX_STACK_CHARS, OUTCOME_RETRY_FIRST_MS, OUTCOME_RETRY_MAX_MS, Worker } from './worker.js';

const spec = (type: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...extra,
});

interface Harness {
  store: JobStore;
  log: MemoryLog;
  transitions: TransitionService;
  worker: Worker;
  stop(): Promise<void>;
}

/** A relay and one worker over an in-memory SQLite store and the in-process log. */
async function harness(
  registry: HandlerRegistry,
  opts: { clock?: Clock; logger?: Logger; workerTransitions?: (t: TransitionService) => TransitionService; leaseMs?: number } = {},
): Promise<Harness> {
  const clock = opts.clock ?? systemClock;
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const log = createMemoryLog();
  await log.ensureTopics();
  const waker = new Waker();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  const relay = new Relay({ store, log, transitions, clock, logger: silentLogger, waker }, { batchSize: 100, pollMs: 20, errorBackoffMs: 50, publishedDelayMs: 0 });
  const worker = new Worker(
    { log, transitions: opts.workerTransitions?.(transitions) ?? transitions, clock, logger: opts.logger ?? silentLogger, registry },
    { workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: opts.leaseMs ?? 30_000, heartbeatMs: 10_000, shutdownGraceMs: 200 },
  );
  relay.start();
  await worker.start();
  return {
    store, log, transitions, worker,
    async stop() {
      await worker.stop();
      await relay.stop();
      await log.close();
      await store.close();
    },
  };
}

async function waitFor(store: JobStore, id: string, ok: (j: JobRecord) => boolean, what: string, timeoutMs = 5000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  let last: JobRecord | null = null;
  while (Date.now() < deadline) {
    last = await store.getJob(id);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`job ${id} did not reach ${what} within ${timeoutMs} ms (state ${last?.snapshot.value}, attempt ${last?.snapshot.context.attempt})`);
}

const runningAttempt = (n: number) => (j: JobRecord) => j.snapshot.value === 'running' && j.snapshot.context.attempt === n;

describe('worker: cancels are fenced by attempt', () => {
  it('a CANCEL delivered again while a later attempt runs does not abort that attempt', async () => {
    const aborts = new Map<number, string>();
    const release = new Map<number, () => void>();
    const registry = new HandlerRegistry().register('test.gate', async (_p, ctx) => {
      await new Promise<void>((resolve, reject) => {
        release.set(ctx.attempt, resolve);
        ctx.signal.addEventListener('abort', () => {
          aborts.set(ctx.attempt, String((ctx.signal.reason as Error)?.message ?? ctx.signal.reason));
          reject(ctx.signal.reason);
        });
      });
      return { attempt: ctx.attempt };
    });
    const h = await harness(registry);
    try {
      const r = await h.transitions.submit(spec('test.gate'));
      assert.ok(r.ok);
      const id = r.job.id;
      await waitFor(h.store, id, runningAttempt(1), 'running attempt 1');
      assert.ok((await h.transitions.apply(id, { type: 'CANCEL', reason: 'test' })).ok);
      const deadline = Date.now() + 5000;
      while (!aborts.has(1) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.match(aborts.get(1) ?? '', /cancelled/, 'the running attempt 1 is aborted by the cancel');

      assert.ok((await h.transitions.apply(id, { type: 'REDRIVE' })).ok);
      await waitFor(h.store, id, runningAttempt(2), 'running attempt 2');
      await h.log.drain();

      // Whatever carried the CANCEL to the worker, deliver it again (a redelivery).
      const carriers = Object.values(TOPICS).flatMap((topic) => h.log.messages(topic)).filter((m) => {
        if (m.key !== id) return false;
        const v = JSON.parse(m.value) as { type?: string; kind?: string };
        return v.type === 'CANCEL' || v.kind === 'cancel' || m.headers['ats-kind'] === 'cancel';
      });
      assert.ok(carriers.length > 0, 'the log holds the message that carried the cancel');
      await h.log.publish(carriers.map(({ topic, key, value, headers }) => ({ topic, key, value, headers })));
      await h.log.drain();

      assert.equal(aborts.get(2), undefined, `attempt 2 was aborted by the stale cancel: ${aborts.get(2)}`);
      release.get(2)?.();
      const done = await waitFor(h.store, id, (j) => j.snapshot.value === 'done', 'done', 3000);
      assert.equal(done.snapshot.context.attempt, 2);
      assert.deepEqual(done.snapshot.context.result, { attempt: 2 });
    } finally {
      await h.stop();
    }
  });
});

/** The real service, except that outcome writes (SUCCEEDED/FAILED) throw while `failing()` says so. */
function failingOutcomes(failing: () => boolean, tries: { outcome: number }) {
  return (real: TransitionService): TransitionService => {
    const fake = Object.create(real) as TransitionService;
    fake.applyMany = async (items) => {
      if (items.some((it) => it.event.type === 'SUCCEEDED' || it.event.type === 'FAILED')) {
        tries.outcome++;
        if (failing()) throw new Error('database unavailable (injected)');
      }
      return real.applyMany(items);
    };
    return fake;
  };
}

/** The system clock whose sleeps are recorded, and whose time can be moved ahead. */
function recordingClock(): Clock & { sleeps: number[]; ahead: number } {
  const c = {
    sleeps: [] as number[],
    ahead: 0,
    now: () => Date.now() + c.ahead,
    sleep: (ms: number, signal?: AbortSignal) => {
      c.sleeps.push(ms);
      return systemClock.sleep(Math.min(ms, 20), signal);
    },
  };
  return c;
}

describe('worker: outcome writes are retried while the lease holds', () => {
  const registry = () => new HandlerRegistry().register('test.ok', async (_p, ctx) => ({ attempt: ctx.attempt }));

  it('a SUCCEEDED whose write fails three times is written on the fourth try, with growing pauses', async () => {
    const clock = recordingClock();
    const tries = { outcome: 0 };
    const h = await harness(registry(), { clock, workerTransitions: failingOutcomes(() => tries.outcome <= 3, tries) });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.equal(done.snapshot.context.attempt, 1);
      assert.equal(tries.outcome, 4);
      assert.equal(h.worker.counters.succeeded, 1);
      assert.equal(h.worker.counters.outcomeRetries, 3);
      // The relay polls every 20 ms; the worker's other sleeps are its heartbeat and the job's timeout.
      const pauses = clock.sleeps.filter((ms) => ms >= OUTCOME_RETRY_FIRST_MS && ms <= OUTCOME_RETRY_MAX_MS);
      assert.equal(pauses.length, 3, `pauses between tries: ${clock.sleeps}`);
      assert.ok(pauses[0]! < pauses[1]! && pauses[1]! < pauses[2]!, `pauses grow: ${pauses}`);
    } finally {
      await h.stop();
    }
  });

  it('stops retrying once the lease is over (the timers own the job then)', async () => {
    const clock = recordingClock();
    const tries = { outcome: 0 };
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg), error: (msg) => warnings.push(msg) };
    const h = await harness(registry(), {
      clock, logger, leaseMs: 5000,
      workerTransitions: failingOutcomes(() => {
        if (tries.outcome === 2) clock.ahead = 10_000; // the lease ends while the worker retries
        return true;
      }, tries),
    });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const deadline = Date.now() + 5000;
      while ((tries.outcome < 2 || h.worker.activeCount > 0) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0, 'the worker let go of the attempt');
      const triesThen = tries.outcome;
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(tries.outcome, triesThen, 'no write after the lease ended');
      assert.ok(tries.outcome <= 3, `tries: ${tries.outcome}`);
      assert.ok(warnings.some((w) => /lease/.test(w)), `warned: ${warnings}`);
      assert.equal((await h.store.getJob(r.job.id))?.snapshot.value, 'running');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a failed attempt records the error\'s stack', () => {
  it('FAILED carries the thrown error\'s stack, cut to MAX_STACK_CHARS; a thrown non-Error has none', async () => {
    const registry = new HandlerRegistry()
      .register('test.throws', async function namedThrower() {
        throw new TypeError('bad input');
      })
      .register('test.deep', async () => {
        const err = new Error('deep');
        err.stack = `Error: deep\n${'    at frame (file.js:1:1)\n'.repeat(500)}`;
        throw err;
      })
      .register('test.string', async () => {
        throw 'just a string';
      });
    const h = await harness(registry);
    try {
      const failedEvent = async (type: string) => {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1 }));
        assert.ok(r.ok);
        const job = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
        const failed = (await h.store.getEvents(r.job.id)).find((e) => e.type === 'FAILED');
        assert.ok(failed, `${type}: a FAILED event`);
        return { job, error: (failed.data as { error: { message: string; name?: string; stack?: string } }).error };
      };

      const thrown = await failedEvent('test.throws');
      assert.equal(thrown.error.name, 'TypeError');
      assert.match(thrown.error.stack ?? '', /^TypeError: bad input\n\s+at namedThrower/);
      assert.equal(thrown.job.snapshot.context.lastError?.stack, thrown.error.stack, 'the job\'s lastError keeps it too');

      const deep = await failedEvent('test.deep');
      assert.equal(deep.error.stack?.length, MAX_STACK_CHARS);
      assert.ok(deep.error.stack?.startsWith('Error: deep\n    at frame'));
      assert.ok(deep.error.stack?.endsWith('…'));

      const str = await failedEvent('test.string');
      assert.equal(str.error.message, 'just a string');
      assert.equal('stack' in str.error, false);
    } finally {
      await h.stop();
    }
  });
});
