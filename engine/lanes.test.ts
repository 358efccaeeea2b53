import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TOPICS } from './ports.js';
import { bandOf, isLane, laneGroup, laneOf, lanesOf, laneTopic, MAX_READABLE_SEGMENT, parseLane, queueSegment } from './lanes.js';

const queueName = fc.stringMatching(/^[A-Za-z0-9._:-]{1,200}$/);
const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

describe('dispatch lanes', () => {
  it('puts a priority in its band: above 0 high, 0 normal, below 0 low', () => {
    assert.deepEqual([1000, 1, 0, -1, -1000].map(bandOf), ['high', 'high', 'normal', 'low', 'low']);
  });

  it('keeps the default queue\'s normal lane on ats.dispatch, and names the others after the queue', () => {
    assert.equal(laneTopic('default', 0), TOPICS.dispatch);
    assert.equal(laneTopic('default', 5), 'ats.dispatch.default.high');
    assert.equal(laneTopic('email', 0), 'ats.dispatch.email');
    assert.equal(laneTopic('email', -3), 'ats.dispatch.email.low');
    assert.equal(laneTopic('mail.v2:eu_1', 0), 'ats.dispatch.mail_dv2_ceu__1');
    assert.deepEqual(lanesOf('default'), ['ats.dispatch.default.high', TOPICS.dispatch, 'ats.dispatch.default.low']);
  });

  it('hashes a queue name too long to show, within the outbox topic column', () => {
    const long = 'q'.repeat(MAX_READABLE_SEGMENT + 1);
    assert.match(queueSegment(long), /^_h[0-9a-f]{32}$/);
    assert.ok(laneOf(long, 'high').length <= 64);
  });

  it('gives every queue name lanes Kafka accepts, fitting the outbox column, that parse back to their band', () => {
    fc.assert(fc.property(queueName, fc.integer({ min: -1000, max: 1000 }), (queue, priority) => {
      const topic = laneTopic(queue, priority);
      assert.match(topic, KAFKA_TOPIC);
      assert.ok(topic.length <= 64, topic);
      assert.equal(parseLane(topic)?.band, bandOf(priority));
      assert.ok(lanesOf(queue).includes(topic));
    }));
  });

  it('never gives two queues the same lane', () => {
    fc.assert(fc.property(queueName, queueName, (a, b) => {
      fc.pre(a !== b);
      assert.notEqual(queueSegment(a), queueSegment(b));
    }));
    // Names that escaping alone could confuse.
    const tricky = ['a_b', 'a.b', 'a:b', 'a__b', 'a_db', 'a_cb', 'a_d', '_h0', 'a-b', 'default'];
    assert.equal(new Set(tricky.map(queueSegment)).size, tricky.length);
  });

  it('tells lanes from the other topics', () => {
    assert.equal(isLane(TOPICS.events), false);
    assert.equal(isLane(TOPICS.dlq), false);
    assert.equal(isLane('ats.dispatch.a.b.c'), false);
    assert.equal(isLane('ats.dispatch.a.medium'), false);
    assert.equal(isLane('ats.dispatch.'), false);
    assert.equal(isLane('ats.dispatchx'), false);
    assert.deepEqual(parseLane('ats.dispatch.email.low'), { segment: 'email', band: 'low' });
    assert.deepEqual(parseLane(TOPICS.dispatch), { segment: 'default', band: 'normal' });
  });

  it('reads each lane in a consumer group of its own; ats.dispatch keeps the workers\' group', () => {
    assert.equal(laneGroup('ats-workers', TOPICS.dispatch), 'ats-workers');
    assert.equal(laneGroup('ats-workers', 'ats.dispatch.email.high'), 'ats-workers.email.high');
  });
});
