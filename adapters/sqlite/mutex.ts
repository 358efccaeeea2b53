/**
 * A promise-chain mutex: `run` calls queue up and run one at a time, in order.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  /** Calls running or waiting (test-visible: 0 when idle). */
  get queued(): number {
    return this.pending;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(fn).finally(() => { this.pending--; });
    // The next caller waits for this one to settle, whether it failed or not.
    this.tail = result.catch(() => {});
    return result;
  }
}
