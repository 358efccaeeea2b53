/**
 * `submitMany` against a real scheduler whose batch body limit equals its
 * limit of one job (ATS_BATCH_BODY_LIMIT_BYTES = ATS_BODY_LIMIT_BYTES, which
 * the configuration allows): a job that `POST /v1/jobs` takes alone is over
 * the batch limit in any batch, even one of its own — the envelope
 * (`{"jobs":[…]}`) and its `idempotencyKey` field are bytes `POST /v1/jobs`
 * does not count. Such a job is submitted alone, with its key as the header,
 * and its answer is its result; a job over the limit of one job is still its
 * own 413 result.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compose, type System } from '../cli/compose.js';
import { configFrom } from '../cli/start.js';
import { silentLogger } from '../engine/logger.js';
import { createClient, type AtsClient, type BatchItem } from './index.js';

/** Both body limits of the test server. */
const LIMIT = 64 * 1024;

let system: System;
let url = '';
let ats: AtsClient;
const dataDir = mkdtempSync(join(tmpdir(), 'ats-client-batch-wrap-'));

before(async () => {
  const config = configFrom({
    ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_BODY_LIMIT_BYTES: String(LIMIT), ATS_BATCH_BODY_LIMIT_BYTES: String(LIMIT),
  }, []);
  system = await compose(config, { logger: silentLogger });
  url = (await system.start()).url!.replace('localhost', '127.0.0.1');
  ats = createClient({ url, retryDelayMs: { min: 10, max: 100 } });
});

after(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const queue = () => `q-${Math.random().toString(36).slice(2, 10)}`;
const later = () => new Date(Date.now() + 3_600_000).toISOString();

/** A demo.echo job whose body for `POST /v1/jobs` (compact JSON, no key) is exactly `bytes` long. */
function jobOfSize(q: string, bytes: number, i: number): BatchItem {
  const job = { type: 'demo.echo', queue: q, payload: { i, pad: '' }, runAt: later() };
  job.payload.pad = 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(job)));
  assert.equal(Buffer.byteLength(JSON.stringify(job)), bytes);
  return job;
}

/** A client recording each request's path and (for the batch) its items' payload `i`. */
function recording() {
  const sent: Array<{ path: string; items: number[]; key: string | null }> = [];
  const client = createClient({
    url,
    retryDelayMs: { min: 10, max: 100 },
    fetch: async (input, init) => {
      const path = new URL(String(input)).pathname;
      if (init?.method === 'POST' && path.startsWith('/v1/jobs')) {
        const body = JSON.parse(String(init.body)) as { jobs?: Array<{ payload: { i: number } }>; payload?: { i: number } };
        const key = new Headers(init.headers).get('idempotency-key');
        sent.push({ path, items: body.jobs ? body.jobs.map((j) => j.payload.i) : [body.payload!.i], key });
      }
      return fetch(input, init);
    },
  });
  return { sent, client };
}

describe('submitMany with the batch body limit equal to the limit of one job', () => {
  test('a job at the limit of one job: POST /v1/jobs takes it alone', async () => {
    const job = jobOfSize(queue(), LIMIT, 0);
    const created = await ats.submit(job);
    assert.equal(created.state, 'pending');
  });

  test('a job at the limit of one job, among small ones: submitted alone with its key, its answer its result; the others in batches', async () => {
    const q = queue();
    const { sent, client } = recording();
    const jobs = [jobOfSize(q, 200, 0), { ...jobOfSize(q, LIMIT, 1), idempotencyKey: 'big-one' }, jobOfSize(q, 200, 2)];
    const results = await client.submitMany(jobs);
    assert.deepEqual(results.map((r) => [r.status, r.code]), [[201, undefined], [201, undefined], [201, undefined]], JSON.stringify(results));
    assert.equal(results[1]!.state, 'pending');
    assert.deepEqual(((await ats.get(results[1]!.id!)).payload as { i: number }).i, 1);
    const alone = sent.filter((s) => s.path === '/v1/jobs');
    assert.deepEqual(alone, [{ path: '/v1/jobs', items: [1], key: 'big-one' }], 'sent alone once, its key as the header');
    // Again with the same key: the job it made, not a second one.
    const again = await client.submitMany([jobs[1]!]);
    assert.deepEqual(again.map((r) => [r.status, r.id]), [[200, results[1]!.id]]);
    const listed = [];
    for await (const page of ats.list({ queue: q })) listed.push(...page.jobs);
    assert.equal(listed.length, 3);
  });

  test('a job sent without a key (idempotencyKeys: false) goes in alone, without the header', async () => {
    const q = queue();
    const { sent, client } = recording();
    const results = await client.submitMany([jobOfSize(q, LIMIT - 1, 0)], { idempotencyKeys: false });
    assert.deepEqual(results.map((r) => r.status), [201]);
    assert.deepEqual(sent.filter((s) => s.path === '/v1/jobs').map((s) => s.key), [null]);
  });

  test('a job over the limit of one job is still its own 413 result, naming the limit of one job; the others go in', async () => {
    const q = queue();
    const results = await ats.submitMany([jobOfSize(q, 200, 0), jobOfSize(q, LIMIT + 1, 1), jobOfSize(q, 200, 2)]);
    assert.deepEqual(results.map((r) => r.status), [201, 413, 201]);
    assert.equal(results[1]!.code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
    assert.equal(results[1]!.id, undefined);
    assert.match(results[1]!.message ?? '', /ATS_BODY_LIMIT_BYTES/);
  });
});
