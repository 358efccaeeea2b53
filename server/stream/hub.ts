/**
 * The fan-out of one API instance: its tail readers (one over `job_events`,
 * and one over `workflow_events` where the store keeps workflows), its
 * sessions, the shared stats cache, the keep-alive pings and the re-check of
 * each session's key. Each tail batch is serialized once
 * per event and the same text goes to every live session that wants it
 * (and whose tenant the event's job is: see session.ts).
 */
import { OPEN_PRINCIPAL, type Principal } from '../../engine/auth.js';
import type { WebSocket } from 'ws';
import { errorFields } from '../../engine/logger.js';
import { unlessStopped } from '../../engine/loop.js';
import { Semaphore } from '../../engine/semaphore.js';
import type {
  Clock, JobProgress, JobStore, Logger, ProgressStore, Stats, StreamEventRecord, WorkflowStore, WorkflowStreamEventRecord,
} from '../../engine/ports.js';
import type { CompiledStreamOptions } from './options.js';
import type { Anomaly } from '../../engine/advisor/types.js';
import type { CursorSource } from './cursor.js';
import { eventMessage, insightMessage, parseQuerySubscribe, progressMessage, serverErrorMessage, workflowMessage } from './protocol.js';
import { ProgressTail } from './progress-tail.js';
import { CLOSE, ReadNotWanted, StreamSession, type SessionContext } from './session.js';
import { readWithin, TailReader, type Sizes, type TailDeps, type TailOptions } from '../../engine/event-tail.js';
import type { Standing } from './key-check.js';

export interface HubDeps {
  store: Pick<JobStore, 'readEventsAfter' | 'lastEventId' | 'stats'> & Partial<Pick<JobStore, 'eventSizesAfter' | 'lastIssuedEventId' | 'readJobEventsAfter'>>
    & Partial<Pick<ProgressStore, 'readProgressSince'>>
    & Partial<Pick<WorkflowStore, 'readWorkflowEventsAfter' | 'workflowEventSizesAfter' | 'lastWorkflowEventId' | 'lastIssuedWorkflowEventId'>>;
  clock: Clock;
  logger: Logger;
  /** Called when a client is closed as a slow consumer (metrics). */
  onSlowConsumer?: () => void;
  /**
   * Whether a session's principal still holds (key-check.ts), asked every
   * `keyCheckMs`; throws when it cannot tell. Absent: sessions are never
   * re-checked (an API without keys).
   */
  standing?: (principal: Principal) => Promise<Standing>;
}

/** A stats outage ends at a read that answers this long after the last failure, even if a tenant that failed never asked again. */
export const STATS_OUTAGE_QUIET_MS = 60_000;

/** Tenants whose stats the hub keeps at most; beyond, it starts over. */
const STATS_TENANTS_MAX = 1000;

export class StreamHub {
  readonly tail: TailReader;
  /** The tail over `workflow_events`, where the store keeps workflows. */
  readonly workflowTail: TailReader | null;
  /** Jobs' progress, where the store keeps it. */
  readonly progress: ProgressTail | null;
  /** Each session and the principal it was opened as (the key it was let in with, or none in the open mode). */
  private readonly sessions = new Map<StreamSession, Principal>();
  private readonly context: SessionContext;
  private readonly stopping = new AbortController();
  private keepAliveLoop: Promise<void> | null = null;
  private keyCheckLoop: Promise<void> | null = null;
  /** The last key re-check failed: logged once per outage, not at every tick. */
  private keyCheckFailing = false;
  /**
   * Stats reads failing: logged once as the first fails and once as it ends,
   * not per client, tick or tenant. It ends when every tenant that failed has
   * answered since, or, as a tenant that failed may never ask again, when any
   * read answers `STATS_OUTAGE_QUIET_MS` after the last failure.
   */
  private statsOutage: { failing: Set<string>; lastFailureAt: number } | null = null;
  /** Per tenant, its last stats read and when. */
  private readonly statsCache = new Map<string, { at: number; value: Promise<Stats> }>();
  /** The tails whose last read failed (the database unreachable): their live sessions have been told. */
  private readonly failing = new Set<CursorSource>();

  constructor(private readonly deps: HubDeps, private readonly opts: CompiledStreamOptions) {
    const { store } = deps;
    // An event's data may be large (a job's result, up to 256 KiB; a workflow signal's body, up to the body limit):
    // every read of either table, the tails' and the replays' pages, takes the sizes first, then only the rows that
    // fit `readBytes` (readWithin). The clients' own reads are not the tails': their failures are theirs
    // (session.ts), not told to every session, so they are not `watched`.
    const within = <R>(sizes: Sizes | undefined, read: (afterId: number, limit: number, throughId?: number) => Promise<R[]>) => sizes
      ? async (afterId: number, limit: number) => (await readWithin(sizes, read, afterId, limit, opts.readBytes)).rows
      : read;
    const readJobs = store.readEventsAfter.bind(store);
    const jobSizes = store.eventSizesAfter?.bind(store);
    this.tail = new TailReader({
      read: this.watched('jobs', readJobs), clock: deps.clock, logger: deps.logger, onEvents: (events) => this.fanOut(events), busy: () => this.sessions.size > 0,
      last: this.watched('jobs', () => store.lastEventId()),
      ...(jobSizes ? { sizes: this.watched('jobs', jobSizes, nothingToRead) } : {}),
    }, opts);
    const readJobsWithin = within(jobSizes, readJobs);
    const readWorkflows = store.readWorkflowEventsAfter?.bind(store);
    const lastWorkflow = store.lastWorkflowEventId?.bind(store);
    const workflowSizes = store.workflowEventSizesAfter?.bind(store);
    const workflowTail = readWorkflows && lastWorkflow
      ? workflowTailReader({
          read: this.watched('workflows', readWorkflows), clock: deps.clock, logger: deps.logger, name: 'stream workflows',
          onEvents: (events) => this.fanOutWorkflows(events), busy: () => this.sessions.size > 0, last: this.watched('workflows', lastWorkflow),
          ...(workflowSizes ? { sizes: this.watched('workflows', workflowSizes, nothingToRead) } : {}),
        }, opts)
      : null;
    const readWorkflowsWithin = readWorkflows ? within(workflowSizes, readWorkflows) : undefined;
    this.workflowTail = workflowTail;
    this.progress = store.readProgressSince
      ? new ProgressTail({
          store: { readProgressSince: store.readProgressSince.bind(store) }, clock: deps.clock, logger: deps.logger,
          busy: () => this.sessions.size > 0, onProgress: (p) => this.fanOutProgress(p),
        }, opts.pollMs)
      : null;
    // The clients' own reads (pages, and both reads of a cursor check) share `clientReadsInFlight` slots; the
    // tails read outside them. A read its session no longer wants once its turn comes (the client gone, or its
    // subscription replaced) gives its slot on without reading: reads queued by connections that churn must
    // not hold up those of the clients still there.
    const slots = new Semaphore(opts.clientReadsInFlight);
    const inTurn = async <R>(wanted: (() => boolean) | undefined, fn: () => Promise<R>): Promise<R> => {
      await slots.acquire();
      try {
        if (wanted && !wanted()) throw new ReadNotWanted();
        return await fn();
      } finally {
        slots.release();
      }
    };
    const issued = store.lastIssuedEventId?.bind(store);
    const readJob = store.readJobEventsAfter?.bind(store);
    const issuedWorkflows = store.lastIssuedWorkflowEventId?.bind(store);
    this.context = {
      opts, read: (afterId, limit, wanted) => inTurn(wanted, () => readJobsWithin(afterId, limit)), clock: deps.clock, logger: deps.logger,
      horizon: () => this.tail.horizon,
      starting: () => this.tail.starting(deps.clock.now()),
      ...(issued ? { issued: (wanted?: () => boolean) => inTurn(wanted, issued) } : {}),
      // One job's events are few (and one of them at most carries a result), so they are not sized first.
      ...(readJob ? { readJob: (jobId, afterId, throughId, limit, wanted) => inTurn(wanted, () => readJob(jobId, afterId, limit, throughId)) } : {}),
      ...(readWorkflowsWithin && workflowTail
        ? {
            workflows: {
              read: (afterId, limit, wanted) => inTurn(wanted, () => readWorkflowsWithin(afterId, limit)),
              horizon: () => workflowTail.horizon, starting: () => workflowTail.starting(deps.clock.now()),
              ...(issuedWorkflows ? { issued: (wanted?: () => boolean) => inTurn(wanted, issuedWorkflows) } : {}),
            },
          }
        : {}),
      stats: (tenant) => this.stats(tenant),
      unavailable: (source) => this.failing.has(source),
      onSlowConsumer: deps.onSlowConsumer,
    };
  }

  /** Clients connected now. */
  get size(): number {
    return this.sessions.size;
  }

  async start(): Promise<void> {
    await this.tail.start();
    await this.workflowTail?.start();
    this.progress?.start();
    this.keepAliveLoop ??= this.keepAlive(this.stopping.signal);
    if (this.deps.standing) this.keyCheckLoop ??= this.keyChecks(this.deps.standing, this.stopping.signal);
  }

  /**
   * Takes a new connection; subscribes at once when the query string carries
   * a filter or cursor. The session is the principal's tenant's: it gets that
   * tenant's events only, and is closed once that principal would be
   * refused (`recheckKeys`).
   */
  accept(socket: WebSocket, query: Record<string, unknown>, principal: Principal = OPEN_PRINCIPAL): StreamSession {
    const session = new StreamSession(socket, this.context, principal.tenant);
    this.sessions.set(session, principal);
    // The tail read nothing while no one listened: it reads on from its horizon now.
    if (this.sessions.size === 1) this.wake();
    socket.on('message', (data, isBinary) => session.onFrame(toBuffer(data), isBinary));
    socket.on('pong', () => session.onPong());
    socket.on('close', () => {
      session.dispose();
      this.sessions.delete(session);
    });
    const fromQuery = parseQuerySubscribe(query);
    if (fromQuery?.ok) session.subscribe(fromQuery.value.filter, fromQuery.value.after);
    else if (fromQuery) session.reject(fromQuery.error);
    return session;
  }

  /** A commit in this process (of a job or of a workflow step): both tails read now. */
  wake(): void {
    this.tail.wake();
    this.workflowTail?.wake();
  }

  /** Closes every client with 1001 and stops the tails, the pings and the key re-checks. */
  async stop(): Promise<void> {
    this.stopping.abort();
    for (const s of this.sessions.keys()) s.close(CLOSE.goingAway);
    await this.tail.stop();
    await this.workflowTail?.stop();
    await this.progress?.stop();
    await this.keepAliveLoop;
    await this.keyCheckLoop;
  }

  /**
   * Asks once per principal (one key read serves all of a key's sessions)
   * whether it still holds, and closes with 4401 the sessions of one that
   * does not. A read that fails closes nothing and ends this round (the
   * store is down: the other keys' reads would fail too); the next round
   * asks again. A read in flight at the hub's stop is not waited for (a key
   * store that does not answer must not hold the stop): the round ends there,
   * its late answer dropped, and closes nothing.
   */
  private async recheckKeys(standing: (principal: Principal) => Promise<Standing>, signal: AbortSignal): Promise<void> {
    const groups = new Map<string | null, { principal: Principal; sessions: StreamSession[] }>();
    for (const [session, principal] of this.sessions) {
      const group = groups.get(principal.keyId);
      if (group) group.sessions.push(session);
      else groups.set(principal.keyId, { principal, sessions: [session] });
    }
    for (const { principal, sessions } of groups.values()) {
      let now: Standing;
      try {
        now = await unlessStopped(standing(principal), signal);
      } catch (err) {
        if (signal.aborted) return;
        if (!this.keyCheckFailing) this.deps.logger.warn('stream: cannot re-check the keys of open connections; they stay open until it can', errorFields(err));
        this.keyCheckFailing = true;
        return;
      }
      if (now === 'valid') continue;
      for (const s of sessions) s.close(now === 'revoked' ? CLOSE.keyRevoked : CLOSE.keyRequired);
    }
    if (this.keyCheckFailing) this.deps.logger.info('stream: the keys of open connections are re-checked again');
    this.keyCheckFailing = false;
  }

  /**
   * A tail's reads (of rows while clients are connected, of the newest id
   * while none is), watched: the first that fails (the database unreachable)
   * tells that tail's live sessions, once per outage (`StreamSession.unavailable`);
   * the tail retries at its error backoff, and the first read that succeeds
   * ends the outage: the tail reads on from its horizon, so the live sessions
   * get what was committed meanwhile, nothing lost. A read that answers ends
   * it only where `ends` says so: the sizes read before the rows (readWithin)
   * only when it leaves no rows to read, for the rows' read may fail on its
   * own, and each of its failures would otherwise tell the sessions again.
   */
  private watched<A extends unknown[], R>(
    source: CursorSource, read: (...args: A) => Promise<R>, ends: (answer: R) => boolean = () => true,
  ): (...args: A) => Promise<R> {
    return async (...args) => {
      let rows: R;
      try {
        rows = await read(...args);
      } catch (err) {
        if (!this.failing.has(source)) {
          this.failing.add(source);
          const text = serverErrorMessage('ATS_ERR_STORE_UNAVAILABLE');
          for (const s of this.sessions.keys()) s.unavailable(source, text);
        }
        throw err;
      }
      if (ends(rows)) this.failing.delete(source);
      return rows;
    };
  }

  private fanOut(events: readonly StreamEventRecord[]): void {
    this.fanOutTo(events, eventMessage, (s, text) => s.deliver(events, text));
  }

  private fanOutWorkflows(events: readonly WorkflowStreamEventRecord[]): void {
    this.fanOutTo(events, workflowMessage, (s, text) => s.deliverWorkflows(events, text));
  }

  /** Hands a batch to every live session, each event's text made once for all of them. */
  private fanOutTo<E>(events: readonly E[], message: (e: E) => string, deliver: (s: StreamSession, text: (i: number) => string) => void): void {
    const live = [...this.sessions.keys()].filter((s) => s.live);
    if (live.length === 0) return;
    const texts: string[] = [];
    const text = (i: number) => (texts[i] ??= message(events[i]!));
    for (const s of live) {
      try {
        deliver(s, text);
      } catch (err) {
        // One client's failure must not cost the others this batch (the horizon has moved on).
        this.deps.logger.error('stream: delivery to a client failed; closing it so it resumes', errorFields(err));
        s.close(CLOSE.internal);
      }
    }
  }

  private fanOutProgress(p: JobProgress): void {
    let text: string | null = null;
    for (const s of this.sessions.keys()) s.notifyProgress((text ??= progressMessage(p)), p);
  }

  /** An advisor anomaly to every live client whose filter wants it. */
  insight(a: Anomaly): void {
    const text = insightMessage(a);
    for (const s of this.sessions.keys()) s.notify(text, a);
  }

  /** One stats query per tenant shared by every client of it asking within `statsCacheMs`. */
  private stats(tenant: string): Promise<Stats> {
    const now = this.deps.clock.now();
    const cached = this.statsCache.get(tenant);
    if (cached && now - cached.at < this.opts.statsCacheMs) return cached.value;
    const value = this.deps.store.stats(tenant);
    // Stale entries of tenants no longer asking go when the map grows.
    if (!cached && this.statsCache.size >= STATS_TENANTS_MAX) this.statsCache.clear();
    this.statsCache.set(tenant, { at: now, value });
    value.then(() => {
      const outage = this.statsOutage;
      if (!outage) return;
      outage.failing.delete(tenant);
      if (outage.failing.size > 0 && this.deps.clock.now() - outage.lastFailureAt < STATS_OUTAGE_QUIET_MS) return;
      this.statsOutage = null;
      this.deps.logger.info('stream: job counts are read again');
    }, (err: unknown) => {
      if (this.statsCache.get(tenant)?.value === value) this.statsCache.delete(tenant);
      const at = this.deps.clock.now();
      if (this.statsOutage) {
        // Bounded as the cache is; past the bound, only the quiet time ends the outage.
        if (this.statsOutage.failing.size < STATS_TENANTS_MAX) this.statsOutage.failing.add(tenant);
        this.statsOutage.lastFailureAt = at;
        return;
      }
      this.statsOutage = { failing: new Set([tenant]), lastFailureAt: at };
      this.deps.logger.warn('stream: cannot read job counts; clients asking for stats are told ATS_ERR_STORE_UNAVAILABLE until it can', errorFields(err));
    });
    return value;
  }

  private async keepAlive(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.deps.clock.sleep(this.opts.pingIntervalMs, signal);
      } catch {
        return;
      }
      for (const s of this.sessions.keys()) {
        try {
          s.keepAlive();
        } catch (err) {
          this.deps.logger.warn('stream: keep-alive ping failed', errorFields(err));
        }
      }
    }
  }

  /** Every `keyCheckMs`, while sessions are open, `recheckKeys`. */
  private async keyChecks(standing: (principal: Principal) => Promise<Standing>, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.deps.clock.sleep(this.opts.keyCheckMs, signal);
      } catch {
        return;
      }
      if (this.sessions.size === 0) continue;
      try {
        await this.recheckKeys(standing, signal);
      } catch (err) {
        // recheckKeys catches the reads; this is a bug, and must not end the loop (or leave the promise rejected for stop()).
        this.deps.logger.error('stream: key re-check failed', errorFields(err));
      }
    }
  }
}

/** A sizes read that leaves no rows to read (nothing new): the read of the rows is not made, so the sizes' answer is the tail's. */
const nothingToRead = (sizes: readonly unknown[]): boolean => sizes.length === 0;

/**
 * A TailReader over `workflow_events`. The reader is written for job events
 * but looks only at the rows' `id` (its gaps, its horizon) and hands the rows
 * on as read, so the workflow rows pass through it unchanged; the casts say
 * no more than that.
 */
function workflowTailReader(
  deps: Omit<TailDeps, 'read' | 'onEvents'> & {
    read: WorkflowStore['readWorkflowEventsAfter'];
    onEvents(events: readonly WorkflowStreamEventRecord[]): void;
  },
  opts: TailOptions,
): TailReader {
  const { read, onEvents, ...rest } = deps;
  return new TailReader({
    ...rest,
    read: read as unknown as JobStore['readEventsAfter'],
    onEvents: (events) => onEvents(events as unknown as readonly WorkflowStreamEventRecord[]),
  }, opts);
}

/** ws hands text frames over as a Buffer (or, fragmented, as a list of them). */
function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}
