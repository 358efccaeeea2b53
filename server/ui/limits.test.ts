/** The limits panel's rows (server/ui/client/limits.ts), under node, from `GET /v1/limits` answers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dateTime } from './client/dom.js';
import { intervalText, isLimitList, limitRows, limitsSummary, type LimitList, type LimitView } from './client/limits.js';

const NOW = 1_800_000_000_000;
const iso = (t: number) => new Date(t).toISOString();

const limit = (over: Partial<LimitView> = {}): LimitView => ({
  key: 'email', concurrency: 5, rate: { max: 100, intervalMs: 60_000 }, running: 2,
  createdAt: iso(NOW - 3_600_000), updatedAt: iso(NOW - 180_000), ...over,
});

/** What `GET /v1/limits` answers: by key, keys that are names of an object's own properties among them. */
const answer: LimitList = {
  limits: [
    limit({ key: '__proto__', concurrency: 4, rate: null, running: 4 }),
    limit({ key: 'constructor', concurrency: null, rate: { max: 3, intervalMs: 1000 }, running: 9 }),
    limit(),
    limit({ key: 'tenant:42', concurrency: 10, rate: null, running: 8 }),
  ],
};

describe('the limits panel', () => {
  test('accepts the list the API answers, and refuses what it could not show', () => {
    assert.equal(isLimitList(JSON.parse(JSON.stringify(answer))), true);
    assert.equal(isLimitList({ limits: [] }), true);
    assert.equal(isLimitList({ code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'no route' }), false);
    assert.equal(isLimitList({ limits: [{ ...limit(), running: '2' }] }), false);
    assert.equal(isLimitList({ limits: [{ ...limit(), concurrency: 0 }] }), true, 'a paused key');
    assert.equal(isLimitList({ limits: [{ ...limit(), concurrency: -1 }] }), false);
    assert.equal(isLimitList({ limits: [{ ...limit(), rate: { max: 1 } }] }), false);
    assert.equal(isLimitList({ limits: [{ ...limit(), updatedAt: 'lately' }] }), false);
    assert.equal(isLimitList({ limits: [{ ...limit(), key: 7 }] }), false);
  });

  test('a row per limit, by key: running against the concurrency, its level, the rate, when it was set', () => {
    const rows = limitRows(answer, NOW);
    assert.deepEqual(rows.map((r) => r.key), ['__proto__', 'constructor', 'email', 'tenant:42']);
    const [proto, ctor, email, tenant] = rows;
    assert.equal(email!.runningText, '2 / 5');
    assert.equal(email!.fill, 0.4);
    assert.equal(email!.level, 'ok');
    assert.equal(email!.rateText, '100 per 1 min');
    assert.equal(email!.rateHint, 'one start every 600 ms at most');
    assert.equal(email!.updatedRelative, '3 min ago');
    assert.equal(email!.updatedLocal, dateTime(iso(NOW - 180_000)));
    assert.equal(email!.updatedMs, NOW - 180_000);

    assert.equal(proto!.level, 'full', 'at its concurrency: its jobs wait');
    assert.equal(proto!.runningText, '4 / 4');
    assert.equal(proto!.rateText, 'none');
    assert.equal(proto!.rateHint, '');
    assert.equal(tenant!.level, 'busy');
    assert.equal(ctor!.level, 'none');
    assert.equal(ctor!.fill, null);
    assert.equal(ctor!.runningText, '9');
    assert.equal(ctor!.rateText, '3 per 1 s');
    assert.equal(ctor!.rateHint, 'one start every 334 ms at most');
    assert.ok(!('polluted' in {}));
  });

  test('a paused key (concurrency 0): its own level, no bar, counted in the summary', () => {
    const [paused] = limitRows({ limits: [limit({ key: 'smtp', concurrency: 0, running: 2 })] }, NOW);
    assert.equal(paused!.level, 'paused');
    assert.equal(paused!.fill, null, 'no bar: nothing divides by 0');
    assert.equal(paused!.runningText, '2 / 0 (paused)', 'attempts started before the pause go on');
    const rows = limitRows({ limits: [limit({ key: 'a', concurrency: 0, running: 0 }), ...answer.limits] }, NOW);
    assert.equal(limitsSummary(rows), '5 limits · 1 full · 1 paused');
  });

  test('intervals as a person reads them', () => {
    assert.deepEqual([1000, 60_000, 90_000, 3_600_000, 86_400_000, 500, 1500, 7_200_000].map(intervalText),
      ['1 s', '1 min', '90 s', '1 h', '1 d', '500 ms', '1.5 s', '2 h']);
  });

  test('the summary counts limits and the full ones', () => {
    assert.equal(limitsSummary(limitRows(answer, NOW)), '4 limits · 1 full');
    assert.equal(limitsSummary(limitRows({ limits: [limit()] }, NOW)), '1 limit');
    assert.equal(limitsSummary([]), 'no limit');
  });
});
