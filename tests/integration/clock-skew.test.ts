/**
 * Leases are judged on the database's clock, not on host clocks: a worker
 * whose host clock runs 60 s behind and timers whose host clock runs 60 s
 * ahead (and the reverse), on one MariaDB database. A lease kept by heartbeats
 * is never judged expired, and an abandoned lease expires about `leaseMs` of
 * database time after the worker's last heartbeat: not 120 s early or late.
 * And host clocks that step (an NTP correction, a resumed VM) while the
 * processes run: the database's time read through them does not step.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { Clock, JobSpec } from '../../engine/ports.js';
import { systemClock } from '../../engine/system.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../helpers/mysql.js';
import { FAST, isState, waitForJob } from '../helpers/system.js';

const LEASE_MS = 2000;
const HEARTBEAT_MS = 500;

/** The host clock moved by `offsetMs` (a host whose clock is wrong). */
const skewed = (offsetMs: number): Clock => ({ now: () => Date.now() + offsetMs, sleep: systemClock.sleep });

/**
 * A host clock that steps by `step.ms` when told (`step.ms` changed while the processes run),
 * as an NTP correction or a resumed VM moves the time of day; its `elapsed` does not step.
 */
const stepping = (step: { ms: number }): Clock => ({
  now: () => Date.now() + step.ms, elapsed: () => performance.now(), sleep: systemClock.sleep,
});

const spec = (type: string, payload: unknown = {}): JobSpec => ({
  type, payload, queue: 'default', maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 100 }, timeoutMs: 60_000, priority: 0,
});

const registry = () => new HandlerRegistry()
  .register('test.hold', async (p: { ms: number }, ctx) => {
    await systemClock.sleep(p.ms, ctx.signal);
    return 'held';
  })
  .register('test.hang', (_p, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))));

/**
 * A relay+worker process and a timers process on a database and topics of their own, on the host
 * clocks given, started; `stop` stops them and drops the database and topics.
 */
async function startPair(workerClock: Clock, timersClock: Clock): Promise<{ workers: System; timers: System; stop(): Promise<void> }> {
  await requireMysql();
  await requireKafka();
  const db: TestDatabase = await createTestDatabase();
  const prefix = randomTopicPrefix();
  const raw = (roles: string, workerId: string): RawConfig => ({
    ...FAST, leaseMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS, mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','),
    topicPrefix: prefix, roles, workerGroup: 'workers', workerId,
  });
  const open = (roles: string, id: string, clock: Clock) =>
    compose(compileConfig(raw(roles, id), { hostname: 'test', pid: process.pid }), { registry: registry(), logger: silentLogger, clock });
  const workers = await open('relay,worker', 'worker', workerClock);
  const timers = await open('timers', 'timers', timersClock);
  const stop = async () => {
    await workers.stop();
    await timers.stop();
    await db.drop();
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  };
  await workers.start();
  await timers.start();
  return { workers, timers, stop };
}

for (const [workerSkew, timersSkew] of [[-60_000, 60_000], [60_000, -60_000]] as const) {
  describe(`worker clock ${workerSkew / 1000} s, timers clock ${timersSkew / 1000} s (MariaDB + Kafka)`, () => {
    let workers: System;
    let stop: (() => Promise<void>) | undefined;
    before(async () => {
      ({ workers, stop } = await startPair(skewed(workerSkew), skewed(timersSkew)));
    });
    after(() => stop?.());

    it('a lease kept by heartbeats is not judged expired', async () => {
      const r = await workers.transitions.submit(spec('test.hold', { ms: 2 * LEASE_MS }));
      assert.ok(r.ok);
      const job = await waitForJob(workers.store, r.job.id, isState('done', 'dead'), 20_000);
      const history = (await workers.store.getEvents(r.job.id)).map((e) => e.type);
      assert.equal(job.snapshot.value, 'done', `history: ${history}`);
      assert.ok(!history.includes('LEASE_EXPIRED'), `history: ${history}`);
    });

    it('an abandoned lease expires about leaseMs of database time after the last heartbeat', async () => {
      const dbNow = () => (workers.store as MysqlStore).dbNow();
      const r = await workers.transitions.submit(spec('test.hang'));
      assert.ok(r.ok);
      await waitForJob(workers.store, r.job.id, isState('running'), 20_000);
      await new Promise((res) => setTimeout(res, HEARTBEAT_MS * 2)); // a heartbeat or two
      await workers.worker!.crash();
      const crashedAt = await dbNow();
      const job = await waitForJob(workers.store, r.job.id, isState('dead'), LEASE_MS + 8000, 'dead by LEASE_EXPIRED');
      const expiredAt = await dbNow();
      const expired = (await workers.store.getEvents(r.job.id)).find((e) => e.type === 'LEASE_EXPIRED');
      assert.ok(expired, `history: ${(await workers.store.getEvents(r.job.id)).map((e) => e.type)}`);
      assert.equal(job.snapshot.context.attempt, 1);
      // The last heartbeat was at most HEARTBEAT_MS before the crash; the timers poll every 100 ms.
      const after = expiredAt - crashedAt;
      assert.ok(after >= LEASE_MS - HEARTBEAT_MS - 300, `expired ${after} ms after the crash (lease ${LEASE_MS} ms)`);
      assert.ok(after <= LEASE_MS + 2000, `expired ${after} ms after the crash (lease ${LEASE_MS} ms)`);
      assert.ok(Math.abs(expired.at - expiredAt) < 1500, `LEASE_EXPIRED stamped at ${expired.at}, database time ${expiredAt}`);
    });
  });
}

describe('host clocks that step while the processes run: worker 10 min back, timers 10 min ahead (MariaDB + Kafka)', () => {
  const workerStep = { ms: 0 };
  const timersStep = { ms: 0 };
  let workers: System;
  let stop: (() => Promise<void>) | undefined;
  before(async () => {
    ({ workers, stop } = await startPair(stepping(workerStep), stepping(timersStep)));
  });
  after(() => stop?.());

  it('a lease kept by heartbeats is not judged expired, and the history keeps the database time', async () => {
    const dbNow = () => (workers.store as MysqlStore).dbNow();
    const r = await workers.transitions.submit(spec('test.hold', { ms: 2 * LEASE_MS }));
    assert.ok(r.ok);
    await waitForJob(workers.store, r.job.id, isState('running'), 20_000);
    // Between two measurements in turn (every 60 s). Each process sees its two host clocks move apart and
    // measures again out of turn; meanwhile, and after, the monotonic clock keeps the database's time.
    workerStep.ms = -600_000;
    timersStep.ms = 600_000;
    const job = await waitForJob(workers.store, r.job.id, isState('done', 'dead'), 20_000);
    const doneAt = await dbNow();
    const events = await workers.store.getEvents(r.job.id);
    const history = events.map((e) => e.type);
    assert.equal(job.snapshot.value, 'done', `history: ${history}`);
    assert.ok(!history.includes('LEASE_EXPIRED'), `history: ${history}`);
    const last = events[events.length - 1];
    assert.ok(Math.abs(last.at - doneAt) < 1500, `${last.type} stamped at ${last.at}, database time ${doneAt}`);
  });
});
