/**
 * Counts free handler slots; `acquire` waits for one (or rejects when
 * aborted). A freed slot goes to the waiter of the highest priority, and
 * among equal priorities to the one waiting longest.
 */
export class Semaphore {
  /** Highest priority first; arrival order within a priority. */
  private waiters: Array<{ priority: number; resolve: () => void; reject: (e: unknown) => void }> = [];

  constructor(private free: number) {}

  get available(): number {
    return this.free;
  }

  /** Callers waiting for a slot (test-visible: an aborted one must leave the queue). */
  get waiting(): number {
    return this.waiters.length;
  }

  acquire(signal?: AbortSignal, priority = 0): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      // The abort listener goes when the waiter is resumed: a long-lived signal must not collect them.
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(signal!.reason);
        }
      };
      const waiter = {
        priority,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      // Behind every waiter of this priority or higher (few wait at once: one per lane being handled).
      let at = this.waiters.length;
      while (at > 0 && this.waiters[at - 1]!.priority < priority) at--;
      this.waiters.splice(at, 0, waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.resolve();
    else this.free++;
  }
}
