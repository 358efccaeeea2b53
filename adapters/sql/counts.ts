/**
 * The maintained job counts (`job_counts`, migration 0003): what `stats()`
 * reads instead of three GROUP BY scans of `jobs`, whose cost grew with the
 * history kept. Every program that changes jobs (insert, update, delete) adds
 * its net change per (tenant, queue, type, state) in the same transaction, as
 * its last statements, so the counter rows' locks are held for the shortest
 * time. Kept per tenant (migration 0013): a tenant's stats read its own rows.
 */
import type { JobState } from '../../machines/job.machine.js';
import type { JobCount, TransitionWrite } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import { toNum, type Row } from './rows.js';
import type { Sql } from './statements.js';

/**
 * Rows per (queue, type, state): concurrent transactions of one queue and type
 * mostly land on different rows instead of queueing behind one row lock
 * (a count is the sum over its shards).
 */
export const COUNT_SHARDS = 8;

/** One key's net change. */
export interface CountDelta {
  tenant: string;
  queue: string;
  type: string;
  state: JobState;
  delta: number;
}

/** Net changes per (tenant, queue, type, state), summed as writes are added. */
export class CountDeltas {
  private readonly byKey = new Map<string, CountDelta>();

  add(tenant: string, queue: string, type: string, state: JobState, delta: number): this {
    const key = JSON.stringify([tenant, queue, type, state]);
    const d = this.byKey.get(key);
    if (d) d.delta += delta;
    else this.byKey.set(key, { tenant, queue, type, state, delta });
    return this;
  }

  /**
   * A transition's change: -1 where it came from, +1 where it went (a submit
   * only +1). Over a chain of writes on one job the middle states cancel out.
   */
  addWrites(writes: readonly TransitionWrite[]): this {
    for (const { job, event } of writes) {
      if (event.from === event.to) continue;
      if (event.from !== null) this.add(job.tenant, job.queue, job.type, event.from, -1);
      this.add(job.tenant, job.queue, job.type, event.to, 1);
    }
    return this;
  }

  /**
   * The non-zero changes in one fixed order (tenant, queue, type, state): every
   * transaction takes its counter rows' locks in that order, so two of them
   * never deadlock over counters.
   */
  sorted(): CountDelta[] {
    return [...this.byKey.values()].filter((d) => d.delta !== 0).sort(compareKeys);
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const compareKeys = (a: CountDelta, b: CountDelta): number =>
  cmp(a.tenant, b.tenant) || cmp(a.queue, b.queue) || cmp(a.type, b.type) || cmp(a.state, b.state);

/**
 * The shard a transaction writes: a hash of an id it writes (a job id's
 * random part), so concurrent transactions spread without a random source.
 */
export function shardOf(id: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % COUNT_SHARDS;
}

/**
 * Add the changes to the counters, one upsert per key in `sorted()` order.
 * Params (each): tenant, queue, type, state, shard, delta, delta.
 */
export function countSteps(d: Dialect, deltas: CountDeltas, shard: number): Sql[] {
  const sql = `INSERT INTO job_counts (tenant, queue, type, state, shard, n) VALUES (?, ?, ?, ?, ?, ?) ${d.addToCount}`;
  return deltas.sorted().map((c) => ({ sql, params: [c.tenant, c.queue, c.type, c.state, shard, c.delta, c.delta] }));
}

/** The counters' steps for a batch of writes (none when nothing changed state). */
export function countStepsOf(d: Dialect, writes: readonly TransitionWrite[]): Sql[] {
  return writes.length === 0 ? [] : countSteps(d, new CountDeltas().addWrites(writes), shardOf(writes[0]!.job.id));
}

/**
 * The maintained counts, summed over shards and tenants (a few rows per
 * tenant, queue and type, however many jobs). Params: none.
 */
export const SELECT_JOB_COUNTS = 'SELECT queue, type, state, SUM(n) AS n FROM job_counts GROUP BY queue, type, state';

/**
 * One tenant's maintained counts, summed over shards: a range of the primary
 * key `(tenant, ...)`. Params: tenant.
 */
export const SELECT_TENANT_JOB_COUNTS = 'SELECT queue, type, state, SUM(n) AS n FROM job_counts WHERE tenant = ? GROUP BY queue, type, state';

/**
 * The same counts, recounted from `jobs` over every tenant (a full scan: for `verify` and tests). Params: none.
 */
export const RECOUNT_JOBS = 'SELECT queue, type, state, COUNT(*) AS n FROM jobs GROUP BY queue, type, state';

/** Rows of either query, without the keys whose count is 0. */
export const rowsToCounts = (rows: readonly Row[]): JobCount[] =>
  rows
    .map((r) => ({ queue: String(r.queue), type: String(r.type), state: String(r.state) as JobState, n: toNum(r.n) }))
    .filter((c) => c.n !== 0);
