/**
 * `GET /v1/jobs/:id` (the job, its history and the actions it accepts now) and
 * `GET /v1/jobs` (newest first, cursor-paged): the caller's tenant's jobs only
 * (another tenant's job is a 404, as one that does not exist).
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { Eta, EtaHold } from '../../engine/advisor/types.js';
import { errorFields } from '../../engine/logger.js';
import { MAX_WORKERS_LISTED, servedBy } from '../../engine/worker-presence.js';
import { attemptsToEnd, storedLimitKey } from '../../engine/limits.js';
import type { JobEventRecord, JobFilter, JobProgress, JobRecord, LimitStore, WorkerRecord } from '../../engine/ports.js';
import { isDue, isWaiting, waitingOf, type AppliedLimit, type Waiting, type WaitingFacts } from '../../engine/waiting.js';
import { sharedFor } from '../answer-cache.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { encodeStreamCursor } from '../stream/cursor.js';
import { DEFAULT_LIST_PAGE_BYTES, type RouteOptions } from '../deps.js';
import { toEtaView, toEventView, toJobView, toProgressView, toWaitingView } from '../job-views.js';
import { tenantJob } from '../tenant-jobs.js';
import { DEFAULT_PAGE, described, errorResponses, JobDetail, JobPage, JobParams, ListQuery, ref } from '../schemas.js';

const getSchema = {
  operationId: 'getJob',
  summary: 'A job with its events and allowed actions',
  description: 'The job, its event history (all of it, oldest first, ending at the job\'s `version`: one read together; not paged, as a job\'s history is bounded by its runs: a few events per attempt, and each redrive a new run), `streamCursor` (the stream position of the newest event shown: a subscribe to this job from it gets exactly the job\'s later transitions), `allowed` (the user events its machine accepts now), `waiting` (what a job that has not started waits for: its run or retry time, its dispatch, a worker that runs it, its limit, or a free slot; null once it runs or ended), `eta` (the advisor\'s predicted start and finish of a live job: for a job its limit holds, the limit decides it (`basis.held`): its rate\'s next start, a lower bound, or when a slot of its key frees, an estimate; null for a waiting job no live worker can run, or whose concurrency limit is paused) and `progress` (the latest progress its handler reported, or null).',
  tags: ['jobs'],
  params: JobParams,
  response: { 200: described(ref(JobDetail), 'The job with its events'), ...errorResponses(400, 404, 503) },
};

const listSchema = {
  operationId: 'listJobs',
  summary: 'Jobs, newest first',
  description: 'One page of jobs, newest first, optionally only of one state, type or queue, or submitted in a time range (`createdAfter` inclusive, `createdBefore` exclusive). A page holds at most `limit` jobs and about 8 MiB of their payloads and results: it may end before `limit` with a `nextCursor`. A creation time, or a state with a type or queue (or a type with a queue), is tested on each job read: such a page reads about 5,000 of the tenant\'s jobs at most, and may end short, or empty, with a `nextCursor` from where it stopped. Pass the answer\'s `nextCursor` as `cursor` for the next page; none means no more. A cursor is a position (after the last job a page read), not a snapshot: following the cursors lists each job that exists and matches for the whole walk once, and none twice, whatever is submitted, changed or deleted meanwhile; a job whose state changes during the walk is listed if it had the state when its page was read. A range of creation times that holds nothing (`createdAfter` at or after `createdBefore`) is an empty last page.',
  tags: ['jobs'],
  querystring: ListQuery,
  response: { 200: described(ref(JobPage), 'One page of jobs'), ...errorResponses(400, 503) },
};

/**
 * How long one read of the worker registry serves the ETAs of every job read
 * (a client polling a waiting job four times a second, or many at once, cost
 * one read of up to MAX_WORKERS_LISTED rows a second, not one a read).
 */
export const ETA_WORKERS_CACHE_MS = 1000;

/** What a waiting job waits for, and what was read to tell it; `failed` when a read failed; null for a job not waiting. */
type WaitRead = { waiting: Waiting; facts: WaitingFacts } | 'failed' | null;

/**
 * What the job waits for, when it waits (engine/waiting.ts), with what was
 * read to tell it: the limit its attempts count against (`limitOf`) and
 * whether a live worker runs it (from the worker registry, read at most once
 * each ETA_WORKERS_CACHE_MS by `listWorkers`; a registry listing its most
 * workers, MAX_WORKERS_LISTED, may have left the one out: not known). A read
 * that fails (the store blinked after the job was read) is `failed`: an
 * optional field must not turn the job's answer into an error.
 */
async function waitingFor(deps: RouteOptions['deps'], listWorkers: (() => Promise<WorkerRecord[]>) | undefined, job: JobRecord): Promise<WaitRead> {
  if (!isWaiting(job)) return null;
  try {
    const now = deps.clock.now();
    const [workers, limit] = await Promise.all([listWorkers?.(), deps.limitStore ? limitOf(deps.limitStore, job, now, isDue(job, now)) : null]);
    const served = workers && workers.length < MAX_WORKERS_LISTED ? servedBy(workers, now)(job.type, job.queue) : null;
    const facts = { served, limit };
    return { waiting: waitingOf(job, facts, now)!, facts };
  } catch (err) {
    deps.logger?.warn('api: what the job waits for could not be read; answered without it', errorFields(err));
    return 'failed';
  }
}

/**
 * The advisor's ETA of a job, to be shown unless `etaWithheld`; null when it
 * cannot be had (a read that failed, as for `waitingFor`). `hold`: what its
 * limit holds it back for (`holdOf` its wait), read meanwhile.
 */
async function etaOf(
  advisor: NonNullable<RouteOptions['deps']['advisor']>, deps: RouteOptions['deps'], job: JobRecord, startedAt: number | null, hold: Promise<EtaHold | null>,
): Promise<Eta | null> {
  try {
    return (await advisor.eta(job, startedAt, hold)) ?? null;
  } catch (err) {
    deps.logger?.warn('api: the ETA could not be read; answered without it', errorFields(err));
    return null;
  }
}

/**
 * What the job's limit holds it back for, as the ETA takes it (model.ts
 * `eta`): its rate, until the next start it allows; its concurrency, taken by
 * the attempts of its key running, and then its rate, which the claim asks
 * only once a slot is free (engine/limits.ts `admit`) and which may allow no
 * start before its `tat`. A job not due yet (`scheduled`, `backoff`) is held
 * by its rate when that allows no start by its due time (its concurrency
 * then is not known now). Null for any other wait, and for a read that
 * failed (its ETA is withheld).
 */
function holdOf(wait: WaitRead, job: JobRecord, now: number): EtaHold | null {
  if (wait === null || wait === 'failed') return null;
  const { reason, until, limit } = wait.waiting;
  if (reason === 'rate' && until !== null) return { reason, until };
  if (reason === 'scheduled' || reason === 'backoff') {
    const rated = wait.facts.limit?.limit;
    return rated && rated.rate !== null && rated.concurrency !== 0 && rated.tat > job.snapshot.context.runAt ? { reason: 'rate', until: rated.tat } : null;
  }
  if (reason === 'concurrency' && limit && limit.limit.concurrency !== null) {
    const { rate, tat, concurrency } = limit.limit;
    return { reason, running: limit.running, concurrency, notBefore: rate !== null && tat > now ? tat : null };
  }
  return null;
}

/** Most running attempts of a key whose starts a concurrency hold reads (`holdFor`): one lookup each. */
export const HOLD_STARTS_READ_MAX = 1000;

/**
 * `holdOf`, with, for a concurrency hold, when the key's running attempts
 * that must end for a slot started (the ETA reckons from them); without them
 * should that read fail, or when more than HOLD_STARTS_READ_MAX run.
 */
async function holdFor(deps: RouteOptions['deps'], wait: WaitRead, job: JobRecord): Promise<EtaHold | null> {
  const now = deps.clock.now();
  const hold = holdOf(wait, job, now);
  const applied = wait !== null && wait !== 'failed' ? wait.waiting.limit : null;
  if (hold?.reason !== 'concurrency' || !applied || !deps.limitStore || hold.running > HOLD_STARTS_READ_MAX) return hold;
  try {
    return { ...hold, startedAt: await deps.limitStore.runningStarts(applied.limit.key, now, attemptsToEnd(hold.running, hold.concurrency)) };
  } catch (err) {
    deps.logger?.warn('api: when the attempts holding the job\'s limit started could not be read; its ETA reckons without', errorFields(err));
    return hold;
  }
}

/**
 * No ETA for a waiting job that no live worker can run, or whose limit is
 * paused (docs/limits.md): it does not start until a worker comes, or the
 * limit is raised, and a start predicted from the queue's past would slide
 * forward at every read; nor when that could not be read.
 */
const etaWithheld = (wait: WaitRead): boolean =>
  wait === 'failed' || (wait !== null && (wait.facts.served === false || wait.facts.limit?.limit.concurrency === 0));

/**
 * The limit the job's attempts count against (engine/limits.ts `limitKeyOf`:
 * its own key, else its type's default, else its queue's), read as the claim
 * would find it, with the attempts of its key running at `now` when
 * `counted` (0 otherwise); null when none applies.
 */
async function limitOf(limits: LimitStore, job: JobRecord, now: number, counted: boolean): Promise<AppliedLimit | null> {
  const keys = job.concurrencyKey !== undefined
    ? [storedLimitKey(job.tenant, job.concurrencyKey)]
    : [storedLimitKey(job.tenant, `type:${job.type}`), storedLimitKey(job.tenant, `queue:${job.queue}`)];
  const found = await Promise.all(keys.map((key) => limits.getLimit(key)));
  const limit = found.find((l) => l !== null);
  if (!limit) return null;
  const running = counted ? (await limits.runningByKey([limit.key], now)).get(limit.key) ?? 0 : 0;
  return { limit, running };
}

/**
 * The job's latest progress, or null: like the ETA, a read that failed
 * answers the job without it rather than an error.
 */
async function progressOf(deps: RouteOptions['deps'], jobId: string): Promise<JobProgress | null> {
  if (!deps.progress) return null;
  try {
    return await deps.progress.getProgress(jobId);
  } catch (err) {
    deps.logger?.warn('api: the progress could not be read; answered without it', errorFields(err));
    return null;
  }
}

/** When the job's latest attempt started (its last STARTED event), or null. */
function lastStart(events: readonly JobEventRecord[]): number | null {
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.type === 'STARTED') return events[i]!.at;
  return null;
}

/** An ISO date-time the schema accepted, as epoch ms (a value Date cannot place is a 400). */
function instant(iso: string, name: string): number {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new AtsError('ATS_ERR_VALIDATION', `querystring/${name} is not a date-time Date can read`);
  return ms;
}

export const jobsReadRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const registry = deps.workers;
  const listWorkers = registry && sharedFor(ETA_WORKERS_CACHE_MS, deps.clock, () => registry.listWorkers());
  app.get<{ Params: JobParams }>('/v1/jobs/:id', { schema: getSchema }, async (request) => {
    const job = await tenantJob(deps, request.params.id, request.principal);
    // A job's events are numbered (job_events.id) in seq order: its first `version` by id are seq 1 to `version`.
    const [read, progress] = await Promise.all([deps.store.readJobEventsAfter(job.id, 0, job.version), progressOf(deps, job.id)]);
    // The events are read after the job: those a transition committed in between are past the job shown, and left
    // out, so that the history ends where the job's state and version are. Fewer than its version: the job was
    // deleted in between (its events go with it), which a second read tells.
    const events = read.filter((e) => e.seq <= job.version);
    if (events.length < job.version) await tenantJob(deps, job.id, request.principal);
    // The wait and the ETA are read at once; the ETA takes what the wait says of the job's limit (`holdOf`).
    const waitRead = waitingFor(deps, listWorkers, job);
    const [wait, eta] = await Promise.all([waitRead, deps.advisor ? etaOf(deps.advisor, deps, job, lastStart(events), waitRead.then((w) => holdFor(deps, w, job))) : null]);
    const waiting = wait === 'failed' || wait === null ? null : wait.waiting;
    return {
      ...toJobView(job, deps.clock.now()), events: events.map(toEventView), eta: eta && !etaWithheld(wait) ? toEtaView(eta) : null,
      progress: progress && toProgressView(progress), waiting: waiting && toWaitingView(waiting),
      // The stream position of the newest event shown: every later event of the job is after it (docs/stream.md).
      streamCursor: encodeStreamCursor(events.at(-1)!.id),
    };
  });

  app.get<{ Querystring: ListQuery }>('/v1/jobs', { schema: listSchema }, async (request) => {
    const { state, type, queue, cursor, createdAfter, createdBefore } = request.query;
    const limit = request.query.limit ?? DEFAULT_PAGE;
    const filter: JobFilter = { tenant: request.principal.tenant, limit };
    if (state) filter.state = state;
    if (type) filter.type = type;
    if (queue) filter.queue = queue;
    if (cursor) filter.afterId = decodeCursor(cursor);
    if (createdAfter) filter.createdAfter = instant(createdAfter, 'createdAfter');
    if (createdBefore) filter.createdBefore = instant(createdBefore, 'createdBefore');
    const page = await deps.store.listJobPage(filter, deps.limits.listPageBytes ?? DEFAULT_LIST_PAGE_BYTES);
    const now = deps.clock.now();
    return {
      jobs: page.jobs.map((j) => toJobView(j, now)),
      nextCursor: page.nextAfterId === null ? null : encodeCursor(page.nextAfterId),
    };
  });
};
