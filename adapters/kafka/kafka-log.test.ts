import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { TOPICS, type Topic } from '../../engine/ports.js';
import { BATCH_TOPIC } from '../sql/outbox.js';
import { logContract } from '../../tests/contracts/log.contract.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { compileKafkaLogOptions, createKafkaLog, type KafkaLogOptions } from './index.js';

const brokers = kafkaBrokers();
const kafkaUp = await requireKafka();

/** A log on a fresh topic prefix; cleanup closes it and deletes its topics. */
function freshLog(extra: Partial<KafkaLogOptions> = {}) {
  const topicPrefix = randomTopicPrefix();
  const log = createKafkaLog({ brokers, topicPrefix, clientId: 'ats-contract', logLevel: 'error', ...extra });
  return {
    log,
    topicPrefix,
    cleanup: async () => {
      await log.close();
      await deleteTopicsWithPrefix(topicPrefix, brokers);
    },
  };
}

if (kafkaUp) {
  logContract('Kafka', async () => freshLog(), { timeoutMs: 30_000, settleMs: 1000 });

  describe('Kafka log specifics', () => {
    const admin = new Kafka({ brokers, clientId: 'ats-test-admin', logLevel: logLevel.NOTHING }).admin();
    after(() => admin.disconnect());

    it('creates the three topics under the prefix with the configured partitions', async () => {
      const { log, topicPrefix, cleanup } = freshLog({ partitions: 2 });
      try {
        await log.ensureTopics();
        await admin.connect();
        const names = Object.values(TOPICS).map((t) => topicPrefix + t);
        const { topics } = await admin.fetchTopicMetadata({ topics: names });
        assert.deepEqual(topics.map((t) => [t.name, t.partitions.length]).sort(), names.map((n) => [n, 2]).sort());
      } finally {
        await cleanup();
      }
    });

    it('refuses to publish to the topic of a row of many messages (what a relay from before outbox batching would try)', async () => {
      const { log, cleanup } = freshLog();
      try {
        const row = { topic: BATCH_TOPIC as Topic, key: '', value: 'ats.events\njob-1\n{}\n{}', headers: {} };
        await assert.rejects(log.publish([row]));
      } finally {
        await cleanup();
      }
    });

    it('fails ping fast with ATS_ERR_NOT_READY when no broker listens', async () => {
      const log = createKafkaLog({ brokers: ['127.0.0.1:1'], connectTimeoutMs: 500, logLevel: 'nothing' });
      const started = Date.now();
      await assert.rejects(log.ping(), { code: 'ATS_ERR_NOT_READY' });
      assert.ok(Date.now() - started < 2000, `ping took ${Date.now() - started} ms`);
      await log.close();
    });

    it('keeps its partitions through a handle longer than the session timeout (heartbeats)', { timeout: 60_000 }, async () => {
      // 6000 ms is the broker's group.min.session.timeout.ms: the shortest session there is.
      const { log, cleanup } = freshLog({ consumer: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 } });
      try {
        const calls: string[][] = [];
        const sub = await log.consume({
          topic: TOPICS.dispatch, groupId: 'slow', fromBeginning: true,
          handle: async (records) => {
            calls.push(records.map((r) => r.value));
            if (records.some((r) => r.value === 'slow')) await new Promise((r) => setTimeout(r, 7000));
          },
        });
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'slow', headers: {} }]);
        const deadline = Date.now() + 20_000;
        while (calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 7000 + 1000));
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'after', headers: {} }]);
        while (!calls.flat().includes('after') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await sub.stop();
        // Without heartbeats the member is dropped mid-handle, its commit is refused and 'slow' comes again.
        assert.deepEqual(calls.flat(), ['slow', 'after']);
      } finally {
        await cleanup();
      }
    });

    it('refuses to publish once closed', async () => {
      const { log, cleanup } = freshLog();
      await cleanup();
      await assert.rejects(log.publish([{ topic: TOPICS.events, key: 'k', value: 'v', headers: {} }]), { code: 'ATS_ERR_NOT_READY' });
    });
  });
} else {
  it('Kafka event log', { skip: 'no Kafka broker reachable and ATS_ALLOW_SKIP=1' }, () => {});
}

describe('Kafka log options', () => {
  it('applies defaults and rejects bad values with ATS_ERR_CONFIG', () => {
    const opts = compileKafkaLogOptions({ brokers: ['b:9092'] });
    assert.equal(opts.partitions, 3);
    assert.equal(opts.topicPrefix, '');
    assert.equal(opts.consumer.partitionsConsumedConcurrently, 3);
    assert.ok(Object.isFrozen(opts) && Object.isFrozen(opts.consumer));
    assert.throws(() => compileKafkaLogOptions({ brokers: [] }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => compileKafkaLogOptions({ brokers: ['b'], partitions: 0 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(
      () => compileKafkaLogOptions({ brokers: ['b'], consumer: { heartbeatIntervalMs: 7000, sessionTimeoutMs: 6000 } }),
      { code: 'ATS_ERR_CONFIG' },
    );
  });
});
