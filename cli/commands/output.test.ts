/**
 * How `ats get`, `ats ls` and `submit --wait` print a job's attempts, on a
 * job a real scheduler in this process (compose: every role on a fresh
 * SQLite file, the demo handlers) ran, killed and ran again after a
 * REDRIVE. The machine keeps counting attempts across runs while each run
 * may make `maxAttempts`: the attempt is shown within its run, never as
 * `4/2`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { AtsClient, type JobDetail } from '../client.js';
import { compose, type System } from '../compose.js';
import { configFrom } from '../start.js';
import { AttemptTracker, jobDetail, jobTable, stateLine } from './output.js';

let system: System;
let client: AtsClient;
const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-output-test-'));

before(async () => {
  const config = configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_RELAY_POLL_MS: '20', ATS_TIMERS_POLL_MS: '50' }, []);
  system = await compose(config, { registry: registerDemoHandlers(new HandlerRegistry()), logger: silentLogger });
  client = new AtsClient((await system.start()).url!.replace('localhost', '127.0.0.1'));
});

after(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function until(id: string, state: string): Promise<JobDetail> {
  const end = Date.now() + 30_000;
  for (;;) {
    const job = await client.get(id);
    if (job.state === state) return job;
    if (Date.now() > end) assert.fail(`job ${id} is ${job.state}, not ${state}: ${JSON.stringify(job.events)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('attempts of a redriven job', { timeout: 90_000 }, () => {
  test('get, ls and the --wait lines show the attempt within its run, and the run; never attempt/maxAttempts across runs', async () => {
    const queue = `q-${Math.random().toString(36).slice(2, 10)}`;
    // Fails its first three attempts: both of the first run (dead), the first of the second; the fourth succeeds.
    const submitted = await client.submit({
      type: 'demo.fail', payload: { failTimes: 3 }, queue, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 10 },
    });
    const dead = await until(submitted.id, 'dead');
    assert.equal(dead.attempt, 2);
    assert.match(jobDetail(dead), /^attempt {6}2\/2$/m, 'a job never redriven: as before');

    await client.redrive(submitted.id);
    const done = await until(submitted.id, 'done');
    assert.equal(done.attempt, 4, 'the machine counts on across runs');
    assert.equal(done.maxAttempts, 2);

    const detail = jobDetail(done);
    assert.match(detail, /^attempt {6}2\/2 in run 2, 4 in all$/m, detail);
    assert.doesNotMatch(detail, /4\/2/);

    const page = await client.listPage({ queue });
    const [header, row] = jobTable(page.jobs);
    assert.match(header!, /^ID\s+TYPE\s+QUEUE\s+STATE\s+ATTEMPT\s+UPDATED$/);
    assert.equal(done.attemptBase, 2, 'the API says where this run started');
    assert.deepEqual(row!.split(/\s+/).slice(0, 5), [submitted.id, 'demo.fail', queue, 'done', '2/2']);

    // submit --wait's lines over the same history (an idempotency-key repeat of this job would print them).
    const tracker = new AttemptTracker(done.maxAttempts);
    const lines = done.events.map((e) => `${e.type} ${tracker.see(e)}`);
    assert.deepEqual(lines.filter((l) => l.startsWith('STARTED')), [
      'STARTED attempt 1/2', 'STARTED attempt 2/2', 'STARTED attempt 1/2 in run 2, 3 in all', 'STARTED attempt 2/2 in run 2, 4 in all',
    ]);
    assert.ok(lines.some((l) => l === 'REDRIVE attempt 0/2 in run 2, 2 in all'), lines.join('\n'));
  });
});

test('a lease that ended at the restart of an embedded scheduler reads as such, not as a worker that may be gone', () => {
  const lease = (data: Record<string, unknown>) => stateLine({ seq: 4, type: 'LEASE_EXPIRED', from: 'running', to: 'retrying', at: '2031-01-01T00:00:00.000Z', data }, '1/3');
  assert.match(lease({ attempt: 1, rand: 0.5 }), /LEASE_EXPIRED {2}lease expired \(worker gone\?\)$/);
  assert.match(lease({ attempt: 1, rand: 0.5, holderGone: true }), /LEASE_EXPIRED {2}lease ended at the restart \(its process had ended\)$/);
});

test('ats get shows the job\'s priority, backoff, timeout and concurrency key, as ats schedule get shows a template\'s', () => {
  const job = {
    id: '01M97RSJX740KZBJMFY5FXBWTK', type: 'demo.echo', queue: 'email', state: 'dead', attempt: 2, maxAttempts: 2, attemptBase: 0,
    payload: 1, result: null, lastError: null, cancelReason: null, runAt: '2031-01-01T00:00:00.000Z', priority: -7, timeoutMs: 60000,
    backoff: { kind: 'exponential', baseMs: 1000, maxMs: 60000, jitter: 'full' }, idempotencyKey: null, concurrencyKey: 'smtp', version: 5,
    createdAt: '2031-01-01T00:00:00.000Z', updatedAt: '2031-01-01T00:00:01.000Z', allowed: ['REDRIVE'], events: [], eta: null, progress: null,
  } as unknown as JobDetail;
  const detail = jobDetail(job);
  // The values one column past the longest label, concurrencyKey's.
  assert.match(detail, /^priority {7}-7$/m, detail);
  assert.match(detail, /^backoff {8}exponential 1000\.\.60000 ms, full jitter$/m, detail);
  assert.match(detail, /^timeoutMs {6}60000$/m, detail);
  assert.match(detail, /^concurrencyKey smtp$/m, detail);
  const plain = jobDetail({ ...job, concurrencyKey: null, backoff: { kind: 'fixed', delayMs: 500 } } as JobDetail);
  assert.match(plain, /^backoff {6}fixed 500 ms$/m, plain);
  assert.doesNotMatch(plain, /concurrencyKey/, 'no key, no line');
});

/** A job dispatched and not started, with a concurrency key: what `ats get` is asked about below. */
const publishedJob = {
  id: '01M97RSJX740KZBJMFY5FXBWTK', type: 'demo.echo', queue: 'email', state: 'published', attempt: 0, maxAttempts: 3, attemptBase: 0,
  payload: 1, result: null, lastError: null, cancelReason: null, runAt: '2031-01-01T00:00:00.000Z', concurrencyKey: 'smtp', version: 2,
  createdAt: '2031-01-01T00:00:00.000Z', updatedAt: '2031-01-01T00:00:01.000Z', allowed: ['CANCEL'], events: [], eta: null, progress: null, waiting: null,
} as unknown as JobDetail;

test('ats get says what a job that has not started waits for, a line a reason; none once it runs', () => {
  const job = publishedJob;
  const limit = (o: Record<string, unknown>) => ({ key: 'smtp', concurrency: 5, rate: null, running: 5, createdAt: job.createdAt, updatedAt: job.createdAt, ...o });
  const line = (waiting: unknown) => jobDetail({ ...job, waiting } as JobDetail).split('\n').find((l) => l.startsWith('waiting'));
  const until = '2031-01-01T01:00:00.000Z';
  assert.equal(line({ reason: 'scheduled', until, limit: null }), `waiting        scheduled: runs at ${until}`);
  assert.equal(line({ reason: 'backoff', until, limit: null }), `waiting        backoff: retries at ${until}`);
  assert.equal(line({ reason: 'dispatching', until: null, limit: null }), 'waiting        dispatching: due, its dispatch on its way to the workers');
  assert.equal(line({ reason: 'no-worker', until: null, limit: null }), 'waiting        no-worker: no live worker runs demo.echo on queue email');
  assert.equal(line({ reason: 'paused', until: null, limit: limit({ concurrency: 0, running: 2 }) }), 'waiting        paused: limit smtp is paused (concurrency 0)');
  assert.equal(line({ reason: 'concurrency', until: null, limit: limit({}) }), 'waiting        concurrency: limit smtp runs 5 of 5');
  assert.equal(line({ reason: 'rate', until, limit: limit({ running: 0 }) }), `waiting        rate: limit smtp allows the next start at ${until}`);
  assert.equal(line({ reason: 'queued', until: null, limit: null }), 'waiting        queued: for a worker\'s free slot');
  assert.equal(line({ reason: 'queued', until: null, limit: limit({ running: 1 }) }), 'waiting        queued: for a worker\'s free slot (limit smtp: 1 running)');
  // A key as the server sent it goes to the terminal escaped.
  assert.equal(line({ reason: 'paused', until: null, limit: limit({ key: 'a\u001b[2Jb', concurrency: 0 }) }), 'waiting        paused: limit a\\u001b[2Jb is paused (concurrency 0)');
  assert.equal(line({ reason: 'backoff', until: null, limit: null }), 'waiting        backoff: retries at a time too far to tell');
  assert.equal(line({ reason: 'some\u001bnew', until: null, limit: null }), 'waiting        some\\u001bnew', 'a reason newer than this client, escaped');
  assert.equal(line(null), undefined, 'not waiting: no line');
  assert.equal(line(undefined), undefined, 'a server older than the field: no line');
});

test('ats get says what an ETA rests on: the queue, or the limit that holds the job', () => {
  const job = publishedJob;
  const [start, finish] = ['2031-01-01T00:01:00.000Z', '2031-01-01T00:01:02.000Z'];
  const line = (basis: Record<string, unknown>, lowerBound: boolean) => jobDetail({
    ...job, eta: { start, finish, lowerBound, basis: { startsPerSecond: 0.2, medianRunMs: 2000, ahead: 1, startLatencyMs: null, ...basis } },
  } as JobDetail).split('\n').find((l) => l.startsWith('eta'));
  assert.equal(line({}, false), `eta            start ${start}, finish ${finish} (1 ahead, 0.2 starts/s, median run 2000 ms)`);
  assert.equal(line({ ahead: 1000 }, true), `eta            earliest start ${start}, finish ${finish} (at least 1000 ahead, 0.2 starts/s, median run 2000 ms)`);
  assert.equal(line({ held: 'rate' }, true), `eta            earliest start ${start}, finish ${finish} (held by its limit's rate: the next start it allows; median run 2000 ms)`);
  assert.equal(line({ held: 'concurrency' }, false),
    `eta            start ${start}, finish ${finish} (held by its limit's concurrency: when a slot of its key frees, estimated; median run 2000 ms)`);
  assert.equal(line({ held: 'some\u001bnew' }, false), `eta            start ${start}, finish ${finish} (held by its limit (some\\u001bnew); median run 2000 ms)`, 'newer than this client, escaped');
});
