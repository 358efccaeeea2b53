/**
 * A subscription's `stop()` returns only once the batch being handled is
 * done, even when leaving the group fails: its caller (a worker stopping)
 * goes on to end the work that batch started, and must not find it still
 * being started. The consumer is real (the real broker); only the failure of
 * its disconnect is injected, through the Kafka client handed to
 * startSubscription.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { Kafka, logLevel, type Consumer, type ConsumerConfig } from 'kafkajs';
import { TOPICS } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './kafka-log.js';
import { compileKafkaLogOptions } from './kafka-options.js';
import { startSubscription } from './kafka-subscription.js';

const brokers = kafkaBrokers();
const prefix = randomTopicPrefix();
after(() => deleteTopicsWithPrefix(prefix, brokers));

/** A Kafka client whose consumers' disconnect fails at once (the real one still runs, in the background). */
function failingDisconnect() {
  const kafka = new Kafka({ brokers, clientId: 'ats-test-disconnect', logLevel: logLevel.NOTHING });
  const disconnects: Array<Promise<void>> = [];
  const wrapped = Object.create(kafka) as Kafka;
  wrapped.consumer = (config: ConsumerConfig): Consumer => {
    const consumer = kafka.consumer(config);
    const disconnect = consumer.disconnect.bind(consumer);
    consumer.disconnect = async () => {
      disconnects.push(disconnect().catch(() => undefined));
      throw new Error('leaving the consumer group failed (injected)');
    };
    return consumer;
  };
  return { kafka: wrapped, disconnected: () => Promise.all(disconnects) };
}

it('stop() waits for the batch being handled even when the disconnect fails, then throws that failure', { timeout: 90_000 }, async () => {
  await requireKafka();
  const options = compileKafkaLogOptions({ brokers, topicPrefix: prefix, logLevel: 'nothing' });
  const log = createKafkaLog({ brokers, topicPrefix: prefix, logLevel: 'nothing' });
  await log.ensureTopics();
  const { kafka, disconnected } = failingDisconnect();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const handling = { entered: false, done: false };
  const sub = await startSubscription(() => ({ kafka, cut: () => {} }), options, {
    topic: TOPICS.dispatch, groupId: 'stop-fails', fromBeginning: true,
    handle: async () => {
      handling.entered = true;
      await held;
      handling.done = true;
    },
  });
  try {
    await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'held', headers: {} }]);
    for (const deadline = Date.now() + 20_000; !handling.entered;) {
      assert.ok(Date.now() < deadline, 'the message arrived');
      await new Promise((r) => setTimeout(r, 20));
    }
    let doneWhenStopped: boolean | undefined;
    const stopped = sub.stop().then(
      () => { doneWhenStopped = handling.done; return null; },
      (err: Error) => { doneWhenStopped = handling.done; return err; },
    );
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 200))]); // a moment for stop() to return, were it not to wait
    release();
    const failure = await stopped;
    assert.equal(doneWhenStopped, true, 'stop() settled only once the batch being handled was done');
    assert.match(failure?.message ?? 'stop() resolved', /leaving the consumer group failed \(injected\)/, 'stop() throws the failure');
  } finally {
    release();
    await disconnected();
    await log.close();
  }
});
