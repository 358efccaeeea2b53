/**
 * Consumer lag from Kafka's admin API (kafkajs): per partition, the topic's
 * end offset (`fetchTopicOffsets`) minus the group's committed offset
 * (`fetchOffsets`). A group with no commit on a partition yet lags by every
 * message the partition still holds (end minus start offset).
 *
 * Its own admin client, connected on the first read (and again on the read
 * after one that failed): the lag is read when Prometheus scrapes (and cached
 * by the caller), never on the hot path.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { plainSockets } from '../kafka/sockets.js';
import type { ConsumerLag } from './prometheus.js';

export interface KafkaLagOptions {
  brokers: string[];
  clientId: string;
  /**
   * Each group and the topic it consumes, as Kafka names them (with the topic
   * prefix); or a function of the topics that exist, asked at each read.
   */
  groups: ReadonlyArray<GroupTopic> | ((topics: readonly string[]) => ReadonlyArray<GroupTopic>);
  /** @defaultValue 3000 */
  connectTimeoutMs?: number;
}

export interface GroupTopic {
  group: string;
  topic: string;
}

export interface KafkaLag {
  read(): Promise<ConsumerLag[]>;
  close(): Promise<void>;
}

export function kafkaLag(opts: KafkaLagOptions): KafkaLag {
  const timeout = opts.connectTimeoutMs ?? 3000;
  const admin: Admin = new Kafka({
    clientId: opts.clientId, brokers: opts.brokers, connectionTimeout: timeout, requestTimeout: timeout,
    // The event log's sockets: a refusal at every address of a host name names each, not an empty "Connection error: ".
    socketFactory: plainSockets,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 }, logLevel: logLevel.NOTHING,
  }).admin();
  let connecting: Promise<void> | null = null;
  let closed = false;
  const connect = () => (connecting ??= admin.connect());
  /**
   * After a failed read the admin starts over (disconnects, and connects on the next read): a broker
   * that took the TCP connection but never answered makes kafkajs' `connect()` resolve anyway, and
   * that admin then fails every request "Broker not connected", even once the broker answers again.
   */
  const startOver = async (connected: Promise<void>) => {
    if (connecting !== connected) return; // another read already did
    connecting = null;
    await admin.disconnect().catch(() => undefined);
  };

  return {
    async read() {
      if (closed) return [];
      const connected = connect();
      try {
        await connected;
        return await readLags(admin, opts.groups);
      } catch (err) {
        await startOver(connected);
        throw err;
      }
    },
    async close() {
      closed = true;
      if (connecting) await connecting.then(() => admin.disconnect(), () => undefined);
    },
  };
}

async function readLags(admin: Admin, groupsOf: KafkaLagOptions['groups']): Promise<ConsumerLag[]> {
  const out: ConsumerLag[] = [];
  const groups = typeof groupsOf === 'function' ? groupsOf(await admin.listTopics()) : groupsOf;
  for (const { group, topic } of groups) {
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId: group, topics: [topic] }),
    ]);
    for (const { partition, lag } of partitionLags(ends, committed)) out.push({ group, topic, partition, lag });
  }
  return out;
}

/**
 * Per partition, the messages after the group's committed offset (from the
 * start of the log when none is committed). A partition whose offsets the
 * broker did not give as numbers (a topic still being created, a leader
 * moving) is left out rather than reported as NaN.
 */
export function partitionLags(
  ends: readonly { partition: number; high?: string; low?: string }[],
  committed: readonly { partitions: readonly { partition: number; offset?: string }[] }[],
): { partition: number; lag: number }[] {
  const byPartition = new Map<number, number>();
  for (const t of committed) for (const p of t.partitions) byPartition.set(p.partition, Number(p.offset));
  const out: { partition: number; lag: number }[] = [];
  for (const p of ends) {
    const at = byPartition.get(p.partition);
    const lag = Number(p.high) - (at !== undefined && at >= 0 ? at : Number(p.low));
    if (Number.isFinite(lag)) out.push({ partition: p.partition, lag: Math.max(0, lag) });
  }
  return out;
}
