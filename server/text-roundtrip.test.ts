/**
 * Free text comes back as it was sent, on either store: lone surrogates (as
 * JSON escapes), NUL, U+FFFF, astral characters, a right-to-left override and
 * the like, as values and as object keys, in a job's payload and cancel
 * reason, a schedule's payload, a workflow instance's input, a signal and a
 * workflow cancel's reason. Every such text is kept in JSON (the columns that
 * are not JSON hold names the schemas limit to ASCII), and JSON.stringify
 * writes a lone surrogate as an escape: nothing becomes U+FFFD, nothing is a
 * 500 on MariaDB's utf8mb4.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assign, setup } from 'xstate';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

const ODD = ['\ud800', '\udfff', '\udfff\ud800', 'a\u0000b', '\uffff', '😀', '\u202eevil', 'e\u0301', '\ufeff'];
const text = ODD.join('|');
const odd: Record<string, unknown> = Object.fromEntries(ODD.map((s, i) => [s, [i, s]]));

/** Keeps the last event it took in its context. */
const keeper = setup({ types: { context: {} as { last: unknown; input: unknown } } }).createMachine({
  id: 'keeper', context: ({ input }) => ({ last: null, input: input ?? null }), initial: 'on',
  states: { on: { on: { KEEP: { actions: assign({ last: ({ event }) => event }) } } } },
});
const registry = () => registerDemoHandlers(new HandlerRegistry()).workflow('keeper', keeper);

function roundTrips(start: () => Promise<TestApp>) {
  let t: TestApp;
  before(async () => {
    t = await start();
  });
  after(async () => {
    await t?.close();
  });
  const ok = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const r = await t.app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
    assert.ok(r.statusCode === 200 || r.statusCode === 201, `${method} ${url}: ${r.statusCode} ${r.body.slice(0, 300)}`);
    return r.json();
  };

  test('a job\'s payload and cancel reason', async () => {
    const job = await ok('POST', '/v1/jobs', { type: 'demo.echo', payload: { odd, text } });
    await ok('POST', `/v1/jobs/${job.id}/cancel`, { reason: text });
    const read = await ok('GET', `/v1/jobs/${job.id}`);
    assert.deepEqual(read.payload, { odd, text });
    assert.equal(read.cancelReason, text);
    assert.deepEqual((await ok('GET', `/v1/jobs?limit=1`)).jobs[0].payload, { odd, text });
  });

  test('a payload as JSON.parse reads its text: the last of a key given twice, -0 as 0, a number between doubles as the nearest', async () => {
    const r = await t.app.inject({
      method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' },
      payload: '{"type":"demo.echo","payload":{"a":1,"a":2,"z":-0,"u":1e-400,"e":1.5e300,"s":"\\ud800\\u0000\\u2028"}}',
    });
    assert.equal(r.statusCode, 201, r.body);
    const stored = (await ok('GET', `/v1/jobs/${r.json().id}`)).payload as Record<string, unknown>;
    assert.deepEqual(stored, { a: 2, z: 0, u: 0, e: 1.5e300, s: '\ud800\u0000\u2028' });
    assert.ok(!Object.is(stored.z, -0), 'stored as 0, as JSON.stringify writes -0');
  });

  test('a schedule\'s payload', async () => {
    await ok('POST', '/v1/schedules', { name: 'odd', cron: '0 3 * * *', type: 'demo.echo', payload: odd });
    assert.deepEqual((await ok('GET', '/v1/schedules/odd')).job.payload, odd);
  });

  test('a workflow instance\'s input, a signal, and a cancel\'s reason', async () => {
    const wf = await ok('POST', '/v1/workflows', { name: 'keeper', input: odd });
    await ok('POST', `/v1/workflows/${wf.id}/events`, { type: 'KEEP', odd, text });
    await ok('POST', `/v1/workflows/${wf.id}/cancel`, { reason: text });
    const read = await ok('GET', `/v1/workflows/${wf.id}`);
    assert.deepEqual(read.context, { input: odd, last: { type: 'KEEP', odd, text } });
    const events = (await ok('GET', `/v1/workflows/${wf.id}/events`)).events as Array<{ data: { input?: unknown; event?: unknown; reason?: unknown } }>;
    assert.deepEqual(events.map((e) => e.data.input ?? e.data.event ?? e.data.reason), [odd, { type: 'KEEP', odd, text }, text]);
    assert.deepEqual(await ok('GET', `/v1/workflows/${wf.id}/verify`), { ok: true, events: 3 });
  });
}

describe('free text round-trips on SQLite', () => roundTrips(() => startSqliteTestApp({}, { workflows: registry() })));

describe('free text round-trips on MariaDB', { skip: mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)' }, () =>
  roundTrips(() => startTestApp({}, { workflows: registry() })));
