/**
 * What a Kafka operator does to a running deployment: partitions added to the
 * scheduler's topics, topics created beforehand with other settings, a topic
 * deleted while the scheduler runs. Each test states what the scheduler should
 * do; on the code as it is, those marked "fails" below do not.
 *
 * Needs a broker (KAFKA_BROKERS).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { createKafkaLog } from '../../adapters/kafka/index.js';
import { keyPartitioner } from '../../adapters/kafka/kafka-records.js';
import { CONTENT_TYPE, KIND_HEADER, SCHEMA_HEADER, TRANSITION_KIND } from '../../engine/messages.js';
import { TOPICS, type EventLog, type LogMessage } from '../../engine/ports.js';
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

function freshLog(): { log: EventLog; prefix: string } {
  const prefix = randomTopicPrefix();
  prefixes.push(prefix);
  const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'ats-operator', logLevel: 'nothing', partitions: 3 });
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

/** Every record of a one-partition `topic` still held, up to its end. */
async function readToEnd(topic: string): Promise<Array<{ value: string; headers: Record<string, string> }>> {
  const high = Number((await admin.fetchTopicOffsets(topic))[0]!.high);
  const consumer = kafka.consumer({ groupId: `reader-${Math.random()}`, maxWaitTimeInMs: 100 });
  const out: Array<{ value: string; headers: Record<string, string> }> = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${topic} not read to ${high}`)), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        out.push({ value: message.value!.toString(), headers });
        if (Number(message.offset) >= high - 1) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return out;
}

/**
 * A publish that fails retires the producer (kafka-log.ts `retireProducer`),
 * and the new one reads fresh metadata: what happens anyway once kafkajs's
 * metadata max age (5 minutes) has passed, with no failure at all.
 */
async function refreshProducerMetadata(log: EventLog): Promise<void> {
  await assert.rejects(log.publish([{ ...dispatch('too-large'), value: 'x'.repeat(2 * 1024 * 1024) }]));
}

describe('a Kafka operator adds partitions to a running scheduler\'s topics', () => {
  it('ats.events: every transition of a job lands on the partition of its own id (fails: packs by the partition count seen first)', async () => {
    const { log, prefix } = freshLog();
    const events = logForFormat(log, 'batch');
    await log.ensureTopics();
    const name = prefix + TOPICS.events;
    const [a, b] = idsSplitBy(name);
    await events.publish([transition('warm-up', 1)]); // the relay's partitioner is taken now, at 3 partitions
    await admin.createPartitions({ topicPartitions: [{ topic: name, count: 6 }] });
    await refreshProducerMetadata(log);
    // One relay batch holding a transition of a and then one of b; then b alone.
    await events.publish([transition(a, 1), transition(b, 1)]);
    await events.publish([transition(b, 2)]);
    const records = await readAll(name, 3);
    const ofB = records.flatMap((r) => transitionsOf({ value: r.value, headers: r.headers }).filter((t) => t.jobId === b).map((t) => ({ seq: t.seq, partition: r.partition })));
    const want = keyPartitioner(name, 6)(b);
    assert.deepEqual(ofB, [{ seq: 1, partition: want }, { seq: 2, partition: want }], `job b's transitions on partitions ${JSON.stringify(ofB)}; its id maps to ${want}`);
  });

  it('a dispatch lane: the log\'s partitioner (the timers\' lost-dispatch repair) agrees with where the dispatch went (fails: stale until a restart)', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    const name = prefix + TOPICS.dispatch;
    const [, b] = idsSplitBy(name);
    const before = (await log.partitioner(TOPICS.dispatch))(b); // as the timers' first pass takes it
    await admin.createPartitions({ topicPartitions: [{ topic: name, count: 6 }] });
    await refreshProducerMetadata(log);
    await log.publish([dispatch(b)]);
    const [record] = await readAll(name, 1);
    const now = (await log.partitioner(TOPICS.dispatch))(b);
    assert.equal(now, record!.partition, `the timers map job ${b} to partition ${now} (was ${before}); its dispatch is on ${record!.partition}`);
  });
});

describe('a Kafka operator creates the topics beforehand', () => {
  it('ats.events with max.message.bytes=100000: transitions of a few KiB each still go out (fails: the relay is stuck for good)', async () => {
    const { log, prefix } = freshLog();
    await admin.createTopics({ topics: [{ topic: prefix + TOPICS.events, numPartitions: 3, configEntries: [{ name: 'max.message.bytes', value: '100000' }] }] });
    await log.ensureTopics(); // says nothing of the topic's settings
    const events = logForFormat(log, 'batch');
    // 40 transitions of one job (one partition), 4 KiB each: each far under the topic's limit.
    const batch = Array.from({ length: 40 }, (_, i) => transition('JOB-ONE-PARTITION-000000000', i + 1, 4096));
    let error: unknown;
    for (let i = 0; i < 3; i++) {
      try {
        await events.publish(batch);
        error = undefined;
        break;
      } catch (e) {
        error = e;
      }
    }
    assert.equal(error, undefined, `the relay's publish fails every time: ${String((error as Error | undefined)?.message)}`);
  });

  it('ats.events with max.message.bytes=100000, ATS_EVENTS_FORMAT=single: the same (fails: one request per partition is one record batch of up to 256 Ki chars)', async () => {
    const { log, prefix } = freshLog();
    await admin.createTopics({ topics: [{ topic: prefix + TOPICS.events, numPartitions: 3, configEntries: [{ name: 'max.message.bytes', value: '100000' }] }] });
    await log.ensureTopics();
    const batch = Array.from({ length: 40 }, (_, i) => transition('JOB-ONE-PARTITION-000000000', i + 1, 4096));
    await assert.doesNotReject(log.publish(batch));
  });

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
  it('the relay publishes to ats.dispatch again once it is gone (fails: never created again until a restart)', async () => {
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

describe('a Kafka operator deletes and recreates a topic while workers run', () => {
  it('a running subscription to ats.dispatch reads the dispatches published after the topic was made again (fails: kafkajs fetches on from its old in-memory position, past the new records)', async () => {
    const { log, prefix } = freshLog();
    await log.ensureTopics();
    const name = prefix + TOPICS.dispatch;
    const seen: string[] = [];
    const sub = await log.consume({
      topic: TOPICS.dispatch, groupId: 'ats-workers', fromBeginning: true,
      handle: async (records) => { for (const r of records) seen.push(r.key); },
    });
    const ids = Array.from({ length: 12 }, (_, i) => `JOB-OLD-${String(i).padStart(18, '0')}`);
    await log.publish(ids.map(dispatch));
    for (let i = 0; i < 100 && seen.length < ids.length; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.length, ids.length);
    await admin.deleteTopics({ topics: [name], timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 3000));
    // The operator (or a process started meanwhile: ensureTopics) makes it again; a fresh relay publishes to it.
    await admin.createTopics({ topics: [{ topic: name, numPartitions: 3 }] });
    const relay = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'ats-operator-relay', logLevel: 'nothing' });
    logs.push(relay);
    const fresh = Array.from({ length: 6 }, (_, i) => `JOB-NEW-${String(i).padStart(18, '0')}`);
    await relay.publish(fresh.map(dispatch));
    for (let i = 0; i < 300 && !fresh.every((id) => seen.includes(id)); i++) await new Promise((r) => setTimeout(r, 100));
    const committed = await admin.fetchOffsets({ groupId: prefix + 'ats-workers', topics: [name] });
    const ends = await admin.fetchTopicOffsets(name);
    await sub.stop();
    assert.deepEqual(fresh.filter((id) => !seen.includes(id)), [],
      `dispatches published to the topic made again that the running worker never read; group committed ${JSON.stringify(committed[0]!.partitions.map((p) => [p.partition, p.offset]))}, topic ends ${JSON.stringify(ends.map((p) => [p.partition, p.high]))}`);
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

describe('a Kafka operator creates ats.events compacted (cleanup.policy=compact)', () => {
  it('compaction keeps each job\'s last transition (fails: a packed record keyed by another job goes with that job\'s next record)', async () => {
    const { log, prefix } = freshLog();
    const name = prefix + TOPICS.events;
    await admin.createTopics({
      topics: [{
        topic: name, numPartitions: 1, configEntries: [
          { name: 'cleanup.policy', value: 'compact' }, { name: 'segment.ms', value: '100' },
          { name: 'min.cleanable.dirty.ratio', value: '0.001' }, { name: 'min.compaction.lag.ms', value: '0' }, { name: 'delete.retention.ms', value: '0' },
        ],
      }],
    });
    await log.ensureTopics();
    const events = logForFormat(log, 'batch');
    await events.publish([transition('JOB-A', 1), transition('JOB-B', 1)]); // one record, keyed JOB-A
    await events.publish([transition('JOB-A', 2)]); // keyed JOB-A: compaction keeps this one only
    // Roll segments so the cleaner may run (it skips the active one), and wait for it.
    let last: string[] = [];
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      await log.publish([{ ...transition(`JOB-FILL-${i}`, 1), headers: { [KIND_HEADER]: 'filler' } }]);
      const records = await readToEnd(name);
      last = records.flatMap((r) => transitionsOf({ value: r.value, headers: r.headers }).map((t) => `${t.jobId}#${t.seq}`));
      if (!last.includes('JOB-A#1')) break; // compacted
    }
    assert.ok(!last.includes('JOB-A#1'), 'the cleaner did not run within a minute');
    assert.ok(last.includes('JOB-B#1'), `after compaction ats.events holds ${JSON.stringify(last)}: job JOB-B's only transition is gone`);
  });
});
