/**
 * The LimitStore's PUT and DELETE (limits.ts), on SQLite: each one
 * transaction (the PUT locks the row it reads, so another request's write
 * cannot land between its read and its write, nor between its write and its
 * answer: server/limits-race.test.ts races them on both stores). A DELETE
 * that fails half way leaves no limit that lost the count of its running
 * attempts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { createSqlLimits } from './limits.js';
import type { Database } from 'better-sqlite3';
import { runAsync, runSync, type Exec, type Outcome, type Program } from './program.js';

const T = 1_900_000_000_000;

/** One statement on `db`, as a store's runner answers it. */
function runOn(db: Database, sql: string, params: readonly unknown[]): Outcome {
  const s = db.prepare(sql);
  return s.reader ? { rows: s.all(...params) as Record<string, unknown>[], changes: 0 } : { rows: [], changes: s.run(...params).changes };
}

/** A store with limit `smtp` (concurrency 1) and one attempt it admitted, running. */
async function withRunningLimit(fn: (store: SqliteStore) => Promise<void>): Promise<void> {
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  try {
    await store.putLimit('smtp', { concurrency: 1, rate: null }, T);
    store.db.prepare('INSERT INTO limit_running (limit_key, job_id, attempt) VALUES (?, ?, ?)').run('smtp', 'job-1', 1);
    await fn(store);
  } finally {
    await store.close();
  }
}

/** A limit store on `db` that records the statements it runs outside transactions, and those of each transaction. */
function recorded(db: Database) {
  const outside: string[] = [];
  const inside: string[][] = [];
  const exec: Exec = async (sql, params) => {
    outside.push(sql);
    return runOn(db, sql, params);
  };
  const inTransaction = async <T>(program: () => Program<T>): Promise<T> => {
    const steps: string[] = [];
    inside.push(steps);
    return db.transaction(() => runSync(program(), (step) => {
      steps.push(step.sql);
      return runOn(db, step.sql, step.params);
    }))();
  };
  return { limits: createSqlLimits(exec, SQLITE_DIALECT, inTransaction), outside, inside };
}

const runningOf = (db: Database) => (db.prepare('SELECT COUNT(*) AS n FROM limit_running WHERE limit_key = ?').get('smtp') as { n: number }).n;

describe('deleteLimit', () => {
  it('failing half way never leaves the limit without the attempts it counts: the limit goes first, then its running rows', () => withRunningLimit(async (store) => {
    const { db } = store;
    let statements = 0;
    // The connection is lost after deleteLimit's first statement (statements run one by one: no transaction runner).
    const exec: Exec = async (sql, params) => {
      if (/^DELETE FROM/.test(sql) && ++statements > 1) throw new Error('connection lost');
      return runOn(db, sql, params);
    };
    await assert.rejects(createSqlLimits(exec, SQLITE_DIALECT).deleteLimit('smtp'), /connection lost/);
    const limit = await store.getLimit('smtp');
    assert.ok(limit === null || runningOf(db) === 1, 'a limit left in place still counts the attempt it admitted');
    assert.equal(limit, null, 'the limit went first');
  }));

  it('deletes the limit and its running rows in one transaction (a PUT and a claim of the key between them would lose their count)', () => withRunningLimit(async ({ db }) => {
    const { limits, outside, inside } = recorded(db);
    assert.equal(await limits.deleteLimit('smtp'), true);
    assert.deepEqual(outside.filter((sql) => sql.startsWith('DELETE')), [], 'no delete outside the transaction');
    assert.deepEqual(inside, [['DELETE FROM limits WHERE limit_key = ?', 'DELETE FROM limit_running WHERE limit_key = ?']]);
    assert.equal(await limits.getLimit('smtp'), null);
    assert.equal(runningOf(db), 0);
  }));
});

describe('putLimit', () => {
  it('reads the row and writes it in one transaction, and answers what it wrote: created, then replaced with the rate state moved by the change of step', () => withRunningLimit(async ({ db }) => {
    const { limits, outside, inside } = recorded(db);
    const rate = { max: 2, intervalMs: 1000 };
    const created = await limits.putLimit('api', { concurrency: null, rate }, T + 1, 10);
    assert.deepEqual(created, { limit: { key: 'api', concurrency: null, rate, tat: 0, createdAt: T + 1, updatedAt: T + 1 }, created: true });
    db.prepare('UPDATE limits SET tat = ? WHERE limit_key = ?').run(T + 500, 'api');
    const faster = { max: 10, intervalMs: 1000 };
    const replaced = await limits.putLimit('api', { concurrency: 3, rate: faster }, T + 2, 10);
    assert.deepEqual(replaced, { limit: { key: 'api', concurrency: 3, rate: faster, tat: T + 500 - 400, createdAt: T + 1, updatedAt: T + 2 }, created: false });
    assert.deepEqual(await limits.getLimit('api'), replaced.limit, 'the answer is what is stored');
    assert.deepEqual(outside.filter((sql) => !sql.startsWith('SELECT limit_key, concurrency')), [], 'no write outside a transaction');
    // A replace of a missing row (nothing written), the creation under the tenant's count, a replace.
    assert.deepEqual(inside.map((steps) => steps.map((sql) => sql.split(' ').slice(0, 2).join(' '))),
      [['SELECT limit_key,'], ['SELECT COUNT(*)', 'SELECT limit_key,', 'INSERT INTO'], ['SELECT limit_key,', 'UPDATE limits']]);
  }));

  it('on MySQL, locks the row it reads (and the tenant\'s keys it counts) before it writes, and commits with its write', async () => {
    const steps: Array<{ sql: string; final?: boolean }> = [];
    let row: Record<string, unknown> | undefined;
    const exec: Exec = async () => assert.fail('no statement outside a transaction');
    const inTransaction = async <T>(program: () => Program<T>): Promise<T> => runAsync(program(), async (step) => {
      steps.push({ sql: step.sql, final: step.final });
      if (step.sql.startsWith('SELECT COUNT')) return { rows: [{ n: 0 }], changes: 0 };
      if (step.sql.startsWith('SELECT')) return { rows: row ? [row] : [], changes: 0 };
      return { rows: [], changes: 1 };
    });
    const limits = createSqlLimits(exec, MYSQL_DIALECT, inTransaction);
    await limits.putLimit('acme/api', { concurrency: 1, rate: null }, T, 10);
    assert.deepEqual(steps.map((s) => [s.sql.split(' ')[0], /FOR UPDATE$/.test(s.sql.trim()), s.final === true]),
      [['SELECT', true, false], ['SELECT', true, false], ['SELECT', true, false], ['INSERT', false, true]]);
    steps.length = 0;
    row = { limit_key: 'acme/api', concurrency: 1, rate_max: null, rate_interval_ms: null, tat: 0, created_at: T, updated_at: T };
    await limits.putLimit('acme/api', { concurrency: 2, rate: null }, T + 1, 10);
    assert.deepEqual(steps.map((s) => [s.sql.split(' ')[0], /FOR UPDATE$/.test(s.sql.trim()), s.final === true]),
      [['SELECT', true, false], ['UPDATE', false, true]]);
  });

  it('a key created by another request between its read and its insert (statements run one by one): it replaces that one', () => withRunningLimit(async ({ db }) => {
    let raced = false;
    let reads = 0;
    const exec: Exec = async (sql, params) => {
      const out = runOn(db, sql, params);
      // The second read of the missing row (the creation's), then another request's insert.
      if (!raced && sql.startsWith('SELECT limit_key') && sql.includes('WHERE limit_key = ?') && out.rows.length === 0 && reads++ === 1) {
        raced = true;
        db.prepare('INSERT INTO limits (limit_key, concurrency, rate_max, rate_interval_ms, tat, created_at, updated_at) VALUES (?, 5, NULL, NULL, 0, ?, ?)').run('new', T, T);
      }
      return out;
    };
    const { limit, created } = await createSqlLimits(exec, SQLITE_DIALECT).putLimit('new', { concurrency: 2, rate: null }, T + 1, 10);
    assert.equal(raced, true);
    assert.equal(created, false);
    assert.deepEqual(limit, { key: 'new', concurrency: 2, rate: null, tat: 0, createdAt: T, updatedAt: T + 1 });
    assert.deepEqual(await createSqlLimits(exec, SQLITE_DIALECT).getLimit('new'), limit);
  }));

  it('refuses a new key of a tenant at its most limits, and writes nothing', () => withRunningLimit(async (store) => {
    const { limits } = recorded(store.db);
    await assert.rejects(limits.putLimit('other', { concurrency: 1, rate: null }, T + 1, 1), { code: 'ATS_ERR_TOO_MANY_LIMITS' });
    assert.equal(await store.getLimit('other'), null);
    assert.equal((await limits.putLimit('smtp', { concurrency: 2, rate: null }, T + 1, 1)).limit.concurrency, 2, 'a key it has is replaced');
  }));
});
