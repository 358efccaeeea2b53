/**
 * The due read of schedules (the timers'): every tenant's schedules not
 * paused whose next tick has come, in (next_at, tenant, name) order, read in
 * pages each after the last row of the one before, so a reader pages through
 * rows that share a next_at without losing or repeating one. On SQLite and on
 * MariaDB; and migration 0019, which gives that order its index, on both (on
 * MariaDB a rerun after a crash before its ledger row completes). And the
 * jobs of a schedule's ticks, read by their keys (`tickJobs`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { DEFAULT_TENANT as D } from '../../engine/auth.js';
import type { ScheduleRecord } from '../../engine/ports.js';
import { scheduleTickKey } from '../../engine/schedules.js';
import { TransitionService } from '../../engine/transitions.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import { createMysqlStore } from '../mysql/index.js';
import { createSqliteStore } from '../sqlite/index.js';
import { sameDigitRanges } from './schedules.js';

const NOW = 1_900_000_000_000;
const MIN = 60_000;

const schedule = (tenant: string, name: string, nextAt: number | null, paused = false): ScheduleRecord => ({
  tenant, name, cron: '* * * * *', timezone: 'UTC', overlap: 'skip', catchUp: 'none', paused,
  job: { type: 'demo.echo', payload: null, queue: 'default', maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 30_000, priority: 0 },
  nextAt, lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0, version: 1, createdAt: NOW - 1000, updatedAt: NOW - 1000,
});

const key = (s: Pick<ScheduleRecord, 'tenant' | 'name' | 'nextAt'>) => `${s.nextAt} ${s.tenant}/${s.name}`;

for (const backend of STORE_BACKENDS) {
  describe(`due schedules on ${backend.name}`, () => {
    it('soonest first, then by tenant and name; pages after a row read on past rows of its next_at; paused and later ones are not read', () => withMigratedStore(backend, async (store) => {
      const due = [
        schedule('acme', 'b', NOW - 5), schedule(D, 'a', NOW - 5), schedule('acme', 'a', NOW - 5), schedule('acme', 'B', NOW - 5),
        schedule(D, 'z', NOW - 9), schedule('acme', 'zz', NOW), schedule(D, 'a-1', NOW - 5), schedule('acme', 'c', NOW - 1),
      ];
      const notDue = [schedule(D, 'later', NOW + 1), schedule(D, 'paused', null, true), schedule('acme', 'done', null)];
      for (const s of [...due, ...notDue]) assert.ok(await store.createSchedule(s));
      // Byte order within a next_at (uppercase before lowercase), as both stores compare these columns.
      const expected = [
        `${NOW - 9} ${D}/z`, `${NOW - 5} acme/B`, `${NOW - 5} acme/a`, `${NOW - 5} acme/b`, `${NOW - 5} ${D}/a`, `${NOW - 5} ${D}/a-1`,
        `${NOW - 1} acme/c`, `${NOW} acme/zz`,
      ];
      assert.deepEqual((await store.dueSchedules(NOW, 100)).map(key), expected);
      assert.deepEqual((await store.dueSchedules(NOW, 3)).map(key), expected.slice(0, 3));
      for (const size of [1, 2, 3]) {
        const read: string[] = [];
        let after: { nextAt: number; tenant: string; name: string } | undefined;
        for (let page = 0; page < 20; page++) {
          const rows = await store.dueSchedules(NOW, size, after);
          read.push(...rows.map(key));
          if (rows.length < size) break;
          const last = rows.at(-1)!;
          after = { nextAt: last.nextAt!, tenant: last.tenant, name: last.name };
        }
        assert.deepEqual(read, expected, `pages of ${size}`);
      }
      // After a row no longer there (fired meanwhile): from the next in the order.
      assert.deepEqual((await store.dueSchedules(NOW, 2, { nextAt: NOW - 5, tenant: 'acme', name: 'a0' })).map(key), expected.slice(3, 5));
      // After the last: none; and `now` still bounds a read from a place.
      assert.deepEqual(await store.dueSchedules(NOW, 10, { nextAt: NOW, tenant: 'acme', name: 'zz' }), []);
      assert.deepEqual((await store.dueSchedules(NOW - 2, 10, { nextAt: NOW - 5, tenant: D, name: 'a' })).map(key), [`${NOW - 5} ${D}/a-1`]);
    }));

    it('tick jobs: those of the schedule\'s ticks in a time range and a queue, newest first, also across a change of the number of digits', () => withMigratedStore(backend, async (store) => {
      let id = 0;
      const transitions = new TransitionService({ store, clock: { now: () => NOW, sleep: async () => {} }, random: { next: () => 0.5 }, ids: { jobId: () => `job-${++id}` } });
      const s = schedule(D, 'nightly', NOW);
      const submit = async (tickAt: number, o: { tenant?: string; queue?: string; of?: Pick<ScheduleRecord, 'name' | 'createdAt'> } = {}) => (await transitions.submit({
        ...s.job, tenant: o.tenant ?? D, queue: o.queue ?? 'default', idempotencyKey: scheduleTickKey(o.of ?? s, tickAt),
      })).job.id;
      const DIGITS = 10_000_000_000_000; // 2286-11-20: a tick's time gets a fourteenth digit
      const mine = new Map([NOW, NOW + MIN, NOW + 2 * MIN, DIGITS - MIN, DIGITS, DIGITS + MIN].map((t) => [t, '']));
      for (const t of mine.keys()) mine.set(t, await submit(t));
      // Not the schedule's ticks in its queue: another queue, tenant, incarnation; a schedule whose name ends as this one's key begins.
      const elsewhere = await submit(NOW + MIN, { queue: 'other' });
      await submit(NOW + MIN, { tenant: 'acme' });
      await submit(NOW + MIN, { of: { name: 'nightly', createdAt: s.createdAt + 1 } });
      await submit(NOW + MIN, { of: { name: `nightly:${s.createdAt}`, createdAt: NOW + 30_000 } });
      // A tick of fourteen digits whose key sorts between those of thirteen.
      await submit(Number(`${NOW}0`));
      const read = async (from: number, to: number, limit = 100, queue = 'default') =>
        (await store.tickJobs(s, queue, from, to, limit)).map(({ tickAt, job }) => [tickAt, job.id]);
      const jobsOf = (...ticks: number[]) => ticks.map((t) => [t, mine.get(t)]);
      assert.deepEqual(await read(NOW, NOW + 2 * MIN), jobsOf(NOW + MIN, NOW), 'from included, to not');
      assert.deepEqual(await read(NOW, NOW + 2 * MIN, 1), jobsOf(NOW + MIN), 'the newest first');
      assert.deepEqual(await read(NOW + 1, NOW + MIN), []);
      assert.deepEqual(await read(NOW, NOW + 3 * MIN, 100, 'other'), [[NOW + MIN, elsewhere]]);
      assert.deepEqual(await read(NOW, DIGITS + 2 * MIN), jobsOf(DIGITS + MIN, DIGITS, DIGITS - MIN, NOW + 2 * MIN, NOW + MIN, NOW));
      assert.deepEqual(await read(NOW, DIGITS + 2 * MIN, 4), jobsOf(DIGITS + MIN, DIGITS, DIGITS - MIN, NOW + 2 * MIN));
    }));

    it('tick jobs: as many as the limit where keys that are not the schedule\'s ticks sort between them (a schedule named as its keys begin, a tick of more digits)', () => withMigratedStore(backend, async (store) => {
      let id = 0;
      const transitions = new TransitionService({ store, clock: { now: () => NOW, sleep: async () => {} }, random: { next: () => 0.5 }, ids: { jobId: () => `job-${++id}` } });
      const s = schedule(D, 'nightly', NOW);
      const submit = async (tickAt: number, of: Pick<ScheduleRecord, 'name' | 'createdAt'> = s) =>
        (await transitions.submit({ ...s.job, tenant: D, idempotencyKey: scheduleTickKey(of, tickAt) })).job.id;
      const mine = [NOW, NOW + MIN, NOW + 2 * MIN];
      const ids = new Map<number, string>();
      for (const t of mine) ids.set(t, await submit(t));
      // Created between the first two ticks, named as this schedule's keys begin: its keys sort after the first tick's.
      const other = { name: `nightly:${s.createdAt}`, createdAt: NOW + 30_000 };
      for (let i = 1; i <= 3; i++) await submit(NOW + i * MIN, other);
      // A tick of fourteen digits, whose key sorts between those of the first two.
      await submit(Number(`${NOW}0`));
      const found = await store.tickJobs(s, 'default', NOW, NOW + 3 * MIN, 3);
      assert.deepEqual(found.map(({ tickAt, job }) => [tickAt, job.id]), [...mine].reverse().map((t) => [t, ids.get(t)]));
    }));
  });
}

describe('sameDigitRanges', () => {
  it('splits a range of times where their number of digits changes, the highest first', () => {
    assert.deepEqual(sameDigitRanges(5, 5), []);
    assert.deepEqual(sameDigitRanges(5, 6), [[5, 5]]);
    assert.deepEqual(sameDigitRanges(95, 1001), [[1000, 1000], [100, 999], [95, 99]]);
    assert.deepEqual(sameDigitRanges(NOW, NOW + 60_000), [[NOW, NOW + 59_999]]);
  });
});

describe('migration 0019: the due order\'s index', () => {
  it('on SQLite: ix_schedules_due (next_at, tenant, name) replaces ix_schedules_next', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      const indexes = store.db.prepare('SELECT name FROM sqlite_master WHERE type = \'index\' AND tbl_name = \'schedules\' AND sql IS NOT NULL').all() as { name: string }[];
      assert.deepEqual(indexes.map((r) => r.name), ['ix_schedules_due']);
      assert.deepEqual((store.db.prepare('PRAGMA index_info(ix_schedules_due)').all() as { name: string }[]).map((r) => r.name), ['next_at', 'tenant', 'name']);
    } finally {
      await store.close();
    }
  });

  it('on MariaDB: ix_schedules_due (next_at, tenant, name) replaces ix_schedules_next, and a rerun completes', async () => {
    await requireMysql();
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 2 });
    try {
      const indexes = async () => (await store.pool.query<RowDataPacket[]>('SHOW INDEX FROM schedules'))[0]
        .filter((r) => r.Key_name !== 'PRIMARY').map((r) => `${String(r.Key_name)}.${String(r.Column_name)}`);
      await store.migrate();
      assert.deepEqual(await indexes(), ['ix_schedules_due.next_at', 'ix_schedules_due.tenant', 'ix_schedules_due.name']);
      // Died after its statements, before its ledger row: run again (the index made, the old one gone).
      await store.pool.query('DELETE FROM schema_migrations WHERE version = 19');
      await store.migrate();
      assert.deepEqual(await indexes(), ['ix_schedules_due.next_at', 'ix_schedules_due.tenant', 'ix_schedules_due.name']);
      assert.ok(await store.createSchedule(schedule(D, 'nightly', NOW)));
      assert.deepEqual((await store.dueSchedules(NOW, 10)).map(key), [`${NOW} ${D}/nightly`]);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
