/**
 * A MariaDB that becomes unreachable while the store runs (a TCP proxy in
 * between, cut by the test): every store operation rejects with
 * ATS_ERR_STORE_UNAVAILABLE, never a raw driver error, and works again once
 * the server is back. Lost races and bad data stay what they were.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { AtsError, STORE_UNAVAILABLE_WHY } from '../../engine/errors.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createProxiedTestStore, createTestStore, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import type { TcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { VersionConflict } from '../sql/writes.js';
import { createMysqlStore, type MysqlStore } from './index.js';
import { isMysqlUnavailable, mysqlOutage } from './unavailable.js';
import { isLostRace } from './tx.js';
import { guardStore } from '../sql/unavailable.js';
import type { JobStore } from '../../engine/ports.js';

await requireMysql();

const unavailable = (e: unknown) => {
  assert.ok(e instanceof AtsError, `expected an AtsError, got ${String((e as Error)?.stack ?? e)}`);
  assert.equal(e.code, 'ATS_ERR_STORE_UNAVAILABLE');
  return true;
};

/**
 * A store behind a proxy that stops answering (`proxy.stall()`) once a job is
 * written and `warm` has run: statements time out after 500 ms. Registers the
 * describe's before/after; its fields are set by the time the tests run.
 */
function stalledStore(pool: { poolSize: number; connectTimeoutMs: number }, warm?: (store: MysqlStore, existing: string) => Promise<unknown>) {
  const s = {} as { proxy: TcpProxy; store: MysqlStore; existing: string; cleanup?: () => Promise<void> };
  before(async () => {
    Object.assign(s, await createProxiedTestStore({ ...pool, queryTimeoutMs: 500 }));
    const w = newJobWrite();
    await s.store.insert([w]);
    s.existing = w.job.id;
    await warm?.(s.store, s.existing);
    s.proxy.stall();
  });
  after(async () => {
    s.proxy?.unstall();
    await s.cleanup?.();
  });
  return s;
}

describe('MySQL store: the server becomes unreachable', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let store: MysqlStore;
  let cleanup: (() => Promise<void>) | undefined;
  let existing: string;

  before(async () => {
    ({ db, proxy, store, cleanup } = await createProxiedTestStore({ poolSize: 3, connectTimeoutMs: 1000 }));
    const w = newJobWrite();
    await store.insert([w]);
    existing = w.job.id;
    // Fill the pool with idle connections, so the cut hits open ones too.
    await Promise.all([store.getJob(existing), store.stats(), store.listJobs({ limit: 1 })]);
    await proxy.cut();
  });

  after(() => cleanup?.());

  const operations: Array<[string, () => Promise<unknown>]> = [
    ['getJob', () => store.getJob(existing)],
    ['listJobs', () => store.listJobs({ limit: 5 })],
    ['stats', () => store.stats()],
    ['getEvents', () => store.getEvents(existing)],
    ['findDue', () => store.findDue(Date.now(), 10)],
    ['insert', () => store.insert([newJobWrite()])],
    ['update', () => store.update([existing], () => ({ writes: [], result: null }))],
    ['relayOutbox', () => store.relayOutbox(10, async () => undefined)],
    ['ping', () => store.ping()],
  ];
  for (const [name, op] of operations) {
    test(`${name} rejects with ATS_ERR_STORE_UNAVAILABLE`, async () => {
      await assert.rejects(op(), unavailable);
    });
  }

  test('once the server is reachable again, the same store works', async () => {
    await proxy.restore();
    const job = await store.getJob(existing);
    assert.equal(job?.id, existing);
    assert.equal((await store.insert([newJobWrite()]))[0]?.ok, true);
  });

  test('a closed pool is unavailable too', async () => {
    const other = await createMysqlStore({ url: db.url, poolSize: 1 });
    await other.close();
    await assert.rejects(other.getJob(existing), unavailable);
  });
});

describe('MySQL store: the server stops answering', () => {
  // A partition or a frozen host: connections stay open, no reply comes.
  // Before statements were bounded, every operation here waited for ever.
  // Three connections open (the reads warm the pool) when the server stops answering.
  const s = stalledStore({ poolSize: 3, connectTimeoutMs: 1000 }, (store, existing) => Promise.all([store.getJob(existing), store.stats(), store.listJobs({ limit: 1 })]));

  const operations: Array<[string, () => Promise<unknown>]> = [
    ['getJob', () => s.store.getJob(s.existing)],
    ['stats', () => s.store.stats()],
    ['insert', () => s.store.insert([newJobWrite()])],
    ['update', () => s.store.update([s.existing], () => ({ writes: [], result: null }))],
    ['relayOutbox', () => s.store.relayOutbox(10, async () => undefined)],
    ['dbNow', () => s.store.dbNow()],
    ['ping', () => s.store.ping()],
  ];
  for (const [name, op] of operations) {
    // The test's own timeout only turns a hang into a failure; no speed is asserted.
    test(`${name} rejects with ATS_ERR_STORE_UNAVAILABLE instead of waiting for ever`, { timeout: 20_000 }, async () => {
      const err = await op().then(() => null, (e: unknown) => e);
      unavailable(err);
      // No answer on an open connection; once those are dropped, no new connection is made either (or none
      // comes within the same bound).
      assert.match(String(((err as Error).cause as Error)?.message), /did not answer within 500 ms|connect ETIMEDOUT|no MySQL connection within 500 ms/);
    });
  }

  test('once the server answers again, the same store works (the stuck connections were dropped)', { timeout: 20_000 }, async () => {
    s.proxy.unstall();
    assert.equal((await s.store.getJob(s.existing))?.id, s.existing);
    assert.equal((await s.store.insert([newJobWrite()]))[0]?.ok, true);
  });
});

describe('MySQL store: the server stops answering, and more callers wait than the pool has connections', () => {
  // A host gone without a reset: a new connection's handshake never comes either. The
  // connect timeout is made longer than the test, so an operation that waits for a
  // pooled connection for as long as the driver tries to open one never ends here;
  // the wait for a connection is bounded by the statement timeout, as a statement is.
  const s = stalledStore({ poolSize: 2, connectTimeoutMs: 600_000 });

  test('each operation rejects with ATS_ERR_STORE_UNAVAILABLE instead of queueing for a connection for ever', { timeout: 30_000 }, async () => {
    const ops = [
      ...Array.from({ length: 4 }, () => s.store.getJob(s.existing)),
      ...Array.from({ length: 4 }, () => s.store.insert([newJobWrite()])),
    ];
    const errs = await Promise.all(ops.map((p) => p.then(() => null, (e: unknown) => e)));
    for (const err of errs) unavailable(err);
    const causes = errs.map((e) => String(((e as Error).cause as Error)?.message));
    assert.ok(causes.some((m) => /no MySQL connection within 500 ms/.test(m)), causes.join('; '));
  });

  test('once the server answers again, the same store works', { timeout: 30_000 }, async () => {
    s.proxy.unstall();
    assert.equal((await s.store.getJob(s.existing))?.id, s.existing);
    assert.equal((await s.store.insert([newJobWrite()]))[0]?.ok, true);
  });
});

describe('MySQL store: the server refuses statements for a while', () => {
  // Real server errors, not look-alikes: what the server sends for a read-only
  // primary, a statement killed or out of time (mysql2 names MariaDB's own
  // numbers with no code at all).
  let db: TestDatabase;
  let store: MysqlStore;
  let cleanup: (() => Promise<void>) | undefined;
  let admin: Connection;
  let mariadb: boolean;

  before(async () => {
    // One connection, so a session setting made through the pool is the store's.
    ({ db, store, cleanup } = await createTestStore({ poolSize: 1 }));
    admin = await createConnection(db.url);
    const [[row]] = await admin.query<RowDataPacket[]>('SELECT VERSION() AS v');
    mariadb = /mariadb/i.test(String(row!.v));
  });

  after(async () => {
    await admin?.end();
    await cleanup?.();
  });

  test('writes in a read-only session (a demoted primary) reject with ATS_ERR_STORE_UNAVAILABLE, and work once it is writable', async () => {
    // A connection refused so is destroyed, not pooled again (after a failover it leads to the demoted server): each
    // session is made read-only anew, and the pool's next connection is a new session.
    await store.pool.query('SET SESSION TRANSACTION READ ONLY');
    try {
      await assert.rejects(store.insert([newJobWrite()]), (e: Error) => unavailable(e) && (e.cause as { errno?: number }).errno === 1792
        && e.message === STORE_UNAVAILABLE_WHY.readOnly);
      await store.pool.query('SET SESSION TRANSACTION READ ONLY');
      await assert.rejects(store.deleteLimit('absent'), unavailable);
    } finally {
      await store.pool.query('SET SESSION TRANSACTION READ WRITE');
    }
    assert.equal((await store.insert([newJobWrite()]))[0]?.ok, true);
  });

  test("a statement over the server's own time bound is unavailable", async () => {
    const sql = mariadb
      ? 'SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(2)'
      : 'SELECT /*+ MAX_EXECUTION_TIME(50) */ COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c';
    const err = await store.pool.query(sql).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof Error, 'the statement was stopped');
    assert.equal(isMysqlUnavailable(err), true, `errno ${(err as { errno?: number }).errno}`);
  });

  test('a statement run on its own that waits out its lock is run again (the lock gone by then: it succeeds), as a transaction is', { timeout: 30_000 }, async () => {
    const worker = { id: 'w-locked', host: 'h', pid: 1, queues: ['*'], types: ['demo.echo'], concurrency: 1, startedAt: 1, lastSeenAt: 1 };
    await store.upsertWorker(worker);
    await store.pool.query('SET SESSION innodb_lock_wait_timeout = 1');
    await admin.query('BEGIN');
    try {
      await admin.query('SELECT id FROM workers WHERE id = ? FOR UPDATE', [worker.id]);
      const deleted = store.deleteWorker(worker.id).then(() => 'deleted', (e: unknown) => e);
      // The first try times out at 1 s; the lock goes at 1.5 s, within the second try's wait.
      await new Promise((r) => setTimeout(r, 1500));
      await admin.query('ROLLBACK');
      assert.equal(await deleted, 'deleted', 'deleted at its second try, not a lock wait timeout thrown (a 500)');
    } finally {
      await admin.query('ROLLBACK');
      await store.pool.query('SET SESSION innodb_lock_wait_timeout = DEFAULT');
    }
    assert.deepEqual((await store.listWorkers()).map((w) => w.id), []);
  });

  test('a statement stopped by KILL QUERY is unavailable', { timeout: 30_000 }, async () => {
    const conn = await store.pool.getConnection();
    try {
      const running = conn.query('SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c')
        .then(() => null, (e: unknown) => e);
      // Kill it once the server runs it (polled: no timing is assumed).
      for (;;) {
        const [rows] = await admin.query<RowDataPacket[]>('SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [conn.threadId, 'SELECT COUNT(*)%']);
        if (rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await admin.query(`KILL QUERY ${Number(conn.threadId)}`);
      const err = await running;
      assert.equal((err as { errno?: number }).errno, 1317);
      assert.equal(isMysqlUnavailable(err), true);
    } finally {
      conn.release();
    }
  });
});

describe('isMysqlUnavailable', () => {
  const err = (fields: Record<string, unknown>, message = 'x') => Object.assign(new Error(message), fields);
  const yes: Array<[string, unknown]> = [
    ['connection refused', err({ code: 'ECONNREFUSED', errno: -111, fatal: true })],
    ['connection lost', err({ code: 'PROTOCOL_CONNECTION_LOST', fatal: true })],
    ['connect timeout', err({ code: 'ETIMEDOUT', fatal: true })],
    ['too many connections', err({ code: 'ER_CON_COUNT_ERROR', errno: 1040 })],
    ['server shutting down', err({ code: 'ER_SERVER_SHUTDOWN', errno: 1053 })],
    ['server gone away', err({ code: 'CR_SERVER_GONE_ERROR', errno: 2006 })],
    // MariaDB's own numbers: mysql2 gives them no code.
    ['connection killed (MariaDB)', err({ errno: 1927, sqlState: '70100' })],
    ['statement timeout (MariaDB max_statement_time)', err({ errno: 1969, sqlState: '70100' })],
    ['read-only server', err({ code: 'ER_OPTION_PREVENTS_STATEMENT', errno: 1290, sqlState: 'HY000' }, 'The MariaDB server is running with the --read-only option so it cannot execute this statement')],
    ['read-only mode', err({ code: 'ER_READ_ONLY_MODE', errno: 1836 })],
    ['InnoDB read-only', err({ code: 'ER_INNODB_READ_ONLY', errno: 1874 })],
    ['read-only transaction', err({ code: 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION', errno: 1792, sqlState: '25006' })],
    ['table full', err({ code: 'ER_RECORD_FILE_FULL', errno: 1114, sqlState: 'HY000' }, "The table 'outbox' is full")],
    ['disk full', err({ code: 'ER_DISK_FULL', errno: 1021 })],
    ['out of memory', err({ code: 'ER_OUTOFMEMORY', errno: 1037 })],
    ['query killed', err({ code: 'ER_QUERY_INTERRUPTED', errno: 1317, sqlState: '70100' })],
    ['statement timeout (MySQL max_execution_time)', err({ code: 'ER_QUERY_TIMEOUT', errno: 3024 })],
    ['any fatal driver error', err({ fatal: true }, "Can't add new command when connection is in closed state")],
    ['pool closed', new Error('Pool is closed.')],
    ['pool queue full', new Error('Queue limit reached.')],
    ['no answer in time', err({ code: 'PROTOCOL_SEQUENCE_TIMEOUT' }, 'MySQL did not answer within 60000 ms')],
  ];
  const no: Array<[string, unknown]> = [
    ['duplicate key', err({ code: 'ER_DUP_ENTRY', errno: 1062, sqlState: '23000' })],
    ['syntax error', err({ code: 'ER_PARSE_ERROR', errno: 1064 })],
    ['no such table', err({ code: 'ER_NO_SUCH_TABLE', errno: 1146 })],
    ['a socket error (negative errno)', err({ code: 'EACCES', errno: -13 })],
    ['row lock wait (retried as a lost race)', err({ code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 })],
    ['version conflict', new VersionConflict('j', 'version moved')],
    ['an AtsError', new AtsError('ATS_ERR_CONCURRENT_UPDATE')],
    ['a plain error', new Error('boom')],
    ['not an error', 'ECONNREFUSED'],
  ];
  for (const [name, e] of yes) test(`unavailable: ${name}`, () => assert.equal(isMysqlUnavailable(e), true));
  for (const [name, e] of no) test(`not unavailable: ${name}`, () => assert.equal(isMysqlUnavailable(e), false));

  test('a race no retry took up leaves the store as a 409 "try again", an outage as a 503, anything else as it is', async () => {
    const failWith = (e: unknown) => guardStore({ getJob: async () => { throw e; } } as unknown as JobStore, mysqlOutage, isLostRace);
    const code = (e: unknown) => failWith(e).getJob('j').then(() => null, (thrown: unknown) => thrown instanceof AtsError ? thrown.status : thrown);
    assert.equal(await code(err({ code: 'ER_LOCK_DEADLOCK', errno: 1213, sqlState: '40001' })), 409);
    assert.equal(await code(err({ code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 })), 409);
    assert.equal(await code(err({ code: 'ECONNREFUSED', errno: -111, fatal: true })), 503);
    const bug = err({ code: 'ER_PARSE_ERROR', errno: 1064 });
    assert.equal(await code(bug), bug);
    const own = new VersionConflict('j', 'version moved');
    assert.equal(await code(own), own, 'the store\'s own conflict is its retry\'s, not a server\'s lost race');
  });

  test('what a caller is told: read only, a full disk, else the registry\'s "not reachable"', () => {
    const told = mysqlOutage;
    const byName = new Map(yes);
    assert.equal(told(byName.get('read-only server')), 'readOnly');
    assert.equal(told(byName.get('read-only transaction')), 'readOnly');
    assert.equal(told(byName.get('disk full')), 'full');
    assert.equal(told(byName.get('table full')), 'full');
    assert.equal(told(byName.get('connection refused')), true);
    assert.equal(told(byName.get('too many connections')), true);
    for (const [, e] of no) assert.equal(told(e), false);
  });
});
