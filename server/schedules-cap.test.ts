/**
 * A tenant has at most as many schedules as `GET /v1/schedules` lists (1,000),
 * on the real MariaDB and on SQLite: the count and the insert are one
 * transaction, so POSTs racing at 999 schedules create one and the others are
 * 409 ATS_ERR_TOO_MANY_SCHEDULES, writing nothing; every schedule stays
 * listed. Another tenant's schedules do not count, a schedule at the cap can
 * still be changed, a delete frees a place, and a creation refused at the cap
 * lists no new queue.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ScheduleRecord } from '../engine/ports.js';
import { MAX_SCHEDULES, ScheduleService } from '../engine/schedules.js';
import { startSqliteTestApp, startTestApp, TEST_DEFAULTS } from '../tests/helpers/app.js';

const record = (tenant: string, name: string, now: number): ScheduleRecord => ({
  tenant, name, cron: '0 3 * * *', timezone: 'UTC', overlap: 'skip', catchUp: 'none', paused: true,
  job: { type: 'demo.echo', payload: null, queue: TEST_DEFAULTS.queue, maxAttempts: 3, backoff: TEST_DEFAULTS.backoff, timeoutMs: 1000, priority: 0 },
  nextAt: null, lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0, version: 1, createdAt: now, updatedAt: now,
});

for (const [name, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  test(`${name}: concurrent POSTs at ${MAX_SCHEDULES - 1} schedules create one; the others are 409 and write nothing; every schedule is listed`, async () => {
    const t = await start();
    try {
      assert.equal(MAX_SCHEDULES, 1000);
      const now = t.clock.now();
      // Another tenant's schedules take no place of the default tenant's.
      for (let i = 0; i < 3; i++) assert.ok(await t.store.createSchedule(record('acme', `other-${i}`, now)));
      for (let i = 0; i < MAX_SCHEDULES - 1; i++) assert.ok(await t.store.createSchedule(record('default', `s${String(i).padStart(4, '0')}`, now)));
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        t.app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: `new-${i}`, cron: '0 3 * * *', type: 'demo.echo' } })));
      assert.deepEqual(rs.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409, 409, 409], rs.map((r) => r.body).join('\n'));
      assert.ok(rs.filter((r) => r.statusCode === 409).every((r) => r.json().code === 'ATS_ERR_TOO_MANY_SCHEDULES'), rs.map((r) => r.body).join('\n'));
      const listed = (await t.app.inject({ url: '/v1/schedules' })).json().schedules as Array<{ name: string }>;
      assert.equal(listed.length, MAX_SCHEDULES);
      assert.equal(listed.filter((s) => s.name.startsWith('new-')).length, 1, 'the one created is listed');
      // At the cap: a change goes through; a new one is refused until one is deleted.
      const changed = await t.app.inject({ method: 'PATCH', url: '/v1/schedules/s0000', payload: { paused: false } });
      assert.equal(changed.statusCode, 200, changed.body);
      const refused = await t.app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'late', cron: '0 3 * * *', type: 'demo.echo' } });
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json().code, 'ATS_ERR_TOO_MANY_SCHEDULES');
      assert.equal((await t.app.inject({ url: '/v1/schedules/late' })).statusCode, 404);
      assert.equal((await t.app.inject({ method: 'DELETE', url: '/v1/schedules/s0001' })).statusCode, 204);
      const created = await t.app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'late', cron: '0 3 * * *', type: 'demo.echo' } });
      assert.equal(created.statusCode, 201, created.body);
      // A name in use is still the 409 it was, not the cap's.
      const taken = await t.app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'late', cron: '0 3 * * *', type: 'demo.echo' } });
      assert.equal(taken.json().code, 'ATS_ERR_SCHEDULE_EXISTS');
      assert.equal((await t.store.listSchedules('acme')).length, 3);
      // Refused at the cap, a schedule in a new queue lists no queue (a queue admitted is listed for good).
      const admitted: string[] = [];
      const service = new ScheduleService({ store: t.store, clock: t.clock, queues: { admit: async (names) => { admitted.push(...names); } } });
      await assert.rejects(service.create('default', { name: 'in-new-queue', cron: '0 3 * * *', job: { ...record('default', 'x', now).job, queue: 'fresh' } }),
        (e: Error & { code?: string }) => e.code === 'ATS_ERR_TOO_MANY_SCHEDULES');
      assert.deepEqual(admitted, []);
    } finally {
      await t.close();
    }
  });
}
