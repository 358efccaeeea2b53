import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ulid } from 'ulid';
import { isAtsError } from '../engine/errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';

test('a cursor round-trips the id it was made from', () => {
  const id = ulid();
  const cursor = encodeCursor(id);
  assert.doesNotMatch(cursor, /[+/=]/); // base64url: safe in a query string
  assert.equal(decodeCursor(cursor), id);
});

test('cursors this server did not issue are ATS_ERR_BAD_CURSOR', () => {
  const id = ulid();
  const bad = [
    'zzz', // not an id
    encodeCursor('not-a-ulid-at-all-000000000'),
    encodeCursor(id.toLowerCase()),
    `${encodeCursor(id)}=`, // padding: not what encodeCursor makes
    `${encodeCursor(id)}A`, // trailing junk
    Buffer.from(id).toString('base64'), // standard base64 pads 26 bytes with '=='
    '!!!!',
  ];
  for (const c of bad) {
    assert.throws(() => decodeCursor(c), (e: unknown) => isAtsError(e) && e.code === 'ATS_ERR_BAD_CURSOR', c);
  }
});
