/** The schedules panel's rows (server/ui/client/schedules.ts), under node, from a `GET /v1/schedules` answer. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dateTime } from './client/dom.js';
import { isScheduleList, scheduleRows, schedulesSummary, type ScheduleList, type ScheduleView } from './client/schedules.js';

const NOW = 1_800_000_000_000;
const iso = (t: number) => new Date(t).toISOString();

const schedule = (over: Partial<ScheduleView> = {}): ScheduleView => ({
  name: 'nightly-report', cron: '0 2 * * *', timezone: 'Europe/Berlin', overlap: 'skip', catchUp: 'none', paused: false,
  job: { type: 'reports.build', payload: { kind: 'daily' }, queue: 'reports', maxAttempts: 3, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 60_000 }, timeoutMs: 30_000, priority: 0 },
  nextRunAt: iso(NOW + 12_000), lastTickAt: iso(NOW - 3 * 60_000), lastJobId: '01M8QY5B20H8DD1BC3T7JG9RPX',
  submitted: 7, skipped: 2, missed: 1, createdAt: iso(NOW - 86_400_000), updatedAt: iso(NOW - 60_000), ...over,
});

/** What `GET /v1/schedules` answers: by name, each with its counters. */
const answer: ScheduleList = {
  schedules: [
    schedule({ name: 'every-minute', cron: '* * * * *', timezone: 'UTC', nextRunAt: iso(NOW + 400), lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0 }),
    schedule(),
    schedule({ name: '__proto__', paused: true, nextRunAt: null, overlap: 'allow', catchUp: 'all' }),
  ],
};

describe('the schedules panel', () => {
  test('accepts the list the API answers, and refuses what it could not show', () => {
    assert.equal(isScheduleList(JSON.parse(JSON.stringify(answer))), true);
    assert.equal(isScheduleList({ schedules: [] }), true);
    assert.equal(isScheduleList({ code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'no route' }), false);
    assert.equal(isScheduleList({ schedules: [{ ...schedule(), submitted: '7' }] }), false);
    assert.equal(isScheduleList({ schedules: [{ ...schedule(), nextRunAt: 'soon' }] }), false);
    assert.equal(isScheduleList({ schedules: [{ ...schedule(), job: null }] }), false);
  });

  test('a row per schedule, by name: cron, time zone, job, next run local and relative, last tick, paused, counters', () => {
    const rows = scheduleRows(answer, NOW);
    assert.deepEqual(rows.map((r) => r.name), ['__proto__', 'every-minute', 'nightly-report']);
    const nightly = rows[2]!;
    assert.equal(nightly.cron, '0 2 * * *');
    assert.equal(nightly.timezone, 'Europe/Berlin');
    assert.equal(nightly.type, 'reports.build');
    assert.equal(nightly.queue, 'reports');
    assert.equal(nightly.policy, 'overlap skip · catch-up none');
    assert.equal(nightly.status, 'active');
    assert.deepEqual(nightly.next, { iso: iso(NOW + 12_000), at: NOW + 12_000, local: dateTime(iso(NOW + 12_000)), relative: 'in 12 s' });
    assert.equal(nightly.nextText, `${dateTime(iso(NOW + 12_000))} (in 12 s)`);
    assert.equal(nightly.lastText, `${dateTime(iso(NOW - 180_000))} (3 min ago)`);
    assert.equal(nightly.lastJobId, '01M8QY5B20H8DD1BC3T7JG9RPX');
    assert.deepEqual([nightly.submitted, nightly.skipped, nightly.missed], [7, 2, 1]);
    // The local time is the page's: a date and a time with milliseconds.
    assert.match(nightly.next!.local, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
  });

  test('a schedule never ticked yet, one due within a second, a paused one, one that fires no more', () => {
    const [proto, minute] = scheduleRows(answer, NOW);
    assert.equal(minute!.next!.relative, 'now');
    assert.equal(minute!.last, null);
    assert.equal(minute!.lastText, 'no tick yet');
    assert.equal(proto!.paused, true);
    assert.equal(proto!.status, 'paused');
    assert.equal(proto!.next, null);
    assert.equal(proto!.nextText, 'paused');
    assert.equal(proto!.policy, 'overlap allow · catch-up all');
    const [ended] = scheduleRows({ schedules: [schedule({ nextRunAt: null })] }, NOW);
    assert.equal(ended!.nextText, 'never (the expression fires no more)');
  });

  test('the summary counts schedules and the paused ones', () => {
    assert.equal(schedulesSummary(scheduleRows(answer, NOW)), '3 schedules · 1 paused');
    assert.equal(schedulesSummary(scheduleRows({ schedules: [schedule()] }, NOW)), '1 schedule');
    assert.equal(schedulesSummary([]), 'no schedule');
  });
});
