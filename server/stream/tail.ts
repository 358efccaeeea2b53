/**
 * The tail reader: one per API instance, the only source of live events.
 * It follows `job_events` by id and advances a *safe horizon*: every id at or
 * below it has been handed on (or is given up as a rollback). Why this makes
 * cursors safe against concurrent commits is told in cursor.ts.
 *
 * It is woken by `ats.events` messages (plugin.ts) and polls as a fallback;
 * the wake-up only says "read now": what is delivered always comes from the
 * table, in id order, so live and replay share one order and cannot overlap.
 */
import { errorFields } from '../../engine/logger.js';
import type { Clock, JobStore, Logger, StreamEventRecord } from '../../engine/ports.js';
import { Waker } from '../../engine/wake.js';
import type { CompiledStreamOptions } from './options.js';

type Read = JobStore['readEventsAfter'];

export interface TailDeps {
  read: Read;
  clock: Clock;
  logger: Logger;
  /** Called with each batch, in id order, before the horizon moves on to the next read. */
  onEvents(events: readonly StreamEventRecord[]): void;
}

export type TailOptions = Pick<CompiledStreamOptions, 'tailBatchSize' | 'pollMs' | 'gapTimeoutMs' | 'gapPollMs' | 'startupRewindIds' | 'errorBackoffMs'>;

/** What the reader may deliver from one read. */
export interface SafePrefix {
  /** How many of the rows read to deliver now (the contiguous prefix, plus rows past given-up gaps). */
  count: number;
  /** Missing id ranges given up on (waited `gapTimeoutMs`), for the log. */
  skipped: Array<[number, number]>;
  /** The missing ids the reader waits for, and until when; null when nothing blocks. */
  waiting: { from: number; to: number; until: number } | null;
}

/**
 * Splits rows read after `horizon` into what is safe to deliver. A missing id
 * blocks everything after it until it appears or `timeoutMs` passed since
 * the gap was first seen. `firstSeen` (row id after a gap → when first seen)
 * is updated in place. A gap that later shrinks is timed again from the row
 * now after it: conservative (a longer wait), never a skip too early.
 */
export function safePrefix(
  horizon: number, rows: readonly { id: number }[], firstSeen: Map<number, number>, now: number, timeoutMs: number,
): SafePrefix {
  let expected = horizon + 1;
  const skipped: Array<[number, number]> = [];
  for (let i = 0; i < rows.length; i++) {
    const id = rows[i]!.id;
    if (id > expected) {
      const since = firstSeen.get(id) ?? now;
      firstSeen.set(id, since);
      if (now - since < timeoutMs) return { count: i, skipped, waiting: { from: expected, to: id - 1, until: since + timeoutMs } };
      skipped.push([expected, id - 1]);
    }
    expected = id + 1;
  }
  return { count: rows.length, skipped, waiting: null };
}

/**
 * The newest event id (0 for an empty table) with only `read(afterId, 1)`:
 * "is there an id above x" is monotone in x, so double, then bisect
 * (about 2·log2(id) cheap primary-key reads, once at start).
 */
export async function findLastId(read: Read): Promise<number> {
  const next = async (x: number) => (await read(x, 1))[0]?.id ?? null;
  const first = await next(0);
  if (first === null) return 0;
  let lo = first; // the last id is >= lo
  let hi = lo * 2; // is the last id < hi? (checked below)
  for (let found = await next(hi); found !== null; found = await next(hi)) [lo, hi] = [found, found * 2];
  // Invariant: an id >= lo exists, none above hi.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const found = await next(mid);
    if (found === null) hi = mid;
    else lo = found;
  }
  return (await next(lo)) === null ? lo : hi;
}

export class TailReader {
  private position = 0;
  private readonly firstSeen = new Map<number, number>();
  private readonly waker = new Waker();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  /** Events handed on since start (for tests and metrics). */
  delivered = 0;

  constructor(private readonly deps: TailDeps, private readonly opts: TailOptions) {}

  /**
   * Every event with an id at or below the horizon has been handed to
   * `onEvents` (or given up as a rollback); nothing above it has.
   */
  get horizon(): number {
    return this.position;
  }

  /** Finds where to begin (a little below the newest event, see `startupRewindIds`) and starts reading. */
  async start(): Promise<void> {
    if (this.loop) return;
    await this.init();
    this.loop = this.run(this.stopping.signal);
  }

  /** Sets the starting horizon only (tests then drive `step()` by hand). */
  async init(): Promise<void> {
    const last = await findLastId(this.deps.read);
    this.position = Math.max(0, last - this.opts.startupRewindIds);
  }

  /** Read now (an `ats.events` message arrived). Coalesces: many wakes, one read. */
  wake(): void {
    this.waker.notify();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.waker.notify();
    await this.loop;
  }

  /**
   * One read: delivers the safe prefix and moves the horizon past it. Returns
   * whether to read again at once (a full batch went out) and, when blocked
   * by a gap, until when the gap is waited for.
   */
  async step(): Promise<{ again: boolean; gapUntil: number | null }> {
    const { read, clock, logger, onEvents } = this.deps;
    const rows = await read(this.position, this.opts.tailBatchSize);
    const safe = safePrefix(this.position, rows, this.firstSeen, clock.now(), this.opts.gapTimeoutMs);
    for (const [from, to] of safe.skipped) {
      logger.warn('stream: gave up waiting for job_events ids (rolled back, or committed later than gapTimeoutMs)', { from, to });
    }
    if (safe.count > 0) {
      const batch = safe.count === rows.length ? rows : rows.slice(0, safe.count);
      // Horizon first, then hand on, in one synchronous step: a client switching
      // from replay to live reads the horizon and can never fall between the two.
      this.position = batch[batch.length - 1]!.id;
      for (const id of this.firstSeen.keys()) if (id <= this.position) this.firstSeen.delete(id);
      this.delivered += batch.length;
      onEvents(batch);
    }
    return { again: safe.waiting === null && rows.length === this.opts.tailBatchSize, gapUntil: safe.waiting?.until ?? null };
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.deps;
    while (!signal.aborted) {
      try {
        const { again, gapUntil } = await this.step();
        if (again) continue;
        const wait = gapUntil === null ? this.opts.pollMs : Math.max(1, Math.min(this.opts.gapPollMs, gapUntil - clock.now()));
        await this.waker.wait(clock, wait, signal);
      } catch (err) {
        if (signal.aborted) break;
        logger.error('stream: tail read failed, will retry', errorFields(err));
        await clock.sleep(this.opts.errorBackoffMs, signal).catch(() => undefined);
      }
    }
  }
}
