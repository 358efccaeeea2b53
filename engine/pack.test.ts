/** The greedy packing of engine/pack.ts: `fitting`, the count of a first group, as `pack` makes it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitting, pack } from './pack.js';

describe('fitting', () => {
  it('counts the first sizes that fit together, at least one, none of none', () => {
    assert.equal(fitting([40, 40, 40], 100), 2);
    assert.equal(fitting([40, 60, 1], 100), 2, 'exactly at the limit fits');
    assert.equal(fitting([500, 1], 100), 1, 'the first comes whatever its size');
    assert.equal(fitting([10, 10], 100), 2);
    assert.equal(fitting([], 100), 0);
  });

  it('is the length of the first group pack makes without a count limit', () => {
    for (const sizes of [[40, 40, 40], [500, 1], [1, 500, 1], [0, 0, 200], [100, 0, 1]]) {
      assert.equal(fitting(sizes, 100), pack(sizes, (s) => s, Infinity, 100)[0]!.length, `${sizes}`);
    }
  });
});
