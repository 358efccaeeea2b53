/**
 * The metrics hooks: the transition service reports each commit once, with
 * what it wrote and the job before it (also when the store decided twice
 * after a lost race); the stores report transactions and lost races.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { monotonicFactory } from 'ulid';
import { withRetry } from '../adapters/mysql/tx.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { VersionConflict } from '../adapters/sql/writes.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { ConflictReason, Metrics, StoreOp } from './metrics.js';
import type { Clock, JobRecord, JobSpec, JobStore, TransitionWrite } from './ports.js';
import { TransitionService } from './transitions.js';

const clock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
const spec: JobSpec = { type: 't', payload: {}, queue: 'q', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 };

function spy() {
  const commits: Array<{ writes: TransitionWrite[]; before: (JobRecord | null)[] }> = [];
  const tx: Array<[StoreOp, number]> = [];
  const conflicts: Array<[StoreOp, ConflictReason]> = [];
  const metrics: Pick<Metrics, 'transitionsCommitted' | 'dbTransaction' | 'dbConflict'> = {
    transitionsCommitted: (writes, before) => void commits.push({ writes: [...writes], before: [...before] }),
    dbTransaction: (op, ms) => void tx.push([op, ms]),
    dbConflict: (op, reason) => void conflicts.push([op, reason]),
  };
  return { metrics, commits, tx, conflicts };
}

async function withStore(fn: (store: JobStore, s: ReturnType<typeof spy>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-metrics-hooks-'));
  const s = spy();
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite'), metrics: s.metrics });
  try {
    await store.migrate();
    await fn(store, s);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('each commit is reported once: submits with before = null, events with the job as it was', async () => {
  await withStore(async (store, s) => {
    const ulid = monotonicFactory();
    const svc = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid() }, metrics: s.metrics });
    const [a, b] = await svc.submitMany([spec, spec]);
    assert.ok(a!.ok && b!.ok);
    assert.equal(s.commits.length, 1);
    assert.deepEqual(s.commits[0]!.before, [null, null]);
    assert.deepEqual(s.commits[0]!.writes.map((w) => [w.event.type, w.event.from, w.event.to]), [['SUBMITTED', null, 'pending'], ['SUBMITTED', null, 'pending']]);

    const started = await svc.apply(a!.job.id, { type: 'STARTED', attempt: 1, leaseUntil: clock.now() + 10_000, workerId: 'w' });
    assert.ok(started.ok);
    assert.equal(s.commits.length, 2);
    assert.equal(s.commits[1]!.before[0]!.snapshot.value, 'pending');
    assert.equal(s.commits[1]!.before[0]!.version, 1);
    assert.deepEqual([s.commits[1]!.writes[0]!.event.from, s.commits[1]!.writes[0]!.event.to], ['pending', 'running']);

    // A rejected event commits nothing and reports nothing.
    const stale = await svc.apply(a!.job.id, { type: 'SUCCEEDED', attempt: 7 });
    assert.equal(stale.ok, false);
    assert.equal(s.commits.length, 2);
    // Store transactions were timed, per operation.
    assert.deepEqual([...new Set(s.tx.map(([op]) => op))].sort(), ['insert', 'update']);
    assert.ok(s.tx.every(([, ms]) => ms >= 0));
  });
});

test('a store that decided twice (a lost race) is reported once, with the decision that committed', async () => {
  await withStore(async (store, s) => {
    let decisions = 0;
    const racing: JobStore = {
      ...store,
      update: (ids, decision) => {
        const d = typeof decision === 'function' ? { decide: decision, now: 0 } : decision;
        return store.update(ids, {
          ...d,
          decide: (jobs, last, limits, awaited) => {
            d.decide(jobs, last, limits, awaited);
            decisions++;
            return d.decide(jobs, last, limits, awaited);
          },
        });
      },
    };
    const ulid = monotonicFactory();
    const svc = new TransitionService({ store: racing, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid() }, metrics: s.metrics });
    const [a] = await svc.submitMany([spec]);
    await svc.applyMany([{ jobId: a!.job.id, event: { type: 'CANCEL', reason: 'x' } }]);
    assert.equal(decisions, 1);
    assert.equal(s.commits.length, 2);
    assert.deepEqual(s.commits[1]!.writes.map((w) => w.event.type), ['CANCEL']);
  });
});

test('withRetry reports each lost race with its reason, and nothing for other errors', async () => {
  const lost: ConflictReason[] = [];
  let tries = 0;
  const r = await withRetry(async () => {
    tries++;
    if (tries === 1) throw new VersionConflict('j', 'moved');
    if (tries === 2) throw Object.assign(new Error('deadlock'), { errno: 1213 });
    if (tries === 3) throw Object.assign(new Error('lock wait'), { errno: 1205 });
    return 'ok';
  }, 8, (reason) => lost.push(reason));
  assert.equal(r, 'ok');
  assert.deepEqual(lost, ['version_conflict', 'deadlock', 'lock_wait_timeout']);
  await assert.rejects(withRetry(async () => {
    throw new Error('syntax');
  }, 8, (reason) => lost.push(reason)), /syntax/);
  assert.equal(lost.length, 3);
});
