/**
 * A value refused by a pattern of the API is answered with what the pattern
 * asks, in words (`PATTERN_WORDS`), not the regular expression: a job type
 * with a space, a limit key `..`, an id that is no ULID, an idempotency key
 * with a space at its end, a wait condition, a key's name.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { ulid } from 'ulid';
import { newApiKey, SCOPES } from '../engine/auth.js';
import { startSqliteTestApp } from '../tests/helpers/app.js';

test('a value a pattern refuses gets a 400 saying what the pattern asks, in words, naming the field', async () => {
  const t = await startSqliteTestApp();
  try {
    const cases: Array<[string, InjectOptions, RegExp]> = [
      ['type', { method: 'POST', url: '/v1/jobs', payload: { type: 'send email', payload: {} } }, /^body\/type must be of A-Z a-z 0-9 \. _ : - only$/],
      ['limit key', { method: 'PUT', url: '/v1/limits/a%20b', payload: { concurrency: 1 } }, /^params\/key must be of A-Z a-z 0-9 \. _ : - only, and not \. or \.\./],
      ['concurrency key', { method: 'POST', url: '/v1/jobs', payload: { type: 'a', payload: {}, concurrencyKey: '..' } }, /^body\/concurrencyKey must be of A-Z a-z 0-9 \. _ : - only, and not \. or \.\./],
      ['job id', { method: 'GET', url: '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FA!' }, /^params\/id must be an id as the API gives them \(a ULID/],
      ['idempotency key', { method: 'POST', url: '/v1/jobs', headers: { 'idempotency-key': 'order-1 ' }, payload: { type: 'a', payload: {} } }, /^headers\/idempotency-key must be printable ASCII \(from space to ~\), with no space at either end$/],
    ];
    for (const [what, request, said] of cases) {
      const r = await t.app.inject(request);
      assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
      assert.equal(r.json().code, 'ATS_ERR_VALIDATION', what);
      assert.match(r.json().message, said, what);
      assert.doesNotMatch(r.json().message, /must match pattern|\^|\$"/, `${what}: no regular expression`);
    }
    // A batch's item is refused alone, in the same words.
    const batch = await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: [{ type: 'a', payload: {}, queue: 'é' }] } });
    assert.equal(batch.statusCode, 200, batch.body);
    assert.deepEqual(batch.json().results, [{ status: 400, code: 'ATS_ERR_VALIDATION', message: 'body/jobs/0/queue must be of A-Z a-z 0-9 . _ : - only' }]);
  } finally {
    await t.close();
  }
  // A key's name, asked by an admin where keys are required.
  const k = await startSqliteTestApp({}, { auth: 'on' });
  try {
    const id = ulid();
    const { key, hash } = newApiKey(id, randomBytes(32));
    await k.store.createKey({ id, tenant: 'acme', name: 'boot', scopes: [...SCOPES], createdAt: Date.now() - 60_000, revokedAt: null, createdBy: null, hash });
    const r = await k.app.inject({ method: 'POST', url: '/v1/keys', headers: { authorization: `Bearer ${key}` }, payload: { name: '-ci', scopes: ['read'] } });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().message, 'body/name must be of A-Z a-z 0-9 . _ : - only, starting with a letter or digit');
  } finally {
    await k.close();
  }
});
