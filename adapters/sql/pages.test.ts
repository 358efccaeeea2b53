import assert from 'node:assert/strict';
import { it } from 'node:test';
import { cutPage, type RowSize } from './pages.js';

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
