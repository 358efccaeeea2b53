/**
 * An in-process wake-up: the relay sleeps until a commit notifies it or a
 * fallback poll interval passes (for commits made by other processes).
 */
import type { Clock } from './ports.js';

export class Waker {
  private waiters: Array<() => void> = [];
  private pending = false;

  /** Wake whoever waits now, or the next one to wait. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    if (waiters.length === 0) this.pending = true;
    for (const w of waiters) w();
  }

  /** Resolves on the next notify, after `ms`, or when `signal` aborts. */
  async wait(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    const local = new AbortController();
    const onAbort = () => local.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const woken = new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      await Promise.race([woken, clock.sleep(ms, local.signal).catch(() => undefined)]);
    } finally {
      local.abort();
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
