/**
 * What the page shows of the advisor (docs/advisor.md), shaped for display.
 * Pure (no DOM, time passed in): tested under node.
 *
 * - A live job's ETA (`eta` of `GET /v1/jobs/:id`): its predicted start and
 *   finish, relative to now, and what the prediction rests on.
 * - What the advisor learned per job type and queue (`GET /v1/insights`):
 *   run times, the lease it would claim with, failure signatures with their
 *   verdict (hopeless first), anomalies and the changes it makes or would make.
 * - Anomalies, from the stream's `insight` messages and from the insights:
 *   `AnomalyBoard` keeps the recent ones, once each, and those dismissed.
 *
 * Job types and queues are user-chosen strings: nothing here keys a plain
 * object by them (a type named `__proto__` is a type like any other).
 */
import type { Insights, JobDetail } from '../../../client/index.js';
import { duration } from './dom.js';
import { heldText } from '../../../client/waiting.js';

export type { Insights };
/** `eta` of `GET /v1/jobs/:id`. */
export type Eta = NonNullable<JobDetail['eta']>;
export type TypeInsight = Insights['types'][number];
export type SignatureInsight = TypeInsight['signatures'][number];
export type AdvisorMode = Insights['mode'];

/** One anomaly, from the stream or the insights: `at` in epoch ms. */
export interface Anomaly {
  type: string;
  queue: string;
  metric: 'failure-rate' | 'duration';
  baseline: number;
  observed: number;
  at: number;
}

// ------------------------------------------------------------------ numbers and times

/** `in 12 s`, `3 min ago`, or `now` within a second. */
export function relative(at: number, now: number): string {
  const d = at - now;
  if (!Number.isFinite(d)) return '–';
  if (Math.abs(d) < 1000) return 'now';
  return d > 0 ? `in ${duration(d)}` : `${duration(-d)} ago`;
}

/** A fraction as a percentage: `2%`, `31%`, `0.5%`, `100%`. */
export function percent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '–';
  const p = fraction * 100;
  if (p === 0) return '0%';
  if (Math.abs(p) < 0.1) return '<0.1%';
  if (Math.abs(p) < 10 && Math.round(p) !== p) return `${Number(p.toFixed(1))}%`;
  return `${Math.round(p)}%`;
}

const trim = (n: number): string => String(Number(n.toFixed(1)));

/** A start rate: `12 starts/s`, `1.5 starts/s`, `3 starts/min`, `0.5 starts/h`; null: no start lately. */
export function rateText(perSecond: number | null): string {
  if (perSecond === null || !Number.isFinite(perSecond) || perSecond <= 0) return 'no start lately';
  if (perSecond >= 10) return `${Math.round(perSecond)} starts/s`;
  if (perSecond >= 1) return `${trim(perSecond)} starts/s`;
  if (perSecond * 60 >= 1) return `${trim(perSecond * 60)} starts/min`;
  return `${trim(perSecond * 3600)} starts/h`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

// ------------------------------------------------------------------ the ETA

export interface EtaPoint {
  key: 'start' | 'finish';
  label: string;
  /** Epoch ms (NaN when the server's time does not parse). */
  at: number;
  iso: string;
  /** Relative to now: `in 12 s`, `12 s ago (overdue)`. */
  text: string;
}

export interface EtaShown {
  start: EtaPoint;
  finish: EtaPoint;
  /** What the prediction rests on, in words. */
  basis: string;
}

/**
 * The words for what an ETA rests on: jobs ahead (`atLeast`: at least that
 * many, the count stopped early), the queue's start rate and usual wait to
 * start, the type's median run time; for a job its limit holds (`held`),
 * the limit instead of the queue.
 */
export function basisText(basis: Eta['basis'], atLeast = false): string {
  if (basis.held !== undefined) return [heldText(basis.held), `median run ${duration(basis.medianRunMs)}`].join(' · ');
  return [
    `${atLeast ? 'at least ' : ''}${plural(basis.ahead, 'job')} ahead in the queue`,
    basis.startsPerSecond === null ? 'no start in the queue lately' : `the queue starting ${rateText(basis.startsPerSecond)}`,
    ...(basis.startLatencyMs === null ? [] : [`usually started ${duration(basis.startLatencyMs)} after due`]),
    `median run ${duration(basis.medianRunMs)}`,
  ].join(' · ');
}

/**
 * An ETA as the inspector shows it, or null when there is none (a finished
 * job, the advisor off, a type without history). A running job's start is
 * when its attempt started; a finish already past is overdue. An ETA that is
 * a lower bound (`lowerBound`: not every job ahead was counted, or the job's
 * limit's rate holds it) shows the earliest start and finish.
 */
export function etaShown(eta: Eta | null | undefined, state: string, now: number): EtaShown | null {
  if (!eta) return null;
  const start = Date.parse(eta.start);
  const finish = Date.parse(eta.finish);
  const running = state === 'running';
  const atLeast = eta.lowerBound === true;
  return {
    start: {
      key: 'start', label: running ? 'started' : atLeast ? 'earliest start' : 'predicted start', at: start, iso: eta.start,
      // A waiting job predicted to have started already: the next start may be its.
      text: !running && start <= now ? 'any moment' : relative(start, now),
    },
    finish: {
      key: 'finish', label: atLeast ? 'earliest finish' : 'predicted finish', at: finish, iso: eta.finish,
      text: finish < now - 1000 ? `${relative(finish, now)} (overdue)` : relative(finish, now),
    },
    basis: basisText(eta.basis, atLeast),
  };
}

// ------------------------------------------------------------------ anomalies

const METRIC_WORDS: Record<Anomaly['metric'], string> = { 'failure-rate': 'failure rate', duration: 'typical run time' };

/** A level of a metric: a failure fraction as a percentage, a run time as a duration. */
export const metricValue = (metric: Anomaly['metric'], v: number): string => (metric === 'failure-rate' ? percent(v) : duration(v));

export interface AnomalyParts {
  /** `failure rate`, `typical run time`. */
  what: string;
  type: string;
  queue: string;
  /** `rose` or `fell`. */
  verb: string;
  from: string;
  to: string;
}

export function anomalyParts(a: Anomaly): AnomalyParts {
  return {
    what: METRIC_WORDS[a.metric] ?? a.metric, type: a.type, queue: a.queue,
    verb: a.observed >= a.baseline ? 'rose' : 'fell',
    from: metricValue(a.metric, a.baseline), to: metricValue(a.metric, a.observed),
  };
}

/** `failure rate of payments.charge (queue default) rose from 2% to 31%`. */
export function anomalyText(a: Anomaly): string {
  const p = anomalyParts(a);
  return `${p.what} of ${p.type} (queue ${p.queue}) ${p.verb} from ${p.from} to ${p.to}`;
}

/** A short label for a badge: `failures ↑`, `run time ↑`. */
export const anomalyBadge = (a: Anomaly): string => `${a.metric === 'failure-rate' ? 'failures' : 'run time'} ${a.observed >= a.baseline ? '↑' : '↓'}`;

/** The same anomaly from the stream and from the insights has the same key. */
export const anomalyKey = (a: Anomaly): string => JSON.stringify([a.type, a.queue, a.metric, a.at]);

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isMetric = (v: unknown): v is Anomaly['metric'] => v === 'failure-rate' || v === 'duration';

/** The anomaly a stream message carries (`{"kind":"insight","insight":"anomaly",...}`), or null for anything else. */
export function anomalyFromMessage(m: unknown): Anomaly | null {
  if (!m || typeof m !== 'object') return null;
  const o = m as Record<string, unknown>;
  if (o.kind !== 'insight' || o.insight !== 'anomaly') return null;
  if (typeof o.type !== 'string' || typeof o.queue !== 'string' || !isMetric(o.metric) || !isNum(o.baseline) || !isNum(o.observed)) return null;
  const at = typeof o.at === 'string' ? Date.parse(o.at) : isNum(o.at) ? o.at : NaN;
  if (!Number.isFinite(at)) return null;
  return { type: o.type, queue: o.queue, metric: o.metric, baseline: o.baseline, observed: o.observed, at };
}

export interface AnomalyBoardOptions {
  /** Anomalies older than this are no longer shown as active. @defaultValue 1 hour */
  maxAgeMs?: number;
  /** Most anomalies remembered (the oldest are forgotten). @defaultValue 200 */
  max?: number;
  /** Keys dismissed before (kept by the page across reloads). */
  dismissed?: Iterable<string>;
}

/**
 * The anomalies the page knows of, once each (keyed by type, queue, metric
 * and time), and which of them the user dismissed. Active: not dismissed and
 * detected within `maxAgeMs`, newest first.
 */
export class AnomalyBoard {
  private readonly all = new Map<string, Anomaly>();
  private readonly dismissed: Set<string>;
  private readonly maxAgeMs: number;
  private readonly max: number;

  constructor(opts: AnomalyBoardOptions = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? 60 * 60_000;
    this.max = opts.max ?? 200;
    this.dismissed = new Set(opts.dismissed ?? []);
  }

  /** Remember one; false when it was known already. */
  add(a: Anomaly): boolean {
    const key = anomalyKey(a);
    if (this.all.has(key)) return false;
    this.all.set(key, a);
    if (this.all.size > this.max) {
      const oldest = [...this.all.entries()].sort((x, y) => x[1].at - y[1].at)[0]!;
      this.all.delete(oldest[0]);
      this.dismissed.delete(oldest[0]);
    }
    return true;
  }

  /** Remember these (the anomalies of `GET /v1/insights`); how many were new. */
  addAll(list: Iterable<Anomaly>): number {
    let n = 0;
    for (const a of list) if (this.add(a)) n++;
    return n;
  }

  dismiss(key: string): void {
    if (this.all.has(key)) this.dismissed.add(key);
  }

  /** Dismiss every anomaly active at `now`. */
  dismissAll(now: number): void {
    for (const a of this.active(now)) this.dismissed.add(anomalyKey(a));
  }

  isDismissed(a: Anomaly): boolean {
    return this.dismissed.has(anomalyKey(a));
  }

  /** The keys dismissed, of the anomalies still remembered (what the page keeps across reloads). */
  dismissedKeys(): string[] {
    return [...this.dismissed].filter((k) => this.all.has(k));
  }

  /** Not dismissed and recent, newest first. */
  active(now: number): Anomaly[] {
    return [...this.all.entries()]
      .filter(([k, a]) => !this.dismissed.has(k) && a.at > now - this.maxAgeMs)
      .map(([, a]) => a)
      .sort((x, y) => y.at - x.at);
  }

  /** The active anomalies per job type, newest first. */
  byType(now: number): Map<string, Anomaly[]> {
    const out = new Map<string, Anomaly[]>();
    for (const a of this.active(now)) {
      const list = out.get(a.type);
      if (list) list.push(a);
      else out.set(a.type, [a]);
    }
    return out;
  }
}

/** The anomalies of an insights answer, with `at` in ms. */
export function anomaliesOf(insights: Insights): Anomaly[] {
  return insights.types.flatMap((t) => t.anomalies.map((a) => ({
    type: a.type, queue: a.queue, metric: a.metric, baseline: a.baseline, observed: a.observed, at: a.at,
  })));
}

// ------------------------------------------------------------------ the insights panel

/** What each mode means, after its name. */
export const MODE_TEXT: Record<AdvisorMode, string> = {
  off: 'learns nothing and changes nothing (ATS_ADVISOR=advise or enforce turns it on)',
  advise: 'learns and shows what it would change; the scheduler\'s behaviour is unchanged',
  enforce: 'its decisions apply: hopeless retries stopped, retries timed from recoveries, leases sized from run times',
};

const VERDICT_ORDER: Record<SignatureInsight['verdict'], number> = { hopeless: 0, transient: 1, learning: 2 };

/** Hopeless signatures first, then transient, then still learning; more failures first within each. */
export function sortSignatures(list: readonly SignatureInsight[]): SignatureInsight[] {
  return [...list].sort((a, b) => (VERDICT_ORDER[a.verdict] ?? 3) - (VERDICT_ORDER[b.verdict] ?? 3)
    || b.failures - a.failures || a.signature.localeCompare(b.signature));
}

/** Types with a hopeless signature or an anomaly first, then by type and queue. */
export function sortTypes(list: readonly TypeInsight[]): TypeInsight[] {
  const alarming = (t: TypeInsight) => (t.anomalies.length > 0 || t.signatures.some((s) => s.verdict === 'hopeless') ? 0 : 1);
  return [...list].sort((a, b) => alarming(a) - alarming(b) || a.type.localeCompare(b.type) || a.queue.localeCompare(b.queue));
}

/** `240 attempts, 12 failed (5%)`. */
export function attemptsText(t: Pick<TypeInsight, 'attempts' | 'failures'>): string {
  if (t.attempts === 0) return 'no attempt ended yet';
  return `${plural(t.attempts, 'attempt')}, ${t.failures} failed (${percent(t.failures / t.attempts)})`;
}

/** `p50 850 ms · p99 4.2 s (240 runs)`, or why there is none. */
export function runTimeText(runMs: TypeInsight['runMs']): string {
  if (!runMs) return 'not yet timed';
  return `p50 ${duration(runMs.p50)} · p99 ${duration(runMs.p99)} (${plural(runMs.count, 'run')})`;
}

/** `12 s, heartbeat every 4 s (from p99 3 s over 240 runs)`, or the static lease. */
export function leaseText(lease: TypeInsight['lease']): string {
  if (!lease) return 'the static lease (not enough runs timed yet)';
  return `${duration(lease.leaseMs)}, heartbeat every ${duration(lease.heartbeatMs)} (from p99 ${duration(lease.p99Ms)} over ${plural(lease.samples, 'run')})`;
}

/** `3 of 4 retries recovered · P(recover) 71%`. */
export function evidenceText(s: SignatureInsight): string {
  const retried = s.recovered + s.hopeless;
  return `${s.recovered} of ${plural(retried, 'retry', 'retries')} recovered · P(recover) ${percent(s.pRecover)}`;
}

/** `recovers in 1.2 s (p50), 4 s (p90)`, or ''. */
export function recoveryText(r: SignatureInsight['recoveryMs']): string {
  return r && r.count > 0 ? `recovers in ${duration(r.p50)} (p50), ${duration(r.p90)} (p90)` : '';
}

/** The heading of the changes: what the mode makes of them. */
export const changesTitle = (mode: AdvisorMode): string => (mode === 'enforce' ? 'Changes applied' : 'Would change (advise mode)');
