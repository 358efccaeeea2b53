/**
 * A CPU profile of a case's measured window only (no start-up, no teardown),
 * when `BENCH_CPU_PROFILE_DIR` is set: written as
 * `<dir>/<system>-<workload>-<pid>.cpuprofile` for `bench/cpuprofile-top.ts`.
 * `--cpu-prof` profiles the whole process instead, where module loading
 * and setup outweigh a short run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

export interface WindowProfiler {
  start(): Promise<void>;
  stop(): Promise<void>;
}

const NONE: WindowProfiler = { start: async () => undefined, stop: async () => undefined };

export function windowProfiler(name: string, dir = process.env.BENCH_CPU_PROFILE_DIR): WindowProfiler {
  if (!dir) return NONE;
  const session = new Session();
  return {
    async start() {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    },
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(profile));
    },
  };
}
