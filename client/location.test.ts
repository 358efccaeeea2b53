/**
 * An error answer's `Location` (a workflow start that waited and did not see
 * its condition met names the instance it started) is a relative reference,
 * which the server gives relative to the request's URL
 * (server/location.ts): the ApiError's `location` is it resolved against the
 * URL the client sent the request to, as fetch resolves a redirect's, so it
 * is the instance's URL under the client's path prefix too.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createClient } from './index.js';

const ID = '01M96C1F4QYZF8655WTP27BYWR';

/** A client of `url` whose every request is answered 408 ATS_ERR_WAIT_TIMEOUT with `location`. */
const timingOut = (url: string, location: string) => createClient({
  url, retries: 0,
  fetch: async () => new Response(JSON.stringify({ code: 'ATS_ERR_WAIT_TIMEOUT', message: `Workflow instance ${ID} was started but did not reach its end` }), {
    status: 408, headers: { 'content-type': 'application/json', location },
  }),
});

test('a start that waited in vain: the error\'s location is the instance\'s URL, under the client\'s path prefix too', async () => {
  for (const base of ['http://ats.invalid', 'http://ats.invalid/scheduler', 'https://ats.invalid:8443/a/b/']) {
    const err = await timingOut(base, `workflows/${ID}`).startWorkflow({ name: 'order.fulfil' }, { wait: { until: 'done', timeoutMs: 50 } }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ApiError && err.code === 'ATS_ERR_WAIT_TIMEOUT', String(err));
    assert.equal(err.location, `${base.replace(/\/$/, '')}/v1/workflows/${ID}`, base);
    assert.equal(err.location.split('/').pop(), ID);
  }
});
