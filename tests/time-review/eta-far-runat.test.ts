/**
 * Time review: a job may be due as late as 9999-12-31T23:59:59.999Z (the
 * last instant the API's four-digit-year date-times write; later is a 400).
 * Once the advisor knows its type's run time, its ETA adds that (and the
 * queue's start latency) to the due time: past the year 9999, written
 * `+010000-01-01T...`. The answer's `eta` is nullable (anyOf), so the
 * serializer checks it against the schema, whose format is date-time, and
 * `GET /v1/jobs/:id` of that job answers 500 ATS_ERR_INTERNAL for as long as
 * the job waits (the console and `ats get` with it).
 * Expected: 200, every date-time of the answer with a four-digit year (the
 * ETA clamped to the last writable instant, or left out).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Advisor } from '../../engine/advisor/advisor.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { startSqliteTestApp, type TestApp } from '../helpers/app.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const spec: JobSpec = { type: 'demo.echo', payload: {}, queue: 'q-far', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 };

let t: TestApp;
let advisor: Advisor;
before(async () => {
  t = await startSqliteTestApp({ advisor: { eta: (job, s) => advisor.eta(job, s), insights: () => advisor.insights() } });
  advisor = new Advisor({ store: t.store, clock: t.clock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000, model: { minRunSamples: 5 } });
});
after(async () => {
  await t?.close();
});

test('the ETA of a job due 9999-12-31T23:59:59.999Z is written as RFC 3339 date-times', async () => {
  // Run times for the type and queue (each run a few ms).
  for (let i = 0; i < 6; i++) {
    const s = await t.transitions.submit(spec);
    assert.ok((await t.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' })).ok);
    await new Promise((r) => setTimeout(r, 5));
    assert.ok((await t.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
  }
  const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: {}, queue: 'q-far', runAt: '9999-12-31T23:59:59.999Z' } });
  assert.equal(r.statusCode, 201, r.body);
  await advisor.init();
  await advisor.catchUp();
  const got = await t.app.inject({ url: `/v1/jobs/${(r.json() as { id: string }).id}` });
  assert.equal(got.statusCode, 200, got.body);
  const view = got.json() as { runAt: string; eta: { start: string; finish: string } | null };
  assert.equal(view.runAt, '9999-12-31T23:59:59.999Z');
  assert.ok(view.eta, 'the job has an ETA');
  assert.match(view.eta.start, RFC3339, `eta.start ${view.eta.start}`);
  assert.match(view.eta.finish, RFC3339, `eta.finish ${view.eta.finish}`);
});
