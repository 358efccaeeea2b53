/** `ats start`: run the roles of this process until SIGTERM/SIGINT. */
import { hostname } from 'node:os';
import { checkEnvNames, compileConfig, rawFromArgs, rawFromEnv, type Config } from './config.js';
import { isAtsError } from '../engine/errors.js';
import { compose, type StopProgress, type System } from './compose.js';
import { startTracing, type Tracing } from './tracing.js';
import { readOpenFileLimit } from './open-file-limit.js';

/**
 * Config from the environment, overridden by flags, for this process (its
 * host name, pid and open-file limit). Throws ATS_ERR_CONFIG, for an ATS_
 * variable that is a setting misspelt too.
 */
export function configFrom(env: Record<string, string | undefined>, args: readonly string[]): Config {
  checkEnvNames(env);
  return compileConfig({ ...rawFromEnv(env), ...rawFromArgs(args) }, { hostname: hostname(), pid: process.pid, openFileLimit: readOpenFileLimit() });
}

/** What `startCommand` composes the roles with (tests wrap it). */
export interface StartDeps {
  compose: typeof compose;
}

export async function startCommand(args: readonly string[], env: Record<string, string | undefined>, deps: StartDeps = { compose }): Promise<number> {
  let config: Config;
  try {
    config = configFrom(env, args);
  } catch (err) {
    process.stderr.write(`ats: ${(err as Error).message}\n`);
    return 2;
  }
  for (const name of checkEnvNames(env)) process.stderr.write(`ats: ${name} is not a setting: ignored (\`ats start --help\` lists the settings)\n`);
  let tracing: Tracing | null;
  try {
    tracing = await startTracing(env, config.roles);
  } catch (err) {
    process.stderr.write(`ats: ${(err as Error).message}\n`);
    return isAtsError(err) && err.code === 'ATS_ERR_CONFIG' ? 2 : 1;
  }
  let system: System;
  try {
    system = await deps.compose(config, tracing ? { tracing } : {});
    tracing?.reportTo(system.logger);
  } catch (err) {
    await tracing?.shutdown().catch(() => undefined);
    if (isAtsError(err) && err.code === 'ATS_ERR_CONFIG') {
      process.stderr.write(`ats: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`ats: cannot start: ${describe(err)}\n`);
    return 1;
  }
  // From here on a signal stops the roles gracefully (until now nothing ran: the default, an exit, was
  // right); one that comes while they start stops the start too: the roles not started yet are not, and a
  // worker's join of its lanes still in progress is given up (system.stop()).
  const signals = watchSignals();
  const stopWatchingExit = watchUnplannedExit(system);
  const deadlineMs = config.worker.shutdownGraceMs + SHUTDOWN_SLACK_MS;
  const { exit: giveUp, cancel: cancelGiveUp } = givingUp(signals, deadlineMs, system);
  try {
    let url: string | null;
    try {
      const starting = system.start();
      const started = await Promise.race([starting, signals.first.then((signal) => ({ signal }))]);
      if ('signal' in started) {
        // What the start ends with is the stop's doing (StartGivenUp, or a join given up): the stop's outcome says it.
        starting.catch(() => undefined);
        system.logger.info('ats: shutting down while starting', { signal: started.signal, graceMs: config.worker.shutdownGraceMs });
        return await Promise.race([system.stop().then(() => 0, () => 1), giveUp]);
      }
      ({ url } = started);
    } catch (err) {
      // Roles may already run (a worker joined its group, the relay polls): stop
      // them, but give up on a stop that hangs so the exit stays within seconds.
      process.stderr.write(`ats: cannot start: ${describe(err)}\n`);
      await Promise.race([system.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
      return 1;
    }
    if (!signals.signalled) {
      const store = config.mysqlUrl ? 'MySQL' : `embedded SQLite (${config.dataDir}/ats.sqlite)`;
      const log = config.kafkaBrokers ? `Kafka ${config.kafkaBrokers.join(',')}` : 'in-process log';
      const where = url ? `open ${url}/ui — API ${url}/v1/jobs, docs ${url}/docs` : 'no api role in this process';
      system.logger.info(`ats ready: ${where}`, { roles: config.roles, store, log });
      if (system.access) system.logger[system.access.level](system.access.message);
    }
    const signal = await signals.first;
    system.logger.info('ats: shutting down', { signal, graceMs: config.worker.shutdownGraceMs });
    // Exit 0 when every step of the stop worked, 1 when one failed (each is logged) or the stop was given up.
    return await Promise.race([system.stop().then(() => 0, () => 1), giveUp]);
  } finally {
    cancelGiveUp();
    signals.dispose();
    stopWatchingExit();
  }
}

/** Running attempts the line of an unplanned exit names at most (with their count). */
export const UNPLANNED_EXIT_ATTEMPTS_NAMED = 20;

/**
 * While the roles run (until `startCommand` returns its exit code), an exit
 * the scheduler did not decide: a handler (or a module) that called
 * `process.exit()`, or an error nothing caught (Node has printed its stack).
 * Nothing can keep the process up then, but its last line (an error, given
 * to the logger before its own exit listener writes what it holds
 * synchronously, as the `exit` event requires) says how it exits and which
 * attempts it ran, which their leases' end fails and retries
 * (LEASE_EXPIRED). Returns what stops watching.
 */
function watchUnplannedExit(system: Pick<System, 'logger' | 'worker'>): () => void {
  const onExit = (code: number) => {
    try {
      const running = system.worker?.runningAttempts() ?? [];
      system.logger.error(
        `ats: the process is exiting (code ${code}) without a shutdown: something in it called process.exit(), or an error nothing caught ended it (its stack is above); `
          + `the ${running.length} attempt(s) it was running are left to their leases, which fail and retry them (LEASE_EXPIRED)`,
        { code, runningCount: running.length, running: running.slice(0, UNPLANNED_EXIT_ATTEMPTS_NAMED) },
      );
    } catch {
      // Exiting: a line that cannot be written is lost, and nothing else is to be done.
    }
  };
  // First of the exit's listeners: the JSON log destination writes asynchronously, and pino's own listener (added
  // when the logger was made) writes what it holds synchronously; a line written after it would wait on a write
  // still under way, which the exit ends (the line lost), or go out by a write the exit may not let finish.
  process.prependListener('exit', onExit);
  return () => void process.off('exit', onExit);
}

/**
 * Beyond the handlers' grace period, what closing the API (its connection
 * drain), the relay, the log and the store may take before the process stops
 * waiting for them.
 */
export const SHUTDOWN_SLACK_MS = 5000;

/**
 * Any signal this soon after the first counts as the first: the same request
 * delivered twice, not a second one. npm (`npm start`, `npx`) forwards to its child the
 * SIGINT a terminal's Ctrl+C, or the SIGTERM a supervisor, already sent to
 * the whole process group.
 */
export const REPEAT_SIGNAL_MS = 1000;

/**
 * Resolves 1 (exit) when the process gives up: `deadlineMs` after the first
 * SIGTERM/SIGINT, whether the roles were still starting or stopping, or at
 * a second signal. A shutdown never hangs on a client, a broker or a handler
 * that ignores its abort signal. (Anything not committed is recovered like
 * after a crash: leases expire, the outbox is published again.) Either line
 * it logs names the part of the stop it was still waiting on (`waitingOn`:
 * `store`, `relay`…, with how long it had waited), and the parts before it
 * that took long (`slow`), so what was stuck, and what used up the time, is known.
 */
function givingUp(
  signals: Signals, deadlineMs: number, system: Pick<System, 'logger' | 'stopProgress'>,
): { exit: Promise<number>; cancel(): void } {
  // Not unref'd: a stop waiting on something that holds nothing open (a bug's promise) would end the
  // process silently, exit 0, without this line. `cancel` clears it once the stop is over.
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const late = signals.first
    .then(() => new Promise((resolve) => {
      if (!cancelled) timer = setTimeout(resolve, deadlineMs);
    }))
    .then(() => {
      const { text, fields } = stopGivenUp(system.stopProgress());
      system.logger.error(`ats: shutdown did not finish in time; exiting${text}`, { deadlineMs, ...fields });
      return 1;
    });
  const second = signals.second.then(() => {
    const { text, fields } = stopGivenUp(system.stopProgress());
    system.logger.warn(`ats: second signal; exiting without finishing the shutdown${text}`, fields);
    return 1;
  });
  return {
    exit: Promise.race([late, second]),
    cancel: () => {
      cancelled = true;
      clearTimeout(timer);
    },
  };
}

/** A part of the stop that took this long or more is named when the stop is given up (`slow`): it used up some of the time. */
export const SLOW_STOP_PART_MS = 100;

/**
 * What a stop given up still waited on, and the parts before it that took
 * SLOW_STOP_PART_MS or more, for its line: ` while still waiting on store (5012 ms);
 * slow before it: worker (3120 ms)`, and as fields (`waitingOn`, `slow`).
 */
function stopGivenUp(progress: StopProgress): { text: string; fields: { waitingOn: StopProgress['waitingOn']; slow: StopProgress['took'] } } {
  const { waitingOn } = progress;
  const slow = progress.took.filter((t) => t.ms >= SLOW_STOP_PART_MS);
  const list = (parts: StopProgress['took']) => parts.map((p) => `${p.part} (${p.ms} ms)`).join(', ');
  const text = (waitingOn.length > 0 ? ` while still waiting on ${list(waitingOn)}` : '') + (slow.length > 0 ? `; slow before it: ${list(slow)}` : '');
  return { text, fields: { waitingOn, slow } };
}

/** The error's message, with its code and its cause's message unless it says them already (kafkajs repeats its cause's). */
function describe(err: unknown): string {
  if (isAtsError(err)) return err.message;
  const e = err as Error & { code?: string };
  const cause = (e.cause as Error | undefined)?.message;
  return [e.message, e.code && !e.message.includes(e.code) ? `(${e.code})` : '', cause && !e.message.includes(cause) ? `— ${cause}` : ''].filter(Boolean).join(' ');
}

interface Signals {
  /** The first SIGTERM or SIGINT. */
  readonly first: Promise<NodeJS.Signals>;
  /** Whether it came. */
  readonly signalled: boolean;
  /** A signal REPEAT_SIGNAL_MS or more after the first. */
  readonly second: Promise<void>;
  dispose(): void;
}

/** SIGTERM and SIGINT, listened for from now until `dispose()`: one pair of listeners all along, so no signal finds none. */
function watchSignals(): Signals {
  let firstAt: number | null = null;
  let resolveFirst!: (signal: NodeJS.Signals) => void;
  let resolveSecond!: () => void;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const second = new Promise<void>((resolve) => (resolveSecond = resolve));
  // Any signal within REPEAT_SIGNAL_MS of the first counts as the first.
  const on = (signal: NodeJS.Signals) => {
    const now = performance.now();
    if (firstAt === null) {
      firstAt = now;
      resolveFirst(signal);
    } else if (now - firstAt >= REPEAT_SIGNAL_MS) {
      resolveSecond();
    }
  };
  const onTerm = () => on('SIGTERM');
  const onInt = () => on('SIGINT');
  process.on('SIGTERM', onTerm).on('SIGINT', onInt);
  return {
    first, second,
    get signalled() {
      return firstAt !== null;
    },
    dispose: () => void process.off('SIGTERM', onTerm).off('SIGINT', onInt),
  };
}
