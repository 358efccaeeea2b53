/**
 * One `consume()` on Kafka: a kafkajs consumer in the caller's group, with
 * manual commits. The rule that makes it at-least-once: an offset is committed
 * only after `handle` resolved for every record up to it. Break that (commit
 * first, or auto-commit) and a crash mid-`handle` loses dispatches for good.
 * The commits themselves run behind the fetch loop (offset-committer.ts).
 * A stop waits on Kafka for a bounded time only, then cuts the consumer's
 * connections (see `startSubscription`).
 */
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Logger } from 'kafkajs';
import { ErrorBackoff, OutageLog } from '../../engine/error-backoff.js';
import { AtsError } from '../../engine/errors.js';
import { errorFields } from '../../engine/logger.js';
import { settlesWithin, unlessStopped } from '../../engine/loop.js';
import type { BatchInfo, ConsumeOptions, Logger as EngineLogger, LogRecord, Subscription } from '../../engine/ports.js';
import type { CompiledKafkaLogOptions } from './kafka-options.js';
import { chunk, nextOffset, physicalName, toLogRecord } from './kafka-records.js';
import { offsetCommitter, type OffsetCommitter } from './offset-committer.js';
import { isUnknownTopic } from './unknown-topic.js';

type Tuning = CompiledKafkaLogOptions['consumer'];

/** The longest pause between two tries of starting a new consumer after a crash. */
const MAX_RESTART_DELAY_MS = 5000;

/**
 * How long a stop waits on Kafka (the last commits, leaving the group) once no
 * `handle` runs any more. A healthy broker answers in milliseconds; one that
 * stops answering (a frozen host, packets dropped) refuses nothing, and
 * kafkajs would wait out its 30 s request timeout for the fetch in flight,
 * the commit and the LeaveGroup in turn, about a minute, while a worker's
 * whole shutdown has its grace plus 5 s. Past the bound the connections are
 * cut: a commit that did not land is records delivered again (the claims
 * fence them), and a group not left moves the partitions after the session
 * timeout instead of at once.
 */
const LEAVE_TIMEOUT_MS = 2000;

/**
 * A kafkajs client on connections of its own: `cut` ends them at once and
 * fails every later one (what is in flight fails, as on a refused
 * connection). Each consumer of a subscription has one, so that giving up a
 * consumer's join cuts that consumer alone, not the one started after it.
 */
export interface ConsumerClient {
  readonly kafka: Kafka;
  readonly cut: () => void;
}

/**
 * Starts a consumer and resolves once it has joined its group and fetched once.
 *
 * kafkajs restarts a consumer by itself after a retriable crash (a broker
 * that went away, retries exhausted), but after any other crash it stops for
 * good, and a process whose only sign of life was that consumer would then
 * sit idle forever. So the subscription watches for such a crash and starts a
 * new consumer in the same group (after `restartDelayMs`, doubling up to 5 s
 * while starting fails), until `stop()`.
 *
 * `stop()` returns once no `handle` runs, and once the consumer left its
 * group, or Kafka left that unanswered for `LEAVE_TIMEOUT_MS` after the last
 * `handle` returned and the client's connections were cut.
 *
 * A join can take long: a rebalance waits up to its timeout for the members
 * that are busy handling a batch, and a consumer not ready within
 * `readyTimeoutMs` (30 s by default) is given up then, as is one whose join
 * failed otherwise (see `startConsumer`). Neither the caller's `signal`
 * (while this has not resolved) nor a `stop()` (while a new consumer joins
 * after a crash) waits for that: the joining consumer is given up at once.
 *
 * `newClient` makes each consumer's client (see `ConsumerClient`).
 *
 * A consumer that crashes because its topic is gone (deleted, or Kafka lost
 * its data) would be restarted by kafkajs every 200 ms, two log lines and a
 * metadata request each time, until something makes the topic again. So,
 * given `remakeTopic`, the subscription makes it again first (saying so once,
 * as a warning) and the consumer rejoins it, reading it from its start (the
 * group's offsets went with the topic). Should making it fail (a delete still
 * in progress, or Kafka refusing it), the restart waits, from `restartDelayMs`
 * doubling up to 5 s; the failure is a warning (then at most one a minute),
 * and the consumer's join after it a line at info.
 */
export async function startSubscription(
  newClient: () => ConsumerClient, opts: CompiledKafkaLogOptions, options: ConsumeOptions,
  remakeTopic?: () => Promise<boolean>,
): Promise<Subscription> {
  /** The client of the consumer that joined last (a stop cuts it should Kafka not answer). */
  let client = newClient();
  const inFlight = new Set<Promise<unknown>>();
  const logger = client.kafka.logger();
  const topic = physicalName(opts.topicPrefix, options.topic);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake = () => {};
  let restarting: Promise<void> | null = null;
  /** Aborted by `stop()`: a new consumer still joining after a crash is given up. */
  const giveUpJoin = new AbortController();
  /** The topic found gone, and not yet read again: the next restart waits this long if making it fails. */
  let gone: { delayMs: number } | null = null;
  /** Making the gone topic again failing: a warning at once, then at most one a minute, and a line when the consumer joins again. */
  const remakeOutage = new OutageLog(opts.logger ?? logger, `kafka: the consumer of ${topic}`, {
    level: 'warn', failedMessage: `kafka: making the gone topic ${topic} again failed; the consumer restarts later and tries again`,
  });
  /** kafkajs's restart after a retriable crash: the topic made again first when it is gone; false once stopped. */
  const restarts: Restarts = { joined: () => { gone = null; remakeOutage.succeeded({ topic }); }, before: async (error) => {
    if (stopped || !remakeTopic || !isUnknownTopic(error)) return !stopped;
    const delayMs = gone?.delayMs ?? opts.consumer.restartDelayMs;
    gone = { delayMs: Math.min(delayMs * 2, MAX_RESTART_DELAY_MS) };
    try {
      // Said only when it was gone: the same error comes of stale metadata (a broker restarting), the topic still there.
      if (await remakeTopic()) logger.warn('the topic this consumer reads was gone (deleted, or Kafka lost its data); it was made again and is read from its start', { topic });
    } catch (remakeError) {
      remakeOutage.failed(remakeError, Date.now(), { topic, retryInMs: delayMs });
      await new Promise((resolve) => { setTimeout(resolve, delayMs).unref(); });
    }
    return !stopped;
  } };
  const committer = offsetCommitter((error) => {
    // The coordinator away: tried again. Refused after a rebalance: dropped at the rejoin, the records come again, and claims fence them.
    logger.warn('an offset commit failed; it is tried again (records not committed are delivered again)', { topic, ...errorFields(error) });
  });

  const restartLoop = async (): Promise<void> => {
    for (let delay = opts.consumer.restartDelayMs; !stopped; delay = Math.min(delay * 2, MAX_RESTART_DELAY_MS)) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
      if (stopped) return;
      try {
        const next = newClient();
        consumer = await startConsumer(next, opts, options, inFlight, committer, onDeadCrash, restarts, giveUpJoin.signal);
        client = next;
        return;
      } catch (error) {
        if (stopped) return; // given up by the stop
        logger.error('starting a new consumer failed; will try again', { topic, ...errorFields(error) });
      }
    }
  };
  function onDeadCrash(error: Error): void {
    if (stopped || restarting) return;
    logger.error('consumer crashed and kafkajs will not restart it; starting a new one', { topic, ...errorFields(error) });
    restarting = restartLoop().finally(() => { restarting = null; });
  }
  let consumer: Consumer;
  try {
    consumer = await startConsumer(client, opts, options, inFlight, committer, onDeadCrash, restarts, options.signal);
  } catch (error) {
    committer.clear(); // the commits of a batch handled meanwhile fail on the connections cut: its records come again
    throw error;
  }

  const leave = async () => {
    await restarting;
    await committer.settled();
    // disconnect() waits for the batch being handled (which lets its commits
    // go first), then leaves the group, so the partitions move to the other
    // members right away.
    await consumer.disconnect();
  };
  let stopping: Promise<void> | null = null;
  const stop = async () => {
    stopped = true;
    clearTimeout(timer);
    wake(); // a restart waiting out its delay gives up now
    giveUpJoin.abort(new Error('the subscription stopped')); // and one still joining, at once
    const leaving = leave();
    leaving.catch(() => {}); // thrown by `await leaving` below, once no handle runs
    try {
      // Timed from the last handle's end: a slow handle on a healthy broker still gets its commit.
      await noHandleRunning(inFlight);
      if (!(await settlesWithin(leaving, LEAVE_TIMEOUT_MS))) {
        logger.warn('Kafka did not answer the consumer leaving its group; its connections are cut (records not committed are delivered again)', {
          topic, waitedMs: LEAVE_TIMEOUT_MS,
        });
        client.cut();
      }
      await leaving;
    } finally {
      // Should the disconnect fail, stop() still returns only once no handle
      // runs: the caller goes on to end the work those calls started.
      await noHandleRunning(inFlight);
      // A commit that failed is not tried again on a consumer that left.
      committer.clear();
    }
  };
  return { stop: () => (stopping ??= stop()) };
}

/** What kafkajs's restarts of a subscription's consumers ask of it. */
interface Restarts {
  /** Before a restart after a retriable crash: whether to restart (not once the subscription stopped). */
  readonly before: (error: Error) => Promise<boolean>;
  /** The consumer joined its group. */
  readonly joined: () => void;
}

/** Resolves once no `handle` call is in flight (the batch being handled may still start some until the consumer stops). */
async function noHandleRunning(inFlight: Set<Promise<unknown>>): Promise<void> {
  while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
}

/**
 * One kafkajs consumer on `client` (its own), joined and fetching;
 * `onDeadCrash` hears of a later crash kafkajs does not restart from.
 *
 * Should the join fail (not ready within `readyTimeoutMs`, a crash, a
 * connection refused), or `signal` abort before then (at once), the consumer
 * is given up and this rejects, with the signal's reason when it aborted:
 * the client's connections are cut (a disconnect alone does not end a join
 * in progress: kafkajs goes on with it in the background, reconnecting, and
 * would start fetching once joined), kafkajs restarts it no more, and this
 * returns once no `handle` runs. A record handed meanwhile is not committed
 * and comes again. The group hears nothing of the member that went away
 * mid-join: should the broker have taken it in, the group drops it after the
 * session timeout, and its partitions then move to the other members.
 */
async function startConsumer(
  client: ConsumerClient, opts: CompiledKafkaLogOptions, options: ConsumeOptions, inFlight: Set<Promise<unknown>>,
  committer: OffsetCommitter, onDeadCrash: (error: Error) => void, restarts: Restarts, signal?: AbortSignal,
): Promise<Consumer> {
  signal?.throwIfAborted();
  const { kafka } = client;
  const topic = physicalName(opts.topicPrefix, options.topic);
  let givenUp = false;
  const consumer = kafka.consumer({
    groupId: physicalName(opts.topicPrefix, options.groupId),
    sessionTimeout: opts.consumer.sessionTimeoutMs,
    heartbeatInterval: opts.consumer.heartbeatIntervalMs,
    rebalanceTimeout: opts.consumer.rebalanceTimeoutMs,
    maxWaitTimeInMs: opts.consumer.maxWaitTimeMs,
    allowAutoTopicCreation: false,
    // kafkajs's own default tries; a consumer given up while it joined is not restarted when its join fails.
    retry: { retries: 5, restartOnFailure: async (error) => !givenUp && (await restarts.before(error)) && !givenUp },
  });
  // The log's own lines go to the process's logger as they are (kafkajs's INFO is logged at debug there).
  const handleBatch = batchHandler(options, opts.consumer, opts.logger ?? kafka.logger(), inFlight, committer, topic);
  const ready = waitUntilFetching(consumer, topic, opts.consumer.readyTimeoutMs);
  const step = () => { if (givenUp) throw new Error('the consumer was given up while it joined'); };
  const joining = (async () => {
    await consumer.connect();
    step();
    await consumer.subscribe({ topics: [topic], fromBeginning: options.fromBeginning ?? false });
    step();
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: opts.consumer.partitionsConsumedConcurrently,
      eachBatch: handleBatch,
    });
    await ready.promise;
  })();
  joining.catch(() => {}); // awaited below, unless given up (its failure is then the cut's)
  // `run()` returns only once joined: the ready timeout (or a crash) ends the wait for the join too.
  const notReady = new Promise<never>((_, reject) => { ready.promise.catch(reject); });
  notReady.catch(() => {});
  try {
    const joined = Promise.race([joining, notReady]);
    await (signal ? unlessStopped(joined, signal) : joined);
  } catch (error) {
    ready.cancel();
    givenUp = true;
    client.cut();
    // Quick once cut (a disconnect mid-join has no group to leave), bounded all the same.
    await settlesWithin(consumer.disconnect(), LEAVE_TIMEOUT_MS);
    await noHandleRunning(inFlight);
    throw signal?.aborted ? signal.reason : error;
  }
  consumer.on(consumer.events.CRASH, ({ payload }) => { if (!payload.restart) onDeadCrash(payload.error); });
  // Offsets of the generation before a rebalance are not committed in the new one.
  consumer.on(consumer.events.GROUP_JOIN, () => {
    committer.clear();
    restarts.joined();
  });
  return consumer;
}

/**
 * Positions of a group with no committed offset ("latest" / "earliest") are
 * resolved at the first fetch, not at join. Resolving `consume()` before that
 * would let "latest" skip messages published right after it returned.
 */
function waitUntilFetching(
  consumer: Consumer, topic: string, timeoutMs: number,
): { promise: Promise<void>; cancel(): void } {
  let settle!: (error?: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    let joined = false;
    const offs = [
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        joined = true;
        // A member with no partition of the topic never fetches it: nothing to wait for.
        if ((payload.memberAssignment[topic] ?? []).length === 0) settle();
      }),
      consumer.on(consumer.events.FETCH, () => { if (joined) settle(); }),
      // A crash kafkajs restarts from may still end in a join: keep waiting for it.
      consumer.on(consumer.events.CRASH, ({ payload }) => { if (!payload.restart) settle(payload.error); }),
    ];
    const timer = setTimeout(() => settle(new AtsError('ATS_ERR_NOT_READY',
      `Kafka consumer for ${topic} not ready after ${timeoutMs} ms`)), timeoutMs);
    settle = (error?: Error) => {
      clearTimeout(timer);
      offs.forEach((off) => off());
      if (error) reject(error);
      else resolve();
    };
  });
  promise.catch(() => {}); // observed by the caller through `await ready.promise`, or cancelled
  return { promise, cancel: () => settle() };
}

/** A partition's `handle` failures in a row, as this consumer saw them: the pause before the next try, and their log. */
interface PartitionFailures {
  readonly backoff: ErrorBackoff;
  readonly outage: OutageLog;
}

/**
 * The `eachBatch` callback: hand records over in chunks, commit each chunk
 * after `handle` resolved. A chunk whose `handle` threw is fetched again
 * after a pause that doubles with the partition's failures in a row (from
 * `redeliveryDelayMs` up to `maxRedeliveryDelayMs`), and is back to the base
 * after a `handle` that resolved. The failures are logged as warnings: the
 * first, then at most one line a minute with the count, then the recovery.
 *
 * Once the group rebalances (see `handleWithHeartbeats`), the batch ends
 * without handing out more: kafkajs rejoins only after this returns, and the
 * rebalance waits for this member up to its timeout. A chunk whose `handle`
 * threw then is not committed, with no pause and no warning: its records
 * come again after the rejoin, to whichever member holds the partition.
 */
function batchHandler(
  options: ConsumeOptions, tuning: Tuning, logger: Pick<EngineLogger, 'error' | 'warn' | 'info'>, inFlight: Set<Promise<unknown>>,
  committer: OffsetCommitter, topic: string,
): (payload: EachBatchPayload) => Promise<void> {
  const partitions = new Map<number, PartitionFailures>();
  const failuresOf = (partition: number): PartitionFailures => {
    let failures = partitions.get(partition);
    if (!failures) {
      failures = {
        backoff: new ErrorBackoff(tuning.redeliveryDelayMs, Math.max(tuning.redeliveryDelayMs, tuning.maxRedeliveryDelayMs)),
        outage: new OutageLog(logger, `kafka: handle of ${topic} partition ${partition} (group ${options.groupId})`, { level: 'warn' }),
      };
      partitions.set(partition, failures);
    }
    return failures;
  };
  return async (payload) => {
    const { batch } = payload;
    const rebalance = new AbortController();
    try {
      // Records of the partition after the batch that were in Kafka when it was fetched.
      const lag = Math.max(0, Number(batch.offsetLag()) || 0);
      let handed = 0;
      for (const part of chunk(batch.messages, tuning.maxBatch)) {
        if (!payload.isRunning() || payload.isStale() || rebalance.signal.aborted) return;
        const records = part.map((m) => toLogRecord(options.topic, batch.partition, m));
        handed += part.length;
        const info: BatchInfo = { behind: batch.messages.length - handed + lag, signal: rebalance.signal };
        const outcome = await track(inFlight, handleWithHeartbeats(options, records, info, payload, rebalance, tuning));
        const failures = failuresOf(batch.partition);
        if (!outcome.ok) {
          if (rebalance.signal.aborted) return; // broken off for the rejoin: not a failure of the partition
          const delayMs = failures.backoff.failed();
          // Logged once the pause is over and the records go out again: not when a stop broke the handle off.
          pauseBeforeRedelivery(payload, delayMs, () => {
            if (payload.isRunning()) failures.outage.failed(outcome.error, Date.now(), { offset: part[0].offset, redeliveryDelayMs: delayMs });
          });
          return;
        }
        failures.backoff.succeeded();
        failures.outage.succeeded();
        commit(payload, part, committer);
      }
    } finally {
      // Stopping: kafkajs leaves the group once this returns; let the commits go first.
      if (!payload.isRunning()) await committer.settled();
    }
  };
}

/**
 * Failure path: return without resolving. kafkajs fetches each partition from
 * its last *resolved* offset, so the next fetch starts at this chunk's first
 * record again; later records of the batch were not handed out, so none is skipped.
 *
 * The pause is kafkajs's pause of this one partition, not a wait in here: the
 * consumer goes on fetching and handling its other partitions (a fetch waits
 * for every batch of the one before), heartbeats and rebalances as usual, and
 * a stop is not held up. Should the partition move to another member
 * meanwhile, that member fetches it at once. `then` runs as the pause ends.
 */
function pauseBeforeRedelivery(payload: EachBatchPayload, delayMs: number, then: () => void): void {
  if (delayMs === 0) {
    then();
    return;
  }
  const resume = payload.pause();
  // Not cleared on stop: resuming a stopped consumer's partition changes nothing, and the timer does not hold the process.
  setTimeout(() => {
    resume();
    then();
  }, delayMs).unref();
}

/** Marks the chunk handled and hands its next offset to the committer (not awaited: see offset-committer.ts). */
function commit(payload: EachBatchPayload, part: KafkaMessage[], committer: OffsetCommitter): void {
  const last = part[part.length - 1].offset;
  payload.resolveOffset(last);
  const { topic, partition } = payload.batch;
  // Explicit offsets: with autoCommit off, commitOffsetsIfNecessary() alone commits nothing.
  // A commit refused after a rebalance throws; the new owner of the partition
  // gets these records again (a duplicate, never a loss).
  committer.add((partitions) => payload.commitOffsetsIfNecessary({ topics: [{ topic, partitions }] }), partition, nextOffset(last));
}

/**
 * Runs `handle`, heartbeating meanwhile so a long handle does not cost the
 * partitions. A heartbeat the coordinator answers with a rebalance (or with
 * this member's generation over), or the partition's position moved
 * (`isStale`), aborts `rebalance`, which `handle` sees as `info.signal`.
 */
async function handleWithHeartbeats(
  options: ConsumeOptions, records: LogRecord[], info: BatchInfo,
  payload: Pick<EachBatchPayload, 'heartbeat' | 'isStale'>, rebalance: AbortController, tuning: Tuning,
): Promise<{ ok: true } | { ok: false; error: unknown }> {
  const rejoin = () => rebalance.abort(new Error('the consumer group is rebalancing: the records not handled come again after the rejoin'));
  const timer = setInterval(() => {
    if (payload.isStale()) rejoin();
    // Any other failure is fine to ignore here: the commit that follows tells.
    payload.heartbeat().catch((error: unknown) => { if (endsGeneration(error)) rejoin(); });
  }, tuning.heartbeatIntervalMs);
  try {
    await options.handle(records, info);
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  } finally {
    clearInterval(timer);
  }
}

/** A heartbeat's error saying this member must rejoin its group (kafkajs's error `type`s, as the coordinator names them). */
function endsGeneration(error: unknown): boolean {
  const type = (error as { type?: unknown } | null)?.type;
  return type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'UNKNOWN_MEMBER_ID';
}

function track<T>(set: Set<Promise<unknown>>, promise: Promise<T>): Promise<T> {
  set.add(promise);
  const forget = () => { set.delete(promise); };
  promise.then(forget, forget);
  return promise;
}
