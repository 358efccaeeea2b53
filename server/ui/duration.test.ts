/** The console's durations (server/ui/client/dom.ts `duration`): each unit as it rounds, never "60 s" or "1000 ms". */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { duration } from './client/dom.js';

describe('duration', () => {
  test('each unit as written', () => {
    assert.equal(duration(850), '850 ms');
    assert.equal(duration(4_200), '4.2 s');
    assert.equal(duration(42_000), '42 s');
    assert.equal(duration(185_000), '3 min 5 s');
    assert.equal(duration(7_800_000), '2 h 10 min');
    assert.equal(duration(-4_200), '−4.2 s');
    assert.equal(duration(Number.NaN), '–');
  });

  test('a value that rounds up to the next unit is written in it', () => {
    assert.equal(duration(999.6), '1.0 s');
    assert.equal(duration(9_960), '10 s');
    assert.equal(duration(59_950), '1 min');
    assert.equal(duration(3_599_700), '1 h');
    assert.equal(duration(-59_950), '−1 min');
  });
});
