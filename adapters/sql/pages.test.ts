import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cutPage, readPage, type PageReads, type RowSize } from './pages.js';
import type { Query } from './reads.js';

const sizes = (...bytes: number[]): RowSize[] => bytes.map((b, i) => ({ id: `j${i}`, bytes: b }));

it('a page takes jobs while they fit in the bytes, and stops at the rows limit', () => {
  assert.deepEqual(cutPage(sizes(10, 10, 10, 10), 3, 100), { ids: ['j0', 'j1', 'j2'], more: true });
  assert.deepEqual(cutPage(sizes(10, 10, 10), 3, 100), { ids: ['j0', 'j1', 'j2'], more: false });
  assert.deepEqual(cutPage(sizes(10, 10, 10), 3, 20), { ids: ['j0', 'j1'], more: true });
  assert.deepEqual(cutPage(sizes(10, 10, 10), 3, 19), { ids: ['j0'], more: true });
});

it('the first job comes whatever its size; a later one that does not fit starts the next page', () => {
  assert.deepEqual(cutPage(sizes(500, 1), 10, 100), { ids: ['j0'], more: true });
  assert.deepEqual(cutPage(sizes(500), 10, 100), { ids: ['j0'], more: false });
  assert.deepEqual(cutPage(sizes(1, 500, 1), 10, 100), { ids: ['j0'], more: true });
});

it('no jobs: an empty last page', () => {
  assert.deepEqual(cutPage([], 10, 100), { ids: [], more: false });
});

describe('readPage', () => {
  interface Item { id: string; bytes: number; state: string }
  /** A table of `items` (newest first), read through `readPage` for `state`; `between` runs after each sizes read. */
  function table(items: Item[], state: string | undefined, between: (rows: Item[]) => void = () => {}) {
    let rows = [...items];
    const reads = { sizes: 0, rows: 0 };
    const query: Query = async (sql, params) => {
      if (sql === 'sizes') {
        reads.sizes++;
        const [afterId, limit] = params as [string | undefined, number];
        const found = rows.filter((r) => (afterId === undefined || r.id < afterId) && (state === undefined || r.state === state)).slice(0, limit);
        between(rows);
        return found.map((r) => ({ id: r.id, bytes: r.bytes }));
      }
      reads.rows++;
      return rows.filter((r) => params.includes(r.id)).map((r) => ({ ...r }));
    };
    const pageReads: PageReads<Item> = {
      sizes: (afterId, limit) => ({ sql: 'sizes', params: [afterId, limit] }),
      rows: (ids) => ({ sql: 'rows', params: [...ids] }),
      toRecord: (r) => r as unknown as Item,
      matches: (r) => state === undefined || r.state === state,
    };
    return { reads, pageReads, query, remove: (id: string) => { rows = rows.filter((r) => r.id !== id); } };
  }
  const items = (n: number, state = 'pending'): Item[] => Array.from({ length: n }, (_, i) => ({ id: `j${999 - i}`, bytes: 10, state }));

  it('a row whose state moved between the two reads is left out; the next page starts after the ids read', async () => {
    const t = table(items(4), 'pending', (rows) => { rows[0]!.state = 'running'; });
    const page = await readPage(t.query, t.pageReads, undefined, 2, 100);
    assert.deepEqual(page.records.map((r) => r.id), ['j998']);
    assert.equal(page.nextAfterId, 'j998');
  });

  it('a page left empty by rows that went reads on from where it ended, a few times at most', async () => {
    let left = 2;
    const t = table(items(8), undefined, (rows) => { if (left-- > 0) rows.splice(0, 2); });
    const page = await readPage(t.query, t.pageReads, undefined, 2, 100);
    assert.deepEqual(page.records.map((r) => r.id), ['j995', 'j994']);
    assert.equal(page.nextAfterId, 'j994');
    assert.equal(t.reads.sizes, 3);
    // Rows that go at every read: the reads stop, with a cursor to go on from.
    const gone = table(items(40), undefined, (rows) => rows.splice(0, 2));
    const empty = await readPage(gone.query, gone.pageReads, undefined, 2, 100);
    assert.deepEqual(empty.records, []);
    assert.equal(gone.reads.sizes, 5);
    assert.notEqual(empty.nextAfterId, null);
  });

  it('the end: no cursor, also when the last rows went', async () => {
    const t = table(items(2), undefined);
    assert.deepEqual(await readPage(t.query, t.pageReads, undefined, 2, 100), { records: items(2), nextAfterId: null });
    const none = table([], undefined);
    assert.deepEqual(await readPage(none.query, none.pageReads, undefined, 2, 100), { records: [], nextAfterId: null });
  });
});
