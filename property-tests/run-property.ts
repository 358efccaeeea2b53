/**
 * Runs the model-based delivery property on one backend and turns a failure
 * into a report that replays: the seed, the path, the commands' replay path,
 * and the exact command line.
 *
 * Environment: PROPERTY_RUNS (runs of the fast speed; PROPERTY_REAL_RUNS for
 * the real one), PROPERTY_SEED + PROPERTY_PATH (+ PROPERTY_REPLAY_PATH) to
 * replay one failing run, PROPERTY_EXCLUDE=kind,... to leave command kinds out.
 */
import fc from 'fast-check';
import type { Backend } from './backends.js';
import { commandsArb, limitPlanArb, newModel, type Real } from './commands.js';
import { InvariantChecker } from './invariants.js';
import { emptyStats, World, type LimitPlan, type WorldStats } from './world.js';

export interface PropertyOptions {
  backend: Backend;
  /** This test file, relative to the repository root (for the replay command). */
  file: string;
  defaultRuns: number;
  /** The environment variable setting the number of runs. @defaultValue 'PROPERTY_RUNS' */
  runsEnv?: string;
  /** Real-time cap of one run, ms. */
  runTimeoutMs: number;
}

export interface PropertyResult {
  runs: number;
  ms: number;
  stats: WorldStats;
}

interface ReplaySettings {
  numRuns: number;
  exclude: Set<string>;
  seed?: number;
  path?: string;
  replayPath?: string;
}

function settingsFromEnv(defaultRuns: number, runsEnv: string): ReplaySettings {
  const env = process.env;
  const runs = Number(env[runsEnv] ?? defaultRuns);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`${runsEnv} must be a positive integer, got ${env[runsEnv]}`);
  return {
    numRuns: runs,
    exclude: new Set((env.PROPERTY_EXCLUDE ?? '').split(',').map((k) => k.trim()).filter(Boolean)),
    ...(env.PROPERTY_SEED ? { seed: Number(env.PROPERTY_SEED) } : {}),
    ...(env.PROPERTY_PATH ? { path: env.PROPERTY_PATH } : {}),
    ...(env.PROPERTY_REPLAY_PATH ? { replayPath: env.PROPERTY_REPLAY_PATH } : {}),
  };
}

/** One run: build the world, run the commands under the scheduler, quiesce, check everything. */
async function oneRun(
  backend: Backend, s: fc.Scheduler, cmds: Iterable<fc.AsyncCommand<ReturnType<typeof newModel>, Real>>, randomSeed: number, limits: LimitPlan, totals: WorldStats,
): Promise<void> {
  const world = await World.create(backend, s, randomSeed, limits);
  const checker = new InvariantChecker(world);
  try {
    await fc.scheduledModelRun(s, () => ({ model: newModel(), real: { world, checker } }), cmds);
    const quiesced = await world.quiesce();
    await checker.final(quiesced);
    const st = world.collectStats();
    for (const job of await Promise.all(world.jobIds.map((id) => world.store.getJob(id)))) {
      const state = job!.snapshot.value as 'done' | 'dead' | 'cancelled';
      st[state]++;
    }
    for (const k of Object.keys(totals) as (keyof WorldStats)[]) totals[k] += st[k];
  } catch (err) {
    const trace = world.trace.slice(-80).join('\n    ');
    if (err instanceof Error) err.message += `\n  trace of the run (last ${Math.min(80, world.trace.length)} lines):\n    ${trace}`;
    throw err;
  } finally {
    await world.close();
  }
}

/** Runs the property; throws with a replayable report when it fails. */
export async function checkDeliveryProperty(opts: PropertyOptions): Promise<PropertyResult> {
  const settings = settingsFromEnv(opts.defaultRuns, opts.runsEnv ?? 'PROPERTY_RUNS');
  const totals = emptyStats();
  const started = Date.now();
  const property = fc.asyncProperty(
    fc.scheduler(), commandsArb(settings), fc.nat(), limitPlanArb,
    (s, cmds, randomSeed, limits) => oneRun(opts.backend, s, cmds, randomSeed, limits, totals),
  );
  const details = await fc.check(property, {
    numRuns: settings.numRuns,
    timeout: opts.runTimeoutMs,
    ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
    ...(settings.path !== undefined ? { path: settings.path } : {}),
  });
  if (details.failed) throw new Error(failureReport(details, opts, settings));
  return { runs: details.numRuns, ms: Date.now() - started, stats: totals };
}

function failureReport<T>(details: fc.RunDetails<T>, opts: PropertyOptions, settings: ReplaySettings): string {
  const report = fc.defaultReportMessage(details) ?? 'property failed';
  const replayPath = /replayPath="([^"]*)"/.exec(report)?.[1];
  const env = [
    `PROPERTY_SEED=${details.seed}`,
    `PROPERTY_PATH=${details.counterexamplePath ?? ''}`,
    ...(replayPath ? [`PROPERTY_REPLAY_PATH='${replayPath}'`] : []),
    ...(settings.exclude.size > 0 ? [`PROPERTY_EXCLUDE=${[...settings.exclude].join(',')}`] : []),
  ].join(' ');
  const command = `${env} node --import tsx --test ${opts.file}`;
  return [
    `The ${opts.backend.name} delivery property failed. Replay this exact run with:`,
    `  ${command}`,
    '',
    report,
    '',
    'The error of the last failing run:',
    errorText(details.errorInstance),
  ].join('\n');
}

function errorText(err: unknown): string {
  if (err instanceof Error) return `  ${err.message}`;
  return `  ${String(err)}`;
}
