/**
 * `ats submit --count N --idempotency-key K` gives each job the key `K-i`
 * (i from 0 to N-1): a K whose longest such key is over the API's 255
 * characters is a usage error (exit 2) before any request goes, instead of a
 * run whose every item the server refuses 400. Against a small fake server
 * that counts what it is sent and takes every job of a batch as done (a
 * batch with a key over 255 characters it refuses 400, as the API does). So
 * is one job's key over 255 characters, without `--count`. So is a key the
 * API's pattern refuses (printable ASCII, no space at either end), which the
 * fake server, as the API, refuses 400. So is a key starting with the
 * server's own prefix (`ats:`), which the API refuses 400 on a submit and on
 * each batch item (server/submit-spec.ts), as the fake server does.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, before, test } from 'node:test';
import { IDEMPOTENCY_KEY_PATTERN, SubmitHeaders } from '../../server/schemas.js';
import { capturing } from '../../tests/helpers/capture-output.js';
import { MAX_IDEMPOTENCY_KEY_CHARS } from './args.js';
import { submitCommand } from './submit.js';
import { closeLocal, listenLocal } from '../../tests/helpers/local-server.js';

const seen = { requests: 0, keys: [] as string[] };
const keyPattern = new RegExp(IDEMPOTENCY_KEY_PATTERN);
let url = '';
const server = createServer((req, res) => {
  seen.requests++;
  const json = (r: ServerResponse, status: number, body: unknown) => r.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  let text = '';
  req.on('data', (d) => (text += d));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/v1/jobs/batch') {
      const { jobs } = JSON.parse(text) as { jobs: Array<{ idempotencyKey: string }> };
      seen.keys.push(...jobs.map((j) => j.idempotencyKey));
      // As the API's schema refuses it: the whole request.
      const long = jobs.findIndex((j) => j.idempotencyKey.length > 255 || !keyPattern.test(j.idempotencyKey));
      if (long >= 0) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: `body/jobs/${long}/idempotencyKey must NOT have more than 255 characters` });
      // As the API refuses it, item by item.
      if (jobs.some((j) => j.idempotencyKey.startsWith('ats:'))) {
        return json(res, 200, { results: jobs.map((j, i) => j.idempotencyKey.startsWith('ats:')
          ? { status: 400, code: 'ATS_ERR_VALIDATION', message: `body/jobs/${i}/idempotencyKey must not start with 'ats:'` }
          : { status: 201, id: `01J${String(i).padStart(23, '0')}`, state: 'done' }) });
      }
      return json(res, 200, { results: jobs.map((_, i) => ({ status: 201, id: `01J${String(seen.keys.length + i).padStart(23, '0')}`, state: 'done' })) });
    }
    if (req.method === 'POST' && req.url === '/v1/jobs') {
      const key = String(req.headers['idempotency-key']);
      seen.keys.push(key);
      if (key.length > 255) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'headers/idempotency-key must NOT have more than 255 characters' });
      if (!keyPattern.test(key)) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'headers/idempotency-key must match pattern' });
      if (key.startsWith('ats:')) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'headers/idempotency-key must not start with \'ats:\'' });
      return json(res, 201, {
        id: '01J00000000000000000000001', type: 'demo.echo', queue: 'default', state: 'pending', attempt: 0, maxAttempts: 3, payload: null, result: null,
        lastError: null, runAt: '2030-01-01T00:00:00.000Z', createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:00.000Z',
      });
    }
    json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
  });
});

before(async () => {
  url = await listenLocal(server);
});
after(() => closeLocal(server));

const submit = (key: string, count: number) => {
  seen.requests = 0;
  seen.keys = [];
  return capturing('jobs:', () => submitCommand(['demo.echo', '--count', String(count), '--idempotency-key', key], { ATS_URL: url }));
};

test('the longest key the CLI allows is the API\'s', () => {
  assert.equal(SubmitHeaders.properties['idempotency-key'].maxLength, MAX_IDEMPOTENCY_KEY_CHARS);
});

test('--count 1000 with a key whose K-999 is over 255 characters: exit 2 with the usage, saying how long K may be, nothing sent', async () => {
  const r = await submit('k'.repeat(252), 1000);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--idempotency-key: with --count 1000 each job's key is K-0 to K-999, up to 256 characters; the API takes at most 255: give a key of at most 251 characters/);
  assert.match(r.stderr, /usage: ats submit/);
  assert.equal(seen.requests, 0, 'nothing sent');
});

test('the longest key that fits: sent, every job its K-i', async () => {
  const key = 'k'.repeat(251);
  const r = await submit(key, 1000);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(seen.keys.length, 1000);
  assert.equal(seen.keys[999], `${key}-999`);
  assert.equal(seen.keys[999]!.length, 255);
});

test('one job: K-0 may be 255 characters (K of 253)', async () => {
  assert.equal((await submit('k'.repeat(253), 1)).code, 0);
  assert.equal((await submit('k'.repeat(254), 1)).code, 2);
  assert.equal(seen.requests, 0);
});

test('one job without --count: a key over 255 characters is exit 2 with the usage, nothing sent; one of 255 is sent', async () => {
  const one = (key: string) => {
    seen.requests = 0;
    seen.keys = [];
    return capturing('01J00000000000000000000001', () => submitCommand(['demo.echo', '--idempotency-key', key], { ATS_URL: url }));
  };
  const long = await one('k'.repeat(256));
  assert.equal(long.code, 2, long.stderr);
  assert.match(long.stderr, /--idempotency-key: the key is 256 characters; the API takes at most 255/);
  assert.match(long.stderr, /usage: ats submit/);
  assert.equal(seen.requests, 0, 'nothing sent');
  const longest = await one('k'.repeat(255));
  assert.equal(longest.code, 0, longest.stderr);
  assert.deepEqual(seen.keys, ['k'.repeat(255)]);
});

test('one job without --count: a key the API\'s pattern refuses is exit 2 with the usage saying what in it, nothing sent', async () => {
  for (const [key, what] of [
    [' k', 'starts with a space'],
    ['k ', 'ends with a space'],
    ['cl\u00e9', 'has "\u00e9" \\(U\\+00E9\\) at character 3'],
    ['a\tb', 'has "\\\\t" \\(U\\+0009\\) at character 2'],
  ] as const) {
    seen.requests = 0;
    const r = await capturing('01J00000000000000000000001', () => submitCommand(['demo.echo', '--idempotency-key', key], { ATS_URL: url }));
    assert.equal(r.code, 2, `${JSON.stringify(key)}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`--idempotency-key: the key ${what}; the API takes printable ASCII, without a space at either end`));
    assert.match(r.stderr, /usage: ats submit/);
    assert.equal(seen.requests, 0, `${JSON.stringify(key)}: nothing sent`);
  }
});

test('--count: a K whose K-i the API\'s pattern refuses is exit 2, nothing sent; a K ending in a space makes keys it takes', async () => {
  const bad = await submit(' k', 3);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--idempotency-key: with --count 3 each job's key K-i starts with a space; the API takes printable ASCII/);
  assert.equal(seen.requests, 0, 'nothing sent');
  const trailing = await submit('k ', 3);
  assert.equal(trailing.code, 0, trailing.stderr);
  assert.deepEqual(seen.keys, ['k -0', 'k -1', 'k -2']);
});

test('a key starting with the server\'s own ats: is exit 2 with the usage, nothing sent, with and without --count', async () => {
  seen.requests = 0;
  const one = await capturing('01J00000000000000000000001', () => submitCommand(['demo.echo', '--idempotency-key', 'ats:schedule:nightly:1:2'], { ATS_URL: url }));
  assert.equal(one.code, 2, one.stderr);
  assert.match(one.stderr, /--idempotency-key: the key starts with 'ats:', the prefix of the server's own keys; the API refuses it/);
  assert.match(one.stderr, /usage: ats submit/);
  assert.equal(seen.requests, 0, 'nothing sent');
  const many = await submit('ats:mine', 3);
  assert.equal(many.code, 2, many.stderr);
  assert.match(many.stderr, /--idempotency-key: with --count 3 each job's key K-i starts with 'ats:', the prefix of the server's own keys; the API refuses it/);
  assert.match(many.stderr, /usage: ats submit/);
  assert.equal(seen.requests, 0, 'nothing sent');
});

test('keys that only look like the server\'s own (other case, ats: not at the start) are sent, with and without --count', async () => {
  for (const key of ['ATS:1', 'Ats:1', 'x-ats:1', 'ats', 'ats-1']) {
    seen.requests = 0;
    seen.keys = [];
    const r = await capturing('01J00000000000000000000001', () => submitCommand(['demo.echo', '--idempotency-key', key], { ATS_URL: url }));
    assert.equal(r.code, 0, `${key}: ${r.stderr}`);
    assert.deepEqual(seen.keys, [key]);
    const many = await submit(key, 2);
    assert.equal(many.code, 0, `${key}: ${many.stderr}`);
    assert.deepEqual(seen.keys, [`${key}-0`, `${key}-1`]);
  }
});
