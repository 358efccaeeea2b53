/**
 * A header value fetch cannot send (a character beyond U+00FF, or a control
 * character other than a tab: an Idempotency-Key or an API key pasted with a
 * zero-width space) is
 * refused by the client before anything is sent: an ApiError naming the
 * header, not retried, not "cannot reach the server".
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { ApiError, createClient, UnreachableError } from './index.js';

/** A fetch that answers every request 200 `{}`, counting them. */
function answering() {
  const calls: string[] = [];
  const fetch = async (input: RequestInfo | URL): Promise<Response> => {
    calls.push(String(input));
    return new Response('{"id":"01J00000000000000000000001","state":"pending"}', { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetch };
}

const refusedHeader = (header: RegExp) => (e: unknown) =>
  e instanceof ApiError && !(e instanceof UnreachableError) && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && header.test(e.message);

describe('a header value that cannot be sent', () => {
  test('an Idempotency-Key with a character beyond U+00FF: refused at once, named, never sent nor retried', async () => {
    for (const key of ['заказ-1', 'order-1\u200b', 'order\n1']) {
      const { calls, fetch } = answering();
      const retried: unknown[] = [];
      const ats = createClient({ url: 'http://ats.invalid', fetch, retryDelayMs: { min: 1, max: 2 } });
      await assert.rejects(ats.submit({ type: 'demo.echo', payload: null }, { idempotencyKey: key, onRetry: (e) => retried.push(e) }), refusedHeader(/Idempotency-Key/));
      await assert.rejects(ats.signalWorkflow('wf-1', { type: 'GO' }, { idempotencyKey: key }), refusedHeader(/Idempotency-Key/));
      assert.deepEqual(calls, []);
      assert.deepEqual(retried, []);
    }
  });

  test('an API key with a zero-width space: every call refused naming the Authorization header (apiKey), without the key in the message', async () => {
    const { calls, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch, apiKey: 'ats_secret\u200b' });
    const err = await ats.stats().catch((e: unknown) => e);
    assert.ok(refusedHeader(/Authorization/)(err), String(err));
    assert.match((err as Error).message, /apiKey/);
    assert.match((err as Error).message, /U\+200B/);
    assert.doesNotMatch((err as Error).message, /ats_secret/);
    assert.deepEqual(calls, []);
  });

  test('with the real fetch too: refused before a connection is tried', async () => {
    const ats = createClient({ url: 'http://127.0.0.1:9', retryDelayMs: { min: 1, max: 2 } });
    await assert.rejects(ats.submit({ type: 'demo.echo', payload: null }, { idempotencyKey: 'ключ' }), refusedHeader(/Idempotency-Key/));
  });

  test('with the real fetch, a control character it refuses to send (DEL, U+0001): named, not "cannot reach the server"', async () => {
    let connections = 0;
    const server = createServer(() => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [c, cp] of [['\u007f', 'U+007F'], ['\u0001', 'U+0001'], ['\u001b', 'U+001B']] as const) {
      const ats = createClient({ url, apiKey: `ats_secret${c}x`, retryDelayMs: { min: 1, max: 2 } });
      const err = await ats.stats().catch((e: unknown) => e);
      assert.ok(refusedHeader(/Authorization/)(err), `${cp}: ${String(err)}`);
      assert.match((err as Error).message, new RegExp(cp.replace('+', '\\+')));
      assert.doesNotMatch((err as Error).message, /ats_secret/);
      await assert.rejects(ats.submit({ type: 'demo.echo', payload: null }, { idempotencyKey: `order${c}1` }), refusedHeader(/Authorization|Idempotency-Key/));
    }
    assert.equal(connections, 0);
  });

  test('an API key read from a file, ending in a newline: sent without it (on the stream too); an Idempotency-Key is checked as fetch sends it, stripped', async () => {
    const { calls, fetch } = answering();
    const sent: string[] = [];
    const ats = createClient({
      url: 'http://ats.invalid', apiKey: 'ats_abc\n',
      fetch: async (input, init) => { sent.push(new Headers(init?.headers).get('authorization') ?? ''); return fetch(input); },
    });
    await ats.stats();
    await ats.submit({ type: 'demo.echo', payload: null }, { idempotencyKey: ' order-1\r\n' });
    assert.equal(calls.length, 2);
    assert.deepEqual(sent, ['Bearer ats_abc', 'Bearer ats_abc']);
  });

  test('what fetch takes goes through: Latin-1, a tab, spaces', async () => {
    const { calls, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch, apiKey: 'clé\tok' });
    await ats.submit({ type: 'demo.echo', payload: null }, { idempotencyKey: 'order 1 é' });
    assert.equal(calls.length, 1);
  });
});

describe('the server URL', () => {
  test('read from a file or pasted with spaces around it: requests go to the URL without them', async () => {
    // new URL() would drop them, fetch does not: `http://ats.invalid /v1/stats` is no URL, and the call would fail as unreachable.
    for (const url of ['http://ats.invalid \n', ' http://ats.invalid/ ', 'http://ats.invalid//\n']) {
      const { calls, fetch } = answering();
      const ats = createClient({ url, fetch });
      await ats.stats();
      assert.deepEqual(calls, ['http://ats.invalid/v1/stats'], JSON.stringify(url));
    }
  });
});
