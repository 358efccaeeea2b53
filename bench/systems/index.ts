/** Every system the benchmark runs, by the name `BENCH_ONLY` and the table use. */
import type { DriverFactory } from '../lib/driver.js';
import { atsEmbedded, atsMysql, atsSplit } from './ats.js';
import { bullmq } from './bullmq.js';
import { pgboss } from './pgboss.js';

export const SYSTEMS = {
  'ats-mysql': atsMysql,
  'ats-split': atsSplit('http'),
  'ats-split-direct': atsSplit('direct'),
  'ats-embedded': atsEmbedded,
  /** Redis persistence is set by run.ts: `bullmq-aof` with AOF everysec, `bullmq` as the machine has it. */
  bullmq,
  'bullmq-aof': (opts) => bullmq(opts, { aof: true }),
  pgboss,
} satisfies Record<string, DriverFactory>;

export type SystemName = keyof typeof SYSTEMS;
