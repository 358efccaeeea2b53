/**
 * `verifyCounts` on the embedded store: quiet when the counters are right,
 * precise when they drift; `verifyJob` while a transition or a delete lands
 * between its reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { monotonicFactory } from 'ulid';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { newJobWrite } from '../tests/contracts/store.contract.js';
import { intercept } from '../tests/helpers/intercept.js';
import type { Clock, JobEventRecord, JobSpec, JobStore } from './ports.js';
import { TransitionService } from './transitions.js';
import { verifyCounts, verifyJob } from './verify.js';

describe('verifyCounts', () => {
  it('names a count moved from one tenant to another when asked about the tenants: the sums stay right', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      await store.insert([newJobWrite({ queue: 'q', tenant: 'acme' }), newJobWrite({ queue: 'q', tenant: 'acme' }), newJobWrite({ queue: 'q', tenant: 'globex' })]);
      assert.deepEqual(await verifyCounts(store, ['acme', 'globex', 'nobody']), { ok: true, problems: [] });
      store.db.exec(`UPDATE job_counts SET n = n - 1 WHERE tenant = 'acme' AND n > 0`);
      store.db.exec(`UPDATE job_counts SET n = n + 1 WHERE tenant = 'globex' AND n > 0`);
      assert.deepEqual(await verifyCounts(store), { ok: true, problems: [] }, 'summed over tenants, nothing to see');
      assert.deepEqual(await verifyCounts(store, ['globex', 'acme', 'globex']), {
        ok: false,
        problems: [
          '["acme","q","demo.echo","pending"]: counted 1, recounted 2',
          '["globex","q","demo.echo","pending"]: counted 2, recounted 1',
        ],
      });
    } finally {
      await store.close();
    }
  });

  it('passes on maintained counters and names each key that drifted', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      assert.deepEqual(await verifyCounts(store), { ok: true, problems: [] });
      await store.insert([newJobWrite({ queue: 'a' }), newJobWrite({ queue: 'b', type: 't' })]);
      assert.deepEqual(await verifyCounts(store), { ok: true, problems: [] });
      store.db.exec(`UPDATE job_counts SET n = n + 2 WHERE queue = 'a'`);
      store.db.exec(`INSERT INTO job_counts (queue, type, state, shard, n) VALUES ('ghost', 't', 'done', 0, 1)`);
      store.db.exec(`DELETE FROM job_counts WHERE queue = 'b'`);
      assert.deepEqual(await verifyCounts(store), {
        ok: false,
        problems: [
          '["a","demo.echo","pending"]: counted 3, recounted 1',
          '["b","t","pending"]: counted 0, recounted 1',
          '["ghost","t","done"]: counted 1, recounted 0',
        ],
      });
    } finally {
      await store.close();
    }
  });
});

describe('verifyJob while the job moves on', () => {
  const clock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
  const nextId = monotonicFactory();
  const spec: JobSpec = { type: 'demo.echo', payload: 1, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };

  /** A store on which `between` runs once, after verifyJob read the job and before it reads the events. */
  async function withStore(run: (s: { store: JobStore; svc: TransitionService; id: string; between: (step: () => Promise<void>) => JobStore }) => Promise<void>) {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      const svc = new TransitionService({ store, clock, random: { next: Math.random }, ids: { jobId: () => nextId() } });
      const r = await svc.submit(spec);
      assert.ok(r.ok);
      const between = (step: () => Promise<void>) => {
        let once: (() => Promise<void>) | null = step;
        return intercept(store, (name) => name === 'getEvents', async (call) => {
          const s = once;
          once = null;
          if (s) await s();
          return call();
        });
      };
      await run({ store, svc, id: r.job.id, between });
    } finally {
      await store.close();
    }
  }

  it('a transition committed between its reads of the job and of the events is no problem: the history checked ends at the job\'s version', async () => {
    await withStore(async ({ svc, id, between }) => {
      let made = false;
      const racing = between(async () => {
        assert.equal((await svc.apply(id, { type: 'CANCEL' })).ok, true);
        made = true;
      });
      assert.deepEqual(await verifyJob(racing, id), { jobId: id, ok: true, events: 1, problems: [] });
      assert.ok(made, 'the cancel was made between the reads');
    });
  });

  it('a heartbeat that updates the attempt\'s heartbeat event in place between its reads is no problem', async () => {
    await withStore(async ({ svc, id, between }) => {
      const lease = Date.now() + 60_000;
      for (const e of [
        { type: 'PUBLISHED', attempt: 1 }, { type: 'STARTED', attempt: 1, leaseUntil: lease, workerId: 'w1' }, { type: 'HEARTBEAT', attempt: 1, leaseUntil: lease + 1 },
      ] as const) assert.equal((await svc.apply(id, e)).ok, true);
      let made = false;
      const racing = between(async () => {
        // Same version: the heartbeat row of the attempt now holds the later lease, and so does the job.
        assert.equal((await svc.apply(id, { type: 'HEARTBEAT', attempt: 1, leaseUntil: lease + 2 })).ok, true);
        made = true;
      });
      assert.deepEqual(await verifyJob(racing, id), { jobId: id, ok: true, events: 4, problems: [] });
      assert.ok(made, 'the heartbeat was made between the reads');
    });
  });

  it('a stored job its events do not replay to is still a problem', async () => {
    await withStore(async ({ store, id }) => {
      const db = (store as ReturnType<typeof createSqliteStore>).db;
      const text = String((db.prepare('SELECT snapshot FROM jobs WHERE id = ?').get(id) as { snapshot: unknown }).snapshot);
      const snapshot = JSON.parse(text) as { context: { maxAttempts: number } };
      snapshot.context.maxAttempts += 1;
      db.prepare('UPDATE jobs SET snapshot = ? WHERE id = ?').run(JSON.stringify(snapshot), id);
      const report = await verifyJob(store, id);
      assert.equal(report.ok, false);
      assert.match(report.problems.join('\n'), /^replay gives pending .*"maxAttempts":3.*, stored pending .*"maxAttempts":4/);
    });
  });

  it('a job deleted between its reads is not found, not a job with no history', async () => {
    await withStore(async ({ store, svc, id, between }) => {
      assert.equal((await svc.apply(id, { type: 'CANCEL' })).ok, true);
      const racing = between(async () => assert.equal((await store.deleteJob(id)).ok, true));
      assert.deepEqual(await verifyJob(racing, id), { jobId: id, ok: false, events: 0, problems: ['job not found'] });
    });
  });

  it('an event past the job\'s version that the job never reaches is still a problem', async () => {
    await withStore(async ({ store, id }) => {
      const [first] = await store.getEvents(id);
      const stray = intercept(store, (name) => name === 'getEvents', async (call) => [
        ...(await call()) as JobEventRecord[], { ...first!, seq: 2, type: 'CANCEL', from: 'pending', to: 'cancelled', data: { type: 'CANCEL' } },
      ]);
      const report = await verifyJob(stray, id);
      assert.equal(report.ok, false);
      assert.deepEqual(report.problems, ['version 1 but events up to seq 2']);
    });
  });
});
