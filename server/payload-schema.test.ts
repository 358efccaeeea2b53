/**
 * A job type whose handler declares a payload schema (defineHandler): the API
 * refuses a payload that does not fit with 400 ATS_ERR_INVALID_PAYLOAD, alone
 * or as a batch item, naming the path, in bounded text, writing nothing.
 * Types without a schema take any payload as before.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { defineHandler, HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import type { BatchResult } from './schemas.js';
import { randomQueue, startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';

describe('payload schemas at submit', () => {
  let t: TestApp;
  const registry = registerDemoHandlers(new HandlerRegistry()).register(defineHandler('email.send', {
    payload: Type.Object({ to: Type.String({ format: 'email' }), tags: Type.Optional(Type.Array(Type.String(), { maxItems: 3 })) }, { additionalProperties: false }),
    run: async (p) => ({ to: p.to }),
  }));
  before(async () => {
    t = await startSqliteTestApp({ knownTypes: () => registry.types(), checkPayload: (type, payload) => registry.checkPayload(type, payload) });
  });
  after(async () => {
    await t?.close();
  });
  const rows = async (queue: string) => (await t.store.recountJobs()).filter((c) => c.queue === queue).reduce((n, c) => n + c.n, 0);
  const submit = (body: unknown) => t.app.inject({ method: 'POST', url: '/v1/jobs', payload: body as object });

  test('a payload that does not fit is a 400 naming the path, and nothing is written', async () => {
    const queue = randomQueue();
    const cases: Array<[unknown, RegExp]> = [
      [{ to: 'nobody' }, /^body\/payload\/to must match format "email" \(the payload schema of email\.send\)$/],
      [{ to: 'a@example.com', tags: ['a', 'b', 'c', 'd'] }, /^body\/payload\/tags must NOT have more than 3 items/],
      [{ to: 'a@example.com', tags: [1] }, /^body\/payload\/tags\/0 must be string/],
      [{}, /^body\/payload must have required property 'to'/],
      [null, /^body\/payload must be object/],
      [{ to: 'a@example.com', cc: 'b@example.com' }, /^body\/payload has an unknown field 'cc'/],
    ];
    for (const [payload, message] of cases) {
      const r = await submit({ type: 'email.send', queue, payload });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().code, 'ATS_ERR_INVALID_PAYLOAD');
      assert.match(r.json().message, message);
    }
    assert.equal(await rows(queue), 0);
    const ok = await submit({ type: 'email.send', queue, payload: { to: 'a@example.com' } });
    assert.equal(ok.statusCode, 201, ok.body);
    assert.equal(await rows(queue), 1);
  });

  test('the message stays short whatever the caller named', async () => {
    const long = 'x'.repeat(50_000);
    const r = await submit({ type: 'email.send', queue: randomQueue(), payload: { to: 'a@example.com', [long]: 1 } });
    assert.equal(r.json().code, 'ATS_ERR_INVALID_PAYLOAD');
    assert.ok(r.json().message.length < 500, `${r.json().message.length} characters`);
  });

  test('a type without a schema takes any payload', async () => {
    const r = await submit({ type: 'demo.echo', queue: randomQueue(), payload: { anything: [1, 'two'] } });
    assert.equal(r.statusCode, 201, r.body);
  });

  test('in a batch, each misfit is its own 400 and the other items go in', async () => {
    const queue = randomQueue();
    const r = await t.app.inject({
      method: 'POST', url: '/v1/jobs/batch', payload: {
        jobs: [
          { type: 'email.send', queue, payload: { to: 'a@example.com' } },
          { type: 'email.send', queue, payload: { to: 42 } },
          { type: 'demo.echo', queue, payload: { to: 42 } },
        ],
      },
    });
    assert.equal(r.statusCode, 200, r.body);
    const results = (r.json() as { results: BatchResult[] }).results;
    assert.deepEqual(results.map((x) => x.status), [201, 400, 201]);
    assert.equal(results[1]!.code, 'ATS_ERR_INVALID_PAYLOAD');
    assert.match(results[1]!.message!, /^body\/jobs\/1\/payload\/to must be string/);
    assert.equal(await rows(queue), 2);
  });
});
