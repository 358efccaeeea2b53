/**
 * The worker on the embedded backends (SQLite in memory, the in-process log):
 * cancels fenced by attempt, and outcome writes retried while the lease holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryLog, type MemoryLog } from '../adapters/memory/index.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { JOB_MACHINE_VERSION } from '../machines/job.machine.js';
import { MAX_NESTING_DEPTH } from '../machines/json-integers.js';
import type { FailureAdvice, LeaseAdvice } from './advisor/types.js';
import { NonRetryableError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import {
  TOPICS, type Clock, type EventLog, type Handler, type HandlerContext, type JobRecord, type JobSpec, type JobStore, type LogMessage, type Logger, type ProgressStore, type Subscription,
} from './ports.js';
import { PROGRESS_INTERVAL_MS } from './progress.js';
import { Relay } from './relay.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { Timers } from './timers.js';
import { TransitionService } from './transitions.js';
import { writeMachineVersion } from '../tests/helpers/stores.js';
import { Waker } from './wake.js';
import {
  BLOCKING_WARN_MS, MAX_ERROR_MESSAGE_CHARS, MAX_RESULT_BYTES, MAX_STACK_CHARS, OUTCOME_RETRY_FIRST_MS, OUTCOME_RETRY_MAX_MS, SHUTDOWN_IN_FLIGHT_MS, SHUTDOWN_WRITE_MS, Worker,
  type WorkerDeps,
} from './worker.js';

const spec = (type: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...extra,
});

interface Harness {
  store: JobStore & ProgressStore;
  log: MemoryLog;
  transitions: TransitionService;
  worker: Worker;
  stop(): Promise<void>;
}

/** A relay and one worker over an in-memory SQLite store and the in-process log. */
async function harness(
  registry: HandlerRegistry,
  opts: {
    clock?: Clock; logger?: Logger; workerTransitions?: (t: TransitionService) => TransitionService; leaseMs?: number;
    /** The worker's clock, when not the store's and the transitions' (`clock`). */
    workerClock?: Clock;
    /** @defaultValue 10000 */
    heartbeatMs?: number;
    /** Run the timers too (every 20 ms): leases expire, retries come due. */
    timers?: boolean;
    advisor?: WorkerDeps['advisor'];
    /** The queues served. @defaultValue ['default'] (a worker serving every queue would also sleep between looks for new lanes) */
    queues?: string[];
    /** The log as the worker sees it (the relay publishes to the real one). */
    workerLog?: (log: MemoryLog) => EventLog;
    /** Store handlers' progress (`ctx.progress`) in the job store. */
    progress?: boolean;
  } = {},
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
    {
      log: opts.workerLog?.(log) ?? log, transitions: opts.workerTransitions?.(transitions) ?? transitions, clock: opts.workerClock ?? clock, logger: opts.logger ?? silentLogger, registry,
      ...(opts.advisor ? { advisor: opts.advisor } : {}), ...(opts.progress ? { progress: store } : {}),
    },
    {
      workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: opts.leaseMs ?? 30_000, heartbeatMs: opts.heartbeatMs ?? 10_000, shutdownGraceMs: 200,
      queues: opts.queues ?? ['default'],
    },
  );
  const timers = opts.timers ? new Timers({ store, transitions, clock, logger: silentLogger }, { pollMs: 20, batchSize: 100, publishedTimeoutMs: 60_000 }) : null;
  relay.start();
  timers?.start();
  await worker.start();
  return {
    store, log, transitions, worker,
    async stop() {
      await worker.stop();
      await timers?.stop();
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
    // Every message as published: the log drops a record once its groups have read it.
    const published: LogMessage[] = [];
    const publish = h.log.publish.bind(h.log);
    h.log.publish = (messages) => (published.push(...messages), publish(messages));
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

      // The cancel control message of attempt 1, delivered again to the worker (a redelivery).
      const carriers = published.filter((m) => m.key === id && m.headers['ats-kind'] === 'cancel');
      assert.equal(carriers.length, 1, 'one cancel message was published, for attempt 1');
      assert.equal((JSON.parse(carriers[0]!.value) as { attempt: number }).attempt, 1);
      const ignoredBefore = h.worker.counters.cancelsIgnored;
      await h.log.publish(carriers);
      await h.log.drain();

      assert.equal(h.worker.counters.cancelsIgnored, ignoredBefore + 1, 'the worker read the stale cancel, and ignored it');
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

type ApplyItems = Parameters<TransitionService['applyMany']>[0];

/** The real service, except that `before(items)` runs first in each `applyMany` (a throw there is a failed write). */
function beforeApplyMany(before: (items: ApplyItems) => void | Promise<void>) {
  return (real: TransitionService): TransitionService => {
    const fake = Object.create(real) as TransitionService;
    fake.applyMany = async (items) => {
      await before(items);
      return real.applyMany(items);
    };
    return fake;
  };
}

/** The real service, except that outcome writes (SUCCEEDED/FAILED) throw while `failing()` says so. */
function failingOutcomes(failing: () => boolean, tries: { outcome: number }) {
  return beforeApplyMany((items) => {
    if (items.some((it) => it.event.type === 'SUCCEEDED' || it.event.type === 'FAILED')) {
      tries.outcome++;
      if (failing()) throw new Error('database unavailable (injected)');
    }
  });
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

/** Sleeps of a minute or more (the job's own timeout) never end, unless aborted: only the lease decides in these tests. */
function holdLongSleeps(clock: Clock): void {
  const short = clock.sleep;
  clock.sleep = (ms, signal) => (ms >= 60_000 ? new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true })) : short(ms, signal));
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

  it('logs a write that keeps failing once, not each try, and says once that it was written', async () => {
    const clock = recordingClock();
    const tries = { outcome: 0 };
    const lines: Array<[string, string, unknown]> = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (msg, fields) => void lines.push(['warn', msg, fields?.jobId]),
      info: (msg, fields) => void lines.push(['info', msg, fields?.jobId]),
      error: (msg, fields) => void lines.push(['error', msg, fields?.jobId]),
    };
    const h = await harness(registry(), { clock, logger, workerTransitions: failingOutcomes(() => tries.outcome <= 8, tries) });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.ok(h.worker.counters.outcomeRetries >= 4, `retries: ${h.worker.counters.outcomeRetries}`);
      const outcomeLines = lines.filter(([, msg]) => /outcome/.test(msg));
      assert.deepEqual(outcomeLines, [
        ['warn', 'worker: outcome write failed, will retry', r.job.id],
        ['info', 'worker: outcome written after failed tries', r.job.id],
      ]);
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

  it('retries within the lease as a heartbeat extended it, not as the claim first set it', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const tries = { outcome: 0 };
    const registry = new HandlerRegistry().register('test.long', async (_p, ctx) => {
      clock.ahead = 4_000;
      await ctx.heartbeat(); // the lease now ends 5 s from here, 9 s after the claim
      clock.ahead = 8_000; // past the claim's lease of 5 s, well within the extended one
      return 'ok';
    });
    const h = await harness(registry, { clock, leaseMs: 5000, workerTransitions: failingOutcomes(() => tries.outcome === 1, tries) });
    try {
      const r = await h.transitions.submit(spec('test.long', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.equal(done.snapshot.context.result, 'ok');
      assert.equal(tries.outcome, 2, 'the failed write was tried again');
      assert.equal(h.worker.counters.outcomeRetries, 1);
    } finally {
      await h.stop();
    }
  });

  it('makes no try that could only land after the lease: a pause that would end past it ends the retries', async () => {
    const clock = recordingClock();
    const tries = { outcome: 0 };
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg) };
    const h = await harness(registry(), {
      clock, logger, leaseMs: 5000,
      workerTransitions: failingOutcomes(() => {
        clock.ahead = 5000 - (OUTCOME_RETRY_FIRST_MS - 10); // the lease is still on, for less than the first pause
        return true;
      }, tries),
    });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const deadline = Date.now() + 5000;
      while ((tries.outcome < 1 || h.worker.activeCount > 0) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0, 'the worker let go of the attempt');
      assert.equal(tries.outcome, 1, 'no second try: it could not land before the lease ended');
      assert.equal(h.worker.counters.outcomeRetries, 0);
      assert.ok(warnings.some((w) => /not written before the lease ended/.test(w)), `warned: ${warnings}`);
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a late outcome of an earlier attempt', () => {
  it('leaves the attempt that took its place running here: a cancel still reaches that one', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const aborted = new Map<number, string>();
    const registry = new HandlerRegistry().register('test.twice', async (_p, ctx) => {
      if (ctx.attempt === 1) return 'first';
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      aborted.set(ctx.attempt, String((ctx.signal.reason as Error | undefined)?.message));
      return 'second';
    });
    // Attempt 1's outcome write hangs (a slow database) until attempt 2 runs here.
    let outcomeHeld!: () => void;
    const held = new Promise<void>((resolve) => (outcomeHeld = resolve));
    const writing = { first: false };
    const slow = beforeApplyMany(async (items) => {
      if (!items.some((it) => it.event.type === 'SUCCEEDED' && it.event.attempt === 1)) return;
      writing.first = true;
      await held;
    });
    const h = await harness(registry, { clock, leaseMs: 5000, workerTransitions: slow });
    try {
      const r = await h.transitions.submit(spec('test.twice', { backoff: { kind: 'fixed', delayMs: 0 } }));
      assert.ok(r.ok);
      const id = r.job.id;
      const deadline = Date.now() + 5000;
      while (!writing.first && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.ok(writing.first, 'attempt 1 is writing its outcome');
      clock.ahead = 10_000; // its lease ended meanwhile: the timers take the job back, and this worker claims attempt 2
      assert.ok((await h.transitions.apply(id, { type: 'LEASE_EXPIRED', attempt: 1 })).ok);
      assert.ok((await h.transitions.apply(id, { type: 'RETRY_DUE' })).ok);
      await waitFor(h.store, id, runningAttempt(2), 'running attempt 2');
      outcomeHeld();
      while (h.worker.counters.lateOutcomes === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.counters.lateOutcomes, 1, 'attempt 1\'s outcome came late and was refused');
      assert.equal(h.worker.activeCount, 1, 'attempt 2 still runs here');
      assert.ok((await h.transitions.apply(id, { type: 'CANCEL', reason: 'test' })).ok);
      while (!aborted.has(2) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.match(aborted.get(2) ?? '', /cancelled/, 'the cancel aborted attempt 2');
    } finally {
      await h.stop();
    }
  });
});

/**
 * The worker's wait for its last writes at shutdown ({@link SHUTDOWN_WRITE_MS}) ends only when
 * `release()` is called (or is aborted): these tests decide when the bound has passed.
 */
function holdShutdownWrites(clock: Clock): { release(): void; started(): boolean } {
  return holdSleeps(clock, (ms) => ms === SHUTDOWN_WRITE_MS);
}

/** Sleeps whose length `held(ms)` picks end only when `release()` is called (or are aborted); `started()`: one is held. */
function holdSleeps(clock: Clock, held: (ms: number) => boolean): { release(): void; started(): boolean } {
  const short = clock.sleep;
  const releases: Array<() => void> = [];
  let released = false;
  clock.sleep = (ms, signal) => {
    if (!held(ms)) return short(ms, signal);
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      if (released) return resolve();
      releases.push(resolve);
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  };
  return {
    release: () => {
      released = true;
      for (const r of releases.splice(0)) r();
    },
    started: () => releases.length > 0,
  };
}

/** `p`'s outcome, or 'hung' if it has not settled after `ms` of real time (a check that a hang fails instead of hanging). */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<'settled' | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([p.then(() => 'settled' as const), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until each job runs its first attempt and its handler (which adds its job id to `entered`) has begun. */
async function handlersRunning(h: Awaited<ReturnType<typeof harness>>, ids: readonly string[], entered: ReadonlySet<string>): Promise<void> {
  for (const id of ids) await waitFor(h.store, id, runningAttempt(1), 'running attempt 1');
  const deadline = Date.now() + 5000;
  while (ids.some((id) => !entered.has(id)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  assert.ok(ids.every((id) => entered.has(id)), 'every handler runs');
}

/**
 * A worker whose outcome writes go through `onOutcome` (told the outcome's
 * type and a write that hangs until `failHung()`), its shutdown bound held
 * until `bound.release()`, its warnings and infos in `lines`. `submitBoth`
 * runs a quick job and one whose handler stops only when aborted, and
 * answers their ids once both handlers run.
 */
async function quickAndLongBehindHungWrites(onOutcome: (outcome: string, hung: Promise<void>) => Promise<void>) {
  const clock = recordingClock();
  holdLongSleeps(clock);
  const bound = holdShutdownWrites(clock);
  const lines: string[] = [];
  const logger: Logger = { ...silentLogger, warn: (msg) => lines.push(msg), info: (msg) => lines.push(msg) };
  let failHung!: () => void;
  const hung = new Promise<void>((_, reject) => (failHung = () => reject(new Error('database unavailable (injected)'))));
  hung.catch(() => undefined);
  const stuck = beforeApplyMany(async (items) => {
    const outcome = items.find((it) => it.event.type === 'SUCCEEDED' || it.event.type === 'FAILED');
    if (outcome) await onOutcome(outcome.event.type, hung);
  });
  const entered = new Set<string>();
  const registry = new HandlerRegistry()
    .register('test.quick', async (_p, ctx) => void entered.add(ctx.jobId))
    .register('test.long', async (_p, ctx) => {
      entered.add(ctx.jobId);
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
  const h = await harness(registry, { clock, logger, workerTransitions: stuck });
  const submitBoth = async (): Promise<[string, string]> => {
    const quick = await h.transitions.submit(spec('test.quick', { maxAttempts: 1 }));
    const long = await h.transitions.submit(spec('test.long', { maxAttempts: 1 }));
    assert.ok(quick.ok && long.ok);
    await handlersRunning(h, [quick.job.id, long.job.id], entered);
    return [quick.job.id, long.job.id];
  };
  return { h, bound, lines, failHung, submitBoth };
}

describe('worker: a handler still running when the shutdown grace runs out', () => {
  it('ends its attempt as a retryable failure naming the shutdown: retrying with attempts left, dead without, no lease expiry', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    holdShutdownWrites(clock); // stop() ends only once the outcomes are written
    const entered = new Set<string>();
    const registry = new HandlerRegistry()
      .register('test.polite', async (_p, ctx) => {
        entered.add(ctx.jobId);
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
      })
    const h = await harness(registry, { clock });
    try {
      const polite = await h.transitions.submit(spec('test.polite', { maxAttempts: 3 }));
      const last = await h.transitions.submit(spec('test.polite', { maxAttempts: 1 }));
      assert.ok(polite.ok && last.ok);
      const ids = [polite.job.id, last.job.id];
      await handlersRunning(h, ids, entered);

      assert.equal(await settledWithin(h.worker.stop(), 10_000), 'settled', 'stop() ended');

      const retrying = (await h.store.getJob(polite.job.id))!;
      assert.equal(retrying.snapshot.value, 'retrying', 'attempts left: retried after its backoff, not left running');
      const dead = (await h.store.getJob(last.job.id))!;
      assert.equal(dead.snapshot.value, 'dead', 'no attempt left: dead at once');
      for (const job of [retrying, dead]) {
        const err = job.snapshot.context.lastError;
        assert.equal(err?.attempt, 1, 'the interrupted attempt counts');
        assert.equal(err?.name, 'WorkerShutdown');
        assert.equal(err?.retryable, true);
        assert.match(err?.message ?? '', /worker w1 shut down before the handler finished \(its 200 ms shutdown grace ran out\)/);
        const events = await h.store.getEvents(job.id);
        assert.ok(!events.some((e) => e.type === 'LEASE_EXPIRED'), 'no lease expiry');
        assert.equal(events.filter((e) => e.type === 'FAILED').length, 1);
      }
      assert.ok(retrying.snapshot.context.runAt > retrying.snapshot.context.updatedAt, 'the retry waits for its backoff');
      assert.equal(h.worker.counters.failed, 2);
      assert.equal(h.worker.activeCount, 0);
    } finally {
      await h.stop();
    }
  });

  it('a handler that reports progress on its way out still ends its attempt as WorkerShutdown: the report does not hold it', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    holdShutdownWrites(clock); // stop() ends only once the outcome is written: a handler held by its report would hang it
    const entered = new Set<string>();
    const registry = new HandlerRegistry()
      .register('test.reporting', async (_p, ctx) => {
        await ctx.progress(10);
        entered.add(ctx.jobId);
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        await ctx.progress(60); // where it got to, reported as it stops
        throw ctx.signal.reason;
      });
    const h = await harness(registry, { clock, progress: true });
    try {
      const r = await h.transitions.submit(spec('test.reporting', { maxAttempts: 3 }));
      assert.ok(r.ok);
      await handlersRunning(h, [r.job.id], entered);
      assert.equal(await settledWithin(h.worker.stop(), 10_000), 'settled', 'stop() ended');
      const job = (await h.store.getJob(r.job.id))!;
      assert.deepEqual([job.snapshot.value, job.snapshot.context.lastError?.name], ['retrying', 'WorkerShutdown']);
      assert.equal((await h.store.getProgress(r.job.id))?.value, 60, 'its last report was written before the outcome');
    } finally {
      await h.stop();
    }
  });

  it('a store that does not answer then does not hold stop(): past the bound the attempts are left to their leases', async () => {
    // Outcome writes hang (a database that stopped answering) until the test lets them fail.
    const writes = { outcome: 0 };
    const { h, bound, lines, failHung, submitBoth } = await quickAndLongBehindHungWrites(async (outcome, hung) => {
      writes.outcome++;
      await hung;
    });
    try {
      const [quick, long] = await submitBoth();
      let deadline = Date.now() + 5000;
      while (writes.outcome < 1 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(writes.outcome, 1, 'the quick job\'s outcome write hangs');

      const stopped = h.worker.stop();
      // The grace runs out: the long attempt is ended, and its failure goes to the store (queued behind the hung write).
      deadline = Date.now() + 5000;
      while (!lines.some((l) => /interrupted by the shutdown/.test(l)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.ok(lines.some((l) => /interrupted by the shutdown; recording it as failed/.test(l)), `logged: ${lines}`);
      assert.ok(bound.started(), 'the last writes are waited for, within the bound');
      bound.release(); // the bound passes: the store has still not answered

      assert.equal(await settledWithin(stopped, 5000), 'settled', 'stop() ended although the store never answered');
      assert.ok(lines.some((l) => /attempts not ended in time at shutdown/.test(l)), `logged: ${lines}`);
      for (const id of [quick, long]) {
        assert.equal((await h.store.getJob(id))?.snapshot.value, 'running', 'nothing written: its lease expiry recovers it, as today');
      }
    } finally {
      failHung();
      await h.stop();
    }
  });

  it('records the attempt only once its handler stopped; a handler that does not stop within the bound is left to its lease', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const bound = holdShutdownWrites(clock);
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => lines.push(msg) };
    let letGo!: () => void;
    const slowCleanup = new Promise<void>((r) => (letGo = r));
    const entered = new Set<string>();
    const registry = new HandlerRegistry()
      .register('test.slow', async (_p, ctx) => {
        entered.add(ctx.jobId);
        // Reacts to its signal, but its cleanup takes a while.
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        await slowCleanup;
        throw ctx.signal.reason;
      })
      .register('test.deaf', async (_p, ctx) => {
        entered.add(ctx.jobId);
        await new Promise(() => {}); // ignores its signal, and never ends
      });
    const h = await harness(registry, { clock, logger });
    try {
      const slow = await h.transitions.submit(spec('test.slow', { maxAttempts: 3 }));
      const deaf = await h.transitions.submit(spec('test.deaf', { maxAttempts: 1 }));
      assert.ok(slow.ok && deaf.ok);
      await handlersRunning(h, [slow.job.id, deaf.job.id], entered);
      const deadline = Date.now() + 5000;

      const stopped = h.worker.stop();
      while (!bound.started() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.ok(bound.started(), 'the grace ran out: the handlers are aborted');
      await new Promise((res) => setTimeout(res, 100));
      assert.equal((await h.store.getJob(slow.job.id))?.snapshot.value, 'running', 'no retry while its handler still cleans up');
      assert.ok(!(await h.store.getEvents(slow.job.id)).some((e) => e.type === 'FAILED'));

      letGo();
      const retrying = await waitFor(h.store, slow.job.id, (j) => j.snapshot.value === 'retrying', 'retrying once its handler stopped');
      assert.equal(retrying.snapshot.context.lastError?.name, 'WorkerShutdown');

      bound.release(); // the bound passes with the deaf handler still running
      assert.equal(await settledWithin(stopped, 5000), 'settled', 'stop() ended');
      assert.equal((await h.store.getJob(deaf.job.id))?.snapshot.value, 'running', 'left to its lease: nothing starts beside its handler');
      assert.ok(!(await h.store.getEvents(deaf.job.id)).some((e) => e.type === 'FAILED'));
      assert.ok(lines.some((l) => /did not stop when aborted at shutdown; its attempt is left to its lease/.test(l)), `logged: ${lines}`);
    } finally {
      await h.stop();
    }
  });

  it('a crash still writes nothing: the interrupted attempt is left to its lease', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const entered = new Set<string>();
    const registry = new HandlerRegistry().register('test.long', async (_p, ctx) => {
      entered.add(ctx.jobId);
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    const h = await harness(registry, { clock });
    try {
      const r = await h.transitions.submit(spec('test.long', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await handlersRunning(h, [r.job.id], entered);
      const deadline = Date.now() + 5000;
      await h.worker.crash();
      while (h.worker.activeCount > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0);
      await new Promise((res) => setTimeout(res, 50));
      assert.equal((await h.store.getJob(r.job.id))?.snapshot.value, 'running');
      assert.ok(!(await h.store.getEvents(r.job.id)).some((e) => e.type === 'FAILED'), 'no outcome written');
    } finally {
      await h.stop();
    }
  });
});

describe('relay loop (the harness\'s)', () => {
  it('records PUBLISHED on a dispatch that went out and waits for a worker', async () => {
    const h = await harness(new HandlerRegistry());
    try {
      const r = await h.transitions.submit(spec('test.unserved')); // no handler here: no worker starts it
      assert.ok(r.ok);
      const published = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'published', 'published', 3000);
      assert.equal(published.snapshot.context.attempt, 0);
    } finally {
      await h.stop();
    }
  });
});

/** `test.ok` handlers that wait until `release()` (so the outcomes of those started end at once, in one batch); `started()` counts them. */
function heldHandlers(): { registry: HandlerRegistry; release: () => void; started: () => number } {
  let go!: () => void;
  const gate = new Promise<void>((r) => (go = r));
  let started = 0;
  const registry = new HandlerRegistry().register('test.ok', async () => {
    started++;
    await gate;
    return 'ok';
  });
  return { registry, release: () => go(), started: () => started };
}

describe('worker: one outcome the store keeps refusing', () => {
  it('does not hold back the outcomes batched with it: a failed batch is tried item by item', async () => {
    const { registry, release, started } = heldHandlers();
    const poison: { id?: string } = {};
    const batches: number[] = [];
    const refusing = beforeApplyMany((items) => {
      if (items.some((it) => it.event.type === 'SUCCEEDED')) {
        batches.push(items.length);
        if (items.some((it) => it.jobId === poison.id)) throw new Error('packet too large (injected)');
      }
    });
    const retried = new Set<unknown>();
    const logger: Logger = { ...silentLogger, warn: (msg, fields) => { if (/outcome write failed/.test(msg)) retried.add(fields?.jobId); } };
    const h = await harness(registry, { clock: recordingClock(), workerTransitions: refusing, logger });
    try {
      const [a, b] = await h.transitions.submitMany([spec('test.ok', { maxAttempts: 1 }), spec('test.ok', { maxAttempts: 1 })]);
      assert.ok(a!.ok && b!.ok);
      poison.id = a!.job.id;
      const deadline = Date.now() + 5000;
      while (started() < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      release();
      const done = await waitFor(h.store, b!.job.id, (j) => j.snapshot.value === 'done', 'done', 2000);
      assert.equal(done.snapshot.context.result, 'ok');
      assert.equal(batches[0], 2, `the two outcomes went in one batch first: ${batches}`);
      assert.ok(!retried.has(b!.job.id), 'the other outcome was written without a retry');
      // Its retry is logged once the item-by-item tries settled, which may be just after the other one committed.
      const retryDeadline = Date.now() + 2000;
      while (!retried.has(a!.job.id) && Date.now() < retryDeadline) await new Promise((res) => setTimeout(res, 5));
      assert.ok(retried.has(a!.job.id), 'the refused one is retried');
      assert.equal((await h.store.getJob(a!.job.id))!.snapshot.value, 'running', 'the refused one waits for its retries or its lease');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a batch of outcomes that committed but whose answer was lost', () => {
  it('counts each outcome as written (succeeded), not as a late outcome', async () => {
    const { registry, release, started } = heldHandlers();
    const batches: number[] = [];
    let lost = false;
    const lostAnswer = (real: TransitionService): TransitionService => {
      const fake = Object.create(real) as TransitionService;
      fake.applyMany = async (items) => {
        const r = await real.applyMany(items);
        if (items.some((it) => it.event.type === 'SUCCEEDED')) {
          batches.push(items.length);
          if (!lost && items.length > 1) {
            lost = true;
            throw Object.assign(new Error('connection lost awaiting COMMIT (injected)'), { code: 'ATS_ERR_STORE_UNAVAILABLE' });
          }
        }
        return r;
      };
      return fake;
    };
    const late: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => { if (/late outcome/.test(msg)) late.push(msg); } };
    const h = await harness(registry, { workerTransitions: lostAnswer, logger });
    try {
      const [a, b] = await h.transitions.submitMany([spec('test.ok', { maxAttempts: 1 }), spec('test.ok', { maxAttempts: 1 })]);
      assert.ok(a!.ok && b!.ok);
      await until(() => started() === 2, 'both handlers run');
      release();
      for (const r of [a!, b!]) await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done', 2000);
      await until(() => h.worker.activeCount === 0, 'both attempts end here');
      assert.deepEqual(batches, [2, 1, 1], 'one batch (committed, its answer lost), then each alone (refused: already written)');
      assert.equal(h.worker.counters.succeeded, 2);
      assert.equal(h.worker.counters.lateOutcomes, 0);
      assert.deepEqual(late, [], 'no late outcome logged');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a job that goes dead is logged', () => {
  it('a warning for the first of a type in a minute (its job, attempt and error); the others at debug, counted on the next warning', async () => {
    const clock = recordingClock();
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields: fields ?? {} });
    const logger: Logger = { ...silentLogger, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const registry = new HandlerRegistry()
      .register('test.doomed', async () => { throw new RangeError('no such account\nat all'); })
      .register('test.flaky', async () => { throw new Error('once'); });
    const h = await harness(registry, { clock, logger });
    try {
      const submit = async (type: string, maxAttempts: number) => {
        const r = await h.transitions.submit(spec(type, { maxAttempts }));
        assert.ok(r.ok);
        return r.job.id;
      };
      const dead = (id: string) => waitFor(h.store, id, (j) => j.snapshot.value === 'dead', 'dead');
      const first = await submit('test.doomed', 1);
      await dead(first);
      for (const id of [await submit('test.doomed', 1), await submit('test.doomed', 1)]) await dead(id);
      // A failure with attempts left: retrying, nothing said.
      const flaky = await submit('test.flaky', 2);
      await waitFor(h.store, flaky, (j) => j.snapshot.value === 'retrying', 'retrying');
      const deadLines = () => lines.filter((l) => /^worker: job dead/.test(l.msg));
      assert.deepEqual(deadLines().map((l) => l.level), ['warn', 'debug', 'debug']);
      assert.deepEqual(deadLines()[0]!.fields, {
        jobId: first, type: 'test.doomed', queue: 'default', attempt: 1, maxAttempts: 1, error: 'RangeError: no such account\nat all', retryable: true, repeated: 0,
      });
      // A minute later: a warning again, counting the two said at debug since.
      clock.ahead = 61_000;
      const later = await submit('test.doomed', 1);
      await dead(later);
      assert.deepEqual(deadLines().map((l) => l.level), ['warn', 'debug', 'debug', 'warn']);
      assert.deepEqual([deadLines()[3]!.fields.jobId, deadLines()[3]!.fields.repeated], [later, 2]);
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

describe('worker: whatever a handler throws is recorded as its failure', () => {
  it('a value without a prototype, an unreadable name or message, a plain or cyclic object: the attempt fails with the value as text, at once', async () => {
    const cyclic: Record<string, unknown> = { code: 'E_LOOP' };
    cyclic.self = cyclic;
    const badName = new Error('named oddly');
    (badName as { name: unknown }).name = { toString() { throw new Error('no text'); } };
    const badMessage = new Error('x');
    (badMessage as { message: unknown }).message = Object.create(null);
    const registry = new HandlerRegistry()
      .register('test.nullproto', async () => { throw Object.create(null); })
      .register('test.badname', async () => { throw badName; })
      .register('test.badmessage', async () => { throw badMessage; })
      .register('test.plain', async () => { throw { code: 'E_RATE', status: 429 }; })
      .register('test.cyclic', async () => { throw cyclic; });
    const h = await harness(registry);
    try {
      const lastError = async (type: string) => {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1 }));
        assert.ok(r.ok);
        // Recorded at once, not left running until its lease expires.
        const job = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', `${type} dead`);
        assert.equal(job.snapshot.context.lastError?.attempt, 1);
        return job.snapshot.context.lastError!;
      };
      assert.equal((await lastError('test.nullproto')).message, '[Object: null prototype] {}');
      const named = await lastError('test.badname');
      assert.equal(named.message, 'named oddly');
      assert.match(named.name ?? '', /toString/);
      assert.equal((await lastError('test.badmessage')).message, '[Object: null prototype] {}');
      assert.equal((await lastError('test.plain')).message, "{ code: 'E_RATE', status: 429 }");
      assert.equal((await lastError('test.cyclic')).message, "<ref *1> { code: 'E_LOOP', self: [Circular *1] }");
    } finally {
      await h.stop();
    }
  });

  it('a revoked proxy, or one whose prototype cannot be read: the attempt fails with the value as text, at once', async () => {
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    const noPrototype = new Proxy({}, { getPrototypeOf() { throw new Error('no prototype here'); } });
    const registry = new HandlerRegistry()
      .register('test.revoked', async () => { throw revocable.proxy; })
      .register('test.noproto', async () => { throw noPrototype; });
    const h = await harness(registry);
    try {
      for (const [type, message] of [['test.revoked', '<Revoked Proxy>'], ['test.noproto', '{}']] as const) {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1 }));
        assert.ok(r.ok);
        // Recorded at once, not left running until its lease expires.
        const job = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', `${type} dead`);
        assert.equal(job.snapshot.context.lastError?.message, message, type);
        assert.equal(job.snapshot.context.lastError?.retryable, true, type);
      }
    } finally {
      await h.stop();
    }
  });

  it('the causes of the thrown error follow its stack, so "fetch failed" keeps why', async () => {
    const registry = new HandlerRegistry()
      .register('test.fetch', async () => {
        const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
        throw new TypeError('fetch failed', { cause: refused });
      })
      .register('test.self', async () => {
        const e = new Error('its own cause');
        (e as { cause?: unknown }).cause = e;
        throw e;
      })
      .register('test.text', async () => { throw new Error('wrapped', { cause: 'a plain reason' }); });
    const h = await harness(registry);
    try {
      const lastError = async (type: string) => {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1 }));
        assert.ok(r.ok);
        return (await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', `${type} dead`)).snapshot.context.lastError!;
      };
      const fetch = await lastError('test.fetch');
      assert.equal(fetch.message, 'fetch failed');
      assert.match(fetch.stack ?? '', /^TypeError: fetch failed\n\s+at [^]*\nCaused by: Error: connect ECONNREFUSED 127\.0\.0\.1:9\n\s+at /);
      const self = await lastError('test.self');
      assert.equal(self.stack?.includes('Caused by'), false, 'a cause that is the error itself is not followed');
      assert.match((await lastError('test.text')).stack ?? '', /\nCaused by: a plain reason$/);
    } finally {
      await h.stop();
    }
  });
});

describe('worker: the job\'s own timeout is told apart from a handler\'s error of the same name', () => {
  it('FAILED carries timedOut when the job\'s timeout ended the attempt, and not when the handler threw a TimeoutError of its own', async () => {
    const registry = new HandlerRegistry()
      // What a fetch given AbortSignal.timeout() rejects with, long before the job's timeout.
      .register('test.own-timeout', async () => {
        throw new DOMException('the request took too long', 'TimeoutError');
      })
      .register('test.overrun', (_p, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)));
    const h = await harness(registry);
    try {
      const failed = async (type: string, timeoutMs: number) => {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1, timeoutMs }));
        assert.ok(r.ok);
        const job = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
        const event = (await h.store.getEvents(r.job.id)).find((e) => e.type === 'FAILED');
        assert.ok(event, `${type}: a FAILED event`);
        return { job, error: (event.data as { error: { name?: string; stack?: string; timedOut?: true } }).error };
      };
      const own = await failed('test.own-timeout', 60_000);
      assert.equal(own.error.name, 'TimeoutError', 'the handler\'s error keeps its name');
      assert.equal(own.error.timedOut, undefined);
      assert.ok(own.error.stack);
      const overrun = await failed('test.overrun', 50);
      assert.equal(overrun.error.name, 'TimeoutError');
      assert.equal(overrun.error.timedOut, true);
      assert.equal(overrun.job.snapshot.context.lastError?.timedOut, true, 'the job\'s lastError says so too');
    } finally {
      await h.stop();
    }
  });
});

/**
 * The STARTED's lease is `ms` long: the worker reads the clock before the claim's transaction
 * stamps the event, so `leaseUntil - at` may fall short of it by the time in between.
 */
function assertLease(started: { at: number; data: unknown }, ms: number, message: string): void {
  const length = (started.data as { leaseUntil: number }).leaseUntil - started.at;
  assert.ok(length <= ms && length > ms - 1_000, `${message}: ${length} ms`);
}

describe('worker: the advisor\'s decisions (enforce) go into the events the machine takes', () => {
  /** An advisor that answers what the test scripts, and records what it was asked. */
  function scripted(answers: { failure?: (message: string) => FailureAdvice | null; lease?: LeaseAdvice | null }) {
    const asked: Array<{ message: string; attempt: number; attemptBase: number }> = [];
    const leasesAsked: string[] = [];
    const claims: Array<{ pair: string; lease: LeaseAdvice | null }> = [];
    const advisor: NonNullable<WorkerDeps['advisor']> = {
      adviseFailure: (job, error, attempt) => {
        asked.push({ message: error.message, attempt, attemptBase: job.snapshot.context.attemptBase });
        return answers.failure?.(error.message) ?? null;
      },
      leaseFor: (type, queue) => {
        leasesAsked.push(`${type}/${queue}`);
        return answers.lease ?? null;
      },
      claimed: (type, queue, lease) => {
        claims.push({ pair: `${type}/${queue}`, lease });
      },
    };
    return { advisor, asked, leasesAsked, claims };
  }

  it('a hopeless failure is recorded as not retryable, decided by the advisor, with its reason: the job goes dead with attempts left', async () => {
    const registry = new HandlerRegistry().register('test.missing', async () => {
      throw new Error('order 42 not found');
    });
    const a = scripted({ failure: () => ({ signature: 'Error: order # not found', retryable: false, reason: 'no retry recovered in 0 of 40 runs' }) });
    const h = await harness(registry, { advisor: a.advisor });
    try {
      const r = await h.transitions.submit(spec('test.missing', { maxAttempts: 5 }));
      assert.ok(r.ok);
      const job = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      assert.equal(job.snapshot.context.attempt, 1, 'one attempt of five');
      assert.deepEqual(job.snapshot.context.lastError, {
        message: 'order 42 not found', name: 'Error', stack: job.snapshot.context.lastError?.stack, retryable: false,
        decidedBy: 'advisor', advice: 'no retry recovered in 0 of 40 runs', attempt: 1,
      });
      assert.deepEqual(a.asked, [{ message: 'order 42 not found', attempt: 1, attemptBase: 0 }]);
    } finally {
      await h.stop();
    }
  });

  it('a retry the advisor timed is due after its delay, recorded on the FAILED event', async () => {
    let calls = 0;
    const registry = new HandlerRegistry().register('test.flaky', async () => {
      if (++calls === 1) throw new Error('upstream 503');
      return 'ok';
    });
    const a = scripted({ failure: () => ({ signature: 'Error: upstream #', delayMs: 60 }) });
    const h = await harness(registry, { advisor: a.advisor });
    try {
      const r = await h.transitions.submit(spec('test.flaky', { backoff: { kind: 'fixed', delayMs: 600_000 } }));
      assert.ok(r.ok);
      const retrying = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'retrying', 'retrying');
      const failed = (await h.store.getEvents(r.job.id)).find((e) => e.type === 'FAILED');
      assert.equal((failed?.data as { delayMs?: number }).delayMs, 60);
      assert.equal(retrying.snapshot.context.runAt, failed!.at + 60, 'not the policy\'s ten minutes');
    } finally {
      await h.stop();
    }
  });

  it('a non-retryable failure is not put to the advisor; a null answer keeps the static policy', async () => {
    const registry = new HandlerRegistry()
      .register('test.fatal', async () => {
        throw new NonRetryableError('bad payload');
      })
      .register('test.once', async () => {
        throw new Error('boom');
      });
    const a = scripted({ failure: () => null });
    const h = await harness(registry, { advisor: a.advisor });
    try {
      const fatal = await h.transitions.submit(spec('test.fatal'));
      const once = await h.transitions.submit(spec('test.once', { backoff: { kind: 'fixed', delayMs: 600_000 } }));
      assert.ok(fatal.ok && once.ok);
      await waitFor(h.store, fatal.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      const retrying = await waitFor(h.store, once.job.id, (j) => j.snapshot.value === 'retrying', 'retrying');
      const failed = (await h.store.getEvents(once.job.id)).find((e) => e.type === 'FAILED');
      assert.equal(failed && 'delayMs' in (failed.data as object), false);
      assert.equal(retrying.snapshot.context.runAt, failed!.at + 600_000);
      assert.deepEqual(a.asked.map((q) => q.message), ['boom']);
    } finally {
      await h.stop();
    }
  });

  it('a retry delay or a lease the store and the machine cannot take is ignored: the static policy stands', async () => {
    const bad = [Number.NaN, Number.POSITIVE_INFINITY, -5, 1.5];
    let asked = 0;
    const registry = new HandlerRegistry().register('test.fails', async () => {
      throw new Error('boom');
    });
    const a = scripted({
      failure: () => ({ signature: 'Error: boom', delayMs: bad[asked++ % bad.length]! }),
      lease: { leaseMs: 2_000, heartbeatMs: 2_000, p99Ms: 1, samples: 1 }, // a heartbeat not below the lease
    });
    const h = await harness(registry, { advisor: a.advisor });
    try {
      for (let i = 0; i < bad.length; i++) {
        const r = await h.transitions.submit(spec('test.fails', { backoff: { kind: 'fixed', delayMs: 600_000 } }));
        assert.ok(r.ok);
        const retrying = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'retrying', 'retrying');
        const events = await h.store.getEvents(r.job.id);
        const failed = events.find((e) => e.type === 'FAILED')!;
        assert.equal('delayMs' in (failed.data as object), false, `delay ${bad[i]} ignored`);
        assert.equal(retrying.snapshot.context.runAt, failed.at + 600_000);
        const started = events.find((e) => e.type === 'STARTED')!;
        assertLease(started, 30_000, 'the static lease');
      }
      assert.deepEqual(a.claims, bad.map(() => ({ pair: 'test.fails/default', lease: null })), 'each claim told to the advisor as made with the static lease');
    } finally {
      await h.stop();
    }
  });

  it('a retry after a lease expiry runs on the configured lease, extended before its handler starts: a run grown past the learned lease is not expired again and again', async () => {
    // The type ran in milliseconds, so the advisor's lease is short; now a synchronous step (a bigger
    // input parsed) blocks the event loop longer than it, and no heartbeat can be sent meanwhile.
    const blockMs = 700;
    const registry = new HandlerRegistry().register('test.grown', async (_p, ctx) => {
      const until = Date.now() + blockMs;
      while (Date.now() < until) { /* blocks the event loop: an async handler runs synchronously up to its first await */ }
      return { attempt: ctx.attempt };
    });
    const a = scripted({ lease: { leaseMs: 300, heartbeatMs: 100, p99Ms: 3, samples: 500 } });
    const h = await harness(registry, { advisor: a.advisor, timers: true, leaseMs: 5_000, heartbeatMs: 1_000 });
    try {
      const r = await h.transitions.submit(spec('test.grown', { maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 10 } }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done' || j.snapshot.value === 'dead', 'an end', 10_000);
      const events = await h.store.getEvents(r.job.id);
      assert.deepEqual(events.map((e) => e.type).filter((t) => t === 'LEASE_EXPIRED' || t === 'SUCCEEDED'), ['LEASE_EXPIRED', 'SUCCEEDED'],
        'the first attempt (the learned lease) expired, the retry did not');
      assert.equal(done.snapshot.value, 'done');
      assert.deepEqual(done.snapshot.context.result, { attempt: 2 });
      // Its claim still took the advisor's lease; a heartbeat moved it to the configured one before the handler ran.
      const second = events.filter((e) => e.type === 'STARTED')[1]!;
      assertLease(second, 300, 'the claim of the retry');
      const beat = events.find((e) => e.type === 'HEARTBEAT' && (e.data as { attempt: number }).attempt === 2);
      assert.ok(beat, 'a heartbeat before the handler');
      assert.ok((beat.data as { leaseUntil: number }).leaseUntil - beat.at >= 5_000 - 50, 'to the configured lease');
    } finally {
      await h.stop();
    }
  });

  it(`a handler that runs synchronously ${BLOCKING_WARN_MS} ms or more before returning its promise is named in a warning: no heartbeat went out meanwhile`, async () => {
    const warnings: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
    const logger: Logger = { ...silentLogger, warn: (msg, fields) => void warnings.push({ msg, fields }) };
    const registry = new HandlerRegistry()
      .register('test.blocks', async (_p, ctx) => {
        const until = Date.now() + BLOCKING_WARN_MS + 100;
        while (Date.now() < until) { /* CPU work before the first await: the event loop is held */ }
        return { attempt: ctx.attempt };
      })
      .register('test.quick', async () => 'ok');
    const h = await harness(registry, { logger, leaseMs: 5_000, heartbeatMs: 1_000 });
    try {
      const blocks = await h.transitions.submit(spec('test.blocks', { maxAttempts: 1 }));
      const quick = await h.transitions.submit(spec('test.quick', { maxAttempts: 1 }));
      assert.ok(blocks.ok && quick.ok);
      await waitFor(h.store, blocks.job.id, (j) => j.snapshot.value === 'done', 'done');
      await waitFor(h.store, quick.job.id, (j) => j.snapshot.value === 'done', 'done');
      const blocked = warnings.filter((w) => /blocked the event loop/.test(w.msg));
      assert.equal(blocked.length, 1, `one warning: ${JSON.stringify(warnings)}`);
      assert.equal(blocked[0]!.fields?.jobId, blocks.job.id);
      assert.equal(blocked[0]!.fields?.type, 'test.blocks');
      assert.ok(Number(blocked[0]!.fields?.blockedMs) >= BLOCKING_WARN_MS, `blockedMs ${String(blocked[0]!.fields?.blockedMs)}`);
      assert.equal(blocked[0]!.fields?.leaseMs, 5_000);
    } finally {
      await h.stop();
    }
  });

  it('a lease lost while the event loop was held (a handler\'s CPU work after an await) is given up saying so, for each attempt running then', async () => {
    const abandoned: Array<{ jobId: unknown; reason: string }> = [];
    const logger: Logger = {
      ...silentLogger,
      info: (msg, fields) => void (/attempt abandoned \(lease-lost\)/.test(msg) && abandoned.push({ jobId: fields?.jobId, reason: String(fields?.reason) })),
    };
    const heeding = (ctx: HandlerContext) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    let blocker!: () => void;
    const blocked = new Promise<void>((r) => (blocker = r));
    const registry = new HandlerRegistry()
      .register('test.calm', async (_p, ctx) => heeding(ctx))
      .register('test.blocks-later', async (_p, ctx) => {
        await blocked; // once both run
        const until = Date.now() + 1_500;
        while (Date.now() < until) { /* CPU work after an await: the event loop is held past the lease */ }
        return heeding(ctx);
      });
    const h = await harness(registry, { logger, leaseMs: 1_000, heartbeatMs: 200 });
    try {
      const calm = await h.transitions.submit(spec('test.calm', { maxAttempts: 1 }));
      const blocks = await h.transitions.submit(spec('test.blocks-later', { maxAttempts: 1 }));
      assert.ok(calm.ok && blocks.ok);
      await waitFor(h.store, calm.job.id, runningAttempt(1), 'running');
      await waitFor(h.store, blocks.job.id, runningAttempt(1), 'running');
      blocker();
      const deadline = Date.now() + 5_000;
      while (abandoned.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(abandoned.map((a) => a.jobId).sort(), [calm.job.id, blocks.job.id].sort(), 'both attempts given up');
      for (const a of abandoned) assert.match(a.reason, /the event loop was held \d+ ms/, a.reason);
    } finally {
      await h.stop();
    }
  });

  it('ctx.heartbeat() called in a tight loop sends one write at a time: the calls made while one is in flight share the next, and each resolves', async () => {
    let inFlight = 0;
    let most = 0;
    let writes = 0;
    const slowBeats = (real: TransitionService): TransitionService => {
      const fake = Object.create(real) as TransitionService;
      fake.apply = async (jobId, event) => {
        if (event.type !== 'HEARTBEAT') return real.apply(jobId, event);
        writes++;
        most = Math.max(most, ++inFlight);
        try {
          await new Promise((r) => setTimeout(r, 20)); // a store that takes a moment
          return await real.apply(jobId, event);
        } finally {
          inFlight--;
        }
      };
      return fake;
    };
    let beats = 0;
    const registry = new HandlerRegistry().register('test.beats', async (_p, ctx) => {
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 1_000; i++) calls.push(ctx.heartbeat());
      await Promise.all(calls);
      beats = calls.length;
      return 'ok';
    });
    const h = await harness(registry, { workerTransitions: slowBeats });
    try {
      const r = await h.transitions.submit(spec('test.beats', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.equal(beats, 1_000, 'every call resolved');
      assert.equal(most, 1, 'one heartbeat write in flight at a time');
      assert.equal(writes, 2, 'the first call\'s write, and one after it for the calls made meanwhile');
    } finally {
      await h.stop();
    }
  });

  it('an advisor that throws costs nothing: the claim holds with the static lease and the outcome is written', async () => {
    const registry = new HandlerRegistry().register('test.fails', async () => {
      throw new Error('boom');
    });
    const broken: NonNullable<WorkerDeps['advisor']> = {
      adviseFailure: () => {
        throw new Error('advisor bug');
      },
      leaseFor: () => {
        throw new Error('advisor bug');
      },
    };
    const h = await harness(registry, { advisor: broken });
    try {
      const r = await h.transitions.submit(spec('test.fails', { backoff: { kind: 'fixed', delayMs: 600_000 } }));
      assert.ok(r.ok);
      const retrying = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'retrying', 'retrying (the FAILED written)');
      const events = await h.store.getEvents(r.job.id);
      assertLease(events.find((e) => e.type === 'STARTED')!, 30_000, 'the static lease');
      assert.equal(retrying.snapshot.context.runAt, events.find((e) => e.type === 'FAILED')!.at + 600_000, 'the static backoff');
    } finally {
      await h.stop();
    }
  });

  it('claims with the advisor\'s lease, and heartbeats at its period', async () => {
    let release!: () => void;
    const registry = new HandlerRegistry().register('test.slow', async () => {
      await new Promise<void>((resolve) => (release = resolve));
    });
    const a = scripted({ lease: { leaseMs: 2_000, heartbeatMs: 50, p99Ms: 500, samples: 400 } });
    const h = await harness(registry, { advisor: a.advisor, queues: ['q1'] });
    try {
      const r = await h.transitions.submit(spec('test.slow', { queue: 'q1' }));
      assert.ok(r.ok);
      const running = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'running', 'running');
      const started = (await h.store.getEvents(r.job.id)).find((e) => e.type === 'STARTED')!;
      assertLease(started, 2_000, 'the learned lease, not the static 30 s');
      // A heartbeat at the advisor's 50 ms period extends the lease (the static period is 10 s).
      await waitFor(h.store, r.job.id, (j) => (j.snapshot.context.leaseUntil ?? 0) > (running.snapshot.context.leaseUntil ?? 0), 'a heartbeat', 2_000);
      assert.deepEqual(a.leasesAsked, ['test.slow/q1']);
      assert.deepEqual(a.claims, [{ pair: 'test.slow/q1', lease: { leaseMs: 2_000, heartbeatMs: 50, p99Ms: 500, samples: 400 } }], 'the claim told to the advisor with its lease');
      release();
      await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: tenants', () => {
  it('a handler sees its job\'s tenant as ctx.tenant, and the dispatch, transitions and dead letter carry it', async () => {
    const seen = new Map<string, string>();
    const registry = new HandlerRegistry()
      .register('test.tenant', async (_p, ctx) => {
        seen.set(ctx.jobId, ctx.tenant);
        return null;
      })
      .register('test.dies', async () => {
        throw new NonRetryableError('no');
      });
    const h = await harness(registry);
    // What the relay publishes (the in-process log keeps no record once consumed).
    const published: { topic: string; value: string }[] = [];
    const publish = h.log.publish.bind(h.log);
    h.log.publish = async (messages) => {
      published.push(...messages);
      return publish(messages);
    };
    try {
      const [acme, plain, dies] = await h.transitions.submitMany([
        spec('test.tenant', { tenant: 'acme' }), spec('test.tenant'), spec('test.dies', { tenant: 'acme' }),
      ]);
      for (const r of [acme!, plain!]) await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      await waitFor(h.store, dies!.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      assert.equal(seen.get(acme!.job.id), 'acme');
      assert.equal(seen.get(plain!.job.id), 'default', 'a job submitted without a tenant is the default tenant\'s');
      type Payload = { jobId?: string; tenant?: string; transitions?: Payload[] };
      const payloads = (topic: string): Payload[] => published.filter((m) => m.topic === topic).map((m) => JSON.parse(m.value) as Payload);
      const dispatch = payloads(TOPICS.dispatch).find((m) => m.jobId === acme!.job.id);
      assert.equal(dispatch?.tenant, 'acme');
      const transitions = payloads(TOPICS.events).flatMap((m) => m.transitions ?? [m]).filter((m) => m.jobId === acme!.job.id);
      assert.ok(transitions.length >= 3 && transitions.every((m) => m.tenant === 'acme'), JSON.stringify(transitions));
      assert.equal(payloads(TOPICS.dlq).find((m) => m.jobId === dies!.job.id)?.tenant, 'acme');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a job of a newer job machine version', () => {
  it('is skipped in its claim batch, and the batch\'s other jobs run', async () => {
    const registry = new HandlerRegistry().register('test.ok', async () => 'ok');
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg) };
    const seen: { ids: string[]; newer?: string } = { ids: [] };
    // Before the first claim batch of two or more is decided, a newer deployment rewrites its first job's snapshot.
    const newerBeforeClaims = beforeApplyMany(async (items) => {
      if (items.length >= 2 && items.every((it) => it.event.type === 'STARTED') && seen.ids.length === 0) {
        seen.ids = items.map((it) => it.jobId);
        seen.newer = seen.ids[0]!;
        await writeMachineVersion(h.store, seen.newer, JOB_MACHINE_VERSION + 1);
      }
    });
    const h: Harness = await harness(registry, { logger, workerTransitions: newerBeforeClaims });
    try {
      // Enough jobs that a partition's dispatches come to the worker two or more at a time.
      const submitted = await h.transitions.submitMany(Array.from({ length: 12 }, () => spec('test.ok')));
      const ids = submitted.map((r) => { assert.ok(r.ok); return r.job.id; });
      const deadline = Date.now() + 5000;
      while (!seen.newer && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.ok(seen.newer && seen.ids.length >= 2, `a claim batch of two or more: ${seen.ids}`);
      for (const id of ids.filter((id) => id !== seen.newer)) {
        const done = await waitFor(h.store, id, (j) => j.snapshot.value === 'done', 'done');
        assert.equal(done.snapshot.context.attempt, 1);
      }
      const left = (await h.store.getJob(seen.newer))!;
      assert.equal(left.snapshot.machine, JOB_MACHINE_VERSION + 1);
      assert.equal(left.snapshot.context.attempt, 0, 'not claimed');
      assert.ok(!(await h.store.getEvents(seen.newer)).some((e) => e.type === 'STARTED'), 'no STARTED written');
      assert.equal(h.worker.counters.skipped, 1);
      assert.ok(warnings.some((w) => /job machine version/.test(w)), `warned: ${warnings}`);
    } finally {
      await h.stop();
    }
  });
  it('its outcome is written again while the lease holds, as a failed write is', async () => {
    const tries = { outcome: 0 };
    const box: { h?: Harness } = {};
    // The handler's job is rewritten by a newer deployment while it runs; an older one writes it back on the third outcome try.
    const registry = new HandlerRegistry().register('test.ok', async (_p, ctx) => {
      await writeMachineVersion(box.h!.store, ctx.jobId, JOB_MACHINE_VERSION + 1);
      return 'ok';
    });
    const backOnThirdTry = beforeApplyMany(async (items) => {
      if (items.some((it) => it.event.type === 'SUCCEEDED') && ++tries.outcome === 3) {
        for (const it of items) await writeMachineVersion(box.h!.store, it.jobId, JOB_MACHINE_VERSION);
      }
    });
    const h = (box.h = await harness(registry, { clock: recordingClock(), workerTransitions: backOnThirdTry }));
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.equal(done.snapshot.context.attempt, 1);
      assert.equal(tries.outcome, 3);
      assert.equal(h.worker.counters.outcomeRetries, 2);
      assert.equal(h.worker.counters.succeeded, 1);
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a dispatch of a type without a handler here', () => {
  it('is said at warn once a minute per type, with skippedSoFar; the others like it at debug, and the next warning counts them (repeated)', async () => {
    const clock = recordingClock();
    const lines: { level: 'warn' | 'debug'; msg: string; fields: Record<string, unknown> }[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (msg, fields) => void lines.push({ level: 'warn', msg, fields: fields ?? {} }),
      debug: (msg, fields) => void lines.push({ level: 'debug', msg, fields: fields ?? {} }),
    };
    const skipped = (type: string) => lines.filter((l) => l.msg.startsWith('worker: dispatch skipped: no handler is registered here') && l.fields.type === type);
    const h = await harness(new HandlerRegistry().register('test.ok', async () => 'ok'), { workerClock: clock, logger });
    try {
      for (const type of ['test.none', 'test.none', 'test.none', 'test.other']) assert.ok((await h.transitions.submit(spec(type))).ok);
      await until(() => h.worker.counters.unhandled === 4, 'the four dispatches are skipped');
      assert.deepEqual(skipped('test.none').map((l) => [l.level, l.fields.skippedSoFar, l.fields.repeated]), [['warn', 1, 0], ['debug', 2, 0], ['debug', 3, 0]]);
      assert.deepEqual(skipped('test.other').map((l) => [l.level, l.fields.skippedSoFar]), [['warn', 4]], 'another type has its own minute');
      // A minute later: a warning again, saying how many like it were lowered since the last.
      clock.ahead += 60_000;
      assert.ok((await h.transitions.submit(spec('test.none'))).ok);
      await until(() => h.worker.counters.unhandled === 5, 'the fifth is skipped');
      assert.deepEqual(skipped('test.none').at(-1), {
        level: 'warn', msg: skipped('test.none')[0]!.msg, fields: { ...skipped('test.none')[0]!.fields, jobId: skipped('test.none').at(-1)!.fields.jobId, skippedSoFar: 5, repeated: 2 },
      });
    } finally {
      await h.stop();
    }
  });
});

describe('worker: what an outcome can hold', () => {
  it('a result over MAX_RESULT_BYTES, or one JSON cannot store, fails the job without retries; a long error message is cut', async () => {
    const registry = new HandlerRegistry()
      .register('test.big', async () => 'x'.repeat(MAX_RESULT_BYTES))
      .register('test.fits', async () => 'x'.repeat(MAX_RESULT_BYTES - 2))
      .register('test.bigint', async () => ({ n: 10n }))
      .register('test.wordy', async () => { throw new Error('w'.repeat(3 * MAX_ERROR_MESSAGE_CHARS)); });
    const h = await harness(registry);
    try {
      const ids = new Map<string, string>();
      for (const type of ['test.big', 'test.fits', 'test.bigint', 'test.wordy']) {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 3 }));
        assert.ok(r.ok);
        ids.set(type, r.job.id);
      }
      const big = await waitFor(h.store, ids.get('test.big')!, (j) => j.snapshot.value === 'dead', 'dead');
      assert.equal(big.snapshot.context.attempt, 1, 'not retried');
      assert.match(big.snapshot.context.lastError!.message, new RegExp(`result is ${MAX_RESULT_BYTES + 2} bytes of JSON, more than the ${MAX_RESULT_BYTES}`));
      const fits = await waitFor(h.store, ids.get('test.fits')!, (j) => j.snapshot.value === 'done', 'done');
      assert.equal((fits.snapshot.context.result as string).length, MAX_RESULT_BYTES - 2);
      const bigint = await waitFor(h.store, ids.get('test.bigint')!, (j) => j.snapshot.value === 'dead', 'dead');
      assert.equal(bigint.snapshot.context.attempt, 1);
      assert.match(bigint.snapshot.context.lastError!.message, /result cannot be stored as JSON/);
      const wordy = await waitFor(h.store, ids.get('test.wordy')!, (j) => j.snapshot.value === 'retrying' || j.snapshot.value === 'dead' || j.snapshot.context.attempt > 1, 'failed once');
      assert.equal(wordy.snapshot.context.lastError!.message.length, MAX_ERROR_MESSAGE_CHARS);
      assert.ok(wordy.snapshot.context.lastError!.message.endsWith('…'));
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a result nested deeper than a payload may be', () => {
  /** `{ a: { a: ... { leaf: 1 } } }` (or `[[...[1]]]`), `levels` objects (or arrays) deep, built without recursion. */
  const nested = (levels: number, kind: 'object' | 'array'): unknown => {
    let v: unknown = kind === 'object' ? { leaf: 1 } : [1];
    for (let i = 1; i < levels; i++) v = kind === 'object' ? { a: v } : [v];
    return v;
  };

  it('fails the job at once, without retries, with one reason whatever the depth (no stack overflow); 32 levels, a payload\'s bound, are kept', async () => {
    const shallowEnough = nested(MAX_NESTING_DEPTH, 'object');
    // The same object twice, side by side, is no cycle and no deeper.
    const inner = nested(MAX_NESTING_DEPTH - 1, 'array');
    const shared = { one: inner, two: inner };
    // A boxed number, string or boolean is written as the value it holds: no level of its own.
    let boxed: unknown = [new Number(5), new String('x'), new Boolean(true)];
    for (let i = 1; i < MAX_NESTING_DEPTH; i++) boxed = [boxed];
    const registry = new HandlerRegistry()
      .register('test.fits', async () => shallowEnough)
      .register('test.boxed', async () => boxed)
      .register('test.shared', async () => shared)
      .register('test.depth', async (p) => nested((p as { levels: number }).levels, (p as { kind: 'object' | 'array' }).kind))
      // Deep behind a toJSON or a getter: what JSON would write is what counts.
      .register('test.to-json', async () => ({ toJSON: () => nested(100, 'object') }))
      .register('test.getter', async () => ({ get deep() { return nested(5_000, 'array'); } }));
    const h = await harness(registry);
    try {
      const fits = await h.transitions.submit(spec('test.fits', { maxAttempts: 1 }));
      const sharedJob = await h.transitions.submit(spec('test.shared', { maxAttempts: 1 }));
      assert.ok(fits.ok && sharedJob.ok);
      assert.deepEqual((await waitFor(h.store, fits.job.id, (j) => j.snapshot.value === 'done', 'done')).snapshot.context.result, shallowEnough);
      assert.deepEqual((await waitFor(h.store, sharedJob.job.id, (j) => j.snapshot.value === 'done', 'done')).snapshot.context.result, shared);
      const boxedJob = await h.transitions.submit(spec('test.boxed', { maxAttempts: 1 }));
      assert.ok(boxedJob.ok);
      assert.deepEqual((await waitFor(h.store, boxedJob.job.id, (j) => j.snapshot.value === 'done', 'done')).snapshot.context.result, JSON.parse(JSON.stringify(boxed)));
      const cases: [string, unknown][] = [];
      for (const levels of [MAX_NESTING_DEPTH + 1, 100, 5_000, 200_000]) {
        for (const kind of ['object', 'array']) cases.push(['test.depth', { levels, kind }]);
      }
      cases.push(['test.to-json', {}], ['test.getter', {}]);
      for (const [type, payload] of cases) {
        const what = `${type} ${JSON.stringify(payload)}`;
        const r = await h.transitions.submit(spec(type, { maxAttempts: 3, payload }));
        assert.ok(r.ok);
        const dead = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
        const error = dead.snapshot.context.lastError!;
        assert.equal(dead.snapshot.context.attempt, 1, `${what}: not retried (${error.message})`);
        assert.equal(error.retryable, false, what);
        assert.equal(error.name, 'NonRetryableError', what);
        assert.equal(error.message, `the handler's result nests deeper than ${MAX_NESTING_DEPTH} levels of arrays and objects, more than a job keeps: flatten it, or store it elsewhere and return a reference`, what);
        assert.equal(dead.snapshot.context.result, null, what);
      }
    } finally {
      await h.stop();
    }
  });

  it('a cycle is still told as a cycle, and a BigInt as a BigInt, not as too deep', async () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const registry = new HandlerRegistry()
      .register('test.cyclic', async () => cyclic)
      .register('test.bigint', async () => ({ n: 10n }));
    const h = await harness(registry);
    try {
      const c = await h.transitions.submit(spec('test.cyclic', { maxAttempts: 1 }));
      const b = await h.transitions.submit(spec('test.bigint', { maxAttempts: 1 }));
      assert.ok(c.ok && b.ok);
      assert.match((await waitFor(h.store, c.job.id, (j) => j.snapshot.value === 'dead', 'dead')).snapshot.context.lastError!.message, /cannot be stored as JSON: .*circular/i);
      assert.match((await waitFor(h.store, b.job.id, (j) => j.snapshot.value === 'dead', 'dead')).snapshot.context.lastError!.message, /cannot be stored as JSON: .*BigInt/);
    } finally {
      await h.stop();
    }
  });
});

describe('worker: the result is kept as it was when the handler returned', () => {
  it('an object the handler changes after returning is stored as returned, even when its write is tried again', async () => {
    const tries = { outcome: 0 };
    const kept: { value?: Record<string, unknown> } = {};
    // The handler keeps its result object and goes on changing it (a cache, a live tally) once it returned.
    const registry = new HandlerRegistry().register('test.live', async () => {
      const value: Record<string, unknown> = { n: 1 };
      kept.value = value;
      setTimeout(() => Object.assign(value, { n: 2, late: 10n }), 20);
      return value;
    });
    // The first outcome write fails; the next try comes OUTCOME_RETRY_FIRST_MS later, after the change.
    const h = await harness(registry, { workerTransitions: failingOutcomes(() => tries.outcome <= 1, tries) });
    try {
      const r = await h.transitions.submit(spec('test.live', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.deepEqual(done.snapshot.context.result, { n: 1 });
      assert.equal(kept.value?.n, 2, 'the handler did change its object');
      assert.ok(tries.outcome >= 2, `the write was tried again: ${tries.outcome}`);
    } finally {
      await h.stop();
    }
  });

  it('a result whose getter fails when read a second time is read once: the job is done, not left running until its lease', async () => {
    let reads = 0;
    const registry = new HandlerRegistry().register('test.once', async () => ({
      get token() {
        if (++reads > 1) throw new Error('the token was already taken');
        return 'abc';
      },
    }));
    const h = await harness(registry);
    try {
      const r = await h.transitions.submit(spec('test.once', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.deepEqual(done.snapshot.context.result, { token: 'abc' });
    } finally {
      await h.stop();
    }
  });

  it('a result far over MAX_RESULT_BYTES is refused without writing all its JSON: a large Buffer (returned, or held in an object or a list) is not turned into an array of its bytes, a long list not written to its end', async () => {
    const written = { buffer: 0, items: 0, inObject: 0, inList: 0, behindGetter: 0, getterReads: 0 };
    // 8 MiB: Buffer's own toJSON makes an array of its 8 million bytes first (seconds of a blocked worker, and its heap; a few hundred MiB end the process).
    const file = Buffer.alloc(32 * MAX_RESULT_BYTES, 7);
    Object.defineProperty(file, 'toJSON', { value: () => { written.buffer++; return Buffer.prototype.toJSON.call(file); } });
    // 100,000 rows of 100 characters: 10 MB of JSON.
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ toJSON: () => { written.items++; return { i, text: 'x'.repeat(100) }; } }));
    // What JSON leaves out does not count: 100,000 fields of 16 characters whose values are undefined are `{}`.
    const sparse = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`field-${String(i).padStart(10, '0')}`, undefined]));
    // The same, held in an object or a list (the Buffer's toJSON runs before JSON asks about it by its key).
    const held = (n: 'inObject' | 'inList' | 'behindGetter') => {
      const b = Buffer.alloc(32 * MAX_RESULT_BYTES, 7);
      Object.defineProperty(b, 'toJSON', { value: () => { written[n]++; return Buffer.prototype.toJSON.call(b); } });
      return b;
    };
    const inObject = { name: 'report.pdf', file: held('inObject') };
    const inList = ['report.pdf', held('inList')];
    // Or behind a getter (JSON runs it, then the Buffer's toJSON, before it asks about the value by its key): the getter runs once, as JSON alone runs it.
    const behind = held('behindGetter');
    const behindGetter = { name: 'report.pdf', get file() { written.getterReads++; return behind; } };
    const registry = new HandlerRegistry()
      .register('test.file', async () => file)
      .register('test.in-object', async () => inObject)
      .register('test.in-list', async () => inList)
      .register('test.behind-getter', async () => behindGetter)
      .register('test.rows', async () => rows)
      .register('test.sparse', async () => sparse);
    const h = await harness(registry);
    try {
      for (const type of ['test.file', 'test.in-object', 'test.in-list', 'test.behind-getter', 'test.rows']) {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 3 }));
        assert.ok(r.ok);
        const dead = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
        assert.equal(dead.snapshot.context.attempt, 1, `${type}: not retried`);
        assert.match(dead.snapshot.context.lastError!.message, new RegExp(`more than the ${MAX_RESULT_BYTES} a job keeps`), type);
      }
      const r = await h.transitions.submit(spec('test.sparse', { maxAttempts: 1 }));
      assert.ok(r.ok);
      assert.deepEqual((await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done')).snapshot.context.result, {});
      assert.deepEqual([written.buffer, written.inObject, written.inList, written.behindGetter], [0, 0, 0, 0], 'no Buffer is written, at the top, held or behind a getter');
      assert.equal(written.getterReads, 1, 'the getter runs once');
      assert.ok(written.items < 20_000, `the rows are written only until the JSON is past the bound: ${written.items} of 100000`);
    } finally {
      await h.stop();
    }
  });

  it('a result with getters is stored as JSON writes it: a small Buffer behind a getter as its bytes; a cycle through a getter is refused as JSON cannot store it', async () => {
    const small = { get file() { return Buffer.from([1, 2]); }, get nested() { return { get n() { return 3; } }; } };
    const cyclic: Record<string, unknown> = { get self() { return cyclic; } };
    const registry = new HandlerRegistry()
      .register('test.small', async () => small)
      .register('test.cyclic', async () => cyclic);
    const h = await harness(registry);
    try {
      const s = await h.transitions.submit(spec('test.small', { maxAttempts: 1 }));
      const c = await h.transitions.submit(spec('test.cyclic', { maxAttempts: 1 }));
      assert.ok(s.ok && c.ok);
      const done = await waitFor(h.store, s.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.deepEqual(done.snapshot.context.result, { file: { type: 'Buffer', data: [1, 2] }, nested: { n: 3 } });
      const dead = await waitFor(h.store, c.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      assert.match(dead.snapshot.context.lastError!.message, /result cannot be stored as JSON: .*circular/i);
    } finally {
      await h.stop();
    }
  });

  it('a result whose toJSON or getter throws what is no Error (null, a string, an object whose message getter throws) fails at once, without retries, saying what was thrown', async () => {
    const hostile = { get message(): string { throw new Error('the message getter ran'); } };
    const registry = new HandlerRegistry()
      .register('test.null', async () => ({ x: { toJSON() { throw null; } } }))
      .register('test.string', async () => ({ x: { toJSON() { throw 'the rows are gone'; } } }))
      .register('test.getter', async () => ({ get x() { throw undefined; } }))
      .register('test.hostile', async () => ({ x: { toJSON() { throw hostile; } } }));
    const h = await harness(registry);
    try {
      const expected = new Map([
        ['test.null', /cannot be stored as JSON: .*threw null/],
        ['test.string', /cannot be stored as JSON: .*the rows are gone/],
        ['test.getter', /cannot be stored as JSON: .*threw undefined/],
        ['test.hostile', /cannot be stored as JSON: .*threw \[object Object\]/],
      ]);
      for (const [type, message] of expected) {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 3 }));
        assert.ok(r.ok);
        const dead = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead');
        const error = dead.snapshot.context.lastError!;
        assert.equal(dead.snapshot.context.attempt, 1, `${type}: not retried (${error.message})`);
        assert.equal(error.retryable, false, type);
        assert.equal(error.name, 'NonRetryableError', type);
        assert.match(error.message, message, type);
      }
    } finally {
      await h.stop();
    }
  });

  it('a function, a symbol or a toJSON that writes nothing is stored as null, in the job and in its SUCCEEDED event, as undefined is', async () => {
    const registry = new HandlerRegistry()
      .register('test.fn', async () => () => 1)
      .register('test.symbol', async () => Symbol('s'))
      .register('test.nothing', async () => ({ toJSON: () => undefined }))
      .register('test.undefined', async () => undefined);
    const h = await harness(registry);
    try {
      for (const type of registry.types()) {
        const r = await h.transitions.submit(spec(type, { maxAttempts: 1 }));
        assert.ok(r.ok);
        const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
        assert.ok(Object.hasOwn(done.snapshot.context, 'result'), `${type}: the job has a result`);
        assert.equal(done.snapshot.context.result, null, type);
        const succeeded = (await h.store.getEvents(r.job.id)).find((e) => e.type === 'SUCCEEDED');
        assert.ok(succeeded && Object.hasOwn(succeeded.data as object, 'result'), `${type}: SUCCEEDED carries result: ${JSON.stringify(succeeded?.data)}`);
        assert.equal((succeeded.data as { result: unknown }).result, null, type);
      }
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a handler\'s signal once its attempt ended', () => {
  it('is not aborted when the handler returned or threw: abort listeners it leaves (a cleanup, a compensation) do not run, and no shutdown is claimed', async () => {
    const aborted: string[] = [];
    // Each handler leaves a listener behind: "on abort, undo what was started", as a handler would for a cancel.
    const listen = (ctx: Parameters<Handler>[1]) => ctx.signal.addEventListener('abort', () => {
      aborted.push(`${ctx.type}: ${String((ctx.signal.reason as { kind?: string })?.kind)} ${String((ctx.signal.reason as Error)?.message)}`);
    });
    const registry = new HandlerRegistry()
      .register('test.ok', async (_p, ctx) => { listen(ctx); return 'ok'; })
      .register('test.throws', async (_p, ctx) => { listen(ctx); throw new NonRetryableError('no'); });
    const h = await harness(registry);
    try {
      const ok = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      const throws = await h.transitions.submit(spec('test.throws', { maxAttempts: 1 }));
      assert.ok(ok.ok && throws.ok);
      await waitFor(h.store, ok.job.id, (j) => j.snapshot.value === 'done', 'done');
      await waitFor(h.store, throws.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      // The attempts' bookkeeping ends once their outcomes are written.
      const deadline = Date.now() + 2000;
      while (h.worker.activeCount > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0);
      await new Promise((res) => setTimeout(res, 50));
      assert.deepEqual(aborted, []);
    } finally {
      await h.stop();
    }
  });

  it('is not aborted by a shutdown that comes while the outcome of a handler that returned is written', async () => {
    const aborted: string[] = [];
    const gate: { open?: () => void; held?: () => void } = {};
    const held = new Promise<void>((resolve) => (gate.held = resolve));
    const registry = new HandlerRegistry().register('test.ok', async (_p, ctx) => {
      ctx.signal.addEventListener('abort', () => aborted.push(String((ctx.signal.reason as Error)?.message)));
      return 'ok';
    });
    // The outcome's write waits until the test opens it (a slow database).
    const slowOutcome = beforeApplyMany(async (items) => {
      if (!items.some((it) => it.event.type === 'SUCCEEDED')) return;
      gate.held!();
      await new Promise<void>((resolve) => (gate.open = resolve));
    });
    const h = await harness(registry, { workerTransitions: slowOutcome });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await held;
      // Past its 200 ms grace, stop() aborts the attempts still running here: this one is only being written.
      const stopped = h.worker.stop();
      await new Promise((res) => setTimeout(res, 400));
      gate.open!();
      await stopped;
      assert.deepEqual(aborted, []);
    } finally {
      gate.open?.();
      await h.stop();
    }
  });
});

describe('worker: a heartbeat after the lease ended', () => {
  /** Runs a job whose handler moves `ahead` 40 s on (past its 30 s lease) and waits for its signal; what the abort said, and the job after. */
  async function pastTheLease(clocks: { db: ReturnType<typeof recordingClock>; worker: ReturnType<typeof recordingClock> }, ahead: Array<{ ahead: number }>) {
    for (const c of [clocks.db, clocks.worker]) holdLongSleeps(c);
    const seen: { reason?: string; kind?: string } = {};
    const registry = new HandlerRegistry().register('test.slow', async (_p, ctx) => {
      for (const c of ahead) c.ahead = 40_000;
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      const reason = ctx.signal.reason as { message?: string; kind?: string } | undefined;
      Object.assign(seen, { reason: String(reason?.message), kind: reason?.kind });
    });
    // Heartbeats every 20 ms here (the recording clocks' sleeps); the job's 60 s timeout never comes.
    const h = await harness(registry, { clock: clocks.db, workerClock: clocks.worker });
    try {
      const r = await h.transitions.submit(spec('test.slow', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const deadline = Date.now() + 5000;
      while (seen.reason === undefined && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      while (h.worker.activeCount > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0);
      return { seen, job: (await h.store.getJob(r.job.id))!, events: await h.store.getEvents(r.job.id) };
    } finally {
      await h.stop();
    }
  }

  it('is refused when the database\'s clock says the lease ended, and the attempt is abandoned as lease-lost (nothing recorded)', async () => {
    // Only the database's clock moves on: the worker still thinks the lease holds (skew, as the margin does not cover).
    const db = recordingClock();
    const { seen, job, events } = await pastTheLease({ db, worker: recordingClock() }, [db]);
    assert.equal(seen.kind, 'lease-lost');
    assert.match(seen.reason ?? '', /heartbeat refused: the lease had already ended/);
    assert.equal(job.snapshot.value, 'running', 'no outcome written: the timers take it back');
    assert.ok(!events.some((e) => e.type === 'HEARTBEAT'), 'no heartbeat written');
  });

  it('is not sent by a worker that was paused past its lease: it gives the attempt up itself, as lease-lost (nothing recorded)', async () => {
    // The worker was stopped for longer than its 30 s lease: both clocks moved on.
    const clock = recordingClock();
    const { seen, job, events } = await pastTheLease({ db: clock, worker: clock }, [clock]);
    assert.equal(seen.kind, 'lease-lost');
    assert.match(seen.reason ?? '', /no heartbeat extended it/);
    assert.equal(job.snapshot.value, 'running', 'no outcome written: the timers take it back');
    assert.ok(!events.some((e) => e.type === 'HEARTBEAT'), 'no heartbeat written');
  });
});


describe('worker: a claim whose lease ended before its handler could start', () => {
  it('does not call the handler: the attempt is given up (lease-lost), nothing recorded', async () => {
    // The worker's clock moves past the 30 s lease while the claim is written (a pause of the process).
    const clock = recordingClock();
    holdLongSleeps(clock);
    const pausedInClaim = (real: TransitionService): TransitionService => {
      const fake = Object.create(real) as TransitionService;
      fake.applyMany = async (items) => {
        const r = await real.applyMany(items);
        if (items.some((it) => it.event.type === 'STARTED')) clock.ahead = 40_000;
        return r;
      };
      return fake;
    };
    const calls: number[] = [];
    const registry = new HandlerRegistry().register('test.late', async (_p, ctx) => {
      calls.push(ctx.attempt);
      throw new Error('a handler that fails at once');
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    const h = await harness(registry, { workerClock: clock, workerTransitions: pausedInClaim });
    try {
      const r = await h.transitions.submit(spec('test.late', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => h.worker.counters.claimed === 1, 'the claim is written');
      await until(() => h.worker.activeCount === 0, 'the attempt is over here');
      await new Promise((res) => setTimeout(res, 50));
      assert.deepEqual(calls, [], 'the handler was not called');
      assert.deepEqual(unhandled, [], 'no unhandled rejection');
      const job = (await h.store.getJob(r.job.id))!;
      assert.equal(job.snapshot.value, 'running', 'no outcome written: the timers take it back');
      assert.deepEqual((await h.store.getEvents(r.job.id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED']);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await h.stop();
    }
  });
});

describe('worker: a handler that is not async', () => {
  it('succeeds with the value it returns, and fails with the error it throws', async () => {
    // As a JavaScript user may register one: no promise returned.
    const plain = ((payload: unknown) => ({ echoed: payload })) as unknown as Handler;
    const throwing = (() => { throw new NonRetryableError('thrown at once'); }) as unknown as Handler;
    const registry = new HandlerRegistry().register('test.plain', plain).register('test.throwing', throwing);
    const h = await harness(registry);
    try {
      const ok = await h.transitions.submit(spec('test.plain', { maxAttempts: 1, payload: { n: 1 } }));
      const bad = await h.transitions.submit(spec('test.throwing', { maxAttempts: 1 }));
      assert.ok(ok.ok && bad.ok);
      const done = await waitFor(h.store, ok.job.id, (j) => j.snapshot.value === 'done' || j.snapshot.value === 'dead', 'over');
      assert.equal(done.snapshot.value, 'done', JSON.stringify(done.snapshot.context.lastError));
      assert.deepEqual(done.snapshot.context.result, { echoed: { n: 1 } });
      const dead = await waitFor(h.store, bad.job.id, (j) => j.snapshot.value === 'dead', 'dead');
      assert.equal(dead.snapshot.context.lastError!.message, 'thrown at once');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: heartbeats that fail until the lease ends', () => {
  it('give the attempt up (lease-lost) before its lease ends, so its retry never runs beside the handler', async () => {
    const injected = Object.assign(new Error('database unavailable (injected)'), { code: 'ATS_ERR_STORE_UNAVAILABLE' });
    const failingHeartbeats = beforeApplyMany((items) => {
      if (items.some((it) => it.event.type === 'HEARTBEAT' && it.event.attempt === 1)) throw injected;
    });
    let active = 0;
    let mostActive = 0;
    const runs: Array<{ attempt: number; startedAt: number; endedAt?: number; abort?: string; leaseLost?: boolean }> = [];
    const registry = new HandlerRegistry().register('test.long', async (_p, ctx) => {
      const run: (typeof runs)[number] = { attempt: ctx.attempt, startedAt: Date.now() };
      runs.push(run);
      mostActive = Math.max(mostActive, ++active);
      try {
        if (ctx.attempt > 1) return { attempt: ctx.attempt };
        // Up to 3 s, unless its signal aborts.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 3000);
          ctx.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
        const reason = ctx.signal.reason as { kind?: string; message?: string } | undefined;
        run.abort = reason?.kind;
        throw reason ?? new Error('not aborted');
      } finally {
        active--;
        run.endedAt = Date.now();
      }
    });
    const h = await harness(registry, { leaseMs: 300, heartbeatMs: 100, timers: true, workerTransitions: failingHeartbeats });
    try {
      const r = await h.transitions.submit(spec('test.long', { maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 0 } }));
      assert.ok(r.ok);
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.equal(done.snapshot.context.attempt, 2);
      const events = await h.store.getEvents(r.job.id);
      assert.deepEqual(events.map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'LEASE_EXPIRED', 'RETRY_DUE', 'PUBLISHED', 'STARTED', 'SUCCEEDED']);
      const [first, second] = runs;
      assert.equal(runs.length, 2);
      assert.equal(first!.abort, 'lease-lost', 'attempt 1 was given up as its lease ended');
      assert.ok(first!.endedAt! <= second!.startedAt, 'attempt 1 ended before attempt 2 started');
      assert.equal(mostActive, 1, 'never two handlers of the job at once');
      const expired = events.find((e) => e.type === 'LEASE_EXPIRED')!;
      const started = events.find((e) => e.type === 'STARTED')!.data as { leaseUntil: number };
      assert.ok(expired.at >= started.leaseUntil, 'the timers expired the lease once it had ended');
      assert.ok(first!.endedAt! <= started.leaseUntil, `attempt 1 was given up before its lease ended (${first!.endedAt! - started.leaseUntil} ms after)`);
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a claim that committed but whose answer was lost', () => {
  /** The real service, except that the first STARTED write commits and then throws (its answer lost). */
  function lostClaimAnswer() {
    let lost = false;
    return (real: TransitionService): TransitionService => {
      const fake = Object.create(real) as TransitionService;
      fake.applyMany = async (items) => {
        const r = await real.applyMany(items);
        if (!lost && items.some((it) => it.event.type === 'STARTED')) {
          lost = true;
          throw Object.assign(new Error('connection lost awaiting COMMIT (injected)'), { code: 'ATS_ERR_STORE_UNAVAILABLE' });
        }
        return r;
      };
      return fake;
    };
  }

  it('runs its attempt once, when the dispatch is delivered again (and not again for a further delivery)', async () => {
    const calls: number[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const registry = new HandlerRegistry().register('test.gate', async (_p, ctx) => {
      calls.push(ctx.attempt);
      await released;
      return { attempt: ctx.attempt };
    });
    const h = await harness(registry, { workerTransitions: lostClaimAnswer() });
    const published: LogMessage[] = [];
    const publish = h.log.publish.bind(h.log);
    h.log.publish = (messages) => (published.push(...messages), publish(messages));
    try {
      const r = await h.transitions.submit(spec('test.gate', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => calls.length > 0, 'the handler runs');
      // The dispatch delivered once more while the adopted attempt runs: skipped, not run again.
      const dispatches = published.filter((m) => m.key === r.job.id && m.topic === TOPICS.dispatch);
      assert.equal(dispatches.length, 1);
      const skipped = h.worker.counters.skipped;
      await h.log.publish(dispatches);
      await until(() => h.worker.counters.skipped === skipped + 1, 'the further delivery is skipped');
      release();
      const done = await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'done', 'done');
      assert.deepEqual(done.snapshot.context.result, { attempt: 1 });
      assert.deepEqual(calls, [1], 'the handler ran once');
      assert.equal(h.worker.counters.claimed, 1);
      assert.deepEqual((await h.store.getEvents(r.job.id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED']);
    } finally {
      release();
      await h.stop();
    }
  });

  it('is adopted only as sent from this process: a claim under the same worker id with another lease is not run here', async () => {
    // As if another process of the same id (a restarted one, or one misconfigured) had claimed the attempt:
    // the first STARTED commits with another lease than this worker sent, and its answer is lost.
    let first = true;
    const otherProcess = (real: TransitionService): TransitionService => {
      const fake = Object.create(real) as TransitionService;
      fake.applyMany = async (items) => {
        if (!first || !items.some((it) => it.event.type === 'STARTED')) return real.applyMany(items);
        first = false;
        await real.applyMany(items.map((it) => (it.event.type === 'STARTED' ? { ...it, event: { ...it.event, leaseUntil: it.event.leaseUntil - 1 } } : it)));
        throw Object.assign(new Error('connection lost awaiting COMMIT (injected)'), { code: 'ATS_ERR_STORE_UNAVAILABLE' });
      };
      return fake;
    };
    const calls: number[] = [];
    const registry = new HandlerRegistry().register('test.count', async (_p, ctx) => void calls.push(ctx.attempt));
    const h = await harness(registry, { workerTransitions: otherProcess });
    try {
      const r = await h.transitions.submit(spec('test.count', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => h.worker.counters.skipped === 1, 'the dispatch delivered again is skipped');
      await h.log.drain();
      assert.deepEqual(calls, [], 'not run here: the lease\'s expiry retries it');
      assert.equal(h.worker.counters.claimed, 0);
      const job = (await h.store.getJob(r.job.id))!;
      assert.equal(job.snapshot.value, 'running');
      assert.equal(job.snapshot.context.workerId, 'w1');
    } finally {
      await h.stop();
    }
  });
});

/** Waits (polling) until `ok()` holds, failing after `timeoutMs` of real time. */
async function until(ok: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.ok(ok(), `${what} (within ${timeoutMs} ms)`);
}

/** A gate a held write waits at: `open()` lets it through; `waiting` counts the writes held there so far. */
function gate(): { wait(): Promise<void>; open(): void; waiting: number } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const g = { waiting: 0, open: () => open(), wait: () => (g.waiting++, opened) };
  return g;
}

/** The real service, except that writes holding an event `held` picks wait at the gate; `landed` says, for each, whether `after()` held when it was written. */
function gatedWrites(held: (type: string) => boolean, g: { wait(): Promise<void> }, after: () => boolean, landed: Array<{ type: string; after: boolean }>) {
  return (real: TransitionService): TransitionService => {
    const fake = Object.create(real) as TransitionService;
    fake.applyMany = async (items) => {
      const hold = items.find((it) => held(it.event.type));
      if (hold) await g.wait();
      const r = await real.applyMany(items);
      if (hold) landed.push({ type: hold.event.type, after: after() });
      return r;
    };
    return fake;
  };
}

describe('worker: crash() stops it as a process death would: nothing is written after it returned', () => {
  it('an outcome queued when the crash comes is not sent: the attempt is left to its lease', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const sent: string[] = [];
    const worker: { it?: Worker; crashed?: Promise<void> } = {};
    const registry = new HandlerRegistry().register('test.ok', async () => {
      // The crash comes once the handler returned and its outcome was queued, before the queue goes out.
      setImmediate(() => (worker.crashed = worker.it!.crash()));
      return 'ok';
    });
    const h = await harness(registry, {
      clock, workerTransitions: beforeApplyMany((items) => void sent.push(...items.filter((it) => it.event.type === 'SUCCEEDED').map((it) => it.jobId))),
    });
    worker.it = h.worker;
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => worker.crashed !== undefined, 'the handler ran and crashed its worker');
      await worker.crashed;
      await until(() => h.worker.activeCount === 0, 'the worker let go of the attempt');
      assert.deepEqual(sent, [], 'the queued SUCCEEDED was not sent');
      assert.equal((await h.store.getJob(r.job.id))?.snapshot.value, 'running', 'left to its lease');
      assert.ok(!(await h.store.getEvents(r.job.id)).some((e) => e.type === 'SUCCEEDED'), 'no outcome written');
      assert.equal(h.worker.counters.succeeded, 0);
    } finally {
      await h.stop();
    }
  });

  it('a claim whose write was in flight when the crash came starts no handler', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    let ran = 0;
    const registry = new HandlerRegistry().register('test.ok', async () => {
      ran++;
      return 'ok';
    });
    const claims = gate();
    const landed: Array<{ type: string; after: boolean }> = [];
    let crashReturned = false;
    const h = await harness(registry, { clock, workerTransitions: gatedWrites((t) => t === 'STARTED', claims, () => crashReturned, landed) });
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => claims.waiting === 1, 'the claim is being written');
      const crashed = h.worker.crash().then(() => void (crashReturned = true));
      claims.open();
      await crashed;
      assert.deepEqual(landed, [{ type: 'STARTED', after: false }], 'the claim landed before crash() returned');
      assert.equal(ran, 0, 'the handler never ran');
      assert.equal(h.worker.activeCount, 0);
      assert.equal((await h.store.getJob(r.job.id))?.snapshot.value, 'running', 'claimed, and left to its lease');
      assert.equal(h.worker.slotUsage().busy, 0, 'its slot was given back');
    } finally {
      await h.stop();
    }
  });

  it('waits for the writes in flight when the crash came (an outcome batch, a heartbeat): none lands after it returned', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const entered = new Set<string>();
    const registry = new HandlerRegistry()
      .register('test.ok', async (_p, ctx) => void entered.add(ctx.jobId))
      .register('test.beat', async (_p, ctx) => {
        entered.add(ctx.jobId);
        await ctx.heartbeat().catch(() => undefined);
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
      });
    const writes = gate();
    const landed: Array<{ type: string; after: boolean }> = [];
    let crashReturned = false;
    const h = await harness(registry, {
      clock, workerTransitions: gatedWrites((t) => t === 'SUCCEEDED' || t === 'HEARTBEAT', writes, () => crashReturned, landed),
    });
    try {
      const ok = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      const beat = await h.transitions.submit(spec('test.beat', { maxAttempts: 1 }));
      assert.ok(ok.ok && beat.ok);
      await until(() => writes.waiting === 2, 'an outcome and a heartbeat are being written');
      const crashed = h.worker.crash().then(() => void (crashReturned = true));
      await settledWithin(crashed, 100); // a moment for crash() to return, were it not to wait
      writes.open();
      assert.equal(await settledWithin(crashed, 5000), 'settled', 'crash() returned');
      assert.deepEqual(landed.map((l) => l.after).sort(), [false, false], `both landed before crash() returned: ${JSON.stringify(landed)}`);
    } finally {
      await h.stop();
    }
  });

  it('progress a handler reports after the crash is not written', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const interval = holdSleeps(clock, (ms) => ms >= PROGRESS_INTERVAL_MS / 2 && ms <= PROGRESS_INTERVAL_MS);
    const entered = new Set<string>();
    let crashed!: () => void;
    const afterCrash = new Promise<void>((resolve) => (crashed = resolve));
    let reportedLater: Promise<void> | undefined;
    const registry = new HandlerRegistry().register('test.progress', async (_p, ctx) => {
      await ctx.progress(10); // written at once
      void ctx.progress(20); // waits for the interval
      entered.add(ctx.jobId);
      await afterCrash; // a handler that goes on although its signal aborted
      reportedLater = ctx.progress(30);
      await reportedLater;
    });
    const h = await harness(registry, { clock, progress: true });
    try {
      const r = await h.transitions.submit(spec('test.progress', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => entered.has(r.job.id) && interval.started(), 'the handler reported 10, and 20 waits for the interval');
      await h.worker.crash();
      assert.equal((await h.store.getProgress(r.job.id))?.value, 10);
      interval.release(); // the interval passes
      crashed();
      await until(() => reportedLater !== undefined, 'the handler reported again after the crash');
      assert.equal(await settledWithin(reportedLater!, 5000), 'settled', 'its report returned');
      assert.equal((await h.store.getProgress(r.job.id))?.value, 10, 'the progress stored at the crash stays');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: stop() when a subscription fails to stop', () => {
  it('still ends the running attempts as documented (aborted past the grace, recorded as WorkerShutdown), then throws the failure', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    let first = true;
    /** The first lane's subscription fails to stop (after it did stop reading). */
    const failingStop = (log: MemoryLog): EventLog => {
      const wrapped = Object.create(log) as EventLog;
      wrapped.consume = async (options): Promise<Subscription> => {
        const sub = await log.consume(options);
        const failing = first;
        first = false;
        return {
          stop: async () => {
            await sub.stop();
            if (failing) throw new Error('leaving the consumer group failed (injected)');
          },
        };
      };
      return wrapped;
    };
    const entered = new Set<string>();
    const registry = new HandlerRegistry().register('test.polite', async (_p, ctx) => {
      entered.add(ctx.jobId);
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    const h = await harness(registry, { clock, workerLog: failingStop });
    try {
      const r = await h.transitions.submit(spec('test.polite', { maxAttempts: 3 }));
      assert.ok(r.ok);
      await handlersRunning(h, [r.job.id], entered);
      const failure = await h.worker.stop().then(() => null, (err: Error) => err);
      assert.match(failure?.message ?? 'stop() resolved', /leaving the consumer group failed \(injected\)/, 'stop() throws the failure');
      const job = (await h.store.getJob(r.job.id))!;
      assert.equal(job.snapshot.value, 'retrying', 'the attempt was ended before stop() settled');
      assert.equal(job.snapshot.context.lastError?.name, 'WorkerShutdown');
      assert.equal(h.worker.activeCount, 0, 'no handler runs on');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: past the bound of its last writes, stop() leaves nothing to land after it', () => {
  it('a FAILED in flight at the bound is waited for (within SHUTDOWN_IN_FLIGHT_MS): it lands before stop() returns', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const bound = holdShutdownWrites(clock);
    holdSleeps(clock, (ms) => ms === SHUTDOWN_IN_FLIGHT_MS); // the wait for the writes in flight ends only once they landed
    const entered = new Set<string>();
    const registry = new HandlerRegistry().register('test.polite', async (_p, ctx) => {
      entered.add(ctx.jobId);
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    const failures = gate();
    const landed: Array<{ type: string; after: boolean }> = [];
    let stopReturned = false;
    const h = await harness(registry, { clock, workerTransitions: gatedWrites((t) => t === 'FAILED', failures, () => stopReturned, landed) });
    try {
      const r = await h.transitions.submit(spec('test.polite', { maxAttempts: 3 }));
      assert.ok(r.ok);
      await handlersRunning(h, [r.job.id], entered);
      const stopped = h.worker.stop().then(() => void (stopReturned = true));
      await until(() => failures.waiting === 1 && bound.started(), 'the grace ran out and the FAILED is being written');
      bound.release(); // the bound passes with the FAILED still in flight
      await settledWithin(stopped, 100); // a moment for stop() to return, were it not to wait
      failures.open();
      assert.equal(await settledWithin(stopped, 5000), 'settled', 'stop() returned');
      assert.deepEqual(landed, [{ type: 'FAILED', after: false }], 'the FAILED landed before stop() returned');
      assert.equal((await h.store.getJob(r.job.id))?.snapshot.context.lastError?.name, 'WorkerShutdown');
    } finally {
      await h.stop();
    }
  });

  it('an outcome still queued at the bound is never sent, even once the store answers again', async () => {
    // The first outcome write hangs (a database that stopped answering) until the test lets it fail.
    const outcomes: string[] = [];
    let stopReturned = false;
    const sentAfterStop: string[] = [];
    const { h, bound, lines, failHung, submitBoth } = await quickAndLongBehindHungWrites(async (outcome, hung) => {
      outcomes.push(outcome);
      if (stopReturned) sentAfterStop.push(outcome);
      if (outcomes.length === 1) await hung;
    });
    try {
      const [quick, long] = await submitBoth();
      await until(() => outcomes.length === 1, 'the quick job\'s outcome write hangs');

      const stopped = h.worker.stop().then(() => void (stopReturned = true));
      // The grace runs out: the long attempt is ended, and its failure is queued behind the hung write.
      await until(() => lines.some((l) => /interrupted by the shutdown/.test(l)) && bound.started(), 'the long attempt was interrupted');
      bound.release(); // the bound passes: the store has still not answered
      assert.equal(await settledWithin(stopped, 5000), 'settled', 'stop() ended although the store never answered');

      failHung(); // the store answers again (the hung write failed)
      await until(() => h.worker.activeCount === 0, 'the worker let go of both attempts');
      assert.deepEqual(sentAfterStop, [], 'nothing was sent after stop() returned');
      for (const id of [quick, long]) {
        assert.equal((await h.store.getJob(id))?.snapshot.value, 'running', 'nothing written: its lease expiry recovers it');
      }
    } finally {
      failHung();
      await h.stop();
    }
  });

  it('progress a handler that did not stop reports after stop() returned is not written', async () => {
    const clock = recordingClock();
    holdLongSleeps(clock);
    const bound = holdShutdownWrites(clock);
    const entered = new Set<string>();
    let stopped!: () => void;
    const afterStop = new Promise<void>((resolve) => (stopped = resolve));
    let reportedLater: Promise<void> | undefined;
    const registry = new HandlerRegistry().register('test.deaf', async (_p, ctx) => {
      await ctx.progress(10);
      entered.add(ctx.jobId);
      await afterStop; // ignores its signal
      reportedLater = ctx.progress(40);
      await reportedLater;
    });
    const h = await harness(registry, { clock, progress: true });
    try {
      const r = await h.transitions.submit(spec('test.deaf', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await handlersRunning(h, [r.job.id], entered);
      const stopping = h.worker.stop();
      await until(() => bound.started(), 'the grace ran out');
      bound.release(); // the handler has not stopped: left to its lease
      assert.equal(await settledWithin(stopping, 5000), 'settled', 'stop() returned');
      stopped();
      await until(() => reportedLater !== undefined, 'the handler reported again after stop()');
      assert.equal(await settledWithin(reportedLater!, 5000), 'settled', 'its report returned');
      assert.equal((await h.store.getProgress(r.job.id))?.value, 10, 'the progress stored before the stop stays');
    } finally {
      await h.stop();
    }
  });
});

describe('worker: a handler\'s heartbeat after its attempt ended', () => {
  it('rejects for a handler that awaits it, and is no unhandled rejection (which ends the process) for one that does not', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    let go!: () => void;
    const late = new Promise<void>((resolve) => { go = resolve; });
    const awaited: unknown[] = [];
    let returned!: () => void;
    const handlerReturned = new Promise<void>((resolve) => { returned = resolve; });
    const registry = new HandlerRegistry().register('test.late', async (_p, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      await late;
      void ctx.heartbeat(); // not awaited, as a handler keeping its lease in the background might
      try {
        await ctx.heartbeat();
      } catch (err) {
        awaited.push(err);
      }
      returned();
      return 'late';
    });
    const h = await harness(registry);
    try {
      const r = await h.transitions.submit(spec('test.late', { maxAttempts: 1, timeoutMs: 100 }));
      assert.ok(r.ok);
      await waitFor(h.store, r.job.id, (j) => j.snapshot.value === 'dead', 'dead (timed out)');
      go();
      await handlerReturned;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(awaited.length, 1, 'the awaited heartbeat rejects: the attempt is no longer this worker\'s');
      assert.deepEqual(unhandled, [], 'the heartbeat not awaited left no unhandled rejection');
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await h.stop();
    }
  });
});

describe('worker: an outcome that a cancel beat to the store', () => {
  it('is dropped with an info line (a user cancelled the job), not a warning', async () => {
    const { registry, release, started } = heldHandlers();
    const lines: Array<{ level: string; msg: string }> = [];
    const logger: Logger = {
      ...silentLogger,
      info: (msg) => { if (/outcome/.test(msg)) lines.push({ level: 'info', msg }); },
      warn: (msg) => { if (/outcome/.test(msg)) lines.push({ level: 'warn', msg }); },
    };
    const cancelFirst: { transitions?: TransitionService } = {};
    // The handler returned just as the job was cancelled: the CANCEL commits before the worker's SUCCEEDED.
    const racing = beforeApplyMany(async (items) => {
      const won = items.find((it) => it.event.type === 'SUCCEEDED');
      if (won) assert.ok((await cancelFirst.transitions!.apply(won.jobId, { type: 'CANCEL', reason: 'by hand' })).ok);
    });
    const h = await harness(registry, { workerTransitions: racing, logger });
    cancelFirst.transitions = h.transitions;
    try {
      const r = await h.transitions.submit(spec('test.ok', { maxAttempts: 1 }));
      assert.ok(r.ok);
      await until(() => started() === 1, 'the handler runs');
      release();
      await until(() => h.worker.counters.lateOutcomes === 1, 'the outcome came after the cancel');
      assert.equal((await h.store.getJob(r.job.id))!.snapshot.value, 'cancelled');
      assert.deepEqual(lines.map((l) => l.level), ['info'], JSON.stringify(lines));
      assert.match(lines[0]!.msg, /cancelled/);
    } finally {
      await h.stop();
    }
  });
});
