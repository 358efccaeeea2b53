/** `ats start`: run the roles of this process until SIGTERM/SIGINT. */
import { hostname } from 'node:os';
import { compileConfig, rawFromArgs, rawFromEnv, type Config } from './config.js';
import { isAtsError } from '../engine/errors.js';
import { compose, type System } from './compose.js';
import { startTracing, type Tracing } from './tracing.js';

/** Config from the environment, overridden by flags. Throws ATS_ERR_CONFIG. */
export function configFrom(env: Record<string, string | undefined>, args: readonly string[]): Config {
  return compileConfig({ ...rawFromEnv(env), ...rawFromArgs(args) }, { hostname: hostname(), pid: process.pid });
}

export async function startCommand(args: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  let config: Config;
  try {
    config = configFrom(env, args);
  } catch (err) {
    process.stderr.write(`ats: ${(err as Error).message}\n`);
    return 2;
  }
  let tracing: Tracing | null;
  try {
    tracing = await startTracing(env, config.roles);
  } catch (err) {
    process.stderr.write(`ats: ${(err as Error).message}\n`);
    return isAtsError(err) && err.code === 'ATS_ERR_CONFIG' ? 2 : 1;
  }
  let system: System;
  try {
    system = await compose(config, tracing ? { tracing } : {});
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
  let url: string | null;
  try {
    ({ url } = await system.start());
  } catch (err) {
    // Roles may already run (a worker joined its group, the relay polls): stop
    // them, but give up on a stop that hangs so the exit stays within seconds.
    process.stderr.write(`ats: cannot start: ${describe(err)}\n`);
    await Promise.race([system.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    return 1;
  }
  const store = config.mysqlUrl ? 'MySQL' : `embedded SQLite (${config.dataDir}/ats.sqlite)`;
  const log = config.kafkaBrokers ? `Kafka ${config.kafkaBrokers.join(',')}` : 'in-process log';
  const where = url ? `open ${url}/ui — API ${url}/v1/jobs, docs ${url}/docs` : 'no api role in this process';
  // Listening for the signal before saying ready: a supervisor may stop the process as soon as it reads the line.
  const signalled = waitForSignal();
  system.logger.info(`ats ready: ${where}`, { roles: config.roles, store, log });
  if (system.access) system.logger[system.access.level](system.access.message);
  const signal = await signalled;
  system.logger.info('ats: shutting down', { signal, graceMs: config.worker.shutdownGraceMs });
  return stopWithin(system, config.worker.shutdownGraceMs + SHUTDOWN_SLACK_MS);
}

/**
 * Beyond the handlers' grace period, what closing the API (its connection
 * drain), the relay, the log and the store may take before the process stops
 * waiting for them.
 */
export const SHUTDOWN_SLACK_MS = 5000;

/**
 * Stop the system; if that has not finished within `deadlineMs`, or a second
 * SIGTERM/SIGINT arrives, give up on it and exit 1: a shutdown never hangs on
 * a client, a broker or a handler that ignores its abort signal. (Anything
 * not committed is recovered like after a crash: leases expire, the outbox is
 * published again.)
 */
async function stopWithin(system: System, deadlineMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  let onSignal: (() => void) | undefined;
  const giveUp = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      system.logger.error('ats: shutdown did not finish in time; exiting', { deadlineMs });
      resolve(1);
    }, deadlineMs);
    onSignal = () => {
      system.logger.warn('ats: second signal; exiting without finishing the shutdown');
      resolve(1);
    };
    process.once('SIGTERM', onSignal).once('SIGINT', onSignal);
  });
  try {
    return await Promise.race([system.stop().then(() => 0), giveUp]);
  } finally {
    clearTimeout(timer);
    process.off('SIGTERM', onSignal!).off('SIGINT', onSignal!);
  }
}

/** The error's message, with its code and its cause's message unless it says them already (kafkajs repeats its cause's). */
function describe(err: unknown): string {
  if (isAtsError(err)) return err.message;
  const e = err as Error & { code?: string };
  const cause = (e.cause as Error | undefined)?.message;
  return [e.message, e.code && !e.message.includes(e.code) ? `(${e.code})` : '', cause && !e.message.includes(cause) ? `— ${cause}` : ''].filter(Boolean).join(' ');
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onTerm = () => done('SIGTERM');
    const onInt = () => done('SIGINT');
    const done = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onTerm).off('SIGINT', onInt);
      resolve(signal);
    };
    process.once('SIGTERM', onTerm).once('SIGINT', onInt);
  });
}
