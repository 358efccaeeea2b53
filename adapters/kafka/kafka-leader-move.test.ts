/**
 * A publish whose send kafkajs answers for only some of the partitions it carried messages for.
 *
 * kafkajs 2.2.4's `sendBatch` keeps, across its retries, the answer of each broker that took its
 * part of the batch. When a broker dies mid-send and a partition's leadership moves to a broker
 * that answered already, the retry sends that partition's messages to nobody (that broker "has its
 * answer") and the `sendBatch` resolves: its answer lacks the partition, its messages were never
 * written. On a three-broker cluster, killing a partition leader while the relay published lost
 * every such batch's dispatches for that partition (the outbox rows were deleted: jobs stuck in
 * `published` until the lost-dispatch repair). Here the producer's `sendBatch` is made to behave
 * so, on the shared broker, for its first call: the messages of one partition are dropped from the
 * request, and the answer is the real answer for the rest.
 */
import assert from 'node:assert/strict';
import { after, describe, it, mock } from 'node:test';
import { Kafka, logLevel, type Producer, type ProducerBatch } from 'kafkajs';
import { TOPICS, type Logger } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './index.js';

const brokers = kafkaBrokers();
const kafkaUp = await requireKafka();
const prefixes: string[] = [];
after(() => Promise.all(prefixes.map((p) => deleteTopicsWithPrefix(p, brokers))));

/** Makes every producer made from now on drop partition `dropped`'s messages from the first `drops` sendBatch calls of the log, answering for the rest. */
function dropOnePartition(dropped: number, drops: number) {
  const made = Kafka.prototype.producer;
  let left = drops;
  return mock.method(Kafka.prototype, 'producer', function (this: Kafka, ...args: Parameters<Kafka['producer']>): Producer {
    const producer = made.apply(this, args);
    const sendBatch = producer.sendBatch.bind(producer);
    producer.sendBatch = async (batch: ProducerBatch) => {
      if (left <= 0) return sendBatch(batch);
      left--;
      const kept = (batch.topicMessages ?? []).map((t) => ({ ...t, messages: t.messages.filter((m) => m.partition !== dropped) }));
      return sendBatch({ ...batch, topicMessages: kept.filter((t) => t.messages.length > 0) });
    };
    return producer;
  });
}

describe('Kafka log: a send answered for some of its partitions only', { skip: kafkaUp ? false : 'no Kafka broker reachable and ATS_ALLOW_SKIP=1' }, () => {
  it('the messages of a partition the answer lacks are sent again: every message is written, once', { timeout: 60_000 }, async () => {
    const topicPrefix = randomTopicPrefix();
    prefixes.push(topicPrefix);
    const lines: Array<{ level: string; msg: string }> = [];
    const at = (level: string) => (msg: string) => void lines.push({ level, msg });
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const spy = dropOnePartition(1, 1);
    const log = createKafkaLog({ brokers, topicPrefix, clientId: 'ats-test-leader-move', logLevel: 'nothing', logger, partitions: 3 });
    const keys = Array.from({ length: 30 }, (_, i) => `job-${i}`);
    try {
      await log.ensureTopics();
      const pick = await log.partitioner(TOPICS.dispatch);
      assert.ok(keys.some((k) => pick(k) === 1), 'some keys map to partition 1');
      await log.publish(keys.map((key) => ({ topic: TOPICS.dispatch, key, value: 'dispatch', headers: {} })));
    } finally {
      spy.mock.restore();
      await log.close();
    }
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(`${topicPrefix}${TOPICS.dispatch}`);
      const pick = (await import('./kafka-records.js')).keyPartitioner(`${topicPrefix}${TOPICS.dispatch}`, 3);
      const expected = [0, 1, 2].map((p) => keys.filter((k) => pick(k) === p).length);
      const written = [0, 1, 2].map((p) => Number(offsets.find((o) => o.partition === p)?.offset ?? -1));
      assert.deepEqual(written, expected, 'each partition holds its keys\' messages, once');
    } finally {
      await admin.disconnect();
    }
    assert.ok(lines.some((l) => l.level === 'warn' && /sent again/.test(l.msg)), 'the send again is logged as a warning');
  });
});
