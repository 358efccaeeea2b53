/**
 * The benchmark's job handler for the scheduler: `bench.job`, the same no-op
 * every system runs (`runBenchJob`). Loaded in worker processes with
 * `ATS_HANDLERS=bench/handlers.ts`; in process, `register` is called directly.
 */
import type { HandlerRegistry } from '../engine/handlers.js';
import type { Handler } from '../engine/ports.js';
import { runBenchJob, type BenchJob } from './lib/driver.js';

export const BENCH_JOB_TYPE = 'bench.job';

const benchJob: Handler<BenchJob, null> = async (payload, ctx) => runBenchJob(payload, ctx.attempt);

export function register(registry: HandlerRegistry): HandlerRegistry {
  return registry.register(BENCH_JOB_TYPE, benchJob);
}
