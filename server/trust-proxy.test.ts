/**
 * Behind a reverse proxy (ATS_TRUST_PROXY, docs/security.md): the address a
 * request is counted by (the per-address rate limit, the count of keys that
 * do not work) is the client's from X-Forwarded-For when, and only when, the
 * peer that sent it is a listed proxy; and no header opens the API.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import type { Clock } from '../engine/ports.js';
import { authWith, MemoryKeyStore } from '../tests/helpers/keys.js';
import { ManualClock } from '../tests/helpers/manual-clock.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { AUTH_FAILURES_PER_MINUTE } from './auth.js';

const PROXY = '10.0.0.5';
const PROXY6 = 'fd00::5';

async function withApp(overrides: Parameters<typeof startSqliteTestApp>[0], run: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await startSqliteTestApp(overrides);
  try {
    await run(t);
  } finally {
    await t.close();
  }
}

/** A GET of /v1/jobs from `remoteAddress` (the TCP peer), saying X-Forwarded-For `forwarded` when given. */
const get = (t: TestApp, remoteAddress: string, forwarded?: string, headers: Record<string, string> = {}) =>
  t.app.inject({ url: '/v1/jobs', remoteAddress, headers: { ...headers, ...(forwarded === undefined ? {} : { 'x-forwarded-for': forwarded }) } } as InjectOptions);

/** A made-up key, `i`-th: a 401 that counts against its client. */
const madeUp = (i: number) => ({ authorization: `Bearer ats_${String(i).padStart(26, '0')}_${'A'.repeat(43)}` });

describe('ATS_TRUST_PROXY: the request limit per address', () => {
  test('two clients behind a listed proxy are counted apart; without the setting they share the proxy\'s count', async () => {
    await withApp({ security: { rateLimitPerMinute: 2, trustProxy: [PROXY] } }, async (t) => {
      assert.equal((await get(t, PROXY, '203.0.113.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.1')).statusCode, 429, 'the first client is over its count');
      assert.equal((await get(t, PROXY, '203.0.113.2')).statusCode, 200, 'the second client has its own');
      // The proxy's own requests (no header) are the proxy's.
      assert.equal((await get(t, PROXY)).statusCode, 200);
    });
    await withApp({ security: { rateLimitPerMinute: 2 } }, async (t) => {
      assert.equal((await get(t, PROXY, '203.0.113.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.2')).statusCode, 429, 'not trusted: one count, the proxy\'s');
    });
  });

  test('the same header from a peer not listed is ignored: it is counted by its own address', async () => {
    await withApp({ security: { rateLimitPerMinute: 2, trustProxy: [PROXY] } }, async (t) => {
      // A client reaching the server directly cannot step around its count by naming other addresses.
      for (const [i, claimed] of ['198.51.100.1', '198.51.100.2'].entries()) assert.equal((await get(t, '192.0.2.9', claimed)).statusCode, 200, `request ${i}`);
      assert.equal((await get(t, '192.0.2.9', '198.51.100.3')).statusCode, 429);
      // Nor spend another client's count: the one it names is untouched.
      assert.equal((await get(t, PROXY, '198.51.100.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '198.51.100.1')).statusCode, 200);
    });
  });

  test('an entry a listed proxy names that is no bare address (with a port, `unknown`) counts as the proxy, not a new count each time', async () => {
    await withApp({ security: { rateLimitPerMinute: 2, trustProxy: [PROXY] } }, async (t) => {
      assert.equal((await get(t, PROXY, '203.0.113.1:50001')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.1:50002')).statusCode, 200);
      assert.equal((await get(t, PROXY, 'unknown')).statusCode, 429, 'one count, the proxy\'s');
    });
  });

  test('the client is the last address a listed proxy did not add: what the client itself put first is not believed', async () => {
    await withApp({ security: { rateLimitPerMinute: 1, trustProxy: [PROXY] } }, async (t) => {
      // nginx's $proxy_add_x_forwarded_for appends the client's address to what the client sent.
      assert.equal((await get(t, PROXY, '198.51.100.7, 203.0.113.1')).statusCode, 200);
      assert.equal((await get(t, PROXY, '198.51.100.8, 203.0.113.1')).statusCode, 429, 'the same client, whatever it claims before its address');
    });
  });

  test('IPv6: a listed range, a client counted by its /64; an IPv4 proxy on a dual-stack socket (::ffff:) matches its IPv4 entry', async () => {
    await withApp({ security: { rateLimitPerMinute: 1, trustProxy: ['fd00::/64', PROXY] } }, async (t) => {
      assert.equal((await get(t, PROXY6, '2001:db8:1::1')).statusCode, 200);
      assert.equal((await get(t, 'fd00::77', '2001:db8:1::2')).statusCode, 429, 'another address of the same /64, through another proxy of the range');
      assert.equal((await get(t, 'fd00::77', '2001:db8:2::1')).statusCode, 200, 'another /64');
      assert.equal((await get(t, `::ffff:${PROXY}`, '203.0.113.50')).statusCode, 200);
      assert.equal((await get(t, PROXY, '203.0.113.50')).statusCode, 429, 'the same client, through the same proxy named either way');
    });
  });
});

describe('ATS_TRUST_PROXY: failed keys per address', () => {
  test('a client sending made-up keys through the proxy gets 429; another client of the proxy keeps its key working', async () => {
    const keys = new MemoryKeyStore();
    const good = await keys.make('acme', ['read']);
    await withApp({ auth: authWith(keys), clock: new ManualClock() as Clock, security: { trustProxy: [PROXY] } }, async (t) => {
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) assert.equal((await get(t, PROXY, '203.0.113.66', madeUp(i))).statusCode, 401);
      const held = await get(t, PROXY, '203.0.113.66', good.headers);
      assert.equal(held.statusCode, 429);
      assert.match(held.json().message, /Too many failed API keys from this address/);
      assert.equal((await get(t, PROXY, '203.0.113.67', good.headers)).statusCode, 200, 'another client of the proxy');
      // Untrusted, the header is nothing: a direct client naming the other one is held off as itself.
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) await get(t, '192.0.2.20', '203.0.113.67', madeUp(1000 + i));
      assert.equal((await get(t, '192.0.2.20', '203.0.113.99', good.headers)).statusCode, 429);
      assert.equal((await get(t, PROXY, '203.0.113.67', good.headers)).statusCode, 200, 'the client it named is not');
    });
  });
});

describe('ATS_TRUST_PROXY: the API open without keys', () => {
  test('a forwarded 127.0.0.1 does not open it: the rule reads the interface the server is bound to, never a header', async () => {
    // Bound to another interface, no key (a start refuses it; an embedding can build it): closed, whatever the header says.
    await withApp({ auth: authWith(new MemoryKeyStore()), security: { loopback: false, allowedHosts: [], trustProxy: [PROXY] } }, async (t) => {
      for (const forwarded of ['127.0.0.1', '::1', 'localhost']) assert.equal((await get(t, PROXY, forwarded)).statusCode, 401, forwarded);
      assert.equal((await get(t, '127.0.0.1', '127.0.0.1')).statusCode, 401);
    });
  });

  test('on loopback with a proxy listed (it forwards other clients): never open; without the setting, open to local callers as before', async () => {
    await withApp({ auth: authWith(new MemoryKeyStore()), security: { trustProxy: ['127.0.0.1'] } }, async (t) => {
      assert.equal((await get(t, '127.0.0.1')).statusCode, 401);
      assert.equal((await get(t, '127.0.0.1', '203.0.113.1')).statusCode, 401);
    });
    await withApp({ auth: authWith(new MemoryKeyStore()) }, async (t) => {
      assert.equal((await get(t, '127.0.0.1')).statusCode, 200);
    });
  });
});
