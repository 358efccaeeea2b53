/**
 * Counts free handler slots, handed out by priority; `acquire` waits for one
 * (or rejects when aborted).
 *
 * A freed slot goes to the waiter of the highest priority, among equals to
 * the one waiting longest. Callers may also *announce* work they hold and
 * will ask slots for (a lane's batch of dispatches): while work of a higher
 * priority is announced, a lower priority gets no slot, even a free one, so
 * a batch of normal dispatches held by one lane keeps a low lane's waiting
 * until it is claimed. A caller must ask for its announced work highest
 * priority first, and settle each piece once done with it (or given up), or
 * lower priorities wait forever.
 */
export class Semaphore {
  /** Highest priority first; arrival order within a priority. */
  private waiters: Array<{ priority: number; resolve: () => void; reject: (e: unknown) => void }> = [];
  /** Work announced and not settled yet: priority → how much. */
  private readonly announced = new Map<number, number>();

  constructor(private free: number) {}

  get available(): number {
    return this.free;
  }

  /** Callers waiting for a slot (test-visible: an aborted one must leave the queue). */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Announces `n` pieces of work of `priority` that will ask for slots. */
  announce(priority: number, n = 1): void {
    this.announced.set(priority, (this.announced.get(priority) ?? 0) + n);
  }

  /** `n` announced pieces of `priority` are done (claimed, or given up): lower priorities may go again. */
  settle(priority: number, n = 1): void {
    const left = (this.announced.get(priority) ?? 0) - n;
    if (left > 0) this.announced.set(priority, left);
    else this.announced.delete(priority);
    this.grant();
  }

  /** Takes a free slot now if `priority` may have one; false otherwise (nothing changes). */
  tryAcquire(priority = 0): boolean {
    if (this.free <= 0 || !this.mayTake(priority)) return false;
    this.free--;
    return true;
  }

  acquire(signal?: AbortSignal, priority = 0): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire(priority)) return Promise.resolve();
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
    this.free++;
    this.grant();
  }

  /** No work of a higher priority is announced. */
  private mayTake(priority: number): boolean {
    for (const p of this.announced.keys()) if (p > priority) return false;
    return true;
  }

  /** Free slots to the waiters that may have them, highest first. */
  private grant(): void {
    while (this.free > 0 && this.waiters.length > 0 && this.mayTake(this.waiters[0]!.priority)) {
      this.free--;
      this.waiters.shift()!.resolve();
    }
  }
}
