/**
 * What the API shows of a job and its events: stored records in, JSON out
 * (times as ISO strings). `allowed` comes from the machine, never from a list
 * kept here, so the API cannot offer an action the engine would refuse.
 */
import type { Eta } from '../engine/advisor/types.js';
import type { Waiting } from '../engine/waiting.js';
import { toLimitView } from './limit-views.js';
import { allowedActions } from '../machines/lifecycle.js';
import type { JobEventRecord, JobProgress, JobRecord } from '../engine/ports.js';
import { MAX_EPOCH_MS, type EventView, type JobView, type ProgressView, type WaitingView } from './schemas.js';

export const iso = (ms: number): string => new Date(ms).toISOString();

/** The job as the API shows it; `now` decides `allowed`. */
export function toJobView(job: JobRecord, now: number): JobView {
  const c = job.snapshot.context;
  return {
    id: job.id,
    type: job.type,
    queue: job.queue,
    state: job.snapshot.value,
    attempt: c.attempt,
    maxAttempts: c.maxAttempts,
    attemptBase: c.attemptBase,
    payload: job.payload,
    result: c.result ?? null,
    lastError: c.lastError,
    cancelReason: c.cancelReason,
    runAt: iso(c.runAt),
    priority: job.priority,
    timeoutMs: job.timeoutMs,
    backoff: c.backoff,
    idempotencyKey: job.idempotencyKey,
    concurrencyKey: job.concurrencyKey ?? null,
    version: job.version,
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    allowed: allowedActions(job.snapshot, now),
  };
}

export function toEventView(e: JobEventRecord): EventView {
  return { seq: e.seq, type: e.type, from: e.from, to: e.to, at: iso(e.at), data: e.data };
}

/**
 * The advisor's ETA as the API shows it (ISO times); none when it finishes after the last instant
 * the API's date-times write (9999-12-31T23:59:59.999Z: a job due at the end of the year 9999).
 */
export function toEtaView(eta: Eta): { start: string; finish: string; basis: Eta['basis']; lowerBound: boolean } | null {
  if (eta.finish > MAX_EPOCH_MS) return null;
  return { start: iso(eta.start), finish: iso(eta.finish), basis: eta.basis, lowerBound: eta.lowerBound };
}

/** The job's latest progress as the API shows it (ISO time). */
export function toProgressView(p: JobProgress): ProgressView {
  return { value: p.value as ProgressView['value'], attempt: p.attempt, at: iso(p.at) };
}

/** What a waiting job waits for, as the API shows it (ISO time; of the limit, what `GET /v1/limits/:key` shows but its times). */
export function toWaitingView(w: Waiting): WaitingView {
  const until = w.until === null || w.until > MAX_EPOCH_MS ? null : iso(w.until);
  if (!w.limit) return { reason: w.reason, until, limit: null };
  const { key, concurrency, rate, running } = toLimitView(w.limit.limit, w.limit.running);
  return { reason: w.reason, until, limit: { key, concurrency, rate, running } };
}
