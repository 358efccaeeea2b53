/**
 * The WebSocket stream end to end on the real MariaDB: transitions are
 * committed by the instance's TransitionService, whose commits wake the
 * stream's tail (a relay also runs, publishing to the in-process log, so that
 * PUBLISHED transitions happen too); `ws` clients subscribe, drop, resume and
 * misbehave.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConnection } from 'mysql2/promise';
import { createMemoryLog, type MemoryLog } from '../../adapters/memory/index.js';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { MYSQL_DIALECT } from '../../adapters/sql/dialect.js';
import { eventValues, jobValues } from '../../adapters/sql/rows.js';
import { insertEvents, insertJobs } from '../../adapters/sql/statements.js';
import type { EventInput } from '../../engine/transitions.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { asyncApi } from '../../tests/helpers/asyncapi.js';
import { createTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import { randomQueue } from '../../tests/helpers/app.js';
import { encodeStreamCursor } from './cursor.js';
import type { StreamOptions } from './options.js';
import {
  assertOrdered, history, idOf, key, spec, startStreamInstance, TestClient, type EventMsg, type StreamInstance,
} from '../../tests/helpers/stream.js';

const mysqlUp = await requireMysql();

const started = (attempt: number): EventInput => ({ type: 'STARTED', attempt, leaseUntil: Date.now() + 60_000, workerId: 'w1' });
const failed = (attempt: number): EventInput => ({ type: 'FAILED', attempt, error: { message: 'boom', retryable: true } });
const succeeded = (attempt: number, result: unknown = null): EventInput => ({ type: 'SUCCEEDED', attempt, result });
const jitter = (ms: number) => sleep(Math.floor(Math.random() * ms));
const keysOf = (events: readonly EventMsg[]) => events.map(key);
const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

describe('WebSocket stream (MariaDB + in-process log)', { skip: !mysqlUp && 'MariaDB not reachable' }, () => {
  let store: MysqlStore;
  let dbUrl: string;
  let cleanup: () => Promise<void>;
  let log: MemoryLog;
  let main: StreamInstance;
  const clients: TestClient[] = [];
  const extra: StreamInstance[] = [];

  const connect = async (instance = main, query = '', options = {}) => {
    const c = await TestClient.connect(instance.url + query, options);
    clients.push(c);
    return c;
  };
  const instance = async (options: StreamOptions) => {
    const i = await startStreamInstance({ store, log, options });
    extra.push(i);
    return i;
  };
  before(async () => {
    const t = await createTestStore({ poolSize: 8 });
    store = t.store;
    dbUrl = t.db.url;
    cleanup = t.cleanup;
    log = createMemoryLog();
    await log.ensureTopics();
    // Small replay pages: resumes cross many pages and the page → live handover.
    main = await startStreamInstance({ store, log, options: { replayPageSize: 7 } });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const i of [...extra, main]) await i?.close();
    await log?.close();
    await cleanup?.();
  });

  /** Waits until the client has received `n` events of these jobs. */
  const waitForCount = (c: TestClient, jobIds: Iterable<string>, n: number, timeoutMs = 20_000) => {
    const ids = new Set(jobIds);
    return c.waitFor(() => c.events().filter((e) => ids.has(e.jobId)).length >= n || undefined, timeoutMs, `${n} events`);
  };

  it('per job, events arrive in seq order while many jobs transition at once', async () => {
    const q = randomQueue();
    const c = await connect();
    await c.subscribe({ queue: q });
    const batches = await Promise.all(Array.from({ length: 4 }, () => main.transitions.submitMany(Array.from({ length: 10 }, () => spec('t.order', q)))));
    const ids = batches.flat().map((r) => (assert.ok(r.ok), r.job.id));
    await Promise.all(ids.map(async (id, i) => {
      await jitter(30);
      assert.ok((await main.transitions.apply(id, started(1))).ok);
      await jitter(30);
      await main.transitions.apply(id, { type: 'HEARTBEAT', attempt: 1, leaseUntil: Date.now() + 90_000 });
      await jitter(30);
      assert.ok((await main.transitions.apply(id, succeeded(1, i))).ok);
    }));
    // A few multi-job transactions too: events of several jobs committed together.
    const more = (await main.transitions.submitMany(Array.from({ length: 6 }, () => spec('t.order', q)))).map((r) => r.job.id);
    await main.transitions.applyMany(more.flatMap((id) => [{ jobId: id, event: started(1) }, { jobId: id, event: succeeded(1) }]));
    const all = [...ids, ...more];
    const expected = await history(store, all);
    await waitForCount(c, all, expected.length);
    await sleep(100); // anything extra (a duplicate) would arrive now
    const got = c.events();
    assert.deepEqual([...keysOf(got)].sort(), [...expected].sort(), 'exactly the stored history, each event once');
    assertOrdered(got);
  });

  it('a filter delivers only what matches (job id, type, queue, states, query string), and a subscribe replaces the last', async () => {
    const [q1, q2] = [randomQueue(), randomQueue()];
    const [ta, tb] = [uniqueName('t.a'), uniqueName('t.b')];
    const everything = await connect();
    await everything.subscribe({});
    const [a1, a2, b1, b2] = (await main.transitions.submitMany([spec(ta, q1), spec(ta, q2), spec(tb, q1, { maxAttempts: 1 }), spec(tb, q2, { runAt: Date.now() + 3_600_000 })]))
      .map((r) => r.job.id) as [string, string, string, string];
    const byJob = await connect();
    const byType = await connect();
    const byQueue = await connect();
    const byStates = await connect();
    const byQuery = await connect(main, `?type=${ta}&states=cancelled,done&cursor=${everything.of('subscribed')[0]!.cursor}`);
    await byJob.subscribe({ jobId: a2 }, everything.of('subscribed')[0]!.cursor as string);
    await byType.subscribe({ type: ta }, everything.of('subscribed')[0]!.cursor as string);
    await byQueue.subscribe({ queue: q1 }, everything.of('subscribed')[0]!.cursor as string);
    await byStates.subscribe({ type: tb, states: ['running', 'dead'] }, everything.of('subscribed')[0]!.cursor as string);
    await main.transitions.apply(a1, { type: 'CANCEL', reason: 'test' });
    for (const e of [started(1), succeeded(1)]) await main.transitions.apply(a2, e);
    for (const e of [started(1), failed(1)]) await main.transitions.apply(b1, e);
    const jobs = [a1, a2, b1, b2];
    const stored = (await Promise.all(jobs.map(async (id) => {
      const job = (await store.getJob(id))!;
      return (await store.getEvents(id)).map((e) => ({ ...e, jobType: job.type, queue: job.queue }));
    }))).flat();
    assert.equal((await store.getJob(b1))!.snapshot.value, 'dead');
    await waitForCount(everything, jobs, stored.length);
    const expect = (keep: (e: (typeof stored)[number]) => boolean) => stored.filter(keep).map(key).sort();
    const cases: Array<[TestClient, string[]]> = [
      [byJob, expect((e) => e.jobId === a2)],
      [byType, expect((e) => e.jobType === ta)],
      [byQueue, expect((e) => e.queue === q1)],
      [byStates, expect((e) => e.jobType === tb && (e.to === 'running' || e.to === 'dead'))],
      [byQuery, expect((e) => e.jobType === ta && (e.to === 'cancelled' || e.to === 'done'))],
    ];
    for (const [c, want] of cases) await waitForCount(c, jobs, want.length);
    await sleep(100);
    for (const [c, want] of cases) {
      assert.ok(want.length > 0);
      assert.deepEqual(keysOf(c.events()).sort(), want);
    }
    assert.equal(byQuery.of('subscribed').length, 1, 'the query string subscribed at once');

    // Re-subscribing replaces the filter: byJob now follows b2 only (delayed: no PUBLISHED can interleave).
    const before = byJob.events().length;
    await byJob.subscribe({ jobId: b2 });
    assert.equal((await main.transitions.apply(a2, { type: 'REDRIVE' })).ok, false); // done: not allowed, writes nothing
    await main.transitions.apply(b2, { type: 'CANCEL' });
    await byJob.waitFor(() => byJob.events().length > before || undefined);
    await sleep(100);
    assert.deepEqual(byJob.events().slice(before).map((e) => [e.jobId, e.to]), [[b2, 'cancelled']]);
  });

  it('disconnect and resume with the last cursor while jobs keep running: union == history, no gap, no duplicate', async () => {
    const q = randomQueue();
    const first = await connect();
    const start = await first.subscribe({ queue: q });
    const ids = (await main.transitions.submitMany(Array.from({ length: 20 }, () => spec('t.resume', q, { maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 1 } }))))
      .map((r) => r.job.id);
    let running = true;
    // The jobs end only once the three cuts are made, so each cut falls while they still move: 8 events a job come
    // before (160, for 3 cuts of 10 and what reached each in flight), and every segment sees some of them, however
    // the machine's load paces the jobs and the stream.
    let cutsMade!: () => void;
    const lastStep = new Promise<void>((resolve) => (cutsMade = resolve));
    const driver = Promise.all(ids.map(async (id) => {
      for (let attempt = 1; attempt <= 3; attempt++) {
        await jitter(40);
        await main.transitions.apply(id, started(attempt));
        await jitter(40);
        if (attempt === 3) {
          await lastStep;
          await main.transitions.apply(id, succeeded(attempt));
          break;
        }
        await main.transitions.apply(id, failed(attempt));
        await sleep(5);
        await main.transitions.apply(id, { type: 'RETRY_DUE' });
      }
    })).finally(() => (running = false));

    const segments: EventMsg[][] = [];
    let client = first;
    let cursor = start;
    try {
      for (let drop = 0; drop < 3; drop++) {
        const seen = client.events().length;
        await client.waitFor(() => client.events().length >= seen + 10 || !running || undefined);
        await client.close(); // cut: whatever was in flight to it is lost to it
        segments.push(client.events());
        cursor = client.lastCursor() ?? cursor;
        await sleep(50); // jobs move on while no one listens
        client = await connect();
        assert.equal(await client.subscribe({ queue: q }, cursor), cursor, 'subscribed where it asked to resume');
      }
    } finally {
      cutsMade();
    }
    await driver;
    assert.ok(segments.every((s) => s.length > 0));
    const expected = await history(store, ids);
    const before = segments.flat().length;
    await waitForCount(client, ids, expected.length - before);
    await sleep(100);
    segments.push(client.events());
    const union = segments.flat();
    assert.deepEqual(keysOf(union).sort(), [...expected].sort(), 'the union of the segments is the history');
    assert.equal(new Set(keysOf(union)).size, union.length, 'no event twice');
    assertOrdered(union); // per job in seq order, cursors increasing across the resumes
  });

  it('a lower id committed after higher ones is still delivered, before them (concurrent commits are not skipped)', async () => {
    const q = randomQueue();
    const c = await connect();
    await c.subscribe({ queue: q, states: ['pending'] }); // the SUBMITTED events (the relay's PUBLISHED would follow)
    // A transaction that inserted an event (and its job) and has not committed: its id is allocated, not visible.
    const conn = await createConnection({ uri: dbUrl });
    try {
      const held = newJobWrite({ queue: q, type: 't.gap', at: Date.now() });
      await conn.beginTransaction();
      const job = insertJobs(MYSQL_DIALECT, [jobValues(held.job)], false);
      await conn.query(job.sql, job.params);
      const event = insertEvents([eventValues(held.event, held.job.tenant)]);
      await conn.query(event.sql, event.params);
      const later = await main.transitions.submit(spec('t.gap', q));
      assert.ok(later.ok);
      await sleep(700); // well past the relay's wake-up and the tail's reads, inside gapTimeoutMs (3000)
      assert.equal(c.events().length, 0, 'the later event waits behind the uncommitted lower id');
      await conn.commit();
      await waitForCount(c, [held.job.id, later.job.id], 2);
      assert.deepEqual(c.events().map((e) => e.jobId), [held.job.id, later.job.id]);
      assert.ok(idOf(c.events()[0]!.cursor) < idOf(c.events()[1]!.cursor));
    } finally {
      await conn.end();
    }
  });

  it('an id that never commits (rollback) holds the stream only for gapTimeoutMs', async () => {
    const fast = await instance({ gapTimeoutMs: 1000 });
    const q = randomQueue();
    const c = await connect(fast);
    await c.subscribe({ queue: q, states: ['pending'] });
    const conn = await createConnection({ uri: dbUrl });
    try {
      const doomed = newJobWrite({ queue: q, type: 't.gap', at: Date.now() });
      await conn.beginTransaction();
      for (const s of [insertJobs(MYSQL_DIALECT, [jobValues(doomed.job)], false), insertEvents([eventValues(doomed.event, doomed.job.tenant)])]) await conn.query(s.sql, s.params);
      const later = await fast.transitions.submit(spec('t.gap', q));
      const committedAt = Date.now();
      await sleep(300);
      await conn.rollback();
      assert.equal(c.events().length, 0);
      await waitForCount(c, [later.job.id], 1, 10_000);
      const waited = Date.now() - committedAt;
      assert.ok(waited >= 800, `delivered after ${waited} ms: the gap was given up too early`);
      assert.deepEqual(c.events().map((e) => e.jobId), [later.job.id]);
    } finally {
      await conn.end();
    }
  });

  it('oversize, malformed and invalid messages get error messages; the server keeps serving everyone', async () => {
    const q = randomQueue();
    const good = await connect();
    await good.subscribe({ queue: q });
    const bad = await connect();
    const errorsBefore = () => bad.of('error').length;
    const expectError = async (send: () => void, code: string, pattern?: RegExp) => {
      const n = errorsBefore();
      send();
      const e = await bad.waitFor(() => bad.of('error')[n]);
      assert.equal(e.code, code, JSON.stringify(e));
      if (pattern) assert.match(String(e.message), pattern);
    };
    await expectError(() => bad.send('{"op": "subscribe", '), 'ATS_ERR_MALFORMED_JSON');
    await expectError(() => bad.send({ op: 'subscribe', filter: { type: 'x'.repeat(20_000) } }), 'ATS_ERR_VALIDATION', /larger than the limit of 16384/);
    await expectError(() => bad.send({ op: 'dance' }), 'ATS_ERR_VALIDATION', /unknown op/);
    await expectError(() => bad.send({ op: 'subscribe', filter: { states: ['nope'] } }), 'ATS_ERR_VALIDATION', /states/);
    await expectError(() => bad.send({ op: 'subscribe', cursor: 'not-ours' }), 'ATS_ERR_BAD_CURSOR');
    await expectError(() => bad.ws.send(Buffer.from([1, 2, 3]), { binary: true }), 'ATS_ERR_VALIDATION', /text/);
    bad.send({ op: 'ping' });
    await bad.waitFor(() => bad.of('pong').length === 1 || undefined);
    const badQuery = await connect(main, '?states=bogus');
    await badQuery.waitFor(() => badQuery.of('error')[0]);
    // A misspelt parameter is refused, not dropped: `state` would otherwise leave every state subscribed.
    const misspelt = await connect(main, `?queue=${q}&state=done`);
    const refused = await misspelt.waitFor(() => misspelt.of('error')[0]) as { code?: string; message?: string };
    assert.equal(refused.code, 'ATS_ERR_VALIDATION');
    assert.match(refused.message ?? '', /unknown query parameter "state"/);

    const first = await main.transitions.submit(spec('t.bad', q));
    await waitForCount(good, [first.job.id], 1);
    await bad.subscribe({ queue: q });
    const second = await main.transitions.submit(spec('t.bad', q));
    await waitForCount(bad, [second.job.id], 1);
    assert.equal(bad.events().length, 1, 'nothing before its (valid) subscribe');
    assert.equal(misspelt.events().length, 0, 'a refused query string subscribes to nothing');
    assert.equal(misspelt.closed, null, 'the connection stays open');

    // Repeated oversize messages: closed with 1008. A frame above the hard limit: closed by ws with 1009.
    for (let i = 0; i < 10 && !bad.closed; i++) {
      bad.send('x'.repeat(17_000));
      await sleep(20);
    }
    assert.equal((await bad.waitClosed()).code, 1008);
    const huge = await connect();
    huge.send('x'.repeat(1024 * 1024 + 10));
    assert.equal((await huge.waitClosed()).code, 1009);
    const third = await main.transitions.submit(spec('t.bad', q));
    await waitForCount(good, [first.job.id, second.job.id, third.job.id], 3);
    assert.equal(good.closed, null);
    assert.equal(good.of('error').length, 0);
  });

  it('a cursor beyond every event issued is refused with ATS_ERR_BAD_CURSOR, never a silent stall', async () => {
    const q = randomQueue();
    const c = await connect();
    await c.subscribe({ queue: q });
    const first = await main.transitions.submit(spec('t.forged', q));
    await waitForCount(c, [first.job.id], 1);
    const newest = idOf(c.lastCursor()!);
    const forged = encodeStreamCursor(newest + 1_000_000);

    // By message: refused, and the subscription in force goes on.
    c.send({ op: 'subscribe', filter: { queue: q }, cursor: forged });
    const refused = await c.waitFor(() => c.of('error')[0]);
    assert.equal(refused.code, 'ATS_ERR_BAD_CURSOR', JSON.stringify(refused));
    assert.equal(c.of('subscribed').length, 1, 'no second subscribed message');
    const second = await main.transitions.submit(spec('t.forged', q));
    await waitForCount(c, [first.job.id, second.job.id], 2);

    // In the query string: refused too.
    const byQuery = await connect(main, `?queue=${q}&cursor=${forged}`);
    const e = await byQuery.waitFor(() => byQuery.messages[0]);
    assert.deepEqual([e.kind, e.code], ['error', 'ATS_ERR_BAD_CURSOR']);

    // The newest event's own cursor is fine: live from there.
    // (Other transitions of the first jobs, e.g. the relay's PUBLISHED, may follow that cursor too.)
    const from = idOf(c.lastCursor()!);
    const resumed = await connect();
    await resumed.subscribe({ queue: q }, encodeStreamCursor(from));
    const third = await main.transitions.submit(spec('t.forged', q));
    await waitForCount(resumed, [third.job.id], 1);
    assert.ok(resumed.events().some((m) => m.jobId === third.job.id));
    assert.ok(resumed.events().every((m) => idOf(m.cursor) > from), 'nothing at or before the cursor is replayed');
  });

  it('a client that cannot keep up is closed with 4000 and resumes from its last cursor without a gap', async () => {
    const slowApp = await instance({ maxBufferedBytes: 64 * 1024 });
    const q = randomQueue();
    const slow = await connect(slowApp);
    const start = await slow.subscribe({ queue: q });
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause(); // stops reading: the server's buffer fills
    const ids = (await slowApp.transitions.submitMany(Array.from({ length: 48 }, () => spec('t.slow', q)))).map((r) => r.job.id);
    const reason = 'r'.repeat(256 * 1024); // each CANCEL event carries it: ~12 MiB in all, past any socket buffer
    for (let i = 0; i < ids.length; i += 8) {
      await slowApp.transitions.applyMany(ids.slice(i, i + 8).map((id) => ({ jobId: id, event: { type: 'CANCEL' as const, reason } })));
    }
    await sleep(1000);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await slow.waitClosed();
    assert.deepEqual(closed, { code: 4000, reason: 'slow consumer: resume with your last cursor' });
    const expected = await history(store, ids);
    assert.ok(slow.events().length < expected.length, 'it was closed before it got everything');
    const again = await connect(slowApp);
    await again.subscribe({ queue: q }, slow.lastCursor() ?? start);
    await waitForCount(again, ids, expected.length - slow.events().length, 30_000);
    const union = [...slow.events(), ...again.events()];
    assert.deepEqual(keysOf(union).sort(), [...expected].sort());
    assertOrdered(union);
    assert.equal(again.closed, null, 'a replay is paced to the client, not closed');
  });

  it('stats: once, periodically, and stopped', async () => {
    const q = randomQueue();
    const [a] = (await main.transitions.submitMany([spec('t.stats', q), spec('t.stats', q)])).map((r) => r.job.id);
    await main.transitions.apply(a!, { type: 'CANCEL' });
    const c = await connect();
    c.send({ op: 'stats' });
    const s = await c.waitFor(() => c.of('stats')[0]);
    const counts = (s.byQueue as Record<string, Record<string, number>>)[q]!;
    assert.equal(counts.cancelled, 1);
    assert.equal(Object.values(counts).reduce((x, y) => x + y, 0), 2);
    assert.deepEqual(Object.keys(s.byState as object).sort(), ['cancelled', 'dead', 'done', 'pending', 'published', 'retrying', 'running']);
    assert.ok(!Number.isNaN(Date.parse(String(s.at))));
    c.send({ op: 'stats', everyMs: 100 });
    await c.waitFor(() => c.of('error')[0]);
    c.send({ op: 'stats', everyMs: 250 });
    await c.waitFor(() => c.of('stats').length >= 4 || undefined, 3000);
    c.send({ op: 'stats', everyMs: 0 });
    await sleep(100);
    const n = c.of('stats').length;
    await sleep(700);
    assert.equal(c.of('stats').length, n, 'no stats after everyMs 0');
  });

  it('keep-alive: a client that does not answer pings is dropped; closing the app closes the others with 1001', async () => {
    const pinging = await instance({ pingIntervalMs: 400 });
    const deaf = await connect(pinging, '', { autoPong: false });
    const fine = await connect(pinging);
    let pings = 0;
    fine.ws.on('ping', () => pings++);
    await deaf.waitClosed(5000);
    assert.equal(deaf.closed!.code, 1006, 'terminated, no close frame');
    await fine.waitFor(() => pings >= 3 || undefined, 5000, 'three pings');
    assert.equal(fine.closed, null, 'a client answering pings stays');
    const res = await pinging.app.inject({ method: 'GET', url: '/v1/stream' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'ATS_ERR_VALIDATION');
    await pinging.close();
    assert.deepEqual(await fine.waitClosed(), { code: 1001, reason: 'server going away' });
  });

  it('insights: an anomaly reaches the live clients whose filter wants its type and queue, and no other', async () => {
    const type = uniqueName('t.insight');
    const queue = randomQueue();
    const all = await connect();
    const sameType = await connect();
    const sameQueue = await connect();
    const otherType = await connect();
    const oneJob = await connect();
    const notSubscribed = await connect();
    await all.subscribe({});
    await sameType.subscribe({ type });
    await sameQueue.subscribe({ queue });
    await otherType.subscribe({ type: `${type}.other` });
    await oneJob.subscribe({ jobId: '01JD3W7Z9Q4X2M8K5N6P0R1S2T' });
    const anomaly = { type, queue, metric: 'failure-rate' as const, baseline: 0.02, observed: 0.31, at: Date.UTC(2026, 11, 1, 4, 31, 12) };
    main.insight(anomaly);
    const expected = { kind: 'insight', insight: 'anomaly', type, queue, metric: 'failure-rate', baseline: 0.02, observed: 0.31, at: '2026-12-01T04:31:12.000Z' };
    for (const c of [all, sameType, sameQueue]) assert.deepEqual(await c.waitFor((ms) => ms.find((m) => m.kind === 'insight')), expected);
    // A ping answered after the insight was sent shows it was not sent to these: the server sends in order.
    for (const c of [otherType, oneJob, notSubscribed]) {
      const before = c.messages.length;
      c.send({ op: 'ping' });
      await c.waitFor((ms) => ms.slice(before).find((m) => m.kind === 'pong'));
      assert.equal(c.of('insight').length, 0);
    }
  });

  // Last: the messages of every client of the tests above.
  it('every message the server sent in these tests matches docs/asyncapi.yaml', () => {
    const counts = asyncApi().assertStreamMessages(clients.flatMap((c) => c.messages));
    for (const kind of ['subscribed', 'event', 'stats', 'insight', 'error', 'pong']) assert.ok((counts.get(kind) ?? 0) > 0, `no ${kind} message was checked`);
  });
});
