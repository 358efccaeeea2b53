/**
 * The client's number options: one that is not a number (NaN: `Number()` of an
 * unset environment variable, say) is refused when the client is made, naming
 * it. Taken, `retries: NaN` never stopped retrying (no attempt count is `>=
 * NaN`): a server answering 503 was asked again for ever, and the call never
 * settled; NaN pauses are 1 ms timers, and a NaN timeout threw a RangeError
 * from inside a call. So is a watch's, when the watch is made: a NaN reconnect
 * pause, keep-alive or connect timeout is a 1 ms timer (a reconnect loop that
 * never rests), and a NaN `maxQueued` never pauses a watch whose reader
 * falls behind. The same for a number out of range: `retries: Infinity`
 * retried for ever as NaN did; a timeout of 0 aborts every attempt, a
 * reconnect pause of 0 never rests; and a pair of pauses given without one
 * of its bounds (a JavaScript caller) takes its default, not NaN.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { ApiError, AtsClient, createClient, type ClientOptions, type WatchOptions } from './index.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

const refused = (option: string) => (e: unknown) =>
  e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && e.message.includes(option) && /NaN/.test(e.message);

/** Refused as a bad option: ATS_ERR_VALIDATION (status 0) naming it and the value given. */
const refusedAs = (option: string, got: string) => (e: unknown) =>
  e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && e.message.includes(`${option} must be`) && e.message.includes(`got ${got}`);

test('retries, timeoutMs or retryDelayMs that is NaN is refused when the client is made, naming the option', () => {
  const unset = Number(undefined);
  assert.throws(() => createClient({ url: 'http://ats.test', retries: unset }), refused('retries'));
  assert.throws(() => createClient({ url: 'http://ats.test', timeoutMs: unset }), refused('timeoutMs'));
  assert.throws(() => createClient({ url: 'http://ats.test', retryDelayMs: { min: unset, max: 5000 } }), refused('retryDelayMs.min'));
  assert.throws(() => createClient({ url: 'http://ats.test', retryDelayMs: { min: 250, max: unset } }), refused('retryDelayMs.max'));
});

test('retries, timeoutMs or retryDelayMs that is negative, Infinity or not a number is refused when the client is made, naming the option', () => {
  const made = (o: object) => () => createClient({ url: 'http://ats.test', ...o });
  // Infinity retries: no attempt count is `>= Infinity`, so a 503 was asked again for ever (as NaN was).
  assert.throws(made({ retries: Infinity }), refusedAs('retries', 'Infinity'));
  assert.throws(made({ retries: -1 }), refusedAs('retries', '-1'));
  assert.throws(made({ retries: '3' }), refusedAs('retries', '"3"'));
  // A timeout of 0 aborts every attempt at once; a negative one throws from inside a call.
  for (const t of [0, -1, Infinity, -Infinity]) assert.throws(made({ timeoutMs: t }), refusedAs('timeoutMs', String(t)));
  assert.throws(made({ retryDelayMs: { min: -1, max: 5000 } }), refusedAs('retryDelayMs.min', '-1'));
  assert.throws(made({ retryDelayMs: { min: 250, max: Infinity } }), refusedAs('retryDelayMs.max', 'Infinity'));
  assert.throws(made({ retryDelayMs: { min: 250, max: null } }), refusedAs('retryDelayMs.max', 'null'));
  assert.throws(made({ retryDelayMs: 1000 }), refusedAs('retryDelayMs', '1000'));
});

test('retries: Infinity against a server answering 503: refused before anything is sent, not a call retried for ever', async () => {
  let sent = 0;
  const fetch = async (): Promise<Response> => {
    sent++;
    return new Response(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }), { status: 503 });
  };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('still retrying after 500 ms')), 500);
  try {
    await assert.rejects((async () => createClient({ url: 'http://ats.test', fetch, retries: Infinity, retryDelayMs: { min: 0, max: 0 } }).stats({ signal: ac.signal }))(),
      refusedAs('retries', 'Infinity'));
  } finally {
    clearTimeout(timer);
  }
  assert.equal(sent, 0);
});

test('a retryDelayMs without its min (a JavaScript caller) takes the default min: a 503\'s Retry-After is waited, not a NaN pause of 1 ms', async () => {
  let sent = 0;
  const fetch = async (): Promise<Response> => {
    sent++;
    return new Response(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }), { status: 503, headers: { 'retry-after': '1' } });
  };
  const ats = createClient({ url: 'http://ats.test', fetch, retries: 1, retryDelayMs: { max: 1000 } as { min: number; max: number } });
  const started = Date.now();
  await assert.rejects(ats.stats(), (e: unknown) => e instanceof ApiError && e.status === 503);
  assert.equal(sent, 2);
  assert.ok(Date.now() - started >= 900, `paused ${Date.now() - started} ms`);
});

test('numbers in range are taken: 0 retries sends once, 0 pauses, a 30-day timeout, fractions', async () => {
  let sent = 0;
  const fetch = async (): Promise<Response> => {
    sent++;
    return new Response(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }), { status: 503 });
  };
  const once = createClient({ url: 'http://ats.test', fetch, retries: 0, timeoutMs: 30 * 86_400_000, retryDelayMs: { min: 0, max: 0 } });
  await assert.rejects(once.stats(), (e: unknown) => e instanceof ApiError && e.status === 503);
  assert.equal(sent, 1);
  assert.ok(createClient({ url: 'http://ats.test', retries: 2.5, timeoutMs: 0.5, retryDelayMs: { min: 0.5, max: 10.5 } }));
  assert.ok(createClient({ url: 'http://ats.test', retries: undefined, timeoutMs: undefined, retryDelayMs: undefined }));
});

test('a timeoutMs with a fraction times calls as its next whole ms: the call is answered, not a RangeError of the timer', async () => {
  const fetch = async (): Promise<Response> =>
    new Response(JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }), { status: 503 });
  const ats = createClient({ url: 'http://ats.test', fetch, retries: 0, timeoutMs: 1500.5 });
  await assert.rejects(ats.stats(), (e: unknown) => e instanceof ApiError && e.status === 503 && e.code === 'ATS_ERR_STORE_UNAVAILABLE');
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
  // Numbers in range, and options left out, are taken as before.
  assert.doesNotThrow(watching({ keepAliveMs: 1000, connectTimeoutMs: 30 * 86_400_000, reconnect: { minMs: 1, maxMs: 10 }, maxQueued: 1, statsEveryMs: 250 }));
  assert.doesNotThrow(watching({ statsEveryMs: 0, reconnect: { minMs: 2 ** 31, maxMs: 30 * 86_400_000 } }));
  assert.doesNotThrow(watching({}));
});

test('a watch option out of range is refused when the watch is made, naming it: pauses and timers of 0, negative or Infinity', () => {
  const ats = createClient({ url: 'http://ats.test' });
  const watching = (opts: object) => () => ats.watch({}, opts as WatchOptions).close();
  // A keep-alive or connect timeout of 0 drops every connection at once; Infinity is no timeout at all.
  for (const name of ['keepAliveMs', 'connectTimeoutMs'] as const) {
    for (const v of [0, -1, Infinity]) assert.throws(watching({ [name]: v }), refusedAs(name, String(v)), `${name}: ${v}`);
  }
  // Reconnect pauses of 0 reconnect without rest, for ever.
  for (const v of [0, -5, Infinity]) {
    assert.throws(watching({ reconnect: { minMs: v, maxMs: 5000 } }), refusedAs('reconnect.minMs', String(v)));
    assert.throws(watching({ reconnect: { minMs: 250, maxMs: v } }), refusedAs('reconnect.maxMs', String(v)));
  }
  assert.throws(watching({ reconnect: 1000 }), refusedAs('reconnect', '1000'));
  for (const v of [0, -1, Infinity]) assert.throws(watching({ maxQueued: v }), refusedAs('maxQueued', String(v)));
  for (const v of [-250, Infinity]) assert.throws(watching({ statsEveryMs: v }), refusedAs('statsEveryMs', String(v)));
  // The server takes 0 or a whole number of ms from 250 to an hour (docs/stream.md): another would be refused
  // by an error message on every connection, and no counts ever come.
  for (const v of [1, 249, 250.5, 3_600_001]) assert.throws(watching({ statsEveryMs: v }), refusedAs('statsEveryMs', String(v)), `statsEveryMs: ${v}`);
  for (const v of [0, 250, 3_600_000]) assert.doesNotThrow(watching({ statsEveryMs: v }), `statsEveryMs: ${v}`);
  assert.throws(watching({ keepAliveMs: '1000' }), refusedAs('keepAliveMs', '"1000"'));
});

test('a watch whose reconnect gives only maxMs (a JavaScript caller) pauses from the default minMs, not NaN ms (1 ms timers)', async () => {
  // Every upgrade is refused 503, as while the server's database is down.
  let upgrades = 0;
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (_req, socket) => {
    upgrades++;
    socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
  });
  const url = await listenLocal(server);
  const w = createClient({ url, retries: 0 }).watch({}, {
    retryFirstConnect: true, reconnect: { maxMs: 5000 } as { minMs: number; maxMs: number }, onNotice: () => undefined,
  });
  void w.ready?.catch(() => undefined);
  try {
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    w.close();
    await closeLocal(server);
  }
  // Pauses of 250 and 500 ms: at most 3 tries in half a second; 1 ms pauses made dozens.
  assert.ok(upgrades <= 3, `${upgrades} connection tries in 500 ms`);
});

test('a url that is no http:// or https:// URL, or holds a user or password, a query or a fragment, is refused when the client is made, the password never echoed', async () => {
  let sent = 0;
  const fetch = async (): Promise<Response> => {
    sent++;
    return new Response('{}', { status: 200 });
  };
  /** Refused as the url option: ATS_ERR_VALIDATION (status 0) naming it and what it must be, without `secret`. */
  const refusedUrl = (what: RegExp) => (e: unknown) =>
    e instanceof ApiError && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && e.message.startsWith('createClient: url ') && what.test(e.message)
    && !e.message.includes('s3cret');
  // Without a scheme (ATS_URL=localhost:3000): fetch failed on every try, and the client said it cannot reach the server.
  for (const url of ['localhost:3000', '127.0.0.1:3000', 'http//localhost:3000', '', '   ']) {
    assert.throws(() => createClient({ url, fetch }), refusedUrl(/http:\/\/ or https:\/\//), JSON.stringify(url));
  }
  assert.throws(() => createClient({ url: 'ftp://ats.test', fetch }), refusedUrl(/http:\/\/ or https:\/\//));
  assert.throws(() => createClient({ url: 'ws://ats.test', fetch }), refusedUrl(/http:\/\/ or https:\/\//));
  // The API's paths go after the URL: `http://h/?x=1` sent `POST /?x=1/v1/jobs`, `http://h#f` `POST /`.
  assert.throws(() => createClient({ url: 'http://ats.test/?x=1', fetch }), refusedUrl(/query or a fragment/));
  assert.throws(() => createClient({ url: 'http://ats.test#f', fetch }), refusedUrl(/query or a fragment/));
  // fetch refuses a URL with credentials (each call was "cannot reach the server at http://u:s3cret@..."), while the
  // stream's socket sent them as Basic auth: the key goes in apiKey.
  assert.throws(() => createClient({ url: 'http://u:s3cret@ats.test', fetch }), refusedUrl(/user or password.*apiKey/));
  assert.throws(() => new AtsClient('https://s3cret@ats.test/'), refusedUrl(/user or password/));
  // A JavaScript caller's url left out: the same error, not a TypeError of trim().
  assert.throws(() => createClient({ fetch } as unknown as ClientOptions), refusedUrl(/http:\/\/ or https:\/\//));
  assert.equal(sent, 0);
  // Good URLs are taken as before: spaces around and trailing slashes dropped, a path kept.
  for (const [given, url] of [[' http://ats.test/\n', 'http://ats.test'], ['https://ats.test:8443/ats/', 'https://ats.test:8443/ats'], ['HTTP://ats.test', 'HTTP://ats.test']]) {
    assert.equal(createClient({ url: given!, fetch }).url, url);
  }
});
