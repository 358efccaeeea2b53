/**
 * Conversions between the port's records (strings) and kafkajs messages
 * (Buffers), and the topic-prefix mapping.
 */
import { Partitioners, type ICustomPartitioner, type IHeaders, type KafkaMessage, type Message, type PartitionMetadata, type TopicMessages } from 'kafkajs';
import { pack } from '../../engine/pack.js';
import type { LogMessage, LogRecord } from '../../engine/ports.js';

/** Logical topic (or group id) → the name used on the broker. */
export const physicalName = (prefix: string, name: string): string => prefix + name;

/**
 * Key → partition of a topic of `count` partitions, as the producer's
 * Java-compatible murmur2 partitioner (kafkajs's DefaultPartitioner) picks it
 * for a keyed message.
 */
export function keyPartitioner(topic: string, count: number): (key: string) => number {
  const partition = Partitioners.DefaultPartitioner();
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0],
  }));
  return (key) => partition({ topic, partitionMetadata, message: { key, value: null } });
}

/**
 * The producer's partitioner: kafkajs's default (Java-compatible murmur2 of the key, modulo the
 * partitions its metadata knows), except that a message the log placed itself (`partition`, from
 * `EventLog.partitioner`) goes there whenever kafkajs's metadata knows that partition. kafkajs
 * drops a message for a partition its metadata lacks, unsent and unreported: one the log placed on
 * partitions an operator added, read by the log before kafkajs's metadata had them.
 */
export const placingPartitioner: ICustomPartitioner = () => {
  const byKey = Partitioners.DefaultPartitioner();
  return (args) => {
    const placed = args.message.partition;
    if (placed !== undefined && placed !== null && args.partitionMetadata.some((p) => p.partitionId === placed)) return placed;
    return byKey({ ...args, message: { ...args.message, partition: undefined } });
  };
};

/**
 * Characters of keys, values and headers one produce request carries at most
 * (a message larger than that goes alone). A broker refuses a partition's
 * record batch above its `message.max.bytes` (1 MiB by default) for good, and
 * kafkajs sends all of one request's messages for a partition as one batch:
 * several large messages of one key in one publish would stop the relay there.
 * At most 3 bytes a character (UTF-8, outside the astral planes 2 per UTF-16
 * unit), so a chunk stays under 768 KiB plus the record overheads.
 */
export const MAX_REQUEST_CHARS = 256 * 1024;

/** `messages` in order, cut into consecutive chunks of at most MAX_REQUEST_CHARS each (a larger message alone). */
export function produceChunks(messages: readonly LogMessage[], maxChars = MAX_REQUEST_CHARS): LogMessage[][] {
  return pack(messages, charsOf, Infinity, maxChars);
}

function charsOf(m: LogMessage): number {
  let chars = m.key.length + m.value.length;
  for (const name in m.headers) chars += name.length + m.headers[name]!.length;
  return chars;
}

/**
 * Groups messages by topic for one `sendBatch`, keeping their order within each topic; each stamped
 * `at` and, with `partitionOf` (physical topic, key), placed on its partition.
 */
export function toTopicMessages(prefix: string, messages: readonly LogMessage[], at?: number, partitionOf?: (topic: string, key: string) => number): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  const timestamp = at === undefined ? undefined : String(at);
  for (const m of messages) {
    const topic = physicalName(prefix, m.topic);
    let list = byTopic.get(topic);
    if (!list) byTopic.set(topic, (list = []));
    const message: Message = { key: m.key, value: m.value, headers: { ...m.headers } };
    if (timestamp !== undefined) message.timestamp = timestamp;
    if (partitionOf) message.partition = partitionOf(topic, m.key);
    list.push(message);
  }
  return [...byTopic].map(([topic, list]) => ({ topic, messages: list }));
}

/** A fetched message as the port's record, under its logical topic. */
export function toLogRecord(topic: string, partition: number, message: KafkaMessage): LogRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key?.toString('utf8') ?? '',
    value: message.value?.toString('utf8') ?? '',
    headers: toHeaders(message.headers),
  };
}

/**
 * Header values come back as Buffers (or arrays of them when a name repeats: the last wins),
 * or null: a header of no value (length -1), which other producers may send, reads as ''.
 * Names are any producer's choice: the map has no prototype, so `__proto__` is a header like any other.
 */
function toHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [name, raw] of Object.entries(headers ?? {})) {
    const value: Buffer | string | null | undefined = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value !== undefined) out[name] = value?.toString() ?? '';
  }
  return out;
}

/** The offset to commit after handling `offset`: the next one to read. */
export const nextOffset = (offset: string): string => (BigInt(offset) + 1n).toString();

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
