/**
 * The LimitStore's PUT (limits.ts `putLimit`) racing a DELETE of its key, on
 * SQLite: the DELETE is run by the statement runner right after the PUT's
 * writes, where another request's would land. The PUT writes again, or
 * answers the limit it wrote; it never answers without one. A DELETE that
 * fails half way leaves no limit that lost the count of its running attempts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { SQLITE_DIALECT } from './dialect.js';
import { createSqlLimits } from './limits.js';
import type { Database } from 'better-sqlite3';
import { runSync, type Exec, type Outcome, type Program } from './program.js';

const T = 1_900_000_000_000;

/** One statement on `db`, as a store's runner answers it. */
function runOn(db: Database, sql: string, params: readonly unknown[]): Outcome {
  const s = db.prepare(sql);
  return s.reader ? { rows: s.all(...params) as Record<string, unknown>[], changes: 0 } : { rows: [], changes: s.run(...params).changes };
}

/** A limit store whose writes matching `deletedAfter` are each followed by a DELETE of the key (up to `times`). */
async function racedByDelete(deletedAfter: RegExp, times = Infinity) {
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  const { db } = store;
  let deletes = 0;
  const exec: Exec = async (sql, params) => {
    const out = runOn(db, sql, params);
    if (deletedAfter.test(sql) && out.changes > 0 && deletes < times) {
      deletes++;
      db.prepare('DELETE FROM limits').run();
    }
    return out;
  };
  return { store, limits: createSqlLimits(exec, SQLITE_DIALECT), deletes: () => deletes };
}

describe('putLimit racing a DELETE of its key', () => {
  it('a replace deleted before it is read back is written again, and the PUT answers the row it then wrote', async () => {
    const { store, limits, deletes } = await racedByDelete(/^UPDATE limits SET concurrency/, 1);
    try {
      await store.putLimit('smtp', { concurrency: 1, rate: null }, T);
      const { limit, created } = await limits.putLimit('smtp', { concurrency: 2, rate: null }, T + 1);
      assert.equal(deletes(), 1);
      assert.deepEqual(limit, { key: 'smtp', concurrency: 2, rate: null, tat: 0, createdAt: T + 1, updatedAt: T + 1 });
      assert.equal(created, true, 'the row it read back is the one it created after the DELETE');
      assert.deepEqual(await store.getLimit('smtp'), limit);
    } finally {
      await store.close();
    }
  });

  it('every write deleted before it is read back: the PUT answers the limit it wrote', async () => {
    const { store, limits, deletes } = await racedByDelete(/^(UPDATE|INSERT INTO) limits /);
    try {
      const rate = { max: 5, intervalMs: 1000 };
      const { limit, created } = await limits.putLimit('smtp', { concurrency: 3, rate }, T);
      assert.ok(deletes() > 1, 'written again');
      assert.deepEqual(limit, { key: 'smtp', concurrency: 3, rate, tat: 0, createdAt: T, updatedAt: T });
      assert.equal(created, true);
      assert.equal(await store.getLimit('smtp'), null, 'the DELETE came last');
    } finally {
      await store.close();
    }
  });
});

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
    const limits = createSqlLimits(exec, SQLITE_DIALECT, inTransaction);
    assert.equal(await limits.deleteLimit('smtp'), true);
    assert.deepEqual(outside.filter((sql) => sql.startsWith('DELETE')), [], 'no delete outside the transaction');
    assert.deepEqual(inside, [['DELETE FROM limits WHERE limit_key = ?', 'DELETE FROM limit_running WHERE limit_key = ?']]);
    assert.equal(await limits.getLimit('smtp'), null);
    assert.equal(runningOf(db), 0);
  }));
});
