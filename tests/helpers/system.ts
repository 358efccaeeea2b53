/**
 * A whole scheduler in the test process, on the real MariaDB (its own
 * database) and the real Kafka broker (its own topic prefix), with short
 * timings. `stop()` stops the roles and drops the database and topics.
 */
import assert from 'node:assert/strict';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import type { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobRecord, JobStore } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from './kafka.js';
import { createTestDatabase } from './mysql.js';

export interface TestSystem {
  system: System;
  /** The raw settings used, for starting child processes on the same database and topics. */
  env: Record<string, string>;
  mysqlUrl: string;
  prefix: string;
  stop(): Promise<void>;
}

export const FAST: RawConfig = {
  leaseMs: 2000, heartbeatMs: 500, relayPollMs: 50, timersPollMs: 100, publishedTimeoutMs: 20_000,
  shutdownGraceMs: 1000, logLevel: 'silent', port: 0,
};

/** Environment variables for a child `ats start` on the same database and topics. */
export function childEnv(raw: RawConfig): Record<string, string> {
  const env: Record<string, string> = {};
  const names: Record<string, string> = {
    mysqlUrl: 'MYSQL_URL', kafkaBrokers: 'KAFKA_BROKERS', topicPrefix: 'ATS_TOPIC_PREFIX', leaseMs: 'ATS_LEASE_MS',
    heartbeatMs: 'ATS_HEARTBEAT_MS', relayPollMs: 'ATS_RELAY_POLL_MS', timersPollMs: 'ATS_TIMERS_POLL_MS',
    publishedTimeoutMs: 'ATS_PUBLISHED_TIMEOUT_MS', shutdownGraceMs: 'ATS_SHUTDOWN_GRACE_MS', logLevel: 'LOG_LEVEL',
    // The workers' group: the timers ask Kafka what it has not read, so every process names the same one.
    workerGroup: 'ATS_WORKER_GROUP',
  };
  for (const [k, v] of Object.entries(raw)) if (names[k] && v !== undefined) env[names[k]!] = String(v);
  return env;
}

export async function startTestSystem(
  opts: { roles?: string; registry?: HandlerRegistry; raw?: RawConfig } = {},
): Promise<TestSystem> {
  await requireKafka();
  const db = await createTestDatabase();
  const prefix = randomTopicPrefix();
  const raw: RawConfig = {
    ...FAST, mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix,
    roles: opts.roles ?? 'api,relay,worker,timers', workerGroup: `${prefix}workers`, ...opts.raw,
  };
  const config = compileConfig(raw, { hostname: 'test', pid: process.pid });
  let system: System | null = null;
  try {
    system = await compose(config, { registry: opts.registry, logger: silentLogger });
    await system.start();
  } catch (err) {
    await system?.stop().catch(() => undefined);
    await db.drop();
    throw err;
  }
  return {
    system, env: childEnv(raw), mysqlUrl: db.url, prefix,
    async stop() {
      try {
        await system.stop();
      } finally {
        await db.drop();
        await deleteTopicsWithPrefix(prefix).catch(() => undefined);
      }
    },
  };
}

/** Polls the store until the job satisfies `ok` (or fails after `timeoutMs`). */
export async function waitForJob(
  store: JobStore, id: string, ok: (j: JobRecord) => boolean, timeoutMs = 30_000, what = 'the expected state',
): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  let last: JobRecord | null = null;
  while (Date.now() < deadline) {
    last = await store.getJob(id);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`job ${id} did not reach ${what} within ${timeoutMs} ms (state ${last?.snapshot.value}, attempt ${last?.snapshot.context.attempt})`);
}

export const isState = (...states: string[]) => (j: JobRecord) => states.includes(j.snapshot.value);
