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
import type { FailureAdvice, LeaseAdvice } from './advisor/types.js';
import { NonRetryableError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import { TOPICS, type Clock, type JobRecord, type JobSpec, type JobStore, type Logger } from './ports.js';
import { Relay } from './relay.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { writeMachineVersion } from '../tests/helpers/stores.js';
import { Waker } from './wake.js';
import { MAX_ERROR_MESSAGE_CHARS, MAX_RESULT_BYTES, MAX_STACK_CHARS, OUTCOME_RETRY_FIRST_MS, OUTCOME_RETRY_MAX_MS, Worker, type WorkerDeps } from './worker.js';

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
  opts: {
    clock?: Clock; logger?: Logger; workerTransitions?: (t: TransitionService) => TransitionService; leaseMs?: number;
    advisor?: WorkerDeps['advisor'];
    /** The queues served. @defaultValue ['default'] (a worker serving every queue would also sleep between looks for new lanes) */
    queues?: string[];
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
      log, transitions: opts.workerTransitions?.(transitions) ?? transitions, clock, logger: opts.logger ?? silentLogger, registry,
      ...(opts.advisor ? { advisor: opts.advisor } : {}),
    },
    {
      workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: opts.leaseMs ?? 30_000, heartbeatMs: 10_000, shutdownGraceMs: 200,
      queues: opts.queues ?? ['default'],
    },
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

describe('worker: one outcome the store keeps refusing', () => {
  it('does not hold back the outcomes batched with it: a failed batch is tried item by item', async () => {
    const release: { go?: () => void } = {};
    const gate = new Promise<void>((r) => (release.go = r));
    let started = 0;
    const registry = new HandlerRegistry().register('test.ok', async () => {
      started++;
      await gate; // both handlers end at once, so their outcomes go in one batch
      return 'ok';
    });
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
      while (started < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      release.go!();
      const done = await waitFor(h.store, b!.job.id, (j) => j.snapshot.value === 'done', 'done', 2000);
      assert.equal(done.snapshot.context.result, 'ok');
      assert.equal(batches[0], 2, `the two outcomes went in one batch first: ${batches}`);
      assert.ok(!retried.has(b!.job.id), 'the other outcome was written without a retry');
      assert.ok(retried.has(a!.job.id), 'the refused one is retried');
      assert.equal((await h.store.getJob(a!.job.id))!.snapshot.value, 'running', 'the refused one waits for its retries or its lease');
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
    const advisor: NonNullable<WorkerDeps['advisor']> = {
      adviseFailure: (job, error, attempt) => {
        asked.push({ message: error.message, attempt, attemptBase: job.snapshot.context.attemptBase });
        return answers.failure?.(error.message) ?? null;
      },
      leaseFor: (type, queue) => {
        leasesAsked.push(`${type}/${queue}`);
        return answers.lease ?? null;
      },
    };
    return { advisor, asked, leasesAsked };
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

describe('worker: a heartbeat after the lease ended', () => {
  it('is refused, and the attempt is abandoned as lease-lost (nothing recorded)', async () => {
    // Heartbeats every 20 ms here; the job's 60 s timeout never comes.
    const clock = recordingClock();
    const short = clock.sleep;
    clock.sleep = (ms, signal) => (ms >= 60_000 ? new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true })) : short(ms, signal));
    const seen: { reason?: string } = {};
    const registry = new HandlerRegistry().register('test.slow', async (_p, ctx) => {
      clock.ahead = 40_000; // the worker was stopped for longer than its 30 s lease
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      seen.reason = String((ctx.signal.reason as Error | undefined)?.message);
    });
    const h = await harness(registry, { clock });
    try {
      const r = await h.transitions.submit(spec('test.slow', { maxAttempts: 1 }));
      assert.ok(r.ok);
      const deadline = Date.now() + 5000;
      while (seen.reason === undefined && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.match(seen.reason ?? '', /heartbeat refused: the lease had already ended/);
      while (h.worker.activeCount > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      assert.equal(h.worker.activeCount, 0);
      const job = (await h.store.getJob(r.job.id))!;
      assert.equal(job.snapshot.value, 'running', 'no outcome written: the timers take it back');
      assert.ok(!(await h.store.getEvents(r.job.id)).some((e) => e.type === 'HEARTBEAT'), 'no heartbeat written');
    } finally {
      await h.stop();
    }
  });
});

