/**
 * The CLI's stream client and its REST fallback against a fake server that
 * speaks the stream protocol (docs/stream.md): resume from the last cursor
 * after a drop, 404 → polling, refused → unreachable, and the count mode's
 * race (a job ending before its submit is answered).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import type { StreamProgressMessage } from '../client/index.js';
import { ApiError, AtsClient, UnreachableError, type JobDetail, type JobEvent, type JobProgress } from './client.js';
import { followJob, SeqGate, trySubscribe } from './commands/follow.js';
import { StreamUnavailable, subscribe, type StreamEvent } from './commands/stream.js';
import { submitMany } from './commands/submit-many.js';
import { Progress } from './commands/progress.js';

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
  /** Never answers a subscribe. */
  silent: boolean;
  close(): Promise<void>;
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
    lastError: null, runAt: last.at, createdAt: last.at, updatedAt: last.at, version: last.seq, events,
  };
}

/** A fake API: GET /v1/jobs/:id, POST /v1/jobs (emits `done` on the stream BEFORE answering), and the stream. */
async function fakeServer({ stream = true } = {}): Promise<Fake> {
  let n = 0;
  let created = 0;
  const fake = { subscribes: [], sockets: [], jobs: new Map(), gets: 0, batches: [], refuseNext: false, silent: false } as unknown as Fake;
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
        return ws.send(JSON.stringify({ kind: 'error', code: 'ATS_ERR_VALIDATION', message: 'bad filter' }));
      }
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: msg.cursor ?? `c${n}` }));
    });
  });
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server: Server = createServer((req: IncomingMessage, res) => {
    const m = /^\/v1\/jobs\/([^/]+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && m) {
      fake.gets++;
      const job = fake.jobs.get(m[1]!);
      return job ? json(res, 200, job) : json(res, 404, { code: 'ATS_ERR_JOB_NOT_FOUND', message: `No job has id ${m[1]}` });
    }
    const createOne = () => {
      const id = `01J${String(++created).padStart(23, '0')}`;
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
    if (!stream || req.url !== '/v1/stream') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = async () => {
    for (const ws of fake.sockets) ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
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
      baseUrl: fake.url, filter: { type: 'demo.echo' }, onEvent: (e) => got.push(`${e.seq}@${e.cursor}`),
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

  test('a server without the stream route: StreamUnavailable, and trySubscribe says poll', async () => {
    const fake = await fakeServer({ stream: false });
    const sub = subscribe({ baseUrl: fake.url, filter: {}, onEvent: () => undefined });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof StreamUnavailable && e.status === 404);
    assert.equal(await trySubscribe(new AtsClient(fake.url), {}, () => undefined), null);
  });

  test('no server at all: UnreachableError naming the URL', async () => {
    const fake = await fakeServer();
    await fake.close();
    const sub = subscribe({ baseUrl: fake.url, filter: {}, onEvent: () => undefined });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof UnreachableError && e.message.includes(fake.url) && /ECONNREFUSED/.test(e.reason));
  });

  test('a refused subscribe rejects with the server\'s code and is not retried', async () => {
    const fake = await fakeServer();
    fake.refuseNext = true;
    const sub = subscribe({ baseUrl: fake.url, filter: { states: ['nope'] }, onEvent: () => undefined, retry: { minMs: 5, maxMs: 5 } });
    await assert.rejects(sub.ready, (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_VALIDATION');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.subscribes.length, 1);
    sub.close();
  });
});

test('a stream that never confirms the subscribe counts as no stream', async () => {
  const fake = await fakeServer();
  fake.silent = true;
  const sub = subscribe({ baseUrl: fake.url, filter: {}, onEvent: () => undefined, connectTimeoutMs: 100 });
  await assert.rejects(sub.ready, (e: unknown) => e instanceof StreamUnavailable && e.status === null);
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

  test('without a stream, the open jobs are read over REST', async () => {
    const fake = await fakeServer({ stream: false });
    const summary = await submitMany(new AtsClient(fake.url), { type: 'demo.echo', payload: null }, 5, { progress: new Progress(5, quiet), pollMs: 10 });
    assert.equal(summary.done, 5);
    assert.ok(fake.gets >= 5);
  });
});
