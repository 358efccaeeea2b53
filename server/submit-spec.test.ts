import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAtsError } from '../engine/errors.js';
import { checkPayload, toJobSpec } from './submit-spec.js';
import { TEST_DEFAULTS } from '../tests/helpers/app.js';

const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
};
const isCode = (code: string) => (e: unknown) => isAtsError(e) && e.code === code;

describe('checkPayload', () => {
  test('accepts up to the limit and rejects one more', () => {
    assert.doesNotThrow(() => checkPayload(nested(32), 32));
    assert.throws(() => checkPayload(nested(33), 32), isCode('ATS_ERR_VALIDATION'));
  });

  test('scalars have depth 0', () => {
    assert.doesNotThrow(() => checkPayload('x', 0));
    assert.throws(() => checkPayload([], 0), isCode('ATS_ERR_VALIDATION'));
  });

  test('a hostile depth fails fast without overflowing the stack', () => {
    assert.throws(() => checkPayload(nested(200_000), 32), isCode('ATS_ERR_VALIDATION'));
  });

  test('numbers JSON cannot carry are refused', () => {
    assert.throws(() => checkPayload({ a: [1, Infinity] }, 32), isCode('ATS_ERR_VALIDATION'));
    assert.throws(() => checkPayload(-Infinity, 32), isCode('ATS_ERR_VALIDATION'));
    assert.doesNotThrow(() => checkPayload({ a: [1.5, -0, Number.MAX_VALUE] }, 32));
  });

  test('wide payloads are fine', () => {
    assert.doesNotThrow(() => checkPayload(Array.from({ length: 200_000 }, (_, i) => ({ i })), 2));
  });
});

describe('toJobSpec', () => {
  const rules = { defaults: TEST_DEFAULTS, maxPayloadDepth: 32 };

  test('fills the defaults and keeps what was given', () => {
    const spec = toJobSpec({ type: 't', payload: { a: 1 }, priority: 5 }, undefined, rules);
    assert.deepEqual(spec, {
      type: 't', payload: { a: 1 }, queue: 'default', maxAttempts: 3, backoff: TEST_DEFAULTS.backoff,
      timeoutMs: 30_000, priority: 5,
    });
  });

  test('runAt as ISO or epoch ms, and the idempotency key', () => {
    const iso = toJobSpec({ type: 't', payload: null, runAt: '2030-01-01T00:00:00Z' }, 'k1', rules);
    assert.equal(iso.runAt, Date.UTC(2030, 0, 1));
    assert.equal(iso.idempotencyKey, 'k1');
    assert.equal(toJobSpec({ type: 't', payload: null, runAt: 5 }, undefined, rules).runAt, 5);
  });

  test('exponential backoff gets full jitter by default; maxMs < baseMs is refused', () => {
    const spec = toJobSpec({ type: 't', payload: 1, backoff: { kind: 'exponential', baseMs: 10, maxMs: 100 } }, undefined, rules);
    assert.deepEqual(spec.backoff, { kind: 'exponential', baseMs: 10, maxMs: 100, jitter: 'full' });
    assert.throws(
      () => toJobSpec({ type: 't', payload: 1, backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }, undefined, rules),
      isCode('ATS_ERR_VALIDATION'),
    );
  });

  test('an unregistered type is ATS_ERR_UNKNOWN_JOB_TYPE', () => {
    const known = { ...rules, knownTypes: () => ['demo.echo'] };
    assert.throws(() => toJobSpec({ type: 'nope', payload: 1 }, undefined, known), isCode('ATS_ERR_UNKNOWN_JOB_TYPE'));
    assert.equal(toJobSpec({ type: 'demo.echo', payload: 1 }, undefined, known).type, 'demo.echo');
  });
});

describe('toJobSpec: the server\'s own idempotency keys', () => {
  const rules = { defaults: TEST_DEFAULTS, maxPayloadDepth: 32 };

  test('a key starting with ats: is refused, naming the header or the batch item', () => {
    assert.throws(
      () => toJobSpec({ type: 't', payload: 1 }, 'ats:schedule:nightly:1:2', rules),
      (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_VALIDATION' && /headers\/idempotency-key must not start with 'ats:'/.test(e.message),
    );
    assert.throws(
      () => toJobSpec({ type: 't', payload: 1 }, 'ats:', rules, 'body/jobs/3'),
      (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_VALIDATION' && /body\/jobs\/3\/idempotencyKey/.test(e.message),
    );
  });

  test('other keys, ats inside or in another case, are the user\'s', () => {
    for (const key of ['ats', 'at:s', 'x-ats:1', 'ATS:1', 'Ats:1', ' ats:']) {
      assert.equal(toJobSpec({ type: 't', payload: 1 }, key, rules).idempotencyKey, key);
    }
  });
});
