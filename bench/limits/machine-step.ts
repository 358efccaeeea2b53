/**
 * The cost of one job-machine step alone: `step` (the transition table derived
 * from the machine) beside `stepXState` (resolveState + can + transition) and
 * beside one XState `transition()` without `can()`; `start` beside
 * `startXState`. All on the same realistic mix of (job, event) pairs. The mix comes from walking job lifecycles the way the roles drive
 * them: most jobs publish, start, heartbeat and succeed; some fail and retry,
 * lose their lease, die and are redriven, are cancelled or wait for their
 * runAt; some events are stale (a zombie's attempt, a late PUBLISHED, an early
 * RETRY_DUE) and are rejected. Prints a table and one `BENCH_RESULT {...}` line.
 *
 *   node --import tsx bench/limits/machine-step.ts '{"jobs":2000,"rounds":5}'
 */
import { loadavg } from 'node:os';
import { transition } from 'xstate';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { jobMachine, type JobEvent, type JobInput, type JobState } from '../../machines/job.machine.js';
import { persist, restore, start, startXState, step, stepXState, type PersistedJob, type StepResult } from '../../machines/lifecycle.js';
import { round } from '../lib/stats.js';

const params = JSON.parse(process.argv[2] ?? '{}') as { jobs?: number; rounds?: number };
const JOBS = params.jobs ?? 2_000;
const ROUNDS = params.rounds ?? 5;

/** A deterministic generator, so every run measures the same mix. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Pair { job: PersistedJob; event: JobEvent }

/** The (job, event) pairs of JOBS lifecycles, recorded through the XState reference. */
function mix(): { inputs: JobInput[]; pairs: Pair[] } {
  const rand = mulberry32(42);
  const inputs: JobInput[] = [];
  const pairs: Pair[] = [];
  for (let n = 0; n < JOBS; n++) {
    let at = 1_700_000_000_000 + n * 10;
    const delayed = rand() < 0.1;
    const input: JobInput = {
      at, maxAttempts: 3, backoff: DEFAULT_BACKOFF,
      ...(delayed ? { runAt: at + 5_000 } : {}),
    };
    inputs.push(input);
    let job = startXState(input).next;
    const send = (event: JobEvent): StepResult => {
      pairs.push({ job, event });
      const r = stepXState(job, event);
      if (r.ok) job = r.next;
      return r;
    };
    if (rand() < 0.03) {
      send({ type: 'CANCEL', at: ++at, reason: 'user' });
      if (rand() < 0.5) send({ type: 'REDRIVE', at: ++at });
      else continue;
    }
    if (delayed) {
      send({ type: 'DISPATCH', at: at + 4_000 }); // early: rejected
      send({ type: 'DISPATCH', at: (at += 5_000) });
    }
    for (let guard = 0; guard < 10 && (job.value === 'pending' || job.value === 'published'); guard++) {
      const attempt = job.context.attempt + 1;
      if (rand() < 0.9) send({ type: 'PUBLISHED', at: ++at, attempt });
      send({ type: 'STARTED', at: ++at, attempt, leaseUntil: at + 30_000, workerId: 'w1' });
      if (rand() < 0.05) send({ type: 'PUBLISHED', at: ++at, attempt }); // late: rejected
      const beats = Math.floor(rand() * 3);
      for (let b = 0; b < beats; b++) send({ type: 'HEARTBEAT', at: (at += 10_000), attempt, leaseUntil: at + 30_000 });
      const outcome = rand();
      if (outcome < 0.8) {
        send({ type: 'SUCCEEDED', at: ++at, attempt, result: { ok: true, n } });
        if (rand() < 0.05) send({ type: 'SUCCEEDED', at: ++at, attempt: attempt - 1 }); // zombie: rejected
      } else if (outcome < 0.93) {
        send({ type: 'FAILED', at: ++at, attempt, rand: rand(), error: { message: 'boom', name: 'Error', retryable: rand() < 0.9 } });
      } else {
        send({ type: 'LEASE_EXPIRED', at: at + 1_000, attempt, rand: rand() }); // before the lease: rejected
        send({ type: 'LEASE_EXPIRED', at: (at += 40_000), attempt, rand: rand() });
      }
      if ((job.value as JobState) === 'retrying') {
        send({ type: 'RETRY_DUE', at: at + 1 }); // usually early: rejected
        send({ type: 'RETRY_DUE', at: (at = job.context.runAt) });
      }
      if ((job.value as JobState) === 'dead' && rand() < 0.3) send({ type: 'REDRIVE', at: ++at });
    }
  }
  return { inputs, pairs };
}

/**
 * The cheaper use of XState that was weighed against the table: one
 * `transition()` without `can()`, an event being rejected when XState hands
 * back the same snapshot (effects left out: the comparison is of the step).
 */
function stepTransitionOnly(current: PersistedJob, event: JobEvent): PersistedJob | null {
  const snapshot = restore(current);
  const [next] = transition(jobMachine, snapshot, event);
  return next === snapshot ? null : persist(next);
}

function time(label: string, n: number, body: () => void): { label: string; perSecond: number; usPerOp: number } {
  body(); // warm up
  const samples: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    body();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  samples.sort((a, b) => a - b);
  const us = samples[Math.floor(samples.length / 2)]!;
  return { label, perSecond: Math.round(1e6 / us), usPerOp: round(us, 3) };
}

const { inputs, pairs } = mix();
const counts = new Map<string, number>();
for (const p of pairs) counts.set(p.event.type, (counts.get(p.event.type) ?? 0) + 1);
let accepted = 0;
for (const p of pairs) {
  const ok = step(p.job, p.event).ok;
  if (ok) accepted++;
  if (ok !== (stepTransitionOnly(p.job, p.event) !== null)) throw new Error(`transition() alone disagrees on ${p.job.value} + ${p.event.type}`);
}

let sink = 0;
const results = [
  time('stepXState', pairs.length, () => { for (const p of pairs) if (stepXState(p.job, p.event).ok) sink++; }),
  time('transitionOnly', pairs.length, () => { for (const p of pairs) if (stepTransitionOnly(p.job, p.event)) sink++; }),
  time('step', pairs.length, () => { for (const p of pairs) if (step(p.job, p.event).ok) sink++; }),
  time('startXState', inputs.length, () => { for (const i of inputs) sink += startXState(i).next.context.dispatches; }),
  time('start', inputs.length, () => { for (const i of inputs) sink += start(i).next.context.dispatches; }),
];

const load = loadavg().map((l) => round(l, 2));
console.log(`mix: ${pairs.length} steps over ${inputs.length} jobs, ${accepted} accepted; ${[...counts].map(([t, c]) => `${t} ${c}`).join(', ')}`);
console.log(`load average: ${load.join(' ')}; ${ROUNDS} rounds, median`);
for (const r of results) console.log(`${r.label.padEnd(15)} ${r.usPerOp.toFixed(3).padStart(9)} µs/op ${String(r.perSecond).padStart(10)} /s`);
const [sx, , s, ix, i] = results as [typeof results[0], typeof results[0], typeof results[0], typeof results[0], typeof results[0]];
console.log(`step: ${round(sx.usPerOp / s.usPerOp, 1)}x faster; start: ${round(ix.usPerOp / i.usPerOp, 1)}x faster`);
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ steps: pairs.length, accepted, load, results, sink: sink > 0 })}\n`);
