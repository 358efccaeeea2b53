import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { ManualClock } from '../tests/helpers/manual-clock.js';
import { STORE_BACKENDS } from '../tests/helpers/stores.js';
import { LimitDirectory } from './limit-directory.js';
import { DEFAULT_TENANT, TENANT_PATTERN } from './auth.js';
import { admit, limitKeyOf, PAUSED_RECHECK_MS, rateChangeShift, rateStep, replacedTat, splitLimitKey, storedLimitKey, type LimitSpec } from './limits.js';
import { silentLogger } from './logger.js';
import type { JobSpec } from './ports.js';
import { TransitionService, type ApplyResult } from './transitions.js';
import { mathRandom, ulidIds } from './system.js';

describe('admit', () => {
  it('refuses a start at the concurrency cap, whatever the rate', () => {
    const limit = { concurrency: 2, rate: null, tat: 0 };
    assert.deepEqual(admit(limit, 1, 1000), { ok: true, tat: 0 });
    assert.deepEqual(admit(limit, 2, 1000), { ok: false, why: 'concurrency', retryAfterMs: null });
  });

  it('refuses every start of a paused key (concurrency 0), whatever runs and whatever the rate, and asks again in a second', () => {
    const paused = { ok: false, why: 'paused', retryAfterMs: PAUSED_RECHECK_MS } as const;
    assert.deepEqual(admit({ concurrency: 0, rate: null, tat: 0 }, 0, 1000), paused);
    assert.deepEqual(admit({ concurrency: 0, rate: { max: 10, intervalMs: 1000 }, tat: 0 }, 0, 1000), paused, 'the rate is not consulted, nor moved');
    assert.deepEqual(admit({ concurrency: 0, rate: null, tat: 0 }, 3, 1000), paused, 'attempts started before the pause');
  });

  it('spaces starts one step apart and says when the next is allowed', () => {
    const rate = { max: 3, intervalMs: 1000 };
    assert.equal(rateStep(rate), 334, 'rounded up: never more than max per interval');
    const first = admit({ concurrency: null, rate, tat: 0 }, 0, 5000);
    assert.deepEqual(first, { ok: true, tat: 5334 });
    assert.deepEqual(admit({ concurrency: null, rate, tat: 5334 }, 0, 5100), { ok: false, why: 'rate', retryAfterMs: 234 });
    assert.deepEqual(admit({ concurrency: null, rate, tat: 5334 }, 0, 5334), { ok: true, tat: 5668 });
  });

  it('never lets more than max starts into any window of the interval, nor more than the cap run at once (none at a cap of 0)', () => {
    const step = fc.record({ dt: fc.integer({ min: 0, max: 400 }), ends: fc.integer({ min: 0, max: 3 }) });
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 2000 }), fc.array(step, { maxLength: 200 }),
      (concurrency, max, intervalMs, steps) => {
        const spec: LimitSpec = { concurrency, rate: { max, intervalMs } };
        let tat = 0;
        let now = 0;
        let running = 0;
        const starts: number[] = [];
        for (const s of steps) {
          now += s.dt;
          running = Math.max(0, running - s.ends);
          const a = admit({ ...spec, tat }, running, now);
          if (!a.ok) continue;
          tat = a.tat;
          running++;
          starts.push(now);
          assert.ok(running <= concurrency);
        }
        if (concurrency === 0) assert.deepEqual(starts, [], 'a paused key starts nothing');
        for (let i = max; i < starts.length; i++) assert.ok(starts[i]! - starts[i - max]! >= intervalMs, `start ${i} too close`);
      },
    ));
  });
});

describe('rateChangeShift', () => {
  it('moves the rate state by the change of step; none without a rate before or after', () => {
    assert.equal(rateChangeShift({ max: 1, intervalMs: 3_600_000 }, { max: 10, intervalMs: 1000 }), 100 - 3_600_000);
    assert.equal(rateChangeShift({ max: 10, intervalMs: 1000 }, { max: 1, intervalMs: 1000 }), 900);
    assert.equal(rateChangeShift({ max: 3, intervalMs: 1000 }, { max: 3, intervalMs: 1000 }), 0);
    assert.equal(rateChangeShift(null, { max: 1, intervalMs: 1000 }), 0);
    assert.equal(rateChangeShift({ max: 1, intervalMs: 1000 }, null), 0);
  });

  it('a replaced limit keeps its rate state moved by the change; cleared when it had no rate or has none now; none stays none', () => {
    const hourly = { max: 1, intervalMs: 3_600_000 };
    const fast = { max: 10, intervalMs: 1000 };
    assert.equal(replacedTat({ rate: hourly, tat: 5_000_000 }, fast), 5_000_000 + 100 - 3_600_000);
    assert.equal(replacedTat({ rate: hourly, tat: 0 }, fast), 0, 'no start yet: nothing to move');
    assert.equal(replacedTat({ rate: hourly, tat: 5_000_000 }, null), 0, 'lifted');
    assert.equal(replacedTat({ rate: null, tat: 5_000_000 }, fast), 0, 'a state left without a rate is not kept');
  });

  it('after a change of rate, the next start comes one new step after the last start: no sooner, and no later when tried', () => {
    const rate = fc.record({ max: fc.integer({ min: 1, max: 8 }), intervalMs: fc.integer({ min: 1, max: 5000 }) });
    fc.assert(fc.property(rate, rate, fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 6000 }), (r1, r2, before, changeAfter) => {
      // Claims tried every ms: `before` starts under r1, then the rate changes `changeAfter` ms after the last one.
      let tat = 0;
      let now = 1_000_000;
      const starts: number[] = [];
      while (starts.length < before) {
        const a = admit({ concurrency: null, rate: r1, tat }, 0, now);
        if (a.ok) {
          tat = a.tat;
          starts.push(now);
        }
        now++;
      }
      const last = starts.at(-1)!;
      const change = last + changeAfter;
      tat += rateChangeShift(r1, r2);
      for (now = Math.max(now, change); ; now++) {
        const a = admit({ concurrency: null, rate: r2, tat }, 0, now);
        if (a.ok) break;
      }
      assert.equal(now, Math.max(change, last + rateStep(r2), last + 1), `next start at ${now - last} ms after the last`);
    }));
  });
});

describe('limitKeyOf', () => {
  const D = DEFAULT_TENANT;
  it('takes the job\'s own key, else the type\'s limit, else the queue\'s', () => {
    const all = () => true;
    assert.equal(limitKeyOf({ tenant: D, type: 't', queue: 'q', concurrencyKey: 'own' }, all), 'own');
    assert.equal(limitKeyOf({ tenant: D, type: 't', queue: 'q' }, all), 'type:t');
    assert.equal(limitKeyOf({ tenant: D, type: 't', queue: 'q' }, (k) => k === 'queue:q'), 'queue:q');
    assert.equal(limitKeyOf({ tenant: D, type: 't', queue: 'q' }, () => false), undefined);
  });

  it('names the limit of the job\'s own tenant: another tenant\'s limit of the same key is not it', () => {
    assert.equal(limitKeyOf({ tenant: 'acme', type: 't', queue: 'q', concurrencyKey: 'email' }, () => false), 'acme/email');
    // The default tenant's `type:t` and `queue:q` exist; acme's do not: no default limit for acme's job.
    const defaults = (k: string) => k === 'type:t' || k === 'queue:q';
    assert.equal(limitKeyOf({ tenant: 'acme', type: 't', queue: 'q' }, defaults), undefined);
    assert.equal(limitKeyOf({ tenant: D, type: 't', queue: 'q' }, defaults), 'type:t');
    assert.equal(limitKeyOf({ tenant: 'acme', type: 't', queue: 'q' }, (k) => k === 'acme/queue:q' || k === 'globex/type:t'), 'acme/queue:q');
  });

  it('stored keys: the default tenant\'s bare, another\'s qualified; split gives both back, and no two tenants\' keys meet', () => {
    assert.equal(storedLimitKey(D, 'email'), 'email');
    assert.equal(storedLimitKey('acme', 'email'), 'acme/email');
    assert.deepEqual(splitLimitKey('email'), { tenant: D, key: 'email' });
    assert.deepEqual(splitLimitKey('acme/type:a.b'), { tenant: 'acme', key: 'type:a.b' });
    const tenant = fc.oneof(fc.constant(D), fc.stringMatching(TENANT_PATTERN));
    const key = fc.stringMatching(/^[A-Za-z0-9._:-]{1,200}$/);
    fc.assert(fc.property(tenant, key, tenant, key, (t1, k1, t2, k2) => {
      assert.deepEqual(splitLimitKey(storedLimitKey(t1, k1)), { tenant: t1, key: k1 });
      if (t1 !== t2 || k1 !== k2) assert.notEqual(storedLimitKey(t1, k1), storedLimitKey(t2, k2));
    }));
  });
});

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});
const started = (attempt: number, leaseUntil: number) => ({ type: 'STARTED' as const, attempt, leaseUntil, workerId: 'w' });
const outcome = (r: ApplyResult) => (r.ok ? 'started' : r.reason);

for (const backend of STORE_BACKENDS) {
  describe(`limits on ${backend.name}`, { timeout: 60_000 }, () => {
    const withService = async (fn: (s: { store: Awaited<ReturnType<typeof backend.open>>['store']; svc: TransitionService; clock: ManualClock }) => Promise<void>) => {
      const { store, cleanup } = await backend.open();
      try {
        await store.migrate();
        const clock = new ManualClock();
        await clock.advance(1_000_000);
        const svc = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds() });
        await fn({ store, svc, clock });
      } finally {
        await cleanup();
      }
    };
    const submit = async (svc: TransitionService, n: number, o: Partial<JobSpec>) =>
      (await svc.submitMany(Array.from({ length: n }, () => spec(o)))).map((r) => {
        assert.ok(r.ok);
        return r.job.id;
      });

    it('admits claims of a key up to its concurrency, in one batch and across batches; an ended attempt frees its slot', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('mail', { concurrency: 2, rate: null }, clock.now());
      const ids = await submit(svc, 4, { concurrencyKey: 'mail' });
      const lease = clock.now() + 30_000;
      const first = await svc.applyMany(ids.slice(0, 3).map((jobId) => ({ jobId, event: started(1, lease) })));
      assert.deepEqual(first.map(outcome), ['started', 'started', 'throttled']);
      const refused = first[2]!;
      assert.ok(!refused.ok && refused.reason === 'throttled' && refused.retryAfterMs === null);
      assert.equal((await store.getJob(ids[2]!))!.snapshot.context.attempt, 0, 'a refused claim spends no attempt');
      assert.equal(outcome(await svc.apply(ids[3]!, started(1, lease))), 'throttled');
      assert.deepEqual([...(await store.runningByKey(['mail'], clock.now()))], [['mail', 2]]);
      assert.ok((await svc.apply(ids[0]!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal(outcome(await svc.apply(ids[2]!, started(1, lease))), 'started');
      assert.equal(outcome(await svc.apply(ids[3]!, started(1, lease))), 'throttled');
    }));

    it('a paused key (concurrency 0) admits no claim, says why, and keeps its rate state; resumed with the same rate, the next start is spaced from the last', () => withService(async ({ store, svc, clock }) => {
      const rate = { max: 1, intervalMs: 1000 };
      await store.putLimit('held', { concurrency: null, rate }, clock.now());
      const [first, ...ids] = await submit(svc, 3, { concurrencyKey: 'held' });
      const lease = clock.now() + 30_000;
      assert.equal(outcome(await svc.apply(first!, started(1, lease))), 'started');
      const tat = (await store.getLimit('held'))!.tat;
      assert.equal(tat, clock.now() + 1000, 'the rate moved by the start');
      await store.putLimit('held', { concurrency: 0, rate }, clock.now());
      await clock.advance(2000);
      const refused = await svc.applyMany(ids.map((jobId) => ({ jobId, event: started(1, lease) })));
      for (const r of refused) {
        assert.ok(!r.ok && r.reason === 'throttled');
        assert.equal(r.why, 'paused', 'the rate would allow one: the pause refuses it');
        assert.equal(r.retryAfterMs, PAUSED_RECHECK_MS);
      }
      assert.equal((await store.getLimit('held'))!.tat, tat, 'a paused claim does not move the rate');
      await store.putLimit('held', { concurrency: null, rate }, clock.now());
      assert.deepEqual((await svc.applyMany(ids.map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'throttled'],
        'resumed: one start, the next one step after it');
    }));

    it('when a key\'s running attempts started: earliest first, as many as asked, without the ended ones or those whose lease is over', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('k', { concurrency: 5, rate: null }, clock.now());
      const [a, b, c, d] = await submit(svc, 4, { concurrencyKey: 'k' });
      const t0 = clock.now();
      assert.equal(outcome(await svc.apply(b!, started(1, t0 + 10_000))), 'started');
      await clock.advance(100);
      assert.equal(outcome(await svc.apply(a!, started(1, t0 + 10_000))), 'started');
      await clock.advance(100);
      assert.equal(outcome(await svc.apply(c!, started(1, t0 + 250))), 'started');
      await clock.advance(100);
      assert.equal(outcome(await svc.apply(d!, started(1, t0 + 10_000))), 'started');
      assert.deepEqual(await store.runningStarts('k', clock.now(), 10), [t0, t0 + 100, t0 + 300], 'c\'s lease is over');
      assert.deepEqual(await store.runningStarts('k', clock.now(), 2), [t0, t0 + 100]);
      assert.ok((await svc.apply(b!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.deepEqual(await store.runningStarts('k', clock.now(), 10), [t0 + 100, t0 + 300], 'b ended');
      assert.deepEqual(await store.runningStarts('nobody', clock.now(), 10), []);
      // A retry: its second attempt's start, not its first's.
      assert.ok((await svc.apply(a!, { type: 'FAILED', attempt: 1, error: { message: 'boom', retryable: true }, delayMs: 0 })).ok);
      await clock.advance(100);
      assert.ok((await svc.apply(a!, { type: 'RETRY_DUE' })).ok);
      assert.equal(outcome(await svc.apply(a!, started(2, clock.now() + 10_000))), 'started');
      assert.deepEqual(await store.runningStarts('k', clock.now(), 10), [t0 + 300, t0 + 400]);
    }));

    it('a running attempt whose lease is over no longer counts (its worker died)', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('k', { concurrency: 1, rate: null }, clock.now());
      const [a, b] = await submit(svc, 2, { concurrencyKey: 'k' });
      assert.equal(outcome(await svc.apply(a!, started(1, clock.now() + 1000))), 'started');
      assert.equal(outcome(await svc.apply(b!, started(1, clock.now() + 1000))), 'throttled');
      await clock.advance(1001);
      assert.equal((await store.getJob(a!))!.snapshot.value, 'running', 'the timers have not expired it yet');
      assert.equal(outcome(await svc.apply(b!, started(1, clock.now() + 1000))), 'started');
    }));

    it('a heartbeat after its lease ended is refused, so that attempt cannot run beside the one that took its slot', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('k', { concurrency: 1, rate: null }, clock.now());
      const [a, b, c] = await submit(svc, 3, { concurrencyKey: 'k' });
      assert.equal(outcome(await svc.apply(a!, started(1, clock.now() + 1000))), 'started');
      assert.ok((await svc.apply(a!, { type: 'HEARTBEAT', attempt: 1, leaseUntil: clock.now() + 1000 })).ok, 'within its lease');
      await clock.advance(1000); // a's heartbeats fail for the rest of its lease
      assert.equal(outcome(await svc.apply(b!, started(1, clock.now() + 30_000))), 'started');
      const before = (await store.getJob(a!))!;
      const late = await svc.apply(a!, { type: 'HEARTBEAT', attempt: 1, leaseUntil: clock.now() + 30_000 });
      assert.equal(outcome(late), 'lease-ended');
      assert.deepEqual(await store.getJob(a!), before, 'nothing written');
      assert.ok((await svc.apply(b!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      // a's lease is over and b has ended: c may run (a may not come back to life beside it).
      assert.equal(outcome(await svc.apply(c!, started(1, clock.now() + 30_000))), 'started');
      assert.equal(outcome(await svc.apply(a!, { type: 'HEARTBEAT', attempt: 1, leaseUntil: clock.now() + 30_000 })), 'lease-ended');
    }));

    it('a heartbeat stamped before its lease ended but written after another claim took the slot: that attempt counts again', () => withService(async ({ store, svc, clock }) => {
      // The other worker's claim is stamped 2 ms later than this heartbeat: it is written first, then the heartbeat.
      const later = new ManualClock();
      await later.advance(clock.now());
      const other = new TransitionService({ store, clock: later, random: mathRandom, ids: ulidIds() });
      await store.putLimit('k', { concurrency: 1, rate: null }, clock.now());
      const [a, b, c] = await submit(svc, 3, { concurrencyKey: 'k' });
      assert.equal(outcome(await svc.apply(a!, started(1, clock.now() + 1000))), 'started');
      await clock.advance(999);
      await later.advance(1001);
      assert.equal(outcome(await other.apply(b!, started(1, later.now() + 30_000))), 'started', 'a\'s lease is over at b\'s claim');
      assert.ok((await svc.apply(a!, { type: 'HEARTBEAT', attempt: 1, leaseUntil: clock.now() + 30_000 })).ok, 'within its lease when stamped');
      // a runs on with a lease that holds: it counts, beside b, and c waits for both.
      assert.deepEqual([...(await store.runningByKey(['k'], later.now()))], [['k', 2]]);
      assert.ok((await other.apply(b!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal(outcome(await other.apply(c!, started(1, later.now() + 30_000))), 'throttled');
      assert.ok((await svc.apply(a!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal(outcome(await other.apply(c!, started(1, later.now() + 30_000))), 'started');
    }));

    it('spaces the starts of a rated key and says when the next may go', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('api', { concurrency: null, rate: { max: 2, intervalMs: 1000 } }, clock.now());
      const [a, b, c] = await submit(svc, 3, { concurrencyKey: 'api' });
      const lease = clock.now() + 30_000;
      const r = await svc.applyMany([a!, b!].map((jobId) => ({ jobId, event: started(1, lease) })));
      assert.deepEqual(r.map(outcome), ['started', 'throttled']);
      assert.ok(!r[1]!.ok && r[1]!.reason === 'throttled' && r[1]!.retryAfterMs === 500);
      await clock.advance(499);
      assert.equal(outcome(await svc.apply(b!, started(1, lease))), 'throttled');
      await clock.advance(1);
      assert.equal(outcome(await svc.apply(b!, started(1, lease))), 'started');
      assert.equal(outcome(await svc.apply(c!, started(1, lease))), 'throttled');
      // Replacing the limit keeps its rate state.
      const { limit, created } = await store.putLimit('api', { concurrency: 5, rate: { max: 2, intervalMs: 1000 } }, clock.now());
      assert.equal(created, false);
      assert.equal(limit.tat, clock.now() + 500);
    }));

    it('a rate changed mid-interval spaces the next start by the new step from the last start, whether faster or slower', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('api', { concurrency: null, rate: { max: 1, intervalMs: 3_600_000 } }, clock.now());
      const [a, b, c, d] = await submit(svc, 4, { concurrencyKey: 'api' });
      const lease = clock.now() + 30_000;
      assert.equal(outcome(await svc.apply(a!, started(1, lease))), 'started');
      const lastStart = clock.now();
      await clock.advance(10);
      // One an hour, then ten a second: the next may start 100 ms after the last, not an hour after it.
      assert.equal((await store.putLimit('api', { concurrency: null, rate: { max: 10, intervalMs: 1000 } }, clock.now())).limit.tat, lastStart + 100);
      const early = await svc.apply(b!, started(1, lease));
      assert.ok(!early.ok && early.reason === 'throttled' && early.retryAfterMs === 90, JSON.stringify(!early.ok && early.reason === 'throttled' && early.retryAfterMs));
      await clock.advance(90);
      assert.equal(outcome(await svc.apply(b!, started(1, lease))), 'started');
      // Ten a second, then one a second: the next waits a second after the last start, not 100 ms.
      const secondStart = clock.now();
      await store.putLimit('api', { concurrency: null, rate: { max: 1, intervalMs: 1000 } }, clock.now());
      await clock.advance(100);
      const slow = await svc.apply(c!, started(1, lease));
      assert.ok(!slow.ok && slow.reason === 'throttled' && slow.retryAfterMs === 900);
      await clock.advance(900);
      assert.equal(clock.now(), secondStart + 1000);
      assert.equal(outcome(await svc.apply(c!, started(1, lease))), 'started');
      // The same rate again, or a change of its concurrency only: the state stays.
      const tat = (await store.getLimit('api'))!.tat;
      assert.equal((await store.putLimit('api', { concurrency: 3, rate: { max: 1, intervalMs: 1000 } }, clock.now())).limit.tat, tat);
      assert.equal(outcome(await svc.apply(d!, started(1, lease))), 'throttled');
    }));

    it('a rate lifted (a PUT without one) and set again later does not hold the key\'s starts back by the lifted rate', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('api', { concurrency: null, rate: { max: 1, intervalMs: 86_400_000 } }, clock.now());
      const [a, b, c] = await submit(svc, 3, { concurrencyKey: 'api' });
      const lease = () => clock.now() + 30_000;
      assert.equal(outcome(await svc.apply(a!, started(1, lease()))), 'started');
      await clock.advance(10);
      // One a day, lifted, then ten a second: the next start waits on no day-long step.
      assert.equal((await store.putLimit('api', { concurrency: 5, rate: null }, clock.now())).limit.tat, 0);
      assert.equal((await store.putLimit('api', { concurrency: null, rate: { max: 10, intervalMs: 1000 } }, clock.now())).limit.tat, 0);
      await clock.advance(1000);
      assert.equal(outcome(await svc.apply(b!, started(1, lease()))), 'started');
      // And the new rate spaces the starts from then on.
      const next = await svc.apply(c!, started(1, lease()));
      assert.ok(!next.ok && next.reason === 'throttled' && next.retryAfterMs === 100);
    }));

    it('a key without a limit, and a job without a key, are not limited; deleting a limit lifts it', () => withService(async ({ store, svc, clock }) => {
      const lease = clock.now() + 30_000;
      const free = await submit(svc, 3, { concurrencyKey: 'nobody-set-this' });
      const plain = await submit(svc, 2, {});
      assert.deepEqual((await svc.applyMany([...free, ...plain].map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), Array(5).fill('started'));
      assert.equal((await store.putLimit('gone', { concurrency: 1, rate: null }, clock.now())).created, true);
      const [x, y] = await submit(svc, 2, { concurrencyKey: 'gone' });
      assert.deepEqual((await svc.applyMany([x!, y!].map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'throttled']);
      assert.equal(await store.deleteLimit('gone'), true);
      assert.equal(await store.deleteLimit('gone'), false);
      assert.equal(outcome(await svc.apply(y!, started(1, lease))), 'started');
    }));

    it('a job without a key counts against its type\'s limit, else its queue\'s, once the directory has read them', () => withService(async ({ store, clock }) => {
      const directory = new LimitDirectory({ store, clock, logger: silentLogger }, 1000);
      const svc = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), limits: directory });
      await directory.start();
      try {
        await store.putLimit('type:demo.echo', { concurrency: 1, rate: null }, clock.now());
        await store.putLimit('queue:bulk', { concurrency: 1, rate: null }, clock.now());
        const lease = clock.now() + 30_000;
        const echo = await submit(svc, 2, {});
        assert.deepEqual((await svc.applyMany(echo.map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'started'],
          'not yet read: no default applies');
        await clock.advance(1000);
        const [a, b] = await submit(svc, 2, {});
        assert.deepEqual((await svc.applyMany([a!, b!].map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'throttled'],
          'the two attempts started before the limit was read do not count; of two after it, one starts');
        const bulk = await submit(svc, 2, { type: 'demo.other', queue: 'bulk' });
        assert.deepEqual((await svc.applyMany(bulk.map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'throttled']);
        const own = await submit(svc, 2, { concurrencyKey: 'free' });
        assert.deepEqual((await svc.applyMany(own.map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'started'],
          'a job\'s own key, without a limit, is not limited by its type\'s');
      } finally {
        await directory.stop();
      }
    }));

    it('a limit holds only its own tenant\'s jobs of the key: another tenant\'s jobs of it neither count nor wait', () => withService(async ({ store, svc, clock }) => {
      const lease = clock.now() + 30_000;
      await store.putLimit(storedLimitKey('acme', 'email'), { concurrency: 1, rate: null }, clock.now());
      const acme = await submit(svc, 2, { tenant: 'acme', concurrencyKey: 'email' });
      const globex = await submit(svc, 2, { tenant: 'globex', concurrencyKey: 'email' });
      const plain = await submit(svc, 2, { concurrencyKey: 'email' });
      // One batch, as a worker claims: acme's second waits; globex's and the default tenant's (no limit of theirs) all start.
      const r = await svc.applyMany([acme[0]!, globex[0]!, plain[0]!, acme[1]!, globex[1]!, plain[1]!].map((jobId) => ({ jobId, event: started(1, lease) })));
      assert.deepEqual(r.map(outcome), ['started', 'started', 'started', 'throttled', 'started', 'started']);
      assert.ok(!r[3]!.ok && r[3]!.reason === 'throttled' && r[3]!.key === 'acme/email');
      assert.deepEqual([...(await store.runningByKey(['acme/email', 'email', 'globex/email'], clock.now()))], [['acme/email', 1]]);
      // The default tenant's limit of the key holds the default tenant's jobs, and still not acme's.
      await store.putLimit('email', { concurrency: 1, rate: null }, clock.now());
      const [d1, d2] = await submit(svc, 2, { concurrencyKey: 'email' });
      assert.deepEqual((await svc.applyMany([d1!, d2!].map((jobId) => ({ jobId, event: started(1, lease) })))).map(outcome), ['started', 'throttled']);
      assert.equal(outcome(await svc.apply(acme[1]!, started(1, lease))), 'throttled');
      assert.ok((await svc.apply(acme[0]!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal(outcome(await svc.apply(acme[1]!, started(1, lease))), 'started');
    }));

    it('a tenant\'s default limits (type:, queue:) hold only its own jobs', () => withService(async ({ store, clock }) => {
      const directory = new LimitDirectory({ store, clock, logger: silentLogger }, 1000);
      const svc = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), limits: directory });
      await store.putLimit(storedLimitKey('acme', 'type:demo.echo'), { concurrency: 1, rate: null }, clock.now());
      await directory.start();
      try {
        const lease = clock.now() + 30_000;
        const acme = await submit(svc, 2, { tenant: 'acme' });
        const globex = await submit(svc, 2, { tenant: 'globex' });
        const plain = await submit(svc, 2, {});
        const r = await svc.applyMany([...acme, ...globex, ...plain].map((jobId) => ({ jobId, event: started(1, lease) })));
        assert.deepEqual(r.map(outcome), ['started', 'throttled', 'started', 'started', 'started', 'started']);
      } finally {
        await directory.stop();
      }
    }));

    it('lists one tenant\'s limits (the default tenant\'s: the bare keys), or every tenant\'s', () => withService(async ({ store, svc, clock }) => {
      // Tenants whose names sort right beside acme's keys: `acme-x` and `acme.x` before `acme/`, `acme0` after.
      const keys = [['default', 'email'], ['acme', 'email'], ['acme', 'type:t'], ['acme-x', 'email'], ['acme.x', 'email'], ['acme0', 'email'], ['acm', 'email'], ['globex', 'a']];
      for (const [tenant, key] of keys) await store.putLimit(storedLimitKey(tenant!, key!), { concurrency: 1, rate: null }, clock.now());
      const listed = async (tenant?: string) => (await store.listLimits(100, tenant)).map((l) => l.key);
      assert.deepEqual(await listed('acme'), ['acme/email', 'acme/type:t']);
      assert.deepEqual(await listed(DEFAULT_TENANT), ['email']);
      assert.deepEqual(await listed('acme0'), ['acme0/email']);
      assert.deepEqual(await listed('acme.x'), ['acme.x/email']);
      assert.deepEqual(await listed('nobody'), []);
      assert.equal((await listed()).length, keys.length);
      assert.deepEqual(await store.getLimit('acme/email').then((l) => l?.key), 'acme/email');
      assert.equal(await store.getLimit('nobody/email'), null);
      // The longest tenant name and key fit the stored key, in the limit and in its running attempts.
      const longest = storedLimitKey('t'.repeat(63), 'k'.repeat(200));
      assert.equal((await store.putLimit(longest, { concurrency: 1, rate: null }, clock.now())).limit.key, longest);
      assert.deepEqual(await listed('t'.repeat(63)), [longest]);
      const [j] = await submit(svc, 1, { tenant: 't'.repeat(63), concurrencyKey: 'k'.repeat(200) });
      assert.equal(outcome(await svc.apply(j!, started(1, clock.now() + 30_000))), 'started');
      assert.deepEqual([...(await store.runningByKey([longest], clock.now()))], [[longest, 1]]);
    }));

    it('lists limits by key, and a deleted job leaves no running row behind', () => withService(async ({ store, svc, clock }) => {
      await store.putLimit('b', { concurrency: 1, rate: null }, clock.now());
      await store.putLimit('a', { concurrency: null, rate: { max: 1, intervalMs: 10 } }, clock.now());
      assert.deepEqual((await store.listLimits(10)).map((l) => [l.key, l.concurrency, l.rate]), [['a', null, { max: 1, intervalMs: 10 }], ['b', 1, null]]);
      const [j] = await submit(svc, 1, { concurrencyKey: 'b' });
      assert.equal(outcome(await svc.apply(j!, started(1, clock.now() + 30_000))), 'started');
      assert.ok((await svc.apply(j!, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal((await store.deleteJob(j!)).ok, true);
      assert.equal((await store.runningByKey(['b'], clock.now())).size, 0);
    }));
  });
}
