/**
 * The client against a real scheduler in this process (compose: the API with
 * the stream, relay, worker and timers on a fresh SQLite file and the
 * in-process log): every call, `list` over pages, `submitMany` over
 * MAX_BATCH, a `watch` that resumes across dropped connections, and retries
 * that never make a second job (a proxy in front of the server answers 503,
 * stalls, or loses the answer of a request the server committed).
 */
import assert from 'node:assert/strict';
import { getEventListeners, once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { WebSocket, WebSocketServer } from 'ws';
import { assign, setup } from 'xstate';
import { job as jobActor } from '../machines/workflow.js';
import { compose, type System } from '../cli/compose.js';
import { configFrom } from '../cli/start.js';
import { setTimeout as delay } from 'node:timers/promises';
import { defineHandler, HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { freePort } from '../tests/helpers/ports.js';
import { startTcpProxy, type TcpProxy } from '../tests/helpers/tcp-proxy.js';
import {
  ApiError, compareProgress, createClient, KEY_REFUSED_CLOSE, MAX_BATCH, UnreachableError, type AtsClient, type JobProgress, type JobState, type StreamEventMessage,
  type StreamProgressMessage, type WebSocketConstructor,
} from './index.js';
import { toApiError } from './errors.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

const TERMINAL: JobState[] = ['done', 'dead', 'cancelled'];
/** The last progress `test.progress` reports. */
const UPLOAD_PROGRESS = { step: 'upload', done: 1, of: 2 };
const queue = () => `q-${Math.random().toString(36).slice(2, 10)}`;
const later = () => new Date(Date.now() + 3_600_000).toISOString();
/** The test server's largest batch body. */
const BATCH_BODY_LIMIT = 1024 * 1024;

const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

let system: System;
let url = '';
let ats: AtsClient;
const dataDir = mkdtempSync(join(tmpdir(), 'ats-client-test-'));
/** The server's end of every stream connection (to drop them from the server side). */
const upgraded = new Set<Socket>();

before(async () => {
  const registry = registerDemoHandlers(new HandlerRegistry()).register(defineHandler('test.double', {
    payload: Type.Object({ n: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
    run: async (payload) => ({ doubled: payload.n * 2 }),
  })).register('test.progress', async (_payload, ctx) => {
    // Farther apart than the worker's writes (500 ms) and the stream's progress reads (200 ms): each is sent.
    await ctx.progress(10);
    await delay(700, undefined, { signal: ctx.signal });
    await ctx.progress(UPLOAD_PROGRESS);
    await delay(700, undefined, { signal: ctx.signal });
    return 'uploaded';
  });
  // Echoes its input as a job, then waits for APPROVE (in a state tagged approval).
  registry.workflow('client.approval', setup({ actors: { echo: jobActor('demo.echo') } }).createMachine({
    id: 'client-approval', initial: 'echoing',
    states: {
      echoing: { invoke: { id: 'echo', src: 'echo', input: { n: 1 }, onDone: 'waiting' } },
      waiting: { tags: ['approval'], on: { APPROVE: 'approved' } },
      approved: { type: 'final' },
    },
  }));
  // Counts each ADD it takes, for ever: a signal taken twice shows.
  registry.workflow('client.counter', setup({ types: { context: {} as { count: number } } }).createMachine({
    id: 'client-counter', context: { count: 0 }, initial: 'counting',
    states: { counting: { on: { ADD: { actions: assign({ count: ({ context }) => context.count + 1 }) } } } },
  }));
  // A batch body limit of 1 MiB (the default is 16): a test sends a batch over it.
  const config = configFrom({
    ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_RELAY_POLL_MS: '20', ATS_TIMERS_POLL_MS: '100', ATS_BATCH_BODY_LIMIT_BYTES: String(BATCH_BODY_LIMIT),
  }, []);
  system = await compose(config, { registry, logger: silentLogger });
  url = (await system.start()).url!.replace('localhost', '127.0.0.1');
  system.app!.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  ats = createClient({ url, retryDelayMs: { min: 10, max: 100 } });
});

after(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** `p`, or a failure naming `what` when it has not settled after `ms`. */
async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Counts the timers client/stream.ts sets that are still pending (neither
 * cleared nor, for a timeout, run): the global timer functions are wrapped
 * until `restore()`, and a timer is the watch's when its stack passes through
 * client/stream.ts.
 */
function trackStreamTimers(): { pending(): number; restore(): void } {
  type Fn = (...a: unknown[]) => void;
  const g = globalThis as unknown as Record<'setTimeout' | 'setInterval' | 'clearTimeout' | 'clearInterval', (...a: unknown[]) => unknown>;
  const orig = { setTimeout: g.setTimeout, setInterval: g.setInterval, clearTimeout: g.clearTimeout, clearInterval: g.clearInterval };
  const live = new Set<unknown>();
  const fromStream = () => /client[\\/]stream\.ts/.test(new Error().stack ?? '');
  g.setTimeout = (fn: unknown, ms: unknown, ...a: unknown[]) => {
    if (!fromStream()) return orig.setTimeout(fn, ms, ...a);
    const t = orig.setTimeout((...b: unknown[]) => {
      live.delete(t);
      (fn as Fn)(...b);
    }, ms, ...a);
    live.add(t);
    return t;
  };
  g.setInterval = (fn: unknown, ms: unknown, ...a: unknown[]) => {
    const t = orig.setInterval(fn, ms, ...a);
    if (fromStream()) live.add(t);
    return t;
  };
  g.clearTimeout = (t: unknown) => {
    live.delete(t);
    return orig.clearTimeout(t);
  };
  g.clearInterval = (t: unknown) => {
    live.delete(t);
    return orig.clearInterval(t);
  };
  return { pending: () => live.size, restore: () => void Object.assign(g, orig) };
}

/**
 * A WebSocket proxy in front of the server's stream: `dropAll()` closes every
 * client connection (1001, as a restart would, or the code given), a code
 * pushed on `refuse` answers the next subscribe with that error and close
 * 1011, as the server does when the check of a resume cursor cannot reach the
 * database, a close pushed on `closeOnSubscribe` closes the next subscribe's
 * connection with it, unanswered, and `upgrades.refuseWith` answers every
 * upgrade with that HTTP status.
 */
async function streamProxy(target: string): Promise<{
  url: string; refuse: string[]; closeOnSubscribe: Array<{ code: number; reason: string }>; upgrades: { refuseWith: number | null };
  connections(): number; dropAll(code?: number, reason?: string): void; close(): Promise<void>;
}> {
  const upgrades = { refuseWith: null as number | null };
  let connections = 0;
  const wss = new WebSocketServer({
    host: '127.0.0.1', port: 0,
    verifyClient: (_info: unknown, done: (ok: boolean, status?: number) => void) => {
      connections++;
      if (upgrades.refuseWith === null) done(true);
      else done(false, upgrades.refuseWith);
    },
  });
  await once(wss, 'listening');
  const refuse: string[] = [];
  const closeOnSubscribe: Array<{ code: number; reason: string }> = [];
  const open = new Set<WebSocket>();
  wss.on('connection', (client) => {
    open.add(client);
    const upstream = new WebSocket(target.replace(/^http/, 'ws') + '/v1/stream');
    const pending: string[] = [];
    upstream.on('error', () => undefined);
    client.on('error', () => undefined);
    upstream.on('open', () => {
      for (const m of pending.splice(0)) upstream.send(m);
    });
    upstream.on('message', (data) => {
      if (client.readyState === WebSocket.OPEN) client.send(String(data));
    });
    upstream.on('close', () => client.close(1001));
    client.on('close', () => {
      open.delete(client);
      upstream.terminate();
    });
    client.on('message', (data) => {
      const text = String(data);
      if ((JSON.parse(text) as { op?: string }).op === 'subscribe' && refuse.length) {
        const code = refuse.shift()!;
        client.send(JSON.stringify({ kind: 'error', code, message: 'The database is not reachable' }));
        client.close(1011, 'resume with your last cursor');
        upstream.terminate();
        return;
      }
      if ((JSON.parse(text) as { op?: string }).op === 'subscribe' && closeOnSubscribe.length) {
        const { code, reason } = closeOnSubscribe.shift()!;
        client.close(code, reason);
        upstream.terminate();
        return;
      }
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else pending.push(text);
    });
  });
  return {
    url: `http://127.0.0.1:${(wss.address() as { port: number }).port}`,
    refuse,
    closeOnSubscribe,
    upgrades,
    connections: () => connections,
    dropAll: (code = 1001, reason = 'going away') => {
      for (const c of open) c.close(code, reason);
    },
    close: async () => {
      for (const c of open) c.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

/** Every job of a queue, through `list`. */
async function jobsOf(q: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of ats.list({ queue: q, limit: 500 })) ids.push(...page.jobs.map((j) => j.id));
  return ids;
}

test('an error answer keeps its Retry-After in seconds (or as the time until its HTTP date: retry-after.test.ts), on a 429 or a 503 only', () => {
  const body = JSON.stringify({ code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' });
  assert.equal(toApiError(429, body, null, '7').retryAfterMs, 7000);
  assert.equal(toApiError(503, 'upstream down', null, ' 2 ').retryAfterMs, 2000, 'an answer that is not ours too');
  assert.equal(toApiError(429, body, null, 'Wed, 21 Oct 2099 07:28:00 GMT', Date.UTC(2099, 9, 21, 7, 27, 0)).retryAfterMs, 60_000, 'an HTTP date: the time until it');
  assert.equal(toApiError(429, body, null, '7 s').retryAfterMs, undefined, 'junk is left out');
  assert.equal(toApiError(429, body, null, null).retryAfterMs, undefined);
  assert.equal(toApiError(404, body, null, '7').retryAfterMs, undefined, 'only where the server asks to wait');
});

test('compareProgress: a later attempt first, then a later time; times that do not parse compare equal', () => {
  const p = (attempt: number, at: string) => ({ attempt, at });
  assert.ok(compareProgress(p(2, '2031-01-01T00:00:00.000Z'), p(1, '2031-01-01T00:00:09.000Z')) > 0, 'the next attempt, stamped earlier');
  assert.ok(compareProgress(p(1, '2031-01-01T00:00:01.000Z'), p(1, '2031-01-01T00:00:00.500Z')) > 0);
  assert.ok(compareProgress(p(1, '2031-01-01T00:00:00.500Z'), p(1, '2031-01-01T00:00:01.000Z')) < 0);
  assert.equal(compareProgress(p(1, '2031-01-01T00:00:01.000Z'), p(1, '2031-01-01T00:00:01.000Z')), 0);
  assert.equal(compareProgress(p(1, 'not a time'), p(1, '2031-01-01T00:00:01.000Z')), 0);
});

describe('REST calls', () => {
  test('submit, get, stats: the job runs and its result is read back', async () => {
    const q = queue();
    const job = await ats.submit({ type: 'demo.echo', queue: q, payload: { hello: 'world' } });
    assert.equal(job.type, 'demo.echo');
    assert.equal(job.queue, q);
    assert.match(job.idempotencyKey ?? '', /^[0-9A-Z]{26}$/, 'a submit carries a generated Idempotency-Key');
    await until(async () => (await ats.get(job.id)).state === 'done', 'the job to be done');
    const done = await ats.get(job.id);
    assert.deepEqual(done.result, { hello: 'world' });
    assert.equal(done.events[0]!.type, 'SUBMITTED');
    assert.equal(done.progress, null, 'its handler reported no progress');
    const stats = await ats.stats();
    assert.ok((stats.byQueue[q]?.done ?? 0) === 1, JSON.stringify(stats.byQueue[q]));
    assert.ok(stats.total >= 1);
  });

  test('listWorkers: the system\'s own worker, live, with its handlers\' types; stats: unserved empty while it serves every waiting type', async () => {
    const workers = await ats.listWorkers();
    assert.equal(workers.length, 1, JSON.stringify(workers));
    const [w] = workers;
    assert.equal(w!.pid, process.pid);
    assert.equal(w!.live, true);
    assert.deepEqual(w!.queues, ['*']);
    for (const type of ['demo.echo', 'test.double', 'test.progress']) assert.ok(w!.types.includes(type), `${type} in ${w!.types}`);
    assert.ok(Date.parse(w!.lastSeenAt) >= Date.parse(w!.startedAt));
    const q = queue();
    await ats.submit({ type: 'demo.echo', queue: q, payload: 1, runAt: later() });
    const stats = await ats.stats();
    assert.ok(Array.isArray(stats.unserved), JSON.stringify(stats));
    assert.deepEqual(stats.unserved!.filter((u) => u.queue === q), [], 'the live worker handles demo.echo');
  });

  test('the same Idempotency-Key twice answers the first job; a different body with it is a 409', async () => {
    const q = queue();
    const a = await ats.submit({ type: 'demo.echo', queue: q, payload: 1, runAt: later() }, { idempotencyKey: 'k-1' });
    const b = await ats.submit({ type: 'demo.echo', queue: q, payload: 1, runAt: a.runAt }, { idempotencyKey: 'k-1' });
    assert.equal(b.id, a.id);
    await assert.rejects(ats.submit({ type: 'demo.echo', queue: q, payload: 2 }, { idempotencyKey: 'k-1' }),
      (e: unknown) => e instanceof ApiError && e.status === 409 && e.code === 'ATS_ERR_IDEMPOTENCY_CONFLICT');
    const none = await ats.submit({ type: 'demo.echo', queue: q, payload: 1, runAt: later() }, { idempotencyKey: false });
    assert.equal(none.idempotencyKey, null);
    assert.equal((await jobsOf(q)).length, 2);
  });

  test('list walks every page in order, newest first', async () => {
    const q = queue();
    const results = await ats.submitMany(Array.from({ length: 7 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() })));
    const pages: string[][] = [];
    for await (const page of ats.list({ queue: q, limit: 3 })) pages.push(page.jobs.map((j) => j.id));
    assert.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
    assert.deepEqual(pages.flat(), results.map((r) => r.id!).reverse());
  });

  test('cancel, redrive, cancel again and delete a delayed job', async () => {
    // A long sleep: after the redrive it is due, and stays live (pending, published or running) until cancelled.
    const job = await ats.submit({ type: 'demo.sleep', queue: queue(), payload: { ms: 600_000 }, runAt: later() });
    const cancelled = await ats.cancel(job.id, { reason: 'not now' });
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(cancelled.cancelReason, 'not now');
    assert.deepEqual(await ats.verifyJob(job.id), { ok: true, events: 2, problems: [] });
    assert.equal((await ats.redrive(job.id)).state, 'pending');
    await assert.rejects(ats.delete(job.id), (e: unknown) => e instanceof ApiError && e.status === 409 && e.code === 'ATS_ERR_JOB_LIVE');
    await ats.cancel(job.id);
    await ats.delete(job.id);
    await assert.rejects(ats.get(job.id), (e: unknown) => e instanceof ApiError && e.status === 404 && e.code === 'ATS_ERR_JOB_NOT_FOUND');
    await assert.rejects(ats.redrive('not-an-id'), (e: unknown) => e instanceof ApiError && e.status === 400 && e.code === 'ATS_ERR_VALIDATION');
  });

  test(`submitMany with more than ${MAX_BATCH} jobs: several requests, one result per job in order`, async () => {
    const q = queue();
    const n = MAX_BATCH * 2 + 5;
    const requests: number[] = [];
    const counting = createClient({
      url,
      fetch: async (input, init) => {
        if (String(input).endsWith('/v1/jobs/batch')) requests.push((JSON.parse(String(init?.body)) as { jobs: unknown[] }).jobs.length);
        return fetch(input, init);
      },
    });
    const jobs = Array.from({ length: n }, (_, i) => ({ type: i === 1500 ? 'no.such' : 'demo.echo', queue: q, payload: { i }, runAt: later() }));
    const results = await counting.submitMany(jobs);
    assert.deepEqual(requests, [MAX_BATCH, MAX_BATCH, 5]);
    assert.equal(results.length, n);
    assert.deepEqual(results[1500], {
      status: 422, code: 'ATS_ERR_UNKNOWN_JOB_TYPE', message: 'No handler is registered for job type \'no.such\'',
    });
    const created = results.filter((r) => r.status === 201);
    assert.equal(created.length, n - 1);
    // In order: result i is job i (read back a few).
    for (const i of [0, 999, 1000, 1999, 2004]) assert.deepEqual((await ats.get(results[i]!.id!)).payload, { i });
    assert.equal(new Set(created.map((r) => r.id)).size, n - 1);
    assert.equal((await jobsOf(q)).length, n - 1);
  });

  test('submitMany of jobs within the body limit whose batch is over the batch limit: sent in smaller requests, every job once, in order', async () => {
    const q = queue();
    const sizes: number[] = [];
    const counting = createClient({
      url,
      fetch: async (input, init) => {
        if (String(input).endsWith('/v1/jobs/batch')) sizes.push((JSON.parse(String(init?.body)) as { jobs: unknown[] }).jobs.length);
        return fetch(input, init);
      },
    });
    // 40 jobs of 40 KB: 1.6 MB in one batch, over its limit; each job far under the limit of one.
    const big = 'x'.repeat(40 * 1024);
    const jobs = Array.from({ length: 40 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: { i, big }, runAt: later() }));
    assert.ok(Buffer.byteLength(JSON.stringify({ jobs })) > BATCH_BODY_LIMIT);
    const results = await counting.submitMany(jobs);
    assert.deepEqual(results.map((r) => r.status), Array(40).fill(201));
    assert.equal(sizes[0], 40, 'tried as one batch first');
    assert.equal(sizes.slice(1).reduce((a, n) => a + n, 0), 40, `then in parts, each job once: ${sizes.join(', ')}`);
    for (const i of [0, 19, 20, 39]) assert.equal(((await ats.get(results[i]!.id!)).payload as { i: number }).i, i);
    assert.equal((await jobsOf(q)).length, 40);
  });

  test('submitMany with a job over the batch limit on its own: that job is its 413 result, the others are submitted once each, in order', async () => {
    const q = queue();
    const sent: Array<Array<string | undefined>> = [];
    const counting = createClient({
      url,
      fetch: async (input, init) => {
        if (String(input).endsWith('/v1/jobs/batch')) sent.push((JSON.parse(String(init?.body)) as { jobs: Array<{ idempotencyKey?: string }> }).jobs.map((j) => j.idempotencyKey));
        return fetch(input, init);
      },
    });
    // Job 2 alone is over the batch body limit (and over the limit of one job): no request holding it is taken.
    const huge = 'x'.repeat(BATCH_BODY_LIMIT + 1024);
    const jobs = Array.from({ length: 5 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i === 2 ? { i, huge } : { i }, runAt: later() }));
    const results = await counting.submitMany(jobs);
    assert.deepEqual(results.map((r) => r.status), [201, 201, 413, 201, 201]);
    assert.equal(results[2]!.code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
    assert.equal(results[2]!.id, undefined);
    assert.match(results[2]!.message ?? '', /ATS_BODY_LIMIT_BYTES/, 'over the limit of one job too: sent alone, refused by it');
    for (const i of [0, 1, 3, 4]) assert.equal(((await ats.get(results[i]!.id!)).payload as { i: number }).i, i);
    assert.equal((await jobsOf(q)).length, 4);
    // Every job that went in was sent with one key (the one made for it), in no request answered but the one that took it.
    const keys = sent.flat();
    assert.equal(new Set(keys).size, 5, 'one key per job, kept across the halving');
    assert.ok(keys.every((k) => typeof k === 'string'));
  });

  test('no server: UnreachableError (an ApiError with status 0) after the retries', async () => {
    const gone = createClient({ url: `http://127.0.0.1:${await freePort()}`, retries: 2, retryDelayMs: { min: 5, max: 10 } });
    let retries = 0;
    await assert.rejects(gone.stats({ onRetry: () => retries++ }),
      (e: unknown) => e instanceof UnreachableError && e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_UNREACHABLE' && e.reason === 'ECONNREFUSED');
    assert.equal(retries, 2);
  });

  test('a 200 that is not an ats answer (a URL pointing at another service) is an error, not a job of undefined fields', async () => {
    const other = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"hello":1}'));
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    try {
      const c = createClient({ url: `http://127.0.0.1:${(other.address() as { port: number }).port}`, retries: 0 });
      const notAts = (path: string, field: string) => (e: unknown) =>
        e instanceof ApiError && e.status === 200 && e.code === 'HTTP_200' && e.message.includes(`${path} answered without a string "${field}"`);
      const ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
      await assert.rejects(c.submit({ type: 'demo.echo', payload: null }), notAts('POST /v1/jobs', 'id'));
      await assert.rejects(c.get(ID), notAts(`GET /v1/jobs/${ID}`, 'id'));
      await assert.rejects(c.cancel(ID), notAts(`POST /v1/jobs/${ID}/cancel`, 'id'));
      await assert.rejects(c.redrive(ID), notAts(`POST /v1/jobs/${ID}/redrive`, 'id'));
      await assert.rejects(c.startWorkflow({ name: 'w' }), notAts('POST /v1/workflows', 'id'));
      await assert.rejects(c.createSchedule({ name: 's', cron: '* * * * *', type: 'demo.echo' }), notAts('POST /v1/schedules', 'name'));
      await assert.rejects(c.putLimit('k', { concurrency: 1 }), notAts('PUT /v1/limits/k', 'key'));
      // The reads of one schedule, limit or instance, and a wait for one, as well.
      await assert.rejects(c.getSchedule('s'), notAts('GET /v1/schedules/s', 'name'));
      await assert.rejects(c.getLimit('k'), notAts('GET /v1/limits/k', 'key'));
      await assert.rejects(c.getWorkflow(ID), notAts(`GET /v1/workflows/${ID}`, 'id'));
      await assert.rejects(c.waitWorkflow(ID), notAts(`GET /v1/workflows/${ID}/wait?until=done`, 'id'));
    } finally {
      other.close();
    }
  });

  test('the client\'s onRetry is told of each retry of every call, after the call\'s own', async () => {
    const told: string[] = [];
    const gone = createClient({
      url: `http://127.0.0.1:${await freePort()}`, retries: 2, retryDelayMs: { min: 5, max: 10 },
      onRetry: (e, n) => told.push(`client ${n} ${e.code}`),
    });
    await assert.rejects(gone.stats({ onRetry: (_e, n) => told.push(`call ${n}`) }), UnreachableError);
    await assert.rejects(gone.get('01ARZ3NDEKTSV4RRFFQ69G5FAV'), UnreachableError);
    assert.deepEqual(told, [
      'call 1', 'client 1 ATS_ERR_UNREACHABLE', 'call 2', 'client 2 ATS_ERR_UNREACHABLE', 'client 1 ATS_ERR_UNREACHABLE', 'client 2 ATS_ERR_UNREACHABLE',
    ]);
  });

  test('a server that redirects (http to https, say): a change is refused with the redirect, never sent on as a GET; a read follows it', async () => {
    const requests: string[] = [];
    const redirector = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(301, { location: url + req.url }).end();
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    const moved = createClient({ url: `http://127.0.0.1:${(redirector.address() as { port: number }).port}`, retryDelayMs: { min: 5, max: 10 } });
    const q = queue();
    try {
      await assert.rejects(moved.submit({ type: 'demo.echo', queue: q, payload: null, runAt: later() }),
        (e: unknown) => e instanceof ApiError && e.status === 301 && e.code === 'HTTP_301' && e.message.includes(`${url}/v1/jobs`));
      assert.deepEqual(requests, ['POST /v1/jobs'], 'not retried');
      assert.deepEqual(await jobsOf(q), [], 'no job');
      const page = await moved.listPage({ queue: q });
      assert.deepEqual(page, { jobs: [], nextCursor: null });
    } finally {
      await new Promise((r) => redirector.close(r));
    }
  });
});

describe('schedules', () => {
  const scheduleName = () => `s-${Math.random().toString(36).slice(2, 10)}`;
  const is = (status: number, code: string) => (e: unknown) => e instanceof ApiError && e.status === status && e.code === code;

  test('create, list, get, update, delete: the schedule fires its job each tick and its jobs stay', async () => {
    const name = scheduleName();
    const q = queue();
    const created = await ats.createSchedule({ name, cron: '* * * * * *', type: 'demo.echo', queue: q, payload: { tick: true } });
    assert.equal(created.name, name);
    assert.equal(created.timezone, 'UTC');
    assert.equal(created.overlap, 'skip');
    assert.equal(created.catchUp, 'none');
    assert.equal(created.paused, false);
    assert.deepEqual({ type: created.job.type, queue: created.job.queue, payload: created.job.payload }, { type: 'demo.echo', queue: q, payload: { tick: true } });
    assert.ok(created.nextRunAt && Date.parse(created.nextRunAt) > Date.parse(created.createdAt));
    assert.ok((await ats.listSchedules()).some((s) => s.name === name));

    await until(async () => (await ats.getSchedule(name)).ticks.some((t) => t.outcome === 'submitted'), 'a tick to submit its job');
    const detail = await ats.getSchedule(name);
    assert.equal(detail.nextRuns.length, 5);
    const tick = detail.ticks.find((t) => t.outcome === 'submitted')!;
    const job = await ats.get(tick.jobId!);
    assert.equal(job.queue, q);
    assert.deepEqual(job.payload, { tick: true });
    assert.equal(job.idempotencyKey, `ats:schedule:${name}:${Date.parse(created.createdAt)}:${Date.parse(tick.tickAt)}`);

    const paused = await ats.updateSchedule(name, { paused: true });
    assert.equal(paused.paused, true);
    assert.equal(paused.nextRunAt, null);
    assert.deepEqual((await ats.getSchedule(name)).nextRuns, []);
    const changed = await ats.updateSchedule(name, { paused: false, cron: '0 3 * * *', timezone: 'Europe/Berlin', payload: { nightly: true } });
    assert.deepEqual({ paused: changed.paused, cron: changed.cron, timezone: changed.timezone }, { paused: false, cron: '0 3 * * *', timezone: 'Europe/Berlin' });
    assert.deepEqual(changed.job.payload, { nightly: true });
    assert.equal(changed.job.queue, q, 'job fields not given stay');
    assert.ok(changed.nextRunAt && Date.parse(changed.nextRunAt) > Date.now());

    await ats.deleteSchedule(name);
    await assert.rejects(ats.getSchedule(name), is(404, 'ATS_ERR_SCHEDULE_NOT_FOUND'));
    await assert.rejects(ats.deleteSchedule(name), is(404, 'ATS_ERR_SCHEDULE_NOT_FOUND'));
    await assert.rejects(ats.updateSchedule(name, { paused: true }), is(404, 'ATS_ERR_SCHEDULE_NOT_FOUND'));
    assert.ok((await jobsOf(q)).includes(job.id), 'the jobs it submitted stay');
    assert.ok(!(await ats.listSchedules()).some((s) => s.name === name));
  });

  test('refusals are ApiErrors with the server\'s code: name taken, bad cron, bad time zone, unknown type, bad name', async () => {
    const name = scheduleName();
    await ats.createSchedule({ name, cron: '0 0 1 1 *', type: 'demo.echo', paused: true });
    await assert.rejects(ats.createSchedule({ name, cron: '0 0 1 1 *', type: 'demo.echo' }), is(409, 'ATS_ERR_SCHEDULE_EXISTS'));
    await assert.rejects(ats.createSchedule({ name: scheduleName(), cron: '61 * * * *', type: 'demo.echo' }),
      (e: unknown) => is(400, 'ATS_ERR_INVALID_CRON')(e) && /minute/.test((e as Error).message));
    await assert.rejects(ats.createSchedule({ name: scheduleName(), cron: '* * * * *', timezone: 'Mars/Base', type: 'demo.echo' }),
      is(400, 'ATS_ERR_INVALID_TIMEZONE'));
    await assert.rejects(ats.createSchedule({ name: scheduleName(), cron: '* * * * *', type: 'no.such' }), is(422, 'ATS_ERR_UNKNOWN_JOB_TYPE'));
    await assert.rejects(ats.updateSchedule(name, { cron: 'every day' }), is(400, 'ATS_ERR_INVALID_CRON'));
    // A name is a path segment: one with a space or a slash is sent encoded and refused by the server, not routed elsewhere.
    await assert.rejects(ats.getSchedule('a b/c'), is(400, 'ATS_ERR_VALIDATION'));
    await ats.deleteSchedule(name);
  });
});

describe('limits', () => {
  const limitKey = () => `k-${Math.random().toString(36).slice(2, 10)}`;
  const is = (status: number, code: string) => (e: unknown) => e instanceof ApiError && e.status === status && e.code === code;

  test('put, list, get, delete a limit; a job submitted with concurrencyKey shows it, and runs under its limit', async () => {
    const key = limitKey();
    const set = await ats.putLimit(key, { concurrency: 2 });
    assert.deepEqual({ key: set.key, concurrency: set.concurrency, rate: set.rate, running: set.running }, { key, concurrency: 2, rate: null, running: 0 });
    const replaced = await ats.putLimit(key, { rate: { max: 50, intervalMs: 1000 } });
    assert.equal(replaced.concurrency, null, 'a put replaces the whole limit');
    assert.deepEqual(replaced.rate, { max: 50, intervalMs: 1000 });
    assert.equal(replaced.createdAt, set.createdAt);
    assert.deepEqual((await ats.getLimit(key)).rate, { max: 50, intervalMs: 1000 });
    assert.ok((await ats.listLimits()).some((l) => l.key === key));

    const job = await ats.submit({ type: 'demo.echo', payload: { n: 1 }, queue: queue(), concurrencyKey: key });
    assert.equal(job.concurrencyKey, key);
    await until(async () => (await ats.get(job.id)).state === 'done', 'the keyed job to run under its rate');
    assert.equal((await ats.get(job.id)).concurrencyKey, key);

    await ats.deleteLimit(key);
    await assert.rejects(ats.getLimit(key), is(404, 'ATS_ERR_LIMIT_NOT_FOUND'));
    await assert.rejects(ats.deleteLimit(key), is(404, 'ATS_ERR_LIMIT_NOT_FOUND'));
    assert.ok(!(await ats.listLimits()).some((l) => l.key === key));
  });

  test('refusals are ApiErrors with the server\'s code: no field set, out of bounds, a bad key', async () => {
    const key = limitKey();
    await assert.rejects(ats.putLimit(key, {}), (e: unknown) => is(400, 'ATS_ERR_VALIDATION')(e) && /concurrency or rate/.test((e as Error).message));
    await assert.rejects(ats.putLimit(key, { concurrency: -1 }), is(400, 'ATS_ERR_VALIDATION'));
    await assert.rejects(ats.putLimit(key, { rate: { max: 1, intervalMs: 86_400_001 } }), is(400, 'ATS_ERR_VALIDATION'));
    // A key is a path segment: one with a space or a slash is sent encoded and refused by the server, not routed elsewhere.
    await assert.rejects(ats.putLimit('a b/c', { concurrency: 1 }), is(400, 'ATS_ERR_VALIDATION'));
    await assert.rejects(ats.getLimit('a/b'), is(400, 'ATS_ERR_VALIDATION'));
    assert.ok(!(await ats.listLimits()).some((l) => l.key === key));
  });
});

describe('workflows', () => {
  const is = (status: number, code: string) => (e: unknown) => e instanceof ApiError && e.status === status && e.code === code;

  test('workflowEvents without last reads every page, following next; an answer without next is the whole history', async () => {
    const ev = (seq: number) => ({ seq, type: seq === 1 ? 'START' : 'SIGNAL', at: '2026-01-01T00:00:00.000Z', status: 'active', value: 'a', data: {} });
    const paged = (pages: ReadonlyMap<string, object>) => {
      const asked: string[] = [];
      const client = createClient({
        url: 'http://127.0.0.1:1',
        fetch: async (input) => {
          const u = new URL(String(input));
          asked.push(u.search);
          return new Response(JSON.stringify(pages.get(u.search)), { status: 200, headers: { 'content-type': 'application/json' } });
        },
      });
      return { client, asked };
    };
    const id = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    const two = paged(new Map([['', { events: [ev(1), ev(2)], next: 2 }], ['?after=2', { events: [ev(3)], next: null }]]));
    assert.deepEqual((await two.client.workflowEvents(id)).map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(two.asked, ['', '?after=2']);
    const whole = paged(new Map([['', { events: [ev(1), ev(2), ev(3)] }]]));
    assert.deepEqual((await whole.client.workflowEvents(id)).map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(whole.asked, [''], 'one request');
  });

  test('start, get, signal, events, verify, list: the child job runs and its end moves the instance on', async () => {
    const wf = await ats.startWorkflow({ name: 'client.approval' });
    assert.deepEqual([wf.status, wf.value, wf.children.map((c) => c.jobType)], ['active', 'echoing', ['demo.echo']]);
    // A start carries a key unless told not to: the same key again is the same instance.
    const again = await ats.startWorkflow({ name: 'client.approval', idempotencyKey: 'client-wf-1' });
    assert.equal((await ats.startWorkflow({ name: 'client.approval' }, { idempotencyKey: 'client-wf-1' })).id, again.id);
    await until(async () => (await ats.getWorkflow(wf.id)).value === 'waiting', 'the child job to end and its end to be delivered');
    await assert.rejects(ats.signalWorkflow(wf.id, { type: 'NOPE' }), (e: unknown) =>
      is(409, 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED')(e) && JSON.stringify((e as ApiError).accepts) === '["APPROVE"]');
    const done = await ats.signalWorkflow(wf.id, { type: 'APPROVE', by: 'client' });
    assert.deepEqual([done.status, done.value, done.accepts], ['done', 'approved', []]);
    assert.deepEqual((await ats.workflowEvents(wf.id)).map((e) => e.type), ['START', 'CHILD', 'SIGNAL']);
    assert.deepEqual((await ats.workflowEvents(wf.id, { last: 1 })).map((e) => [e.seq, e.type]), [[3, 'SIGNAL']]);
    const firstTwo = await ats.workflowEventsPage(wf.id, { limit: 2 });
    assert.deepEqual([firstTwo.events.map((e) => e.seq), firstTwo.next], [[1, 2], 2]);
    const rest = await ats.workflowEventsPage(wf.id, { after: firstTwo.next!, limit: 2 });
    assert.deepEqual([rest.events.map((e) => e.seq), rest.next], [[3], null]);
    assert.deepEqual(await ats.verifyWorkflow(wf.id), { ok: true, events: 3 });
    const page = await ats.listWorkflows({ name: 'client.approval', status: 'done', limit: 10 });
    assert.ok(page.workflows.some((w) => w.id === wf.id));
    await assert.rejects(ats.getWorkflow('01ARZ3NDEKTSV4RRFFQ69G5FAV'), is(404, 'ATS_ERR_WORKFLOW_NOT_FOUND'));
    await assert.rejects(ats.startWorkflow({ name: 'client.nope' }), is(422, 'ATS_ERR_UNKNOWN_WORKFLOW'));
  });

  test('waits: a start that waits for a tag, waitWorkflow until done; a timeout is a 408, an end without the tag a 412', async () => {
    // The child job runs on the worker, and its end, delivered by the timers role, brings the instance to the tagged state.
    const wf = await ats.startWorkflow({ name: 'client.approval' }, { wait: { until: 'tag:approval', timeoutMs: 20_000 } });
    assert.deepEqual([wf.status, wf.value], ['active', 'waiting']);
    await assert.rejects(ats.waitWorkflow(wf.id, { timeoutMs: 50 }), is(408, 'ATS_ERR_WAIT_TIMEOUT'));
    const waiting = ats.waitWorkflow(wf.id, { until: 'done', timeoutMs: 20_000 });
    await ats.signalWorkflow(wf.id, { type: 'APPROVE' });
    const done = await waiting;
    assert.deepEqual([done.id, done.status, done.value], [wf.id, 'done', 'approved']);
    await assert.rejects(ats.waitWorkflow(wf.id, { until: 'tag:approval', timeoutMs: 1000 }), is(412, 'ATS_ERR_WAIT_UNMET'));
    // A start whose wait runs out: the instance was started all the same, and the error's location is its URL.
    const err = await ats.startWorkflow({ name: 'client.approval' }, { wait: { until: 'done', timeoutMs: 50 } }).then(() => null, (e: unknown) => e);
    assert.ok(is(408, 'ATS_ERR_WAIT_TIMEOUT')(err), String(err));
    const location = (err as ApiError).location ?? '';
    assert.match(location, new RegExp(`^${url}/v1/workflows/[0-9A-Z]{26}$`));
    assert.equal((await ats.getWorkflow(location.split('/').pop()!)).name, 'client.approval');
  });

  test('cancel: the instance is cancelled; an ended one is a 409 with nothing it accepts', async () => {
    const wf = await ats.startWorkflow({ name: 'client.approval' }, { idempotencyKey: false });
    const c = await ats.cancelWorkflow(wf.id, { reason: 'client test' });
    assert.equal(c.status, 'cancelled');
    await assert.rejects(ats.cancelWorkflow(wf.id), (e: unknown) => is(409, 'ATS_ERR_WORKFLOW_ENDED')(e) && JSON.stringify((e as ApiError).accepts) === '[]');
  });

  test('deleteWorkflow: an active instance is a 409 ATS_ERR_WORKFLOW_ACTIVE; an ended one is deleted, then a 404', async () => {
    const wf = await ats.startWorkflow({ name: 'client.approval' }, { idempotencyKey: false });
    await assert.rejects(ats.deleteWorkflow(wf.id), is(409, 'ATS_ERR_WORKFLOW_ACTIVE'));
    await ats.cancelWorkflow(wf.id);
    assert.equal(await ats.deleteWorkflow(wf.id), undefined);
    await assert.rejects(ats.getWorkflow(wf.id), is(404, 'ATS_ERR_WORKFLOW_NOT_FOUND'));
    await assert.rejects(ats.deleteWorkflow(wf.id), is(404, 'ATS_ERR_WORKFLOW_NOT_FOUND'));
  });
});

describe('payload schemas (defineHandler)', () => {
  test('a payload that fits runs; one that does not is a 400 that writes nothing, alone or in a batch', async () => {
    const q = queue();
    const ok = await ats.submit({ type: 'test.double', queue: q, payload: { n: 21 } });
    await assert.rejects(ats.submit({ type: 'test.double', queue: q, payload: { n: 'x' } }), (e: unknown) =>
      e instanceof ApiError && e.status === 400 && e.code === 'ATS_ERR_INVALID_PAYLOAD' && /^body\/payload\/n must be integer/.test(e.message));
    const results = await ats.submitMany([
      { type: 'test.double', queue: q, payload: { n: 1 } },
      { type: 'test.double', queue: q, payload: { n: 1, extra: true } },
    ]);
    assert.equal(results[0]!.status, 201);
    assert.equal(results[1]!.status, 400);
    assert.equal(results[1]!.code, 'ATS_ERR_INVALID_PAYLOAD');
    assert.match(results[1]!.message!, /^body\/jobs\/1\/payload has an unknown field 'extra'/);
    assert.equal((await jobsOf(q)).length, 2);
    await until(async () => (await ats.get(ok.id)).state === 'done', 'the typed job to run');
    assert.deepEqual((await ats.get(ok.id)).result, { doubled: 42 });
  });

  test('the worker does not run a job whose stored payload does not fit: dead, not retryable', async () => {
    // Written past the API (as by a server that did not know the schema yet).
    const r = await system.transitions.submit({
      type: 'test.double', payload: { n: -1 }, queue: queue(), maxAttempts: 3,
      backoff: { kind: 'fixed', delayMs: 10 }, timeoutMs: 10_000, priority: 0,
    });
    assert.ok(r.ok);
    await until(async () => (await ats.get(r.job.id)).state === 'dead', 'the job to be dead');
    const dead = await ats.get(r.job.id);
    assert.equal(dead.attempt, 1, 'no retry');
    assert.equal(dead.lastError?.retryable, false);
    assert.match(dead.lastError?.message ?? '', /does not fit the schema of test\.double: \/n must be >= 0/);
  });
});

describe('watch', () => {
  test('follows a job to its end', async () => {
    const q = queue();
    const ends = ats.watch({ queue: q, states: TERMINAL });
    await ends.ready;
    const job = await ats.submit({ type: 'demo.echo', queue: q, payload: 'hi' });
    let last: StreamEventMessage | undefined;
    for await (const e of ends) {
      last = e;
      break;
    }
    assert.equal(last?.jobId, job.id);
    assert.equal(last?.to, 'done');
    assert.match(ends.cursor() ?? '', /./);
  });

  test('onProgress: what a running job reports, live; get shows the latest; a filter on other states gets none', async () => {
    const q = queue();
    const progress: StreamProgressMessage[] = [];
    const elsewhere: StreamProgressMessage[] = [];
    const ends: StreamEventMessage[] = [];
    const all = ats.watch({ queue: q }, { onEvent: () => undefined, onProgress: (p) => progress.push(p) });
    const terminal = ats.watch({ queue: q, states: TERMINAL }, { onEvent: (e) => ends.push(e), onProgress: (p) => elsewhere.push(p) });
    try {
      await Promise.all([all.ready, terminal.ready]);
      const job = await ats.submit({ type: 'test.progress', queue: q, payload: null });
      await until(() => ends.length > 0, 'the job to end');
      await until(() => progress.some((p) => JSON.stringify(p.progress) === JSON.stringify(UPLOAD_PROGRESS)), 'the last progress on the stream');
      assert.equal(ends[0]!.to, 'done');
      for (const p of progress) {
        assert.deepEqual({ ...p, progress: null, at: null }, { kind: 'progress', jobId: job.id, jobType: 'test.progress', queue: q, attempt: 1, progress: null, at: null });
        assert.match(p.at, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
      }
      // In the order reported, each once. (The stream sends the latest value at each of its reads: on a machine
      // too slow to read within the 700 ms between the two reports, the first is replaced before it is sent.)
      const values = JSON.stringify(progress.map((p) => p.progress));
      assert.ok([[10, UPLOAD_PROGRESS], [UPLOAD_PROGRESS]].some((v) => JSON.stringify(v) === values), values);
      const detail = await ats.get(job.id);
      const latest: JobProgress | null = detail.progress;
      assert.deepEqual(latest, { value: UPLOAD_PROGRESS, attempt: 1, at: progress.at(-1)!.at });
      assert.deepEqual(elsewhere, [], 'a filter on states that leave out running gets no progress');
    } finally {
      all.close();
      terminal.close();
    }
  });

  test('resumes after the server drops the socket and after the network drops it: no event missed, none twice', async () => {
    const q = queue();
    const proxy: TcpProxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(url).port) });
    const viaProxy = createClient({ url: `http://127.0.0.1:${proxy.port}` });
    const connections: string[] = [];
    const w = viaProxy.watch({ queue: q }, { reconnect: { minMs: 20, maxMs: 100 }, onConnection: (s) => connections.push(s) });
    await w.ready;
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of w) seen.push(`${e.jobId}/${e.seq}`);
    })();
    const submitted: string[] = [];
    const submit = async (n: number) => {
      const rs = await ats.submitMany(Array.from({ length: n }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i })));
      submitted.push(...rs.map((r) => r.id!));
    };
    await submit(5);
    await until(() => seen.length >= 5, 'the first events');
    // The server ends the connection (the TCP socket of the upgrade), with jobs still moving.
    for (const s of upgraded) s.destroy();
    await submit(5);
    await until(() => connections.filter((c) => c === 'subscribed').length >= 2, 'the resume after the server dropped the socket');
    // The network goes away for a while; jobs go on meanwhile.
    await proxy.cut();
    await submit(5);
    await new Promise((r) => setTimeout(r, 300));
    await proxy.restore();
    await submit(5);

    const expected = async () => {
      const all: string[] = [];
      for (const id of submitted) for (const e of (await ats.get(id)).events) all.push(`${id}/${e.seq}`);
      return all;
    };
    await until(async () => {
      const jobs = await Promise.all(submitted.map((id) => ats.get(id)));
      return jobs.every((j) => j.state === 'done') && seen.length >= (await expected()).length;
    }, 'every event of every job', 30_000);
    await new Promise((r) => setTimeout(r, 200)); // a duplicate would arrive now
    w.close();
    await reading;
    await proxy.close();
    assert.equal(new Set(seen).size, seen.length, 'no event twice');
    assert.deepEqual([...seen].sort(), (await expected()).sort(), 'every event, once');
    assert.ok(connections.filter((c) => c === 'disconnected').length >= 2, connections.join(','));
  });

  test('a server without the stream: StreamUnavailableError with the HTTP status', async () => {
    const plain = createServer((_req, res) => res.writeHead(404).end());
    plain.on('upgrade', (_req, socket: Socket) => socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const port = (plain.address() as { port: number }).port;
    const w = createClient({ url: `http://127.0.0.1:${port}` }).watch({});
    await assert.rejects(w.ready, (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_STREAM_UNAVAILABLE' && e.status === 404);
    await assert.rejects(w.next(), (e: unknown) => e instanceof ApiError && e.status === 404);
    await new Promise((r) => plain.close(r));
  });

  test('through a proxy that does not pass WebSocket upgrades on (nginx without its WebSocket settings): StreamUnavailableError 400, not a refused subscribe', async () => {
    // The upgrade reaches the server as a plain GET of /v1/stream, which it answers 400 ATS_ERR_VALIDATION.
    const proxy = createServer(async (req, res) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'upgrade'].includes(k)) headers[k] = v;
      const upstream = await fetch(url + req.url, { method: req.method, headers });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' }).end(await upstream.text());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const w = createClient({ url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`, WebSocket: WebSocket as unknown as WebSocketConstructor }).watch({});
      const err = await w.ready.then(() => null, (e: unknown) => e);
      assert.ok(err instanceof ApiError && err.code === 'ATS_ERR_STREAM_UNAVAILABLE' && err.status === 400, `${(err as ApiError)?.code}: ${String(err)}`);
      assert.match(err.message, /proxy/);
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });

  test('a closed watch leaves no timer and no open socket behind: after break, close() and the signal', async () => {
    const sockets: WebSocket[] = [];
    class Recording extends WebSocket {
      constructor(...a: ConstructorParameters<typeof WebSocket>) {
        super(...a);
        sockets.push(this);
      }
    }
    const client = createClient({ url, WebSocket: Recording as unknown as WebSocketConstructor });
    const timers = trackStreamTimers();
    try {
      for (const how of ['break', 'close', 'abort'] as const) {
        const q = queue();
        const stop = new AbortController();
        const w = client.watch({ queue: q }, { keepAliveMs: 1000, signal: stop.signal });
        await w.ready;
        assert.ok(timers.pending() > 0, 'the watch keeps its connection alive with a timer');
        if (how === 'break') {
          await ats.submit({ type: 'demo.echo', queue: q, payload: null, runAt: later() });
          for await (const _ of w) break;
        } else if (how === 'close') {
          w.close();
        } else {
          stop.abort();
        }
        assert.equal(timers.pending(), 0, `${how}: no timer of the watch remains`);
        assert.equal(getEventListeners(stop.signal, 'abort').length, 0, `${how}: the signal's listener is removed`);
        await until(() => sockets.every((s) => s.readyState === WebSocket.CLOSED), `${how}: the socket to be closed`);
        assert.deepEqual(await w.next(), { value: undefined, done: true });
      }
      assert.equal(sockets.length, 3);
    } finally {
      timers.restore();
    }
  });

  test('cursor() is the last event read, not the last received: a new watch from it goes on with the next', async () => {
    const q = queue();
    const w = ats.watch({ queue: q });
    const start = await w.ready;
    const jobs = await ats.submitMany([0, 1, 2].map((i) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() })));
    // All three reach the watch before one is read.
    const other: string[] = [];
    const counter = ats.watch({ queue: q }, { cursor: start, onEvent: (e) => other.push(e.jobId) });
    await until(() => other.length === 3, 'the three events');
    counter.close();
    await new Promise((r) => setTimeout(r, 100));
    const first = await w.next();
    await w.return!();
    assert.equal(first.value?.jobId, jobs[0]!.id);
    assert.equal(w.cursor(), first.value?.cursor);
    const again = ats.watch({ queue: q }, { cursor: w.cursor() });
    const second = await within(again.next(), 'the next event');
    again.close();
    assert.equal(second.value?.jobId, jobs[1]!.id);
  });

  test('a reader that falls behind: the watch pauses at maxQueued and resumes from what was read, nothing missed or repeated', async () => {
    const q = queue();
    const connections: string[] = [];
    const w = ats.watch({ queue: q }, { maxQueued: 3, reconnect: { minMs: 20, maxMs: 100 }, onConnection: (s) => connections.push(s) });
    await w.ready;
    const jobs = await ats.submitMany(Array.from({ length: 10 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() })));
    await until(() => connections.includes('disconnected'), 'the watch to pause', 5000);
    const seen: string[] = [];
    while (seen.length < 10) seen.push((await within(w.next(), `event ${seen.length + 1}`)).value!.jobId);
    assert.deepEqual(seen, jobs.map((j) => j.id!), 'every event once, in order');
    const extra = await Promise.race([w.next(), new Promise((r) => setTimeout(() => r('none'), 300))]);
    assert.equal(extra, 'none', 'no event twice');
    w.close();
    assert.ok(connections.filter((c) => c === 'subscribed').length >= 2, connections.join(','));
  });

  test('a reconnect whose subscribe is answered ATS_ERR_STORE_UNAVAILABLE is tried again: the watch goes on without loss', async (t) => {
    const q = queue();
    const proxy = await streamProxy(url);
    const via = createClient({ url: proxy.url });
    const notices: string[] = [];
    t.after(() => proxy.close());
    const w = via.watch({ queue: q }, { reconnect: { minMs: 20, maxMs: 100 }, onNotice: (n) => notices.push(n) });
    await w.ready;
    const delayed = (i: number) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() });
    const jobs = await ats.submitMany([0, 1, 2].map(delayed));
    const seen: string[] = [];
    while (seen.length < 3) seen.push((await within(w.next(), 'an event')).value!.jobId);
    proxy.refuse.push('ATS_ERR_STORE_UNAVAILABLE');
    proxy.dropAll();
    jobs.push(...(await ats.submitMany([3, 4, 5].map(delayed))));
    while (seen.length < 6) seen.push((await within(w.next(), 'an event after the reconnects')).value!.jobId);
    w.close();
    assert.deepEqual(seen, jobs.map((j) => j.id!));
    assert.equal(proxy.refuse.length, 0);
    assert.ok(proxy.connections() >= 3, String(proxy.connections()));
    assert.ok(notices.some((n) => n.includes('ATS_ERR_STORE_UNAVAILABLE')), notices.join('\n'));

    // The first connect: retried with retryFirstConnect, else ready rejects with the error.
    proxy.refuse.push('ATS_ERR_STORE_UNAVAILABLE');
    const retried = via.watch({ queue: q }, { retryFirstConnect: true, reconnect: { minMs: 20, maxMs: 100 } });
    await within(retried.ready, 'ready after a retried first connect');
    retried.close();
    proxy.refuse.push('ATS_ERR_STORE_UNAVAILABLE');
    const single = via.watch({ queue: q });
    await assert.rejects(within(single.ready, 'ready'), (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_STORE_UNAVAILABLE');
  });

  test('a key the server stops taking ends the watch with ATS_ERR_UNAUTHORIZED: a close with 4401, or a reconnect answered 401, is not retried', async (t) => {
    const q = queue();
    const proxy = await streamProxy(url);
    const via = createClient({ url: proxy.url });
    t.after(() => proxy.close());
    const revoked = via.watch({ queue: q }, { reconnect: { minMs: 20, maxMs: 100 } });
    t.after(() => revoked.close());
    await revoked.ready;
    proxy.dropAll(KEY_REFUSED_CLOSE, 'API key revoked: reconnect with a valid key');
    await assert.rejects(within(revoked.next(), 'the watch to end'), (e: unknown) => e instanceof ApiError && e.status === 401 && e.code === 'ATS_ERR_UNAUTHORIZED' && /revoked/.test(e.message));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(proxy.connections(), 1, 'no reconnect after 4401');

    const refused = via.watch({ queue: q }, { reconnect: { minMs: 20, maxMs: 100 } });
    t.after(() => refused.close());
    await refused.ready;
    proxy.upgrades.refuseWith = 401;
    proxy.dropAll();
    await assert.rejects(within(refused.next(), 'the watch to end'), (e: unknown) => e instanceof ApiError && e.status === 401);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(proxy.connections(), 3, 'one reconnect, refused, and none after it');
  });

  test('close() while connecting, or between tries of the first connect, settles ready and stops the connect', async () => {
    // A server that takes the connection and never answers the upgrade.
    const held = new Set<Socket>();
    const silent = createTcpServer((s) => {
      held.add(s);
      s.resume(); // read the upgrade request (and so see the end of the connection); answer nothing
      s.on('error', () => undefined).on('close', () => held.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const timers = trackStreamTimers();
    try {
      const w = createClient({ url: `http://127.0.0.1:${(silent.address() as { port: number }).port}` }).watch({}, { connectTimeoutMs: 60_000 });
      await until(() => held.size === 1, 'the connection');
      w.close();
      await assert.rejects(within(w.ready, 'ready'), (e: unknown) => e instanceof Error && e.name === 'AbortError');
      assert.equal(timers.pending(), 0, 'no timer left');
      await until(() => held.size === 0, 'the connection to be closed');
      assert.deepEqual(await w.next(), { value: undefined, done: true });

      const notices: string[] = [];
      const stop = new AbortController();
      const gone = createClient({ url: `http://127.0.0.1:${await freePort()}` })
        .watch({}, { retryFirstConnect: true, reconnect: { minMs: 60_000, maxMs: 60_000 }, signal: stop.signal, onNotice: (n) => notices.push(n) });
      await until(() => notices.length > 0, 'the first connect to fail');
      stop.abort(new Error('no longer needed'));
      await assert.rejects(within(gone.ready, 'ready'), /no longer needed/);
      assert.equal(timers.pending(), 0, 'no reconnect pending');
    } finally {
      timers.restore();
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('a socket that cannot even be made (a key that is no header value): ready rejects, nothing is left unhandled; a URL without a scheme is refused before', async () => {
    const unhandled: unknown[] = [];
    const record = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', record);
    const unsendable = (e: unknown) => e instanceof ApiError && !(e instanceof UnreachableError) && e.code === 'ATS_ERR_VALIDATION' && /Authorization/.test(e.message);
    // No socket is made for it: the client is refused (client/options.test.ts).
    assert.throws(() => createClient({ url: url.replace(/^http:\/\//, '') }), (e: unknown) => e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_VALIDATION');
    try {
      for (const [options, refused] of [
        [{ url, apiKey: 'ats_key\u200b' }, unsendable],
        [{ url, apiKey: 'ats\nkey' }, unsendable],
      ] as const) {
        const w = createClient({ ...options, WebSocket: WebSocket as unknown as WebSocketConstructor }).watch({}, { retryFirstConnect: true });
        await assert.rejects(within(w.ready, `ready of ${JSON.stringify(options)}`), refused);
        await assert.rejects(w.next(), refused);
      }
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled.map(String), []);
    } finally {
      process.off('unhandledRejection', record);
    }
  });

  test('a close with 4401 before the subscription is confirmed ends the watch too (a reconnect cannot tell it from a drop otherwise)', async (t) => {
    const q = queue();
    const proxy = await streamProxy(url);
    t.after(() => proxy.close());
    const w = createClient({ url: proxy.url }).watch({ queue: q }, { reconnect: { minMs: 20, maxMs: 100 } });
    t.after(() => w.close());
    await w.ready;
    proxy.closeOnSubscribe.push({ code: KEY_REFUSED_CLOSE, reason: 'API key revoked: reconnect with a valid key' });
    proxy.dropAll();
    await assert.rejects(within(w.next(), 'the watch to end'), (e: unknown) => e instanceof ApiError && e.status === 401 && e.code === 'ATS_ERR_UNAUTHORIZED' && /revoked/.test(e.message));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(proxy.connections(), 2, 'no reconnect after the 4401');
  });

  test('a refused subscribe is an ApiError with the server\'s code', async () => {
    const w = ats.watch({ jobId: 'not-a-ulid' });
    await assert.rejects(w.ready, (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_VALIDATION' && /jobId/.test(e.message));
  });
});

/**
 * An HTTP proxy in front of the server that misbehaves on purpose, one plan
 * step per request: `503` (answers it without asking the server), `stall`
 * (forwards it, never answers), `lose` (forwards it, then drops the
 * connection instead of answering), `late503` (forwards it, then answers 503
 * as a server whose connection to the database broke during the commit),
 * `502` (answers a load balancer's page without asking the server), `late504`
 * (forwards it, then answers a load balancer's 504 page: it gave up waiting),
 * or `pass`.
 */
async function faultyProxy(target: string, plan: string[]): Promise<{ url: string; keys: string[]; auth: string[]; requests: string[]; close(): Promise<void> }> {
  const keys: string[] = [];
  const auth: string[] = [];
  const requests: string[] = [];
  const server: Server = createServer(async (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (req.headers.authorization) auth.push(req.headers.authorization);
    const key = req.headers['idempotency-key'];
    keys.push(typeof key === 'string' ? key : body.length ? String((JSON.parse(body.toString()) as { jobs?: Array<{ idempotencyKey?: string }> }).jobs?.[0]?.idempotencyKey) : '');
    const step = plan.shift() ?? 'pass';
    if (step === '502') {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
      return;
    }
    if (step === '503') {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
    const upstream = await fetch(target + req.url, { method: req.method, headers, ...(body.length ? { body } : {}) });
    const text = await upstream.text();
    if (step === 'stall') return; // the server committed; the client hears nothing and times out
    if (step === 'lose') return req.socket.destroy(); // the server committed; the answer is lost
    if (step === 'late503') {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }));
      return;
    }
    if (step === 'late504') {
      res.writeHead(504, { 'content-type': 'text/html' }).end('<html><body>504 Gateway Time-out</body></html>');
      return;
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(text);
  });
  const url = await listenLocal(server);
  return {
    url,
    keys,
    auth,
    requests,
    close: async () => {
      await closeLocal(server);
    },
  };
}

describe('retries never make a second job', () => {
  for (const plan of [['503', '503'], ['stall'], ['lose'], ['lose', '503', 'stall'], ['502', 'late504']]) {
    test(`submit through ${plan.join(', ')}: retried with the same key, exactly one job`, async () => {
      const q = queue();
      const proxy = await faultyProxy(url, [...plan]);
      const flaky = createClient({ url: proxy.url, timeoutMs: 1000, retries: 4, retryDelayMs: { min: 10, max: 50 } });
      const retried: string[] = [];
      const job = await flaky.submit({ type: 'demo.echo', queue: q, payload: { once: true }, runAt: later() }, {
        onRetry: (e) => retried.push(e.code),
      });
      await proxy.close();
      assert.equal(retried.length, plan.length);
      assert.equal(proxy.keys.length, plan.length + 1);
      assert.equal(new Set(proxy.keys).size, 1, `one key for every attempt: ${proxy.keys.join(', ')}`);
      assert.deepEqual(await jobsOf(q), [job.id]);
    });
  }

  test('submitMany through a lost answer: the batch is sent again with the same keys, no job twice', async () => {
    const q = queue();
    const proxy = await faultyProxy(url, ['lose']);
    const flaky = createClient({ url: proxy.url, timeoutMs: 2000, retryDelayMs: { min: 10, max: 50 } });
    const results = await flaky.submitMany(Array.from({ length: 30 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() })));
    await proxy.close();
    assert.equal(proxy.keys.length, 2);
    assert.equal(proxy.keys[0], proxy.keys[1]);
    assert.deepEqual(results.map((r) => r.status), Array(30).fill(200), 'the retry answers the jobs the lost request made');
    assert.deepEqual((await jobsOf(q)).sort(), results.map((r) => r.id!).sort());
  });

  test('submitMany whose second request fails: the jobs the error carries, sent again, answer the first request\'s jobs, no job twice', async () => {
    const q = queue();
    let batches = 0;
    const flaky = createClient({
      url, retries: 0,
      fetch: async (input, init) => {
        if (String(input).endsWith('/v1/jobs/batch') && ++batches === 2) {
          throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
        }
        return fetch(input, init);
      },
    });
    const err = await flaky.submitMany(Array.from({ length: 4 }, (_, i) => ({ type: 'demo.echo', queue: q, payload: i, runAt: later() })), { batchSize: 2 })
      .catch((e: unknown) => e);
    assert.ok(err instanceof UnreachableError && err.batch, String(err));
    assert.deepEqual(err.batch.results.map((r) => r.status), [201, 201]);
    const results = await flaky.submitMany(err.batch.jobs, { batchSize: 2 });
    assert.deepEqual(results.map((r) => r.status), [200, 200, 201, 201]);
    assert.deepEqual(results.slice(0, 2).map((r) => r.id), err.batch.results.map((r) => r.id));
    assert.deepEqual((await jobsOf(q)).sort(), results.map((r) => r.id!).sort());
  });

  test('a signal ends a call and its retries; apiKey is sent as a bearer token', async () => {
    const q = queue();
    const proxy = await faultyProxy(url, ['stall', 'stall', 'stall']);
    const stop = new AbortController();
    const slow = createClient({ url: proxy.url, apiKey: 'secret-1', timeoutMs: 10_000, retryDelayMs: { min: 10, max: 50 } });
    setTimeout(() => stop.abort(new Error('enough')), 300);
    const started = Date.now();
    await assert.rejects(slow.submit({ type: 'demo.echo', queue: q, payload: null, runAt: later() }, { signal: stop.signal }), /enough/);
    assert.ok(Date.now() - started < 5000);
    await proxy.close();
    assert.equal(proxy.keys.length, 1, 'not retried after the abort');
    assert.deepEqual(proxy.auth, ['Bearer secret-1']);
  });

  test('without an Idempotency-Key a submit is not retried', async () => {
    const q = queue();
    const proxy = await faultyProxy(url, ['503']);
    const flaky = createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } });
    await assert.rejects(flaky.submit({ type: 'demo.echo', queue: q, payload: null }, { idempotencyKey: false }),
      (e: unknown) => e instanceof ApiError && e.status === 503 && e.code === 'ATS_ERR_STORE_UNAVAILABLE');
    await proxy.close();
    assert.equal(proxy.keys.length, 1);
  });

  test('a signal whose answer is lost is sent again with its key and taken once; without a key it is not sent again', async () => {
    const wf = await ats.startWorkflow({ name: 'client.counter' });
    for (const [i, plan] of [['lose'], ['late503', 'stall']].entries()) {
      const proxy = await faultyProxy(url, [...plan]);
      const flaky = createClient({ url: proxy.url, timeoutMs: 1000, retries: 4, retryDelayMs: { min: 10, max: 50 } });
      const after = await flaky.signalWorkflow(wf.id, { type: 'ADD' });
      await proxy.close();
      assert.equal(proxy.keys.length, plan.length + 1);
      assert.equal(new Set(proxy.keys).size, 1, `one key for every try: ${proxy.keys.join(', ')}`);
      assert.ok(proxy.keys[0]);
      assert.deepEqual(after.context, { count: i + 1 }, 'the retry answers the instance as it is: the signal taken once');
    }
    assert.deepEqual((await ats.getWorkflow(wf.id)).context, { count: 2 }, 'each signal taken once');
    const proxy = await faultyProxy(url, ['lose']);
    const once = createClient({ url: proxy.url, timeoutMs: 1000, retries: 4, retryDelayMs: { min: 10, max: 50 } });
    await assert.rejects(once.signalWorkflow(wf.id, { type: 'ADD' }, { idempotencyKey: false }), (e: unknown) => e instanceof ApiError);
    await proxy.close();
    assert.deepEqual(proxy.requests, [`POST /v1/workflows/${wf.id}/events`], 'sent once');
    assert.deepEqual((await ats.getWorkflow(wf.id)).context, { count: 3 }, 'the lost one went through');
  });

  test('a cancel and a delete answered 503 after their commit, retried: done, not a 409 or a 404', async () => {
    const job = await ats.submit({ type: 'demo.echo', queue: queue(), payload: null, runAt: later() });
    const proxy = await faultyProxy(url, ['late503', 'late503']);
    const flaky = createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } });
    assert.equal((await flaky.cancel(job.id)).state, 'cancelled');
    await flaky.delete(job.id);
    await proxy.close();
    await assert.rejects(ats.get(job.id), (e: unknown) => e instanceof ApiError && e.status === 404);
  });

  test('a redrive whose outcome is unknown is never sent again: the job when it went through, else the failure', async () => {
    const job = await ats.submit({ type: 'demo.sleep', queue: queue(), payload: { ms: 600_000 }, runAt: later() });
    await ats.cancel(job.id);
    const posts = (p: { requests: string[] }) => p.requests.filter((r) => r.startsWith('POST'));
    for (const step of ['late503', 'lose', 'late504']) {
      const proxy = await faultyProxy(url, [step]);
      const redriven = await createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } }).redrive(job.id);
      await proxy.close();
      assert.ok(!['dead', 'cancelled'].includes(redriven.state), `${step}: ${redriven.state}`);
      assert.deepEqual(posts(proxy), [`POST /v1/jobs/${job.id}/redrive`], `${step}: sent once`);
      await ats.cancel(job.id);
    }
    assert.equal((await ats.get(job.id)).events.filter((e) => e.type === 'REDRIVE').length, 3, 'one run per redrive');
    // A 503 the server answered before doing anything: the job is still cancelled; the failure is thrown, not retried.
    const proxy = await faultyProxy(url, ['503']);
    await assert.rejects(createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } }).redrive(job.id),
      (e: unknown) => e instanceof ApiError && e.status === 503);
    await proxy.close();
    assert.deepEqual(posts(proxy), [`POST /v1/jobs/${job.id}/redrive`]);
    assert.equal((await ats.get(job.id)).state, 'cancelled');
  });

  test('a cancel whose answer was lost, retried: the cancelled job, not a 409', async () => {
    const job = await ats.submit({ type: 'demo.echo', queue: queue(), payload: null, runAt: later() });
    const proxy = await faultyProxy(url, ['lose']);
    const flaky = createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } });
    assert.equal((await flaky.cancel(job.id)).state, 'cancelled');
    await flaky.delete(job.id); // and a delete whose answer is lost counts as done
    await proxy.close();
    const again = await faultyProxy(url, ['lose']);
    const job2 = await ats.submit({ type: 'demo.echo', queue: queue(), payload: null, runAt: later() });
    await ats.cancel(job2.id);
    await createClient({ url: again.url, retryDelayMs: { min: 10, max: 50 } }).delete(job2.id);
    await again.close();
    await assert.rejects(ats.get(job2.id), (e: unknown) => e instanceof ApiError && e.status === 404);
  });
  test('a schedule create whose answer was lost, retried: the schedule, not a 409; one of another definition stays a 409', async () => {
    const name = `s-${Math.random().toString(36).slice(2, 10)}`;
    const input = { name, cron: '0 3 * * *', timezone: 'Europe/Berlin', type: 'demo.echo', payload: { b: 1, a: [1, 2] }, paused: true };
    const proxy = await faultyProxy(url, ['lose']);
    const flaky = createClient({ url: proxy.url, retryDelayMs: { min: 10, max: 50 } });
    const created = await flaky.createSchedule(input);
    assert.equal(created.name, name);
    assert.equal(created.cron, '0 3 * * *');
    assert.deepEqual(proxy.requests, ['POST /v1/schedules', 'POST /v1/schedules', `GET /v1/schedules/${name}`]);
    // Another definition under the same name, after a try of unknown outcome: the 409 is thrown.
    const again = await faultyProxy(url, ['late503']);
    await assert.rejects(createClient({ url: again.url, retryDelayMs: { min: 10, max: 50 } }).createSchedule({ ...input, cron: '0 4 * * *' }),
      (e: unknown) => e instanceof ApiError && e.status === 409 && e.code === 'ATS_ERR_SCHEDULE_EXISTS');
    // Without a try of unknown outcome a 409 is thrown at once, even for the same definition.
    await assert.rejects(ats.createSchedule(input), (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_SCHEDULE_EXISTS');
    // A schedule delete answered 503 after its commit, retried: done, not a 404.
    const gone = await faultyProxy(url, ['late503']);
    await createClient({ url: gone.url, retryDelayMs: { min: 10, max: 50 } }).deleteSchedule(name);
    await Promise.all([proxy.close(), again.close(), gone.close()]);
    await assert.rejects(ats.getSchedule(name), (e: unknown) => e instanceof ApiError && e.status === 404);
  });
});
