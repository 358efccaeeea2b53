/**
 * The CLI's stream client and its REST fallback against a fake server that
 * speaks the stream protocol (docs/stream.md): resume from the last cursor
 * after a drop, 404 → polling, refused → unreachable, an upgrade held
 * unanswered while the API answers → polling (`ats watch`), and the count
 * mode's race (a job ending before its submit is answered).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { after, describe, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import type { StreamProgressMessage } from '../client/index.js';
import { ApiError, AtsClient, UnreachableError, type JobDetail, type JobEvent, type JobProgress } from './client.js';
import { followJob, repeat, SeqGate, trySubscribe, waitOut } from './commands/follow.js';
import { NodeWebSocket, StreamUnavailable, subscribe, type StreamEvent } from './commands/stream.js';
import { missingJob, subscribeOrPoll } from './commands/watch.js';
import { submitMany } from './commands/submit-many.js';
import { Progress } from './commands/progress.js';
import { spawnAts } from '../tests/helpers/cli.js';
import { startTcpProxy } from '../tests/helpers/tcp-proxy.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

const ID = '01J00000000000000000000001';

interface Fake {
  url: string;
  /** Every subscribe message received, in order. */
  subscribes: Array<{ filter: Record<string, unknown>; cursor?: string }>;
  sockets: WebSocket[];
  jobs: Map<string, JobDetail>;
  gets: number;
  /** The size of each POST /v1/jobs/batch received, in order. */
  batches: number[];
  /** Send an event to every open socket; its cursor is `c<n>`. */
  emit(e: Omit<StreamEvent, 'kind' | 'cursor'>): void;
  /** Send a progress message to every open socket. */
  emitProgress(p: Omit<StreamProgressMessage, 'kind'>): void;
  /** Replies to the next subscribe with an error instead of `subscribed`. */
  refuseNext: boolean;
  /** The code of that error. @defaultValue ATS_ERR_VALIDATION */
  refuseCode?: string;
  /** Never answers a subscribe. */
  silent: boolean;
  /** The GET /v1/jobs list requests received, by query. */
  lists: URLSearchParams[];
  /** The next this many GET /v1/jobs/:id are answered with this error. */
  failGets: { count: number; status: number; code: string };
  /** The next this many list requests are answered 429 ATS_ERR_RATE_LIMITED. */
  failLists: number;
  /** The next this many stream upgrades are refused with a 503 (the server's database down). */
  failUpgrades: number;
  /** The next this many stream upgrades are refused with a 429 and `Retry-After: 1` (the key's request budget spent). */
  limitUpgrades: number;
  /** The next this many stream upgrades are refused with a 429 ATS_ERR_TOO_MANY_STREAMS, without Retry-After (the key holds its most streams). */
  crowdUpgrades: number;
  /** Answers nothing from now on: every request and upgrade is held (a server that stopped answering). */
  hang: boolean;
  /** The GET /healthz received (answered 404, as any route the fake lacks). */
  healths: number;
  close(): Promise<void>;
}

interface FakeOptions {
  /** Serve the stream route. @defaultValue true */
  stream?: boolean;
  /** Refuse every upgrade without `Authorization: Bearer <key>` with a 401. */
  key?: string;
  /** Refuse every upgrade with this HTTP status. */
  upgradeStatus?: number;
  /** A job submitted ends at once (its `done` on the stream before the submit's answer); else it stays pending. @defaultValue true */
  endAtOnce?: boolean;
  /** Take every upgrade request and never answer it (a proxy that holds WebSocket upgrades); the REST API still answers. */
  holdUpgrades?: boolean;
  /**
   * Answer every upgrade as the server answers a GET of /v1/stream that reached it without its Upgrade (through a
   * proxy that does not pass WebSocket upgrades on): 400 ATS_ERR_VALIDATION.
   */
  plainUpgrades?: boolean;
}

const fakes: Fake[] = [];
after(async () => {
  for (const f of fakes) await f.close();
});

function event(jobId: string, seq: number, from: string | null, to: string, type: string, data: unknown = {}): JobEvent & { jobId: string } {
  return { jobId, seq, from, to, type, at: new Date(1_700_000_000_000 + seq).toISOString(), data };
}

function jobDetail(id: string, events: JobEvent[]): JobDetail {
  const last = events[events.length - 1]!;
  return {
    id, type: 'demo.echo', queue: 'default', state: last.to, attempt: 1, maxAttempts: 3, payload: null, result: null,
    lastError: null, runAt: last.at, createdAt: last.at, updatedAt: last.at, version: last.seq, events, streamCursor: `c${last.seq}`,
  };
}

/** A fake API: GET /v1/jobs/:id, POST /v1/jobs (emits `done` on the stream BEFORE answering), and the stream. */
async function fakeServer({ stream = true, key, upgradeStatus, endAtOnce = true, holdUpgrades = false, plainUpgrades = false }: FakeOptions = {}): Promise<Fake> {
  const held = new Set<Duplex>();
  let n = 0;
  let created = 0;
  const fake = {
    subscribes: [], sockets: [], jobs: new Map(), gets: 0, batches: [], refuseNext: false, silent: false, lists: [],
    failGets: { count: 0, status: 503, code: 'ATS_ERR_STORE_UNAVAILABLE' }, failLists: 0, failUpgrades: 0, limitUpgrades: 0, crowdUpgrades: 0, hang: false, healths: 0,
  } as unknown as Fake;
  const wss = new WebSocketServer({ noServer: true });
  fake.emit = (e) => {
    for (const ws of fake.sockets) if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ kind: 'event', cursor: `c${++n}`, ...e }));
  };
  fake.emitProgress = (p) => {
    for (const ws of fake.sockets) if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ kind: 'progress', ...p }));
  };
  wss.on('connection', (ws) => {
    fake.sockets.push(ws);
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw));
      fake.subscribes.push({ filter: msg.filter, cursor: msg.cursor });
      if (fake.silent) return;
      if (fake.refuseNext) {
        fake.refuseNext = false;
        return ws.send(JSON.stringify({ kind: 'error', code: fake.refuseCode ?? 'ATS_ERR_VALIDATION', message: 'bad filter' }));
      }
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: msg.cursor ?? `c${n}` }));
    });
  });
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server: Server = createServer((req: IncomingMessage, res) => {
    if (fake.hang) return;
    if (req.url === '/healthz') fake.healths++;
    const m = /^\/v1\/jobs\/([^/]+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && m) {
      fake.gets++;
      if (fake.failGets.count > 0) {
        fake.failGets.count--;
        return json(res, fake.failGets.status, { code: fake.failGets.code, message: `answered ${fake.failGets.status}` });
      }
      const job = fake.jobs.get(m[1]!);
      return job ? json(res, 200, job) : json(res, 404, { code: 'ATS_ERR_JOB_NOT_FOUND', message: `No job has id ${m[1]}` });
    }
    const list = /^\/v1\/jobs\?(.*)$/.exec(req.url ?? '');
    if (req.method === 'GET' && list) {
      // Newest first, `limit` a page, the cursor the last id of the page before (the real one is opaque).
      const q = new URLSearchParams(list[1]);
      fake.lists.push(q);
      if (fake.failLists > 0) {
        fake.failLists--;
        return json(res, 429, { code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' });
      }
      const limit = Number(q.get('limit') ?? 50);
      const after = q.get('cursor');
      const all = [...fake.jobs.values()].filter((j) => (!q.has('type') || j.type === q.get('type')) && (!after || j.id < after))
        .sort((a, b) => (a.id < b.id ? 1 : -1));
      const page = all.slice(0, limit).map(({ events: _events, ...view }) => view);
      return json(res, 200, { jobs: page, nextCursor: all.length > limit ? page[page.length - 1]!.id : null });
    }
    const createOne = () => {
      const id = `01J${String(++created).padStart(23, '0')}`;
      if (!endAtOnce) {
        fake.jobs.set(id, jobDetail(id, [event(id, 1, null, 'pending', 'SUBMITTED')]));
        return id;
      }
      fake.jobs.set(id, jobDetail(id, [event(id, 1, null, 'done', 'SUBMITTED')]));
      fake.emit({ jobId: id, seq: 4, type: 'SUCCEEDED', from: 'running', to: 'done', at: new Date().toISOString(), data: { attempt: 1 }, jobType: 'demo.echo', queue: 'default' });
      return id;
    };
    if (req.method === 'POST' && req.url === '/v1/jobs') {
      const id = createOne();
      return setTimeout(() => json(res, 201, { ...fake.jobs.get(id), state: 'pending' }), 5);
    }
    if (req.method === 'POST' && req.url === '/v1/jobs/batch') {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        const { jobs } = JSON.parse(text) as { jobs: Array<{ type: string }> };
        fake.batches.push(jobs.length);
        const results = jobs.map((j) => (j.type === 'nope'
          ? { status: 422, code: 'ATS_ERR_UNKNOWN_JOB_TYPE', message: `No handler is registered for job type 'nope'` }
          : { status: 201, id: createOne(), state: 'pending' }));
        setTimeout(() => json(res, 200, { results }), 5);
      });
      return;
    }
    json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
  });
  server.on('upgrade', (req, socket, head) => {
    if (holdUpgrades || fake.hang) {
      held.add(socket);
      socket.on('error', () => undefined);
      return;
    }
    if (plainUpgrades) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n'
        + '{"code":"ATS_ERR_VALIDATION","message":"GET /v1/stream is a WebSocket endpoint: connect with an Upgrade: websocket request"}');
      return;
    }
    if (fake.limitUpgrades > 0) {
      fake.limitUpgrades--;
      socket.end('HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n\r\n'
        + '{"code":"ATS_ERR_RATE_LIMITED","message":"Too many requests"}');
      return;
    }
    if (fake.crowdUpgrades > 0) {
      fake.crowdUpgrades--;
      socket.end('HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n'
        + '{"code":"ATS_ERR_TOO_MANY_STREAMS","message":"At most 8 stream connections may be open at once per API key (per address without one); close one first"}');
      return;
    }
    const status = fake.failUpgrades > 0 && fake.failUpgrades-- > 0 ? 503
      : upgradeStatus ?? (key !== undefined && req.headers.authorization !== `Bearer ${key}` ? 401 : undefined);
    if (status !== undefined) {
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"code":"X","message":"refused"}`);
      return;
    }
    if (!stream || req.url !== '/v1/stream') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  fake.url = await listenLocal(server);
  fake.close = async () => {
    for (const socket of held) socket.destroy();
    for (const ws of fake.sockets) ws.terminate();
    wss.close();
    await closeLocal(server);
  };
  fakes.push(fake);
  return fake;
}

const until = async (cond: () => boolean, what: string, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('stream client', () => {
  test('delivers events and, after a slow-consumer close, resubscribes from the last cursor', async () => {
    const fake = await fakeServer();
    const got: string[] = [];
    const notices: string[] = [];
    const sub = subscribe({
      client: new AtsClient(fake.url), filter: { type: 'demo.echo' }, onEvent: (e) => got.push(`${e.seq}@${e.cursor}`),
      onNotice: (m) => notices.push(m), retry: { minMs: 10, maxMs: 50 },
    });
    assert.equal(await sub.ready, 'c0');
    const e = (seq: number) => ({ ...event(ID, seq, 'pending', 'published', 'PUBLISHED'), jobType: 'demo.echo', queue: 'default' });
    fake.emit(e(1));
    fake.emit(e(2));
    await until(() => got.length === 2, 'two events');
    fake.sockets[0]!.close(4000, 'slow consumer');
    await until(() => fake.subscribes.length === 2 && fake.sockets[1]?.readyState === 1, 'the resubscribe');
    fake.emit(e(3));
    await until(() => got.length === 3, 'the event after the resume');
    sub.close();
    assert.deepEqual(got, ['1@c1', '2@c2', '3@c3']);
    assert.deepEqual(fake.subscribes.map((s) => s.cursor), [undefined, 'c2'], 'the resume carries the last cursor');
    assert.deepEqual(fake.subscribes[1]!.filter, { type: 'demo.echo' });
    assert.match(notices.join('\n'), /disconnected \(4000 slow consumer\)/);
  });

  test('what the server said in a close reason reaches a notice on one line, its controls escaped', async () => {
    const fake = await fakeServer();
    const notices: string[] = [];
    const sub = subscribe({
      client: new AtsClient(fake.url), filter: {}, onEvent: () => undefined, onNotice: (m) => notices.push(m), retry: { minMs: 10, maxMs: 50 },
    });
    await sub.ready;
    fake.sockets[0]!.close(4000, 'slow \u001b[2J\nATS_ERR_OK \u202Eevil');
    await until(() => notices.some((m) => m.includes('disconnected')), 'the notice of the close');
    sub.close();
    const said = notices.find((m) => m.includes('disconnected'))!;
    assert.doesNotMatch(said, /[\u0000-\u001f\u202a-\u202e]/, JSON.stringify(said));
    assert.match(said, /slow \\u001b\[2J\\nATS_ERR_OK \\u202eevil/);
  });

  test('a server without the stream route: StreamUnavailable, and trySubscribe says poll', async () => {
    const fake = await fakeServer({ stream: false });
    const sub = subscribe({ client: new AtsClient(fake.url), filter: {}, onEvent: () => undefined });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof StreamUnavailable && e.status === 404);
    assert.equal(await trySubscribe(new AtsClient(fake.url), {}, () => undefined), null);
  });

  test('no server at all: UnreachableError naming the URL', async () => {
    const fake = await fakeServer();
    await fake.close();
    const sub = subscribe({ client: new AtsClient(fake.url), filter: {}, onEvent: () => undefined });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof UnreachableError && e.message.includes(fake.url) && /ECONNREFUSED/.test(e.reason));
  });

  test('a refused subscribe rejects with the server\'s code and is not retried', async () => {
    const fake = await fakeServer();
    fake.refuseNext = true;
    const sub = subscribe({ client: new AtsClient(fake.url), filter: { states: ['nope'] }, onEvent: () => undefined, retry: { minMs: 5, maxMs: 5 } });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_VALIDATION');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.subscribes.length, 1);
    sub.close();
  });
});

describe('the stream and API keys', () => {
  test('the subscription carries the client\'s API key: a server that requires one subscribes it', async () => {
    const fake = await fakeServer({ key: 'ats_k1' });
    const sub = await trySubscribe(new AtsClient({ url: fake.url, apiKey: 'ats_k1' }), { type: 'demo.echo' }, () => undefined);
    assert.ok(sub, 'subscribed, not fallen back to polling');
    sub.close();
    assert.deepEqual(fake.subscribes.map((s) => s.filter), [{ type: 'demo.echo' }]);
  });

  test('an upgrade refused 401, 403 or 429 is that error (exit 1), not a server without the stream', async () => {
    const codes = new Map([[401, 'ATS_ERR_UNAUTHORIZED'], [403, 'ATS_ERR_FORBIDDEN'], [429, 'ATS_ERR_RATE_LIMITED']]);
    for (const [status, code] of codes) {
      const fake = await fakeServer({ upgradeStatus: status });
      await assert.rejects(
        trySubscribe(new AtsClient({ url: fake.url, apiKey: 'ats_wrong' }), {}, () => undefined),
        (e: unknown) => e instanceof ApiError && !(e instanceof StreamUnavailable) && e.status === status && e.code === code
          && new RegExp(`HTTP ${status} on /v1/stream`).test(e.message),
        `HTTP ${status}`,
      );
    }
  });

  test('a key the server refuses, from the command line: the error on stderr and exit 1, no polling', { timeout: 10_000 }, async () => {
    const fake = await fakeServer({ key: 'ats_k1' });
    const { watchCommand } = await import('./commands/watch.js');
    const stderr = await capturingStderr(() => watchCommand([], { ATS_URL: fake.url, ATS_API_KEY: 'ats_wrong' }));
    assert.equal(stderr.code, 1);
    assert.match(stderr.text, /^ATS_ERR_UNAUTHORIZED: .*ATS_API_KEY/m);
    assert.doesNotMatch(stderr.text, /polling/);
  });
});

describe('ats watch and the rate limit or an outage at its start', () => {
  /** `ats watch`'s start on `fake` (filter: queue q) once it subscribed (not polling; closed again), and what it wrote on stderr. */
  const subscribedStart = async (fake: Fake): Promise<string> => {
    let sub: Awaited<ReturnType<typeof subscribeOrPoll>> | undefined;
    const stderr = await capturingStderr(async () => {
      sub = await subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), { queue: 'q' }, () => undefined, undefined);
      return 0;
    });
    assert.ok(sub && !('poll' in sub), `subscribed, not polling: ${JSON.stringify(sub)}`);
    sub.close();
    return stderr.text;
  };

  test('a stream refused 429 with Retry-After at the start is asked again after it, saying so on stderr, not exit 1', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.limitUpgrades = 1;
    const started = Date.now();
    const stderr = await subscribedStart(fake);
    assert.ok(Date.now() - started >= 1000, 'waited for the Retry-After');
    assert.equal(fake.limitUpgrades, 0);
    assert.deepEqual(fake.subscribes.map((s) => s.filter), [{ queue: 'q' }]);
    assert.match(stderr, /^stream: ATS_ERR_RATE_LIMITED: .*HTTP 429 on \/v1\/stream.*; waiting 1 s$/m);
  });

  test('Ctrl-C while the rate limit is waited out ends the wait: no stream asked again', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.limitUpgrades = 1;
    const stop = new AbortController();
    const stderr = await capturingStderr(async () => {
      const subscribing = subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), {}, () => undefined, undefined, stop.signal);
      await until(() => fake.limitUpgrades === 0, 'the refused upgrade');
      stop.abort();
      await assert.rejects(subscribing, (e: unknown) => e instanceof Error && e.name === 'AbortError');
      return 0;
    });
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(fake.sockets.length, 0, 'no upgrade after the abort');
    assert.match(stderr.text, /waiting 1 s/);
  });

  test('a stream refused 503 at the start (the server\'s database down) is asked again, saying so on stderr, not exit 1', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.failUpgrades = 2;
    const stderr = await subscribedStart(fake);
    assert.equal(fake.failUpgrades, 0);
    assert.equal(stderr.split('\n').filter((l) => /^stream: HTTP_503: .*trying again in \d+ ms$/.test(l)).length, 2, stderr);
  });

  test('a server that stops answering after its stream was refused 503 is the timeout (exit 1), not a proxy to poll through: the API is asked again beside each subscribe', { timeout: 30_000 }, async () => {
    const fake = await fakeServer();
    fake.failUpgrades = 1;
    const subscribing = capturingStderr(() => subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), {}, () => undefined, undefined).then(
      (sub) => assert.fail(`not the timeout: ${JSON.stringify(sub)}`),
      (e: unknown) => {
        assert.ok(e instanceof UnreachableError && e.reason === 'timed out', String(e));
        return 1;
      },
    ));
    // The first subscribe's probe was answered (a 404 for /healthz is an answer); from the 503 on, nothing is.
    await until(() => fake.failUpgrades === 0 && fake.healths === 1, 'the refused upgrade and the answered probe');
    fake.hang = true;
    assert.equal((await subscribing).code, 1);
  });

  test('a stream refused 429 without Retry-After (too many streams of the key) is still the error', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.crowdUpgrades = 1;
    const stderr = await capturingStderr(() => subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), {}, () => undefined, undefined).then(
      () => assert.fail('subscribed'),
      (e: unknown) => {
        assert.ok(e instanceof ApiError && e.status === 429, String(e));
        return 1;
      },
    ));
    assert.equal(stderr.text, '');
  });
});

/** Runs `fn` with process.stderr captured: its result and what it wrote. */
async function capturingStderr(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const write = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), text };
  } finally {
    process.stderr.write = write;
  }
}

test('a stream that never confirms the subscribe is a server that does not answer (timed out), not one without a stream to poll instead', async () => {
  const fake = await fakeServer();
  fake.silent = true;
  const sub = subscribe({ client: new AtsClient(fake.url), filter: {}, onEvent: () => undefined, connectTimeoutMs: 100 });
  await assert.rejects(sub.ready, (e: unknown) => e instanceof UnreachableError && e.reason === 'timed out');
});

test('ats watch, when the stream\'s upgrade is never answered (a proxy that holds it) but the API answers: polls instead, until Ctrl-C (exit 0)', { timeout: 60_000 }, async () => {
  const fake = await fakeServer({ holdUpgrades: true });
  const watch = spawnAts(fake.url, ['watch'], {}, 50_000);
  let code: number | null | undefined;
  void watch.exited.then((r) => (code = r.code));
  try {
    // The subscribe times out after 10 s; then the first look learns where the jobs stand, and the next ones print.
    await until(() => fake.lists.length >= 2 || code !== undefined, 'the watch to poll', 30_000);
    assert.equal(code, undefined, `the watch ended (exit ${code}) instead of polling:\n${watch.stderr}`);
    const id = '01J00000000000000000000099';
    fake.jobs.set(id, jobDetail(id, [event(id, 1, null, 'pending', 'SUBMITTED'), event(id, 2, 'pending', 'published', 'PUBLISHED', { attempt: 1 })]));
    await until(() => watch.stdout.includes(id) || code !== undefined, 'the job\'s transitions', 10_000);
    watch.kill('SIGINT');
    const r = await watch.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /its stream did not confirm the subscribe in time .*; polling the 100 newest jobs every second/);
    assert.doesNotMatch(r.stderr, /cannot reach|timed out/);
    assert.match(r.stdout, new RegExp(`${id}\\s+demo\\.echo\\s+default\\s+\\(new\\) -> pending\\s+SUBMITTED`));
    assert.match(r.stdout, new RegExp(`${id}\\s+demo\\.echo\\s+default\\s+pending -> published\\s+PUBLISHED`));
    assert.equal(fake.subscribes.length, 0, 'no subscribe was ever answered');
  } finally {
    watch.kill('SIGKILL');
  }
});

describe('ats watch --job over the stream: the job\'s reads beside it', () => {
  test('its end read at the start, with its cursor, then the transitions after it: the stream subscribed from the cursor the read gave', { timeout: 30_000 }, async () => {
    const fake = await fakeServer();
    // Started and failed (dead) before the watch: the read shows the end, and its stream cursor.
    const started = { ...event(ID, 2, 'pending', 'running', 'STARTED', { attempt: 1 }), jobType: 'demo.echo', queue: 'default' };
    const died = { ...event(ID, 3, 'running', 'dead', 'FAILED', { attempt: 1 }), jobType: 'demo.echo', queue: 'default' };
    fake.jobs.set(ID, jobDetail(ID, [event(ID, 1, null, 'pending', 'SUBMITTED'), started, died]));
    const watch = spawnAts(fake.url, ['watch', '--job', ID, '--json'], {}, 25_000);
    try {
      await until(() => fake.subscribes.length === 1 && watch.stdout.includes('"seq":3'), 'the end read at the start printed, and the subscribe', 15_000);
      assert.equal(fake.subscribes[0]!.cursor, 'c3', 'subscribed from the read\'s streamCursor');
      // What a server sends after that cursor: the redrive.
      fake.emit({ ...event(ID, 4, 'dead', 'pending', 'REDRIVE'), jobType: 'demo.echo', queue: 'default' });
      await until(() => watch.stdout.includes('"seq":4'), 'the redrive printed', 10_000);
      watch.kill('SIGINT');
      const r = await watch.exited;
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; cursor?: string });
      assert.deepEqual(lines.map((l) => [l.seq, l.cursor]), [[3, 'c3'], [4, 'c1']], `in order, each once, each with its cursor:\n${r.stdout}`);
    } finally {
      watch.kill('SIGKILL');
    }
  });

  test('a stream that ends with an error (its key refused) ends the job\'s reads too: none after the command ended', { timeout: 30_000 }, async () => {
    const fake = await fakeServer();
    fake.jobs.set(ID, jobDetail(ID, [event(ID, 1, null, 'pending', 'SUBMITTED')]));
    const { watchCommand } = await import('./commands/watch.js');
    const r = await capturingStderr(async () => {
      const watching = watchCommand(['--job', ID], { ATS_URL: fake.url });
      await until(() => fake.gets >= 1 && fake.sockets.length === 1, 'the subscribe and the job\'s first read', 10_000);
      fake.sockets[0]!.close(4401, 'API key revoked');
      return watching;
    });
    assert.equal(r.code, 1, r.text);
    assert.match(r.text, /^ATS_ERR_UNAUTHORIZED: /m);
    const gets = fake.gets;
    // missingJob reads the job every 5 s while the watch runs.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    assert.equal(fake.gets, gets, 'the job read again after the watch ended');
  });
});

describe('ats watch says why it polls', () => {
  test('a server without the stream route: "has no stream route"', async () => {
    const fake = await fakeServer({ stream: false });
    const sub = await subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), {}, () => undefined, undefined);
    assert.ok('poll' in sub);
    assert.match(sub.poll, /^http:\/\/127\.0\.0\.1:\d+ has no stream route$/);
  });

  test('through a proxy that does not pass WebSocket upgrades on: the upgrade did not reach the server, not "no stream route"', { timeout: 20_000 }, async () => {
    const fake = await fakeServer({ plainUpgrades: true });
    const sub = await subscribeOrPoll(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), {}, () => undefined, undefined);
    assert.ok('poll' in sub);
    assert.doesNotMatch(sub.poll, /no stream route/);
    assert.match(sub.poll, /upgrade reached the server as a plain GET .*a proxy in front of it does not pass WebSocket upgrades on/);
    const watch = spawnAts(fake.url, ['watch'], {}, 15_000);
    try {
      await until(() => fake.lists.length >= 1, 'the watch to poll', 10_000);
      watch.kill('SIGINT');
      const r = await watch.exited;
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /no stream route/);
      assert.match(r.stderr, /^ats: http:\/\/127\.0\.0\.1:\d+: its stream is unavailable: the stream's upgrade reached the server as a plain GET .*; polling the 100 newest jobs every second$/m);
    } finally {
      watch.kill('SIGKILL');
    }
  });
});

describe('following a job', () => {
  test('SeqGate emits each seq once, in order, whatever the arrival order', () => {
    const seen: number[] = [];
    const gate = new SeqGate((e) => seen.push(e.seq));
    const ev = (seq: number) => event(ID, seq, 'a', 'b', 'X');
    gate.push([ev(3)]);
    assert.deepEqual(seen, []);
    gate.push([ev(1), ev(2), ev(3)]);
    gate.push([ev(2), ev(4)]);
    assert.deepEqual(seen, [1, 2, 3, 4]);
  });

  test('with a stream: the history from GET and the live events merge without duplicates', async () => {
    const fake = await fakeServer();
    const history = [event(ID, 1, null, 'pending', 'SUBMITTED'), event(ID, 2, 'pending', 'published', 'PUBLISHED', { attempt: 1 })];
    fake.jobs.set(ID, jobDetail(ID, history));
    const seen: string[] = [];
    const modes: string[] = [];
    const state = followJob(new AtsClient(fake.url), ID, (e) => {
      seen.push(`${e.seq}:${e.to}`);
      if (e.seq === 2) {
        // Live events, one of them already in the history.
        for (const [seq, from, to, type] of [[2, 'pending', 'published', 'PUBLISHED'], [3, 'published', 'running', 'STARTED'], [4, 'running', 'done', 'SUCCEEDED']] as const) {
          fake.emit({ ...event(ID, seq, from, to, type, { attempt: 1 }), jobType: 'demo.echo', queue: 'default' });
        }
      }
    }, { onMode: (m) => modes.push(m), recheckMs: 60_000 });
    assert.equal(await state, 'done');
    assert.deepEqual(seen, ['1:pending', '2:published', '3:running', '4:done']);
    assert.deepEqual(modes, ['stream']);
    assert.deepEqual(fake.subscribes[0]!.filter, { jobId: ID });
  });

  test('through a proxy that does not pass WebSocket upgrades on (the server answers the plain GET 400): polls the job until it is terminal', async () => {
    const fake = await fakeServer({ plainUpgrades: true });
    const events = [event(ID, 1, null, 'pending', 'SUBMITTED')];
    fake.jobs.set(ID, jobDetail(ID, events));
    const seen: string[] = [];
    const modes: string[] = [];
    const state = followJob(new AtsClient({ url: fake.url, WebSocket: NodeWebSocket }), ID, (e) => seen.push(e.to), { pollMs: 10, onMode: (m) => modes.push(m) });
    let failure: unknown = null;
    state.catch((e: unknown) => (failure = e));
    await until(() => fake.gets >= 2 || failure !== null, 'a second poll');
    assert.equal(failure, null, `the follow of a submitted job ended: ${String(failure)}`);
    fake.jobs.set(ID, jobDetail(ID, [...events, event(ID, 2, 'pending', 'cancelled', 'CANCEL')]));
    assert.equal(await state, 'cancelled');
    assert.deepEqual(seen, ['pending', 'cancelled']);
    assert.deepEqual(modes, ['poll']);
  });

  test('without a stream: polls the job until it is terminal', async () => {
    const fake = await fakeServer({ stream: false });
    const events = [event(ID, 1, null, 'pending', 'SUBMITTED')];
    fake.jobs.set(ID, jobDetail(ID, events));
    const seen: string[] = [];
    const modes: string[] = [];
    const state = followJob(new AtsClient(fake.url), ID, (e) => seen.push(e.to), { pollMs: 10, onMode: (m) => modes.push(m) });
    await until(() => fake.gets >= 2, 'a second poll');
    fake.jobs.set(ID, jobDetail(ID, [...events, event(ID, 2, 'pending', 'cancelled', 'CANCEL')]));
    assert.equal(await state, 'cancelled');
    assert.deepEqual(seen, ['pending', 'cancelled']);
    assert.deepEqual(modes, ['poll']);
  });
});

describe('waiting out an unavailable or busy server', () => {
  test('a 429 is waited out for its Retry-After (at least a second, at most a minute), else a pause doubling from a second', () => {
    const limited = (retryAfterMs?: number) => new ApiError(429, 'ATS_ERR_RATE_LIMITED', 'Too many requests', retryAfterMs === undefined ? undefined : { retryAfterMs });
    assert.equal(waitOut(limited(7000), 1000, 0)?.ms, 7000);
    assert.equal(waitOut(limited(7000), 1000, 5)?.ms, 7000, 'the server\'s word, however many 429s came in a row');
    assert.equal(waitOut(limited(0), 1000, 0)?.ms, 1000);
    assert.equal(waitOut(limited(3_600_000), 1000, 0)?.ms, 60_000);
    assert.deepEqual([0, 1, 2, 7].map((n) => waitOut(limited(), 1000, n)?.ms), [1000, 2000, 4000, 60_000]);
    assert.equal(waitOut(new ApiError(404, 'ATS_ERR_JOB_NOT_FOUND', 'no such job'), 1000, 0), null);
  });

  test('repeat keeps going through 503s and 429s, with a notice each, and rejects on any other error', async () => {
    const failures = [
      new ApiError(503, 'ATS_ERR_STORE_UNAVAILABLE', 'The database is unavailable'),
      new ApiError(429, 'ATS_ERR_RATE_LIMITED', 'Too many requests'),
      new ApiError(503, 'ATS_ERR_STORE_UNAVAILABLE', 'The database is unavailable'),
    ];
    let calls = 0;
    let finish!: () => void;
    const over = new Promise<void>((r) => (finish = r));
    const notices: string[] = [];
    const started = Date.now();
    const run = repeat(async () => {
      calls++;
      const failure = failures.shift();
      if (failure) throw failure;
      finish();
    }, 10, over, (m) => notices.push(m));
    await Promise.race([over, run]);
    assert.equal(calls, 4);
    assert.equal(notices.length, 3);
    assert.match(notices[0]!, /^ATS_ERR_STORE_UNAVAILABLE: The database is unavailable; still trying/);
    assert.match(notices[1]!, /^ATS_ERR_RATE_LIMITED: Too many requests; waiting 1 s/);
    assert.ok(Date.now() - started >= 1000, 'a 429 is waited out for a while, not tried again at once');
    await assert.rejects(
      repeat(async () => { throw new ApiError(404, 'ATS_ERR_JOB_NOT_FOUND', 'gone'); }, 10, new Promise(() => undefined)),
      (e: unknown) => e instanceof ApiError && e.status === 404,
    );
  });

  test('submit --wait keeps following through a database outage (503s) and ends with the job', async () => {
    const fake = await fakeServer({ stream: false });
    const events = [event(ID, 1, null, 'pending', 'SUBMITTED')];
    fake.jobs.set(ID, jobDetail(ID, events));
    const notices: string[] = [];
    const seen: string[] = [];
    const client = new AtsClient({ url: fake.url, retries: 0 });
    const state = followJob(client, ID, (e) => seen.push(e.to), { pollMs: 10, onNotice: (m) => notices.push(m) });
    await until(() => seen.length === 1, 'the history');
    fake.failGets.count = 5;
    await until(() => fake.failGets.count === 0, 'the outage');
    fake.jobs.set(ID, jobDetail(ID, [...events, event(ID, 2, 'pending', 'cancelled', 'CANCEL')]));
    assert.equal(await state, 'cancelled');
    assert.deepEqual(seen, ['pending', 'cancelled']);
    assert.ok(notices.length >= 5 && notices.every((m) => /^ATS_ERR_STORE_UNAVAILABLE: .*; still trying/.test(m)), notices.join('\n'));
  });

  test('a subscribe answered 503 (the store unavailable) is tried again with untilAvailable, else it is the error', async () => {
    const fake = await fakeServer();
    fake.refuseNext = true;
    fake.refuseCode = 'ATS_ERR_STORE_UNAVAILABLE';
    await assert.rejects(trySubscribe(new AtsClient(fake.url), {}, () => undefined), (e: unknown) => e instanceof ApiError && e.status === 503);
    fake.refuseNext = true;
    const notices: string[] = [];
    const sub = await trySubscribe(new AtsClient(fake.url), { jobId: ID }, () => undefined, { untilAvailable: true, onNotice: (m) => notices.push(m) });
    assert.ok(sub);
    sub.close();
    assert.equal(fake.subscribes.length, 3);
    assert.match(notices.join('\n'), /^stream: ATS_ERR_STORE_UNAVAILABLE: .*; trying again in 250 ms$/m);
  });

  test('a subscribe refused 429 (rate limited) is waited out for its Retry-After with untilAvailable, as README promises of --wait and --count; else it is the error', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.limitUpgrades = 1;
    await assert.rejects(trySubscribe(new AtsClient(fake.url), {}, () => undefined), (e: unknown) => e instanceof ApiError && e.status === 429);
    fake.limitUpgrades = 1;
    const notices: string[] = [];
    const started = Date.now();
    const sub = await trySubscribe(new AtsClient(fake.url), { jobId: ID }, () => undefined, { untilAvailable: true, onNotice: (m) => notices.push(m) });
    assert.ok(sub);
    sub.close();
    assert.ok(Date.now() - started >= 1000, 'waited for the Retry-After');
    assert.match(notices.join('\n'), /^stream: ATS_ERR_RATE_LIMITED: .*; waiting 1 s$/m);
  });

  test('a subscribe refused 429 without a Retry-After (too many streams open for the key) is the error, even with untilAvailable', { timeout: 20_000 }, async () => {
    // It passes only once another stream of the key closes, maybe never; waiting for it, --wait read
    // nothing of its job (it hung on past its end) and --count submitted nothing.
    const fake = await fakeServer();
    fake.crowdUpgrades = 1;
    const notices: string[] = [];
    await assert.rejects(
      trySubscribe(new AtsClient(fake.url), { jobId: ID }, () => undefined, { untilAvailable: true, onNotice: (m) => notices.push(m) }),
      (e: unknown) => e instanceof ApiError && e.status === 429,
    );
    assert.deepEqual(notices, []);
    fake.crowdUpgrades = 1;
    const quiet = { write: () => true, isTTY: false };
    await assert.rejects(
      submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 5, { progress: new Progress(5, quiet), pollMs: 60_000 }),
      (e: unknown) => e instanceof ApiError && e.status === 429,
    );
    assert.deepEqual(fake.batches, [], 'nothing submitted');
  });

  test('the first read of the job waits out a 503 too', async () => {
    const fake = await fakeServer({ stream: false });
    fake.jobs.set(ID, jobDetail(ID, [event(ID, 1, null, 'done', 'SUBMITTED')]));
    fake.failGets.count = 2;
    const notices: string[] = [];
    assert.equal(await followJob(new AtsClient({ url: fake.url, retries: 0 }), ID, () => undefined, { pollMs: 10, onNotice: (m) => notices.push(m) }), 'done');
    assert.equal(notices.length, 2);
  });

  test('ats watch --job over the stream reads the job: one that does not exist is the error, after an outage waited out; one that exists ends nothing, and is read again until it is gone', async () => {
    const fake = await fakeServer();
    const client = new AtsClient({ url: fake.url, retries: 0 });
    const never = new Promise<void>(() => undefined);
    fake.failGets.count = 2;
    const notices: string[] = [];
    const missing = await missingJob(client, ID, never, { periodMs: 10, onNotice: (m) => notices.push(m) });
    assert.ok(missing instanceof ApiError && missing.status === 404 && missing.code === 'ATS_ERR_JOB_NOT_FOUND', String(missing));
    assert.equal(notices.filter((m) => /^ATS_ERR_STORE_UNAVAILABLE: .*; still trying$/.test(m)).length, 2, notices.join('\n'));
    fake.jobs.set(ID, jobDetail(ID, [event(ID, 1, null, 'pending', 'SUBMITTED')]));
    const gets = fake.gets;
    const watching = missingJob(client, ID, never, { periodMs: 10 });
    const found = await Promise.race([watching, new Promise((r) => setTimeout(() => r('still watching'), 300))]);
    assert.equal(found, 'still watching');
    assert.ok(fake.gets > gets + 1, 'read again');
    fake.jobs.delete(ID); // deleted while watched (retention, a DELETE)
    const gone = await Promise.race([watching, new Promise((r) => setTimeout(() => r('still watching'), 2000))]);
    assert.ok(gone instanceof ApiError && gone.status === 404 && gone.code === 'ATS_ERR_JOB_NOT_FOUND', String(gone));
  });

  test('submit --wait: a server that stops answering once the job is submitted, before the stream holds, is waited for and the job followed to its end', async () => {
    const fake = await fakeServer();
    const events = [event(ID, 1, null, 'pending', 'SUBMITTED')];
    fake.jobs.set(ID, jobDetail(ID, events));
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(fake.url).port) });
    try {
      await proxy.cut(); // a restart, right after the submit was answered
      const notices: string[] = [];
      const seen: string[] = [];
      const modes: string[] = [];
      const client = new AtsClient({ url: `http://127.0.0.1:${proxy.port}`, retries: 0 });
      const state = followJob(client, ID, (e) => seen.push(e.to), { pollMs: 10, onNotice: (m) => notices.push(m), onMode: (m) => modes.push(m) });
      let failure: unknown = null;
      state.catch((e: unknown) => (failure = e));
      await until(() => notices.filter((m) => /ECONNREFUSED/.test(m)).length >= 3 || failure !== null, 'notices of the outage');
      assert.equal(failure, null, `the follow gave up on a server that went away: ${String(failure)}`);
      fake.jobs.set(ID, jobDetail(ID, [...events, event(ID, 2, 'pending', 'cancelled', 'CANCEL')]));
      await proxy.restore();
      assert.equal(await state, 'cancelled');
      assert.deepEqual(seen, ['pending', 'cancelled']);
      assert.deepEqual(modes, ['poll']);
      assert.match(notices[0]!, /^stream: cannot reach the ats server at .*ECONNREFUSED.*following the job by polling/);
      assert.ok(notices.slice(1).every((m) => /^cannot reach the ats server at .*ECONNREFUSED.*; still trying$/.test(m)), notices.join('\n'));
    } finally {
      await proxy.close();
    }
  });
});

describe('following a job\'s progress', () => {
  const at = (ms: number) => new Date(1_700_000_000_000 + ms).toISOString();
  const started = [event(ID, 1, null, 'pending', 'SUBMITTED'), event(ID, 2, 'pending', 'running', 'STARTED', { attempt: 1 })];
  const shown = (p: JobProgress) => `${JSON.stringify(p.value)}@${p.attempt}`;

  test('with a stream: live progress in order, each once, none before its attempt\'s start is shown, the last before the end', async () => {
    const fake = await fakeServer();
    fake.jobs.set(ID, jobDetail(ID, [started[0]!]));
    const seen: string[] = [];
    const live = (ms: number, progress: unknown, attempt = 1) =>
      fake.emitProgress({ jobId: ID, jobType: 'demo.echo', queue: 'default', attempt, progress, at: at(ms) });
    const state = followJob(new AtsClient(fake.url), ID, (e) => {
      seen.push(`${e.seq}:${e.to}`);
      if (e.seq !== 1) return;
      // The stream's progress tail runs apart from its transitions: a value may come before the STARTED it belongs to.
      live(10, 10);
      setTimeout(() => {
        fake.emit({ ...started[1]!, jobType: 'demo.echo', queue: 'default' });
        setTimeout(() => {
          live(20, { step: 'b' });
          live(20, { step: 'b' }); // the same value again: shown once
          live(15, 12); // older than what was shown: not shown
          setTimeout(() => {
            // The last progress, stored before the outcome but not sent yet when the end is: read with the job.
            const end = event(ID, 3, 'running', 'done', 'SUCCEEDED', { attempt: 1 });
            fake.jobs.set(ID, { ...jobDetail(ID, [...started, end]), progress: { value: 99, attempt: 1, at: at(25) } });
            fake.emit({ ...end, jobType: 'demo.echo', queue: 'default' });
            live(25, 99); // sent after the end: shown once, before it
          }, 50);
        }, 50);
      }, 50);
    }, { recheckMs: 60_000, onProgress: (p) => seen.push(shown(p)) });
    assert.equal(await state, 'done');
    assert.deepEqual(seen, ['1:pending', '2:running', '10@1', '{"step":"b"}@1', '99@1', '3:done']);
  });

  test('without a stream: the progress of each poll when it changed, after its attempt\'s start and before the end', async () => {
    const fake = await fakeServer({ stream: false });
    fake.jobs.set(ID, { ...jobDetail(ID, started), progress: { value: 40, attempt: 1, at: at(10) } });
    const seen: string[] = [];
    const state = followJob(new AtsClient(fake.url), ID, (e) => seen.push(`${e.seq}:${e.to}`), {
      pollMs: 10, onProgress: (p) => seen.push(shown(p)),
    });
    await until(() => fake.gets >= 3, 'a few polls');
    fake.jobs.set(ID, { ...jobDetail(ID, started), progress: { value: { step: 'c' }, attempt: 1, at: at(20) } });
    await until(() => seen.length >= 4, 'the changed progress');
    const end = event(ID, 3, 'running', 'done', 'SUCCEEDED', { attempt: 1 });
    fake.jobs.set(ID, { ...jobDetail(ID, [...started, end]), progress: { value: 100, attempt: 1, at: at(30) } });
    assert.equal(await state, 'done');
    assert.deepEqual(seen, ['1:pending', '2:running', '40@1', '{"step":"c"}@1', '100@1', '3:done']);
  });

  test('a job read already done shows its history with its last progress in place, before its end', async () => {
    const fake = await fakeServer({ stream: false });
    const end = event(ID, 3, 'running', 'done', 'SUCCEEDED', { attempt: 1 });
    fake.jobs.set(ID, { ...jobDetail(ID, [...started, end]), progress: { value: 100, attempt: 1, at: at(30) } });
    const seen: string[] = [];
    assert.equal(await followJob(new AtsClient(fake.url), ID, (e) => seen.push(`${e.seq}:${e.to}`), { onProgress: (p) => seen.push(shown(p)) }), 'done');
    assert.deepEqual(seen, ['1:pending', '2:running', '100@1', '3:done']);
  });
});

describe('submit --count', () => {
  const quiet = { write: () => true, isTTY: false };

  test('jobs that end before their submit is answered are counted from the stream, with no REST reads', async () => {
    const fake = await fakeServer();
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 20, { progress: new Progress(20, quiet), pollMs: 60_000 });
    assert.equal(summary.done, 20);
    assert.equal(summary.total, 20);
    assert.equal(fake.gets, 0, 'every outcome came from the stream');
    assert.deepEqual(fake.subscribes[0]!.filter, { type: 'demo.echo', states: ['done', 'dead', 'cancelled'] });
  });

  test('jobs go in batches of up to batchSize, one request per batch', async () => {
    const fake = await fakeServer();
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 20, { progress: new Progress(20, quiet), batchSize: 7, pollMs: 60_000 });
    assert.equal(summary.done, 20);
    assert.deepEqual([...fake.batches].sort(), [6, 7, 7]);
  });

  test('an item the server refuses stops the run with its error', async () => {
    const fake = await fakeServer();
    await assert.rejects(
      submitMany(new AtsClient(fake.url), { type: 'nope', payload: null }, 3, { progress: new Progress(3, quiet), pollMs: 60_000 }),
      (e: unknown) => e instanceof ApiError && e.status === 422 && e.code === 'ATS_ERR_UNKNOWN_JOB_TYPE',
    );
    assert.deepEqual(fake.batches, [3]);
  });

  test('a stream refused with 503 at the start (the server\'s database down) is waited out, saying so', async () => {
    const fake = await fakeServer();
    fake.failUpgrades = 2;
    const notices: string[] = [];
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 5, {
      progress: new Progress(5, quiet), pollMs: 60_000, onNotice: (m) => notices.push(m),
    });
    assert.equal(summary.done, 5);
    assert.equal(fake.failUpgrades, 0);
    assert.equal(notices.filter((m) => /^stream: HTTP_503: .*trying again in \d+ ms$/.test(m)).length, 2, notices.join('\n'));
  });

  test('submit --count whose stream is refused 429 at the start waits it out and ends with its summary', { timeout: 20_000 }, async () => {
    const fake = await fakeServer();
    fake.limitUpgrades = 2;
    const notices: string[] = [];
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 5, {
      progress: new Progress(5, quiet), pollMs: 60_000, onNotice: (m) => notices.push(m),
    });
    assert.equal(summary.done, 5);
    assert.equal(fake.limitUpgrades, 0);
    assert.equal(notices.filter((m) => /^stream: ATS_ERR_RATE_LIMITED: .*; waiting \d+ s$/.test(m)).length, 2, notices.join('\n'));
  });

  test('without a stream, the open jobs are read over REST', async () => {
    const fake = await fakeServer({ stream: false });
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 5, { progress: new Progress(5, quiet), pollMs: 10 });
    assert.equal(summary.done, 5);
    assert.ok(fake.lists.length >= 1);
  });

  test('the open jobs are read a page of the type\'s list at a time, not one GET each, down to the oldest open one', async () => {
    const fake = await fakeServer({ stream: false, endAtOnce: false });
    const other = '01H00000000000000000000001'; // older than every job submitted: below the pages read
    fake.jobs.set(other, jobDetail(other, [event(other, 1, null, 'pending', 'SUBMITTED')]));
    const count = 1200;
    const run = submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, count, { progress: new Progress(count, quiet), pollMs: 20 });
    await until(() => fake.jobs.size === count + 1 && fake.lists.length >= 2, 'the submits and a look at the list');
    for (const [id, job] of fake.jobs) {
      if (id !== other) fake.jobs.set(id, jobDetail(id, [...job.events, event(id, 2, 'pending', 'done', 'SUCCEEDED')]));
    }
    const summary = await run;
    assert.equal(summary.done, count);
    assert.equal(fake.gets, 0, 'no GET of a single job');
    for (const q of fake.lists) {
      assert.equal(q.get('type'), 'demo.echo');
      assert.equal(q.get('limit'), '500');
    }
    // Each look reads 3 pages (1,200 jobs); it stops before the page that would hold only older jobs.
    assert.ok(fake.lists.every((q) => !q.get('cursor') || q.get('cursor')! > other));
  });

  test('a 429 while reading the open jobs is waited out, and the run ends with its summary', async () => {
    const fake = await fakeServer({ stream: false, endAtOnce: false });
    const notices: string[] = [];
    const run = submitMany(new AtsClient({ url: fake.url, retries: 0 }), { type: 'demo.echo', payload: null }, 3, {
      progress: new Progress(3, quiet), pollMs: 10, onNotice: (m) => notices.push(m),
    });
    await until(() => fake.jobs.size === 3, 'the submits');
    fake.failLists = 1;
    for (const [id, job] of fake.jobs) fake.jobs.set(id, jobDetail(id, [...job.events, event(id, 2, 'pending', 'done', 'SUCCEEDED')]));
    const summary = await run;
    assert.equal(summary.done, 3);
    assert.match(notices.join('\n'), /^ATS_ERR_RATE_LIMITED: Too many requests; waiting 1 s/m);
  });
});
