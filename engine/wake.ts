/**
 * An in-process wake-up: the relay (and the stream's tail) sleeps until a
 * commit notifies it or a fallback poll interval passes (for commits made by
 * other processes).
 *
 * A notify while nobody waits is kept for the next wait (the relay is busy
 * publishing when most commits happen: forgetting them would delay their rows
 * by a poll interval). A wait that ends by timeout or abort takes its resolver
 * with it: a stale one would both leak and make `notify` believe someone waits.
 */
import type { Clock } from './ports.js';

export class Waker {
  private readonly waiters = new Set<() => void>();
  private pending = false;

  /** Waits in progress (test-visible: it must drop to 0 whenever nobody waits). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Wake whoever waits now, or the next one to wait. */
  notify(): void {
    if (this.waiters.size === 0) {
      this.pending = true;
      return;
    }
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves on the next notify, after `ms`, or when `signal` aborts (at once if it already has). */
  async wait(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    if (signal?.aborted) return;
    const local = new AbortController();
    const onAbort = () => local.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => { wake = resolve; });
    this.waiters.add(wake);
    try {
      await Promise.race([woken, clock.sleep(ms, local.signal).catch(() => undefined)]);
    } finally {
      this.waiters.delete(wake);
      local.abort();
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
