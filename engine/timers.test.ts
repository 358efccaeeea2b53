/**
 * The timers' repair of lost dispatches, on the real stores (MariaDB and
 * SQLite): a dispatch that went out and was lost is issued again after the
 * published timeout, whether or not PUBLISHED was recorded for it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { JOB_MACHINE_VERSION } from '../machines/job.machine.js';
import { createMemoryLog, type MemoryLog } from '../adapters/memory/index.js';
import { intercept } from '../tests/helpers/intercept.js';
import { STORE_BACKENDS, withMigratedStore, writeMachineVersion } from '../tests/helpers/stores.js';
import { isLane, laneGroup, laneTopic } from './lanes.js';
import { silentLogger } from './logger.js';
import {
  TOPICS, type Clock, type DueJob, type EventLog, type JobSpec, type JobStore, type Logger, type OutboxRow, type WorkerRecord, type WorkerRegistryStore,
} from './ports.js';
import { MAX_QUEUED_TIMEOUTS, Timers, WAITING_RECHECK_MS } from './timers.js';
import { DEFAULT_TENANT } from './auth.js';
import { ScheduleRunner, ScheduleService } from './schedules.js';
import { MAX_WORKERS_LISTED, PRESENCE_TTL_MS } from './worker-presence.js';
import { TransitionService } from './transitions.js';

const TIMEOUT_MS = 60_000;
const T0 = Date.UTC(2031, 0, 1);

/** Time that moves only when the test says. */
const manualClock = () => {
  let t = T0;
  const clock: Clock & { advance(ms: number): void } = {
    now: () => t,
    sleep: () => Promise.resolve(),
    advance: (ms) => { t += ms; },
  };
  return clock;
};

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});

/** The relay's produce, acked by a log that then loses every message; the rows are gone from the outbox. */
async function publishAndLose(store: JobStore): Promise<OutboxRow[]> {
  const lost: OutboxRow[] = [];
  while ((await store.relayOutbox(100, async (rows) => void lost.push(...rows))) > 0);
  return lost;
}

const dispatchesOf = (rows: readonly OutboxRow[]) => rows.filter((r) => r.topic === TOPICS.dispatch).map((r) => (r.payload as { jobId: string }).jobId);


/** Timers (published timeout TIMEOUT_MS) and transitions over `store`, on a clock the test moves. */
function timersOn(
  store: JobStore, batchSize = 100, logger: Logger = silentLogger, log?: Pick<EventLog, 'unreadBefore' | 'partitioner'>,
  presence?: Pick<WorkerRegistryStore, 'listWorkers'>,
) {
  const clock = manualClock();
  const nextId = monotonicFactory();
  const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
  const dispatches = log ? { dispatches: { log, groupId: WORKERS } } : {};
  const timers = new Timers({ store, transitions, clock, logger, ...dispatches, ...(presence ? { presence } : {}) }, { pollMs: 10, batchSize, publishedTimeoutMs: TIMEOUT_MS });
  return { clock, transitions, timers };
}

/** `n` published timeouts pass, a timers pass after each. */
async function passTimeouts(clock: { advance(ms: number): void }, timers: Timers, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(TIMEOUT_MS);
    await timers.runOnce();
  }
}

/** The workers' group id the timers are told. */
const WORKERS = 'ats-workers';

/** The relay's produce into `log`: each dispatch keyed by its job id, as the relay sends it; returns the job ids. */
async function publishTo(store: JobStore, log: EventLog): Promise<string[]> {
  const sent: string[] = [];
  while ((await store.relayOutbox(100, async (rows) => {
    const dispatches = rows.filter((r) => isLane(r.topic));
    await log.publish(dispatches.map((r) => ({ topic: r.topic, key: (r.payload as { jobId: string }).jobId, value: '{}', headers: {} })));
    sent.push(...dispatches.map((r) => (r.payload as { jobId: string }).jobId));
  })) > 0);
  return sent;
}

/** An in-process log that stamps what is published with the time of the clock it is given. */
function logOnClock() {
  let clock: Pick<Clock, 'now'> = { now: () => T0 };
  const log = createMemoryLog({ now: () => clock.now() });
  return { log, stampWith: (c: Pick<Clock, 'now'>) => { clock = c; } };
}

/** The workers of each lane read a message of no job there: their group has committed on it. */
async function readSome(log: MemoryLog, lanes: readonly string[]): Promise<void> {
  await log.publish(lanes.map((topic) => ({ topic, key: 'no-job', value: '{}', headers: {} })));
  for (const lane of lanes) await readPast(log, lane);
}

/** A worker of `lane` without the handler: reads every dispatch and commits past it, running none. */
async function readPast(log: MemoryLog, lane: string): Promise<void> {
  const sub = await log.consume({ topic: lane, groupId: laneGroup(WORKERS, lane), fromBeginning: true, handle: async () => {} });
  await log.drain();
  await sub.stop();
}

/** The warnings logged, as [message, fields]. */
function warnings() {
  const seen: [string, Record<string, unknown> | undefined][] = [];
  const logger: Logger = { ...silentLogger, warn: (m, f) => void seen.push([m, f]) };
  return { logger, seen };
}

/** A store whose scans answer what another timers instance read earlier; its writes go to `store` (through the transitions). */
function scansAsRead(store: JobStore, seen: { due: DueJob[]; lost: DueJob[] }): JobStore {
  return {
    findDue: async () => seen.due, findExpiredLeases: async () => [], findLostDispatches: async () => seen.lost,
    oldestOutboxAt: () => store.oldestOutboxAt(),
  } as unknown as JobStore;
}

for (const backend of STORE_BACKENDS) {
  describe(`Timers on ${backend.name}`, () => {
    it('re-dispatch a lost dispatch after the published timeout, whether PUBLISHED was recorded or not', async () => {
      const { store, cleanup } = await backend.open();
      try {
        await store.migrate();
        const { clock, transitions, timers } = timersOn(store);

        // Both dispatched at submit; the log acks and loses both messages.
        const unrecorded = await transitions.submit(spec());
        const recorded = await transitions.submit(spec());
        const delayed = await transitions.submit(spec({ runAt: T0 + 10 * TIMEOUT_MS }));
        assert.ok(unrecorded.ok && recorded.ok && delayed.ok);
        assert.deepEqual(dispatchesOf(await publishAndLose(store)).sort(), [unrecorded.job.id, recorded.job.id].sort());
        // PUBLISHED is recorded for one only (the relay's bookkeeping write failed for the other), and its transition published.
        assert.ok((await transitions.apply(recorded.job.id, { type: 'PUBLISHED', attempt: 1 })).ok);
        await publishAndLose(store);

        clock.advance(TIMEOUT_MS - 1);
        assert.equal(await timers.runOnce(), 0, 'nothing is stale before the timeout');
        clock.advance(1);
        assert.equal(await timers.runOnce(), 2);
        assert.deepEqual(dispatchesOf(await publishAndLose(store)).sort(), [unrecorded.job.id, recorded.job.id].sort());
        assert.equal(timers.counters.redispatched, 2);
        for (const id of [unrecorded.job.id, recorded.job.id]) {
          const job = (await store.getJob(id))!;
          assert.equal(job.snapshot.context.dispatches, 2);
          assert.equal(job.snapshot.context.dispatchedFor, 1);
        }
        // The new dispatch is lost again: the timers issue another one a timeout later, and only then.
        clock.advance(TIMEOUT_MS - 1);
        assert.equal(await timers.runOnce(), 0);
        clock.advance(1);
        assert.equal(await timers.runOnce(), 2);
        assert.equal((await store.getJob(delayed.job.id))!.snapshot.context.dispatches, 0, 'a delayed job is not dispatched early');
      } finally {
        await cleanup();
      }
    });

    it('dispatch nothing again while the relay is stuck (the outbox holds a row older than the timeout); once it publishes, repair', async () => {
      const { store, cleanup } = await backend.open();
      try {
        await store.migrate();
        const { clock, transitions, timers } = timersOn(store);
        // Dispatched at submit; the log is down, so the relay publishes nothing: the dispatches wait in the outbox.
        const jobs = await transitions.submitMany([spec(), spec()]);
        const ids = jobs.map((r) => { assert.ok(r.ok); return r.job.id; });
        const unpublished = await store.countUnpublished();
        for (let i = 0; i < 5; i++) {
          clock.advance(TIMEOUT_MS);
          assert.equal(await timers.runOnce(), 0, `timeout ${i + 1}: nothing dispatched again`);
        }
        assert.equal(await store.countUnpublished(), unpublished, 'the outbox did not grow');
        for (const id of ids) assert.equal((await store.getJob(id))!.snapshot.context.dispatches, 1);
        // The log is back: the relay publishes the first dispatches, and the log loses them; a timeout later they are issued again.
        assert.deepEqual(dispatchesOf(await publishAndLose(store)).sort(), [...ids].sort());
        assert.equal(await store.oldestOutboxAt(), null);
        clock.advance(TIMEOUT_MS);
        assert.equal(await timers.runOnce(), 2);
        assert.deepEqual(dispatchesOf(await publishAndLose(store)).sort(), [...ids].sort());
      } finally {
        await cleanup();
      }
    });
  });
}

for (const backend of STORE_BACKENDS) {
  describe(`Timers on ${backend.name}, beside a log whose workers lag`, () => {
    it('keep a job while its dispatch waits unread in the log; dispatch it again once its lane\'s workers read past it', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = warnings();
      const { log, stampWith } = logOnClock();
      const { clock, transitions, timers } = timersOn(store, 100, logger, log);
      stampWith(clock);
      const reports = laneTopic('reports', 0);
      await readSome(log, [TOPICS.dispatch, reports]);
      const submit = async (s: Partial<JobSpec> = {}) => { const r = await transitions.submit(spec(s)); assert.ok(r.ok); return r.job.id; };
      const inDefault = [await submit(), await submit()];
      const inReports = await submit({ queue: 'reports' });
      // A lane no worker ever read: the log cannot tell whether its workers' group is the one asked about.
      const inNobody = await submit({ queue: 'nobody' });
      assert.equal((await publishTo(store, log)).length, 4);

      for (let i = 1; i <= 3; i++) {
        clock.advance(TIMEOUT_MS);
        assert.equal(await timers.runOnce(), 4, `timeout ${i}: three jobs kept, one dispatched again`);
        assert.deepEqual(await publishTo(store, log), [inNobody], `timeout ${i}: only the job of the lane nobody read is dispatched again`);
      }
      assert.equal(timers.counters.queued, 9);
      assert.equal(timers.counters.redispatched, 3);
      for (const id of [...inDefault, inReports]) {
        const job = (await store.getJob(id))!;
        assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED'], 'no event');
        assert.equal(job.updatedAt, clock.now(), 'kept: the scan looks again a timeout later');
      }
      const waiting = seen.filter(([m]) => m.includes('wait unread in the log'));
      assert.ok(waiting.length >= 1 && waiting.length <= 3, 'at most once a minute');
      assert.equal(waiting[0]![1]!.count, 3);

      // After keeps, the last transition is still the dispatch: it is what a keep leaves alone.
      assert.equal((await store.findLostDispatches(clock.now() + 1, 10)).find((j) => j.id === inReports)!.lastTransitionAt, T0);
      // A worker of the default queue without the handler reads past its dispatches: those are lost now, the other is not.
      await readPast(log, TOPICS.dispatch);
      clock.advance(TIMEOUT_MS);
      await timers.runOnce();
      assert.deepEqual((await publishTo(store, log)).sort(), [...inDefault, inNobody].sort());
      assert.deepEqual((await store.getEvents(inReports)).map((e) => e.type), ['SUBMITTED']);
      assert.equal(timers.counters.queued, 10);
    }));

    it('keep more jobs whose dispatch waits unread than ten batches, and still repair a lost dispatch behind them', () => withMigratedStore(backend, async (store) => {
      const { log, stampWith } = logOnClock();
      const batch = 2;
      const { clock, transitions, timers } = timersOn(store, batch, silentLogger, log);
      stampWith(clock);
      await readSome(log, [laneTopic('reports', 0)]);
      const queued = await transitions.submitMany(Array.from({ length: 25 }, () => spec({ queue: 'reports' })));
      clock.advance(1);
      const lost = await transitions.submitMany([spec(), spec()]);
      await publishTo(store, log);
      await readPast(log, TOPICS.dispatch);
      clock.advance(TIMEOUT_MS);
      // As the loop does: another pass at once while a pass did a full batch.
      for (let pass = 0; pass < 30 && (await timers.runOnce()) >= batch; pass++);
      for (const r of lost) { assert.ok(r.ok); assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 2); }
      for (const r of queued) { assert.ok(r.ok); assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 1); }
      assert.equal(timers.counters.queued, 25);
    }));

    it(`dispatch a job again ${MAX_QUEUED_TIMEOUTS} timeouts after its last transition though its dispatch still waits unread (a lane that lags that long, a group that tells nothing true)`, () => withMigratedStore(backend, async (store) => {
      const { log, stampWith } = logOnClock();
      const { clock, transitions, timers } = timersOn(store, 100, silentLogger, log);
      stampWith(clock);
      await readSome(log, [TOPICS.dispatch]);
      const r = await transitions.submit(spec());
      assert.ok(r.ok);
      await publishTo(store, log);
      await passTimeouts(clock, timers, MAX_QUEUED_TIMEOUTS - 1);
      assert.deepEqual([timers.counters.queued, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS - 1, 0]);
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 1);
      assert.deepEqual([timers.counters.queued, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS - 1, 1]);
      // The new dispatch is a transition: kept again from there.
      assert.deepEqual(await publishTo(store, log), [r.job.id]);
      clock.advance(TIMEOUT_MS);
      await timers.runOnce();
      assert.deepEqual([timers.counters.queued, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS, 1]);
    }));

    it('repair the jobs of the lanes the log answers for while it fails for another', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = warnings();
      const log: Pick<EventLog, 'unreadBefore' | 'partitioner'> = {
        unreadBefore: async (topic) => { if (topic !== TOPICS.dispatch) throw new Error('leader not available'); return new Set(); },
        partitioner: async () => () => 0,
      };
      const { clock, transitions, timers } = timersOn(store, 100, logger, log);
      const ok = await transitions.submit(spec());
      const broken = await transitions.submit(spec({ queue: 'broken' }));
      assert.ok(ok.ok && broken.ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 1);
      assert.equal((await store.getJob(ok.job.id))!.snapshot.context.dispatches, 2);
      assert.equal((await store.getJob(broken.job.id))!.snapshot.context.dispatches, 1, 'neither dispatched again nor kept');
      assert.equal((await store.getJob(broken.job.id))!.updatedAt, T0);
      assert.equal(seen.filter(([m]) => m.includes('the log did not say')).length, 1);
    }));

    it('dispatch nothing again while the log does not answer; once it does, repair', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = warnings();
      let down = true;
      const log: Pick<EventLog, 'unreadBefore' | 'partitioner'> = {
        unreadBefore: async () => { if (down) throw new Error('connect ECONNREFUSED'); return new Set(); },
        partitioner: async () => () => 0,
      };
      const { clock, transitions, timers } = timersOn(store, 100, logger, log);
      const r = await transitions.submit(spec());
      assert.ok(r.ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 0);
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 0);
      const said = seen.filter(([m]) => m.includes('the log did not say'));
      assert.equal(said.length, 1, 'said once');
      assert.equal(said[0]![1]!.err, 'connect ECONNREFUSED', 'the error named as every line names it (err, errName)');
      assert.equal(said[0]![1]!.errName, 'Error');
      down = false;
      clock.advance(TIMEOUT_MS / 10);
      assert.equal(await timers.runOnce(), 1);
      assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 2);
    }));
  });
}

for (const backend of STORE_BACKENDS) {
  describe(`Timers on ${backend.name}, beside a job of a newer job machine version`, () => {
    it('repair the other jobs of the pass, and leave that one as it is', () => withMigratedStore(backend, async (store) => {
      const { clock, transitions, timers } = timersOn(store);
      const newer = await transitions.submit(spec());
      const other = await transitions.submit(spec());
      assert.ok(newer.ok && other.ok);
      await publishAndLose(store);
      await writeMachineVersion(store, newer.job.id, JOB_MACHINE_VERSION + 1);
      const before = (await store.getJob(newer.job.id))!;
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 1);
      assert.deepEqual(dispatchesOf(await publishAndLose(store)), [other.job.id]);
      assert.equal((await store.getJob(other.job.id))!.snapshot.context.dispatches, 2);
      assert.deepEqual(await store.getJob(newer.job.id), before);
    }));

    it('read past a batch of them in each scan, so the other jobs of the scan are repaired; say so once a minute', () => withMigratedStore(backend, async (store) => {
      const batch = 2;
      const { logger, seen } = warnings();
      const { clock, transitions, timers } = timersOn(store, batch, logger);
      const submit = async (s: Partial<JobSpec> = {}) => { const r = await transitions.submit(spec(s)); assert.ok(r.ok); return r.job.id; };
      const start = async (id: string, leaseUntil: number) =>
        assert.ok((await transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil, workerId: 'w1' })).ok);
      // In each scan's order, a batch of newer jobs comes first, then one this process runs.
      const dueNewer = [await submit({ runAt: T0 + 1000 }), await submit({ runAt: T0 + 1000 })];
      const due = await submit({ runAt: T0 + 2000 });
      const runningNewer = [await submit(), await submit()];
      const running = await submit();
      for (const id of runningNewer) await start(id, T0 + 5000);
      await start(running, T0 + 6000);
      const lostNewer = [await submit(), await submit()];
      clock.advance(1);
      const lost = await submit();
      await publishAndLose(store);
      const newer = [...dueNewer, ...runningNewer, ...lostNewer];
      for (const id of newer) await writeMachineVersion(store, id, JOB_MACHINE_VERSION + 1);
      const before = await Promise.all(newer.map((id) => store.getJob(id)));

      clock.advance(TIMEOUT_MS);
      await timers.runOnce();
      clock.advance(1000);
      await timers.runOnce();
      assert.equal((await store.getJob(due))!.snapshot.context.dispatches, 1, 'the delayed job behind them is dispatched');
      assert.equal((await store.getJob(running))!.snapshot.value, 'retrying', 'the expired lease behind them is taken back');
      assert.equal((await store.getJob(lost))!.snapshot.context.dispatches, 2, 'the lost dispatch behind them is dispatched again');
      assert.deepEqual(await Promise.all(newer.map((id) => store.getJob(id))), before, 'the newer jobs are left as they are');

      const passedOver = () => seen.filter(([m]) => m.includes('job machine version this process does not run')).map(([, f]) => f);
      assert.equal(passedOver().length, 1, 'logged at once');
      assert.equal(passedOver()[0]!.count, 6);
      assert.deepEqual(passedOver()[0]!.machines, [JOB_MACHINE_VERSION + 1]);
      clock.advance(58_000);
      await timers.runOnce();
      assert.equal(passedOver().length, 1, 'not again within the minute');
      clock.advance(1000);
      await timers.runOnce();
      assert.equal(passedOver().length, 2, 'again a minute later');
      assert.deepEqual(await Promise.all(newer.map((id) => store.getJob(id))), before);
    }));
  });
}

/** Every line logged, as [level, message, fields]. */
function allLines() {
  const seen: [string, string, Record<string, unknown> | undefined][] = [];
  const at = (level: string) => (m: string, f?: Record<string, unknown>) => void seen.push([level, m, f]);
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, seen };
}

for (const backend of STORE_BACKENDS) {
  describe(`Timers on ${backend.name}: the log of many repairs`, () => {
    it('a pass that dispatches many jobs again, or ends many leases, says so in one line each (the count, the first job ids), each job at debug', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = allLines();
      const { clock, transitions, timers } = timersOn(store, 100, logger);
      const submit = async () => { const r = await transitions.submit(spec()); assert.ok(r.ok); return r.job.id; };
      const lost: string[] = [];
      for (let i = 0; i < 12; i++) lost.push(await submit());
      const running: string[] = [];
      for (let i = 0; i < 12; i++) running.push(await submit());
      for (let i = 0; i < 3; i++) {
        const r = await transitions.submit(spec({ type: 'demo.sleep' }));
        assert.ok(r.ok);
        running.push(r.job.id);
      }
      for (const id of running) assert.ok((await transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: T0 + 1000, workerId: 'w1' })).ok);
      await publishAndLose(store);

      clock.advance(TIMEOUT_MS);
      await timers.runOnce();
      assert.equal(timers.counters.redispatched, 12);
      assert.equal(timers.counters.expired, 15);
      const above = seen.filter(([level]) => level !== 'debug');
      assert.deepEqual(above.map(([level, m]) => [level, m]).sort(), [
        ['info', 'timers: dispatched again jobs no worker started within the published timeout (their dispatch may be lost)'],
        ['warn', 'timers: leases expired (no heartbeat of their workers reached the store); the attempts count as failed'],
      ].sort(), 'one line each, not one a job');
      for (const [, , f] of above) assert.equal((f!.jobIds as string[]).length, 10, 'the first ten job ids');
      const [, , redispatched] = above.find(([level]) => level === 'info')!;
      assert.equal(redispatched!.count, 12);
      assert.deepEqual(redispatched!.types, [{ type: 'demo.echo', count: 12 }], 'by type');
      assert.ok((redispatched!.jobIds as string[]).every((id) => lost.includes(id)));
      const [, , expired] = above.find(([level]) => level === 'warn')!;
      assert.equal(expired!.count, 15);
      assert.deepEqual(expired!.types, [{ type: 'demo.echo', count: 12 }, { type: 'demo.sleep', count: 3 }], 'by type, the most first');
      assert.ok((expired!.jobIds as string[]).every((id) => running.includes(id)));
      const debugOf = (m: string) => seen.filter(([level, msg]) => level === 'debug' && msg === m).map(([, , f]) => f!.jobId).sort();
      assert.deepEqual(debugOf('timers: dispatched again (no worker started it)'), [...lost].sort(), 'each job at debug');
      assert.deepEqual(debugOf('timers: lease expired (no heartbeat of its worker reached the store); the attempt counts as failed'), [...running].sort(), 'each job at debug');

      seen.length = 0;
      clock.advance(1000);
      await timers.runOnce();
      assert.deepEqual(seen.filter(([level]) => level !== 'debug'), [], 'a pass that repairs nothing says nothing');
    }));
  });
}

for (const backend of STORE_BACKENDS) {
  describe(`Two timers instances on ${backend.name}`, () => {
    it('that read the same due job and the same lost dispatch before either wrote dispatch each once', () => withMigratedStore(backend, async (store) => {
      const { clock, transitions, timers } = timersOn(store);
      const delayed = await transitions.submit(spec({ runAt: T0 + TIMEOUT_MS }));
      const dispatched = await transitions.submit(spec());
      assert.ok(delayed.ok && dispatched.ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS);
      // The other instance reads both before this one writes, and applies after it.
      const other = new Timers({ store: scansAsRead(store, {
        due: await store.findDue(clock.now(), 100), lost: await store.findLostDispatches(clock.now() - TIMEOUT_MS, 100),
      }), transitions, clock, logger: silentLogger }, { pollMs: 10, batchSize: 100, publishedTimeoutMs: TIMEOUT_MS });
      assert.equal(await timers.runOnce(), 2);
      assert.equal(await other.runOnce(), 0, "the other instance's events are refused");
      assert.deepEqual(dispatchesOf(await publishAndLose(store)).sort(), [delayed.job.id, dispatched.job.id].sort(), 'one message each');
      assert.deepEqual((await store.getEvents(delayed.job.id)).map((e) => e.type), ['SUBMITTED', 'DISPATCH']);
      assert.deepEqual((await store.getEvents(dispatched.job.id)).map((e) => e.type), ['SUBMITTED', 'DISPATCH']);
    }));

    it('running their passes at once repair each lost dispatch once', () => withMigratedStore(backend, async (store) => {
      const { clock, transitions } = timersOn(store);
      const jobs = await transitions.submitMany(Array.from({ length: 20 }, () => spec()));
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS);
      const instance = () => new Timers({ store, transitions, clock, logger: silentLogger }, { pollMs: 10, batchSize: 100, publishedTimeoutMs: TIMEOUT_MS });
      const [a, b] = await Promise.all([instance().runOnce(), instance().runOnce()]);
      assert.equal(a + b, 20);
      for (const r of jobs) { assert.ok(r.ok); assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 2); }
      assert.equal(dispatchesOf(await publishAndLose(store)).length, 20);
    }));
  });
}

/** A worker's presence row, last seen at `lastSeenAt`. */
const workerRow = (id: string, types: string[], queues: string[], lastSeenAt: number): WorkerRecord => ({
  id, host: 'test', pid: 1, types, queues, concurrency: 10, startedAt: T0, lastSeenAt,
});

for (const backend of STORE_BACKENDS) {
  describe(`Timers on ${backend.name}, with the workers' presence`, () => {
    it('keep a job no live worker can run instead of dispatching it again each timeout; dispatch it again once a worker that can is up', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = warnings();
      const { log, stampWith } = logOnClock();
      const { clock, transitions, timers } = timersOn(store, 100, logger, log, store);
      stampWith(clock);
      // A live worker serves the default queue with a handler for demo.echo only; one that could run demo.resize died.
      await store.upsertWorker(workerRow('w-echo', ['demo.echo'], ['default'], T0));
      await store.upsertWorker(workerRow('w-dead', ['demo.resize'], ['*'], T0 - PRESENCE_TTL_MS - 1));
      const submit = async (s: Partial<JobSpec> = {}) => { const r = await transitions.submit(spec(s)); assert.ok(r.ok); return r.job.id; };
      const served = await submit();
      const noHandler = await submit({ type: 'demo.resize' });
      const noWorker = await submit({ queue: 'reports' });
      assert.equal((await publishTo(store, log)).length, 3);
      // The worker reads its lane and skips demo.resize; echo's dispatch is lost on the way.
      await readPast(log, TOPICS.dispatch);

      for (let i = 1; i <= 4; i++) {
        clock.advance(TIMEOUT_MS);
        await store.upsertWorker(workerRow('w-echo', ['demo.echo'], ['default'], clock.now()));
        assert.equal(await timers.runOnce(), 3, `timeout ${i}: two jobs kept, one dispatched again`);
        assert.deepEqual(await publishTo(store, log), [served], `timeout ${i}: only the job a live worker can run is dispatched again`);
        await readPast(log, TOPICS.dispatch);
      }
      assert.deepEqual([timers.counters.unserved, timers.counters.queued, timers.counters.redispatched], [8, 0, 4]);
      for (const id of [noHandler, noWorker]) {
        assert.deepEqual((await store.getEvents(id)).map((e) => e.type), ['SUBMITTED'], 'no event');
        assert.equal((await store.getJob(id))!.updatedAt, clock.now(), 'kept: the scan looks again a timeout later');
      }
      // Passes a minute apart: one warning each.
      const told = () => seen.filter(([m]) => m.includes('no live worker can run'));
      assert.equal(told().length, 4);
      assert.equal(told()[0]![1]!.count, 2);
      assert.deepEqual(told()[0]![1]!.waiting, [{ type: 'demo.resize', queue: 'default' }, { type: 'demo.echo', queue: 'reports' }]);

      // A worker with the resize handler, serving every queue, is up: the presence is read again within 5 s, and the job dispatched again at once.
      await store.upsertWorker(workerRow('w-resize', ['demo.resize'], ['*'], clock.now()));
      clock.advance(WAITING_RECHECK_MS - 1);
      assert.equal(await timers.runOnce(), 0);
      clock.advance(1);
      assert.equal(await timers.runOnce(), 1);
      const sent = await publishTo(store, log);
      assert.deepEqual(sent, [noHandler], 'dispatched again, to be run by the new worker; no live worker serves reports with demo.echo yet');
      assert.equal((await store.getJob(noHandler))!.snapshot.context.dispatches, 2);
      assert.deepEqual((await store.getEvents(noHandler)).map((e) => e.type), ['SUBMITTED', 'DISPATCH']);
      let applies = 0;
      const applyMany = transitions.applyMany.bind(transitions);
      transitions.applyMany = async (...args) => { applies++; return applyMany(...args); };
      clock.advance(WAITING_RECHECK_MS);
      assert.equal(await timers.runOnce(), 0);
      assert.equal(applies, 0, 'once: it is forgotten, not asked for again');

      // Now one serving reports: the other job too.
      await store.upsertWorker(workerRow('w-reports', ['demo.echo'], ['reports'], clock.now()));
      clock.advance(WAITING_RECHECK_MS);
      assert.equal(await timers.runOnce(), 1);
      assert.deepEqual(await publishTo(store, log), [noWorker]);
      assert.equal(timers.counters.redispatched, 6);
    }));

    it('a kept job that moved on before a worker that can run it came (cancelled and redriven) is not dispatched again', () => withMigratedStore(backend, async (store) => {
      const { clock, transitions, timers } = timersOn(store, 100, silentLogger, undefined, store);
      await store.upsertWorker(workerRow('w-echo', ['demo.echo'], ['default'], T0));
      const r = await transitions.submit(spec({ type: 'demo.resize' }));
      assert.ok(r.ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS);
      await store.upsertWorker(workerRow('w-echo', ['demo.echo'], ['default'], clock.now()));
      assert.equal(await timers.runOnce(), 1);
      assert.equal(timers.counters.unserved, 1);
      // Cancelled and redriven: dispatchable again, at another version than the scan read.
      assert.ok((await transitions.apply(r.job.id, { type: 'CANCEL' })).ok);
      assert.ok((await transitions.apply(r.job.id, { type: 'REDRIVE' })).ok);
      await store.upsertWorker(workerRow('w-resize', ['demo.resize'], ['*'], clock.now()));
      clock.advance(WAITING_RECHECK_MS);
      await timers.runOnce();
      assert.ok(!(await store.getEvents(r.job.id)).some((e) => e.type === 'DISPATCH'), 'no dispatch from the keep before');
      assert.equal(timers.counters.redispatched, 0);
    }));

    it('not while the relay cannot publish (the outbox holds a row older than the timeout): then at once when it can', () => withMigratedStore(backend, async (store) => {
      const { clock, transitions, timers } = timersOn(store, 100, silentLogger, undefined, store);
      const seen = async (at: number) => store.upsertWorker(workerRow('w-echo', ['demo.echo'], ['default'], at));
      await seen(T0);
      const kept = await transitions.submit(spec({ type: 'demo.resize' }));
      assert.ok(kept.ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS / 2);
      assert.ok((await transitions.submit(spec())).ok); // its dispatch stays in the outbox
      clock.advance(TIMEOUT_MS / 2);
      await seen(clock.now());
      assert.equal(await timers.runOnce(), 1);
      assert.equal(timers.counters.unserved, 1);
      clock.advance(TIMEOUT_MS / 2 + 1);
      await seen(clock.now());
      await store.upsertWorker(workerRow('w-resize', ['demo.resize'], ['*'], clock.now()));
      assert.equal(await timers.runOnce(), 0, 'the relay is stuck');
      assert.deepEqual((await store.getEvents(kept.job.id)).map((e) => e.type), ['SUBMITTED']);
      await publishAndLose(store);
      clock.advance(WAITING_RECHECK_MS);
      await seen(clock.now());
      await store.upsertWorker(workerRow('w-resize', ['demo.resize'], ['*'], clock.now()));
      await timers.runOnce();
      assert.deepEqual((await store.getEvents(kept.job.id)).map((e) => e.type), ['SUBMITTED', 'DISPATCH']);
    }));

    it('say so at most once a minute', () => withMigratedStore(backend, async (store) => {
      const { logger, seen } = warnings();
      const { clock, transitions, timers } = timersOn(store, 100, logger, undefined, store);
      const told = () => seen.filter(([m]) => m.includes('no live worker can run')).length;
      assert.ok((await transitions.submit(spec())).ok);
      clock.advance(TIMEOUT_MS / 2);
      assert.ok((await transitions.submit(spec())).ok);
      await publishAndLose(store);
      clock.advance(TIMEOUT_MS / 2);
      await timers.runOnce(); // the first job: said
      clock.advance(TIMEOUT_MS / 2);
      await timers.runOnce(); // the second, half a minute later: not said
      assert.deepEqual([timers.counters.unserved, told()], [2, 1]);
      clock.advance(TIMEOUT_MS / 2);
      await timers.runOnce(); // the first again, a minute after: said
      assert.deepEqual([timers.counters.unserved, told()], [3, 2]);
    }));

    it(`dispatch it again ${MAX_QUEUED_TIMEOUTS} timeouts after its last transition all the same (a worker that runs may have no presence row), and keep it again from there`, () => withMigratedStore(backend, async (store) => {
      const { clock, transitions, timers } = timersOn(store, 100, silentLogger, undefined, store);
      const r = await transitions.submit(spec());
      assert.ok(r.ok);
      await publishAndLose(store);
      await passTimeouts(clock, timers, MAX_QUEUED_TIMEOUTS - 1);
      assert.deepEqual([timers.counters.unserved, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS - 1, 0]);
      clock.advance(TIMEOUT_MS);
      assert.equal(await timers.runOnce(), 1);
      assert.deepEqual([timers.counters.unserved, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS - 1, 1]);
      assert.deepEqual(dispatchesOf(await publishAndLose(store)), [r.job.id]);
      clock.advance(TIMEOUT_MS);
      await timers.runOnce();
      assert.deepEqual([timers.counters.unserved, timers.counters.redispatched], [MAX_QUEUED_TIMEOUTS, 1]);
    }));
  });
}

describe('Timers when the workers\' presence cannot tell', () => {
  const lost = [
    { id: 'a', state: 'published', attempt: 0, version: 2, type: 'demo.resize', queue: 'default', priority: 0, lastTransitionAt: T0 },
  ];
  const timersWith = (presence: Pick<WorkerRegistryStore, 'listWorkers'>, logger: Logger = silentLogger) => {
    const store = {
      findDue: async () => [], findExpiredLeases: async () => [], findLostDispatches: async () => lost, oldestOutboxAt: async () => null,
      keepDispatches: async (ids: string[]) => ids.length,
    } as unknown as JobStore;
    const applied: string[] = [];
    const transitions = {
      applyMany: async (items: { jobId: string }[]) => items.map((i) => { applied.push(i.jobId); return { ok: true, job: { id: i.jobId, type: 'demo.resize' } }; }),
    } as unknown as TransitionService;
    const timers = new Timers({ store, transitions, clock: manualClock(), logger, presence }, { pollMs: 10, batchSize: 100, publishedTimeoutMs: TIMEOUT_MS });
    return { timers, applied };
  };
  const run = async (presence: Pick<WorkerRegistryStore, 'listWorkers'>) => {
    const { timers, applied } = timersWith(presence);
    await timers.runOnce();
    return { applied, counters: timers.counters };
  };

  it('keep the job while the rows say no live worker can run it (the control)', async () => {
    const { applied, counters } = await run({ listWorkers: async () => [] });
    assert.deepEqual([applied, counters.unserved], [[], 1]);
  });

  it('dispatch it again while the rows cannot be read, say so once, and once when they can again', async () => {
    const { logger, seen } = warnings();
    const infos: string[] = [];
    let failing = true;
    const presence = { listWorkers: async () => { if (failing) throw new Error('connection lost'); return []; } };
    const { timers, applied } = timersWith(presence, { ...logger, info: (m) => void infos.push(m) });
    await timers.runOnce();
    await timers.runOnce();
    assert.deepEqual([applied, timers.counters.unserved], [['a', 'a'], 0]);
    assert.equal(seen.filter(([m]) => m.includes('presence could not be read')).length, 1);
    failing = false;
    await timers.runOnce();
    await timers.runOnce();
    assert.deepEqual([applied, timers.counters.unserved], [['a', 'a'], 2]);
    assert.equal(infos.filter((m) => m.includes('presence is read again')).length, 1);
  });

  it(`dispatch it again when the store lists ${MAX_WORKERS_LISTED} workers (it lists no more: one that can run it may be left out)`, async () => {
    const rows = Array.from({ length: MAX_WORKERS_LISTED }, (_, i) => workerRow(`w-${i}`, ['demo.echo'], ['*'], T0));
    const { applied, counters } = await run({ listWorkers: async () => rows });
    assert.deepEqual([applied, counters.unserved], [['a'], 0]);
  });
});

for (const backend of STORE_BACKENDS) describe(`Timers on ${backend.name}, with more schedules due at once than a schedules' pass tries`, () => {
  it('pass again at once, not a poll later, while the schedules\' pass stopped at its cap with schedules still due: none is missed for the wait', () => withMigratedStore(backend, async (store) => {
    // Seven schedules due at T0, two tried a pass (as 1000 due at once are, 100 a pass); a poll of 30 s
    // (ATS_TIMERS_POLL_MS goes up to 60 s): a pass a poll after the other would reach the last ones over 60 s late.
    let t = T0 - 1000;
    // At each poll: how many of the seven ticks the passes had handled (submitted or missed).
    let handled = () => 0;
    const polledAt: number[] = [];
    const clock: Clock = {
      now: () => t,
      sleep: async (ms) => {
        polledAt.push(handled());
        t += ms;
        await new Promise((r) => setImmediate(r));
      },
    };
    const nextId = monotonicFactory();
    const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
    const service = new ScheduleService({ store, clock });
    const template = { type: 'demo.echo', payload: null, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };
    for (let i = 0; i < 7; i++) await service.create(DEFAULT_TENANT, { name: `nightly-${i}`, cron: '0 0 * * *', job: template });
    t = T0 + 100;
    const runner = new ScheduleRunner({ store, transitions, clock, logger: silentLogger }, { batchSize: 2 });
    const timers = new Timers({ store, transitions, clock, logger: silentLogger, schedules: runner }, { pollMs: 30_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    const c = runner.counters;
    handled = () => c.submitted + c.missed;
    timers.start();
    for (const until = Date.now() + 30_000; handled() < 7 && Date.now() < until;) await new Promise((r) => setTimeout(r, 5));
    await timers.stop();
    assert.deepEqual({ ...c }, { submitted: 7, skipped: 0, missed: 0 }, `polls with the ticks handled so far: ${JSON.stringify(polledAt)}`);
    assert.deepEqual(polledAt.filter((n) => n < 7), [], 'no poll before every due schedule was reached');
    const jobs = (await store.listJobs({ limit: 100 })).filter((j) => j.idempotencyKey?.startsWith('ats:schedule:'));
    assert.equal(jobs.length, 7);
  }));
});

/** A clock the test moves (`t`), whose sleeps last until the loop stops: a loop makes one pass only. */
function heldClock(at: number) {
  const clock: Clock & { t: number } = {
    t: at,
    now: () => clock.t,
    sleep: (_ms, signal) => new Promise<void>((resolve) => {
      if (signal?.aborted) resolve();
      else signal?.addEventListener('abort', () => resolve(), { once: true });
    }),
  };
  return clock;
}

/** A gate: `reached` resolves once the held call is in flight, and it goes on at `release()`. */
function gate() {
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const released = new Promise<void>((r) => (release = r));
  return { reached, release, hold: async () => { reach(); await released; } };
}

/** Stops `timers` while a call is held; returns whether stop() had resolved before the release, and waits for it. */
async function stopWhileHeld(timers: Timers, g: ReturnType<typeof gate>): Promise<boolean> {
  await g.reached;
  let stopped = false;
  const stopping = timers.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  const early = stopped;
  g.release();
  await stopping;
  return early;
}

for (const backend of STORE_BACKENDS) describe(`Timers on ${backend.name} stopped during a pass`, () => {
  it('the schedules\' pass gives up at its next schedule: stop() waits for the schedule in flight only; the ticks fired stay, the rest fire at the next pass', () => withMigratedStore(backend, async (store) => {
    const clock = heldClock(T0 - 1000);
    const nextId = monotonicFactory();
    const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
    const service = new ScheduleService({ store, clock });
    const template = { type: 'demo.echo', payload: null, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };
    for (let i = 0; i < 6; i++) await service.create(DEFAULT_TENANT, { name: `nightly-${i}`, cron: '0 0 * * *', job: template });
    clock.t = T0 + 100;
    // The second schedule's tick is held in flight until the test lets it submit.
    let submits = 0;
    const g = gate();
    const held = intercept(transitions, (name) => name === 'submit', async (call) => {
      if (++submits === 2) await g.hold();
      return call();
    });
    const runner = new ScheduleRunner({ store, transitions: held, clock, logger: silentLogger });
    const timers = new Timers({ store, transitions, clock, logger: silentLogger, schedules: runner }, { pollMs: 60_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    timers.start();
    assert.equal(await stopWhileHeld(timers, g), false, 'stop() waits for the schedule in flight');
    assert.equal(submits, 2, 'no tick after the stop');
    const ticked = async () => (await store.listJobs({ limit: 100 })).filter((j) => j.idempotencyKey?.startsWith('ats:schedule:')).length;
    assert.equal(await ticked(), 2, 'the schedule in flight submitted, as the one before');
    assert.equal((await store.dueSchedules(clock.now(), 100)).length, 4, 'the others are still due');
    // The next pass (this process started again, or another) fires them.
    assert.equal(await runner.runOnce(), 4);
    assert.equal(await ticked(), 6);
    assert.equal((await store.dueSchedules(clock.now(), 100)).length, 0);
  }));

  it('a stop during the scans: the pass repairs nothing after it; the jobs it read are repaired by the next pass', () => withMigratedStore(backend, async (store) => {
    const clock = heldClock(T0);
    const nextId = monotonicFactory();
    const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
    const r = await transitions.submit(spec({ runAt: T0 + 1000 }));
    assert.ok(r.ok);
    clock.t = T0 + 2000;
    const g = gate();
    const scanHeld = intercept(store, (name) => name === 'findExpiredLeases', async (call) => {
      await g.hold();
      return call();
    });
    let writes = 0;
    const counted = intercept(transitions, (name) => name === 'applyMany', async (call) => {
      writes++;
      return call();
    });
    const timers = new Timers({ store: scanHeld, transitions: counted, clock, logger: silentLogger }, { pollMs: 60_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    timers.start();
    assert.equal(await stopWhileHeld(timers, g), false, 'stop() waits for the read in flight');
    assert.equal(writes, 0, 'no repair after the stop');
    assert.deepEqual((await store.findDue(clock.now(), 10)).map((j) => j.id), [r.job.id], 'the delayed job is still due');
    const next = new Timers({ store, transitions, clock, logger: silentLogger }, { pollMs: 60_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    assert.equal(await next.runOnce(), 1);
    assert.deepEqual(await store.findDue(clock.now(), 10), []);
  }));

  it('a stop while the log is asked which dispatches are unread: stop() does not wait for its answer; nothing is dispatched again after it', () => withMigratedStore(backend, async (store) => {
    const clock = heldClock(T0);
    const nextId = monotonicFactory();
    const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => nextId(clock.now()) } });
    const r = await transitions.submit(spec());
    assert.ok(r.ok);
    await publishAndLose(store);
    clock.t = T0 + TIMEOUT_MS;
    // The log answers only when the test lets it (a broker that does not answer, for up to the answer's timeout).
    const g = gate();
    const log: Pick<EventLog, 'unreadBefore' | 'partitioner'> = {
      unreadBefore: async () => { await g.hold(); return new Set(); },
      partitioner: async () => () => 0,
    };
    let writes = 0;
    const counted = intercept(transitions, (name) => name === 'applyMany', async (call) => {
      writes++;
      return call();
    });
    const timers = new Timers({ store, transitions: counted, clock, logger: silentLogger, dispatches: { log, groupId: WORKERS } }, { pollMs: 60_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    timers.start();
    assert.equal(await stopWhileHeld(timers, g), true, 'stop() ended before the log answered');
    assert.equal(writes, 0, 'no dispatch again after the stop');
    assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 1);
    // The next pass repairs it.
    const next = new Timers({ store, transitions, clock, logger: silentLogger, dispatches: { log: { ...log, unreadBefore: async () => new Set() }, groupId: WORKERS } }, { pollMs: 60_000, batchSize: 500, publishedTimeoutMs: TIMEOUT_MS });
    assert.equal(await next.runOnce(), 1);
    assert.equal((await store.getJob(r.job.id))!.snapshot.context.dispatches, 2);
  }));
});

describe('Timers with the database down', () => {
  it('pause 1 s after a failed pass, doubling to 10 s, and poll normally again once a pass works', async () => {
    const sleeps: number[] = [];
    let failing = true;
    const stopAfter = 10;
    const clock: Clock = {
      now: () => T0,
      sleep: async (ms) => {
        sleeps.push(ms);
        if (sleeps.length === 7) failing = false;
        await new Promise((r) => setImmediate(r));
      },
    };
    const down = () => (failing ? Promise.reject(new Error('connect ECONNREFUSED')) : Promise.resolve([]));
    const store = { findDue: down, findExpiredLeases: down, findLostDispatches: down, oldestOutboxAt: async () => null } as unknown as JobStore;
    const logged: unknown[] = [];
    const logger = { ...silentLogger, error: (_m: string, f?: Record<string, unknown>) => void logged.push(f?.retryInMs) };
    const transitions = { applyMany: async () => [] } as unknown as TransitionService;
    const timers = new Timers({ store, transitions, clock, logger }, { pollMs: 100, batchSize: 100, publishedTimeoutMs: TIMEOUT_MS });
    timers.start();
    while (sleeps.length < stopAfter) await new Promise((r) => setTimeout(r, 5));
    await timers.stop();
    assert.deepEqual(sleeps.slice(0, 7), [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000], 'failed passes back off');
    assert.deepEqual(sleeps.slice(7, 10), [100, 100, 100], 'a pass that worked polls at pollMs again');
    // The first failure logged (with its pause), then none: the clock stands still, no minute passes.
    assert.deepEqual(logged, [1000]);
  });
});

describe('Timers when one repair of a pass fails', () => {
  it('end the pass only once the others finished: no write of the pass lands after it failed', async () => {
    const due: DueJob = { id: 'due', state: 'retrying', attempt: 1 } as DueJob;
    const expired: DueJob = { id: 'expired', state: 'running', attempt: 1 } as DueJob;
    const store = {
      findDue: async () => [due], findExpiredLeases: async () => [expired], findLostDispatches: async () => [], oldestOutboxAt: async () => null,
    } as unknown as JobStore;
    let leaseWritten = false;
    const transitions = {
      applyMany: async (items: { jobId: string }[]) => {
        if (items[0]!.jobId === 'due') throw new Error('connection lost');
        await new Promise((r) => setTimeout(r, 20));
        leaseWritten = true;
        return items.map(() => ({ ok: false }));
      },
    } as unknown as TransitionService;
    const timers = new Timers({ store, transitions, clock: manualClock(), logger: silentLogger }, { pollMs: 10, batchSize: 100, publishedTimeoutMs: TIMEOUT_MS });
    await assert.rejects(timers.runOnce(), /connection lost/);
    assert.ok(leaseWritten, 'the lease expiry beside the failed retry had finished when the pass failed');
  });
});
