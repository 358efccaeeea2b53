/**
 * `npm run bench:advisor`: the seeded workload (workload.ts) through the
 * real engine on a simulated clock (simulate.ts), once with the advisor off
 * (the static policies) and once enforcing, per seed; prints the goal table
 * (goals.ts) and writes bench/ADVISOR.md (report.ts).
 *
 * Each run is a child process of its own (a fresh heap, and two at once on
 * two cores); the parent gathers the records and measures them.
 *
 * Environment (all optional):
 *   ADVISOR_SEEDS=10        how many seeds (1..N), or a list 3,7,11, or a range 1-20
 *   ADVISOR_HOURS=2         simulated hours of arrivals per seed
 *   ADVISOR_PARALLEL=2      runs at once (default: the cores, at most 4)
 *   ADVISOR_MODEL='{...}'   learning settings for the advisor runs (exploration)
 *   ADVISOR_NOISE=1         one more static run per seed, with other backoff jitter
 *                           draws: the chance level of "lost successes"
 *   ADVISOR_OUT=bench/ADVISOR.md   where the report goes; '-' for nowhere (with
 *                           ADVISOR_MODEL set it is written only if named)
 *   ADVISOR_JSON=path       also write every seed's measures there (diagnostics)
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ModelOptions } from '../../engine/advisor/types.js';
import { measureSeed, summarize, type SeedMeasures } from './goals.js';
import { fmt, goalTable, renderMarkdown, seedTable } from './report.js';
import { simulate, type RunRecord, type SimMode } from './simulate.js';
import { DEFAULT_WORKLOAD, generate, type WorkloadOptions } from './workload.js';

const self = fileURLToPath(import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));
const DEFAULT_HOURS = 2;

interface Task {
  seed: number;
  mode: SimMode;
  /** Another draw of the engine's jitter (the noise run). */
  jitterSeed?: number;
}

interface TaskInput extends Task {
  workload: Partial<WorkloadOptions>;
  model: Partial<ModelOptions> | null;
}

export function parseSeeds(raw: string | undefined): number[] {
  const s = (raw ?? '10').trim();
  if (/^\d+$/.test(s)) return Array.from({ length: Number(s) }, (_, i) => i + 1);
  const range = /^(\d+)\s*-\s*(\d+)$/.exec(s);
  if (range) {
    const [a, b] = [Number(range[1]), Number(range[2])];
    return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);
  }
  const list = s.split(',').map((x) => Number(x.trim()));
  if (list.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`ADVISOR_SEEDS: not a count, a range or a list of seeds: ${raw}`);
  return list;
}

/** Runs one task in a child process; resolves with its record. */
function runChild(input: TaskInput): Promise<RunRecord> {
  return new Promise((resolve, reject) => {
    const child = fork(self, ['--child'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    let record: RunRecord | null = null;
    child.on('message', (m: { record?: RunRecord; error?: string }) => {
      if (m.record) record = m.record;
      if (m.error) reject(new Error(`seed ${input.seed} ${input.mode}: ${m.error}`));
    });
    child.on('exit', (code) => {
      if (record) resolve(record);
      else reject(new Error(`seed ${input.seed} ${input.mode}: the child exited with ${code} and no record`));
    });
    child.send(input);
  });
}

async function child(): Promise<void> {
  const input = await new Promise<TaskInput>((resolve) => process.once('message', (m) => resolve(m as TaskInput)));
  try {
    const w = generate(input.seed, input.workload);
    const record = await simulate(w, { mode: input.mode, jitterSeed: input.jitterSeed ?? 0, ...(input.model ? { model: input.model } : {}) });
    await new Promise<void>((resolve, reject) => process.send!({ record }, (err: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    process.send!({ error: (err as Error).stack ?? String(err) });
  }
  process.disconnect();
}

/** Runs the tasks `parallel` at a time, in order; `done` hears of each. */
async function pool<T, R>(items: readonly T[], parallel: number, run: (item: T) => Promise<R>, done: (item: T, r: R) => void): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const k = next++;
      results[k] = await run(items[k]!);
      done(items[k]!, results[k]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, lane));
  return results;
}

/** The advisor's source, in a short hash: which version of the learning produced a report. */
function advisorVersion(): string {
  const h = createHash('sha256');
  for (const f of ['advisor.ts', 'model.ts', 'anomaly.ts', 'signature.ts']) h.update(readFileSync(`${root}engine/advisor/${f}`));
  return h.digest('hex').slice(0, 12);
}

async function main(): Promise<void> {
  const env = process.env;
  const seeds = parseSeeds(env.ADVISOR_SEEDS);
  const hours = env.ADVISOR_HOURS ? Number(env.ADVISOR_HOURS) : DEFAULT_HOURS;
  if (!(hours > 0)) throw new Error(`ADVISOR_HOURS must be a positive number: ${env.ADVISOR_HOURS}`);
  const parallel = env.ADVISOR_PARALLEL ? Number(env.ADVISOR_PARALLEL) : Math.min(4, availableParallelism());
  const model = env.ADVISOR_MODEL ? (JSON.parse(env.ADVISOR_MODEL) as Partial<ModelOptions>) : null;
  const out = env.ADVISOR_OUT ?? (model ? '-' : 'bench/ADVISOR.md');
  const workload: Partial<WorkloadOptions> = { durationMs: Math.round(hours * 3_600_000) };

  const noise = env.ADVISOR_NOISE === '1';
  const tasks: TaskInput[] = seeds.flatMap((seed) => [
    { seed, mode: 'enforce' as const, workload, model },
    { seed, mode: 'off' as const, workload, model },
    ...(noise ? [{ seed, mode: 'off' as const, jitterSeed: 1, workload, model }] : []),
  ]);
  const started = Date.now();
  const version = advisorVersion();
  console.error(`advisor bench: ${seeds.length} seeds × ${noise ? 3 : 2} runs, ${hours} simulated hours each, ${parallel} at once`);
  const records = await pool(tasks, parallel, runChild, (t, r) => {
    console.error(`  seed ${t.seed} ${(t.jitterSeed ? `${t.mode}'` : t.mode).padEnd(7)} ${r.jobs.length} jobs, ${r.events} events, ${fmt(r.simulatedMs / 3_600_000, 2)} h simulated in ${fmt(r.realMs / 1000)} s`);
  });
  const bySeed = new Map<number, Partial<Record<SimMode | 'noise', RunRecord>>>();
  tasks.forEach((t, k) => { (bySeed.get(t.seed) ?? bySeed.set(t.seed, {}).get(t.seed)!)[t.jitterSeed ? 'noise' : t.mode] = records[k]!; });
  const measures: SeedMeasures[] = seeds.map((seed) => {
    const r = bySeed.get(seed)!;
    return measureSeed(generate(seed, workload), r.off!, r.enforce!, r.noise);
  });
  const totalMs = Date.now() - started;

  const rows = summarize(measures);
  console.log(`\n${goalTable(rows)}\n\n${rows.map((r) => `- ${r.goal}: ${r.note}`).join('\n')}\n\n${seedTable(measures)}\n`);
  // Maps (per job type, per cause) as JSON objects: Object.fromEntries defines each key as an own property.
  if (env.ADVISOR_JSON) writeFileSync(env.ADVISOR_JSON, JSON.stringify(measures, (_k, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v), 1));
  console.log(`${seeds.length} seeds in ${fmt(totalMs / 1000, 0)} s`);
  if (out !== '-') {
    const cmd = ['ADVISOR_SEEDS', 'ADVISOR_HOURS', 'ADVISOR_MODEL', 'ADVISOR_NOISE'].filter((k) => env[k]).map((k) => `${k}=${k === 'ADVISOR_MODEL' ? `'${env[k]}'` : env[k]}`);
    const md = renderMarkdown({
      command: [...cmd, 'npm run bench:advisor'].join(' '),
      seeds, workload: { ...DEFAULT_WORKLOAD, ...workload }, model: model as Record<string, unknown> | null, measures,
      sample: bySeed.get(seeds[0]!)?.enforce ?? null, totalMs, parallel,
      machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`,
      date: new Date().toISOString().slice(0, 10),
      version,
    });
    const path = out.startsWith('/') ? out : `${root}${out}`;
    writeFileSync(path, md);
    console.log(`wrote ${out}`);
  }
}

if (process.argv.includes('--child')) {
  await child();
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
