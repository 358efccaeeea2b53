/**
 * Groups calls made close together into one batch call: items added in the
 * same tick (or while a batch is in flight) go out together. Under load this
 * turns many one-job transactions into a few many-job ones.
 */
export class Batcher<I, R> {
  private queue: Array<{ item: I; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  private scheduled = false;
  private inFlight = 0;
  private inFlightItems = 0;

  constructor(
    private readonly run: (items: I[]) => Promise<R[]>,
    private readonly maxBatch = 500,
  ) {}

  /** Items waiting or in flight (test-visible: 0 once everything ran). */
  get size(): number {
    return this.queue.length + this.inFlightItems;
  }

  add(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything added so far has been run. */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight > 0) await new Promise((r) => setImmediate(r));
  }

  private schedule(): void {
    // A batch in flight takes what was queued meanwhile when it is done: under
    // load, that is what makes batches (a second drain would take each item alone).
    if (this.scheduled || this.inFlight > 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      this.inFlightItems += batch.length;
      try {
        const results = await this.run(batch.map((b) => b.item));
        // One result per item, in order: anything else would hand callers undefined (or another's result).
        if (!Array.isArray(results) || results.length !== batch.length) {
          throw new Error(`batch function returned ${Array.isArray(results) ? results.length : typeof results} results for ${batch.length} items`);
        }
        batch.forEach((b, i) => b.resolve(results[i]!));
      } catch (err) {
        for (const b of batch) b.reject(err);
      } finally {
        this.inFlight--;
        this.inFlightItems -= batch.length;
      }
    }
  }
}
