/**
 * A success of a list or a delete that is not the API's (a URL that points at
 * another service, answering 200 with its own JSON): an ApiError with the
 * status and `HTTP_<status>`, naming what the answer lacks, never a list of
 * undefined nor a delete said done.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createClient } from './index.js';

const ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

/** A client whose every request is answered 200 with `body`. */
const answering = (body: string) => createClient({
  url: 'http://ats.invalid', retries: 0,
  fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } }),
});

const notAts = (what: RegExp) => (e: unknown) =>
  e instanceof ApiError && e.status === 200 && e.code === 'HTTP_200' && what.test(e.message) && /\(not an ats server\?\)/.test(e.message);

test('a list answered without its list, or with items that are not the API\'s, is an error naming what is missing', async () => {
  const lists = [
    ['jobs', (c: ReturnType<typeof createClient>) => c.listPage()],
    ['workflows', (c: ReturnType<typeof createClient>) => c.listWorkflows()],
    ['events', (c: ReturnType<typeof createClient>) => c.workflowEvents(ID)],
    ['events', (c: ReturnType<typeof createClient>) => c.workflowEvents(ID, { last: 5 })],
    ['schedules', (c: ReturnType<typeof createClient>) => c.listSchedules()],
    ['limits', (c: ReturnType<typeof createClient>) => c.listLimits()],
    ['workers', (c: ReturnType<typeof createClient>) => c.listWorkers()],
    ['keys', (c: ReturnType<typeof createClient>) => c.listKeys()],
    ['entries', (c: ReturnType<typeof createClient>) => c.listAudit()],
  ] as const;
  for (const [name, read] of lists) {
    for (const body of ['{}', '[]', 'null', `{"${name}":"x"}`, `{"${name}":{"0":1}}`]) {
      await assert.rejects(read(answering(body)), notAts(new RegExp(`answered without a list "${name}"`)), `${name}: ${body}`);
    }
    for (const body of [`{"${name}":[{}]}`, `{"${name}":[null]}`, `{"${name}":[[]]}`]) {
      await assert.rejects(read(answering(body)), notAts(new RegExp(`answered a "${name}" whose item 0 is without a string "\\w+"`)), `${name}: ${body}`);
    }
  }
  await assert.rejects(answering('{}').insights(), notAts(/GET \/v1\/insights answered without a string "mode"/));
  await assert.rejects(answering('{"mode":"off","types":"x"}').insights(), notAts(/answered without a list "types"/));
  await assert.rejects(answering('{"mode":"off","types":[{}]}').insights(), notAts(/answered a "types" whose item 0 is without a string "type"/));
});

test('a list of the API\'s shape is read as before, empty or not', async () => {
  assert.deepEqual(await answering('{"schedules":[]}').listSchedules(), []);
  assert.deepEqual((await answering('{"jobs":[{"id":"a","state":"pending"}],"nextCursor":null}').listPage()).jobs, [{ id: 'a', state: 'pending' }]);
});

test('a delete answered 200 with a body (the API answers 204 without one) is an error, not a delete said done', async () => {
  for (const body of ['{}', '[]', '{"deleted":true}']) {
    const c = answering(body);
    const deleted = (path: string) => notAts(new RegExp(`^DELETE ${path} answered 200, where the API answers 204 without a body`));
    await assert.rejects(c.deleteSchedule('s'), deleted('/v1/schedules/s'), body);
    await assert.rejects(c.deleteLimit('k'), deleted('/v1/limits/k'), body);
    await assert.rejects(c.delete(ID), deleted(`/v1/jobs/${ID}`), body);
    await assert.rejects(c.revokeKey(ID), deleted(`/v1/keys/${ID}`), body);
  }
  const c = createClient({ url: 'http://ats.invalid', retries: 0, fetch: async () => new Response(null, { status: 204 }) });
  await c.deleteSchedule('s');
  await c.deleteLimit('k');
});

test('paging that would not end (the same cursor again, a cursor that is no string, an events page that does not move on) is an error, not a loop for ever', async () => {
  /** A client answering `body` to each request, up to 10 (a loop that does not stop fails on the 11th). */
  const repeating = (body: string) => {
    let calls = 0;
    return createClient({
      url: 'http://ats.invalid', retries: 0,
      fetch: async () => {
        if (++calls > 10) throw new Error('asked for more than 10 pages');
        return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
      },
    });
  };
  const drain = async (c: ReturnType<typeof createClient>, filter = {}) => {
    for await (const page of c.list(filter)) void page;
  };
  await assert.rejects(drain(repeating('{"jobs":[],"nextCursor":"c1"}'), { cursor: 'c1' }), notAts(/GET \/v1\/jobs answered the cursor it was sent, "c1", as the next/));
  await assert.rejects(drain(repeating('{"jobs":[],"nextCursor":"c1"}')), notAts(/answered the cursor it was sent, "c1", as the next/));
  await assert.rejects(drain(repeating('{"jobs":[],"nextCursor":7}')), notAts(/GET \/v1\/jobs answered a nextCursor that is not a string/));
  await assert.rejects(repeating('{"events":[],"next":0}').workflowEvents(ID), notAts(/GET \/v1\/workflows\/\w+\/events answered next 0 after 0/));
  await assert.rejects(repeating('{"events":[],"next":"5"}').workflowEvents(ID), notAts(/answered a next that is not a number/));
  // The API's own paging ends.
  const pages = ['{"jobs":[{"id":"a","state":"done"}],"nextCursor":"c1"}', '{"jobs":[],"nextCursor":null}'];
  let n = 0;
  const ending = createClient({ url: 'http://ats.invalid', retries: 0, fetch: async () => new Response(pages[n++]!, { status: 200 }) });
  let seen = 0;
  for await (const page of ending.list()) seen += page.jobs.length;
  assert.equal(seen, 1);
});
