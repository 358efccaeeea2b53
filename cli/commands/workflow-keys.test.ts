/**
 * `ats workflow start` and `ats workflow signal` with `--idempotency-key K`:
 * a K over the API's 255 characters is a usage error (exit 2 with the usage)
 * before any request goes, as `ats submit` refuses it, instead of a request
 * the server refuses 400. A key of 255 characters is sent. Against a small
 * fake server that counts what it is sent and refuses a key over 255
 * characters 400, as the API's schema does. So is a key the API's pattern
 * refuses (printable ASCII, no space at either end). A start's key starting
 * with the server's own prefix (`ats:`), which the API refuses 400 on a start
 * (server/routes/workflows.ts), is refused up front too; a signal's is sent,
 * as the API takes it there.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, before, test } from 'node:test';
import { IDEMPOTENCY_KEY_PATTERN, SignalHeaders, StartWorkflowBody } from '../../server/schemas.js';
import { capturing } from '../../tests/helpers/capture-output.js';
import { MAX_IDEMPOTENCY_KEY_CHARS } from './args.js';
import { workflowCommand, workflowSignalSpec, workflowStartSpec } from './workflows.js';
import { closeLocal, listenLocal } from '../../tests/helpers/local-server.js';

const ID = '01J00000000000000000000001';
const seen = { requests: 0, keys: [] as string[] };
let url = '';

const instance = {
  id: ID, name: 'cli.review', definitionVersion: 1, status: 'active', value: 'review', context: {}, input: null, output: null, error: null,
  children: [], timers: [], accepts: ['APPROVE'], version: 1, idempotencyKey: null, createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:00.000Z',
};

const server = createServer((req, res) => {
  seen.requests++;
  const json = (r: ServerResponse, status: number, body: unknown) => r.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  let text = '';
  req.on('data', (d) => (text += d));
  req.on('end', () => {
    const key = req.method === 'POST' && req.url?.startsWith('/v1/workflows/') ? String(req.headers['idempotency-key'])
      : req.method === 'POST' && req.url?.startsWith('/v1/workflows') ? (JSON.parse(text) as { idempotencyKey?: string }).idempotencyKey ?? ''
        : undefined;
    if (key === undefined) return json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
    seen.keys.push(key);
    if (key.length > 255) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'idempotency-key must NOT have more than 255 characters' });
    if (!new RegExp(IDEMPOTENCY_KEY_PATTERN).test(key)) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'idempotency-key must match pattern' });
    // As the API: a start's key may not start with ats:, a signal's may.
    if (req.url === '/v1/workflows' && key.startsWith('ats:')) return json(res, 400, { code: 'ATS_ERR_VALIDATION', message: 'body/idempotencyKey must not start with \'ats:\'' });
    return json(res, req.url!.startsWith('/v1/workflows/') ? 200 : 201, instance);
  });
});

before(async () => {
  url = await listenLocal(server);
});
after(() => closeLocal(server));

const run = (args: string[]) => {
  seen.requests = 0;
  seen.keys = [];
  return capturing(ID, () => workflowCommand(args, { ATS_URL: url }));
};

test('the longest key the CLI allows is the API\'s, for a start and a signal', () => {
  assert.equal(StartWorkflowBody.properties.idempotencyKey.maxLength, MAX_IDEMPOTENCY_KEY_CHARS);
  assert.equal(SignalHeaders.properties['idempotency-key'].maxLength, MAX_IDEMPOTENCY_KEY_CHARS);
});

for (const [name, args] of [
  ['start', ['start', 'cli.review']],
  ['signal', ['signal', ID, 'APPROVE']],
] as const) {
  test(`ats workflow ${name}: a key over 255 characters is exit 2 with the usage, nothing sent; one of 255 is sent`, async () => {
    const long = await run([...args, '--idempotency-key', 'k'.repeat(256)]);
    assert.equal(long.code, 2, long.stderr);
    assert.match(long.stderr, /--idempotency-key: the key is 256 characters; the API takes at most 255/);
    assert.match(long.stderr, new RegExp(`usage: ats workflow ${name}`));
    assert.equal(seen.requests, 0, 'nothing sent');
    const longest = await run([...args, '--idempotency-key', 'k'.repeat(255)]);
    assert.equal(longest.code, 0, longest.stderr);
    assert.deepEqual(seen.keys, ['k'.repeat(255)]);
  });
  test(`ats workflow ${name}: a key the API's pattern refuses is exit 2 with the usage, nothing sent`, async () => {
    for (const [key, what] of [[' k', 'starts with a space'], ['k ', 'ends with a space'], ['cl\u00e9', 'has "\u00e9" \\(U\\+00E9\\) at character 3']] as const) {
      const r = await run([...args, '--idempotency-key', key]);
      assert.equal(r.code, 2, `${JSON.stringify(key)}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`--idempotency-key: the key ${what}; the API takes printable ASCII, without a space at either end`));
      assert.match(r.stderr, new RegExp(`usage: ats workflow ${name}`));
      assert.equal(seen.requests, 0, `${JSON.stringify(key)}: nothing sent`);
    }
  });
}

test('ats workflow start: a key starting with the server\'s own ats: is exit 2 with the usage, nothing sent; ATS:1 is sent', async () => {
  const r = await run(['start', 'cli.review', '--idempotency-key', 'ats:mine']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--idempotency-key: the key starts with 'ats:', the prefix of the server's own keys; the API refuses it/);
  assert.match(r.stderr, /usage: ats workflow start/);
  assert.equal(seen.requests, 0, 'nothing sent');
  const other = await run(['start', 'cli.review', '--idempotency-key', 'ATS:1']);
  assert.equal(other.code, 0, other.stderr);
  assert.deepEqual(seen.keys, ['ATS:1']);
});

test('ats workflow signal: a key starting with ats: is sent, as the API takes it for a signal', async () => {
  const r = await run(['signal', ID, 'APPROVE', '--idempotency-key', 'ats:mine']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.keys, ['ats:mine']);
});

test('the help of both says the limit and the characters, under --idempotency-key', () => {
  for (const spec of [workflowStartSpec, workflowSignalSpec]) {
    const text = (spec.details ?? []).join('\n');
    const option = text.slice(text.indexOf('--idempotency-key K'), text.indexOf('--json'));
    assert.match(option, new RegExp(`printable ASCII,\\s+no space at either end, at most ${MAX_IDEMPOTENCY_KEY_CHARS} characters`), spec.usage);
  }
  const start = (workflowStartSpec.details ?? []).join('\n');
  assert.match(start, /not starting with ats:\s+\(the server's own; a signal's key may\)/);
  assert.doesNotMatch((workflowSignalSpec.details ?? []).join('\n'), /not starting with/);
});
