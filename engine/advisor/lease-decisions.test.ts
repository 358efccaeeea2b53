/**
 * `ats_advisor_decisions_total{decision="lease"}` counts claims made with a
 * learned lease: one per claim, not one per time the worker asks for the
 * lease (a claim a concurrency limit holds back is tried again and again).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import { createMemoryLog } from '../../adapters/memory/index.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { Advisor, type DecisionKind } from './advisor.js';
import { HandlerRegistry } from '../handlers.js';
import { silentLogger } from '../logger.js';
import type { JobSpec } from '../ports.js';
import { Relay } from '../relay.js';
import { mathRandom, systemClock, ulidIds } from '../system.js';
import { TransitionService } from '../transitions.js';
import { Waker } from '../wake.js';
import { Worker } from '../worker.js';
import { waitForJob } from '../../tests/helpers/system.js';

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({ type: 't.limited', payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...o });

it('counts one lease decision per claim made with the learned lease', async () => {
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
  const advisor = new Advisor({ store, clock, logger: silentLogger, onDecision: (k, a) => decisions.push([k, a]) },
    { mode: 'enforce', pollMs: 1000, historyEvents: 100_000, model: { minRunSamples: 5, staticLeaseMs: 120_000, staticHeartbeatMs: 60_000 } });
  await advisor.init();
  await advisor.catchUp();
  assert.ok(advisor.leaseFor('t.limited', 'default'));
  decisions.length = 0;

  const registry = new HandlerRegistry().register('t.limited', async () => { await sleep(400); return null; });
  const worker = new Worker({ log, transitions, clock, logger: silentLogger, registry, store, advisor },
    { workerId: 'w1', groupId: 'ats-workers', concurrency: 4, leaseMs: 120_000, heartbeatMs: 60_000, shutdownGraceMs: 200 });
  await worker.start();
  await store.putLimit('mail', { concurrency: 1, rate: null }, Date.now());
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await transitions.submit(spec({ concurrencyKey: 'mail' }));
    assert.ok(s.ok);
    ids.push(s.job.id);
  }
  for (const id of ids) await waitForJob(store, id, (j) => j.snapshot.value === 'done', 20_000, 'done');
  const claims = ids.length; // one attempt each
  const leaseDecisions = decisions.filter(([k]) => k === 'lease').length;
  await worker.stop();
  await relay.stop();
  await log.close();
  await store.close();
  assert.equal(leaseDecisions, claims, `lease decisions counted: ${leaseDecisions} for ${claims} claims (throttled=${worker.counters.throttled})`);
});
