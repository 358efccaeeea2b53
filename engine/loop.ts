/**
 * A background loop of a role (relay, timers): `start()` runs the body with a
 * fresh signal, `stop()` aborts it and resolves once the body has returned.
 */
export class BackgroundLoop {
  private controller = new AbortController();
  private running: Promise<void> | null = null;

  constructor(private readonly body: (signal: AbortSignal) => Promise<void>) {}

  start(): void {
    if (this.running) return;
    this.controller = new AbortController();
    this.running = this.body(this.controller.signal);
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.running;
    this.running = null;
  }
}
