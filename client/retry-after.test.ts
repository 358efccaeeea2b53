/**
 * `Retry-After` in both of its forms: whole seconds (what the server sends),
 * or an HTTP date (what a proxy in front of it may send: `Wed, 21 Oct 2026
 * 07:28:00 GMT`). A date is read as the time until it (a date past: no wait);
 * a 503's wait is bounded by `retryDelayMs.max`, whichever the form.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { toApiError } from './errors.js';
import { ApiError, createClient } from './index.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

const NOW = Date.UTC(2026, 9, 21, 7, 27, 30);
const body = JSON.stringify({ code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' });

test('an HTTP date is read as the time until it, in each form HTTP allows; a date past is no wait; junk is left out', () => {
  assert.equal(toApiError(429, body, null, 'Wed, 21 Oct 2026 07:28:00 GMT', NOW).retryAfterMs, 30_000);
  assert.equal(toApiError(503, 'upstream down', null, 'Wed, 21 Oct 2026 07:28:00 GMT', NOW).retryAfterMs, 30_000, 'an answer that is not ours too');
  // The obsolete forms a recipient must still read: RFC 850 (a two-digit year) and asctime.
  assert.equal(toApiError(429, body, null, 'Wednesday, 21-Oct-26 07:28:00 GMT', NOW).retryAfterMs, 30_000);
  assert.equal(toApiError(429, body, null, 'Wed Oct 21 07:28:00 2026', NOW).retryAfterMs, 30_000);
  assert.equal(toApiError(429, body, null, 'Thu, 01 Oct 2026 07:28:00 GMT', NOW).retryAfterMs, 0, 'a date past: no wait');
  for (const junk of ['1.5', 'soon', 'Wed, 21 Oct 2026', 'Wed, 31 Feb 2026 07:28:00 GMT', 'Wed, 21 Oct 2026 25:28:00 GMT', '2026-10-21T07:28:00Z']) {
    assert.equal(toApiError(429, body, null, junk, NOW).retryAfterMs, undefined, junk);
  }
  assert.equal(toApiError(404, body, null, 'Wed, 21 Oct 2026 07:28:00 GMT', NOW).retryAfterMs, undefined, 'only where the server asks to wait');
});

/** A server that answers each request 503 with the Retry-After `retryAfter()` gives, and counts them. */
let server: Server;
let url = '';
let retryAfter: () => string = () => '0';
let requests = 0;
before(async () => {
  server = createServer((_req, res) => {
    requests++;
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': retryAfter() });
    res.end(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }));
  });
  url = await listenLocal(server);
});
after(() => closeLocal(server));

/** One call retried once against the server: how long it took. */
async function timed(max: number): Promise<number> {
  requests = 0;
  const started = Date.now();
  await assert.rejects(createClient({ url, retries: 1, retryDelayMs: { min: 1, max } }).stats(), (e: unknown) => e instanceof ApiError && e.status === 503);
  assert.equal(requests, 2);
  return Date.now() - started;
}

test('a 503 with Retry-After as an HTTP date is waited until that date', async () => {
  // The date of the second after next: between 1 and 2 s from now (a date has whole seconds).
  retryAfter = () => new Date((Math.floor(Date.now() / 1000) + 2) * 1000).toUTCString();
  const ms = await timed(5000);
  assert.ok(ms >= 900, `retried after ${ms} ms`);
});

test('a 503 with Retry-After as a date past is retried without waiting for it', async () => {
  retryAfter = () => new Date(Date.now() - 3_600_000).toUTCString();
  const ms = await timed(5000);
  assert.ok(ms < 900, `retried after ${ms} ms`);
});

test('a 503 with Retry-After as a date an hour ahead waits retryDelayMs.max, as the seconds form does', async () => {
  retryAfter = () => new Date(Date.now() + 3_600_000).toUTCString();
  const ms = await timed(300);
  assert.ok(ms >= 250 && ms < 1500, `retried after ${ms} ms`);
  retryAfter = () => '3600';
  const seconds = await timed(300);
  assert.ok(seconds >= 250 && seconds < 1500, `retried after ${seconds} ms`);
});
