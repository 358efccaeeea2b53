/**
 * The `EventLog` port on Apache Kafka (kafkajs 2.2.4).
 *
 * Producer: idempotent, one request in flight, `acks: -1`, Java-compatible
 * murmur2 partitioner (key = job id, so one job's messages stay in order).
 * kafkajs has no linger, so a `publish()` goes out as one `sendBatch`. A
 * producer whose send failed or went unanswered too long is replaced (see
 * `retireProducer`), its connections cut.
 * Consumers: see `kafka-subscription.ts` (manual commits after `handle`).
 * Every producer, every subscription, the admin and the admin that asks
 * topics' offsets (`askOffsets`) have a kafkajs client of their own, whose
 * connections can be cut: nothing waits on a silent broker for kafkajs' 30 s
 * request timeout to close.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel as KafkaLogLevel, type ConfigResourceTypes, type Admin, type ISocketFactory, type Producer, type RecordMetadata, type RetryOptions, type TopicMessages } from 'kafkajs';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import { settleAll } from '../../engine/in-parallel.js';
import { unlessStopped } from '../../engine/loop.js';
import { TOPICS, type ConsumeOptions, type EventLog, type LogMessage, type Logger, type Subscription } from '../../engine/ports.js';
import { withTimeout } from '../../engine/with-timeout.js';
import { kafkaLogCreator } from './kafka-logging.js';
import { RepeatedLines } from '../../engine/repeated-lines.js';
import { compileKafkaLogOptions, type CompiledKafkaLogOptions, type KafkaLogOptions } from './kafka-options.js';
import { keyPartitioner, physicalName, placingPartitioner, produceChunks, toTopicMessages } from './kafka-records.js';
import { startSubscription } from './kafka-subscription.js';
import { plainSockets } from './sockets.js';
import { isUnknownTopic } from './unknown-topic.js';
import { unreadPartitions } from './unread.js';

const LOG_LEVELS = {
  nothing: KafkaLogLevel.NOTHING,
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
} as const;

/**
 * kafkajs' retry policy for the producer and the consumers. Its default lets
 * the pause between tries grow to 30 s (we saw 10 s gaps while a broker was
 * down), so a broker that came back could wait that long to be noticed, and a
 * consumer restarting after a crash longer still. Capped at 2 s, a returning
 * broker is seen within about 2 s; a publish to a broker that refuses
 * connections still gives up after about 12 s (the relay then tries again),
 * and a consumer that gives up is restarted.
 */
const RECONNECT = Object.freeze({ initialRetryTime: 200, maxRetryTime: 2000, retries: 8 });

/**
 * How long one step of a publish (connecting the producer, one produce
 * request with kafkajs' tries) may go unanswered before the publish fails.
 * A broker that stops answering (a frozen host, packets dropped) refuses
 * nothing: each of kafkajs' 9 tries would wait out its 30 s request timeout,
 * about 4.5 minutes, while the relay holds its claim. 15 s is the same order
 * as the ~12 s a refused broker takes, and above it, so a refused broker
 * still fails with kafkajs' own error; a healthy broker acks in milliseconds.
 */
const PUBLISH_STEP_TIMEOUT_MS = 15_000;

/** kafkajs's `ConfigResourceTypes.TOPIC` (its enum is not a named export node's ESM loader sees in kafkajs's CommonJS). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** The broker's default `max.message.bytes`: the largest record batch the relay's publishes are sized for. */
const MIN_MESSAGE_BYTES = 1_048_588;

/** Creates the Kafka event log. Connects lazily: nothing happens until the first call. */
export function createKafkaLog(options: KafkaLogOptions): EventLog {
  return new KafkaEventLog(compileKafkaLogOptions(options));
}

/** Connects once; a failed connect is forgotten so the next call tries again. */
function lazyConnect<T extends { connect(): Promise<void> }>(client: T): () => Promise<T> {
  let connecting: Promise<T> | null = null;
  return () => (connecting ??= client.connect().then(() => client, (error: unknown) => {
    connecting = null;
    throw error;
  }));
}

/**
 * The admin's retry policy: few quick retries. kafkajs connects with the
 * client's retry policy, and the default one keeps a ping to a dead broker
 * retrying (and the process alive) for ~10 s after the ping gave up.
 */
const ADMIN_RETRY = Object.freeze({ retries: 2, initialRetryTime: 100, maxRetryTime: 1000 });

/** The admin on connections of its own, so that giving up on it can cut them. */
interface OwnAdmin {
  readonly admin: Admin;
  readonly connect: () => Promise<Admin>;
  /** Ends its connections at once and fails every later one. */
  readonly cut: () => void;
}

/** A producer on connections of its own, so that retiring it can cut them. */
interface OwnProducer {
  readonly producer: Producer;
  readonly connect: () => Promise<Producer>;
  /** Ends its connections at once and fails every later one: what it still has in flight fails, nothing of it is sent again. */
  readonly cut: () => void;
}

class KafkaEventLog implements EventLog {
  /** kafkajs settings all clients of this log share. */
  private readonly config: ConstructorParameters<typeof Kafka>[0];
  private current: OwnProducer;
  /** Replaced when it is given up on (see `assertReachable`); its connections are cut by `close`. */
  private admin: OwnAdmin;
  /** The admin that asks topics' offsets (`askOffsets`), made at its first ask, with the topics it asked about. */
  private offsets: { own: OwnAdmin; asked: Set<string> } | null = null;
  /** Disconnects of retired producers and admins, awaited by `close`. */
  private readonly retiring = new Set<Promise<void>>();
  /** Physical topics known to exist (created by us or found): their partition counts, and when each was read (see `ensureTopic`). */
  private readonly knownTopics = new Map<string, { count: Promise<number>; readAt: number }>();
  /** Physical topics found made beforehand whose settings were read (`warnOfSettings`). */
  private readonly settingsRead = new Set<string>();
  /** Per physical topic: key → partition at the count it was made for. */
  private readonly partitioners = new Map<string, { count: number; pick: (key: string) => number }>();
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;
  /** Aborted by close(): gives up the joins of consume() calls still in progress. */
  private readonly closing = new AbortController();
  /** A partition count changed since the producer read its metadata: replaced at the next publish that starts alone. */
  private producerStale = false;
  /** Publishes in flight (a producer is not replaced under one). */
  private publishing = 0;
  /** The kafkajs lines said within the last minute, by all of this log's clients. */
  private readonly repeats: RepeatedLines;

  constructor(private readonly opts: CompiledKafkaLogOptions) {
    // One minute of lines said for every client of this log: a dozen clients (and each consumer started after a crash) say the same.
    this.repeats = new RepeatedLines(Date.now);
    this.config = {
      clientId: opts.clientId,
      brokers: opts.brokers,
      connectionTimeout: opts.connectTimeoutMs,
      logLevel: LOG_LEVELS[opts.logLevel],
      ...(opts.logger ? { logCreator: kafkaLogCreator(opts.logger, Date.now, this.repeats) } : {}),
    };
    this.current = this.newProducer();
    this.admin = this.newAdmin();
  }

  /** First checks that Kafka answers at all (see `assertReachable`): a start on an unreachable Kafka says so within seconds. */
  async ensureTopics(): Promise<void> {
    this.assertOpen();
    await this.assertReachable();
    await settleAll(Object.values(TOPICS).map((topic) => this.ensureTopic(topic)));
  }

  async publish(messages: LogMessage[]): Promise<void> {
    this.assertOpen();
    if (messages.length === 0) return;
    const topics = [...new Set(messages.map((m) => m.topic))];
    // Each message goes to the partition `partitioner` names (not kafkajs's own pick, on metadata it
    // refreshes on its own schedule): what the engine packed by, and the timers map by, is where it is.
    const picks = new Map((await settleAll(topics.map(async (t) => [physicalName(this.opts.topicPrefix, t), await this.partitioner(t)] as const))));
    const partitionOf = (topic: string, key: string) => picks.get(topic)!(key);
    if (this.producerStale && this.publishing === 0) {
      // The producer's metadata may not know partitions added since: a new producer reads it afresh.
      this.producerStale = false;
      this.retireProducer(this.current);
    }
    const own = this.current;
    this.publishing++;
    try {
      const producer = await unansweredAfter(own.connect(), PUBLISH_STEP_TIMEOUT_MS, 'connecting the producer');
      // One request, unless the messages are large: then consecutive requests, one after the other, so
      // each key's messages keep their order and no partition's batch grows past what a broker takes.
      for (const chunk of produceChunks(messages)) {
        let topicMessages = toTopicMessages(this.opts.topicPrefix, chunk, this.opts.now?.(), partitionOf);
        for (let round = 1; ; round++) {
          // Resolves once every partition leader it sent to acked with all in-sync replicas (acks: -1).
          const sent = producer.sendBatch({ topicMessages, acks: -1 });
          const left = unacknowledged(topicMessages, await unansweredAfter(sent, PUBLISH_STEP_TIMEOUT_MS, 'a produce request'));
          if (left.length === 0) break;
          const partitions = left.map((t) => `${t.topic}[${[...new Set(t.messages.map((m) => m.partition))].join(',')}]`);
          if (round >= 2) throw new AtsError('ATS_ERR_NOT_READY', `Kafka did not acknowledge the messages of ${partitions.join(' ')} (sent twice)`);
          // kafkajs lost them: sent again, on the same producer (its sequence numbers for them were given back, so
          // a copy the broker holds already is taken for the duplicate it is), before the next chunk.
          this.opts.logger?.warn('kafka: a send was acknowledged without some partitions it carried messages for (their leader moved to a broker that had answered already); their messages are sent again', { partitions });
          topicMessages = left;
        }
      }
    } catch (error) {
      this.retireProducer(own);
      // A topic deleted under the scheduler (or fewer partitions than it was read with): read, and made, again.
      if (isUnknownTopic(error)) {
        this.opts.logger?.warn('kafka: a topic is gone or has fewer partitions; it is read again, and made again if gone, at the next publish', { topics: topics.map((t) => physicalName(this.opts.topicPrefix, t)) });
        for (const t of topics) this.knownTopics.delete(physicalName(this.opts.topicPrefix, t));
      }
      throw error;
    } finally {
      this.publishing--;
    }
  }

  /**
   * Where `publish` puts a keyed message: Java-compatible murmur2 of the key
   * (kafkajs's and Kafka's own default), modulo the topic's partition count
   * as last read (`topicRecheckMs`). Partitions an operator adds are used
   * from the next read on: a key then maps to another partition, so a job
   * whose messages straddle that read has them on two partitions.
   */
  async partitioner(topic: string): Promise<(key: string) => number> {
    this.assertOpen();
    const name = physicalName(this.opts.topicPrefix, topic);
    const count = await this.ensureTopic(topic);
    let made = this.partitioners.get(name);
    if (made?.count !== count) {
      if (made) this.producerStale = true;
      this.partitioners.set(name, (made = { count, pick: keyPartitioner(name, count) }));
    }
    return made.pick;
  }

  async consume(options: ConsumeOptions): Promise<Subscription> {
    this.assertOpen();
    // A join in progress is not a tracked subscription yet: close() gives it up as the caller's signal does,
    // and so is the wait for its topic before it (a new topic's leaders, up to the ready timeout).
    const signal = options.signal ? AbortSignal.any([options.signal, this.closing.signal]) : this.closing.signal;
    await unlessStopped(this.ensureTopic(options.topic), signal);
    const sub = await startSubscription(() => this.cuttableClient(RECONNECT, 'the consumer was given up or stopped'), this.opts, { ...options, signal },
      () => this.remakeTopic(options.topic));
    if (this.closed) {
      // Joined as the log closed: stopped, not handed on.
      await sub.stop();
      this.assertOpen();
    }
    const tracked: Subscription = {
      stop: async () => {
        this.subscriptions.delete(tracked);
        await sub.stop();
      },
    };
    this.subscriptions.add(tracked);
    return tracked;
  }

  /**
   * A few admin requests: the topics (a missing one is not created), the
   * partitions' oldest offsets, the first offset published after `before`
   * (from the records' timestamps: the `now` option's time as they were
   * sent), and the group's committed offsets. The offsets are asked on the
   * offsets admin (`askOffsets`), which the topics listed first tell whether
   * to replace.
   */
  async unreadBefore(topic: string, groupId: string, before: number): Promise<ReadonlySet<number>> {
    this.assertOpen();
    const { topicPrefix } = this.opts;
    const name = physicalName(topicPrefix, topic);
    const read = async () => {
      const topics = await this.connectAdmin().then((admin) => admin.listTopics());
      this.replaceOffsetsAdminIfGone(topics);
      if (!topics.includes(name)) return new Set<number>();
      const [starts, firstAfter, committed] = await this.askOffsets(name, (admin) => Promise.all([
        admin.fetchTopicOffsets(name),
        admin.fetchTopicOffsetsByTimestamp(name, before + 1),
        admin.fetchOffsets({ groupId: physicalName(topicPrefix, groupId), topics: [name] }),
      ]));
      return unreadPartitions(starts, firstAfter, committed);
    };
    return withTimeout(read(), this.opts.connectTimeoutMs);
  }

  /** Every topic the cluster lists (physical names), within the connect timeout. */
  private brokerTopics(): Promise<string[]> {
    return withTimeout(this.connectAdmin().then((admin) => admin.listTopics()), this.opts.connectTimeoutMs);
  }

  async listTopics(): Promise<string[]> {
    this.assertOpen();
    const { topicPrefix } = this.opts;
    const names = await this.brokerTopics();
    return names.filter((n) => n.startsWith(topicPrefix)).map((n) => n.slice(topicPrefix.length));
  }

  async ping(): Promise<void> {
    this.assertOpen();
    try {
      await withTimeout(this.connectAdmin().then((admin) => admin.describeCluster()), this.opts.connectTimeoutMs);
    } catch (error) {
      throw new AtsError('ATS_ERR_NOT_READY', `Kafka not reachable at ${this.opts.brokers.join(',')}`, { cause: error });
    }
  }

  /**
   * The subscriptions stop (each waits on Kafka for a bounded time, then cuts
   * its connections), and a `consume()` whose join is still in progress, or
   * which still waits for its topic (a new topic's leaders), is given up at
   * once (it rejects with ATS_ERR_NOT_READY). The producer's and the admin's connections are cut,
   * not drained: a publish still in flight is one its caller gave up on (a
   * relay that stopped), as is an admin request still pending (a `ping` or
   * `listTopics` that timed out), and a graceful disconnect would wait for a
   * silent broker's answer for up to kafkajs' 30 s request timeout.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort(closedError());
    await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
    this.current.cut();
    this.admin.cut();
    if (this.offsets) this.retireOffsetsAdmin(this.offsets);
    await Promise.allSettled([this.current.producer.disconnect(), this.admin.admin.disconnect(), ...this.retiring]);
  }

  private connectAdmin(): Promise<Admin> {
    return this.admin.connect();
  }

  /**
   * Rejects with "Kafka is not reachable at <brokers>: <why>" unless a broker
   * answers a metadata request within the connect timeout. A refused
   * connection fails within a second (the admin's few retries); a broker
   * that accepts connections and never answers would hold each try for
   * kafkajs' 30 s request timeout. Given up on, the admin's connections are
   * cut (nothing of it goes on in the background) and a new admin takes its
   * place for the next call.
   */
  private async assertReachable(): Promise<void> {
    const own = this.admin;
    const ms = this.opts.connectTimeoutMs;
    try {
      await withTimeout(own.connect().then((admin) => admin.describeCluster()), ms, () => new Error(`no answer within ${ms} ms`));
    } catch (error) {
      this.retireAdmin(own);
      const why = error instanceof Error ? error.message : String(error);
      throw new AtsError('ATS_ERR_NOT_READY', `Kafka is not reachable at ${this.opts.brokers.join(',')}: ${why}`, { cause: error });
    }
  }

  private newAdmin(): OwnAdmin {
    const { kafka, cut } = this.cuttableClient(ADMIN_RETRY, 'the admin was given up on or the log closed');
    const admin = kafka.admin();
    return { admin, connect: lazyConnect(admin), cut };
  }

  /** Cuts `own`'s connections; the next admin call goes through a new admin. */
  private retireAdmin(own: OwnAdmin): void {
    if (own !== this.admin || this.closed) return;
    this.admin = this.newAdmin();
    this.retire(own.cut, () => own.admin.disconnect());
  }

  /**
   * `ask` about topic `name`'s offsets (or a group's offsets on it), on an
   * admin client kept for such asks, not the log's admin: kafkajs keeps a
   * topic whose offsets were asked in its client's metadata for good, and
   * every metadata refresh of that client fails once an operator deleted the
   * topic. The log's admin refreshes before each createTopics, and could then
   * never make the topic again; so the offsets admin is the one replaced,
   * once a topic it asked about is found gone: by an ask that fails with
   * UNKNOWN_TOPIC_OR_PARTITION (the topics are then listed on the log's
   * admin, which asks no topic's offsets), or by `unreadBefore`'s list.
   */
  private async askOffsets<T>(name: string, ask: (admin: Admin) => Promise<T>): Promise<T> {
    this.assertOpen();
    const offsets = (this.offsets ??= { own: this.newAdmin(), asked: new Set() });
    offsets.asked.add(name);
    try {
      return await ask(await offsets.own.connect());
    } catch (error) {
      if (isUnknownTopic(error) && this.offsets === offsets) {
        const topics = await this.brokerTopics().catch(() => null);
        if (topics) this.replaceOffsetsAdminIfGone(topics);
      }
      throw error;
    }
  }

  /** Retires the offsets admin if a topic it asked about is not among `topics` (all that exist): the next ask makes a new one. */
  private replaceOffsetsAdminIfGone(topics: readonly string[]): void {
    const offsets = this.offsets;
    if (!offsets) return;
    const present = new Set(topics);
    if ([...offsets.asked].some((t) => !present.has(t))) this.retireOffsetsAdmin(offsets);
  }

  private retireOffsetsAdmin(offsets: NonNullable<KafkaEventLog['offsets']>): void {
    if (this.offsets !== offsets) return;
    this.offsets = null;
    this.retire(offsets.own.cut, () => offsets.own.admin.disconnect());
  }

  /**
   * Each producer gets a kafkajs client of its own, whose sockets it alone
   * uses: retiring it cuts them (see `retireProducer`).
   */
  private newProducer(): OwnProducer {
    const { kafka, cut } = this.cuttableClient(RECONNECT, 'the producer was retired');
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: placingPartitioner,
      allowAutoTopicCreation: false,
    });
    return { producer, connect: lazyConnect(producer), cut };
  }

  /** A kafkajs client on sockets of its own, which `cut` ends (`why` says so in the error of what was in flight). */
  private cuttableClient(retry: RetryOptions, why: string): { kafka: Kafka; cut: () => void } {
    const sockets = cuttableSockets(why);
    const { logger } = this.opts;
    const kafka = new Kafka({
      ...this.config,
      retry,
      socketFactory: sockets.factory,
      // Once cut, kafkajs retries what it was given up on, each try failing at once with a line or two
      // at ERROR for some 12 s: noise, logged at debug (a failed publish is its caller's to report).
      ...(logger ? { logCreator: kafkaLogCreator(debugOnceCut(logger, sockets.isCut), Date.now, this.repeats) } : {}),
    });
    return { kafka, cut: sockets.cut };
  }

  /**
   * After a failed send, the next publish goes through a new producer (a new
   * producer id). kafkajs takes back the sequence numbers of a request that
   * failed, but the broker may have written it (its answer lost, the retries
   * exhausted): the next batch of a partition would then go with sequence
   * numbers the broker holds already, and be taken for a duplicate and
   * dropped although acknowledged (or refused as out of order, for good).
   * Under a new producer id the records go again: a duplicate, never a loss.
   *
   * Its connections are cut first: after a step that went unanswered,
   * kafkajs would otherwise keep trying the abandoned request (a disconnect
   * waits for it, then kafkajs reconnects to try again) for minutes. Cut, it
   * fails at once; bytes already on their way may still be written late,
   * which is again only a duplicate.
   */
  private retireProducer(own: OwnProducer): void {
    if (own !== this.current || this.closed) return;
    this.current = this.newProducer();
    this.retire(own.cut, () => own.producer.disconnect());
  }

  /** Cuts a replaced client's connections, then disconnects it; `close` awaits that disconnect. */
  private retire(cut: () => void, disconnect: () => Promise<void>): void {
    cut();
    const done = disconnect().catch(() => {}).finally(() => { this.retiring.delete(done); });
    this.retiring.add(done);
  }

  /**
   * Creates `topic` (logical name) with our partition count unless it exists, and resolves its
   * partition count: once, then again (`recount`) when the count read is `topicRecheckMs` old.
   */
  private ensureTopic(topic: string): Promise<number> {
    const name = physicalName(this.opts.topicPrefix, topic);
    const known = this.knownTopics.get(name);
    const now = performance.now();
    if (known && now - known.readAt < this.opts.topicRecheckMs) return known.count;
    const entry = {
      count: (known ? this.recount(name, known.count) : this.createTopic(name)).catch((error: unknown) => {
        // Forgotten only if still this read's: a newer read that took its place (this one outlived the
        // recheck interval, a create waiting for leaders) stays, and does its own create-or-find.
        if (this.knownTopics.get(name) === entry) this.knownTopics.delete(name);
        throw error;
      }),
      readAt: now,
    };
    this.knownTopics.set(name, entry);
    return entry.count;
  }

  /**
   * A topic's partition count read again: the partitions its metadata lists now. A read that fails
   * or takes longer than `connectTimeoutMs` (Kafka down: the publish that waits on it fails anyway)
   * keeps the count read before; a topic the broker no longer knows is made again.
   */
  private async recount(name: string, before: Promise<number>): Promise<number> {
    const was = await before.catch(() => null);
    if (was === null) return this.createTopic(name);
    let read: number;
    try {
      const { topics } = await withTimeout(this.connectAdmin().then((admin) => admin.fetchTopicMetadata({ topics: [name] })), this.opts.connectTimeoutMs);
      read = topics.find((t) => t.name === name)?.partitions.length ?? 0;
    } catch (error) {
      if (isUnknownTopic(error)) return this.createTopic(name);
      return was;
    }
    if (read === 0) return was;
    if (read !== was) this.opts.logger?.info('kafka: a topic\'s partition count changed; keys map to its partitions anew from now on', { topic: name, partitions: read, was });
    return read;
  }

  /**
   * A topic a subscription reads was reported unknown: made again if it is gone (deleted, or Kafka
   * lost its data), as `consume` makes a missing one, whatever count was read of it before; true
   * when it was. A lane's topic, or ats.workflows, is made again by a publish to it only, which may
   * not come for long; meanwhile the consumer would restart on the missing topic every 200 ms. A
   * topic still listed (the error came of stale metadata, a broker restarting) is left as it is.
   */
  private async remakeTopic(topic: string): Promise<boolean> {
    this.assertOpen();
    const name = physicalName(this.opts.topicPrefix, topic);
    const listed = await this.brokerTopics();
    if (listed.includes(name)) return false;
    this.knownTopics.delete(name);
    await this.ensureTopic(topic);
    return true;
  }

  private async createTopic(name: string): Promise<number> {
    const admin = await this.connectAdmin();
    const log = this.opts.logger;
    // Resolves false when the topic exists already.
    // Without `replicationFactor`, the broker's own `default.replication.factor` (kafkajs sends -1): 1
    // unless the cluster sets it. A lane's topic is created at its first message, so an operator cannot
    // be relied on to have made it beforehand.
    const { partitions, replicationFactor } = this.opts;
    const created = await admin.createTopics({
      waitForLeaders: false,
      topics: [{ topic: name, numPartitions: partitions, ...(replicationFactor === null ? {} : { replicationFactor }) }],
    }).catch((error: unknown) => {
      const why = topicErrors(error);
      log?.error('kafka: creating a topic failed', { topic: name, err: why });
      // kafkajs's own message says only "Topic creation errors": the start that fails on it says why.
      const hint = /INVALID_REPLICATION_FACTOR/.test(why)
        ? (replicationFactor === null ? ' (the broker\'s default.replication.factor asks more replicas than the cluster has brokers)'
          : ` (${replicationFactor} replicas asked: a topic has at most as many as the cluster has brokers)`) : '';
      throw new AtsError('ATS_ERR_NOT_READY', `Kafka refused to create topic ${name}: ${why.replace(`Topic creation errors: ${name}: `, '')}${hint}`, { cause: error });
    });
    if (created) log?.info('kafka: topic created', { topic: name, partitions, replicationFactor: replicationFactor ?? 'the broker\'s default' });
    else {
      log?.debug('kafka: topic exists', { topic: name });
      if (!this.settingsRead.has(name)) {
        this.settingsRead.add(name);
        await this.warnOfSettings(admin, name);
      }
    }
    if (!created) return waitForLeaders(admin, name, this.opts.consumer.readyTimeoutMs, this.closing.signal);
    // A topic just made: its leaders are asked until they serve it (see `waitForLeaders`), on the offsets
    // admin (see `askOffsets`). A leader answers a partition's offsets only once it serves the partition, as it takes a produce.
    const served = () => this.askOffsets(name, (a) => a.fetchTopicOffsets(name)).then(() => true, () => false);
    return waitForLeaders(admin, name, this.opts.consumer.readyTimeoutMs, this.closing.signal, served);
  }

  /**
   * A topic made beforehand with settings the scheduler cannot work with is said once (a warning),
   * as it is first found: compacted (it keeps only the newest record of each key, and a packed
   * transitions record, or a workflow child's end, shares its key with others), or taking records
   * smaller than the broker's default (a publish over it is refused every time, and the relay stops
   * at it). A broker that does not answer the question (an ACL) is let be.
   */
  private async warnOfSettings(admin: Admin, name: string): Promise<void> {
    const log = this.opts.logger;
    if (!log) return;
    const answer = await admin.describeConfigs({
      resources: [{ type: TOPIC_RESOURCE, name, configNames: ['cleanup.policy', 'max.message.bytes'] }], includeSynonyms: false,
    }).catch((error: unknown) => {
      log.debug('kafka: reading a topic\'s settings failed', { topic: name, ...errorFields(error) });
      return null;
    });
    const entries = answer?.resources[0]?.configEntries ?? [];
    const setting = (n: string) => entries.find((e) => e.configName === n)?.configValue;
    const policy = setting('cleanup.policy');
    if (policy?.split(',').some((p) => p.trim() === 'compact')) {
      log.warn('kafka: a topic is compacted (cleanup.policy=compact): compaction deletes records the scheduler\'s readers need; set cleanup.policy=delete', { topic: name, cleanupPolicy: policy });
    }
    const maxBytes = Number(setting('max.message.bytes'));
    if (Number.isFinite(maxBytes) && maxBytes < MIN_MESSAGE_BYTES) {
      log.warn(`kafka: a topic takes record batches of at most ${maxBytes} bytes (max.message.bytes): the relay sends record batches of up to 768 KiB, and stops at a publish the topic refuses; set it to at least ${MIN_MESSAGE_BYTES}`, { topic: name, maxMessageBytes: maxBytes });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }
}

/**
 * Right after a create, KRaft brokers may answer metadata with
 * UNKNOWN_TOPIC_OR_PARTITION for a moment; kafkajs' own `waitForLeaders` only
 * retries LEADER_NOT_AVAILABLE and fails the create. So: poll until every
 * partition has a leader, so a publish right after finds one. Then, for a
 * topic just made, until `served` holds: a KRaft broker names a new
 * partition's leader in its metadata before that leader serves it (it makes
 * the partition's log after, some milliseconds per partition), and a produce
 * in between is answered "not the leader", which kafkajs logs at error
 * ("Failed to send messages") as it tries again. Resolves the topic's
 * partition count. Ends, with the signal's reason, once `closing` aborts: the
 * log's admin is cut then, and polling it on would fail until the deadline.
 */
async function waitForLeaders(admin: Admin, topic: string, timeoutMs: number, closing: AbortSignal, served: () => Promise<boolean> = async () => true): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    closing.throwIfAborted();
    // All topics: asking for one the broker does not know yet logs an error.
    const ready = await admin.fetchTopicMetadata().then(
      ({ topics }) => topics.find((t) => t.name === topic && t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))?.partitions.length ?? 0,
      (error: unknown) => {
        if (Date.now() > deadline) throw error;
        return 0;
      },
    );
    if (ready > 0 && (await served())) return ready;
    if (Date.now() > deadline) throw new AtsError('ATS_ERR_NOT_READY', `Kafka topic ${topic} has no leader after ${timeoutMs} ms`);
    await sleep(50, undefined, { signal: closing }).catch(() => undefined);
  }
}

/**
 * The messages of `topicMessages` on partitions `answers` does not acknowledge: none, unless kafkajs
 * dropped them. kafkajs 2.2.4's `sendBatch` keeps, across its retries, the answer of each broker
 * that took its part of the batch; a broker that dies mid-send has its partitions' leadership moved
 * to the others, and a retry then sends the partitions that moved to a broker that answered already
 * to nobody, and resolves without them (a three-broker cluster with a leader killed lost dispatches
 * so). Every message of the log's publishes names its partition (`partitionOf`).
 */
function unacknowledged(topicMessages: readonly TopicMessages[], answers: readonly RecordMetadata[]): TopicMessages[] {
  const acked = new Set(answers.filter((a) => a.errorCode === 0).map((a) => `${a.partition}:${a.topicName}`));
  return topicMessages
    .map((t) => ({ ...t, messages: t.messages.filter((m) => m.partition !== undefined && m.partition !== null && !acked.has(`${m.partition}:${t.topic}`)) }))
    .filter((t) => t.messages.length > 0);
}

/** kafkajs's error of a createTopics, with each topic's own error (its message only says "Topic creation errors"). */
function topicErrors(error: unknown): string {
  const e = error as { message?: string; errors?: Array<{ topic?: string; type?: string; message?: string }> };
  const each = (e.errors ?? []).map((t) => `${t.topic ?? '?'}: ${t.type ?? t.message}`);
  return each.length > 0 ? `${e.message}: ${each.join('; ')}` : String(e.message ?? error);
}

/**
 * `plainSockets` (kafkajs' own factory: the log sets no TLS), keeping the
 * sockets it made so that `cut` can destroy them. After `cut`, every socket
 * it makes fails at once, as a refused connection would: kafkajs' retries of
 * a request it was given up on end within seconds, without reaching a broker.
 */
function cuttableSockets(why: string): { factory: ISocketFactory; cut: () => void; isCut: () => boolean } {
  const open = new Set<net.Socket>();
  let cut = false;
  const refused = () => new Error(`connection cut: ${why}`);
  const factory: ISocketFactory = (args) => {
    if (cut) return new net.Socket().destroy(refused()); // kafkajs hears the error after it listened: it is emitted on the next tick
    const socket = plainSockets(args);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    return socket;
  };
  return {
    factory,
    cut: () => {
      cut = true;
      for (const socket of open) socket.destroy(refused());
      open.clear();
    },
    isCut: () => cut,
  };
}

/** `logger`, but every line at debug once `isCut()` holds. */
function debugOnceCut(logger: Logger, isCut: () => boolean): Logger {
  const at = (level: 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) =>
    (isCut() ? logger.debug(msg, fields) : logger[level](msg, fields));
  return { debug: (msg, fields) => logger.debug(msg, fields), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * `promise`, or ATS_ERR_NOT_READY once it has gone unanswered `ms`. The step
 * goes on in kafkajs until its producer is retired (which cuts it).
 */
function unansweredAfter<T>(promise: Promise<T>, ms: number, step: string): Promise<T> {
  return withTimeout(promise, ms, () => new AtsError('ATS_ERR_NOT_READY', `Kafka left ${step} unanswered for ${ms} ms`));
}

const closedError = (): AtsError => new AtsError('ATS_ERR_NOT_READY', 'The Kafka event log is closed');
