/**
 * kafkajs's log entries (the shape its logCreator is given, as kafkajs 2.2.4
 * makes them) at honest levels: the known-normal events lowered, real
 * failures kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logLevel, type LogEntry } from 'kafkajs';
import type { Logger } from '../../engine/ports.js';
import { RepeatedLines } from '../../engine/repeated-lines.js';
import { kafkaEntryLevel, kafkaLogCreator } from './kafka-logging.js';

const LABEL = { [logLevel.ERROR]: 'ERROR', [logLevel.WARN]: 'WARN', [logLevel.INFO]: 'INFO', [logLevel.DEBUG]: 'DEBUG' } as Record<number, string>;

/** An entry as kafkajs's `createLevel` builds it. */
const entry = (level: logLevel, namespace: string, message: string, extra: Record<string, unknown> = {}): LogEntry => ({
  namespace, level, label: LABEL[level]!,
  log: { timestamp: '2026-01-01T00:00:00.000Z', logger: 'kafkajs', message, ...extra },
});

const broker = { broker: '127.0.0.1:9092', clientId: 'ats-test' };

/**
 * The existing topic at start: the broker's answer to createTopics, logged by kafkajs's Connection at
 * ERROR (kafkajs 2.2.4 says "Topic creation errors" for the request; the per-topic error is the broker's).
 */
const EXISTING_TOPIC = entry(logLevel.ERROR, 'Connection', 'Response CreateTopics(key: 19, version: 3)', {
  ...broker, error: 'Topic creation errors', correlationId: 3, size: 74,
});
const EXISTING_TOPIC_ERROR = entry(logLevel.ERROR, 'Connection', 'Response CreateTopics(key: 19, version: 3)', {
  ...broker, error: 'Topic with this name already exists', correlationId: 3, size: 74,
});
/** A rebalance, as the consumer's runner reports it (WARN) and as the broker's answer to a heartbeat (ERROR). */
const REBALANCE = entry(logLevel.WARN, 'Runner', 'The group is rebalancing, re-joining', {
  groupId: 'ats-workers', memberId: 'ats-w1-1', error: 'The group is rebalancing, so a rejoin is needed',
});
const REBALANCE_RESPONSE = entry(logLevel.ERROR, 'Connection', 'Response Heartbeat(key: 12, version: 3)', {
  ...broker, error: 'The group is rebalancing, so a rejoin is needed', correlationId: 40, size: 10,
});

describe('kafkaEntryLevel: known-normal events lowered', () => {
  const cases: Array<[string, LogEntry, string]> = [
    ['createTopics on existing topics (kafkajs\'s summary)', EXISTING_TOPIC, 'debug'],
    ['createTopics on an existing topic (the broker\'s error)', EXISTING_TOPIC_ERROR, 'debug'],
    ['the bounded retries of the producer, said at every start', entry(logLevel.WARN, 'Producer', 'Limiting retries for the idempotent producer may invalidate EoS guarantees'), 'debug'],
    ['kafkajs\'s lifecycle narration (INFO)', entry(logLevel.INFO, 'ConsumerGroup', 'Consumer has joined the group', { groupId: 'g', memberAssignment: { 'ats.dispatch': [0, 1, 2] } }), 'debug'],
    ['a rebalance (the runner)', REBALANCE, 'info'],
    ['a rebalance (a heartbeat answer)', REBALANCE_RESPONSE, 'debug'],
    ['the coordinator not available yet', entry(logLevel.ERROR, 'Connection', 'Response FindCoordinator(key: 10, version: 2)', { ...broker, error: 'The group coordinator is not available' }), 'info'],
    ['the coordinator loading', entry(logLevel.ERROR, 'Connection', 'Response JoinGroup(key: 11, version: 5)', { ...broker, error: "The coordinator is loading and hence can't process requests for this group" }), 'info'],
    ['the coordinator moved', entry(logLevel.ERROR, 'Connection', 'Response OffsetCommit(key: 8, version: 5)', { ...broker, error: 'This is not the correct coordinator for this group' }), 'info'],
    ['a leader election on a new topic', entry(logLevel.ERROR, 'Connection', 'Response Metadata(key: 3, version: 6)', { ...broker, error: 'There is no leader for this topic-partition as we are in the middle of a leadership election' }), 'debug'],
    ['a request to a broker that is no longer (or not yet) the leader', entry(logLevel.ERROR, 'Connection', 'Response ListOffsets(key: 2, version: 3)', { ...broker, error: 'This server is not the leader for that topic-partition' }), 'info'],
    ['a broker answering about a topic it has not loaded yet', entry(logLevel.ERROR, 'Connection', 'Response Fetch(key: 1, version: 11)', { ...broker, error: 'This server does not host this topic-partition' }), 'info'],
    ['kafkajs restarting the consumer', entry(logLevel.ERROR, 'Consumer', 'Restarting the consumer in 300ms', { retryCount: 0, retryTime: 300, groupId: 'ats-workers' }), 'info'],
    ['a member whose session lapsed re-joins', entry(logLevel.ERROR, 'Runner', 'The coordinator is not aware of this member, re-joining the group', { groupId: 'g', memberId: 'm', error: 'The coordinator is not aware of this member' }), 'warn'],
  ];
  for (const [what, e, level] of cases) {
    it(`${what}: ${e.label} -> ${level}`, () => assert.equal(kafkaEntryLevel(e), level));
  }
});

describe('kafkaEntryLevel: real failures keep their level', () => {
  const cases: Array<[string, LogEntry, string]> = [
    ['a broker unreachable', entry(logLevel.ERROR, 'BrokerPool', 'Failed to connect to broker, reconnecting', { retryCount: 2, retryTime: 800 }), 'error'],
    ['a connection error', entry(logLevel.ERROR, 'Connection', 'Connection error: connect ECONNREFUSED 127.0.0.1:9092', { ...broker, stack: 'Error: ...' }), 'error'],
    ['a consumer crash', entry(logLevel.ERROR, 'Consumer', 'Crash: KafkaJSNumberOfRetriesExceeded: Connection error: connect ECONNREFUSED', { groupId: 'g', retryCount: 5, stack: '...' }), 'error'],
    ['a send that failed', entry(logLevel.ERROR, 'Producer', 'Failed to send messages: This server is not the leader for that topic-partition', { retryCount: 0, retryTime: 300 }), 'error'],
    ['a send that failed on a topic the broker does not host', entry(logLevel.ERROR, 'Producer', 'Failed to send messages: This server does not host this topic-partition', { retryCount: 5, retryTime: 300 }), 'error'],
    ['another broker error', entry(logLevel.ERROR, 'Connection', 'Response CreateTopics(key: 19, version: 3)', { ...broker, error: 'Replication-factor is invalid' }), 'error'],
    ['"Topic creation errors" for another request', entry(logLevel.ERROR, 'Connection', 'Response Produce(key: 0, version: 7)', { ...broker, error: 'Topic creation errors' }), 'error'],
    ['a warning', entry(logLevel.WARN, 'Admin', 'Could not create topics', { error: 'This is not the correct controller for this cluster', retryCount: 0 }), 'warn'],
    ['debug (never raised by a rule)', entry(logLevel.DEBUG, 'Consumer', 'Restarting the consumer in 300ms'), 'debug'],
  ];
  for (const [what, e, level] of cases) {
    it(`${what}: ${e.label} stays ${level}`, () => assert.equal(kafkaEntryLevel(e), level));
  }
});

describe('kafkaLogCreator', () => {
  function recorder() {
    const calls: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void calls.push({ level, msg, fields });
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    return { logger, calls };
  }

  it('writes the entry to the logger: the message, kafkajs\'s fields, its level when lowered', () => {
    const { logger, calls } = recorder();
    const log = kafkaLogCreator(logger)(logLevel.INFO);
    log(EXISTING_TOPIC);
    log(entry(logLevel.ERROR, 'BrokerPool', 'Failed to connect to broker, reconnecting', { retryCount: 2 }));
    assert.deepEqual(calls, [
      {
        level: 'debug', msg: 'Response CreateTopics(key: 19, version: 3)',
        fields: { component: 'kafkajs', namespace: 'Connection', ...broker, error: 'Topic creation errors', correlationId: 3, size: 74, kafkaLevel: 'ERROR' },
      },
      { level: 'error', msg: 'Failed to connect to broker, reconnecting', fields: { component: 'kafkajs', namespace: 'BrokerPool', retryCount: 2 } },
    ]);
  });

  it('a warning or error said again within a minute is written at debug; the next one after it carries how many were lowered', () => {
    const { logger, calls } = recorder();
    let now = 0;
    const log = kafkaLogCreator(logger, () => now)(logLevel.INFO);
    const refused = () => entry(logLevel.ERROR, 'Connection', 'Connection error: connect ECONNREFUSED 127.0.0.1:9092', { ...broker });
    const crash = () => entry(logLevel.ERROR, 'Consumer', 'Crash: KafkaJSNumberOfRetriesExceeded: Connection error: connect ECONNREFUSED', { groupId: 'g' });
    for (let i = 0; i < 5; i++, now += 100) log(refused()); // kafkajs retrying a broker out of reach
    log(crash()); // another line: its own level
    now = 59_000;
    log(refused());
    now = 60_500;
    log(refused());
    log(entry(logLevel.INFO, 'Consumer', 'Starting')); // debug anyway: not counted
    assert.deepEqual(calls.map((c) => [c.level, c.msg.slice(0, 16), c.fields?.repeated, c.fields?.kafkaLevel]), [
      ['error', 'Connection error', undefined, undefined],
      ['debug', 'Connection error', undefined, 'ERROR'],
      ['debug', 'Connection error', undefined, 'ERROR'],
      ['debug', 'Connection error', undefined, 'ERROR'],
      ['debug', 'Connection error', undefined, 'ERROR'],
      ['error', 'Crash: KafkaJSNu', undefined, undefined],
      ['debug', 'Connection error', undefined, 'ERROR'],
      ['error', 'Connection error', 5, undefined],
      ['debug', 'Starting', undefined, undefined],
    ]);
  });

  it('the same text of another broker or another group is another line: its first one keeps its level', () => {
    const { logger, calls } = recorder();
    const log = kafkaLogCreator(logger, () => 0)(logLevel.INFO);
    // kafkajs names the broker (or the consumer's group) in a field, not in these messages.
    for (const b of ['10.0.0.1:9092', '10.0.0.2:9092', '10.0.0.1:9092']) log(entry(logLevel.ERROR, 'Connection', 'Connection timeout', { broker: b, clientId: 'ats-test' }));
    for (const groupId of ['ats-workers', 'ats-workers.lane.q1']) log(entry(logLevel.ERROR, 'Consumer', 'Crash: KafkaJSConnectionError: Connection timeout', { groupId, retryCount: 5 }));
    assert.deepEqual(calls.map((c) => [c.level, c.fields?.broker ?? c.fields?.groupId]), [
      ['error', '10.0.0.1:9092'],
      ['error', '10.0.0.2:9092'],
      ['debug', '10.0.0.1:9092'],
      ['error', 'ats-workers'],
      ['error', 'ats-workers.lane.q1'],
    ]);
  });

  it('the clients of one log (the producer, the admin, each consumer and each new one after a crash) share the minute: a line one said is debug from the others', () => {
    const { logger, calls } = recorder();
    let now = 0;
    const repeats = new RepeatedLines(() => now);
    // A process has a dozen clients; while the broker is down each says the same, and a crashed consumer's successor is new.
    const clients = Array.from({ length: 4 }, () => kafkaLogCreator(logger, () => now, repeats)(logLevel.INFO));
    const refused = () => entry(logLevel.ERROR, 'Connection', 'Connection error: connect ECONNREFUSED 127.0.0.1:9092', { ...broker });
    for (const log of clients) log(refused());
    now = 60_000;
    for (const log of clients) log(refused());
    assert.deepEqual(calls.map((c) => [c.level, c.fields?.repeated]), [
      ['error', undefined], ['debug', undefined], ['debug', undefined], ['debug', undefined],
      ['error', 3], ['debug', undefined], ['debug', undefined], ['debug', undefined],
    ]);
  });

  it('an error kafkajs says again and again that is lowered to info (its consumer restarting) is written once a minute too', () => {
    const { logger, calls } = recorder();
    let now = 0;
    const log = kafkaLogCreator(logger, () => now)(logLevel.INFO);
    const restart = () => entry(logLevel.ERROR, 'Consumer', 'Restarting the consumer in 2000ms', { retryCount: 8, retryTime: 2000, groupId: 'ats-workers' });
    for (let i = 0; i < 5; i++, now += 5000) log(restart());
    log(entry(logLevel.ERROR, 'Consumer', 'Restarting the consumer in 2000ms', { retryCount: 8, retryTime: 2000, groupId: 'ats-workflows' }));
    now = 60_000;
    log(restart());
    assert.deepEqual(calls.map((c) => [c.level, c.fields?.groupId, c.fields?.repeated]), [
      ['info', 'ats-workers', undefined],
      ['debug', 'ats-workers', undefined], ['debug', 'ats-workers', undefined], ['debug', 'ats-workers', undefined], ['debug', 'ats-workers', undefined],
      ['info', 'ats-workflows', undefined],
      ['info', 'ats-workers', 4],
    ]);
  });

  it('a message kafkajs gives as an Error is written as its text', () => {
    const { logger, calls } = recorder();
    const e = entry(logLevel.ERROR, 'BrokerPool', 'x');
    (e.log as { message: unknown }).message = new Error('broker gone');
    kafkaLogCreator(logger)(logLevel.INFO)(e);
    assert.equal(calls[0]!.msg, 'Error: broker gone');
    assert.equal(calls[0]!.level, 'error');
  });
});
