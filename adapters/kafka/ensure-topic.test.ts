/**
 * The log's cache of the topics it knows (`ensureTopic`), without a broker: a
 * fake admin (through kafkajs' `Kafka.prototype.admin`) whose answers the test
 * holds and releases, and `performance.now` moved by hand past the recheck
 * interval, so the interleaving is the same every run.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { Kafka, type Admin } from 'kafkajs';
import { TOPICS } from '../../engine/ports.js';
import { createKafkaLog } from './index.js';

afterEach(() => mock.restoreAll());

describe('Kafka log: the topics it knows', () => {
  it('a create that fails after a newer read of the same topic took its place leaves that newer entry: no extra create-or-find', async () => {
    let now = 1_000;
    mock.method(performance, 'now', () => now);
    const prefix = 'cache-test.';
    const name = `${prefix}${TOPICS.events}`;
    const creates: Array<{ resolve: (v: boolean) => void; reject: (e: Error) => void }> = [];
    const fake = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      // The first two are held until the test answers them; any later one finds the topic at once.
      createTopics: () => new Promise<boolean>((resolve, reject) => {
        creates.push({ resolve, reject });
        if (creates.length > 2) resolve(false);
      }),
      describeConfigs: async () => ({ resources: [] }),
      fetchTopicMetadata: async () => ({ topics: [{ name, partitions: [0, 1, 2].map((p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0] })) }] }),
    } as unknown as Admin;
    mock.method(Kafka.prototype, 'admin', () => fake);
    const log = createKafkaLog({ brokers: ['127.0.0.1:1'], topicPrefix: prefix, topicRecheckMs: 1_000, logLevel: 'nothing' });
    try {
      // The first read (a create-or-find) is held; past the recheck interval a second read takes its place.
      const first = log.partitioner(TOPICS.events);
      await until(() => creates.length === 1);
      now += 2_000;
      const second = log.partitioner(TOPICS.events);
      // The first fails: the second, which waited on it, creates-or-finds the topic itself.
      creates[0]!.reject(new Error('create failed'));
      await assert.rejects(first, /create failed/);
      await until(() => creates.length === 2);
      creates[1]!.resolve(false);
      assert.equal((await second)('k') < 3, true);
      // Within the interval of the second read: known, nothing asked of the broker.
      now += 10;
      await log.partitioner(TOPICS.events);
      assert.equal(creates.length, 2, 'the second read\'s entry was kept');
    } finally {
      await log.close();
    }
  });

  it('creates its topics with `replicationFactor` when given, and without one (the broker\'s `default.replication.factor`) otherwise', async () => {
    const asked: Array<Record<string, unknown>> = [];
    const fake = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      createTopics: async ({ topics }: { topics: Array<Record<string, unknown>> }) => { asked.push(...topics); return true; },
      fetchTopicMetadata: async () => ({ topics: asked.map((t) => ({ name: t.topic, partitions: [0, 1].map((p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0] })) })) }),
      fetchTopicOffsets: async () => [],
    } as unknown as Admin;
    mock.method(Kafka.prototype, 'admin', () => fake);
    for (const replicationFactor of [3, undefined]) {
      asked.length = 0;
      const log = createKafkaLog({ brokers: ['127.0.0.1:1'], topicPrefix: 'rf.', partitions: 2, logLevel: 'nothing', ...(replicationFactor ? { replicationFactor } : {}) });
      try {
        await log.partitioner(TOPICS.dispatch);
      } finally {
        await log.close();
      }
      assert.deepEqual(asked, [{ topic: `rf.${TOPICS.dispatch}`, numPartitions: 2, ...(replicationFactor ? { replicationFactor } : {}) }]);
    }
    assert.throws(() => createKafkaLog({ brokers: ['127.0.0.1:1'], replicationFactor: 0 }), /replicationFactor must be an integer from 1/);
  });

  it('a create Kafka refuses fails naming the topic and each error: more replicas than brokers says so', async () => {
    const refused = Object.assign(new Error('Topic creation errors'), { errors: [{ topic: `rf.${TOPICS.dispatch}`, type: 'INVALID_REPLICATION_FACTOR' }] });
    const fake = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      createTopics: async () => { throw refused; },
    } as unknown as Admin;
    mock.method(Kafka.prototype, 'admin', () => fake);
    const log = createKafkaLog({ brokers: ['127.0.0.1:1'], topicPrefix: 'rf.', replicationFactor: 4, logLevel: 'nothing' });
    try {
      await assert.rejects(log.partitioner(TOPICS.dispatch), (e: Error & { code?: string }) => e.code === 'ATS_ERR_NOT_READY'
        && /^Kafka refused to create topic rf\.ats\.dispatch: INVALID_REPLICATION_FACTOR \(4 replicas asked: a topic has at most as many as the cluster has brokers\)$/.test(e.message));
    } finally {
      await log.close();
    }
  });
});

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < 1000, 'timed out');
    await new Promise((r) => setImmediate(r));
  }
}
