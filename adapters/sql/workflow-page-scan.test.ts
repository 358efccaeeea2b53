/**
 * A tenant's page of workflow instances of one name and status reads the
 * name's index and tests the status on each row: a status the name's
 * instances seldom have made a page walk all of them (50,000 rows read to
 * answer none, on a tenant with 50,000 instances of a name). Such a page now
 * reads at most MAX_PAGE_SCAN of them (pages.ts `scan`) and may end short, or
 * empty, with a cursor from where it stopped; following the cursors lists
 * every match once, in order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkflowRecord } from '../../engine/ports.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { MAX_PAGE_SCAN } from './pages.js';

const MANY = Math.ceil(2.5 * MAX_PAGE_SCAN);
const T = 1_900_000_000_000;
const wid = (n: number): string => `01W${String(n).padStart(23, '0')}`;
const COLUMNS = 'tenant, name, definition_version, input, version, created_at, updated_at';

function instance(id: string): WorkflowRecord {
  return {
    id, tenant: 'acme', name: 'gate', definitionVersion: 1, input: { n: 1 },
    state: { value: 'a', context: {}, history: [], status: 'active', children: [], timers: [] },
    version: 1, idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T,
  };
}

describe('a page of workflow instances of one name and status', () => {
  it(`a status seldom held among ${MANY} instances of the name: pages stop at their bound, every match listed once`, async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const source = instance(wid(2));
      const write = { workflow: source, expectedVersion: null, jobs: [], cancel: null, event: { workflowId: source.id, seq: 1, type: 'START' as const, at: T, data: { input: source.input, jobIds: [] }, status: 'active' as const } };
      assert.deepEqual(await store.insertWorkflow(write), { ok: true });
      const copy = (id: string, status: string) => store.db.prepare(
        `INSERT INTO workflows (id, status, state, ${COLUMNS}) SELECT ?, ?, REPLACE(state, '"status":"active"', '"status":"' || ? || '"'), ${COLUMNS} FROM workflows WHERE id = ?`,
      ).run(id, status, status, source.id);
      const [oldest, newest] = [wid(1), wid(10 * MANY)];
      copy(oldest, 'done');
      copy(newest, 'done');
      store.db.exec(`CREATE TEMP TABLE seq (n INTEGER PRIMARY KEY); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${MANY}) INSERT INTO seq SELECT n FROM c`);
      store.db.prepare(`INSERT INTO workflows (id, status, state, ${COLUMNS}) SELECT printf('01W%023d', s.n + 10), status, state, ${COLUMNS} FROM workflows w JOIN seq s WHERE w.id = ?`).run(source.id);

      const pages: string[][] = [];
      let after: string | null = null;
      do {
        const page = await store.listWorkflowPage({ tenant: 'acme', name: 'gate', status: 'done', limit: 50, ...(after ? { afterId: after } : {}) }, 1 << 20);
        pages.push(page.workflows.map((w) => w.id));
        after = page.nextAfterId;
        assert.ok(pages.length < 20, 'the cursors end');
      } while (after !== null);
      assert.deepEqual(pages[0], [newest]);
      assert.deepEqual(pages.flat(), [newest, oldest]);
      assert.ok(pages.length >= 3 && pages.slice(1, -1).every((p) => p.length === 0), `pages: ${pages.map((p) => p.length).join(', ')}`);
      // A status every row has still fills the page to its limit.
      const active = await store.listWorkflowPage({ tenant: 'acme', name: 'gate', status: 'active', limit: 50 }, 1 << 20);
      assert.equal(active.workflows.length, 50);
      assert.equal(active.nextAfterId, active.workflows.at(-1)!.id);
    } finally {
      await store.close();
    }
  });
});
