/**
 * A call aborted by its signal rejects with the signal's reason (docs/client.md),
 * also when the abort comes while the client reads back what a try of unknown
 * outcome did: a redrive's read of the job, a schedule create's read of the schedule.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient } from './index.js';

const JOB = '01JD3W7Z9Q4X2M8K5N6P0R1S2T';
const reset = () => new TypeError('fetch failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) });

function clientAbortingOnRead(onPost: (n: number) => Response | Promise<Response>) {
  const ac = new AbortController();
  const reason = new Error('the user gave up');
  let posts = 0;
  const fetch = async (_input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    if (init?.method === 'GET') {
      // The user aborts while the client reads back: fetch rejects with the signal's reason.
      ac.abort(reason);
      throw reason;
    }
    return onPost(++posts);
  };
  return { ats: createClient({ url: 'http://ats.test', fetch, retryDelayMs: { min: 1, max: 1 } }), signal: ac.signal, reason };
}

test('a redrive whose outcome is unknown, aborted while the job is read: rejects with the signal\'s reason', async () => {
  const { ats, signal, reason } = clientAbortingOnRead(() => {
    throw reset();
  });
  await assert.rejects(ats.redrive(JOB, { signal }), (err) => err === reason);
});

test('a schedule create answered 409 after a lost answer, aborted while the schedule is read: rejects with the signal\'s reason', async () => {
  const { ats, signal, reason } = clientAbortingOnRead((n) => {
    if (n === 1) throw reset();
    return new Response(JSON.stringify({ code: 'ATS_ERR_SCHEDULE_EXISTS', message: 'A schedule named nightly exists' }), { status: 409, headers: { 'content-type': 'application/json' } });
  });
  await assert.rejects(ats.createSchedule({ name: 'nightly', cron: '0 3 * * *', type: 'demo.echo' }, { signal }), (err) => err === reason);
});
