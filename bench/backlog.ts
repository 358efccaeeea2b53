/**
 * A backlog longer than the published timeout, in the embedded mode: composes
 * the whole system as `npm start` does (SQLite file, in-process log, every
 * role), submits `jobs` jobs whose handler takes `handlerMs` at a worker
 * concurrency of `concurrency`, with `ATS_PUBLISHED_TIMEOUT_MS` at
 * `timeoutMs`, so that the last jobs wait many timeouts to start. Once all
 * are done, prints the `DISPATCH` events the timers added (each also an
 * outbox row and a message) and the jobs they kept instead. Not a test; a
 * count (run it from a checkout of another commit to compare).
 *
 *   node --import tsx bench/backlog.ts [jobs=3000] [handlerMs=20] [concurrency=10] [timeoutMs=1000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compose } from '../cli/compose.js';
import { compileConfig, rawFromEnv } from '../cli/config.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import type { JobSpec } from '../engine/ports.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { SqliteStore } from '../adapters/sqlite/index.js';

const [jobs, handlerMs, concurrency, timeoutMs] = [3000, 20, 10, 1000].map((d, i) => Number(process.argv[2 + i] ?? d));
const TYPE = 'bench.backlog';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-backlog-'));
  const config = compileConfig(rawFromEnv({
    ATS_DATA_DIR: dir, PORT: '0', LOG_LEVEL: 'silent', ATS_ADVISOR: 'off',
    ATS_WORKER_CONCURRENCY: String(concurrency), ATS_PUBLISHED_TIMEOUT_MS: String(timeoutMs),
    ATS_RELAY_PUBLISHED_DELAY_MS: String(Math.floor(timeoutMs / 5)),
  }));
  const registry = new HandlerRegistry().register(TYPE, async () => {
    await new Promise((r) => setTimeout(r, handlerMs));
    return null;
  });
  const system = await compose(config, { registry, logger: silentLogger });
  await system.start();
  try {
    const spec: JobSpec = { type: TYPE, payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0 };
    const started = Date.now();
    for (let i = 0; i < jobs; i += 1000) await system.transitions.submitMany(Array.from({ length: Math.min(1000, jobs - i) }, () => spec));
    const { db } = system.store as SqliteStore;
    const count = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n);
    while (count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'") < jobs) await new Promise((r) => setTimeout(r, 200));
    console.log(JSON.stringify({
      jobs, handlerMs, concurrency, timeoutMs, seconds: (Date.now() - started) / 1000,
      dispatchEvents: count("SELECT COUNT(*) AS n FROM job_events WHERE type = 'DISPATCH'"),
      startedEvents: count("SELECT COUNT(*) AS n FROM job_events WHERE type = 'STARTED'"),
      keptByTimers: system.timers?.counters.queued ?? null,
    }));
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
