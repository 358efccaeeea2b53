/**
 * Following jobs to their end: through the stream when the server has one,
 * by polling the REST API when it does not. Either way the caller sees each
 * job's history in seq order, once.
 */
import { isTerminal, UnreachableError, type AtsClient, type JobEvent } from '../client.js';
import { StreamUnavailable, subscribe, type CommandFilter as StreamFilter, type StreamEvent, type Subscription } from './stream.js';

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

export const fromStream = (e: StreamEvent): JobEvent => ({ seq: e.seq, type: e.type, from: e.from, to: e.to, at: e.at, data: e.data });

export interface FollowOptions {
  /** Polling period when there is no stream. @defaultValue 250 */
  pollMs?: number;
  /** With a stream, the history is also re-read this often, in case an event went missing. @defaultValue 5000 */
  recheckMs?: number;
  onNotice?(message: string): void;
  /** Tells which way the job is followed once decided. */
  onMode?(mode: Mode): void;
}

/**
 * Calls `onEvent` for every event of job `id` (its whole history first), in
 * order, until the job is in a terminal state; resolves with that state.
 */
export async function followJob(client: AtsClient, id: string, onEvent: (e: JobEvent) => void, opts: FollowOptions = {}): Promise<string> {
  let finish!: (state: string) => void;
  const finished = new Promise<string>((resolve) => (finish = resolve));
  const gate = new SeqGate((e) => {
    onEvent(e);
    if (isTerminal(e.to)) finish(e.to);
  });
  // Subscribe before reading the history: every event is then in one or the other.
  const sub = await trySubscribe(client, { jobId: id }, (e) => gate.push([fromStream(e)]), opts);
  opts.onMode?.(sub ? 'stream' : 'poll');
  const period = sub ? (opts.recheckMs ?? 5000) : (opts.pollMs ?? 250);
  const read = async () => gate.push((await client.get(id)).events);
  try {
    await read();
    return await Promise.race([finished, repeat(read, period, finished, opts.onNotice)]);
  } finally {
    sub?.close();
  }
}

/**
 * Runs `fn` every `ms` until `until` settles. A server that stopped answering
 * is waited for (like the stream, which reconnects); any other error rejects.
 */
export async function repeat(fn: () => Promise<void>, ms: number, until: Promise<unknown>, onNotice?: (m: string) => void): Promise<never> {
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
  for (;;) {
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    if (over) return new Promise<never>(() => undefined);
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof UnreachableError)) throw err;
      onNotice?.(`${err.message}; still trying`);
    }
  }
}

/** A subscription once it holds, or null when the server has no stream (fall back to polling). */
export async function trySubscribe(
  client: AtsClient, filter: StreamFilter, onEvent: (e: StreamEvent) => void,
  opts: { onNotice?(m: string): void; cursor?: string | undefined } = {},
): Promise<Subscription | null> {
  const sub = subscribe({ baseUrl: client.url, filter, onEvent, onNotice: opts.onNotice, ...(opts.cursor ? { cursor: opts.cursor } : {}) });
  try {
    await sub.ready;
    return sub;
  } catch (err) {
    sub.close();
    if (err instanceof StreamUnavailable) return null;
    throw err;
  }
}
