/**
 * A broker that stops answering (a frozen host, a partition that drops
 * packets) rather than refusing connections: a proxy keeps every connection
 * open and forwards nothing. A publish must fail within its bound, and a
 * relay's stop must not wait out a publish in progress, nor write anything
 * after it returned. A subscription's stop and the log's close must end well
 * within a worker's shutdown (its grace plus 5 s, 15 s by default) without
 * losing a record: one whose commit did not land comes again.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { silentLogger } from '../../engine/logger.js';
import { TOPICS, type EventLog, type JobStore, type LogMessage, type OutboxRow } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { systemClock } from '../../engine/system.js';
import type { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { startTcpProxy, type TcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { createKafkaLog } from './index.js';

const brokers = kafkaBrokers();
const kafkaUp = await requireKafka();

/**
 * Every connection kafkajs opens to the broker goes through a proxy: the
 * broker advertises its own address, so a proxy named as the bootstrap
 * broker would carry the first connection only. Patches `net.connect`, which
 * kafkajs's socket factory calls.
 */
async function proxiedBroker(): Promise<{ proxy: TcpProxy; restore(): Promise<void> }> {
  const [host, port] = brokers[0]!.split(':') as [string, string];
  const proxy = await startTcpProxy({ host, port: Number(port) });
  const connect = net.connect;
  net.connect = ((...args: Parameters<typeof connect>) => {
    const [options] = args as unknown as [{ port?: number | string } | undefined];
    if (typeof options === 'object' && options !== null && String(options.port) === port) {
      (args as unknown[])[0] = { ...options, host: '127.0.0.1', port: proxy.port };
    }
    return connect(...args);
  }) as typeof connect;
  return {
    proxy,
    restore: async () => {
      net.connect = connect;
      proxy.unstall();
      await proxy.close();
    },
  };
}

type Outcome<T> = { settled: false } | { settled: true; ok: true; value: T; ms: number } | { settled: true; ok: false; error: unknown; ms: number };

/** How `promise` settled within `ms`, and after how long (never throws: a test reports a hang as a failed assertion). */
async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<Outcome<T>> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Outcome<T>>((resolve) => { timer = setTimeout(() => resolve({ settled: false }), ms); });
  const outcome = promise.then(
    (value): Outcome<T> => ({ settled: true, ok: true, value, ms: Date.now() - started }),
    (error: unknown): Outcome<T> => ({ settled: true, ok: false, error, ms: Date.now() - started }),
  );
  try {
    return await Promise.race([outcome, late]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (value: string): LogMessage => ({ topic: TOPICS.dispatch, key: 'k', value, headers: {} });

/** A store with one outbox row, keeping what the relay did with it: a claim deletes the row only if the publish resolved. */
function oneRowOutbox() {
  const row: OutboxRow = { id: 1, topic: TOPICS.events, key: 'k', payload: { i: 1 }, value: '{"i":1}', headers: {}, createdAt: 0, publishedAt: null };
  const seen = { claims: 0, rolledBack: 0, deleted: 0, claimsOpen: 0 };
  let claimed!: () => void;
  const firstClaim = new Promise<void>((resolve) => { claimed = resolve; });
  const store = {
    relayOutbox: async (_limit: number, publish: (rows: OutboxRow[]) => Promise<void>) => {
      seen.claims++;
      seen.claimsOpen++;
      claimed();
      try {
        await publish([row]);
      } catch (error) {
        seen.rolledBack++;
        throw error;
      } finally {
        seen.claimsOpen--;
      }
      seen.deleted++;
      return 1;
    },
  } as unknown as JobStore;
  return { store, seen, firstClaim };
}

if (kafkaUp) {
  describe('Kafka log with a broker that stops answering', () => {
    it('fails a publish within 20 s (the producer is replaced), and publishes again once the broker answers', { timeout: 60_000 }, async () => {
      const { proxy, restore } = await proxiedBroker();
      const topicPrefix = randomTopicPrefix();
      const log = createKafkaLog({ brokers, topicPrefix, partitions: 1, logLevel: 'nothing' });
      try {
        await log.ensureTopics();
        await log.publish([message('before')]);
        proxy.stall();
        const stalled = await settleWithin(log.publish([message('stalled')]), 25_000);
        assert.ok(stalled.settled, 'the publish to the silent broker was still waiting after 25 s');
        assert.equal(stalled.ok, false, 'the publish to the silent broker resolved');
        assert.ok(stalled.ms < 20_000, `the publish failed after ${stalled.ms} ms`);
        proxy.unstall();
        const after = await settleWithin(log.publish([message('after')]), 10_000);
        assert.ok(after.settled && after.ok, `the publish once the broker answered again: ${JSON.stringify(after)}`);
      } finally {
        await restore();
        await log.close();
        await deleteTopicsWithPrefix(topicPrefix, brokers);
      }
    });

    it('stops a relay whose publish waits on it after its grace (1 s), not the log\'s bound, rolls its claim back, and closes the log without waiting', { timeout: 60_000 }, async () => {
      const { proxy, restore } = await proxiedBroker();
      const topicPrefix = randomTopicPrefix();
      const log = createKafkaLog({ brokers, topicPrefix, partitions: 1, logLevel: 'nothing' });
      let applied = 0;
      try {
        await log.ensureTopics();
        await log.publish([message('before')]);
        proxy.stall();
        const { store, seen, firstClaim } = oneRowOutbox();
        const transitions = { applyMany: async () => { applied++; return []; } } as unknown as TransitionService;
        const relay = new Relay(
          { store, log: log as EventLog, transitions, clock: systemClock, logger: silentLogger, waker: new Waker() },
          { batchSize: 500, pollMs: 50, errorBackoffMs: 1000, publishedDelayMs: 0 },
        );
        relay.start();
        await firstClaim;
        const stop = await settleWithin(relay.stop(), 10_000);
        assert.ok(stop.settled && stop.ok, `relay.stop() with a publish waiting on the silent broker: ${JSON.stringify(stop)}`);
        // The grace is 1 s; the log alone would hold on for 15 s (a silent broker's bound): well below that, on a busy machine too.
        assert.ok(stop.ms < 8000, `relay.stop() took ${stop.ms} ms`);
        assert.deepEqual(seen, { claims: 1, rolledBack: 1, deleted: 0, claimsOpen: 0 }, 'the claim was rolled back before stop() returned');

        const close = await settleWithin(log.close(), 10_000);
        assert.ok(close.settled && close.ok, `log.close() with a publish in flight: ${JSON.stringify(close)}`);
        // A drained disconnect would wait for the silent broker up to kafkajs' 30 s request timeout.
        assert.ok(close.ms < 8000, `log.close() took ${close.ms} ms`);

        // The broker answers again: the abandoned publish leaves nothing for the relay to write.
        proxy.unstall();
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.deepEqual(seen, { claims: 1, rolledBack: 1, deleted: 0, claimsOpen: 0 });
        assert.equal(applied, 0, 'PUBLISHED recorded for a batch the relay gave up on');
      } finally {
        await restore();
        await log.close();
        await deleteTopicsWithPrefix(topicPrefix, brokers);
      }
    });

    it('stops a subscription whose last commit waits on it within a few seconds (its connections cut); what was not handled comes again to the group', { timeout: 60_000 }, async () => {
      const { proxy, restore } = await proxiedBroker();
      const topicPrefix = randomTopicPrefix();
      const options = { brokers, topicPrefix, partitions: 1, logLevel: 'nothing', consumer: { maxBatch: 1 } } as const;
      const log = createKafkaLog(options);
      const next = createKafkaLog(options);
      try {
        await log.ensureTopics();
        let release!: () => void;
        const held = new Promise<void>((resolve) => { release = resolve; });
        const seen: string[] = [];
        const sub = await log.consume({
          topic: TOPICS.dispatch, groupId: 'stalled', fromBeginning: true,
          handle: async (records) => { seen.push(...records.map((r) => r.value)); await held; },
        });
        await log.publish([message('held'), message('not handled')]);
        for (const deadline = Date.now() + 20_000; seen.length === 0;) {
          assert.ok(Date.now() < deadline, 'the first record was handed to handle');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        proxy.stall();
        const stopping = sub.stop();
        await new Promise((resolve) => setTimeout(resolve, 200));
        release(); // the handle resolves while the consumer stops: its commit goes to the silent broker
        const stop = await settleWithin(stopping, 20_000);
        assert.ok(stop.settled && stop.ok, `sub.stop() with a commit waiting on the silent broker: ${JSON.stringify(stop)}`);
        // kafkajs alone waits out the commit and the LeaveGroup (30 s each); a worker's whole shutdown has 15 s.
        assert.ok(stop.ms < 8000, `sub.stop() took ${stop.ms} ms`);
        assert.deepEqual(seen, ['held'], 'no record was handed over once the consumer stopped');
        const close = await settleWithin(log.close(), 10_000);
        assert.ok(close.settled && close.ok && close.ms < 8000, `log.close() after the stop: ${JSON.stringify(close)}`);

        // The broker answers again: the group's next member gets what was not handled (and the first record
        // again, unless its commit, held back by the proxy, landed late).
        proxy.unstall();
        const delivered: string[] = [];
        let got!: () => void;
        const gotIt = new Promise<void>((resolve) => { got = resolve; });
        await next.consume({
          topic: TOPICS.dispatch, groupId: 'stalled', fromBeginning: true,
          handle: async (records) => {
            delivered.push(...records.map((r) => r.value));
            if (delivered.includes('not handled')) got();
          },
        });
        const again = await settleWithin(gotIt, 25_000);
        assert.ok(again.settled, `the record not handled did not come again: ${JSON.stringify(delivered)}`);
      } finally {
        await restore();
        await log.close();
        await next.close();
        await deleteTopicsWithPrefix(topicPrefix, brokers);
      }
    });

    it('closes the log without waiting out an admin request left unanswered (a ping that gave up)', { timeout: 60_000 }, async () => {
      const { proxy, restore } = await proxiedBroker();
      const topicPrefix = randomTopicPrefix();
      const log = createKafkaLog({ brokers, topicPrefix, partitions: 1, logLevel: 'nothing' });
      try {
        await log.ensureTopics();
        proxy.stall();
        const ping = await settleWithin(log.ping(), 10_000);
        assert.ok(ping.settled && !ping.ok, `ping() to the silent broker: ${JSON.stringify(ping)}`);
        const close = await settleWithin(log.close(), 20_000);
        assert.ok(close.settled && close.ok, `log.close() with the ping's request pending: ${JSON.stringify(close)}`);
        // A drained disconnect of the admin waits for the request up to kafkajs' 30 s request timeout.
        assert.ok(close.ms < 8000, `log.close() took ${close.ms} ms`);
      } finally {
        await restore();
        await log.close();
        await deleteTopicsWithPrefix(topicPrefix, brokers);
      }
    });
  });
} else {
  it('Kafka log with a broker that stops answering', { skip: 'no Kafka broker reachable and ATS_ALLOW_SKIP=1' }, () => {});
}
