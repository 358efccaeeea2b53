/**
 * The console's "Jobs per type" and "Jobs per queue" tables and the filter's
 * suggestions (server/ui/client/console-data.ts), under node: from the
 * counts of `GET /v1/stats` (or the stream's stats, once a second), with
 * thousands of queues as well as a few.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { COUNT_ROWS, CountsShown, countTable, submitTypeNames, suggestNames } from './client/console-data.js';

const STATES = ['pending', 'running', 'done'] as const;
type Counts = Record<string, Record<string, number>>;

/** `n` queues `q0`…: queue i holds i % 7 pending and, every tenth, 100 done. */
function manyQueues(n: number): Counts {
  const byQueue: Counts = {};
  for (let i = 0; i < n; i++) byQueue[`q${i}`] = { pending: i % 7, ...(i % 10 === 0 ? { done: 100 } : {}) };
  return byQueue;
}

describe('the counts tables', () => {
  test('a few names: each its row, by name, its count per state and its total; nothing left out', () => {
    const byName = JSON.parse('{"b":{"pending":2,"done":1},"__proto__":{"running":1},"a":{"done":3,"unknown":9}}') as Counts;
    const t = countTable(byName, STATES);
    assert.deepEqual(t.rows, [
      { name: '__proto__', counts: [0, 1, 0], total: 1 },
      { name: 'a', counts: [0, 0, 3], total: 3 },
      { name: 'b', counts: [2, 0, 1], total: 3 },
    ]);
    assert.equal(t.more, 0);
    assert.equal(t.moreJobs, 0);
    assert.deepEqual(countTable({}, STATES), { rows: [], more: 0, moreJobs: 0 });
  });

  test(`10,000 queues: the ${COUNT_ROWS} with the most jobs, most first, and how many more (and their jobs) are left out`, () => {
    const byQueue = manyQueues(10_000);
    const t = countTable(byQueue, STATES);
    assert.equal(t.rows.length, COUNT_ROWS);
    assert.equal(t.more, 10_000 - COUNT_ROWS);
    const all = Object.values(byQueue).reduce((a, c) => a + (c.pending ?? 0) + (c.done ?? 0), 0);
    assert.equal(t.rows.reduce((a, r) => a + r.total, 0) + t.moreJobs, all, 'every job is in a row or in the line');
    // Every tenth queue holds 100 done: 1,000 of them, the top 200 by total (106 jobs first, then 105…), ties by name.
    assert.ok(t.rows.every((r) => r.counts[2] === 100));
    for (let i = 1; i < t.rows.length; i++) {
      const [a, b] = [t.rows[i - 1]!, t.rows[i]!];
      assert.ok(a.total > b.total || (a.total === b.total && a.name < b.name), `${a.name} ${a.total} before ${b.name} ${b.total}`);
    }
    assert.equal(t.rows[0]!.total, 106);
    assert.equal(countTable(byQueue, STATES, 10).rows.length, 10);
  });

  test('redrawn only when what it shows changed: the same counts again (a new object each message) draw nothing', () => {
    const shown = new CountsShown(STATES);
    const first = shown.update(manyQueues(10_000));
    assert.ok(first, 'the first counts are drawn');
    assert.equal(shown.update(manyQueues(10_000)), null, 'the same counts: nothing to redraw');
    const moved = manyQueues(10_000);
    moved.q20 = { pending: 6, done: 101 }; // 106 jobs, shown: now 107
    assert.equal(shown.update(moved)?.rows[0]?.name, 'q20', 'a shown count moved: redrawn');
    assert.equal(shown.update(moved), null);
    const hidden = manyQueues(10_000);
    hidden.q20 = { pending: 6, done: 101 };
    hidden.q1 = { pending: 2 }; // a queue left out, 1 job more: only the line moves
    const t = shown.update(hidden);
    assert.ok(t, 'the line counts one job more');
    assert.equal(t.moreJobs, first.moreJobs + 1);
  });

  test('the filter suggests at most as many names, those with the most jobs, by name', () => {
    const names = suggestNames(manyQueues(10_000));
    assert.equal(names.length, COUNT_ROWS);
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.every((n) => Number(n.slice(1)) % 10 === 0), 'the queues with 100 done');
    assert.deepEqual(suggestNames(JSON.parse('{"b":{"x":1},"__proto__":{},"a":{"done":2}}') as Counts), ['__proto__', 'a', 'b']);
  });

  test('the submit form suggests the types the server has seen as well as the demo handlers\', each once, by name', () => {
    const demo = ['demo.echo', 'demo.sleep', 'demo.fail'];
    // A fresh server: the demo handlers' types only.
    assert.deepEqual(submitTypeNames(demo, []), ['demo.echo', 'demo.fail', 'demo.sleep']);
    const seen = suggestNames(JSON.parse('{"email.send":{"pending":3},"demo.echo":{"done":2},"__proto__":{"done":1}}') as Counts);
    assert.deepEqual(submitTypeNames(demo, seen), ['__proto__', 'demo.echo', 'demo.fail', 'demo.sleep', 'email.send']);
  });
});
