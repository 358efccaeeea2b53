/**
 * A background loop of a role (relay, timers): `start()` runs the body with a
 * fresh signal, `stop()` aborts it and resolves once the body has returned.
 *
 * The body never runs twice at once: a `start()` while a `stop()` is still
 * waiting for the old body runs the new one after the old one returned (the
 * last call wins: start, stop, start leaves the loop running).
 */
export class BackgroundLoop {
  private controller = new AbortController();
  private running: Promise<void> | null = null;

  constructor(private readonly body: (signal: AbortSignal) => Promise<void>) {}

  /** True between a `start()` and the next `stop()`. */
  get active(): boolean {
    return this.running !== null && !this.controller.signal.aborted;
  }

  start(): void {
    if (this.active) return;
    const controller = new AbortController();
    this.controller = controller;
    const previous = this.running;
    this.running = previous === null
      ? this.body(controller.signal)
      // A stop in progress: the old body ends first (its failure was the stopper's to see).
      : previous.catch(() => undefined).then(() => (controller.signal.aborted ? undefined : this.body(controller.signal)));
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.controller.abort();
    try {
      await running;
    } finally {
      // A start() made meanwhile installed a new body: that one is not ours to forget.
      if (this.running === running) this.running = null;
    }
  }
}
