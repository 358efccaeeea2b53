/**
 * The outbox relay: publishes committed outbox rows to the log in id order,
 * deletes them, and records PUBLISHED on jobs whose dispatch went out.
 *
 * Order of the two writes matters: the row is deleted only after the log acked
 * it. A crash between the two leaves the row in the outbox and it goes out again:
 * a duplicate, which consumers drop by the outbox id header and the attempt
 * fence. The reverse order could lose a message, so it is never done.
 */
import { errorFields } from './logger.js';
import type { DispatchMessage } from './messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type Clock, type EventLog, type JobStore, type LogMessage, type Logger, type OutboxRow } from './ports.js';
import type { TransitionService } from './transitions.js';
import type { Waker } from './wake.js';
import { BackgroundLoop } from './loop.js';

export interface RelayOptions {
  /** Rows taken per batch. @defaultValue 500 */
  batchSize: number;
  /** Fallback poll for commits made by other processes. @defaultValue 200 */
  pollMs: number;
  /** Pause after an error. @defaultValue 1000 */
  errorBackoffMs: number;
}

export interface RelayDeps {
  store: JobStore;
  log: EventLog;
  transitions: TransitionService;
  clock: Clock;
  logger: Logger;
  waker: Waker;
  /** Test-only fault injection: runs after the log acked, before the rows are deleted. */
  afterPublish?: (rows: readonly OutboxRow[]) => void | Promise<void>;
}

export function toLogMessage(row: OutboxRow): LogMessage {
  return {
    topic: row.topic,
    key: row.key,
    value: row.value ?? JSON.stringify(row.payload),
    headers: { ...row.headers, [OUTBOX_ID_HEADER]: String(row.id) },
  };
}

export class Relay {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  /** Rows published since start (duplicates after a crash count again). */
  published = 0;

  constructor(private readonly deps: RelayDeps, private readonly opts: RelayOptions) {}

  /** Publish one batch and record PUBLISHED on its dispatched jobs; returns how many rows went out. */
  async runOnce(): Promise<number> {
    const { n, dispatched } = await this.publishBatch();
    if (dispatched.length > 0) await this.recordPublished(dispatched);
    return n;
  }

  /** Publish one batch and delete it; the dispatch messages it held are returned for PUBLISHED. */
  private async publishBatch(): Promise<{ n: number; dispatched: DispatchMessage[] }> {
    const { store, log, afterPublish } = this.deps;
    let dispatched: DispatchMessage[] = [];
    const n = await store.relayOutbox(this.opts.batchSize, async (rows) => {
      await log.publish(rows.map(toLogMessage));
      await afterPublish?.(rows);
      // Cancels travel on the dispatch topic too; only dispatches get a PUBLISHED.
      dispatched = rows.filter((r) => r.topic === TOPICS.dispatch && r.headers['ats-kind'] === 'dispatch').map((r) => r.payload as DispatchMessage);
    });
    this.published += n;
    return { n, dispatched };
  }

  /**
   * PUBLISHED is bookkeeping: a worker may already have started the attempt
   * (the machine then rejects PUBLISHED, which is fine), and if this write is
   * lost the job still runs from `pending` (and if the message is lost too,
   * the timers dispatch it again: `findLostDispatches`).
   */
  private async recordPublished(messages: readonly DispatchMessage[]): Promise<void> {
    await this.deps.transitions.applyMany(
      messages.map((m) => ({ jobId: m.jobId, event: { type: 'PUBLISHED' as const, attempt: m.attempt } })),
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * The loop overlaps a batch's PUBLISHED bookkeeping with the next batch's
   * publish (one of each at a time): the bookkeeping is a transaction over
   * hundreds of jobs, and the messages need not wait for it.
   */
  private async run(signal: AbortSignal): Promise<void> {
    const { clock, waker, logger } = this.deps;
    let recording: Promise<void> = Promise.resolve();
    const record = (dispatched: DispatchMessage[]) =>
      this.recordPublished(dispatched).catch((err: unknown) => logger.error('relay: recording PUBLISHED failed (the jobs still run)', errorFields(err)));
    while (!signal.aborted) {
      try {
        const { n, dispatched } = await this.publishBatch();
        await recording;
        if (dispatched.length > 0) recording = record(dispatched);
        if (n < this.opts.batchSize) await waker.wait(clock, this.opts.pollMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        logger.error('relay: batch failed, will retry', errorFields(err));
        await clock.sleep(this.opts.errorBackoffMs, signal).catch(() => undefined);
      }
    }
    await recording;
  }
}
