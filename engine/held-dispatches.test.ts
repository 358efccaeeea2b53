/**
 * The held dispatches' rule alone (engine/held-dispatches.ts): which of a
 * key's held dispatches are claimed when, with the time passed in.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { admit, PAUSED_RECHECK_MS, type LimitSpec } from './limits.js';
import { HeldDispatches, THROTTLE_RETRY_FIRST_MS, type Round } from './held-dispatches.js';
import type { DispatchMessage } from './messages.js';

const dispatch = (jobId: string, priority = 0): DispatchMessage =>
  ({ jobId, attempt: 1, type: 't', queue: 'default', priority }) as unknown as DispatchMessage;

/** Holds `n` dispatches of `key` (`<key>-<i>`), refused as `why` at `now`. */
function holdMany(held: HeldDispatches, key: string, n: number, why: 'paused' | 'concurrency' | 'rate', now: number, retryAfterMs: number | null = null): string[] {
  const ids = Array.from({ length: n }, (_, i) => `${key}-${i}`);
  for (const id of ids) held.hold(dispatch(id), undefined, key, why, retryAfterMs, now);
  return ids;
}

const idsOf = (round: Round | null): string[] => round?.due.map((h) => h.message.jobId) ?? [];

/** Claims a round: those in `start` start, those in `refuse` are refused again as `why` at `now`, the rest went. */
function claim(held: HeldDispatches, round: Round, now: number, start: (id: string) => boolean, why: 'paused' | 'concurrency' | 'rate' = 'concurrency'): void {
  const started = new Map<string, number>();
  for (const h of round.due) {
    if (start(h.message.jobId)) started.set(h.message.jobId, 1);
    else held.hold(h.message, undefined, h.key, why, why === 'paused' ? PAUSED_RECHECK_MS : null, now);
  }
  held.settle(round, started);
}

describe('held dispatches', () => {
  it('once a key\'s wait is over, one asks; each round whose claims all started doubles, until one is refused and the others wait again', () => {
    const held = new HeldDispatches();
    holdMany(held, 'k', 100, 'concurrency', 0);
    assert.equal(held.take(THROTTLE_RETRY_FIRST_MS - 1), null, 'not due yet');
    const sizes: number[] = [];
    let now = THROTTLE_RETRY_FIRST_MS;
    let round = held.take(now);
    // Room for 10 more starts: rounds of 1, 2, 4, then 8 of which 3 start.
    let room = 10;
    while (round) {
      sizes.push(round.due.length);
      claim(held, round, now, () => room-- > 0);
      round = held.take(now);
    }
    assert.deepEqual(sizes, [1, 2, 4, 8]);
    assert.equal(held.size, 90);
    // The 5 refused, and the 85 never asked, wait out the refusal's pause together: one asks when it ends.
    const next = held.nextAt();
    assert.ok(next > now);
    now = next;
    assert.equal(idsOf(held.take(now)).length, 1);
  });

  it('an attempt ending here frees one claim of its key at once, not the whole backlog, and none of a paused key', () => {
    const held = new HeldDispatches();
    holdMany(held, 'one', 50, 'concurrency', 0);
    holdMany(held, 'off', 50, 'paused', 0, PAUSED_RECHECK_MS);
    assert.equal(held.freed(['one', 'off', 'unheld']), true);
    const round = held.take(1);
    assert.deepEqual(idsOf(round), ['one-0']);
    claim(held, round!, 1, () => true);
    // A freed slot that was taken does not grow into more claims.
    assert.equal(held.take(1), null);
    assert.equal(held.freed(['off']), false, 'no attempt ending lets a paused key start');
    assert.equal(held.freed(['one']), true);
    assert.equal(held.freed(['one']), true);
    assert.deepEqual(idsOf(held.take(2)), ['one-1', 'one-2'], 'two ended, two go');
  });

  it('a claim whose job went meanwhile passes its turn to the key\'s next, at once', () => {
    const held = new HeldDispatches();
    holdMany(held, 'p', 5, 'paused', 0, PAUSED_RECHECK_MS);
    let now = PAUSED_RECHECK_MS;
    const first = held.take(now);
    assert.deepEqual(idsOf(first), ['p-0']);
    claim(held, first!, now, () => false, 'paused');
    // p-0 was held again (refused as paused): the rest wait a second with it.
    assert.equal(held.take(now), null);
    assert.equal(held.nextAt(), now + PAUSED_RECHECK_MS);
    now += PAUSED_RECHECK_MS;
    const second = held.take(now);
    assert.deepEqual(idsOf(second), ['p-0'], 'refused, it kept its place: the longest held asks again');
    // p-0's job was cancelled: its claim neither started nor was refused.
    held.settle(second!, new Map());
    assert.equal(held.nextAt(), -Infinity, 'the next asks at once');
    assert.deepEqual(idsOf(held.take(now)), ['p-1', 'p-2'], 'two at once: a claim whose job went cost no refusal');
  });

  it('an attempt that ends while a round of its key is claimed still frees a claim after it', () => {
    const held = new HeldDispatches();
    holdMany(held, 'k', 10, 'concurrency', 0);
    const round = held.take(THROTTLE_RETRY_FIRST_MS)!;
    assert.deepEqual(idsOf(round), ['k-0']);
    assert.deepEqual(held.jobIds().length, 9, 'the one being claimed is not kept from the timers by this worker twice');
    assert.equal(held.freed(['k']), true);
    const started = new Map([['k-0', 1]]);
    held.settle({ ...round, keys: new Map([...round.keys].map(([k, v]) => [k, { ...v, grow: false }])) }, started);
    assert.deepEqual(idsOf(held.take(THROTTLE_RETRY_FIRST_MS)), ['k-1']);
  });

  it('a duplicate of a dispatch refused while its round waits is let go once the round started it; one of a later attempt stays', () => {
    const held = new HeldDispatches();
    holdMany(held, 'k', 3, 'concurrency', 0);
    const round = held.take(THROTTLE_RETRY_FIRST_MS)!;
    assert.deepEqual(idsOf(round), ['k-0']);
    // The same dispatch delivered again, refused meanwhile (the slot was taken then); and a later attempt's of k-1.
    held.hold(dispatch('k-0'), undefined, 'k', 'concurrency', null, 60);
    // The round's claim of k-0 started it.
    held.settle(round, new Map([['k-0', 1]]));
    assert.deepEqual(held.jobIds(), ['k-1', 'k-2'], 'k-0 runs: not held, and not handed back at a stop');
    assert.equal(held.nextAt(), -Infinity, 'not read as a refusal: the key asks again at once, twice as many');
    const later = held.take(THROTTLE_RETRY_FIRST_MS)!;
    held.hold({ ...dispatch('k-1'), attempt: 2 }, undefined, 'k', 'concurrency', null, 60);
    held.settle(later, new Map([['k-1', 1], ['k-2', 1]]));
    assert.deepEqual(held.jobIds(), ['k-1'], 'attempt 2 of k-1 was refused: held');
  });

  it('the best of a key asks first: highest priority, then longest held', () => {
    const held = new HeldDispatches();
    held.hold(dispatch('low-old', 0), undefined, 'k', 'rate', 100, 0);
    held.hold(dispatch('high', 5), undefined, 'k', 'rate', 100, 1);
    held.hold(dispatch('low-new', 0), undefined, 'k', 'rate', 100, 2);
    const round = held.take(200);
    assert.deepEqual(idsOf(round), ['high']);
    claim(held, round!, 200, () => true);
    assert.deepEqual(idsOf(held.take(200)), ['low-old', 'low-new']);
  });

  it('keys are asked about apart: one key refused leaves another\'s turn alone', () => {
    const held = new HeldDispatches();
    holdMany(held, 'a', 3, 'rate', 0, 10);
    holdMany(held, 'b', 3, 'rate', 0, 10);
    const round = held.take(10);
    assert.deepEqual(idsOf(round).sort(), ['a-0', 'b-0']);
    claim(held, round!, 10, (id) => id.startsWith('b'), 'rate');
    assert.deepEqual(idsOf(held.take(10)), ['b-1', 'b-2']);
  });

  it('keeps at most its count, dropping the oldest; a failed round is held again', () => {
    const held = new HeldDispatches(3);
    holdMany(held, 'k', 3, 'concurrency', 0);
    assert.equal(held.hold(dispatch('k-3'), undefined, 'k', 'concurrency', null, 0), 'k-0');
    assert.deepEqual(held.jobIds(), ['k-1', 'k-2', 'k-3']);
    const round = held.take(THROTTLE_RETRY_FIRST_MS)!;
    held.restore(round, 1000);
    assert.equal(held.size, 3);
    assert.equal(held.nextAt(), 1000, 'the key waits until 1000');
    assert.deepEqual(held.jobIds(), ['k-1', 'k-2', 'k-3'], 'in their places');
    assert.deepEqual(idsOf(held.take(1000)), ['k-1']);
    held.clear();
    assert.equal(held.size, 0);
    assert.equal(held.nextAt(), Infinity);
  });
});

describe('held dispatches against a model of the limits', () => {
  /** What happens next: a dispatch arrives, a running attempt ends, a limit changes, a job is cancelled, time passes. */
  const op = fc.oneof(
    fc.record({ kind: fc.constant('arrive' as const), key: fc.integer({ min: 0, max: 2 }), priority: fc.integer({ min: -1, max: 1 }) }),
    fc.record({ kind: fc.constant('end' as const), pick: fc.nat() }),
    fc.record({
      kind: fc.constant('limit' as const), key: fc.integer({ min: 0, max: 2 }),
      concurrency: fc.option(fc.integer({ min: 0, max: 3 })), rate: fc.option(fc.record({ max: fc.integer({ min: 1, max: 3 }), intervalMs: fc.integer({ min: 1, max: 2000 }) })),
    }),
    fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 1500 }) }),
  );

  it('never spins, never strands a dispatch, starts none over its limit', () => {
    // `endsMidRound`: attempts also end while a round is claimed (a worker's handlers end whenever they end).
    fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 150, size: 'max' }), fc.boolean(), (ops, endsMidRound) => {
      const held = new HeldDispatches();
      const limits = new Map<string, LimitSpec & { tat: number }>();
      const running: Array<{ id: string; key: string }> = [];
      const gone = new Set<string>();
      let now = 0;
      let n = 0;
      const runningOf = (key: string) => running.filter((r) => r.key === key).length;
      /** A claim as the store makes it: admitted (running), refused (held again), or its job gone. */
      const claimOne = (id: string, key: string, priority: number, started: Map<string, number>): void => {
        if (gone.has(id)) return;
        const limit = limits.get(key);
        const a = limit ? admit(limit, runningOf(key), now) : { ok: true as const, tat: 0 };
        if (a.ok) {
          if (limit) limit.tat = a.tat;
          running.push({ id, key });
          started.set(id, 1);
          const cap = limit?.concurrency;
          assert.ok(cap === null || cap === undefined || runningOf(key) <= cap, 'none over its concurrency');
          return;
        }
        held.hold(dispatch(id, priority), undefined, key, a.why, a.retryAfterMs, now);
      };
      /** The worker's loop at `now`: rounds until none is due; bounded, or it spins. */
      const rounds = () => {
        for (let k = 0; ; k++) {
          assert.ok(k <= 4 * held.size + 64, `spins: ${k} rounds at ${now} with ${held.size} held`);
          const round = held.take(now);
          if (!round) break;
          const started = new Map<string, number>();
          for (const h of round.due) {
            claimOne(h.message.jobId, h.key, h.message.priority, started);
            if (endsMidRound && running.length > 0) held.freed([running.shift()!.key]);
          }
          held.settle(round, started);
        }
        const next = held.nextAt();
        // None held: nothing to wake for (a turn left over would wake the loop every millisecond).
        if (held.size === 0) assert.equal(next, Infinity);
        else assert.ok(next > now && next < Infinity, `held ${held.size}, next at ${next}, now ${now}: stranded or spinning`);
      };
      for (const o of ops) {
        if (o.kind === 'arrive') claimOne(`j${n++}`, `k${o.key}`, o.priority, new Map());
        else if (o.kind === 'end' && running.length > 0) held.freed([running.splice(o.pick % running.length, 1)[0]!.key]);
        else if (o.kind === 'limit') {
          const spec = { concurrency: o.concurrency, rate: o.rate };
          if (spec.concurrency === null && spec.rate === null) limits.delete(`k${o.key}`);
          else limits.set(`k${o.key}`, { ...spec, tat: limits.get(`k${o.key}`)?.tat ?? 0 });
        } else if (o.kind === 'cancel' && n > 0) gone.add(`j${o.pick % n}`);
        else if (o.kind === 'wait') now += o.ms;
        rounds();
      }
      // The limits lifted, every held dispatch starts (or finds its job gone) within a few pauses.
      limits.clear();
      for (let k = 0; held.size > 0; k++) {
        assert.ok(k < 64, `${held.size} held, never asked again`);
        now = Math.max(now, held.nextAt());
        rounds();
      }
    }), { numRuns: Number(process.env.PROPERTY_RUNS ?? 1000) });
  });
});
