/**
 * What the inspector's "Result" shows of a job: its result, its cancel
 * reason, or why there is none. Pure (no DOM): tested under node.
 */
import { jsonText } from './dom.js';

/** The part of a job (`GET /v1/jobs/:id`) the outcome is read from. */
export interface OutcomeOf {
  state: string;
  result: unknown;
  cancelReason: string | null;
}

/** A job in one of these states has no result to wait for (a dead or cancelled one gets one only if redriven). */
const ENDED_WITHOUT_RESULT = new Set(['dead', 'cancelled']);

/**
 * The result as indented JSON; else the cancel reason; else, for a done job,
 * `null` (its handler returned no value, which is stored as null: the job is
 * not waiting for one), `(none)` for a dead or cancelled one, and `(none yet)`
 * for a job still live.
 */
export function outcomeText(job: OutcomeOf): string {
  if (job.result !== null && job.result !== undefined) return jsonText(job.result);
  if (job.cancelReason) return jsonText({ cancelReason: job.cancelReason });
  if (job.state === 'done') return 'null (the handler returned no value, or null)';
  return ENDED_WITHOUT_RESULT.has(job.state) ? '(none)' : '(none yet)';
}

/**
 * Why a LEASE_EXPIRED ended its attempt, from its data: the worker stopped
 * heartbeating, or (`holderGone`) the embedded scheduler's restart found the
 * job running, its process ended.
 */
export function leaseEndText(data: unknown): string {
  return (data as { holderGone?: unknown } | null)?.holderGone === true
    ? 'error: lease ended at the restart (its process had ended)'
    : 'error: lease expired (its worker stopped heartbeating)';
}
