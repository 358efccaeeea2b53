/**
 * The client's number options: one that is not a number (NaN: `Number()` of an
 * unset environment variable, say) is refused when the client is made, naming
 * it. Taken, `retries: NaN` never stopped retrying (no attempt count is `>=
 * NaN`): a server answering 503 was asked again for ever, and the call never
 * settled; NaN pauses are 1 ms timers, and a NaN timeout threw a RangeError
 * from inside a call. So is a watch's, when the watch is made: a NaN reconnect
 * pause, keep-alive or connect timeout is a 1 ms timer (a reconnect loop that
 * never rests), and a NaN `maxQueued` never pauses a watch whose reader
 * falls behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createClient, type WatchOptions } from './index.js';

const refused = (option: string) => (e: unknown) =>
  e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && e.message.includes(option) && /NaN/.test(e.message);

test('retries, timeoutMs or retryDelayMs that is NaN is refused when the client is made, naming the option', () => {
  const unset = Number(undefined);
  assert.throws(() => createClient({ url: 'http://ats.test', retries: unset }), refused('retries'));
  assert.throws(() => createClient({ url: 'http://ats.test', timeoutMs: unset }), refused('timeoutMs'));
  assert.throws(() => createClient({ url: 'http://ats.test', retryDelayMs: { min: unset, max: 5000 } }), refused('retryDelayMs.min'));
  assert.throws(() => createClient({ url: 'http://ats.test', retryDelayMs: { min: 250, max: unset } }), refused('retryDelayMs.max'));
});

test('numbers are taken as before: a negative retries sends once, Infinity timeouts and retries are allowed', async () => {
  let sent = 0;
  const fetch = async (): Promise<Response> => {
    sent++;
    return new Response(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }), { status: 503 });
  };
  const once = createClient({ url: 'http://ats.test', fetch, retries: -1, timeoutMs: Infinity, retryDelayMs: { min: 0, max: 0 } });
  await assert.rejects(once.stats(), (e: unknown) => e instanceof ApiError && e.status === 503);
  assert.equal(sent, 1);
  assert.ok(createClient({ url: 'http://ats.test', retries: Infinity }));
});

test('a watch option that takes a number and is NaN is refused when the watch is made, naming it', () => {
  const unset = Number(undefined);
  const ats = createClient({ url: 'http://ats.test' });
  const watching = (opts: WatchOptions) => () => ats.watch({}, opts).close();
  assert.throws(watching({ keepAliveMs: unset }), refused('keepAliveMs'));
  assert.throws(watching({ connectTimeoutMs: unset }), refused('connectTimeoutMs'));
  assert.throws(watching({ reconnect: { minMs: unset, maxMs: 5000 } }), refused('reconnect.minMs'));
  assert.throws(watching({ reconnect: { minMs: 250, maxMs: unset } }), refused('reconnect.maxMs'));
  assert.throws(watching({ maxQueued: unset }), refused('maxQueued'));
  assert.throws(watching({ statsEveryMs: unset }), refused('statsEveryMs'));
  // Numbers, and options left out, are taken as before.
  assert.doesNotThrow(watching({ keepAliveMs: 1000, connectTimeoutMs: Infinity, reconnect: { minMs: 0, maxMs: 10 }, maxQueued: 1, statsEveryMs: 250 }));
  assert.doesNotThrow(watching({}));
});
