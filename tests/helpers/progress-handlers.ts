/**
 * A test handler that reports progress, for child processes
 * (`ATS_HANDLERS=<this file>`): `test.progress` reports each of
 * `payload.reports` in turn (`ctx.progress`), waiting `payload.ms` after each,
 * then returns how many it reported. Test-only: the CLI tests load it beside
 * the demo handlers.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { HandlerRegistry } from '../../engine/handlers.js';
import type { Handler } from '../../engine/ports.js';

export const PROGRESS_JOB_TYPE = 'test.progress';

export interface ProgressJob {
  /** Each a number from 0 to 100 or a JSON object. */
  reports: Array<number | Record<string, unknown>>;
  /** The pause after each report, in ms (the worker writes at most one every 500 ms). */
  ms: number;
}

export const progressJob: Handler<ProgressJob, { reported: number }> = async (payload, ctx) => {
  for (const value of payload.reports) {
    await ctx.progress(value);
    await delay(payload.ms, undefined, { signal: ctx.signal });
  }
  return { reported: payload.reports.length };
};

export function register(registry: HandlerRegistry): void {
  registry.register(PROGRESS_JOB_TYPE, progressJob);
}
