/**
 * Crash test with real processes on MariaDB and Kafka: a relay, two workers
 * and the timers run as separate `ats start --role ...` children. 2,000 jobs
 * of a handler that fails ~30% of attempts and records an idempotent effect
 * are submitted while a random child is SIGKILLed about every second and
 * restarted; then a quiet period. At the end the guarantees hold: every job
 * terminal, each (job, attempt) outcome recorded at most once, one effect per
 * done job, histories valid, the outbox drained. The counts are printed.
 *
 * CRASH_JOBS, CRASH_CHAOS_MS and CRASH_SEED change the size, the length of
 * the chaos and the kill schedule.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { isTerminal } from '../../machines/lifecycle.js';
import type { JobSpec } from '../../engine/ports.js';
import { verifyJob } from '../../engine/verify.js';
import { seededRandom } from '../../property-tests/sim-clock.js';
import { CRASH_JOB_TYPE, CREATE_EFFECT_TABLES } from '../helpers/effects.js';
import { startRole, waitForReady, type RoleProcess } from '../helpers/processes.js';
import { startTestSystem, type TestSystem } from '../helpers/system.js';

const JOBS = Number(process.env.CRASH_JOBS ?? 2000);
const CHAOS_MS = Number(process.env.CRASH_CHAOS_MS ?? 30_000);
const QUIET_TIMEOUT_MS = 150_000;
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
const HANDLERS = fileURLToPath(new URL('../helpers/effects.ts', import.meta.url));
const ROLES = [['relay', 'relay'], ['worker-1', 'worker'], ['worker-2', 'worker'], ['timers', 'timers']] as const;

const spec = (n: number): JobSpec => ({
  type: CRASH_JOB_TYPE, payload: { n }, queue: 'crash', maxAttempts: 10,
  backoff: { kind: 'fixed', delayMs: 200 }, timeoutMs: 10_000, priority: 0,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One role's process, restarted after each kill; counts what its logs report. */
class Supervised {
  proc: RoleProcess;
  kills = 0;
  skipped = 0;
  late = 0;
  private incarnation = 1;

  constructor(readonly name: string, readonly role: string, private readonly env: Record<string, string>) {
    this.proc = this.spawn();
  }

  async kill(): Promise<void> {
    await this.proc.kill();
    this.kills++;
    this.incarnation++;
    this.proc = this.spawn();
  }

  private spawn(): RoleProcess {
    const name = this.incarnation === 1 ? this.name : `${this.name}.${this.incarnation}`;
    const proc = startRole(name, this.role, this.env);
    let partial = '';
    proc.child.stdout!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('dispatch skipped')) this.skipped++;
        else if (line.includes('late outcome ignored')) this.late++;
      }
    });
    return proc;
  }
}

let t: TestSystem;
const children: Supervised[] = [];

before(async () => {
  t = await startTestSystem({ roles: 'api' });
  const pool = (t.system.store as MysqlStore).pool;
  for (const sql of CREATE_EFFECT_TABLES) await pool.query(sql);
});

after(async () => {
  await Promise.all(children.map((c) => c.proc.kill()));
  await t?.stop();
});

async function counts(sql: string): Promise<Record<string, number>> {
  const [rows] = await (t.system.store as MysqlStore).pool.query(sql);
  return Object.fromEntries((rows as Array<{ k: string; n: number | string }>).map((r) => [r.k, Number(r.n)]));
}

it(`${JOBS} jobs survive SIGKILLs of relay, workers and timers (seed ${SEED})`, { timeout: 600_000 }, async () => {
  const env = {
    ...t.env, ATS_HANDLERS: HANDLERS, LOG_LEVEL: 'debug', ATS_LEASE_MS: '3000', ATS_HEARTBEAT_MS: '1000',
    ATS_PUBLISHED_TIMEOUT_MS: '10000', ATS_TIMERS_POLL_MS: '100', ATS_RELAY_POLL_MS: '50', ATS_WORKER_CONCURRENCY: '50',
  };
  for (const [name, role] of ROLES) children.push(new Supervised(name, role, env));
  await Promise.all(children.map((c) => waitForReady(c.proc)));
  const random = seededRandom(SEED);
  const started = Date.now();

  // Chaos: submit in batches while a random child is killed (and restarted) every ~1 s.
  const ids: string[] = [];
  const submitting = (async () => {
    const batches = 20;
    for (let b = 0; b < batches; b++) {
      const results = await t.system.transitions.submitMany(Array.from({ length: JOBS / batches }, (_, i) => spec(b * (JOBS / batches) + i)));
      for (const r of results) if (r.ok) ids.push(r.job.id);
      await sleep(CHAOS_MS / (2 * batches));
    }
  })();
  while (Date.now() - started < CHAOS_MS) {
    await sleep(700 + random.next() * 600);
    await children[Math.floor(random.next() * children.length)]!.kill();
  }
  await submitting;
  const chaosMs = Date.now() - started;
  assert.equal(ids.length, JOBS);

  // Quiet: no more kills; wait for every job to end and the outbox to drain.
  const quietStarted = Date.now();
  let states: Record<string, number> = {};
  for (;;) {
    states = await counts("SELECT state AS k, COUNT(*) AS n FROM jobs WHERE queue = 'crash' GROUP BY state");
    const open = Object.entries(states).filter(([s]) => !isTerminal(s as never)).reduce((n, [, v]) => n + v, 0);
    if (open === 0 && (await t.system.store.countUnpublished()) === 0) break;
    if (Date.now() - quietStarted > QUIET_TIMEOUT_MS) {
      assert.fail(`not quiet after ${QUIET_TIMEOUT_MS} ms: ${JSON.stringify(states)}, ${await t.system.store.countUnpublished()} unpublished\n`
        + children.map((c) => `--- ${c.name}\n${c.proc.output().slice(-2000)}`).join('\n'));
    }
    await sleep(250);
  }
  const quietMs = Date.now() - quietStarted;

  const report = await checkInvariants(ids);
  const kills = Object.fromEntries(children.map((c) => [c.name, c.kills]));
  const skipped = children.reduce((n, c) => n + c.skipped, 0);
  const summary = {
    seed: SEED, jobs: ids.length, states, kills, totalKills: children.reduce((n, c) => n + c.kills, 0), chaosMs, quietMs,
    ...report,
    duplicatesSuppressed: { dispatchesSkipped: skipped, effectsIgnored: report.effectDuplicatesSuppressed },
    lateOutcomesIgnored: children.reduce((n, c) => n + c.late, 0),
  };
  console.log(`crash test: ${JSON.stringify(summary)}`);
  assert.ok(summary.totalKills >= Math.floor(CHAOS_MS / 2000), `kills happened: ${JSON.stringify(kills)}`);
});

/** The guarantees, over every job; returns the counts worth printing. */
async function checkInvariants(ids: readonly string[]) {
  const pool = (t.system.store as MysqlStore).pool;
  const [evRows] = await pool.query("SELECT e.job_id, e.seq, e.type, e.from_state, e.data FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.queue = 'crash' ORDER BY e.job_id, e.seq");
  const outcomes = new Map<string, string[]>();
  const starts = new Map<string, number>();
  const succeeded = new Map<string, number>();
  let leaseExpired = 0;
  let redispatched = 0;
  for (const e of evRows as Array<{ job_id: string; seq: number; type: string; from_state: string | null; data: unknown }>) {
    const data = (typeof e.data === 'string' ? JSON.parse(e.data) : e.data) as { attempt?: number };
    const key = `${e.job_id}#${data.attempt}`;
    if (e.from_state && isTerminal(e.from_state as never)) assert.equal(e.type, 'REDRIVE', `${e.job_id} seq ${e.seq}: ${e.type} out of terminal ${e.from_state}`);
    if (['SUCCEEDED', 'FAILED', 'LEASE_EXPIRED'].includes(e.type)) {
      outcomes.set(key, [...(outcomes.get(key) ?? []), e.type]);
      assert.equal(outcomes.get(key)!.length, 1, `${key} has outcomes ${outcomes.get(key)!.join(', ')}`);
    }
    if (e.type === 'STARTED') {
      starts.set(key, (starts.get(key) ?? 0) + 1);
      assert.equal(starts.get(key), 1, `${key} was STARTED twice`);
    }
    if (e.type === 'SUCCEEDED') succeeded.set(e.job_id, data.attempt!);
    if (e.type === 'LEASE_EXPIRED') leaseExpired++;
    if (e.type === 'DISPATCH') redispatched++;
  }

  const [done] = await pool.query("SELECT id FROM jobs WHERE queue = 'crash' AND state = 'done'");
  const doneIds = (done as Array<{ id: string }>).map((r) => r.id);
  const [effects] = await pool.query('SELECT job_id, idempotency_key FROM effects');
  const effectOf = new Map((effects as Array<{ job_id: string; idempotency_key: string }>).map((r) => [r.job_id, r.idempotency_key]));
  const [inv] = await pool.query('SELECT job_id, attempt, COUNT(*) AS n FROM invocations GROUP BY job_id, attempt');
  const invocations = new Map((inv as Array<{ job_id: string; attempt: number; n: number | string }>).map((r) => [`${r.job_id}#${r.attempt}`, Number(r.n)]));
  for (const [key, n] of invocations) assert.equal(n, 1, `${key}: the handler ran ${n} times for one attempt`);
  for (const id of doneIds) {
    assert.ok(effectOf.has(id), `done job ${id} has no effect`);
    assert.ok(invocations.has(`${id}#${succeeded.get(id)}`), `done job ${id}: no handler call of its SUCCEEDED attempt ${succeeded.get(id)}`);
  }
  assert.equal(effectOf.size, new Set([...effectOf.values()]).size, 'one effect row per key');

  const problems: string[] = [];
  for (const id of ids) {
    const r = await verifyJob(t.system.store, id);
    if (!r.ok) problems.push(`${id}: ${r.problems.join('; ')}`);
  }
  assert.deepEqual(problems, [], 'every history replays to its stored state');
  assert.equal(await t.system.store.countUnpublished(), 0, 'the outbox drained');

  const [[sup]] = (await pool.query('SELECT COUNT(*) AS n FROM suppressed')) as unknown as [[{ n: number | string }]];
  const invocationCount = [...invocations.values()].reduce((a, b) => a + b, 0);
  return {
    handlerInvocations: invocationCount,
    distinctAttemptsClaimed: starts.size,
    effects: effectOf.size,
    /** Later attempts whose INSERT IGNORE found the effect already there. */
    effectDuplicatesSuppressed: Number(sup.n),
    leaseExpirations: leaseExpired,
    redispatches: redispatched,
  };
}
