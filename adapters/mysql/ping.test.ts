/**
 * The readiness check on MySQL (`ping`): a write that changes nothing. A
 * write can wait on a lock where a read would not (a backup's global read
 * lock, a LOCK TABLES): the check gives up after PING_TIMEOUT_MS, its
 * connection destroyed, instead of holding one of the pool's connections for
 * the whole query timeout (60 s) at each probe; once the lock goes it passes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConnection, type Connection } from 'mysql2/promise';
import { createTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import type { MysqlStore } from './index.js';
import { PING_TIMEOUT_MS } from './statements.js';

const mysqlUp = await requireMysql();

describe('the MySQL readiness check', { skip: !mysqlUp && 'MariaDB not reachable' }, () => {
  let store: MysqlStore;
  let cleanup: () => Promise<void>;
  let holder: Connection;

  before(async () => {
    const t = await createTestStore({ poolSize: 2 });
    store = t.store;
    cleanup = t.cleanup;
    holder = await createConnection({ uri: t.db.url });
  });
  after(async () => {
    await holder?.end().catch(() => undefined);
    await cleanup?.();
  });

  it('gives up on a write that waits on a lock, and passes once the lock goes', { timeout: 4 * PING_TIMEOUT_MS }, async () => {
    await store.ping();
    await holder.query('LOCK TABLES schema_migrations READ');
    try {
      // Two probes, on a pool of two: neither may keep a connection waiting, or the store's own reads would wait too.
      for (let i = 0; i < 2; i++) await assert.rejects(store.ping());
      assert.ok((await store.listJobs({ limit: 1 })).length >= 0, 'the pool still serves reads');
    } finally {
      await holder.query('UNLOCK TABLES');
    }
    await store.ping();
  });
});
