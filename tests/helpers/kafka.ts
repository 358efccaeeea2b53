/**
 * Kafka for tests: where the broker is, an isolating topic prefix per run, a
 * probe that fails (CI) or skips (ATS_ALLOW_SKIP=1) when no broker answers,
 * and cleanup of a run's topics.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { requireService } from './services.js';

/** Brokers from `KAFKA_BROKERS` (comma-separated), default the dev broker of `scripts/kafka/kafka.sh`. */
export function kafkaBrokers(): string[] {
  const raw = process.env.KAFKA_BROKERS?.trim();
  return raw ? raw.split(',').map((b) => b.trim()).filter(Boolean) : ['127.0.0.1:9092'];
}

/** A fresh prefix like `t-lq3k9x-5f2a9c.`: topics and groups of one run see nothing of another. */
export function randomTopicPrefix(): string {
  return `t-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}.`;
}

/**
 * True when a broker answers. When none does: returns false if `ATS_ALLOW_SKIP=1`
 * outside CI (the caller skips its Kafka tests), throws otherwise (see `requireService`).
 * Start the dev broker with `bash scripts/kafka/kafka.sh start`.
 */
export function requireKafka(): Promise<boolean> {
  return requireService('kafka', () => probeKafka(kafkaBrokers()));
}

/** Connects an admin client and describes the cluster, failing fast (no retries). */
export async function probeKafka(brokers: string[], timeoutMs = 3000): Promise<void> {
  const kafka = new Kafka({
    clientId: 'ats-test-probe', brokers, connectionTimeout: timeoutMs, requestTimeout: timeoutMs,
    retry: { retries: 0 }, logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } finally {
    await admin.disconnect();
  }
}

/** Deletes every topic whose name starts with `prefix` (a run's topics; their group offsets go with them). */
export async function deleteTopicsWithPrefix(prefix: string, brokers = kafkaBrokers()): Promise<void> {
  const kafka = new Kafka({ clientId: 'ats-test-cleanup', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10_000 });
  } finally {
    await admin.disconnect();
  }
}

