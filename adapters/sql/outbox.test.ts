/**
 * Outbox rows holding many messages: what a transaction writes splits back
 * into the same messages, each with its own stable id; a row from before
 * message batching is one message; the relay takes whole rows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TOPICS, type OutboxMessage } from '../../engine/ports.js';
import { BATCH_TOPIC, MESSAGES_PER_ROW, MESSAGE_ID_FACTOR, insertOutboxSteps, rowsToMessages, rowsToTake } from './outbox.js';

const message = (i: number, payload: unknown = { jobId: `job-${i}`, text: 'line\nbreak "quoted" ✓' }): OutboxMessage => ({
  topic: i % 2 ? TOPICS.dispatch : TOPICS.events, key: `job-${i}`, payload, headers: { 'ats-kind': i % 2 ? 'dispatch' : 'transition', 'x-i': String(i) },
});

/** The rows an INSERT step would store, as the claim would read them back (ids from 7). */
function stored(messages: OutboxMessage[], at = 1000): Record<string, unknown>[] {
  const steps = insertOutboxSteps(messages.map((message) => ({ message, at })));
  const rows: Record<string, unknown>[] = [];
  for (const s of steps) {
    for (let i = 0; i < s.params.length; i += 6) {
      const [topic, msg_key, payload, headers, created_at, message_count] = s.params.slice(i, i + 6);
      rows.push({ id: 7 + rows.length, topic, msg_key, payload, headers, created_at, published_at: null, message_count });
    }
  }
  return rows;
}

describe('outbox rows of many messages', () => {
  it('split back into the messages written, in order, with ids row × factor + place', () => {
    const written = Array.from({ length: 5 }, (_, i) => message(i));
    const rows = stored(written);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.topic, BATCH_TOPIC, 'a topic name Kafka refuses: a relay from before batching cannot publish the row as one message');
    assert.match(BATCH_TOPIC, /[^a-zA-Z0-9._-]/);
    const read = rowsToMessages(rows);
    assert.deepEqual(read.map((m) => [m.topic, m.key, m.headers, m.payload]), written.map((m) => [m.topic, m.key, m.headers, m.payload]));
    assert.deepEqual(read.map((m) => m.id), [0, 1, 2, 3, 4].map((i) => 7 * MESSAGE_ID_FACTOR + i));
    assert.equal(read[0]!.value, JSON.stringify(written[0]!.payload), 'the value is published as stored');
  });

  it('write each distinct set of headers once a row', () => {
    const same = (i: number): OutboxMessage => ({ ...message(i), headers: { 'ats-kind': i % 2 ? 'dispatch' : 'transition' } });
    const written = Array.from({ length: 6 }, (_, i) => same(i));
    const [row] = stored(written);
    assert.equal(String(row!.payload).split('"ats-kind"').length - 1, 2, 'two sets, each once');
    assert.deepEqual(rowsToMessages([row!]).map((m) => m.headers), written.map((m) => m.headers));
    const broken = String(row!.payload).split('\n');
    broken[2 + 4 * 2] = '5'; // message 2 refers to message 5's headers, which come later
    assert.throws(() => rowsToMessages([{ ...row, payload: broken.join('\n') }]), /refers to the headers of message 5/);
  });

  it(`hold at most ${MESSAGES_PER_ROW} messages a row`, () => {
    const rows = stored(Array.from({ length: MESSAGES_PER_ROW * 2 + 1 }, (_, i) => message(i, i)));
    assert.deepEqual(rows.map((r) => r.message_count), [MESSAGES_PER_ROW, MESSAGES_PER_ROW, 1]);
    assert.deepEqual(rowsToMessages(rows).map((m) => m.payload), Array.from({ length: MESSAGES_PER_ROW * 2 + 1 }, (_, i) => i));
  });

  it('refuse a topic or key with a line break, rather than store what would split wrongly', () => {
    assert.throws(() => stored([{ ...message(1), key: 'a\nb' }]), /key holds a line break/);
  });

  it('a row from before batching (message_count NULL) is one message with its row id', () => {
    const [m] = rowsToMessages([{ id: 3, topic: TOPICS.events, msg_key: 'job-1', payload: '{"a":1}', headers: '{"ats-kind":"transition"}', created_at: 5, published_at: null, message_count: null }]);
    assert.deepEqual([m!.id, m!.key, m!.payload, m!.headers], [3, 'job-1', { a: 1 }, { 'ats-kind': 'transition' }]);
  });

  it('a row whose lines do not match its count is refused', () => {
    const [row] = stored([message(1), message(2)]);
    assert.throws(() => rowsToMessages([{ ...row, message_count: 3 }]), /holds 8 lines for 3 messages/);
  });

  it('the relay takes whole rows, oldest first, until it has at least the limit', () => {
    const claimed = [{ id: 1, message_count: 2 }, { id: 2, message_count: null }, { id: 3, message_count: 400 }, { id: 4, message_count: 1 }];
    assert.deepEqual(rowsToTake(claimed, 1), [1]);
    assert.deepEqual(rowsToTake(claimed, 3), [1, 2]);
    assert.deepEqual(rowsToTake(claimed, 4), [1, 2, 3]);
    assert.deepEqual(rowsToTake(claimed, 1000), [1, 2, 3, 4]);
    assert.deepEqual(rowsToTake([], 10), []);
  });
});
