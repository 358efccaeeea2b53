/** `verifyCounts` on the embedded store: quiet when the counters are right, precise when they drift. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { newJobWrite } from '../tests/contracts/store.contract.js';
import { verifyCounts } from './verify.js';

describe('verifyCounts', () => {
  it('passes on maintained counters and names each key that drifted', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      assert.deepEqual(await verifyCounts(store), { ok: true, problems: [] });
      await store.insert([newJobWrite({ queue: 'a' }), newJobWrite({ queue: 'b', type: 't' })]);
      assert.deepEqual(await verifyCounts(store), { ok: true, problems: [] });
      store.db.exec(`UPDATE job_counts SET n = n + 2 WHERE queue = 'a'`);
      store.db.exec(`INSERT INTO job_counts (queue, type, state, shard, n) VALUES ('ghost', 't', 'done', 0, 1)`);
      store.db.exec(`DELETE FROM job_counts WHERE queue = 'b'`);
      assert.deepEqual(await verifyCounts(store), {
        ok: false,
        problems: [
          '["a","demo.echo","pending"]: counted 3, recounted 1',
          '["b","t","pending"]: counted 0, recounted 1',
          '["ghost","t","done"]: counted 1, recounted 0',
        ],
      });
    } finally {
      await store.close();
    }
  });
});
