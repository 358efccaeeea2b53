/**
 * Concurrency and rate limits: a job may carry a concurrency key, and a limit
 * on that key caps how many of its attempts run at once (across all workers)
 * and how many start per interval. Pure: the decision a claim makes inside
 * its transaction, from the limit's row and the key's running attempts as
 * the store read them under the row's lock (adapters/sql/limits.ts).
 *
 * - Concurrency counts the attempts of the key that run and whose lease still
 *   holds: a dead worker's slot is free again once its lease is over, before
 *   the timers even record LEASE_EXPIRED.
 * - The rate spaces starts evenly: one every `step = ⌈intervalMs / max⌉` ms
 *   (a generic cell rate algorithm without burst), so no window of
 *   `intervalMs` ever holds more than `max` starts. `tat` (the theoretical
 *   arrival time: when the next start is allowed) is the only state: a start
 *   is allowed when `tat <= now`, and sets `tat` to `now + step`.
 *
 * A claim over a limit is refused ('throttled'), writing nothing: the attempt
 * is not started, burns nothing, and is tried again (engine/worker.ts).
 *
 * Limits belong to a tenant (engine/auth.ts): a job's attempts count against
 * its own tenant's limit of its key only. A limit's key is stored
 * tenant-qualified (`storedLimitKey`): `<tenant>/<key>`, and the default
 * tenant's bare. Why one qualified key column rather than a tenant column:
 * the limits made before tenants existed are the default tenant's as they
 * are; the claim path (adapters/sql/writes.ts, adapters/sql/limits.ts) reads,
 * locks and counts limit rows by one key, unchanged; and the qualified key is
 * what a claim's `limitKeyOf` returns, so the hot path only adds a string
 * concatenation for tenants other than the default one. No two stored keys
 * collide: `/` is in neither a tenant name (TENANT_PATTERN) nor a key
 * (server/schemas.ts NAME_PATTERN, which type and queue names follow too).
 */
import { DEFAULT_TENANT } from './auth.js';

/** What a limit allows; at least one of the two is set. */
export interface LimitSpec {
  /** Attempts with the key running at once, or null for no cap; 0 pauses the key (none starts). */
  concurrency: number | null;
  /** Starts per interval, or null for no cap. */
  rate: { max: number; intervalMs: number } | null;
}

/** A limit as stored. */
export interface LimitRecord extends LimitSpec {
  /** The stored key: tenant-qualified (`storedLimitKey`). */
  key: string;
  /** The rate's state (epoch ms); 0 before the first start. */
  tat: number;
  createdAt: number;
  updatedAt: number;
}

/** Bounds the API takes (a key is a name like a queue's). */
export const MAX_LIMIT_CONCURRENCY = 100_000;
export const MAX_RATE = 1_000_000;
export const MAX_RATE_INTERVAL_MS = 86_400_000;

export type Admission =
  | { ok: true; tat: number }
  | { ok: false; why: 'paused' | 'concurrency' | 'rate'; retryAfterMs: number | null };

/**
 * How long a dispatch of a paused key (concurrency 0) waits before it is
 * claimed again: no attempt of the key ending can let it start, only a change
 * of the limit, which a claim sees at once; so it is asked about once a
 * second, not at the quicker pace of a key waiting for a running attempt.
 */
export const PAUSED_RECHECK_MS = 1000;

/**
 * May one more attempt of the key start at `now`, with `running` attempts of
 * it running? The rate's new state if so; if not, why, and when to ask again:
 * when the rate allows one, PAUSED_RECHECK_MS for a paused key, null for
 * concurrency (that waits for an attempt to end).
 */
export function admit(limit: LimitSpec & { tat: number }, running: number, now: number): Admission {
  if (limit.concurrency === 0) return { ok: false, why: 'paused', retryAfterMs: PAUSED_RECHECK_MS };
  if (limit.concurrency !== null && running >= limit.concurrency) return { ok: false, why: 'concurrency', retryAfterMs: null };
  if (limit.rate === null) return { ok: true, tat: limit.tat };
  if (limit.tat > now) return { ok: false, why: 'rate', retryAfterMs: limit.tat - now };
  return { ok: true, tat: now + rateStep(limit.rate) };
}

/** The time between two starts a rate allows, whole ms rounded up (so never more than `max` per interval). */
export const rateStep = (rate: { max: number; intervalMs: number }): number => Math.ceil(rate.intervalMs / rate.max);

/**
 * How far a limit's rate state (`tat`) moves when its rate changes from
 * `from` to `to`: by the difference of their steps. `tat` is the last start
 * plus the old step; moved so, it is the last start plus the new step, so the
 * new spacing holds from the last start on. A faster rate lets the key's
 * waiting jobs go one new step after the last start (not when the old, slower
 * rate would have allowed, which may be hours away); a slower one spaces the
 * next start by its own step. Without a rate before or after there is no step
 * to move by (0 when either is null): `replacedTat` then clears the state
 * instead.
 */
export function rateChangeShift(from: LimitSpec['rate'], to: LimitSpec['rate']): number {
  return from === null || to === null ? 0 : rateStep(to) - rateStep(from);
}

/**
 * The rate state (`tat`) a limit keeps when its rate is replaced by `to`:
 * moved by `rateChangeShift` when it had a rate and keeps one (0, no start
 * waiting on it, stays 0); 0 when it had none or has none now. A key without
 * a rate keeps no state: a state left from a rate lifted earlier would hold
 * the key's starts back, when a rate is set again, until that old rate would
 * have allowed one (a day away, for one a day), whatever the new rate allows.
 */
export function replacedTat(old: Pick<LimitRecord, 'rate' | 'tat'>, to: LimitSpec['rate']): number {
  if (old.rate === null || to === null) return 0;
  return old.tat > 0 ? old.tat + rateChangeShift(old.rate, to) : old.tat;
}

/**
 * How many of a key's `running` attempts must end for one more to start
 * under its `concurrency`: one, or more when the limit was lowered below what
 * runs (10 running under a limit of 2: 9).
 */
export const attemptsToEnd = (running: number, concurrency: number): number =>
  Math.max(1, running - Math.max(0, concurrency) + 1);

/** The key a limit of `tenant` on `key` is stored under: the default tenant's bare, any other's `<tenant>/<key>`. */
export const storedLimitKey = (tenant: string, key: string): string => (tenant === DEFAULT_TENANT ? key : `${tenant}/${key}`);

/** The tenant and the key (as the API names it) of a stored key: the inverse of `storedLimitKey`. */
export function splitLimitKey(stored: string): { tenant: string; key: string } {
  const slash = stored.indexOf('/');
  return slash < 0 ? { tenant: DEFAULT_TENANT, key: stored } : { tenant: stored.slice(0, slash), key: stored.slice(slash + 1) };
}

/**
 * The stored key of the limit a job's attempts count against, in the job's
 * tenant: its own `concurrencyKey`; else, as a default, the limit named
 * `type:<its type>` if there is one, else the one named `queue:<its queue>`
 * (`exists` says which stored keys have a limit).
 */
export function limitKeyOf(job: { tenant: string; type: string; queue: string; concurrencyKey?: string }, exists: (key: string) => boolean): string | undefined {
  const { tenant } = job;
  if (job.concurrencyKey !== undefined) return storedLimitKey(tenant, job.concurrencyKey);
  const byType = storedLimitKey(tenant, `type:${job.type}`);
  if (exists(byType)) return byType;
  const byQueue = storedLimitKey(tenant, `queue:${job.queue}`);
  return exists(byQueue) ? byQueue : undefined;
}

/** The limits' part of a claim: each key's limit and running attempts, read under the limit row's lock. */
export interface LimitState {
  limit: LimitRecord;
  running: number;
}
