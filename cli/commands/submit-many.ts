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
 */
import type { ApiErrorCode } from '../../client/index.js';
import type { MAX_PAGE } from '../../server/schemas.js';
import { ApiError, isTerminal, MAX_BATCH, TERMINAL_STATES, type AtsClient, type BatchItem, type SubmitRequest } from '../client.js';
import { repeat, trySubscribe } from './follow.js';
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
  const sub = await trySubscribe(client, filter, (e) => {
    if (isTerminal(e.to)) tally.end(e.jobId, e.to);
  }, opts);
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

async function submitAll(client: AtsClient, body: SubmitRequest, count: number, tally: Tally, opts: SubmitManyOptions, tick: () => void): Promise<void> {
  const size = Math.min(Math.max(1, opts.batchSize ?? MAX_BATCH), MAX_BATCH);
  let next = 0;
  const item = (i: number): BatchItem => (opts.idempotencyKey === undefined ? body : { ...body, idempotencyKey: `${opts.idempotencyKey}-${i}` });
  // Each lane sends one batch at a time; the first failed item (or request) stops every lane.
  const lane = async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, from + size);
      const items = Array.from({ length: next - from }, (_, k) => item(from + k));
      const results = await client.submitMany(items);
      for (const r of results) {
        if (r.id === undefined || (r.status !== 201 && r.status !== 200)) {
          throw new ApiError(r.status, (r.code ?? `HTTP_${r.status}`) as ApiErrorCode, r.message ?? 'the server refused a job of the batch');
        }
        tally.ours.add(r.id);
        tally.submitted++;
        if (r.state !== undefined && isTerminal(r.state)) tally.end(r.id, r.state); // an idempotencyKey repeat of a finished job
      }
      tick();
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.ceil(count / size), opts.concurrency ?? 2) }, lane));
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
    const last = page.jobs[page.jobs.length - 1];
    if (!last || last.id <= oldest) return;
  }
}

function summarize(c: Counts, total: number, elapsedMs: number): Summary {
  const jobsPerSecond = elapsedMs > 0 ? Math.round((total / elapsedMs) * 1000 * 10) / 10 : 0;
  const text = `${total} jobs: ${c.done} done, ${c.dead} dead, ${c.cancelled} cancelled in ${(elapsedMs / 1000).toFixed(2)} s (${jobsPerSecond} jobs/s)`;
  return { ...c, total, elapsedMs: Math.round(elapsedMs), jobsPerSecond, text };
}
