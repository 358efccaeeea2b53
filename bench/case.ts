/**
 * One benchmark case in a fresh process: one system, one workload. Started by
 * `bench/run.ts` (so each case's peak memory is its own); prints its result
 * as one `BENCH_RESULT {...}` line.
 *
 *   node --import tsx bench/case.ts '{"system":"ats-mysql","workload":"throughput","jobs":20000}'
 */
import { makeJobs, type Driver } from './lib/driver.js';
import { CpuMeter, serverPids } from './lib/proc.js';
import { windowProfiler } from './lib/profile.js';
import { round, sleep, summarize, type Summary } from './lib/stats.js';
import { SYSTEMS, type SystemName } from './systems/index.js';

/** `latency-overload` marks a latency try whose submits fell behind (kept in the JSON, noted under the table). */
export type Workload = 'throughput' | 'latency' | 'retry' | 'latency-overload';

export interface CaseInput {
  system: SystemName;
  workload: Workload;
  /** Jobs for throughput and retry. */
  jobs: number;
  /** Jobs per second for latency. */
  rate?: number;
  /** How long latency submits last. */
  seconds?: number;
  concurrency: number;
  bulkSize: number;
}

export interface CaseResult {
  system: SystemName;
  workload: Workload;
  settings: string;
  jobs: number;
  /** Submit of the first job to done of the last. */
  seconds: number;
  jobsPerSec: number;
  /** How long the submits took (throughput: all bulk calls; latency: the paced window). */
  submitSeconds: number;
  /** CPU seconds per process (this benchmark process is "bench"). */
  cpu: Record<string, number>;
  cpuPer1k: Record<string, number>;
  /** Peak resident memory per process, MiB. */
  peakMiB: Record<string, number>;
  latency?: { targetRate: number; achievedRate: number; submitCallMs: Summary; startMs: Summary; doneMs: Summary };
}

async function waitFinished(driver: Driver, n: number, stallMs = 90_000): Promise<void> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const done = await driver.countFinished();
    if (done >= n) return;
    if (done !== last) {
      last = done;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) {
      throw new Error(`no progress for ${stallMs / 1000} s: ${done} of ${n} jobs finished`);
    }
    await sleep(100);
  }
}

function meterFor(driver: Driver): CpuMeter {
  return new CpuMeter(() => ({
    bench: [process.pid],
    ...Object.fromEntries(Object.entries(driver.processes()).map(([k, pid]) => [k, [pid]])),
    ...serverPids(driver.servers),
  }));
}

const per1k = (cpu: Record<string, number>, jobs: number) =>
  Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / jobs, 3)]));

const peaks = (driver: Driver): Record<string, number> => ({
  bench: round(process.resourceUsage().maxRSS / 1024, 0),
  ...Object.fromEntries(Object.entries(driver.peaks?.() ?? {}).map(([k, v]) => [k, round(v, 0)])),
});

async function throughput(driver: Driver, input: CaseInput, failShare: number): Promise<Omit<CaseResult, 'system' | 'workload' | 'settings'>> {
  const jobs = makeJobs(input.jobs, failShare);
  const meter = meterFor(driver);
  const profiler = windowProfiler(`${input.system}-${input.workload}`);
  await profiler.start();
  meter.start();
  const t0 = Date.now();
  const ids: string[] = [];
  for (let k = 0; k < jobs.length; k += input.bulkSize) ids.push(...(await driver.submitBulk(jobs.slice(k, k + input.bulkSize))));
  const submitted = Date.now();
  await waitFinished(driver, jobs.length);
  const seen = Date.now();
  const cpu = meter.stop();
  await profiler.stop();
  const times = await driver.times(ids);
  let end = 0;
  for (const t of times.values()) end = Math.max(end, t.done);
  if (times.size < jobs.length) end = seen; // a system that cannot tell: when we saw the count
  const seconds = (end - t0) / 1000;
  return {
    jobs: jobs.length, seconds: round(seconds, 2), jobsPerSec: round(jobs.length / seconds, 0),
    submitSeconds: round((submitted - t0) / 1000, 2), cpu: roundAll(cpu), cpuPer1k: per1k(cpu, jobs.length), peakMiB: peaks(driver),
  };
}

/** Submits one producer keeps open at once in the latency workload. */
export const MAX_IN_FLIGHT = 64;

async function latency(driver: Driver, input: CaseInput): Promise<Omit<CaseResult, 'system' | 'workload' | 'settings'>> {
  const rate = input.rate!;
  const total = Math.max(1, Math.round(rate * input.seconds!));
  const jobs = makeJobs(total, 0);
  const submitAt = new Map<string, number>();
  const callMs: number[] = [];
  const calls: Promise<void>[] = [];
  const meter = meterFor(driver);
  const profiler = windowProfiler(`${input.system}-${input.workload}`);
  await profiler.start();
  meter.start();
  const t0 = Date.now();
  let k = 0;
  let inFlight = 0;
  let lastSubmit = t0;
  while (k < total) {
    const due = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000) + 1);
    // A producer keeps at most MAX_IN_FLIGHT submits open; a system that cannot keep up shows a lower achieved rate.
    for (; k < due && inFlight < MAX_IN_FLIGHT; k++) {
      const at = Date.now();
      lastSubmit = at;
      inFlight++;
      calls.push(driver.submitOne(jobs[k]!).then((id) => {
        inFlight--;
        submitAt.set(id, at);
        callMs.push(Date.now() - at);
      }));
    }
    await sleep(2);
  }
  await Promise.all(calls);
  const submitted = Date.now();
  await waitFinished(driver, total);
  const cpu = meter.stop();
  await profiler.stop();
  const times = await driver.times([...submitAt.keys()]);
  const startMs: number[] = [];
  const doneMs: number[] = [];
  let end = 0;
  for (const [id, at] of submitAt) {
    const t = times.get(id);
    if (!t) continue;
    startMs.push(Math.max(0, t.started - at));
    doneMs.push(Math.max(0, t.done - at));
    end = Math.max(end, t.done);
  }
  const seconds = (end - t0) / 1000;
  const achieved = lastSubmit > t0 ? (total - 1) / ((lastSubmit - t0) / 1000) : total;
  return {
    jobs: total, seconds: round(seconds, 2), jobsPerSec: round(total / seconds, 0),
    submitSeconds: round((submitted - t0) / 1000, 2), cpu: roundAll(cpu), cpuPer1k: per1k(cpu, total), peakMiB: peaks(driver),
    latency: { targetRate: round(rate, 0), achievedRate: round(achieved, 0), submitCallMs: summarize(callMs), startMs: summarize(startMs), doneMs: summarize(doneMs) },
  };
}

const roundAll = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v, 2)]));

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as CaseInput;
  const factory = SYSTEMS[input.system];
  if (!factory) throw new Error(`unknown system ${input.system} (systems: ${Object.keys(SYSTEMS).join(', ')})`);
  const driver = await factory({ concurrency: input.concurrency, bulkSize: input.bulkSize });
  let result: CaseResult;
  try {
    const body = input.workload === 'latency' ? await latency(driver, input)
      : await throughput(driver, input, input.workload === 'retry' ? 0.3 : 0);
    result = { system: input.system, workload: input.workload, settings: driver.settings, ...body };
  } finally {
    await driver.stop();
  }
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench case failed: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
