/**
 * Rough throughput of the Kafka event log on a real broker: publish N small
 * messages in batches, then consume them all with one group. Prints msgs/s.
 * Not a test and not the benchmark (that is `bench/`); a sanity number.
 *
 *   node --import tsx bench/kafka-log-throughput.ts [count=10000] [batch=1000]
 *
 * Env: KAFKA_BROKERS (default 127.0.0.1:9092). Topics go under a random
 * prefix and are deleted at the end.
 */
import { TOPICS, type LogMessage } from '../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix } from '../tests/helpers/kafka.js';
import { createKafkaLog } from '../adapters/kafka/index.js';

const count = Number(process.argv[2] ?? 10_000);
const batch = Number(process.argv[3] ?? 1000);
const brokers = kafkaBrokers();
const topicPrefix = randomTopicPrefix();

const rate = (n: number, ms: number) => `${Math.round((n * 1000) / ms).toLocaleString('en-US')} msgs/s`;

function messages(): LogMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: TOPICS.dispatch,
    key: `job-${i % 1000}`,
    value: JSON.stringify({ jobId: `job-${i % 1000}`, attempt: 1, type: 'demo.echo', queue: 'default', n: i }),
    headers: { 'ats-outbox-id': String(i + 1) },
  }));
}

async function main(): Promise<void> {
  const log = createKafkaLog({ brokers, topicPrefix, clientId: 'ats-measure', logLevel: 'error' });
  try {
    await log.ensureTopics();
    const all = messages();
    const t0 = performance.now();
    for (let i = 0; i < all.length; i += batch) await log.publish(all.slice(i, i + batch));
    const published = performance.now() - t0;
    console.log(`publish: ${count} msgs in batches of ${batch}: ${published.toFixed(0)} ms, ${rate(count, published)}`);

    let seen = 0;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => { finished = resolve; });
    const t1 = performance.now();
    const sub = await log.consume({
      topic: TOPICS.dispatch, groupId: 'measure', fromBeginning: true,
      handle: async (records) => {
        seen += records.length;
        if (seen >= count) finished();
      },
    });
    const joined = performance.now() - t1;
    await done;
    const consumed = performance.now() - t1;
    console.log(`consume: ${seen} msgs, one group: ${consumed.toFixed(0)} ms incl. ${joined.toFixed(0)} ms join,`
      + ` ${rate(seen, consumed)} (${rate(seen, consumed - joined)} after join)`);
    await sub.stop();
  } finally {
    await log.close();
    await deleteTopicsWithPrefix(topicPrefix, brokers);
  }
}

await main();
