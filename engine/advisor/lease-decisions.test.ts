/**
 * `ats_advisor_decisions_total{decision="lease"}` counts claims made with a
 * learned lease: one per claim, not one per time the worker asks for the
 * lease (a claim a concurrency limit holds back is tried again and again),
 * and none for a claim the worker made with the static lease because it
 * could not use the advisor's.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import { createMemoryLog } from '../../adapters/memory/index.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { Advisor, type AdvisorDeps, type AdvisorOptions, type DecisionKind } from './advisor.js';
import { HandlerRegistry } from '../handlers.js';
import { silentLogger } from '../logger.js';
import type { JobSpec } from '../ports.js';
import { Relay } from '../relay.js';
import { mathRandom, systemClock, ulidIds } from '../system.js';
import { TransitionService } from '../transitions.js';
import { Waker } from '../wake.js';
import { Worker } from '../worker.js';
import { waitForJob } from '../../tests/helpers/system.js';
import type { LeaseAdvice } from './types.js';

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({ type: 't.limited', payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...o });

/** The worker's static lease, and the advisor's. */
const STATIC_LEASE_MS = 120_000;

/** An advisor that proposes its learned lease with a heartbeat not below it: a lease the worker cannot use. */
class UnusableLeases extends Advisor {
  override leaseFor(type: string, queue: string): LeaseAdvice | null {
    const lease = super.leaseFor(type, queue);
    return lease && { ...lease, heartbeatMs: lease.leaseMs };
  }
}

/**
 * Three jobs under a concurrency limit of 1 (so claims are held back and
 * tried again), run by a worker whose advisor (enforce) learned a lease from
 * 10 quick runs of the type; the lease decisions counted meanwhile.
 */
async function run(makeAdvisor: (deps: AdvisorDeps, opts: AdvisorOptions) => Advisor) {
  const clock = systemClock;
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const log = createMemoryLog({ retainAll: true });
  await log.ensureTopics();
  const waker = new Waker();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  const relay = new Relay({ store, log, transitions, clock, logger: silentLogger, waker }, { batchSize: 100, pollMs: 20, errorBackoffMs: 50, publishedDelayMs: 0 });
  relay.start();
  // History: 10 quick runs of the type, so a learned lease exists.
  for (let i = 0; i < 10; i++) {
    const s = await transitions.submit(spec());
    assert.ok(s.ok);
    assert.ok((await transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'seed' })).ok);
    assert.ok((await transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
  }
  const decisions: Array<[DecisionKind, boolean]> = [];
  const advisor = makeAdvisor({ store, clock, logger: silentLogger, onDecision: (k, a) => decisions.push([k, a]) },
    { mode: 'enforce', pollMs: 1000, historyEvents: 100_000, model: { minRunSamples: 5, staticLeaseMs: STATIC_LEASE_MS, staticHeartbeatMs: 60_000 } });
  await advisor.init();
  await advisor.catchUp();
  const proposed = advisor.leaseFor('t.limited', 'default');
  assert.ok(proposed && proposed.leaseMs < STATIC_LEASE_MS && proposed.leaseMs % 1000 === 0, `a learned lease: ${JSON.stringify(proposed)}`);
  decisions.length = 0;

  const registry = new HandlerRegistry().register('t.limited', async () => { await sleep(400); return null; });
  const worker = new Worker({ log, transitions, clock, logger: silentLogger, registry, store, advisor },
    { workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: STATIC_LEASE_MS, heartbeatMs: 60_000, shutdownGraceMs: 200 });
  await worker.start();
  await store.putLimit('mail', { concurrency: 1, rate: null }, Date.now());
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await transitions.submit(spec({ concurrencyKey: 'mail' }));
    assert.ok(s.ok);
    ids.push(s.job.id);
  }
  for (const id of ids) await waitForJob(store, id, (j) => j.snapshot.value === 'done', 20_000, 'done');
  // The lease each claim took (one attempt each): its STARTED's leaseUntil minus its time (read a moment after
  // the worker's), rounded up to whole seconds.
  const leases: number[] = [];
  for (const id of ids) {
    const started = (await store.getEvents(id)).find((e) => e.type === 'STARTED')!;
    leases.push(Math.ceil(((started.data as { leaseUntil: number }).leaseUntil - started.at) / 1000) * 1000);
  }
  const throttled = worker.counters.throttled;
  await worker.stop();
  await relay.stop();
  await log.close();
  await store.close();
  return { proposed, leases, throttled, leaseDecisions: decisions.filter(([k]) => k === 'lease') };
}

it('counts one lease decision per claim made with the learned lease', async () => {
  const r = await run((deps, opts) => new Advisor(deps, opts));
  assert.deepEqual(r.leases, r.leases.map(() => r.proposed.leaseMs), 'each claim took the learned lease');
  assert.equal(r.leaseDecisions.length, r.leases.length, `lease decisions counted: ${r.leaseDecisions.length} for ${r.leases.length} claims (throttled=${r.throttled})`);
  assert.ok(r.leaseDecisions.every(([, applied]) => applied));
});

it('counts no lease decision for a claim the worker made with the static lease, the advisor\'s being unusable', async () => {
  const r = await run((deps, opts) => new UnusableLeases(deps, opts));
  assert.deepEqual(r.leases, r.leases.map(() => STATIC_LEASE_MS), 'each claim took the static lease');
  assert.deepEqual(r.leaseDecisions, [], 'no claim was made with a lease the advisor sized');
});
