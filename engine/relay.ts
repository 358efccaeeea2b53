/**
 * The outbox relay: publishes the messages of committed outbox rows to the
 * log in id order, deletes the rows, and records PUBLISHED on jobs whose
 * dispatch went out.
 *
 * Order of the two writes matters: the row is deleted only after the log acked
 * it. A crash between the two leaves the row in the outbox and it goes out again:
 * a duplicate, which consumers drop by the outbox id header and the attempt
 * fence. The reverse order could lose a message, so it is never done.
 */
import { OutageLog } from './error-backoff.js';
import { KIND_HEADER, SCHEMA_HEADER, SCHEMA_VERSION, type DispatchMessage } from './messages.js';
import type { Metrics } from './metrics.js';
import { isLane } from './lanes.js';
import { OUTBOX_ID_HEADER, OUTBOX_ROW_MAX_MESSAGES, type Clock, type EventLog, type JobStore, type LogMessage, type Logger, type OutboxRow } from './ports.js';
import type { TransitionService } from './transitions.js';
import type { Waker } from './wake.js';
import { BackgroundLoop } from './loop.js';
import { PublishedRecorder } from './published-book.js';
import { endSpans, startSendSpans, type Tracer } from './tracing.js';

export interface RelayOptions {
  /** Messages per batch (the store takes whole outbox rows until it has this many). @defaultValue 500 */
  batchSize: number;
  /** Fallback poll for commits made by other processes. @defaultValue 200 */
  pollMs: number;
  /** Pause after an error. @defaultValue 1000 */
  errorBackoffMs: number;
  /**
   * How long after a batch went out its PUBLISHED bookkeeping is recorded
   * (the loop only; `runOnce` records at once). A dispatch a worker started
   * meanwhile needs none: the machine rejects PUBLISHED on a running job and
   * nothing is written. So on a quick system most jobs go from `pending`
   * straight to `running`, and only dispatches that wait for a worker are
   * marked `published`. @defaultValue 200
   */
  publishedDelayMs?: number;
  /**
   * On stop, how long a publish in progress may still take. Past that the
   * relay stops waiting: the claim is rolled back and its rows stay in the
   * outbox (published again by the next relay; the log may still write the
   * abandoned publish: a duplicate). A broker that answers acks within
   * milliseconds; one that stopped answering would otherwise hold the stop
   * for as long as the log takes to give up, beyond the process's shutdown
   * slack (cli/start.ts, shared with closing the log and the store).
   * @defaultValue 1000
   */
  stopGraceMs?: number;
}

/** Batches' worth of PUBLISHED bookkeeping that may wait before the loop holds back (bounds what it keeps). */
export const MAX_PENDING_RECORDINGS = 8;

export interface RelayDeps {
  store: JobStore;
  log: EventLog;
  transitions: TransitionService;
  clock: Clock;
  logger: Logger;
  waker: Waker;
  /**
   * Traces each dispatch of a traced job with a `send` span, whose context the
   * published message carries (engine/tracing.ts). Omit for no tracing work.
   */
  tracer?: Tracer;
  /** Test-only fault injection: runs after the log acked, before the rows are deleted. */
  afterPublish?: (rows: readonly OutboxRow[]) => void | Promise<void>;
  /** Told each batch's size and how long the log took to ack it, and each batch that did not go out (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'relayPublished' | 'relayPublishFailed'>;
}

/**
 * An outbox row as the message published. The row's headers go as they are,
 * plus the outbox id; a row written by a version older than the schema header
 * (its payload is version 1) gets `ats-schema: 1`, so every message published
 * carries one.
 */
export function toLogMessage(row: OutboxRow): LogMessage {
  return {
    topic: row.topic,
    key: row.key,
    value: row.value ?? JSON.stringify(row.payload),
    headers: { [SCHEMA_HEADER]: String(SCHEMA_VERSION), ...row.headers, [OUTBOX_ID_HEADER]: String(row.id) },
  };
}

const DEFAULT_STOP_GRACE_MS = 1000;

/**
 * `publishing`, unless `signal` aborts and it has not settled `graceMs`
 * later: then a rejection, while the publish goes on unwatched (its outcome
 * is handled here, so it never goes unhandled).
 */
function unlessStopped(publishing: Promise<void>, signal: AbortSignal | undefined, graceMs: number): Promise<void> {
  if (!signal) return publishing;
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const giveUp = () => {
      timer = setTimeout(() => reject(new Error(`relay stopped: the log had not acknowledged the batch ${graceMs} ms later`)), graceMs);
    };
    if (signal.aborted) giveUp();
    else signal.addEventListener('abort', giveUp, { once: true });
    publishing.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', giveUp);
    });
  });
}

export class Relay {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  /** Messages published since start (duplicates after a crash count again). */
  published = 0;

  constructor(private readonly deps: RelayDeps, private readonly opts: RelayOptions) {}

  /** Publish one batch and record PUBLISHED on its dispatched jobs; returns how many messages went out. */
  async runOnce(): Promise<number> {
    const { n, dispatched } = await this.publishBatch();
    if (dispatched.length > 0) await this.recordPublished(dispatched);
    return n;
  }

  /**
   * Publish one batch and delete it; the dispatch messages it held are
   * returned for PUBLISHED. Once `signal` aborts, the publish has
   * `stopGraceMs` left (see {@link RelayOptions.stopGraceMs}).
   */
  private async publishBatch(signal?: AbortSignal): Promise<{ n: number; dispatched: DispatchMessage[] }> {
    const { store, log, afterPublish, tracer, clock, metrics } = this.deps;
    let dispatched: DispatchMessage[] = [];
    const n = await store.relayOutbox(this.opts.batchSize, async (rows) => {
      const messages = rows.map(toLogMessage);
      const spans = tracer ? startSendSpans(tracer, messages) : null;
      const sentAt = clock.now();
      try {
        await unlessStopped(log.publish(messages), signal, this.opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
      } catch (err) {
        metrics?.relayPublishFailed();
        if (spans) endSpans(spans, err);
        throw err;
      }
      metrics?.relayPublished(rows.length, clock.now() - sentAt);
      if (spans) endSpans(spans);
      await afterPublish?.(rows);
      // Cancels travel on the dispatch topic too; only dispatches get a PUBLISHED.
      dispatched = rows.filter((r) => r.headers[KIND_HEADER] === 'dispatch' && isLane(r.topic)).map((r) => r.payload as DispatchMessage);
    });
    this.published += n;
    const { logger } = this.deps;
    if (logger.isLevelEnabled?.('debug') ?? true) {
      for (const m of dispatched) logger.debug('relay: dispatch published', { jobId: m.jobId, type: m.type, attempt: m.attempt });
    }
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

  /**
   * Resolves once the loop has ended, and with it every write of the relay: a
   * publish in progress is waited for `stopGraceMs` at most, its claim then
   * rolled back.
   */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * The loop publishes without waiting for PUBLISHED bookkeeping: a
   * `PublishedRecorder` records each batch's `publishedDelayMs` after it went
   * out, behind the publishing (the bookkeeping is a transaction over
   * hundreds of jobs that workers are claiming at that moment, and the
   * messages need not wait for it). The loop holds back only while
   * MAX_PENDING_RECORDINGS batches' worth waits. On stop, what is left is
   * recorded at once.
   */
  private async run(signal: AbortSignal): Promise<void> {
    const { clock, waker, logger } = this.deps;
    const recorder = new PublishedRecorder<DispatchMessage>(
      { clock, logger, record: (messages) => this.recordPublished(messages) },
      // A batch may hold up to a row's worth of messages more than batchSize (a row is never split).
      { delayMs: this.opts.publishedDelayMs ?? 200, maxPerRecord: Math.max(this.opts.batchSize, OUTBOX_ROW_MAX_MESSAGES), limit: MAX_PENDING_RECORDINGS * (this.opts.batchSize + OUTBOX_ROW_MAX_MESSAGES) },
    );
    recorder.start();
    const outage = new OutageLog(logger, 'relay: batch');
    while (!signal.aborted) {
      try {
        const { n, dispatched } = await this.publishBatch(signal);
        outage.succeeded();
        recorder.add(dispatched);
        await recorder.room(signal);
        if (n < this.opts.batchSize) await waker.wait(clock, this.opts.pollMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        outage.failed(err, clock.now());
        await clock.sleep(this.opts.errorBackoffMs, signal).catch(() => undefined);
      }
    }
    await recorder.stop();
  }
}
