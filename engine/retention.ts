/**
 * Retention: the timers role deletes finished jobs (with their events) once
 * they are old enough, measured from their last transition: `done` after
 * `doneMs`, `dead` and `cancelled` (which a user may still redrive) after
 * `deadMs`. Deleting a job frees its Idempotency-Key: a submit with that key
 * afterwards creates a new job.
 *
 * Each batch is one short store transaction of at most `batchSize` jobs, the
 * oldest first, so retention never holds many locks for long, however much
 * history has piled up; a full batch is followed at once by the next one.
 * Safe with many instances: the store deletes only what it locked and found
 * still terminal and old enough.
 */
import type { JobState } from '../machines/job.machine.js';
import type { Clock, JobStore, Logger } from './ports.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';

export interface RetentionOptions {
  /** Age after which a done job is deleted. @defaultValue 7 days */
  doneMs: number;
  /** Age after which a dead or cancelled job is deleted. @defaultValue 30 days */
  deadMs: number;
  /** Jobs deleted per transaction. @defaultValue 500 */
  batchSize: number;
  /** Pause between passes that found nothing more to delete. @defaultValue 60000 */
  pollMs: number;
}

export interface RetentionDeps {
  store: Pick<JobStore, 'purgeJobs'>;
  clock: Clock;
  logger: Logger;
}

export class Retention {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  /** Jobs deleted since start. */
  deleted = 0;

  constructor(private readonly deps: RetentionDeps, private readonly opts: RetentionOptions) {}

  /** Each terminal state's age limit. */
  private limits(): [JobState, number][] {
    return [['done', this.opts.doneMs], ['dead', this.opts.deadMs], ['cancelled', this.opts.deadMs]];
  }

  /**
   * One batch per terminal state; returns whether any batch was full (more
   * may be waiting).
   */
  async runOnce(): Promise<{ deleted: number; more: boolean }> {
    const now = this.deps.clock.now();
    let deleted = 0;
    let more = false;
    for (const [state, ageMs] of this.limits()) {
      const n = await this.deps.store.purgeJobs(state, now - ageMs, this.opts.batchSize);
      deleted += n;
      more ||= n >= this.opts.batchSize;
    }
    this.deleted += deleted;
    return { deleted, more };
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private run(signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.deps;
    return pollUntilAborted(signal, {
      clock, logger, failure: 'retention: batch failed', pollMs: this.opts.pollMs,
      pass: async () => {
        const { deleted, more } = await this.runOnce();
        if (deleted > 0) logger.debug('retention: deleted finished jobs', { deleted });
        return more;
      },
    });
  }
}
