/**
 * A proxy's 502 or 504 is the proxy's (the server sends neither), whatever its
 * body: an HTML page, or JSON with a code of the proxy's own, as a fastify
 * proxy (@fastify/http-proxy) answers `{statusCode: 504, code:
 * 'FST_REPLY_FROM_GATEWAY_TIMEOUT', ...}`. Either way the request may have
 * reached the server: it is tried again (a submit with its key), and for a
 * change its outcome is unknown (a redrive reads the job back, never sends it twice).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createClient } from './index.js';

const JOB = '01JD3W7Z9Q4X2M8K5N6P0R1S2T';
const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
/** What a fastify proxy answers when the upstream does not answer in time, or cannot be reached. */
const gatewayTimeout = () => json(504, { statusCode: 504, code: 'FST_REPLY_FROM_GATEWAY_TIMEOUT', error: 'Gateway Timeout', message: 'Gateway Timeout' });
const badGateway = () => json(502, { statusCode: 502, code: 'FST_REPLY_FROM_BAD_GATEWAY', error: 'Bad Gateway', message: 'Bad Gateway' });
const job = (state: string) => ({
  id: JOB, type: 'demo.echo', queue: 'default', state, attempt: 0, maxAttempts: 3, payload: null, result: null, lastError: null,
  runAt: '2030-01-01T00:00:00.000Z', createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:00.000Z',
});

/** A fetch that answers each request with the next of `answers`, and records the requests. */
function scripted(answers: Array<() => Response>) {
  const sent: Array<{ method: string; path: string; key: string | null }> = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    sent.push({ method: init?.method ?? 'GET', path: new URL(String(input)).pathname, key: headers.get('idempotency-key') });
    const next = answers.shift();
    if (!next) throw new Error('no more answers');
    return next();
  };
  return { sent, ats: createClient({ url: 'http://ats.test', fetch, retryDelayMs: { min: 1, max: 2 } }) };
}

for (const [name, answer] of [['504 FST_REPLY_FROM_GATEWAY_TIMEOUT', gatewayTimeout], ['502 FST_REPLY_FROM_BAD_GATEWAY', badGateway]] as const) {
  test(`a submit answered ${name} by a proxy is sent again with the same key`, async () => {
    const { sent, ats } = scripted([answer, () => json(200, job('pending'))]);
    const retried: string[] = [];
    const got = await ats.submit({ type: 'demo.echo', payload: null }, { onRetry: (e) => retried.push(`${e.status} ${e.code}`) });
    assert.equal(got.id, JOB);
    assert.deepEqual(retried, [name]);
    assert.equal(sent.length, 2);
    assert.ok(sent[0]!.key);
    assert.equal(sent[1]!.key, sent[0]!.key, 'one key for both tries');
  });

  test(`a redrive answered ${name} by a proxy may have gone through: the job is read back, the redrive not sent again`, async () => {
    const { sent, ats } = scripted([answer, () => json(200, { ...job('pending'), events: [] })]);
    const got = await ats.redrive(JOB);
    assert.equal(got.state, 'pending');
    assert.deepEqual(sent.map((s) => `${s.method} ${s.path}`), [`POST /v1/jobs/${JOB}/redrive`, `GET /v1/jobs/${JOB}`]);
  });
}

test('a 500 of the server is final, not retried, whatever the code', async () => {
  const { sent, ats } = scripted([() => json(500, { code: 'ATS_ERR_INTERNAL', message: 'Internal error' })]);
  await assert.rejects(ats.submit({ type: 'demo.echo', payload: null }), (e: unknown) => e instanceof ApiError && e.status === 500 && e.code === 'ATS_ERR_INTERNAL');
  assert.equal(sent.length, 1);
});
