/**
 * `/v1/workflows` on the real stores (SQLite throughout; MariaDB for the
 * start, signal and read path): a start shows its child job; a signal the
 * machine takes is a step, one it does not take a 409 with `accepts` that
 * writes nothing; a cancel cancels the child's job; the history replays;
 * another tenant's instance is a 404; refused bodies write nothing; a
 * repeated start with its idempotencyKey answers the first instance; the
 * list pages newest first. A child's end is delivered as the driver would
 * (`WorkflowService.deliver`), no worker runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { assign, setup } from 'xstate';
import type { ErrorCode } from '../engine/errors.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { WorkflowService } from '../engine/workflows.js';
import { job } from '../machines/workflow.js';
import { monotonicFactory } from 'ulid';
import { buildApp } from './app.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp, testClock, type TestApp } from '../tests/helpers/app.js';
import { authWith, injectAs, MemoryKeyStore, type MadeKey } from '../tests/helpers/keys.js';

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
      on: { APPROVE: { target: 'approved', actions: assign({ approvedBy: ({ event }) => (event as { by?: string }).by ?? null }) } },
      after: { [HOUR]: 'expired' },
    },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
  output: ({ context }) => ({ amount: context.amount, approvedBy: context.approvedBy }),
});

const registry = () => registerDemoHandlers(new HandlerRegistry()).workflow('approval', approval);

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

/** The start, signal and read path: the same on either store. */
async function startSignalGet(t: TestApp): Promise<void> {
  const before = Date.now();
  const r = await t.app.inject(start({ name: 'approval', input: { amount: 5 } }));
  assert.equal(r.statusCode, 201, r.body);
  const wf = r.json() as View;
  assert.equal(r.headers.location, `/v1/workflows/${wf.id}`);
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
  const history = events.json().events as Array<{ seq: number; type: string; status: string; at: string; data: any }>;
  assert.deepEqual(history.map((e) => [e.seq, e.type, e.status]), [[1, 'START', 'active'], [2, 'CHILD', 'active'], [3, 'SIGNAL', 'done']]);
  assert.deepEqual(history[0]!.data.jobIds, [child!.jobId]);
  assert.deepEqual(history[2]!.data.event, { type: 'APPROVE', by: 'ann' });
  assert.ok(history.every((e) => !Number.isNaN(Date.parse(e.at))));

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

  test('start, get, signal (taken and not), events, verify; an ended instance takes nothing', async () => {
    await startSignalGet(t);
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

    await refused(signal(wf.id, {}), 400, 'ATS_ERR_VALIDATION', /type/);
    await refused(signal(wf.id, { type: 7 }), 400, 'ATS_ERR_VALIDATION');
    await refused(signal(wf.id, { type: '' }), 400, 'ATS_ERR_VALIDATION');
    await refused(signal(wf.id, { type: 'xstate.done.actor.echo', output: 1 }), 400, 'ATS_ERR_VALIDATION', /xstate\./);
    await refused(signal(wf.id, { type: 'SKIP', deep }), 400, 'ATS_ERR_VALIDATION', /event nests deeper/);
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
    assert.equal(again.headers.location, `/v1/workflows/${first.id}`);
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
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: { statusCode: number; body: string; json(): unknown } = await p.app.inject({ url: `/v1/workflows?limit=2${cursor ? `&cursor=${cursor}` : ''}` });
        assert.equal(r.statusCode, 200, r.body);
        const page = r.json() as { workflows: View[]; nextCursor: string | null };
        assert.ok(page.workflows.length <= 2);
        seen.push(...page.workflows.map((w) => w.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      assert.deepEqual(seen, [...ids].reverse());
      assert.equal(pages, 3);
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

  test('a step of an instance whose definition version this server lacks is a 503, never a 500; reads still answer', async () => {
    const wf = await started(t);
    const ulid = monotonicFactory();
    const without = new WorkflowService({ store: t.store, clock: testClock, ids: { jobId: () => ulid() }, definitions: registerDemoHandlers(new HandlerRegistry()) });
    const other = await buildApp({ ...t.deps, workflows: without });
    try {
      for (const req of [signal(wf.id, { type: 'SKIP' }), cancel(wf.id)]) {
        const r = await other.inject(req);
        assert.equal(r.statusCode, 503, r.body);
        assert.equal(r.json().code, 'ATS_ERR_WORKFLOW_DEFINITION_MISSING');
        assert.equal(r.headers['retry-after'], '5');
      }
      const read = await other.inject({ url: `/v1/workflows/${wf.id}` });
      assert.equal(read.statusCode, 200, read.body);
      assert.deepEqual([read.json().version, read.json().accepts], [1, []]);
      const v = (await other.inject({ url: `/v1/workflows/${wf.id}/verify` })).json();
      assert.equal(v.ok, false);
      assert.match(v.problem, /approval version 1 is not registered/);
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
    assert.deepEqual(
      Object.entries(doc.paths).filter(([p]) => p.startsWith('/v1/workflows')).flatMap(([, ops]) => Object.values(ops).map((o) => o.operationId)).sort(),
      ['cancelWorkflow', 'getWorkflow', 'listWorkflowEvents', 'listWorkflows', 'signalWorkflow', 'startWorkflow', 'verifyWorkflow'],
    );
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

  test('cancel cancels the child job', async () => {
    const wf = await started(t);
    const r = await t.app.inject(cancel(wf.id, { reason: 'stop' }));
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'cancelled');
    assert.equal((await t.app.inject({ url: `/v1/jobs/${wf.children[0]!.jobId}` })).json().state, 'cancelled');
  });
});
