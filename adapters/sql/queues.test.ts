/**
 * The QueueStore (queues.ts) and migration 0023 on both SQL stores: queues
 * are listed in order up to the limit, and a tenant's share of it, and never
 * refused once listed; many admissions at once never list more than the
 * limit or the share; the queues of jobs and schedules stored before the
 * migration are listed by it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import type { ScheduleRecord } from '../../engine/ports.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';

/** The listed names, sorted (read through the store's own connection). */
async function listed(store: TestStore): Promise<string[]> {
  const names: string[] = [];
  // A name is listed when admitting it with no room left is not refused.
  for (const n of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'x', 'y', 'default', '']) {
    if ((await store.admitQueues([n], 0, 1)).length === 0) names.push(n);
  }
  return names.sort();
}

for (const backend of STORE_BACKENDS) {
  describe(`queues on ${backend.name}`, { timeout: 60_000 }, () => {
    const withStore = (fn: (store: TestStore) => Promise<void>) => withMigratedStore(backend, fn);

    it('lists new queues in order while fewer than the limit are listed, refuses the rest, and never refuses one listed', () => withStore(async (store) => {
      assert.equal(await store.countQueues(), 0);
      assert.deepEqual(await store.admitQueues(['a', 'b', 'a'], 3, 1_000), [], 'a name given twice is one queue');
      assert.equal(await store.countQueues(), 2);
      assert.deepEqual(await store.admitQueues(['c', 'd', 'b', 'e'], 3, 2_000), ['d', 'e'], 'c takes the last place; b is listed');
      assert.equal(await store.countQueues(), 3);
      assert.deepEqual(await store.admitQueues(['a', 'b', 'c'], 3, 3_000), [], 'listed queues are admitted with the list full');
      assert.deepEqual(await store.admitQueues(['a', 'd'], 1, 3_000), ['d'], 'and with a limit below the count');
      assert.deepEqual(await store.admitQueues(['d'], 4, 4_000), [], 'a higher limit makes room');
      assert.deepEqual(await listed(store), ['a', 'b', 'c', 'd']);
      assert.deepEqual(await store.admitQueues([], 0, 5_000), []);
    }));

    it('many admissions at once list no more than the limit, on an empty list and on one with rows', () => withStore(async (store) => {
      const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
      const refused = (await Promise.all(names.map((n) => store.admitQueues([n], 3, 1_000)))).flat();
      assert.equal(refused.length, 5, `refused: ${refused.join(', ')}`);
      assert.equal(await store.countQueues(), 3);
      const admitted = names.filter((n) => !refused.includes(n));
      assert.deepEqual(await listed(store), admitted.sort());
      // With rows listed: four more places, eight asking (two names each, so admissions overlap).
      const again = (await Promise.all(names.map((n, i) => store.admitQueues([n, names[(i + 1) % names.length]!], 7, 2_000)))).flat();
      assert.equal(await store.countQueues(), 7);
      assert.equal(new Set(again).size, 1, 'exactly one name found no place');
    }));

    it('a tenant\'s share: its jobs list at most share.max new queues, others\' and listed ones are not counted, the limit still holds', () => withStore(async (store) => {
      const acme = { tenant: 'acme', max: 2 };
      assert.deepEqual(await store.admitQueues(['d1'], 10, 1_000), [], 'the default tenant\'s jobs (no share)');
      assert.deepEqual(await store.admitQueues(['a1', 'd1', 'a2', 'a3'], 10, 2_000, acme), ['a3'], 'd1 is listed: it takes none of acme\'s places');
      assert.deepEqual(await store.admitQueues(['a3'], 10, 3_000, acme), ['a3']);
      assert.deepEqual(await store.admitQueues(['a1', 'a2', 'd1'], 10, 3_000, acme), [], 'listed queues are admitted with the share full');
      assert.deepEqual(await store.admitQueues(['g1', 'g2', 'g3'], 10, 4_000, { tenant: 'globex', max: 2 }), ['g3'], 'another tenant has its own share');
      assert.deepEqual(await store.admitQueues(['a3'], 10, 5_000), [], 'the same queue named by the default tenant\'s jobs');
      assert.equal(await store.countQueues(), 6);
      assert.deepEqual(await store.admitQueues(['a4'], 6, 6_000, { tenant: 'acme', max: 3 }), ['a4'], 'within its share, not within the limit');
      assert.deepEqual(await store.admitQueues(['a4'], 20, 6_000, { tenant: 'acme', max: 3 }), [], 'a3 is not acme\'s: a4 is its third');
      assert.deepEqual(await store.admitQueues(['a5'], 20, 6_000, { tenant: 'acme', max: 3 }), ['a5'], 'three are acme\'s now');
      assert.deepEqual(await store.admitQueues(['a5'], 7, 6_000), ['a5'], 'the limit holds for the default tenant\'s jobs too');
      assert.deepEqual(await store.admitQueues(['a5'], 8, 6_000), [], 'which have no share');
    }));

    it('many admissions of one tenant at once list no more than its share', () => withStore(async (store) => {
      const names = ['a', 'b', 'c', 'd', 'e', 'f'];
      const refused = (await Promise.all(names.map((n) => store.admitQueues([n], 100, 1_000, { tenant: 'acme', max: 2 })))).flat();
      assert.equal(refused.length, 4, `refused: ${refused.join(', ')}`);
      assert.equal(await store.countQueues(), 2);
    }));

    it('migration 0023 lists the queues of the jobs and of the schedules stored before it', () => withStore(async (store) => {
      await store.insert([newJobWrite({ queue: 'x' }), newJobWrite({ queue: 'y' }), newJobWrite({ queue: 'x' })]);
      // A schedule that has not ticked yet (no job of its queue), and one pinned to the queue its due ticks go to.
      await store.createSchedule(schedule('nightly', 'a'));
      await store.createSchedule({ ...schedule('hourly', 'b'), firingQueue: 'c' });
      assert.equal(await store.countQueues(), 0, 'an insert lists nothing (the engine admits queues before it)');
      await forgetMigration(store, 23);
      await store.migrate();
      assert.deepEqual(await listed(store), ['a', 'b', 'c', 'x', 'y']);
      await forgetMigration(store, 23);
      await store.migrate();
      assert.equal(await store.countQueues(), 5, 'run again, it lists nothing twice');
    }));
  });
}

/** A stored schedule whose jobs go to `queue`. */
function schedule(name: string, queue: string): ScheduleRecord {
  return {
    tenant: 'default', name, cron: '0 3 * * *', timezone: 'UTC', overlap: 'skip', catchUp: 'none', paused: false,
    job: { type: 'demo.echo', payload: null, queue, maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1_000, priority: 0 },
    nextAt: 1_000, lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0, version: 1, createdAt: 1, updatedAt: 1,
  };
}

/** Deletes migration `version` from the ledger, as if the process had died before recording it. */
async function forgetMigration(store: TestStore, version: number): Promise<void> {
  const s = store as TestStore & { db?: { prepare(sql: string): { run(...p: unknown[]): unknown } }; pool?: { query(sql: string, p: unknown[]): Promise<unknown> } };
  if (s.db) s.db.prepare('DELETE FROM schema_migrations WHERE version = ?').run(version);
  else await s.pool!.query('DELETE FROM schema_migrations WHERE version = ?', [version]);
}
