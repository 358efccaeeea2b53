/**
 * `/v1/workflows` on the real stores (SQLite throughout; MariaDB for the
 * start, signal and read path): a start shows its child job; a signal the
 * machine takes is a step, one it does not take a 409 with `accepts` that
 * writes nothing; a cancel cancels the child's job; the history replays;
 * another tenant's instance is a 404; refused bodies write nothing; a
 * repeated start with its idempotencyKey answers the first instance; the
 * list pages newest first. A wait (`/wait`, a start with `?wait=`) answers
 * when its instance ends or reaches a tagged state, met at once or later (a
 * signal through the API wakes it, a step taken elsewhere is read by its
 * poll), 408 at its timeout, 412 when the instance ended otherwise, and
 * stops when the client goes away or the app closes. A child's end is
 * delivered as the driver would (`WorkflowService.deliver`), no worker runs.
 */
import assert from 'node:assert/strict';
import { get as httpGet } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { assign, createMachine, setup } from 'xstate';
import type { ErrorCode } from '../engine/errors.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { WorkflowService } from '../engine/workflows.js';
import { job } from '../machines/workflow.js';
import { monotonicFactory } from 'ulid';
import { buildApp } from './app.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { pageIds, startSqliteTestApp, startTestApp, testClock, type TestApp } from '../tests/helpers/app.js';
import { authWith, injectAs, MemoryKeyStore, type MadeKey } from '../tests/helpers/keys.js';
import { gate, instant } from '../tests/helpers/workflow-machines.js';
import { KEY_CACHE_MS } from './auth.js';
import { MAX_POLL_MS } from './workflow-wait.js';

const mysqlReady = await requireMysql();

const HOUR = 3_600_000;

/** Echoes its amount (a job), then waits for APPROVE, expiring after an hour. */
const approval = setup({
  types: {
    context: {} as { amount: number; echoed: unknown; approvedBy: string | null },
    input: {} as { amount?: unknown } | null,
  },
  actors: { echo: job<unknown, { amount: number }>('demo.echo') },
}).createMachine({
  id: 'approval',
  context: ({ input }) => {
    if (typeof input?.amount !== 'number') throw new Error('amount must be a number');
    return { amount: input.amount, echoed: null, approvedBy: null };
  },
  initial: 'echoing',
  states: {
    echoing: {
      invoke: {
        id: 'echo', src: 'echo', input: ({ context }) => ({ amount: context.amount }),
        onDone: { target: 'waiting', actions: assign({ echoed: ({ event }) => event.output }) },
      },
      on: { SKIP: 'waiting' },
    },
    waiting: {
      tags: ['approval'],
      on: { APPROVE: { target: 'approved', actions: assign({ approvedBy: ({ event }) => (event as { by?: string }).by ?? null }) } },
      after: { [HOUR]: 'expired' },
    },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
  output: ({ context }) => ({ amount: context.amount, approvedBy: context.approvedBy }),
});

/** Counts each ADD it takes (by `n`, else 1), for ever: a signal applied twice shows. */
const counter = setup({ types: { context: {} as { count: number } } }).createMachine({
  id: 'counter', context: { count: 0 }, initial: 'counting',
  states: { counting: { on: { ADD: { actions: assign({ count: ({ context, event }) => context.count + ((event as { n?: number }).n ?? 1) }) } } } },
});

/** Waits an hour for DONE; POKE targets the state it is in (XState takes it, and nothing changes). */
const poke = createMachine({
  id: 'poke', initial: 'waiting',
  states: { waiting: { on: { POKE: 'waiting', DONE: 'over' }, after: { [HOUR]: 'over' } }, over: { type: 'final' } },
});

const registry = () => registerDemoHandlers(new HandlerRegistry())
  .workflow('approval', approval).workflow('gate', gate).workflow('instant', instant).workflow('counter', counter).workflow('poke', poke);
const waitFor = (id: string, query = ''): InjectOptions => ({ url: `/v1/workflows/${id}/wait${query ? `?${query}` : ''}` });

const start = (body: unknown): InjectOptions => ({ method: 'POST', url: '/v1/workflows', payload: body as object });
const signal = (id: string, body: unknown): InjectOptions => ({ method: 'POST', url: `/v1/workflows/${id}/events`, payload: body as object });
const cancel = (id: string, body?: unknown): InjectOptions => ({ method: 'POST', url: `/v1/workflows/${id}/cancel`, ...(body === undefined ? {} : { payload: body as object }) });

type View = {
  id: string; name: string; definitionVersion: number; version: number; status: string; value: unknown; context: any; output: unknown; error: unknown;
  children: Array<{ invokeId: string; jobId: string; jobType: string; state: string | null }>; timers: Array<{ id: string; dueAt: string }>;
  accepts: string[]; createdAt: string; updatedAt: string;
};

async function started(t: TestApp, body: unknown = { name: 'approval', input: { amount: 5 } }): Promise<View> {
  const r = await t.app.inject(start(body));
  assert.equal(r.statusCode, 201, r.body);
  return r.json() as View;
}

async function view(t: TestApp, id: string): Promise<View> {
  const r = await t.app.inject({ url: `/v1/workflows/${id}` });
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as View;
}

/** The echo child's job ends done, delivered as the driver delivers it. */
async function echoDone(t: TestApp, wf: View, result: unknown): Promise<void> {
  const child = wf.children.find((c) => c.invokeId === 'echo')!;
  assert.equal(await t.workflows!.deliver({
    workflowId: wf.id, invokeId: 'echo', jobId: child.jobId, state: 'done', result, at: Date.now(), tenant: 'default',
  }), true);
}

/**
 * A signal with an Idempotency-Key is taken once: sent again (a retry after
 * a lost answer, or several at once) it answers 200 and applies nothing; the
 * same key with another event is a 409 that writes nothing; another
 * instance may use the key. The same on either store.
 */
async function keyedSignals(t: TestApp): Promise<void> {
  const keyed = (id: string, body: unknown, key: string): InjectOptions => ({ ...signal(id, body), headers: { 'idempotency-key': key } });
  const wf = await started(t, { name: 'counter' });
  const first = await t.app.inject(keyed(wf.id, { type: 'ADD' }, 'k1'));
  assert.equal(first.statusCode, 200, first.body);
  assert.deepEqual([first.json().context, first.json().version], [{ count: 1 }, 2]);
  const again = await t.app.inject(keyed(wf.id, { type: 'ADD' }, 'k1'));
  assert.equal(again.statusCode, 200, again.body);
  assert.deepEqual([again.json().context, again.json().version], [{ count: 1 }, 2], 'sent again with its key: not applied twice');
  // Five at once with one key: one step.
  const racing = await Promise.all(Array.from({ length: 5 }, () => t.app.inject(keyed(wf.id, { type: 'ADD' }, 'k2'))));
  assert.deepEqual(racing.map((r) => r.statusCode), [200, 200, 200, 200, 200], racing.map((r) => r.body).join('\n'));
  assert.deepEqual([(await view(t, wf.id)).context, (await view(t, wf.id)).version], [{ count: 2 }, 3]);
  // The same key with another event: 409, nothing written.
  const other = await t.app.inject(keyed(wf.id, { type: 'ADD', n: 5 }, 'k1'));
  assert.equal(other.statusCode, 409, other.body);
  assert.equal(other.json().code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
  assert.equal((await view(t, wf.id)).version, 3);
  // Without a key, each is taken; another instance's k1 is its own.
  assert.equal((await t.app.inject(signal(wf.id, { type: 'ADD' }))).statusCode, 200);
  assert.equal((await t.app.inject(signal(wf.id, { type: 'ADD' }))).statusCode, 200);
  assert.deepEqual((await view(t, wf.id)).context, { count: 4 });
  const second = await started(t, { name: 'counter' });
  assert.deepEqual((await t.app.inject(keyed(second.id, { type: 'ADD', n: 5 }, 'k1'))).json().context, { count: 5 });
  // The history shows each key with its signal; it still replays.
  const history = (await t.app.inject({ url: `/v1/workflows/${wf.id}/events` })).json().events as Array<{ type: string; data: any }>;
  assert.deepEqual(history.map((e) => [e.type, e.data.idempotencyKey]), [['START', undefined], ['SIGNAL', 'k1'], ['SIGNAL', 'k2'], ['SIGNAL', undefined], ['SIGNAL', undefined]]);
  assert.deepEqual((await t.app.inject({ url: `/v1/workflows/${wf.id}/verify` })).json(), { ok: true, events: 5 });
  // A bad key is a 400, and nothing written.
  for (const key of ['', 'x'.repeat(256)]) {
    const bad = await t.app.inject(keyed(wf.id, { type: 'ADD' }, key));
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(bad.json().code, 'ATS_ERR_VALIDATION');
  }
  assert.equal((await view(t, wf.id)).version, 5);
}

/**
 * A signal's Idempotency-Key may start with `ats:`, the prefix a job submit,
 * a batch item and a workflow start refuse (the server's own keys): a
 * signal's key is kept with the instance's events, apart from the jobs'
 * keys, so it is taken and deduplicated like any other. Even one spelled as
 * the key of the instance's own child job (`ats:workflow:ID:SEQ:I`, made by
 * the engine) stands only for the signal: the child job is untouched.
 */
async function reservedPrefixSignals(t: TestApp): Promise<void> {
  const keyed = (id: string, body: unknown, key: string): InjectOptions => ({ ...signal(id, body), headers: { 'idempotency-key': key } });
  const counting = await started(t, { name: 'counter' });
  for (let i = 0; i < 2; i++) {
    const r = await t.app.inject(keyed(counting.id, { type: 'ADD' }, 'ats:mine'));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().context, r.json().version], [{ count: 1 }, 2], 'sent again with its ats: key: not applied twice');
  }
  const other = await t.app.inject(keyed(counting.id, { type: 'ADD', n: 5 }, 'ats:mine'));
  assert.equal(other.statusCode, 409, other.body);
  assert.equal(other.json().code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
  // The key the engine gave the instance's child job (its start is step 1, invocation 0).
  const wf = await started(t);
  const child = wf.children.find((c) => c.invokeId === 'echo')!;
  const engineKey = `ats:workflow:${wf.id}:1:0`;
  for (let i = 0; i < 2; i++) {
    const r = await t.app.inject(keyed(wf.id, { type: 'SKIP' }, engineKey));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().value, r.json().version], ['waiting', 2]);
  }
  const history = (await t.app.inject({ url: `/v1/workflows/${wf.id}/events` })).json().events as Array<{ type: string; data: any }>;
  assert.deepEqual(history.map((e) => [e.type, e.data.idempotencyKey]), [['START', undefined], ['SIGNAL', engineKey]]);
  // The child job still holds its key, alone; SKIP left the invocation and cancelled that job.
  const jobs = (await t.app.inject({ url: '/v1/jobs?limit=500' })).json().jobs as Array<{ id: string; idempotencyKey: string | null; state: string }>;
  assert.deepEqual(jobs.filter((j) => j.idempotencyKey === engineKey).map((j) => [j.id, j.state]), [[child.jobId, 'cancelled']]);
}

/** The start, signal and read path: the same on either store. */
async function startSignalGet(t: TestApp): Promise<void> {
  const before = Date.now();
  const r = await t.app.inject(start({ name: 'approval', input: { amount: 5 } }));
  assert.equal(r.statusCode, 201, r.body);
  const wf = r.json() as View;
  assert.equal(r.headers.location, `workflows/${wf.id}`);
  assert.deepEqual(
    { name: wf.name, definitionVersion: wf.definitionVersion, version: wf.version, status: wf.status, value: wf.value, output: wf.output, error: wf.error },
    { name: 'approval', definitionVersion: 1, version: 1, status: 'active', value: 'echoing', output: null, error: null },
  );
  assert.deepEqual(wf.context, { amount: 5, echoed: null, approvedBy: null });
  assert.deepEqual(wf.accepts, ['SKIP']);
  assert.deepEqual(wf.timers, []);
  assert.ok(Date.parse(wf.createdAt) >= before - 5);
  // The child is a job of the store, pending, with the invocation's input as its payload.
  assert.equal(wf.children.length, 1);
  const [child] = wf.children;
  assert.deepEqual({ ...child, jobId: undefined }, { invokeId: 'echo', jobId: undefined, jobType: 'demo.echo', state: 'pending' });
  const jr = await t.app.inject({ url: `/v1/jobs/${child!.jobId}` });
  assert.equal(jr.statusCode, 200, jr.body);
  assert.deepEqual([jr.json().type, jr.json().state, jr.json().payload], ['demo.echo', 'pending', { amount: 5 }]);

  // Not taken now: 409 with what it takes, and nothing written.
  const no = await t.app.inject(signal(wf.id, { type: 'APPROVE', by: 'ann' }));
  assert.equal(no.statusCode, 409, no.body);
  assert.deepEqual(no.json().code, 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED');
  assert.deepEqual(no.json().accepts, ['SKIP']);
  assert.match(no.json().message, /APPROVE is not taken in state "echoing"; it takes now: SKIP/);
  assert.equal((await view(t, wf.id)).version, 1);

  // The child ends: the instance waits for APPROVE, with its timer.
  await echoDone(t, wf, { echoed: 5 });
  const waiting = await view(t, wf.id);
  assert.deepEqual([waiting.value, waiting.version, waiting.children, waiting.accepts], ['waiting', 2, [], ['APPROVE']]);
  assert.deepEqual(waiting.context.echoed, { echoed: 5 });
  assert.equal(waiting.timers.length, 1);
  assert.equal(Date.parse(waiting.timers[0]!.dueAt) - Date.parse(waiting.updatedAt), HOUR);

  // Taken: the whole body is the event.
  const yes = await t.app.inject(signal(wf.id, { type: 'APPROVE', by: 'ann' }));
  assert.equal(yes.statusCode, 200, yes.body);
  const done = yes.json() as View;
  assert.deepEqual([done.status, done.value, done.version, done.output, done.timers, done.accepts], ['done', 'approved', 3, { amount: 5, approvedBy: 'ann' }, [], []]);
  assert.deepEqual(await view(t, wf.id), done);

  const events = await t.app.inject({ url: `/v1/workflows/${wf.id}/events` });
  assert.equal(events.statusCode, 200, events.body);
  const history = events.json().events as Array<{ seq: number; type: string; status: string; at: string; data: any; value: unknown }>;
  assert.deepEqual(history.map((e) => [e.seq, e.type, e.status]), [[1, 'START', 'active'], [2, 'CHILD', 'active'], [3, 'SIGNAL', 'done']]);
  assert.equal(history.at(-1)!.value, 'approved', 'each step with the state value after it');
  assert.deepEqual(history[0]!.data.jobIds, [child!.jobId]);
  assert.deepEqual(history[2]!.data.event, { type: 'APPROVE', by: 'ann' });
  assert.ok(history.every((e) => !Number.isNaN(Date.parse(e.at))));
  // Only the newest: a page following a long-lived instance need not read it all at every step.
  const lastTwo = await t.app.inject({ url: `/v1/workflows/${wf.id}/events?last=2` });
  assert.equal(lastTwo.statusCode, 200, lastTwo.body);
  assert.deepEqual((lastTwo.json().events as Array<{ seq: number; type: string }>).map((e) => [e.seq, e.type]), [[2, 'CHILD'], [3, 'SIGNAL']]);
  assert.equal((await t.app.inject({ url: `/v1/workflows/${wf.id}/events?last=10000` })).json().events.length, 3);
  for (const bad of ['0', '-1', '10001', 'x']) {
    const refused = await t.app.inject({ url: `/v1/workflows/${wf.id}/events?last=${bad}` });
    assert.deepEqual([refused.statusCode, refused.json().code], [400, 'ATS_ERR_VALIDATION'], `last=${bad}`);
  }

  const verified = await t.app.inject({ url: `/v1/workflows/${wf.id}/verify` });
  assert.equal(verified.statusCode, 200, verified.body);
  assert.deepEqual(verified.json(), { ok: true, events: 3 });

  // Ended: a signal takes nothing, a cancel is a 409.
  const late = await t.app.inject(signal(wf.id, { type: 'APPROVE' }));
  assert.equal(late.statusCode, 409);
  assert.deepEqual([late.json().code, late.json().accepts], ['ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED', []]);
  const ended = await t.app.inject(cancel(wf.id));
  assert.equal(ended.statusCode, 409, ended.body);
  assert.deepEqual(ended.json(), { code: 'ATS_ERR_WORKFLOW_ENDED', message: 'The workflow instance is done', accepts: [] });
  assert.equal((await view(t, wf.id)).version, 3);
}

/** A page's bytes in the tests of pages cut by size: two instances of 10 KB inputs fit, three do not. */
const PAGE_LIMITS = { bodyLimitBytes: 1024 * 1024, listPageBytes: 30_000 };

/**
 * Five instances of 10 KB inputs, then one of 50 KB, listed on `p` (whose
 * pages hold PAGE_LIMITS' bytes): the big one alone, then two a page. Closes `p`.
 */
async function pagedByBytes(p: TestApp): Promise<void> {
  try {
    const ids: string[] = [];
    for (const bytes of [10_000, 10_000, 10_000, 10_000, 10_000, 50_000]) {
      const r = await p.app.inject(start({ name: 'approval', input: { amount: 1, note: 'x'.repeat(bytes) } }));
      assert.equal(r.statusCode, 201, r.body);
      ids.push(r.json().id);
    }
    const pages = await pageIds(p.app, '/v1/workflows?limit=500', 'workflows');
    const [w0, w1, w2, w3, w4, big] = ids;
    assert.deepEqual(pages, [[big], [w4, w3], [w2, w1], [w0]]);
  } finally {
    await p.close();
  }
}

/**
 * An instance's history of a small START and five signals of 10 KB each, read on `p` (whose pages hold
 * PAGE_LIMITS' bytes): pages of `limit` 500 end where the events' data pass the bytes, `next` to the
 * rest; `last` gives the newest events that fit. Closes `p`.
 */
async function historyPagedByBytes(p: TestApp): Promise<void> {
  try {
    const wf = await started(p, { name: 'counter' });
    for (let i = 0; i < 5; i++) {
      const r = await p.app.inject(signal(wf.id, { type: 'ADD', note: 'x'.repeat(10_000) }));
      assert.equal(r.statusCode, 200, r.body);
    }
    const pages: number[][] = [];
    for (let after = 0, i = 0; i < 10; i++) {
      const r = await p.app.inject({ url: `/v1/workflows/${wf.id}/events?after=${after}&limit=500` });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json() as { events: Array<{ seq: number }>; next: number | null };
      pages.push(body.events.map((e) => e.seq));
      if (body.next === null) break;
      after = body.next;
    }
    assert.deepEqual(pages, [[1, 2, 3], [4, 5], [6]]);
    const last = await p.app.inject({ url: `/v1/workflows/${wf.id}/events?last=10` });
    assert.equal(last.statusCode, 200, last.body);
    assert.deepEqual([(last.json() as { events: Array<{ seq: number }> }).events.map((e) => e.seq), last.json().next], [[5, 6], null]);
  } finally {
    await p.close();
  }
}

describe('/v1/workflows (SQLite)', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({}, { workflows: registry() });
  });
  after(async () => {
    await t?.close();
  });

  /** Every instance of the tenant, and every job: what a refused request must leave as it was. */
  const snapshot = async () => {
    const wfs = await t.app.inject({ url: '/v1/workflows?limit=500' });
    const jobs = await t.app.inject({ url: '/v1/jobs?limit=500' });
    return JSON.stringify([wfs.json(), jobs.json()]);
  };
  const refused = async (req: InjectOptions, status: number, code: ErrorCode, says?: RegExp) => {
    const before = await snapshot();
    const r = await t.app.inject(req);
    assert.equal(r.statusCode, status, `${req.method} ${req.url} ${JSON.stringify(req.payload)?.slice(0, 200)}: ${r.body.slice(0, 300)}`);
    const body = r.json() as { code: string; message: string };
    assert.equal(body.code, code, body.message);
    if (says) assert.match(body.message, says);
    assert.equal(await snapshot(), before, 'a refused request wrote');
    return body;
  };

  test('a long history comes a page at a time: 1,000 events without a limit, `next` to page on, null at the end', async () => {
    const wf = await started(t, { name: 'counter' });
    for (let i = 0; i < 1_000; i++) assert.ok((await t.workflows!.signal(wf.id, 'default', { type: 'ADD' })).ok);
    const page = async (query: string) => {
      const r = await t.app.inject({ url: `/v1/workflows/${wf.id}/events${query}` });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json() as { events: Array<{ seq: number }>; next: number | null };
      return { seqs: body.events.map((e) => e.seq), next: body.next };
    };
    const first = await page('');
    assert.deepEqual([first.seqs.length, first.seqs[0], first.seqs.at(-1), first.next], [1_000, 1, 1_000, 1_000]);
    assert.deepEqual(await page('?after=1000'), { seqs: [1_001], next: null });
    assert.deepEqual(await page('?after=998&limit=2'), { seqs: [999, 1_000], next: 1_000 });
    assert.deepEqual(await page('?after=1001'), { seqs: [], next: null });
    assert.deepEqual(await page('?last=2'), { seqs: [1_000, 1_001], next: null });
    for (const bad of ['?last=2&after=0', '?last=2&limit=5', '?after=-1', '?after=x', '?limit=0', '?limit=10001', '?after=0x10', '?limit=1e1', '?last=%202']) {
      await refused({ url: `/v1/workflows/${wf.id}/events${bad}` }, 400, 'ATS_ERR_VALIDATION');
    }
    assert.deepEqual((await t.app.inject({ url: `/v1/workflows/${wf.id}/verify` })).json(), { ok: true, events: 1_001 });
  });

  test('start, get, signal (taken and not), events, verify; an ended instance takes nothing', async () => {
    await startSignalGet(t);
  });

  test('a signal with an Idempotency-Key is taken once, also when sent again or several at once', async () => {
    await keyedSignals(t);
  });

  test('a signal\'s Idempotency-Key may start with ats: (a job\'s or a start\'s may not), and is taken once like any other', async () => {
    await reservedPrefixSignals(t);
  });

  test('cancel: the instance ends cancelled, its child job is cancelled, its timers dropped', async () => {
    const wf = await started(t);
    const jobId = wf.children[0]!.jobId;
    const r = await t.app.inject(cancel(wf.id, { reason: 'no longer needed' }));
    assert.equal(r.statusCode, 200, r.body);
    const c = r.json() as View;
    assert.deepEqual([c.status, c.children, c.timers, c.accepts, c.version], ['cancelled', [], [], [], 2]);
    const jr = (await t.app.inject({ url: `/v1/jobs/${jobId}` })).json();
    assert.equal(jr.state, 'cancelled');
    assert.match(jr.cancelReason, /no longer needed/);
    const history = (await t.app.inject({ url: `/v1/workflows/${wf.id}/events` })).json().events as Array<{ type: string; data: any }>;
    assert.deepEqual(history.map((e) => e.type), ['START', 'CANCEL']);
    assert.equal(history[1]!.data.reason, 'no longer needed');
    // Without a body too; again: 409.
    const other = await started(t);
    assert.equal((await t.app.inject(cancel(other.id))).statusCode, 200);
    const again = await t.app.inject(cancel(other.id));
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'ATS_ERR_WORKFLOW_ENDED');
  });

  test('a cancel whose body is the JSON null (not an object, not no body) is refused 400 and cancels nothing', async () => {
    const wf = await started(t);
    const r = await t.app.inject({ method: 'POST', url: `/v1/workflows/${wf.id}/cancel`, headers: { 'content-type': 'application/json' }, payload: 'null' });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
    const after = (await t.app.inject({ url: `/v1/workflows/${wf.id}` })).json() as View;
    assert.deepEqual([after.status, after.version], ['active', wf.version]);
  });

  test('a signal a transition takes though it leaves the state as it was (it targets the state the instance is in) is a 200 and a step, not a 409', async () => {
    const wf = await started(t, { name: 'poke' });
    assert.deepEqual(wf.accepts, ['DONE', 'POKE']);
    const r = await t.app.inject(signal(wf.id, { type: 'POKE' }));
    assert.equal(r.statusCode, 200, r.body);
    const v = r.json() as View;
    assert.deepEqual([v.status, v.value, v.version, v.timers], ['active', 'waiting', 2, wf.timers]);
    const history = (await t.app.inject({ url: `/v1/workflows/${wf.id}/events` })).json().events as Array<{ type: string }>;
    assert.deepEqual(history.map((e) => e.type), ['START', 'SIGNAL']);
    assert.deepEqual((await t.app.inject({ url: `/v1/workflows/${wf.id}/verify` })).json(), { ok: true, events: 2 });
  });

  test('a signal\'s other fields reach the machine; SKIP leaves the invocation and cancels its job', async () => {
    const wf = await started(t);
    const r = await t.app.inject(signal(wf.id, { type: 'SKIP', note: { deep: [1, 2] } }));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().value, r.json().children, r.json().accepts], ['waiting', [], ['APPROVE']]);
    assert.equal((await t.app.inject({ url: `/v1/jobs/${wf.children[0]!.jobId}` })).json().state, 'cancelled');
    // A late end of the left child changes nothing.
    assert.equal(await t.workflows!.deliver({
      workflowId: wf.id, invokeId: 'echo', jobId: wf.children[0]!.jobId, state: 'done', result: 1, at: Date.now(), tenant: 'default',
    }), false);
    assert.equal((await view(t, wf.id)).version, 2);
  });

  test('refused requests: 4xx with a stable code, and nothing written', async () => {
    const wf = await started(t);
    await refused(start({}), 400, 'ATS_ERR_VALIDATION', /name/);
    await refused(start({ name: 'approval', input: { amount: 1 }, extra: true }), 400, 'ATS_ERR_VALIDATION');
    await refused(start({ name: 'no such/name' }), 400, 'ATS_ERR_VALIDATION');
    await refused(start({ name: 'nope', input: {} }), 422, 'ATS_ERR_UNKNOWN_WORKFLOW', /nope/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    await refused(start({ name: 'approval', input: { amount: 1, deep } }), 400, 'ATS_ERR_VALIDATION', /input nests deeper/);
    await refused(start({ name: 'approval', input: { amount: 1 }, idempotencyKey: 'ats:mine' }), 400, 'ATS_ERR_VALIDATION');
    await refused({ method: 'POST', url: '/v1/workflows', payload: 'x', headers: { 'content-type': 'text/plain' } }, 415, 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE');
    // A start takes its key as body/idempotencyKey: the header was ignored, and a start sent again started another instance.
    await refused({ ...start({ name: 'approval', input: { amount: 1 } }), headers: { 'idempotency-key': 'k-1' } }, 400, 'ATS_ERR_VALIDATION', /idempotency-key.*body\/idempotencyKey/);

    await refused(signal(wf.id, {}), 400, 'ATS_ERR_VALIDATION', /type/);
    await refused(signal(wf.id, { type: 7 }), 400, 'ATS_ERR_VALIDATION');
    await refused(signal(wf.id, { type: '' }), 400, 'ATS_ERR_VALIDATION');
    await refused(signal(wf.id, { type: 'xstate.done.actor.echo', output: 1 }), 400, 'ATS_ERR_VALIDATION', /xstate\./);
    // The body is the event: the message names the body, not a field 'event' it has not.
    await refused(signal(wf.id, { type: 'SKIP', deep }), 400, 'ATS_ERR_VALIDATION', /^body nests deeper than 32 levels$/);
    await refused({ method: 'POST', url: `/v1/workflows/${wf.id}/events`, payload: '{"type":"SKIP","x":1e400}', headers: { 'content-type': 'application/json' } },
      400, 'ATS_ERR_VALIDATION', /^body holds a number out of range$/);
    await refused({ ...signal(wf.id, { type: 'SKIP' }), headers: { 'idempotency-key': ['a', 'b'] as unknown as string } }, 400, 'ATS_ERR_VALIDATION', /idempotency-key is given more than once/);
    await refused({ method: 'POST', url: `/v1/workflows/${wf.id}/events`, payload: '[1]', headers: { 'content-type': 'application/json' } }, 400, 'ATS_ERR_VALIDATION');
    await refused(cancel(wf.id, { reason: 5 }), 400, 'ATS_ERR_VALIDATION');
    await refused(cancel(wf.id, { why: 'x' }), 400, 'ATS_ERR_VALIDATION');

    const unknown = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    await refused(signal(unknown, { type: 'SKIP' }), 404, 'ATS_ERR_WORKFLOW_NOT_FOUND');
    await refused(cancel(unknown), 404, 'ATS_ERR_WORKFLOW_NOT_FOUND');
    for (const url of [`/v1/workflows/${unknown}`, `/v1/workflows/${unknown}/events`, `/v1/workflows/${unknown}/verify`]) {
      await refused({ url }, 404, 'ATS_ERR_WORKFLOW_NOT_FOUND');
    }
    await refused({ url: '/v1/workflows/not-an-id' }, 400, 'ATS_ERR_VALIDATION');
    await refused({ url: '/v1/workflows?status=sleeping' }, 400, 'ATS_ERR_VALIDATION');
    await refused({ url: '/v1/workflows?cursor=bogus' }, 400, 'ATS_ERR_BAD_CURSOR');
    assert.equal((await view(t, wf.id)).version, 1);
  });

  test('an input the machine refuses (its context factory throws) is a 400 ATS_ERR_INVALID_WORKFLOW_INPUT, and nothing is written', async () => {
    await refused(start({ name: 'approval', input: { amount: 'five' } }), 400, 'ATS_ERR_INVALID_WORKFLOW_INPUT', /amount must be a number/);
    await refused(start({ name: 'approval' }), 400, 'ATS_ERR_INVALID_WORKFLOW_INPUT');
  });

  test('idempotent start: the same key and request again is 200 with the first instance; another request is a 409', async () => {
    const body = { name: 'approval', input: { amount: 9 }, idempotencyKey: 'order-77' };
    const first = await started(t, body);
    const again = await t.app.inject(start(body));
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.headers.location, `workflows/${first.id}`);
    assert.deepEqual(again.json(), first);
    const conflict = await refused(start({ ...body, input: { amount: 10 } }), 409, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
    assert.match(conflict.message, new RegExp(first.id));
    // One child job: the repeat started none.
    const jobs = (await t.app.inject({ url: '/v1/jobs?limit=500&type=demo.echo' })).json().jobs as Array<{ payload: unknown }>;
    assert.equal(jobs.filter((j) => JSON.stringify(j.payload) === '{"amount":9}').length, 1);
  });

  test('list: newest first, filtered by name and status, paged by nextCursor', async () => {
    const r2 = registry().workflow('paged', approval);
    const p = await startSqliteTestApp({}, { workflows: r2 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await p.app.inject(start({ name: i % 2 ? 'paged' : 'approval', input: { amount: i } }));
        assert.equal(r.statusCode, 201, r.body);
        ids.push(r.json().id);
      }
      assert.equal((await p.app.inject(cancel(ids[4]!))).statusCode, 200);
      const pages = await pageIds(p.app, '/v1/workflows?limit=2', 'workflows');
      for (const page of pages) assert.ok(page.length <= 2);
      assert.deepEqual(pages.flat(), [...ids].reverse());
      assert.equal(pages.length, 3);
      const paged = (await p.app.inject({ url: '/v1/workflows?name=paged' })).json();
      assert.deepEqual(paged.workflows.map((w: View) => w.id), [ids[3], ids[1]]);
      assert.equal(paged.nextCursor, null);
      const cancelled = (await p.app.inject({ url: '/v1/workflows?status=cancelled' })).json();
      assert.deepEqual(cancelled.workflows.map((w: View) => [w.id, w.status]), [[ids[4], 'cancelled']]);
      const active = (await p.app.inject({ url: '/v1/workflows?status=active&name=approval' })).json();
      assert.deepEqual(active.workflows.map((w: View) => w.id), [ids[2], ids[0]]);
      // A list item is the instance's view.
      assert.deepEqual(active.workflows[0], await view(p, ids[2]!));
    } finally {
      await p.close();
    }
  });

  test('list: the children\'s job states of a whole page are read together, not once per instance', async () => {
    const p = await startSqliteTestApp({}, { workflows: registry() });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await p.app.inject(start({ name: 'approval', input: { amount: i } }))).statusCode, 201);
      const store = p.store as unknown as { jobStates(ids: readonly string[]): Promise<Map<string, string>> };
      const read = store.jobStates.bind(store);
      const asked: number[] = [];
      store.jobStates = async (ids) => {
        asked.push(ids.length);
        return read(ids);
      };
      const page = (await p.app.inject({ url: '/v1/workflows?limit=500' })).json() as { workflows: View[] };
      assert.equal(page.workflows.length, 5);
      assert.deepEqual(asked, [5], 'one read of the five instances\' children');
      for (const wf of page.workflows) {
        assert.equal(wf.children.length, 1);
        assert.deepEqual(wf, await view(p, wf.id), 'a list item is the instance\'s view');
      }
    } finally {
      await p.close();
    }
  });

  test('list: a page ends where the instances\' inputs and states pass the page\'s bytes, with a cursor to the rest', async () => {
    await pagedByBytes(await startSqliteTestApp({ limits: PAGE_LIMITS }, { workflows: registry() }));
  });

  test('history: a page ends where its events\' data pass the page\'s bytes, with next to the rest; last gives the newest that fit', async () => {
    await historyPagedByBytes(await startSqliteTestApp({ limits: PAGE_LIMITS }, { workflows: registry() }));
  });

  test('a signal to an instance a migration cannot move (its context a BigInt) is taken by the instance\'s own version: 200, not 500', async () => {
    const versions = registry();
    const p = await startSqliteTestApp({}, { workflows: versions });
    try {
      const wf = await started(p, { name: 'counter' });
      versions.workflow('counter', counter, { version: 2, migrate: { from: 1, state: () => ({ value: 'counting', context: { count: 10n } }) } });
      const r = await p.app.inject(signal(wf.id, { type: 'ADD' }));
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json() as View;
      assert.deepEqual([body.definitionVersion, body.context], [1, { count: 1 }]);
      assert.deepEqual((await p.app.inject({ url: `/v1/workflows/${wf.id}/verify` })).json(), { ok: true, events: 2 });
    } finally {
      await p.close();
    }
  });

  test('a signal to an instance whose definition version this server lacks is a 503, never a 500; reads still answer; a cancel needs no definition', async () => {
    const wf = await started(t);
    const ulid = monotonicFactory();
    const without = new WorkflowService({ store: t.store, clock: testClock, ids: { jobId: () => ulid() }, definitions: registerDemoHandlers(new HandlerRegistry()) });
    const other = await buildApp({ ...t.deps, workflows: without });
    try {
      const r = await other.inject(signal(wf.id, { type: 'SKIP' }));
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().code, 'ATS_ERR_WORKFLOW_DEFINITION_MISSING');
      assert.equal(r.headers['retry-after'], '5');
      const read = await other.inject({ url: `/v1/workflows/${wf.id}` });
      assert.equal(read.statusCode, 200, read.body);
      assert.deepEqual([read.json().version, read.json().accepts], [1, []]);
      const v = (await other.inject({ url: `/v1/workflows/${wf.id}/verify` })).json();
      assert.equal(v.ok, false);
      assert.match(v.problem, /approval version 1 is not registered/);
      const c = await other.inject(cancel(wf.id));
      assert.equal(c.statusCode, 200, c.body);
      assert.equal(c.json().status, 'cancelled');
      // Unknown to this server's registry: a start is a 422.
      assert.equal((await other.inject(start({ name: 'approval', input: { amount: 1 } }))).json().code, 'ATS_ERR_UNKNOWN_WORKFLOW');
    } finally {
      await other.close();
    }
  });

  test('the routes exist only with a WorkflowService', async () => {
    const plain = await buildApp({ ...t.deps, workflows: undefined });
    try {
      assert.equal((await plain.inject(start({ name: 'approval', input: { amount: 1 } }))).statusCode, 404);
      const doc = (await plain.inject({ url: '/docs/json' })).json() as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
      assert.equal(Object.keys(doc.paths).some((p) => p.startsWith('/v1/workflows')), false);
      assert.equal('Workflow' in doc.components.schemas, false);
    } finally {
      await plain.close();
    }
    const doc = (await t.app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, { operationId: string }>> };
    // The routes of this file (other files may add more under /v1/workflows, e.g. the graph).
    const served = new Set(Object.entries(doc.paths).filter(([p]) => p.startsWith('/v1/workflows')).flatMap(([, ops]) => Object.values(ops).map((o) => o.operationId)));
    for (const id of ['cancelWorkflow', 'getWorkflow', 'listWorkflowEvents', 'listWorkflows', 'signalWorkflow', 'startWorkflow', 'verifyWorkflow', 'waitWorkflow']) {
      assert.ok(served.has(id), `${id} is not in the document: ${[...served].join(', ')}`);
    }
  });
});

describe('/v1/workflows waits (SQLite)', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp({}, { workflows: registry() });
  });
  after(async () => {
    await t?.close();
  });

  const gateStarted = async (): Promise<View> => started(t, { name: 'gate' });
  /** A request, not awaited, and how long it took once it answers. */
  const timed = (req: InjectOptions) => {
    const at = Date.now();
    return t.app.inject(req).then((r) => ({ r, ms: Date.now() - at }));
  };

  test('met at once: an ended instance for until=done (the default), one in the tagged state for tag:NAME', async () => {
    const wf = await gateStarted();
    assert.equal((await t.app.inject(cancel(wf.id))).statusCode, 200);
    const { r, ms } = await timed(waitFor(wf.id));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().id, r.json().status], [wf.id, 'cancelled']);
    assert.ok(ms < 1000, `${ms} ms`);
    assert.deepEqual(r.json(), await view(t, wf.id), 'the answer is the instance\'s view');

    const asking = await gateStarted();
    assert.equal((await t.app.inject(signal(asking.id, { type: 'ASK' }))).statusCode, 200);
    const tagged = await t.app.inject(waitFor(asking.id, 'until=tag:approval&timeoutMs=0'));
    assert.equal(tagged.statusCode, 200, tagged.body);
    assert.deepEqual([tagged.json().status, tagged.json().value], ['active', 'asking']);
  });

  test('a tag wait on an instance whose definition, changed under the same version, lacks its state is a 503, never a 500', async () => {
    const asking = await gateStarted();
    assert.equal((await t.app.inject(signal(asking.id, { type: 'ASK' }))).statusCode, 200);
    // gate version 1 deployed again with `asking` renamed.
    const renamed = createMachine({
      id: 'gate', initial: 'idle',
      states: { idle: { on: { ASK: 'pending' } }, pending: { tags: ['approval'], on: { APPROVE: 'approved' } }, approved: { type: 'final', tags: ['paid'] } },
    });
    const ulid = monotonicFactory();
    const changed = new WorkflowService({
      store: t.store, clock: testClock, ids: { jobId: () => ulid() }, definitions: registerDemoHandlers(new HandlerRegistry()).workflow('gate', renamed),
    });
    const other = await buildApp({ ...t.deps, workflows: changed });
    try {
      const r = await other.inject(waitFor(asking.id, 'until=tag:approval&timeoutMs=0'));
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().code, 'ATS_ERR_WORKFLOW_DEFINITION_MISSING');
    } finally {
      await other.close();
    }
  });

  test('met later: a signal from another request wakes the wait at once', async () => {
    const wf = await gateStarted();
    const waiting = timed(waitFor(wf.id, 'until=done&timeoutMs=20000'));
    // The wait reads at about 50, 150, 350, 750, 1250 and 1750 ms: a signal at 1300 ms falls in a long pause,
    // and an answer well before the next read comes from the wake-up.
    await sleep(1300);
    const signalled = Date.now();
    assert.equal((await t.app.inject(signal(wf.id, { type: 'FINISH' }))).statusCode, 200);
    const { r, ms } = await waiting;
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().status, r.json().value, r.json().version], ['done', 'finished', 2]);
    assert.ok(ms >= 1300, `${ms} ms`);
    assert.ok(Date.now() - signalled < 250, `answered ${Date.now() - signalled} ms after the signal`);
  });

  test('a tag wait: answered when the instance reaches a state with the tag, a final one too; not for another state', async () => {
    const wf = await gateStarted();
    const approval = timed(waitFor(wf.id, 'until=tag:approval&timeoutMs=20000'));
    const paid = timed(waitFor(wf.id, 'until=tag:paid&timeoutMs=20000'));
    await sleep(100);
    assert.equal((await t.app.inject(signal(wf.id, { type: 'ASK' }))).statusCode, 200);
    const a = (await approval).r;
    assert.equal(a.statusCode, 200, a.body);
    assert.deepEqual([a.json().status, a.json().value, a.json().accepts], ['active', 'asking', ['APPROVE', 'FINISH']]);
    // tag:paid still waits: asking is not tagged paid.
    const stillWaiting = await Promise.race([paid.then(() => 'answered'), sleep(300).then(() => 'waiting')]);
    assert.equal(stillWaiting, 'waiting');
    assert.equal((await t.app.inject(signal(wf.id, { type: 'APPROVE' }))).statusCode, 200);
    const p = (await paid).r;
    assert.equal(p.statusCode, 200, p.body);
    assert.deepEqual([p.json().status, p.json().value], ['done', 'approved']);
  });

  test('met later by a step taken elsewhere (a child\'s end delivered as the driver does): the poll reads it', async () => {
    const body = { name: 'approval', input: { amount: 4 }, idempotencyKey: 'wait-child-1' };
    const waiting = timed({ ...start(body), url: '/v1/workflows?wait=tag:approval&timeoutMs=20000' });
    await sleep(200);
    // The same start again (no wait) answers the instance the waiting one started: its child is the echo job.
    const again = await t.app.inject(start(body));
    assert.equal(again.statusCode, 200, again.body);
    const wf = again.json() as View;
    await echoDone(t, wf, { echoed: 4 });
    const { r } = await waiting;
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.headers.location, `workflows/${wf.id}`);
    assert.deepEqual([r.json().id, r.json().status, r.json().value, r.json().context.echoed], [wf.id, 'active', 'waiting', { echoed: 4 }]);
  });

  test('many waits at once are no listener leak: no MaxListenersExceededWarning (each takes its listener off as it ends)', async () => {
    const wf = await gateStarted();
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const rs = await Promise.all(Array.from({ length: 12 }, () => t.app.inject(waitFor(wf.id, 'timeoutMs=150'))));
      assert.deepEqual(rs.map((r) => r.statusCode), rs.map(() => 408));
      await new Promise((resolve) => setImmediate(resolve)); // a warning is emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
  });

  test('408 ATS_ERR_WAIT_TIMEOUT once timeoutMs passed (0: checked once); the instance is as it was', async () => {
    const wf = await gateStarted();
    const { r, ms } = await timed(waitFor(wf.id, 'timeoutMs=150'));
    assert.equal(r.statusCode, 408, r.body);
    assert.equal(r.json().code, 'ATS_ERR_WAIT_TIMEOUT');
    assert.match(r.json().message, new RegExp(`${wf.id} did not reach its end within 150 ms; it is active in state "idle"`));
    assert.ok(ms >= 140 && ms < 2000, `${ms} ms`);
    const once = await timed(waitFor(wf.id, 'until=tag:approval&timeoutMs=0'));
    assert.equal(once.r.statusCode, 408, once.r.body);
    assert.match(once.r.json().message, /a state tagged approval within 0 ms/);
    assert.ok(once.ms < 500, `${once.ms} ms`);
    assert.equal((await view(t, wf.id)).version, 1);
  });

  test('412 ATS_ERR_WAIT_UNMET when the instance ends elsewhere without reaching the tag, and at once for one that has', async () => {
    const wf = await gateStarted();
    const waiting = timed(waitFor(wf.id, 'until=tag:approval&timeoutMs=20000'));
    await sleep(100);
    // Cancelled through the service (no request of this app: nothing wakes the wait, its poll sees it).
    assert.equal((await t.workflows!.cancel(wf.id, 'default')).ok, true);
    const { r } = await waiting;
    assert.equal(r.statusCode, 412, r.body);
    assert.equal(r.json().code, 'ATS_ERR_WAIT_UNMET');
    assert.match(r.json().message, new RegExp(`${wf.id} ended cancelled in state "idle" without reaching a state tagged approval`));
    // A tag of the state it was cancelled in does not count: a cancelled instance is in no state.
    const asked = await gateStarted();
    assert.equal((await t.app.inject(signal(asked.id, { type: 'ASK' }))).statusCode, 200);
    assert.equal((await t.app.inject(cancel(asked.id))).statusCode, 200);
    const after = await t.app.inject(waitFor(asked.id, 'until=tag:approval'));
    assert.equal(after.statusCode, 412, after.body);
    // Ended in a final state without the tag.
    const finished = await gateStarted();
    assert.equal((await t.app.inject(signal(finished.id, { type: 'FINISH' }))).statusCode, 200);
    assert.equal((await t.app.inject(waitFor(finished.id, 'until=tag:paid&timeoutMs=20000'))).statusCode, 412);
  });

  test('400 on a bad until, wait or timeoutMs, before anything is written', async () => {
    const wf = await gateStarted();
    for (const q of [
      'until=bogus', 'until=tag:', 'until=Done', 'until=tag', `until=tag:${'t'.repeat(201)}`, 'timeoutMs=-1', 'timeoutMs=120001', 'timeoutMs=1.5',
      'timeoutMs=abc', 'timeoutMs=', 'other=1',
    ]) {
      const r = await t.app.inject(waitFor(wf.id, q));
      assert.equal(r.statusCode, 400, `${q}: ${r.body}`);
      assert.equal(r.json().code, 'ATS_ERR_VALIDATION', q);
      // A condition that is neither is refused naming the two it may be, a short one too ('foo' is not "too short").
      if (q.startsWith('until=') && q.length < 100) assert.match(r.json().message, /^querystring\/until must be done or tag:<tag> \(a tag of 1 to 200 characters\)$/, q);
    }
    const short = await t.app.inject(waitFor(wf.id, 'until=foo'));
    assert.match(short.json().message, /^querystring\/until must be done or tag:<tag> /);
    const count = async () => ((await t.app.inject({ url: '/v1/workflows?limit=500' })).json().workflows as View[]).length;
    const before = await count();
    for (const q of ['wait=bogus', 'timeoutMs=100', 'wait=done&timeoutMs=120001', 'wait=tag:']) {
      const r = await t.app.inject({ ...start({ name: 'gate' }), url: `/v1/workflows?${q}` });
      assert.equal(r.statusCode, 400, `${q}: ${r.body}`);
      assert.equal(r.json().code, 'ATS_ERR_VALIDATION', q);
    }
    assert.match((await t.app.inject({ ...start({ name: 'gate' }), url: '/v1/workflows?timeoutMs=100' })).json().message, /give wait too/);
    assert.equal(await count(), before, 'a refused start wrote');
    const unknown = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    const none = await t.app.inject(waitFor(unknown, 'timeoutMs=0'));
    assert.deepEqual([none.statusCode, none.json().code], [404, 'ATS_ERR_WORKFLOW_NOT_FOUND']);
  });

  test('a start that waits: 201 with the ended instance, 200 for the same start again; 408 and 412 name the instance it started', async () => {
    const body = { name: 'instant', idempotencyKey: 'wait-instant-1' };
    const first = await t.app.inject({ ...start(body), url: '/v1/workflows?wait=done&timeoutMs=5000' });
    assert.equal(first.statusCode, 201, first.body);
    assert.deepEqual([first.json().status, first.json().value, first.json().output], ['done', 'over', { ok: true }]);
    assert.equal(first.headers.location, `workflows/${first.json().id}`);
    const again = await t.app.inject({ ...start(body), url: '/v1/workflows?wait=done' });
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json().id, first.json().id);

    // Not met in time: 408, and the instance is there, active.
    const late = await t.app.inject({ ...start({ name: 'gate' }), url: '/v1/workflows?wait=done&timeoutMs=100' });
    assert.equal(late.statusCode, 408, late.body);
    assert.equal(late.json().code, 'ATS_ERR_WAIT_TIMEOUT');
    const id = String(late.headers.location).split('/').pop()!;
    assert.match(late.json().message, new RegExp(`^Workflow instance ${id} was started but did not reach its end within 100 ms; it is active in state "idle"$`));
    assert.deepEqual([(await view(t, id)).status, (await view(t, id)).value], ['active', 'idle']);

    // Ended without the tag while the start waited: 412.
    const gateBody = { name: 'gate', idempotencyKey: 'wait-gate-412' };
    const waiting = t.app.inject({ ...start(gateBody), url: '/v1/workflows?wait=tag:paid&timeoutMs=20000' });
    await sleep(100);
    const made = await t.app.inject(start(gateBody));
    assert.equal(made.statusCode, 200, made.body);
    assert.equal((await t.app.inject(signal(made.json().id, { type: 'FINISH' }))).statusCode, 200);
    const unmet = await waiting;
    assert.equal(unmet.statusCode, 412, unmet.body);
    assert.deepEqual([unmet.json().code, unmet.headers.location], ['ATS_ERR_WAIT_UNMET', `workflows/${made.json().id}`]);
    assert.match(unmet.json().message, /was started but ended done in state "finished" without reaching a state tagged paid$/);
  });

  /**
   * A wait of `wf` over real HTTP on a second app, its client's request, and
   * the instance reads (`service.get`) counted; `firstReadMs` delays the first
   * (the route's own). Runs `fn`, then puts everything back.
   */
  async function overHttp(wf: View, firstReadMs: number, fn: (w: { reads: () => number; destroy: () => void }) => Promise<void>): Promise<void> {
    const service = t.workflows!;
    const get = service.get;
    let reads = 0;
    service.get = async (id, tenant) => {
      if (reads++ === 0 && firstReadMs > 0) await sleep(firstReadMs);
      return get.call(service, id, tenant);
    };
    const other = await buildApp({ ...t.deps });
    try {
      await other.listen({ port: 0, host: '127.0.0.1' });
      const { port } = other.server.address() as AddressInfo;
      const req = httpGet(`http://127.0.0.1:${port}/v1/workflows/${wf.id}/wait?timeoutMs=60000`);
      req.on('error', () => undefined);
      await fn({ reads: () => reads, destroy: () => req.destroy() });
    } finally {
      service.get = get;
      await other.close();
    }
  }

  test('a start that waits, from a client that closes its side once the request is sent: 408 saying the instance was started, with its Location', async () => {
    const other = await buildApp({ ...t.deps });
    try {
      await other.listen({ port: 0, host: '127.0.0.1' });
      const { port } = other.server.address() as AddressInfo;
      const body = JSON.stringify({ name: 'gate' });
      const text = await new Promise<string>((resolve, reject) => {
        let got = '';
        const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.end(
          `POST /v1/workflows?wait=tag:paid&timeoutMs=60000 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
        socket.setEncoding('utf8').on('data', (d: string) => { got += d; }).on('close', () => resolve(got)).on('error', reject);
      });
      assert.match(text, /^HTTP\/1\.1 408 /, text);
      const location = /\r\nlocation: (workflows\/[0-9A-Z]{26})\r\n/i.exec(text)?.[1];
      assert.ok(location, text);
      const answer = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
      assert.equal(answer.code, 'ATS_ERR_WAIT_TIMEOUT');
      assert.equal(answer.message, `Workflow instance ${location.slice('workflows/'.length)} was started but its wait ended: the client closed the connection, or its side of it`);
    } finally {
      await other.close();
    }
  });

  test('a wait stops reading when its client goes away', async () => {
    await overHttp(await gateStarted(), 0, async (w) => {
      await sleep(700);
      assert.ok(w.reads() >= 3, `the wait polls: ${w.reads()} reads`);
      w.destroy();
      await sleep(200);
      const seen = w.reads();
      await sleep(1200); // more than two of the longest pauses
      assert.equal(w.reads(), seen, 'the wait went on reading after its client went away');
    });
  });

  test('a wait whose client went away while the instance was read does not start reading', async () => {
    // The first read (the route's own) outlasts the client.
    await overHttp(await gateStarted(), 400, async (w) => {
      await sleep(100);
      w.destroy();
      await sleep(1500); // the route's read, then more than two of the wait's pauses
      assert.equal(w.reads(), 1, 'the wait read the instance after its client had gone');
    });
  });

  test('closing the app ends its waits at once: 503 ATS_ERR_NOT_READY', async () => {
    const wf = await gateStarted();
    const other = await buildApp({ ...t.deps });
    const at = Date.now();
    const waiting = other.inject(waitFor(wf.id, 'timeoutMs=60000'));
    await sleep(200);
    await other.close();
    const r = await waiting;
    assert.equal(r.statusCode, 503, r.body);
    assert.deepEqual(r.json(), { code: 'ATS_ERR_NOT_READY', message: 'The server is shutting down' });
    assert.ok(Date.now() - at < 5000, `${Date.now() - at} ms`);
  });
});

describe('/v1/workflows with keys: each tenant sees only its own instances', () => {
  let t: TestApp;
  let acme: MadeKey;
  let globex: MadeKey;
  before(async () => {
    const keys = new MemoryKeyStore();
    [acme, globex] = [await keys.make('acme'), await keys.make('globex')];
    t = await startSqliteTestApp({ auth: authWith(keys) }, { workflows: registry() });
  });
  after(async () => {
    await t?.close();
  });

  test('another tenant\'s instance is a 404 like an unknown id, and its signal and cancel change nothing', async () => {
    const r = await injectAs(t, acme, start({ name: 'approval', input: { amount: 3 } }));
    assert.equal(r.statusCode, 201, r.body);
    const wf = r.json() as View;
    // The child job is acme's too.
    assert.equal((await injectAs(t, acme, { url: `/v1/jobs/${wf.children[0]!.jobId}` })).statusCode, 200);
    assert.equal((await injectAs(t, globex, { url: `/v1/jobs/${wf.children[0]!.jobId}` })).statusCode, 404);

    const unknown = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    for (const [req, reqUnknown] of [
      [{ url: `/v1/workflows/${wf.id}` }, { url: `/v1/workflows/${unknown}` }],
      [{ url: `/v1/workflows/${wf.id}/events` }, { url: `/v1/workflows/${unknown}/events` }],
      [{ url: `/v1/workflows/${wf.id}/verify` }, { url: `/v1/workflows/${unknown}/verify` }],
      [signal(wf.id, { type: 'SKIP' }), signal(unknown, { type: 'SKIP' })],
      [cancel(wf.id), cancel(unknown)],
      [waitFor(wf.id, 'timeoutMs=0'), waitFor(unknown, 'timeoutMs=0')],
      [waitFor(wf.id, 'until=tag:approval'), waitFor(unknown, 'until=tag:approval')],
    ] as Array<[InjectOptions, InjectOptions]>) {
      const theirs = await injectAs(t, globex, req);
      const none = await injectAs(t, globex, reqUnknown);
      assert.equal(theirs.statusCode, 404, `${req.url}: ${theirs.body}`);
      assert.equal(theirs.json().code, 'ATS_ERR_WORKFLOW_NOT_FOUND');
      assert.equal(theirs.json().message.replace(wf.id, 'ID'), none.json().message.replace(unknown, 'ID'));
    }
    const mine = await injectAs(t, acme, { url: `/v1/workflows/${wf.id}` });
    assert.deepEqual([mine.json().version, mine.json().status, mine.json().children[0].state], [1, 'active', 'pending']);
    const listed = (await injectAs(t, globex, { url: '/v1/workflows' })).json();
    assert.deepEqual(listed.workflows, []);
    assert.deepEqual((await injectAs(t, acme, { url: '/v1/workflows' })).json().workflows.map((w: View) => w.id), [wf.id]);
    // The same idempotencyKey is each tenant's own.
    const a = await injectAs(t, acme, start({ name: 'approval', input: { amount: 1 }, idempotencyKey: 'k1' }));
    const g = await injectAs(t, globex, start({ name: 'approval', input: { amount: 2 }, idempotencyKey: 'k1' }));
    assert.deepEqual([a.statusCode, g.statusCode], [201, 201]);
    assert.notEqual(a.json().id, g.json().id);
  });
});

describe('/v1/workflows waits are bounded per key, per tenant and in all', () => {
  test('one more than its key\'s or its tenant\'s share is a 429 ATS_ERR_TOO_MANY_WAITS that starts nothing; an ended wait gives its slot back', async () => {
    const keys = new MemoryKeyStore();
    const [acme1, acme2, globex] = [await keys.make('acme'), await keys.make('acme'), await keys.make('globex')];
    // 2 per key, 12 in all: a tenant's keys together 3.
    const t = await startSqliteTestApp({ auth: authWith(keys), limits: { bodyLimitBytes: 1024 * 1024, workflowWaits: { perKey: 2, max: 12 } } }, { workflows: registry() });
    try {
      const gate = await injectAs(t, acme1, start({ name: 'gate' }));
      assert.equal(gate.statusCode, 201, gate.body);
      const id = (gate.json() as View).id;
      const hold = (key: MadeKey) => injectAs(t, key, waitFor(id, 'timeoutMs=20000'));
      /** A check that waits no time: 408 while `key` may still wait, 429 once the held waits took their slots. */
      const probe = async (key: MadeKey) => {
        for (const deadline = Date.now() + 5000; ;) {
          const r = await injectAs(t, key, waitFor(id, 'timeoutMs=0'));
          if (r.statusCode !== 408 || Date.now() > deadline) return r;
          await sleep(20);
        }
      };
      const held = [hold(acme1), hold(acme1)];
      const refusedKey = await probe(acme1);
      assert.equal(refusedKey.statusCode, 429, refusedKey.body);
      assert.equal(refusedKey.json().code, 'ATS_ERR_TOO_MANY_WAITS');
      assert.match(refusedKey.json().message, /per API key/);
      held.push(hold(acme2));
      const refusedTenant = await probe(acme2);
      assert.equal(refusedTenant.statusCode, 429, refusedTenant.body);
      assert.match(refusedTenant.json().message, /tenant/);
      // A start that would wait is refused before it starts anything.
      const count = async () => (await injectAs(t, acme2, { url: '/v1/workflows?limit=500' })).json().workflows.length;
      const before = await count();
      const startRefused = await injectAs(t, acme2, { ...start({ name: 'instant' }), url: '/v1/workflows?wait=done' });
      assert.equal(startRefused.statusCode, 429, startRefused.body);
      assert.equal(await count(), before, 'the refused start started nothing');
      // Another tenant has its own share.
      const theirs = await injectAs(t, globex, { ...start({ name: 'instant' }), url: '/v1/workflows?wait=done' });
      assert.equal(theirs.statusCode, 201, theirs.body);
      // The instance ends: the waits answer and give their slots back.
      assert.equal((await injectAs(t, acme1, cancel(id))).statusCode, 200);
      for (const r of await Promise.all(held)) assert.equal(r.statusCode, 200, r.body);
      const again = await injectAs(t, acme1, waitFor(id, 'timeoutMs=0'));
      assert.equal(again.statusCode, 200, again.body);
    } finally {
      await t.close();
    }
  });
});

describe('/v1/workflows waits end when the key stops working, as its streams do', () => {
  // The key is trusted for KEY_CACHE_MS after a read: a wait sees the revocation within that and one poll.
  const PAST_THE_CACHE_MS = KEY_CACHE_MS + 2 * MAX_POLL_MS;

  test('a wait (and a start that waits) whose key is revoked answers 401 ATS_ERR_UNAUTHORIZED, never the instance after the revocation', async () => {
    const keys = new MemoryKeyStore();
    const [waiter, starter, operator] = [await keys.make('acme'), await keys.make('acme'), await keys.make('acme')];
    const t = await startSqliteTestApp({ auth: authWith(keys) }, { workflows: registry() });
    try {
      const made = await injectAs(t, operator, start({ name: 'gate' }));
      assert.equal(made.statusCode, 201, made.body);
      const id = (made.json() as View).id;
      const waiting = injectAs(t, waiter, waitFor(id, 'until=done&timeoutMs=60000'));
      const startWaiting = injectAs(t, starter, { ...start({ name: 'gate', idempotencyKey: 'held' }), url: '/v1/workflows?wait=done&timeoutMs=60000' });
      await sleep(200);
      await keys.revokeKey(waiter.record.id, Date.now());
      await keys.revokeKey(starter.record.id, Date.now());
      await sleep(PAST_THE_CACHE_MS);
      // The instances end after the revocation: what they ended with is not the revoked keys' to read.
      assert.equal((await injectAs(t, operator, cancel(id))).statusCode, 200);
      const second = (await injectAs(t, operator, { url: '/v1/workflows?limit=10' })).json().workflows.find((w: View) => w.id !== id) as View | undefined;
      if (second) assert.equal((await injectAs(t, operator, cancel(second.id))).statusCode, 200);
      for (const r of [await waiting, await startWaiting]) {
        assert.equal(r.statusCode, 401, r.body);
        assert.equal(r.json().code, 'ATS_ERR_UNAUTHORIZED');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="ats"');
      }
    } finally {
      await t.close();
    }
  });

  test('a wait made without a key while the API was open answers 401 once keys are required', async () => {
    const keys = new MemoryKeyStore();
    const t = await startSqliteTestApp({ auth: authWith(keys) }, { workflows: registry() });
    try {
      const made = await t.app.inject(start({ name: 'gate' }));
      assert.equal(made.statusCode, 201, made.body);
      const id = (made.json() as View).id;
      const waiting = t.app.inject(waitFor(id, 'until=done&timeoutMs=60000'));
      await sleep(200);
      const admin = await keys.make('default');
      await sleep(PAST_THE_CACHE_MS);
      assert.equal((await injectAs(t, admin, cancel(id))).statusCode, 200);
      const r = await waiting;
      assert.equal(r.statusCode, 401, r.body);
      assert.equal(r.json().code, 'ATS_ERR_UNAUTHORIZED');
    } finally {
      await t.close();
    }
  });

  test('a wait whose key still works is answered as ever', async () => {
    const keys = new MemoryKeyStore();
    const [waiter, operator] = [await keys.make('acme', ['read']), await keys.make('acme')];
    const t = await startSqliteTestApp({ auth: authWith(keys) }, { workflows: registry() });
    try {
      const made = await injectAs(t, operator, start({ name: 'gate' }));
      const id = (made.json() as View).id;
      const waiting = injectAs(t, waiter, waitFor(id, 'until=done&timeoutMs=60000'));
      await sleep(PAST_THE_CACHE_MS);
      assert.equal((await injectAs(t, operator, cancel(id))).statusCode, 200);
      const r = await waiting;
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual([r.json().id, r.json().status], [id, 'cancelled']);
    } finally {
      await t.close();
    }
  });
});

describe('/v1/workflows on MariaDB', () => {
  let t: TestApp;
  before(async () => {
    assert.ok(mysqlReady);
    t = await startTestApp({}, { workflows: registry() });
  });
  after(async () => {
    await t?.close();
  });

  test('start, get, signal (taken and not), events, verify; an ended instance takes nothing', async () => {
    await startSignalGet(t);
  });

  test('a signal with an Idempotency-Key is taken once, also when sent again or several at once', async () => {
    await keyedSignals(t);
  });

  test('a signal\'s Idempotency-Key may start with ats: (a job\'s or a start\'s may not), and is taken once like any other', async () => {
    await reservedPrefixSignals(t);
  });

  test('waits: a start that waits for its end, a wait woken by a signal, a 408', async () => {
    const instantly = await t.app.inject({ ...start({ name: 'instant' }), url: '/v1/workflows?wait=done' });
    assert.equal(instantly.statusCode, 201, instantly.body);
    assert.equal(instantly.json().status, 'done');
    const wf = await started(t, { name: 'gate' });
    const waiting = t.app.inject(waitFor(wf.id, 'until=tag:approval&timeoutMs=20000'));
    await sleep(100);
    assert.equal((await t.app.inject(signal(wf.id, { type: 'ASK' }))).statusCode, 200);
    const r = await waiting;
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().value, 'asking');
    assert.equal((await t.app.inject(waitFor(wf.id, 'timeoutMs=50'))).statusCode, 408);
  });

  test('list: a page ends where the instances\' inputs and states pass the page\'s bytes', async () => {
    await pagedByBytes(await startTestApp({ limits: PAGE_LIMITS }, { workflows: registry() }));
  });

  test('history: a page ends where its events\' data pass the page\'s bytes', async () => {
    await historyPagedByBytes(await startTestApp({ limits: PAGE_LIMITS }, { workflows: registry() }));
  });

  test('cancel cancels the child job', async () => {
    const wf = await started(t);
    const r = await t.app.inject(cancel(wf.id, { reason: 'stop' }));
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'cancelled');
    assert.equal((await t.app.inject({ url: `/v1/jobs/${wf.children[0]!.jobId}` })).json().state, 'cancelled');
  });
});
