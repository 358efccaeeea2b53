/**
 * The request generator of the hostile fuzz: what it promises the fuzz about
 * the requests it makes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzRequestArb, type FuzzKey, type FuzzWorld } from './fuzz-requests.js';

const WAIT = '/v1/workflows/{id}/wait';
const doc = {
  paths: {
    [WAIT]: {
      get: {
        parameters: [
          { in: 'path', name: 'id', required: true, schema: { type: 'string' } },
          { in: 'query', name: 'timeoutMs', schema: { type: 'integer', minimum: 0, maximum: 300_000 } },
          { in: 'query', name: 'until', schema: { type: 'string', enum: ['done', 'settled'] } },
        ],
      },
    },
  },
};
const key: FuzzKey = { label: 'acme-all', tenant: 'acme', scopes: ['read'], working: true, header: 'Bearer ats_x' };
const none = { acme: [], globex: [] };
const world: FuzzWorld = {
  port: 1, keys: [key], jobs: none, keyIds: none, schedules: none, limits: none,
  workflows: { acme: ['01M8X9K9J2BAMJDMDN872K60SC'], globex: [] }, sampleKey: 'ats_x',
};

test('a wait names its timeoutMs in the query of its request line, whatever shape its target takes', () => {
  const requests = fc.sample(fuzzRequestArb(doc, world), { numRuns: 20_000, seed: 7 }).filter((r) => r.op === `GET ${WAIT}`);
  const shaped = requests.filter((r) => !/^\/v1\/workflows\/[^/?#\s]+\/wait\?/.test(r.target));
  assert.ok(shaped.length > 50, `too few shaped targets to check: ${shaped.length}`);
  for (const r of requests) {
    if (!r.target.includes('/wait')) continue; // '*', '/', '': no route
    const line = r.wire.toString('latin1').split('\r\n')[0]!;
    const query = /\?([^#\s]*)/.exec(line)?.[1] ?? '';
    assert.match(query, /(^|&)timeoutMs/, `no timeoutMs in the request line: ${JSON.stringify(line.slice(0, 200))}`);
  }
});
