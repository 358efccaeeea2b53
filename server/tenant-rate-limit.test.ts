/**
 * The request rate of one tenant other than the default is bounded however
 * many keys it mints: its keys together make at most TENANT_RATE_KEYS times
 * one key's requests a minute (ATS_RATE_LIMIT), each key still within its
 * own (what that refuses is not counted against the tenant). Another tenant
 * and the default tenant keep their own counts. Before, each of a tenant's
 * up to 1,000 keys had a full limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startSqliteTestApp } from '../tests/helpers/app.js';
import { makeKey } from '../tests/helpers/keys.js';
import { TENANT_RATE_KEYS } from './security.js';

const LIMIT = 3;

test(`a tenant's keys together make at most ${TENANT_RATE_KEYS} times one key's requests; other tenants and the default keep theirs`, async () => {
  const t = await startSqliteTestApp({ security: { rateLimitPerMinute: LIMIT } }, { auth: 'on' });
  try {
    const defaults = await Promise.all(Array.from({ length: TENANT_RATE_KEYS + 1 }, () => makeKey(t.store, 'default')));
    const acme = await Promise.all(Array.from({ length: TENANT_RATE_KEYS + 2 }, () => makeKey(t.store, 'acme')));
    const beta = await makeKey(t.store, 'beta');
    const list = (headers: Record<string, string>) => t.app.inject({ url: '/v1/jobs', headers });
    // The first key past its own limit: what that limit refuses is not counted against the tenant.
    for (let i = 0; i < LIMIT + 5; i++) assert.equal((await list(acme[0]!.headers)).statusCode, i < LIMIT ? 200 : 429);
    // So each of the next keys up to its own limit is taken, up to TENANT_RATE_KEYS keys' worth in all.
    for (const key of acme.slice(1, TENANT_RATE_KEYS)) {
      for (let i = 0; i < LIMIT; i++) assert.equal((await list(key.headers)).statusCode, 200);
    }
    // A fresh key of the same tenant, within its own limit, is refused: the tenant's count is full.
    const refused = await list(acme[TENANT_RATE_KEYS]!.headers);
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal(refused.json().code, 'ATS_ERR_RATE_LIMITED');
    assert.match(refused.json().message, new RegExp(`at most ${LIMIT * TENANT_RATE_KEYS} a minute for the keys of one tenant together`));
    assert.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After');
    assert.deepEqual(
      [refused.headers['x-ratelimit-limit'], refused.headers['x-ratelimit-remaining'], refused.headers['x-ratelimit-reset']],
      [String(LIMIT), '0', refused.headers['retry-after']],
      'the key\'s limit, and nothing left until the tenant\'s window resets',
    );
    assert.equal((await list(acme[TENANT_RATE_KEYS + 1]!.headers)).statusCode, 429);
    // Another tenant and the default tenant are not held by it.
    assert.equal((await list(beta.headers)).statusCode, 200);
    // The default tenant's keys, more of them at their own limits than a tenant's count allows: all taken.
    for (const key of defaults) for (let i = 0; i < LIMIT; i++) assert.equal((await list(key.headers)).statusCode, 200);
    // A key's own limit still comes first: its fourth request is refused by it, with its own message.
    const own = await list(beta.headers).then(() => list(beta.headers)).then(() => list(beta.headers));
    assert.equal(own.statusCode, 429);
    assert.match(own.json().message, /per API key/);
  } finally {
    await t.close();
  }
});
