/**
 * A body with a number JSON cannot carry (NaN, ±Infinity) is refused by the
 * client before anything is sent: JSON.stringify would write null, and the
 * server would store null where the caller gave a number.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bodyText, firstNonFinite } from './http.js';
import { ApiError, createClient, UnreachableError } from './index.js';

/** A fetch that answers every request 201 with a job, keeping the bodies sent. */
function answering() {
  const bodies: string[] = [];
  const fetch = async (_input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    bodies.push(String(init?.body));
    return new Response('{"id":"01J00000000000000000000001","state":"pending"}', { status: 201, headers: { 'content-type': 'application/json' } });
  };
  return { bodies, fetch };
}

const refusedNumber = (text: RegExp) => (e: unknown) =>
  e instanceof ApiError && !(e instanceof UnreachableError) && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && text.test(e.message);

describe('a request body with a number JSON cannot carry', () => {
  test('a payload holding Infinity, -Infinity or NaN: refused, its place named, nothing sent', async () => {
    for (const [value, shown] of [[Infinity, 'Infinity'], [-Infinity, '-Infinity'], [Number.NaN, 'NaN']] as const) {
      const { bodies, fetch } = answering();
      const ats = createClient({ url: 'http://ats.invalid', fetch });
      await assert.rejects(ats.submit({ type: 'demo.echo', payload: { order: { amount: value } } }), refusedNumber(new RegExp(`at payload\\.order\\.amount, ${shown},`)));
      assert.deepEqual(bodies, []);
    }
  });

  test('a batch with one such item: refused whole, nothing sent', async () => {
    const { bodies, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const jobs = [{ type: 'demo.echo', payload: 1 }, { type: 'demo.echo', payload: [1, Infinity] }];
    await assert.rejects(ats.submitMany(jobs), refusedNumber(/^the request body holds, at jobs\[1\]\.payload\[1\], Infinity,/));
    assert.deepEqual(bodies, []);
  });

  test('submitMany of more jobs than one request takes: the item is named by its place in the call, and no request is sent, the first ones neither', async () => {
    const { bodies, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const jobs = Array.from({ length: 25 }, (_, i) => ({ type: 'demo.echo', payload: { n: i === 23 ? Number.NaN : i } }));
    await assert.rejects(ats.submitMany(jobs, { batchSize: 10 }), refusedNumber(/^the request body holds, at jobs\[23\]\.payload\.n, NaN,/));
    assert.deepEqual(bodies, [], 'not the first two requests either');
  });

  test('firstNonFinite walks as JSON.stringify does: toJSON, own keys, arrays, names the place in JavaScript\'s notation', () => {
    assert.deepEqual(firstNonFinite({ a: { 'b c': [0, { d: -Infinity }] } }), { at: 'a["b c"][1].d', value: -Infinity });
    assert.deepEqual(firstNonFinite({ hidden: { toJSON: () => ({ x: Number.NaN }) } }), { at: 'hidden.x', value: Number.NaN });
    assert.equal(firstNonFinite({ shown: { toJSON: () => 1 }, x: Object.create({ inherited: Infinity }) }), null);
    const cycle: Record<string, unknown> = { n: 1 };
    cycle.self = cycle;
    assert.equal(firstNonFinite(cycle), null, 'a cycle is passed over (JSON.stringify refuses it)');
  });

  test('a sparse array (its holes JSON.stringify writes as null) is walked, not a TypeError: submitMany sends it', async () => {
    assert.deepEqual(firstNonFinite({ list: [, 1, Number.NaN] }), { at: 'list[2]', value: Number.NaN });
    assert.equal(firstNonFinite({ list: new Array(3) }), null);
    const { bodies, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    await ats.submitMany([{ type: 'demo.echo', payload: { list: new Array(2) } }]).catch(() => undefined);
    assert.equal(bodies.length, 1, 'the job was sent');
    assert.deepEqual(JSON.parse(bodies[0]!).jobs[0].payload, { list: [null, null] });
  });

  test('finite numbers, and what toJSON gives, go as JSON.stringify writes them', async () => {
    const { bodies, fetch } = answering();
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const payload = { n: 1.5e308, small: -0, at: new Date(0), hidden: { toJSON: () => 'shown' } };
    await ats.submit({ type: 'demo.echo', payload });
    assert.equal(bodies.length, 1);
    assert.deepEqual(JSON.parse(bodies[0]!).payload, JSON.parse(JSON.stringify(payload)));
  });

  test('bodyText: a top-level non-finite number is named as the body itself', () => {
    assert.throws(() => bodyText(Infinity), refusedNumber(/^the request body is Infinity,/));
    assert.equal(bodyText({ a: [1, 'x', null] }), '{"a":[1,"x",null]}');
  });
});
