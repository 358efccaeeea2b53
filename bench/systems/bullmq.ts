/**
 * BullMQ on the machine's Redis, producer and worker in the benchmark process.
 * Settings from BullMQ's guides: `Queue.addBulk` for bulk submits, one
 * `Worker` with `concurrency`, `removeOnComplete`/`removeOnFail` (auto-removal,
 * so Redis memory stays bounded), `maxRetriesPerRequest: null` on the worker's
 * connection. Start and done times are the job's `processedOn` / `finishedOn`,
 * stamped by the worker, read from the `completed` event.
 * Persistence (AOF everysec, or none) is set by `bench/run.ts` around the case;
 * the settings line reports what Redis says it runs with. `bullmq-aof` refuses
 * to run on a Redis without AOF (a case started alone, `bench/case.ts`, would
 * otherwise measure BullMQ without it under the AOF name).
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { runBenchJob, runId, type BenchJob, type CaseOptions, type Driver, type JobTimes } from '../lib/driver.js';
import { redisUrl } from '../lib/services.js';

/** BullMQ on Redis as found, or (`aof`) on Redis with AOF, which must be on already. */
export async function bullmq(opts: CaseOptions, need: { aof: boolean } = { aof: false }): Promise<Driver> {
  const id = runId();
  const prefix = `ats-bench-${id}`;
  const name = 'bench';
  const connection = () => new Redis({ ...redisUrl(), maxRetriesPerRequest: null });
  const producer = connection();
  const consumer = connection();
  // Before the queue and the worker exist: a refused case leaves nothing under its prefix.
  const persistence = await describePersistence(producer);
  if (need.aof && !persistence.startsWith('AOF on')) {
    producer.disconnect();
    consumer.disconnect();
    throw new Error(`bullmq-aof needs Redis with AOF on, and it runs with ${persistence}: run it through bench/run.ts (BENCH_ONLY=bullmq-aof), which turns AOF on around the case, or turn it on first (redis-cli CONFIG SET appendfsync everysec; redis-cli CONFIG SET appendonly yes)`);
  }
  const queue = new Queue<BenchJob>(name, {
    connection: producer, prefix,
    defaultJobOptions: { attempts: 2, removeOnComplete: true, removeOnFail: true },
  });
  const times = new Map<string, JobTimes>();
  let finished = 0;
  const worker = new Worker<BenchJob>(name, async (job) => runBenchJob(job.data, job.attemptsMade + 1), {
    connection: consumer, prefix, concurrency: opts.concurrency,
  });
  worker.on('completed', (job) => {
    finished++;
    times.set(job.id!, { started: job.processedOn!, done: job.finishedOn! });
  });
  worker.on('failed', (job) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) finished++;
  });
  worker.on('error', () => undefined);
  await queue.waitUntilReady();
  await worker.waitUntilReady();
  return {
    settings: `Redis ${persistence}; Queue.addBulk (${opts.bulkSize} per call), Queue.add for one; one Worker, concurrency ${opts.concurrency}; attempts 2, no backoff; removeOnComplete/removeOnFail true`,
    servers: ['redis'],
    processes: () => ({}),
    submitBulk: async (jobs) => (await queue.addBulk(jobs.map((data) => ({ name: 'job', data })))).map((j) => j.id!),
    submitOne: async (job) => (await queue.add('job', job)).id!,
    countFinished: async () => finished,
    times: async () => times,
    async stop() {
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await deleteKeys(producer, `${prefix}:*`);
      producer.disconnect();
      consumer.disconnect();
    },
  };
}

async function describePersistence(redis: Redis): Promise<string> {
  const [, aof] = (await redis.config('GET', 'appendonly')) as string[];
  const [, fsync] = (await redis.config('GET', 'appendfsync')) as string[];
  const [, save] = (await redis.config('GET', 'save')) as string[];
  const rdb = save ? `RDB save "${save}"` : 'no RDB snapshots';
  return aof === 'yes' ? `AOF on (appendfsync ${fsync}), ${rdb}` : `no AOF, ${rdb}`;
}

/** Deletes this run's keys only (SCAN + UNLINK on the prefix). */
async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
