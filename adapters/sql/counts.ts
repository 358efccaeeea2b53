/**
 * The maintained job counts (`job_counts`, migration 0003): what `stats()`
 * reads instead of three GROUP BY scans of `jobs`, whose cost grew with the
 * history kept. Every program that changes jobs (insert, update, delete) adds
 * its net change per (tenant, queue, type, state) in the same transaction, as
 * its last statements, so the counter rows' locks are held for the shortest
 * time. Kept per tenant (migration 0013): a tenant's stats read its own rows.
 * A delete that leaves a (tenant, queue, type) without jobs also deletes its
 * counter rows (`uncountProgram`), so the table holds the keys of the jobs
 * kept, not of every job ever stored.
 */
import { TERMINAL_STATES, type JobState } from '../../machines/job.machine.js';
import type { JobCount, TransitionWrite } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import type { Program } from './program.js';
import { toNum, type Row } from './rows.js';
import { marks, type Sql } from './statements.js';

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

/** The upsert of one key's change on `shard`. */
function countStep(d: Dialect, c: CountDelta, shard: number): Sql {
  return { sql: `INSERT INTO job_counts (tenant, queue, type, state, shard, n) VALUES (?, ?, ?, ?, ?, ?) ${d.addToCount}`, params: [c.tenant, c.queue, c.type, c.state, shard, c.delta, c.delta] };
}

/**
 * Add the changes to the counters, one upsert per key in `sorted()` order.
 * Params (each): tenant, queue, type, state, shard, delta, delta.
 */
export function countSteps(d: Dialect, deltas: CountDeltas, shard: number): Sql[] {
  return deltas.sorted().map((c) => countStep(d, c, shard));
}

/**
 * Every counter row of one (tenant, queue, type), every state and shard, in
 * primary key order (a range of the key `(tenant, queue, type, ...)`):
 * read without locks, or locked (`lock`). Params: tenant, queue, type.
 */
const counterRows = (d: Dialect, lock: boolean): string =>
  `SELECT state, shard, n FROM job_counts WHERE tenant = ? AND queue = ? AND type = ? ORDER BY state, shard${lock ? ` ${d.forUpdate}` : ''}`;

/** Add to one shard row of a key, which the transaction holds locked. Params: delta, tenant, queue, type, state, shard. */
const addToShard = (tenant: string, queue: string, type: string, s: StateRows): Sql => ({
  sql: 'UPDATE job_counts SET n = n + ? WHERE tenant = ? AND queue = ? AND type = ? AND state = ? AND shard = ?',
  params: [s.delta, tenant, queue, type, s.state, s.shards[0]],
});

/** Some shards of one key. Params: tenant, queue, type, state, the shards. */
const deleteShards = (tenant: string, queue: string, type: string, state: JobState, shards: readonly number[]): Sql => ({
  sql: `DELETE FROM job_counts WHERE tenant = ? AND queue = ? AND type = ? AND state = ? AND shard IN (${marks(shards.length)})`,
  params: [tenant, queue, type, state, ...shards],
});

/** One state's rows of a (tenant, queue, type): their shards and the sum of their counts, plus the change to add. */
interface StateRows {
  state: JobState;
  shards: number[];
  sum: number;
  delta: number;
}

/** The changes, in `sorted()` order, grouped by (tenant, queue, type). */
function byType(changes: readonly CountDelta[]): CountDelta[][] {
  const groups: CountDelta[][] = [];
  for (const c of changes) {
    const last = groups.at(-1)?.[0];
    if (last && last.tenant === c.tenant && last.queue === c.queue && last.type === c.type) groups.at(-1)!.push(c);
    else groups.push([c]);
  }
  return groups;
}

/** A (tenant, queue, type)'s rows and its changes, per state, in state order. */
function statesOf(rows: readonly Row[], group: readonly CountDelta[]): StateRows[] {
  const byState = new Map<string, StateRows>();
  const of = (state: string): StateRows => {
    let s = byState.get(state);
    if (!s) byState.set(state, (s = { state: state as JobState, shards: [], sum: 0, delta: 0 }));
    return s;
  };
  for (const r of rows) {
    const s = of(String(r.state));
    s.shards.push(toNum(r.shard));
    s.sum += toNum(r.n);
  }
  for (const c of group) of(c.state).delta += c.delta;
  return [...byState.values()].sort((a, b) => cmp(a.state, b.state));
}

/** Every state of a (tenant, queue, type) counts zero once the changes are added: none of its jobs is left. */
const allZero = (states: readonly StateRows[]): boolean => states.every((s) => s.sum + s.delta === 0);

/** Some live (not terminal) state of a (tenant, queue, type) counts jobs once the changes are added. */
const someLive = (states: readonly StateRows[]): boolean =>
  states.some((s) => !TERMINAL_STATES.includes(s.state) && s.sum + s.delta !== 0);

/**
 * A delete's counter changes; when they leave a (tenant, queue, type) with no
 * job in any state (its last jobs deleted), its counter rows go with them, so
 * the table holds the (tenant, queue, type)s of the jobs kept, not of every
 * job ever stored. Per (tenant, queue, type), in `sorted()` order: its rows
 * read without locks; while a live state still counts jobs (a hot type: the
 * last delete of its jobs is yet to come), just the upserts, as `countSteps`.
 * Otherwise (only finished jobs left, which only deletes and the rare redrive
 * or new submit touch) its rows are locked, every state and shard in primary
 * key order, and read again: with no job left, they are deleted instead of
 * the upserts; else the upserts. Locking makes deletes of its last jobs in
 * concurrent transactions take turns, so the last one sees the others'
 * changes and deletes the rows. The locks go in ascending key order, as every
 * writer of counters takes its own (one shard of each key it changes, keys
 * in `sorted()` order), so a delete does not deadlock with them or with
 * another delete. Only rows it locked are deleted, and only when they and
 * the changes add up to zero in every state: every count stays exact,
 * whatever another transaction inserts meanwhile. Rows of a (tenant, queue,
 * type) that still has jobs are left alone, even those at zero: deleting a
 * row others are about to add to would make their upserts wait on each other.
 * At most a few statements per (tenant, queue, type) of the deleted jobs.
 */
export function* uncountProgram(d: Dialect, deltas: CountDeltas, shard: number): Program<void> {
  for (const group of byType(deltas.sorted())) {
    const { tenant, queue, type } = group[0]!;
    const params = [tenant, queue, type];
    const seen = statesOf((yield { sql: counterRows(d, false), params }).rows, group);
    const locked = someLive(seen) ? null : statesOf((yield { sql: counterRows(d, true), params }).rows, group);
    if (!locked) {
      for (const c of group) yield countStep(d, c, shard);
    } else if (allZero(locked)) {
      for (const s of locked) if (s.shards.length > 0) yield deleteShards(tenant, queue, type, s.state, s.shards);
    } else {
      // Onto a row it locked, not its own shard: a row inserted into the locked range would wait on
      // the transactions queued for that range's first row (InnoDB), which wait on this one.
      for (const s of locked) {
        if (s.delta === 0) continue;
        yield s.shards.length > 0 ? addToShard(tenant, queue, type, s) : countStep(d, { tenant, queue, type, state: s.state, delta: s.delta }, shard);
      }
    }
  }
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

/** One tenant's counts, recounted from `jobs` (a scan of the tenant's jobs: for `verify` and tests). Params: tenant. */
export const RECOUNT_TENANT_JOBS = 'SELECT queue, type, state, COUNT(*) AS n FROM jobs WHERE tenant = ? GROUP BY queue, type, state';

/** Rows of either query, without the keys whose count is 0. */
export const rowsToCounts = (rows: readonly Row[]): JobCount[] =>
  rows
    .map((r) => ({ queue: String(r.queue), type: String(r.type), state: String(r.state) as JobState, n: toNum(r.n) }))
    .filter((c) => c.n !== 0);
