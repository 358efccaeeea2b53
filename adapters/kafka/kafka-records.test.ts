/** Kafka messages into log records: header names are whatever a producer chose, `__proto__` included. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KafkaMessage, PartitionMetadata } from 'kafkajs';
import type { LogMessage } from '../../engine/ports.js';
import { keyPartitioner, MAX_REQUEST_CHARS, placingPartitioner, produceChunks, toLogRecord } from './kafka-records.js';

const message = (headers: NonNullable<KafkaMessage['headers']>): KafkaMessage => ({
  key: Buffer.from('k'), value: Buffer.from('v'), timestamp: '0', attributes: 0, offset: '7', headers,
});

describe('toLogRecord', () => {
  it('keeps every header as an own key, names of Object.prototype members included; the last of a repeated name wins', () => {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const raw = Object.create(null) as Record<string, Buffer | Buffer[]>;
    for (const n of names) raw[n] = Buffer.from(`v-${n}`);
    raw['ats-kind'] = [Buffer.from('a'), Buffer.from('transition')];
    const r = toLogRecord('t', 0, message(raw));
    for (const n of names) assert.equal(Object.getOwnPropertyDescriptor(r.headers, n)?.value, `v-${n}`, n);
    assert.equal(r.headers['ats-kind'], 'transition');
    assert.equal(Object.keys(r.headers).length, names.length + 1);
    assert.equal(({} as Record<string, unknown>)['v-__proto__'], undefined);
  });

  it('reads a header with a null value (another producer may send one) as empty, not a crash', () => {
    const raw = { nothing: null, also: [Buffer.from('x'), null], 'ats-kind': Buffer.from('dispatch') } as unknown as NonNullable<KafkaMessage['headers']>;
    const r = toLogRecord('t', 0, message(raw));
    assert.equal(r.headers.nothing, '');
    assert.equal(r.headers.also, '');
    assert.equal(r.headers['ats-kind'], 'dispatch');
  });
});

describe('produceChunks', () => {
  const m = (key: string, value: string, headers: Record<string, string> = {}): LogMessage => ({ topic: 'ats.events', key, value, headers });
  it('keeps a publish whole below the limit, and cuts larger ones in order, a message over the limit alone', () => {
    const small = [m('a', 'x'.repeat(10)), m('b', 'y'.repeat(10), { h: 'v' })];
    assert.deepEqual(produceChunks(small, 100), [small]);
    const big = m('k', 'z'.repeat(150));
    const parts = [m('a', 'x'.repeat(40)), m('a', 'x'.repeat(40)), m('b', 'y'.repeat(40)), big, m('c', 'w'.repeat(10))];
    const chunks = produceChunks(parts, 100);
    assert.deepEqual(chunks, [[parts[0], parts[1]], [parts[2]], [big], [parts[4]]]);
    assert.deepEqual(chunks.flat(), parts, 'every message once, in order');
    assert.deepEqual(produceChunks([]), []);
    assert.ok(MAX_REQUEST_CHARS * 3 < 1024 * 1024, 'a chunk of the default size fits a broker\'s default batch');
  });
});


describe('placingPartitioner', () => {
  const metadata = (count: number): PartitionMetadata[] =>
    Array.from({ length: count }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));

  it('sends a message the log placed where it placed it, and one without a place by its key as kafkajs does', () => {
    const pick = placingPartitioner();
    const topic = 'ats.events';
    assert.equal(pick({ topic, partitionMetadata: metadata(6), message: { key: 'job-1', value: null, partition: 4 } }), 4);
    for (const key of ['job-1', 'job-2', 'job-3']) {
      assert.equal(pick({ topic, partitionMetadata: metadata(6), message: { key, value: null } }), keyPartitioner(topic, 6)(key));
    }
  });

  it('a place on a partition the producer\'s metadata does not know yet (added since it was read) goes by the key over the partitions it knows, not unsent', () => {
    const pick = placingPartitioner();
    const topic = 'ats.dispatch';
    for (const key of ['job-1', 'job-2', 'job-3', 'job-4']) {
      const p = pick({ topic, partitionMetadata: metadata(3), message: { key, value: null, partition: 5 } });
      assert.equal(p, keyPartitioner(topic, 3)(key));
    }
  });
});
