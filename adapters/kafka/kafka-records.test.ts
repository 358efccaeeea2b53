/** Kafka messages into log records: header names are whatever a producer chose, `__proto__` included. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import { toLogRecord } from './kafka-records.js';

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
});
