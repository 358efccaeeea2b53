/**
 * A client whose connection closes while its request waits (in the auth
 * hook's first read of the keys, say) is counted by an address Node no
 * longer knows: `request.ip` is undefined once the socket is destroyed.
 * Counting it must not throw (a 500 logged at error for a client that only
 * went away): it is counted as a gone client.
 */
import assert from 'node:assert/strict';
import type { FastifyRequest } from 'fastify';
import { test } from 'node:test';
import { failureHolderOf } from './auth.js';
import { holderOf } from './security.js';

const gone = { ip: undefined, principal: null } as unknown as FastifyRequest;

test('a request whose connection is gone is counted without its address, not with an error', () => {
  assert.equal(failureHolderOf(gone), 'ip:(gone)');
  assert.equal(holderOf(gone), 'ip:(gone)');
  // A live one keeps its address (an IPv6 one by its /64).
  assert.equal(holderOf({ ip: '203.0.113.7', principal: null } as unknown as FastifyRequest), 'ip:203.0.113.7');
  assert.equal(failureHolderOf({ ip: '2001:db8:1:2:3:4:5:6' } as unknown as FastifyRequest), failureHolderOf({ ip: '2001:db8:1:2:ffff:4:5:6' } as unknown as FastifyRequest));
});
