/**
 * The messages the engine would publish for a few jobs taken through every
 * path (done after a retry, a lease expiry, dead then redriven, cancelled
 * while running), built by the engine's own code: the transition writes'
 * outbox rows (`outboxFor`), made into log messages by the relay's
 * `toLogMessage`. No store, no log: for tests of a log and of the contract.
 * `sampleMessages` is the `single` format of `ats.events` (a record per
 * transition), `packedSampleMessages` the default `batch` format (transitions
 * packed per partition by the engine's `packTransitions`).
 */
import assert from 'node:assert/strict';
import { partitionForKey } from '../../adapters/memory/partition-for-key.js';
import { toLogMessage } from '../../engine/relay.js';
import { packTransitions } from '../../engine/transition-records.js';
import type { LogMessage, TransitionWrite } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import type { JobEvent } from '../../machines/job.machine.js';
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
      { type: 'SUCCEEDED', attempt: 2 },
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
