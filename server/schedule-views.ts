/**
 * What the API shows of a schedule and its ticks: stored records in, JSON out
 * (times as ISO strings, like the job views).
 */
import type { ScheduleRecord, ScheduleTick } from '../engine/ports.js';
import { iso } from './job-views.js';
import type { ScheduleTickView, ScheduleView } from './schemas.js';

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function toScheduleView(s: ScheduleRecord): ScheduleView {
  const j = s.job;
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    overlap: s.overlap,
    catchUp: s.catchUp,
    paused: s.paused,
    job: {
      type: j.type, payload: j.payload, queue: j.queue, maxAttempts: j.maxAttempts, backoff: j.backoff,
      timeoutMs: j.timeoutMs, priority: j.priority,
    },
    nextRunAt: isoOrNull(s.nextAt),
    lastTickAt: isoOrNull(s.lastTickAt),
    lastJobId: s.lastJobId,
    submitted: s.submitted,
    skipped: s.skipped,
    missed: s.missed,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
  };
}

export function toScheduleTickView(t: ScheduleTick): ScheduleTickView {
  return { tickAt: iso(t.tickAt), outcome: t.outcome, jobId: t.jobId, at: iso(t.at) };
}
