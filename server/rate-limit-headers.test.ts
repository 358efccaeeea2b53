/**
 * Which answers the request rate limit counts and marks with X-RateLimit-*
 * (docs/security.md, "Rate limits, caps and timeouts"): a request the Host,
 * Origin and key checks let through to a route; never what those checks
 * refuse first, nor a 404 for a route that does not exist (or a 405 for a
 * method its path does not take). A page of a CORS
 * origin may read them (Access-Control-Expose-Headers).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { startSqliteTestApp } from '../tests/helpers/app.js';
import { makeKey } from '../tests/helpers/keys.js';

const OPS = 'https://ops.example.com';
const LIMIT = 3;

describe('rate-limit headers', () => {
  test('with keys required: answers that reach a route carry the headers and count; the guards\' refusals, 404s and 405s do neither', async () => {
    const t = await startSqliteTestApp({ security: { rateLimitPerMinute: LIMIT, corsOrigins: [OPS] } }, { auth: 'on' });
    try {
      const admin = await makeKey(t.store, 'default');
      const reader = await makeKey(t.store, 'default', ['read']);
      const job = { type: 'demo.echo', payload: {} };
      const uncounted: Array<[string, InjectOptions, number]> = [
        ['an unknown route', { url: '/v1/nope', headers: admin.headers }, 404],
        ['a method the path does not take', { method: 'DELETE', url: '/v1/stats', headers: admin.headers }, 405],
        ['a method the path does not take, no key', { method: 'DELETE', url: '/v1/stats' }, 401],
        ['no key', { url: '/v1/jobs' }, 401],
        ['a key that does not work', { url: '/v1/jobs', headers: { authorization: 'Bearer ats_not_a_key' } }, 401],
        ['a foreign Host', { url: '/v1/jobs', headers: { ...admin.headers, host: 'rebound.example.com' } }, 421],
        ['a foreign Origin', { method: 'POST', url: '/v1/jobs', headers: { ...admin.headers, origin: 'https://evil.example.com' }, payload: job }, 403],
        ['a key without the scope', { method: 'POST', url: '/v1/jobs', headers: reader.headers, payload: job }, 403],
      ];
      // More of each than the limit: none is counted, so none turns into a 429.
      for (const [why, req, status] of uncounted) {
        for (let i = 0; i <= LIMIT; i++) {
          const r = await t.app.inject(req);
          assert.equal(r.statusCode, status, `${why}: ${r.body}`);
          assert.equal(r.headers['x-ratelimit-limit'], undefined, why);
        }
      }
      // The admin key's first counted request, though the route refuses it.
      const refused = await t.app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...admin.headers, 'content-type': 'text/plain' }, payload: 'x' });
      assert.equal(refused.statusCode, 415);
      assert.deepEqual([refused.headers['x-ratelimit-limit'], refused.headers['x-ratelimit-remaining']], [String(LIMIT), String(LIMIT - 1)]);
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT; i++) {
        const r = await t.app.inject({ url: '/v1/jobs', headers: admin.headers });
        assert.equal(r.headers['x-ratelimit-limit'], String(LIMIT));
        statuses.push(r.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 429]);
    } finally {
      await t.close();
    }
  });

  test('a page of a listed origin may read them: CORS exposes X-RateLimit-*, Retry-After, Location and X-Request-Id', async () => {
    const t = await startSqliteTestApp({ security: { rateLimitPerMinute: 2, corsOrigins: [OPS] } }, { auth: 'off' });
    try {
      const from = { origin: OPS, 'content-type': 'application/json' };
      const answers = [
        await t.app.inject({ method: 'POST', url: '/v1/jobs', headers: from, payload: { type: 'demo.echo', payload: {} } }),
        await t.app.inject({ url: '/v1/jobs', headers: from }),
        await t.app.inject({ url: '/v1/jobs', headers: from }),
      ];
      assert.deepEqual(answers.map((r) => r.statusCode), [201, 200, 429]);
      // Every header the API sends a client to read, on each answer that carries it (the 429 has them all but Location).
      const forClients = /^(x-ratelimit-limit|x-ratelimit-remaining|x-ratelimit-reset|retry-after|location|x-request-id)$/;
      const seen = new Set<string>();
      for (const r of answers) {
        assert.equal(r.headers['access-control-allow-origin'], OPS);
        const exposed = String(r.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
        for (const name of Object.keys(r.headers).filter((h) => forClients.test(h))) {
          seen.add(name);
          assert.ok(exposed.includes(name), `${r.statusCode}: ${name} is sent but not in Access-Control-Expose-Headers (${exposed.join(', ')})`);
        }
      }
      assert.equal(seen.size, 6, [...seen].join(', '));
    } finally {
      await t.close();
    }
  });

  test('with ATS_AUTH=off: requests without a key are counted per address', async () => {
    const t = await startSqliteTestApp({ security: { rateLimitPerMinute: LIMIT } }, { auth: 'off' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i <= LIMIT; i++) {
        const r = await t.app.inject({ url: '/v1/jobs', remoteAddress: '10.1.2.3' } as InjectOptions);
        assert.equal(r.headers['x-ratelimit-limit'], String(LIMIT));
        statuses.push(r.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      // Another address has its own count.
      assert.equal((await t.app.inject({ url: '/v1/jobs', remoteAddress: '10.9.9.9' } as InjectOptions)).statusCode, 200);
    } finally {
      await t.close();
    }
  });
});
