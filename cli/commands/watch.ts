/**
 * `ats watch [--job ID] [--type T] [--queue Q] [--state S,...]`: one line per
 * transition, live, until Ctrl-C. Over the stream a dropped connection is
 * resumed from the last cursor (no gap, no duplicate); a server without a
 * stream (or behind a proxy that does not pass WebSocket upgrades on), or whose stream does not answer the subscribe in time while its
 * REST API answers (a proxy that holds WebSocket upgrades), is polled instead
 * (the newest jobs only — see `pollTransitions`), unless `--cursor` asks for
 * a replay, which polling cannot give: then that is the error (exit 1). A server that answers
 * neither is unreachable (timed out, exit 1). A stream refused for the rate
 * limit (429 with Retry-After) is asked again after it, and one refused 503
 * (the server's database down) every few seconds, with a line on stderr, as
 * `--wait` and `--count` do; one refused for too many streams of the key
 * (429 without Retry-After), or for its key, is the error (exit 1).
 * A stream that ends by itself — its key refused (revoked: a close with
 * 4401; or a reconnect answered 401 or 403), or its cursor refused on a
 * reconnect (ATS_ERR_BAD_CURSOR: the server's database reset or restored
 * from an older backup) — ends the command with that error (exit 1).
 * `--job ID` (without `--cursor`) reads the job first (`readJob`): a job
 * that had already ended (done, dead, cancelled) has that end printed at once
 * (`endedAtStart`), with its cursor, then is watched on as a job whose end the
 * watch saw live is: until Ctrl-C (a dead or cancelled job can be redriven)
 * or its deletion. The stream is subscribed from that read's `streamCursor`,
 * the stream position of the newest event it showed: the stream sends every
 * later transition of the job, each once, in order, and none the read held
 * (docs/stream.md), so a job that moves or ends right around the start is
 * printed in its order, each transition once. A job that does not exist, or
 * no longer does (deleted while watched: by retention, a purge or a DELETE),
 * ends the watch with ATS_ERR_JOB_NOT_FOUND (exit 1) either way: polling's
 * reads find none, and over the stream, where a filter on an unknown id is
 * simply never matched and a deletion is no transition, the job is read again
 * once the subscription holds and every few seconds after (`missingJob`).
 */
import { ApiError, isTerminal, JOB_STATES, UnreachableError, type AtsClient, type Job, type JobDetail, type JobEvent } from '../client.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { nameOption, oneOf, str } from './args.js';
import { repeat, trySubscribe, waitOut } from './follow.js';
import { transitionLine } from './output.js';
import { clientCommand, err, out, type CommandSpec } from './run.js';
import type { CommandFilter as StreamFilter, StreamUnavailable, Subscription } from './stream.js';

export const watchSpec: CommandSpec = {
  usage: 'ats watch [--job ID] [--type T] [--queue Q] [--state S,...] [--cursor C] [--json]',
  details: [
    'The filters combine: a transition is printed when it matches all of them (--job with --type prints nothing for a job',
    'of another type), over the stream and when polling alike.',
    `--state S,...  only transitions into these states (${JOB_STATES.join(', ')})`,
    '--cursor C     replay every matching transition after this stream cursor first (needs the stream: where the watch',
    '               would poll instead, it is an error, ATS_ERR_STREAM_UNAVAILABLE, exit 1)',
    '--json         one JSON object per transition, with its cursor',
    'Ctrl-C stops (exit 0). Without a stream route on the server, when the stream\'s upgrade does not reach it (a proxy',
    'that does not pass WebSocket upgrades on), or when its stream does not answer within 10 s while its API does (a proxy',
    'that holds WebSocket upgrades), the newest jobs are polled every second, saying why on stderr.',
    'A stream refused 429 for the rate limit is asked again after its Retry-After (at most a minute), one refused 503 (the server\'s',
    'database down) every few seconds, saying so on stderr.',
    'A key the server stops taking (revoked) ends the watch: ATS_ERR_UNAUTHORIZED on stderr, exit 1; so does a resume whose',
    'cursor the server refuses (its database reset or restored from a backup): ATS_ERR_BAD_CURSOR, exit 1.',
    '--job ID of a job that does not exist (or of another tenant), or that is deleted while watched, ends the watch:',
    'ATS_ERR_JOB_NOT_FOUND, exit 1. A job that has already ended (done, dead, cancelled) has that end printed at once, as its',
    'transition would have been (unless --cursor replays), and is watched on as after an end seen live (it can be redriven).',
    'The job is read first and the stream followed from the newest event that read showed: each later transition once, in order.',
  ],
  options: {
    job: { type: 'string' }, type: { type: 'string' }, queue: { type: 'string' },
    state: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' },
  },
  positionals: [0, 0],
};

/** A transition with the job it belongs to (what a stream event carries). */
export type Transition = JobEvent & { jobId: string; jobType: string; queue: string; cursor?: string };

/** `stopped` resolves on the first SIGINT/SIGTERM; `dispose()` removes the listeners. */
function interrupted(): { stopped: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const stopped = new Promise<void>((r) => (resolve = r));
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return { stopped, dispose: () => void process.off('SIGINT', on).off('SIGTERM', on) };
}

export const watchCommand = clientCommand(watchSpec, async ({ client, values }) => {
  const filter: StreamFilter = {};
  const job = str(values, 'job');
  const type = nameOption(values, 'type');
  const queue = nameOption(values, 'queue');
  const states = oneOf(values, 'state', JOB_STATES, { many: true });
  if (job) filter.jobId = job;
  if (type) filter.type = type;
  if (queue) filter.queue = queue;
  if (states) filter.states = states;
  // With --json every line is a stream event's (`kind: "event"`): a stream message as it came, and the end a job had
  // already reached at the start, or a transition polling found, as the stream would have sent it.
  const print = (t: Transition) => out(values.json ? JSON.stringify({ kind: 'event', ...t }) : transitionLine(t));
  const cursor = str(values, 'cursor');
  const { stopped, dispose } = interrupted();
  // Ctrl-C while a rate limit or an outage is waited out, before the stream holds, ends the wait: exit 0 at once.
  const stop = new AbortController();
  void stopped.then(() => stop.abort());
  try {
    // With --job (and no --cursor to replay from): the job is read first, its end printed if it had already ended,
    // and the stream subscribed from the position of the newest event that read showed (`streamCursor`): it sends
    // every later transition of the job, each once, in order, none that read held (docs/stream.md).
    let read: JobDetail | undefined;
    if (job && cursor === undefined) {
      try {
        read = await readJob(client, job, stop.signal);
      } catch (e) {
        if (stop.signal.aborted) return 0;
        throw e;
      }
      const end = endedAtStart(read, filter);
      if (end) print(end);
    }
    // A server whose job view has no stream cursor (one older than it): live from the subscribe, and none of the
    // job's transitions up to the version read printed again; those between the read and the subscribe are missed.
    const printing = read && read.streamCursor === undefined ? after(read.version ?? 0, print) : print;
    let sub: Awaited<ReturnType<typeof subscribeOrPoll>>;
    try {
      sub = await subscribeOrPoll(client, filter, printing, cursor ?? read?.streamCursor, stop.signal);
    } catch (e) {
      if (stop.signal.aborted) return 0;
      throw e;
    }
    if (!('poll' in sub)) {
      // The job's reads end with the watch, also when the stream ends it (a refused key, a refused cursor).
      let over!: () => void;
      const watched = new Promise<void>((resolve) => (over = resolve));
      const reads = job ? [missingJob(client, job, Promise.race([stopped, watched]))] : [];
      const ended = await Promise.race([stopped.then(() => null), sub.ended, ...reads]).finally(over);
      sub.close();
      if (ended !== null) throw ended; // told as any error: `code: message` on stderr, exit 1
      return 0;
    }
    if (cursor !== undefined) {
      // Polling sees the jobs as they stand, not the stream's positions: it cannot replay from a cursor, and what
      // it prints carries none to resume from. An error, not a watch with a gap the caller asked not to have.
      throw new ApiError(0, 'ATS_ERR_STREAM_UNAVAILABLE',
        `${sub.poll}: --cursor needs the stream to replay the transitions after it (polling cannot); run without --cursor to poll the newest jobs from now`);
    }
    err(`ats: ${sub.poll}; polling ${job ? 'the job' : 'the 100 newest jobs'} every second`);
    await Promise.race([stopped, pollTransitions(client, filter, print, stopped, read ? { from: read } : {})]);
    return 0;
  } finally {
    dispose();
  }
});

/**
 * With `--job` over the stream: the error that ends the watch when the job
 * does not exist (ATS_ERR_JOB_NOT_FOUND, as polling's first read ends it), or
 * no longer does: the job is read once the subscription holds, and again every
 * `periodMs`, as the stream says nothing of a deletion (retention, a purge, a
 * DELETE; only an ended job is deleted, and one the filters leave out ends
 * without a transition printed). Pending for as long as the job is read.
 * The first read is after the subscription holds, so a job read is one whose
 * every later transition comes (and a job's id exists only once the server
 * made the job: a watch cannot start before its job); it is passed to
 * `onRead`. An outage (unreachable, 503, 429) is waited out, with a line on
 * stderr, as polling waits it out; any other failure (the key refused) ends
 * the watch too. Stops reading when `until` settles (Ctrl-C).
 */
export async function missingJob(
  client: AtsClient, id: string, until: Promise<unknown>, { periodMs = 5000, onNotice = err }: { periodMs?: number; onNotice?: (m: string) => void } = {},
): Promise<unknown> {
  try {
    await repeat(async () => void (await client.get(id)), periodMs, until, onNotice, { now: true });
  } catch (e) {
    return e;
  }
  return new Promise<never>(() => undefined);
}

/**
 * With `--job`: the job's first read, before the watch subscribes (its
 * `streamCursor` is where the subscription starts). A 503 (the server's
 * database down) and a 429 are waited out, with a line on stderr, as the
 * subscribe waits them out, until `signal` aborts (Ctrl-C); any other failure
 * is the error: ATS_ERR_JOB_NOT_FOUND for a job that does not exist, the
 * timeout for a server that does not answer (exit 1).
 */
export async function readJob(
  client: AtsClient, id: string, signal?: AbortSignal, { periodMs = 1000, onNotice = err }: { periodMs?: number; onNotice?: (m: string) => void } = {},
): Promise<JobDetail> {
  for (let limited = 0; ;) {
    signal?.throwIfAborted();
    try {
      return await client.get(id, { signal });
    } catch (e) {
      const wait = e instanceof UnreachableError ? null : waitOut(e, periodMs, limited);
      if (!wait || signal?.aborted) throw e;
      limited = e instanceof ApiError && e.status === 429 ? limited + 1 : 0;
      onNotice(wait.notice);
      await sleep(wait.ms, undefined, { signal });
    }
  }
}

/** `print` for the transitions of a job past `version` only (a server whose job view gives no stream cursor). */
function after(version: number, print: (t: Transition) => void): (t: Transition) => void {
  return (t) => {
    if (t.seq > version) print(t);
  };
}

/**
 * With `--job`: the transition a job that had already ended (done, dead,
 * cancelled) when the watch started ended with, its last, printed at once as
 * the watch would have printed it live, with its stream cursor (the job
 * view's `streamCursor`: the newest event it shows is this one), and only if
 * the filters want it (they combine: none for a job of another type or
 * queue, or with `--state` not naming its end); null for a job not ended.
 */
export function endedAtStart(job: JobDetail, filter: StreamFilter): Transition | null {
  const last = job.events.at(-1);
  if (!last || !isTerminal(job.state) || last.to !== job.state) return null;
  if ((filter.type !== undefined && job.type !== filter.type) || (filter.queue !== undefined && job.queue !== filter.queue)) return null;
  if (filter.states && !filter.states.includes(last.to)) return null;
  return { ...last, jobId: job.id, jobType: job.type, queue: job.queue, ...(typeof job.streamCursor === 'string' ? { cursor: job.streamCursor } : {}) };
}

/**
 * The subscription, or why to poll instead, as a clause naming the server:
 * it has no stream route (404), or its stream is unavailable otherwise (the
 * upgrade reached it as a plain GET through a proxy that does not pass
 * WebSocket upgrades on, or was refused with another status, or the socket
 * closed before subscribing), or its stream did not answer the subscribe in
 * time (UnreachableError, timed out) while its REST API answered a request
 * sent beside that subscribe — a proxy that holds WebSocket upgrades, say. A server that answered neither
 * does not answer at all: the timeout is the error (exit 1), as for any other
 * command; so is any other failure to subscribe but the rate limit and a 503,
 * which are waited out (`trySubscribe`'s `untilAvailable`) until `signal` aborts.
 */
export async function subscribeOrPoll(
  client: AtsClient, filter: StreamFilter, print: (t: Transition) => void, cursor: string | undefined, signal?: AbortSignal,
): Promise<Subscription | { poll: string }> {
  // The API is asked beside each subscribe (a fresh probe each time, the one before dropped): a server that
  // answered at the start but stopped answering while a 503 or a rate limit was waited out does not answer.
  let probe: AbortController | undefined;
  let answered = false;
  const probeBeside = () => {
    probe?.abort();
    const mine = new AbortController();
    probe = mine;
    answered = false;
    // Any answer will do (a 401 too: polling then fails with it); a request that did not get one fails with status 0.
    client.health({ signal: mine.signal }).then(
      () => (answered ||= probe === mine),
      (e: unknown) => (answered ||= probe === mine && e instanceof ApiError && e.status > 0),
    );
  };
  try {
    // A rate limit (a 429 with Retry-After) and a 503 (the server's database down) are waited out, as
    // --wait and --count wait them out, saying so on stderr.
    let unavailable: StreamUnavailable | undefined;
    const sub = await trySubscribe(client, filter, print, {
      onNotice: err, cursor, untilAvailable: true, signal, onUnavailable: (why) => (unavailable = why), onAttempt: probeBeside,
    });
    if (sub) return sub;
    // Only a 404 says the server has no stream route; any other answer (a proxy's among them) says only that it cannot be had this way.
    if (unavailable?.status === 404) return { poll: `${client.url} has no stream route` };
    return { poll: `${client.url}: its stream is unavailable: ${unavailable?.message ?? 'no reason given'}` };
  } catch (e) {
    if (answered && e instanceof UnreachableError && e.reason === 'timed out') {
      return { poll: `${client.url} answers, but its stream did not confirm the subscribe in time (a proxy that holds WebSocket upgrades?)` };
    }
    throw e;
  } finally {
    probe?.abort();
  }
}

/**
 * The version of each job the poll last looked at, for as many jobs as `cap`
 * (the 100 of a look, and those seen before): beyond it, the jobs with the
 * lowest ids (the oldest) are forgotten first, never one of the last look.
 * Job ids grow with time, and a list is the newest jobs, so a job forgotten
 * had left the list; one that comes back into it (newer ones deleted) has an id
 * at most `forgottenUpTo`, and is learned again without printing its past (it
 * was printed, or happened while the job was not in the list). A job never seen
 * is newer than every job forgotten: its whole history is new.
 */
export class JobVersions {
  private readonly versions = new Map<string, number>();
  /** The highest id forgotten; null before any. */
  private forgottenUpTo: string | null = null;

  constructor(readonly cap = 1000) {}

  get size(): number {
    return this.versions.size;
  }

  get(id: string): number | undefined {
    return this.versions.get(id);
  }

  /** The job was seen (by this id) and then forgotten: its history is not new. */
  forgot(id: string): boolean {
    return !this.versions.has(id) && this.forgottenUpTo !== null && id <= this.forgottenUpTo;
  }

  set(id: string, version: number): void {
    this.versions.set(id, version);
  }

  /** Forgets the oldest jobs beyond `cap`, except those of the last look (`keep`). */
  trim(keep: ReadonlySet<string>): void {
    if (this.versions.size <= this.cap) return;
    const old = [...this.versions.keys()].filter((id) => !keep.has(id)).sort();
    for (const id of old.slice(0, this.versions.size - this.cap)) {
      this.versions.delete(id);
      if (this.forgottenUpTo === null || id > this.forgottenUpTo) this.forgottenUpTo = id;
    }
  }
}

/**
 * The fallback: every second, list the newest jobs (or read the one job) and
 * print the events of those whose version moved since the last look. Jobs
 * older than the newest page (100, fewer when their payloads are large, or,
 * with both a type and a queue, when the type is rare among the queue's
 * newest 5,000 jobs) are not seen: the stream is the real way. What
 * it remembers of the jobs it saw is bounded (`JobVersions`). The filters
 * combine as the stream combines them (all must match): `--job` with
 * `--type` or `--queue` prints the job's transitions only if it is of that
 * type and queue.
 */
export async function pollTransitions(
  client: AtsClient, filter: StreamFilter, print: (t: Transition) => void, until: Promise<void>,
  { periodMs = 1000, versions = new JobVersions(), from }: {
    periodMs?: number; versions?: JobVersions;
    /** With `filter.jobId`: the job as the watch read it before (its end printed): the first look prints what came after it. */
    from?: JobDetail;
  } = {},
): Promise<never> {
  let baseline = from === undefined;
  if (from) versions.set(from.id, from.version ?? 0);
  const look = async () => {
    // The one job is read whatever its type and queue: as over the stream, the filters are ANDed, so a job of
    // another type or queue than asked has none of its transitions printed.
    const one = filter.jobId ? await client.get(filter.jobId) : null;
    const jobs = one
      ? [one].filter((j) => (filter.type === undefined || j.type === filter.type) && (filter.queue === undefined || j.queue === filter.queue))
      : (await client.listPage({ type: filter.type, queue: filter.queue, limit: 100 })).jobs;
    for (const job of jobs) await printNewEvents(client, job, versions, baseline ? null : print, filter.states);
    versions.trim(new Set(jobs.map((j) => j.id)));
    baseline = false;
  };
  await look();
  return repeat(look, periodMs, until, err);
}

async function printNewEvents(
  client: AtsClient, job: Job, versions: JobVersions, print: ((t: Transition) => void) | null, states?: readonly string[],
): Promise<void> {
  const seen = versions.get(job.id);
  const version = job.version ?? 0;
  if (seen !== undefined && version <= seen) return;
  // The first look only learns where each job stands: watching is live from now. A job forgotten is learned again.
  if (!print || versions.forgot(job.id)) return versions.set(job.id, version);
  const events = 'events' in job ? (job as { events: JobEvent[] }).events : (await client.get(job.id)).events;
  // Up to the last event printed: the read of the history may hold events newer than the list's version.
  let last = version;
  for (const e of events) {
    if (e.seq <= (seen ?? 0)) continue;
    last = Math.max(last, e.seq);
    if (!states || states.includes(e.to)) print({ ...e, jobId: job.id, jobType: job.type, queue: job.queue });
  }
  versions.set(job.id, last);
}
