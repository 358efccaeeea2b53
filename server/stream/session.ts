/**
 * One client connection of the stream: its subscription, its replay from the
 * table and the switch to the shared live fan-out, its periodic stats, and
 * the limits (message size, send buffer, keep-alive).
 *
 * A subscription is at a `position` (a `job_events.id`, or for a filter of
 * workflow transitions a `workflow_events.id`: each table has its own tail
 * reader, and a subscription follows one of them, its *feed*): everything at
 * or below it was delivered (if it matched) or is not wanted. With a cursor the
 * session first replays `id > position` from the table up to the tail's
 * horizon, page by page, then turns live in the same synchronous step in
 * which it found itself at the horizon; from then on the hub hands it each
 * tail batch, whose ids are all above that horizon. Each id is thus handed
 * over by exactly one of the two paths: no gap, no duplicate.
 *
 * A session belongs to the tenant of the key that opened it: it gets only
 * that tenant's events, progress and stats, whatever its filter says (a
 * filter naming another tenant's job id matches nothing, as an id that does
 * not exist).
 */
import { DEFAULT_TENANT } from '../../engine/auth.js';
import { errorFields } from '../../engine/logger.js';
import type { Clock, JobProgress, Logger, Stats, StreamEventRecord, WorkflowStreamEventRecord } from '../../engine/ports.js';
import type { CursorSource } from './cursor.js';
import type { CompiledStreamOptions } from './options.js';
import {
  PONG_MESSAGE, errorMessage, eventMessage, matches, matchesWorkflow, parseClientMessage, serverErrorMessage, sourceOf, statsMessage, subscribedMessage,
  wantsInsight, wantsProgress, workflowMessage, type ClientMessage, type ProtocolError, type StreamFilter,
} from './protocol.js';

/** The part of a `ws` WebSocket a session uses (tests pass a fake). */
export interface StreamSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
}

/** What every session shares: the options, the tail's horizon, reads and stats. */
export interface SessionContext {
  readonly opts: CompiledStreamOptions;
  /** The tail's horizon now (see TailReader.horizon). */
  horizon(): number;
  /** The tail is still reading rows of before its start (TailReader.starting); absent: never. */
  starting?(): boolean;
  /**
   * The events after `afterId` (JobStore.readEventsAfter), read in the
   * session's turn among every client's reads (hub.ts). `wanted` is asked
   * when the turn comes: false (the client gone, or its subscription
   * replaced), the read rejects with ReadNotWanted without reaching the store.
   */
  read(afterId: number, limit: number, wanted?: () => boolean): Promise<StreamEventRecord[]>;
  /** The highest event id ever handed out (JobStore.lastIssuedEventId), read in turn as `read`; absent: a cursor is checked by its row alone. */
  issued?(wanted?: () => boolean): Promise<number>;
  /**
   * One job's events in `(afterId, throughId]` (JobStore.readJobEventsAfter), read in turn as `read`: the pages of
   * a replay of a subscription to one job. Absent: that replay reads every job's events, as any other.
   */
  readJob?(jobId: string, afterId: number, throughId: number, limit: number, wanted?: () => boolean): Promise<StreamEventRecord[]>;
  /** The workflow events' tail horizon and reads; absent where the store keeps no workflows (a workflow filter is then refused). */
  workflows?: {
    horizon(): number;
    starting?(): boolean;
    read(afterId: number, limit: number, wanted?: () => boolean): Promise<WorkflowStreamEventRecord[]>;
    issued?(wanted?: () => boolean): Promise<number>;
  };
  /** The tenant's counts per state/type/queue (shared per tenant and briefly cached by the hub). */
  stats(tenant: string): Promise<Stats>;
  clock: Clock;
  logger: Logger;
  /** Called when a client is closed as a slow consumer (metrics). */
  onSlowConsumer?: () => void;
  /** The tail of `source` cannot read the database now (hub.ts); absent: never. */
  unavailable?(source: CursorSource): boolean;
}

/** A session's read whose turn came after the session stopped wanting it (SessionContext.read): it was not made. */
export class ReadNotWanted extends Error {
  constructor() {
    super('stream: a client read no longer wanted was not made');
    this.name = 'ReadNotWanted';
  }
}

/** Close codes of protocol v1. */
export const CLOSE = Object.freeze({
  goingAway: { code: 1001, reason: 'server going away' },
  policy: { code: 1008, reason: 'too many oversize messages' },
  internal: { code: 1011, reason: 'stream read failed: resume with your last cursor' },
  slowConsumer: { code: 4000, reason: 'slow consumer: resume with your last cursor' },
  // 4401 mirrors HTTP 401: what the upgrade would be answered now (hub.ts re-checks every open connection's key).
  keyRevoked: { code: 4401, reason: 'API key revoked: reconnect with a valid key' },
  keyRequired: { code: 4401, reason: 'API keys are now required: reconnect with a key' },
});

const OPEN = 1;

/** The TCP socket under a ws WebSocket (ws keeps it in `_socket`; absent in fakes). */
type Corkable = { cork(): void; uncork(): void };
/** How often a paused replay looks whether the client drained its buffer. */
const DRAIN_POLL_MS = 10;

type Mode = 'idle' | 'replaying' | 'live' | 'closed';

/** One table a subscription can follow: its tail's horizon, and its rows as the session sends them. */
interface Feed {
  readonly source: CursorSource;
  horizon(): number;
  /** Its tail is still reading rows of before its start: a subscribe without a cursor waits (see `subscribe`). */
  starting(): boolean;
  /**
   * The rows after `afterId` in id order, each with its message if the subscription in force wants it (tenant and
   * filter), else null; rejects with ReadNotWanted, without reading, if `wanted` says no when the read's turn comes.
   */
  read(afterId: number, limit: number, wanted: () => boolean): Promise<Array<{ id: number; text: string | null }>>;
  /** The highest id ever handed out in its table (deletes do not lower it), as `read`; absent where the store cannot tell. */
  issued?(wanted: () => boolean): Promise<number>;
  /** As `read`, of one job's rows up to `throughId` only (a replay of a subscription to one job); absent: `read`. */
  readJob?(jobId: string, afterId: number, throughId: number, limit: number, wanted: () => boolean): Promise<Array<{ id: number; text: string | null }>>;
}

export class StreamSession {
  private filter: StreamFilter = {};
  /** The table the subscription in force follows (`sourceOf(filter)`). */
  private source: CursorSource = 'jobs';
  private mode: Mode = 'idle';
  private position = 0;
  /** Bumped by each subscribe and by close: a replay of an older generation stops. */
  private generation = 0;
  /** Bumped by each subscribe request: a cursor check answering after a newer request is dropped. */
  private requests = 0;
  /**
   * A read of this session (a cursor check or a page of a replay) is under
   * way. A session has at most one at any time, whatever the client sends:
   * what needs a read while one is under way waits in `next` or
   * `replayNext`, one of each at most (see `inTurn`).
   */
  private reading = false;
  /** The newest subscribe's read (a cursor check), if it waits; a newer subscribe replaces it. */
  private next: (() => Promise<void>) | null = null;
  /** The next page of the replay in force, if it waits; it goes after `next`. */
  private replayNext: (() => Promise<void>) | null = null;
  private oversize = 0;
  private statsTimer: AbortController | null = null;
  /** Answered the last keep-alive ping. */
  private alive = true;

  /**
   * ws writes every frame to the TCP socket on its own; corking it around a
   * batch coalesces the batch's frames into a few writes (47k → 170-210k
   * events/s in bench/stream-fanout.ts). `_socket` is ws's private field:
   * without it (another socket type), frames simply go out one by one.
   */
  private readonly tcp: Corkable | null;

  private readonly jobs: Feed;
  /** Null where the store keeps no workflows. */
  private readonly workflows: Feed | null;

  constructor(private readonly socket: StreamSocket, private readonly ctx: SessionContext, readonly tenant: string = DEFAULT_TENANT) {
    const tcp = (socket as unknown as { _socket?: Partial<Corkable> })._socket;
    this.tcp = typeof tcp?.cork === 'function' && typeof tcp.uncork === 'function' ? (tcp as Corkable) : null;
    this.jobs = {
      source: 'jobs',
      horizon: () => ctx.horizon(),
      starting: () => ctx.starting?.() ?? false,
      read: async (afterId, limit, wanted) => (await ctx.read(afterId, limit, wanted)).map((e) => ({
        id: e.id, text: e.tenant === this.tenant && matches(this.filter, e) ? eventMessage(e) : null,
      })),
      ...(ctx.issued ? { issued: ctx.issued } : {}),
      ...(ctx.readJob ? {
        readJob: async (jobId: string, afterId: number, throughId: number, limit: number, wanted: () => boolean) =>
          (await ctx.readJob!(jobId, afterId, throughId, limit, wanted)).map((e) => ({
            id: e.id, text: e.tenant === this.tenant && matches(this.filter, e) ? eventMessage(e) : null,
          })),
      } : {}),
    };
    const wf = ctx.workflows;
    this.workflows = wf
      ? {
          source: 'workflows',
          horizon: () => wf.horizon(),
          starting: () => wf.starting?.() ?? false,
          read: async (afterId, limit, wanted) => (await wf.read(afterId, limit, wanted)).map((e) => ({
            id: e.id, text: e.tenant === this.tenant && matchesWorkflow(this.filter, e) ? workflowMessage(e) : null,
          })),
          ...(wf.issued ? { issued: wf.issued } : {}),
        }
      : null;
  }

  get live(): boolean {
    return this.mode === 'live';
  }

  // ------------------------------------------------------------ client messages

  /** One frame from the client. Never throws: mistakes are answered with an error message. */
  onFrame(data: Buffer, isBinary: boolean): void {
    if (this.mode === 'closed') return;
    const { maxMessageBytes, maxOversizeMessages } = this.ctx.opts;
    // Size first, binary or not: a client sending big binary frames is closed as one sending big text ones.
    if (data.length > maxMessageBytes && ++this.oversize >= maxOversizeMessages) {
      this.reject({ code: 'ATS_ERR_VALIDATION', message: `message of ${data.length} bytes is larger than the limit of ${maxMessageBytes}; closing` });
      return this.close(CLOSE.policy);
    }
    if (isBinary && data.length <= maxMessageBytes) return this.reject({ code: 'ATS_ERR_VALIDATION', message: 'send JSON text frames, not binary ones' });
    // Oversize frames are not decoded: the check above and in parseClientMessage uses the byte length only.
    const text = data.length > maxMessageBytes ? '' : data.toString('utf8');
    const parsed = parseClientMessage(text, data.length, maxMessageBytes);
    if (!parsed.ok) return this.reject(parsed.error);
    this.handle(parsed.value);
  }

  handle(msg: ClientMessage): void {
    if (msg.op === 'ping') this.send(PONG_MESSAGE);
    else if (msg.op === 'stats') this.statsEvery(msg.everyMs);
    else this.subscribe(msg.filter, msg.after);
  }

  /** An error message for a bad client message; the connection stays open. */
  reject(error: ProtocolError): void {
    this.send(errorMessage(error));
  }

  // ------------------------------------------------------------ subscription

  /**
   * Replaces the subscription. Without `after`: live from the horizon. With
   * it: replay, then live.
   *
   * A cursor above this instance's horizon is either one another instance
   * issued (its tail is ahead of ours by a moment) or one no server issued.
   * Every cursor a server issues is an id of the table or a horizon, and a
   * horizon never passes the newest id, so an issued cursor `c` has an id
   * `>= c` in its table (`job_events`, or `workflow_events` for a workflow
   * filter). One primary-key read tells the two apart: a
   * forged cursor is refused with ATS_ERR_BAD_CURSOR and the subscription in
   * force stays, as for any bad subscribe; a cursor of another instance
   * subscribes and the session turns live once our tail passes it.
   */
  subscribe(filter: StreamFilter, after?: number): void {
    const request = ++this.requests;
    // A read a superseded subscribe left waiting is not begun: only the newest request's is.
    this.next = null;
    const feed = sourceOf(filter) === 'jobs' ? this.jobs : this.workflows;
    if (!feed) return this.reject({ code: 'ATS_ERR_VALIDATION', message: 'This server keeps no workflows: subscribe to job transitions' });
    if (after === undefined && feed.starting()) return this.inTurn(() => this.startAfterTail(request, filter, feed));
    if (after === undefined || after <= feed.horizon()) return this.start(filter, feed, after);
    this.inTurn(() => this.checkCursor(request, filter, feed, after));
  }

  /**
   * A subscribe without a cursor on an instance that has just started: its
   * tail began some way below the newest event (`startupRewindIds`, to catch
   * transactions committing at the start), and a subscription live from
   * there would get every event of that stretch, old ones, as news. It waits
   * until the tail has passed them (`TailReader.starting`: at most twice
   * `gapTimeoutMs`), then subscribes live at the horizon.
   */
  private async startAfterTail(request: number, filter: StreamFilter, feed: Feed): Promise<void> {
    while (feed.starting()) {
      await this.ctx.clock.sleep(this.ctx.opts.gapPollMs);
      if (request !== this.requests || this.mode === 'closed') return; // a newer subscribe, or gone
    }
    if (request === this.requests && this.mode !== 'closed') this.start(filter, feed, undefined);
  }

  /** Tells a cursor above our horizon that another instance issued from one no server issued (see `subscribe`). */
  private async checkCursor(request: number, filter: StreamFilter, feed: Feed, after: number): Promise<void> {
    if (request !== this.requests) return; // a newer subscribe came while this one waited its turn
    // Neither read is made once a newer subscribe came, or the client went, while it waited its turn.
    const wanted = () => request === this.requests && this.mode !== 'closed';
    let issued: boolean;
    try {
      // The cursor's row, or (its job deleted since, or purged) an id at or below the highest ever handed out.
      issued = (await feed.read(after - 1, 1, wanted)).length > 0 || (feed.issued !== undefined && after <= (await feed.issued(wanted)));
    } catch (err) {
      if (request !== this.requests || this.mode === 'closed') return;
      this.ctx.logger.warn('stream: cursor check failed; closing the client so it resumes', errorFields(err));
      this.send(serverErrorMessage('ATS_ERR_STORE_UNAVAILABLE'));
      this.close(CLOSE.internal);
      return;
    }
    if (request !== this.requests || this.mode === 'closed') return; // a newer subscribe, or gone
    if (issued) this.start(filter, feed, after);
    else this.reject({ code: 'ATS_ERR_BAD_CURSOR', message: 'The stream cursor is beyond every event this server has issued' });
  }

  /**
   * Runs a subscribe's `read` at once if no read of this session is under
   * way, else when the one under way ends, in place of any subscribe's read
   * waiting before it. So one client holds at most one database read,
   * however many subscribes it sends: a newer subscribe stops an older
   * replay (`generation`) and its own read begins when the older one's
   * returns. A replay reads one page a turn, so a subscribe's read waits for
   * one page, not for the whole replay.
   */
  private inTurn(read: () => Promise<void>): void {
    this.next = read;
    if (!this.reading) void this.readInTurn();
  }

  private async readInTurn(): Promise<void> {
    this.reading = true;
    try {
      for (;;) {
        const read = this.next ?? this.replayNext;
        if (!read || this.mode === 'closed') return;
        if (read === this.next) this.next = null;
        else this.replayNext = null;
        await read();
      }
    } finally {
      this.reading = false;
    }
  }

  /** Lets the replay of `generation` read its next page in its turn. */
  private replayInTurn(generation: number, feed: Feed): void {
    this.replayNext = () => this.replayPage(generation, feed).catch((err) => this.replayFailed(generation, err));
    if (!this.reading) void this.readInTurn();
  }

  private start(filter: StreamFilter, feed: Feed, after: number | undefined): void {
    const generation = ++this.generation;
    this.filter = filter;
    this.source = feed.source;
    this.replayNext = null;
    if (after === undefined) {
      this.position = feed.horizon();
      this.mode = 'live';
      this.send(subscribedMessage(this.position, feed.source));
      this.toldIfUnavailable(feed);
      return;
    }
    this.position = after;
    this.mode = 'replaying';
    this.send(subscribedMessage(after, feed.source));
    this.replayInTurn(generation, feed);
  }

  /**
   * One page of a replay: reads `id > position` from the table up to the
   * horizon, and lets the next page follow in its turn; once the position
   * has caught up with the horizon, turns live. The horizon is read again
   * before each page, and the session turns live in the same synchronous
   * step in which it found the position caught up, so no tail batch can slip
   * between the last page and the first live one.
   */
  private async replayPage(generation: number, feed: Feed): Promise<void> {
    const { opts } = this.ctx;
    if (this.generation !== generation) return;
    const target = feed.horizon();
    if (this.position >= target) {
      this.mode = 'live';
      this.toldIfUnavailable(feed);
      return;
    }
    // Not read once the subscription was replaced, or the client went, while the page waited its turn.
    const wanted = () => this.generation === generation;
    // A subscription to one job reads that job's rows only (an index range, not every job's events since its cursor:
    // a watch of a job from its view's `streamCursor`, which may be old). Every id up to `target` is committed or
    // never will be, so the job's rows up to it are all there to read, and a page that ends short has read them all.
    const jobId = this.filter.jobId;
    const rows = jobId !== undefined && feed.readJob
      ? await feed.readJob(jobId, this.position, target, opts.replayPageSize, wanted)
      : await feed.read(this.position, opts.replayPageSize, wanted);
    if (this.generation !== generation) return;
    this.tcp?.cork();
    try {
      for (const e of rows) {
        if (e.id > target) break;
        if (e.text !== null) this.send(e.text, { paced: true });
        // Pace to the client instead of closing it: a replay is a catch-up, not a slow consumer.
        if (this.over(opts.maxBufferedBytes / 2) && !(await this.drained(generation))) return;
        this.position = e.id;
      }
    } finally {
      this.tcp?.uncork();
    }
    // Every id up to `target` is committed (or never will be), so an empty page means all of them were read. A
    // short one does not: a page of workflow events ends where their bytes do (hub.ts), with rows after it.
    const sawAll = rows.length === 0 || rows[rows.length - 1]!.id >= target || (jobId !== undefined && feed.readJob !== undefined && rows.length < opts.replayPageSize);
    if (sawAll) this.position = target;
    this.replayInTurn(generation, feed);
  }

  /** Waits until the client's buffer is below half the limit; false if the subscription changed meanwhile. */
  private async drained(generation: number): Promise<boolean> {
    while (this.over(this.ctx.opts.maxBufferedBytes / 2)) {
      await this.ctx.clock.sleep(DRAIN_POLL_MS);
      if (this.generation !== generation || this.socket.readyState !== OPEN) return false;
    }
    return this.generation === generation;
  }

  private replayFailed(generation: number, err: unknown): void {
    if (this.generation !== generation) return;
    this.ctx.logger.warn('stream: replay failed; closing the client so it resumes', errorFields(err));
    this.send(serverErrorMessage('ATS_ERR_STORE_UNAVAILABLE'));
    this.close(CLOSE.internal);
  }

  /**
   * Live fan-out of one tail batch of job events (ids above the horizon this
   * session turned live at). `text(i)` is the i-th event's message, built
   * once for all sessions. A subscription to workflows takes none.
   */
  deliver(events: readonly StreamEventRecord[], text: (i: number) => string): void {
    if (this.mode !== 'live' || this.source !== 'jobs') return;
    this.deliverBatch(events, (e) => e.tenant === this.tenant && matches(this.filter, e), text);
  }

  /** Live fan-out of one tail batch of workflow events, as `deliver`; a subscription to jobs takes none. */
  deliverWorkflows(events: readonly WorkflowStreamEventRecord[], text: (i: number) => string): void {
    if (this.mode !== 'live' || this.source !== 'workflows') return;
    this.deliverBatch(events, (e) => e.tenant === this.tenant && matchesWorkflow(this.filter, e), text);
  }

  private deliverBatch<R extends { id: number }>(events: readonly R[], wanted: (e: R) => boolean, text: (i: number) => string): void {
    this.tcp?.cork();
    try {
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        // A cursor from an instance whose horizon is ahead of ours puts the position above this batch.
        if (e.id > this.position && wanted(e) && !this.send(text(i))) return;
      }
    } finally {
      this.tcp?.uncork();
    }
    if (events.length > 0) this.position = Math.max(this.position, events[events.length - 1]!.id);
  }

  /** Turned live while its tail cannot read the database: told at once, as the sessions live when that began were (`unavailable`). */
  private toldIfUnavailable(feed: Feed): void {
    if (this.ctx.unavailable?.(feed.source)) this.send(serverErrorMessage('ATS_ERR_STORE_UNAVAILABLE'));
  }

  /**
   * The tail of `source` cannot read the database (hub.ts tells each session
   * once per outage): a live session following it is told with `text` (an
   * ATS_ERR_STORE_UNAVAILABLE error message) and stays; its events come once
   * the tail reads again. A replaying session's own read fails and closes it
   * with 1011.
   */
  unavailable(source: CursorSource, text: string): void {
    if (this.mode === 'live' && this.source === source) this.send(text);
  }

  /** A job's progress, to a live session whose filter wants it (`wantsProgress`). */
  notifyProgress(text: string, p: JobProgress): void {
    if (this.mode === 'live' && p.tenant === this.tenant && wantsProgress(this.filter, p)) this.send(text);
  }

  /**
   * An advisor insight, to a live session whose filter wants it
   * (`wantsInsight`). The advisor learns from every tenant's jobs: only the
   * default tenant's sessions get its insights (as `GET /v1/insights`).
   */
  notify(text: string, insight: { type: string; queue: string }): void {
    if (this.mode === 'live' && this.tenant === DEFAULT_TENANT && wantsInsight(this.filter, insight)) this.send(text);
  }

  // ------------------------------------------------------------ stats

  /** Replaces the stats request in force (docs/stream.md): once (the period stops), every `everyMs`, or 0: none. */
  private statsEvery(everyMs: number | undefined): void {
    this.statsTimer?.abort();
    this.statsTimer = null;
    if (everyMs === 0) return;
    void this.sendStats();
    if (everyMs === undefined) return;
    const timer = (this.statsTimer = new AbortController());
    void this.statsLoop(everyMs, timer.signal);
  }

  private async statsLoop(everyMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.ctx.clock.sleep(everyMs, signal);
      } catch {
        return;
      }
      await this.sendStats();
    }
  }

  private async sendStats(): Promise<void> {
    try {
      const stats = await this.ctx.stats(this.tenant);
      this.send(statsMessage(stats, this.ctx.clock.now()));
    } catch {
      // Logged by the hub, once an outage (not once per client and tick).
      this.send(serverErrorMessage('ATS_ERR_STORE_UNAVAILABLE'));
    }
  }

  // ------------------------------------------------------------ sending, keep-alive, close

  /**
   * Sends one message; false when the session cannot take more. Live sends
   * that leave more than `maxBufferedBytes` queued close the client with
   * 4000: it resumes from its last cursor, on this or another instance.
   */
  private send(text: string, { paced = false } = {}): boolean {
    if (this.mode === 'closed' || this.socket.readyState !== OPEN) return false;
    this.socket.send(text);
    if (!paced && this.over(this.ctx.opts.maxBufferedBytes)) {
      this.ctx.onSlowConsumer?.();
      this.close(CLOSE.slowConsumer);
      return false;
    }
    return true;
  }

  /**
   * Is more than `limit` queued towards the client? Frames held back by our
   * own cork do not count: past the limit they are flushed first, and only
   * what the kernel would not take is counted.
   */
  private over(limit: number): boolean {
    if (this.socket.bufferedAmount <= limit) return false;
    if (this.tcp) {
      this.tcp.uncork();
      this.tcp.cork();
    }
    return this.socket.bufferedAmount > limit;
  }

  /** The client answered a ping. */
  onPong(): void {
    this.alive = true;
  }

  /** Called every ping interval: drops a client that did not answer the last ping, pings the others. */
  keepAlive(): void {
    if (this.mode === 'closed') return;
    if (!this.alive) {
      this.ctx.logger.debug('stream: client missed a pong; dropping it');
      this.dispose();
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  close({ code, reason }: { code: number; reason: string }): void {
    if (this.mode === 'closed') return;
    this.dispose();
    this.socket.close(code, reason);
  }

  /** Stops the replay and the stats timer; the session takes nothing more. */
  dispose(): void {
    this.mode = 'closed';
    this.generation++;
    this.next = null;
    this.replayNext = null;
    this.statsTimer?.abort();
    this.statsTimer = null;
  }
}
