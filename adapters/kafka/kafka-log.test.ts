import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { Kafka, logLevel, type Producer } from 'kafkajs';
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

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await ok());) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Sends a record with a header whose value is null (length -1), as a Java
 * producer may. kafkajs encodes a null header value so, but measures its
 * length first with Buffer.byteLength, which throws on null: answered with 0 here.
 */
async function sendWithNullHeader(producer: Producer, topic: string, value: string): Promise<void> {
  const byteLength = Buffer.byteLength;
  Buffer.byteLength = ((input: Parameters<typeof byteLength>[0], encoding?: BufferEncoding) =>
    (input === null ? 0 : byteLength(input, encoding))) as typeof byteLength;
  try {
    const headers = { odd: null } as unknown as Record<string, string>;
    await producer.send({ topic, messages: [{ key: 'k', value, headers }] });
  } finally {
    Buffer.byteLength = byteLength;
  }
}

/**
 * Loses the answers to produce requests while armed: the broker writes the
 * records, the connection is reset before the client reads the answer (a
 * broker or network failing at that moment), each time kafkajs tries again. Patches `net.connect`, which
 * kafkajs's socket factory calls; `restore()` undoes it.
 */
function loseProduceAnswers() {
  const connect = net.connect;
  let armed = false;
  net.connect = ((...args: Parameters<typeof connect>) => {
    const socket = connect(...args);
    let answerDue = false;
    const on = socket.on.bind(socket);
    socket.on = ((event: string, listener: (...a: unknown[]) => void) => on(event, event !== 'data' ? listener : (data: unknown) => {
      if (answerDue) {
        socket.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
        return;
      }
      listener(data);
    })) as typeof socket.on;
    const write = socket.write.bind(socket) as (buffer: Buffer, ...rest: unknown[]) => boolean;
    socket.write = ((buffer: Buffer, ...rest: unknown[]) => {
      // A request: int32 size, int16 api key (0: Produce).
      if (armed && Buffer.isBuffer(buffer) && buffer.length >= 6 && buffer.readInt16BE(4) === 0) answerDue = true;
      return write(buffer, ...rest);
    }) as typeof socket.write;
    return socket;
  }) as typeof connect;
  return {
    arm: () => { armed = true; },
    disarm: () => { armed = false; },
    restore: () => { net.connect = connect; },
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

    it('creates a missing topic, a lane too, with the broker\'s default replication factor (no factor of its own)', async () => {
      // What the log asks for: its admin's createTopics calls, seen through kafkajs' client.
      const asked: Array<{ topic: string; replicationFactor?: number }> = [];
      const admin0 = Kafka.prototype.admin;
      Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka['admin']>) {
        const made = admin0.apply(this, args);
        const create = made.createTopics.bind(made);
        made.createTopics = async (o) => {
          asked.push(...o.topics);
          return create(o);
        };
        return made;
      };
      const { log, topicPrefix, cleanup } = freshLog();
      try {
        await log.ensureTopics();
        await log.publish([{ topic: `${TOPICS.dispatch}.mail` as Topic, key: 'k', value: 'v', headers: {} }]);
      } finally {
        Kafka.prototype.admin = admin0;
      }
      try {
        assert.ok(asked.some((t) => t.topic === `${topicPrefix}${TOPICS.dispatch}.mail`), JSON.stringify(asked));
        // -1 (or none, which kafkajs sends as -1): the broker's default.replication.factor, as a cluster sets it.
        assert.deepEqual(asked.filter((t) => (t.replicationFactor ?? -1) !== -1), []);
        await admin.connect();
        const { topics } = await admin.fetchTopicMetadata({ topics: [`${topicPrefix}${TOPICS.dispatch}.mail`] });
        assert.deepEqual(topics[0]!.partitions.map((p) => p.replicas.length), [1, 1, 1], 'this one broker\'s default: one replica');
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

    it('delivers a record whose header has a null value (produced by another client), and the records after it', { timeout: 60_000 }, async () => {
      const { log, topicPrefix, cleanup } = freshLog({ consumer: { redeliveryDelayMs: 50 } });
      const producer = new Kafka({ brokers, clientId: 'ats-test-foreign', logLevel: logLevel.NOTHING }).producer();
      try {
        await log.ensureTopics();
        const values: string[] = [];
        const sub = await log.consume({
          topic: TOPICS.dispatch, groupId: 'foreign', fromBeginning: true,
          handle: async (records) => { values.push(...records.map((r) => r.value)); },
        });
        await producer.connect();
        await sendWithNullHeader(producer, topicPrefix + TOPICS.dispatch, 'foreign');
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'ours', headers: {} }]);
        const deadline = Date.now() + 15_000;
        while (!values.includes('ours') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await sub.stop();
        assert.deepEqual(values, ['foreign', 'ours']);
      } finally {
        await producer.disconnect();
        await cleanup();
      }
    });

    it('writes a publish that follows one whose acknowledgement was lost (no sequence number reused)', { timeout: 90_000 }, async () => {
      const { log, cleanup } = freshLog();
      const faults = loseProduceAnswers();
      try {
        await log.ensureTopics();
        const values: string[] = [];
        const sub = await log.consume({
          topic: TOPICS.dispatch, groupId: 'lost-ack', fromBeginning: true,
          handle: async (records) => { values.push(...records.map((r) => r.value)); },
        });
        const message = (value: string) => ({ topic: TOPICS.dispatch, key: 'k', value, headers: {} });
        await log.publish([message('before')]);
        faults.arm();
        // Written by the broker each time it is sent, but never acknowledged: the publish fails.
        await assert.rejects(log.publish([message('unacknowledged')]));
        faults.disarm();
        // What a relay does next: publish again, its batch by then holding other messages.
        await log.publish([message('after')]);
        const deadline = Date.now() + 15_000;
        while (!values.includes('after') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await sub.stop();
        assert.ok(values.includes('after'), `'after' was acknowledged but never delivered; delivered: ${values.join(', ')}`);
        assert.deepEqual(values.filter((v) => v !== 'unacknowledged'), ['before', 'after']);
      } finally {
        faults.restore();
        await cleanup();
      }
    });

    it('stamps each record with the time of its `now` option, which unreadBefore compares', async () => {
      const at = Date.now() - 3_600_000;
      let now = at - 1000;
      const { log, cleanup } = freshLog({ now: () => now });
      try {
        const topic = `${TOPICS.dispatch}.stamped`;
        const partition = (await log.partitioner(topic))('job-1');
        await log.publish([{ topic, key: 'job-1', value: 'first', headers: {} }]);
        let read = 0;
        const sub = await log.consume({ topic, groupId: 'workers', fromBeginning: true, handle: async (records) => { read += records.length; } });
        const deadline = Date.now() + 30_000;
        while (read < 1) {
          if (Date.now() > deadline) assert.fail('the first record never came');
          await new Promise((r) => setTimeout(r, 20));
        }
        await sub.stop(); // commits past it
        now = at;
        await log.publish([{ topic, key: 'job-1', value: 'second', headers: {} }]);
        assert.deepEqual([...await log.unreadBefore(topic, 'workers', at)], [partition]);
        assert.deepEqual([...await log.unreadBefore(topic, 'workers', at - 1)], [], 'published an hour ago by its clock, not the host\'s');
      } finally {
        await cleanup();
      }
    });

    it('refuses to publish once closed', async () => {
      const { log, cleanup } = freshLog();
      await cleanup();
      await assert.rejects(log.publish([{ topic: TOPICS.events, key: 'k', value: 'v', headers: {} }]), { code: 'ATS_ERR_NOT_READY' });
    });

    it('close() gives up a consume() whose join is in progress: it rejects, and is handed nothing', { timeout: 60_000 }, async () => {
      const { log: holderLog, topicPrefix, cleanup } = freshLog();
      const log = createKafkaLog({ brokers, topicPrefix, clientId: 'ats-contract', logLevel: 'error' });
      const group = `${topicPrefix}held`;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const busy: string[] = [];
      const joinerSaw: string[] = [];
      try {
        // A member busy with a batch: it rejoins only once that batch is handled, so a new member's join waits.
        await holderLog.consume({
          topic: TOPICS.dispatch, groupId: 'held', fromBeginning: true,
          handle: async (records) => {
            busy.push(...records.map((r) => r.value));
            if (records.some((r) => r.value === 'busy')) await held;
          },
        });
        await holderLog.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'busy', headers: {} }]);
        await until('the holder busy with its batch', () => busy.includes('busy'));
        const joining = log.consume({
          topic: TOPICS.dispatch, groupId: 'held', fromBeginning: true,
          handle: async (records) => void joinerSaw.push(...records.map((r) => r.value)),
        });
        const outcome = joining.then(() => 'joined', (error: unknown) => error);
        await admin.connect();
        await until('the group rebalancing for the new member', async () => (await admin.describeGroups([group])).groups[0]?.state === 'PreparingRebalance');

        await log.close();
        const settled = await Promise.race([outcome, new Promise((r) => setTimeout(r, 5000, 'still joining'))]);
        assert.equal((settled as { code?: string }).code, 'ATS_ERR_NOT_READY', `consume(): ${String(settled)}`);
        // The holder's batch ends: the group goes on without the member given up.
        release();
        await holderLog.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'after', headers: {} }]);
        await until('the holder handling the next record', () => busy.includes('after'), 30_000);
        assert.deepEqual(joinerSaw, [], 'the consume() given up was handed nothing');
      } finally {
        release();
        await log.close();
        await cleanup();
      }
    });

    /**
     * A log whose admin never sees a leader for the topics it creates: a consume() of a new topic
     * then waits for them (up to readyTimeoutMs) before it joins. `restore` puts kafkajs back.
     */
    function leaderlessLog(readyTimeoutMs: number) {
      const admin0 = Kafka.prototype.admin;
      let polls = 0;
      Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka['admin']>) {
        const made = admin0.apply(this, args);
        const fetch = made.fetchTopicMetadata.bind(made);
        // The all-topics read is the wait for leaders: it answers no topic, as a broker that has elected none yet.
        made.fetchTopicMetadata = async (o) => (o?.topics ? fetch(o) : (polls++, { topics: [] }));
        return made;
      };
      const made = freshLog({ consumer: { readyTimeoutMs } });
      return { ...made, polls: () => polls, restore: () => { Kafka.prototype.admin = admin0; } };
    }

    it('close() gives up a consume() still waiting for its new topic\'s leaders: it rejects with ATS_ERR_NOT_READY at once, and the wait ends', { timeout: 60_000 }, async () => {
      const { log, polls, restore, cleanup } = leaderlessLog(20_000);
      try {
        const outcome = log.consume({ topic: `${TOPICS.dispatch}.leaderless` as Topic, groupId: 'g', handle: async () => {} })
          .then(() => 'joined', (error: unknown) => error);
        await until('the wait for leaders', () => polls() > 0);
        const closedAt = Date.now();
        await log.close();
        const settled = await Promise.race([outcome, new Promise((r) => setTimeout(r, 3000, 'still waiting'))]);
        assert.equal((settled as { code?: string }).code, 'ATS_ERR_NOT_READY', `consume(): ${String(settled)}`);
        assert.ok(Date.now() - closedAt < 3000);
        const after = polls();
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(polls(), after, 'the wait for leaders goes on after the close');
      } finally {
        restore();
        await cleanup();
      }
    });

    it('a consume() still waiting for its new topic\'s leaders is given up at once by its signal, with its reason', { timeout: 60_000 }, async () => {
      const { log, polls, restore, cleanup } = leaderlessLog(20_000);
      try {
        const stop = new AbortController();
        const outcome = log.consume({ topic: `${TOPICS.dispatch}.leaderless` as Topic, groupId: 'g', handle: async () => {}, signal: stop.signal })
          .then(() => 'joined', (error: unknown) => error);
        await until('the wait for leaders', () => polls() > 0);
        const reason = new Error('the worker stopped');
        stop.abort(reason);
        const settled = await Promise.race([outcome, new Promise((r) => setTimeout(r, 3000, 'still waiting'))]);
        assert.equal(settled, reason);
      } finally {
        restore();
        await cleanup();
      }
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
    // Beyond a Node timer's longest pause, a timer fires after 1 ms: the pause would be none.
    assert.throws(() => compileKafkaLogOptions({ brokers: ['b'], consumer: { maxRedeliveryDelayMs: 2 ** 31 } }), /maxRedeliveryDelayMs must be an integer from 0 to 2147483647/);
    assert.throws(() => compileKafkaLogOptions({ brokers: ['b'], consumer: { redeliveryDelayMs: Number.NaN } }), { code: 'ATS_ERR_CONFIG' });
    assert.equal(compileKafkaLogOptions({ brokers: ['b'], consumer: { maxRedeliveryDelayMs: 2 ** 31 - 1 } }).consumer.maxRedeliveryDelayMs, 2 ** 31 - 1);
    assert.throws(
      () => compileKafkaLogOptions({ brokers: ['b'], consumer: { heartbeatIntervalMs: 7000, sessionTimeoutMs: 6000 } }),
      { code: 'ATS_ERR_CONFIG' },
    );
  });
});
