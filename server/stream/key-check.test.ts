/** The stream's key re-check (key-check.ts): what each principal's standing is, and that it reads keys as REST does. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OPEN_PRINCIPAL, principalOf } from '../../engine/auth.js';
import type { Clock } from '../../engine/ports.js';
import { KEY_CACHE_MS, KeyCaches } from '../auth.js';
import { MemoryKeyStore } from '../../tests/helpers/keys.js';
import { keyChecker, keyStanding, openStanding } from './key-check.js';

const manualClock = (): Clock & { advance(ms: number): void } => {
  let now = 1_000_000;
  return { now: () => now, sleep: async () => undefined, advance: (ms) => void (now += ms) };
};

describe('stream key check', () => {
  it('a key revoked or gone is revoked; open connections need a key once `auto` has one, never under `off`', () => {
    assert.equal(keyStanding(null), 'revoked');
    const stored = { id: 'K', tenant: 't', name: 'n', scopes: ['read' as const], createdAt: 1, revokedAt: null, createdBy: null, hash: '00' };
    assert.equal(keyStanding(stored), 'valid');
    assert.equal(keyStanding({ ...stored, revokedAt: 2 }), 'revoked');
    assert.equal(openStanding('auto', false), 'valid');
    assert.equal(openStanding('auto', true), 'keyRequired');
    assert.equal(openStanding('off', true), 'valid');
    assert.equal(openStanding('on', false), 'keyRequired');
  });

  it('reads a key at most once per KEY_CACHE_MS, sees its revocation after that, and lets a failed read throw', async () => {
    const keys = new MemoryKeyStore();
    const made = await keys.make('acme', ['read']);
    const clock = manualClock();
    const standing = keyChecker({ keys, mode: 'on' }, clock);
    const principal = principalOf(made.record);
    assert.equal(await standing(principal), 'valid');
    assert.equal(await standing(principal), 'valid');
    assert.equal(keys.reads, 1, 'the second ask is served from the cache');
    await keys.revokeKey(made.record.id, clock.now());
    clock.advance(KEY_CACHE_MS);
    assert.equal(await standing(principal), 'revoked');
    keys.keys.delete(made.record.id);
    clock.advance(KEY_CACHE_MS);
    assert.equal(await standing(principal), 'revoked', 'a key gone is no better');

    const broken = keyChecker({ keys: Object.assign(new MemoryKeyStore(), { getKey: async () => { throw new Error('down'); } }), mode: 'on' }, clock);
    await assert.rejects(broken(principal), /down/, 'an unavailable store is no answer (the hub closes nothing)');
  });

  it('with the instance\'s caches, a key revoked through the instance is read again at once', async () => {
    const keys = new MemoryKeyStore();
    const made = await keys.make('acme', ['read']);
    const clock = manualClock();
    const caches = new KeyCaches();
    const standing = keyChecker({ keys, mode: 'on' }, clock, caches);
    const principal = principalOf(made.record);
    assert.equal(await standing(principal), 'valid');
    await keys.revokeKey(made.record.id, clock.now());
    assert.equal(await standing(principal), 'valid', 'revoked elsewhere: the cached key until KEY_CACHE_MS');
    caches.revoked(made.record.id);
    assert.equal(await standing(principal), 'revoked', 'revoked here: no wait');
  });

  it('with the instance\'s caches, a key made through the instance makes an open connection under `auto` need a key at once', async () => {
    const keys = new MemoryKeyStore();
    const clock = manualClock();
    const caches = new KeyCaches();
    const standing = keyChecker({ keys, mode: 'auto' }, clock, caches);
    assert.equal(await standing(OPEN_PRINCIPAL), 'valid', 'no key yet');
    await keys.make('default');
    assert.equal(await standing(OPEN_PRINCIPAL), 'valid', 'made elsewhere: the cached count until KEY_CACHE_MS');
    caches.created();
    assert.equal(await standing(OPEN_PRINCIPAL), 'keyRequired', 'made here: no wait');
  });

  it('asks the store whether any key works only for an open connection under `auto`', async () => {
    const keys = new MemoryKeyStore();
    let counts = 0;
    const counting = Object.assign(keys, { countActiveKeys: async () => (counts++, [...keys.keys.values()].filter((k) => k.revokedAt === null).length) });
    const clock = manualClock();
    assert.equal(await keyChecker({ keys: counting, mode: 'off' }, clock)(OPEN_PRINCIPAL), 'valid');
    assert.equal(counts, 0);
    const auto = keyChecker({ keys: counting, mode: 'auto' }, clock);
    assert.equal(await auto(OPEN_PRINCIPAL), 'valid');
    await keys.make('default');
    clock.advance(KEY_CACHE_MS);
    assert.equal(await auto(OPEN_PRINCIPAL), 'keyRequired');
    assert.equal(counts, 2);
  });
});
