/**
 * `jsonByteLength` (server/json-body.ts), which sizes a batch item as
 * `POST /v1/jobs` would its body: the bytes of JSON.stringify, for any parsed
 * JSON value, and for one nested far deeper than JSON.stringify can go.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { jsonByteLength } from './json-body.js';

test('the bytes of JSON.stringify, for any parsed JSON value (unicode, escapes, -0, exponents)', () => {
  const samples = ['', 'é€😀', '"\\\n\t\u0001\u007f', -0, 1e21, 5e-324, 0.1, [], {}, [[], {}], { '': null, 'k"é': [true, false] }];
  for (const v of samples) assert.equal(jsonByteLength(v), Buffer.byteLength(JSON.stringify(v)), JSON.stringify(v));
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const parsed: unknown = JSON.parse(JSON.stringify(v));
    assert.equal(jsonByteLength(parsed), Buffer.byteLength(JSON.stringify(parsed)));
  }), { numRuns: 2000 });
});

test('a value nested 500,000 deep is counted (JSON.stringify would overflow the stack); a cap stops the count past it', () => {
  const n = 500_000;
  const text = `${'['.repeat(n)}${']'.repeat(n)}`;
  const deep: unknown = JSON.parse(text);
  assert.throws(() => JSON.stringify(deep), RangeError);
  assert.equal(jsonByteLength(deep), text.length);
  const capped = jsonByteLength(deep, 1000);
  assert.ok(capped > 1000 && capped < 1010, `${capped}`);
});
