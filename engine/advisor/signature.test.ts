import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorSignature, LEASE_EXPIRED_SIGNATURE, MAX_SIGNATURE_LENGTH } from './signature.js';

describe('errorSignature', () => {
  it('is the name and the message', () => {
    assert.equal(errorSignature({ name: 'TypeError', message: 'x is not a function' }), 'TypeError: x is not a function');
  });

  it("names an unnamed (or blank-named) error 'Error'", () => {
    assert.equal(errorSignature({ message: 'boom' }), 'Error: boom');
    assert.equal(errorSignature({ name: '  ', message: 'boom' }), 'Error: boom');
  });

  it('replaces quoted values with ?', () => {
    assert.equal(errorSignature({ message: `user 'bob' not in "admins" nor \`ops\`` }), 'Error: user ? not in ? nor ?');
    assert.equal(errorSignature({ message: '{"id":"x1"}' }), 'Error: {?:?}');
  });

  it('leaves apostrophes inside words alone', () => {
    assert.equal(errorSignature({ message: "can't reach host 'db-1', it's down" }), "Error: can't reach host ?, it's down");
  });

  it('replaces ULIDs, UUIDs and hex runs of 8+ with #', () => {
    assert.equal(errorSignature({ message: 'job 01ARZ3NDEKTSV4RRFFQ69G5FAV failed' }), 'Error: job # failed');
    assert.equal(errorSignature({ message: 'row 550e8400-e29b-41d4-a716-446655440000 locked' }), 'Error: row # locked');
    assert.equal(errorSignature({ message: 'commit 3f786850e387550fdab836ed7e6dc881de23001b, obj 0x7ffd5a3c9e10' }), 'Error: commit #, obj #');
    assert.equal(errorSignature({ message: 'key job_01ARZ3NDEKTSV4RRFFQ69G5FAV' }), 'Error: key job_#');
  });

  it('replaces ints, decimals and negatives with #, but not digits after a letter', () => {
    assert.equal(errorSignature({ message: 'timeout after 1500ms (limit 1.5 s, offset -3, x=-0.25)' }), 'Error: timeout after #ms (limit # s, offset #, x=#)');
    assert.equal(errorSignature({ message: 'connect ECONNREFUSED 127.0.0.1:5432' }), 'Error: connect ECONNREFUSED #.#:#');
    assert.equal(errorSignature({ message: 'E11000 duplicate key in utf8 column, order-42' }), 'Error: E11000 duplicate key in utf8 column, order-#');
  });

  it('takes the hour after an ISO 8601 date\'s `T` for a number like the others: a time in a message is not one signature an hour', () => {
    const at = (iso: string) => errorSignature({ name: 'TokenExpired', message: `token expired at ${iso}, now ${iso}` });
    assert.equal(at('2026-12-05T22:11:06.123Z'), 'TokenExpired: token expired at #-#-#T#:#:#Z, now #-#-#T#:#:#Z');
    assert.equal(at('2026-12-05T13:45:00Z'), at('2026-12-05T22:11:06.123Z'));
    assert.equal(at('2027-01-31T00:00:00Z'), at('2026-12-05T09:59:59Z'));
    // Basic format and lower case, and with an offset.
    assert.equal(errorSignature({ message: 'since 20261205T221106Z' }), errorSignature({ message: 'since 20261206T031106Z' }));
    assert.equal(errorSignature({ message: 'at 2026-12-05t08:00:00+01:00' }), 'Error: at #-#-#t#:#:#+#:#');
    // A `T` after a letter or alone is no time's: `T1` and `HTTP2` stay.
    assert.equal(errorSignature({ message: 'tier T1 over HTTP2' }), 'Error: tier T1 over HTTP2');
  });

  // Words with digits after a letter are names, not values: whatever else is taken for a number, these stay.
  // So do names in code and error codes (`user_id`, `getUser2`, `ERR_SOCKET_TIMEOUT`), and a word with a
  // number at its end after a prefix (`db-replica12`, a host): a prefixed id has a digit before a letter.
  const KEPT = 'utf8 E11000 HTTP2 sha256 T1 ipv6 base64 x86 user_id getUser2 ERR_SOCKET_TIMEOUT ECONNREFUSED EAI_AGAIN db-replica12 worker-node3 api_v2beta';
  const keepsWords = () => {
    assert.equal(errorSignature({ message: KEPT }), `Error: ${KEPT}`);
    assert.equal(errorSignature({ message: 'status code 404, HTTP/1.1 503, HTTP 429' }), 'Error: status code 404, HTTP/# 503, HTTP 429');
  };

  it('takes a 0x hex value of any length for a number: `0x1f` is not one signature a value', () => {
    const value = (hex: string) => errorSignature({ message: `register value ${hex} out of range` });
    assert.equal(value('0x1f'), 'Error: register value # out of range');
    assert.equal(value('0x1f'), value('0x7'));
    assert.equal(value('0XFF'), value('0x0'));
    assert.equal(value('0xdead'), value('0x1f'));
    keepsWords();
  });

  it('takes digits of any script for a number (Arabic-Indic, full-width), not ASCII digits alone', () => {
    const retry = (n: string) => errorSignature({ message: `retry in ${n} seconds` });
    assert.equal(retry('٣٠'), 'Error: retry in # seconds');
    assert.equal(retry('٣٠'), retry('٤٥'));
    assert.equal(retry('３０'), retry('３'));
    assert.equal(retry('١.٥'), retry('30'));
    keepsWords();
  });

  it('takes a number after a duration\'s unit for a number: `1h30m` and `2h5m` are one signature', () => {
    const took = (d: string) => errorSignature({ message: `deadline exceeded after ${d}` });
    assert.equal(took('1h30m'), 'Error: deadline exceeded after #h#m');
    assert.equal(took('1h30m'), took('2h5m'));
    assert.equal(took('2m5.5s'), took('1m30s'));
    assert.equal(took('1s500ms'), took('2s20ms'));
    assert.equal(took('1h2m3.5s'), 'Error: deadline exceeded after #h#m#s');
    assert.equal(took('1d2h3m4s5ms6us7ns'), 'Error: deadline exceeded after #d#h#m#s#ms#us#ns');
    assert.equal(took('1920x1080'), 'Error: deadline exceeded after #x#');
    keepsWords();
  });

  it('replaces the id after a short lowercase prefix (payment and cloud APIs\' ids) with #, keeping the prefix', () => {
    const missing = (id: string) => errorSignature({ name: 'StripeInvalidRequestError', message: `No such object: ${id}` });
    assert.equal(missing('cus_NffrFeUfNV2Hib'), 'StripeInvalidRequestError: No such object: cus_#');
    assert.equal(missing('cus_NffrFeUfNV2Hib'), missing('cus_Q8xLmT3pRb0aZk'));
    assert.equal(missing('pi_3MtwBwLkdIwHu7ix28a3tqPa'), missing('pi_1NbqWcLkdIwHu7ixZ5a9PqRt'));
    assert.equal(missing('pi_3MtwBwLkdIwHu7ix28a3tqPa'), 'StripeInvalidRequestError: No such object: pi_#');
    assert.equal(missing('sub_1MowQVLkdIwHu7ixeRlqHVzs'), 'StripeInvalidRequestError: No such object: sub_#');
    assert.equal(errorSignature({ message: 'request req_8a7Hq2LmZ failed' }), 'Error: request req_# failed');
    assert.equal(errorSignature({ message: 'instance i-0abcd1234efgh5678 not found' }), 'Error: instance i-# not found');
    assert.equal(errorSignature({ message: 'instance i-0abcd1234efgh5678 not found' }), errorSignature({ message: 'instance i-9zzkq77x1a2b3c4d5 not found' }));
    // Prefixes in a row (a key's mode, a secret after its id): each id goes.
    assert.equal(errorSignature({ message: 'key sk_live_51HxYzAbC2dEf revoked' }), 'Error: key sk_live_# revoked');
    assert.equal(errorSignature({ message: 'pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH' }), 'Error: pi_#_secret_#');
    // The prefix tells the ids apart: a missing customer is not a missing subscription.
    assert.notEqual(missing('cus_NffrFeUfNV2Hib'), missing('sub_1MowQVLkdIwHu7ixeRlqHVzs'));
    // Not ids: fewer than 8 characters after the prefix, no digit before a letter (a word and its number), an
    // upper-case or too long prefix, a prefix that is the end of a word. A version after a name's digits
    // is a number, as `HTTP/1.1`'s: `TLSv1_2` and `TLSv1.3` are `TLSv1_#` and `TLSv1.#`.
    for (const word of ['job_a1b2c3', 'db-replica12', 'cache-shard2b', 'ERR_K1L2M3N4P5', 'exception_k1m2n3p4q5', 'x9_k1m2n3p4q5']) {
      assert.equal(errorSignature({ message: word }), `Error: ${word}`, word);
    }
    assert.equal(errorSignature({ message: 'no TLSv1_2 nor TLSv1.3' }), 'Error: no TLSv1_# nor TLSv1.#');
    keepsWords();
  });

  it('collapses whitespace', () => {
    assert.equal(errorSignature({ name: 'Bad  Thing', message: '  a \n\t b   c ' }), 'Bad Thing: a b c');
  });

  it('gives failures differing only by ids, numbers and quoted values one signature', () => {
    const a = errorSignature({ name: 'HttpError', message: 'GET /jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV: status 503 after 3 tries ("upstream A")' });
    const b = errorSignature({ name: 'HttpError', message: 'GET /jobs/01BX5ZZKBKACTAV9WEVGEMMVRY:  status 503 after 12 tries ("upstream B")' });
    assert.equal(a, b);
    assert.notEqual(a, errorSignature({ name: 'HttpError', message: 'POST /jobs/01BX5ZZKBKACTAV9WEVGEMMVRY: status 503 after 3 tries ("x")' }));
    assert.notEqual(a, errorSignature({ name: 'Other', message: 'GET /jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV: status 503 after 3 tries ("upstream A")' }));
  });

  it('keeps an HTTP status after `status` or `HTTP`: a 404 that never recovers is not the 503 that does', () => {
    const axios = (code: number) => errorSignature({ name: 'AxiosError', message: `Request failed with status code ${code}` });
    assert.equal(axios(404), 'AxiosError: Request failed with status code 404');
    assert.notEqual(axios(404), axios(503));
    assert.notEqual(axios(404), axios(429));
    assert.equal(errorSignature({ message: 'GET /orders/42: HTTP/1.1 503 after 1500 ms' }), 'Error: GET /orders/#: HTTP/# 503 after # ms');
    assert.equal(errorSignature({ message: 'upstream statusCode=502, status: 404' }), 'Error: upstream statusCode=502, status: 404');
    assert.equal(errorSignature({ name: 'HttpError', message: 'HTTP 429 Too Many Requests' }), 'HttpError: HTTP 429 Too Many Requests');
    // Only a status: other numbers after those words, and numbers elsewhere, are still numbers.
    assert.equal(errorSignature({ message: 'status 7 of 12, http 80000' }), 'Error: status # of #, http #');
    assert.equal(errorSignature({ message: 'order 404 not found after 503 ms' }), 'Error: order # not found after # ms');
  });

  it('keeps the status of an answer written as JSON: its quoted key is no quoted value', () => {
    const answered = (body: string) => errorSignature({ message: `upstream answered ${body}` });
    assert.equal(answered('{"status":503}'), 'Error: upstream answered {status:503}');
    assert.notEqual(answered('{"status":404}'), answered('{"status":503}'));
    assert.equal(answered(`{"statusCode": 429, "error": "Too Many Requests"}`), 'Error: upstream answered {statusCode: 429, ?: ?}');
    assert.equal(answered(`{'status_code':500,'id':'a1'}`), 'Error: upstream answered {status_code:500,?:?}');
    // Only a status: a quoted status word before anything else stays a quoted value.
    assert.equal(answered('{"status":"failed","code":7}'), 'Error: upstream answered {?:?,?:#}');
    assert.equal(answered('{"status":5031}'), 'Error: upstream answered {?:#}');
  });

  it('is cut to 200 characters, however long the message', () => {
    const s = errorSignature({ message: 'word '.repeat(1_000_000) });
    assert.equal(s.length, MAX_SIGNATURE_LENGTH);
    assert.ok(s.startsWith('Error: word word'));
    // Not half a surrogate pair at the cut.
    const emoji = errorSignature({ message: 'a'.repeat(192) + '😀'.repeat(10) });
    assert.ok(emoji.length <= MAX_SIGNATURE_LENGTH);
    assert.doesNotThrow(() => encodeURIComponent(emoji));
  });

  it('has a fixed signature for an expired lease', () => {
    assert.equal(LEASE_EXPIRED_SIGNATURE, 'LeaseExpired: lease expired');
  });

  it('takes names like __proto__ as plain text', () => {
    assert.equal(errorSignature({ name: '__proto__', message: 'constructor 7' }), '__proto__: constructor #');
  });
});
