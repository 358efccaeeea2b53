/**
 * A job's progress as the inspector shows it: what its handler last reported
 * with `ctx.progress(value)` (engine/progress.ts), a number from 0 to 100
 * (a bar) or a JSON object (its text), with the attempt that reported it and
 * when. It comes from `progress` of `GET /v1/jobs/:id` (absent on a server
 * older than progress: shown as none) and from the stream's `progress`
 * messages for the job (docs/stream.md), whichever is newer.
 * Pure (no DOM): tested under node.
 */
import { compareProgress, type StreamProgressMessage } from '../../../client/index.js';
import { jsonText } from './dom.js';
import { runsOf, type RunEvent } from '../../../machines/runs.js';

export type { StreamProgressMessage };

/** The latest progress of a job: `progress` of `GET /v1/jobs/:id`, or a stream message's fields. */
export interface Progress {
  /** A number from 0 to 100, or a JSON object. */
  value: unknown;
  /** The attempt that reported it (the machine's attempt, counting over redrives). */
  attempt: number;
  /** When it was stored, ISO 8601. */
  at: string;
}

/** How the value shows: a bar, or the JSON text. */
export type ProgressShown =
  | { kind: 'bar'; /** 0 to 100 */ percent: number; /** `42%`, `12.5%` */ text: string }
  | { kind: 'json'; text: string };

const isAttempt = (a: unknown): a is number => typeof a === 'number' && Number.isInteger(a) && a >= 1;

/**
 * The `progress` of a job as `GET /v1/jobs/:id` answers it: null when there is
 * none, the field is absent (an older server) or not of the expected shape.
 */
export function progressOfJob(job: unknown): Progress | null {
  const p = (job as { progress?: unknown } | null)?.progress;
  if (p === null || typeof p !== 'object') return null;
  const { value, attempt, at } = p as Record<string, unknown>;
  if (!isAttempt(attempt) || typeof at !== 'string' || value === undefined) return null;
  return { value, attempt, at };
}

/** The progress a stream `progress` message carries. */
export function progressFromMessage(m: Pick<StreamProgressMessage, 'progress' | 'attempt' | 'at'>): Progress {
  return { value: m.progress, attempt: m.attempt, at: m.at };
}

/**
 * The newer of two: a later attempt wins, then a later (or equal) time. The
 * stream and a reload of the job race; neither may put an older value back.
 */
export function newerProgress(shown: Progress | null, next: Progress | null): Progress | null {
  if (!next) return shown;
  if (!shown) return next;
  return compareProgress(next, shown) >= 0 ? next : shown;
}

/** `42%`, `12.5%`, `0.1%`: at most one decimal. */
export function percentText(n: number): string {
  return `${Number(n.toFixed(1))}%`;
}

/** A number shows as a bar (clamped to 0..100); anything else as indented JSON. */
export function progressShown(value: unknown): ProgressShown {
  if (typeof value === 'number' && Number.isFinite(value)) {
    const percent = Math.min(100, Math.max(0, value));
    return { kind: 'bar', percent, text: percentText(percent) };
  }
  return { kind: 'json', text: jsonText(value, 2000) };
}

/**
 * Which attempt reported it, as the inspector names attempts: `attempt 2`, or
 * `run 2 · attempt 1` after a redrive (from the job's events, see machines/runs.ts);
 * `(an earlier attempt)` is added when the job has started a later one since.
 */
export function progressAttemptText(p: Progress, events: readonly RunEvent[], jobAttempt: number): string {
  const runs = runsOf(events);
  const i = events.findIndex((e) => e.type === 'STARTED' && (e.data as { attempt?: unknown } | null)?.attempt === p.attempt);
  const r = i >= 0 ? runs[i] : undefined;
  const name = r && r.attempt !== null && r.run > 1 ? `run ${r.run} · attempt ${r.attempt}` : `attempt ${r?.attempt ?? p.attempt}`;
  return p.attempt < jobAttempt ? `${name} (an earlier attempt)` : name;
}
