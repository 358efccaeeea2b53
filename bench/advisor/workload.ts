/**
 * The advisor benchmark's workload: a seeded, deterministic generator of
 * hours of job traffic (no Math.random: every draw comes from the seed).
 *
 * What it holds, per seed:
 * - job types with run-time distributions (log-normal; one bimodal), their
 *   own retry policies, and arrivals at a few jobs per second (Poisson, plus
 *   an hourly fan-out burst of reports that queues up);
 * - permanent failures: every attempt of the job throws the same error, with
 *   a stable signature whose message varies by ids
 *   (`ValidationError: order 01HX... not found`);
 * - intermittent failures: each attempt fails with probability p;
 * - dependency outages: while one lasts, every attempt of the affected type
 *   fails (`UpstreamUnavailable: payments api 503 after 1234 ms`); after it,
 *   attempts succeed;
 * - a failure-rate spike at a known time (one type's intermittent rate goes
 *   from 2% to 30%), for the anomaly detector;
 * - worker crashes and worker stalls (a GC pause or a network blip: the
 *   worker's heartbeats, timeouts and handlers freeze for a second or more)
 *   at scheduled times.
 *
 * A job carries its fate in its payload ({@link Fate}): the static and the
 * advisor runs of one seed submit the same jobs with the same fates; what an
 * attempt does depends only on the fate, the attempt number and when it
 * starts ({@link attemptOutcome}), never on which run it is in.
 */
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../../machines/backoff.js';
import { seededRandom } from '../../property-tests/sim-clock.js';

/** A draw in [0, 1). */
export interface Rng {
  next(): number;
}

export type RunDist =
  | { kind: 'lognormal'; medianMs: number; sigma: number }
  | { kind: 'bimodal'; pSlow: number; fast: { medianMs: number; sigma: number }; slow: { medianMs: number; sigma: number } };

/** A failure as a handler throws it: the error's name and message. */
export interface ThrownError {
  name: string;
  message: string;
}

export interface TypeProfile {
  type: string;
  queue: string;
  /** Mean Poisson arrivals per second. */
  ratePerSec: number;
  run: RunDist;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  /** Share of jobs that fail every attempt, and their error (varies by ids, stable signature). */
  permanent?: { rate: number; error(r: Rng): ThrownError };
  /** Chance that an attempt fails (when no spike is on), and the error. */
  intermittent?: { rate: number; error(r: Rng): ThrownError };
  /** Dependency outages: mean gap between them and their length (uniform in [minMs, maxMs]). */
  outages?: { firstAfterMs: number; meanGapMs: number; minMs: number; maxMs: number; error(r: Rng, afterMs: number): ThrownError };
}

/** One job's fate, carried in its payload. */
export interface Fate {
  /** The job's index in the workload (and the order it is submitted in). */
  i: number;
  /** Seeds the per-attempt draws (run time, intermittent failure). */
  seed: number;
  /** Set: every attempt fails with this error. */
  permanent?: ThrownError;
}

export interface Arrival {
  at: number;
  type: string;
  fate: Fate;
}

/** A window during which a type's behaviour changes on purpose (outage, spike): an anomaly then is no false alarm. */
export interface Change {
  kind: 'outage' | 'spike';
  type: string;
  start: number;
  end: number;
}

export interface Spike {
  type: string;
  start: number;
  end: number;
  /** The intermittent failure rate during the spike. */
  rate: number;
}

export interface Crash {
  at: number;
  /** The worker slot (0 or 1) whose process dies; a fresh worker joins it after `restartAfterMs`. */
  slot: number;
  restartAfterMs: number;
}

export interface Stall {
  at: number;
  slot: number;
  ms: number;
}

export interface WorkloadOptions {
  /** Simulated time over which jobs arrive. @defaultValue 3 h */
  durationMs: number;
  /** Multiplies every type's arrival rate. @defaultValue 1 */
  rateScale: number;
  /** Reports submitted at once every hour (a fan-out), 0 for none. @defaultValue 100 */
  burstSize: number;
  /** Mean time between worker crashes (over both workers), 0 for none. @defaultValue 30 min */
  crashEveryMs: number;
  /** No crash before this (the advisor has sized no lease yet). @defaultValue 10 min */
  crashAfterMs: number;
  /** Mean time between stalls of each worker, 0 for none. @defaultValue 15 min */
  stallEveryMs: number;
  /** Stall lengths: log-normal with this median and sigma, capped. @defaultValue 1500 ms, 0.7, 15 s */
  stallMedianMs: number;
  stallSigma: number;
  stallMaxMs: number;
  /** When the failure-rate spike starts, as a fraction of `durationMs`; null for none. @defaultValue 0.55 */
  spikeAt: number | null;
  spikeMs: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = Object.freeze({
  durationMs: 3 * 3_600_000,
  rateScale: 1,
  burstSize: 100,
  crashEveryMs: 30 * 60_000,
  crashAfterMs: 10 * 60_000,
  stallEveryMs: 15 * 60_000,
  stallMedianMs: 1500,
  stallSigma: 0.7,
  stallMaxMs: 15_000,
  spikeAt: 0.55,
  spikeMs: 20 * 60_000,
});

export interface Workload {
  seed: number;
  options: WorkloadOptions;
  /** Epoch ms the simulation starts at (arrivals are absolute times from it). */
  start: number;
  profiles: readonly TypeProfile[];
  arrivals: readonly Arrival[];
  /** Outage windows per type. */
  outages: ReadonlyMap<string, ReadonlyArray<{ start: number; end: number }>>;
  spike: Spike | null;
  crashes: readonly Crash[];
  stalls: readonly Stall[];
  /** Every deliberate change of a type's behaviour (outages, the spike). */
  changes: readonly Change[];
}

/** The failure-rate spike: this type's intermittent rate goes from its 2% to this. */
export const SPIKE_TYPE = 'thumbnail.make';
export const SPIKE_RATE = 0.3;

const HOUR = 3_600_000;
const MIN = 60_000;

// ------------------------------------------------------------------ draws

/** A standard normal draw (Box-Muller). */
export function normal(r: Rng): number {
  const u = Math.max(r.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.next());
}

export function logNormal(r: Rng, medianMs: number, sigma: number): number {
  return medianMs * Math.exp(sigma * normal(r));
}

export function exponential(r: Rng, mean: number): number {
  return -Math.log(1 - r.next()) * mean;
}

export function drawRun(r: Rng, d: RunDist): number {
  if (d.kind === 'lognormal') return Math.max(1, Math.round(logNormal(r, d.medianMs, d.sigma)));
  const m = r.next() < d.pSlow ? d.slow : d.fast;
  return Math.max(1, Math.round(logNormal(r, m.medianMs, m.sigma)));
}

/** A 32-bit mix of two integers (per-attempt seeds from a job's seed). */
export function mix(a: number, b: number): number {
  let h = Math.imul((a >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul((b >>> 0) + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ulidLike = (r: Rng) => `01HX${Array.from({ length: 22 }, () => CROCKFORD[Math.floor(r.next() * 32)]).join('')}`;
const hex = (r: Rng, n: number) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(r.next() * 16)]).join('');
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r.next() * (hi - lo + 1));

// ------------------------------------------------------------------ the job types

/**
 * The job types. Policies are what a user would have typed once: the
 * engine's default backoff (exponential from 1 s, capped at 60 s, full
 * jitter), 3 to 8 attempts, the default 60 s timeout (the ledger's longer).
 */
export const PROFILES: readonly TypeProfile[] = Object.freeze([
  {
    type: 'email.send', queue: 'default', ratePerSec: 1.0,
    run: { kind: 'lognormal', medianMs: 300, sigma: 0.3 },
    maxAttempts: 5, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000,
    intermittent: {
      rate: 0.3,
      error: (r) => ({ name: 'SmtpError', message: `421 4.7.0 smtp-${int(r, 1, 9)}.mail.internal: too many connections from 10.0.${int(r, 0, 255)}.${int(r, 1, 254)}, try again in ${int(r, 1, 30)} s` }),
    },
  },
  {
    type: 'payment.capture', queue: 'default', ratePerSec: 0.5,
    run: { kind: 'lognormal', medianMs: 800, sigma: 0.25 },
    maxAttempts: 8, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000,
    permanent: { rate: 0.04, error: (r) => ({ name: 'ValidationError', message: `order ${ulidLike(r)} not found` }) },
    outages: {
      firstAfterMs: 15 * MIN, meanGapMs: 40 * MIN, minMs: 1 * MIN, maxMs: 6 * MIN,
      error: (_r, afterMs) => ({ name: 'UpstreamUnavailable', message: `payments api 503 after ${afterMs} ms` }),
    },
  },
  {
    type: SPIKE_TYPE, queue: 'default', ratePerSec: 0.8,
    run: { kind: 'lognormal', medianMs: 250, sigma: 0.25 },
    maxAttempts: 5, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000,
    permanent: { rate: 0.015, error: (r) => ({ name: 'DecodeError', message: `image img_${hex(r, 12)} is corrupt (bad huffman table at byte ${int(r, 100, 90_000)})` }) },
    intermittent: { rate: 0.02, error: (r) => ({ name: 'ResizeError', message: `resize pool busy: ${int(r, 8, 64)} in flight, request ${hex(r, 8)} rejected` }) },
  },
  {
    type: 'report.render', queue: 'reports', ratePerSec: 0.2,
    run: { kind: 'bimodal', pSlow: 0.15, fast: { medianMs: 1500, sigma: 0.3 }, slow: { medianMs: 12_000, sigma: 0.25 } },
    maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000,
    permanent: { rate: 0.01, error: (r) => ({ name: 'TemplateError', message: `template "invoice-v${int(r, 1, 40)}" has no variable "${hex(r, 6)}"` }) },
  },
  {
    type: 'ledger.sync', queue: 'default', ratePerSec: 0.03,
    run: { kind: 'lognormal', medianMs: 25_000, sigma: 0.3 },
    maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 300_000,
  },
] satisfies TypeProfile[]);

export const profileOf = (w: Workload, type: string): TypeProfile => {
  const p = w.profiles.find((x) => x.type === type);
  if (!p) throw new Error(`no profile for job type ${type}`);
  return p;
};

// ------------------------------------------------------------------ generation

/** The workload of one seed. */
export function generate(seed: number, options: Partial<WorkloadOptions> = {}, start = Date.UTC(2030, 0, 1)): Workload {
  const o: WorkloadOptions = { ...DEFAULT_WORKLOAD, ...options };
  // One stream per concern: changing one (say, crash times) leaves the others as they were.
  const streams = (k: number) => seededRandom(mix(seed, k));
  const arrivalsRng = streams(1);
  const fatesRng = streams(2);
  const outagesRng = streams(3);
  const faultsRng = streams(4);

  const raw: Array<{ at: number; type: string }> = [];
  for (const p of PROFILES) {
    const rate = p.ratePerSec * o.rateScale;
    if (rate <= 0) continue;
    for (let t = exponential(arrivalsRng, 1000 / rate); t < o.durationMs; t += exponential(arrivalsRng, 1000 / rate)) {
      raw.push({ at: start + Math.round(t), type: p.type });
    }
  }
  if (o.burstSize > 0) {
    for (let t = 30 * MIN; t < o.durationMs; t += HOUR) {
      for (let k = 0; k < o.burstSize; k++) raw.push({ at: start + t, type: 'report.render' });
    }
  }
  // Stable order: by time, then by type name (the bursts are submitted together).
  raw.sort((a, b) => a.at - b.at || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  const arrivals: Arrival[] = raw.map((a, i) => {
    const p = PROFILES.find((x) => x.type === a.type)!;
    const fate: Fate = { i, seed: Math.floor(fatesRng.next() * 2 ** 32) };
    if (p.permanent && fatesRng.next() < p.permanent.rate) fate.permanent = p.permanent.error(fatesRng);
    return { at: a.at, type: a.type, fate };
  });

  const outages = new Map<string, Array<{ start: number; end: number }>>();
  const changes: Change[] = [];
  for (const p of PROFILES) {
    if (!p.outages) continue;
    const list: Array<{ start: number; end: number }> = [];
    const { firstAfterMs, meanGapMs, minMs, maxMs } = p.outages;
    for (let t = firstAfterMs + exponential(outagesRng, meanGapMs / 2); t < o.durationMs;) {
      const len = Math.round(minMs + outagesRng.next() * (maxMs - minMs));
      list.push({ start: start + Math.round(t), end: start + Math.round(t) + len });
      changes.push({ kind: 'outage', type: p.type, start: start + Math.round(t), end: start + Math.round(t) + len });
      t += len + exponential(outagesRng, meanGapMs);
    }
    outages.set(p.type, list);
  }

  let spike: Spike | null = null;
  if (o.spikeAt !== null) {
    const s = start + Math.round(o.durationMs * o.spikeAt);
    spike = { type: SPIKE_TYPE, start: s, end: s + o.spikeMs, rate: SPIKE_RATE };
    changes.push({ kind: 'spike', type: SPIKE_TYPE, start: spike.start, end: spike.end });
  }

  const crashes: Crash[] = [];
  if (o.crashEveryMs > 0) {
    for (let t = o.crashAfterMs + exponential(faultsRng, o.crashEveryMs); t < o.durationMs; t += exponential(faultsRng, o.crashEveryMs)) {
      crashes.push({ at: start + Math.round(t), slot: faultsRng.next() < 0.5 ? 0 : 1, restartAfterMs: 5000 });
    }
  }
  const stalls: Stall[] = [];
  if (o.stallEveryMs > 0) {
    for (const slot of [0, 1]) {
      for (let t = exponential(faultsRng, o.stallEveryMs); t < o.durationMs; t += exponential(faultsRng, o.stallEveryMs)) {
        const ms = Math.min(o.stallMaxMs, Math.round(logNormal(faultsRng, o.stallMedianMs, o.stallSigma)));
        stalls.push({ at: start + Math.round(t), slot, ms });
      }
    }
    stalls.sort((a, b) => a.at - b.at || a.slot - b.slot);
  }
  changes.sort((a, b) => a.start - b.start);
  return { seed, options: o, start, profiles: PROFILES, arrivals, outages, spike, crashes, stalls, changes };
}

// ------------------------------------------------------------------ what an attempt does

export interface AttemptOutcome {
  /** How long the handler runs before it returns or throws. */
  runMs: number;
  /** Set: the attempt throws this (retryable: the handler never decides that itself). */
  error?: ThrownError;
  /** Why it fails, for the reports. */
  cause?: 'permanent' | 'outage' | 'intermittent';
}

/** The outage of `type` in progress at `at`, if any. */
export function outageAt(w: Workload, type: string, at: number): { start: number; end: number } | null {
  for (const o of w.outages.get(type) ?? []) if (at >= o.start && at < o.end) return o;
  return null;
}

/** The intermittent failure rate of a type at a time (the spike raises it). */
export function intermittentRate(w: Workload, p: TypeProfile, at: number): number {
  if (w.spike && w.spike.type === p.type && at >= w.spike.start && at < w.spike.end) return w.spike.rate;
  return p.intermittent?.rate ?? 0;
}

/**
 * What attempt `attempt` of the job does when it starts at `at`: a pure
 * function of the fate, the attempt number and the time.
 */
export function attemptOutcome(w: Workload, type: string, fate: Fate, attempt: number, at: number): AttemptOutcome {
  const p = profileOf(w, type);
  const r = seededRandom(mix(fate.seed, attempt));
  const runMs = drawRun(r, p.run);
  if (fate.permanent) return { runMs: Math.max(1, Math.round(runMs * 0.3)), error: fate.permanent, cause: 'permanent' };
  if (p.outages && outageAt(w, type, at)) {
    const afterMs = Math.max(5, Math.round(logNormal(r, 800, 0.5)));
    return { runMs: afterMs, error: p.outages.error(r, afterMs), cause: 'outage' };
  }
  const u = r.next();
  if (p.intermittent && u < intermittentRate(w, p, at)) {
    return { runMs: Math.max(1, Math.round(runMs * (0.2 + 0.8 * r.next()))), error: p.intermittent.error(r), cause: 'intermittent' };
  }
  return { runMs };
}
