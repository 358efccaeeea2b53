import { ErrorBackoff, OutageLog } from './error-backoff.js';
import type { Clock, Logger } from './ports.js';

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

/** What {@link pollUntilAborted} runs. */
export interface Polling {
  clock: Clock;
  logger: Logger;
  /** Names the loop in its error log lines, e.g. 'timers: pass failed' (and, without ' failed', in the line saying it works again). */
  failure: string;
  /** The pause after a pass that left nothing more to do. */
  pollMs: number;
  /** One pass; resolves true when it left more work, for an immediate next pass. */
  pass(): Promise<boolean>;
}

/** After failed passes (the database down), a polling loop pauses 1 s, doubling to 10 s. */
export const POLLING_ERROR_BACKOFF = Object.freeze({ baseMs: 1000, maxMs: 10_000 });

/**
 * The body of a polling loop (the timers, retention): runs `pass` until the
 * signal aborts, again at once when it says there is more, after `pollMs`
 * otherwise, and while it throws after a pause that grows; logged as the
 * relay's outages are (OutageLog): the first failed pass, then one line a
 * minute with the failures so far, and the first pass that works after them
 * (`... works again`, info).
 */
export async function pollUntilAborted(signal: AbortSignal, p: Polling): Promise<void> {
  const backoff = new ErrorBackoff(POLLING_ERROR_BACKOFF.baseMs, POLLING_ERROR_BACKOFF.maxMs);
  const outage = new OutageLog(p.logger, p.failure.replace(/ failed$/, ''));
  while (!signal.aborted) {
    let pauseMs = p.pollMs;
    try {
      const more = await p.pass();
      outage.succeeded();
      backoff.succeeded();
      if (more) continue;
    } catch (err) {
      if (signal.aborted) break;
      pauseMs = Math.max(pauseMs, backoff.failed());
      outage.failed(err, p.clock.now(), { retryInMs: pauseMs });
    }
    await p.clock.sleep(pauseMs, signal).catch(() => undefined);
  }
}

/**
 * `read`, or a rejection with the signal's reason as soon as it aborts: a
 * loop's stop does not wait for a store that stopped answering (MySQL waits
 * up to its query timeout), nor a worker for a handler that ignores its
 * signal. The read's late result, or failure, is dropped.
 */
export function unlessStopped<T>(read: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    read.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onStop = () => reject(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    read.then(resolve, reject).finally(() => signal.removeEventListener('abort', onStop));
  });
}

/** Whether `promise` settles, either way, within `ms` (it is left to settle later otherwise). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([promise.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
