/**
 * Heap of the embedded mode over rounds of jobs: composes the whole system as
 * `npm start` does (SQLite file, in-process log, every role), runs rounds of
 * `demo.echo` jobs to `done`, and prints heap and RSS after a full GC per
 * round, with what the in-process log still holds. Flat heap = the log lets
 * go of acknowledged messages. Not a test; a measurement.
 *
 *   node --expose-gc --import tsx bench/memory-log-heap.ts [rounds=4] [jobs=10000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compose } from '../cli/compose.js';
import { compileConfig, rawFromEnv } from '../cli/config.js';
import { TOPICS, type JobSpec } from '../engine/ports.js';
import type { MemoryLog } from '../adapters/memory/index.js';

const rounds = Number(process.argv[2] ?? 4);
const jobs = Number(process.argv[3] ?? 10_000);
const maybeGc = (globalThis as { gc?: () => void }).gc;
if (!maybeGc) throw new Error('run with node --expose-gc');
const gc: () => void = maybeGc;

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-heap-'));
  const config = compileConfig(rawFromEnv({ ATS_DATA_DIR: dir, PORT: '0', LOG_LEVEL: 'silent', ATS_WORKER_CONCURRENCY: '200' }));
  const system = await compose(config);
  await system.start();
  const log = system.log as MemoryLog;
  const spec: JobSpec = { type: 'demo.echo', payload: { hello: 'world' }, queue: 'default', maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 60_000, priority: 0 };
  try {
    for (let round = 1; round <= rounds; round++) {
      for (let i = 0; i < jobs; i += 500) await system.transitions.submitMany(Array.from({ length: Math.min(500, jobs - i) }, () => spec));
      while ((await system.store.stats()).byState.done < round * jobs) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500)); // the relay's last PUBLISHED/SUCCEEDED events go out
      gc();
      const m = process.memoryUsage();
      const held = Object.values(TOPICS).map((t) => `${t} ${log.retainedCount?.(t) ?? log.messages(t).length}`).join(', ');
      console.log(`round ${round}: ${round * jobs} jobs done, heap ${mib(m.heapUsed)}, rss ${mib(m.rss)}; log holds ${held}`);
    }
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
