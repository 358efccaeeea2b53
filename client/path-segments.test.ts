/**
 * A name or id that is `.` or `..` cannot be a path segment: fetch resolves
 * `/v1/limits/..` to `/v1/`, so the request would reach another route (or
 * another resource) and come back as its answer ("No route DELETE /v1/"). The
 * server refuses both as names (server/schemas.ts PATH_NAME_PATTERN); the
 * client refuses them before sending anything, as the 400 the server would
 * answer had the request reached it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError, createClient, UnreachableError } from './index.js';

/** A fetch that answers every request 404 as a route the server does not have, recording each. */
function recording() {
  const calls: string[] = [];
  const fetch = async (input: RequestInfo | URL): Promise<Response> => {
    calls.push(new URL(String(input)).pathname);
    return new Response('{"code":"ATS_ERR_ROUTE_NOT_FOUND","message":"No route"}', { status: 404, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetch };
}

const refusedSegment = (value: string) => (e: unknown) =>
  e instanceof ApiError && !(e instanceof UnreachableError) && e.status === 0 && e.code === 'ATS_ERR_VALIDATION' && e.message.includes(`'${value}'`);

describe('a name or id that is a dot segment', () => {
  for (const value of ['.', '..']) {
    test(`'${value}': every call naming it in its path is refused at once, nothing sent`, async () => {
      const { calls, fetch } = recording();
      const ats = createClient({ url: 'http://ats.invalid', fetch, retryDelayMs: { min: 1, max: 2 } });
      const calling: [string, () => Promise<unknown>][] = [
        ['getLimit', () => ats.getLimit(value)],
        ['putLimit', () => ats.putLimit(value, { concurrency: 1, rate: null })],
        ['deleteLimit', () => ats.deleteLimit(value)],
        ['getSchedule', () => ats.getSchedule(value)],
        ['updateSchedule', () => ats.updateSchedule(value, { paused: true })],
        ['deleteSchedule', () => ats.deleteSchedule(value)],
        ['get', () => ats.get(value)],
        ['cancel', () => ats.cancel(value)],
        ['getWorkflow', () => ats.getWorkflow(value)],
        ['revokeKey', () => ats.revokeKey(value)],
      ];
      for (const [name, call] of calling) await assert.rejects(call(), refusedSegment(value), name);
      assert.deepEqual(calls, []);
    });
  }

  test('a name with dots that is not a dot segment is sent as it is', async () => {
    const { calls, fetch } = recording();
    const ats = createClient({ url: 'http://ats.invalid', fetch, retryDelayMs: { min: 1, max: 2 } });
    await assert.rejects(ats.getLimit('...'), (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_ROUTE_NOT_FOUND');
    await assert.rejects(ats.getLimit('.a'), (e: unknown) => e instanceof ApiError && e.code === 'ATS_ERR_ROUTE_NOT_FOUND');
    assert.deepEqual(calls, ['/v1/limits/...', '/v1/limits/.a']);
  });
});
