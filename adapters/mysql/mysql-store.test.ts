/** What only the MySQL store has: fail-fast connect, the migration lock, row locks under contention. */
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { transitionWrite } from '../../engine/transitions.js';
import { MYSQL_DIALECT } from '../sql/dialect.js';
import { loadMigrations } from '../sql/migrations.js';
import { CREATE_SCHEMA_MIGRATIONS, guardChangedRows, multiStatement, selectJobsForUpdate } from '../sql/statements.js';
import { VersionConflict } from '../sql/writes.js';
import { createMysqlStore, redactUrl, type MysqlStore, type MysqlStoreOptions } from './index.js';
import { MYSQL_MIGRATIONS_DIR } from './migrate.js';
import { sqlText } from './sql-text.js';
import { CommittedThenFailed, inTransaction, isTransient } from './tx.js';

// Before any test is declared (tests/test-files.test.ts says why).
const mysqlUp = await requireMysql();

describe('createMysqlStore fails fast', () => {
  it('rejects with the URL, without its password, when nothing listens', async () => {
    const url = 'mysql://ats:s3cret-pw@127.0.0.1:1/ats';
    const err = await createMysqlStore({ url, connectTimeoutMs: 2000 }).then(
      () => assert.fail('connected to port 1'),
      (e: Error & { code?: string }) => e,
    );
    assert.equal(err.code, 'ATS_ERR_STORE_UNAVAILABLE');
    assert.match(err.message, /127\.0\.0\.1:1/);
    assert.doesNotMatch(err.message, /s3cret-pw/);
  });

  it('gives up within connectTimeoutMs on an address that never answers', async () => {
    const started = Date.now();
    // 10.255.255.1 is not routed: the SYN goes unanswered (or is refused at once).
    await assert.rejects(createMysqlStore({ url: 'mysql://root@10.255.255.1:3306/x', connectTimeoutMs: 300 }), /10\.255\.255\.1/);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  it('redactUrl masks only the password', () => {
    assert.equal(redactUrl('mysql://u:p%40ss@h:3306/db?x=1'), 'mysql://u:***@h:3306/db?x=1');
    assert.equal(redactUrl('mysql://u@h/db'), 'mysql://u@h/db');
  });
});

/** `p`, or a rejection with `message` if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** A case on a fresh database (its URL given too) with `n` unmigrated stores on it, all closed and the database dropped after. */
function withStores(title: string, n: number, fn: (stores: MysqlStore[], url: string) => Promise<void>, opts: Omit<MysqlStoreOptions, 'url'> = {}) {
  if (!mysqlUp) return test(title, (t) => t.skip('MariaDB not reachable'));
  return it(title, async () => {
    const db = await createTestDatabase();
    const stores: MysqlStore[] = [];
    try {
      for (let i = 0; i < n; i++) stores.push(await createMysqlStore({ poolSize: 8, ...opts, url: db.url }));
      await fn(stores, db.url);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await db.drop();
    }
  });
}

describe('MySQL store', () => {
  withStores('two stores migrating one fresh database at once both succeed, and each migration runs once', 2, async ([a, b]) => {
    await Promise.all([a!.migrate(), b!.migrate()]);
    const [rows] = await a!.pool.query<RowDataPacket[]>('SELECT version, name FROM schema_migrations ORDER BY version');
    const files = loadMigrations(MYSQL_MIGRATIONS_DIR);
    assert.ok(files.length >= 1);
    assert.deepEqual(rows.map((r) => [r.version, r.name]), files.map((m) => [m.version, m.name]));
    await b!.migrate();
    const [again] = await a!.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM schema_migrations');
    assert.equal(Number(again[0]!.n), files.length);
  });

  withStores('a database whose table is not as the migrations make it (another program\'s jobs beside the scheduler\'s ledger): the migration fails naming the database, the migration and its statement, and says what stays', 1, async ([store], url) => {
    const database = new URL(url).pathname.slice(1);
    // The ledger as the scheduler makes it, so the start takes the database for its own (foreign-database.test.ts: without it, refused before any write).
    await store!.pool.query(CREATE_SCHEMA_MIGRATIONS);
    await store!.pool.query("CREATE TABLE jobs (id INT PRIMARY KEY, name TEXT)");
    await store!.pool.query("INSERT INTO jobs VALUES (1, 'theirs')");
    for (let start = 0; start < 2; start++) {
      await assert.rejects(store!.migrate(), (err: Error & { code?: string }) => {
        // The server's own words between (MariaDB: in 'SELECT', MySQL: in 'field list').
        assert.match(err.message, new RegExp(`^the MySQL database ${database} cannot be used: migration 0003_job_counts failed at its statement 2 of 2: `
          + "Unknown column 'queue' in '[^']+'; MySQL does not roll DDL back: the statements before it stay applied, "
          + 'and the next start runs this migration again from its first statement$'));
        assert.equal(err.code, 'ER_BAD_FIELD_ERROR', 'the driver\'s code kept');
        return true;
      });
    }
    const [theirs] = await store!.pool.query<RowDataPacket[]>('SELECT name FROM jobs');
    assert.deepEqual(theirs.map((r) => r.name), ['theirs'], 'their rows untouched');
  });

  withStores('migration 0003 counts the jobs a database already holds', 1, async ([store]) => {
    await store!.migrate();
    await store!.insert([newJobWrite({ queue: 'a' }), newJobWrite({ queue: 'a' }), newJobWrite({ queue: '__proto__', type: 't' })]);
    // The database as it was before 0003: no counts table, 0003 not applied.
    await store!.pool.query('DROP TABLE job_counts');
    await store!.pool.query('DELETE FROM schema_migrations WHERE version = 3');
    await store!.migrate();
    const counts = (await store!.jobCounts()).map((c) => [c.queue, c.type, c.state, c.n]).sort();
    assert.deepEqual(counts, [['__proto__', 't', 'pending', 1], ['a', 'demo.echo', 'pending', 2]]);
    // Run again after dying between the backfill and the ledger row: a recount, not a double count.
    await store!.pool.query('DELETE FROM schema_migrations WHERE version = 3');
    await store!.migrate();
    assert.equal((await store!.stats()).byQueue['a']!.pending, 2);
  });

  withStores('migration 0004: a job running before it (or written by an older process) is found when its lease ends, and a rerun completes', 1, async ([store]) => {
    await store!.migrate();
    const [w] = [newJobWrite()];
    await store!.insert([w!]);
    const at = 1_700_000_000_000;
    await store!.update([w!.job.id], (jobs) => {
      const p = transitionWrite(jobs.get(w!.job.id)!, { type: 'PUBLISHED', at, attempt: 1 })!;
      return { writes: [p, transitionWrite(p.job, { type: 'STARTED', at, attempt: 1, leaseUntil: at + 1000, workerId: 'w' })!], result: null };
    });
    // The database as it was before 0004: the lease index, and a running job's due_at NULL.
    await store!.pool.query('CREATE INDEX ix_jobs_state_lease ON jobs (state, lease_until)');
    await store!.pool.query('CREATE INDEX ix_outbox_unpublished ON outbox (published_at, id)');
    await store!.pool.query('UPDATE jobs SET due_at = NULL WHERE id = ?', [w!.job.id]);
    await store!.pool.query('DELETE FROM schema_migrations WHERE version = 4');
    await store!.migrate();
    const [[row]] = await store!.pool.query<RowDataPacket[]>('SELECT due_at FROM jobs WHERE id = ?', [w!.job.id]);
    assert.equal(Number(row!.due_at), at + 1000, 'the migration gives a running job its lease end as due_at');
    assert.deepEqual((await store!.findExpiredLeases(at + 1000, 10)).map((j) => j.id), [w!.job.id]);
    assert.deepEqual(await store!.findExpiredLeases(at + 999, 10), []);
    // A process of the version before, still running during a rolling upgrade, writes due_at NULL.
    await store!.pool.query('UPDATE jobs SET due_at = NULL WHERE id = ?', [w!.job.id]);
    assert.deepEqual((await store!.findExpiredLeases(at + 1000, 10)).map((j) => j.id), [w!.job.id]);
    assert.deepEqual(await store!.findExpiredLeases(at + 999, 10), []);
    const indexes = async () => ((await store!.pool.query<RowDataPacket[]>(
      "SELECT DISTINCT index_name AS i FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name IN ('ix_jobs_state_lease', 'ix_outbox_unpublished')"))[0]).length;
    assert.equal(await indexes(), 0);
    // Run again after dying between the last DROP and the ledger row: the DROPs of gone indexes count as done.
    await store!.pool.query('DELETE FROM schema_migrations WHERE version = 4');
    await store!.migrate();
    assert.equal(await indexes(), 0);
  });

  withStores('four stores submitting, moving and deleting jobs at once keep the counters exact', 4, async (stores) => {
    await stores[0]!.migrate();
    await Promise.all(stores.map(async (store, s) => {
      for (let round = 0; round < 15; round++) {
        const writes = [newJobWrite({ queue: 'hot' }), newJobWrite({ queue: 'hot', type: `t${s}` }), newJobWrite({ queue: 'hot' })];
        await store.insert(writes);
        const ids = writes.map((w) => w.job.id);
        await store.update(ids, (jobs) => ({
          writes: ids.slice(0, 2).map((id) => transitionWrite(jobs.get(id)!, { type: 'CANCEL', at: 1_700_000_000_000 + round })!),
          result: null,
        }));
        await store.deleteJob(ids[0]!);
        await store.purgeJobs('cancelled', 1_700_000_000_000 + round, 1);
      }
    }));
    const key = (c: { queue: string; type: string; state: string; n: number }) => JSON.stringify(c);
    assert.deepEqual((await stores[0]!.jobCounts()).map(key).sort(), (await stores[0]!.recountJobs()).map(key).sort());
    assert.equal((await stores[0]!.stats()).byState.pending, 4 * 15);
  });

  withStores('deletes racing redrives from another store never delete a live job', 2, async ([a, b]) => {
    await a!.migrate();
    const writes = Array.from({ length: 20 }, () => newJobWrite());
    await a!.insert(writes);
    const ids = writes.map((w) => w.job.id);
    const at = 1_700_000_000_000;
    await a!.update(ids, (jobs) => ({ writes: ids.map((id) => transitionWrite(jobs.get(id)!, { type: 'CANCEL', at })!), result: null }));
    const redrive = (id: string) =>
      b!.update([id], (jobs) => {
        const job = jobs.get(id);
        const w = job && transitionWrite(job, { type: 'REDRIVE', at: at + 1 });
        return { writes: w ? [w] : [], result: w ? 'redriven' : 'gone' };
      });
    const outcomes = await Promise.all(ids.flatMap((id, i) => [
      i % 2 ? a!.deleteJob(id) : a!.purgeJobs('cancelled', at, 1).then((n) => ({ purged: n })),
      redrive(id),
    ]));
    for (const id of ids) {
      const job = await a!.getJob(id);
      if (job === null) {
        assert.deepEqual(await a!.getEvents(id), []);
        continue;
      }
      // Not deleted: the redrive won, and the job is whole and live.
      assert.equal(job.snapshot.value, 'pending');
      assert.deepEqual((await a!.getEvents(id)).map((e) => e.seq), [1, 2, 3]);
    }
    assert.ok(outcomes.length === 40);
    const key = (c: { queue: string; type: string; state: string; n: number }) => JSON.stringify(c);
    assert.deepEqual((await a!.jobCounts()).map(key).sort(), (await a!.recountJobs()).map(key).sort());
  });

  withStores('deletes the rows the log acked, and keeps those whose publish failed', 1, async ([store]) => {
    await store!.migrate();
    await store!.insert([newJobWrite()]);
    await assert.rejects(store!.relayOutbox(10, async () => { throw new Error('broker down'); }), /broker down/);
    const [kept] = await store!.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM outbox');
    assert.equal(Number(kept[0]!.n), 1, 'one row holds the transaction\'s two messages');
    assert.equal(await store!.relayOutbox(10, async () => {}), 2);
    const [rows] = await store!.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM outbox');
    assert.equal(Number(rows[0]!.n), 0);
  });

  withStores('the same idempotency key inserted from two stores at once: exactly one wins', 2, async ([a, b]) => {
    await a!.migrate();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).insert([newJobWrite({ key: 'same' }), newJobWrite()])),
    );
    assert.equal(results.filter((r) => r[0]!.ok).length, 1);
    assert.ok(results.every((r) => r[1]!.ok));
    assert.equal((await a!.listJobs({ limit: 100 })).length, 11);
  });

  withStores('updates over overlapping jobs, in opposite orders, from two stores, all commit gap-free', 2, async ([a, b]) => {
    await a!.migrate();
    const writes = [newJobWrite(), newJobWrite(), newJobWrite()];
    await a!.insert(writes);
    const ids = writes.map((w) => w.job.id);
    const cancelThenRedrive = (order: string[], store: MysqlStore, at: number) =>
      store.update(order, (jobs) => ({
        writes: order.map((id) => {
          const job = jobs.get(id)!;
          const event = job.snapshot.value === 'cancelled' ? { type: 'REDRIVE' as const, at } : { type: 'CANCEL' as const, at };
          return transitionWrite(job, event)!;
        }),
        result: null,
      }));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => cancelThenRedrive(i % 2 ? ids : [...ids].reverse(), i % 3 ? a! : b!, 1_700_000_000_000 + i)),
    );
    for (const id of ids) {
      const job = (await a!.getJob(id))!;
      assert.equal(job.version, 21);
      assert.deepEqual((await a!.getEvents(id)).map((e) => e.seq), Array.from({ length: 21 }, (_, i) => i + 1));
    }
  });

  withStores('a transition that waited for a job row changed meanwhile commits under innodb_snapshot_isolation', 1, async ([store], url) => {
    await store!.migrate();
    const [a, b] = [newJobWrite(), newJobWrite()].sort((x, y) => (x.job.id < y.job.id ? -1 : 1));
    await store!.insert([a!, b!]);
    // One pooled connection, so the session setting holds for the store's transaction.
    await store!.pool.query('SET SESSION innodb_snapshot_isolation = ON');
    const other = await createConnection({ uri: url });
    try {
      await other.query('START TRANSACTION');
      await other.query('UPDATE jobs SET updated_at = updated_at + 1 WHERE id = ?', [b!.job.id]);
      const cancel = store!.update([a!.job.id, b!.job.id], (jobs) => ({
        writes: [...jobs.values()].map((job) => transitionWrite(job, { type: 'CANCEL', at: job.createdAt + 5 })!), result: null,
      }));
      await new Promise((r) => setTimeout(r, 300)); // the update locked `a` and waits for `b`
      await other.query('COMMIT');
      await cancel;
      for (const w of [a!, b!]) assert.equal((await store!.getJob(w.job.id))!.snapshot.value, 'cancelled');
    } finally {
      await other.end();
    }
  }, { poolSize: 1 });

  withStores('a statement marked final carries the COMMIT: beforeCommit runs before it, and a throw after it is not retried', 1, async ([store]) => {
    const pool = store!.pool;
    await pool.query('CREATE TABLE t (n INT PRIMARY KEY)');
    const count = async () => ((await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t'))[0][0]!.n as number);
    await assert.rejects(inTransaction(pool, async (run) => {
      await run({ sql: 'INSERT INTO t VALUES (1)', params: [] });
      await run({ sql: 'INSERT INTO t VALUES (2)', params: [], final: true });
    }, { beforeCommit: () => { throw new Error('injected before commit'); } }), /injected before commit/);
    assert.equal(await count(), 0);
    const err = await inTransaction(pool, async (run) => {
      await run({ sql: 'INSERT INTO t VALUES (3)', params: [], final: true });
      throw new Error('a check after the commit');
    }).catch((e: unknown) => e);
    assert.ok(err instanceof CommittedThenFailed);
    assert.equal(isTransient(err), false);
    assert.equal(await count(), 1);
    // A guard that finds other changed rows fails the round trip before its COMMIT: a lost race, retried.
    const guarded = multiStatement([{ sql: 'INSERT INTO t VALUES (4)', params: [] }, { sql: 'UPDATE t SET n = n + 10 WHERE n = 99', params: [] }, guardChangedRows(1)]);
    const lost = await inTransaction(pool, (run) => run({ ...guarded, final: true })).catch((e: unknown) => e);
    assert.ok(lost instanceof VersionConflict, String(lost));
    assert.equal(isTransient(lost), true);
    assert.equal(await count(), 1);
  });

  withStores('a transition holding a job locked does not block the next event of the job with the id just below', 2, async ([a, b]) => {
    await a!.migrate();
    const [lower, upper] = [newJobWrite(), newJobWrite()].sort((x, y) => (x.job.id < y.job.id ? -1 : 1));
    await a!.insert([lower!, upper!]);
    // In `(job_id, seq)`, the next event of `lower` goes into the gap just before `upper`'s first event.
    const conn = await a!.pool.getConnection();
    try {
      const read = selectJobsForUpdate(MYSQL_DIALECT, [upper!.job.id]);
      await conn.query('START TRANSACTION');
      await conn.query(sqlText(read.sql, read.params));
      const cancel = b!.update([lower!.job.id], (jobs) => ({
        writes: [transitionWrite(jobs.get(lower!.job.id)!, { type: 'CANCEL', at: lower!.job.createdAt + 1 })!], result: null,
      }));
      try {
        await within(cancel, 3000, 'the transition of the lower job waited on the locked upper job');
      } finally {
        await conn.query('ROLLBACK');
        await cancel.catch(() => undefined);
      }
      assert.deepEqual((await b!.getEvents(lower!.job.id)).map((e) => e.type), ['SUBMITTED', 'CANCEL']);
    } finally {
      conn.release();
    }
  });

  withStores('a relay holding its claim open (publish not acked yet) blocks no writer, and a second relay skips its rows', 2, async ([a, b]) => {
    await a!.migrate();
    const first = newJobWrite();
    await a!.insert([first]);
    let ack!: () => void;
    const acked = new Promise<void>((r) => { ack = r; });
    let claimed: number[] = [];
    let taken!: () => void;
    const holding = new Promise<void>((r) => { taken = r; });
    const relay = a!.relayOutbox(100, async (rows) => {
      claimed = rows.map((r) => r.id);
      taken();
      await acked;
    });
    await holding;
    // Every transition inserts outbox rows: a submit and an update must not wait for the claim.
    const pending: Promise<unknown>[] = [];
    const unblocked = <T>(what: string, p: Promise<T>): Promise<T> => {
      pending.push(p.catch(() => undefined));
      return within(p, 2000, `${what} still waiting after 2000 ms behind an open claim`);
    };
    try {
    const second = newJobWrite();
    await unblocked('a submit', b!.insert([second]));
    await unblocked('a transition', b!.update([second.job.id], (jobs) => ({
      writes: [transitionWrite(jobs.get(second.job.id)!, { type: 'CANCEL', at: second.job.createdAt + 1 })!], result: null,
    })));
    // A second relay takes only the rows nobody holds, and never the claimed ones.
    const seen: number[] = [];
    await unblocked('a second relay', b!.relayOutbox(100, async (rows) => { seen.push(...rows.map((r) => r.id)); }));
    assert.ok(seen.length > 0);
    assert.deepEqual(seen.filter((id) => claimed.includes(id)), []);
    assert.equal(await a!.countUnpublished(), claimed.length, 'the claimed rows stay unpublished until the log acks');
    } finally {
      ack();
      // On failure, let the writers still waiting finish before the pools close.
      await Promise.all([relay.catch(() => undefined), ...pending]);
    }
    assert.equal(await relay, claimed.length);
    assert.equal(await a!.countUnpublished(), 0);
  });
});
