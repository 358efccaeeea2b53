/**
 * The Kafka floor: raw kafkajs producing and consuming the messages the
 * scheduler moves per job, with the scheduler's producer settings
 * (idempotent, acks -1, `sendBatch` of `relayBatch` messages, one request in
 * flight) on topics of 3 partitions. Per job: one dispatch message plus the
 * four transition messages of a no-op job's life (SUBMITTED, PUBLISHED,
 * STARTED, SUCCEEDED); one consumer group reads the dispatches (the workers),
 * another the transitions (the workers' cancel watch). With `dispatchOnly`,
 * one message per job. Prints one `BENCH_RESULT {...}` line.
 *
 *   node --import tsx bench/limits/kafka-floor.ts '{"jobs":20000}'
 */
import { Kafka, Partitioners, logLevel, type Consumer } from 'kafkajs';
import { runId } from '../lib/driver.js';
import { CpuMeter, serverPids } from '../lib/proc.js';
import { deleteTopicsWithPrefix, kafkaBrokers } from '../lib/services.js';
import { round } from '../lib/stats.js';

const EVENTS_PER_JOB = ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED'] as const;

/** Messages shaped like the scheduler's (`engine/messages.ts`), for job `i`. */
function messagesOf(i: number, dispatchOnly: boolean): Array<{ topic: 'dispatch' | 'events'; key: string; value: string }> {
  const jobId = `01J${String(i).padStart(23, '0')}`;
  const headers = { 'content-type': 'application/json' };
  void headers;
  const dispatch = { topic: 'dispatch' as const, key: jobId, value: JSON.stringify({ jobId, attempt: 1, type: 'bench.job', queue: 'default', priority: 0, dispatch: 1 }) };
  if (dispatchOnly) return [dispatch];
  const at = Date.now();
  const events = EVENTS_PER_JOB.map((type, seq) => ({
    topic: 'events' as const, key: jobId,
    value: JSON.stringify({ jobId, seq: seq + 1, type, from: seq ? 'pending' : null, to: 'pending', at, data: { type, at, attempt: 1 }, jobType: 'bench.job', queue: 'default' }),
  }));
  return [events[0]!, dispatch, ...events.slice(1)];
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as { jobs?: number; batch?: number; dispatchOnly?: boolean };
  const n = input.jobs ?? 20_000;
  const batch = input.batch ?? 500;
  const dispatchOnly = input.dispatchOnly ?? false;
  const prefix = `ats-bench-floor-${runId()}.`;
  const kafka = new Kafka({ clientId: 'ats-bench-floor', brokers: kafkaBrokers(), logLevel: logLevel.ERROR });
  const topics = { dispatch: `${prefix}ats.dispatch`, events: `${prefix}ats.events` };
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ waitForLeaders: true, topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })) });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const all = Array.from({ length: n }, (_, i) => messagesOf(i, dispatchOnly)).flat();
  let consumed = 0;
  let allConsumed!: () => void;
  const finished = new Promise<void>((r) => (allConsumed = r));
  const consumers: Consumer[] = [];
  const consume = async (topic: string, group: string) => {
    const c = kafka.consumer({ groupId: `${prefix}${group}`, maxWaitTimeInMs: 100 });
    consumers.push(c);
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      autoCommit: false, partitionsConsumedConcurrently: 3,
      eachBatch: async ({ batch: b, resolveOffset, commitOffsetsIfNecessary }) => {
        const last = b.messages[b.messages.length - 1];
        if (!last) return;
        consumed += b.messages.length;
        resolveOffset(last.offset);
        await commitOffsetsIfNecessary({ topics: [{ topic: b.topic, partitions: [{ partition: b.partition, offset: (BigInt(last.offset) + 1n).toString() }] }] });
        if (consumed >= all.length) allConsumed();
      },
    });
  };
  await consume(topics.dispatch, 'workers');
  if (!dispatchOnly) await consume(topics.events, 'cancels');
  const meter = new CpuMeter(() => ({ bench: [process.pid], ...serverPids(['kafka']) }));
  meter.start();
  const t0 = Date.now();
  for (let k = 0; k < all.length; k += batch) {
    const part = all.slice(k, k + batch);
    const byTopic = new Map<string, Array<{ key: string; value: string; headers: Record<string, string> }>>();
    for (const m of part) {
      const t = topics[m.topic];
      if (!byTopic.has(t)) byTopic.set(t, []);
      byTopic.get(t)!.push({ key: m.key, value: m.value, headers: { 'content-type': 'application/json', 'ats-outbox-id': String(k) } });
    }
    await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
  }
  const produced = Date.now();
  await finished;
  const seconds = (Date.now() - t0) / 1000;
  const cpu = meter.stop();
  const result = {
    jobs: n, messages: all.length, seconds: round(seconds, 2), jobsPerSec: round(n / seconds, 0), produceSeconds: round((produced - t0) / 1000, 2),
    settings: `kafkajs ${dispatchOnly ? '1 message' : '5 messages'} per job (${dispatchOnly ? 'dispatch' : 'dispatch + 4 transitions'}), sendBatch of ${batch} messages, idempotent, acks -1, 1 request in flight, 3 partitions; consumers with manual commits per batch`,
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 2)])),
    cpuPer1k: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / n, 3)])),
    peakMiB: { bench: round(process.resourceUsage().maxRSS / 1024, 0) },
  };
  await Promise.all(consumers.map((c) => c.disconnect()));
  await producer.disconnect();
  await admin.disconnect();
  await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`kafka floor failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
