/**
 * The advisor benchmark's report: the goal table over seeds, the per-seed
 * figures and the breakdowns behind them, as markdown (bench/ADVISOR.md)
 * and as the text `npm run bench:advisor` prints.
 */
import { seededRandom } from '../../property-tests/sim-clock.js';
import { CHANGE_GRACE_MS, GOALS, quantile, round, summarize, type GoalRow, type SeedMeasures } from './goals.js';
import { ENGINE, type RunRecord } from './simulate.js';
import { PROFILES, SPIKE_RATE, SPIKE_TYPE, type RunDist, type TypeProfile, type WorkloadOptions } from './workload.js';

export interface ReportInput {
  command: string;
  seeds: number[];
  workload: WorkloadOptions;
  model: Record<string, unknown> | null;
  measures: SeedMeasures[];
  /** One advisor run (the first seed's), for what the advisor learned. */
  sample: RunRecord | null;
  /** Wall-clock time of the whole benchmark, and runs at once. */
  totalMs: number;
  parallel: number;
  /** The machine, in a line. */
  machine: string;
  date: string;
  /** A hash of engine/advisor's advisor.ts, model.ts, anomaly.ts and signature.ts. */
  version: string;
}

const HOUR = 3_600_000;
const avgOf = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

export function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (x === Infinity) return '∞ (missed)';
  if (x === -Infinity) return '—';
  const r = round(x, digits);
  return Math.abs(r) >= 10_000 ? r.toLocaleString('en-US') : String(r);
}

const yes = (b: boolean) => (b ? '**met**' : 'missed');

function judgedText(row: GoalRow, which: 'judged' | 'judgedWorst'): string {
  const v = row[which];
  if (row.target.includes('%') && !row.target.includes('fewer')) return `${fmt(v === null ? null : v * 100, 2)}%`;
  if (row.target.includes('fewer')) return v === null || !Number.isFinite(v) ? fmt(v) : `${fmt(v * 100)}% fewer`;
  if (row.target.includes('×')) return v === null || !Number.isFinite(v) ? fmt(v) : `${fmt(v, 2)}×`;
  if (row.target.includes(' s')) return v === null || !Number.isFinite(v) ? fmt(v) : `${fmt(v / 1000)} s`;
  return fmt(v, 2);
}

export function goalTable(rows: readonly GoalRow[]): string {
  const lines = [
    '| goal | target | static: mean / worst seed | advisor: mean / worst seed | judged: mean / worst seed | met (mean) | met (every seed) |',
    '|---|---|--:|--:|--:|:-:|:-:|',
  ];
  for (const r of rows) {
    const s = r.staticMean === null ? 'n/a' : `${fmt(r.staticMean, 2)} / ${fmt(r.staticWorst, 2)}`;
    const a = `${fmt(r.advisorMean, 2)} / ${fmt(r.advisorWorst, 2)}`;
    lines.push(`| ${r.goal} (${r.unit}) | ${r.target} | ${s} | ${a} | ${judgedText(r, 'judged')} / ${judgedText(r, 'judgedWorst')} | ${yes(r.met)} | ${yes(r.metEverySeed)} |`);
  }
  return lines.join('\n');
}

export function seedTable(measures: readonly SeedMeasures[]): string {
  const lines = [
    '| seed | jobs | wasted static → advisor | fewer | dead static → advisor | lost / gained successes | crash → expiry, s: static → advisor (n) | false expiries static / advisor | ETA p50 at submit | spike detected after | false alarms | wall s: static / advisor |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const m of measures) {
    lines.push([
      '', m.seed, m.jobs,
      `${m.wasted.static} → ${m.wasted.advisor}`,
      m.wasted.reduction === null ? '—' : `${fmt(m.wasted.reduction * 100)}%`,
      `${m.dead.static} → ${m.dead.advisor}`,
      `${m.lostSuccesses} / ${m.gainedSuccesses}`,
      `${fmt(ms(m.crash.static.meanMs))} → ${fmt(ms(m.crash.advisor.meanMs))} (${m.crash.static.n}/${m.crash.advisor.n})`,
      `${m.falseExpiry.static.n} / ${m.falseExpiry.advisor.n}`,
      m.eta.submit.p50 === null ? '—' : `${fmt(m.eta.submit.p50 * 100)}%`,
      m.anomaly.detectionMs === null ? (m.anomaly.spike ? 'missed' : '—') : `${fmt(m.anomaly.detectionMs / 1000)} s`,
      m.anomaly.falseAlarms,
      `${fmt(m.realMs.static / 1000)} / ${fmt(m.realMs.advisor / 1000)}`,
      '',
    ].join(' | ').trim());
  }
  return lines.join('\n');
}

const ms = (x: number | null) => (x === null ? null : x / 1000);

function describeRun(d: RunDist): string {
  const t = (x: number) => (x >= 1000 ? `${round(x / 1000, 1)} s` : `${x} ms`);
  if (d.kind === 'lognormal') return `log-normal, median ${t(d.medianMs)}, σ ${d.sigma}`;
  return `bimodal: ${round((1 - d.pSlow) * 100)}% median ${t(d.fast.medianMs)} (σ ${d.fast.sigma}), ${round(d.pSlow * 100)}% median ${t(d.slow.medianMs)} (σ ${d.slow.sigma})`;
}

function describeFailures(p: TypeProfile): string {
  const r = seededRandom(7);
  const parts: string[] = [];
  if (p.permanent) {
    const e = p.permanent.error(r);
    parts.push(`permanent ${round(p.permanent.rate * 100, 1)}% of jobs (\`${e.name}: ${e.message}\`)`);
  }
  if (p.intermittent) {
    const e = p.intermittent.error(r);
    const spike = p.type === SPIKE_TYPE ? `, ${round(SPIKE_RATE * 100)}% during the spike` : '';
    parts.push(`intermittent ${round(p.intermittent.rate * 100, 1)}% of attempts${spike} (\`${e.name}: ${e.message}\`)`);
  }
  if (p.outages) {
    const e = p.outages.error(r, 1234);
    parts.push(`outages every ~${round(p.outages.meanGapMs / 60_000)} min (first after ${round(p.outages.firstAfterMs / 60_000)} min), ${round(p.outages.minMs / 60_000)}–${round(p.outages.maxMs / 60_000)} min long: every attempt then fails (\`${e.name}: ${e.message}\`)`);
  }
  return parts.join('; ') || 'none';
}

export function workloadTable(o: WorkloadOptions): string {
  const lines = [
    '| type | queue | arrivals | run time | attempts, backoff | failures |',
    '|---|---|--:|---|---|---|',
  ];
  for (const p of PROFILES) {
    const b = p.backoff.kind === 'exponential' ? `exp. ${p.backoff.baseMs / 1000} s → ${p.backoff.maxMs / 1000} s, ${p.backoff.jitter} jitter` : `fixed ${p.backoff.delayMs} ms`;
    const burst = p.type === 'report.render' && o.burstSize > 0 ? ` + ${o.burstSize} at once every hour` : '';
    lines.push(`| ${p.type} | ${p.queue} | ${round(p.ratePerSec * o.rateScale, 2)}/s${burst} | ${describeRun(p.run)} | ${p.maxAttempts}, ${b} | ${describeFailures(p)} |`);
  }
  return lines.join('\n');
}

/** Pooled over seeds: crash recovery per job type. */
function crashByType(measures: readonly SeedMeasures[]): string {
  type Acc = { n: number; sum: number; restarts: number; restartSum: number };
  const pool = new Map<string, { s: Acc; a: Acc }>();
  const of = (t: string) => pool.get(t) ?? pool.set(t, { s: empty(), a: empty() }).get(t)!;
  const empty = (): Acc => ({ n: 0, sum: 0, restarts: 0, restartSum: 0 });
  type ByType = SeedMeasures['crash']['static']['byType'];
  const add = (acc: Acc, v: ByType extends Map<string, infer V> ? V : never) => {
    acc.n += v.n;
    acc.sum += v.meanMs * v.n;
    acc.restarts += v.restarts;
    acc.restartSum += v.restartMeanMs * v.restarts;
  };
  for (const m of measures) {
    for (const [t, v] of m.crash.static.byType) add(of(t).s, v);
    for (const [t, v] of m.crash.advisor.byType) add(of(t).a, v);
  }
  const lines = [
    '| type | attempts interrupted: static / advisor | crash → LEASE_EXPIRED, mean s: static / advisor | sooner | crash → next start, mean s: static / advisor |',
    '|---|--:|--:|--:|--:|',
  ];
  const avg = (sum: number, n: number) => (n ? sum / n : null);
  for (const [t, { s, a }] of [...pool].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
    const sm = avg(s.sum, s.n);
    const am = avg(a.sum, a.n);
    lines.push(`| ${t} | ${s.n} / ${a.n} | ${fmt(ms(sm))} / ${fmt(ms(am))} | ${sm && am ? `${fmt(sm / am, 2)}×` : '—'} | ${fmt(ms(avg(s.restartSum, s.restarts)))} / ${fmt(ms(avg(a.restartSum, a.restarts)))} |`);
  }
  return lines.join('\n');
}

function etaByType(measures: readonly SeedMeasures[]): string {
  const types = new Set<string>();
  for (const m of measures) for (const t of m.eta.submit.byType.keys()) types.add(t);
  const lines = ['| type | samples at submit | p50 error at submit (mean of seeds) | samples live | p50 error live (mean of seeds) |', '|---|--:|--:|--:|--:|'];
  for (const t of [...types].sort()) {
    const sub = measures.map((m) => m.eta.submit.byType.get(t)).filter((x) => x !== undefined);
    const live = measures.map((m) => m.eta.live.byType.get(t)).filter((x) => x !== undefined);
    const avg = (xs: Array<{ p50: number }>) => (xs.length ? xs.reduce((p, q) => p + q.p50, 0) / xs.length : null);
    const n = (xs: Array<{ n: number }>) => xs.reduce((p, q) => p + q.n, 0);
    const a = avg(sub);
    const b = avg(live);
    lines.push(`| ${t} | ${n(sub)} | ${a === null ? '—' : `${fmt(a * 100)}%`} | ${n(live)} | ${b === null ? '—' : `${fmt(b * 100)}%`} |`);
  }
  return lines.join('\n');
}

/** Mean over seeds of a share of the ETA predictions at submit, with the lowest and highest seed's. */
function sharePct(measures: readonly SeedMeasures[], field: 'within20' | 'hindsightWithin20'): string {
  const xs = measures.map((m) => m.eta.submit[field]).filter((x): x is number => typeof x === 'number');
  if (xs.length === 0) return 'none';
  return `${fmt((xs.reduce((a, b) => a + b, 0) / xs.length) * 100)}% (seeds ${fmt(Math.min(...xs) * 100)}% to ${fmt(Math.max(...xs) * 100)}%)`;
}

/** What the hindsight share says about the ±20% goal: whether one time per type could reach half. */
function hindsightVerdict(measures: readonly SeedMeasures[]): string {
  const xs = measures.map((m) => m.eta.submit.hindsightWithin20).filter((x): x is number => typeof x === 'number');
  if (xs.length === 0) return '';
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean < 0.5
    ? ": how much a type's time to finish varies on this workload leaves no such ETA at half, even chosen after the fact"
    : ': such an ETA could reach half, so a better predictor would meet the goal';
}

/** Mean over seeds of the p50 ETA error at submit of one group, with its samples. */
function etaSplit(measures: readonly SeedMeasures[], group: 'firstTry' | 'retried'): string {
  const p50s = measures.map((m) => m.eta.submit[group]?.p50).filter((x): x is number => typeof x === 'number');
  const n = measures.reduce((a, m) => a + (m.eta.submit[group]?.n ?? 0), 0);
  return p50s.length ? `p50 ${fmt((p50s.reduce((a, b) => a + b, 0) / p50s.length) * 100)}% over ${n} jobs` : 'none';
}

function anomalyList(measures: readonly SeedMeasures[]): string {
  const groups = new Map<string, { n: number; explained: number; at: number[] }>();
  for (const m of measures) {
    for (const a of m.anomaly.list) {
      const key = `${a.type} | ${a.metric}`;
      const g = groups.get(key) ?? { n: 0, explained: 0, at: [] };
      g.n++;
      if (a.explained) g.explained++;
      else g.at.push(a.atMin);
      groups.set(key, g);
    }
  }
  const lines = ['| type | metric | anomalies | explained by an outage or the spike | false alarms (minute of the run) |', '|---|---|--:|--:|---|'];
  for (const [key, g] of [...groups].sort()) {
    const at = g.at.sort((x, y) => x - y);
    lines.push(`| ${key} | ${g.n} | ${g.explained} | ${g.n - g.explained}${at.length ? ` (${at.slice(0, 12).join(', ')}${at.length > 12 ? ', …' : ''})` : ''} |`);
  }
  return lines.join('\n');
}

function lostList(measures: readonly SeedMeasures[]): string {
  const pool = new Map<string, number>();
  for (const m of measures) for (const [k, v] of m.lostBy) pool.set(k, (pool.get(k) ?? 0) + v);
  const entries = [...pool].sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return 'None: no job the static policy completed ended dead under the advisor.';
  return ['| job type: why it died under the advisor | jobs (all seeds) |', '|---|--:|', ...entries.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

function insightsOf(run: RunRecord | null): string {
  if (!run?.insights) return '(no advisor run)';
  const lines: string[] = [];
  for (const t of run.insights.types) {
    const rt = t.runMs ? `run time p50 ${fmt(t.runMs.p50 / 1000, 2)} s, p99 ${fmt(t.runMs.p99 / 1000, 2)} s over ${t.runMs.count} attempts` : 'no run times';
    const lease = t.lease ? `lease ${t.lease.leaseMs} ms, heartbeat ${t.lease.heartbeatMs} ms` : 'static lease';
    lines.push(`- **${t.type}** (${t.queue}): ${rt}; ${lease}.`);
    for (const c of t.changes) lines.push(`  - changes: ${c}`);
    for (const s of t.signatures) {
      const rec = s.recoveryMs ? `, recovery p50 ${fmt(s.recoveryMs.p50 / 1000, 2)} s / p90 ${fmt(s.recoveryMs.p90 / 1000, 2)} s (${s.recoveryMs.count})` : '';
      lines.push(`  - \`${s.signature}\`: ${s.failures} failures; retries recovered ${s.recovered}, failed again ${s.hopeless} (decayed counts); P(recover) ${fmt(s.pRecover, 3)}; **${s.verdict}**${rec}`);
    }
  }
  return lines.join('\n');
}

function decisionsLine(measures: readonly SeedMeasures[]): string {
  const sum = { 'no-retry': 0, 'retry-delay': 0, lease: 0 };
  for (const m of measures) for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += m.decisions[k].applied;
  const n = measures.length || 1;
  return `Per seed on average the advisor stopped ${fmt(sum['no-retry'] / n, 0)} retries, chose ${fmt(sum['retry-delay'] / n, 0)} retry delays and sized ${fmt(sum.lease / n, 0)} leases.`;
}

/** bench/ADVISOR.md. */
export function renderMarkdown(input: ReportInput): string {
  const { measures, workload: o } = input;
  const rows = summarize(measures);
  const hours = o.durationMs / HOUR;
  const etaNulls = measures.reduce((n, m) => n + m.eta.nullAnswers, 0);
  const etaSamples = measures.reduce((n, m) => n + m.eta.submit.n, 0);
  const attempts = measures.reduce((n, m) => n + m.falseExpiry.advisor.attempts, 0);
  const p50s = measures.map((m) => m.eta.submit.p50).filter((x): x is number => x !== null);
  return `# The advisor: static policy vs learned policy

Generated by \`${input.command}\` on ${input.date} (${input.machine}; engine/advisor sources \`${input.version}\`, a hash of advisor.ts, model.ts, anomaly.ts and signature.ts); ${input.seeds.length} seeds (${input.seeds.join(', ')}), ${fmt(hours, 2)} simulated hours of arrivals each, ${input.parallel} runs at once, ${fmt(input.totalMs / 1000, 0)} s in all.${input.model ? `\n\n**Learning settings changed for this run:** \`${JSON.stringify(input.model)}\` (the defaults are model.ts's).` : ' The advisor runs with its default learning settings (engine/advisor/model.ts).'}

Each seed is run twice on the same jobs, with the same fates, crashes and stalls, and the same backoff jitter draw for each job's attempt (a function of the seed, the job and the attempt, not of the order of draws): **static** (the advisor \`off\`: the policies the user typed) and **advisor** (\`enforce\`). Everything below is read from the store (outcomes, attempts, lease expiries, finish times) and from the test handler's own records, except the ETAs and anomalies, which are the advisor's answers under test.

## Goals

${goalTable(rows)}

How each is judged: the mean over seeds against the target (crash recovery: pooled over every interrupted attempt of every seed, as one seed has few; false alarms: pooled over every simulated hour); "every seed" asks the same of the worst seed. Lost successes: ${rows.find((r) => r.goal.startsWith('Lost'))?.note ?? ''}.

## Per seed

${seedTable(measures)}

${decisionsLine(measures)}

## Behind the figures

**Lost successes**, pooled over seeds:

${lostList(measures)}

**Crash recovery by job type**, pooled (each type is claimed with the lease the advisor sized from its run times once it has enough of them; until then, and under static, with 30 s):

${crashByType(measures)}

**ETA by job type** (error = abs(predicted − actual finish) / (actual finish − prediction time); ${etaSamples} predictions at submit over the seeds, p50 per seed from ${fmt(quantile(p50s, 0) === null ? null : quantile(p50s, 0)! * 100)}% to ${fmt(quantile(p50s, 1) === null ? null : quantile(p50s, 1)! * 100)}%; ${etaNulls} answers were null, too little history):

${etaByType(measures)}

At submit, the jobs that succeeded at their first attempt (${etaSplit(measures, 'firstTry')}) against the others, retried or dead (${etaSplit(measures, 'retried')}): an ETA from one attempt's median run time does not foresee a retry. And a point estimate cannot do better on a run time that varies by itself: for a log-normal run time of σ 0.3, the best possible p50 error of any prediction is 20%, of σ 0.25, 17%.

A p50 error of at most 20% is the same as half of the predictions within ±20%. At submit the advisor put ${sharePct(measures, 'within20')} of them there (mean of seeds). An ETA that gives every job of a type one time to finish, that time chosen per type after the run from the run's own outcomes, would put ${sharePct(measures, 'hindsightWithin20')} there${hindsightVerdict(measures)} (an ETA that reads the queue, as the advisor's does, can differ from one job to the next; at this load jobs seldom wait).

**Anomalies**, all seeds (an anomaly of a type within an outage or the spike of that type, or up to ${CHANGE_GRACE_MS / 60_000} min after it, is explained; any other is a false alarm):

${anomalyList(measures)}

**Write transactions** (submits, transitions, heartbeats) per seed: static ${fmt(avgOf(measures.map((m) => m.writes.static)), 0)}, advisor ${fmt(avgOf(measures.map((m) => m.writes.advisor)), 0)} (shorter leases heartbeat more often; fewer retries write less).

**False lease expiries**: ${measures.reduce((n, m) => n + m.falseExpiry.advisor.n, 0)} under the advisor and ${measures.reduce((n, m) => n + m.falseExpiry.static.n, 0)} under static, over ${attempts} advisor attempts (stalls are what can cause them; see the workload).

**What the advisor learned** (seed ${input.seeds[0]}, at the end of its run):

${insightsOf(input.sample)}

## The workload

A seeded generator (bench/advisor/workload.ts; no Math.random): ${fmt(hours, 2)} hours of Poisson arrivals per seed, about ${fmt(PROFILES.reduce((n, p) => n + p.ratePerSec, 0) * o.rateScale, 1)} jobs/s, then the run goes on until every job has ended. Each job carries its fate in its payload (a seed for its per-attempt draws, and its permanent error if it has one), so both runs of a seed get the same jobs; what an attempt does depends only on the fate, the attempt number and when it starts.

${workloadTable(o)}

Faults, the same in both runs of a seed:
- **Dependency outages** of payment.capture (above).
- **A failure-rate spike**: ${SPIKE_TYPE}'s intermittent rate goes from 2% to ${round(SPIKE_RATE * 100)}% at ${o.spikeAt === null ? 'never' : `${round(o.spikeAt * 100)}% of the arrivals' span`} for ${round(o.spikeMs / 60_000)} min.
- **Worker crashes** about every ${round(o.crashEveryMs / 60_000)} min (after the first ${round(o.crashAfterMs / 60_000)} min), each of a random one of the two workers (\`worker.crash()\`: no more writes, its claims left to their leases); a fresh worker joins 5 s later.
- **Worker stalls** (a GC pause, a network blip) about every ${round(o.stallEveryMs / 60_000)} min per worker: the worker's sleeps freeze (its heartbeats, timeouts and handlers) for a log-normal time, median ${fmt(o.stallMedianMs / 1000, 1)} s, σ ${o.stallSigma}, at most ${fmt(o.stallMaxMs / 1000, 0)} s. A stall longer than what is left of a lease is what makes a false lease expiry.

The engine (bench/advisor/simulate.ts): the real TransitionService, Relay, Timers, two Workers and the Advisor on SQLite in memory and the in-process log, on a simulated clock, with the shipped defaults: lease ${ENGINE.leaseMs / 1000} s, heartbeat ${ENGINE.heartbeatMs / 1000} s, ${ENGINE.concurrency} handlers per worker, timers every ${ENGINE.timersPollMs} ms, the advisor reading new events every ${ENGINE.advisorPollMs / 1000} s (\`catchUp()\` each simulated second). The relay polls every ${ENGINE.relayPollMs / 1000} s instead of 50 ms: every commit here is in process and wakes it at once. ETAs are asked of every 10th job at its submit and of up to 5 jobs of each live state every simulated minute.

## Measures

- **Wasted attempts**: STARTED events of jobs that end \`dead\`. Goal: ≥ ${round(GOALS.wastedReduction * 100)}% fewer under the advisor.
- **Lost successes**: jobs \`done\` under static and \`dead\` under the advisor (the reverse, gained successes, is shown beside). Goal: ${GOALS.lostSuccesses}.
- **Crash recovery**: for each attempt a crash interrupted (its handler was running, or had returned with its outcome not yet written), the time from the crash to that attempt's LEASE_EXPIRED (the timers taking the job back; its next start follows after the retry backoff). Goal: the advisor's mean ≥ ${GOALS.crashSpeedup}× shorter than static's.
- **False lease expiries**: LEASE_EXPIRED of attempts whose worker did not crash, over all attempts. Goal: ≤ ${GOALS.falseExpiryRate * 100}%.
- **ETA**: \`advisor.eta(job)\` of a job just submitted (and of live jobs every minute) against when it actually ended (done or dead). Goal: p50 of the error ≤ ${round(GOALS.etaP50Error * 100)}%.
- **Anomalies**: the spike's detection delay (its start to the first failure-rate anomaly of its type; goal ≤ ${GOALS.detectionMs / 1000} s) and false alarms per simulated day (goal ≤ ${GOALS.falseAlarmsPerDay}).

## Running it

\`\`\`
npm run bench:advisor
\`\`\`

Environment (all optional):
- \`ADVISOR_SEEDS=10\`: how many seeds (1..N), or a list \`3,7,11\`, or a range \`1-20\`.
- \`ADVISOR_HOURS=${fmt(hours, 2)}\`: simulated hours of arrivals per seed.
- \`ADVISOR_PARALLEL=2\`: runs at once, each in a child process.
- \`ADVISOR_MODEL='{"minEvidence":20}'\`: learning settings for the advisor runs (to explore; the file is then written only if \`ADVISOR_OUT\` names it).
- \`ADVISOR_NOISE=1\`: one more static run per seed, with other backoff jitter draws: how many jobs end done in one static run and dead in the other by chance alone (the floor under "lost successes").
- \`ADVISOR_OUT=bench/ADVISOR.md\`: where the report goes (\`-\` for nowhere).

A seed's runs are deterministic: the same seed gives the same jobs, outcomes and figures (bench/advisor/advisor-bench.test.ts checks it on a short run).
`;
}
