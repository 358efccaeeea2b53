/**
 * `npm run bench:workflows`: workflows next to the same work as single jobs,
 * on this scheduler on MariaDB + Kafka (`ats-mysql`) and embedded
 * (`ats-embedded`), all roles in one process, no-op jobs.
 *
 * Cases, each in a fresh process on a fresh database (like bench/case.ts):
 * - `sequential3`: N workflows of three no-op jobs one after another, started
 *   `startConcurrency` at a time through `WorkflowService.start`, until all end;
 * - `sequential3-jobs`: the same jobs as single jobs, 3N submitted in bulk
 *   (`TransitionService.submitMany`), until all are done;
 * - `fanout10` / `fanout10-jobs`: the same with ten jobs spawned at once and joined;
 * - `sequential3-solo`: sequential3 workflows one at a time (start, wait for
 *   the end, start the next): its latency with nothing else running;
 * - `chain3`: three single jobs chained by the client (submit, wait for done,
 *   submit the next), one chain at a time: the latency a client gets without workflows.
 *
 * Times come from the system's own records (`created_at`, `updated_at` of the
 * instance or job, stamped by the scheduler), so how often the benchmark polls
 * changes when it notices the end, not the figures. A throughput case counts
 * ended rows every `countPollMs` (one COUNT query on its own connection); the
 * one-at-a-time cases read the one row in flight every `pollMs`, and in
 * `chain3` that delay is part of each hand-off, as it would be for a client.
 *
 *   node --import tsx bench/workflows.ts '{"sequential3":500,"fanout10":200}'
 *   node --import tsx bench/workflows.ts '{"systems":["ats-embedded"],"cases":["sequential3","chain3"],"samples":50}'
 *
 * Prints one `BENCH_RESULT {...}` line per case, then the tables, and writes
 * the JSON to `out` (bench/results/workflows-latest.json).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../cli/node-flags.js';
import { DEFAULT_TENANT } from '../engine/auth.js';
import { CpuMeter, serverPids } from './lib/proc.js';
import { round, sleep, summarize, type Summary } from './lib/stats.js';
import {
  FANOUT10, FANOUT_WIDTH, noopSpec, openWorkflowSystem, SEQUENTIAL3, WORKFLOW_SYSTEMS,
  type WorkflowBenchSystem, type WorkflowSystemName,
} from './lib/workflow-systems.js';
import { inParallel } from '../engine/in-parallel.js';

export type WorkflowCase = 'sequential3' | 'sequential3-jobs' | 'fanout10' | 'fanout10-jobs' | 'sequential3-solo' | 'chain3';
const CASES: readonly WorkflowCase[] = ['sequential3', 'sequential3-jobs', 'fanout10', 'fanout10-jobs', 'sequential3-solo', 'chain3'];

export interface WorkflowBenchOptions {
  systems: WorkflowSystemName[];
  cases: WorkflowCase[];
  /** Workflows of the sequential3 case (and 3× as many jobs in its baseline). */
  sequential3: number;
  /** Workflows of the fanout10 case (and 10× as many jobs in its baseline). */
  fanout10: number;
  /** Measured workflows or chains of the one-at-a-time cases. */
  samples: number;
  /** One-at-a-time runs before those, not counted (a fresh process is cold). */
  warmup: number;
  /** Workflow starts in flight at once. */
  startConcurrency: number;
  /** Handlers at once in the worker. */
  concurrency: number;
  /** Jobs per submitMany call in the baselines. */
  bulkSize: number;
  /** How often a one-at-a-time case reads the row in flight, ms. */
  pollMs: number;
  /** How often a throughput case counts ended rows, ms. */
  countPollMs: number;
  caseTimeoutS: number;
  out: string;
}

const DEFAULTS: WorkflowBenchOptions = {
  systems: [...WORKFLOW_SYSTEMS], cases: [...CASES], sequential3: 500, fanout10: 200, samples: 100, warmup: 5,
  startConcurrency: 50, concurrency: 50, bulkSize: 1000, pollMs: 2, countPollMs: 100, caseTimeoutS: 600,
  out: 'bench/results/workflows-latest.json',
};

export interface WorkflowCaseResult {
  system: WorkflowSystemName;
  case: WorkflowCase;
  settings: string;
  /** Instances (a baseline: the workflows whose jobs it ran, jobs ÷ width; one at a time: samples). */
  workflows: number;
  /** Jobs that ended done. */
  jobs: number;
  /** First start (or submit) to the last end, from the records. */
  seconds: number;
  /** Workflows per second (a baseline: jobs/s ÷ the workflow's jobs). */
  workflowsPerSec: number;
  jobsPerSec: number;
  /** How long the start (or submit) calls took, by the benchmark's clock. */
  startSeconds: number;
  /** Per workflow: start → end; chain3: first submit → last done. */
  latencyMs?: Summary;
  /** chain3: the three jobs' own submit → done, summed (the chain without its hand-offs). */
  jobsOwnMs?: Summary;
  /** Instances (or jobs) that ended otherwise than done. */
  notDone: number;
  /** CPU seconds per process over the measured window ("bench" is this process, the scheduler included). */
  cpu: Record<string, number>;
  /** Per 1,000 workflows (a baseline: per 1,000 workflows' worth of jobs). */
  cpuPer1k: Record<string, number>;
  peakMiB: Record<string, number>;
  /** Reads the benchmark made to notice the ends, and their period. */
  polls: number;
  pollMs: number;
  /** Load averages (1, 5, 15 min) just before and just after the measured window. */
  load: { before: number[]; after: number[] };
}

type Measured = Omit<WorkflowCaseResult, 'system' | 'case' | 'settings' | 'cpu' | 'cpuPer1k' | 'peakMiB' | 'load'>;

const ENDED_WORKFLOWS = "SELECT COUNT(*) AS n FROM workflows WHERE status <> 'active'";
const FINISHED_JOBS = "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('done', 'dead', 'cancelled')";
const DONE_JOBS = "SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'";
const WORKFLOW_TIMES = 'SELECT status, created_at AS c, updated_at AS u FROM workflows';
const JOB_SPAN = "SELECT MIN(created_at) AS c, MAX(updated_at) AS u, SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END) AS done FROM jobs";
const WORKFLOW_BY_ID = 'SELECT status, created_at AS c, updated_at AS u FROM workflows WHERE id = ?';
const JOB_BY_ID = 'SELECT state, created_at AS c, updated_at AS u FROM jobs WHERE id = ?';
const ENDED_JOB_STATES = new Set(['done', 'dead', 'cancelled']);

const loads = () => loadavg().map((l) => round(l, 2));
const roundAll = (o: Record<string, number>, digits = 2) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v, digits)]));
const count = async (sys: WorkflowBenchSystem, sql: string) => Number((await sys.query<{ n: number }>(sql))[0]!.n);

/** Counts until `n` rows ended; the polls it made. Throws after `stallMs` without progress. */
async function waitCount(sys: WorkflowBenchSystem, sql: string, n: number, everyMs: number, stallMs = 90_000): Promise<number> {
  let polls = 0;
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const ended = await count(sys, sql);
    polls++;
    if (ended >= n) return polls;
    if (ended !== last) {
      last = ended;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) {
      throw new Error(`no progress for ${stallMs / 1000} s: ${ended} of ${n} ended`);
    }
    await sleep(everyMs);
  }
}

/** Reads one row until `ended` says so; the row and the polls it took. */
async function waitRow<T>(sys: WorkflowBenchSystem, sql: string, id: string, ended: (row: T) => boolean, everyMs: number, timeoutMs = 60_000): Promise<{ row: T; polls: number }> {
  const until = Date.now() + timeoutMs;
  for (let polls = 1; ; polls++) {
    const row = (await sys.query<T>(sql, [id]))[0];
    if (row && ended(row)) return { row, polls };
    if (Date.now() > until) throw new Error(`${id} did not end within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

async function startWorkflow(sys: WorkflowBenchSystem, name: string, i: number): Promise<string> {
  const r = await sys.system.workflows.start({ tenant: DEFAULT_TENANT, name, input: { i } });
  if (!r.ok) throw new Error(`start of ${name} refused: ${r.reason}`);
  return r.workflow.id;
}

/** N workflows started `startConcurrency` at a time, until all ended. */
async function workflowThroughput(sys: WorkflowBenchSystem, name: string, n: number, width: number, o: WorkflowBenchOptions): Promise<Measured> {
  const t0 = Date.now();
  await inParallel(Array.from({ length: n }, (_, i) => i), o.startConcurrency, (i) => startWorkflow(sys, name, i));
  const startSeconds = (Date.now() - t0) / 1000;
  const polls = await waitCount(sys, ENDED_WORKFLOWS, n, o.countPollMs);
  return { ...(await workflowFigures(sys, n, width)), startSeconds: round(startSeconds, 2), polls, pollMs: o.countPollMs };
}

async function workflowFigures(sys: WorkflowBenchSystem, n: number, width: number): Promise<Omit<Measured, 'startSeconds' | 'polls' | 'pollMs'>> {
  const rows = await sys.query<{ status: string; c: number; u: number }>(WORKFLOW_TIMES);
  let first = Infinity;
  let last = 0;
  const latency: number[] = [];
  for (const r of rows) {
    first = Math.min(first, Number(r.c));
    last = Math.max(last, Number(r.u));
    latency.push(Number(r.u) - Number(r.c));
  }
  const jobs = await count(sys, DONE_JOBS);
  const seconds = (last - first) / 1000;
  return {
    workflows: n, jobs, seconds: round(seconds, 2), workflowsPerSec: round(n / seconds, 1), jobsPerSec: round(jobs / seconds, 0),
    latencyMs: summarize(latency), notDone: rows.filter((r) => r.status !== 'done').length + Math.max(0, n * width - jobs),
  };
}

/** The same jobs as single jobs: n × width submitted in bulk, until all ended. */
async function jobsThroughput(sys: WorkflowBenchSystem, n: number, width: number, o: WorkflowBenchOptions): Promise<Measured> {
  const total = n * width;
  const specs = Array.from({ length: total }, (_, i) => noopSpec(i));
  const t0 = Date.now();
  for (let k = 0; k < total; k += o.bulkSize) await sys.system.transitions.submitMany(specs.slice(k, k + o.bulkSize));
  const startSeconds = (Date.now() - t0) / 1000;
  const polls = await waitCount(sys, FINISHED_JOBS, total, o.countPollMs);
  const span = (await sys.query<{ c: number; u: number; done: number }>(JOB_SPAN))[0]!;
  const seconds = (Number(span.u) - Number(span.c)) / 1000;
  const jobs = Number(span.done);
  return {
    workflows: n, jobs, seconds: round(seconds, 2), workflowsPerSec: round(jobs / width / seconds, 1), jobsPerSec: round(jobs / seconds, 0),
    startSeconds: round(startSeconds, 2), notDone: total - jobs, polls, pollMs: o.countPollMs,
  };
}

/** sequential3 workflows one at a time: start, wait for the end, start the next. */
async function workflowSolo(sys: WorkflowBenchSystem, o: WorkflowBenchOptions): Promise<Measured> {
  const latency: number[] = [];
  let polls = 0;
  let notDone = 0;
  const t0 = Date.now();
  for (let k = 0; k < o.warmup + o.samples; k++) {
    const id = await startWorkflow(sys, SEQUENTIAL3, k);
    const w = await waitRow<{ status: string; c: number; u: number }>(sys, WORKFLOW_BY_ID, id, (r) => r.status !== 'active', o.pollMs);
    if (k < o.warmup) continue;
    polls += w.polls;
    if (w.row.status !== 'done') notDone++;
    latency.push(Number(w.row.u) - Number(w.row.c));
  }
  return soloFigures(o, latency, undefined, polls, notDone, t0, 3);
}

/** Three single jobs chained by the client, one chain at a time. */
async function chain3(sys: WorkflowBenchSystem, o: WorkflowBenchOptions): Promise<Measured> {
  const latency: number[] = [];
  const own: number[] = [];
  let polls = 0;
  let notDone = 0;
  const t0 = Date.now();
  for (let k = 0; k < o.warmup + o.samples; k++) {
    let first = 0;
    let last = 0;
    let sum = 0;
    let chainPolls = 0;
    for (let step = 1; step <= 3; step++) {
      const { job } = await sys.system.transitions.submit(noopSpec(step));
      const j = await waitRow<{ state: string; c: number; u: number }>(sys, JOB_BY_ID, job.id, (r) => ENDED_JOB_STATES.has(r.state), o.pollMs);
      chainPolls += j.polls;
      if (step === 1) first = Number(j.row.c);
      last = Number(j.row.u);
      sum += Number(j.row.u) - Number(j.row.c);
      if (j.row.state !== 'done' && k >= o.warmup) notDone++;
    }
    if (k < o.warmup) continue;
    polls += chainPolls;
    latency.push(last - first);
    own.push(sum);
  }
  return soloFigures(o, latency, own, polls, notDone, t0, 3);
}

function soloFigures(o: WorkflowBenchOptions, latency: number[], own: number[] | undefined, polls: number, notDone: number, t0: number, width: number): Measured {
  const seconds = (Date.now() - t0) / 1000;
  return {
    workflows: o.samples, jobs: o.samples * width, seconds: round(seconds, 2),
    workflowsPerSec: round((o.warmup + o.samples) / seconds, 1), jobsPerSec: round(((o.warmup + o.samples) * width) / seconds, 0),
    startSeconds: 0, latencyMs: summarize(latency), ...(own ? { jobsOwnMs: summarize(own) } : {}), notDone, polls, pollMs: o.pollMs,
  };
}

function measure(sys: WorkflowBenchSystem, c: WorkflowCase, o: WorkflowBenchOptions): Promise<Measured> {
  switch (c) {
    case 'sequential3': return workflowThroughput(sys, SEQUENTIAL3, o.sequential3, 3, o);
    case 'sequential3-jobs': return jobsThroughput(sys, o.sequential3, 3, o);
    case 'fanout10': return workflowThroughput(sys, FANOUT10, o.fanout10, FANOUT_WIDTH, o);
    case 'fanout10-jobs': return jobsThroughput(sys, o.fanout10, FANOUT_WIDTH, o);
    case 'sequential3-solo': return workflowSolo(sys, o);
    case 'chain3': return chain3(sys, o);
  }
}

/** One case on a fresh system, in this process. */
async function runCase(systemName: WorkflowSystemName, c: WorkflowCase, o: WorkflowBenchOptions): Promise<WorkflowCaseResult> {
  const sys = await openWorkflowSystem(systemName, o.concurrency);
  try {
    const meter = new CpuMeter(() => ({ bench: [process.pid], ...serverPids(sys.servers) }));
    const before = loads();
    meter.start();
    const m = await measure(sys, c, o);
    const cpu = meter.stop();
    const after = loads();
    // A one-at-a-time case's CPU covers its warm-up runs too.
    const units = c.endsWith('-solo') || c === 'chain3' ? o.warmup + o.samples : m.workflows;
    return {
      system: systemName, case: c, settings: sys.settings, ...m, cpu: roundAll(cpu),
      cpuPer1k: roundAll(Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, (v * 1000) / units])), 3),
      peakMiB: { bench: round(process.resourceUsage().maxRSS / 1024, 0) }, load: { before, after },
    };
  } finally {
    await sys.stop();
  }
}

// ------------------------------------------------------------------ the run

const root = fileURLToPath(new URL('..', import.meta.url));
const log = (msg: string) => process.stderr.write(`[bench:workflows] ${msg}\n`);

/** Runs one case in a fresh node process (the scheduler's node flags); resolves with its BENCH_RESULT. */
function runChild(system: WorkflowSystemName, c: WorkflowCase, o: WorkflowBenchOptions): Promise<WorkflowCaseResult> {
  const args = [...NODE_FLAGS, ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', 'bench/workflows.ts', JSON.stringify({ ...o, run: { system, case: c } })];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.caseTimeoutS * 1000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (code === 0 && line) resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as WorkflowCaseResult);
      else reject(new Error(`exited ${signal ?? code}${signal === 'SIGKILL' ? ` (timeout ${o.caseTimeoutS} s?)` : ''}: ${err.trim().split('\n').filter((l) => !l.startsWith('    at ')).slice(-4).join('\n')}`));
    });
  });
}

const num = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const trio = (s: Summary | undefined) => (s ? `${num(s.p50)} / ${num(s.p95)} / ${num(s.p99)}` : '–');
const cpuCell = (o: Record<string, number>) => {
  const parts = Object.entries(o).map(([k, v]) => `${k} ${num(v, 2)}`);
  const sum = Object.values(o).reduce((a, b) => a + b, 0);
  return parts.join(' · ') + (parts.length > 1 ? ` (Σ ${num(sum, 2)})` : '');
};
const loadCell = (r: WorkflowCaseResult) => `${num(r.load.before[0], 1)} → ${num(r.load.after[0], 1)}`;

const CASE_LABELS: Record<WorkflowCase, string> = {
  sequential3: 'sequential3 workflows',
  'sequential3-jobs': '3 single jobs each, in bulk',
  fanout10: 'fanout10 workflows',
  'fanout10-jobs': '10 single jobs each, in bulk',
  'sequential3-solo': 'sequential3 workflow, one at a time',
  chain3: '3 single jobs chained by the client, one chain at a time',
};

/** The results as markdown tables. */
export function renderWorkflowTables(results: readonly WorkflowCaseResult[], failures: ReadonlyArray<{ what: string; error: string }>, o: WorkflowBenchOptions): string {
  const out: string[] = [];
  const throughput = results.filter((r) => !r.case.endsWith('-solo') && r.case !== 'chain3');
  if (throughput.length > 0) {
    out.push(`### Throughput: workflows started ${o.startConcurrency} at a time, and the same jobs submitted in bulk (${num(o.bulkSize)} a call), until all are done`, '');
    out.push('| system | case | workflows | jobs | workflows/s | jobs/s | start→end p50 / p95 / p99 ms | CPU s per 1,000 workflows | load 1 min before → after |');
    out.push('|---|---|--:|--:|--:|--:|--:|---|--:|');
    for (const r of throughput) {
      out.push(`| ${r.system} | ${CASE_LABELS[r.case]} | ${num(r.workflows)} | ${num(r.jobs)} | **${num(r.workflowsPerSec, 1)}** | ${num(r.jobsPerSec)} | ${trio(r.latencyMs)} | ${cpuCell(r.cpuPer1k)} | ${loadCell(r)} |`);
    }
    out.push('', 'A bulk row\'s workflows/s is its jobs/s divided by the jobs a workflow runs, and its CPU is per 1,000 workflows\' worth of jobs.', '');
  }
  const solo = results.filter((r) => r.case.endsWith('-solo') || r.case === 'chain3');
  if (solo.length > 0) {
    out.push(`### Latency: one at a time, ${num(o.samples)} measured after ${num(o.warmup)} warm-up runs`, '');
    out.push('| system | case | start→end p50 / p95 / p99 ms | the jobs\' own submit→done, summed, p50 / p95 / p99 ms | reads of the row in flight | load 1 min before → after |');
    out.push('|---|---|--:|--:|--:|--:|');
    for (const r of solo) {
      out.push(`| ${r.system} | ${CASE_LABELS[r.case]} | **${trio(r.latencyMs)}** | ${trio(r.jobsOwnMs)} | ${num(r.polls)} (every ${r.pollMs} ms) | ${loadCell(r)} |`);
    }
    out.push('');
  }
  const bad = results.filter((r) => r.notDone > 0);
  for (const r of bad) out.push(`- ${r.system} ${r.case}: ${r.notDone} instances or jobs did not end done.`);
  if (failures.length > 0) out.push('### Failures', '', ...failures.map((f) => `- ${f.what}: ${f.error.split('\n')[0]}`), '');
  const settings = new Map(results.map((r) => [r.system, r.settings]));
  if (settings.size > 0) out.push('Settings:', '', ...[...settings].map(([s, text]) => `- **${s}**: ${text}`), '');
  return out.join('\n');
}

async function main(): Promise<void> {
  const raw = JSON.parse(process.argv[2] ?? '{}') as Partial<WorkflowBenchOptions> & { run?: { system: WorkflowSystemName; case: WorkflowCase } };
  const o: WorkflowBenchOptions = { ...DEFAULTS, ...raw };
  for (const s of o.systems) if (!WORKFLOW_SYSTEMS.includes(s)) throw new Error(`unknown system ${s} (systems: ${WORKFLOW_SYSTEMS.join(', ')})`);
  for (const c of o.cases) if (!CASES.includes(c)) throw new Error(`unknown case ${c} (cases: ${CASES.join(', ')})`);
  if (raw.run) {
    const r = await runCase(raw.run.system, raw.run.case, o);
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(r)}\n`);
    return;
  }
  const startedAt = new Date();
  const results: WorkflowCaseResult[] = [];
  const failures: Array<{ what: string; error: string }> = [];
  // Case by case, every system in turn: the rows compared are measured minutes apart, not a run apart.
  for (const c of o.cases) {
    for (const s of o.systems) {
      log(`${s} ${c}, load ${loads().join(' / ')}`);
      try {
        const r = await runChild(s, c, o);
        results.push(r);
        process.stdout.write(`BENCH_RESULT ${JSON.stringify(r)}\n`);
        log(`  → ${r.workflowsPerSec} workflows/s, ${r.jobsPerSec} jobs/s${r.latencyMs ? `, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms` : ''}`);
      } catch (err) {
        failures.push({ what: `${s} ${c}`, error: (err as Error).message });
        log(`  ✗ ${(err as Error).message}`);
      }
    }
  }
  const outFile = resolve(root, o.out);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({
    startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), command: `node --import tsx bench/workflows.ts '${process.argv[2] ?? ''}'`,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version }, options: o, results, failures,
  }, null, 2));
  process.stdout.write(`\n${renderWorkflowTables(results, failures, o)}\n`);
  log(`results: ${outFile}`);
  if (failures.length > 0 || results.some((r) => r.notDone > 0)) process.exitCode = 1;
}

// Exit when done: the scheduler's clients may leave sockets and timers behind after stop().
main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    process.stderr.write(`bench:workflows failed: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
