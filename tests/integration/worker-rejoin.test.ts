/**
 * A worker joining a lane's group while another worker's handler slots are
 * all taken: the busy worker's batches wait for a slot inside Kafka's
 * `eachBatch`, and kafkajs rejoins a rebalance only once that returns. Were
 * they to keep waiting, the group's rebalance would wait for them up to its
 * timeout, and the new worker's start with it (a lane group at a time). The
 * busy worker learns of the rebalance instead and stops waiting, leaving the
 * dispatches it did not claim uncommitted: they come again after the rejoin,
 * and every job runs once. Real broker, an in-memory SQLite store.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, it } from 'node:test';
import { createKafkaLog } from '../../adapters/kafka/index.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { Relay } from '../../engine/relay.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { Worker } from '../../engine/worker.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';

const prefix = randomTopicPrefix();
after(() => deleteTopicsWithPrefix(prefix));

const TYPE = 'test.rejoin';
/** The groups' rebalance timeout: what a join would wait for a member busy in its batch. */
const REBALANCE_TIMEOUT_MS = 20_000;

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

it('a worker joins a lane group within seconds while another worker is saturated, and every job runs once', { timeout: 120_000 }, async () => {
  await requireKafka();
  const clock = systemClock;
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const log = createKafkaLog({ brokers: kafkaBrokers(), topicPrefix: prefix, partitions: 2, logLevel: 'nothing', consumer: { rebalanceTimeoutMs: REBALANCE_TIMEOUT_MS } });
  await log.ensureTopics();
  const waker = new Waker();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  const relay = new Relay({ store, log, transitions, clock, logger: silentLogger, waker }, { batchSize: 100, pollMs: 20, errorBackoffMs: 50, publishedDelayMs: 0 });
  relay.start();

  // Every handler blocks until released; the runs of each job, by job id.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const runs = new Map<string, number>();
  const registry = new HandlerRegistry().register(TYPE, async (_payload, ctx) => {
    runs.set(ctx.jobId, (runs.get(ctx.jobId) ?? 0) + 1);
    await released;
  });
  const worker = (workerId: string, concurrency: number) => new Worker(
    { log, transitions, clock, logger: silentLogger, registry, store },
    { workerId, groupId: `${prefix}workers`, concurrency, leaseMs: 60_000, heartbeatMs: 1000, shutdownGraceMs: 200, queues: ['default'] },
  );
  const workers: Worker[] = [];
  try {
    const a = worker('a', 1);
    await a.start();
    workers.push(a);
    const ids: string[] = [];
    for (let k = 0; k < 6; k++) {
      const r = await transitions.submit({ type: TYPE, payload: { k }, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0 });
      assert.ok(r.ok);
      ids.push(r.job.id);
    }
    // A runs one; the dispatches it read besides wait for its one slot.
    await until('worker A saturated, with dispatches waiting for its slot', () => a.activeCount === 1 && a.slotUsage().waiting > 0);

    const b = worker('b', 6);
    const started = Date.now();
    await b.start();
    workers.push(b);
    const joinedMs = Date.now() - started;
    assert.ok(joinedMs < 8000, `worker B joined its lane groups after ${joinedMs} ms (the rebalance timeout is ${REBALANCE_TIMEOUT_MS} ms)`);

    release();
    for (const id of ids) {
      await until(`job ${id} done`, async () => (await store.getJob(id))?.snapshot.value === 'done', 30_000);
    }
    assert.deepEqual(ids.map((id) => runs.get(id)), ids.map(() => 1), 'every job ran exactly once');
  } finally {
    release();
    for (const w of workers) await w.stop();
    await relay.stop();
    await log.close();
    await store.close();
  }
});
