/**
 * Cron schedules: which ticks a pass fires (pure), and the runner on the real
 * stores (SQLite and MariaDB) with a clock the test moves: exactly one job per
 * tick through restarts and several runners, overlap, catch-up, pause.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { monotonicFactory } from 'ulid';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../tests/helpers/stores.js';
import { DEFAULT_TENANT as D } from './auth.js';
import { isAtsError } from './errors.js';
import { silentLogger } from './logger.js';
import type { Clock, JobStore, JobTemplate, ScheduleRecord, ScheduleStore } from './ports.js';
import {
  DUE_BATCH, MAX_COUNTED, MAX_TICKS_PER_PASS, MISSED_AFTER_MS, nextTick, parseCron, parseLiveCron, ScheduleRunner, ScheduleService, scheduleTickKey,
  ticksToFire, TICKS_KEPT,
} from './schedules.js';
import { TransitionService } from './transitions.js';
import { intercept } from '../tests/helpers/intercept.js';

const MIN = 60_000;
const T0 = Date.UTC(2031, 0, 1); // a Wednesday, 00:00 UTC

const utc = (cron: string) => parseCron(cron, 'UTC');

describe('ticksToFire', () => {
  it('fires the ticks due up to now and names the next one', () => {
    const plan = ticksToFire(utc('* * * * *'), T0, 'none', T0 + 1_500);
    assert.deepEqual(plan, { fire: [T0], missed: 0, nextAt: T0 + MIN });
  });

  it('fires nothing before the tick', () => {
    assert.deepEqual(ticksToFire(utc('*/5 * * * *'), T0 + 5 * MIN, 'all', T0 + 4 * MIN), { fire: [], missed: 0, nextAt: T0 + 5 * MIN });
  });

  it('none: ticks later than MISSED_AFTER_MS are missed, later ones fire', () => {
    // Down from T0 to T0 + 10 min 30 s: ticks at 0..10 min; those before 9:30 are missed.
    const now = T0 + 10 * MIN + 30_000;
    const plan = ticksToFire(utc('* * * * *'), T0, 'none', now);
    assert.deepEqual(plan.fire, [T0 + 10 * MIN]);
    assert.equal(plan.missed, 10);
    assert.equal(plan.nextAt, T0 + 11 * MIN);
    assert.ok(now - T0 - 10 * MIN <= MISSED_AFTER_MS);
  });

  it('latest: only the newest missed tick fires', () => {
    const plan = ticksToFire(utc('0 * * * *'), T0, 'latest', T0 + 5 * 60 * MIN + 10 * MIN);
    assert.deepEqual(plan.fire, [T0 + 5 * 60 * MIN]);
    assert.equal(plan.missed, 5);
    assert.equal(plan.nextAt, T0 + 6 * 60 * MIN);
  });

  it('all: every missed tick fires, at most MAX_TICKS_PER_PASS a pass, the rest at the next', () => {
    const now = T0 + 250 * MIN;
    const first = ticksToFire(utc('* * * * *'), T0, 'all', now);
    assert.equal(first.fire.length, MAX_TICKS_PER_PASS);
    assert.equal(first.fire[0], T0);
    assert.equal(first.nextAt, T0 + MAX_TICKS_PER_PASS * MIN);
    const fired = [...first.fire];
    let next = first.nextAt!;
    while (next <= now) {
      const p = ticksToFire(utc('* * * * *'), next, 'all', now);
      fired.push(...p.fire);
      next = p.nextAt!;
    }
    assert.equal(fired.length, 251);
    assert.equal(new Set(fired).size, 251);
    assert.equal(next, T0 + 251 * MIN);
  });

  it('a per-second expression a day behind counts MAX_COUNTED missed ticks, a lower bound, and moves on', () => {
    const plan = ticksToFire(utc('* * * * * *'), T0, 'none', T0 + 86_400_000);
    assert.ok(plan.fire.length <= MAX_TICKS_PER_PASS);
    assert.equal(MAX_COUNTED, 1_000);
    assert.equal(plan.missed, MAX_COUNTED);
    assert.equal(plan.nextAt, T0 + 86_400_000 + 1000);
  });

  it('reads the expression in its time zone', () => {
    // 09:00 in New York on 2031-01-01 is 14:00 UTC (EST, UTC-5).
    const plan = ticksToFire(parseCron('0 9 * * *', 'America/New_York'), Date.UTC(2031, 0, 1, 14), 'none', Date.UTC(2031, 0, 1, 14, 0, 1));
    assert.deepEqual(plan.fire, [Date.UTC(2031, 0, 1, 14)]);
    assert.equal(plan.nextAt, Date.UTC(2031, 0, 2, 14));
  });
});

describe('daylight saving time, as docs/scheduling.md says', () => {
  /** The ticks a run of passes every 10 s from `from` to `to` fires, and how many it counts missed. */
  const passes = (cron: string, zone: string, from: string, to: string) => {
    const c = parseCron(cron, zone);
    let nextAt = c.nextRun(new Date(from))!.getTime();
    const fired: string[] = [];
    let missed = 0;
    for (let now = Date.parse(from); now <= Date.parse(to); now += 10_000) {
      if (nextAt > now) continue;
      const plan = ticksToFire(c, nextAt, 'none', now);
      fired.push(...plan.fire.map((t) => new Date(t).toISOString()));
      missed += plan.missed;
      nextAt = plan.nextAt!;
    }
    return { fired, missed };
  };

  it('02:30 daily on the spring-forward day fires once, at the first time after the gap; on the fall-back day once, at the first 02:30', () => {
    // Europe/Berlin: 02:00 CET becomes 03:00 CEST on 29 March 2026; 03:00 CEST becomes 02:00 CET on 25 October 2026.
    assert.deepEqual(passes('30 2 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', '2026-03-30T12:00:00Z'),
      { fired: ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z'], missed: 0 });
    assert.deepEqual(passes('30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', '2026-10-26T12:00:00Z'),
      { fired: ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z'], missed: 0 });
    // America/New_York: 02:00 EST becomes 03:00 EDT on 8 March 2026; 02:00 EDT becomes 01:00 EST on 1 November
    // 2026, so there 01:30 is the repeated time and 02:30 comes once.
    assert.deepEqual(passes('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', '2026-03-09T12:00:00Z'),
      { fired: ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z'], missed: 0 });
    assert.deepEqual(passes('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', '2026-11-02T12:00:00Z'),
      { fired: ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'], missed: 0 });
    assert.deepEqual(passes('30 2 * * *', 'America/New_York', '2026-10-31T12:00:00Z', '2026-11-02T12:00:00Z'),
      { fired: ['2026-11-01T07:30:00.000Z', '2026-11-02T07:30:00.000Z'], missed: 0 });
  });

  it('an expression that is not a fixed time follows the real clock: none of a gap fires, a repeated time fires at each occurrence', () => {
    // Two minutes in the skipped hour: not a fixed time, so nothing fires on 29 March (every time named is in the gap).
    assert.deepEqual(passes('0,30 2 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', '2026-03-30T12:00:00Z'),
      { fired: ['2026-03-30T00:00:00.000Z', '2026-03-30T00:30:00.000Z'], missed: 0 });
    assert.deepEqual(passes('*/15 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', '2026-03-08T23:00:00Z'), { fired: [], missed: 0 });
    assert.deepEqual(passes('*/30 * * * *', 'Europe/Berlin', '2026-03-29T00:10:00Z', '2026-03-29T01:40:00Z').fired,
      ['2026-03-29T00:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T01:30:00.000Z']);
    assert.deepEqual(passes('30 2,3 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', '2026-03-29T12:00:00Z').fired, ['2026-03-29T01:30:00.000Z']);
    // The repeated hour: each of its times twice, where a fixed time (30 1 * * *, above) fires once.
    assert.deepEqual(passes('0,30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', '2026-10-25T12:00:00Z').fired,
      ['2026-10-25T00:00:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T01:30:00.000Z']);
    assert.deepEqual(passes('0,30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', '2026-11-01T12:00:00Z').fired,
      ['2026-11-01T05:00:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-01T06:00:00.000Z', '2026-11-01T06:30:00.000Z']);
  });

  it('an hourly expression follows the real hours: 23 ticks on the spring-forward day, 25 on the fall-back day', () => {
    const local = (r: { fired: string[] }, day: string) => r.fired.filter((t) => new Date(t).toLocaleDateString('sv', { timeZone: 'Europe/Berlin' }) === day).length;
    assert.equal(local(passes('0 * * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', '2026-03-30T12:00:00Z'), '2026-03-29'), 23);
    assert.equal(local(passes('0 * * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', '2026-10-26T12:00:00Z'), '2026-10-25'), 25);
  });
});

describe('ticksToFire over a run of passes (property)', () => {
  // Minute-level and coarser (a per-second expression's long downtimes are counted in a test of their own above).
  const EXPRESSIONS = ['* * * * *', '*/5 * * * *', '0 * * * *', '*/20 * * * * *', '0 9 * * 1-5', '30 2 * * *', '0 0 1 * *'];
  const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York'];

  it('fires each tick at most once, in order; all fires every tick; none and latest fire or count every tick; none fires none later than MISSED_AFTER_MS', () => {
    fc.assert(fc.property(
      fc.constantFrom(...EXPRESSIONS), fc.constantFrom(...ZONES), fc.constantFrom('none', 'latest', 'all'),
      fc.integer({ min: 0, max: 400 * 86_400_000 }),
      // Gaps between passes: mostly a poll, sometimes a downtime of up to six hours.
      fc.array(fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: 6 * 3_600_000 })), { minLength: 1, maxLength: 12 }),
      (expr, zone, catchUp, offset, gaps) => {
        const cron = parseCron(expr, zone);
        const created = T0 + offset;
        let nextAt: number | null = cron.nextRun(new Date(created))!.getTime();
        const first = nextAt;
        const fired: number[] = [];
        let missed = 0;
        let now = created;
        for (const gap of gaps) {
          now += gap;
          if (nextAt === null || nextAt > now) continue;
          const plan = ticksToFire(cron, nextAt, catchUp, now);
          for (const t of plan.fire) {
            assert.ok(t <= now, 'no tick fires before its time');
            if (catchUp === 'none') assert.ok(now - t <= MISSED_AFTER_MS, 'none fires no late tick');
            assert.ok(fired.length === 0 || t > fired.at(-1)!, 'in order, never twice');
            fired.push(t);
          }
          missed += plan.missed;
          assert.ok(plan.nextAt === null || plan.nextAt > (plan.fire.at(-1) ?? nextAt - 1));
          nextAt = plan.nextAt;
        }
        // Every tick from the first to the last one due is fired or counted missed (the pass caps aside).
        const due = (() => {
          const all: number[] = [];
          for (let t: number | null = first; t !== null && t <= now && (nextAt === null || t < nextAt); t = cron.nextRun(new Date(t))?.getTime() ?? null) all.push(t);
          return all;
        })();
        if (catchUp === 'all') {
          assert.equal(missed, 0);
          assert.deepEqual(fired, due);
        } else if (missed < MAX_COUNTED) {
          assert.equal(fired.length + missed, due.length);
          assert.ok(fired.every((t) => due.includes(t)));
        }
      },
    ), { numRuns: 300 });
  });
});

describe('parseCron', () => {
  it('names the problem of a bad expression or time zone', () => {
    const code = (f: () => unknown) => {
      try {
        f();
        return 'none';
      } catch (e) {
        assert.ok(isAtsError(e));
        return e.code;
      }
    };
    assert.equal(code(() => parseCron('61 * * * *', 'UTC')), 'ATS_ERR_INVALID_CRON');
    assert.equal(code(() => parseCron('not a cron', 'UTC')), 'ATS_ERR_INVALID_CRON');
    assert.equal(code(() => parseCron('* '.repeat(5000), 'UTC')), 'ATS_ERR_INVALID_CRON');
    assert.equal(code(() => parseCron('* * * * *', 'Mars/Olympus')), 'ATS_ERR_INVALID_TIMEZONE');
    assert.equal(code(() => parseCron('* * * * *', '')), 'ATS_ERR_INVALID_TIMEZONE');
    assert.equal(code(() => parseCron('*/5 * * * *', 'Europe/Berlin')), 'none');
    // Valid, but with no tick after now: refused where a schedule is made or changed.
    assert.equal(code(() => parseLiveCron('0 0 30 2 *', 'UTC', T0)), 'ATS_ERR_INVALID_CRON');
    assert.equal(code(() => parseLiveCron('0 0 0 1 1 * 2030', 'UTC', T0)), 'ATS_ERR_INVALID_CRON');
    assert.equal(code(() => parseLiveCron('0 0 0 1 1 * 2032', 'UTC', T0)), 'none');
    // A one-off date after the year 9999: refused, and, stored before it was, it has no next tick.
    assert.equal(code(() => parseLiveCron('+200000-01-01T00:00:00Z', 'UTC', T0)), 'ATS_ERR_INVALID_CRON');
    assert.equal(nextTick(utc('+200000-01-01T00:00:00Z'), T0), null);
    assert.deepEqual(ticksToFire(utc('+200000-01-01T00:00:00Z'), T0, 'none', T0 + 1), { fire: [T0], missed: 0, nextAt: null });
    assert.equal(nextTick(utc('0 0 0 1 1 * 9999'), T0), Date.UTC(9999, 0, 1));
  });
});

// ---------------------------------------------------------------- the runner on the stores

type Store = JobStore & ScheduleStore;


const template = (o: Partial<JobTemplate> = {}): JobTemplate => ({
  type: 'demo.echo', payload: { n: 1 }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});

function world(store: Store) {
  let t = T0 + 1;
  const clock: Clock & { set(ms: number): void } = { now: () => t, sleep: () => Promise.resolve(), set: (ms) => { t = ms; } };
  const ulid = monotonicFactory();
  const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid() } });
  const runner = () => new ScheduleRunner({ store, transitions, clock, logger: silentLogger });
  return { clock, transitions, service: new ScheduleService({ store, clock }), runner };
}

const scheduledJobs = async (store: Store) => (await store.listJobs({ limit: 500 })).filter((j) => j.idempotencyKey?.startsWith('ats:schedule:'));

for (const backend of STORE_BACKENDS) {
  describe(`schedules on ${backend.name}`, { timeout: 180_000 }, () => {
    const withStore = (fn: (store: TestStore) => Promise<void>) => withMigratedStore(backend, fn);

    it('one job per tick, with its key, through two runners and a pass repeated after a crash', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      const s = await service.create(D, { name: 'every-minute', cron: '* * * * *', overlap: 'allow', job: template() });
      assert.equal(s.nextAt, T0 + MIN);
      const a = runner();
      const b = runner();
      for (let m = 1; m <= 5; m++) {
        clock.set(T0 + m * MIN + 100);
        // Two timers instances on the same pass, at once.
        await Promise.all([a.runOnce(), b.runOnce()]);
      }
      // A crash after the submit and before the schedule moved on: the tick fires again, and finds its job.
      const before = await service.get(D, 'every-minute');
      await store.replaceSchedule({ ...before, nextAt: T0 + 5 * MIN, version: before.version + 1 }, before.version);
      await a.runOnce();
      const jobs = await scheduledJobs(store);
      assert.equal(jobs.length, 5);
      assert.deepEqual(jobs.map((j) => j.idempotencyKey).sort(), [1, 2, 3, 4, 5].map((m) => scheduleTickKey(s, T0 + m * MIN)).sort());
      assert.ok(jobs.every((j) => j.type === 'demo.echo' && JSON.stringify(j.payload) === '{"n":1}'));
      const after = await service.get(D, 'every-minute');
      assert.equal(after.nextAt, T0 + 6 * MIN);
      assert.equal(after.lastTickAt, T0 + 5 * MIN);
      const ticks = await service.ticks(D, 'every-minute');
      assert.deepEqual(ticks.map((t) => t.tickAt), [5, 4, 3, 2, 1].map((m) => T0 + m * MIN));
      assert.ok(ticks.every((t) => t.outcome === 'submitted' && jobs.some((j) => j.id === t.jobId)));
    }));

    it('one job per tick when the template\'s queue changes while a tick is fired, or after a crash that left it unrecorded', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      await service.create(D, { name: 'moving', cron: '* * * * *', overlap: 'allow', job: template() });
      // The change lands between the tick's submit and the runner's compare-and-set that records it.
      let patched = false;
      const racing = intercept(store, (name) => name === 'replaceSchedule', async (call, [next]) => {
        if ((next as ScheduleRecord).lastTickAt !== null && !patched) {
          patched = true;
          await service.update(D, 'moving', { job: template({ queue: 'other' }) });
        }
        return call();
      });
      clock.set(T0 + MIN + 100);
      const { transitions } = world(store);
      await new ScheduleRunner({ store: racing, transitions, clock, logger: silentLogger }).runOnce();
      assert.ok(patched);
      await runner().runOnce();
      const first = (await scheduledJobs(store)).filter((j) => j.idempotencyKey?.endsWith(`:${T0 + MIN}`));
      assert.deepEqual(first.map((j) => j.queue), ['default'], 'the tick\'s one job, in the queue of its first try');
      // The next tick goes to the new queue.
      clock.set(T0 + 2 * MIN + 100);
      await runner().runOnce();
      const second = (await scheduledJobs(store)).filter((j) => j.idempotencyKey?.endsWith(`:${T0 + 2 * MIN}`));
      assert.deepEqual(second.map((j) => j.queue), ['other']);
      assert.equal((await service.get(D, 'moving')).firingQueue, undefined, 'unpinned once the schedule moved on');
    }));

    it('a new expression and queue set while a tick is fired: that tick keeps its job, the new expression\'s ticks go to the new queue', () => withStore(async (store) => {
      const { clock, service, runner, transitions } = world(store);
      await service.create(D, { name: 'retimed', cron: '* * * * *', overlap: 'allow', job: template() });
      // The change lands between the tick's submit and the runner's compare-and-set that records it.
      let patched = false;
      const racing = intercept(store, (name) => name === 'replaceSchedule', async (call, [next]) => {
        if ((next as ScheduleRecord).lastTickAt !== null && !patched) {
          patched = true;
          await service.update(D, 'retimed', { cron: '*/5 * * * *', job: template({ queue: 'other' }) });
        }
        return call();
      });
      clock.set(T0 + MIN + 100);
      await new ScheduleRunner({ store: racing, transitions, clock, logger: silentLogger }).runOnce();
      assert.ok(patched);
      const changed = await service.get(D, 'retimed');
      assert.equal(changed.nextAt, T0 + 5 * MIN);
      assert.equal(changed.firingQueue, undefined, 'no tick of the new expression has been tried: none is pinned');
      clock.set(T0 + 5 * MIN + 100);
      await runner().runOnce();
      const jobs = await scheduledJobs(store);
      assert.deepEqual(jobs.map((j) => [j.queue, j.idempotencyKey!.split(':').at(-1)]).sort(), [['default', String(T0 + MIN)], ['other', String(T0 + 5 * MIN)]]);
    }));

    for (const change of ['paused', 'deleted'] as const) {
      it(`a schedule ${change} while a catch-up pass submits its ticks: no tick's job is submitted after the change`, () => withStore(async (store) => {
        const { clock, service, transitions } = world(store);
        await service.create(D, { name: 'caught-up', cron: '* * * * *', overlap: 'allow', catchUp: 'all', job: template() });
        // The timers were down for 5 ticks; the change lands once the pass submitted the first of them.
        let submits = 0;
        let changedAt = -1;
        const racing = intercept(transitions, (name) => name === 'submit', async (call) => {
          const r = await call();
          if (++submits === 1) {
            if (change === 'paused') await service.update(D, 'caught-up', { paused: true });
            else await service.remove(D, 'caught-up');
            changedAt = submits;
          }
          return r;
        });
        clock.set(T0 + 5 * MIN + 100);
        await new ScheduleRunner({ store, transitions: racing, clock, logger: silentLogger }).runOnce();
        assert.equal(changedAt, 1);
        assert.equal(submits, 1, `the pass went on submitting after the schedule was ${change}`);
        assert.equal((await scheduledJobs(store)).length, 1);
      }));
    }

    it('a schedule deleted while its runner records the pass\'s ticks leaves no tick rows behind', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      await service.create(D, { name: 'gone', cron: '* * * * *', overlap: 'allow', job: template() });
      // The delete lands between the runner's compare-and-set and its recording of the ticks.
      const racing = intercept(store, (name) => name === 'recordTicks', async (call) => {
        await service.remove(D, 'gone');
        return call();
      });
      clock.set(T0 + MIN + 100);
      await new ScheduleRunner({ store: racing, transitions, clock, logger: silentLogger }).runOnce();
      await service.create(D, { name: 'gone', cron: '* * * * *', overlap: 'allow', job: template() });
      assert.deepEqual(await service.ticks(D, 'gone'), [], 'the new schedule of that name has no ticks of the old one');
    }));

    it('the tick list failing to be written after the pass moved the schedule on: the pass is not a failure (counted, not held back, not logged as a failed tick)', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      await service.create(D, { name: 'per-second', cron: '* * * * * *', overlap: 'allow', job: template() });
      let failures = 1;
      const flaky = intercept(store, (name) => name === 'recordTicks', async (call) => {
        if (failures-- > 0) throw new Error('the database went away for a moment');
        return call();
      });
      const warned: string[] = [];
      const told: string[] = [];
      const logger = { ...silentLogger, warn: (msg: string) => void warned.push(msg) };
      const runner = new ScheduleRunner({ store: flaky, transitions, clock, logger, onTicks: (outcome, n) => void told.push(`${outcome}=${n}`) });
      clock.set(T0 + 1_000 + 5);
      assert.equal(await runner.runOnce(), 1, 'the tick fired');
      assert.deepEqual(told, ['submitted=1'], 'and is counted (ats_schedule_ticks_total)');
      assert.deepEqual(warned, ['schedules: ticks not recorded in the tick list']);
      const s = await service.get(D, 'per-second');
      assert.deepEqual([s.submitted, s.nextAt], [1, T0 + 2_000]);
      // The next tick, under a second later: the schedule is not held back as a failing one.
      clock.set(T0 + 2_000 + 1);
      assert.equal(await runner.runOnce(), 1);
      assert.deepEqual(told, ['submitted=1', 'submitted=1']);
      assert.deepEqual((await service.ticks(D, 'per-second')).map((t) => t.tickAt), [T0 + 2_000]);
      assert.equal((await scheduledJobs(store)).length, 2);
    }));

    it('overlap skip: a tick whose last job is live is recorded skipped; once it ended, the next tick submits', () => withStore(async (store) => {
      const { clock, service, runner, transitions } = world(store);
      await service.create(D, { name: 'nightly', cron: '0 * * * *', job: template() });
      const r = runner();
      clock.set(T0 + 60 * MIN + 5);
      await r.runOnce();
      clock.set(T0 + 120 * MIN + 5);
      await r.runOnce(); // the first job is still pending
      let s = await service.get(D, 'nightly');
      assert.equal(s.submitted, 1);
      assert.equal(s.skipped, 1);
      const [first] = await scheduledJobs(store);
      const cancelled = await transitions.apply(first!.id, { type: 'CANCEL', reason: 'test' });
      assert.ok(cancelled.ok);
      clock.set(T0 + 180 * MIN + 5);
      await r.runOnce();
      s = await service.get(D, 'nightly');
      assert.equal(s.submitted, 2);
      assert.equal((await scheduledJobs(store)).length, 2);
      assert.deepEqual((await service.ticks(D, 'nightly')).map((t) => t.outcome), ['submitted', 'skipped', 'submitted']);
    }));

    it('catch-up all with overlap skip: the first tick of the pass submits, the others are skipped while its job is live', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      await service.create(D, { name: 'backlog', cron: '0 * * * *', catchUp: 'all', job: template() });
      clock.set(T0 + 5 * 60 * MIN + 30 * MIN);
      await runner().runOnce();
      const s = await service.get(D, 'backlog');
      assert.deepEqual([s.submitted, s.skipped, s.missed], [1, 4, 0]);
      assert.equal((await scheduledJobs(store)).length, 1);
      assert.deepEqual((await service.ticks(D, 'backlog')).map((t) => t.outcome), ['skipped', 'skipped', 'skipped', 'skipped', 'submitted']);
    }));

    /**
     * What a schedule's row and tick list say agrees with the jobs its ticks made: a tick recorded skipped has no
     * job, each tick's job is recorded submitted with it, and lastJobId is the newest tick's job.
     */
    const assertRecordsMatchJobs = async (store: Store, service: ScheduleService, name: string) => {
      const s = await service.get(D, name);
      const jobs = (await scheduledJobs(store)).filter((j) => j.idempotencyKey!.startsWith(`ats:schedule:${name}:`));
      const tickOf = (key: string) => Number(key.split(':').at(-1));
      const byTick = new Map(jobs.map((j) => [tickOf(j.idempotencyKey!), j.id]));
      const ticks = await service.ticks(D, name);
      assert.deepEqual(ticks.map((t) => [t.tickAt, t.outcome, t.jobId]), ticks.map((t) => {
        const job = byTick.get(t.tickAt) ?? null;
        return [t.tickAt, job === null ? 'skipped' : 'submitted', job];
      }), 'each tick recorded as the jobs that exist say');
      assert.deepEqual([...byTick.keys()].filter((t) => !ticks.some((k) => k.tickAt === t)), [], 'no tick\'s job goes unrecorded');
      const newest = Math.max(...byTick.keys());
      assert.equal(s.lastJobId, byTick.get(newest), 'lastJobId is the newest tick\'s job');
      assert.equal(s.submitted, byTick.size);
    };

    it('overlap skip, two instances at one tick while the last job ends: the instance whose pass is recorded is the one that saw it ended, and its job is recorded', () => withStore(async (store) => {
      const { clock, service, runner, transitions } = world(store);
      await service.create(D, { name: 'racing', cron: '0 * * * *', job: template() });
      clock.set(T0 + 60 * MIN + 5);
      await runner().runOnce();
      const [first] = await scheduledJobs(store);
      assert.ok(first);
      clock.set(T0 + 120 * MIN + 5);
      // A reads the last job live (it would skip the tick); then, before A writes, the job is cancelled and B runs
      // the same pass up to its last write, which waits for A's last write (A writes first).
      let aWrote!: () => void;
      const aWritten = new Promise<void>((resolve) => { aWrote = resolve; });
      let bWaits!: () => void;
      const bWaiting = new Promise<void>((resolve) => { bWaits = resolve; });
      let b: Promise<number> | undefined;
      const storeB = intercept(store, (name) => name === 'replaceSchedule', async (call, [next]) => {
        if ((next as ScheduleRecord).firingQueue === undefined) {
          bWaits();
          await aWritten;
        }
        return call();
      });
      const storeA = intercept(store, (name) => name === 'getJob' || name === 'replaceSchedule', async (call, [arg], name) => {
        const out = await call();
        if (name === 'getJob' && arg === first.id && b === undefined) {
          assert.ok((await transitions.apply(first.id, { type: 'CANCEL', reason: 'test' })).ok);
          b = new ScheduleRunner({ store: storeB, transitions, clock, logger: silentLogger }).runOnce();
          // B has read the row and the job, and waits at its last write (or has given up).
          await Promise.race([bWaiting, b]);
        }
        if (name === 'replaceSchedule' && (arg as ScheduleRecord).firingQueue === undefined) aWrote();
        return out;
      });
      await new ScheduleRunner({ store: storeA, transitions, clock, logger: silentLogger }).runOnce();
      assert.ok(b, 'A read the last job');
      await b;
      const jobs = await scheduledJobs(store);
      assert.equal(jobs.length, 2, 'the job ended: the tick submitted its job');
      await assertRecordsMatchJobs(store, service, 'racing');
      // The tick's job is live: the next tick is skipped.
      clock.set(T0 + 180 * MIN + 5);
      await runner().runOnce();
      assert.equal((await scheduledJobs(store)).length, 2, 'no job beside the live one');
      await assertRecordsMatchJobs(store, service, 'racing');
    }));

    for (const change of ['a new expression', 'a pause and a resume'] as const) {
      it(`overlap skip, ${change} landing while a tick's job is submitted: that job is recorded on the changed row, and the next tick sees it live`, () => withStore(async (store) => {
        const { clock, service, runner, transitions } = world(store);
        await service.create(D, { name: 'changed', cron: '0 * * * *', job: template() });
        // The change is answered between the pass's claim and its last write (the tick's job being submitted):
        // it computes the next run again and drops the pinned queue, so no later pass finds that job by its key.
        let changed = false;
        const racing = intercept(transitions, (name) => name === 'submit', async (call) => {
          const r = await call();
          if (!changed) {
            changed = true;
            if (change === 'a new expression') await service.update(D, 'changed', { cron: '30 * * * *' });
            else {
              await service.update(D, 'changed', { paused: true });
              await service.update(D, 'changed', { paused: false });
            }
          }
          return r;
        });
        clock.set(T0 + 60 * MIN + 5);
        await new ScheduleRunner({ store, transitions: racing, clock, logger: silentLogger }).runOnce();
        assert.ok(changed);
        assert.equal((await scheduledJobs(store)).length, 1);
        const s = await service.get(D, 'changed');
        // A new expression's next run is its first after the change; a resume's, the old expression's.
        const next = T0 + (change === 'a new expression' ? 90 : 120) * MIN;
        assert.equal(s.nextAt, next, 'the change\'s next run stands');
        await assertRecordsMatchJobs(store, service, 'changed');
        // Its job is still pending (no worker): overlap skip skips the next tick.
        clock.set(next + 5);
        await runner().runOnce();
        assert.equal((await scheduledJobs(store)).length, 1, 'no second job while the first is live');
        assert.equal((await service.get(D, 'changed')).skipped, 1);
      }));
    }

    it('a pass whose last write lost to another instance\'s pass of the same ticks counts them once', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      await service.create(D, { name: 'twice', cron: '* * * * *', overlap: 'allow', catchUp: 'all', job: template() });
      // B's whole pass (claim, submits, last write) runs while A submits its first tick: A's last write fails.
      let b: Promise<number> | undefined;
      const racing = intercept(transitions, (name) => name === 'submit', async (call) => {
        const r = await call();
        if (b === undefined) {
          b = new ScheduleRunner({ store, transitions, clock, logger: silentLogger }).runOnce();
          await b;
        }
        return r;
      });
      clock.set(T0 + 3 * MIN + 100);
      await new ScheduleRunner({ store, transitions: racing, clock, logger: silentLogger }).runOnce();
      assert.ok(b);
      assert.equal((await scheduledJobs(store)).length, 3);
      await assertRecordsMatchJobs(store, service, 'twice');
    }));

    it('a pass whose last write lost to another instance\'s pass that moved the row on short of its last tick (an earlier now) leaves that tick to the next pass: counted once', () => withStore(async (store) => {
      const { clock, service, transitions, runner } = world(store);
      await service.create(D, { name: 'behind', cron: '* * * * *', overlap: 'allow', catchUp: 'all', job: template() });
      // A fires ticks 1-3; while it submits tick 3, B (whose pass began earlier: it sees ticks 1-2 only) runs whole.
      let submits = 0;
      let b: Promise<number> | undefined;
      const earlier = { now: () => T0 + 2 * MIN + 100, sleep: () => Promise.resolve() };
      const racing = intercept(transitions, (name) => name === 'submit', async (call) => {
        const r = await call();
        if (++submits === 3) {
          b = new ScheduleRunner({ store, transitions, clock: earlier, logger: silentLogger }).runOnce();
          await b;
        }
        return r;
      });
      clock.set(T0 + 3 * MIN + 100);
      await new ScheduleRunner({ store, transitions: racing, clock, logger: silentLogger }).runOnce();
      assert.ok(b);
      const s = await service.get(D, 'behind');
      assert.ok(s.lastTickAt === null || s.nextAt === null || s.lastTickAt < s.nextAt, 'no tick recorded at or past the next run');
      await runner().runOnce();
      assert.equal((await scheduledJobs(store)).length, 3);
      await assertRecordsMatchJobs(store, service, 'behind');
    }));

    it('overlap skip: a pass that only skips, whose last write lost to a change of the template, leaves its tick to the next pass: skipped once', () => withStore(async (store) => {
      const { clock, service, transitions, runner } = world(store);
      await service.create(D, { name: 'skipper', cron: '0 * * * *', job: template() });
      clock.set(T0 + 60 * MIN + 5);
      await runner().runOnce();
      const [first] = await scheduledJobs(store);
      assert.ok(first, 'the first tick\'s job, live (no worker)');
      // The next pass reads the last job live (it skips the tick); the template changes before its last write.
      let changed = false;
      const racing = intercept(store, (name) => name === 'getJob', async (call, [id]) => {
        const out = await call();
        if (!changed && id === first.id) {
          changed = true;
          await service.update(D, 'skipper', { job: template({ payload: { n: 2 } }) });
        }
        return out;
      });
      clock.set(T0 + 120 * MIN + 5);
      await new ScheduleRunner({ store: racing, transitions, clock, logger: silentLogger }).runOnce();
      assert.ok(changed);
      await runner().runOnce();
      const s = await service.get(D, 'skipper');
      assert.equal(s.skipped, 1, 'the tick skipped once');
      assert.equal(s.submitted, 1);
      assert.equal((await service.ticks(D, 'skipper')).length, 2);
    }));

    it('catch-up after downtime: none, latest and all', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      const told: string[] = [];
      const runner = () => new ScheduleRunner({ store, transitions, clock, logger: silentLogger, onTicks: (outcome, n) => void told.push(`${outcome}=${n}`) });
      for (const catchUp of ['none', 'latest', 'all'] as const) {
        await service.create(D, { name: `hourly-${catchUp}`, cron: '0 * * * *', overlap: 'allow', catchUp, job: template({ queue: catchUp }) });
      }
      // Down for ten hours and a half.
      clock.set(T0 + 10 * 60 * MIN + 30 * MIN);
      await runner().runOnce();
      const byQueue = async (q: string) => (await scheduledJobs(store)).filter((j) => j.queue === q).length;
      assert.equal(await byQueue('none'), 0);
      assert.equal(await byQueue('latest'), 1);
      assert.equal(await byQueue('all'), 10);
      assert.equal((await service.get(D, 'hourly-none')).missed, 10);
      assert.equal((await service.get(D, 'hourly-latest')).missed, 9);
      for (const catchUp of ['none', 'latest', 'all']) assert.equal((await service.get(D, `hourly-${catchUp}`)).nextAt, T0 + 11 * 60 * MIN);
      // Per schedule, in the order the pass took them (by next run, then as stored): what the metrics hear.
      assert.deepEqual([...told].sort(), ['missed=10', 'missed=9', 'submitted=1', 'submitted=10']);
    }));

    /** A runner that crashes where it would move a schedule on: its ticks' jobs submitted, the ticks not recorded. */
    const crashing = (store: Store, { transitions, clock }: ReturnType<typeof world>) => new ScheduleRunner({
      store: intercept(store, (name) => name === 'replaceSchedule', async (call, [next]) => {
        if ((next as ScheduleRecord).firingQueue === undefined) throw new Error('the timers process crashed');
        return call();
      }),
      transitions, clock, logger: silentLogger,
    });

    it('a pass that crashed after submitting a tick\'s job, with no timers back within MISSED_AFTER_MS: catchUp none records that tick submitted with its job, and overlap skip sees the job', () => withStore(async (store) => {
      const w = world(store);
      const { clock, service, runner } = w;
      await service.create(D, { name: 'hourly', cron: '0 * * * *', job: template() });
      clock.set(T0 + 60 * MIN + 100);
      await crashing(store, w).runOnce();
      const [job] = await scheduledJobs(store);
      assert.ok(job, 'the crashed pass submitted the tick\'s job');
      // Its queue pinned, the template's queue changed meanwhile: the tick's job is looked for where it went.
      await service.update(D, 'hourly', { job: template({ queue: 'other' }) });
      // No timers for an hour: the next pass comes long after that tick's MISSED_AFTER_MS.
      let lookups = 0;
      const counted = intercept(store, (name) => name === 'tickJobs', (call) => { lookups++; return call(); });
      const next = new ScheduleRunner({ store: counted, transitions: w.transitions, clock, logger: silentLogger });
      clock.set(T0 + 120 * MIN + 5);
      await next.runOnce();
      assert.equal(lookups, 1);
      const s = await service.get(D, 'hourly');
      assert.deepEqual([s.submitted, s.skipped, s.missed], [1, 1, 0], 'the tick whose job exists is submitted, not missed');
      assert.equal(s.lastJobId, job.id);
      assert.equal(s.lastTickAt, T0 + 120 * MIN);
      assert.equal(s.firingQueue, undefined);
      assert.deepEqual((await scheduledJobs(store)).map((j) => j.id), [job.id], 'its job still live, the next tick is skipped: no job beside it');
      assert.deepEqual((await service.ticks(D, 'hourly')).map((t) => [t.tickAt, t.outcome, t.jobId, t.at]), [
        [T0 + 120 * MIN, 'skipped', null, T0 + 120 * MIN + 5],
        [T0 + 60 * MIN, 'submitted', job.id, job.createdAt],
      ]);
      // A pass that began on a row with no queue pinned (none crashed before it) looks for no job, missing ticks or not.
      clock.set(T0 + 240 * MIN + 5);
      await next.runOnce();
      assert.equal(lookups, 1);
      assert.equal((await service.get(D, 'hourly')).missed, 1);
    }));

    it('a pass that crashed after submitting a tick\'s job since ended: catchUp latest records that tick submitted, misses only the ticks with no job, and overlap skip fires the next', () => withStore(async (store) => {
      const w = world(store);
      const { clock, service, runner } = w;
      await service.create(D, { name: 'latest', cron: '0 * * * *', catchUp: 'latest', job: template() });
      clock.set(T0 + 60 * MIN + 100);
      await crashing(store, w).runOnce();
      // That tick's job ended: overlap skip lets the next tick submit.
      const [crashed] = await scheduledJobs(store);
      assert.ok((await w.transitions.apply(crashed!.id, { type: 'CANCEL', reason: 'test' })).ok);
      // Down for two hours: the 02:00 tick fires, the 01:00 one has no job.
      clock.set(T0 + 180 * MIN + 5);
      await runner().runOnce();
      const jobs = await scheduledJobs(store);
      const tickOf = (id: string | null) => Number(jobs.find((j) => j.id === id)?.idempotencyKey?.split(':').at(-1));
      const s = await service.get(D, 'latest');
      assert.deepEqual([s.submitted, s.skipped, s.missed], [2, 0, 1]);
      assert.equal(tickOf(s.lastJobId), T0 + 180 * MIN);
      assert.deepEqual((await service.ticks(D, 'latest')).map((t) => [t.tickAt, t.outcome, tickOf(t.jobId)]), [
        [T0 + 180 * MIN, 'submitted', T0 + 180 * MIN],
        [T0 + 60 * MIN, 'submitted', T0 + 60 * MIN],
      ]);
    }));

    it('paused: no ticks; resumed: from the next tick after now, the pause not caught up', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      await service.create(D, { name: 'p', cron: '*/10 * * * *', overlap: 'allow', catchUp: 'all', job: template() });
      await service.update(D, 'p', { paused: true });
      assert.equal((await service.get(D, 'p')).nextAt, null);
      assert.deepEqual(service.nextRuns(await service.get(D, 'p'), 3), []);
      clock.set(T0 + 55 * MIN);
      await runner().runOnce();
      assert.equal((await scheduledJobs(store)).length, 0);
      const resumed = await service.update(D, 'p', { paused: false });
      assert.equal(resumed.nextAt, T0 + 60 * MIN);
      assert.deepEqual(service.nextRuns(resumed, 3), [60, 70, 80].map((m) => T0 + m * MIN));
      clock.set(T0 + 60 * MIN + 1);
      await runner().runOnce();
      assert.equal((await scheduledJobs(store)).length, 1);
    }));

    it('create, change, delete; a name again is a new schedule whose ticks find no old job', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      await service.create(D, { name: 'x', cron: '* * * * *', overlap: 'allow', job: template() });
      await assert.rejects(service.create(D, { name: 'x', cron: '* * * * *', job: template() }), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_SCHEDULE_EXISTS');
      const changed = await service.update(D, 'x', { cron: '*/2 * * * *', timezone: 'Europe/Berlin', job: template({ payload: { n: 2 } }) });
      assert.equal(changed.nextAt, T0 + 2 * MIN);
      assert.equal(changed.version, 2);
      assert.equal((await service.get(D, 'x')).version, 2);
      await assert.rejects(service.update(D, 'x', { cron: '99 * * * *' }), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_INVALID_CRON');
      await assert.rejects(service.update(D, 'x', { cron: '0 0 30 2 *' }), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_INVALID_CRON');
      await assert.rejects(service.create(D, { name: 'never', cron: '0 0 31 4 *', job: template() }), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_INVALID_CRON');
      // A change made of the schedule as read is made again on fresh data when another change won the race.
      let calls = 0;
      let raced = false;
      const racing: ScheduleStore = {
        ...store,
        // Another change commits between this change's read and its write, once.
        replaceSchedule: async (next, expected) => {
          if (!raced) {
            raced = true;
            const cur = (await store.getSchedule(next.tenant, next.name))!;
            assert.ok(await store.replaceSchedule({ ...cur, overlap: 'skip', version: cur.version + 1 }, cur.version));
          }
          return store.replaceSchedule(next, expected);
        },
      };
      const merged = await new ScheduleService({ store: racing, clock }).update(D, 'x', (current) => {
        calls++;
        return { job: { ...current.job, priority: current.job.priority + 1 } };
      });
      assert.equal(calls, 2);
      assert.equal(merged.overlap, 'skip');
      assert.equal(merged.job.priority, 1);
      assert.deepEqual(merged.job.payload, { n: 2 });
      assert.equal((await service.get(D, 'x')).cron, '*/2 * * * *');
      clock.set(T0 + 2 * MIN + 1);
      await runner().runOnce();
      await service.remove(D, 'x');
      await assert.rejects(service.get(D, 'x'), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_SCHEDULE_NOT_FOUND');
      await assert.rejects(service.remove(D, 'x'), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_SCHEDULE_NOT_FOUND');
      assert.deepEqual(await service.ticks(D, 'x'), []);
      clock.set(T0 + 2 * MIN + 2);
      await service.create(D, { name: 'x', cron: '*/2 * * * *', overlap: 'allow', job: template() });
      clock.set(T0 + 4 * MIN + 1);
      await runner().runOnce();
      const jobs = await scheduledJobs(store);
      assert.equal(jobs.length, 2);
      assert.deepEqual(jobs.map((j) => (j.payload as { n: number }).n).sort(), [1, 2]);
    }));

    it(`keeps the newest ${TICKS_KEPT} ticks of a schedule (not touching another tenant's schedule of the same name)`, () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      await service.create(D, { name: 'busy', cron: '* * * * *', overlap: 'allow', catchUp: 'all', job: template() });
      await service.create('globex', { name: 'busy', cron: '* * * * *', overlap: 'allow', job: template() });
      clock.set(T0 + 2 * MIN);
      await runner().runOnce();
      clock.set(T0 + 70 * MIN);
      await runner().runOnce();
      const ticks = await service.ticks(D, 'busy', 1000);
      assert.equal(ticks.length, TICKS_KEPT);
      assert.equal(ticks[0]!.tickAt, T0 + 70 * MIN);
      assert.equal((await service.get(D, 'busy')).submitted, 70);
      // catchUp none: the ticks at most a minute late; its oldest are older than the default tenant's oldest kept.
      assert.deepEqual((await service.ticks('globex', 'busy', 1000)).map((t) => [t.tenant, t.tickAt]), [70, 69, 2, 1].map((m) => ['globex', T0 + m * MIN]));
    }));

    it('a schedule that cannot fire is tried again at growing intervals, and never holds back the schedules due behind it', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      // Stored as a process whose time zone database knows the zone wrote it; this one does not (a runtime upgrade dropped it).
      for (let i = 0; i < DUE_BATCH; i++) {
        const s = await service.create(D, { name: `unreadable-${i}`, cron: '* * * * *', catchUp: 'all', job: template() });
        assert.ok(await store.replaceSchedule({ ...s, timezone: 'Gone/Zone', version: s.version + 1 }, s.version));
      }
      await service.create(D, { name: 'fine', cron: '*/2 * * * *', overlap: 'allow', job: template() });
      const warned: string[] = [];
      const logger = { ...silentLogger, warn: (msg: string, fields?: Record<string, unknown>) => void warned.push(`${msg} ${String(fields?.schedule)}`) };
      const runner = new ScheduleRunner({ store, transitions, clock, logger });
      // Five minutes of passes, one every 250 ms (the timers' default poll).
      for (let at = T0 + MIN; at <= T0 + 6 * MIN; at += 250) {
        clock.set(at);
        await runner.runOnce();
      }
      const fine = await service.get(D, 'fine');
      assert.deepEqual([fine.submitted, fine.missed], [3, 0], 'the schedule behind the unreadable ones fires each of its ticks');
      const first = warned.filter((w) => w.endsWith(' unreadable-0')).length;
      // Tried at 1 s, 2 s, 4 s, 8 s and then every 10 s: about 35 tries in 5 minutes, not one a pass (1200).
      assert.ok(first >= 5 && first <= 40, `${first} warnings for one unreadable schedule`);
      assert.ok(warned.every((w) => w.startsWith('schedules: tick failed')));
      // Changed (the time zone set right), it fires at the next pass, whatever its pause was.
      await service.update(D, 'unreadable-0', { timezone: 'UTC' });
      clock.set(T0 + 7 * MIN + 10);
      await runner.runOnce();
      assert.equal((await service.get(D, 'unreadable-0')).submitted, 1);
      // Its next run times are none rather than a 400 for the schedule that is still unreadable.
      assert.deepEqual(service.nextRuns(await service.get(D, 'unreadable-1'), 5), []);
    }));

    it('more failing schedules than a pass reads, due before a healthy one: passes read on past them in (next_at, tenant, name) order, and the healthy one fires within one round', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      const fine = await service.create(D, { name: 'fine', cron: '* * * * *', overlap: 'allow', job: template() }); // due at T0 + MIN
      // More than one pass reads (its pages of DUE_BATCH) and than a read ever held before paging (1,100), all
      // due a minute before the healthy one, in two tenants, with one next_at: pages break ties by tenant and name.
      const FAILING = 1_200;
      const failing = Array.from({ length: FAILING }, (_, i): ScheduleRecord => ({
        ...fine, tenant: i % 2 === 0 ? 'acme' : D, name: `broken-${String(i).padStart(4, '0')}`, timezone: 'Gone/Zone', nextAt: T0,
      }));
      for (let i = 0; i < FAILING; i += 50) await Promise.all(failing.slice(i, i + 50).map(async (s) => assert.ok(await store.createSchedule(s))));
      const warned: string[] = [];
      const logger = { ...silentLogger, warn: (_msg: string, f?: Record<string, unknown>) => void warned.push(`${String(f?.tenant)}/${String(f?.schedule)}`) };
      const runner = new ScheduleRunner({ store, transitions, clock, logger });
      let firedAt = 0;
      for (let pass = 1; pass <= 40 && firedAt === 0; pass++) {
        clock.set(T0 + MIN + pass * 250);
        await runner.runOnce();
        if ((await service.get(D, 'fine')).submitted === 1) firedAt = pass;
      }
      const rounds = Math.ceil(FAILING / DUE_BATCH);
      assert.ok(firedAt > 0 && firedAt <= rounds + 1, `the healthy schedule fired at pass ${firedAt}, not within ${rounds + 1}`);
      // Each failing one tried once on the way, soonest first and then by tenant and name: none twice before the scan reached the end.
      const byKey = failing.map((s) => `${s.tenant}/${s.name}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(warned, byKey);
      // Having reached the end, the next pass starts again from the soonest: the first one's pause (1 s) is over.
      clock.set(T0 + MIN + (firedAt + 1) * 250);
      await runner.runOnce();
      assert.equal(warned.filter((w) => w === byKey[0]).length, 2, 'the first failing schedule is tried again');
    }));

    it('small limits: a pass tries at most its batch and reads at most its pages, reading on past held schedules; at most maxHeld are remembered', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      const fine = await service.create(D, { name: 'fine', cron: '* * * * *', overlap: 'allow', job: template() }); // due at T0 + MIN
      const FAILING = 9;
      for (let i = 0; i < FAILING; i++) assert.ok(await store.createSchedule({ ...fine, name: `broken-${i}`, timezone: 'Gone/Zone', nextAt: T0 }));
      // The clock stands still: no pause ends, so a schedule tried twice was forgotten, not waited out.
      clock.set(T0 + MIN + 1);
      let reads = 0;
      const counted = intercept(store, (name) => name === 'dueSchedules', (call) => { reads++; return call(); });
      const failures: Array<[string, unknown]> = [];
      const logger = { ...silentLogger, warn: (_msg: string, f?: Record<string, unknown>) => void failures.push([String(f?.schedule), f?.failures]) };
      const heldBy = (r: ScheduleRunner) => (r as unknown as { failing: Map<string, unknown> }).failing.size;
      const limits = { batchSize: 2, pagesPerPass: 3 };
      const pass = async (r: ScheduleRunner) => {
        reads = 0;
        await r.runOnce();
        assert.ok(reads <= limits.pagesPerPass, `${reads} reads in a pass`);
        return r.leftDue;
      };

      const a = new ScheduleRunner({ store: counted, transitions, clock, logger }, limits);
      const leftDue: boolean[] = [];
      for (let i = 1; i <= 5; i++) leftDue.push(await pass(a));
      assert.equal((await service.get(D, 'fine')).submitted, 1, 'two tries a pass: the ten due ones in five passes');
      // Each stopped at its two tries with (maybe) more due behind: the timers pass again at once.
      assert.deepEqual(leftDue, [true, true, true, true, true]);
      assert.deepEqual(failures.map(([name]) => name), Array.from({ length: FAILING }, (_, i) => `broken-${i}`));
      // Due behind the held ones, and before where the scan is: the next pass reaches the end, the one after
      // starts again and reads its three pages of held ones, the one after that reads on to it.
      assert.ok(await store.createSchedule({ ...fine, name: 'another', nextAt: T0 + MIN }));
      assert.equal(await pass(a), false, 'reached the end');
      // Only held ones read, its pages spent: nothing tried, so not again at once (a poll later, as their pauses go).
      assert.equal(await pass(a), false);
      assert.equal(reads, limits.pagesPerPass);
      assert.equal((await service.get(D, 'another')).submitted, 0);
      await pass(a);
      assert.equal((await service.get(D, 'another')).submitted, 1);
      assert.equal(failures.length, FAILING, 'none of the held ones tried again before its pause ended');
      assert.equal(heldBy(a), FAILING);

      // Remembering at most 4: those forgotten are tried again as new failures when the scan reaches them.
      failures.length = 0;
      const b = new ScheduleRunner({ store: counted, transitions, clock, logger }, { ...limits, maxHeld: 4 });
      for (let i = 0; i < 10; i++) {
        await pass(b);
        assert.ok(heldBy(b) <= 4, `${heldBy(b)} held`);
      }
      assert.ok(failures.length > FAILING && failures.every(([, n]) => n === 1), JSON.stringify(failures));
    }));

    it('a schedule far behind fires at most MAX_TICKS_PER_PASS ticks a pass, also when the pass reads on past held ones to where it moved', () => withStore(async (store) => {
      const { clock, service, transitions } = world(store);
      const behind = await service.create(D, { name: 'behind', cron: '* * * * *', overlap: 'allow', catchUp: 'all', job: template() });
      // Due between where the backlog is now and where its first pass moves it: read again after it in one pass.
      for (let i = 0; i < 6; i++) assert.ok(await store.createSchedule({ ...behind, name: `broken-${i}`, timezone: 'Gone/Zone', nextAt: T0 + 150 * MIN }));
      clock.set(T0 + 10_000 * MIN); // the clock stands still: the broken ones stay held once tried
      const runner = new ScheduleRunner({ store, transitions, clock, logger: silentLogger }, { batchSize: 3, pagesPerPass: 5 });
      for (let pass = 1; pass <= 6; pass++) {
        const before = runner.counters.submitted;
        await runner.runOnce();
        assert.ok(runner.counters.submitted - before <= MAX_TICKS_PER_PASS, `pass ${pass} fired ${runner.counters.submitted - before} ticks`);
      }
      assert.ok(runner.counters.submitted >= 3 * MAX_TICKS_PER_PASS, 'the backlog goes on firing');
    }));

    it('a schedule stored with its next tick after the year 9999 (a one-off date, before those were refused) fires no more: read without a next tick or run times, changed and resumed without one, passed over by the runner', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      const FAR = '+200000-01-01T00:00:00Z';
      const farAt = Date.parse(FAR);
      assert.equal(farAt, 6_249_223_180_800_000, 'the tick croner computes for it');
      const near = await service.create(D, { name: 'near', cron: '* * * * *', overlap: 'allow', job: template() });
      // As the API stored them before: the one-off's tick as next, or paused (none).
      for (const name of ['far', 'far-changed']) assert.ok(await store.createSchedule({ ...near, name, cron: FAR, nextAt: farAt }));
      assert.ok(await store.createSchedule({ ...near, name: 'far-paused', cron: FAR, paused: true, nextAt: null }));

      const far = await service.get(D, 'far');
      assert.equal(far.nextAt, null);
      assert.deepEqual(service.nextRuns(far, 5), []);
      assert.deepEqual((await service.list(D)).map((s) => [s.name, s.paused, s.nextAt]), [
        ['far', false, null], ['far-changed', false, null], ['far-paused', true, null], ['near', false, T0 + MIN],
      ]);
      const changed = await service.update(D, 'far-changed', { overlap: 'skip' });
      assert.equal(changed.nextAt, null);
      assert.equal((await store.getSchedule(D, 'far-changed'))!.nextAt, null, 'a change stores it as it reads');
      const resumed = await service.update(D, 'far-paused', { paused: false });
      assert.deepEqual([resumed.paused, resumed.nextAt], [false, null]);
      assert.equal((await store.getSchedule(D, 'far-paused'))!.nextAt, null, 'a resume stores no tick after the year 9999');
      assert.deepEqual(service.nextRuns(resumed, 5), []);

      // The runner fires the schedules due and passes over these, pass after pass.
      const r = runner();
      for (let m = 1; m <= 3; m++) {
        clock.set(T0 + m * MIN + 100);
        assert.equal(await r.runOnce(), 1);
      }
      for (const name of ['far', 'far-changed', 'far-paused']) {
        const s = (await store.getSchedule(D, name))!;
        assert.deepEqual([s.submitted, s.skipped, s.missed, s.lastTickAt], [0, 0, 0, null], name);
      }
      assert.equal((await scheduledJobs(store)).length, 3);
      // A new expression sets it right.
      const fixed = await service.update(D, 'far', { cron: '0 * * * *' });
      assert.equal(fixed.nextAt, T0 + 60 * MIN);
    }));

    const exists = (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_SCHEDULE_EXISTS';
    const notFound = (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_SCHEDULE_NOT_FOUND';

    it('tenants: one name in two tenants is two schedules; a tenant never reads, changes or deletes another\'s', () => withStore(async (store) => {
      const { service } = world(store);
      const a = await service.create('acme', { name: 'nightly', cron: '0 3 * * *', job: template({ payload: { of: 'acme' } }) });
      await service.create('globex', { name: 'nightly', cron: '0 4 * * *', job: template({ payload: { of: 'globex' } }) });
      assert.equal(a.tenant, 'acme');
      await assert.rejects(service.create('acme', { name: 'nightly', cron: '0 5 * * *', job: template() }), exists);
      assert.deepEqual((await service.list('acme')).map((s) => [s.tenant, s.name, s.cron]), [['acme', 'nightly', '0 3 * * *']]);
      assert.deepEqual((await service.list('globex')).map((s) => [s.tenant, s.name, s.cron]), [['globex', 'nightly', '0 4 * * *']]);
      assert.deepEqual(await service.list(D), []);
      // The default tenant has no `nightly`: every way to reach one is a 404.
      await assert.rejects(service.get(D, 'nightly'), notFound);
      await assert.rejects(service.update(D, 'nightly', { paused: true }), notFound);
      await assert.rejects(service.remove(D, 'nightly'), notFound);
      assert.deepEqual(await store.listSchedules(D), []);
      assert.deepEqual((await store.listSchedules()).map((x) => [x.tenant, x.name]), [['acme', 'nightly'], ['globex', 'nightly']], 'every tenant\'s');
      // A change and a delete by one tenant leave the other's schedule as it was.
      await service.update('acme', 'nightly', { paused: true, job: template({ payload: { of: 'acme', v: 2 } }) });
      const g = await service.get('globex', 'nightly');
      assert.deepEqual([g.paused, g.job.payload, g.version], [false, { of: 'globex' }, 1]);
      await service.remove('globex', 'nightly');
      await assert.rejects(service.get('globex', 'nightly'), notFound);
      await assert.rejects(service.remove('globex', 'nightly'), notFound);
      const left = await service.get('acme', 'nightly');
      assert.deepEqual([left.tenant, left.paused, left.job.payload], ['acme', true, { of: 'acme', v: 2 }]);
    }));

    it('a tick submits its job into the schedule\'s tenant; two tenants\' schedules of one name made at once each get their own job', () => withStore(async (store) => {
      const { clock, service, runner } = world(store);
      const a = await service.create('acme', { name: 'nightly', cron: '* * * * *', overlap: 'allow', job: template() });
      const g = await service.create('globex', { name: 'nightly', cron: '* * * * *', overlap: 'allow', job: template() });
      assert.equal(scheduleTickKey(a, T0 + MIN), scheduleTickKey(g, T0 + MIN), 'one idempotency key: keys are per tenant');
      clock.set(T0 + MIN + 100);
      await Promise.all([runner().runOnce(), runner().runOnce()]);
      const jobs = await scheduledJobs(store);
      assert.deepEqual(jobs.map((j) => j.tenant).sort(), ['acme', 'globex']);
      for (const tenant of ['acme', 'globex']) {
        const job = jobs.find((j) => j.tenant === tenant)!;
        const s = await service.get(tenant, 'nightly');
        assert.equal(s.lastJobId, job.id);
        assert.deepEqual((await service.ticks(tenant, 'nightly')).map((t) => [t.tenant, t.outcome, t.jobId]), [[tenant, 'submitted', job.id]]);
      }
      assert.deepEqual(await service.ticks(D, 'nightly'), []);
    }));
  });
}
