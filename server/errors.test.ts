/**
 * The error registry, fastify-style: each key equals its code, statuses are
 * HTTP errors, and every error the API can meet maps to a registry code.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AtsError, cutText, ERRORS, quoteCut, STORE_UNAVAILABLE_WHY, type ErrorCode } from '../engine/errors.js';
import { startSqliteTestApp } from '../tests/helpers/app.js';
import { MAX_MESSAGE_CHARS, toErrorReply } from './error-handler.js';
import { ErrorBody } from './schemas.js';

describe('ERRORS registry', () => {
  test('each key equals its code', () => {
    for (const [key, def] of Object.entries(ERRORS)) assert.equal(def.code, key);
  });

  test('each code is ATS_ERR_ and upper snake case', () => {
    for (const key of Object.keys(ERRORS)) assert.match(key, /^ATS_ERR_[A-Z0-9_]+$/);
  });

  test('each status is a 4xx or 5xx and each message is a sentence', () => {
    for (const def of Object.values(ERRORS)) {
      assert.ok(def.status >= 400 && def.status <= 599, `${def.code}: ${def.status}`);
      assert.ok(def.message.length > 3 && !def.message.endsWith('.'), def.code);
    }
  });

  test('the registry is frozen', () => {
    assert.ok(Object.isFrozen(ERRORS));
    for (const def of Object.values(ERRORS)) assert.ok(Object.isFrozen(def));
  });

  test('AtsError takes status and default message from the registry', () => {
    const e = new AtsError('ATS_ERR_JOB_NOT_FOUND');
    assert.equal(e.status, 404);
    assert.equal(e.message, ERRORS.ATS_ERR_JOB_NOT_FOUND.message);
  });

  test('ATS_ERR_CONCURRENT_UPDATE\'s own message names no kind of thing: any store transaction (a job, a schedule, a key, a limit) throws it', () => {
    assert.doesNotMatch(new AtsError('ATS_ERR_CONCURRENT_UPDATE').message, /\b(job|schedule|key|limit|workflow)\b/i);
  });

  test('a 503 ATS_ERR_STORE_UNAVAILABLE answers with its fixed texts only (read only, disk full); any other message of it (a path, an address) is the registry\'s', () => {
    for (const why of Object.values(STORE_UNAVAILABLE_WHY)) {
      assert.deepEqual(toErrorReply(new AtsError('ATS_ERR_STORE_UNAVAILABLE', why)), { status: 503, body: { code: 'ATS_ERR_STORE_UNAVAILABLE', message: why } });
    }
    const leaky = new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'the write-ahead log of the SQLite database /srv/ats/ats.sqlite could not be synced');
    assert.deepEqual(toErrorReply(leaky).body, { code: 'ATS_ERR_STORE_UNAVAILABLE', message: ERRORS.ATS_ERR_STORE_UNAVAILABLE.message });
  });

  test('the OpenAPI error schema lists every code', () => {
    const codes = (ErrorBody.properties.code as unknown as { enum: string[] }).enum;
    assert.deepEqual([...codes].sort(), Object.keys(ERRORS).sort());
  });
});

/** Half of a surrogate pair, without the other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('cutText', () => {
  test('cuts to at most max UTF-16 units, leaving out a character the cut would halve', () => {
    assert.equal(cutText('abc', 5), 'abc');
    assert.equal(cutText('abcdef', 3), 'abc');
    assert.equal(cutText('ab\u{1F600}c', 3), 'ab', 'the emoji takes units 2 and 3: left out whole');
    assert.equal(cutText('ab\u{1F600}c', 4), 'ab\u{1F600}');
    assert.equal(cutText('\u{1F600}', 1), '');
  });

  test('quoteCut says where it cut, and leaves text within max as it is', () => {
    assert.equal(quoteCut('abc', 3), 'abc');
    assert.equal(quoteCut('ab\u{1F600}c', 3), 'ab...');
  });
});

describe('toErrorReply', () => {
  const cases: { name: string; err: unknown; code: ErrorCode; status: number }[] = [
    { name: 'an AtsError keeps its code', err: new AtsError('ATS_ERR_BAD_CURSOR'), code: 'ATS_ERR_BAD_CURSOR', status: 400 },
    { name: 'schema validation', err: Object.assign(new Error('body/x bad'), { code: 'FST_ERR_VALIDATION', statusCode: 400 }), code: 'ATS_ERR_VALIDATION', status: 400 },
    { name: 'body too large', err: Object.assign(new Error('big'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }), code: 'ATS_ERR_PAYLOAD_TOO_LARGE', status: 413 },
    { name: 'unsupported media type', err: Object.assign(new Error('x'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }), code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE', status: 415 },
    { name: 'invalid JSON body', err: Object.assign(new Error('x'), { code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400 }), code: 'ATS_ERR_MALFORMED_JSON', status: 400 },
    { name: 'another 4xx', err: Object.assign(new Error('x'), { statusCode: 405 }), code: 'ATS_ERR_METHOD_NOT_ALLOWED', status: 405 },
    { name: 'an unlisted 4xx', err: Object.assign(new Error('x'), { statusCode: 406 }), code: 'ATS_ERR_VALIDATION', status: 400 },
    { name: 'a plain Error', err: new Error('secret internals'), code: 'ATS_ERR_INTERNAL', status: 500 },
    { name: 'a thrown string', err: 'oops', code: 'ATS_ERR_INTERNAL', status: 500 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = toErrorReply(c.err);
      assert.equal(r.body.code, c.code);
      assert.equal(r.status, c.status);
      assert.equal(ERRORS[r.body.code].status, r.status);
    });
  }

  test('a 500 does not leak the error message', () => {
    assert.equal(toErrorReply(new Error('password=hunter2')).body.message, ERRORS.ATS_ERR_INTERNAL.message);
  });

  test('a 5xx AtsError answers with its registry message (the log has the rest); only ATS_ERR_NOT_READY keeps its own', () => {
    const sql = "a statement failed: SELECT * FROM jobs WHERE id = ? at /work/main/adapters/mysql/tx.ts:106";
    assert.deepEqual(toErrorReply(new AtsError('ATS_ERR_INTERNAL', sql)).body, { code: 'ATS_ERR_INTERNAL', message: 'Internal error' });
    assert.equal(toErrorReply(new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'MySQL is not reachable at mysql://ats@10.1.2.3:3306/ats')).body.message, ERRORS.ATS_ERR_STORE_UNAVAILABLE.message);
    assert.equal(toErrorReply(new AtsError('ATS_ERR_NOT_READY', 'Not ready: database: unreachable')).body.message, 'Not ready: database: unreachable');
  });

  test(`every message is cut at ${MAX_MESSAGE_CHARS} characters, whatever it quotes`, () => {
    const long = 'x'.repeat(5000);
    for (const err of [
      new AtsError('ATS_ERR_VALIDATION', `body/type ${long}`),
      Object.assign(new Error(`body/${long} is bad`), { code: 'FST_ERR_VALIDATION', statusCode: 400 }),
      Object.assign(new Error(long), { statusCode: 409 }),
      new AtsError('ATS_ERR_NOT_READY', long),
    ]) {
      const { message } = toErrorReply(err).body;
      assert.ok(message.length <= MAX_MESSAGE_CHARS, `${message.length} characters`);
      assert.ok(message.endsWith('...'));
    }
    assert.equal(toErrorReply(new AtsError('ATS_ERR_VALIDATION', 'short')).body.message, 'short');
  });

  test('a message is cut between characters: an emoji across the cut is left out whole, never half of it sent as a lone surrogate', () => {
    for (let n = 290; n < 300; n++) {
      const { message } = toErrorReply(new AtsError('ATS_ERR_VALIDATION', `${'x'.repeat(n)}${'\u{1F600}'.repeat(20)}`)).body;
      assert.ok(message.length <= MAX_MESSAGE_CHARS && message.endsWith('...'), `${n}: ${message.length}`);
      assert.doesNotMatch(message, LONE_SURROGATE, `${n}`);
    }
  });

  test('a 401 or 403 of a plugin keeps its meaning', () => {
    assert.equal(toErrorReply(Object.assign(new Error('x'), { statusCode: 403 })).body.code, 'ATS_ERR_FORBIDDEN');
    assert.equal(toErrorReply(Object.assign(new Error('x'), { statusCode: 401 })).body.code, 'ATS_ERR_UNAUTHORIZED');
  });
});

describe('an answer quoting the request', () => {
  test('cuts what it quotes between characters: a field, a query parameter or a time zone with an emoji across the cut', async () => {
    const t = await startSqliteTestApp();
    try {
      const name = `${'a'.repeat(99)}\u{1F600}`;
      const answers = [
        await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: 1, [name]: 1 } }),
        await t.app.inject({ method: 'POST', url: `/v1/jobs?${encodeURIComponent(name)}=1`, payload: { type: 'demo.echo', payload: 1 } }),
        await t.app.inject({ method: 'POST', url: '/v1/schedules', payload: { name: 'n', cron: '0 3 * * *', type: 'demo.echo', timezone: `${'a'.repeat(63)}\u{1F600}` } }),
      ];
      for (const r of answers) {
        assert.equal(r.statusCode, 400, r.body);
        assert.match(r.json().message, /a{60}/, 'it quotes the start of what was sent');
        assert.doesNotMatch(r.json().message, LONE_SURROGATE, r.body);
      }
    } finally {
      await t.close();
    }
  });
});

describe('a body over its route\'s limit', () => {
  test('the 413 names the route\'s limit in bytes, the body\'s size and the setting: the batch\'s own, the API\'s elsewhere', async () => {
    const t = await startSqliteTestApp({ limits: { bodyLimitBytes: 1024, batchBodyLimitBytes: 8 * 1024 } });
    try {
      const small = { type: 'demo.echo', payload: 'x' };
      const batch = { jobs: Array.from({ length: 400 }, () => small) }; // about 14 KB
      const overBatch = await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: batch });
      assert.equal(overBatch.statusCode, 413, overBatch.body.slice(0, 300));
      assert.deepEqual(overBatch.json(), {
        code: 'ATS_ERR_PAYLOAD_TOO_LARGE',
        message: `The request body of ${Buffer.byteLength(JSON.stringify(batch))} bytes is larger than the 8192-byte limit of this route (ATS_BATCH_BODY_LIMIT_BYTES)`,
      });
      const job = { type: 'demo.echo', payload: 'y'.repeat(2000) };
      const overJob = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: job });
      assert.equal(overJob.statusCode, 413, overJob.body);
      assert.equal(overJob.json().message, `The request body of ${Buffer.byteLength(JSON.stringify(job))} bytes is larger than the 1024-byte limit of this route (ATS_BODY_LIMIT_BYTES)`);
    } finally {
      await t.close();
    }
  });
});
