/**
 * Change detectors for one (job type, queue) pair, fed the pair's ended
 * attempts one at a time. Pure: no clock, no randomness.
 *
 * Both are one-sided Bernoulli CUSUMs (they alarm on a rise; a fall is good
 * news, and the baseline follows it) against a baseline fraction learned by a
 * slow EWMA:
 *
 * - `FailureRateDetector`: the fraction of attempts ending failed.
 * - `DurationDetector`: the fraction of timed attempts longer than a
 *   threshold fixed at the end of its warm-up (the warm-up's p75 run time,
 *   plus `MIN_DURATION_RISE_MS`: a type of a few ms whose runs take a few ms
 *   more, a GC pause or a busier machine, is no anomaly worth an insight).
 *   Counting exceedances instead of averaging run times makes it blind to the
 *   shape of the distribution (heavy tails, several modes, whole ms): under a
 *   steady workload the exceedance fraction is a steady Bernoulli rate, so
 *   the false alarm rate is the same as the failure-rate detector's.
 *
 * The CUSUM tests the baseline p0 against p1 = p0 + max(0.05, min(p0,
 * (1 - p0) / 2)) (2% → 7%, 25% → 50%, 60% → 80%), where p0 is the EWMA
 * fraction raised by one standard error of its own estimate (and floored at
 * 0.5%, capped at 90%), so a baseline learned from little data errs
 * insensitive; no change starts from one of 90% or more (a type failing at a
 * steady 95% or 100% has no rise to tell), while one that began below it is
 * still told as the baseline learns the rise past 90%. Each
 * detector learns over `WARMUP` attempts before it may alarm (its EWMA is a
 * plain mean until it has `1 / ALPHA` points), and re-learns from scratch
 * after an alarm: one sustained change is one anomaly, and the changed level
 * becomes the new baseline.
 *
 * Calibrated by simulation (seeded streams of 6 million attempts each): with
 * `H = 13`, no false alarm at steady failure rates of 0, 0.1, 2, 10, 30 and
 * 60%, and one or two per 6 million for run times (log-normal, exponential,
 * Pareto, bimodal, constant, whole-ms), i.e. far under one a day at a few
 * attempts a second (H = 10 gave one per ~300k attempts at 30%). Detection
 * delay: 2% → 30% failures in 48 attempts (p95 79, so within a minute at
 * 2 attempts/s); 10% → 30% in 106 (p95 195); 0 → 5% in 162; a doubling of
 * log-normal run times (sd 0.5) in 29 (p95 43). A small rise (2% → 7%) is
 * absorbed by the baseline before it can be told from noise.
 */

/** Attempts learned from (after a start or an alarm) before a detector may alarm. */
export const WARMUP = 100;
/** The baseline EWMA's weight of a new attempt (it averages about the last 2,000 attempts). */
export const ALPHA = 1 / 1000;
/** The CUSUM threshold: the log-likelihood ratio of "p1 since the change" over "p0" that raises an alarm. */
export const H = 13;
/** p0 is never taken below this (a type that never fails still needs several failures close together to alarm). */
export const MIN_RATE = 0.005;
/** A baseline (raised by its standard error) of this or more is not tested: no rise of it could be told from noise. */
export const MAX_RATE = 0.9;
/** The run-time threshold is this quantile of the warm-up's run times ... */
export const DURATION_QUANTILE = 0.75;
/** ... plus this many ms: a run that is longer by less is not counted as long, however short the type's runs. */
export const MIN_DURATION_RISE_MS = 10;

/** A detected rise: the level before, and the level since the change began. */
export interface Change {
  baseline: number;
  observed: number;
}

/**
 * A Bernoulli CUSUM against a slow-EWMA baseline. For the report, `value` is
 * averaged over the change (the points since the CUSUM last left zero), and
 * `before` is taken as it was when the change began.
 */
class BernoulliCusum {
  /** Points learned from since the last reset. */
  n = 0;
  /** The baseline fraction. */
  rate = 0;
  private s = 0;
  private segmentCount = 0;
  private segmentSum = 0;
  private segmentBefore = 0;

  /** One point; when it tipped the CUSUM, the mean `value` since the change began and `before` as it was then. */
  step(hit: boolean, value: number, before: number): Change | null {
    if (this.n >= WARMUP) {
      const p = this.rate;
      const effective = Math.min(this.n, (2 - ALPHA) / ALPHA);
      const raised = p + Math.sqrt((p * (1 - p)) / effective);
      const p0 = Math.min(MAX_RATE, Math.max(MIN_RATE, raised));
      const p1 = p0 + Math.max(0.05, Math.min(p0, (1 - p0) / 2));
      // A baseline this high has no rise to tell (testing it against a lower p0 alarms at a steady 95% or 100%): no change
      // starts from it. One that began below goes on as the baseline learns it (an 88% baseline passes 90% within some 100
      // attempts of a rise to 100%, before the CUSUM can tip).
      this.s = raised >= MAX_RATE && this.s === 0 ? 0 : Math.max(0, this.s + (hit ? Math.log(p1 / p0) : Math.log((1 - p1) / (1 - p0))));
      if (this.s === 0) {
        this.segmentCount = 0;
        this.segmentSum = 0;
      } else {
        if (this.segmentCount === 0) this.segmentBefore = before;
        this.segmentCount += 1;
        this.segmentSum += value;
        if (this.s > H) return { baseline: this.segmentBefore, observed: this.segmentSum / this.segmentCount };
      }
    }
    this.n += 1;
    this.rate += Math.max(1 / this.n, ALPHA) * ((hit ? 1 : 0) - this.rate);
    return null;
  }
}

export class FailureRateDetector {
  private cusum = new BernoulliCusum();

  /** One ended attempt; the change (failure fractions before and since) when this one tipped the detector. */
  observe(failed: boolean): Change | null {
    const change = this.cusum.step(failed, failed ? 1 : 0, this.cusum.rate);
    if (change) this.cusum = new BernoulliCusum();
    return change;
  }
}

export class DurationDetector {
  private cusum = new BernoulliCusum();
  /** The warm-up's run times (until the threshold is fixed). */
  private warmup: number[] = [];
  private threshold = Infinity;
  /** The EWMA of log run time, for the report. */
  private logMean = 0;
  private n = 0;

  /** One timed attempt (ms); the change (geometric-mean ms before and since) when this one tipped the detector. */
  observe(ms: number): Change | null {
    const y = Math.log1p(Math.max(0, ms));
    if (this.warmup.length < WARMUP) {
      this.warmup.push(ms);
      if (this.warmup.length === WARMUP) {
        const sorted = this.warmup.sort((a, b) => a - b);
        this.threshold = sorted[Math.floor(DURATION_QUANTILE * (WARMUP - 1))] + MIN_DURATION_RISE_MS;
        // The exceedance fraction starts from the warm-up's own.
        for (const x of sorted) this.cusum.step(x > this.threshold, 0, 0);
      }
    } else {
      const change = this.cusum.step(ms > this.threshold, y, this.logMean);
      if (change) {
        this.reset();
        return { baseline: Math.expm1(change.baseline), observed: Math.expm1(change.observed) };
      }
    }
    this.n += 1;
    this.logMean += Math.max(1 / this.n, ALPHA) * (y - this.logMean);
    return null;
  }

  private reset(): void {
    this.cusum = new BernoulliCusum();
    this.warmup = [];
    this.threshold = Infinity;
    this.logMean = 0;
    this.n = 0;
  }
}
