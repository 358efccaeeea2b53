/**
 * End to end on MariaDB + Kafka with one worker process: api, relay and
 * timers in this process, one `ats start --role worker` child; N `demo.echo`
 * jobs submitted, timed from the first submit to the last SUCCEEDED. Prints
 * jobs/s (and one JSON line).
 *
 *   node --import tsx bench/e2e-echo.ts                # 1,000 jobs, submitMany in process
 *   node --import tsx bench/e2e-echo.ts --http         # POST /v1/jobs to this process's api, 32 in flight
 *   node --import tsx bench/e2e-echo.ts --http --batch # POST /v1/jobs/batch, 1,000 jobs a request, 2 in flight
 *   E2E_JOBS=5000 ATS_WORKER_CONCURRENCY=50 node --import tsx bench/e2e-echo.ts
 */
import { createPool } from 'mysql2/promise';
import { compose } from '../cli/compose.js';
import { compileConfig, type RawConfig } from '../cli/config.js';
import { createLogger } from '../engine/logger.js';
import type { JobSpec } from '../engine/ports.js';
import { inParallel } from '../engine/in-parallel.js';
import { postJobsBatch } from './systems/ats.js';
import { runId } from './lib/driver.js';
import { CpuMeter, serverPids } from './lib/proc.js';
import { startRole } from './lib/roles.js';
import { createBenchDatabase, deleteTopicsWithPrefix, kafkaBrokers } from './lib/services.js';
import { round, sleep } from './lib/stats.js';

const jobs = Number(process.env.E2E_JOBS ?? 1000);
const http = process.argv.includes('--http');
const batch = process.argv.includes('--batch');
const concurrency = process.env.ATS_WORKER_CONCURRENCY ?? '10';

async function main(): Promise<void> {
  const id = runId();
  const db = await createBenchDatabase(id);
  const prefix = `ats-bench-${id}.`;
  const raw: RawConfig = {
    mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix, roles: 'api,relay,timers', logLevel: 'error', port: 0,
    // Every submit comes from one address without a key: no per-address rate limit.
    rateLimit: 0,
  };
  const system = await compose(compileConfig(raw, { hostname: 'bench', pid: process.pid }), { logger: createLogger('error') });
  const reads = createPool({ uri: db.url, connectionLimit: 1 });
  const { url } = await system.start();
  const worker = await startRole('worker', 'worker', {
    MYSQL_URL: db.url, KAFKA_BROKERS: kafkaBrokers().join(','), ATS_TOPIC_PREFIX: prefix, ATS_WORKER_CONCURRENCY: concurrency,
  });
  try {
    const spec = (i: number): JobSpec => ({
      type: 'demo.echo', payload: { i }, queue: 'default', maxAttempts: 3, backoff: system.config.defaults.backoff, timeoutMs: 60_000, priority: 0,
    });
    const meter = new CpuMeter(() => ({ 'api+relay+timers': [process.pid], worker: [worker.pid], ...serverPids(['mariadb', 'kafka']) }));
    meter.start();
    const t0 = Date.now();
    const all = Array.from({ length: jobs }, (_, i) => i);
    if (http && batch) {
      const batches = Array.from({ length: Math.ceil(jobs / 1000) }, (_, b) => all.slice(b * 1000, b * 1000 + 1000));
      await inParallel(batches, 2, (slice) => postJobsBatch(url!, slice.map((i) => ({ type: 'demo.echo', payload: { i } }))));
    } else if (http) {
      await inParallel(all, 32, async (i) => {
        const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.echo', payload: { i } }) });
        if (res.status !== 201) throw new Error(`POST /v1/jobs answered ${res.status}`);
        await res.arrayBuffer();
      });
    } else {
      for (let k = 0; k < jobs; k += 1000) await system.transitions.submitMany(all.slice(k, k + 1000).map(spec));
    }
    const submitted = Date.now();
    for (;;) {
      const [rows] = await reads.query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'");
      if (Number((rows as Array<{ n: number }>)[0]!.n) >= jobs) break;
      await sleep(50);
    }
    const cpu = meter.stop();
    const [last] = await reads.query("SELECT MAX(at) AS at FROM job_events WHERE type = 'SUCCEEDED'");
    const seconds = (Number((last as Array<{ at: number }>)[0]!.at) - t0) / 1000;
    const result = {
      jobs, submit: http ? (batch ? 'HTTP POST /v1/jobs/batch, 1,000 a request, 2 in flight' : 'HTTP POST /v1/jobs, 32 in flight') : 'submitMany in process', workerConcurrency: Number(concurrency),
      seconds: round(seconds, 2), jobsPerSec: round(jobs / seconds, 0), submitSeconds: round((submitted - t0) / 1000, 2),
      cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 2)])),
    };
    process.stdout.write(`${result.jobsPerSec} jobs/s: ${jobs} demo.echo jobs, ${result.submit}, one worker process (concurrency ${concurrency}), MariaDB + Kafka\n`);
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await worker.stop();
    await reads.end();
    await system.stop();
    await db.drop();
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`e2e-echo failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
