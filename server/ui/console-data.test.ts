/** The console's in-memory series (server/ui/client/console-data.ts), and how the page stays live (live.ts) and stops once its key is refused (key-gate.ts), under node. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { before, describe, test, type TestContext } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError, createClient, type StreamFilter, type WatchOptions } from '../../client/index.js';
import type { Api } from './client/api.js';
import { guardKey } from './client/key-gate.js';
import { startLive, type LiveMode } from './client/live.js';
import { BUCKETS, BUCKET_MS, QueueWait, Throughput, WINDOW_MS, WorkerSeen, median, type LiveEvent } from './client/console-data.js';
import { closeLocal, listenLocal } from '../../tests/helpers/local-server.js';

const NOW = 1_800_000_000_000 - 1; // the last ms of a bucket
const iso = (t: number) => new Date(t).toISOString();
const ev = (jobId: string, type: string, from: string | null, to: string, t: number, data: object = {}): LiveEvent =>
  ({ jobId, type, from, to, at: iso(t), data });
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** Waits (5 s at most) until `cond` holds. */
const until = async (cond: () => boolean, what: string) => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `waited 5 s for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

before(() => {
  (globalThis as { window?: unknown }).window ??= globalThis; // live.ts uses window.setInterval
});

describe('Throughput', () => {
  test('counts submits, done and dead per 30 s bucket over the last 15 minutes, oldest first', () => {
    const t = new Throughput();
    t.addEvent(ev('a', 'SUBMITTED', null, 'pending', NOW - 10), NOW);
    t.addEvent(ev('a', 'SUCCEEDED', 'running', 'done', NOW - 5), NOW);
    t.addEvent(ev('b', 'FAILED', 'running', 'dead', NOW - BUCKET_MS - 5), NOW);
    t.addEvent(ev('c', 'FAILED', 'running', 'retrying', NOW - 5), NOW); // a retry is not dead
    const done = t.series('done', NOW);
    assert.equal(done.length, BUCKETS);
    assert.deepEqual(done.slice(-2), [0, 1]);
    assert.deepEqual(t.series('dead', NOW).slice(-2), [1, 0]);
    assert.equal(sum(t.series('submitted', NOW)), 1);
  });

  test('a job listed at load and the same transition seen on the stream count once', () => {
    const t = new Throughput();
    const created = NOW - 60_000;
    const finished = NOW - 30_000;
    t.addJob({ id: 'a', state: 'done', createdAt: iso(created), updatedAt: iso(finished) }, NOW);
    t.addEvent(ev('a', 'SUBMITTED', null, 'pending', created), NOW);
    t.addEvent(ev('a', 'SUCCEEDED', 'running', 'done', finished), NOW);
    assert.equal(sum(t.series('submitted', NOW)), 1);
    assert.equal(sum(t.series('done', NOW)), 1);
    // A job redriven and dead again is dead twice, at two times.
    t.addJob({ id: 'b', state: 'dead', createdAt: iso(created), updatedAt: iso(finished) }, NOW);
    t.addEvent(ev('b', 'FAILED', 'running', 'dead', finished + 1000), NOW);
    assert.equal(sum(t.series('dead', NOW)), 2);
  });

  test('what is older than the window is left out, and pruned as time moves on', () => {
    const t = new Throughput();
    assert.equal(t.add('done', 'old', NOW - WINDOW_MS - BUCKET_MS, NOW), false);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), true);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), false, 'a repeat');
    const later = NOW + WINDOW_MS + BUCKET_MS;
    t.prune(later);
    assert.equal(sum(t.series('done', later)), 0);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), true, 'forgotten once pruned');
  });
});

describe('QueueWait', () => {
  test('the wait runs from due (submit, a later runAt, a retry or a redrive coming due) to STARTED', () => {
    const w = new QueueWait();
    w.addEvent(ev('a', 'SUBMITTED', null, 'pending', NOW - 5000));
    assert.equal(w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 4000, { attempt: 1 })), 1000);
    w.addEvent(ev('b', 'SUBMITTED', null, 'pending', NOW - 60_000, { runAt: NOW - 3000 }));
    assert.equal(w.addEvent(ev('b', 'STARTED', 'pending', 'running', NOW - 2000, { attempt: 1 })), 1000);
    w.addEvent(ev('a', 'RETRY_DUE', 'retrying', 'pending', NOW - 2000));
    assert.equal(w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 1000, { attempt: 2 })), 1000);
    // A start whose becoming due the page did not see: unknown, not counted.
    assert.equal(w.addEvent(ev('z', 'STARTED', 'published', 'running', NOW - 1000, { attempt: 1 })), null);
    const last = w.series(NOW).at(-1)!;
    assert.deepEqual(last, { n: 3, median: 1000, max: 1000 });
    assert.equal(w.series(NOW).filter((p) => p.n === 0).every((p) => p.median === null), true);
  });

  test('a busy bucket: every wait counted and the longest kept, in bounded memory (no spread of 150,000 values)', () => {
    const w = new QueueWait();
    const at = NOW - 1000;
    for (let i = 0; i < 150_000; i++) {
      w.addEvent(ev(`j${i}`, 'SUBMITTED', null, 'pending', at - 1 - (i === 77 ? 900 : 10)));
      w.addEvent(ev(`j${i}`, 'STARTED', 'published', 'running', at, { attempt: 1 }));
    }
    const last = w.series(NOW).at(-1)!;
    assert.deepEqual(last, { n: 150_000, median: 11, max: 901 });
  });

  test('median', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
  });
});

describe('WorkerSeen', () => {
  test('lists the workers that started attempts, what they run, their last activity and lost leases', () => {
    const w = new WorkerSeen();
    w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 9000, { attempt: 1, workerId: 'w1' }));
    w.addEvent(ev('b', 'STARTED', 'published', 'running', NOW - 8000, { attempt: 1, workerId: 'w1' }));
    w.addEvent(ev('c', 'STARTED', 'published', 'running', NOW - 7000, { attempt: 1, workerId: 'w2' }));
    w.addEvent(ev('a', 'HEARTBEAT', 'running', 'running', NOW - 1000, { attempt: 1 }));
    w.addEvent(ev('b', 'SUCCEEDED', 'running', 'done', NOW - 6000, { attempt: 1 }));
    w.addEvent(ev('c', 'LEASE_EXPIRED', 'running', 'retrying', NOW - 500, { attempt: 1 }));
    assert.deepEqual(w.list(), [
      { workerId: 'w1', started: 2, running: 1, lastSeen: NOW - 1000, leasesLost: 0 },
      { workerId: 'w2', started: 1, running: 0, lastSeen: NOW - 7000, leasesLost: 1 },
    ]);
  });

  test('forgets a worker that runs nothing and was last seen before the window; one still running a job stays', () => {
    const w = new WorkerSeen();
    w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - WINDOW_MS - 2000, { attempt: 1, workerId: 'old-host-1' }));
    w.addEvent(ev('a', 'SUCCEEDED', 'running', 'done', NOW - WINDOW_MS - 1000, { attempt: 1 }));
    w.addEvent(ev('b', 'STARTED', 'published', 'running', NOW - WINDOW_MS - 1000, { attempt: 1, workerId: 'old-host-2' }));
    w.addEvent(ev('c', 'STARTED', 'published', 'running', NOW - 1000, { attempt: 1, workerId: 'new-host-3' }));
    w.addEvent(ev('c', 'SUCCEEDED', 'running', 'done', NOW - 500, { attempt: 1 }));
    w.prune(NOW);
    assert.deepEqual(w.list().map((r) => [r.workerId, r.running]), [['new-host-3', 0], ['old-host-2', 1]]);
  });

  test('tracks at most 20,000 running attempts: an end the page missed does not keep one for ever', () => {
    const w = new WorkerSeen();
    for (let i = 0; i < 20_005; i++) w.addEvent(ev(`j${i}`, 'STARTED', 'published', 'running', NOW - 1000, { attempt: 1, workerId: 'w' }));
    assert.equal(w.list()[0]!.running, 20_000);
    w.addEvent(ev('j0', 'SUCCEEDED', 'running', 'done', NOW, { attempt: 1 }));
    assert.equal(w.list()[0]!.running, 20_000, 'the oldest went: its end changes nothing');
    w.addEvent(ev('j20004', 'SUCCEEDED', 'running', 'done', NOW, { attempt: 1 }));
    assert.equal(w.list()[0]!.running, 19_999);
  });
});

/**
 * live.ts (the counts and transitions the page follows), with the real
 * client against a stand-in server: a stream that subscribes and sends
 * stats, and `GET /v1/stats`, either of which can start refusing the key.
 */
describe('startLive: a key the server stops taking', () => {
  const STATS = { byState: { pending: 1 }, byType: {}, byQueue: {} };
  const REFUSED = { code: 'ATS_ERR_UNAUTHORIZED', message: 'API key revoked' };

  async function standIn(withStream: boolean) {
    const s = { statsStatus: 200, statsReads: 0, connections: 0, sockets: new Set<WebSocket>(), refuseCursors: false, subscribes: [] as Array<string | null> };
    const server = createServer((req, res) => {
      if (req.url !== '/v1/stats') return void res.writeHead(404).end();
      s.statsReads++;
      res.writeHead(s.statsStatus, { 'content-type': 'application/json' }).end(JSON.stringify(s.statsStatus === 200 ? STATS : REFUSED));
    });
    const wss = withStream ? new WebSocketServer({ server, path: '/v1/stream' }) : null;
    wss?.on('connection', (ws) => {
      s.connections++;
      s.sockets.add(ws);
      ws.on('close', () => s.sockets.delete(ws));
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw)) as { op: string; cursor?: string };
        if (m.op === 'subscribe') s.subscribes.push(m.cursor ?? null);
        if (m.op === 'subscribe' && m.cursor !== undefined && s.refuseCursors) {
          ws.send(JSON.stringify({ kind: 'error', code: 'ATS_ERR_BAD_CURSOR', message: 'The stream cursor is beyond every event this server has issued' }));
        } else if (m.op === 'subscribe') ws.send(JSON.stringify({ kind: 'subscribed', cursor: 'c0' }));
        if (m.op === 'stats') ws.send(JSON.stringify({ kind: 'stats', ...STATS, at: new Date().toISOString() }));
      });
    });
    const url = await listenLocal(server);
    const client = createClient({ url, apiKey: 'ats_test', retries: 0 });
    const api = { stats: () => client.stats(), watch: (f: StreamFilter, o: WatchOptions) => client.watch(f, o) } as unknown as Api;
    const close = async () => {
      for (const ws of s.sockets) ws.terminate();
      wss?.close();
      await closeLocal(server);
    };
    return { s, api, close };
  }

  function follow(api: Api) {
    const modes: LiveMode[] = [];
    const refused: unknown[] = [];
    const live = startLive(api, {
      onStats: () => undefined, onEvent: () => undefined,
      onMode: (m) => void modes.push(m),
      onRefused: (err) => void refused.push(err),
    }, { pollMs: 100, reconnectMs: { min: 50, max: 100 } });
    return { live, modes, refused, mode: () => modes.at(-1) };
  }

  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  test('the stream closed with 4401 (key revoked): the page says the key is refused, stops polling and does not reconnect', async (t) => {
    const { s, api, close } = await standIn(true);
    t.after(close);
    const f = follow(api);
    t.after(() => f.live.stop());
    await until(() => f.mode() === 'stream', 'the stream');
    s.statsStatus = 401;
    for (const ws of s.sockets) ws.close(4401, 'API key revoked: reconnect with a valid key');
    await until(() => f.mode() === 'refused', `the key to be said refused (modes: ${f.modes.join(', ')})`);
    assert.equal(f.refused.length, 1);
    assert.ok(f.refused[0] instanceof ApiError && f.refused[0].status === 401, 'told with the 401');
    const reads = s.statsReads;
    await pause(500);
    assert.equal(s.statsReads, reads, 'no more polling with a refused key');
    assert.equal(s.connections, 1, 'no reconnect with a refused key');
    assert.equal(f.mode(), 'refused');
  });

  test('a resume whose cursor the server refuses (its events reset): the page watches again from now, not polls for good', async (t) => {
    const { s, api, close } = await standIn(true);
    t.after(close);
    const f = follow(api);
    t.after(() => f.live.stop());
    await until(() => f.mode() === 'stream', 'the stream');
    s.refuseCursors = true;
    for (const ws of s.sockets) ws.terminate();
    await until(() => s.subscribes.includes('c0'), 'a resume from the last cursor');
    await until(() => f.mode() === 'stream' && s.subscribes.at(-1) === null && s.sockets.size === 1, `the stream again, from now (modes: ${f.modes.join(', ')}; subscribes: ${s.subscribes.join(', ')})`);
    assert.deepEqual(f.refused, []);
  });

  test('polling (no stream) answered 401: the page says the key is refused and stops polling, rather than "server not answering" each second', async (t) => {
    const { s, api, close } = await standIn(false);
    t.after(close);
    const f = follow(api);
    t.after(() => f.live.stop());
    await until(() => f.mode() === 'polling', 'polling');
    s.statsStatus = 401;
    await until(() => f.mode() !== 'polling', 'the poll to be refused');
    assert.equal(f.mode(), 'refused', `modes: ${f.modes.join(', ')}`);
    assert.equal(f.refused.length, 1);
    const reads = s.statsReads;
    await pause(500);
    assert.equal(s.statsReads, reads, 'no more polling with a refused key');
  });
});

describe('startLive: a slow server', () => {
  test('polling asks for the counts once at a time: a read still unanswered is not joined by more each tick', async (t) => {
    const s = { reads: 0, open: 0, most: 0 };
    const server = createServer((req, res) => {
      if (req.url !== '/v1/stats') return void res.writeHead(404).end();
      s.reads++;
      s.most = Math.max(s.most, ++s.open);
      setTimeout(() => {
        s.open--;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ byState: {}, byType: {}, byQueue: {} }));
      }, 450);
    });
    const url = await listenLocal(server);
    t.after(() => closeLocal(server));
    const client = createClient({ url, retries: 0 });
    const api = { stats: () => client.stats(), watch: (f: StreamFilter, o: WatchOptions) => client.watch(f, o) } as unknown as Api;
    const live = startLive(api, { onStats: () => undefined, onEvent: () => undefined, onMode: () => undefined }, { pollMs: 100, reconnectMs: { min: 5000, max: 5000 } });
    t.after(() => live.stop());
    await new Promise((r) => setTimeout(r, 1400));
    assert.equal(s.most, 1, `at most one read at a time (${s.reads} reads)`);
    assert.ok(s.reads >= 2, 'it goes on reading once each answer came');
  });
});

/**
 * `GET /v1/stats` answered 429 (the key's requests over the rate limit): the
 * page says it is rate limited, not that the server does not answer, and
 * reads again only once the Retry-After has passed (or its own pause without
 * one), not every second meanwhile.
 */
describe('startLive: rate limited', () => {
  const STATS = { byState: { pending: 1 }, byType: {}, byQueue: {} };
  const LIMITED = { code: 'ATS_ERR_RATE_LIMITED', message: 'Rate limit exceeded, retry in 1 second' };

  async function standIn() {
    const s = { limited: 0, retryAfter: '1' as string | null, reads: [] as number[] };
    const server = createServer((req, res) => {
      if (req.url !== '/v1/stats') return void res.writeHead(404).end();
      s.reads.push(Date.now());
      if (s.limited > 0) {
        s.limited--;
        return void res.writeHead(429, { 'content-type': 'application/json', ...(s.retryAfter ? { 'retry-after': s.retryAfter } : {}) }).end(JSON.stringify(LIMITED));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(STATS));
    });
    const url = await listenLocal(server);
    const client = createClient({ url, retries: 0 });
    const api = { stats: () => client.stats(), watch: (f: StreamFilter, o: WatchOptions) => client.watch(f, o) } as unknown as Api;
    const close = async () => {
      await closeLocal(server);
    };
    return { s, api, close };
  }

  /** The page on a stand-in, polling every 100 ms (its stream reconnects a minute later), each mode it takes recorded with its wait. */
  const pollingPage = async (t: TestContext) => {
    const { s, api, close } = await standIn();
    t.after(close);
    const modes: Array<[LiveMode, number | undefined]> = [];
    const l = startLive(api, { onStats: () => undefined, onEvent: () => undefined, onMode: (m, ms) => void modes.push([m, ms]) },
      { pollMs: 100, reconnectMs: { min: 60_000, max: 60_000 } });
    t.after(() => l.stop());
    await until(() => modes.at(-1)?.[0] === 'polling', 'polling');
    return { s, modes };
  };

  for (const retryAfter of ['1', null]) {
    test(`polling answered 429 ${retryAfter ? 'with Retry-After: 1' : 'without Retry-After'}: "rate limited", no read until the wait is over, then polling again`, async (t) => {
      const { s, modes } = await pollingPage(t);
      s.retryAfter = retryAfter;
      s.limited = 1;
      await until(() => modes.at(-1)?.[0] !== 'polling', 'the mode to leave polling');
      const wait = retryAfter ? 1000 : 200; // the server's word; else two polls
      assert.deepEqual(modes.at(-1), ['limited', wait], `modes: ${modes.join(' ')}`);
      assert.ok(!modes.some(([m]) => m === 'offline'), 'a 429 is not a server that does not answer');
      const limitedAt = s.reads.at(-1)!;
      await until(() => modes.at(-1)?.[0] === 'polling', `polling again (modes: ${modes.join(' ')})`);
      const next = s.reads.find((at) => at > limitedAt)!;
      assert.ok(next - limitedAt >= wait - 20, `read again ${next - limitedAt} ms after the 429, before the ${wait} ms wait was over`);
    });
  }

  test('a 429 whose Retry-After is a date already past (a proxy\'s clock behind, a cached answer) is not read again at once: the page waits a poll at least', async (t) => {
    const { s, modes } = await pollingPage(t);
    s.retryAfter = 'Sun, 06 Nov 1994 08:49:37 GMT';
    s.limited = 1_000_000;
    await until(() => modes.at(-1)?.[0] === 'limited', 'limited');
    const from = s.reads.length;
    await new Promise((r) => setTimeout(r, 500));
    const reads = s.reads.length - from;
    // One read a poll (100 ms) at most: 5 in 500 ms, give or take one; read again at once, it was 22.
    assert.ok(reads <= 6, `${reads} reads in 500 ms while every answer is a 429`);
    assert.ok(modes.filter(([m]) => m === 'limited').every(([, ms]) => ms === 100), `modes: ${modes.join(' ')}`);
  });
});

describe('guardKey: once the key is refused, the page sends nothing more', () => {
  test('a 401 stops every call (answered with it, no request), tells once; other failures and the pass-through calls go on', async () => {
    const calls: string[] = [];
    let answer: 'ok' | 401 | 503 = 'ok';
    const fail = (status: number) => new ApiError(status, status === 401 ? 'ATS_ERR_UNAUTHORIZED' : 'ATS_ERR_STORE_UNAVAILABLE', 'no');
    const api = {
      stats: async () => {
        calls.push('stats');
        if (answer !== 'ok') throw fail(answer);
        return 1;
      },
      insights: async () => {
        calls.push('insights');
        return 2;
      },
      watch: () => {
        calls.push('watch');
        return 'a watch';
      },
    };
    const told: unknown[] = [];
    const g = guardKey(api, (err) => void told.push(err), ['watch']);
    assert.equal(await g.api.stats(), 1);
    answer = 503;
    await assert.rejects(g.api.stats(), (e: unknown) => e instanceof ApiError && e.status === 503);
    assert.equal(g.refused, null, 'a 503 is not the key refused');
    answer = 401;
    await assert.rejects(g.api.stats(), (e: unknown) => e instanceof ApiError && e.status === 401);
    assert.equal(told.length, 1);
    const before = calls.length;
    await assert.rejects(g.api.insights(), (e: unknown) => e === g.refused);
    await assert.rejects(g.api.stats(), (e: unknown) => e === g.refused);
    assert.equal(calls.length, before, 'no call reached the server');
    assert.equal(g.api.watch(), 'a watch', 'passed through');
    g.refuse(fail(401));
    assert.equal(told.length, 1, 'told once');
  });
});

/**
 * The database gone while the page is open: the stream keeps its connection
 * and answers each stats tick with an `ATS_ERR_STORE_UNAVAILABLE` error
 * message in place of the counts (docs/stream.md); `GET /v1/stats` answers 503
 * with that code. The page must say the counts are no longer live, not "live
 * (stream)" over counts that stopped moving, nor "server not answering".
 */
describe('startLive: the database unreachable', () => {
  const STATS = { byState: { pending: 1 }, byType: {}, byQueue: {} };
  const DOWN = { code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' };

  async function standIn(withStream: boolean) {
    const s = { down: false };
    const server = createServer((req, res) => {
      if (req.url !== '/v1/stats') return void res.writeHead(404).end();
      res.writeHead(s.down ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(s.down ? DOWN : STATS));
    });
    const wss = withStream ? new WebSocketServer({ server, path: '/v1/stream' }) : null;
    const timers = new Set<NodeJS.Timeout>();
    wss?.on('connection', (ws) => {
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw)) as { op: string };
        if (m.op === 'subscribe') ws.send(JSON.stringify({ kind: 'subscribed', cursor: 'c0' }));
        if (m.op !== 'stats') return;
        // As the server's session does: a stats message each tick, or the error in its place.
        const tick = setInterval(() => ws.send(JSON.stringify(s.down
          ? { kind: 'error', ...DOWN }
          : { kind: 'stats', ...STATS, at: new Date().toISOString() })), 50);
        timers.add(tick);
        ws.on('close', () => clearInterval(tick));
      });
    });
    const url = await listenLocal(server);
    const client = createClient({ url, retries: 0 });
    const api = { stats: () => client.stats(), watch: (f: StreamFilter, o: WatchOptions) => client.watch(f, o) } as unknown as Api;
    const close = async () => {
      for (const t of timers) clearInterval(t);
      for (const ws of wss?.clients ?? []) ws.terminate();
      wss?.close();
      await closeLocal(server);
    };
    return { s, api, close };
  }

  for (const withStream of [true, false]) {
    const live = withStream ? 'stream' : 'polling';
    test(`${withStream ? 'the stream sends errors in place of stats' : 'polling answered 503'}: the page says the database is not answering, then ${live} again`, async (t) => {
      const { s, api, close } = await standIn(withStream);
      t.after(close);
      const modes: LiveMode[] = [];
      const l = startLive(api, { onStats: () => undefined, onEvent: () => undefined, onMode: (m) => void modes.push(m) },
        { pollMs: 50, reconnectMs: { min: 5000, max: 5000 } });
      t.after(() => l.stop());
      await until(() => modes.at(-1) === live, live);
      s.down = true;
      await until(() => modes.at(-1) !== live, `the mode to leave ${live}`);
      assert.equal(modes.at(-1), 'unavailable', `modes: ${modes.join(', ')}`);
      s.down = false;
      await until(() => modes.at(-1) === live, `${live} again (modes: ${modes.join(', ')})`);
    });
  }
});
