/** The placeholder lists every multi-row statement is built with. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { marks, tuples } from './statements.js';

describe('placeholders', () => {
  it('marks: n question marks separated by a comma and a space', () => {
    assert.equal(marks(0), '');
    assert.equal(marks(1), '?');
    assert.equal(marks(3), '?, ?, ?');
    assert.equal(marks(500).split(', ').length, 500);
    assert.ok(marks(500).split(', ').every((m) => m === '?'));
  });

  it('tuples: rows of width marks each, in parentheses, separated by a comma and a space', () => {
    assert.equal(tuples(0, 3), '');
    assert.equal(tuples(1, 1), '(?)');
    assert.equal(tuples(2, 3), '(?, ?, ?), (?, ?, ?)');
    const big = tuples(1000, 20);
    assert.equal(big, Array.from({ length: 1000 }, () => `(${Array.from({ length: 20 }, () => '?').join(', ')})`).join(', '));
    assert.equal(big.split('?').length - 1, 20_000);
  });
});
