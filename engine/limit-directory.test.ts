/**
 * The LimitDirectory reads every tenant's default limits, page by page: one
 * tenant's many `type:` limits do not crowd another tenant's out of what the
 * workers see (both stores).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MysqlStore } from '../adapters/mysql/index.js';
import type { SqliteStore } from '../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { LimitDirectory, LIMITS_PAGE } from './limit-directory.js';
import { storedLimitKey } from './limits.js';
import { silentLogger } from './logger.js';
import type { JobSpec } from './ports.js';
import { TransitionService } from './transitions.js';
import { mathRandom, ulidIds } from './system.js';
import { ManualClock } from '../tests/helpers/manual-clock.js';
import { STORE_BACKENDS, type TestStore } from '../tests/helpers/stores.js';

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'email', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});

/** `n` default limits of `tenant`, written straight into the table (more than the API lets one tenant set). */
async function manyLimits(store: TestStore, tenant: string, n: number): Promise<void> {
  const keys = Array.from({ length: n }, (_, i) => storedLimitKey(tenant, `type:t${i}`));
  if ('db' in store) {
    const { db } = store as unknown as SqliteStore;
    const ins = db.prepare('INSERT INTO limits (limit_key, concurrency, rate_max, rate_interval_ms, tat, created_at, updated_at) VALUES (?, 1, NULL, NULL, 0, 0, 0)');
    db.transaction(() => { for (const k of keys) ins.run(k); })();
  } else {
    const { pool } = store as unknown as MysqlStore;
    for (let i = 0; i < keys.length; i += 5000) {
      const part = keys.slice(i, i + 5000);
      await pool.query(`INSERT INTO limits (limit_key, concurrency, rate_max, rate_interval_ms, tat, created_at, updated_at) VALUES ${part.map(() => '(?, 1, NULL, NULL, 0, 0, 0)').join(', ')}`, part);
    }
  }
}

for (const backend of STORE_BACKENDS) {
  describe(`LimitDirectory across tenants on ${backend.name}`, { timeout: 120_000 }, () => {
    it('tenant globex\'s type:email limit (concurrency 1) holds beside 100,000 default limits of tenant aaa, keys that sort first', async () => {
      const { store, cleanup } = await backend.open();
      const clock = new ManualClock();
      await clock.advance(1_000_000);
      try {
        await store.migrate();
        await manyLimits(store, 'aaa', 100_000);
        assert.ok(100_000 > 5 * LIMITS_PAGE, 'the read takes several pages');
        await store.putLimit(storedLimitKey('globex', 'type:email'), { concurrency: 1, rate: null }, clock.now());
        const directory = new LimitDirectory({ store, clock, logger: silentLogger }, 1000);
        await directory.start();
        try {
          const svc = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), limits: directory });
          const ids = (await svc.submitMany([spec({ tenant: 'globex' }), spec({ tenant: 'globex' })])).map((r) => { assert.ok(r.ok); return r.job.id; });
          const lease = clock.now() + 30_000;
          const r = await svc.applyMany(ids.map((jobId) => ({ jobId, event: { type: 'STARTED' as const, attempt: 1, leaseUntil: lease, workerId: 'w' } })));
          assert.deepEqual(r.map((x) => (x.ok ? 'started' : x.reason)), ['started', 'throttled'], 'globex concurrency 1 admitted two');
          assert.equal(directory.has('globex/type:email'), true, 'globex\'s default limit is seen by the worker');
          assert.equal(directory.has('aaa/type:t99999'), true, 'and so is the last of aaa\'s');
        } finally {
          await directory.stop();
        }
      } finally {
        await cleanup();
      }
    });
  });
}
