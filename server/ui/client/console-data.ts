/**
 * What the operator's charts and tables are computed from, kept in memory by
 * the page. Pure (no DOM, time passed in): tested under node.
 *
 * - `Throughput`: jobs submitted, done and dead per 30 s over the last 15
 *   minutes. Filled from the stream's events since the page opened, and
 *   backfilled at load from `GET /v1/jobs` pages, newest first, down to 15 min ago (a job's
 *   `createdAt` is its submit; a done or dead job's `updatedAt` is when it got
 *   there). Each point is counted once, keyed by job, kind and time, so an
 *   event seen both ways is not counted twice.
 * - `QueueWait`: for each attempt started, the time from the job being due
 *   (submitted, or its runAt if later; back to pending after a retry or a
 *   redrive) to STARTED. Only jobs whose becoming due the page saw on the
 *   stream count: this chart starts empty when the page opens.
 * - `WorkerSeen`: the workers the page saw start attempts on the stream
 *   (STARTED carries `workerId`), with their last activity and the leases
 *   they lost, until one runs nothing and was last seen before the window
 *   (the registered workers, idle or not, are `GET /v1/workers`:
 *   workers-view.ts).
 * - `countTable`, `CountsShown`: the "Jobs per type" and "Jobs per queue"
 *   tables from the counts of `GET /v1/stats` or the stream's stats (once a
 *   second, every name in each): at most `COUNT_ROWS` rows, those with the
 *   most jobs past that, and a redraw only when what they show changed.
 */

export const WINDOW_MS = 15 * 60_000;
export const BUCKET_MS = 30_000;
export const BUCKETS = WINDOW_MS / BUCKET_MS;

export type Kind = 'submitted' | 'done' | 'dead';
export const KINDS: readonly Kind[] = ['submitted', 'done', 'dead'];

/** The part of a stream event message used here. */
export interface LiveEvent {
  jobId: string;
  type: string;
  from: string | null;
  to: string;
  at: string;
  data: unknown;
}

/** The part of a job (`JobView`) the backfill uses. */
export interface ListedJob {
  id: string;
  state: string;
  createdAt: string;
  updatedAt: string;
}

const bucketOf = (t: number): number => Math.floor(t / BUCKET_MS);

/** The buckets of the window ending at `now`, oldest first (absolute bucket numbers). */
export function windowBuckets(now: number): number[] {
  const last = bucketOf(now);
  return Array.from({ length: BUCKETS }, (_, i) => last - BUCKETS + 1 + i);
}

export class Throughput {
  private readonly counts = new Map<number, Record<Kind, number>>();
  private readonly seen = new Map<string, number>();

  /** Count one `kind` at time `t` for `jobId`; false when already counted or outside the window. */
  add(kind: Kind, jobId: string, t: number, now: number): boolean {
    if (!Number.isFinite(t) || t <= now - WINDOW_MS - BUCKET_MS || t > now + 60_000) return false;
    const key = `${jobId}|${kind}|${t}`;
    if (this.seen.has(key)) return false;
    this.seen.set(key, t);
    const b = bucketOf(t);
    const c = this.counts.get(b) ?? { submitted: 0, done: 0, dead: 0 };
    c[kind]++;
    this.counts.set(b, c);
    return true;
  }

  /** What a stream event counts for, if anything. */
  addEvent(e: LiveEvent, now: number): void {
    const t = Date.parse(e.at);
    if (e.type === 'SUBMITTED') this.add('submitted', e.jobId, t, now);
    if (e.to === 'done' && e.from !== 'done') this.add('done', e.jobId, t, now);
    if (e.to === 'dead' && e.from !== 'dead') this.add('dead', e.jobId, t, now);
  }

  /** What a listed job tells: its submit, and when it became done or dead (its last transition). */
  addJob(j: ListedJob, now: number): void {
    this.add('submitted', j.id, Date.parse(j.createdAt), now);
    if (j.state === 'done' || j.state === 'dead') this.add(j.state, j.id, Date.parse(j.updatedAt), now);
  }

  /** Per bucket of the window ending at `now`, oldest first. */
  series(kind: Kind, now: number): number[] {
    return windowBuckets(now).map((b) => this.counts.get(b)?.[kind] ?? 0);
  }

  /** Forget what is out of the window. */
  prune(now: number): void {
    const first = bucketOf(now) - BUCKETS;
    for (const b of this.counts.keys()) if (b < first) this.counts.delete(b);
    for (const [k, t] of this.seen) if (bucketOf(t) < first) this.seen.delete(k);
  }
}

export interface WaitPoint {
  /** Attempts started in the bucket. */
  n: number;
  median: number | null;
  max: number | null;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Most jobs whose due time is remembered at once (the oldest is forgotten past it). */
const MAX_TRACKED = 20_000;
/** Waits kept per 30 s bucket for its median (its last ones); its count and maximum see every wait. */
const MAX_SAMPLE = 1_000;

interface WaitBucket {
  n: number;
  max: number;
  sample: number[];
}

export class QueueWait {
  private readonly due = new Map<string, number>();
  private readonly waits = new Map<number, WaitBucket>();

  /** Follow one event; returns the wait of an attempt it started, if known. */
  addEvent(e: LiveEvent): number | null {
    const t = Date.parse(e.at);
    if (!Number.isFinite(t)) return null;
    const d = (e.data ?? {}) as { runAt?: unknown };
    switch (e.type) {
      case 'SUBMITTED':
        this.remember(e.jobId, typeof d.runAt === 'number' && d.runAt > t ? d.runAt : t);
        return null;
      case 'RETRY_DUE':
      case 'REDRIVE':
        this.remember(e.jobId, t);
        return null;
      case 'STARTED': {
        const due = this.due.get(e.jobId);
        this.due.delete(e.jobId);
        if (due === undefined) return null;
        const wait = Math.max(0, t - due);
        const b = bucketOf(t);
        let w = this.waits.get(b);
        if (!w) this.waits.set(b, (w = { n: 0, max: 0, sample: [] }));
        w.n++;
        if (wait > w.max) w.max = wait;
        // The median is of the bucket's last MAX_SAMPLE waits (a ring): a busy bucket keeps its memory flat.
        if (w.sample.length < MAX_SAMPLE) w.sample.push(wait);
        else w.sample[(w.n - 1) % MAX_SAMPLE] = wait;
        return wait;
      }
      default:
        if (e.to === 'cancelled' || e.to === 'done' || e.to === 'dead') this.due.delete(e.jobId);
        return null;
    }
  }

  private remember(jobId: string, due: number): void {
    this.due.delete(jobId);
    this.due.set(jobId, due);
    if (this.due.size > MAX_TRACKED) this.due.delete(this.due.keys().next().value!);
  }

  series(now: number): WaitPoint[] {
    return windowBuckets(now).map((b) => {
      const w = this.waits.get(b);
      return w?.n ? { n: w.n, median: median(w.sample), max: w.max } : { n: 0, median: null, max: null };
    });
  }

  prune(now: number): void {
    const first = bucketOf(now) - BUCKETS;
    for (const b of this.waits.keys()) if (b < first) this.waits.delete(b);
  }
}

export interface WorkerRow {
  workerId: string;
  /** Attempts it started since the page opened. */
  started: number;
  /** Jobs it runs now, as far as the events seen tell. */
  running: number;
  /** Its last STARTED, HEARTBEAT or outcome (ms). */
  lastSeen: number;
  /** Attempts of its that ended in LEASE_EXPIRED (it stopped heartbeating). */
  leasesLost: number;
}

export class WorkerSeen {
  /** The job each running attempt seen runs on, oldest start first: at most `MAX_TRACKED` (an end the page missed leaves one behind). */
  private readonly byJob = new Map<string, string>();
  private readonly rows = new Map<string, WorkerRow & { jobs: Set<string> }>();

  addEvent(e: LiveEvent): void {
    const t = Date.parse(e.at);
    if (!Number.isFinite(t)) return;
    const d = (e.data ?? {}) as { workerId?: unknown };
    if (e.type === 'STARTED' && typeof d.workerId === 'string') {
      const w = this.row(d.workerId);
      w.started++;
      w.jobs.add(e.jobId);
      w.lastSeen = Math.max(w.lastSeen, t);
      this.byJob.delete(e.jobId);
      this.byJob.set(e.jobId, d.workerId);
      if (this.byJob.size > MAX_TRACKED) {
        const [oldest, on] = this.byJob.entries().next().value!;
        this.byJob.delete(oldest);
        this.rows.get(on)?.jobs.delete(oldest);
      }
      return;
    }
    const id = this.byJob.get(e.jobId);
    if (id === undefined) return;
    const w = this.row(id);
    if (e.type === 'HEARTBEAT' || e.type === 'SUCCEEDED' || e.type === 'FAILED') w.lastSeen = Math.max(w.lastSeen, t);
    if (e.type === 'LEASE_EXPIRED') w.leasesLost++;
    if (e.type !== 'HEARTBEAT') {
      w.jobs.delete(e.jobId);
      this.byJob.delete(e.jobId);
    }
  }

  private row(workerId: string): WorkerRow & { jobs: Set<string> } {
    let w = this.rows.get(workerId);
    if (!w) {
      w = { workerId, started: 0, running: 0, lastSeen: 0, leasesLost: 0, jobs: new Set() };
      this.rows.set(workerId, w);
    }
    return w;
  }

  /**
   * Forget the workers that run nothing (as far as the events seen tell) and
   * were last seen before the window: a worker restarted under a new id (by
   * default its host and pid) leaves the list instead of staying for as long
   * as the page is open.
   */
  prune(now: number): void {
    for (const [id, w] of this.rows) if (w.jobs.size === 0 && w.lastSeen < now - WINDOW_MS) this.rows.delete(id);
  }

  /** The workers seen, most recently active first. */
  list(): WorkerRow[] {
    return [...this.rows.values()]
      .map(({ jobs, ...w }) => ({ ...w, running: jobs.size }))
      .sort((a, b) => b.lastSeen - a.lastSeen || a.workerId.localeCompare(b.workerId));
  }
}

/** The counts of `GET /v1/stats` per type or per queue: per name, per state. */
export type CountsByName = Readonly<Record<string, Readonly<Record<string, number | undefined>> | null | undefined>>;

/** Most rows a counts table shows, and most names the filter suggests: with more, those with the most jobs. */
export const COUNT_ROWS = 200;

export interface CountRow {
  name: string;
  /** Per state, in the order of the states given. */
  counts: number[];
  total: number;
}

export interface CountTable {
  /** By name when every name fits; else the `COUNT_ROWS` with the most jobs, most first (a tie by name). */
  rows: CountRow[];
  /** Names left out. */
  more: number;
  /** Their jobs, together. */
  moreJobs: number;
}

const own = (o: Readonly<Record<string, number | undefined>>, k: string): number => (Object.hasOwn(o, k) ? Number(o[k]) || 0 : 0);
/** Names compare by code unit, as `Array.prototype.sort` does: the same order on every browser. */
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The indexes of the `max` names with the highest totals, highest first (a tie by name); all of them by name when they fit. */
function pick(names: readonly string[], totals: readonly number[], max: number): { shown: number[]; left: number[] } {
  const order = names.map((_, i) => i);
  if (names.length <= max) return { shown: order.sort((a, b) => byCodeUnit(names[a]!, names[b]!)), left: [] };
  order.sort((a, b) => totals[b]! - totals[a]! || byCodeUnit(names[a]!, names[b]!));
  return { shown: order.slice(0, max), left: order.slice(max) };
}

/** One counts table: each name's count per state and its total; past `max` names, those with the most jobs. */
export function countTable(byName: CountsByName, states: readonly string[], max = COUNT_ROWS): CountTable {
  const names = Object.keys(byName);
  const counts = names.map((name) => {
    const c = byName[name] ?? {};
    return states.map((st) => own(c, st));
  });
  const totals = counts.map((c) => c.reduce((a, n) => a + n, 0));
  const { shown, left } = pick(names, totals, max);
  return {
    rows: shown.map((i) => ({ name: names[i]!, counts: counts[i]!, total: totals[i]! })),
    more: left.length,
    moreJobs: left.reduce((a, i) => a + totals[i]!, 0),
  };
}

/**
 * A counts table as last drawn: `update` gives the table for new counts, or
 * null when it would show exactly what is on the page (the stats come once a
 * second, mostly unchanged).
 */
export class CountsShown {
  private drawn: string | null = null;

  constructor(private readonly states: readonly string[], private readonly max = COUNT_ROWS) {}

  update(byName: CountsByName): CountTable | null {
    const table = countTable(byName, this.states, this.max);
    const sig = JSON.stringify(table);
    if (sig === this.drawn) return null;
    this.drawn = sig;
    return table;
  }
}

/** The names the job list's filter suggests: at most `max`, those with the most jobs (any state), by name. */
export function suggestNames(byName: CountsByName, max = COUNT_ROWS): string[] {
  const names = Object.keys(byName);
  const totals = names.map((name) => Object.values(byName[name] ?? {}).reduce<number>((a, n) => a + (Number(n) || 0), 0));
  return pick(names, totals, max).shown.map((i) => names[i]!).sort(byCodeUnit);
}

/**
 * The job types the submit form suggests: the demo handlers' (so a newcomer has something to run on a
 * fresh server) and those the server has seen (`suggestNames` of the counts per type), each once, by name.
 */
export function submitTypeNames(demoTypes: readonly string[], seenTypes: readonly string[]): string[] {
  return [...new Set([...demoTypes, ...seenTypes])].sort(byCodeUnit);
}
