/**
 * `inexactIntegerIn` finds the integer literals JSON.parse would change, and
 * only those: never a number that is kept, nor digits inside a string.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { inexactIntegerIn, inexactIntegerProblem, jsonValueFault, numberOutOfRangeIn, numberOutOfRangeProblem } from './json-integers.js';

test('an integer literal JSON.parse would change is found, with where it starts; integers it keeps as written are not', () => {
  assert.equal(inexactIntegerIn('{"n":9007199254740991,"m":-9007199254740991,"z":-0,"s":"9007199254740993"}'), undefined);
  assert.deepEqual(inexactIntegerIn('{"n":9007199254740993}'), { literal: '9007199254740993', at: 5 });
  assert.deepEqual(inexactIntegerIn('[1, -9007199254740993]'), { literal: '-9007199254740993', at: 4 });
  assert.deepEqual(inexactIntegerIn(`{"a":[0,{"b":${'9'.repeat(400)}}]}`), { literal: '9'.repeat(400), at: 13 });
  // What JSON.stringify writes of a double past 2^53 reads back as that double, written the same.
  for (const v of [2 ** 53, 2 ** 60, 1.5e20, -(2 ** 70), 9.99e20]) assert.equal(inexactIntegerIn(JSON.stringify({ v })), undefined, String(v));
  // The same numbers written out exactly (as another language's JSON would) read back otherwise.
  assert.deepEqual(inexactIntegerIn('[1152921504606846976]'), { literal: '1152921504606846976', at: 1 });
  assert.deepEqual(inexactIntegerIn('[1000000000000000000000]'), { literal: '1000000000000000000000', at: 1 });
  assert.match(inexactIntegerProblem({ literal: '9007199254740993', at: 5 }),
    /^the integer 9007199254740993 \(at position 5, as JSON.parse counts\) would be read as 9007199254740992: .*9007199254740991\. Send it as a string$/);
  assert.match(inexactIntegerProblem({ literal: '9'.repeat(400), at: 13 }), /^the integer 9{40}\.\.\. \(at position 13, as JSON.parse counts\) would be read as Infinity/);
});

test('fractions and exponents read as doubles, as JSON numbers do: not refused', () => {
  for (const text of ['12345678901234567890.5', '1e400', '12345678901234567890e0', '-0.12345678901234567890', '[1.0000000000000000001]']) {
    assert.equal(inexactIntegerIn(text), undefined, text);
  }
});

test('a number JSON.parse reads as Infinity (1e400) is found anywhere in the value; every finite one passes', () => {
  assert.equal(numberOutOfRangeIn(JSON.parse('1e400')), Infinity);
  assert.equal(numberOutOfRangeIn(JSON.parse('{"a":[1,{"b":-1e400}]}')), -Infinity);
  for (const text of ['1e308', '-1e-400', '[1.7976931348623157e308]', '{"s":"1e400"}', 'null', '[[[[]]]]']) {
    assert.equal(numberOutOfRangeIn(JSON.parse(text)), undefined, text);
  }
  // Nested past any recursion limit: walked without overflowing the stack.
  assert.equal(numberOutOfRangeIn(JSON.parse(`${'['.repeat(100_000)}1e999${']'.repeat(100_000)}`)), Infinity);
  assert.match(numberOutOfRangeProblem(-Infinity), /^JSON\.parse reads it as -Infinity, which JSON cannot carry \(it would be sent as null\)/);
});

test('a bound on nesting: a container deeper than it is a fault, scalars are at depth 0, the shallower fault is the one named', () => {
  /** How deep `v` nests, as the API counts it (a scalar 0, `[]` 1). */
  const depthOf = (v: unknown): number => (v === null || typeof v !== 'object' ? 0 : 1 + Math.max(0, ...(Array.isArray(v) ? v : Object.values(v)).map(depthOf)));
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), fc.nat(8), (v, max) => {
    const found = jsonValueFault(v, max);
    if (depthOf(v) > max) assert.deepEqual(found, { fault: 'too-deep', maxDepth: max });
    else assert.equal(found, undefined);
  }));
  assert.equal(jsonValueFault('x', 0), undefined);
  assert.deepEqual(jsonValueFault([], 0), { fault: 'too-deep', maxDepth: 0 });
  // Level by level: what is found first is the fault nearest the top.
  assert.deepEqual(jsonValueFault({ deep: [[[1e999]]], shallow: -1e999 }, 8), { fault: 'out-of-range', number: -Infinity });
  assert.deepEqual(jsonValueFault({ deep: [[[1e999]]] }, 2), { fault: 'too-deep', maxDepth: 2 });
  assert.deepEqual(jsonValueFault([Infinity, [[[]]]], 2), { fault: 'out-of-range', number: Infinity });
  // No bound given: only numbers are faults, however deep.
  assert.equal(jsonValueFault(JSON.parse(`${'['.repeat(100_000)}1${']'.repeat(100_000)}`)), undefined);
});

test('digits inside strings, escaped quotes and backslashes included, are not numbers', () => {
  const strings = ['"12345678901234567890"', '"\\"12345678901234567890"', '"a\\\\"', '"\\\\\\"12345678901234567890\\\\"'];
  for (const s of strings) {
    assert.doesNotThrow(() => JSON.parse(s), s);
    assert.equal(inexactIntegerIn(s), undefined, s);
    assert.equal(inexactIntegerIn(`{${s}:${s}}`), undefined, s);
  }
  // After such strings, a number is still seen.
  for (const text of ['["a\\\\",12345678901234567890]', '{"\\"":"\\\\\\"",  "k":-12345678901234567890}']) {
    const literal = /-?\d{20}/.exec(text)![0];
    assert.deepEqual(inexactIntegerIn(text), { literal, at: text.indexOf(literal) }, text);
  }
});

test('for any JSON text, an integer literal is found exactly when JSON.parse would not give it back as written', () => {
  // A value with integers, strings of digits and doubles, and somewhere in it an integer of any size.
  const integer = fc.oneof(fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }), fc.bigInt({ min: -(1n << 54n), max: 1n << 54n }));
  fc.assert(fc.property(fc.jsonValue(), integer, fc.stringMatching(/^[0-9"\\]{0,30}$/), (value, big, digits) => {
    const literal = big.toString();
    const text = JSON.stringify({ before: digits, value, it: '__the_integer__', after: [digits] }).replace('"__the_integer__"', literal);
    // Every number JSON.stringify wrote reads back as written; the integer put in does when its double is written the same.
    const parsed = JSON.parse(text) as { it: number };
    const found = inexactIntegerIn(text);
    if (JSON.stringify(parsed.it) === literal) assert.equal(found, undefined, text);
    else assert.deepEqual(found, { literal, at: text.indexOf(`"it":${literal}`) + 5 }, text);
  }), { numRuns: 3000 });
});
