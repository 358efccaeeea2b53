/**
 * `npm run bench`: the same workloads through this scheduler (MariaDB +
 * Kafka in one process and as processes apart, and the embedded default),
 * BullMQ (Redis as found, and with AOF everysec) and pg-boss, then the
 * component floors (SQL on MariaDB, raw kafkajs and raw @platformatic/kafka). Each case runs in a fresh
 * process (`bench/case.ts`). Prints the tables, writes the JSON and, for a
 * full run, the generated part of bench/RESULTS.md.
 *
 * Environment (all optional):
 *   BENCH_JOBS=20000          jobs of the throughput and retry workloads
 *   BENCH_LATENCY_S=20        seconds of paced submits in the latency workload
 *   BENCH_CONCURRENCY=50      handlers at once in every worker
 *   BENCH_BULK=1000           jobs per bulk submit call
 *   BENCH_ONLY=ats-mysql,bullmq,limits   systems (and/or "limits") to run
 *   BENCH_WORKLOADS=throughput,latency,retry
 *   BENCH_OUT=bench/results/latest.json
 *   BENCH_WRITE_MD=1          update RESULTS.md even for a narrowed run (0: never)
 *   BENCH_CASE_TIMEOUT_S=600  a case still running then is killed and reported as failed
 *   BENCH_TRACING=1           the in-process scheduler cases trace every job (OTLP to a receiver process)
 */
import { spawn, spawnSync } from 'node:child_process';
import { NODE_FLAGS } from '../cli/node-flags.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { CaseInput, CaseResult, Workload } from './case.js';
import { describeMachine } from './lib/machine.js';
import { renderContext, renderTables, type FloorResult, type RunResults } from './lib/report.js';
import { redisUrl } from './lib/services.js';
import { sleep } from './lib/stats.js';
import type { SystemName } from './systems/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = process.env;
const int = (name: string, dflt: number) => (env[name] ? Number.parseInt(env[name]!, 10) : dflt);

const DEFAULT_PLAN: Array<{ system: SystemName; workloads: Workload[] }> = [
  { system: 'ats-mysql', workloads: ['throughput', 'latency', 'retry'] },
  { system: 'ats-split', workloads: ['throughput', 'latency', 'retry'] },
  { system: 'ats-split-direct', workloads: ['throughput'] },
  { system: 'ats-embedded', workloads: ['throughput', 'latency', 'retry'] },
  { system: 'bullmq', workloads: ['throughput', 'latency', 'retry'] },
  { system: 'bullmq-aof', workloads: ['throughput', 'latency', 'retry'] },
  { system: 'pgboss', workloads: ['throughput', 'latency', 'retry'] },
];

const options = {
  jobs: int('BENCH_JOBS', 20_000),
  latencySeconds: int('BENCH_LATENCY_S', 20),
  concurrency: int('BENCH_CONCURRENCY', 50),
  bulkSize: int('BENCH_BULK', 1000),
  only: env.BENCH_ONLY ? env.BENCH_ONLY.split(',').map((s) => s.trim()).filter(Boolean) : null,
};
const workloads = (env.BENCH_WORKLOADS ?? 'throughput,latency,retry').split(',').map((s) => s.trim()) as Workload[];
const caseTimeoutMs = int('BENCH_CASE_TIMEOUT_S', 600) * 1000;
const narrowed = options.only !== null || env.BENCH_JOBS !== undefined || env.BENCH_WORKLOADS !== undefined;
const writeMd = env.BENCH_WRITE_MD === '1' || (env.BENCH_WRITE_MD !== '0' && !narrowed);
const outFile = env.BENCH_OUT ?? join(root, 'bench/results/latest.json');

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/**
 * Runs a script in a fresh node process; resolves with its BENCH_RESULT line,
 * parsed. A case of this scheduler's runs with the scheduler's node flags
 * (cli/node-flags.ts), as `npm start` and the Docker image run it; the peers'
 * cases run with node's defaults, as their guides run them.
 */
function runChild<T>(script: string, arg: unknown): Promise<T> {
  const system = (arg as { system?: string }).system ?? '';
  const flags = system.startsWith('ats-') ? NODE_FLAGS : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, ...(env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', script, JSON.stringify(arg)], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), caseTimeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (code === 0 && line) resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as T);
      else reject(new Error(`${script} exited ${signal ?? code}${signal === 'SIGKILL' ? ` (timeout ${caseTimeoutMs / 1000} s?)` : ''}: ${err.trim().split('\n').filter((l) => !l.startsWith('    at ')).slice(-4).join('\n')}`));
    });
  });
}

// ------------------------------------------------------------------ services

let startedKafka = false;

function ensureKafka(): void {
  if (env.KAFKA_BROKERS) return;
  if (spawnSync('bash', ['scripts/kafka/kafka.sh', 'status'], { cwd: root, stdio: 'ignore' }).status === 0) return;
  log('starting Kafka (scripts/kafka/kafka.sh start)');
  const r = spawnSync('bash', ['scripts/kafka/kafka.sh', 'start'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('could not start Kafka with scripts/kafka/kafka.sh start');
  startedKafka = true;
}

function stopKafkaIfStarted(): void {
  if (startedKafka) spawnSync('bash', ['scripts/kafka/kafka.sh', 'stop'], { cwd: root, stdio: 'ignore' });
}

/**
 * BullMQ's production guide: AOF with fsync every second. Set for the run,
 * the machine's values put back after (also on Ctrl-C); the AOF folder is
 * removed afterwards only if this run created it.
 */
async function withRedisAof<T>(fn: () => Promise<T>): Promise<T> {
  const redis = new Redis({ ...redisUrl(), maxRetriesPerRequest: 2 });
  const get = async (k: string) => ((await redis.config('GET', k)) as string[])[1] ?? '';
  const before = { appendonly: await get('appendonly'), appendfsync: await get('appendfsync') };
  const aofDir = join(await get('dir'), await get('appenddirname'));
  const dirExisted = existsSync(aofDir);
  const restore = async () => {
    await redis.config('SET', 'appendonly', before.appendonly);
    await redis.config('SET', 'appendfsync', before.appendfsync);
    if (!dirExisted && before.appendonly === 'no') rmSync(aofDir, { recursive: true, force: true });
  };
  const onSignal = () => void restore().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    await redis.config('SET', 'appendfsync', 'everysec');
    await redis.config('SET', 'appendonly', 'yes');
    // Turning AOF on starts a rewrite of the whole dataset: wait for it.
    for (let i = 0; i < 600; i++) {
      const info = await redis.info('persistence');
      if (/aof_enabled:1/.test(info) && /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) break;
      await sleep(100);
    }
    return await fn();
  } finally {
    process.off('SIGINT', onSignal);
    await restore();
    redis.disconnect();
  }
}

// ------------------------------------------------------------------ plan

/** One case of one system; `measured` holds each system's throughput, to pace its latency case. */
async function runOne(system: SystemName, workload: Workload, measured: Map<SystemName, number>, results: RunResults): Promise<void> {
  const input: CaseInput = { system, workload, jobs: options.jobs, concurrency: options.concurrency, bulkSize: options.bulkSize };
  if (workload === 'latency') {
    const rate = env.BENCH_RATE ? Number(env.BENCH_RATE) : measured.has(system) ? measured.get(system)! / 2 : undefined;
    if (!rate) {
      results.failures.push({ what: `${system} latency`, error: 'no throughput measured to pace it (run throughput too, or set BENCH_RATE)' });
      return;
    }
    input.rate = rate;
    input.seconds = options.latencySeconds;
  }
  try {
    let r = await runCase(input);
    if (workload === 'throughput') measured.set(system, r.jobsPerSec);
    // One-at-a-time submits may not reach half the bulk throughput: then the queue of
    // submits, not the system's latency, is what the first try measured. Pace again at
    // half of what was achieved, and keep the first try in the JSON.
    const l = r.latency;
    if (l && l.achievedRate < 0.9 * l.targetRate && !env.BENCH_RATE) {
      results.cases.push({ ...r, workload: 'latency-overload' as Workload });
      log(`  submits reached only ${l.achievedRate} of ${l.targetRate} jobs/s: again at ${Math.round(l.achievedRate / 2)} jobs/s`);
      r = await runCase({ ...input, rate: l.achievedRate / 2 });
    }
    results.cases.push(r);
  } catch (err) {
    results.failures.push({ what: `${system} ${workload}`, error: (err as Error).message });
    log(`  ✗ ${(err as Error).message}`);
  }
}

async function runCase(input: CaseInput): Promise<CaseResult & { loadAvg1: number }> {
  const loadAvg1 = Math.round(loadavg()[0]! * 10) / 10;
  log(`${input.system} ${input.workload}${input.rate ? ` at ${Math.round(input.rate)} jobs/s for ${input.seconds} s` : ` (${input.jobs} jobs)`}, load ${loadAvg1}`);
  const t0 = Date.now();
  const r = await runChild<CaseResult>('bench/case.ts', input);
  log(`  → ${r.jobsPerSec} jobs/s${r.latency ? `, start p50 ${r.latency.startMs.p50} ms, done p99 ${r.latency.doneMs.p99} ms` : ''} (case took ${Math.round((Date.now() - t0) / 1000)} s)`);
  return { ...r, loadAvg1 };
}

async function runLimits(results: RunResults): Promise<void> {
  const floors: Array<[keyof RunResults['limits'], string, object]> = [
    ['sql', 'bench/limits/sql-floor.ts', { jobs: options.jobs, bulkSize: options.bulkSize }],
    ['kafka', 'bench/limits/kafka-floor.ts', { jobs: options.jobs }],
    ['kafkaPacked', 'bench/limits/kafka-floor.ts', { jobs: options.jobs, packed: true }],
    ['kafkaDispatchOnly', 'bench/limits/kafka-floor.ts', { jobs: options.jobs, dispatchOnly: true }],
    ['kafkaPlatformatic', 'bench/limits/kafka-floor.ts', { jobs: options.jobs, client: 'platformatic' }],
    ['kafkaPlatformaticDispatchOnly', 'bench/limits/kafka-floor.ts', { jobs: options.jobs, dispatchOnly: true, client: 'platformatic' }],
  ];
  for (const [key, script, arg] of floors) {
    log(`floor ${key}`);
    try {
      results.limits[key] = await runChild<FloorResult>(script, arg);
      log(`  → ${results.limits[key]!.jobsPerSec} jobs/s`);
    } catch (err) {
      results.failures.push({ what: `floor ${key}`, error: (err as Error).message });
    }
  }
}

const MD_BEGIN = '<!-- bench:begin (generated by npm run bench; edits inside are overwritten) -->';
const MD_END = '<!-- bench:end -->';

function writeResultsMd(results: RunResults): void {
  const file = join(root, 'bench/RESULTS.md');
  const generated = `${MD_BEGIN}\n\n## Latest run\n\n${renderContext(results)}\n\n${renderTables(results)}\n${MD_END}`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : `# Benchmark results\n\n${MD_BEGIN}\n${MD_END}\n`;
  const start = current.indexOf(MD_BEGIN);
  const end = current.indexOf(MD_END);
  const next = start >= 0 && end > start
    ? current.slice(0, start) + generated + current.slice(end + MD_END.length)
    : `${current.trimEnd()}\n\n${generated}\n`;
  writeFileSync(file, next);
  log(`updated ${file}`);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  ensureKafka();
  const results: RunResults = {
    startedAt: startedAt.toISOString(), finishedAt: '', durationSeconds: 0,
    command: commandLine(), options, machine: await describeMachine(root), cases: [], limits: {}, failures: [],
  };
  const selected = (name: string) => options.only === null || options.only.includes(name);
  // Workload by workload, every system in turn: the rows of one table are measured minutes
  // apart, not a whole run apart (the machine's load drifts, see the load column).
  const measured = new Map<SystemName, number>();
  for (const workload of ['throughput', 'latency', 'retry'] as const) {
    if (!workloads.includes(workload)) continue;
    for (const { system, workloads: wanted } of DEFAULT_PLAN) {
      if (!selected(system) || !wanted.includes(workload)) continue;
      const one = () => runOne(system, workload, measured, results);
      if (system === 'bullmq-aof') await withRedisAof(one);
      else await one();
    }
  }
  if (selected('limits')) await runLimits(results);
  results.finishedAt = new Date().toISOString();
  results.durationSeconds = (Date.now() - startedAt.getTime()) / 1000;
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(results, null, 2));
  process.stdout.write(`\n${renderTables(results)}\n`);
  log(`results: ${outFile}`);
  if (writeMd) writeResultsMd(results);
  else log('RESULTS.md left as is (narrowed run; BENCH_WRITE_MD=1 to write it anyway)');
  stopKafkaIfStarted();
  if (results.failures.length > 0) process.exitCode = 1;
}

function commandLine(): string {
  const vars = Object.entries(env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v}`);
  return [...vars, 'npm run bench'].join(' ');
}

main().catch((err) => {
  stopKafkaIfStarted();
  process.stderr.write(`bench failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
