/**
 * A worker process killed with SIGKILL mid-job: its lease expires, the attempt
 * is recorded as failed (LEASE_EXPIRED), and another worker completes the job.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startRole, type RoleProcess } from '../helpers/processes.js';
import { isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

let t: TestSystem;
const children: RoleProcess[] = [];

before(async () => {
  t = await startTestSystem({ roles: 'api,relay,timers' });
});
after(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await t?.stop();
});

it('a SIGKILLed worker’s job completes on another worker after its lease expires', async () => {
  const env = { ...t.env, ATS_WORKER_GROUP: `${t.prefix}workers`, LOG_LEVEL: 'info' };
  const first = startRole('worker-1', 'worker', env);
  children.push(first);
  const r = await t.system.transitions.submit({
    type: 'demo.sleep', payload: { ms: 1500 }, queue: 'default', maxAttempts: 3,
    backoff: { kind: 'fixed', delayMs: 100 }, timeoutMs: 60_000, priority: 0,
  });
  assert.ok(r.ok);
  const running = await waitForJob(t.system.store, r.job.id, isState('running'), 60_000, 'running on worker-1');
  assert.equal(running.snapshot.context.workerId, 'worker-1', first.output());
  await first.kill();

  const second = startRole('worker-2', 'worker', env);
  children.push(second);
  const done = await waitForJob(t.system.store, r.job.id, isState('done'), 90_000, `done (worker-2 output: ${second.output()})`);
  assert.equal(done.snapshot.context.attempt, 2);
  assert.equal(done.snapshot.context.workerId, 'worker-2');
  const events = await t.system.store.getEvents(r.job.id);
  const expired = events.find((e) => e.type === 'LEASE_EXPIRED');
  assert.ok(expired, `history: ${events.map((e) => e.type)}`);
  assert.equal((expired.data as { attempt: number }).attempt, 1, 'the dead worker’s attempt is the one recorded as failed');
  assert.equal(expired.to, 'retrying');
  assert.equal(await second.stop(), 0, 'graceful stop exits 0');
});
