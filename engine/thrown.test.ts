/**
 * What a failed attempt records of a thrown value (engine/thrown.ts): here,
 * an AggregateError's inner errors, which its own message and stack lack.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeThrown } from './thrown.js';

const MAX = { message: 1000, name: 100, stack: 4000 };

/** What Node's connect rejects with when every address of a host refused: an empty message, the reasons inside. */
function refusedEverywhere(): AggregateError {
  const v6 = Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' });
  const v4 = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  return Object.assign(new AggregateError([v6, v4]), { code: 'ECONNREFUSED' });
}

describe('describeThrown: an AggregateError', () => {
  it('without a message of its own: its inner errors\' messages make it, and their stacks follow its own', () => {
    const d = describeThrown(refusedEverywhere(), MAX);
    assert.equal(d.name, 'AggregateError');
    assert.equal(d.message, 'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432');
    assert.match(d.stack ?? '', /^AggregateError\n\s+at [^]*\n\[errors\[0\]\] Error: connect ECONNREFUSED ::1:5432\n\s+at [^]*\n\[errors\[1\]\] Error: connect ECONNREFUSED 127\.0\.0\.1:5432\n\s+at /);
  });

  it('with a message of its own (Promise.any): the message stays, the inner errors are in the stack, at most four, thrown values shown as text', async () => {
    const rejected = await Promise.any([1, 2, 3, 4, 5].map((n) => Promise.reject(n === 2 ? 'a plain reason' : new Error(`mirror ${n} down`)))).catch((e: unknown) => e);
    const d = describeThrown(rejected, MAX);
    assert.equal(d.message, 'All promises were rejected');
    const stack = d.stack ?? '';
    assert.match(stack, /\n\[errors\[0\]\] Error: mirror 1 down\n/);
    assert.match(stack, /\n\[errors\[1\]\] a plain reason\n/);
    assert.match(stack, /\n\[errors\[3\]\] Error: mirror 4 down\n/);
    assert.equal(stack.includes('mirror 5'), false, 'a fifth inner error is left out');
  });

  it('inner errors and a cause both shown; an `errors` field that is not an array, or that throws when read, is ignored', () => {
    const both = new AggregateError([new Error('inner')], 'outer', { cause: new Error('the cause') });
    assert.match(describeThrown(both, MAX).stack ?? '', /\n\[errors\[0\]\] Error: inner\n[^]*\nCaused by: Error: the cause\n/);
    const odd = Object.assign(new Error(''), { errors: 'not a list' });
    assert.equal(describeThrown(odd, MAX).message, '');
    const hostile = new Error('hostile');
    Object.defineProperty(hostile, 'errors', { get() { throw new Error('no'); } });
    assert.equal(describeThrown(hostile, MAX).message, 'hostile');
    assert.equal(describeThrown(hostile, MAX).stack?.includes('[errors['), false);
  });

  it('the stack stays within its bound', () => {
    const d = describeThrown(refusedEverywhere(), { ...MAX, stack: 120 });
    assert.ok((d.stack ?? '').length <= 120);
  });
});

describe('describeThrown: an `errors` array of a hostile kind', () => {
  it('whose copy by `slice` would be no array (its species): the inner errors are read all the same, and nothing throws', () => {
    const errors = [new Error('inner one')];
    // `slice` makes its copy with `errors.constructor[Symbol.species]`: here a plain object, without `map` or `entries`.
    Object.defineProperty(errors, 'constructor', { value: { [Symbol.species]: function NoArray() { return {}; } } });
    const d = describeThrown(Object.assign(new Error(''), { errors }), MAX);
    assert.equal(d.message, 'inner one');
    assert.match(d.stack ?? '', /\n\[errors\[0\]\] Error: inner one\n/);
  });
});

describe('describeThrown: a message that cannot be read', () => {
  it('an Error whose message getter throws (its stack cannot be built either) says so, with what the getter threw, and its name', () => {
    const e = new TypeError('hidden');
    Object.defineProperty(e, 'message', { get() { throw new Error('the message getter failed'); } });
    const d = describeThrown(e, MAX);
    assert.equal(d.name, 'TypeError');
    assert.equal(d.message, 'its message could not be read: Error: the message getter failed');
  });

  it('a plain object whose message getter throws: alike; one that throws what cannot be shown still gives a message', () => {
    const d = describeThrown({ get message(): string { throw 'no'; } }, MAX);
    assert.equal(d.message, 'its message could not be read: no');
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const worse = describeThrown({ get message(): string { throw proxy; } }, MAX);
    assert.equal(worse.message, 'its message could not be read: <Revoked Proxy>');
  });
});
