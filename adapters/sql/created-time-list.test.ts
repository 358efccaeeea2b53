/**
 * Pages of jobs by creation time. A job's id holds the time it was drawn; its
 * `created_at` the scheduler's clock when it was written. Processes of
 * earlier releases on MySQL drew ids from their host's clock and wrote
 * creation times from the database's, which may be apart by any amount (the
 * README's clock skew): such a job is listed by its creation time, wherever
 * its id sorts. This release's ids follow the scheduler's clock.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeTime, ulid } from 'ulid';
import { compose } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { ulidIds } from '../../engine/job-ids.js';
import { silentLogger } from '../../engine/logger.js';
import { systemClock } from '../../engine/system.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import { MAX_PAGE_SCAN } from './pages.js';

const MINUTE = 60_000;

describe('pages of jobs by creation time', () => {
  it('list a job of an earlier release by its creation time, its id drawn on a host clock far from the database\'s', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const at = Date.UTC(2026, 5, 1, 12);
      const write = (idAt: number) => {
        const w = newJobWrite({ tenant: 'acme', at });
        const id = ulid(idAt);
        return { ...w, job: { ...w.job, id }, event: { ...w.event, jobId: id }, outbox: [] };
      };
      // A host 2 minutes behind the database, and one 11 minutes ahead.
      const behind = write(at - 2 * MINUTE);
      const ahead = write(at + 11 * MINUTE);
      assert.ok((await store.insert([behind, ahead])).every((r) => r.ok));
      const page = async (f: { createdAfter?: number; createdBefore?: number }) =>
        (await store.listJobPage({ tenant: 'acme', limit: 10, ...f }, 1 << 20)).jobs.map((j) => j.id).sort();
      const both = [behind.job.id, ahead.job.id].sort();
      assert.deepEqual(await page({ createdAfter: at }), both);
      assert.deepEqual(await page({ createdBefore: at + 1 }), both);
      assert.deepEqual(await page({ createdAfter: at + 1 }), []);
      assert.deepEqual(await page({ createdBefore: at }), []);
    } finally {
      await store.close();
    }
  });

  it('ids drawn at a clock\'s time sort in the order drawn, one ms or many', () => {
    let now = Date.UTC(2031, 4, 6);
    const ids = ulidIds({ now: () => now });
    const drawn: string[] = [];
    for (let i = 0; i < 50; i++) drawn.push(ids.jobId());
    now += 5;
    for (let i = 0; i < 50; i++) drawn.push(ids.jobId());
    assert.deepEqual([...drawn].sort(), drawn);
    assert.equal(decodeTime(drawn[0]!), now - 5);
    assert.equal(decodeTime(drawn.at(-1)!), now);
  });

  it('the scheduler\'s ids follow its clock: a job submitted at its time, far from the machine\'s, has an id of that time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-created-time-'));
    const at = Date.UTC(2035, 0, 1);
    const system = await compose(compileConfig({ dataDir: dir, port: 0, logLevel: 'silent' }), { logger: silentLogger, clock: { now: () => at, sleep: systemClock.sleep } });
    try {
      const { job } = await system.transitions.submit({ type: 'demo.echo', queue: 'default', payload: 1, priority: 0, maxAttempts: 1, timeoutMs: 1000, backoff: DEFAULT_BACKOFF });
      assert.equal(decodeTime(job.id), at);
      const page = await system.store.listJobPage({ tenant: 'default', createdAfter: at, limit: 10 }, 1 << 20);
      assert.deepEqual(page.jobs.map((j) => j.id), [job.id]);
    } finally {
      await system.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const backend of STORE_BACKENDS) {
    it(`on ${backend.name}, a range that holds nothing (createdAfter at or after createdBefore) is an empty last page at once, however many jobs the tenant has`, async () => {
      await withMigratedStore(backend, async (store) => {
        const at = Date.UTC(2026, 5, 1, 12);
        // More jobs than a page reads: a page that tested each would stop at its bound with a cursor.
        const writes = Array.from({ length: MAX_PAGE_SCAN + 10 }, (_, i) => newJobWrite({ tenant: 'acme', at: at + i }));
        for (let i = 0; i < writes.length; i += 500) assert.ok((await store.insert(writes.slice(i, i + 500))).every((r) => r.ok));
        for (const [createdAfter, createdBefore] of [[at + 100, at + 100], [at + 200, at + 100], [at + 1_000_000, 0]]) {
          const page = await store.listJobPage({ tenant: 'acme', limit: 50, createdAfter, createdBefore }, 1 << 20);
          assert.deepEqual(page, { jobs: [], nextAfterId: null }, `${createdAfter} to ${createdBefore}`);
        }
        // A range of one ms still holds its job.
        const one = await store.listJobPage({ tenant: 'acme', limit: 50, createdAfter: at + 100, createdBefore: at + 101 }, 1 << 20);
        assert.deepEqual(one.jobs.map((j) => j.id), [writes[100]!.job.id]);
      });
    });
  }
});
