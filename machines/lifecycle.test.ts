/**
 * The transition table (`table.ts`) against XState: on generated reachable
 * jobs and events, `step` must give exactly what XState's `can()` +
 * `transition()` give (accepted or not, next value, next context, effects).
 * Jobs are reached by walking random event sequences from `start(input)`, with
 * random times (early ones too), random `rand`, stale and future attempts and
 * the user events, so the guards are exercised on both sides.
 *
 * MACHINE_STEP_RUNS sets the number of sequences (2,000 by default);
 * PROPERTY_SEED replays a failing seed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { BackoffPolicy } from './backoff.js';
import {
  JOB_EVENT_TYPES, JOB_MACHINE_VERSION, JOB_STATES, USER_EVENT_TYPES, type JobEvent, type JobEventType, type JobInput, type JobState,
} from './job.machine.js';
import {
  allowedActions, fromStored, persist, replay, restore, start, startXState, step, stepXState, UnknownJobMachineError, UNVERSIONED_JOB_MACHINE,
  type PersistedJob,
} from './lifecycle.js';

const RUNS = Number(process.env.MACHINE_STEP_RUNS ?? 2_000);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`MACHINE_STEP_RUNS must be a positive integer, got ${process.env.MACHINE_STEP_RUNS}`);
const SEED = process.env.PROPERTY_SEED ? { seed: Number(process.env.PROPERTY_SEED) } : {};

const backoffArb: fc.Arbitrary<BackoffPolicy> = fc.oneof(
  fc.record({ kind: fc.constant('fixed' as const), delayMs: fc.integer({ min: 0, max: 5_000 }) }),
  fc.record({
    kind: fc.constant('exponential' as const),
    baseMs: fc.integer({ min: 1, max: 2_000 }),
    maxMs: fc.integer({ min: 1, max: 60_000 }),
    jitter: fc.constantFrom('full' as const, 'equal' as const, 'none' as const),
  }),
);

const inputArb: fc.Arbitrary<JobInput> = fc
  .record({
    at: fc.integer({ min: 0, max: 2_000_000_000_000 }),
    delay: fc.option(fc.integer({ min: -1_000, max: 10_000 }), { nil: undefined }),
    maxAttempts: fc.integer({ min: 1, max: 5 }),
    backoff: backoffArb,
  })
  .map(({ at, delay, maxAttempts, backoff }) => ({ at, maxAttempts, backoff, ...(delay === undefined ? {} : { runAt: at + delay }) }));

/** An event relative to the job it is sent to, so attempts and times land near the guards' edges. */
const specArb = fc.record({
  // A type the machine does not know now and then, too.
  type: fc.oneof({ weight: 30, arbitrary: fc.constantFrom(...JOB_EVENT_TYPES) }, { weight: 1, arbitrary: fc.constant('NOT_AN_EVENT') }),
  from: fc.constantFrom('updatedAt' as const, 'runAt' as const, 'leaseUntil' as const),
  dAt: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 5_000 }) },
    { weight: 2, arbitrary: fc.integer({ min: -5_000, max: -1 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 500_000 }) },
  ),
  // 0: the attempt the event would carry for real; otherwise stale or from the future.
  attemptOffset: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: -2, max: 3 }) }),
  rand: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  retryable: fc.boolean(),
  leaseFor: fc.integer({ min: -1_000, max: 60_000 }),
  result: fc.option(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { nil: undefined }),
  reason: fc.option(fc.string({ maxLength: 5 }), { nil: undefined }),
  name: fc.option(fc.string({ maxLength: 5 }), { nil: undefined }),
  /** The advisor's retry delay (FAILED), or none: the policy's draw. */
  delayMs: fc.option(fc.integer({ min: 0, max: 120_000 }), { nil: undefined }),
  /** The advisor stopped the retries (FAILED, not retryable). */
  byAdvisor: fc.boolean(),
  holderGone: fc.boolean(),
});
type Spec = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

function eventFor(job: PersistedJob, s: Spec): JobEvent {
  const c = job.context;
  const base = s.from === 'runAt' ? c.runAt : s.from === 'leaseUntil' ? (c.leaseUntil ?? c.updatedAt) : c.updatedAt;
  const at = base + s.dAt;
  const opens = s.type === 'PUBLISHED' || s.type === 'STARTED';
  const attempt = (opens ? c.attempt + 1 : c.attempt) + s.attemptOffset;
  switch (s.type as JobEventType) {
    case 'DISPATCH': case 'RETRY_DUE': case 'REDRIVE':
      return { type: s.type as 'DISPATCH', at };
    case 'PUBLISHED':
      return { type: 'PUBLISHED', at, attempt };
    case 'STARTED':
      return { type: 'STARTED', at, attempt, leaseUntil: at + s.leaseFor, workerId: `w${s.attemptOffset}` };
    case 'HEARTBEAT':
      return { type: 'HEARTBEAT', at, attempt, leaseUntil: at + s.leaseFor };
    case 'SUCCEEDED':
      return { type: 'SUCCEEDED', at, attempt, ...(s.result === undefined ? {} : { result: s.result }) };
    case 'FAILED':
      return {
        type: 'FAILED', at, attempt, rand: s.rand,
        error: {
          message: 'boom', retryable: s.retryable, ...(s.name === undefined ? {} : { name: s.name }),
          ...(s.byAdvisor && !s.retryable ? { decidedBy: 'advisor' as const, advice: 'hopeless' } : {}),
        },
        ...(s.delayMs === undefined ? {} : { delayMs: s.delayMs }),
      };
    case 'LEASE_EXPIRED':
      return { type: 'LEASE_EXPIRED', at, attempt, rand: s.rand, ...(s.holderGone ? { holderGone: true as const } : {}) };
    case 'CANCEL':
      return { type: 'CANCEL', at, ...(s.reason === undefined ? {} : { reason: s.reason }) };
    default:
      return { type: s.type, at } as unknown as JobEvent;
  }
}

describe('transition table (lifecycle.step) against XState', () => {
  it(`agrees with can() + transition() on ${RUNS} generated walks`, () => {
    const statesSeen = new Set<JobState>();
    const acceptedSeen = new Set<string>();
    const rejectedSeen = new Set<string>();
    let steps = 0;
    fc.assert(
      fc.property(inputArb, fc.array(specArb, { minLength: 1, maxLength: 40, size: 'max' }), (input, specs) => {
        const first = start(input);
        assert.deepStrictEqual(first, startXState(input));
        let job = first.next;
        for (const s of specs) {
          const e = eventFor(job, s);
          const got = step(job, e);
          const want = stepXState(job, e);
          assert.deepStrictEqual(got, want, `${job.value} ${JSON.stringify(job.context)} + ${JSON.stringify(e)}`);
          const snapshot = restore(job);
          assert.deepStrictEqual(allowedActions(job, e.at), USER_EVENT_TYPES.filter((type) => snapshot.can({ type, at: e.at } as JobEvent)));
          steps++;
          statesSeen.add(job.value);
          (got.ok ? acceptedSeen : rejectedSeen).add(`${job.value}:${e.type}`);
          if (got.ok) job = got.next;
        }
      }),
      { numRuns: RUNS, ...SEED },
    );
    // The walks reach every state and take every edge of the machine, or agreement means little.
    assert.deepEqual([...statesSeen].sort(), [...JOB_STATES].sort());
    const edges = ['pending:DISPATCH', 'pending:PUBLISHED', 'pending:STARTED', 'pending:CANCEL', 'published:DISPATCH', 'published:STARTED',
      'published:CANCEL', 'running:HEARTBEAT', 'running:SUCCEEDED', 'running:FAILED', 'running:LEASE_EXPIRED', 'running:CANCEL',
      'retrying:RETRY_DUE', 'retrying:CANCEL', 'dead:REDRIVE', 'cancelled:REDRIVE'];
    if (RUNS >= 500) {
      for (const edge of edges) assert.ok(acceptedSeen.has(edge), `no walk took ${edge}`);
      for (const edge of ['pending:DISPATCH', 'running:HEARTBEAT', 'running:FAILED', 'running:LEASE_EXPIRED', 'retrying:RETRY_DUE', 'published:STARTED']) {
        assert.ok(rejectedSeen.has(edge), `no walk had ${edge} rejected`);
      }
    }
    assert.ok(steps >= RUNS, `only ${steps} steps`);
  });

  it('rejects an unknown state as XState does (throws)', () => {
    const job = { ...start({ at: 0, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 0 } }).next, value: 'nope' as JobState };
    assert.throws(() => stepXState(job, { type: 'CANCEL', at: 1 }));
    assert.throws(() => step(job, { type: 'CANCEL', at: 1 }), /unknown state 'nope'/);
  });
});

describe('the machine version in a snapshot', () => {
  const input: JobInput = { at: 1_000, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 0 } };
  const running = (): PersistedJob => {
    const r = step(start(input).next, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 5_000, workerId: 'w' });
    assert.ok(r.ok);
    return r.next;
  };
  /** The job as a newer deployment would have stored it. */
  const newer = (): PersistedJob => ({ ...running(), machine: JOB_MACHINE_VERSION + 1 });

  it('is a positive integer, and version 1 is what snapshots stored before versions were written by', () => {
    assert.ok(Number.isSafeInteger(JOB_MACHINE_VERSION) && JOB_MACHINE_VERSION >= 1);
    assert.equal(UNVERSIONED_JOB_MACHINE, 1);
  });

  it('every state start, step, replay and persist give carries the version this code runs, through JSON too', () => {
    const first = start(input);
    assert.equal(first.next.machine, JOB_MACHINE_VERSION);
    assert.equal(startXState(input).next.machine, JOB_MACHINE_VERSION);
    const job = running();
    assert.equal(job.machine, JOB_MACHINE_VERSION);
    const viaXState = stepXState(first.next, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 5_000, workerId: 'w' });
    assert.ok(viaXState.ok && viaXState.next.machine === JOB_MACHINE_VERSION);
    assert.equal(persist(restore(job)).machine, JOB_MACHINE_VERSION);
    assert.equal(replay(input, [{ type: 'CANCEL', at: 1_002 }]).machine, JOB_MACHINE_VERSION);
    assert.equal((JSON.parse(JSON.stringify(job)) as PersistedJob).machine, JOB_MACHINE_VERSION);
  });

  it('a stored snapshot without one reads as version 1 and steps as before; one with a version keeps it', () => {
    const { machine: _, ...old } = running();
    const stored = JSON.parse(JSON.stringify(old)) as Omit<PersistedJob, 'machine'>;
    assert.equal('machine' in stored, false);
    const read = fromStored(stored);
    assert.equal(read, stored, 'set in place: no copy on the read path');
    assert.equal(read.machine, 1);
    assert.deepEqual(read, running());
    const r = step(read, { type: 'SUCCEEDED', at: 1_002, attempt: 1 });
    assert.ok(r.ok && r.next.value === 'done' && r.next.machine === JOB_MACHINE_VERSION);
    assert.equal(fromStored({ ...old, machine: 7 }).machine, 7);
  });

  it('a snapshot of a version this code does not run is refused when stepped or restored, not misread', () => {
    const job = newer();
    const event: JobEvent = { type: 'SUCCEEDED', at: 1_002, attempt: 1 };
    for (const [name, f] of [['step', () => step(job, event)], ['stepXState', () => stepXState(job, event)], ['restore', () => restore(job)]] as const) {
      assert.throws(f, (err: unknown) => {
        assert.ok(err instanceof UnknownJobMachineError, `${name}: ${String(err)}`);
        assert.equal(err.machine, JOB_MACHINE_VERSION + 1);
        assert.match(err.message, new RegExp(`version ${JOB_MACHINE_VERSION + 1}, and this code runs version ${JOB_MACHINE_VERSION} \\(a newer deployment wrote it\\)`));
        return true;
      });
    }
    // An older version nothing upgrades is refused too (without the "newer" hint), and so is a corrupt one.
    assert.throws(() => step({ ...job, machine: 0 }, event), (err: unknown) => err instanceof UnknownJobMachineError && !/newer/.test(err.message));
    assert.throws(() => step({ ...job, machine: '1' as unknown as number }, event), UnknownJobMachineError);
  });

  it('allows no user action on another version\'s snapshot (the engine would refuse each), so reads still answer', () => {
    assert.deepEqual(allowedActions(running(), 1_002), ['CANCEL']);
    assert.deepEqual(allowedActions(newer(), 1_002), []);
  });
});
