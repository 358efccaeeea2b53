/**
 * The advisor benchmark's measures: per seed, the static run (advisor off)
 * against the advisor run (enforce) on the same jobs, and their summary
 * over seeds against the advisor's goals (docs/advisor.md, bench/ADVISOR.md).
 *
 * Everything here is computed from what the runs read out of the store
 * (simulate.ts: outcomes, attempts, lease expiries, finish times) and the
 * handler's own records (which attempts a crash interrupted), except the
 * ETAs and anomalies, which are the advisor's answers under test.
 */
import { quantile as modelQuantile } from '../../engine/advisor/model.js';
import type { RunRecord } from './simulate.js';
import type { Workload } from './workload.js';

/** An anomaly this long after a deliberate change of its type ended still counts as detecting that change. */
export const CHANGE_GRACE_MS = 10 * 60_000;
const DAY_MS = 24 * 3_600_000;

/** The goals the advisor is measured against. */
export const GOALS = Object.freeze({
  /** At least this share fewer wasted attempts with the advisor. */
  wastedReduction: 0.5,
  /** Lost successes, at most. */
  lostSuccesses: 0,
  /** Crashed workers' attempts recovered at least this many times sooner. */
  crashSpeedup: 3,
  /** Lease expiries of attempts whose worker did not crash, at most this share of attempts. */
  falseExpiryRate: 0.001,
  /** p50 absolute relative ETA error, at most. */
  etaP50Error: 0.2,
  /** The injected failure-rate spike detected within (ms). */
  detectionMs: 120_000,
  /** False alarms per simulated day, at most. */
  falseAlarmsPerDay: 1,
});

export interface RecoveryStats {
  /** Attempts a crash interrupted (with a LEASE_EXPIRED seen). */
  n: number;
  /** Mean and p50 time from the crash to the attempt's LEASE_EXPIRED. */
  meanMs: number | null;
  p50Ms: number | null;
  /** Mean time from the crash to the next attempt's start. */
  restartMeanMs: number | null;
  /** Per job type: n and mean time to LEASE_EXPIRED, and to the next start. */
  byType: Map<string, { n: number; meanMs: number; restarts: number; restartMeanMs: number }>;
}

export interface EtaStats {
  /** Predictions whose job finished. */
  n: number;
  /** Median absolute relative error: |predicted − actual finish| / (actual finish − prediction time). */
  p50: number | null;
  p90: number | null;
  /** Share within ±20%. */
  within20: number | null;
  /**
   * The most any ETA that gives every job of a type the same time to finish
   * could have put within ±20%, that time chosen per type after the fact from
   * this run's own outcomes: a ceiling set by how much a type's time to finish
   * varies (`bestConstantShare`).
   */
  hindsightWithin20: number | null;
  /** The p50 over jobs that succeeded at their first attempt, and over the others (retried, or dead). */
  firstTry: { n: number; p50: number | null };
  retried: { n: number; p50: number | null };
  byType: Map<string, { n: number; p50: number }>;
}

export interface SeedMeasures {
  seed: number;
  jobs: number;
  /** Attempts on jobs that end dead. */
  wasted: { static: number; advisor: number; reduction: number | null };
  /** The same over the jobs submitted in the second half of the arrivals (the advisor has learned by then). */
  wastedLate: { static: number; advisor: number; reduction: number | null };
  dead: { static: number; advisor: number };
  /** Done under static, dead under the advisor; and the reverse. */
  lostSuccesses: number;
  gainedSuccesses: number;
  /** Lost successes by job type and cause: the signature the advisor stopped retrying, or `retries used up`. */
  lostBy: Map<string, number>;
  lostStoppedByAdvisor: number;
  crash: { static: RecoveryStats; advisor: RecoveryStats; speedup: number | null };
  falseExpiry: { static: { n: number; attempts: number; rate: number }; advisor: { n: number; attempts: number; rate: number } };
  eta: { submit: EtaStats; live: EtaStats; nullAnswers: number };
  anomaly: {
    /** From the spike's start to its first failure-rate anomaly of its type (null: none, or no spike). */
    detectionMs: number | null;
    spike: boolean;
    /** Anomalies no deliberate change explains. */
    falseAlarms: number;
    /** Simulated hours the advisor watched. */
    hours: number;
    total: number;
    list: Array<{ type: string; metric: string; atMin: number; explained: boolean; baseline: number; observed: number }>;
  };
  /** Advisor decisions applied. */
  decisions: RunRecord['decisions'];
  realMs: { static: number; advisor: number };
  /** Write transactions of each run (heartbeats among them: a shorter lease means more). */
  writes: { static: number; advisor: number };
  /**
   * With a second static run differing only in its backoff jitter draws:
   * the jobs done in one and dead in the other, both ways (the chance level
   * of "lost successes").
   */
  noise?: { lost: number; gained: number };
  unfinished: { static: number; advisor: number };
}

// ------------------------------------------------------------------ small statistics

/** The advisor's own quantile (linear between order statistics); null for no values. */
export const quantile = (values: readonly number[], p: number): number | null => (values.length === 0 ? null : modelQuantile(values, p));

export const mean = (values: readonly number[]): number | null =>
  values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;

// ------------------------------------------------------------------ per seed

/** Attempts on jobs that ended dead (of those from index `from` on). */
export function wastedAttempts(run: Pick<RunRecord, 'jobs'>, from = 0): number {
  let n = 0;
  for (let i = from; i < run.jobs.length; i++) if (run.jobs[i]!.state === 'dead') n += run.jobs[i]!.attempts;
  return n;
}

/** Jobs done under `base` and dead under `other`, by index. */
export function lostSuccesses(base: Pick<RunRecord, 'jobs'>, other: Pick<RunRecord, 'jobs'>): number[] {
  const lost: number[] = [];
  base.jobs.forEach((j, i) => { if (j.state === 'done' && other.jobs[i]?.state === 'dead') lost.push(i); });
  return lost;
}

export function recoveryStats(run: Pick<RunRecord, 'recoveries'>): RecoveryStats {
  const seen = run.recoveries.filter((r) => r.expiredAt !== null);
  const times = seen.map((r) => r.expiredAt! - r.crashAt);
  const restarts = run.recoveries.filter((r) => r.restartedAt !== null).map((r) => r.restartedAt! - r.crashAt);
  const byType: RecoveryStats['byType'] = new Map();
  for (const r of seen) {
    let t = byType.get(r.type);
    if (!t) byType.set(r.type, (t = { n: 0, meanMs: 0, restarts: 0, restartMeanMs: 0 }));
    t.meanMs = (t.meanMs * t.n + (r.expiredAt! - r.crashAt)) / (t.n + 1);
    t.n++;
    if (r.restartedAt !== null) {
      t.restartMeanMs = (t.restartMeanMs * t.restarts + (r.restartedAt - r.crashAt)) / (t.restarts + 1);
      t.restarts++;
    }
  }
  return { n: seen.length, meanMs: mean(times), p50Ms: quantile(times, 0.5), restartMeanMs: mean(restarts), byType };
}

export function falseExpiries(run: Pick<RunRecord, 'healthyExpiries' | 'attempts'>): { n: number; attempts: number; rate: number } {
  const n = run.healthyExpiries.length;
  return { n, attempts: run.attempts, rate: run.attempts === 0 ? 0 : n / run.attempts };
}

/**
 * The largest share of `times` (each a job's time to finish, > 0) that one
 * predicted time c puts within ±`tolerance` of the error measure, |c − t| / t:
 * c / (1 + tolerance) ≤ t ≤ c / (1 − tolerance), a window whose ends stand in
 * the ratio (1 + tolerance) / (1 − tolerance), slid over the sorted times.
 */
export function bestConstantShare(times: readonly number[], tolerance: number): number {
  if (times.length === 0) return 0;
  const sorted = [...times].sort((a, b) => a - b);
  // A hair over the exact ratio, which floating point may round below (1.2 / 0.8 < 1.5).
  const ratio = ((1 + tolerance) / (1 - tolerance)) * (1 + 1e-12);
  let best = 0;
  for (let lo = 0, hi = 0; lo < sorted.length; lo++) {
    while (hi < sorted.length && sorted[hi]! <= sorted[lo]! * ratio) hi++;
    best = Math.max(best, hi - lo);
  }
  return best / sorted.length;
}

/** ETA errors of the samples of one kind whose job finished. */
export function etaStats(run: Pick<RunRecord, 'eta' | 'jobs'>, kind: 'submit' | 'live'): EtaStats {
  const errors: number[] = [];
  const firstTry: number[] = [];
  const retried: number[] = [];
  const byTypeErrors = new Map<string, number[]>();
  const byTypeTimes = new Map<string, number[]>();
  for (const s of run.eta) {
    if (s.kind !== kind) continue;
    const job = run.jobs[s.i];
    const finishedAt = job?.finishedAt;
    if (finishedAt === null || finishedAt === undefined) continue;
    const err = Math.abs(s.finish - finishedAt) / Math.max(1, finishedAt - s.at);
    errors.push(err);
    const times = byTypeTimes.get(s.type);
    if (times) times.push(Math.max(1, finishedAt - s.at));
    else byTypeTimes.set(s.type, [Math.max(1, finishedAt - s.at)]);
    (job!.state === 'done' && job!.attempts === 1 ? firstTry : retried).push(err);
    const typeErrors = byTypeErrors.get(s.type);
    if (typeErrors) typeErrors.push(err);
    else byTypeErrors.set(s.type, [err]);
  }
  const byType: EtaStats['byType'] = new Map();
  for (const [t, e] of byTypeErrors) byType.set(t, { n: e.length, p50: quantile(e, 0.5)! });
  return {
    n: errors.length, p50: quantile(errors, 0.5), p90: quantile(errors, 0.9),
    within20: errors.length === 0 ? null : errors.filter((e) => e <= 0.2).length / errors.length,
    hindsightWithin20: errors.length === 0 ? null : [...byTypeTimes.values()].reduce((n, t) => n + bestConstantShare(t, 0.2) * t.length, 0) / errors.length,
    firstTry: { n: firstTry.length, p50: quantile(firstTry, 0.5) }, retried: { n: retried.length, p50: quantile(retried, 0.5) }, byType,
  };
}

/** Whether a deliberate change of the anomaly's type (outage, spike) explains it. */
export function explained(w: Pick<Workload, 'changes'>, a: { type: string; seenAt: number }): boolean {
  return w.changes.some((c) => c.type === a.type && a.seenAt >= c.start && a.seenAt <= c.end + CHANGE_GRACE_MS);
}

export function anomalyMeasures(w: Pick<Workload, 'changes' | 'spike' | 'start'>, run: Pick<RunRecord, 'anomalies' | 'simulatedMs'>): SeedMeasures['anomaly'] {
  const spike = w.spike;
  const detected = spike
    ? run.anomalies.find((a) => a.type === spike.type && a.metric === 'failure-rate' && a.seenAt >= spike.start && a.seenAt <= spike.end + CHANGE_GRACE_MS)
    : undefined;
  const list = run.anomalies.map((a) => ({
    type: a.type, metric: a.metric, atMin: Math.round((a.seenAt - w.start) / 6000) / 10, explained: explained(w, a),
    baseline: a.baseline, observed: a.observed,
  }));
  return {
    detectionMs: detected ? detected.seenAt - spike!.start : null,
    spike: spike !== null,
    falseAlarms: list.filter((a) => !a.explained).length,
    hours: run.simulatedMs / 3_600_000,
    total: list.length,
    list,
  };
}

/** The measures of one seed: the static run against the advisor run. */
export function measureSeed(w: Workload, off: RunRecord, on: RunRecord, offAgain?: RunRecord): SeedMeasures {
  const ws = wastedAttempts(off);
  const wa = wastedAttempts(on);
  const half = w.start + w.options.durationMs / 2;
  const late = w.arrivals.findIndex((a) => a.at >= half);
  const wsLate = late < 0 ? 0 : wastedAttempts(off, late);
  const waLate = late < 0 ? 0 : wastedAttempts(on, late);
  const lost = lostSuccesses(off, on);
  const lostBy = new Map<string, number>();
  for (const i of lost) {
    const j = on.jobs[i]!;
    const key = `${j.type}: ${j.stoppedOn ? `stopped on \`${j.stoppedOn}\`` : 'retries used up'}`;
    lostBy.set(key, (lostBy.get(key) ?? 0) + 1);
  }
  const cs = recoveryStats(off);
  const ca = recoveryStats(on);
  const count = (r: RunRecord, s: 'dead') => r.jobs.filter((j) => j.state === s).length;
  return {
    seed: w.seed,
    jobs: w.arrivals.length,
    wasted: { static: ws, advisor: wa, reduction: ws === 0 ? null : 1 - wa / ws },
    wastedLate: { static: wsLate, advisor: waLate, reduction: wsLate === 0 ? null : 1 - waLate / wsLate },
    dead: { static: count(off, 'dead'), advisor: count(on, 'dead') },
    lostSuccesses: lost.length,
    gainedSuccesses: lostSuccesses(on, off).length,
    lostBy,
    lostStoppedByAdvisor: lost.filter((i) => on.jobs[i]!.advisorStops > 0).length,
    crash: { static: cs, advisor: ca, speedup: cs.meanMs !== null && ca.meanMs ? cs.meanMs / ca.meanMs : null },
    falseExpiry: { static: falseExpiries(off), advisor: falseExpiries(on) },
    eta: { submit: etaStats(on, 'submit'), live: etaStats(on, 'live'), nullAnswers: on.etaNull },
    anomaly: anomalyMeasures(w, on),
    decisions: on.decisions,
    realMs: { static: off.realMs, advisor: on.realMs },
    writes: { static: off.writes, advisor: on.writes },
    unfinished: { static: off.unfinished, advisor: on.unfinished },
    ...(offAgain ? { noise: { lost: lostSuccesses(off, offAgain).length, gained: lostSuccesses(offAgain, off).length } } : {}),
  };
}

// ------------------------------------------------------------------ over seeds

/** One row of the table: a measure over seeds, static and advisor, against its goal. */
export interface GoalRow {
  goal: string;
  /** How the figure reads (unit). */
  unit: string;
  staticMean: number | null;
  staticWorst: number | null;
  advisorMean: number | null;
  advisorWorst: number | null;
  /** The figure the goal is judged on (its mean over seeds, or pooled), and on the worst seed. */
  judged: number | null;
  judgedWorst: number | null;
  target: string;
  met: boolean;
  metEverySeed: boolean;
  note: string;
}

/**
 * The worst seed's figure. A null is a seed without data (no crash
 * interrupted an attempt), skipped; with `nullIsMissed` it is a miss (a spike
 * not detected), the worst there is.
 */
const worstOf = (values: ReadonlyArray<number | null>, higherIsWorse: boolean, nullIsMissed = false): number | null => {
  if (nullIsMissed && values.some((x) => x === null)) return higherIsWorse ? Infinity : -Infinity;
  const v = values.filter((x): x is number => x !== null && !Number.isNaN(x));
  if (v.length === 0) return null;
  return higherIsWorse ? Math.max(...v) : Math.min(...v);
};
const meanOf = (values: ReadonlyArray<number | null>): number | null => mean(values.filter((x): x is number => x !== null && Number.isFinite(x)));

/** The goal table over seeds. */
export function summarize(seeds: readonly SeedMeasures[]): GoalRow[] {
  const rows: GoalRow[] = [];
  const atLeast = (x: number | null, t: number) => x !== null && x >= t;
  const atMost = (x: number | null, t: number) => x !== null && x <= t;

  {
    const reductions = seeds.map((s) => s.wasted.reduction);
    const judged = meanOf(reductions);
    const worst = worstOf(reductions, false);
    rows.push({
      goal: 'Wasted attempts (attempts on jobs that end dead)', unit: 'attempts per seed',
      staticMean: meanOf(seeds.map((s) => s.wasted.static)), staticWorst: worstOf(seeds.map((s) => s.wasted.static), true),
      advisorMean: meanOf(seeds.map((s) => s.wasted.advisor)), advisorWorst: worstOf(seeds.map((s) => s.wasted.advisor), true),
      judged, judgedWorst: worst, target: `≥ ${pct(GOALS.wastedReduction)} fewer`,
      met: atLeast(judged, GOALS.wastedReduction), metEverySeed: atLeast(worst, GOALS.wastedReduction),
      note: 'judged: reduction 1 − advisor/static (mean of seeds; worst = smallest)',
    });
    const late = seeds.map((s) => s.wastedLate.reduction);
    rows.push({
      goal: '… of jobs submitted in the second half of the arrivals (learned)', unit: 'attempts per seed',
      staticMean: meanOf(seeds.map((s) => s.wastedLate.static)), staticWorst: worstOf(seeds.map((s) => s.wastedLate.static), true),
      advisorMean: meanOf(seeds.map((s) => s.wastedLate.advisor)), advisorWorst: worstOf(seeds.map((s) => s.wastedLate.advisor), true),
      judged: meanOf(late), judgedWorst: worstOf(late, false), target: `≥ ${pct(GOALS.wastedReduction)} fewer`,
      met: atLeast(meanOf(late), GOALS.wastedReduction), metEverySeed: atLeast(worstOf(late, false), GOALS.wastedReduction),
      note: 'informative: the first half holds the learning',
    });
  }
  {
    const lost = seeds.map((s) => s.lostSuccesses);
    rows.push({
      goal: 'Lost successes (done under static, dead under the advisor)', unit: 'jobs per seed',
      staticMean: 0, staticWorst: 0, advisorMean: meanOf(lost), advisorWorst: worstOf(lost, true),
      judged: meanOf(lost), judgedWorst: worstOf(lost, true), target: `${GOALS.lostSuccesses}`,
      met: lost.every((n) => n <= GOALS.lostSuccesses), metEverySeed: lost.every((n) => n <= GOALS.lostSuccesses),
      note: `met only if no seed loses one; the reverse (dead under static, done under the advisor): ${round(meanOf(seeds.map((s) => s.gainedSuccesses)) ?? 0)} per seed`
        + (seeds.every((s) => s.noise) ? `; two static runs differing only in jitter draws: ${round(meanOf(seeds.map((s) => s.noise!.lost)) ?? 0)} per seed` : ''),
    });
    const stopped = seeds.map((s) => s.lostStoppedByAdvisor);
    rows.push({
      goal: '… of them ended by the advisor (its no-retry on a job static completed)', unit: 'jobs per seed',
      staticMean: 0, staticWorst: 0, advisorMean: meanOf(stopped), advisorWorst: worstOf(stopped, true),
      judged: meanOf(stopped), judgedWorst: worstOf(stopped, true), target: `${GOALS.lostSuccesses}`,
      met: stopped.every((n) => n <= GOALS.lostSuccesses), metEverySeed: stopped.every((n) => n <= GOALS.lostSuccesses),
      note: 'its no-retry; any other lost success died with its retries used up, after delays or leases the advisor chose (each job\'s backoff jitter is the same in both runs)',
    });
  }
  {
    const speedups = seeds.map((s) => s.crash.speedup);
    const pooled = (k: 'static' | 'advisor') => {
      const n = seeds.reduce((a, s) => a + s.crash[k].n, 0);
      return n === 0 ? null : seeds.reduce((a, s) => a + (s.crash[k].meanMs ?? 0) * s.crash[k].n, 0) / n;
    };
    const ps = pooled('static');
    const pa = pooled('advisor');
    const judged = ps !== null && pa ? ps / pa : null;
    const worst = worstOf(speedups, false);
    rows.push({
      goal: 'Crash recovery (crash → LEASE_EXPIRED of each attempt it interrupted)', unit: 'mean seconds',
      staticMean: sec(ps), staticWorst: sec(worstOf(seeds.map((s) => s.crash.static.meanMs), true)),
      advisorMean: sec(pa), advisorWorst: sec(worstOf(seeds.map((s) => s.crash.advisor.meanMs), true)),
      judged, judgedWorst: worst, target: `≥ ${GOALS.crashSpeedup}× sooner`,
      met: atLeast(judged, GOALS.crashSpeedup), metEverySeed: atLeast(worst, GOALS.crashSpeedup),
      note: 'judged: pooled over every interrupted attempt of every seed, static mean / advisor mean; worst = the smallest seed ratio',
    });
  }
  {
    const rates = seeds.map((s) => s.falseExpiry.advisor.rate);
    const judged = meanOf(rates);
    const worst = worstOf(rates, true);
    rows.push({
      goal: 'False lease expiries (LEASE_EXPIRED, worker did not crash)', unit: '% of attempts',
      staticMean: pctNum(meanOf(seeds.map((s) => s.falseExpiry.static.rate))), staticWorst: pctNum(worstOf(seeds.map((s) => s.falseExpiry.static.rate), true)),
      advisorMean: pctNum(judged), advisorWorst: pctNum(worst),
      judged, judgedWorst: worst, target: `≤ ${GOALS.falseExpiryRate * 100}%`,
      met: atMost(judged, GOALS.falseExpiryRate), metEverySeed: atMost(worst, GOALS.falseExpiryRate),
      note: 'judged: the advisor run',
    });
  }
  {
    const p50s = seeds.map((s) => s.eta.submit.p50);
    const judged = meanOf(p50s);
    const worst = worstOf(p50s, true);
    rows.push({
      goal: 'ETA at submit: p50 of the error (predicted vs actual finish, over the time to finish)', unit: '%',
      staticMean: null, staticWorst: null, advisorMean: pctNum(judged), advisorWorst: pctNum(worst),
      judged, judgedWorst: worst, target: `≤ ${pct(GOALS.etaP50Error)}`,
      met: atMost(judged, GOALS.etaP50Error), metEverySeed: atMost(worst, GOALS.etaP50Error),
      note: 'no ETA without the advisor',
    });
    const live = seeds.map((s) => s.eta.live.p50);
    rows.push({
      goal: 'ETA of live jobs sampled every minute (same error)', unit: '%',
      staticMean: null, staticWorst: null, advisorMean: pctNum(meanOf(live)), advisorWorst: pctNum(worstOf(live, true)),
      judged: meanOf(live), judgedWorst: worstOf(live, true), target: `≤ ${pct(GOALS.etaP50Error)}`,
      met: atMost(meanOf(live), GOALS.etaP50Error), metEverySeed: atMost(worstOf(live, true), GOALS.etaP50Error),
      note: 'pending, published, running and retrying jobs',
    });
  }
  {
    const withSpike = seeds.filter((s) => s.anomaly.spike);
    const delays = withSpike.map((s) => s.anomaly.detectionMs);
    const judged = meanOf(delays);
    const worst = worstOf(delays, true, true);
    rows.push({
      goal: 'Failure-rate spike (2% → 30%) detection delay', unit: 'seconds',
      staticMean: null, staticWorst: null, advisorMean: sec(judged), advisorWorst: sec(worst),
      judged, judgedWorst: worst, target: `≤ ${GOALS.detectionMs / 1000} s`,
      met: withSpike.length > 0 && !delays.includes(null) && atMost(judged, GOALS.detectionMs), metEverySeed: withSpike.length > 0 && atMost(worst, GOALS.detectionMs),
      note: 'a missed spike counts as ∞ (and the mean then misses too)',
    });
  }
  {
    const falseAlarms = seeds.reduce((n, s) => n + s.anomaly.falseAlarms, 0);
    const hours = seeds.reduce((n, s) => n + s.anomaly.hours, 0);
    const pooled = hours === 0 ? null : (falseAlarms / hours) * 24;
    const perSeed = seeds.map((s) => (s.anomaly.hours === 0 ? 0 : (s.anomaly.falseAlarms / s.anomaly.hours) * 24));
    rows.push({
      goal: 'False alarms (anomalies no outage or spike explains)', unit: 'per simulated day',
      staticMean: null, staticWorst: null, advisorMean: pooled, advisorWorst: worstOf(perSeed, true),
      judged: pooled, judgedWorst: worstOf(perSeed, true), target: `≤ ${GOALS.falseAlarmsPerDay}`,
      met: atMost(pooled, GOALS.falseAlarmsPerDay), metEverySeed: atMost(worstOf(perSeed, true), GOALS.falseAlarmsPerDay),
      note: `judged: pooled over ${round(hours / 24, 2)} simulated days (${falseAlarms} false alarms); worst = one seed's rate per day`,
    });
  }
  return rows;
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}
function pctNum(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? x : x * 100;
}
function sec(ms: number | null): number | null {
  return ms === null || !Number.isFinite(ms) ? ms : ms / 1000;
}
export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
