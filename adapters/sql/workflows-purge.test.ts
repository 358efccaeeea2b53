/**
 * Retention's purge of ended workflow instances (adapters/sql/workflows.ts),
 * on SQLite and on MariaDB, transaction by transaction: each deletes at most
 * `PURGE_MAX_EVENTS` history rows, however long the histories, and an
 * instance whose history is longer goes over several, its row last, so a pass
 * that stops between them leaves it for the next.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MysqlStore } from '../mysql/index.js';
import { inTransaction } from '../mysql/tx.js';
import type { SqliteStore } from '../sqlite/index.js';
import type { WorkflowRecord, WorkflowStore } from '../../engine/ports.js';
import type { WorkflowStatus } from '../../machines/workflow.js';
import { STORE_BACKENDS, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';
import { MYSQL_DIALECT, SQLITE_DIALECT, type Dialect } from './dialect.js';
import { runAsync, runSync, type Program } from './program.js';
import type { Row } from './rows.js';
import { PURGE_MAX_EVENTS, purgeWorkflowsInSteps, purgeWorkflowsStep } from './workflows.js';

type Store = TestStore & WorkflowStore;

const T = 1_900_000_000_000;
const wid = (n: number): string => `01W${String(n).padStart(23, '0')}`;

/** What the test needs of a store beside its methods: plain statements, and programs each in a transaction of its own. */
interface Access {
  d: Dialect;
  query(sql: string, params: unknown[]): Promise<Row[]>;
  transaction<T>(program: () => Program<T>): Promise<T>;
}

function access(store: Store): Access {
  if ('db' in store) {
    const { db } = store as unknown as SqliteStore;
    const exec = (sql: string, params: readonly unknown[]) => {
      const stmt = db.prepare(sql);
      return stmt.reader ? { rows: stmt.all([...params]) as Row[], changes: 0 } : { rows: [], changes: stmt.run([...params]).changes };
    };
    return {
      d: SQLITE_DIALECT,
      query: async (sql, params) => exec(sql, params).rows,
      transaction: async (program) => db.transaction(() => runSync(program(), (s) => exec(s.sql, s.params))).immediate(),
    };
  }
  const { pool } = store as unknown as MysqlStore;
  return {
    d: MYSQL_DIALECT,
    query: async (sql, params) => {
      const [res] = await pool.query(sql, params);
      return Array.isArray(res) ? (res as Row[]) : [];
    },
    transaction: (program) => inTransaction(pool, (run) => runAsync(program(), run)),
  };
}

/** An ended instance last stepped at `T + n` whose history holds `events` rows (its `version`), written straight into the tables. */
async function endedWith(store: Store, a: Access, n: number, events: number, status: WorkflowStatus = 'done'): Promise<void> {
  const w: WorkflowRecord = {
    id: wid(n), tenant: 'default', name: 'order', definitionVersion: 1, input: null,
    state: { value: 'end', context: {}, history: [], status, children: [], timers: [] },
    version: 1, idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T + n,
  };
  await store.insertWorkflow({
    workflow: w, expectedVersion: null, jobs: [], cancel: null,
    event: { workflowId: w.id, seq: 1, type: 'START', at: T, data: { input: null, jobIds: [] }, status },
  });
  for (let from = 2; from <= events; from += 1000) {
    const seqs = Array.from({ length: Math.min(1000, events - from + 1) }, (_, i) => from + i);
    await a.query(
      `INSERT INTO workflow_events (workflow_id, seq, type, at, data, status, state_value) VALUES ${seqs.map(() => "(?, ?, 'SIGNAL', ?, '{}', ?, '\"end\"')").join(', ')}`,
      seqs.flatMap((seq) => [w.id, seq, T, status]),
    );
  }
  await a.query('UPDATE workflows SET version = ? WHERE id = ?', [events, w.id]);
}

const countEvents = async (a: Access): Promise<number> => Number((await a.query('SELECT COUNT(*) AS n FROM workflow_events', []))[0]!.n);

/** `a.transaction`, checking each transaction deletes at most `bound` events; `deleted` gets each one's count. */
function bounded(a: Access, bound: number, deleted: number[]): Access['transaction'] {
  return async (program) => {
    const before = await countEvents(a);
    const result = await a.transaction(program);
    const n = before - (await countEvents(a));
    deleted.push(n);
    assert.ok(n <= bound, `one transaction deleted ${n} workflow events, over ${bound}`);
    return result;
  };
}

for (const backend of STORE_BACKENDS) {
  const run = (fn: (store: Store) => Promise<void>) => () => withMigratedStore(backend, (store) => fn(store as Store));

  describe(`workflow retention's transactions (${backend.name})`, () => {
    it('each deletes at most PURGE_MAX_EVENTS events; a longer history goes over several, its row last; the purge completes', run(async (store) => {
      const a = access(store);
      await endedWith(store, a, 1, 3000);
      await endedWith(store, a, 2, 25_000);
      for (const n of [3, 4, 5]) await endedWith(store, a, n, 3000);
      await endedWith(store, a, 6, 7, 'cancelled'); // another status: left alone
      const total = await countEvents(a);
      const deleted: number[] = [];
      const tx = bounded(a, PURGE_MAX_EVENTS, deleted);
      const purge = async () => (await tx(() => purgeWorkflowsStep(a.d, 'done', T + 10, 500))).instances;

      assert.equal(await purge(), 1, 'the first instance alone: the long one would go over the bound');
      assert.equal(await purge(), 0, 'a part of the long history');
      // Between two transactions: the ended instance is still there, with the rest of its history.
      const left = await store.getWorkflowEvents(wid(2));
      assert.equal(left.length, 25_000 - PURGE_MAX_EVENTS);
      assert.deepEqual([left[0]!.seq, left.at(-1)!.seq], [PURGE_MAX_EVENTS + 1, 25_000]);
      assert.equal((await store.getWorkflow(wid(2)))?.state.status, 'done');
      let passes = 2;
      let instances = 1;
      for (;;) {
        const n = await purge();
        passes++;
        instances += n;
        if (n === 0 && deleted.at(-1) === 0) break;
        assert.ok(passes < 20, 'the purge ends');
      }
      assert.equal(instances, 5);
      assert.deepEqual((await store.listWorkflows({ tenant: 'default', limit: 10 })).map((w) => w.id), [wid(6)]);
      assert.equal(await countEvents(a), 7);
      assert.equal(deleted.reduce((x, y) => x + y, 0), total - 7);
    }));

    it('purgeWorkflowsInSteps deletes up to `limit` instances in as many bounded transactions as their histories need', run(async (store) => {
      const a = access(store);
      await endedWith(store, a, 1, 25);
      for (const n of [2, 3, 4, 5, 6]) await endedWith(store, a, n, 4);
      const deleted: number[] = [];
      const tx = bounded(a, 10, deleted);
      assert.equal(await purgeWorkflowsInSteps(tx, a.d, 'done', T + 10, 4, 10), 4);
      assert.deepEqual((await store.listWorkflows({ tenant: 'default', limit: 10 })).map((w) => w.id), [wid(6), wid(5)]);
      assert.deepEqual(deleted, [10, 10, 5, 8, 4], 'the long history in three, then two short ones, then the one the limit leaves room for');
      assert.equal(await purgeWorkflowsInSteps(tx, a.d, 'done', T + 10, 4, 10), 2);
      assert.equal(await purgeWorkflowsInSteps(tx, a.d, 'done', T + 10, 4, 10), 0);
      assert.equal(await countEvents(a), 0);
    }));

    it('purgeWorkflowsInSteps stopped (its signal aborted) gives up before its next transaction: what went stays gone, the rest waits for the next purge', run(async (store) => {
      const a = access(store);
      await endedWith(store, a, 1, 25);
      for (const n of [2, 3]) await endedWith(store, a, n, 4);
      const stop = new AbortController();
      const deleted: number[] = [];
      const tx = bounded(a, 10, deleted);
      // The second transaction is in flight when the stop comes.
      const stopping: Access['transaction'] = async (program) => {
        if (deleted.length === 1) stop.abort();
        return tx(program);
      };
      assert.equal(await purgeWorkflowsInSteps(stopping, a.d, 'done', T + 10, 4, 10, stop.signal), 0);
      assert.deepEqual(deleted, [10, 10], 'the transaction in flight committed; none after it');
      assert.equal((await store.getWorkflowEvents(wid(1))).length, 5, 'the long history is left whole from its 21st event, its row kept');
      assert.equal(await purgeWorkflowsInSteps(tx, a.d, 'done', T + 10, 4, 10), 3, 'the next purge goes on from there');
      assert.equal(await countEvents(a), 0);
    }));

    it('the store\'s purgeWorkflows takes the signal: stopped before it begins, it deletes nothing', run(async (store) => {
      const a = access(store);
      await endedWith(store, a, 1, 4);
      const stop = new AbortController();
      stop.abort();
      assert.equal(await store.purgeWorkflows('done', T + 10, 10, stop.signal), 0);
      assert.ok(await store.getWorkflow(wid(1)));
      assert.equal(await store.purgeWorkflows('done', T + 10, 10), 1);
    }));
  });
}
