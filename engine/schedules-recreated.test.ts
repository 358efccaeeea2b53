/**
 * A schedule deleted and created again under its name starts again at
 * version 1: a compare-and-set read before the delete (the runner's pass, a
 * PATCH) must not succeed on the new schedule and write the old one over it
 * (both stores).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { withMigratedStore, STORE_BACKENDS } from '../tests/helpers/stores.js';
import { intercept } from '../tests/helpers/intercept.js';
import { DEFAULT_TENANT as D } from '../engine/auth.js';
import { silentLogger } from '../engine/logger.js';
import type { Clock, JobTemplate } from '../engine/ports.js';
import { ScheduleRunner, ScheduleService } from '../engine/schedules.js';
import { TransitionService } from '../engine/transitions.js';

const MIN = 60_000;
const T0 = Date.UTC(2031, 0, 1);
const template = (o: Partial<JobTemplate> = {}): JobTemplate => ({
  type: 'demo.echo', payload: { n: 1 }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});

for (const backend of STORE_BACKENDS) describe(`delete + create again under the same name (ABA on version), ${backend.name}`, () => {
  it('runner: a due row read before the delete does not overwrite the new schedule', () => withMigratedStore(backend, async (store) => {
    let t = T0 + 1;
    const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
    const ulid = monotonicFactory();
    const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid() } });
    const service = new ScheduleService({ store, clock });
    await service.create(D, { name: 'nightly', cron: '* * * * *', job: template() });
    t = T0 + MIN + 100;
    // The user replaces the schedule (rm + add, a new expression and job) after the runner read the due page.
    let replaced = false;
    const racing = intercept(store, (n) => n === 'dueSchedules', async (call) => {
      const due = await call();
      if (!replaced) {
        replaced = true;
        await service.remove(D, 'nightly');
        await service.create(D, { name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', job: template({ type: 'other.type', queue: 'q2' }) });
      }
      return due;
    });
    await new ScheduleRunner({ store: racing, transitions, clock, logger: silentLogger }).runOnce();
    const now = await service.get(D, 'nightly');
    assert.deepEqual({ cron: now.cron, timezone: now.timezone, type: now.job.type, queue: now.job.queue },
      { cron: '0 3 * * *', timezone: 'Europe/Berlin', type: 'other.type', queue: 'q2' }, 'the new schedule as the user created it');
  }));

  it('PATCH: a change read before the delete does not land on the new schedule', () => withMigratedStore(backend, async (store) => {
    let t = T0 + 1;
    const clock: Clock = { now: () => t++, sleep: () => Promise.resolve() };
    const plain = new ScheduleService({ store, clock });
    await plain.create(D, { name: 'nightly', cron: '* * * * *', job: template() });
    let replaced = false;
    const racing = intercept(store, (n) => n === 'replaceSchedule', async (call) => {
      if (!replaced) {
        replaced = true;
        await plain.remove(D, 'nightly');
        await plain.create(D, { name: 'nightly', cron: '0 3 * * *', job: template({ type: 'other.type' }) });
      }
      return call();
    });
    await new ScheduleService({ store: racing, clock }).update(D, 'nightly', { overlap: 'allow' });
    const now = await plain.get(D, 'nightly');
    assert.deepEqual({ cron: now.cron, type: now.job.type }, { cron: '0 3 * * *', type: 'other.type' });
  }));
});
