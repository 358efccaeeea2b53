/**
 * `submitMany` against a fake fetch that answers `POST /v1/jobs/batch` as
 * told: a job answered 503 (its key was taken and its job could not be read
 * back) is sent again with its key, within `retries`; a call that throws
 * carries the jobs as it sent them, keys included, so sending them again
 * makes no job twice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError, createClient, MAX_BATCH, UnreachableError, type BatchItem, type BatchResult } from './index.js';

type Sent = { jobs: BatchItem[] };

/** A fetch answering each batch with `answer(job, request number)`, or throwing what it returns when that is an Error. */
function fakeBatches(answer: (job: BatchItem, request: number) => BatchResult | Error) {
  const sent: Sent[] = [];
  const fetch = async (_input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const body = JSON.parse(String(init?.body)) as Sent;
    sent.push(body);
    const results: BatchResult[] = [];
    for (const job of body.jobs) {
      const r = answer(job, sent.length);
      if (r instanceof Error) throw r;
      results.push(r);
    }
    return new Response(JSON.stringify({ results }), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { sent, fetch };
}

const created = (job: BatchItem): BatchResult => ({ status: 201, id: `job-${String(job.payload)}`, state: 'pending' });
const again = (job: BatchItem): BatchResult => ({ status: 200, id: `job-${String(job.payload)}`, state: 'pending' });
const unavailable: BatchResult = { status: 503, code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' };
const refused = () => new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
const items = (n: number): BatchItem[] => Array.from({ length: n }, (_, i) => ({ type: 'demo.echo', payload: i }));

describe('submitMany: a job answered 503 is sent again with its key', () => {
  test('the 503 jobs alone, with the keys of their first send, after a pause; the answer replaces the 503', async () => {
    const { sent, fetch } = fakeBatches((job, n) => (n === 1 ? (job.payload === 1 || job.payload === 3 ? unavailable : created(job)) : again(job)));
    const retried: [string, number][] = [];
    const ats = createClient({ url: 'http://ats.invalid', fetch, retryDelayMs: { min: 1, max: 2 } });
    const results = await ats.submitMany(items(4), { onRetry: (e, attempt) => retried.push([e.code, attempt]) });
    assert.deepEqual(results.map((r) => [r.status, r.id]), [[201, 'job-0'], [200, 'job-1'], [201, 'job-2'], [200, 'job-3']]);
    assert.equal(sent.length, 2);
    assert.deepEqual(sent[1]!.jobs.map((j) => j.payload), [1, 3], 'only the jobs answered 503');
    assert.deepEqual(sent[1]!.jobs.map((j) => j.idempotencyKey), [sent[0]!.jobs[1]!.idempotencyKey, sent[0]!.jobs[3]!.idempotencyKey]);
    assert.deepEqual(retried, [['ATS_ERR_STORE_UNAVAILABLE', 1]]);
  });

  test('still 503 after `retries` sends: thrown as the 503 it is, with the jobs as sent (keys included) to send again', async () => {
    const { sent, fetch } = fakeBatches((job) => (job.payload === 1 ? unavailable : created(job)));
    const ats = createClient({ url: 'http://ats.invalid', fetch, retries: 2, retryDelayMs: { min: 1, max: 2 } });
    const err = await ats.submitMany(items(3)).catch((e: unknown) => e);
    assert.ok(err instanceof ApiError && err.status === 503 && err.code === 'ATS_ERR_STORE_UNAVAILABLE', String(err));
    assert.match(err.message, /jobs\[1\]/);
    assert.equal(sent.length, 3, 'sent once, then again twice');
    assert.deepEqual(new Set(sent.map((s) => s.jobs.find((j) => j.payload === 1)!.idempotencyKey)).size, 1);
    assert.deepEqual(err.batch?.results, [], 'no request answered every job it sent');
    assert.deepEqual(err.batch?.jobs, sent[0]!.jobs);
  });

  test('a job sent without a key (idempotencyKeys: false) is not sent again: its 503 is its result', async () => {
    const { sent, fetch } = fakeBatches((job) => (job.payload === 0 ? unavailable : created(job)));
    const ats = createClient({ url: 'http://ats.invalid', fetch, retryDelayMs: { min: 1, max: 2 } });
    const results = await ats.submitMany(items(2), { idempotencyKeys: false });
    assert.deepEqual(results.map((r) => r.status), [503, 201]);
    assert.equal(sent.length, 1);
  });
});

describe('submitMany: a request that fails as a whole', () => {
  test('throws with the results before it and every job as sent: sending those again repeats every key', async () => {
    let down = true;
    const { sent, fetch } = fakeBatches((job, n) => (n === 2 && down ? refused() : n >= 3 ? again(job) : created(job)));
    const ats = createClient({ url: 'http://ats.invalid', fetch, retries: 0 });
    const given: BatchItem[] = [...items(3), { type: 'demo.echo', payload: 3, idempotencyKey: 'order-3' }];
    const err = await ats.submitMany(given, { batchSize: 2 }).catch((e: unknown) => e);
    assert.ok(err instanceof UnreachableError, 'the failure as it is');
    assert.deepEqual(err.batch?.results.map((r) => r.id), ['job-0', 'job-1']);
    const jobs = err.batch!.jobs;
    assert.deepEqual(jobs.map((j) => j.payload), [0, 1, 2, 3]);
    assert.deepEqual(jobs.slice(0, 2), sent[0]!.jobs, 'the first request\'s jobs with the keys it sent');
    assert.deepEqual(jobs.slice(2), sent[1]!.jobs, 'the failed request\'s too');
    assert.equal(jobs[3]!.idempotencyKey, 'order-3', 'a key given is kept');
    assert.equal(given[0]!.idempotencyKey, undefined, 'the caller\'s items are left as they were');
    down = false;
    const results = await ats.submitMany(jobs, { batchSize: 2 });
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200]);
    assert.deepEqual(sent.slice(2).flatMap((s) => s.jobs), jobs, 'sent again with the same keys');
  });
});

describe('submitMany: batchSize', () => {
  test('not a number (NaN: Number() of an unset variable) is refused before anything is sent, naming it', async () => {
    const { sent, fetch } = fakeBatches(created);
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const err = await ats.submitMany(items(3), { batchSize: Number.NaN }).catch((e: unknown) => e);
    assert.ok(err instanceof ApiError && err.status === 0 && err.code === 'ATS_ERR_VALIDATION', String(err));
    assert.match(err.message, /^submitMany: batchSize must be a number, got NaN/);
    assert.equal(sent.length, 0, 'no request sent');
  });

  test('under 1 (0, a negative, a fraction under 1) is refused before anything is sent, naming it: not one job a request', async () => {
    for (const batchSize of [0, -5, 0.5, -Infinity]) {
      const { sent, fetch } = fakeBatches(created);
      const ats = createClient({ url: 'http://ats.invalid', fetch });
      const err = await ats.submitMany(items(3), { batchSize }).catch((e: unknown) => e);
      assert.ok(err instanceof ApiError && err.status === 0 && err.code === 'ATS_ERR_VALIDATION', `${batchSize}: ${String(err)}`);
      assert.match(err.message, /^submitMany: batchSize must be 1 or more, got /);
      assert.equal(sent.length, 0, `${batchSize}: no request sent`);
    }
  });

  test('over MAX_BATCH (Infinity too) is MAX_BATCH a request', async () => {
    const { sent, fetch } = fakeBatches(created);
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const results = await ats.submitMany(items(MAX_BATCH + 1), { batchSize: Infinity });
    assert.equal(results.length, MAX_BATCH + 1);
    assert.deepEqual(sent.map((s) => s.jobs.length), [MAX_BATCH, 1]);
  });

  test('a fraction is rounded down: every job sent once, in order', async () => {
    const { sent, fetch } = fakeBatches(created);
    const ats = createClient({ url: 'http://ats.invalid', fetch });
    const results = await ats.submitMany(items(5), { batchSize: 2.5 });
    assert.deepEqual(results.map((r) => r.id), ['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);
    assert.deepEqual(sent.map((s) => s.jobs.length), [2, 2, 1]);
  });
});
