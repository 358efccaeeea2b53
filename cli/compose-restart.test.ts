/**
 * The embedded default's repairs at start: the in-process log lost every
 * dispatch, so each job dispatched and not started is dispatched again
 * (`redispatchAfterRestart`), also behind jobs it cannot move; and the jobs
 * found running were the ended process's, so their attempts end at once
 * (`expireHeldAfterRestart`) instead of at the end of their leases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { silentLogger } from '../engine/logger.js';
import type { Clock, JobSpec, Logger } from '../engine/ports.js';
import { Timers } from '../engine/timers.js';
import { TransitionService } from '../engine/transitions.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { JOB_MACHINE_VERSION } from '../machines/job.machine.js';
import { writeMachineVersion } from '../tests/helpers/stores.js';
import { expireHeldAfterRestart, redispatchAfterRestart } from './compose.js';

const T0 = Date.UTC(2031, 0, 1);
const spec: JobSpec = { type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };

/** An in-memory store at T0 with its transitions and timers; `tick` moves the clock 1 ms on. */
async function world(logger: Logger) {
  let t = T0;
  const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const nextId = monotonicFactory();
  const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
  const timers = new Timers({ store, transitions, clock, logger }, { pollMs: 10, batchSize: 100, publishedTimeoutMs: 60_000 });
  return { store, transitions, timers, clock, tick: () => void (t += 1) };
}

/** A logger keeping its lines. */
function capturing(): { lines: { level: string; msg: string; fields?: Record<string, unknown> }[]; logger: Logger } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

describe('the re-dispatch after an embedded restart', () => {
  it('reaches the jobs behind a full batch of jobs of another job machine version', async () => {
    const { store, transitions, timers, clock, tick } = await world(silentLogger);
    try {
      // 500 jobs a newer deployment wrote (this process cannot step them), dispatched first; one of this version after them.
      const newer = await transitions.submitMany(Array.from({ length: 500 }, () => spec));
      for (const r of newer) {
        assert.ok(r.ok);
        await writeMachineVersion(store, r.job.id, JOB_MACHINE_VERSION + 1);
      }
      tick();
      const ours = await transitions.submit(spec);
      assert.ok(ours.ok);
      tick();
      await redispatchAfterRestart(timers, store, clock, silentLogger);
      assert.equal((await store.getJob(ours.job.id))!.snapshot.context.dispatches, 2, 'dispatched again');
      const first = newer[0]!;
      assert.ok(first.ok);
      assert.equal((await store.getJob(first.job.id))!.version, first.job.version, 'a job of another version is left as it is');
    } finally {
      await store.close();
    }
  });

  it('says how many jobs it dispatched again in one info line, each job at debug: a restart with many jobs waiting writes one info line, not one a job', async () => {
    const { lines, logger } = capturing();
    const { store, transitions, timers, clock, tick } = await world(logger);
    try {
      const jobs = await transitions.submitMany(Array.from({ length: 3 }, () => spec));
      tick();
      await redispatchAfterRestart(timers, store, clock, logger);
      for (const r of jobs) {
        assert.ok(r.ok);
        assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 2, 'dispatched again');
      }
      assert.deepEqual(lines.filter((l) => l.level !== 'debug').map((l) => [l.level, l.msg, l.fields]), [['info', 'in-process log restart: dispatched jobs again', { count: 3 }]]);
      assert.equal(lines.filter((l) => l.level === 'debug' && l.msg === 'timers: dispatched again (no worker started it)').length, 3, 'each job at debug');
    } finally {
      await store.close();
    }
  });
});

describe('the end of held leases after an embedded restart', () => {
  it('ends each running job\'s attempt at once (LEASE_EXPIRED with holderGone), long before its lease, in one info line', async () => {
    const { lines, logger } = capturing();
    const { store, transitions, timers, clock, tick } = await world(logger);
    try {
      const [running, last, waiting] = await transitions.submitMany([spec, { ...spec, maxAttempts: 1 }, spec]);
      for (const r of [running, last]) {
        assert.ok(r?.ok);
        tick();
        // Held for ten minutes by the process that ended.
        const started = await transitions.apply(r.job.id, { type: 'STARTED', attempt: 1, leaseUntil: clock.now() + 600_000, workerId: 'gone' });
        assert.ok(started.ok, JSON.stringify(started));
      }
      tick();
      await expireHeldAfterRestart(timers, store, logger);
      const retried = (await store.getJob(running!.ok ? running.job.id : ''))!;
      assert.equal(retried.snapshot.value, 'retrying', 'a failed attempt, retried as its policy says');
      assert.equal(retried.snapshot.context.lastError?.message, 'lease ended: the process that ran it had ended (found running at the restart)');
      const events = await store.getEvents(retried.id);
      assert.deepEqual({ ...events.at(-1)!.data, rand: 0 }, { type: 'LEASE_EXPIRED', at: clock.now(), attempt: 1, rand: 0, holderGone: true });
      assert.equal((await store.getJob(last!.ok ? last.job.id : ''))!.snapshot.value, 'dead', 'its last attempt: dead');
      assert.equal((await store.getJob(waiting!.ok ? waiting.job.id : ''))!.snapshot.value, 'pending', 'a job not running is left as it is');
      assert.deepEqual(lines.filter((l) => l.level !== 'debug').map((l) => [l.level, l.msg, l.fields]),
        [['info', 'embedded restart: the attempts of jobs found running ended (a failed attempt each, retried as the job\'s policy says)', { count: 2 }]]);
      // A second start finds none.
      await expireHeldAfterRestart(timers, store, logger);
      assert.equal(lines.filter((l) => l.level === 'info').length, 1);
    } finally {
      await store.close();
    }
  });
});
