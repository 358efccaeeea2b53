/**
 * Following jobs to their end: through the stream when the server has one,
 * by polling the REST API when it does not. Either way the caller sees each
 * job's history in seq order, once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, compareProgress, isTerminal, UnreachableError, type AtsClient, type JobEvent, type JobProgress } from '../client.js';
import {
  StreamUnavailable, subscribe, type CommandFilter as StreamFilter, type StreamEvent, type SubscribeOptions, type Subscription,
} from './stream.js';
import { attemptOf, oneLine } from './output.js';

export type Mode = 'stream' | 'poll';

/**
 * Emits a job's events in seq order, each once, whatever order and overlap
 * they arrive in (a GET of the history and the stream race each other).
 */
export class SeqGate {
  private next = 1;
  private readonly held = new Map<number, JobEvent>();
  last: JobEvent | null = null;

  constructor(private readonly emit: (e: JobEvent) => void) {}

  push(events: readonly JobEvent[]): void {
    for (const e of events) if (e.seq >= this.next) this.held.set(e.seq, e);
    for (let e = this.held.get(this.next); e; e = this.held.get(this.next)) {
      this.held.delete(this.next++);
      this.last = e;
      this.emit(e);
    }
  }
}

/** Is `p` later than `than`: a later attempt, or a later time in the same one? */
const later = (p: JobProgress, than: JobProgress): boolean => compareProgress(p, than) > 0;

/**
 * Passes on a job's progress, each value once and only when it is later than
 * the last passed on (the stream and the GETs overlap, and a GET can answer
 * an older value than the stream already sent), and never before the start
 * of the attempt that reported it has been shown (`started`): the stream's
 * progress and its transitions are read apart, and a GET of a job already
 * running reads its progress with the history still to be shown.
 */
export class ProgressGate {
  private last: JobProgress | null = null;
  private held: JobProgress | null = null;
  /** The latest attempt whose start was shown. */
  private attempt = 0;

  constructor(private readonly emit: (p: JobProgress) => void) {}

  push(p: JobProgress | null | undefined): void {
    if (!p || (this.last && !later(p, this.last))) return;
    if (p.attempt > this.attempt) {
      if (!this.held || later(p, this.held)) this.held = p;
      return;
    }
    this.last = p;
    this.emit(p);
  }

  /** The start of `attempt` was shown: what it reported, held until now, follows. */
  started(attempt: number): void {
    this.attempt = Math.max(this.attempt, attempt);
    const held = this.held;
    if (held && held.attempt <= this.attempt) {
      this.held = null;
      this.push(held);
    }
  }
}

export const fromStream = (e: StreamEvent): JobEvent => ({ seq: e.seq, type: e.type, from: e.from, to: e.to, at: e.at, data: e.data });

export interface FollowOptions {
  /** Polling period when there is no stream. @defaultValue 250 */
  pollMs?: number;
  /** With a stream, the history is also re-read this often, in case an event went missing. @defaultValue 5000 */
  recheckMs?: number;
  onNotice?(message: string): void;
  /** Tells which way the job is followed once decided. */
  onMode?(mode: Mode): void;
  /**
   * The job's progress each time a newer one is seen, until it ends: live
   * from the stream, else from each poll (and from the history reads).
   */
  onProgress?(progress: JobProgress): void;
}

/**
 * Calls `onEvent` for every event of job `id` (its whole history first), in
 * order, until the job is in a terminal state; resolves with that state. A
 * server that does not answer, or is unavailable or rate limits, is waited
 * for: through the stream's reconnects once it holds, else by polling.
 */
export async function followJob(client: AtsClient, id: string, onEvent: (e: JobEvent) => void, opts: FollowOptions = {}): Promise<string> {
  let finish!: (state: string) => void;
  const finished = new Promise<string>((resolve) => (finish = resolve));
  let over = false;
  const onProgress = opts.onProgress;
  const progress = onProgress ? new ProgressGate((p) => {
    if (!over) onProgress(p);
  }) : null;
  const gate = new SeqGate((e) => {
    onEvent(e);
    if (e.type === 'STARTED') progress?.started(attemptOf(e) ?? Number.POSITIVE_INFINITY);
    if (isTerminal(e.to)) {
      over = true;
      finish(e.to);
    }
  });
  const read = async () => {
    const job = await client.get(id);
    // The progress first, held until its attempt's start is shown: a job read done shows its last progress before its end.
    progress?.push(job.progress);
    gate.push(job.events);
  };
  const onStreamEvent = (e: StreamEvent) => {
    // An attempt's end: its last progress was stored before it, but the stream sends progress apart from
    // transitions (and may send it after). Read the job first, so that progress is shown before the end.
    if (progress && e.from === 'running') {
      void read().catch(() => undefined).finally(() => gate.push([fromStream(e)]));
      return;
    }
    gate.push([fromStream(e)]);
  };
  // Subscribe before reading the history: every event is then in one or the other.
  const sub = await trySubscribe(client, { jobId: id }, onStreamEvent, {
    ...opts,
    onProgress: progress ? (m) => progress.push({ value: m.progress, attempt: m.attempt, at: m.at }) : undefined,
    // The job exists: an outage of the server's database is waited out, as by the reads below.
    untilAvailable: true,
  }).catch((err: unknown) => {
    // The job exists, but the stream does not answer: the server stopped answering since (a restart), or a proxy
    // holds its upgrades. The job is polled instead: the reads wait out a server that does not answer, as they
    // wait out its outages, instead of ending the follow of a job that was submitted.
    if (!(err instanceof UnreachableError)) throw err;
    opts.onNotice?.(`stream: ${oneLine(err.message)}; following the job by polling`);
    return null;
  });
  opts.onMode?.(sub ? 'stream' : 'poll');
  const period = sub ? (opts.recheckMs ?? 5000) : (opts.pollMs ?? 250);
  try {
    return await Promise.race([finished, repeat(read, period, finished, opts.onNotice, { now: true })]);
  } finally {
    sub?.close();
  }
}

/** The first pause after a 429, and the longest: the server counts requests over a minute. */
const LIMITED_MS = { min: 1000, max: 60_000 };

/**
 * Whether a failed call is waited out, and for how long before the next try:
 * a server that stopped answering, or answers 503 (its database unavailable;
 * the client has already retried it), is tried again after `periodMs`; one
 * that answers 429 after its `Retry-After` (at least a second, at most a
 * minute), or without one after a pause doubling with each 429 in a row from
 * a second to a minute.
 * Null for any other error.
 */
export function waitOut(err: unknown, periodMs: number, limitedInARow: number): { ms: number; notice: string } | null {
  if (err instanceof UnreachableError) return { ms: periodMs, notice: `${oneLine(err.message)}; still trying` };
  if (!(err instanceof ApiError)) return null;
  if (err.status === 503) return { ms: periodMs, notice: `${oneLine(err.code)}: ${oneLine(err.message)}; still trying` };
  if (err.status !== 429) return null;
  // The server's Retry-After when it sent one, else a pause doubling from a second.
  const ms = Math.min(LIMITED_MS.max, err.retryAfterMs !== undefined ? Math.max(err.retryAfterMs, LIMITED_MS.min) : Math.max(periodMs, LIMITED_MS.min) * 2 ** limitedInARow);
  return { ms, notice: `${oneLine(err.code)}: ${oneLine(err.message)}; waiting ${Math.round(ms / 1000)} s` };
}

/**
 * Runs `fn` every `ms` (first at once with `now`) until `until` settles. A
 * server that stopped answering, is unavailable or rate limits is waited for
 * (like the stream, which reconnects), with a notice each time; any other
 * error rejects.
 */
export async function repeat(
  fn: () => Promise<void>, ms: number, until: Promise<unknown>, onNotice?: (m: string) => void, opts: { now?: boolean } = {},
): Promise<never> {
  let over = false;
  let wake: (() => void) | null = null;
  let timer: NodeJS.Timeout | undefined;
  // Ending must also clear the pending timer, or it holds the process open for up to `ms`.
  const end = () => {
    over = true;
    clearTimeout(timer);
    wake?.();
  };
  void until.then(end, end);
  let pause = opts.now ? 0 : ms;
  let limited = 0;
  for (;;) {
    if (pause > 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, pause);
      });
    }
    if (over) return new Promise<never>(() => undefined);
    try {
      await fn();
      pause = ms;
      limited = 0;
    } catch (err) {
      const wait = waitOut(err, ms, limited);
      if (!wait) throw err;
      limited = err instanceof ApiError && err.status === 429 ? limited + 1 : 0;
      pause = wait.ms;
      onNotice?.(wait.notice);
    }
  }
}

/** The pause before subscribing again after a 503, doubling (the stream's own reconnect pauses). */
const SUBSCRIBE_RETRY_MS = { min: 250, max: 5000 };

/**
 * A subscription once it holds, or null when the server has no stream (fall
 * back to polling). A refused upgrade (401, 403, 429) rejects with its error;
 * so does a 503, unless `untilAvailable`: then a 503, or a 429 that gives a
 * Retry-After (the rate limit), is tried again, with a notice, until the
 * server can subscribe (the 429 after its Retry-After, as `waitOut` waits:
 * `--wait`, `--count` and `ats watch` wait out a rate limit). A 429 without one (the
 * key holds the most streams it may, ATS_ERR_TOO_MANY_STREAMS) is the error:
 * it passes only once another stream of the key closes, maybe never, and
 * nothing else is read meanwhile. `signal` ends a wait early (Ctrl-C): the
 * call then rejects with its reason.
 */
export async function trySubscribe(
  client: AtsClient, filter: StreamFilter, onEvent: (e: StreamEvent) => void,
  opts: {
    onNotice?(m: string): void; cursor?: string | undefined; onProgress?: SubscribeOptions['onProgress'];
    untilAvailable?: boolean; signal?: AbortSignal;
    /** Told why the server's stream cannot be had, before the call resolves with null. */
    onUnavailable?(why: StreamUnavailable): void;
    /** Told as each subscribe is sent (the first, and each after a 503 or a rate limit waited out). */
    onAttempt?(): void;
  } = {},
): Promise<Subscription | null> {
  let limited = 0;
  let unavailable = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    opts.onAttempt?.();
    const sub = subscribe({
      client, filter, onEvent, onNotice: opts.onNotice, onProgress: opts.onProgress, ...(opts.cursor ? { cursor: opts.cursor } : {}),
    });
    try {
      await sub.ready;
      return sub;
    } catch (err) {
      sub.close();
      if (err instanceof StreamUnavailable) {
        opts.onUnavailable?.(err);
        return null;
      }
      const rateLimited = err instanceof ApiError && err.status === 429 && err.retryAfterMs !== undefined;
      if (rateLimited && opts.untilAvailable) {
        const wait = waitOut(err, LIMITED_MS.min, limited++)!;
        opts.onNotice?.(`stream: ${wait.notice}`);
        await sleep(wait.ms, undefined, { signal: opts.signal });
        continue;
      }
      if (!(opts.untilAvailable && err instanceof ApiError && err.status === 503)) throw err;
      limited = 0;
      const ms = Math.min(SUBSCRIBE_RETRY_MS.max, SUBSCRIBE_RETRY_MS.min * 2 ** unavailable++);
      opts.onNotice?.(`stream: ${oneLine(err.code)}: ${oneLine(err.message)}; trying again in ${ms} ms`);
      await sleep(ms, undefined, { signal: opts.signal });
    }
  }
}
