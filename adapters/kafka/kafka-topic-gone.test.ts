/**
 * A topic deleted under a running consumer (an operator's delete, or a Kafka
 * that lost its data and came back empty at the same address): the consumer
 * crashes on the unknown topic, and kafkajs restarts it every 200 ms for as
 * long as the topic is missing, two log lines and a metadata request each
 * time. A lane's topic, or ats.workflows, is made again only by a publish to
 * it, which may not come for hours. So the subscription makes its topic again
 * (with the log's partition count, as `consume` made it), and reads it from
 * its start: a message published to the new topic by anyone arrives.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { LogRecord, Logger } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './kafka-log.js';

const brokers = kafkaBrokers();
const prefix = randomTopicPrefix();
after(() => deleteTopicsWithPrefix(prefix, brokers));

const TOPIC = 'ats.dispatch.gone';

function capturingLogger(): { logger: Logger; lines: Array<{ level: string; msg: string }> } {
  const lines: Array<{ level: string; msg: string }> = [];
  const at = (level: string) => (msg: string) => { lines.push({ level, msg }); };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  for (const deadline = Date.now() + deadlineMs; !(await check());) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

it('a consumer whose topic was deleted makes it again and reads what is published to it afterwards', { timeout: 120_000 }, async () => {
  await requireKafka();
  const { logger, lines } = capturingLogger();
  const log = createKafkaLog({ brokers, topicPrefix: prefix, logLevel: 'info', logger, partitions: 2 });
  const kafka = new Kafka({ brokers, clientId: 'ats-test-topic-gone', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await admin.connect();
  await producer.connect();
  const name = `${prefix}${TOPIC}`;
  const seen = new Set<string>();
  const sub = await log.consume({
    topic: TOPIC, groupId: 'gone', fromBeginning: true,
    handle: async (records: readonly LogRecord[]) => { for (const r of records) seen.add(r.value); },
  });
  try {
    await log.publish([{ topic: TOPIC, key: 'a', value: 'before', headers: {} }]);
    await until('the first message arrived', 20_000, () => seen.has('before'));
    // An unknown-topic error of stale metadata (a broker restarting) while the topic is listed: nothing made, nothing said.
    const remake = (log as unknown as { remakeTopic(topic: string): Promise<boolean> }).remakeTopic.bind(log);
    assert.equal(await remake(TOPIC), false, 'a topic still listed is not made again');

    // The first try at making it again fails (Kafka refusing it, an ACL say): said at warn, then the next try makes it.
    let refusals = 0;
    (log as unknown as { remakeTopic(topic: string): Promise<boolean> }).remakeTopic = async (topic: string) => {
      if (refusals++ === 0) throw new Error('refused by this test');
      return remake(topic);
    };
    await admin.deleteTopics({ topics: [name], timeout: 10_000 });
    await until('the deleted topic was gone from the metadata', 20_000, async () => !(await admin.listTopics()).includes(name));
    // Nothing publishes through the log (which would make the topic at its second publish): the consumer alone must.
    await until('the consumer made its topic again', 60_000, async () => (await admin.listTopics()).includes(name));
    const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
    assert.equal(topics[0]!.partitions.length, 2, 'made again with the log\'s partition count');
    assert.ok(lines.some((l) => l.level === 'warn' && /was gone.*made again/.test(l.msg)), 'a warning says the topic was gone and is made again');
    assert.ok(refusals >= 2, 'made again after a refused try');
    assert.ok(lines.some((l) => l.level === 'warn' && /making the gone topic .* again failed/.test(l.msg)), 'the refused try is a warning');
    await until('the consumer joined the topic made again', 45_000, () => lines.some((l) => l.level === 'info' && /the consumer of .* works again/.test(l.msg)));

    // A message published by another client (a relay in another process) after the topic was made again.
    await until('the new topic took a message', 20_000, () => producer.send({ topic: name, messages: [{ key: 'b', value: 'after' }], acks: -1 })
      .then(() => true, () => false));
    await until('the message published to the topic made again arrived', 45_000, () => seen.has('after'));
  } finally {
    await sub.stop();
    await producer.disconnect();
    await admin.disconnect();
    await log.close();
  }
});
