/**
 * A promise-chain mutex: `run` calls queue up and run one at a time, in order.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    // The next caller waits for this one to settle, whether it failed or not.
    this.tail = result.catch(() => {});
    return result;
  }
}
