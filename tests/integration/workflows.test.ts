/**
 * Workflows end to end, on the embedded store and log and on MariaDB +
 * Kafka: the order saga of examples/order-saga.ts runs through its jobs to
 * `confirmed`; a shipping failure after the charge undoes it (the refund
 * runs); a cancel cancels the running child; a durable `after` timer fires
 * unless a signal comes first; the fan-out of examples/fan-out.ts runs a
 * job per photo and joins them; instances report to another with
 * XState's `sendTo`, delivered through the log; and every instance's history
 * replays to its stored state.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assign, sendTo, setup } from 'xstate';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry, registerModule } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { WorkflowRecord } from '../../engine/ports.js';
import { job } from '../../machines/workflow.js';
import * as fanOut from '../../examples/fan-out.js';
import * as saga from '../../examples/order-saga.js';
import { FAST, startTestSystem, type TestSystem } from '../helpers/system.js';

const TENANT = 'default';

/** Waits on a slow job until cancelled (its signal aborts). */
const slow = (_p: unknown, ctx: { signal: AbortSignal }) =>
  new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));

const approval = setup({ actors: { wait: job('test.slow') } }).createMachine({
  id: 'approval',
  initial: 'waiting',
  states: {
    waiting: { after: { 400: 'expired' }, on: { APPROVE: 'approved' } },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
});

const holding = setup({ actors: { wait: job('test.slow') } }).createMachine({
  id: 'holding', initial: 'running', states: { running: { invoke: { id: 'wait', src: 'wait' } } },
});

/** Runs one job, reports its result to the coordinator instance named in its input, and ends. */
const reporter = setup({
  types: { context: {} as { coordinator: string; n: number }, input: {} as { coordinator: string; n: number } },
  actors: { work: job<number, { n: number }>('test.square') },
}).createMachine({
  id: 'reporter', initial: 'working', context: ({ input }) => input,
  states: {
    working: {
      invoke: {
        id: 'work', src: 'work', input: ({ context }) => ({ n: context.n }),
        // XState's own sendTo, by instance id: made durable at registration.
        onDone: { target: 'reported', actions: sendTo(({ context }) => context.coordinator, ({ event }) => ({ type: 'REPORT', value: event.output })) },
      },
    },
    reported: { type: 'final' },
  },
});

/** Waits for `expected` REPORTs from other instances, then ends with their sum. */
const coordinator = setup({
  types: { context: {} as { expected: number; got: number[] }, input: {} as { expected: number }, events: {} as { type: 'REPORT'; value: number } },
}).createMachine({
  id: 'coordinator', initial: 'collecting', context: ({ input }) => ({ expected: input.expected, got: [] }),
  states: {
    collecting: {
      always: { guard: ({ context }) => context.got.length >= context.expected, target: 'summed' },
      on: { REPORT: { actions: assign({ got: ({ context, event }) => [...context.got, event.value] }) } },
    },
    summed: { type: 'final' },
  },
  output: ({ context }) => ({ sum: context.got.reduce((a, b) => a + b, 0), reports: context.got.length }),
});

async function registry(): Promise<HandlerRegistry> {
  const r = new HandlerRegistry();
  await registerModule(saga, r, 'examples/order-saga.ts');
  await registerModule(fanOut, r, 'examples/fan-out.ts');
  r.register('test.slow', slow);
  r.workflow('test.approval', approval);
  r.workflow('test.holding', holding);
  r.register('test.square', async (p: { n: number }) => p.n * p.n);
  r.workflow('test.reporter', reporter);
  r.workflow('test.coordinator', coordinator);
  return r;
}

async function waitFor(system: System, id: string, ok: (wf: WorkflowRecord) => boolean, what: string, timeoutMs = 30_000): Promise<WorkflowRecord> {
  const deadline = Date.now() + timeoutMs;
  let last: WorkflowRecord | null = null;
  while (Date.now() < deadline) {
    last = await system.workflows.get(id, TENANT);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`workflow ${id} did not reach ${what} within ${timeoutMs} ms (status ${last?.state.status}, value ${JSON.stringify(last?.state.value)})`);
}

const ended = (wf: WorkflowRecord) => wf.state.status !== 'active';

async function start(system: System, name: string, input: unknown): Promise<WorkflowRecord> {
  const r = await system.workflows.start({ tenant: TENANT, name, input });
  assert.ok(r.ok, `started: ${JSON.stringify(r)}`);
  return r.workflow;
}

/** The ids of every job the instance started, from its history. */
async function childJobs(system: System, id: string): Promise<string[]> {
  const events = await system.store.getWorkflowEvents(id);
  return events.flatMap((e) => (e.data as { jobIds?: string[] }).jobIds ?? []);
}

function suite(name: string, open: () => Promise<{ system: System; stop(): Promise<void> }>): void {
  describe(name, { timeout: 120_000 }, () => {
    let system: System;
    let stop: () => Promise<void>;
    before(async () => ({ system, stop } = await open()));
    after(() => stop?.());

    it('the order saga runs its jobs (two in parallel) to confirmed, and its history replays', async () => {
      const wf = await start(system, 'order.fulfil', { orderId: 'o-1', amount: 30 });
      const done = await waitFor(system, wf.id, ended, 'its end');
      assert.equal(done.state.status, 'done');
      assert.equal(done.state.value, 'confirmed');
      assert.deepEqual(done.state.output, { orderId: 'o-1', chargeId: (done.state.output as { chargeId: string }).chargeId, trackingId: 'tr-o-1', failure: null });
      assert.match(String((done.state.output as { chargeId: string }).chargeId), /^ch-o-1-/);
      const types = [];
      for (const id of await childJobs(system, wf.id)) {
        const j = await system.store.getJob(id);
        assert.equal(j?.snapshot.value, 'done', `${j?.type} is done`);
        assert.deepEqual(j?.parent?.workflowId, wf.id);
        types.push(j!.type);
      }
      assert.deepEqual(types.sort(), ['payment.charge', 'shipping.book', 'stock.reserve']);
      const events = await system.store.getWorkflowEvents(wf.id);
      assert.deepEqual(events.map((e) => e.type), ['START', 'CHILD', 'CHILD', 'CHILD']);
      assert.deepEqual(await system.workflows.verify(done), { ok: true, events: 4 });
    });

    it('a failure after the charge undoes it: the refund runs and the saga ends refunded', async () => {
      const wf = await start(system, 'order.fulfil', { orderId: 'o-2', amount: 12, country: 'US' });
      const done = await waitFor(system, wf.id, ended, 'its end');
      assert.equal(done.state.value, 'refunded');
      assert.match(String((done.state.output as { failure: string }).failure), /no carrier ships to US/);
      const jobs = await Promise.all((await childJobs(system, wf.id)).map((id) => system.store.getJob(id)));
      const refund = jobs.find((j) => j?.type === 'payment.refund');
      assert.equal(refund?.snapshot.value, 'done', 'the charge was refunded');
      assert.equal(jobs.find((j) => j?.type === 'shipping.book')?.snapshot.value, 'dead');
      assert.equal((await system.workflows.verify(done)).ok, true);
    });

    it('the fan-out runs a job per photo (100), joins them in any order and publishes; failed photos are counted, not lost', async () => {
      const photos = Array.from({ length: 100 }, (_, i) => (i === 17 || i === 58 ? `notes-${i}.txt` : `p${i}.jpg`));
      const wf = await start(system, 'album.make', { album: 'a-1', photos });
      assert.equal(wf.state.children.length, 100, 'a child job per photo, started with the instance');
      const done = await waitFor(system, wf.id, ended, 'its end', 90_000);
      assert.equal(done.state.value, 'published');
      assert.deepEqual(done.state.output, { album: 'a-1', thumbnails: 98, failed: 2 });
      const events = await system.store.getWorkflowEvents(wf.id);
      assert.equal(events.filter((e) => e.type === 'CHILD').length, 101, 'each photo\'s end once, then the publish');
      const jobIds = await childJobs(system, wf.id);
      assert.equal(new Set(jobIds).size, 101);
      assert.deepEqual(await system.workflows.verify(done), { ok: true, events: events.length });
    });

    it('cancelling an instance cancels its running child', async () => {
      const wf = await start(system, 'test.holding', null);
      const [childId] = wf.state.children.map((c) => c.jobId);
      const deadline = Date.now() + 20_000;
      while ((await system.store.getJob(childId!))?.snapshot.value !== 'running') {
        assert.ok(Date.now() < deadline, 'the child started');
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await system.workflows.cancel(wf.id, TENANT, 'changed my mind');
      assert.ok(r.ok);
      assert.equal(r.workflow.state.status, 'cancelled');
      const child = await system.store.getJob(childId!);
      assert.equal(child?.snapshot.value, 'cancelled');
      assert.match(String(child?.snapshot.context.cancelReason), /changed my mind/);
      const again = await system.workflows.cancel(wf.id, TENANT);
      assert.equal(again.ok, false, 'an ended instance cannot be cancelled again');
    });

    it('instances report to a coordinator with sendTo: each message is delivered through the log once, and all replay', async () => {
      const hub = await start(system, 'test.coordinator', { expected: 4 });
      const reporters = [];
      for (const n of [1, 2, 3, 4]) reporters.push(await start(system, 'test.reporter', { coordinator: hub.id, n }));
      const done = await waitFor(system, hub.id, ended, 'its end');
      assert.equal(done.state.value, 'summed');
      assert.deepEqual(done.state.output, { sum: 1 + 4 + 9 + 16, reports: 4 });
      const events = await system.store.getWorkflowEvents(hub.id);
      assert.deepEqual(events.map((e) => e.type), ['START', 'MESSAGE', 'MESSAGE', 'MESSAGE', 'MESSAGE']);
      assert.deepEqual(events.slice(1).map((e) => (e.data as { from: string }).from).sort(), reporters.map((r) => r.id).sort());
      assert.deepEqual(await system.workflows.verify(done), { ok: true, events: 5 });
      for (const r of reporters) {
        const wf = await waitFor(system, r.id, ended, 'its end');
        assert.equal(wf.state.value, 'reported');
        assert.equal((await system.workflows.verify(wf)).ok, true);
      }
      assert.deepEqual(await system.store.pendingWorkflowMessages(hub.id, 10), [], 'every message was taken');
    });

    it('a durable timer fires unless a signal comes first; the signal drops it', async () => {
      const expired = await start(system, 'test.approval', null);
      const approved = await start(system, 'test.approval', null);
      const r = await system.workflows.signal(approved.id, TENANT, { type: 'APPROVE' });
      assert.ok(r.ok);
      assert.equal(r.workflow.state.value, 'approved');
      assert.deepEqual(r.workflow.state.timers, []);
      const e = await waitFor(system, expired.id, ended, 'its timeout');
      assert.equal(e.state.value, 'expired');
      assert.deepEqual((await system.store.getWorkflowEvents(expired.id)).map((x) => x.type), ['START', 'TIMER']);
      assert.equal((await system.workflows.signal(expired.id, TENANT, { type: 'APPROVE' })).ok, false, 'an ended instance takes no signal');
    });
  });
}

suite('workflows, embedded (SQLite, in-process log)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-workflows-'));
  const config = compileConfig({ ...FAST, dataDir, advisor: 'off' }, { hostname: 'test', pid: process.pid });
  const system = await compose(config, { registry: await registry(), logger: silentLogger });
  await system.start();
  return {
    system,
    async stop() {
      await system.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

suite('workflows, MariaDB + Kafka', async () => {
  const t: TestSystem = await startTestSystem({ registry: await registry(), raw: { advisor: 'off' } });
  return { system: t.system, stop: () => t.stop() };
});
