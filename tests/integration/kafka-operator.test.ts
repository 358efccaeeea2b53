/**
 * What a Kafka operator does to a running deployment: partitions added to
 * the scheduler's topics (each job's messages still on the partition of its
 * id, as the timers' lost-dispatch repair maps it), a topic deleted while the
 * scheduler runs (made again at the next publish), unread dispatches deleted
 * by retention or skipped by a reset of the workers' group (not reported
 * unread, so the repair dispatches their jobs again).
 *
 * Needs a broker (KAFKA_BROKERS).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { createKafkaLog } from '../../adapters/kafka/index.js';
import { keyPartitioner } from '../../adapters/kafka/kafka-records.js';
import { laneTopic } from '../../engine/lanes.js';
import { CONTENT_TYPE, KIND_HEADER, SCHEMA_HEADER, TRANSITION_KIND } from '../../engine/messages.js';
import { TOPICS, type EventLog, type LogMessage, type Logger } from '../../engine/ports.js';
import { logForFormat, transitionsOf } from '../../engine/transition-records.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';

const brokers = kafkaBrokers();
await requireKafka();

const prefixes: string[] = [];
const logs: EventLog[] = [];
const kafka = new Kafka({ clientId: 'ats-operator-test', brokers, logLevel: logLevel.NOTHING });
const admin: Admin = kafka.admin();
await admin.connect();
after(async () => {
  await Promise.allSettled(logs.map((l) => l.close()));
  for (const p of prefixes) await deleteTopicsWithPrefix(p, brokers).catch(() => {});
  await admin.disconnect();
});

/** A log on topics of its own; `topicRecheckMs` 0: every publish reads the partition counts again. */
function freshLog(topicRecheckMs?: number): { log: EventLog; prefix: string } {
  const prefix = randomTopicPrefix();
  prefixes.push(prefix);
  const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'ats-operator', logLevel: 'nothing', partitions: 3, ...(topicRecheckMs === undefined ? {} : { topicRecheckMs }) });
  logs.push(log);
  return { log, prefix };
}

const transition = (jobId: string, seq: number, pad = 0): LogMessage => ({
  topic: TOPICS.events,
  key: jobId,
  value: JSON.stringify({ jobId, seq, type: 'SUBMITTED', from: null, to: 'pending', at: Date.now(), data: { pad: 'x'.repeat(pad) }, jobType: 'demo.echo', queue: 'default', tenant: 'default' }),
  headers: { 'content-type': CONTENT_TYPE, [KIND_HEADER]: TRANSITION_KIND, [SCHEMA_HEADER]: '1' },
});

const dispatch = (jobId: string): LogMessage => ({
  topic: TOPICS.dispatch,
  key: jobId,
  value: JSON.stringify({ jobId, attempt: 1, type: 'demo.echo', queue: 'default', tenant: 'default', priority: 0, dispatch: 1 }),
  headers: { 'content-type': CONTENT_TYPE, [KIND_HEADER]: 'dispatch', [SCHEMA_HEADER]: '1' },
});

/** Two ids that share a partition of 3 and not of 6, the second moving to another partition at 6 (the topic's murmur2 partitioner). */
function idsSplitBy(topic: string): [string, string] {
  const of3 = keyPartitioner(topic, 3);
  const of6 = keyPartitioner(topic, 6);
  const ids = Array.from({ length: 200 }, (_, i) => `JOB-${String(i).padStart(22, '0')}`);
  const a = ids.find((id) => of6(id) === of3(id))!;
  const b = ids.find((id) => of3(id) === of3(a) && of6(id) !== of3(id))!;
  return [a, b];
}

/** Every record of `topic` (all partitions, from the start), read until `count` came. */
async function readAll(topic: string, count: number): Promise<Array<{ partition: number; key: string; value: string; headers: Record<string, string> }>> {
  const consumer = kafka.consumer({ groupId: `reader-${Math.random()}`, maxWaitTimeInMs: 100 });
  const out: Array<{ partition: number; key: string; value: string; headers: Record<string, string> }> = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${out.length} of ${count} records of ${topic} came`)), 30_000);
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        out.push({ partition, key: message.key!.toString(), value: message.value!.toString(), headers });
        if (out.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return out;
}

/** Adds partitions to `topic` up to `count`, and waits until the broker's metadata shows them all led. */
async function addPartitions(topic: string, count: number): Promise<void> {
  await admin.createPartitions({ topicPartitions: [{ topic, count }] });
  for (let i = 0; i < 100; i++) {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = topics[0]?.partitions ?? [];
    if (partitions.length === count && partitions.every((p) => p.leader >= 0)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${topic}: ${count} partitions not all led within 10 s`);
}

describe('a Kafka operator adds partitions to a running scheduler\'s topics', () => {
  it('ats.events: every transition of a job lands on the partition of its own id, packed by the count read again', async () => {
    const { log, prefix } = freshLog(0);
    const events = logForFormat(log, 'batch');
    await log.ensureTopics();
    const name = prefix + TOPICS.events;
    const [a, b] = idsSplitBy(name);
    await events.publish([transition('warm-up', 1)]); // the relay's partitioner is taken now, at 3 partitions
    await addPartitions(name, 6);
    // One relay batch holding a transition of a and then one of b; then b alone.
    await events.publish([transition(a, 1), transition(b, 1)]);
    await events.publish([transition(b, 2)]);
    // The warm-up, then a and b apart (their ids map to two partitions of 6), then b again.
    const records = await readAll(name, 4);
    const ofB = records.flatMap((r) => transitionsOf({ value: r.value, headers: r.headers }).filter((t) => t.jobId === b).map((t) => ({ seq: t.seq, partition: r.partition })));
    const want = keyPartitioner(name, 6)(b);
    assert.deepEqual(ofB, [{ seq: 1, partition: want }, { seq: 2, partition: want }], `job b's transitions on partitions ${JSON.stringify(ofB)}; its id maps to ${want}`);
  });

  it('a dispatch lane: the log\'s partitioner (the timers\' lost-dispatch repair) agrees with where the dispatch went', async () => {
    const { log, prefix } = freshLog(0);
    await log.ensureTopics();
    const name = prefix + TOPICS.dispatch;
    const [, b] = idsSplitBy(name);
    const before = (await log.partitioner(TOPICS.dispatch))(b); // as the timers' first pass takes it
    await addPartitions(name, 6);
    await log.publish([dispatch(b)]);
    const [record] = await readAll(name, 1);
    const now = (await log.partitioner(TOPICS.dispatch))(b);
    assert.equal(now, record!.partition, `the timers map job ${b} to partition ${now} (was ${before}); its dispatch is on ${record!.partition}`);
    assert.equal(now, keyPartitioner(name, 6)(b));
  });
});

describe('a partition count read anew while a publish is in flight', () => {
  it('does not fail that publish (the producer is replaced at the next publish, not under this one)', async () => {
    const { log, prefix } = freshLog(0);
    await log.ensureTopics();
    const lane = `${TOPICS.dispatch}.p1`;
    await log.partitioner(lane); // as the timers' lost-dispatch pass takes it, at 3
    await log.publish([dispatch('warm')]);
    await addPartitions(prefix + lane, 6);
    // The relay publishes a large batch (a produce request per message, one after the other)...
    const big = Array.from({ length: 60 }, (_, i) => ({ ...dispatch(`JOB-${i}`), value: JSON.stringify({ jobId: `JOB-${i}`, pad: 'x'.repeat(200_000) }) }));
    const publishing = log.publish(big).then(() => null, (e: unknown) => e as Error);
    await new Promise((r) => setTimeout(r, 300));
    // ...while the timers' pass reads the lane's partition count, now 6.
    assert.equal((await log.partitioner(lane))('JOB-1'), keyPartitioner(prefix + lane, 6)('JOB-1'));
    const error = await publishing;
    assert.equal(error, null, `the relay's publish failed: ${error?.message}`);
    await log.publish([dispatch('after')]);
  });
});

describe('retention deletes unread dispatches', () => {
  it('a dispatch deleted by retention before any worker read it is not reported as unread (the repair dispatches its job again)', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    const name = prefix + TOPICS.dispatch;
    const group = 'ats-workers';
    // The group read something on every partition (so its position tells).
    const ids = Array.from({ length: 30 }, (_, i) => `JOB-${String(i).padStart(22, '0')}`);
    await log.publish(ids.map(dispatch));
    const offsets = await admin.fetchTopicOffsets(name);
    await admin.setOffsets({ groupId: prefix + group, topic: name, partitions: offsets.map((p) => ({ partition: p.partition, offset: '0' })) });
    await new Promise((r) => setTimeout(r, 50));
    const before = Date.now();
    assert.equal((await log.unreadBefore(TOPICS.dispatch, group, before)).size, offsets.filter((p) => Number(p.high) > 0).length);
    // Retention deletes the unread dispatches (deleteRecords moves the log start as retention does).
    await admin.deleteTopicRecords({ topic: name, partitions: offsets.map((p) => ({ partition: p.partition, offset: p.high })) });
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, group, before)], []);
  });
});

describe('a Kafka operator deletes a topic while the scheduler runs', () => {
  it('the relay publishes to ats.dispatch again once it is gone: the topic is made again', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    await log.publish([dispatch('JOB-BEFORE')]);
    await admin.deleteTopics({ topics: [prefix + TOPICS.dispatch], timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 2000));
    let error: unknown;
    for (let i = 0; i < 3; i++) {
      try {
        await log.publish([dispatch('JOB-AFTER')]);
        error = undefined;
        break;
      } catch (e) {
        error = e;
      }
    }
    const exists = (await admin.listTopics()).includes(prefix + TOPICS.dispatch);
    assert.equal(error, undefined, `every publish fails (topic exists: ${exists}): ${String((error as Error | undefined)?.message)}`);
  });
});

describe('a Kafka operator deletes a topic the timers asked about', () => {
  it('after unreadBefore on ats.dispatch, a publish once it is gone makes it again, and unreadBefore answers on it again', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    await log.publish([dispatch('JOB-BEFORE')]);
    // The timers' lost-dispatch repair asks the lane what is unread.
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, 'ats-workers', Date.now())], []);
    await admin.deleteTopics({ topics: [prefix + TOPICS.dispatch], timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 2000));
    // Within 3 tries, as without the question: the producer that had published to the gone topic fails once and is replaced.
    const publishes = async (message: LogMessage) => {
      let error: unknown;
      for (let i = 0; i < 3; i++) {
        try {
          await log.publish([message]);
          return;
        } catch (e) {
          error = e;
        }
      }
      const exists = (await admin.listTopics()).includes(prefix + message.topic);
      assert.fail(`every publish to ${message.topic} fails (topic exists: ${exists}): ${String((error as Error | undefined)?.message)}`);
    };
    // A new lane is made (its leaders asked until they serve it, as the gone topic's offsets were).
    await publishes({ ...dispatch('JOB-LANE'), topic: laneTopic('reports', 1) });
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, 'ats-workers', Date.now())], [], 'a topic that is gone has nothing unread');
    // Another topic, not asked about before, is answered for while the one asked about is gone.
    assert.deepEqual([...await log.unreadBefore(TOPICS.events, 'ats-workers', Date.now())], []);
    await publishes(dispatch('JOB-AFTER'));
    // The group's position at the start of the topic made again: the message published to it waits unread on its partition.
    const name = prefix + TOPICS.dispatch;
    await admin.setOffsets({ groupId: prefix + 'ats-workers', topic: name, partitions: [0, 1, 2].map((partition) => ({ partition, offset: '0' })) });
    const partition = keyPartitioner(name, 3)('JOB-AFTER');
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, 'ats-workers', Date.now())], [partition]);
    assert.deepEqual([...await log.unreadBefore(TOPICS.events, 'ats-workers', Date.now())], []);
  });
});

describe('a topic deleted, found by the count read again', () => {
  it('a publish after the count is read again makes the topic again and goes out', async () => {
    const { log, prefix } = freshLog(0);
    await log.ensureTopics();
    await log.publish([dispatch('JOB-BEFORE')]);
    await admin.deleteTopics({ topics: [prefix + TOPICS.dispatch], timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 2000));
    let tries = 0;
    for (;;) {
      tries++;
      try {
        await log.publish([dispatch('JOB-AFTER')]);
        break;
      } catch (e) {
        if (tries >= 3) throw e;
      }
    }
    assert.ok((await admin.listTopics()).includes(prefix + TOPICS.dispatch));
    const [record] = await readAll(prefix + TOPICS.dispatch, 1);
    assert.equal(record!.key, 'JOB-AFTER');
  });
});

describe('a Kafka operator resets the workers\' group while they are stopped', () => {
  it('--to-latest (unread dispatches skipped): none is reported unread, so the repair dispatches their jobs again', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    const name = prefix + TOPICS.dispatch;
    const ids = Array.from({ length: 30 }, (_, i) => `JOB-${String(i).padStart(22, '0')}`);
    await log.publish(ids.map(dispatch));
    await admin.setOffsets({ groupId: prefix + 'ats-workers', topic: name, partitions: [0, 1, 2].map((partition) => ({ partition, offset: '0' })) });
    await new Promise((r) => setTimeout(r, 50));
    const before = Date.now();
    assert.equal((await log.unreadBefore(TOPICS.dispatch, 'ats-workers', before)).size, 3);
    await admin.resetOffsets({ groupId: prefix + 'ats-workers', topic: name, earliest: false });
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, 'ats-workers', before)], []);
    await admin.deleteGroups([prefix + 'ats-workers']);
    assert.deepEqual([...await log.unreadBefore(TOPICS.dispatch, 'ats-workers', before)], []);
  });
});

describe('topics made beforehand with settings the scheduler cannot work with', () => {
  it('a compacted topic, and one taking smaller record batches than the broker\'s default, are each warned of once as they are found', async () => {
    const prefix = randomTopicPrefix();
    prefixes.push(prefix);
    await admin.createTopics({
      topics: [
        { topic: prefix + TOPICS.events, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
        { topic: prefix + TOPICS.dispatch, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '100000' }] },
      ],
    });
    const warnings: Array<{ msg: string; topic: unknown }> = [];
    const noop = () => undefined;
    const logger: Logger = { debug: noop, info: noop, error: noop, warn: (msg, fields) => void warnings.push({ msg, topic: fields?.topic }) };
    const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'ats-operator', logLevel: 'nothing', logger, topicRecheckMs: 0 });
    logs.push(log);
    await log.ensureTopics();
    await log.publish([dispatch('JOB-1')]); // the settings are read again: not said again
    assert.deepEqual(warnings.map((w) => [w.topic, /cleanup\.policy=delete/.test(w.msg), /max\.message\.bytes/.test(w.msg)]).sort(), [
      [prefix + TOPICS.dispatch, false, true],
      [prefix + TOPICS.events, true, false],
    ]);
  });
});
