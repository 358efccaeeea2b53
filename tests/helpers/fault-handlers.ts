/**
 * The fault test's job handler, for child processes (`ATS_HANDLERS=<this file>`):
 * `faults.job` takes a few milliseconds and, when its payload says
 * `failOnce`, fails its first attempt (the retry then succeeds), so retries
 * (the timers' RETRY_DUE) flow through every fault too. No I/O of its own:
 * what the test checks is in the scheduler's tables.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { HandlerRegistry } from '../../engine/handlers.js';
import type { Handler } from '../../engine/ports.js';

export const FAULT_JOB_TYPE = 'faults.job';

export interface FaultJob {
  n: number;
  failOnce: boolean;
}

export const faultJob: Handler<FaultJob, { n: number }> = async (payload, ctx) => {
  await delay(2 + (payload.n % 7) * 3, undefined, { signal: ctx.signal });
  if (payload.failOnce && ctx.attempt === 1) throw new Error(`planned failure of job ${payload.n}, attempt 1`);
  return { n: payload.n };
};

export function register(registry: HandlerRegistry): void {
  registry.register(FAULT_JOB_TYPE, faultJob);
}
