/**
 * Retention: the timers role deletes finished jobs (with their events) once
 * they are old enough, measured from their last transition: `done` after
 * `doneMs`, `dead` and `cancelled` (which a user may still redrive) after
 * `deadMs`. Deleting a job frees its Idempotency-Key: a submit with that key
 * afterwards creates a new job.
 *
 * Ended workflow instances follow the same limits, measured from their last
 * step: `done` after `doneMs`, `error` and `cancelled` after `deadMs`, each
 * with its events and timer rows; that frees its idempotency key too. Their
 * child jobs are jobs like any other and go by the jobs' limits, so an
 * instance may outlive its children's rows or the other way round; but a
 * child its active instance still waits on (its end not taken yet: lost with
 * the in-process log, or waiting for the instance's definition version) is
 * kept, however old, until the instance takes its end or ends: the sweep that
 * delivers the end reads it from the job. Such kept jobs are passed over, not
 * counted: the jobs behind them still go, and they never make a batch full.
 *
 * A batch is at most `batchSize` jobs, the oldest first, in short store
 * transactions of at most 10,000 job events each (a single job with a longer
 * history goes whole, in one); a batch of instances is at most `batchSize` of
 * them in short transactions of at most 10,000 history events each (a
 * longer history goes over several, the instance's row last). So retention never holds many
 * locks for long, however much history has piled up; a full batch is followed at once by the next one.
 * Safe with many instances: the store deletes only what it locked and found
 * still terminal and old enough. Deleting a (tenant, queue, type)'s last jobs
 * also deletes its rows of the job counts, so those stay as many as the
 * kinds of jobs kept.
 *
 * The audit log's entries go after `auditMs` from when they were recorded,
 * a batch of at most `batchSize` at a time, every tenant's alike.
 */
import type { JobState } from '../machines/job.machine.js';
import type { AuditStore, Clock, JobStore, Logger, WorkflowStore } from './ports.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';

/** The statuses of an ended workflow instance, which retention deletes. */
type WorkflowEnd = Parameters<WorkflowStore['purgeWorkflows']>[0];

export interface RetentionOptions {
  /** Age after which a done job or workflow instance is deleted. @defaultValue 7 days */
  doneMs: number;
  /** Age after which a dead or cancelled job, or an instance ended in error or cancelled, is deleted. @defaultValue 30 days */
  deadMs: number;
  /** Age after which an audit log entry is deleted. @defaultValue 90 days */
  auditMs: number;
  /** Jobs (or instances, or audit entries) deleted per transaction. @defaultValue 500 */
  batchSize: number;
  /** Pause between passes that found nothing more to delete. @defaultValue 60000 */
  pollMs: number;
}

export interface RetentionDeps {
  store: Pick<JobStore, 'purgeJobs'> & Pick<WorkflowStore, 'purgeWorkflows'> & Pick<AuditStore, 'purgeAudit'>;
  clock: Clock;
  logger: Logger;
}

export class Retention {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  /** Jobs deleted since start. */
  deleted = 0;
  /** Workflow instances deleted since start. */
  deletedWorkflows = 0;
  /** Audit log entries deleted since start. */
  deletedAudit = 0;

  constructor(private readonly deps: RetentionDeps, private readonly opts: RetentionOptions) {}

  /** Each terminal state's age limit. */
  private limits(): [JobState, number][] {
    return [['done', this.opts.doneMs], ['dead', this.opts.deadMs], ['cancelled', this.opts.deadMs]];
  }

  /** Each ended workflow status's age limit: `error` is a workflow's `dead`. */
  private workflowLimits(): [WorkflowEnd, number][] {
    return [['done', this.opts.doneMs], ['error', this.opts.deadMs], ['cancelled', this.opts.deadMs]];
  }

  /**
   * One batch per terminal job state, then one per ended workflow status,
   * then one of audit entries; returns how many of each went, and whether
   * any batch was full (more may be waiting). A batch that fails holds back
   * none of the others (one that keeps failing would otherwise stop every
   * purge after it for good): the rest still run, then the first failure is
   * thrown, and the loop tries again after a pause; what went stays counted
   * in `deleted`, `deletedWorkflows` and `deletedAudit`.
   * `signal` aborted (retention stopping), it gives up before its next batch,
   * and a batch of instances before its next transaction: what went stays
   * gone (each transaction commits on its own), the rest waits for the next
   * pass here or in another process.
   */
  async runOnce(signal?: AbortSignal): Promise<{ deleted: number; deletedWorkflows: number; deletedAudit: number; more: boolean }> {
    const now = this.deps.clock.now();
    const { store } = this.deps;
    let deleted = 0;
    let deletedWorkflows = 0;
    let deletedAudit = 0;
    let more = false;
    let failed: { error: unknown } | null = null;
    const done = () => {
      if (failed) throw failed.error;
      return { deleted, deletedWorkflows, deletedAudit, more };
    };
    /** One batch: how many went, 0 for one that failed (the pass goes on without it). */
    const batch = async (purge: () => Promise<number>): Promise<number> => {
      try {
        const n = await purge();
        more ||= n >= this.opts.batchSize;
        return n;
      } catch (error) {
        failed ??= { error };
        return 0;
      }
    };
    for (const [state, ageMs] of this.limits()) {
      if (signal?.aborted) return done();
      const n = await batch(() => store.purgeJobs(state, now - ageMs, this.opts.batchSize, signal));
      deleted += n;
      this.deleted += n;
    }
    for (const [status, ageMs] of this.workflowLimits()) {
      if (signal?.aborted) return done();
      const n = await batch(() => store.purgeWorkflows(status, now - ageMs, this.opts.batchSize, signal));
      deletedWorkflows += n;
      this.deletedWorkflows += n;
    }
    if (signal?.aborted) return done();
    deletedAudit = await batch(() => store.purgeAudit(now - this.opts.auditMs, this.opts.batchSize));
    this.deletedAudit += deletedAudit;
    return done();
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
        // A stop tells the pass: it gives up at its next batch, and the stop waits only for the one in flight.
        const { deleted, deletedWorkflows, deletedAudit, more } = await this.runOnce(signal);
        if (deleted > 0) logger.debug('retention: deleted finished jobs', { deleted });
        if (deletedWorkflows > 0) logger.debug('retention: deleted ended workflow instances', { deleted: deletedWorkflows });
        if (deletedAudit > 0) logger.debug('retention: deleted old audit log entries', { deleted: deletedAudit });
        return more;
      },
    });
  }
}
