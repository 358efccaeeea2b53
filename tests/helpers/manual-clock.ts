/** A clock for unit tests whose time moves only when the test says so. */
import type { Clock } from '../../engine/ports.js';

/** A clock whose time moves only by `advance`; it counts the sleeps still waiting. */
export class ManualClock implements Clock {
  private t = 0;
  private readonly sleepers = new Set<{ due: number; resolve(): void }>();

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const s = {
        due: this.t + ms,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.sleepers.delete(s);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.add(s);
    });
  }

  get sleeping(): number {
    return this.sleepers.size;
  }

  async advance(ms: number): Promise<void> {
    this.t += ms;
    for (const s of [...this.sleepers]) {
      if (s.due > this.t) continue;
      this.sleepers.delete(s);
      s.resolve();
    }
    await settle();
  }
}

/** Lets pending callbacks and microtasks run. */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));


/** Whether `p` has settled once the callbacks queued so far (and those they queue) ran. */
export async function hasSettled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  await settle();
  await settle();
  return done;
}
