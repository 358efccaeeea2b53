/**
 * Dispatch lanes in the worker, on the embedded backends (SQLite in memory,
 * the in-process log): a worker receives only the jobs of the queues it
 * serves; one serving every queue finds a queue's lanes as they appear; a
 * cancel reaches the handler on the job's lane; a freed handler slot goes to
 * the highest priority dispatch waiting for one; many lanes wait for a slot
 * without Node warning of a leak.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { waitForJob } from '../tests/helpers/system.js';
import { workerHarness } from '../tests/helpers/worker-harness.js';
import { HandlerRegistry } from './handlers.js';
import { laneOf, laneTopic } from './lanes.js';
import type { ConsumeOptions, EventLog, JobRecord, JobSpec, JobStore, Subscription } from './ports.js';
import { AbortReason, type Worker } from './worker.js';

const TYPE = 'test.lane';

const spec = (queue: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  type: TYPE, payload: {}, queue, maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...extra,
});

/** Polls the job until `ok` (the shared helper, with this file's shorter default wait). */
const waitFor = (store: JobStore, id: string, ok: (j: JobRecord) => boolean, what: string, timeoutMs = 5000): Promise<JobRecord> =>
  waitForJob(store, id, ok, timeoutMs, what);

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const isState = (...states: string[]) => (j: JobRecord) => states.includes(j.snapshot.value);

/** The worker that claimed the job's first attempt (its STARTED event). */
async function startedBy(store: JobStore, id: string): Promise<string | undefined> {
  const started = (await store.getEvents(id)).find((e) => e.type === 'STARTED');
  return (started?.data as { workerId?: string } | undefined)?.workerId;
}

/** Dispatches the worker read that wait for one of its handler slots. */
const waitingForSlot = (w: Worker): number => w.slotUsage().waiting;

/** Records the order handlers start in; each blocks until released by job id (or runs straight through when `block` says no). */
function gatedRegistry(block: (payload: { name: string }) => boolean) {
  const order: string[] = [];
  const gates = new Map<string, () => void>();
  const registry = new HandlerRegistry().register(TYPE, async (payload, ctx) => {
    const { name } = payload as { name: string };
    order.push(name);
    if (block(payload as { name: string })) {
      await new Promise<void>((resolve, reject) => {
        gates.set(name, resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
      });
    }
    return { name };
  });
  return { registry, order, release: (name: string) => gates.get(name)?.() };
}

describe('worker lanes: routing by queue', () => {
  it('a worker serving email runs only email jobs; the reports jobs wait, published, until a worker serving reports runs them', async () => {
    const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => ({ queue: ctx.queue }));
    const h = await workerHarness(registry);
    try {
      const email = await h.worker('w-email', { queues: ['email'] });
      const emails = [];
      const reports = [];
      for (let i = 0; i < 3; i++) {
        emails.push(await h.submit(spec('email', { priority: i - 1 }))); // one job in each band
        reports.push(await h.submit(spec('reports', { priority: i - 1 })));
      }
      for (const id of emails) await waitFor(h.store, id, isState('done'), 'done');
      // Every reports dispatch is in its lane, and every lane the worker reads is handled.
      await until('the reports dispatches on their lanes', async () => [-1, 0, 1].every((p) => h.log.messages(laneTopic('reports', p)).length === 1));
      await h.log.drain();
      for (const id of reports) {
        const j = await h.store.getJob(id);
        assert.equal(j?.snapshot.value, 'published', 'a reports job waits for a worker of its queue');
        assert.equal(j?.snapshot.context.attempt, 0, 'never claimed');
      }
      assert.equal(email.counters.claimed, 3);
      assert.equal(email.counters.skipped + email.counters.unhandled, 0);
      for (const id of emails) assert.equal(await startedBy(h.store, id), 'w-email');

      const reporter = await h.worker('w-reports', { queues: ['reports'] });
      for (const id of reports) {
        const done = await waitFor(h.store, id, isState('done'), 'done');
        assert.deepEqual(done.snapshot.context.result, { queue: 'reports' });
        assert.equal(await startedBy(h.store, id), 'w-reports');
      }
      assert.equal(reporter.counters.claimed, 3);
      assert.equal(email.counters.claimed, 3, 'the email worker took no reports job');
    } finally {
      await h.stop();
    }
  });

  it('a worker serving every queue runs the jobs of queues that existed at its start and of a queue that appears later', async () => {
    const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => ({ queue: ctx.queue }));
    const h = await workerHarness(registry);
    try {
      const early = await h.submit(spec('early'));
      await waitFor(h.store, early, isState('published'), 'published');
      const all = await h.worker('w-all', { laneDiscoveryMs: 20 });
      await waitFor(h.store, early, isState('done'), 'done (a lane in the log at start)');

      // Queue "late" has no lane at all until its first job is dispatched.
      assert.ok(!(await h.log.listTopics()).some((t) => t.startsWith(laneTopic('late', 0))), 'no lane of queue late yet');
      const late = [await h.submit(spec('late')), await h.submit(spec('late', { priority: 9 })), await h.submit(spec('late', { priority: -9 }))];
      for (const id of late) {
        const done = await waitFor(h.store, id, isState('done'), 'done (its lane found by discovery)');
        assert.deepEqual(done.snapshot.context.result, { queue: 'late' });
        assert.equal(await startedBy(h.store, id), 'w-all');
      }
      assert.equal(all.counters.claimed, 4);
    } finally {
      await h.stop();
    }
  });
});

/** `log`, with its `consume` replaced by `consume` (which may call the log's own). */
function withConsume(log: EventLog, consume: (o: ConsumeOptions, own: EventLog['consume']) => Promise<Subscription>): EventLog {
  return new Proxy(log, {
    get(target, prop) {
      if (prop === 'consume') return (o: ConsumeOptions) => consume(o, (x) => target.consume(x));
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** `log`, except that subscribing to a lane `refused` names fails, every time. */
const refusing = (log: EventLog, refused: (topic: string) => boolean): EventLog =>
  withConsume(log, (o, own) => (refused(o.topic) ? Promise.reject(new Error(`subscribing ${o.topic} refused`)) : own(o)));

describe('worker lanes: a lane that fails to subscribe', () => {
  it('a worker serving every queue still reads the normal and low lanes of a new queue whose high lane it never manages to subscribe to', async () => {
    const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => ({ queue: ctx.queue }));
    const h = await workerHarness(registry);
    try {
      await h.worker('w-all', { laneDiscoveryMs: 20 }, { log: refusing(h.log, (t) => t === laneOf('late', 'high')) });
      const ids = [await h.submit(spec('late')), await h.submit(spec('late', { priority: -3 }))];
      for (const id of ids) await waitFor(h.store, id, isState('done'), 'done (its lane subscribed though the queue\'s high lane is not)', 3000);
    } finally {
      await h.stop();
    }
  });

  it('a worker serving every queue starts, and runs the jobs of a queue in the log, though that queue\'s high lane fails to subscribe', async () => {
    const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => ({ queue: ctx.queue }));
    const h = await workerHarness(registry);
    try {
      const early = await h.submit(spec('early'));
      await waitFor(h.store, early, isState('published'), 'published');
      await h.worker('w-all', { laneDiscoveryMs: 20 }, { log: refusing(h.log, (t) => t === laneOf('early', 'high')) });
      await waitFor(h.store, early, isState('done'), 'done', 3000);
    } finally {
      await h.stop();
    }
  });
});

describe('worker lanes: stopping while a lane is being joined', () => {
  it('a stop during a discovery round still joining a lane aborts the running handler after its grace, not after the join', async () => {
    let aborted = false;
    const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      aborted = true;
      throw ctx.signal.reason;
    });
    const h = await workerHarness(registry);
    let joinStarted = false;
    let joined!: () => void;
    const join = new Promise<void>((resolve) => { joined = resolve; });
    const log = withConsume(h.log, async (o, own) => {
      // The lanes of queue "joining" take as long as a group join the test ends.
      if (o.topic.startsWith(laneOf('joining', 'normal'))) {
        joinStarted = true;
        await join;
      }
      return own(o);
    });
    try {
      const w = await h.worker('w-all', { laneDiscoveryMs: 20, shutdownGraceMs: 100 }, { log });
      const running = await h.submit(spec('default'));
      await waitFor(h.store, running, isState('running'), 'running');
      const waiting = await h.submit(spec('joining'));
      await until('a discovery round joining the new lane', () => joinStarted);
      const stopped = w.stop();
      try {
        await until('the handler aborted once the grace is over', () => aborted, 1500);
        await waitFor(h.store, running, isState('retrying', 'dead'), 'its attempt ended by the stop', 1500);
      } finally {
        joined();
      }
      await stopped;
      assert.equal((await h.store.getJob(waiting))?.snapshot.value, 'published', 'the lane joined after the stop claimed nothing');
    } finally {
      joined();
      await h.stop();
    }
  });

  it('a stop does not wait for a join that does not end: the join is given up, and the stop ends within its grace and the last writes\' bound', async () => {
    const registry = new HandlerRegistry().register(TYPE, async () => null);
    const h = await workerHarness(registry);
    let joinStarted = false;
    let givenUp: unknown = null;
    let unblock!: () => void;
    const test = new Promise<void>((resolve) => { unblock = resolve; });
    const log = withConsume(h.log, async (o, own) => {
      // The lane of queue "stuck" joins a group whose rebalance does not end (a member that never rejoins):
      // consume() settles only when its signal gives the join up (or the test ends).
      if (o.topic === laneOf('stuck', 'normal')) {
        joinStarted = true;
        await new Promise<void>((resolve, reject) => {
          o.signal?.addEventListener('abort', () => {
            givenUp = o.signal?.reason;
            reject(o.signal?.reason);
          });
          void test.then(resolve);
        });
      }
      return own(o);
    });
    try {
      const w = await h.worker('w-all', { laneDiscoveryMs: 20, shutdownGraceMs: 100 }, { log });
      const waiting = await h.submit(spec('stuck'));
      await until('a discovery round joining the new lane', () => joinStarted);
      const started = Date.now();
      const stopped = w.stop().then(() => Date.now() - started);
      // The grace (100 ms), the last writes' bound (1 s) and their in-flight wait (0.25 s), with room: not the join's 30 s.
      const tookMs = await Promise.race([stopped, sleep(3000).then(() => 'still waiting' as const)]);
      assert.notEqual(tookMs, 'still waiting', 'stop() waited for the join in progress');
      assert.ok(givenUp instanceof AbortReason && givenUp.kind === 'shutdown', `the join was given up by the stop: ${String(givenUp)}`);
      assert.equal((await h.store.getJob(waiting))?.snapshot.value, 'published', 'the job of the lane given up waits, published, for another worker');
    } finally {
      unblock();
      await h.stop();
    }
  });
});

describe('worker lanes: cancels travel on the job\'s lane', () => {
  for (const [queue, priority] of [['email', 0], ['default', 5], ['reports', -2]] as const) {
    it(`cancelling a running job of queue ${queue}, priority ${priority} aborts its handler (the cancel message, not a heartbeat)`, async () => {
      const aborted: unknown[] = [];
      const registry = new HandlerRegistry().register(TYPE, async (_p, ctx) => {
        await new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => {
          aborted.push(ctx.signal.reason);
          reject(ctx.signal.reason);
        }));
      });
      const h = await workerHarness(registry);
      try {
        // Heartbeats every minute: within this test only the cancel message can abort the handler.
        const w = await h.worker('w1', { queues: [queue] });
        const id = await h.submit(spec(queue, { priority }));
        await waitFor(h.store, id, isState('running'), 'running');
        assert.ok((await h.transitions.apply(id, { type: 'CANCEL', reason: 'no longer needed' })).ok);
        await until('the handler aborted', () => aborted.length > 0);
        const reason = aborted[0];
        assert.ok(reason instanceof AbortReason && reason.kind === 'cancelled', `aborted by: ${String(reason)}`);
        assert.match(reason.message, /^the job was cancelled: no longer needed/);
        const lane = laneTopic(queue, priority);
        const cancels = h.log.messages(lane).filter((m) => m.key === id && m.headers['ats-kind'] === 'cancel');
        assert.equal(cancels.length, 1, `the cancel is on the job's lane ${lane}`);
        assert.equal(w.counters.cancelsIgnored, 0);
        await until('the worker let go of the attempt', () => w.activeCount === 0);
        assert.equal((await h.store.getJob(id))?.snapshot.value, 'cancelled');
      } finally {
        await h.stop();
      }
    });
  }
});

describe('worker lanes: a freed slot goes to the highest priority waiting', () => {
  it('with one slot held, a high-priority job submitted after normal ones of the same queue runs next', async () => {
    const g = gatedRegistry((p) => p.name === 'blocker');
    // One partition: the normal jobs queue up behind each other on their lane, as they do per partition.
    const h = await workerHarness(g.registry, { partitions: 1 });
    try {
      const w = await h.worker('w1', { queues: ['q'], concurrency: 1 });
      const blocker = await h.submit(spec('q', { payload: { name: 'blocker' } }));
      await waitFor(h.store, blocker, isState('running'), 'running');
      const normals = [];
      for (const name of ['n1', 'n2', 'n3']) normals.push(await h.submit(spec('q', { payload: { name } })));
      await until('a normal dispatch waiting for the slot', () => waitingForSlot(w) === 1);
      const high = await h.submit(spec('q', { payload: { name: 'high' }, priority: 5 }));
      await until('the high dispatch waiting for the slot too', () => waitingForSlot(w) === 2);
      g.release('blocker');
      for (const id of [blocker, high, ...normals]) await waitFor(h.store, id, isState('done'), 'done');
      assert.deepEqual(g.order, ['blocker', 'high', 'n1', 'n2', 'n3']);
    } finally {
      await h.stop();
    }
  });

  it('a dispatch whose priority is missing or not a number is run as priority 0: a high one still goes ahead of it', async () => {
    const g = gatedRegistry((p) => p.name === 'blocker');
    const h = await workerHarness(g.registry, { partitions: 1 });
    try {
      const w = await h.worker('w1', { queues: ['q'], concurrency: 1 });
      const blocker = await h.submit(spec('q', { payload: { name: 'blocker' } }));
      await waitFor(h.store, blocker, isState('running'), 'running');
      // Jobs of a queue no worker serves; their dispatches are sent again on q's lane without a usable priority.
      const odd = [await h.submit(spec('side', { payload: { name: 'missing' } })), await h.submit(spec('side', { payload: { name: 'text' } }))];
      for (const id of odd) await waitFor(h.store, id, isState('published'), 'published');
      const [missing, text] = odd.map((id) => h.log.messages(laneTopic('side', 0)).find((m) => m.key === id)!);
      assert.ok(missing && text, 'the dispatches of the side jobs');
      const without = JSON.parse(missing.value) as Record<string, unknown>;
      delete without.priority;
      const worded = { ...(JSON.parse(text.value) as Record<string, unknown>), priority: 'urgent' };
      // One batch, the worded one first: it is the one waiting for the slot when the high one arrives.
      await h.log.publish([
        { topic: laneTopic('q', 0), key: text.key, value: JSON.stringify(worded), headers: text.headers },
        { topic: laneTopic('q', 0), key: missing.key, value: JSON.stringify(without), headers: missing.headers },
      ]);
      await until('the odd dispatches waiting for the slot', () => waitingForSlot(w) === 1);
      const high = await h.submit(spec('q', { payload: { name: 'high' }, priority: 1 }));
      await until('the high dispatch waiting for the slot too', () => waitingForSlot(w) === 2);
      g.release('blocker');
      for (const id of [blocker, high, ...odd]) await waitFor(h.store, id, isState('done'), 'done');
      assert.deepEqual(g.order, ['blocker', 'high', 'text', 'missing']);
      // The worker goes on working.
      const after = await h.submit(spec('q', { payload: { name: 'after' } }));
      await waitFor(h.store, after, isState('done'), 'done');
      assert.equal(w.counters.claimed, 5);
    } finally {
      await h.stop();
    }
  });
});

describe('worker lanes: many lanes waiting for a slot', () => {
  it('a dispatch of each of twelve lanes waiting for the one slot raises no "possible memory leak" warning (the waits share the stop signal)', async () => {
    const g = gatedRegistry(({ name }) => name === 'blocker');
    const h = await workerHarness(g.registry);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const queues = Array.from({ length: 12 }, (_, k) => `many${k}`);
      const w = await h.worker('w-many', { concurrency: 1, queues: ['q', ...queues] });
      const blocker = await h.submit(spec('q', { payload: { name: 'blocker' } }));
      await waitFor(h.store, blocker, isState('running'), 'running');
      const ids = [];
      for (const q of queues) ids.push(await h.submit(spec(q, { payload: { name: q } })));
      await until('a dispatch of each lane waiting for the slot', () => waitingForSlot(w) === queues.length);
      // Node emits its warning on the next tick.
      await sleep(20);
      g.release('blocker');
      for (const id of [blocker, ...ids]) await waitFor(h.store, id, isState('done'), 'done');
      assert.deepEqual(warnings.filter((x) => x.name === 'MaxListenersExceededWarning').map((x) => x.message), []);
    } finally {
      process.off('warning', onWarning);
      await h.stop();
    }
  });
});

describe('worker lanes: a stop during a discovery round', () => {
  it('joins no lane of the next bands once stopped (each would be a group join, and a rebalance of the other members, for nothing)', async () => {
    const registry = new HandlerRegistry().register(TYPE, async () => null);
    const h = await workerHarness(registry);
    let joinStarted = false;
    let joined!: () => void;
    const join = new Promise<void>((resolve) => { joined = resolve; });
    let stoppedAt: number | null = null;
    const afterStop: string[] = [];
    const log = withConsume(h.log, async (o, own) => {
      if (stoppedAt !== null) afterStop.push(o.topic);
      // The high lane of the new queue takes as long as a group join the test ends.
      if (o.topic === laneOf('fresh', 'high')) {
        joinStarted = true;
        await join;
      }
      return own(o);
    });
    try {
      const w = await h.worker('w-all', { laneDiscoveryMs: 20 }, { log });
      await h.submit(spec('fresh'));
      await until('a discovery round joining the new high lane', () => joinStarted);
      stoppedAt = Date.now();
      const stopped = w.stop();
      await sleep(50);
      joined();
      await stopped;
      assert.deepEqual(afterStop, [], 'lanes subscribed after the stop');
    } finally {
      joined();
      await h.stop();
    }
  });
});

describe('worker lanes: the log cannot list its topics for a while (a broker outage)', () => {
  it('the failing discovery rounds are logged as an outage (the first, not every round), and its end once a round works', async () => {
    const lines: Array<{ level: string; msg: string; failures?: unknown }> = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, failures: fields?.failures });
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const registry = new HandlerRegistry().register(TYPE, async () => 'ok');
    const h = await workerHarness(registry);
    let down = false;
    let failedRounds = 0;
    const log = new Proxy(h.log, {
      get(target, prop) {
        if (prop === 'listTopics') {
          return () => {
            if (!down) return target.listTopics();
            failedRounds++;
            return Promise.reject(new Error('Connection error: connect ECONNREFUSED'));
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    try {
      await h.worker('w-all', { laneDiscoveryMs: 10 }, { log, logger });
      down = true;
      await until('ten failed discovery rounds', () => failedRounds >= 10);
      const failed = lines.filter((l) => /dispatch lanes failed/.test(l.msg) && l.level !== 'debug');
      assert.equal(failed.length, 1, JSON.stringify(failed));
      down = false;
      await until('the end of the outage logged', () => lines.some((l) => l.level === 'info' && /works again/.test(l.msg)));
      const end = lines.find((l) => l.level === 'info' && /works again/.test(l.msg))!;
      assert.ok(typeof end.failures === 'number' && end.failures >= 10, JSON.stringify(end));
    } finally {
      await h.stop();
    }
  });
});
