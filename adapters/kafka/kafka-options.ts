/**
 * Options of the Kafka event log: raw in, defaults applied and checked once,
 * the result frozen (the adapter never reads `process.env`).
 */
import { isTimerPause, MAX_TIMER_MS } from '../../engine/error-backoff.js';
import { AtsError } from '../../engine/errors.js';
import type { Logger } from '../../engine/ports.js';

/** Consumer-group timing. Low values make rebalances (and tests) fast. */
export interface KafkaConsumerTuning {
  /** The broker drops a member silent this long. @defaultValue 6000 */
  sessionTimeoutMs?: number;
  /** @defaultValue 500 */
  heartbeatIntervalMs?: number;
  /** How long a rebalance waits for members to rejoin. @defaultValue 6000 */
  rebalanceTimeoutMs?: number;
  /** Longest a fetch waits on the broker for new records (latency floor when idle). @defaultValue 100 */
  maxWaitTimeMs?: number;
  /** Most records per `handle` call (a bigger fetched batch is split). @defaultValue 500 */
  maxBatch?: number;
  /**
   * Pause before records whose `handle` threw are fetched and handled again,
   * after the first failure of a partition's `handle`; it doubles with each
   * further failure in a row, up to `maxRedeliveryDelayMs`, and is back to
   * this after a `handle` of the partition that resolved. @defaultValue 200
   */
  redeliveryDelayMs?: number;
  /** The longest that pause grows to (at least `redeliveryDelayMs`). @defaultValue 5000 */
  maxRedeliveryDelayMs?: number;
  /** Partitions handled at once per consumer (each stays in order). @defaultValue `partitions` */
  partitionsConsumedConcurrently?: number;
  /**
   * `consume()` rejects if the consumer has not joined and fetched by then
   * (and a consumer started again after a crash is given up): its join does
   * not go on, its connections are cut. @defaultValue 30000
   */
  readyTimeoutMs?: number;
  /**
   * After a crash kafkajs does not restart from, wait this long before a new
   * consumer is started (doubling, up to 5 s, while starting fails). @defaultValue 1000
   */
  restartDelayMs?: number;
}

/** Options of `createKafkaLog`. */
export interface KafkaLogOptions {
  /** `host:port` of the bootstrap brokers. */
  brokers: string[];
  /** @defaultValue 'ats' */
  clientId?: string;
  /**
   * Prepended to every topic and group id, so parallel runs on one broker do
   * not see each other. Records handed to `handle` carry the logical topic.
   * @defaultValue ''
   */
  topicPrefix?: string;
  /** Partitions of topics this log creates. @defaultValue 3 */
  partitions?: number;
  /**
   * Replicas of topics this log creates (at most the cluster's brokers: more fails the create).
   * Topics that exist keep theirs.
   * @defaultValue the broker's `default.replication.factor` (1 unless the cluster sets it)
   */
  replicationFactor?: number | null;
  /** TCP connect timeout; also bounds `ping()`. @defaultValue 3000 */
  connectTimeoutMs?: number;
  /**
   * How long a topic's partition count is taken as read before a publish (or
   * `partitioner`) reads it again: partitions an operator adds are used, and
   * a topic deleted is made again, within this time. 0 reads it every time.
   * @defaultValue 300000 (kafkajs's own metadata age)
   */
  topicRecheckMs?: number;
  /** kafkajs log level: entries below it are not even made. @defaultValue 'warn' */
  logLevel?: 'nothing' | 'error' | 'warn' | 'info';
  /**
   * Where kafkajs logs, at honest levels (see `kafka-logging.ts`).
   * @defaultValue kafkajs's own console logger
   */
  logger?: Logger;
  /**
   * The time each record is stamped with as it is published (epoch ms): the
   * scheduler's clock, which `unreadBefore`'s times come from.
   * @defaultValue the host's clock (kafkajs stamps the record)
   */
  now?: () => number;
  consumer?: KafkaConsumerTuning;
}

export type CompiledKafkaLogOptions = Readonly<
  Required<Omit<KafkaLogOptions, 'consumer' | 'logger' | 'now' | 'replicationFactor'>> & {
    consumer: Readonly<Required<KafkaConsumerTuning>>; logger: Logger | null; now: (() => number) | null;
    /** null: the broker's default. */
    replicationFactor: number | null;
  }
>;

/** Applies defaults, validates, freezes. Throws `ATS_ERR_CONFIG` on a bad value. */
export function compileKafkaLogOptions(raw: KafkaLogOptions): CompiledKafkaLogOptions {
  const partitions = raw.partitions ?? 3;
  const consumer = Object.freeze({
    sessionTimeoutMs: 6000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 6000,
    maxWaitTimeMs: 100,
    maxBatch: 500,
    redeliveryDelayMs: 200,
    maxRedeliveryDelayMs: 5000,
    partitionsConsumedConcurrently: partitions,
    readyTimeoutMs: 30_000,
    restartDelayMs: 1000,
    ...raw.consumer,
  });
  const opts = Object.freeze({
    brokers: Object.freeze([...raw.brokers]) as string[],
    clientId: raw.clientId ?? 'ats',
    topicPrefix: raw.topicPrefix ?? '',
    partitions,
    replicationFactor: raw.replicationFactor ?? null,
    connectTimeoutMs: raw.connectTimeoutMs ?? 3000,
    topicRecheckMs: raw.topicRecheckMs ?? 300_000,
    logLevel: raw.logLevel ?? 'warn',
    logger: raw.logger ?? null,
    now: raw.now ?? null,
    consumer,
  });
  validate(opts);
  return opts;
}

function validate(opts: CompiledKafkaLogOptions): void {
  const problems: string[] = [];
  if (opts.brokers.length === 0) problems.push('brokers must not be empty');
  const positive = { partitions: opts.partitions, connectTimeoutMs: opts.connectTimeoutMs, ...opts.consumer };
  for (const [name, value] of Object.entries(positive)) {
    const pause = name === 'redeliveryDelayMs' || name === 'maxRedeliveryDelayMs';
    const ok = pause ? isTimerPause(value) : Number.isInteger(value) && value > 0;
    if (!ok) problems.push(`${name} must be ${pause ? `an integer from 0 to ${MAX_TIMER_MS}` : 'a positive integer'} (got ${value})`);
  }
  const rf = opts.replicationFactor;
  if (rf !== null && (!Number.isInteger(rf) || rf < 1 || rf > 32767)) problems.push(`replicationFactor must be an integer from 1 to 32767, or unset (got ${rf})`);
  if (!Number.isInteger(opts.topicRecheckMs) || opts.topicRecheckMs < 0) problems.push(`topicRecheckMs must be an integer from 0 (got ${opts.topicRecheckMs})`);
  if (opts.consumer.heartbeatIntervalMs >= opts.consumer.sessionTimeoutMs) {
    problems.push('heartbeatIntervalMs must be below sessionTimeoutMs');
  }
  if (problems.length > 0) {
    throw new AtsError('ATS_ERR_CONFIG', `invalid Kafka log options: ${problems.join('; ')}`);
  }
}
