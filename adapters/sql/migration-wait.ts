/**
 * How a process waits for another process's migration, on either store. A
 * migration may take minutes (0013 rebuilds `jobs` on SQLite in time
 * proportional to its rows: about a minute for 1.5 million), so a process
 * starting meanwhile tries to take the lock again and again, logging that it
 * waits, for up to `MIGRATION_WAIT_MS`; then it migrates, finding nothing
 * pending. Only a wait past that limit, or a database that cannot be reached
 * at all, fails it: ATS_ERR_STORE_UNAVAILABLE (503).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AtsError } from '../../engine/errors.js';
import { createLogger } from '../../engine/logger.js';
import type { Logger } from '../../engine/ports.js';
import type { StoreClock } from './options.js';

/** How long, in all, a process waits for another process's migration: 15 minutes. */
export const MIGRATION_WAIT_MS = 15 * 60_000;

/** The pause between two attempts (an attempt itself may wait: busy_timeout, GET_LOCK). */
const RETRY_PAUSE_MS = 100;

export interface MigrationWait {
  /** How long, in all, to wait for another process's migration. @defaultValue MIGRATION_WAIT_MS */
  timeoutMs?: number;
  /**
   * How long one attempt waits for the lock (MySQL's GET_LOCK; SQLite's attempt
   * waits the connection's busy_timeout instead). Each failed attempt logs a line.
   * @defaultValue 10000
   */
  attemptMs?: number;
  /** Where "waiting for another process's migration" goes. @defaultValue a JSON logger on stdout */
  logger?: Logger;
}

/** What an attempt returns while another process holds the lock. */
export const BUSY: unique symbol = Symbol('busy');

/**
 * Runs `attempt` until it returns something other than `BUSY`, for up to
 * `wait.timeoutMs` by `clock`, logging each time it found the lock held; then
 * throws ATS_ERR_STORE_UNAVAILABLE. Any other error of `attempt` goes up at once.
 */
export async function whileMigrating<T>(
  attempt: () => T | typeof BUSY | Promise<T | typeof BUSY>, clock: StoreClock, wait: MigrationWait = {},
): Promise<T> {
  const timeoutMs = wait.timeoutMs ?? MIGRATION_WAIT_MS;
  const began = clock.now();
  let logger = wait.logger;
  for (;;) {
    const result = await attempt();
    if (result !== BUSY) return result;
    const waitedMs = clock.now() - began;
    if (waitedMs >= timeoutMs) {
      throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', `another process's migration still held the database after ${Math.round(waitedMs / 1000)} s`);
    }
    logger ??= createLogger('info');
    logger.info("waiting for another process's migration", { waitedMs, timeoutMs });
    await sleep(RETRY_PAUSE_MS);
  }
}
