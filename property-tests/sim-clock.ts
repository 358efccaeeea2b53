/**
 * A simulated clock for the property tests: time moves only when the test
 * calls `advance(ms)`, which wakes the sleepers in due order (like XState's
 * `SimulatedClock`), letting the system settle after each one. Hours of
 * leases, heartbeats, backoffs and delayed jobs pass in milliseconds.
 *
 * Each worker gets its own `view(owner)`: the same time, but its sleeps can
 * be paused (a worker stalled by a GC pause or a network partition stops
 * heartbeating while its handler still runs: the way a zombie is born).
 */
import type { Clock } from '../engine/ports.js';

/** Epoch ms every run starts at (a fixed date keeps runs reproducible). */
export const SIM_EPOCH = Date.UTC(2030, 0, 1);

interface Sleeper {
  due: number;
  /** Tie-break: equal due times wake in the order they were asked for. */
  seq: number;
  owner: string | null;
  resolve(): void;
}

export class SimClock implements Clock {
  private t: number;
  private seq = 0;
  private sleepers: Sleeper[] = [];
  private readonly paused = new Set<string>();

  constructor(start = SIM_EPOCH) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.sleepAs(null, ms, signal);
  }

  /** The clock as one owner (a worker) sees it: its sleeps can be paused. */
  view(owner: string): Clock {
    return { now: () => this.t, sleep: (ms, signal) => this.sleepAs(owner, ms, signal) };
  }

  /** Stop waking `owner`'s sleepers (its heartbeats and timeouts freeze). */
  pause(owner: string): void {
    this.paused.add(owner);
  }

  resume(owner: string): void {
    this.paused.delete(owner);
  }

  isPaused(owner: string): boolean {
    return this.paused.has(owner);
  }

  /** Sleepers still waiting (for leak checks and reports). */
  get pending(): number {
    return this.sleepers.length;
  }

  /**
   * Move time forward by `ms`: wake every due sleeper of a running owner in
   * due order, setting `now()` to its due time and awaiting `settle` after
   * each (so a heartbeat that sleeps again is woken in the same advance).
   */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    const target = this.t + Math.max(0, ms);
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.t = Math.max(this.t, next.due);
      this.remove(next);
      next.resolve();
      await settle();
    }
    this.t = target;
  }

  /** Wake sleepers already due (after `resume`), without moving time. */
  async wakeDue(settle: () => Promise<void>): Promise<void> {
    await this.advance(0, settle);
  }

  private sleepAs(owner: string | null, ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.remove(sleeper);
        reject(signal!.reason);
      };
      const sleeper: Sleeper = {
        due: this.t + Math.max(0, ms),
        seq: this.seq++,
        owner,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  private nextDue(target: number): Sleeper | undefined {
    let best: Sleeper | undefined;
    for (const s of this.sleepers) {
      if (s.due > target || (s.owner !== null && this.paused.has(s.owner))) continue;
      if (!best || s.due < best.due || (s.due === best.due && s.seq < best.seq)) best = s;
    }
    return best;
  }

  private remove(s: Sleeper): void {
    const i = this.sleepers.indexOf(s);
    if (i >= 0) this.sleepers.splice(i, 1);
  }
}

/** mulberry32: a tiny seeded PRNG implementing the Random port, in [0, 1). */
export function seededRandom(seed: number): { next(): number } {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
