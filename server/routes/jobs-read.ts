/**
 * `GET /v1/jobs/:id` (the job, its history and the actions it accepts now) and
 * `GET /v1/jobs` (newest first, cursor-paged): the caller's tenant's jobs only
 * (another tenant's job is a 404, as one that does not exist).
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { Eta } from '../../engine/advisor/types.js';
import { errorFields } from '../../engine/logger.js';
import { MAX_WORKERS_LISTED, servedBy } from '../../engine/worker-presence.js';
import { storedLimitKey } from '../../engine/limits.js';
import type { JobEventRecord, JobFilter, JobProgress, JobRecord, LimitStore, WorkerRecord } from '../../engine/ports.js';
import { sharedFor } from '../answer-cache.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { encodeStreamCursor } from '../stream/cursor.js';
import { DEFAULT_LIST_PAGE_BYTES, type RouteOptions } from '../deps.js';
import { toEtaView, toEventView, toJobView, toProgressView } from '../job-views.js';
import { tenantJob } from '../tenant-jobs.js';
import { DEFAULT_PAGE, described, errorResponses, JobDetail, JobPage, JobParams, ListQuery, ref } from '../schemas.js';

const getSchema = {
  operationId: 'getJob',
  summary: 'A job with its events and allowed actions',
  description: 'The job, its event history (all of it, oldest first, ending at the job\'s `version`: one read together; not paged, as a job\'s history is bounded by its runs: a few events per attempt, and each redrive a new run), `streamCursor` (the stream position of the newest event shown: a subscribe to this job from it gets exactly the job\'s later transitions), `allowed` (the user events its machine accepts now), `eta` (the advisor\'s predicted start and finish of a live job; null for a waiting job no live worker can run, or whose concurrency limit is paused) and `progress` (the latest progress its handler reported, or null).',
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

/** States of a job waiting for a worker to start it (its retry, when retrying). */
const WAITING: ReadonlySet<string> = new Set(['pending', 'published', 'retrying']);

/**
 * The advisor's ETA, or null when it cannot be had: an optional field whose
 * read failed (the store blinked after the job was read) must not turn the
 * job's answer into an error. Null too for a waiting job that no live worker
 * can run (none lists its type and serves its queue, as `unserved` of
 * `GET /v1/stats` says, on a server that reads the worker registry), or whose
 * concurrency limit is paused (docs/limits.md): it does not start until one
 * does, or the limit is raised, and a start predicted from the queue's past
 * would slide forward at every read. A registry listing its most workers
 * (MAX_WORKERS_LISTED) may have left the one out: the ETA stands. The
 * registry is read at most once each ETA_WORKERS_CACHE_MS (`listWorkers`).
 */
async function etaOf(
  deps: RouteOptions['deps'], listWorkers: (() => Promise<WorkerRecord[]>) | undefined, job: JobRecord, startedAt: number | null,
): Promise<Eta | null> {
  try {
    // Without an advisor there is no ETA to withhold: the registry and the limits are not read.
    const waiting = deps.advisor !== undefined && WAITING.has(job.snapshot.value);
    const registry = waiting ? listWorkers : undefined;
    const [eta, workers, paused] = await Promise.all([
      deps.advisor?.eta(job, startedAt), registry?.(), waiting && deps.limitStore ? limitPaused(deps.limitStore, job) : false,
    ]);
    if (paused) return null;
    if (workers && workers.length < MAX_WORKERS_LISTED && !servedBy(workers, deps.clock.now())(job.type, job.queue)) return null;
    return eta ?? null;
  } catch (err) {
    deps.logger?.warn('api: the ETA could not be read; answered without it', errorFields(err));
    return null;
  }
}

/**
 * Whether the limit the job's attempts count against (engine/limits.ts
 * `limitKeyOf`: its own key, else its type's default, else its queue's) is
 * paused: a concurrency of 0. The defaults are read together, as the claim
 * would find them.
 */
async function limitPaused(limits: LimitStore, job: JobRecord): Promise<boolean> {
  const keys = job.concurrencyKey !== undefined
    ? [storedLimitKey(job.tenant, job.concurrencyKey)]
    : [storedLimitKey(job.tenant, `type:${job.type}`), storedLimitKey(job.tenant, `queue:${job.queue}`)];
  const found = await Promise.all(keys.map((key) => limits.getLimit(key)));
  const applies = found.find((limit) => limit !== null);
  return applies?.concurrency === 0;
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
    const eta = deps.advisor ? await etaOf(deps, listWorkers, job, lastStart(events)) : null;
    return {
      ...toJobView(job, deps.clock.now()), events: events.map(toEventView), eta: eta && toEtaView(eta), progress: progress && toProgressView(progress),
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
