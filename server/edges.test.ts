/**
 * `GET /v1/stats/edges` and the store reads behind it and behind the outbox
 * metrics (`edgeStats`, `outboxBacklog`), on SQLite and on MariaDB: counts
 * and median dwell times per edge equal those computed from the jobs' own
 * events, the row cap and the window hold, the route is in the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { EdgeStat, JobSpec } from '../engine/ports.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';
import { EDGE_STATS_MAX_EVENTS, EDGE_STATS_WINDOW_MS } from './schemas.js';

const mysqlReady = await requireMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spec: JobSpec = { type: 'demo.echo', payload: {}, queue: 'edges', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 };

/** The median as the route defines it (the mean of the two middle values for an even count). */
function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const backends: Array<[string, () => Promise<TestApp>, string | false]> = [
  ['SQLite', () => startSqliteTestApp(), false],
  ['MariaDB', () => startTestApp(), mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
];

for (const [name, start, skip] of backends) {
  describe(`per-edge figures on ${name}`, { skip }, () => {
    let t: TestApp;
    let firstSubmitAt: number;
    before(async () => {
      t = await start();
    });
    after(async () => {
      await t?.close();
    });

    test('GET /v1/stats/edges: counts and median dwell per edge, from the jobs\' events', async () => {
      firstSubmitAt = Date.now();
      const submitted = await t.transitions.submitMany([spec, spec, spec]);
      const ids = submitted.map((r) => (assert.ok(r.ok), r.job.id));
      // Different dwell times in pending, then in running for two of them.
      for (const [i, id] of ids.entries()) {
        await sleep(15 * (i + 1));
        const r = await t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
        assert.ok(r.ok);
      }
      for (const id of ids.slice(0, 2)) {
        await sleep(10);
        assert.ok((await t.transitions.apply(id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      }
      const dwell = { STARTED: [] as number[], SUCCEEDED: [] as number[] };
      for (const id of ids) {
        const events = await t.store.getEvents(id);
        for (let k = 1; k < events.length; k++) {
          const type = events[k]!.type as keyof typeof dwell;
          dwell[type]?.push(events[k]!.at - events[k - 1]!.at);
        }
      }

      const r = await t.app.inject({ url: '/v1/stats/edges' });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json() as { windowMs: number; maxEvents: number; truncated: boolean; edges: EdgeStat[] };
      assert.equal(body.windowMs, EDGE_STATS_WINDOW_MS);
      assert.equal(body.windowMs, 900_000);
      assert.equal(body.maxEvents, EDGE_STATS_MAX_EVENTS);
      assert.equal(body.truncated, false);
      const edge = (event: string) => body.edges.find((e) => e.event === event);
      assert.deepEqual(edge('SUBMITTED'), { from: null, to: 'pending', event: 'SUBMITTED', count: 3, medianDwellMs: null });
      assert.deepEqual(edge('STARTED'), { from: 'pending', to: 'running', event: 'STARTED', count: 3, medianDwellMs: median(dwell.STARTED) });
      assert.deepEqual(edge('SUCCEEDED'), { from: 'running', to: 'done', event: 'SUCCEEDED', count: 2, medianDwellMs: median(dwell.SUCCEEDED) });
      assert.ok(median(dwell.STARTED) >= 30, `the median pending dwell is the second job's (~30 ms): ${dwell.STARTED}`);
      assert.deepEqual(body.edges.map((e) => e.count), [...body.edges.map((e) => e.count)].sort((a, b) => b - a), 'busiest first');
    });

    test('the store reads only the newest events under the cap, says so, and leaves events before the window out', async () => {
      const capped = await t.store.edgeStats(0, 2);
      assert.equal(capped.truncated, true);
      const n = capped.edges.reduce((a, e) => a + e.count, 0);
      assert.ok(n >= 1 && n <= 2, `${n} events read under a cap of 2`);
      assert.deepEqual(capped.edges.map((e) => e.event), ['SUCCEEDED'], 'the newest events are the two SUCCEEDED');
      assert.deepEqual(await t.store.edgeStats(Date.now() + 60_000, 1000), { edges: [], truncated: false });
      const all = await t.store.edgeStats(0, 1000);
      assert.equal(all.truncated, false);
      assert.equal(all.edges.reduce((a, e) => a + e.count, 0), 8);
    });

    test('outboxBacklog: the outbox rows (no relay runs here) and the oldest one\'s time', async () => {
      const b = await t.store.outboxBacklog();
      assert.equal(b.messages, await t.store.countUnpublished());
      assert.ok(b.messages >= 3, `${b.messages} messages: a dispatch per submit at least`);
      assert.ok(b.rows >= 1 && b.rows <= b.messages, `${b.rows} rows hold them`);
      assert.ok(b.oldestAt !== null && b.oldestAt >= firstSubmitAt - 5 && b.oldestAt <= Date.now(), `oldest at ${b.oldestAt}`);
    });

    test('GET /v1/stats/outbox: the relay backlog, as the store counts it, with the oldest row\'s time and age', async () => {
      const b = await t.store.outboxBacklog();
      const res = await t.app.inject({ url: '/v1/stats/outbox' });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as { rows: number; messages: number; oldestAt: string | null; oldestAgeMs: number | null };
      assert.equal(body.rows, b.rows);
      assert.equal(body.messages, b.messages);
      assert.ok(body.rows >= 3);
      assert.equal(body.oldestAt, new Date(b.oldestAt!).toISOString());
      assert.ok(body.oldestAgeMs !== null && body.oldestAgeMs >= 0 && body.oldestAgeMs <= Date.now() - b.oldestAt! + 5, `age ${body.oldestAgeMs}`);
      const doc = (await t.app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, { operationId: string }>> };
      assert.equal(doc.paths['/v1/stats/outbox']?.get?.operationId, 'getOutboxStats');
    });

    test('the route is documented in the OpenAPI document, with its named response', async () => {
      const doc = (await t.app.inject({ url: '/docs/json' })).json() as {
        paths: Record<string, Record<string, { operationId: string; responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> }>>;
        components: { schemas: Record<string, { description?: string }> };
      };
      const op = doc.paths['/v1/stats/edges']?.get;
      assert.equal(op?.operationId, 'getEdgeStats');
      assert.equal(op.responses['200']!.content['application/json']!.schema.$ref, '#/components/schemas/EdgeStats');
      assert.ok(doc.components.schemas.EdgeStats?.description);
      assert.equal(doc.paths['/metrics'], undefined, '/metrics is for Prometheus, not in the API document');
    });
  });
}
