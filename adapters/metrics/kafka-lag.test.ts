/**
 * The lag arithmetic of adapters/metrics/kafka-lag.ts, without a broker; its
 * reads from a broker that stalls; and what a read says when every address of
 * the broker's host name refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kafkaBrokers, requireKafka } from '../../tests/helpers/kafka.js';
import { refuseEveryAddress } from '../../tests/helpers/refused-everywhere.js';
import { startTcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { kafkaLag, partitionLags } from './kafka-lag.js';

test('the lag per partition: from the committed offset, or from the log start when none; never below 0', () => {
  const ends = [{ partition: 0, high: '10', low: '0' }, { partition: 1, high: '7', low: '2' }, { partition: 2, high: '3', low: '0' }];
  const committed = [{ partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '-1' }, { partition: 2, offset: '5' }] }];
  assert.deepEqual(partitionLags(ends, committed), [{ partition: 0, lag: 6 }, { partition: 1, lag: 5 }, { partition: 2, lag: 0 }]);
});

test('a partition whose offsets are not numbers is left out, never reported as NaN', () => {
  const ends = [{ partition: 0, high: '10', low: '0' }, { partition: 1, high: undefined, low: '0' }, { partition: 2, high: '5', low: undefined }];
  assert.deepEqual(partitionLags(ends, []), [{ partition: 0, lag: 10 }]);
  // A committed offset that is not a number counts as none: the lag is from the log start.
  assert.deepEqual(partitionLags(ends, [{ partitions: [{ partition: 0, offset: 'x' }] }]), [{ partition: 0, lag: 10 }]);
});

test('a broker that stopped answering and answers again: the next read reads again', { timeout: 20_000 }, async (t) => {
  if (!(await requireKafka())) return t.skip('no Kafka');
  const [host, port] = kafkaBrokers()[0]!.split(':');
  const proxy = await startTcpProxy({ host: host!, port: Number(port) });
  // Connections are taken but nothing is answered: kafkajs' connect() resolves after its timeout regardless.
  proxy.stall();
  const seen: string[][] = [];
  const lag = kafkaLag({
    brokers: [`127.0.0.1:${proxy.port}`], clientId: 'ats-test-lag', connectTimeoutMs: 1000,
    groups: (topics) => {
      seen.push([...topics]);
      return [];
    },
  });
  try {
    await assert.rejects(lag.read(), 'no answer while the broker is stalled');
    proxy.unstall();
    // Before, the admin stayed "connected" to nothing: every later read failed "Broker not connected".
    assert.deepEqual(await lag.read(), []);
    assert.equal(seen.length, 1, 'the topics were listed once the broker answered');
  } finally {
    await lag.close();
    await proxy.close();
  }
});

test('refused at every address of its host name: the read\'s error names each address, not an empty "Connection error: "', { timeout: 20_000 }, async () => {
  const restore = refuseEveryAddress();
  const lag = kafkaLag({ brokers: ['kafka.test:9092'], clientId: 'ats-test-lag-refused', connectTimeoutMs: 1000, groups: [] });
  try {
    const error = await lag.read().then(() => assert.fail('read while every address refuses'), (e: unknown) => e as Error);
    assert.match(error.message, /Connection error: connect ECONNREFUSED ::1:9092; connect ECONNREFUSED 127\.0\.0\.1:9092$/);
  } finally {
    restore();
    await lag.close();
  }
});
