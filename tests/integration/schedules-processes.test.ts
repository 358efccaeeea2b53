/**
 * A per-second schedule fired by two timers processes on one MariaDB
 * database, one of them killed (SIGKILL) and started again while it runs:
 * every tick from the first to the last has exactly one job, and the job runs.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { DEFAULT_TENANT } from '../../engine/auth.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { scheduleTickKey } from '../../engine/schedules.js';
import { startRole, waitForReady, type RoleProcess } from '../helpers/processes.js';
import { startTestSystem, type TestSystem } from '../helpers/system.js';

let t: TestSystem;
const procs: RoleProcess[] = [];

before(async () => {
  // Everything but the timers in this process; the timers run as two child processes.
  t = await startTestSystem({ roles: 'api,relay,worker' });
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await t?.stop();
});

it('two timers processes, one killed and restarted: one job per tick, no tick lost', { timeout: 180_000 }, async () => {
  const env = { ...t.env, ATS_TIMERS_POLL_MS: '100', LOG_LEVEL: 'info' };
  const a = startRole('timers-a', 'timers', env);
  const b = startRole('timers-b', 'timers', env);
  procs.push(a, b);
  await Promise.all([waitForReady(a), waitForReady(b)]);

  const { schedules, store } = t.system;
  const s = await schedules.create(DEFAULT_TENANT, {
    name: 'every-second', cron: '* * * * * *', overlap: 'allow',
    job: { type: 'demo.echo', payload: { from: 'schedule' }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 10_000, priority: 0 },
  });
  await sleep(4_000);
  await a.kill(); // mid-run: whatever it was firing, b or its successor fires too
  await sleep(2_000);
  const a2 = startRole('timers-a2', 'timers', env);
  procs.push(a2);
  await waitForReady(a2);
  await sleep(3_000);
  const paused = await schedules.update(DEFAULT_TENANT, 'every-second', { paused: true });
  await sleep(1_000); // a pass that read the schedule before the pause finishes
  await Promise.all([b.stop(), a2.stop()]);

  const pool = (store as MysqlStore).pool;
  const [rows] = await pool.query(
    "SELECT idempotency_key AS k, state FROM jobs WHERE idempotency_key LIKE 'ats:schedule:every-second:%'",
  );
  const jobs = rows as Array<{ k: string; state: string }>;
  const ticks = jobs.map((j) => Number(j.k.split(':').at(-1))).sort((x, y) => x - y);
  assert.ok(ticks.length >= 8, `ticks fired: ${ticks.length}`);
  // Every second from the first tick to the last has its job, each exactly once (the key is unique per queue anyway).
  const expected = Array.from({ length: (ticks.at(-1)! - ticks[0]!) / 1000 + 1 }, (_, i) => ticks[0]! + i * 1000);
  assert.deepEqual(ticks, expected);
  assert.equal(ticks[0], Math.ceil((s.createdAt + 1) / 1000) * 1000);
  assert.ok(ticks.every((tick) => jobs.some((j) => j.k === scheduleTickKey(s, tick))));
  const recorded = await schedules.ticks(DEFAULT_TENANT, 'every-second', 1000);
  assert.ok(recorded.every((r) => r.outcome === 'submitted'));
  assert.equal(new Set(recorded.map((r) => r.tickAt)).size, recorded.length);
  assert.equal(paused.nextAt, null);
  // The jobs run (this process has the relay and a worker).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [done] = await pool.query("SELECT COUNT(*) AS n FROM jobs WHERE idempotency_key LIKE 'ats:schedule:every-second:%' AND state = 'done'");
    if (Number((done as Array<{ n: number }>)[0]!.n) === jobs.length) break;
    if (Date.now() > deadline) assert.fail('the scheduled jobs did not all finish');
    await sleep(200);
  }
});
