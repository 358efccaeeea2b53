/**
 * What every system under test offers the benchmark: submit (in bulk and one
 * at a time), count finished jobs, and read back when each job started and
 * finished, from the system's own records. One implementation per system in
 * `bench/systems/`.
 */
import type { ServerName } from './proc.js';

/** The payload of every benchmark job: its number, and whether its first attempt fails. */
export interface BenchJob {
  i: number;
  fail: boolean;
}

/** When a job's first attempt started and when it was done, epoch ms, as the system recorded them. */
export interface JobTimes {
  started: number;
  done: number;
}

export interface CaseOptions {
  /** Handlers running at once in each worker. */
  concurrency: number;
  /** Jobs per bulk submit call. */
  bulkSize: number;
}

export interface Driver {
  /** How the system is set up for the run (shown in RESULTS.md). */
  readonly settings: string;
  /** The servers whose CPU the run charges to this system. */
  readonly servers: readonly ServerName[];
  /** Child processes of this system besides the benchmark process itself: label → pid. */
  processes(): Record<string, number>;
  /** Peak resident memory (MiB) of those child processes, read before `stop()`. */
  peaks?(): Record<string, number>;
  /** Submits jobs through the system's bulk API; resolves with their ids, in order. */
  submitBulk(jobs: readonly BenchJob[]): Promise<string[]>;
  /** Submits one job the way a producer would; resolves with its id. */
  submitOne(job: BenchJob): Promise<string>;
  /** How many jobs reached a final state so far. */
  countFinished(): Promise<number>;
  /** Start and done times of these jobs (jobs not done are missing). */
  times(ids: readonly string[]): Promise<Map<string, JobTimes>>;
  /** Stops everything and removes what the run created (databases, topics, keys). */
  stop(): Promise<void>;
}

/** A driver factory: sets the system up and returns once it takes jobs. */
export type DriverFactory = (opts: CaseOptions) => Promise<Driver>;

/** The no-op handler every system runs: fails the first attempt of jobs marked `fail`, does nothing else. */
export function runBenchJob(job: BenchJob, attempt: number): null {
  if (job.fail && attempt === 1) throw new Error(`bench: planned failure of job ${job.i}`);
  return null;
}

/** `n` jobs, of which about `failShare` fail their first attempt (spread evenly, not random). */
export function makeJobs(n: number, failShare: number, from = 0): BenchJob[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return { i, fail: failShare > 0 && Math.floor((i + 1) * failShare) > Math.floor(i * failShare) };
  });
}

/** Random lowercase suffix for databases, topic prefixes, queue names. */
export function runId(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
