/**
 * `verify`: the jobs row is a projection of the event log. Replays a job's
 * events through the machine and compares with the stored snapshot, its
 * machine version included (a snapshot another version wrote is reported,
 * not replayed: this code's machine would misread it). And the
 * job counts behind `/v1/stats` equal a recount (`verifyCounts`).
 */
import { replay } from '../machines/lifecycle.js';
import { JOB_MACHINE_VERSION, type JobEvent, type JobInput } from '../machines/job.machine.js';
import type { JobCount, JobRecord, JobStore } from './ports.js';
import { canonicalJson } from './transitions.js';

export interface VerifyReport {
  jobId: string;
  ok: boolean;
  /** The events checked: the job's history up to the version read (0 when the job was not found). */
  events: number;
  problems: string[];
}

/** The problem of a job that does not exist, or was deleted between `verifyJob`'s reads. */
export const JOB_NOT_FOUND = 'job not found';

/** `checked`: the job as the caller just read it (its tenant checked, say), read before the events as this would read it. */
export async function verifyJob(store: Pick<JobStore, 'getJob' | 'getEvents'>, jobId: string, checked?: JobRecord): Promise<VerifyReport> {
  const problems: string[] = [];
  const notFound: VerifyReport = { jobId, ok: false, events: 0, problems: [JOB_NOT_FOUND] };
  const job = checked ?? await store.getJob(jobId);
  if (!job) return notFound;
  // The events are read after the job: those a transition committed in between are past the job's version, and
  // left out, so that the history checked ends where the job read is. Fewer than its version, or some past it:
  // a second read of the job tells a delete in between (its events go with it) and a job that moved on from
  // events that no job reaches.
  const read = await store.getEvents(jobId);
  const events = read.filter((e) => e.seq <= job.version);
  const lastSeq = read.reduce((m, e) => Math.max(m, e.seq), 0);
  if (events.length < job.version || lastSeq > job.version) {
    const now = await store.getJob(jobId);
    if (!now) return notFound;
    if (lastSeq > now.version) problems.push(`version ${now.version} but events up to seq ${lastSeq}`);
  }
  events.forEach((e, i) => {
    if (e.seq !== i + 1) problems.push(`gap: event #${i + 1} has seq ${e.seq}`);
  });
  if (events.length !== job.version) problems.push(`version ${job.version} but ${events.length} events`);
  const [first, ...rest] = events;
  if (!first || first.type !== 'SUBMITTED') {
    problems.push('first event is not SUBMITTED');
    return { jobId, ok: false, events: events.length, problems };
  }
  let prev: string | null = null;
  for (const e of events) {
    if (e.from !== prev) problems.push(`seq ${e.seq}: from ${e.from} but previous state ${prev}`);
    prev = e.to;
  }
  if (job.snapshot.machine !== JOB_MACHINE_VERSION) {
    // Replaying with this machine would compare states of two machines: the difference would say nothing.
    problems.push(`the snapshot was written by job machine version ${job.snapshot.machine}, and this code replays with version ${JOB_MACHINE_VERSION}`);
    return { jobId, ok: false, events: events.length, problems };
  }
  let replayed: ReturnType<typeof replay> | null = null;
  try {
    replayed = replay(first.data as JobInput, rest.map((e) => e.data as JobEvent));
  } catch (err) {
    problems.push(`replay failed: ${(err as Error).message}`);
  }
  if (replayed && canonicalJson(replayed) !== canonicalJson(job.snapshot)) {
    // A heartbeat updates its attempt's heartbeat event in place, the job's version unchanged: one committed
    // between the reads is in the events and not in the job read first, which a second read then agrees with.
    const now = await store.getJob(jobId);
    if (!now) return notFound;
    if (now.version !== job.version || canonicalJson(replayed) !== canonicalJson(now.snapshot)) {
      problems.push(`replay gives ${replayed.value} ${canonicalJson(replayed.context)}, stored ${job.snapshot.value} ${canonicalJson(job.snapshot.context)}`);
    }
  }
  const c = job.snapshot.context;
  if (c.attempt - c.attemptBase > c.maxAttempts) problems.push(`attempt ${c.attempt - c.attemptBase} > maxAttempts ${c.maxAttempts}`);
  return { jobId, ok: problems.length === 0, events: events.length, problems };
}

export interface CountsReport {
  ok: boolean;
  /**
   * One line per (queue, type, state) whose maintained count, summed over
   * tenants, differs from the recount; then one per (tenant, queue, type,
   * state) of each tenant asked about that does.
   */
  problems: string[];
}

/**
 * The maintained job counts (what `/v1/stats` serves) equal a recount of the
 * jobs: summed over tenants, and each of `tenants`' own (the counts a
 * tenant's `/v1/stats` reads: a count moved from one tenant to another keeps
 * the sums right). A full scan: for tests, soak runs and operators, not for a
 * hot path. Exact only while nothing writes; call it once the system is quiet.
 */
export async function verifyCounts(store: Pick<JobStore, 'jobCounts' | 'recountJobs'>, tenants: readonly string[] = []): Promise<CountsReport> {
  const problems = compareCounts([], await store.jobCounts(), await store.recountJobs());
  for (const tenant of [...new Set(tenants)].sort()) problems.push(...compareCounts([tenant], await store.jobCounts(tenant), await store.recountJobs(tenant)));
  return { ok: problems.length === 0, problems };
}

/** A line per key whose counts differ, sorted; each key is `prefix` and (queue, type, state), as JSON. */
function compareCounts(prefix: readonly string[], counted: readonly JobCount[], recounted: readonly JobCount[]): string[] {
  const key = (c: JobCount) => JSON.stringify([...prefix, c.queue, c.type, c.state]);
  const kept = new Map(counted.map((c) => [key(c), c.n]));
  const actual = new Map(recounted.map((c) => [key(c), c.n]));
  const problems: string[] = [];
  for (const k of new Set([...kept.keys(), ...actual.keys()])) {
    const a = kept.get(k) ?? 0;
    const b = actual.get(k) ?? 0;
    if (a !== b) problems.push(`${k}: counted ${a}, recounted ${b}`);
  }
  return problems.sort();
}
