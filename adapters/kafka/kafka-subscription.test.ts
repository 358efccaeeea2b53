/**
 * A consumer that kafkajs gives up on (a crash it does not restart from: any
 * error it does not class as retriable) must not leave the subscription
 * silently dead while the process lives on: the subscription starts a new
 * consumer and delivery resumes. The crash is real (a kafkajs non-retriable
 * error thrown inside the consumer's batch loop, on the real broker); only
 * its cause is injected, through the Kafka client handed to startSubscription.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import kafkajs, { Kafka, logLevel, type Consumer, type ConsumerConfig, type ConsumerRunConfig } from 'kafkajs';
import { TOPICS, type LogRecord } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './kafka-log.js';
import { compileKafkaLogOptions } from './kafka-options.js';
import { startSubscription } from './kafka-subscription.js';

// A CommonJS export the ESM named-import detection misses.
const { KafkaJSNonRetriableError } = kafkajs;
const brokers = kafkaBrokers();
const prefix = randomTopicPrefix();
after(() => deleteTopicsWithPrefix(prefix, brokers));

/** A Kafka client whose consumers' batch loop throws a non-retriable error once `arm()` was called. */
function faultyKafka() {
  const kafka = new Kafka({ brokers, clientId: 'ats-test-faulty', logLevel: logLevel.NOTHING });
  let armed = false;
  let consumersCreated = 0;
  const wrapped = Object.create(kafka) as Kafka;
  wrapped.consumer = (config: ConsumerConfig): Consumer => {
    consumersCreated++;
    const consumer = kafka.consumer(config);
    const run = consumer.run.bind(consumer);
    consumer.run = (cfg?: ConsumerRunConfig) => run({
      ...cfg,
      eachBatch: async (payload) => {
        if (armed) {
          armed = false;
          throw new KafkaJSNonRetriableError('injected: a batch failed in a way kafkajs does not restart from');
        }
        await cfg!.eachBatch!(payload);
      },
    });
    return consumer;
  };
  return { kafka: wrapped, arm: () => { armed = true; }, created: () => consumersCreated };
}

it('starts a new consumer after kafkajs gave up on one, and delivery resumes', { timeout: 90_000 }, async () => {
  await requireKafka();
  const options = compileKafkaLogOptions({ brokers, topicPrefix: prefix, logLevel: 'nothing', consumer: { redeliveryDelayMs: 50 } });
  const log = createKafkaLog({ brokers, topicPrefix: prefix, logLevel: 'nothing' });
  await log.ensureTopics();
  const { kafka, arm, created } = faultyKafka();
  const seen = new Set<string>();
  const sub = await startSubscription(() => ({ kafka, cut: () => {} }), options, {
    topic: TOPICS.dispatch, groupId: 'restart', fromBeginning: true,
    handle: async (records: readonly LogRecord[]) => { for (const r of records) seen.add(r.value); },
  });
  try {
    await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'before', headers: {} }]);
    for (const deadline = Date.now() + 20_000; !seen.has('before');) {
      assert.ok(Date.now() < deadline, 'the first message arrived');
      await new Promise((r) => setTimeout(r, 50));
    }
    arm();
    await log.publish([{ topic: TOPICS.dispatch, key: 'b', value: 'after', headers: {} }]);
    for (const deadline = Date.now() + 45_000; !seen.has('after');) {
      assert.ok(Date.now() < deadline, `the message published after the crash never arrived (consumers created: ${created()})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(created() >= 2, 'a new consumer replaced the dead one');
  } finally {
    await sub.stop();
    await log.close();
  }
});
