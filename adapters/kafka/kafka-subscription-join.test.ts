/**
 * A consumer's join can wait on the group for long: a rebalance waits up to
 * its timeout for the members busy handling a batch, and `consume()` gives
 * up only after `readyTimeoutMs` (30 s). A worker that stops does not wait
 * for that: its signal gives the join up at once, the consumer's connections
 * are cut and kafkajs neither rejoins nor restarts it in the background, and
 * the group goes on without it (nothing it was handed is lost). A stop does
 * not wait either for a consumer started again after a crash that is still
 * joining. A join not done within `readyTimeoutMs` is given up the same way,
 * on the client of that one consumer, so the next one started joins. The broker is
 * real; the subscription's client is the test's, so that its connections can
 * be counted.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, it } from 'node:test';
import { Kafka, logLevel, type Consumer, type ConsumerConfig, type ISocketFactory } from 'kafkajs';
import { TOPICS, type EventLog } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog } from './kafka-log.js';
import { compileKafkaLogOptions } from './kafka-options.js';
import { startSubscription, type ConsumerClient } from './kafka-subscription.js';

const brokers = kafkaBrokers();
const prefix = randomTopicPrefix();
after(() => deleteTopicsWithPrefix(prefix, brokers));

/** A client on sockets the test sees, cut as the log's own are (every later one fails at once); its consumers' crashes are kept. */
function countedClient() {
  const open = new Set<net.Socket>();
  let made = 0;
  let cut = false;
  const factory: ISocketFactory = ({ host, port, onConnect }) => {
    if (cut) return new net.Socket().destroy(new Error('connection cut'));
    made++;
    const socket = net.connect({ host, port }, onConnect);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    return socket;
  };
  const kafka = new Kafka({ brokers, clientId: 'ats-test-join', logLevel: logLevel.NOTHING, socketFactory: factory, retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 8 } });
  const crashes: Array<{ restart: boolean }> = [];
  let joins = 0;
  const wrapped = Object.create(kafka) as Kafka;
  wrapped.consumer = (config: ConsumerConfig): Consumer => {
    const consumer = kafka.consumer(config);
    consumer.on(consumer.events.CRASH, ({ payload }) => { crashes.push({ restart: payload.restart }); });
    consumer.on(consumer.events.GROUP_JOIN, () => { joins++; });
    return consumer;
  };
  const client: ConsumerClient = {
    kafka: wrapped,
    cut: () => {
      cut = true;
      for (const s of open) s.destroy(new Error('connection cut'));
    },
  };
  return { client, open: () => open.size, made: () => made, isCut: () => cut, crashes, joins: () => joins };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await ok());) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An admin client, connected, to watch the groups. */
async function groupAdmin() {
  const admin = new Kafka({ brokers, clientId: 'ats-test-join-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  return admin;
}

/**
 * A member of `groupId` busy with a batch (the record 'busy') until
 * `release()`: a rebalance of the group waits up to its timeout for it.
 * `seen` holds every record it was handed.
 */
async function busyMember(log: EventLog, groupId: string) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const seen: string[] = [];
  const holder = await log.consume({
    topic: TOPICS.dispatch, groupId, fromBeginning: true,
    handle: async (records) => {
      seen.push(...records.map((r) => r.value));
      if (records.some((r) => r.value === 'busy')) await held;
    },
  });
  await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'busy', headers: {} }]);
  await until('the holder busy with its batch', () => seen.includes('busy'));
  return { holder, release, seen };
}

/** A consumer made on a counted client, with the listeners it was given for its crashes (to report one by hand). */
interface MadeConsumer {
  client: ReturnType<typeof countedClient>;
  consumer: Consumer;
  onCrash: Array<(event: unknown) => void>;
}

/** Keeps in `made` each consumer `client` makes from now on, with its crash listeners. */
function keepConsumers(client: ReturnType<typeof countedClient>, made: MadeConsumer[]): void {
  const consumer = client.client.kafka.consumer.bind(client.client.kafka);
  client.client.kafka.consumer = (cfg: ConsumerConfig): Consumer => {
    const one: MadeConsumer = { client, consumer: consumer(cfg), onCrash: [] };
    const on = one.consumer.on.bind(one.consumer);
    one.consumer.on = ((name: string, listener: (event: unknown) => void) => {
      if (name === one.consumer.events.CRASH) one.onCrash.push(listener);
      return on(name as never, listener as never);
    }) as Consumer['on'];
    made.push(one);
    return one.consumer;
  };
}

it('a consume() whose join waits on a busy member is given up at once by its signal: cut, not restarted, and the group goes on without it', { timeout: 60_000 }, async () => {
  await requireKafka();
  // The member holding the group waits for its rebalance as long as a consume() waits to be ready.
  const config = { brokers, topicPrefix: prefix, partitions: 1, logLevel: 'nothing', consumer: { rebalanceTimeoutMs: 30_000 } } as const;
  const log = createKafkaLog(config);
  await log.ensureTopics();
  const admin = await groupAdmin();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => { unhandled.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  let member: Awaited<ReturnType<typeof busyMember>> | undefined;
  const joiner = countedClient();
  const joinerSaw: string[] = [];
  try {
    // A member busy with a batch: it rejoins only once that batch is handled.
    member = await busyMember(log, 'held');
    const { holder, release, seen: busy } = member;

    const giveUp = new AbortController();
    const joining = startSubscription(() => joiner.client, compileKafkaLogOptions(config), {
      topic: TOPICS.dispatch, groupId: 'held', fromBeginning: true, signal: giveUp.signal,
      handle: async (records) => { joinerSaw.push(...records.map((r) => r.value)); },
    });
    const outcome = joining.then(() => 'joined', (error: unknown) => error);
    const group = `${prefix}held`;
    await until('the group rebalancing for the new member', async () => (await admin.describeGroups([group])).groups[0]?.state === 'PreparingRebalance');

    const reason = new Error('the worker stopped');
    const started = Date.now();
    giveUp.abort(reason);
    const settled = await Promise.race([outcome, new Promise((r) => setTimeout(r, 5000, 'still joining'))]);
    assert.equal(settled, reason, 'consume() rejects with the signal\'s reason, without waiting for the join');
    assert.ok(Date.now() - started < 3000, `given up after ${Date.now() - started} ms`);
    assert.ok(joiner.isCut(), 'the joining consumer\'s connections were cut');
    await until('its connections closed', () => joiner.open() === 0, 2000);

    // The holder's batch ends: the group rebalances without the member given up, and goes on.
    release();
    const madeBefore = joiner.made();
    await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'after', headers: {} }]);
    await until('the holder handling the next record', () => busy.includes('after'), 30_000);
    // kafkajs's join, failing on the cut connections, ends in a crash it does not restart from.
    await until('the given-up consumer\'s last crash', () => joiner.crashes.length > 0, 30_000);
    assert.deepEqual(joiner.crashes, [{ restart: false }], 'kafkajs does not restart a consumer given up');
    assert.equal(joiner.made(), madeBefore, 'no connection made once cut');
    assert.deepEqual(joinerSaw, [], 'the consumer given up was handed nothing');
    await holder.stop();
    assert.deepEqual(unhandled, []);
  } finally {
    member?.release();
    process.off('unhandledRejection', onUnhandled);
    await admin.disconnect();
    await log.close();
  }
});

it('a stop does not wait for a consumer started again after a crash that is still joining: it is given up at once', { timeout: 60_000 }, async () => {
  await requireKafka();
  const config = { brokers, topicPrefix: prefix, partitions: 1, logLevel: 'nothing', consumer: { rebalanceTimeoutMs: 30_000, restartDelayMs: 50 } } as const;
  const log = createKafkaLog(config);
  await log.ensureTopics();
  const admin = await groupAdmin();
  // The subscription's consumers, and the listeners each was given for its crashes.
  const consumers: MadeConsumer[] = [];
  const client = countedClient();
  keepConsumers(client, consumers);
  let member: Awaited<ReturnType<typeof busyMember>> | undefined;
  try {
    const sub = await startSubscription(() => client.client, compileKafkaLogOptions(config), {
      topic: TOPICS.dispatch, groupId: 'held-again', fromBeginning: true, handle: async () => {},
    });
    // Its consumer dies for good (as after a crash kafkajs does not restart from): it leaves, then says so.
    const first = consumers[0]!;
    await first.consumer.disconnect();
    // Meanwhile a member busy with a batch holds the group: the new consumer's join waits on its rebalance.
    member = await busyMember(log, 'held-again');
    const { holder, release } = member;
    for (const listener of first.onCrash) listener({ payload: { error: new Error('dead (injected)'), groupId: 'held-again', restart: false } });
    const group = `${prefix}held-again`;
    await until('the group rebalancing for the new consumer', async () => consumers.length === 2 && (await admin.describeGroups([group])).groups[0]?.state === 'PreparingRebalance');

    const started = Date.now();
    const stopped = sub.stop().then(() => Date.now() - started, (error: unknown) => error);
    const outcome = await Promise.race([stopped, new Promise((r) => setTimeout(r, 6000, 'still stopping'))]);
    assert.equal(typeof outcome, 'number', `stop(): ${String(outcome)}`);
    assert.ok((outcome as number) < 3000, `stopped after ${String(outcome)} ms`);
    await until('its connections closed', () => client.open() === 0, 2000);
    release();
    await holder.stop();
  } finally {
    member?.release();
    await admin.disconnect();
    await log.close();
  }
});

it('a consume() not ready within readyTimeoutMs rejects, and the consumer it gave up never joins later nor opens a connection', { timeout: 60_000 }, async () => {
  await requireKafka();
  const config = { brokers, topicPrefix: prefix, partitions: 1, logLevel: 'nothing', consumer: { rebalanceTimeoutMs: 30_000 } } as const;
  const log = createKafkaLog(config);
  await log.ensureTopics();
  const admin = await groupAdmin();
  let member: Awaited<ReturnType<typeof busyMember>> | undefined;
  const joiner = countedClient();
  const joinerSaw: string[] = [];
  try {
    member = await busyMember(log, 'timed-out');
    const { holder, release, seen: busy } = member;

    // The join waits on the busy member's rebalance (30 s) longer than this consume() waits to be ready.
    const joining = startSubscription(() => joiner.client, compileKafkaLogOptions({ ...config, consumer: { rebalanceTimeoutMs: 30_000, readyTimeoutMs: 2000 } }), {
      topic: TOPICS.dispatch, groupId: 'timed-out', fromBeginning: true,
      handle: async (records) => { joinerSaw.push(...records.map((r) => r.value)); },
    });
    const outcome = await joining.then(() => null, (error: unknown) => error);
    assert.equal((outcome as { code?: string } | null)?.code, 'ATS_ERR_NOT_READY', `consume(): ${String(outcome)}`);
    await until('its connections closed', () => joiner.open() === 0, 2000);
    const madeBefore = joiner.made();

    // The holder's batch ends: the group rebalances, and goes on without the consumer given up.
    release();
    await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'after', headers: {} }]);
    await until('the holder handling the next record', () => busy.includes('after'), 30_000);
    // Watched a while longer: a consumer left joining in the background would join by now (it reconnects within 2 s).
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(joiner.joins(), 0, 'the consumer given up never joined the group');
    assert.deepEqual(joinerSaw, [], 'it was handed nothing');
    assert.equal(joiner.made(), madeBefore, 'it made no connection once given up');
    assert.equal(joiner.open(), 0);
    assert.ok(joiner.crashes.every((c) => !c.restart), 'kafkajs does not restart it');
    // Should the broker have taken it in before it was given up, the group drops it after the session timeout.
    await until('the holder alone in the group', async () => (await admin.describeGroups([`${prefix}timed-out`])).groups[0]?.members.length === 1, 20_000);
    assert.equal(joiner.joins(), 0);
    await holder.stop();
  } finally {
    member?.release();
    await admin.disconnect();
    await log.close();
  }
});

it('a consumer started again after a crash that is not ready in time is given up on its own client, and the next one joins', { timeout: 90_000 }, async () => {
  await requireKafka();
  const config = { brokers, topicPrefix: prefix, partitions: 1, logLevel: 'nothing', consumer: { rebalanceTimeoutMs: 30_000, restartDelayMs: 50, readyTimeoutMs: 2000 } } as const;
  const log = createKafkaLog({ ...config, consumer: { rebalanceTimeoutMs: 30_000 } });
  await log.ensureTopics();
  const admin = await groupAdmin();
  // Each consumer the subscription starts, on the client it was made on, with the listeners it was given for its crashes.
  const consumers: MadeConsumer[] = [];
  const newClient = (): ConsumerClient => {
    const client = countedClient();
    keepConsumers(client, consumers);
    return client.client;
  };
  let member: Awaited<ReturnType<typeof busyMember>> | undefined;
  const seen: string[] = [];
  try {
    const sub = await startSubscription(newClient, compileKafkaLogOptions(config), {
      topic: TOPICS.dispatch, groupId: 'restart-late', fromBeginning: true,
      handle: async (records) => { seen.push(...records.map((r) => r.value)); },
    });
    // Its consumer dies for good (as after a crash kafkajs does not restart from): it leaves, then says so.
    const first = consumers[0]!;
    await first.consumer.disconnect();
    // Meanwhile a member busy with a batch holds the group: the new consumers' joins wait on its rebalance (30 s).
    member = await busyMember(log, 'restart-late');
    const { holder, release } = member;
    for (const listener of first.onCrash) listener({ payload: { error: new Error('dead (injected)'), groupId: 'restart-late', restart: false } });
    // The first new consumer is not ready within 2 s: given up, then another one is started.
    await until('a second new consumer', () => consumers.length >= 3, 20_000);
    const late = consumers[1]!;
    assert.ok(late.client.isCut(), 'the consumer not ready in time had its connections cut');
    assert.notEqual(consumers[2]!.client, late.client, 'the next consumer has a client of its own');

    release();
    await holder.stop(); // the partition goes to the subscription's consumer that joined
    await log.publish([{ topic: TOPICS.dispatch, key: 'a', value: 'after', headers: {} }]);
    await until('the subscription handling a record again', () => seen.includes('after'), 30_000);
    const joined = consumers.slice(1).filter((c) => c.client.joins() > 0);
    assert.equal(joined.length, 1, 'one new consumer joined');
    assert.equal(joined[0], consumers.at(-1), 'the last one started');
    for (const given of consumers.slice(1, -1)) {
      assert.ok(given.client.isCut(), 'every consumer given up was cut');
      assert.equal(given.client.open(), 0);
      assert.ok(given.client.crashes.every((c) => !c.restart), 'kafkajs does not restart a consumer given up');
    }
    await until('it alone in the group', async () => (await admin.describeGroups([`${prefix}restart-late`])).groups[0]?.members.length === 1, 20_000);
    assert.equal(consumers.slice(1).filter((c) => c.client.joins() > 0).length, 1);
    await sub.stop();
  } finally {
    member?.release();
    await admin.disconnect();
    await log.close();
  }
});
