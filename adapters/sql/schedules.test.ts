/**
 * The due read of schedules (the timers'): every tenant's schedules not
 * paused whose next tick has come, in (next_at, tenant, name) order, read in
 * pages each after the last row of the one before, so a reader pages through
 * rows that share a next_at without losing or repeating one. On SQLite and on
 * MariaDB; and migration 0019, which gives that order its index, on both (on
 * MariaDB a rerun after a crash before its ledger row completes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { DEFAULT_TENANT as D } from '../../engine/auth.js';
import type { ScheduleRecord } from '../../engine/ports.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import { createMysqlStore } from '../mysql/index.js';
import { createSqliteStore } from '../sqlite/index.js';

const NOW = 1_900_000_000_000;

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
  });
}

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
