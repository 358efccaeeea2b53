/** The workers panel's rows and the unserved warnings (server/ui/client/workers.ts), under node, from `GET /v1/workers` and `GET /v1/stats` answers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dateTime } from './client/dom.js';
import {
  isWorkerList, unservedLines, unservedOf, workerRows, workersSummary, type WorkerList, type WorkerView,
} from './client/workers.js';

const NOW = 1_800_000_000_000;
const iso = (t: number) => new Date(t).toISOString();

const worker = (over: Partial<WorkerView> = {}): WorkerView => ({
  id: 'worker-b', host: 'node-2', pid: 4242, queues: ['*'], types: ['reports.build', 'email.send', 'demo.echo'], concurrency: 8,
  startedAt: iso(NOW - 3_600_000), lastSeenAt: iso(NOW - 3000), live: true, ...over,
});

/** What `GET /v1/workers` answers: by id, one of them stale. */
const answer: WorkerList = {
  workers: [
    worker({ id: '__proto__', host: 'constructor', types: ['toString'], queues: ['hasOwnProperty', 'email'], concurrency: 1, lastSeenAt: iso(NOW - 20 * 60_000), live: false }),
    worker({ id: 'worker-a', host: 'node-1', pid: 7, types: [], lastSeenAt: iso(NOW - 400) }),
    worker(),
  ],
};

describe('the workers panel', () => {
  test('accepts the list the API answers, and refuses what it could not show', () => {
    assert.equal(isWorkerList(JSON.parse(JSON.stringify(answer))), true);
    assert.equal(isWorkerList({ workers: [] }), true);
    assert.equal(isWorkerList({ code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'no route' }), false);
    assert.equal(isWorkerList({ workers: [{ ...worker(), pid: '4242' }] }), false);
    assert.equal(isWorkerList({ workers: [{ ...worker(), lastSeenAt: 'recently' }] }), false);
    assert.equal(isWorkerList({ workers: [{ ...worker(), types: 'email.send' }] }), false);
    assert.equal(isWorkerList({ workers: [{ ...worker(), live: 'yes' }] }), false);
  });

  test('a row per worker, by id: host, pid, types, queues, concurrency, last seen local and relative, live or stale', () => {
    const rows = workerRows(answer, NOW);
    assert.deepEqual(rows.map((r) => r.id), ['__proto__', 'worker-a', 'worker-b']);
    const b = rows[2]!;
    assert.equal(b.host, 'node-2');
    assert.equal(b.pid, 4242);
    assert.deepEqual(b.types, ['demo.echo', 'email.send', 'reports.build']);
    assert.equal(b.queues, 'every queue');
    assert.equal(b.concurrency, 8);
    assert.equal(b.status, 'live');
    assert.equal(b.lastSeenRelative, '3.0 s ago');
    assert.equal(b.lastSeenLocal, dateTime(iso(NOW - 3000)));
    assert.equal(b.lastSeenMs, NOW - 3000);
    assert.match(b.lastSeenLocal, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);

    const [proto, a] = rows;
    assert.equal(a!.lastSeenRelative, 'now');
    assert.deepEqual(a!.types, []);
    assert.equal(proto!.live, false);
    assert.equal(proto!.status, 'stale');
    assert.equal(proto!.host, 'constructor');
    assert.deepEqual(proto!.types, ['toString']);
    assert.equal(proto!.queues, 'email, hasOwnProperty');
    assert.equal(proto!.lastSeenRelative, '20 min ago');
  });

  test('the summary counts workers and the stale ones', () => {
    assert.equal(workersSummary(workerRows(answer, NOW)), '3 workers · 1 stale');
    assert.equal(workersSummary(workerRows({ workers: [worker()] }, NOW)), '1 worker');
    assert.equal(workersSummary([]), 'no worker');
  });
});

describe('the unserved warnings', () => {
  test('read from a GET /v1/stats body when it has them; none from one without (an older server, the stream\'s stats)', () => {
    const stats = {
      total: 9, byState: { pending: 9 }, byType: {}, byQueue: {},
      unserved: [{ type: 'email.send', queue: 'email', waiting: 3 }, { type: 'x', queue: 'y', waiting: -1 }, 'junk'],
    };
    assert.deepEqual(unservedOf(stats), [{ type: 'email.send', queue: 'email', waiting: 3 }]);
    assert.deepEqual(unservedOf({ ...stats, unserved: [] }), []);
    assert.equal(unservedOf({ total: 9, byState: {}, byType: {}, byQueue: {} }), null);
    assert.equal(unservedOf(null), null);
  });

  test('a line per type and queue, most waiting first: "no live worker handles T in queue Q (N waiting)"', () => {
    const lines = unservedLines([
      { type: 'email.send', queue: 'email', waiting: 3 },
      { type: '__proto__', queue: 'constructor', waiting: 12 },
      { type: 'a.type', queue: 'email', waiting: 3 },
    ]);
    assert.deepEqual(lines.map((l) => l.text), [
      'no live worker handles __proto__ in queue constructor (12 waiting)',
      'no live worker handles a.type in queue email (3 waiting)',
      'no live worker handles email.send in queue email (3 waiting)',
    ]);
    assert.deepEqual([lines[0]!.type, lines[0]!.queue, lines[0]!.waiting], ['__proto__', 'constructor', 12]);
    assert.deepEqual(unservedLines([]), []);
  });
});
