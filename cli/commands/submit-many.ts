/**
 * `ats submit TYPE --count N`: submit N jobs through `POST /v1/jobs/batch`
 * (up to 1,000 a request, a few requests in flight), follow them until every
 * one is terminal, and sum up.
 *
 * The terminal transitions come from one stream subscription (this type and
 * queue, terminal states) opened BEFORE the first submit, so a job that ends
 * before its submit's answer is read is not missed. Without a stream — or
 * when the stream has said nothing new for a while — where the jobs still
 * open stand is read over REST from the list of the type's jobs, a page of
 * 500 a request (not one request per job: thousands of delayed jobs would
 * run into the server's rate limit).
 *
 * The submits wait out an API that stops answering, answers 503 or rate
 * limits, as the following does, sending the batch again with the same
 * idempotency keys (so never a job twice); any other failure ends the run
 * with how many jobs went in before it.
 */
import { newIdempotencyKey, type ApiErrorCode } from '../../client/index.js';
import type { MAX_PAGE } from '../../server/schemas.js';
import {
  ApiError, isTerminal, MAX_BATCH, TERMINAL_STATES, type AtsClient, type BatchItem, type BatchResult, type SubmitRequest,
} from '../client.js';
import { repeat, trySubscribe, waitOut } from './follow.js';
import { Progress, type Counts } from './progress.js';
import type { CommandFilter as StreamFilter } from './stream.js';

export interface Summary extends Counts {
  total: number;
  elapsedMs: number;
  jobsPerSecond: number;
  /** Human-readable, one line. */
  text: string;
}

export interface SubmitManyOptions {
  idempotencyKey?: string | undefined;
  /** Batch requests in flight while submitting. @defaultValue 2 */
  concurrency?: number;
  /** Jobs per batch request. @defaultValue 1000 (the most the server takes) */
  batchSize?: number;
  /** Polling period without a stream (and the stream's silence before a REST check). @defaultValue 500 / 3000 */
  pollMs?: number;
  /** The pause before a batch the API could not take (unreachable, 503) is sent again. @defaultValue 1000 */
  resendMs?: number;
  onNotice?(message: string): void;
  progress?: Progress;
}

/** Where each submitted job stands; `ended` also holds jobs of others seen on the stream. */
class Tally {
  readonly ours = new Set<string>();
  readonly ended = new Map<string, string>();
  submitted = 0;
  changed = 0;

  end(id: string, state: string): void {
    if (this.ended.get(id) === state) return;
    this.ended.set(id, state);
    this.changed++;
  }

  counts(): Counts {
    const c: Counts = { submitted: this.submitted, done: 0, dead: 0, cancelled: 0 };
    for (const id of this.ours) {
      const s = this.ended.get(id);
      if (s === 'done' || s === 'dead' || s === 'cancelled') c[s]++;
    }
    return c;
  }

  open(): string[] {
    return [...this.ours].filter((id) => !this.ended.has(id));
  }
}

/** Submit `count` copies of `body` and resolve once all are terminal. */
export async function submitMany(client: AtsClient, body: SubmitRequest, count: number, opts: SubmitManyOptions = {}): Promise<Summary> {
  const tally = new Tally();
  const progress = opts.progress ?? new Progress(count);
  const started = performance.now();
  const filter: StreamFilter = { type: body.type, states: [...TERMINAL_STATES], ...(body.queue ? { queue: body.queue } : {}) };
  // A server whose database is down (503) is waited out here too, as the submits and reads below wait it out.
  const sub = await trySubscribe(client, filter, (e) => {
    if (isTerminal(e.to)) tally.end(e.jobId, e.to);
  }, { ...opts, untilAvailable: true });
  const tick = () => progress.update(tally.counts());
  const ticker = setInterval(tick, 100);
  try {
    await submitAll(client, body, count, tally, opts, tick);
    await untilAllEnded(client, body, tally, sub !== null, opts);
  } finally {
    clearInterval(ticker);
    sub?.close();
  }
  const counts = tally.counts();
  progress.finish(counts);
  return summarize(counts, count, performance.now() - started);
}

/** The idempotency key of the `i`th job (from 0) of a run whose key is `run`. */
export const itemKey = (run: string, i: number): string => `${run}-${i}`;

/** The pause before sending a batch again that the API could not take (unreachable, 503); a 429 waits its own. */
const RESEND_MS = 1000;

/**
 * Sends the batches, `concurrency` at a time. A batch the API could not take
 * — it stopped answering, answered 503, or rate limited — is sent again, as
 * the wait that follows waits such a server out (`waitOut`), with a notice
 * each time. Every item carries an idempotency key of its own (`K-i`, or
 * `<run>-i` with a ULID made once per run), the same in every send of its
 * batch: a batch sent again after its answer was lost answers the jobs its
 * first send made (200) instead of making them twice. Any other failure —
 * an item refused, a request refused — stops the run once the batches in
 * flight are answered, with how many jobs were submitted before it.
 */
async function submitAll(client: AtsClient, body: SubmitRequest, count: number, tally: Tally, opts: SubmitManyOptions, tick: () => void): Promise<void> {
  const size = Math.min(Math.max(1, opts.batchSize ?? MAX_BATCH), MAX_BATCH);
  const run = opts.idempotencyKey ?? newIdempotencyKey();
  const item = (i: number): BatchItem => ({ ...body, idempotencyKey: itemKey(run, i) });
  let next = 0;
  /** What stopped the run (the first failure only). */
  const failures: unknown[] = [];
  let wakeWaits!: () => void;
  /** Resolves at the first failure: a lane waiting out an outage stops waiting. */
  const stopped = new Promise<void>((resolve) => (wakeWaits = resolve));
  const stop = (error: unknown) => {
    if (failures.length === 0) failures.push(error);
    wakeWaits();
  };
  const lane = async () => {
    while (next < count && failures.length === 0) {
      const from = next;
      next = Math.min(count, from + size);
      const items = Array.from({ length: next - from }, (_, k) => item(from + k));
      let results: BatchResult[];
      try {
        results = await sendUntilTaken(client, items, opts, stopped, () => `${tally.submitted} of ${count} jobs submitted so far`);
      } catch (err) {
        return stop(err);
      }
      // Every item answered on its own: those the server took count, whatever it refused beside them.
      for (const r of results) {
        if (r.id === undefined || (r.status !== 201 && r.status !== 200)) {
          stop(new ApiError(r.status, (r.code ?? `HTTP_${r.status}`) as ApiErrorCode, r.message ?? 'the server refused a job of the batch'));
          continue;
        }
        tally.ours.add(r.id);
        tally.submitted++;
        if (r.state !== undefined && isTerminal(r.state)) tally.end(r.id, r.state); // an idempotencyKey repeat of a finished job
      }
      tick();
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.ceil(count / size), opts.concurrency ?? 2) }, lane));
  if (failures.length > 0) throw stoppedAt(failures[0], tally.submitted, count);
}

/** One batch, sent until the API takes it (or fails it otherwise, or `stopped` says another lane failed: its wait ends then). */
async function sendUntilTaken(
  client: AtsClient, items: BatchItem[], opts: SubmitManyOptions, stopped: Promise<void>, sofar: () => string,
): Promise<BatchResult[]> {
  let isStopped = false;
  void stopped.then(() => (isStopped = true));
  for (let limited = 0; ;) {
    try {
      return await client.submitMany(items);
    } catch (err) {
      const wait = waitOut(err, opts.resendMs ?? RESEND_MS, limited);
      if (!wait || isStopped) throw err;
      limited = err instanceof ApiError && err.status === 429 ? limited + 1 : 0;
      opts.onNotice?.(`${wait.notice} (${sofar()})`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, wait.ms))), stopped]);
      clearTimeout(timer);
      if (isStopped) throw err;
    }
  }
}

/** The error that stopped the submits, saying how many jobs went in before it. */
function stoppedAt(error: unknown, submitted: number, count: number): unknown {
  const why = `${submitted} of ${count} jobs submitted before the run stopped`;
  if (error instanceof ApiError) {
    return new ApiError(error.status, error.code, `${error.message} (${why})`, {
      cause: error, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
    });
  }
  if (error instanceof Error) return new Error(`${error.message} (${why})`, { cause: error });
  return error;
}

/** Waits until every submitted job is terminal: the stream's word, checked over REST when it goes quiet. */
async function untilAllEnded(client: AtsClient, body: SubmitRequest, tally: Tally, streaming: boolean, opts: SubmitManyOptions): Promise<void> {
  const quietMs = streaming ? (opts.pollMs ?? 3000) : 0;
  const pollMs = streaming ? 100 : (opts.pollMs ?? 500);
  let seen = tally.changed;
  let quietSince = performance.now();
  let done!: () => void;
  const allEnded = new Promise<void>((r) => (done = r));
  const check = async () => {
    if (tally.open().length === 0) return done();
    if (tally.changed !== seen) {
      seen = tally.changed;
      quietSince = performance.now();
    }
    if (performance.now() - quietSince < quietMs) return;
    await readOpenJobs(client, body, tally);
    quietSince = performance.now();
    if (tally.open().length === 0) done();
  };
  await Promise.race([allEnded, repeat(check, pollMs, allEnded, opts.onNotice, { now: true })]);
}

/** Jobs per page of the list reads (the most the server gives; type-checked against its constant). */
const PAGE: typeof MAX_PAGE = 500;

/**
 * Reads where the jobs still open stand: the list of this type's (and
 * queue's) jobs, newest first, page after page down to the oldest open one
 * (ids are ULIDs: they sort by creation time, as the list does).
 */
async function readOpenJobs(client: AtsClient, body: SubmitRequest, tally: Tally): Promise<void> {
  const open = tally.open();
  if (open.length === 0) return;
  const oldest = open.reduce((a, b) => (b < a ? b : a));
  for await (const page of client.list({ type: body.type, ...(body.queue ? { queue: body.queue } : {}), limit: PAGE })) {
    for (const job of page.jobs) if (tally.ours.has(job.id) && isTerminal(job.state)) tally.end(job.id, job.state);
    // A page may be empty and not the last (its jobs went while it was read): the list goes on.
    const last = page.jobs[page.jobs.length - 1];
    if (last && last.id <= oldest) return;
  }
}

function summarize(c: Counts, total: number, elapsedMs: number): Summary {
  const jobsPerSecond = elapsedMs > 0 ? Math.round((total / elapsedMs) * 1000 * 10) / 10 : 0;
  const text = `${total} jobs: ${c.done} done, ${c.dead} dead, ${c.cancelled} cancelled in ${(elapsedMs / 1000).toFixed(2)} s (${jobsPerSecond} jobs/s)`;
  return { ...c, total, elapsedMs: Math.round(elapsedMs), jobsPerSecond, text };
}
