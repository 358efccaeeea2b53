/** `ats start`: run the roles of this process until SIGTERM/SIGINT. */
import { hostname } from 'node:os';
import { compileConfig, rawFromArgs, rawFromEnv, type Config } from '../engine/config.js';
import { isAtsError } from '../engine/errors.js';
import { compose, type System } from './compose.js';

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
  let system: System;
  try {
    system = await compose(config);
  } catch (err) {
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
  system.logger.info(`ats ready: ${where}`, { roles: config.roles, store, log });
  await waitForSignal();
  system.logger.info('ats: shutting down');
  await system.stop();
  return 0;
}

function describe(err: unknown): string {
  if (isAtsError(err)) return err.message;
  const e = err as Error & { code?: string };
  const cause = (e.cause as Error | undefined)?.message;
  return [e.message, e.code && !e.message.includes(e.code) ? `(${e.code})` : '', cause ? `— ${cause}` : ''].filter(Boolean).join(' ');
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
}
