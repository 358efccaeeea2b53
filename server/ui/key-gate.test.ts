/**
 * The console's key form (server/ui/client/key-gate.ts), under node: a key
 * that cannot be sent (a character outside visible ASCII, e.g. a zero-width
 * space pasted with it) is refused with a message saying which character,
 * and a kept key of that kind is not used.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { keyProblem, storedKey } from './client/key-gate.js';

describe('the key form', () => {
  test('a key as the server makes them is taken', () => {
    assert.equal(keyProblem(`ats_${'0'.repeat(26)}_${'A-_z'.repeat(10)}abc`), null);
  });

  test('a character that cannot go in the Authorization header (or the stream\'s subprotocol): refused, naming it and where', () => {
    const cases: [string, RegExp][] = [
      ['ats_01ABC_secret\u200b', /U\+200B.*17/],
      ['ключ', /U\+043A.*1\b/],
      ['ats_a b', /U\+0020.*6/],
      ['ats_a\tb', /U\+0009.*6/],
      ['clé', /U\+00E9.*3/],
    ];
    for (const [key, says] of cases) {
      const problem = keyProblem(key);
      assert.ok(problem, `refused: ${JSON.stringify(key)}`);
      assert.match(problem, says);
    }
  });
});

describe('a kept key', () => {
  const kept = new Map<string, string>();
  const storage = { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => void kept.set(k, v) };
  const had = Object.getOwnPropertyDescriptor(globalThis, 'sessionStorage');
  Object.defineProperty(globalThis, 'sessionStorage', { value: storage, configurable: true });
  after(() => (had ? Object.defineProperty(globalThis, 'sessionStorage', had) : Reflect.deleteProperty(globalThis, 'sessionStorage')));

  test('is used when it can be sent; one that cannot (kept by an older page) is not: the page asks for a key again', () => {
    storage.setItem('ats.apiKey', 'ats_key');
    assert.equal(storedKey(), 'ats_key');
    storage.setItem('ats.apiKey', 'ats_key\u200b');
    assert.equal(storedKey(), null);
  });
});
