/**
 * The tail reader: follows committed `job_events` in id order. Each API
 * instance runs one for the WebSocket stream (its only source of live
 * events), and the advisor one to learn from (engine/advisor/advisor.ts).
 * It follows `job_events` by id and advances a *safe horizon*: every id at or
 * below it has been handed on (or is given up as a rollback). Why this makes
 * the stream's cursors safe against concurrent commits is told in
 * server/stream/cursor.ts.
 *
 * While busy (for the stream: while clients are connected) it reads at once when a commit of its own
 * process wakes it, and otherwise polls the table (one primary-key read,
 * `id > horizon`) every `pollMs`: commits of other processes are seen within
 * one poll; no message broker is involved, so no consumer group is needed
 * per API process. What is delivered always comes from the table, in id
 * order, so live and replay share one order and cannot overlap.
 *
 * While idle (no client connected) there is no one to hand events to, and it
 * reads no rows: every `idlePollMs` it only asks for the newest id and moves
 * the horizon up to the newest id that is final (see SeenMarks). The first
 * client to arrive wakes it, and it reads on from there.
 */
import { OutageLog } from './error-backoff.js';
import { unlessStopped } from './loop.js';
import { fitting } from './pack.js';
import type { Clock, JobStore, Logger, StreamEventRecord } from './ports.js';
import { Waker } from './wake.js';

type Read = JobStore['readEventsAfter'];

export interface TailDeps {
  read: Read;
  clock: Clock;
  logger: Logger;
  /** Called with each batch, in id order, before the horizon moves on to the next read. */
  onEvents(events: readonly StreamEventRecord[]): void;
  /**
   * Whether any client is connected: the tail then reads every `pollMs` and
   * on every wake; else it reads no rows and only moves its horizon every
   * `idlePollMs` (see `skipAhead`). Without it the tail always reads.
   */
  busy?(): boolean;
  /** The newest committed id (`JobStore.lastEventId`); without it, found by bisection over `read`. */
  last?(): Promise<number>;
  /**
   * The id and bytes of each row `read` would read (`JobStore.eventSizesAfter`, `WorkflowStore.workflowEventSizesAfter`):
   * with it and `readBytes`, each read takes only the rows that fit (see `readWithin`). Without it, reads are bounded
   * in rows only.
   */
  sizes?: Sizes;
  /** Who reads, for its log lines. @defaultValue 'stream' */
  name?: string;
}

/** How the reader paces itself (the stream's settings: server/stream/options.ts documents each). */
export interface TailOptions {
  /** Rows per read. */
  tailBatchSize: number;
  /** Read period while busy. */
  pollMs: number;
  /** While idle, how often only the newest id is asked for. */
  idlePollMs: number;
  /** How long a missing id is waited for before it is passed as a rollback. */
  gapTimeoutMs: number;
  /** Read period while waiting for a missing id. */
  gapPollMs: number;
  /** How far below the newest id to begin. */
  startupRewindIds: number;
  /** Pause after a failed read. */
  errorBackoffMs: number;
  /** Bytes of the rows' data one read takes at most (the first row always comes), where the deps give `sizes`. */
  readBytes?: number;
}

/** The id and bytes of each row a read after a position would read, in id order, at most `limit`. */
export type Sizes = (afterId: number, limit: number) => Promise<{ id: number; bytes: number }[]>;

/**
 * A read of at most `limit` rows after `afterId` that takes no more rows than
 * fit in `maxBytes` (the first always comes): the sizes first, then the rows
 * that fit, up to the last of them counted (`throughId`), so no row that was
 * not counted past it comes, whatever happened between the two reads.
 *
 * `cut` when it stopped at its bytes with rows after it there: read on at
 * once (a short read otherwise means the end of the table). Rows counted may
 * be gone by the time the rows are read (retention deleted them): the read is
 * then short of what was counted, and `cut` too if `limit` rows were counted
 * (rows may follow them, as after a full read). Rows that committed between the two reads
 * (below ids seen) may take the place of the last ones counted, as any read
 * may see them. If every row counted was gone, the next row comes alone,
 * whatever its size (as a first row always does), and `cut`: an empty read
 * means that no row after `afterId` was there, never that those counted went
 * (the stream's replay takes an empty page for its end,
 * server/stream/session.ts). A read of one row (a cursor check) is made at
 * once: it comes whatever its size.
 */
export async function readWithin<R>(
  sizes: Sizes, read: (afterId: number, limit: number, throughId?: number) => Promise<R[]>, afterId: number, limit: number, maxBytes: number,
): Promise<{ rows: R[]; cut: boolean }> {
  if (limit <= 1) return { rows: await read(afterId, limit), cut: false };
  const counted = await sizes(afterId, limit);
  const taken = fitting(counted.map((c) => c.bytes), maxBytes);
  if (taken === 0) return { rows: [], cut: false };
  const rows = await read(afterId, taken, counted[taken - 1]!.id);
  if (rows.length > 0) return { rows, cut: taken < counted.length || (counted.length === limit && rows.length < taken) };
  const next = await read(afterId, 1);
  return { rows: next, cut: next.length > 0 };
}

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
 * When ids were first seen visible, kept as few marks as possible.
 *
 * Why a gap may be timed from the first sight of *any* higher id
 * ---------------------------------------------------------------
 * Ids are allocated in increasing order when rows are INSERTed. If id `x`
 * was visible at time `t`, every id below `x` had been allocated by `t`, so
 * a transaction still holding one of them uncommitted has held it since
 * before `t`; after `t + gapTimeoutMs` (longer than any transaction holds an
 * inserted event) it has committed or rolled back. So a missing id `m` is
 * final once `gapTimeoutMs` has passed since any id above `m` was first seen.
 * Each read leaves one mark (its highest id, now) and the start leaves one
 * (the newest id, then): all gaps below a mark expire together. A tail that
 * starts below long runs of deleted ids (retention removes old jobs' events)
 * thus waits at most one `gapTimeoutMs` for all of them, not one per run,
 * and a run met later behind rows seen long ago is passed at once.
 *
 * Why not the events' `at`: it is stamped before the transaction takes its
 * row locks, which can wait (and retry) far longer than `gapTimeoutMs`; the
 * id is allocated only after. An old `at` on the row after a gap therefore
 * does not show that the ids below it were allocated long ago: the row may
 * have been inserted a moment ago, right after a lower id that is still
 * committing. The time an id was first *seen* has no such hole.
 */
export class SeenMarks {
  /** Ascending by id and by time: later reads see higher ids. */
  private marks: Array<{ id: number; at: number }> = [];

  /** `id` is visible at `at`. Only a new highest id leaves a mark. */
  saw(id: number, at: number): void {
    const last = this.marks[this.marks.length - 1];
    if (!last || id > last.id) this.marks.push({ id, at });
  }

  /** The first time an id >= `id` was seen, or null if none was. */
  since(id: number): number | null {
    for (const m of this.marks) if (m.id >= id) return m.at;
    return null;
  }

  /**
   * The highest marked id seen at or before `at`: every id up to it is final
   * (committed or rolled back) once `at` is `gapTimeoutMs` in the past.
   */
  finalAt(at: number): number | null {
    let id: number | null = null;
    for (const m of this.marks) {
      if (m.at > at) break;
      id = m.id;
    }
    return id;
  }

  /** Forgets marks at or below the horizon (no gap can end there any more). */
  prune(horizon: number): void {
    let i = 0;
    while (i < this.marks.length && this.marks[i]!.id <= horizon) i++;
    if (i > 0) this.marks = this.marks.slice(i);
  }

  get size(): number {
    return this.marks.length;
  }
}

/**
 * Splits rows read after `horizon` into what is safe to deliver. A missing id
 * blocks everything after it until it appears or `timeoutMs` passed since an
 * id above it was first seen (see SeenMarks). `seen` gets this read's mark.
 */
export function safePrefix(
  horizon: number, rows: readonly { id: number }[], seen: SeenMarks, now: number, timeoutMs: number,
): SafePrefix {
  if (rows.length > 0) seen.saw(rows[rows.length - 1]!.id, now);
  let expected = horizon + 1;
  const skipped: Array<[number, number]> = [];
  for (let i = 0; i < rows.length; i++) {
    const id = rows[i]!.id;
    if (id > expected) {
      const since = seen.since(id) ?? now;
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
  /** The newest id when the reader started, and when (see `starting`). */
  private startId = 0;
  private startedAt = 0;
  private readonly seen = new SeenMarks();
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

  /**
   * Whether the horizon is still below the newest id of the start: the rows
   * up to there committed before the reader started (all but the few still
   * committing then), so a client arriving now would get them as news. The
   * stream lets a subscribe without a cursor wait for this to end. Ends,
   * whatever the horizon, `2 * gapTimeoutMs` after the start: a reader that
   * cannot get there (the newest rows deleted, reads failing) is not waited for.
   */
  starting(now: number): boolean {
    return this.position < this.startId && now - this.startedAt < 2 * this.opts.gapTimeoutMs;
  }

  /**
   * Finds where to begin (a little below the newest event, see `startupRewindIds`)
   * and starts reading. Every id below the newest one is final `gapTimeoutMs`
   * after this (SeenMarks), so runs of deleted ids below it cost one wait in all.
   */
  async start(): Promise<void> {
    if (this.loop) return;
    await this.init();
    this.loop = this.run(this.stopping.signal);
  }

  /** Sets the starting horizon only (tests then drive `step()` by hand). */
  async init(): Promise<void> {
    const last = await this.lastId();
    const now = this.deps.clock.now();
    if (last > 0) this.seen.saw(last, now);
    this.position = Math.max(0, last - this.opts.startupRewindIds);
    this.startId = last;
    this.startedAt = now;
  }

  /**
   * Read now (a commit in this process, or a client arrived). Coalesces: many
   * wakes, one read. Ignored while no client is connected (nothing to read for).
   */
  wake(): void {
    if (this.idle()) return;
    this.waker.notify();
  }

  private idle(): boolean {
    return this.deps.busy?.() === false;
  }

  private lastId(): Promise<number> {
    return this.deps.last ? this.deps.last() : findLastId(this.deps.read);
  }

  /**
   * With no client connected: moves the horizon, without reading rows, up to
   * the newest id seen `gapTimeoutMs` ago or earlier (every id up to it is
   * final, SeenMarks), and leaves a mark for the newest id now. The move is
   * made only if still no client is connected when the answer is in (checked
   * in the same synchronous step): a client that arrived meanwhile gets every
   * event above the horizon it saw.
   */
  async skipAhead(): Promise<void> {
    const { clock } = this.deps;
    const last = await this.unlessStopped(this.lastId());
    const now = clock.now();
    if (last > 0) this.seen.saw(last, now);
    const final = this.seen.finalAt(now - this.opts.gapTimeoutMs);
    if (final !== null && final > this.position && this.idle()) {
      this.position = final;
      this.seen.prune(final);
    }
  }

  /**
   * Ends the reading loop. A read in flight is not waited for: a store that
   * does not answer (MySQL waits up to its query timeout) must not hold the
   * process's shutdown. Its late answer is dropped, which loses nothing: the
   * rows stay in the table, and nothing reads them after the stop.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.waker.notify();
    await this.loop;
  }

  /** `read`, or a rejection as soon as the reader stops (the read's late result, or failure, is dropped). */
  private unlessStopped<T>(read: Promise<T>): Promise<T> {
    return unlessStopped(read, this.stopping.signal);
  }

  /**
   * One read: delivers the safe prefix and moves the horizon past it. Returns
   * whether to read again at once (a full batch went out, or one cut at its bytes) and, when blocked
   * by a gap, until when the gap is waited for.
   */
  async step(): Promise<{ again: boolean; gapUntil: number | null }> {
    const { read, clock, logger, onEvents } = this.deps;
    const { sizes } = this.deps;
    const { tailBatchSize, readBytes } = this.opts;
    const { rows, cut } = sizes && readBytes !== undefined
      ? await this.unlessStopped(readWithin(sizes, read, this.position, tailBatchSize, readBytes))
      : { rows: await this.unlessStopped(read(this.position, tailBatchSize)), cut: false };
    const safe = safePrefix(this.position, rows, this.seen, clock.now(), this.opts.gapTimeoutMs);
    if (safe.skipped.length > 0) {
      // Rolled back, deleted by retention (routine: one line, not one per run), or committed later than gapTimeoutMs.
      const ids = safe.skipped.reduce((n, [from, to]) => n + to - from + 1, 0);
      logger.info(`${this.deps.name ?? 'stream'}: passed missing job_events ids (rolled back or deleted)`, { runs: safe.skipped.length, ids, first: safe.skipped[0], last: safe.skipped.at(-1) });
    }
    if (safe.count > 0) {
      const batch = safe.count === rows.length ? rows : rows.slice(0, safe.count);
      // Horizon first, then hand on, in one synchronous step: a client switching
      // from replay to live reads the horizon and can never fall between the two.
      this.position = batch[batch.length - 1]!.id;
      this.seen.prune(this.position);
      this.delivered += batch.length;
      onEvents(batch);
    }
    return { again: safe.waiting === null && (rows.length === tailBatchSize || cut), gapUntil: safe.waiting?.until ?? null };
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.deps;
    const outage = new OutageLog(logger, `${this.deps.name ?? 'stream'}: tail read`);
    while (!signal.aborted) {
      try {
        if (this.idle()) {
          await this.skipAhead();
          outage.succeeded();
          await this.waker.wait(clock, this.opts.idlePollMs, signal);
          continue;
        }
        const { again, gapUntil } = await this.step();
        outage.succeeded();
        if (again) continue;
        const wait = gapUntil === null ? this.opts.pollMs : Math.max(1, Math.min(this.opts.gapPollMs, gapUntil - clock.now()));
        await this.waker.wait(clock, wait, signal);
      } catch (err) {
        if (signal.aborted) break;
        outage.failed(err, clock.now());
        await clock.sleep(this.opts.errorBackoffMs, signal).catch(() => undefined);
      }
    }
  }
}
