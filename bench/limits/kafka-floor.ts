/**
 * The Kafka floor: a raw Kafka client producing and consuming the messages the
 * scheduler moves per job, with the scheduler's producer settings
 * (idempotent, acks -1, one produce call per `relayBatch` of messages, one
 * request in flight) on topics of 3 partitions. Per job it produces one
 * dispatch message plus the four transition messages of a no-op job's life
 * (SUBMITTED, PUBLISHED, STARTED, SUCCEEDED) on the events topic; one consumer
 * group (the workers) reads the dispatch topic, committing offsets by hand
 * after each batch. Nothing consumes the events topic: workers no longer watch
 * it (cancels travel on the dispatch topic). With `dispatchOnly`, one message
 * per job. Done when every dispatch message is consumed and committed and
 * every produce call is acknowledged. Prints one `BENCH_RESULT {...}` line.
 *
 * `client` picks the library: `kafkajs` (the scheduler's, default) or
 * `platformatic` (@platformatic/kafka, as close to the same settings as it
 * allows: see `platformaticClient`).
 *
 *   node --import tsx bench/limits/kafka-floor.ts '{"jobs":20000}'
 *   node --import tsx bench/limits/kafka-floor.ts '{"jobs":20000,"client":"platformatic"}'
 */
import type { Message as PlatformaticMessage } from '@platformatic/kafka';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { keyPartitioner } from '../../adapters/kafka/kafka-records.js';
import { KIND_HEADER, TRANSITION_KIND } from '../../engine/messages.js';
import { TOPICS } from '../../engine/ports.js';
import { packTransitions } from '../../engine/transition-records.js';
import { runId } from '../lib/driver.js';
import { CpuMeter, serverPids } from '../lib/proc.js';
import { deleteTopicsWithPrefix, kafkaBrokers } from '../lib/services.js';
import { round } from '../lib/stats.js';

const EVENTS_PER_JOB = ['SUBMITTED', 'PUBLISHED', 'STARTED', 'SUCCEEDED'] as const;
const CLIENT_ID = 'ats-bench-floor';
/** kafkajs's consumer fetch defaults, given to both clients. */
const FETCH = { maxWaitMs: 100, minBytes: 1, maxBytes: 10 * 1024 * 1024, maxBytesPerPartition: 1024 * 1024 };

type ClientName = 'kafkajs' | 'platformatic';
interface Topics { dispatch: string; events: string }
/** One message as handed to a client's produce call. */
interface Outgoing { topic: string; key: string; value: string; headers: Record<string, string> }

/** One client's producer and dispatch consumer group. */
interface FloorClient {
  /** Resolves once `expected` dispatch messages are consumed and their offsets committed. */
  finished: Promise<void>;
  /** One produce call for one batch; resolves when the broker acknowledged it (acks -1). */
  send(messages: Outgoing[]): Promise<void>;
  close(): Promise<void>;
}

/** Messages shaped like the scheduler's (`engine/messages.ts`), for job `i`. */
function messagesOf(i: number, dispatchOnly: boolean): Array<{ topic: keyof Topics; key: string; value: string }> {
  const jobId = `01J${String(i).padStart(23, '0')}`;
  const dispatch = { topic: 'dispatch' as const, key: jobId, value: JSON.stringify({ jobId, attempt: 1, type: 'bench.job', queue: 'default', priority: 0, dispatch: 1 }) };
  if (dispatchOnly) return [dispatch];
  const at = Date.now();
  const events = EVENTS_PER_JOB.map((type, seq) => ({
    topic: 'events' as const, key: jobId,
    value: JSON.stringify({ jobId, seq: seq + 1, type, from: seq ? 'pending' : null, to: 'pending', at, data: { type, at, attempt: 1 }, jobType: 'bench.job', queue: 'default' }),
  }));
  return [events[0]!, dispatch, ...events.slice(1)];
}

/** A promise with its settle functions, rejection pre-handled (it is awaited later). */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * kafkajs, as the scheduler uses it: idempotent producer with one request in
 * flight, `sendBatch` with acks -1, the Java-compatible default partitioner;
 * the consumer reads with `eachBatch` (3 partitions at once) and commits each
 * batch's offset itself (`autoCommit: false`).
 */
async function kafkajsClient(topics: Topics, prefix: string, expected: number): Promise<FloorClient> {
  const kafka = new Kafka({ clientId: CLIENT_ID, brokers: kafkaBrokers(), logLevel: logLevel.ERROR });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const done = deferred();
  let committed = 0;
  const consumer = kafka.consumer({
    groupId: `${prefix}workers`, maxWaitTimeInMs: FETCH.maxWaitMs, minBytes: FETCH.minBytes, maxBytes: FETCH.maxBytes, maxBytesPerPartition: FETCH.maxBytesPerPartition,
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) done.reject(payload.error);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: topics.dispatch, fromBeginning: true });
  await consumer.run({
    autoCommit: false, partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch: b, resolveOffset, commitOffsetsIfNecessary }) => {
      const last = b.messages[b.messages.length - 1];
      if (!last) return;
      resolveOffset(last.offset);
      await commitOffsetsIfNecessary({ topics: [{ topic: b.topic, partitions: [{ partition: b.partition, offset: (BigInt(last.offset) + 1n).toString() }] }] });
      // Counted once committed: batches of the 3 partitions run at once, so
      // another partition's commit may still be in flight when this one lands.
      committed += b.messages.length;
      if (committed >= expected) done.resolve();
    },
  });
  return {
    finished: done.promise,
    async send(messages) {
      const byTopic = new Map<string, Outgoing[]>();
      for (const m of messages) {
        let list = byTopic.get(m.topic);
        if (!list) byTopic.set(m.topic, (list = []));
        list.push(m); // kafkajs reads key, value and headers; the extra topic is ignored
      }
      await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })) });
    },
    async close() {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

/**
 * @platformatic/kafka with kafkajs's settings where it has them:
 * - `Producer({ idempotent: true, acks: ProduceAcks.ALL, maxInflights: 1 })`
 *   (the client forces both acks ALL and `maxInflights` 1 per connection when
 *   `idempotent` is set); `compatibilityPartitioner`, the Java murmur2
 *   partitioner kafkajs's `DefaultPartitioner` also is (the client's own
 *   `defaultPartitioner` places keys differently); string serialisers; one
 *   `send()` per batch of messages across both topics; the producer id is
 *   taken before the clock starts (`initIdempotentProducer`), as kafkajs's
 *   `connect()` does.
 * - `Consumer({ autocommit: false })` in the group, `consume()` from the
 *   committed offset falling back to the earliest (kafkajs's `fromBeginning`
 *   for a new group), kafkajs's fetch sizes and 100 ms wait, no deserialisers
 *   (Buffers, as kafkajs's `eachBatch` gets). The stream fetches all three
 *   partitions in one request and emits messages one by one; after each fetch
 *   the last message of each partition is committed (`message.commit()`): a
 *   manual commit per fetch, which the stream coalesces into one OffsetCommit
 *   in flight at a time.
 */
async function platformaticClient(topics: Topics, prefix: string, expected: number): Promise<FloorClient> {
  // @platformatic/kafka 2.12 declares Node >= 22.22; on Node 20 it fails at
  // its first promise-returning call for want of Promise.withResolvers (ES2024),
  // which this process gets here, to the letter of the spec.
  const P = Promise as unknown as { withResolvers?: () => { promise: Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void } };
  P.withResolvers ??= () => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => ((resolve = res), (reject = rej)));
    return { promise, resolve, reject };
  };
  // Loaded only here, so the kafkajs floor's process does not carry it.
  const {
    Consumer: PlatformaticConsumer, MessagesStreamFallbackModes, MessagesStreamModes, ProduceAcks,
    Producer: PlatformaticProducer, compatibilityPartitioner, stringSerializers,
  } = await import('@platformatic/kafka');
  const bootstrapBrokers = kafkaBrokers();
  const producer = new PlatformaticProducer<string, string, string, string>({
    clientId: CLIENT_ID, bootstrapBrokers, idempotent: true, acks: ProduceAcks.ALL, maxInflights: 1,
    partitioner: compatibilityPartitioner, serializers: stringSerializers,
  });
  await producer.initIdempotentProducer({});
  const done = deferred();
  const consumer = new PlatformaticConsumer({
    clientId: CLIENT_ID, bootstrapBrokers, groupId: `${prefix}workers`, autocommit: false,
    maxWaitTime: FETCH.maxWaitMs, minBytes: FETCH.minBytes, maxBytes: FETCH.maxBytes, maxBytesPerPartition: FETCH.maxBytesPerPartition,
    sessionTimeout: 30_000, heartbeatInterval: 3_000, // kafkajs's defaults
  });
  const stream = await consumer.consume({ topics: [topics.dispatch], mode: MessagesStreamModes.COMMITTED, fallbackMode: MessagesStreamFallbackModes.EARLIEST });
  let pending = 0; // consumed, commit not yet asked for
  let committed = 0;
  const lastOfPartition = new Map<number, PlatformaticMessage>();
  let flushQueued = false;
  // A fetch's messages arrive in one synchronous run of 'data' events; the
  // next fetch's answer comes back through I/O, after this setImmediate.
  const flush = () => {
    flushQueued = false;
    const last = [...lastOfPartition.values()];
    const count = pending;
    lastOfPartition.clear();
    pending = 0;
    Promise.all(last.map((m) => m.commit())).then(() => {
      committed += count;
      if (committed >= expected) done.resolve();
    }, done.reject);
  };
  stream.on('data', (m: PlatformaticMessage) => {
    pending++;
    lastOfPartition.set(m.partition, m);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flush);
    }
  });
  stream.on('error', done.reject);
  return {
    finished: done.promise,
    async send(messages) {
      await producer.send({ messages });
    },
    async close() {
      await stream.close();
      await consumer.close();
      await producer.close();
    },
  };
}

/** One produce call's messages with their transitions packed by the engine's own `packTransitions`. */
function packOutgoing(part: Outgoing[], topics: Topics, partitionOf: (key: string) => number): Outgoing[] {
  const logical = part.map((m) => ({
    ...m, topic: m.topic === topics.events ? TOPICS.events : TOPICS.dispatch,
    headers: m.topic === topics.events ? { ...m.headers, [KIND_HEADER]: TRANSITION_KIND } : m.headers,
  }));
  return packTransitions(logical, partitionOf).map((m) => ({ ...m, topic: m.topic === TOPICS.events ? topics.events : topics.dispatch }));
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as { jobs?: number; batch?: number; dispatchOnly?: boolean; packed?: boolean; client?: ClientName };
  const n = input.jobs ?? 20_000;
  const batch = input.batch ?? 500;
  const dispatchOnly = input.dispatchOnly ?? false;
  const packed = !dispatchOnly && (input.packed ?? false);
  const client = input.client ?? 'kafkajs';
  if (client !== 'kafkajs' && client !== 'platformatic') throw new Error(`unknown client ${JSON.stringify(client)} (kafkajs or platformatic)`);
  const prefix = `ats-bench-floor-${runId()}.`;
  const topics: Topics = { dispatch: `${prefix}ats.dispatch`, events: `${prefix}ats.events` };
  // Topics are made (and later deleted) with kafkajs's admin for both clients: set-up, not measured.
  const admin = new Kafka({ clientId: CLIENT_ID, brokers: kafkaBrokers(), logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  let floor: FloorClient | undefined;
  let line = '';
  try {
    await admin.createTopics({ waitForLeaders: true, topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })) });
    const all = Array.from({ length: n }, (_, i) => messagesOf(i, dispatchOnly)).flat();
    floor = await (client === 'kafkajs' ? kafkajsClient : platformaticClient)(topics, prefix, n);
    const meter = new CpuMeter(() => ({ bench: [process.pid], ...serverPids(['kafka']) }));
    meter.start();
    const t0 = Date.now();
    const eventsPartition = keyPartitioner(topics.events, 3);
    let sentRecords = 0;
    for (let k = 0; k < all.length; k += batch) {
      const part = all.slice(k, k + batch).map((m) => ({
        topic: topics[m.topic], key: m.key, value: m.value, headers: { 'content-type': 'application/json', 'ats-outbox-id': String(k) },
      }));
      // Packing runs in the measured loop: it is the scheduler's work too. On logical topic names, as the relay packs.
      const records = packed ? packOutgoing(part, topics, eventsPartition) : part;
      sentRecords += records.length;
      await floor.send(records);
    }
    const produced = Date.now();
    await floor.finished;
    const seconds = (Date.now() - t0) / 1000;
    const cpu = meter.stop();
    // Not timed: the group's committed offsets must cover every dispatch message.
    const [committed] = await admin.fetchOffsets({ groupId: `${prefix}workers`, topics: [topics.dispatch] });
    const committedCount = (committed?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    if (committedCount !== n) throw new Error(`the workers group committed ${committedCount} dispatch offsets, expected ${n}`);
    const what = dispatchOnly ? '1 message per job (dispatch)'
      : packed ? `5 messages per job (dispatch + 4 transitions), the transitions of each produce call packed into one record per partition (ATS_EVENTS_FORMAT=batch); ${sentRecords} records for ${all.length} messages`
      : '5 messages per job (dispatch + 4 transitions)';
    const settings = client === 'kafkajs'
      ? `kafkajs, ${what}, sendBatch of ${batch} messages, idempotent, acks -1, 1 request in flight, 3 partitions; one consumer group reads the dispatch topic with manual commits per batch`
      : `@platformatic/kafka, ${what}, send of ${batch} messages, idempotent, acks -1, maxInflights 1, 3 partitions; one consumer group reads the dispatch topic with manual commits per fetch`;
    const result = {
      jobs: n, messages: all.length, seconds: round(seconds, 2), jobsPerSec: round(n / seconds, 0), produceSeconds: round((produced - t0) / 1000, 2),
      settings,
      cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 2)])),
      cpuPer1k: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / n, 3)])),
      peakMiB: { bench: round(process.resourceUsage().maxRSS / 1024, 0) },
    };
    await floor.close();
    floor = undefined;
    line = `BENCH_RESULT ${JSON.stringify(result)}\n`;
  } finally {
    await floor?.close().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  }
  process.stdout.write(line);
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`kafka floor failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
