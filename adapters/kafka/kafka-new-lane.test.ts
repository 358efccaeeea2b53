/**
 * A publish right after the log made a topic (a new queue's dispatch lane, made at its first
 * message), on the real broker: it goes out without a send kafkajs has to try again, so no
 * error line says a failure that is none. A KRaft broker names a new partition's leader in
 * its metadata before that leader serves it (it creates the partition's log after): a produce
 * in between is answered "not the leader", which kafkajs logs at error as it retries.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { laneTopic } from '../../engine/lanes.js';
import { TOPICS, type Logger } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './index.js';

const brokers = kafkaBrokers();
const kafkaUp = await requireKafka();
const prefixes: string[] = [];
after(() => Promise.all(prefixes.map((p) => deleteTopicsWithPrefix(p, brokers))));

describe('Kafka log: the first publish to a topic it just made', { skip: kafkaUp ? false : 'no Kafka broker reachable and ATS_ALLOW_SKIP=1' }, () => {
  it('a new lane\'s first messages go out at once after the topic is made: no error line', { timeout: 120_000 }, async () => {
    const topicPrefix = randomTopicPrefix();
    prefixes.push(topicPrefix);
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    // Many partitions: the broker takes longer to make their logs, the moment a produce can hit is longer.
    const log = createKafkaLog({ brokers, topicPrefix, clientId: 'ats-test-new-lane', logLevel: 'info', logger, partitions: 8 });
    const lanes = ['q1', 'q2', 'q3'].map((q) => laneTopic(`new-lane-${q}`, 0));
    try {
      await log.ensureTopics();
      // A relay that has published before: its producer is connected, so a send reaches the broker quickly.
      await log.publish([{ topic: TOPICS.events, key: 'job-0', value: 'warm', headers: {} }]);
      for (const topic of lanes) {
        // Keys on several partitions: the send goes to all of them.
        await log.publish(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => ({ topic, key: `job-${k}`, value: 'dispatch', headers: {} })));
      }
      assert.deepEqual((await log.listTopics()).filter((t) => lanes.includes(t)).sort(), [...lanes].sort());
    } finally {
      await log.close();
    }
    assert.deepEqual(lines.filter((l) => l.level === 'error'), [], 'no error line for a topic just made');
    // A failed send said again within a minute is written at debug (kafka-logging.ts): none of any lane at any level.
    assert.deepEqual(lines.filter((l) => /^Failed to send messages/.test(l.msg)), [], 'no send kafkajs had to try again');
  });
});
