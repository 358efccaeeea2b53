/**
 * The pause before a partition's records are delivered again after `handle`
 * threw, on the real broker: it doubles with the failures in a row up to its
 * cap, is back to the base after a `handle` that resolved, and the failures
 * are logged sparingly. Assertions are lower bounds on the gaps between
 * `handle` calls (a slow machine makes them longer, never shorter) and
 * generous bounds on counts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TOPICS, type Logger } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createKafkaLog, type KafkaConsumerTuning } from './index.js';

const brokers = kafkaBrokers();
const kafkaUp = await requireKafka();
const prefixes: string[] = [];
after(() => Promise.all(prefixes.map((p) => deleteTopicsWithPrefix(p, brokers))));

/** A timer may fire up to a millisecond before its time (rounding): the lower bounds allow that. */
const EARLY_MS = 2;

/** A log on a fresh prefix whose kafkajs lines at warn and above land in `lines`. */
function freshLog(consumer: KafkaConsumerTuning) {
  const topicPrefix = randomTopicPrefix();
  prefixes.push(topicPrefix);
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  const log = createKafkaLog({
    brokers, topicPrefix, clientId: 'ats-test-redelivery', logLevel: 'info', logger,
    consumer: { maxWaitTimeMs: 20, ...consumer },
  });
  /** The lines about the handle of partition-0-or-other of the dispatch topic, without the topic's name. */
  const handleLines = () => lines
    .filter((l) => / handle of /.test(l.msg))
    .map((l) => [l.level, l.msg.replace(/^kafka: handle of \S+ partition \d+ \(group \S+\) /, ''), l.fields?.failures]);
  return { log, handleLines };
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; !ok();) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (kafkaUp) {
  describe('Kafka log redelivery pause', () => {
    it('pauses longer after each failed handle of a partition in a row, doubling up to the cap, and logs the first failure only', { timeout: 60_000 }, async () => {
      const { log, handleLines } = freshLog({ redeliveryDelayMs: 20, maxRedeliveryDelayMs: 160 });
      const calls: number[] = [];
      await log.ensureTopics();
      const sub = await log.consume({
        topic: TOPICS.dispatch, groupId: 'backoff', fromBeginning: true,
        handle: async () => { calls.push(performance.now()); throw new Error('database down'); },
      });
      try {
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'v', headers: {} }]);
        await until('the first handle call', () => calls.length > 0);
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        await sub.stop();
        await log.close();
      }
      const gaps = calls.slice(1).map((t, i) => t - calls[i]);
      assert.ok(gaps.length >= 5, `only ${calls.length} handle calls`);
      // 20, 40, 80, 160 ms, then 160 each (plus the fetch).
      gaps.forEach((gap, i) => {
        const pause = Math.min(20 * 2 ** i, 160);
        assert.ok(gap >= pause - EARLY_MS, `gap ${i} was ${gap.toFixed(1)} ms, below the pause of ${pause} ms: ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
      });
      // The cap holds: still doubling, 3 s would hold 8 calls (20 + 40 + ... + 1280 ms); at 160 ms, more than 15.
      assert.ok(calls.length >= 12, `only ${calls.length} handle calls in 3 s: the pause did not stop growing at 160 ms`);
      assert.deepEqual(handleLines(), [['warn', 'failed, will retry', 1]]);
    });

    it('pauses the base delay again after a handle that resolved: the next failure is redelivered promptly', { timeout: 60_000 }, async () => {
      const { log, handleLines } = freshLog({ redeliveryDelayMs: 20, maxRedeliveryDelayMs: 60_000 });
      const calls: Array<{ at: number; value: string }> = [];
      let bFailed = false;
      await log.ensureTopics();
      const sub = await log.consume({
        topic: TOPICS.dispatch, groupId: 'reset', fromBeginning: true,
        handle: async (records) => {
          calls.push({ at: performance.now(), value: records[0].value });
          if (calls.length <= 7) throw new Error('database down');
          if (records[0].value === 'b' && !bFailed) {
            bFailed = true;
            throw new Error('database down again');
          }
        },
      });
      try {
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'a', headers: {} }]);
        await until('a handled', () => calls.length >= 8);
        await log.publish([{ topic: TOPICS.dispatch, key: 'k', value: 'b', headers: {} }]);
        await until('b handled', () => calls.filter((c) => c.value === 'b').length >= 2);
      } finally {
        await sub.stop();
        await log.close();
      }
      assert.deepEqual(calls.map((c) => c.value), ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'b', 'b']);
      // Seven failures in a row: the last pause was 20 × 2⁶ = 1280 ms (and the next would have been 2560 ms).
      const lastPause = calls[7].at - calls[6].at;
      assert.ok(lastPause >= 1280 - EARLY_MS, `the 7th pause was ${lastPause.toFixed(1)} ms`);
      const afterReset = calls[9].at - calls[8].at;
      assert.ok(afterReset < lastPause, `b's redelivery waited ${afterReset.toFixed(1)} ms after a handle that resolved (the pause did not reset)`);
      assert.deepEqual(handleLines(), [
        ['warn', 'failed, will retry', 1],
        ['info', 'works again', 7],
        ['warn', 'failed, will retry', 1],
        ['info', 'works again', 1],
      ]);
    });

    it('pauses only the failing partition: the consumer\'s other partitions are handled meanwhile', { timeout: 60_000 }, async () => {
      const { log } = freshLog({ redeliveryDelayMs: 5000 });
      await log.ensureTopics();
      const partitionOf = await log.partitioner(TOPICS.dispatch);
      const other = ['y', 'z', 'w', 'v'].find((k) => partitionOf(k) !== partitionOf('x'))!;
      const failedAt: number[] = [];
      let otherAt: number | null = null;
      const sub = await log.consume({
        topic: TOPICS.dispatch, groupId: 'others', fromBeginning: true,
        handle: async (records) => {
          if (records[0].key === 'x') {
            failedAt.push(performance.now());
            throw new Error('this partition fails');
          }
          otherAt ??= performance.now();
        },
      });
      try {
        await log.publish([{ topic: TOPICS.dispatch, key: 'x', value: 'fails', headers: {} }]);
        await until('x handled', () => failedAt.length > 0);
        await log.publish([{ topic: TOPICS.dispatch, key: other, value: 'works', headers: {} }]);
        await until(`${other} handled`, () => otherAt !== null);
      } finally {
        await sub.stop();
        await log.close();
      }
      // Held up by the 5 s pause of x's partition it would come after it; it comes well within.
      assert.ok(otherAt! - failedAt[0] < 2500, `the other partition waited ${(otherAt! - failedAt[0]).toFixed(0)} ms`);
      assert.equal(failedAt.length, 1, 'x was not delivered again within its pause');
    });
  });
}
