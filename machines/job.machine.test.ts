import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { getAdjacencyMap } from 'xstate/graph';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import { jobMachine, JOB_MACHINE_VERSION, JOB_STATES, TERMINAL_STATES, type JobEvent, type JobState } from './job.machine.js';
import { allowedActions, isTerminal, machineGraph, persist, project, replay, start, step, type JobSnapshot, type PersistedJob } from './lifecycle.js';

const MAX = 3;
const input = { at: 1_000, maxAttempts: MAX, backoff: DEFAULT_BACKOFF };

/** Every event worth trying from a snapshot: the right attempt, a wrong one, retryable or not. */
function eventsFor(s: JobSnapshot): JobEvent[] {
  const c = s.context;
  const at = Math.max(c.updatedAt, c.runAt, c.leaseUntil ?? 0) + 1;
  const evs: JobEvent[] = [
    { type: 'DISPATCH', at },
    { type: 'PUBLISHED', at, attempt: c.attempt + 1 },
    { type: 'STARTED', at, attempt: c.attempt + 1, leaseUntil: at + 100, workerId: 'w' },
    { type: 'HEARTBEAT', at, attempt: c.attempt, leaseUntil: at + 200 },
    { type: 'SUCCEEDED', at, attempt: c.attempt, result: 'ok' },
    { type: 'FAILED', at, attempt: c.attempt, rand: 0.5, error: { message: 'boom', retryable: true } },
    { type: 'FAILED', at, attempt: c.attempt, rand: 0.5, error: { message: 'fatal', retryable: false } },
    { type: 'LEASE_EXPIRED', at, attempt: c.attempt, rand: 0.5 },
    { type: 'RETRY_DUE', at },
    { type: 'CANCEL', at },
  ];
  // REDRIVE only where terminal, so the graph stays finite (one redrive per path is enough).
  if (c.attemptBase === 0) evs.push({ type: 'REDRIVE', at });
  return evs;
}

const serialize = (s: JobSnapshot) =>
  JSON.stringify([s.value, s.context.attempt, s.context.attemptBase, s.context.dispatchedFor, s.context.leaseUntil !== null]);

type Node = { state: unknown; transitions: Record<string, { event: unknown; state: unknown }> };

function graph(): Record<string, Node> {
  return getAdjacencyMap(jobMachine, {
    input,
    events: (s) => eventsFor(s as JobSnapshot),
    serializeState: (s) => serialize(s as JobSnapshot),
    serializeEvent: (e) => JSON.stringify(e),
  }) as unknown as Record<string, Node>;
}

describe('job machine (xstate/graph)', () => {
  const adj = graph();
  const nodes = Object.entries(adj);

  it('reaches every state from submit', () => {
    const seen = new Set(nodes.map(([, v]) => (v.state as JobSnapshot).value as JobState));
    assert.deepEqual([...seen].sort(), [...JOB_STATES].sort());
  });

  it('every non-terminal state can reach a terminal state', () => {
    for (const [key, v] of nodes) {
      if (isTerminal((v.state as JobSnapshot).value as JobState)) continue;
      const queue = [key];
      const visited = new Set(queue);
      let found = false;
      while (queue.length && !found) {
        const k = queue.shift()!;
        for (const t of Object.values(adj[k]!.transitions)) {
          const next = serialize(t.state as JobSnapshot);
          if (isTerminal((t.state as JobSnapshot).value as JobState)) found = true;
          if (!visited.has(next) && adj[next]) {
            visited.add(next);
            queue.push(next);
          }
        }
      }
      assert.ok(found, `no terminal state reachable from ${key}`);
    }
  });

  it('terminal states absorb every event but REDRIVE (done absorbs REDRIVE too)', () => {
    let checked = 0;
    for (const [, v] of nodes) {
      const s = v.state as JobSnapshot;
      if (!isTerminal(s.value as JobState)) continue;
      for (const e of [...eventsFor(s), { type: 'REDRIVE', at: s.context.updatedAt + 1 } as JobEvent]) {
        const r = step(persist(s), e);
        const allowed = e.type === 'REDRIVE' && s.value !== 'done';
        assert.equal(r.ok, allowed, `${s.value} + ${e.type}`);
        if (r.ok) assert.equal(r.next.value, 'pending');
        checked++;
      }
    }
    assert.ok(checked > 20);
  });

  it('dead is reached only after maxAttempts or a non-retryable failure', () => {
    let intoDead = 0;
    for (const [, v] of nodes) {
      const from = v.state as JobSnapshot;
      for (const t of Object.values(v.transitions)) {
        const to = t.state as JobSnapshot;
        if (to.value !== 'dead' || from.value === 'dead') continue;
        intoDead++;
        const e = t.event as JobEvent;
        const spent = to.context.attempt - to.context.attemptBase;
        const nonRetryable = e.type === 'FAILED' && !e.error.retryable;
        assert.ok(nonRetryable || spent === MAX, `dead after ${spent} attempts via ${JSON.stringify(e)}`);
      }
    }
    assert.ok(intoDead > 0);
  });

  it('stale attempts change nothing', () => {
    let checked = 0;
    for (const [, v] of nodes) {
      const s = v.state as JobSnapshot;
      const c = s.context;
      const at = c.updatedAt + 1_000_000;
      for (const attempt of [c.attempt - 1, c.attempt + 2, c.attempt + 1]) {
        const stale: JobEvent[] = [
          { type: 'SUCCEEDED', at, attempt },
          { type: 'FAILED', at, attempt, rand: 0, error: { message: 'x', retryable: true } },
          { type: 'LEASE_EXPIRED', at, attempt, rand: 0 },
          { type: 'HEARTBEAT', at, attempt, leaseUntil: at },
        ];
        for (const e of stale) {
          assert.equal(step(persist(s), e).ok, false, `${s.value} attempt ${c.attempt} accepted ${e.type}(${attempt})`);
          checked++;
        }
      }
      if (s.value !== 'pending' && s.value !== 'published') continue;
      for (const attempt of [c.attempt, c.attempt + 2]) {
        assert.equal(step(persist(s), { type: 'STARTED', at, attempt, leaseUntil: at, workerId: 'z' }).ok, false);
      }
    }
    assert.ok(checked > 50);
  });
});

describe('job machine (paths)', () => {
  const go = (job: PersistedJob, e: JobEvent): PersistedJob => {
    const r = step(job, e);
    assert.ok(r.ok, `${job.value} rejected ${e.type}`);
    return r.next;
  };

  it('submit due now dispatches at once; a delayed one waits for DISPATCH', () => {
    assert.equal(start(input).effects.dispatch, true);
    const delayed = start({ ...input, runAt: 5_000 });
    assert.equal(delayed.effects.dispatch, false);
    assert.equal(project(delayed.next).dueAt, 5_000);
    assert.equal(step(delayed.next, { type: 'DISPATCH', at: 4_999 }).ok, false, 'not before runAt');
    const r = step(delayed.next, { type: 'DISPATCH', at: 5_000 });
    assert.ok(r.ok && r.effects.dispatch && project(r.next).dueAt === null);
  });

  it('handles the race: STARTED before PUBLISHED, then a late PUBLISHED is rejected without change', () => {
    let j = start(input).next;
    j = go(j, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 2_000, workerId: 'w' });
    assert.equal(j.value, 'running');
    assert.equal(step(j, { type: 'PUBLISHED', at: 1_002, attempt: 1 }).ok, false);
  });

  it('retries with backoff, then dies after maxAttempts and sends a dead letter; REDRIVE grants a new run', () => {
    let j = start({ ...input, backoff: { kind: 'fixed', delayMs: 500 } }).next;
    let at = 1_000;
    for (let n = 1; n <= MAX; n++) {
      j = go(j, { type: 'STARTED', at: ++at, attempt: n, leaseUntil: at + 10_000, workerId: 'w' });
      const r = step(j, { type: 'FAILED', at: ++at, attempt: n, rand: 0.3, error: { message: `f${n}`, retryable: true } });
      assert.ok(r.ok);
      j = r.next;
      if (n < MAX) {
        assert.equal(j.value, 'retrying');
        assert.equal(j.context.runAt, at + 500);
        assert.equal(step(j, { type: 'RETRY_DUE', at: at + 499 }).ok, false, 'not before the backoff');
        const due = step(j, { type: 'RETRY_DUE', at: (at += 500) });
        assert.ok(due.ok && due.effects.dispatch);
        j = due.next;
      } else {
        assert.equal(j.value, 'dead');
        assert.ok(r.effects.deadLetter);
        assert.equal(j.context.lastError?.message, `f${MAX}`);
      }
    }
    assert.deepEqual(allowedActions(j, at), ['REDRIVE']);
    const redriven = step(j, { type: 'REDRIVE', at: ++at });
    assert.ok(redriven.ok && redriven.effects.dispatch && redriven.next.value === 'pending');
    // The attempt number keeps counting, so a zombie of attempt 1 can never match again.
    assert.equal(step(redriven.next, { type: 'STARTED', at, attempt: 1, leaseUntil: at, workerId: 'z' }).ok, false);
    assert.equal(go(redriven.next, { type: 'STARTED', at, attempt: MAX + 1, leaseUntil: at, workerId: 'w' }).value, 'running');
  });

  it('a REDRIVE starts the backoff over: the first retry of the new run waits the base delay', () => {
    const backoff = { kind: 'exponential' as const, baseMs: 100, maxMs: 1_000_000, jitter: 'none' as const };
    let j = start({ ...input, maxAttempts: 2, backoff }).next;
    let at = 1_000;
    const fail = (n: number) => go(j, { type: 'FAILED', at: ++at, attempt: n, rand: 0, error: { message: `f${n}`, retryable: true } });
    j = go(j, { type: 'STARTED', at: ++at, attempt: 1, leaseUntil: at + 10_000, workerId: 'w' });
    j = fail(1);
    assert.equal(j.context.runAt, at + 100, 'first retry of the first run: baseMs');
    j = go(j, { type: 'RETRY_DUE', at: (at = j.context.runAt) });
    j = go(j, { type: 'STARTED', at: ++at, attempt: 2, leaseUntil: at + 10_000, workerId: 'w' });
    j = fail(2);
    assert.equal(j.value, 'dead');
    j = go(j, { type: 'REDRIVE', at: ++at });
    j = go(j, { type: 'STARTED', at: ++at, attempt: 3, leaseUntil: at + 10_000, workerId: 'w' });
    j = fail(3);
    assert.equal(j.value, 'retrying');
    assert.equal(j.context.runAt, at + 100, 'the new run\'s first retry waits baseMs, not the 400 ms of a third failure');
  });

  it('a FAILED that carries the advisor\'s delay retries after it, and one the advisor stopped goes dead with its reason', () => {
    let j = start({ ...input, backoff: { kind: 'fixed', delayMs: 500 } }).next;
    j = go(j, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 2_000, workerId: 'w' });
    const delayed = go(j, { type: 'FAILED', at: 1_100, attempt: 1, rand: 0.3, error: { message: 'upstream 503', retryable: true }, delayMs: 7_000 });
    assert.equal(delayed.value, 'retrying');
    assert.equal(delayed.context.runAt, 1_100 + 7_000, 'the recorded delay, not the policy\'s 500 ms');
    const stopped = go(j, {
      type: 'FAILED', at: 1_100, attempt: 1, rand: 0.3,
      error: { message: 'order 12 not found', retryable: false, decidedBy: 'advisor', advice: 'no retry recovered in 0 of 40 runs' },
    });
    assert.equal(stopped.value, 'dead', 'attempts were left: only the decision stopped it');
    assert.deepEqual(stopped.context.lastError, {
      message: 'order 12 not found', retryable: false, decidedBy: 'advisor', advice: 'no retry recovered in 0 of 40 runs', attempt: 1,
    });
  });

  it('a lease expires only once it is over', () => {
    let j = start(input).next;
    j = go(j, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 2_000, workerId: 'w' });
    assert.equal(step(j, { type: 'LEASE_EXPIRED', at: 1_999, attempt: 1, rand: 0 }).ok, false);
    j = go(j, { type: 'HEARTBEAT', at: 1_500, attempt: 1, leaseUntil: 3_000 });
    assert.equal(step(j, { type: 'LEASE_EXPIRED', at: 2_500, attempt: 1, rand: 0 }).ok, false);
    j = go(j, { type: 'LEASE_EXPIRED', at: 3_000, attempt: 1, rand: 0 });
    assert.equal(j.value, 'retrying');
    assert.equal(j.context.lastError?.name, 'LeaseExpired');
  });

  it('a lease whose holder is known gone (holderGone) ends before its time, for the attempt it holds only', () => {
    let j = start(input).next;
    j = go(j, { type: 'STARTED', at: 1_001, attempt: 1, leaseUntil: 600_000, workerId: 'w' });
    assert.equal(step(j, { type: 'LEASE_EXPIRED', at: 1_500, attempt: 1, rand: 0 }).ok, false, 'without it, not before the lease ends');
    assert.equal(step(j, { type: 'LEASE_EXPIRED', at: 1_500, attempt: 2, rand: 0, holderGone: true }).ok, false, 'fenced by attempt');
    j = go(j, { type: 'LEASE_EXPIRED', at: 1_500, attempt: 1, rand: 0, holderGone: true });
    assert.equal(j.value, 'retrying');
    assert.equal(j.context.leaseUntil, null);
    assert.deepEqual(j.context.lastError, {
      name: 'LeaseExpired', message: 'lease ended: the process that ran it had ended (found running at the restart)', retryable: true, attempt: 1,
    });
  });

  it('replay of the events gives the same state', () => {
    const events: JobEvent[] = [
      { type: 'PUBLISHED', at: 1_001, attempt: 1 },
      { type: 'STARTED', at: 1_002, attempt: 1, leaseUntil: 9_000, workerId: 'w' },
      { type: 'FAILED', at: 1_003, attempt: 1, rand: 0.7, error: { message: 'x', retryable: true } },
    ];
    let j = start(input).next;
    for (const e of events) j = go(j, e);
    assert.deepEqual(replay(input, events), j);
    assert.throws(() => replay(input, [events[2]!]), /not accepted in state pending/);
  });

  it('the graph for the API and the visualizer comes from the definition', () => {
    const g = machineGraph();
    assert.deepEqual(g.states.map((s) => s.id), [...JOB_STATES]);
    assert.deepEqual(g.states.filter((s) => s.terminal).map((s) => s.id), [...TERMINAL_STATES]);
    assert.ok(g.edges.some((e) => e.from === 'running' && e.to === 'retrying' && e.event === 'FAILED' && e.guard === 'fenced && canRetry'));
    for (const e of g.edges) assert.ok(JOB_STATES.includes(e.from) && JOB_STATES.includes(e.to));
  });
});

describe('job machine version', () => {
  /**
   * The machine's shape at `JOB_MACHINE_VERSION`: states, transitions with
   * their guards and actions, and the context's fields. It sees the shape,
   * not the code of the guards and actions: a change there is to judge too.
   */
  const PINNED = { version: 1, shape: '11390d29cf1591dd121a88d4395e8a32e9acc666d30741c5c275b6977882eb19' };

  function shape(): string {
    const g = machineGraph();
    const actions = JOB_STATES.flatMap((s) => [...jobMachine.states[s]!.transitions].flatMap(([event, ts]) =>
      ts.map((t) => `${s}:${event}:${t.actions.map((a) => (typeof a === 'string' ? a : '?')).join('+')}`)));
    const context = Object.keys(start(input).next.context).sort();
    return JSON.stringify({ initial: g.initial, states: g.states.map((s) => [s.id, s.terminal]), edges: g.edges, actions, context });
  }

  it('is bumped, or judged not to need a bump, whenever the machine\'s shape changes', () => {
    const hash = createHash('sha256').update(shape()).digest('hex');
    assert.deepEqual({ version: JOB_MACHINE_VERSION, shape: hash }, PINNED,
      'the job machine changed: if a snapshot stored before the change would now mean something else, bump JOB_MACHINE_VERSION '
      + '(machines/job.machine.ts) and read the older snapshots in fromStored (machines/lifecycle.ts); either way, pin the new '
      + `version and shape here. The shape now: ${shape()}`);
  });
});

describe('backoff', () => {
  it('exponential doubles, caps, and jitters within bounds', () => {
    const p = { kind: 'exponential', baseMs: 100, maxMs: 1_000, jitter: 'none' } as const;
    assert.deepEqual([1, 2, 3, 4, 5, 60].map((n) => backoffDelay(p, n, 0.5)), [100, 200, 400, 800, 1_000, 1_000]);
    assert.equal(backoffDelay({ ...p, jitter: 'full' }, 3, 0), 0);
    assert.equal(backoffDelay({ ...p, jitter: 'full' }, 3, 0.5), 200);
    assert.equal(backoffDelay({ ...p, jitter: 'equal' }, 3, 0), 200);
    assert.equal(backoffDelay({ ...p, jitter: 'equal' }, 3, 0.999999), 400);
  });
  it('fixed is fixed', () => {
    assert.equal(backoffDelay({ kind: 'fixed', delayMs: 250 }, 7, 0.9), 250);
  });
});
