/**
 * The stream's progress tail: while clients are connected, reads the
 * progress stored since it last looked (any process's workers write it) and
 * hands each new value to the hub once.
 *
 * Progress rows are replaced in place and ordered by their `at`, which a
 * writer stamps before it commits: a write stamped earlier may commit after a
 * later one was read. So each read goes back LOOK_BACK_MS before the newest
 * `at` seen, and a value already delivered (same job, same `at`) is not
 * delivered again. A value committed more than LOOK_BACK_MS after its stamp
 * is not sent; the job's next report, or its outcome, is. The stamps are the
 * writers' clocks: one ahead of this process's counts as now (it is read again
 * at each read until this clock passes it, and sent once), so a worker whose
 * clock runs fast holds back no other job's values.
 */
import { BackgroundLoop, pollUntilAborted, unlessStopped } from '../../engine/loop.js';
import type { Clock, JobProgress, Logger, ProgressStore } from '../../engine/ports.js';

/** How far before the newest progress seen each read starts again. */
export const LOOK_BACK_MS = 2000;
/** Rows per read. */
const BATCH = 500;

export interface ProgressTailDeps {
  store: Pick<ProgressStore, 'readProgressSince'>;
  clock: Clock;
  logger: Logger;
  /** Whether any client listens: the tail reads only then. */
  busy(): boolean;
  onProgress(p: JobProgress): void;
}

export class ProgressTail {
  /** The newest `at` read (reads start LOOK_BACK_MS before it). */
  private horizon: number;
  /** `at` of the value last delivered per job, for the look-back window only (bounded by it). */
  private readonly delivered = new Map<string, number>();
  /** No client listened at the last read. */
  private idle = true;
  /** Reads every `pollMs` (a failed read is logged, and the next waits longer: engine/loop.ts). */
  private readonly loop = new BackgroundLoop((signal) => pollUntilAborted(signal, {
    clock: this.deps.clock, logger: this.deps.logger, failure: 'stream: progress read failed', pollMs: this.pollMs,
    pass: async () => {
      await this.readOnce(signal);
      return false;
    },
  }));

  constructor(private readonly deps: ProgressTailDeps, private readonly pollMs: number) {
    this.horizon = deps.clock.now();
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * One read: returns how many values it delivered. Given the loop's signal,
   * a page read in flight when it aborts is not waited for (a store that does
   * not answer must not hold the stop) and its late answer is dropped, so
   * nothing is delivered after the stop; the values stay stored.
   */
  async readOnce(signal?: AbortSignal): Promise<number> {
    const { store, clock } = this.deps;
    if (!this.deps.busy()) {
      // No one listens: nothing stored now is news later.
      this.idle = true;
      this.delivered.clear();
      return 0;
    }
    if (this.idle) {
      // The first read for new listeners: values of the last LOOK_BACK_MS are current enough to send, older ones not.
      this.idle = false;
      this.horizon = clock.now();
    }
    let since = this.horizon - LOOK_BACK_MS;
    let n = 0;
    // A stamp ahead of this clock (a worker whose clock runs fast) moves the horizon only up to now: else every
    // other worker's values, stamped on time, would fall below the look-back until this clock caught up.
    const now = clock.now();
    let limit = BATCH;
    for (;;) {
      const read = store.readProgressSince(since, limit);
      const rows = await (signal ? unlessStopped(read, signal) : read);
      for (const p of rows) {
        const seen = Math.min(p.at, now);
        if (seen > this.horizon) this.horizon = seen;
        if (this.delivered.get(p.jobId) === p.at) continue;
        this.delivered.set(p.jobId, p.at);
        this.deps.onProgress(p);
        n++;
      }
      if (rows.length < limit) break;
      // A full page: read on from its last `at`. A page all of one millisecond (`at` alone cannot step past it)
      // is read again whole, with a larger limit, else its values past the page, and every later one, never come.
      const last = rows.at(-1)!.at;
      if (last === since) limit *= 2;
      else {
        since = last;
        limit = BATCH;
      }
    }
    for (const [jobId, at] of this.delivered) if (at < this.horizon - 2 * LOOK_BACK_MS) this.delivered.delete(jobId);
    return n;
  }
}
