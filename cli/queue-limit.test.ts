/**
 * ATS_MAX_QUEUES in a composed process (embedded): the API answers a job,
 * a batch item or a schedule naming a new queue beyond the limit with
 * 409 ATS_ERR_QUEUE_LIMIT and writes nothing; a queue of a restart's jobs
 * stays admitted; the upgrade lists the queues of the jobs and schedules
 * stored before it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compose, type System } from './compose.js';
import { compileConfig } from './config.js';
import type { SqliteStore } from '../adapters/sqlite/index.js';
import { silentLogger } from '../engine/logger.js';
import { ScheduleRunner } from '../engine/schedules.js';

const job = (queue?: string) => ({ type: 'demo.echo', payload: { queue: queue ?? null }, ...(queue === undefined ? {} : { queue }) });

async function withSystem(dir: string, maxQueues: number, fn: (s: System) => Promise<void>): Promise<void> {
  const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', advisor: 'off', maxQueues }, { hostname: 't', pid: 1 });
  const system = await compose(config, { logger: silentLogger });
  try {
    await fn(system);
  } finally {
    await system.stop();
  }
}

test('a new queue beyond ATS_MAX_QUEUES is a 409 ATS_ERR_QUEUE_LIMIT on each route that makes jobs, and writes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-queue-limit-'));
  try {
    await withSystem(dir, 2, async ({ app, store }) => {
      const post = (url: string, payload: object) => app!.inject({ method: 'POST', url, payload });
      const jobsIn = async (queue: string) => (await store.listJobs({ queue, limit: 10 })).length;
      assert.equal((await post('/v1/jobs', job('a'))).statusCode, 201);
      assert.equal((await post('/v1/jobs', job())).statusCode, 201, 'the default queue takes the second place');
      const refused = await post('/v1/jobs', job('b'));
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json().code, 'ATS_ERR_QUEUE_LIMIT');
      assert.match(refused.json().message, /queue 'b' is new, and the queue list is full \(ATS_MAX_QUEUES = 2\)/);
      assert.equal(await jobsIn('b'), 0);

      const batch = await post('/v1/jobs/batch', { jobs: [job('a'), job('c'), job()] });
      assert.equal(batch.statusCode, 200, batch.body);
      const results = batch.json().results as { status: number; code?: string }[];
      assert.deepEqual(results.map((r) => r.status), [201, 409, 201]);
      assert.equal(results[1]!.code, 'ATS_ERR_QUEUE_LIMIT');
      assert.equal(await jobsIn('c'), 0);

      const schedule = await post('/v1/schedules', { name: 'nightly', cron: '0 3 * * *', ...job('d') });
      assert.equal(schedule.statusCode, 409, schedule.body);
      assert.equal(schedule.json().code, 'ATS_ERR_QUEUE_LIMIT');
      assert.equal((await app!.inject({ url: '/v1/schedules/nightly' })).statusCode, 404);
    });
    // Another process on the same data: the queues listed stay admitted, and the limit still holds.
    await withSystem(dir, 2, async ({ app }) => {
      assert.equal((await app!.inject({ method: 'POST', url: '/v1/jobs', payload: job('a') })).statusCode, 201);
      assert.equal((await app!.inject({ method: 'POST', url: '/v1/jobs', payload: job('e') })).statusCode, 409);
    });
    await withSystem(dir, 3, async ({ app }) => {
      assert.equal((await app!.inject({ method: 'POST', url: '/v1/jobs', payload: job('e') })).statusCode, 201, 'a higher limit makes room');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a schedule stored before the upgrade, in a queue no stored job names, still ticks and changes once the list is full', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-queue-upgrade-'));
  try {
    // Before the upgrade: a job in queue a, and a schedule in queue reports that has not ticked yet.
    await withSystem(dir, 100, async ({ app, store }) => {
      assert.equal((await app!.inject({ method: 'POST', url: '/v1/jobs', payload: job('a') })).statusCode, 201);
      const r = await app!.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'yearly', cron: '0 3 1 1 *', ...job('reports') } });
      assert.equal(r.statusCode, 201, r.body);
      const { db } = store as unknown as SqliteStore;
      db.prepare('DELETE FROM queues').run();
      db.prepare('DELETE FROM schema_migrations WHERE version = 23').run();
    });
    // The upgrade (0023 runs at start) with a limit the jobs' queue alone fills.
    await withSystem(dir, 1, async ({ app, store, transitions }) => {
      const patch = await app!.inject({ method: 'PATCH', url: '/v1/schedules/yearly', payload: { priority: 5 } });
      assert.equal(patch.statusCode, 200, patch.body);
      await store.replaceSchedule({ ...(await store.getSchedule('default', 'yearly'))!, nextAt: Date.now() - 1_000, version: 3 }, 2);
      const runner = new ScheduleRunner({ store, transitions, clock: { now: () => Date.now(), sleep: async () => undefined }, logger: silentLogger });
      assert.equal(await runner.runOnce(), 1, 'the tick submitted its job');
      assert.equal((await store.listJobs({ queue: 'reports', limit: 10 })).length, 1);
      assert.equal((await app!.inject({ method: 'POST', url: '/v1/jobs', payload: job('b') })).statusCode, 409, 'the limit holds for new queues');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
