/**
 * A relay that dies between the log's ack and marking its rows published:
 * the rows go out again, and the duplicate dispatch is harmless.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { TOPICS } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { systemClock } from '../../engine/system.js';
import { Waker } from '../../engine/wake.js';
import { isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

let t: TestSystem;
const calls: number[] = [];

before(async () => {
  const registry = new HandlerRegistry().register('test.once', async (_p, ctx) => {
    calls.push(ctx.attempt);
    return 'ok';
  });
  // No relay role: the test drives a relay that crashes once, then a healthy one.
  t = await startTestSystem({ registry, roles: 'api,worker,timers' });
});
after(async () => t?.stop());

it('a relay killed between produce and mark: re-published, the handler runs once, the job ends done', async () => {
  const { store, log, transitions } = t.system;
  const r = await transitions.submit({ type: 'test.once', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 10_000, priority: 0 });
  assert.ok(r.ok);
  const deps = { store, log, transitions, clock: systemClock, logger: silentLogger, waker: new Waker() };
  const opts = { batchSize: 100, pollMs: 50, errorBackoffMs: 50 };
  let sentBeforeCrash = 0;
  const crashing = new Relay({
    ...deps,
    afterPublish: (rows) => {
      sentBeforeCrash = rows.filter((row) => row.topic === TOPICS.dispatch).length;
      throw new Error('relay killed after produce, before mark');
    },
  }, opts);
  await assert.rejects(crashing.runOnce(), /relay killed/);
  assert.equal(sentBeforeCrash, 1, 'the dispatch reached Kafka before the crash');
  assert.ok((await store.countUnpublished()) >= 2, 'the rows are still unpublished');

  const healthy = new Relay(deps, opts);
  healthy.start();
  try {
    await waitForJob(store, r.job.id, isState('done'));
    await new Promise((res) => setTimeout(res, 1000)); // let the duplicate arrive and be skipped
    assert.deepEqual(calls, [1], 'one handler run for attempt 1');
    assert.equal((await store.getEvents(r.job.id)).filter((e) => e.type === 'STARTED').length, 1);
    const deadline = Date.now() + 10_000;
    while ((await store.countUnpublished()) > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(await store.countUnpublished(), 0, 'the outbox drains');
  } finally {
    await healthy.stop();
  }
});
