/**
 * Malformed and hostile requests: each gets the expected 4xx and registry
 * code, never a 500, and nothing reaches the database (the jobs table stays
 * empty). This file's database never holds a job.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import type { ErrorCode } from '../engine/errors.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

const ok = { type: 'demo.echo', payload: { a: 1 } };
const json = (body: string): InjectOptions => ({
  method: 'POST', url: '/v1/jobs', payload: body, headers: { 'content-type': 'application/json' },
});
const post = (body: unknown, headers: Record<string, string> = {}): InjectOptions => ({
  method: 'POST', url: '/v1/jobs', payload: body as object, headers,
});
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
  { name: 'text/plain body', req: { ...post(JSON.stringify(ok)), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'form body', req: { ...post('type=demo.echo'), headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'no body', req: { method: 'POST', url: '/v1/jobs' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'body is an array', req: json('[]'), status: 400, code: 'ATS_ERR_VALIDATION', says: /must be object/ },
  { name: 'body is null', req: json('null'), status: 400, code: 'ATS_ERR_VALIDATION' },
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
  { name: 'runAt negative', req: post({ ...ok, runAt: -1 }), status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'runAt beyond year 9999', req: post({ ...ok, runAt: 1e16 }), status: 400, code: 'ATS_ERR_VALIDATION' },
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
  // ------------------------------------------------------------ batch envelope (a bad item is its own result: batch.test.ts)
  { name: 'batch: no body', req: { method: 'POST', url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'batch: body is an array of jobs', req: { ...json(JSON.stringify([ok])), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /must be object/ },
  { name: 'batch: jobs is a string', req: { ...post({ jobs: 'all' }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /jobs/ },
  { name: 'batch: no jobs', req: { ...post({ jobs: [] }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /jobs/ },
  { name: 'batch: 1,001 jobs', req: { ...post({ jobs: Array(1001).fill(ok) }), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /1000/ },
  { name: 'batch: __proto__ in one item', req: { ...json(`{"jobs":[${JSON.stringify(ok)},{"type":"demo.echo","payload":1,"__proto__":{"polluted":true}}]}`), url: '/v1/jobs/batch' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /forbidden key/ },
  { name: 'batch: text/plain body', req: { ...post(JSON.stringify({ jobs: [ok] })), url: '/v1/jobs/batch', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'batch: over the 16 MiB batch limit', req: { ...post({ jobs: [{ ...ok, payload: 'x'.repeat(16 * 1024 * 1024) }] }), url: '/v1/jobs/batch' }, status: 413, code: 'ATS_ERR_PAYLOAD_TOO_LARGE' },
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
  { name: 'list: state given twice', req: { url: '/v1/jobs?state=pending&state=done' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: unknown parameter', req: { url: '/v1/jobs?sort=asc' }, status: 400, code: 'ATS_ERR_VALIDATION', says: /sort/ },
  { name: 'list: __proto__ parameter', req: { url: '/v1/jobs?__proto__=x' }, status: 400, code: 'ATS_ERR_VALIDATION' },
  { name: 'list: forged cursor', req: { url: `/v1/jobs?cursor=${Buffer.from('01ARZ3NDEKTSV4RRFFQ69G5FA').toString('base64url')}` }, status: 400, code: 'ATS_ERR_BAD_CURSOR' },
  { name: 'unknown route', req: { url: '/v2/jobs' }, status: 404, code: 'ATS_ERR_ROUTE_NOT_FOUND' },
  { name: 'wrong method', req: { method: 'PUT', url: `/v1/jobs/${JOB_ID}` }, status: 404, code: 'ATS_ERR_ROUTE_NOT_FOUND' },
  { name: 'delete: unknown job', req: { method: 'DELETE', url: `/v1/jobs/${JOB_ID}` }, status: 404, code: 'ATS_ERR_JOB_NOT_FOUND' },
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
  });
});
