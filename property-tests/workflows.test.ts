/**
 * Properties of workflows (engine/workflows.ts) on the real engine: the
 * SQLite store, the job transition service, the outbox that children's ends
 * leave by, and the workflow service. The test plays the workers and the log:
 * it runs child jobs to an end (done, or dead without retries) through real
 * job transitions, takes the `child-ended` messages the outbox holds, and
 * delivers them with the faults of an at-least-once log: in any order, late,
 * and several times. Signals arrive between deliveries and replace running
 * invocations (whose jobs the workflow cancels, and whose ends then arrive
 * late). Any step may crash just before its transaction commits (a worker
 * ending a job, the driver delivering an end, the API taking a signal):
 * nothing of it is written, and a crashed delivery is delivered again later.
 * Once every job has ended and every message has been delivered:
 *
 * - every instance has ended (the order saga, the fan-out of
 *   examples/fan-out.ts and the loop always reach an end when their
 *   children do);
 * - each child's end was applied at most once (one CHILD event per job id),
 *   and only to the instance that started it;
 * - each invocation started its job once: every job id in the histories is
 *   distinct, each is a job whose `parent` names its instance, and no two
 *   jobs share an idempotency key;
 * - replaying each instance's history gives its stored state (`verify`).
 *
 * WORKFLOW_PROPERTY_RUNS sets the runs (25 by default); PROPERTY_SEED replays one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { assign, setup } from 'xstate';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { HandlerRegistry, registerModule } from '../engine/handlers.js';
import { CHILD_ENDED_KIND, KIND_HEADER, type ChildEndedMessage } from '../engine/messages.js';
import { TOPICS, type WorkflowRecord } from '../engine/ports.js';
import { mathRandom, systemClock, ulidIds } from '../engine/system.js';
import { TransitionService } from '../engine/transitions.js';
import { WorkflowService } from '../engine/workflows.js';
import { job } from '../machines/workflow.js';
import * as fanOut from '../examples/fan-out.js';
import * as saga from '../examples/order-saga.js';

const RUNS = Number(process.env.WORKFLOW_PROPERTY_RUNS ?? 25);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`WORKFLOW_PROPERTY_RUNS must be a positive integer, got ${process.env.WORKFLOW_PROPERTY_RUNS}`);
const SEED = process.env.PROPERTY_SEED ? { seed: Number(process.env.PROPERTY_SEED) } : {};

/** Works in rounds; RESTART replaces the running invocation (its job is cancelled). */
const loop = setup({ types: { context: {} as { rounds: number } }, actors: { work: job<unknown, { round: number }>('loop.work') } }).createMachine({
  id: 'loop',
  initial: 'working',
  context: { rounds: 0 },
  states: {
    working: {
      invoke: {
        id: 'work', src: 'work', input: ({ context }) => ({ round: context.rounds }),
        onDone: [
          { guard: ({ context }: { context: { rounds: number } }) => context.rounds >= 2, target: 'finished' },
          { target: 'working', reenter: true, actions: assign({ rounds: ({ context }) => context.rounds + 1 }) },
        ],
        onError: 'failed',
      },
      on: { RESTART: { target: 'working', reenter: true } },
    },
    finished: { type: 'final' },
    failed: { type: 'final' },
  },
});

type Step =
  | { kind: 'end'; pick: number; ok: boolean; crash: boolean }
  | { kind: 'deliver'; pick: number; keep: boolean; crash: boolean }
  | { kind: 'signal'; pick: number; crash: boolean };

/** `crash`: the process dies just before the step's transaction commits: nothing of it is written, a delivery stays undelivered. */
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('end' as const), pick: fc.nat(), ok: fc.boolean(), crash: fc.boolean() }),
  fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), keep: fc.boolean(), crash: fc.boolean() }),
  fc.record({ kind: fc.constant('signal' as const), pick: fc.nat(), crash: fc.boolean() }),
);

const planArb = fc.record({
  orders: fc.array(fc.record({ country: fc.constantFrom('NL', 'BE', 'US') }), { minLength: 1, maxLength: 3 }),
  loops: fc.integer({ min: 0, max: 2 }),
  albums: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 2 }),
  steps: fc.array(stepArb, { maxLength: 60 }),
  /** How the final drain orders the messages left. */
  drainSeed: fc.nat(),
});

const RESULT = { chargeId: 'ch', reservationId: 'rs', trackingId: 'tr', photo: 'p.jpg', thumbnail: 'p.thumb.jpg' };

type Plan = typeof planArb extends fc.Arbitrary<infer T> ? T : never;

async function runPlan(plan: Plan): Promise<void> {
  // A crash before COMMIT: the armed fault throws inside the transaction, which rolls back.
  let crashNext = false;
  const store = createSqliteStore({
    file: ':memory:',
    faults: {
      beforeCommit: () => {
        if (!crashNext) return;
        crashNext = false;
        throw new Error('crash before commit');
      },
    },
  });
  const crashing = async (crash: boolean, run: () => Promise<unknown>): Promise<boolean> => {
    crashNext = crash;
    try {
      await run();
      return true;
    } catch (err) {
      if (!crash || (err as Error).message !== 'crash before commit') throw err;
      return false;
    } finally {
      crashNext = false;
    }
  };
  await store.migrate();
  try {
    const registry = new HandlerRegistry();
    await registerModule(saga, registry, 'examples/order-saga.ts');
    await registerModule(fanOut, registry, 'examples/fan-out.ts');
    registry.register('loop.work', async () => null).workflow('test.loop', loop);
    const ids = ulidIds();
    const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids });
    const workflows = new WorkflowService({ store, clock: systemClock, ids, definitions: registry });
    const instances: WorkflowRecord[] = [];
    for (const [i, o] of plan.orders.entries()) {
      const r = await workflows.start({ tenant: 'default', name: 'order.fulfil', input: { orderId: `o${i}`, amount: 10, country: o.country } });
      assert.ok(r.ok);
      instances.push(r.workflow);
    }
    for (let i = 0; i < plan.loops; i++) {
      const r = await workflows.start({ tenant: 'default', name: 'test.loop', input: null });
      assert.ok(r.ok);
      instances.push(r.workflow);
    }
    for (const [i, photos] of plan.albums.entries()) {
      const r = await workflows.start({ tenant: 'default', name: 'album.make', input: { album: `a${i}`, photos: Array.from({ length: photos }, (_, k) => `p${k}.jpg`) } });
      assert.ok(r.ok);
      instances.push(r.workflow);
    }
    /** Messages taken from the outbox, not yet delivered for good (a kept one is delivered again later). */
    const network: ChildEndedMessage[] = [];
    const delivered: ChildEndedMessage[] = [];

    const liveJobs = async () => {
      const out: string[] = [];
      for (const state of ['pending', 'published', 'running'] as const) {
        for (const j of await store.listJobs({ state, limit: 1000 })) out.push(j.id);
      }
      return out.sort();
    };
    const drainOutbox = async () => {
      await store.relayOutbox(10_000, async (rows) => {
        for (const row of rows) {
          if (row.topic === TOPICS.workflows && row.headers[KIND_HEADER] === CHILD_ENDED_KIND) network.push(row.payload as ChildEndedMessage);
        }
      });
    };
    const endJob = async (jobId: string, ok: boolean) => {
      const current = await store.getJob(jobId);
      if (!current) return;
      const attempt = current.snapshot.context.attempt + 1;
      if (current.snapshot.value !== 'running') {
        await transitions.apply(jobId, { type: 'STARTED', attempt, leaseUntil: Date.now() + 60_000, workerId: 'w' });
      }
      const running = await store.getJob(jobId);
      const a = running!.snapshot.context.attempt;
      await transitions.apply(jobId, ok
        ? { type: 'SUCCEEDED', attempt: a, result: RESULT }
        : { type: 'FAILED', attempt: a, error: { message: 'failed for good', retryable: false } });
    };
    const deliver = async (index: number, keep: boolean, crash = false) => {
      const msg = network[index]!;
      // A crashed delivery is not acknowledged: the log delivers it again later.
      if (!(await crashing(crash, () => workflows.deliver(msg)))) return;
      if (!keep) network.splice(index, 1);
      delivered.push(msg);
    };

    for (const step of plan.steps) {
      await drainOutbox();
      if (step.kind === 'end') {
        const live = await liveJobs();
        if (live.length > 0) await crashing(step.crash, () => endJob(live[step.pick % live.length]!, step.ok));
      } else if (step.kind === 'deliver') {
        if (network.length > 0) await deliver(step.pick % network.length, step.keep, step.crash);
      } else {
        const loops = instances.filter((w) => w.name === 'test.loop');
        if (loops.length > 0) await crashing(step.crash, () => workflows.signal(loops[step.pick % loops.length]!.id, 'default', { type: 'RESTART' }));
      }
    }
    // Drain: every job ends (done), every message is delivered, until nothing moves.
    let rng = plan.drainSeed;
    for (let round = 0; round < 200; round++) {
      await drainOutbox();
      const live = await liveJobs();
      if (live.length === 0 && network.length === 0) break;
      for (const id of live) await endJob(id, true);
      await drainOutbox();
      while (network.length > 0) {
        rng = (rng * 1103515245 + 12345) % 2147483648;
        await deliver(rng % network.length, false);
      }
    }

    const seenJobIds = new Set<string>();
    for (const wf of instances) {
      const stored = (await workflows.get(wf.id, 'default'))!;
      assert.notEqual(stored.state.status, 'active', `${wf.name} ${wf.id} ended (it is in ${JSON.stringify(stored.state.value)})`);
      assert.deepEqual(stored.state.children, [], 'no live child is left');
      const events = await store.getWorkflowEvents(wf.id);
      const childEvents = events.filter((e) => e.type === 'CHILD').map((e) => (e.data as { jobId: string }).jobId);
      assert.equal(new Set(childEvents).size, childEvents.length, 'each child end applied at most once');
      for (const e of events) {
        for (const id of (e.data as { jobIds?: string[] }).jobIds ?? []) {
          assert.ok(!seenJobIds.has(id), `job ${id} started once`);
          seenJobIds.add(id);
        }
      }
      for (const id of childEvents) assert.ok(seenJobIds.has(id), 'an applied end is of a job the instance started');
      assert.deepEqual(await workflows.verify(stored), { ok: true, events: events.length });
    }
    // An invocation entered and left in one step (an eventless transition) got an id but started no job.
    const started: string[] = [];
    for (const id of seenJobIds) if (await store.getJob(id)) started.push(id);
    const allJobs = [];
    for (const state of ['done', 'dead', 'cancelled'] as const) allJobs.push(...(await store.listJobs({ state, limit: 10_000 })));
    assert.deepEqual(allJobs.map((j) => j.id).sort(), started.sort(), 'every job is one an instance recorded starting');
    const keys = new Set<string>();
    for (const j of allJobs) {
      assert.ok(j.parent && instances.some((w) => w.id === j.parent!.workflowId), `job ${j.id} names its instance`);
      assert.ok(!keys.has(j.idempotencyKey!), 'idempotency keys are distinct');
      keys.add(j.idempotencyKey!);
    }
    assert.ok(delivered.length >= started.length, 'every started job\'s end was delivered at least once');
  } finally {
    await store.close();
  }
}

describe('workflows under an at-least-once log', () => {
  it(`each child end applies once, each invocation starts once, every instance ends and replays (${RUNS} runs)`, { timeout: 600_000 }, async () => {
    await fc.assert(fc.asyncProperty(planArb, runPlan), { numRuns: RUNS, ...SEED });
  });
});
