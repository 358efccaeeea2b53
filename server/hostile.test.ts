/**
 * Malformed and hostile requests: each gets the expected 4xx and registry
 * code, never a 500, and nothing reaches the database (the jobs, schedules and
 * limits tables stay empty). This file's database never holds a job, a
 * schedule or a limit.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import type { ErrorCode } from '../engine/errors.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

const ok = { type: 'demo.echo', payload: { a: 1 } };
const json = (body: string | Buffer): InjectOptions => ({
  method: 'POST', url: '/v1/jobs', payload: body, headers: { 'content-type': 'application/json' },
});
const post = (body: unknown, headers: Record<string, string> = {}): InjectOptions => ({
  method: 'POST', url: '/v1/jobs', payload: body as object, headers,
});
const schedule = { name: 'nightly', cron: '0 3 * * *', type: 'demo.echo' };
const createSchedule = (body: unknown): InjectOptions => ({ method: 'POST', url: '/v1/schedules', payload: body as object });
const changeSchedule = (body: unknown, name = 'nightly'): InjectOptions => ({ method: 'PATCH', url: `/v1/schedules/${name}`, payload: body as object });
const CRON_10K = '*'.repeat(10 * 1024);
const putLimit = (body: unknown, key = 'email'): InjectOptions => ({ method: 'PUT', url: `/v1/limits/${key}`, payload: body as object });
const putLimitJson = (body: string, key = 'email'): InjectOptions => ({
  method: 'PUT', url: `/v1/limits/${key}`, payload: body, headers: { 'content-type': 'application/json' },
});
const rate = { max: 10, intervalMs: 1000 };
const nestedArrays = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
const JOB_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

interface Case {
  name: string;
  req: InjectOptions;
  status: number;
  code: ErrorCode;
  /** A part the message must contain: the caller should learn what was wrong. */
  says?: RegExp;
}

const cases: Case[] = [
  // ------------------------------------------------------------ not JSON
  { name: 'malformed JSON', req: json('{"type":'), status: 400, code: 'ATS_ERR_MALFORMED_JSON' },
  { name: 'trailing garbage', req: json(`${JSON.stringify(ok)}x`), status: 400, code: 'ATS_ERR_MALFORMED_JSON' },
  { name: 'empty JSON body', req: json(''), status: 400, code: 'ATS_ERR_MALFORMED_JSON' },
  // Decoded loosely, each bad byte became U+FFFD: a payload stored unlike the one sent.
  { name: 'body not UTF-8 (a 0xFF byte in a string)', req: json(Buffer.concat([Buffer.from('{"type":"demo.echo","payload":"a'), Buffer.from([0xff]), Buffer.from('b"}')])), status: 400, code: 'ATS_ERR_MALFORMED_JSON', says: /UTF-8/ },
  { name: 'body not UTF-8 (a surrogate encoded as bytes)', req: json(Buffer.concat([Buffer.from('{"type":"demo.echo","payload":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])), status: 400, code: 'ATS_ERR_MALFORMED_JSON', says: /UTF-8/ },
  { name: 'body not UTF-8 (cut inside a character)', req: json(Buffer.concat([Buffer.from('{"type":"demo.echo","payload":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}')])), status: 400, code: 'ATS_ERR_MALFORMED_JSON', says: /UTF-8/ },
  { name: 'text/plain body', req: { ...post(JSON.stringify(ok)), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  // Read as UTF-8 whatever the header said, a body in another charset would be broken JSON, or stored unlike the one sent.
  { name: 'body in UTF-16, said so', req: { ...json(Buffer.from(JSON.stringify(ok), 'utf16le')), headers: { 'content-type': 'application/json; charset=utf-16' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE', says: /charset utf-16 .*UTF-8/ },
  { name: 'body said to be Latin-1', req: { ...json(JSON.stringify(ok)), headers: { 'content-type': 'application/json; charset="ISO-8859-1"' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE', says: /charset ISO-8859-1 / },
  // The body is read as sent: a compressed one was refused as broken JSON, which it is not.
  { name: 'gzip body', req: { ...json(gzipSync(JSON.stringify(ok))), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE', says: /Content-Encoding gzip/ },
  { name: 'br body', req: { ...json(JSON.stringify(ok)), headers: { 'content-type': 'application/json', 'content-encoding': 'br' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE', says: /Content-Encoding br/ },
  { name: 'form body', req: { ...post('type=demo.echo'), headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'no body', req: { method: 'POST', url: '/v1/jobs' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'body is an array', req: json('[]'), status: 400, code: 'ATS_ERR_VALIDATION', says: /must be object/ },
  { name: 'body is null', req: json('null'), status: 400, code: 'ATS_ERR_VALIDATION' },
  // JSON.parse made 9007199254740992 of it without a word: the payload stored was not the one sent.
  { name: 'payload with an integer past 2^53', req: json('{"type":"demo.echo","payload":{"orderId":9007199254740993}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /the integer 9007199254740993 \(at position 41, as JSON.parse counts\).*Send it as a string/ },
  { name: 'batch item with an integer past -2^53', req: { ...json('{"jobs":[{"type":"demo.echo","payload":[-12345678901234567890]}]}'), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /-12345678901234567890/ },
  { name: 'body is a string', req: json('"demo.echo"'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'oversize body', req: post({ ...ok, payload: 'x'.repeat(1024 * 1024 + 1) }), status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
  // ------------------------------------------------------------ wrong shape
  { name: 'missing type', req: post({ payload: 1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /type/ },
  { name: 'missing payload', req: post({ type: 'demo.echo' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /payload/ },
  { name: 'unknown field', req: post({ ...ok, colour: 'red' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /colour/ },
  { name: 'type is a number', req: post({ ...ok, type: 42 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'type is empty', req: post({ ...ok, type: '' }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'type has spaces', req: post({ ...ok, type: 'demo echo' }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'type too long', req: post({ ...ok, type: 'a'.repeat(201) }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'queue with a slash', req: post({ ...ok, queue: 'a/b' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /queue/ },
  { name: 'maxAttempts as a string (no coercion)', req: post({ ...ok, maxAttempts: '3' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxAttempts/ },
  { name: 'maxAttempts 0', req: post({ ...ok, maxAttempts: 0 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'maxAttempts 101', req: post({ ...ok, maxAttempts: 101 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'priority not an integer', req: post({ ...ok, priority: 1.5 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'priority too high', req: post({ ...ok, priority: 1001 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'timeoutMs 0', req: post({ ...ok, timeoutMs: 0 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'timeoutMs over a day', req: post({ ...ok, timeoutMs: 86_400_001 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'timeoutMs as a boolean', req: post({ ...ok, timeoutMs: true }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'runAt not a date', req: post({ ...ok, runAt: 'tomorrow' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /runAt/ },
  { name: 'runAt without a time zone', req: post({ ...ok, runAt: '2030-01-01T00:00:00' }), status: 400, code: 'ATS_ERR_VALIDATION' },
  // runAt is one of two shapes: the refusal names both, not only the first ("must be string" of a number).
  { name: 'runAt negative', req: post({ ...ok, runAt: -1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /^body\/runAt must be string or must be >= 0$/ },
  { name: 'runAt a fraction of a millisecond', req: post({ ...ok, runAt: 1.5 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /^body\/runAt must be string or must be integer$/ },
  { name: 'runAt beyond year 9999', req: post({ ...ok, runAt: 1e16 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /^body\/runAt must be string or must be <= 253402300799999$/ },
  { name: 'backoff of an unknown kind', req: post({ ...ok, backoff: { kind: 'linear', delayMs: 5 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /backoff/ },
  { name: 'backoff missing maxMs', req: post({ ...ok, backoff: { kind: 'exponential', baseMs: 10 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxMs/ },
  { name: 'backoff maxMs < baseMs', req: post({ ...ok, backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'backoff with an extra field', req: post({ ...ok, backoff: { kind: 'fixed', delayMs: 5, baseMs: 1 } }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'unregistered job type', req: post({ ...ok, type: 'evil.rm-rf' }), status: 422, code: 'ATS_ERR_UNKNOWN_JOB_TYPE', says: /evil\.rm-rf/ },
  // ------------------------------------------------------------ hostile
  { name: '__proto__ at the top', req: json('{"type":"demo.echo","payload":1,"__proto__":{"polluted":true}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: '__proto__ inside the payload', req: json('{"type":"demo.echo","payload":{"a":[{"__proto__":{"polluted":true}}]}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: 'escaped \\u005f\\u005fproto\\u005f\\u005f', req: json('{"type":"demo.echo","payload":{"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":true}}}'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'constructor.prototype in the payload', req: json('{"type":"demo.echo","payload":{"constructor":{"prototype":{"polluted":true}}}}'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'constructor at the top', req: post({ ...ok, constructor: { name: 'x' } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /constructor/ },
  { name: 'payload nested 33 deep', req: json(`{"type":"demo.echo","payload":${nestedArrays(33)}}`), status: 400, code: 'ATS_ERR_VALIDATION', says: /deeper than 32/ },
  { name: 'payload nested 100000 deep', req: json(`{"type":"demo.echo","payload":${nestedArrays(100_000)}}`), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'payload number out of range', req: json('{"type":"demo.echo","payload":{"n":1e400}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /out of range/ },
  { name: 'Idempotency-Key too long', req: post(ok, { 'idempotency-key': 'k'.repeat(256) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /idempotency-key/ },
  { name: 'Idempotency-Key not printable ASCII', req: post(ok, { 'idempotency-key': 'ключ' }), status: 400, code: 'ATS_ERR_VALIDATION' },
  // Node joins a header sent twice with ", ": the two keys would act as the one key `a, b`.
  { name: 'Idempotency-Key given twice', req: post(ok, { 'idempotency-key': ['a', 'b'] as unknown as string }), status: 400, code: 'ATS_ERR_VALIDATION', says: /idempotency-key is given more than once/ },
  { name: 'Idempotency-Key given twice, the same', req: post(ok, { 'idempotency-key': ['a', 'a'] as unknown as string }), status: 400, code: 'ATS_ERR_VALIDATION', says: /idempotency-key/ },
  { name: 'Idempotency-Key of the server\'s own (ats:)', req: post(ok, { 'idempotency-key': 'ats:schedule:nightly:0:0' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /ats:/ },
  // A route that reads no query string dropped one without a word: the job went to the default queue.
  // Refused as a value of the wrong type ("must be string"), which names nothing the caller did wrong.
  { name: 'a query parameter given twice', req: { method: 'GET', url: '/v1/jobs?state=done&state=dead' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /^querystring\/state is given more than once: give it once$/ },
  { name: 'a number in a query given twice', req: { method: 'GET', url: '/v1/jobs?limit=1&limit=1' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /^querystring\/limit is given more than once/ },
  { name: 'a query parameter on a submit (?queue=)', req: { ...post(ok), url: '/v1/jobs?queue=email' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /querystring has an unknown field 'queue'/ },
  { name: 'a query parameter on a batch', req: { ...post({ jobs: [ok] }), url: '/v1/jobs/batch?queue=email' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /queue/ },
  { name: 'a query parameter on a cancel', req: { method: 'POST', url: `/v1/jobs/${JOB_ID}/cancel?reason=x` }, status: 400, code: 'ATS_ERR_VALIDATION', says: /reason/ },
  { name: 'a query parameter on a schedule', req: { ...createSchedule(schedule), url: '/v1/schedules?paused=true' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /paused/ },
  { name: 'a query parameter on a limit', req: { ...putLimit({ concurrency: 1 }), url: '/v1/limits/email?rate=5' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /rate/ },
  { name: 'an empty query parameter on a submit', req: { ...post(ok), url: '/v1/jobs?x' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /'x'/ },
  // ------------------------------------------------------------ batch envelope (a bad item is its own result: batch.test.ts)
  { name: 'batch: no body', req: { method: 'POST', url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'batch: body is an array of jobs', req: { ...json(JSON.stringify([ok])), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /must be object/ },
  { name: 'batch: jobs is a string', req: { ...post({ jobs: 'all' }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /jobs/ },
  { name: 'batch: no jobs', req: { ...post({ jobs: [] }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /jobs/ },
  { name: 'batch: 1,001 jobs', req: { ...post({ jobs: Array(1001).fill(ok) }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /1000/ },
  { name: 'batch: __proto__ in one item', req: { ...json(`{"jobs":[${JSON.stringify(ok)},{"type":"demo.echo","payload":1,"__proto__":{"polluted":true}}]}`), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  // The batch takes each item's idempotencyKey: the header was ignored, and a batch sent again made its jobs again.
  { name: 'batch: an Idempotency-Key header', req: { ...post({ jobs: [ok] }, { 'idempotency-key': 'k-1' }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /idempotency-key.*body\/jobs\/N\/idempotencyKey/ },
  { name: 'batch: text/plain body', req: { ...post(JSON.stringify({ jobs: [ok] })), url: '/v1/jobs/batch', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'batch: over the 16 MiB batch limit', req: { ...post({ jobs: [{ ...ok, payload: 'x'.repeat(16 * 1024 * 1024) }] }), url: '/v1/jobs/batch' }, status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
  // ------------------------------------------------------------ schedules (each would write a schedule if it got through)
  { name: 'schedule: malformed JSON', req: { ...json('{"name":'), url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_MALFORMED_JSON' },
  { name: 'schedule: text/plain body', req: { ...createSchedule(JSON.stringify(schedule)), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'schedule: no body', req: { method: 'POST', url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule: missing cron', req: createSchedule({ name: 'nightly', type: 'demo.echo' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule: name is a number', req: createSchedule({ ...schedule, name: 7 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /name/ },
  { name: 'schedule: name with a slash', req: createSchedule({ ...schedule, name: 'a/b' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /name/ },
  { name: 'schedule: name of 101 characters', req: createSchedule({ ...schedule, name: 'n'.repeat(101) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /name/ },
  { name: 'schedule: cron is a number', req: createSchedule({ ...schedule, cron: 5 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule: cron is an array', req: createSchedule({ ...schedule, cron: ['0', '3', '*', '*', '*'] }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule: cron of 10 KB', req: createSchedule({ ...schedule, cron: CRON_10K }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule: cron of 10 KB of fields', req: createSchedule({ ...schedule, cron: '* '.repeat(5 * 1024) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule: cron minute 61', req: createSchedule({ ...schedule, cron: '61 * * * *' }), status: 400, code: 'ATS_ERR_INVALID_CRON' },
  { name: 'schedule: cron not an expression', req: createSchedule({ ...schedule, cron: 'bad' }), status: 400, code: 'ATS_ERR_INVALID_CRON' },
  { name: 'schedule: cron step 0', req: createSchedule({ ...schedule, cron: '*/0 * * * *' }), status: 400, code: 'ATS_ERR_INVALID_CRON' },
  { name: 'schedule: cron of 200 characters, not an expression', req: createSchedule({ ...schedule, cron: '9'.repeat(200) }), status: 400, code: 'ATS_ERR_INVALID_CRON' },
  { name: 'schedule: unknown time zone', req: createSchedule({ ...schedule, timezone: 'Mars/Olympus_Mons' }), status: 400, code: 'ATS_ERR_INVALID_TIMEZONE', says: /Mars/ },
  { name: 'schedule: time zone a path', req: createSchedule({ ...schedule, timezone: '../../etc/localtime' }), status: 400, code: 'ATS_ERR_INVALID_TIMEZONE' },
  { name: 'schedule: time zone with a NUL', req: createSchedule({ ...schedule, timezone: 'UTC\u0000' }), status: 400, code: 'ATS_ERR_INVALID_TIMEZONE' },
  { name: 'schedule: time zone of 10 KB', req: createSchedule({ ...schedule, timezone: 'Z'.repeat(10 * 1024) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /timezone/ },
  { name: 'schedule: time zone empty', req: createSchedule({ ...schedule, timezone: '' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /timezone/ },
  { name: 'schedule: time zone a number', req: createSchedule({ ...schedule, timezone: 1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /timezone/ },
  { name: 'schedule: paused as a string', req: createSchedule({ ...schedule, paused: 'false' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /paused/ },
  { name: 'schedule: unknown overlap', req: createSchedule({ ...schedule, overlap: 'queue' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /overlap/ },
  { name: 'schedule: catchUp a number', req: createSchedule({ ...schedule, catchUp: 1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /catchUp/ },
  { name: 'schedule: maxAttempts 0', req: createSchedule({ ...schedule, maxAttempts: 0 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxAttempts/ },
  { name: 'schedule: maxAttempts 101', req: createSchedule({ ...schedule, maxAttempts: 101 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxAttempts/ },
  { name: 'schedule: maxAttempts as a string', req: createSchedule({ ...schedule, maxAttempts: '3' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxAttempts/ },
  { name: 'schedule: priority -1001', req: createSchedule({ ...schedule, priority: -1001 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /priority/ },
  { name: 'schedule: priority 1e400', req: { ...json(`{"name":"nightly","cron":"0 3 * * *","type":"demo.echo","priority":1e400}`), url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /priority/ },
  { name: 'schedule: timeoutMs over a day', req: createSchedule({ ...schedule, timeoutMs: 86_400_001 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /timeoutMs/ },
  { name: 'schedule: backoff delay over 7 days', req: createSchedule({ ...schedule, backoff: { kind: 'fixed', delayMs: 7 * 86_400_000 + 1 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /delayMs/ },
  { name: 'schedule: backoff maxMs < baseMs', req: createSchedule({ ...schedule, backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /maxMs/ },
  { name: 'schedule: runAt (not a schedule field)', req: createSchedule({ ...schedule, runAt: 0 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /runAt/ },
  { name: 'schedule: unknown field', req: createSchedule({ ...schedule, every: '1h' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /every/ },
  { name: 'schedule: __proto__ at the top', req: { ...json('{"name":"nightly","cron":"0 3 * * *","type":"demo.echo","__proto__":{"polluted":true}}'), url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: 'schedule: payload nested 33 deep', req: { ...json(`{"name":"nightly","cron":"0 3 * * *","type":"demo.echo","payload":${nestedArrays(33)}}`), url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /deeper than 32/ },
  { name: 'schedule: payload number out of range', req: { ...json('{"name":"nightly","cron":"0 3 * * *","type":"demo.echo","payload":{"n":-1e400}}'), url: '/v1/schedules' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /out of range/ },
  { name: 'schedule: oversize body', req: createSchedule({ ...schedule, payload: 'x'.repeat(1024 * 1024 + 1) }), status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
  { name: 'schedule: unregistered job type', req: createSchedule({ ...schedule, type: 'evil.rm-rf' }), status: 422, code: 'ATS_ERR_UNKNOWN_JOB_TYPE', says: /evil\.rm-rf/ },
  { name: 'schedule change: empty body', req: changeSchedule({}), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule change: no body', req: { method: 'PATCH', url: '/v1/schedules/nightly' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule change: cron of 10 KB', req: changeSchedule({ cron: CRON_10K }), status: 400, code: 'ATS_ERR_VALIDATION', says: /cron/ },
  { name: 'schedule change: time zone of 10 KB', req: changeSchedule({ timezone: 'Z'.repeat(10 * 1024) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /timezone/ },
  { name: 'schedule change: paused as a number', req: changeSchedule({ paused: 0 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /paused/ },
  { name: 'schedule change: priority 1001', req: changeSchedule({ priority: 1001 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /priority/ },
  { name: 'schedule change: the name', req: changeSchedule({ name: 'other' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /name/ },
  { name: 'schedule change: an unknown schedule', req: changeSchedule({ paused: true }), status: 404, code: 'ATS_ERR_SCHEDULE_NOT_FOUND' },
  { name: 'schedule change: a job field of an unknown schedule', req: changeSchedule({ payload: 1 }), status: 404, code: 'ATS_ERR_SCHEDULE_NOT_FOUND' },
  { name: 'schedule change: a bad name', req: changeSchedule({ paused: true }, 'a%20b'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule change: text/plain', req: { ...changeSchedule('paused'), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'schedule: get an unknown one', req: { url: '/v1/schedules/nightly' }, status: 404, code: 'ATS_ERR_SCHEDULE_NOT_FOUND' },
  { name: 'schedule: get with a bad name', req: { url: '/v1/schedules/%F0%9F%95%90' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule: get with a name far too long', req: { url: `/v1/schedules/${'n'.repeat(300)}` }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule: delete an unknown one', req: { method: 'DELETE', url: '/v1/schedules/nightly' }, status: 404, code: 'ATS_ERR_SCHEDULE_NOT_FOUND' },
  { name: 'schedule: delete with a bad name', req: { method: 'DELETE', url: '/v1/schedules/a%2Fb' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'schedule: PUT is no method of a schedule', req: { method: 'PUT', url: '/v1/schedules/nightly', payload: schedule }, status: 405, code: 'ATS_ERR_METHOD_NOT_ALLOWED', says: /takes GET, HEAD, PATCH, DELETE$/ },
  // ------------------------------------------------------------ limits (each would write a limit if it got through)
  // A digit string longer than a double coerces to Infinity, which Ajv passes through `integer` and `maximum`.
  { name: 'list: limit beyond a double', req: { method: 'GET', url: `/v1/jobs?limit=${'9'.repeat(400)}` }, status: 400, code: 'ATS_ERR_VALIDATION', says: /limit must be a finite number/ },
  { name: 'limit: concurrency -1', req: putLimit({ concurrency: -1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency 1.5', req: putLimit({ concurrency: 1.5 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency as a string (no coercion)', req: putLimit({ concurrency: '5' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency as a boolean', req: putLimit({ concurrency: true }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency as an array', req: putLimit({ concurrency: [5] }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency 100,001', req: putLimit({ concurrency: 100_001 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: concurrency 2^53 + 1', req: putLimitJson('{"concurrency":9007199254740993}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /9007199254740993/ },
  { name: 'limit: concurrency 1e400', req: putLimitJson('{"concurrency":1e400}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency/ },
  { name: 'limit: rate max 0', req: putLimit({ rate: { ...rate, max: 0 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /max/ },
  { name: 'limit: rate max -5', req: putLimit({ rate: { ...rate, max: -5 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /max/ },
  { name: 'limit: rate max 1,000,001', req: putLimit({ rate: { ...rate, max: 1_000_001 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /max/ },
  { name: 'limit: rate max 2.5', req: putLimit({ rate: { ...rate, max: 2.5 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /max/ },
  { name: 'limit: rate max as a string', req: putLimit({ rate: { ...rate, max: '10' } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /max/ },
  { name: 'limit: rate intervalMs 0', req: putLimit({ rate: { ...rate, intervalMs: 0 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /intervalMs/ },
  { name: 'limit: rate intervalMs over a day', req: putLimit({ rate: { ...rate, intervalMs: 86_400_001 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /intervalMs/ },
  { name: 'limit: rate intervalMs 1e400', req: putLimitJson('{"rate":{"max":10,"intervalMs":1e400}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /intervalMs/ },
  { name: 'limit: rate without intervalMs', req: putLimit({ rate: { max: 10 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /intervalMs/ },
  { name: 'limit: rate with an unknown field', req: putLimit({ rate: { ...rate, burst: 5 } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /burst/ },
  { name: 'limit: rate as a number', req: putLimit({ rate: 10 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /rate/ },
  { name: 'limit: rate as a string', req: putLimit({ rate: '10/1s' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /rate/ },
  { name: 'limit: rate as an array', req: putLimit({ rate: [10, 1000] }), status: 400, code: 'ATS_ERR_VALIDATION', says: /rate/ },
  { name: 'limit: unknown field', req: putLimit({ concurrency: 1, weight: 2 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /weight/ },
  { name: 'limit: the key in the body', req: putLimit({ key: 'other', concurrency: 1 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /key/ },
  { name: 'limit: neither field', req: putLimit({}), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency or rate/ },
  { name: 'limit: both fields null', req: putLimit({ concurrency: null, rate: null }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency or rate/ },
  { name: 'limit: only a null concurrency', req: putLimit({ concurrency: null }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrency or rate/ },
  { name: 'limit: body is an array', req: putLimitJson('[{"concurrency":1}]'), status: 400, code: 'ATS_ERR_VALIDATION', says: /must be object/ },
  { name: 'limit: body is null', req: putLimitJson('null'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: body is a number', req: putLimitJson('5'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: body is a string', req: putLimitJson('"5"'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: no body', req: { method: 'PUT', url: '/v1/limits/email' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: malformed JSON', req: putLimitJson('{"concurrency":'), status: 400, code: 'ATS_ERR_MALFORMED_JSON' },
  { name: 'limit: text/plain body', req: { ...putLimit('{"concurrency":1}'), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'limit: __proto__ in the body', req: putLimitJson('{"concurrency":1,"__proto__":{"polluted":true}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: 'limit: __proto__ in the rate', req: putLimitJson('{"rate":{"max":1,"intervalMs":1,"__proto__":{"polluted":true}}}'), status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: 'limit: oversize body', req: putLimit({ concurrency: 1, pad: 'x'.repeat(1024 * 1024 + 1) }), status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
  { name: 'limit: a key of 10 KB', req: putLimit({ concurrency: 1 }, 'k'.repeat(10 * 1024)), status: 400, code: 'ATS_ERR_VALIDATION', says: /^A path parameter is longer than 200 characters$/ },
  { name: 'limit: a key of 201 characters', req: putLimit({ concurrency: 1 }, 'k'.repeat(201)), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: a key with a space', req: putLimit({ concurrency: 1 }, 'a%20b'), status: 400, code: 'ATS_ERR_VALIDATION', says: /key/ },
  { name: 'limit: a key with a slash', req: putLimit({ concurrency: 1 }, 'a%2Fb'), status: 400, code: 'ATS_ERR_VALIDATION', says: /key/ },
  { name: 'limit: a key with a NUL', req: putLimit({ concurrency: 1 }, 'a%00b'), status: 400, code: 'ATS_ERR_VALIDATION', says: /key/ },
  { name: 'limit: a key not ASCII', req: putLimit({ concurrency: 1 }, '%F0%9F%94%91'), status: 400, code: 'ATS_ERR_VALIDATION', says: /key/ },
  { name: 'limit: a key of bad URL encoding', req: putLimit({ concurrency: 1 }, '%E0%A4%A'), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: get with a key of 10 KB', req: { url: `/v1/limits/${'k'.repeat(10 * 1024)}` }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: get with a bad key', req: { url: '/v1/limits/a%20b' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: get an unknown one', req: { url: '/v1/limits/email' }, status: 404, code: 'ATS_ERR_LIMIT_NOT_FOUND', says: /email/ },
  { name: 'limit: delete an unknown one', req: { method: 'DELETE', url: '/v1/limits/email' }, status: 404, code: 'ATS_ERR_LIMIT_NOT_FOUND' },
  { name: 'limit: delete with a bad key', req: { method: 'DELETE', url: '/v1/limits/a%2Fb' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'limit: POST is no method of the list', req: { method: 'POST', url: '/v1/limits', payload: { concurrency: 1 } }, status: 405, code: 'ATS_ERR_METHOD_NOT_ALLOWED', says: /takes GET, HEAD$/ },
  { name: 'limit: PATCH is no method of a limit', req: { method: 'PATCH', url: '/v1/limits/email', payload: { concurrency: 1 } }, status: 405, code: 'ATS_ERR_METHOD_NOT_ALLOWED', says: /takes GET, HEAD, PUT, DELETE$/ },
  { name: 'limit: DELETE of the whole list is no method of it', req: { method: 'DELETE', url: '/v1/limits' }, status: 405, code: 'ATS_ERR_METHOD_NOT_ALLOWED', says: /takes GET, HEAD$/ },
  // ------------------------------------------------------------ a job's concurrency key (each would write a job)
  { name: 'concurrencyKey with a space', req: post({ ...ok, concurrencyKey: 'a b' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey empty', req: post({ ...ok, concurrencyKey: '' }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey of 201 characters', req: post({ ...ok, concurrencyKey: 'k'.repeat(201) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey of 10 KB', req: post({ ...ok, concurrencyKey: 'k'.repeat(10 * 1024) }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey a number', req: post({ ...ok, concurrencyKey: 42 }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey null', req: post({ ...ok, concurrencyKey: null }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  { name: 'concurrencyKey an object', req: post({ ...ok, concurrencyKey: { key: 'a' } }), status: 400, code: 'ATS_ERR_VALIDATION', says: /concurrencyKey/ },
  // ------------------------------------------------------------ other routes
  { name: 'job id not a ULID', req: { url: '/v1/jobs/not-a-ulid' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'job id in lower case', req: { url: `/v1/jobs/${JOB_ID.toLowerCase()}` }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'job id far too long', req: { url: `/v1/jobs/${'A'.repeat(300)}` }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'bad URL encoding', req: { url: '/v1/jobs/%E0%A4%A' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'cancel with a bad id', req: { method: 'POST', url: '/v1/jobs/x/cancel' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'cancel reason not a string', req: { method: 'POST', url: `/v1/jobs/${JOB_ID}/cancel`, payload: { reason: 5 } }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'cancel with an unknown field', req: { method: 'POST', url: `/v1/jobs/${JOB_ID}/cancel`, payload: { force: true } }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'cancel with text/plain', req: { method: 'POST', url: `/v1/jobs/${JOB_ID}/cancel`, payload: 'now', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'list: unknown state', req: { url: '/v1/jobs?state=exploded' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /state/ },
  { name: 'list: limit 0', req: { url: '/v1/jobs?limit=0' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: limit 501', req: { url: '/v1/jobs?limit=501' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: limit not a number', req: { url: '/v1/jobs?limit=ten' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  // A query integer is decimal digits: each of these was read as a number by coercion and a page answered.
  ...['0x10', '0b1', '1e2', '%205', '5%20', '%2B5', '5.0'].map((q): Case => (
    { name: `list: limit=${q}`, req: { url: `/v1/jobs?limit=${q}` }, status: 400, code: 'ATS_ERR_VALIDATION', says: /querystring\/limit must be an integer in decimal digits/ })),
  { name: 'list: state given twice', req: { url: '/v1/jobs?state=pending&state=done' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: unknown parameter', req: { url: '/v1/jobs?sort=asc' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /sort/ },
  { name: 'list: __proto__ parameter', req: { url: '/v1/jobs?__proto__=x' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: forged cursor', req: { url: `/v1/jobs?cursor=${Buffer.from('01ARZ3NDEKTSV4RRFFQ69G5FA').toString('base64url')}` }, status: 400, code: 'ATS_ERR_BAD_CURSOR' },
  { name: 'unknown route', req: { url: '/v2/jobs' }, status: 404, code: 'ATS_ERR_ROUTE_NOT_FOUND' },
  { name: 'wrong method', req: { method: 'PUT', url: `/v1/jobs/${JOB_ID}` }, status: 405, code: 'ATS_ERR_METHOD_NOT_ALLOWED', says: /takes GET, HEAD, DELETE$/ },
  { name: 'delete: unknown job', req: { method: 'DELETE', url: `/v1/jobs/${JOB_ID}` }, status: 404, code: 'ATS_ERR_JOB_NOT_FOUND' },
  // A route that reads no body dropped one without a word.
  { name: 'delete: a body (force)', req: { method: 'DELETE', url: `/v1/jobs/${JOB_ID}`, payload: { force: true } }, status: 400, code: 'ATS_ERR_VALIDATION', says: /takes no body/ },
  { name: 'delete a schedule: a body', req: { method: 'DELETE', url: '/v1/schedules/nightly', payload: { cascade: true } }, status: 400, code: 'ATS_ERR_VALIDATION', says: /takes no body/ },
  { name: 'delete a limit: an array as the body', req: { method: 'DELETE', url: '/v1/limits/email', payload: '[]', headers: { 'content-type': 'application/json' } }, status: 400, code: 'ATS_ERR_VALIDATION', says: /takes no body/ },
  { name: 'delete a limit: {} as the body, which says nothing (an unknown limit)', req: { method: 'DELETE', url: '/v1/limits/email', payload: {} }, status: 404, code: 'ATS_ERR_LIMIT_NOT_FOUND' },
  { name: 'delete: __proto__ as the id', req: { method: 'DELETE', url: '/v1/jobs/__proto__' }, status: 400, code: 'ATS_ERR_VALIDATION' },
];

describe('hostile input', { skip: mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ knownTypes: () => ['demo.echo', 'demo.sleep'] });
  });
  after(async () => {
    await t?.close();
  });

  for (const c of cases) {
    test(`${c.name} → ${c.status} ${c.code}`, async () => {
      const r = await t.app.inject(c.req);
      assert.equal(r.statusCode, c.status, r.body.slice(0, 300));
      const body = r.json() as { code: string; message: string };
      assert.deepEqual(Object.keys(body).sort(), ['code', 'message']);
      assert.equal(body.code, c.code);
      if (c.says) assert.match(body.message, c.says);
      // A 405 carries the methods the path takes, as HTTP requires; the message names the same.
      if (c.status === 405) assert.ok(body.message.endsWith(`takes ${String(r.headers.allow)}`), `Allow: ${String(r.headers.allow)}`);
      assert.ok(!('polluted' in {}), 'Object.prototype was polluted');
    });
  }

  test('headers larger than Node accepts get a 431 {code, message}', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/jobs', headers: { 'x-big': 'y'.repeat(64 * 1024), 'content-type': 'application/json' } }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(ok));
    });
    assert.equal(res.status, 431);
    assert.equal(JSON.parse(res.body).code, 'ATS_ERR_HEADERS_TOO_LARGE');
  });

  test('after all of it, nothing was written', async () => {
    const stats = (await t.app.inject({ url: '/v1/stats' })).json();
    assert.equal(stats.total, 0);
    assert.deepEqual(await t.store.listJobs({ limit: 10 }), []);
    assert.equal(await t.store.countUnpublished(), 0);
    assert.deepEqual(await t.store.listSchedules(), []);
    assert.deepEqual((await t.app.inject({ url: '/v1/schedules' })).json(), { schedules: [] });
    assert.deepEqual(await t.store.listLimits(1000), []);
    assert.deepEqual((await t.app.inject({ url: '/v1/limits' })).json(), { limits: [] });
  });
});
