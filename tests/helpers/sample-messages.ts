/**
 * The messages the engine would publish for a few jobs taken through every
 * path (done after a retry, a lease expiry, dead then redriven, cancelled
 * while running), built by the engine's own code: the transition writes'
 * outbox rows (`outboxFor`), made into log messages by the relay's
 * `toLogMessage`. No store, no log: for tests of a log and of the contract.
 * `sampleMessages` is the `single` format of `ats.events` (a record per
 * transition), `packedSampleMessages` the default `batch` format (transitions
 * packed per partition by the engine's `packTransitions`).
 * `workflowMessageSamples` are the `workflow-message` notices of
 * `ats.workflows`, as workflow instances that send each other messages
 * write them (on an in-memory SQLite store: a message is stored with its
 * sender's step, so the store is part of how the notice is built).
 */
import assert from 'node:assert/strict';
import { setup } from 'xstate';
import { partitionForKey } from '../../adapters/memory/partition-for-key.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { toLogMessage } from '../../engine/relay.js';
import { ulidIds } from '../../engine/system.js';
import { packTransitions } from '../../engine/transition-records.js';
import type { Clock, LogMessage, TransitionWrite } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import { WorkflowService } from '../../engine/workflows.js';
import type { JobEvent } from '../../machines/job.machine.js';
import { sendToWorkflow } from '../../machines/workflow.js';
import { newJobWrite } from '../contracts/store.contract.js';

type Ev = DistributiveOmit<JobEvent, 'at'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** One job's life: its submit, then `events` a minute apart (past any retry's backoff); leases run 30 s. */
function life(first: TransitionWrite, events: readonly Ev[]): TransitionWrite[] {
  const writes = [first];
  let at = first.event.at;
  for (const e of events) {
    at += 61_000;
    const event = ('leaseUntil' in e ? { ...e, at, leaseUntil: at + 30_000 } : { ...e, at }) as JobEvent;
    const w = transitionWrite(writes[writes.length - 1]!.job, event);
    assert.ok(w, `${e.type} rejected in ${writes[writes.length - 1]!.job.snapshot.value}`);
    writes.push(w);
  }
  return writes;
}

const started = (attempt: number): Ev => ({ type: 'STARTED', attempt, leaseUntil: 0, workerId: 'worker-1' });
const failed = (attempt: number, retryable = true): Ev => ({
  type: 'FAILED', attempt, rand: 0.25, error: { message: `failure on attempt ${attempt}`, name: 'Error', stack: `Error: failure on attempt ${attempt}\n    at handler (handlers.js:1:7)`, retryable },
});

/** The messages, in the order a relay would publish them (outbox ids from 1). */
export function sampleMessages(at = Date.now()): LogMessage[] {
  const jobs = [
    life(newJobWrite({ type: 'demo.fail', payload: { failTimes: 1 }, at }), [
      { type: 'PUBLISHED', attempt: 1 }, started(1), { type: 'HEARTBEAT', attempt: 1, leaseUntil: 0 }, failed(1),
      { type: 'RETRY_DUE' }, started(2), { type: 'SUCCEEDED', attempt: 2, result: { ok: true } },
    ]),
    life(newJobWrite({ type: 'demo.slow', runAt: at + 1000, at }), [
      { type: 'DISPATCH' }, started(1), { type: 'LEASE_EXPIRED', attempt: 1, rand: 0.5 }, { type: 'RETRY_DUE' }, started(2),
      // Found running by the embedded scheduler's restart: the lease ended before its time.
      { type: 'LEASE_EXPIRED', attempt: 2, rand: 0.5, holderGone: true }, { type: 'RETRY_DUE' }, started(3),
      { type: 'SUCCEEDED', attempt: 3 },
    ]),
    life(newJobWrite({ type: 'demo.fail', payload: { always: true }, maxAttempts: 2, at }), [
      started(1), failed(1), { type: 'RETRY_DUE' }, started(2), failed(2), { type: 'REDRIVE' }, started(3), failed(3, false),
    ]),
    life(newJobWrite({ type: 'demo.block', queue: 'other', at }), [started(1), { type: 'CANCEL', reason: 'no longer needed' }]),
    life(newJobWrite({ type: 'demo.echo', at }), [{ type: 'CANCEL' }]),
  ];
  let id = 0;
  return jobs.flat().flatMap((w) => w.outbox).map((m) => toLogMessage({ ...m, id: ++id, createdAt: at, publishedAt: null }));
}

/** Partitions of `ats.events` under `packedSampleMessages`' default partitioner (the scheduler's default count). */
export const SAMPLE_PARTITIONS = 3;

/**
 * `sampleMessages(at)` as the relay publishes them in the default format
 * (`ATS_EVENTS_FORMAT=batch`), as one publish: the transitions whose job ids
 * `partitionOf` maps to one partition packed into one `transitions` record,
 * by the engine's own `packTransitions`; every other message as it was.
 * The default partitioner is the in-process log's (deterministic, 3
 * partitions); with 5 jobs, at least one record holds two jobs or more.
 */
export function packedSampleMessages(
  partitionOf: (key: string) => number = (key) => partitionForKey(key, SAMPLE_PARTITIONS), at = Date.now(),
): LogMessage[] {
  return packTransitions(sampleMessages(at), partitionOf);
}

/**
 * An instance that sends PINGs: one (SEND) or two in one step (SEND_TWO) to
 * the instance `to`; started with `{ to }`, it sends one as it starts.
 */
const courier = setup({
  types: {
    context: {} as { to: string | null },
    input: {} as { to?: string } | null,
    events: {} as { type: 'SEND'; to: string; n: number } | { type: 'SEND_TWO'; to: string; n: number } | { type: 'PING'; n: number },
  },
}).createMachine({
  id: 'sample.courier', initial: 'choosing', context: ({ input }) => ({ to: input?.to ?? null }),
  states: {
    choosing: { always: [{ guard: ({ context }) => context.to !== null, target: 'greeting' }, { target: 'open' }] },
    greeting: { always: { target: 'open', actions: sendToWorkflow(({ context }) => context.to!, { type: 'PING', n: 0 }) } },
    open: {
      on: {
        SEND: { actions: sendToWorkflow(({ event }) => event.to, ({ event }) => ({ type: 'PING', n: event.n })) },
        SEND_TWO: {
          actions: [
            sendToWorkflow(({ event }) => event.to, ({ event }) => ({ type: 'PING', n: event.n })),
            sendToWorkflow(({ event }) => event.to, ({ event }) => ({ type: 'PING', n: event.n + 1 })),
          ],
        },
      },
    },
  },
});

/** An id no instance has: `sendToWorkflow` may name any id of letters and digits; its notice is keyed by it all the same. */
export const NO_SUCH_INSTANCE = 'nobody42';

/**
 * The `workflow-message` notices instances write when they send each other
 * messages, as the relay publishes them (outbox ids from the store): a
 * message sent as the sender starts (its seq 1), one by a later step, two by
 * one step, one to an id no instance has, and one from another tenant's
 * instance. In the order sent. Times from `at`, a millisecond a step.
 */
export async function workflowMessageSamples(at = Date.now()): Promise<LogMessage[]> {
  const store = createSqliteStore({ file: ':memory:' });
  try {
    await store.migrate();
    let now = at;
    const clock: Clock = { now: () => now++, sleep: () => Promise.resolve() };
    const service = new WorkflowService({ store, clock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('sample.courier', courier) });
    const started = async (tenant: string, input: { to: string } | null) => {
      const r = await service.start({ tenant, name: 'sample.courier', input });
      assert.ok(r.ok, JSON.stringify(r));
      return r.workflow.id;
    };
    const signal = async (id: string, tenant: string, event: { type: 'SEND' | 'SEND_TWO'; to: string; n: number }) => {
      assert.ok((await service.signal(id, tenant, event)).ok, `${event.type} refused`);
    };
    const target = await started('default', null);
    const sender = await started('default', { to: target });
    await signal(sender, 'default', { type: 'SEND', to: target, n: 1 });
    await signal(sender, 'default', { type: 'SEND_TWO', to: target, n: 2 });
    await signal(sender, 'default', { type: 'SEND', to: NO_SUCH_INSTANCE, n: 4 });
    const other = await started('acme', null);
    await signal(other, 'acme', { type: 'SEND', to: target, n: 5 });
    const published: LogMessage[] = [];
    await store.relayOutbox(1_000, async (rows) => {
      published.push(...rows.map(toLogMessage));
    });
    return published;
  } finally {
    await store.close();
  }
}
