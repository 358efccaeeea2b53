/**
 * Runs the model-based delivery property on one backend and turns a failure
 * into a report that replays: the seed, the path, the commands' replay path,
 * and the exact command line.
 *
 * Environment: PROPERTY_RUNS (runs of the fast speed; PROPERTY_REAL_RUNS for
 * the real one), PROPERTY_SEED + PROPERTY_PATH (+ PROPERTY_REPLAY_PATH) to
 * replay one failing run, PROPERTY_EXCLUDE=kind,... to leave command kinds out,
 * TEST_TIMEOUT_MS (the file timeout) for the time the whole check may take.
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

/**
 * Real-time cap of the whole check, shrinking included: a minute less than the test runner's file
 * timeout (`TEST_TIMEOUT_MS`, 600,000 by default, as `npm test` passes it). Past it no run starts and
 * the check fails with what it has (a failure shrunk so far, or the runs it reached), with its replay
 * command, instead of the runner ending the file with nothing to replay.
 */
export function checkBudgetMs(env: NodeJS.ProcessEnv = process.env): number {
  const fileTimeout = Number(env.TEST_TIMEOUT_MS ?? 600_000);
  if (!Number.isInteger(fileTimeout) || fileTimeout <= 120_000) throw new Error(`TEST_TIMEOUT_MS must be an integer above 120000, got ${env.TEST_TIMEOUT_MS}`);
  return fileTimeout - 60_000;
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
  // Chosen here, not by fast-check, so that it is known before the first run: written at once, it
  // replays a check that the test runner ended (its file timeout) before any report.
  const seed = settings.seed ?? (Date.now() ^ (Math.random() * 0x1_0000_0000));
  process.stderr.write(`${opts.backend.name} delivery property: seed ${seed} (PROPERTY_SEED=${seed} replays it)\n`);
  let firstFailure = true;
  const property = fc.asyncProperty(
    fc.scheduler(), commandsArb(settings), fc.nat(), limitPlanArb,
    async (s, cmds, randomSeed, limits) => {
      try {
        await oneRun(opts.backend, s, cmds, randomSeed, limits, totals);
      } catch (err) {
        // The first failure, before shrinking starts: shrinking a real run can take longer than is left.
        if (firstFailure) process.stderr.write(`${opts.backend.name} delivery property: the first failure (seed ${seed}), shrinking next:\n${errorText(err)}\n`);
        firstFailure = false;
        throw err;
      }
    },
  );
  const details = await fc.check(property, {
    numRuns: settings.numRuns,
    timeout: opts.runTimeoutMs,
    seed,
    ...(settings.path !== undefined ? { path: settings.path } : {}),
    interruptAfterTimeLimit: checkBudgetMs(),
    markInterruptAsFailure: true,
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
