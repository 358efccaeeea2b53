/**
 * docs/asyncapi.yaml: it is a valid AsyncAPI 3.0 document (@asyncapi/parser),
 * its examples match its own schemas, the messages the engine builds match it,
 * and the checker (tests/helpers/asyncapi.ts) the delivery tests use fails a
 * record that does not match. Both formats of `ats.events`: a `transition`
 * record per transition (`ATS_EVENTS_FORMAT=single`) and packed
 * `transitions` records (`batch`, the default). The `child-ended` messages of
 * `ats.workflows` (keyed by workflow id) as the document gives them; the
 * engine's own are checked in engine/messages.test.ts. The `workflow-message`
 * notices of `ats.workflows` (keyed by the target instance's id) as instances
 * that send each other messages write them, and as the document gives them
 * (`workflowMessageNotice` alone: engine/messages.test.ts). The stream's `progress`
 * messages as the server builds them, for what handlers may report. Also the
 * schema-version header: written on every message, read by `schemaMajor` /
 * `readableSchema`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { keyPartitioner } from '../adapters/kafka/kafka-records.js';
import { partitionForKey } from '../adapters/memory/partition-for-key.js';
import {
  KIND_HEADER, SCHEMA_HEADER, SCHEMA_VERSION, TRANSITION_KIND, TRANSITIONS_KIND, WORKFLOW_MESSAGE_KIND, readableSchema, schemaMajor,
  type WorkflowMessageNotice,
} from '../engine/messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type JobProgress, type LogMessage } from '../engine/ports.js';
import { progressJson } from '../engine/progress.js';
import { toLogMessage } from '../engine/relay.js';
import { transitionsOf } from '../engine/transition-records.js';
import { QUERY_KEYS, parseClientMessage, progressMessage } from '../server/stream/protocol.js';
import { ASYNCAPI_PATH, AsyncApiContract, CODE_TOPICS, asyncApi, assertRefused, editRecord } from './helpers/asyncapi.js';
import { NO_SUCH_INSTANCE, SAMPLE_PARTITIONS, packedSampleMessages, sampleMessages, workflowMessageSamples } from './helpers/sample-messages.js';

/** The channel of the dispatch lanes other than ats.dispatch (engine/lanes.ts). */
const LANES_ADDRESS = 'ats.dispatch.{lane}';
/** Every Kafka message of the document, and the ones each format of `ats.events` publishes. */
const KAFKA_MESSAGES = ['cancel', 'childEnded', 'deadLetter', 'dispatch', 'transition', 'transitions', 'workflowMessage'];
/** The stream messages the document gives examples of. */
const STREAM_EXAMPLES = ['progress', 'workflow'];
const SINGLE_FORMAT = ['cancel', 'deadLetter', 'dispatch', 'transition'];
const BATCH_FORMAT = ['cancel', 'deadLetter', 'dispatch', 'transitions'];
const partitionOf = (key: string) => partitionForKey(key, SAMPLE_PARTITIONS);
const isPacked = (m: LogMessage) => m.headers[KIND_HEADER] === TRANSITIONS_KIND;
const jobsOf = (m: LogMessage) => new Set(transitionsOf(m).map((t) => t.jobId));

describe('docs/asyncapi.yaml', () => {
  it('parses as AsyncAPI 3.0.0 with no error and no warning', { timeout: 60_000 }, async () => {
    const { document, diagnostics } = await new Parser().parse(readFileSync(ASYNCAPI_PATH, 'utf8'));
    const shown = diagnostics.map((d) => `${DiagnosticSeverity[d.severity]} ${d.code} at ${d.path.join('.')}: ${d.message}`);
    const serious = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning);
    assert.deepEqual(serious.map((d) => d.message), [], shown.join('\n'));
    assert.ok(document, shown.join('\n'));
    // What remains, each explained:
    // - asyncapi-latest-version (information): 3.1.0 exists; the document is 3.0 on purpose
    //   (3.0 is what the tools of consumers commonly read; nothing here needs 3.1).
    const explained = new Set(['asyncapi-latest-version']);
    assert.deepEqual(diagnostics.filter((d) => !explained.has(String(d.code))).map((d) => String(d.code)), [], shown.join('\n'));
    assert.equal(document.version(), '3.0.0');
    assert.equal(document.info().version(), String(SCHEMA_VERSION), 'info.version is the schema version of the ats-schema header');
    const addresses = document.channels().all().map((c) => c.address()).sort();
    assert.deepEqual(addresses, ['/v1/stream', ...CODE_TOPICS.map((t) => `{prefix}${t}`), `{prefix}${LANES_ADDRESS}`].sort());
    const kafkaMessages = [...new Set(document.channels().all().filter((c) => c.address() !== '/v1/stream')
      .flatMap((c) => c.messages().all().map((m) => m.id())))].sort();
    assert.deepEqual(kafkaMessages, KAFKA_MESSAGES);
    assert.deepEqual(document.operations().all().map((o) => `${o.action()} ${o.channels().all()[0]!.address()}`).sort(), [
      'receive /v1/stream', 'receive {prefix}ats.dispatch', `receive {prefix}${LANES_ADDRESS}`,
      'send /v1/stream', 'send {prefix}ats.dispatch', `send {prefix}${LANES_ADDRESS}`, 'send {prefix}ats.dlq', 'send {prefix}ats.events',
      'receive {prefix}ats.workflows', 'send {prefix}ats.workflows',
    ].sort());
    const publishEvents = document.operations().all().find((o) => o.action() === 'send' && o.channels().all()[0]!.address() === '{prefix}ats.events');
    assert.deepEqual(publishEvents!.messages().all().map((m) => m.id()).sort(), ['transition', 'transitions'], 'the relay publishes both formats');
    const onWorkflows = document.operations().all().filter((o) => o.channels().all()[0]!.address() === '{prefix}ats.workflows');
    for (const o of onWorkflows) assert.deepEqual(o.messages().all().map((m) => m.id()).sort(), ['childEnded', 'workflowMessage'], o.id());
  });

  it('the ats-kind enum of KafkaHeaders is the kinds of its Kafka messages', () => {
    const contract = asyncApi();
    const kinds = contract.at('#/components/schemas/KafkaHeaders/properties/ats-kind/enum') as string[];
    const consts = KAFKA_MESSAGES.map((name) => {
      const headers = contract.at(`#/components/messages/${name}/headers`) as { $ref: string };
      return (contract.at(`${headers.$ref}/properties/ats-kind/const`) as string);
    });
    assert.deepEqual([...kinds].sort(), [...consts].sort());
    assert.ok(kinds.includes(TRANSITION_KIND) && kinds.includes(TRANSITIONS_KIND));
  });

  it('names every topic the code publishes to', () => {
    assert.deepEqual([...asyncApi().topics].sort(), [...CODE_TOPICS].sort());
  });

  it('its message examples match its own schemas', () => {
    const examples = asyncApi().exampleRecords();
    assert.deepEqual([...new Set(examples.map((e) => e.message))].sort(), [...KAFKA_MESSAGES, ...STREAM_EXAMPLES].sort());
    const kafka = examples.filter((e) => e.record !== null);
    assert.deepEqual([...new Set(kafka.map((e) => e.message))].sort(), KAFKA_MESSAGES);
    const counts = asyncApi().assertRecords(kafka.map((e) => e.record!));
    assert.deepEqual([...counts.keys()].sort(), KAFKA_MESSAGES);
    // The stream's, as server → client messages.
    const stream = examples.filter((e) => e.record === null);
    assert.deepEqual([...asyncApi().assertStreamMessages(stream.map((e) => e.payload as object)).keys()].sort(), STREAM_EXAMPLES);
  });

  it('its packed examples: keyed by the first transition, each transition a valid transition message alone', () => {
    const examples = asyncApi().exampleRecords();
    const packed = examples.filter((e) => e.message === 'transitions');
    assert.ok(packed.length >= 1);
    for (const { record } of packed) {
      const inside = transitionsOf(record!);
      assert.ok(inside.length >= 1);
      assert.equal(record!.key, inside[0]!.jobId);
      for (const t of inside) {
        const alone = { topic: TOPICS.events, key: t.jobId, value: JSON.stringify(t), headers: { ...record!.headers, [KIND_HEADER]: TRANSITION_KIND } };
        assert.deepEqual(asyncApi().checkRecord(alone), { ok: true, message: 'transition' }, JSON.stringify(t));
      }
    }
    // Every job of a record maps to its key's partition, by the producer's own partitioner (the examples ran on 3 partitions).
    const partitionOf = keyPartitioner('ats.events', 3);
    for (const { record } of packed) {
      assert.deepEqual(new Set(transitionsOf(record!).map((t) => partitionOf(t.jobId))), new Set([partitionOf(record!.key)]), record!.key);
    }
    assert.ok(packed.some(({ record }) => new Set(transitionsOf(record!).map((t) => t.jobId)).size > 1), 'an example with several jobs');
  });
});

describe('the messages the engine builds match docs/asyncapi.yaml', () => {
  it('every kind, on every path a job takes (ATS_EVENTS_FORMAT=single)', () => {
    const counts = asyncApi().assertRecords(sampleMessages());
    assert.deepEqual([...counts.keys()].sort(), SINGLE_FORMAT);
  });

  it('with a topic prefix too', () => {
    const prefixed = sampleMessages().map((m) => ({ ...m, topic: `staging.${m.topic}` }));
    const counts = asyncApi().assertRecords(prefixed, 'staging.');
    assert.deepEqual([...counts.keys()].sort(), SINGLE_FORMAT);
  });

  it('packed (ATS_EVENTS_FORMAT=batch, the default): every kind, the transitions packed per partition', () => {
    const at = Date.now();
    const single = sampleMessages(at);
    const packed = packedSampleMessages(partitionOf, at);
    const counts = asyncApi().assertRecords(packed);
    assert.deepEqual([...counts.keys()].sort(), BATCH_FORMAT);
    // One publish, far below the size cap: one record per partition that has transitions.
    const records = packed.filter(isPacked);
    const partitions = records.map((r) => partitionOf(r.key));
    assert.equal(new Set(partitions).size, records.length);
    assert.equal(counts.get('transitions'), new Set(records.flatMap((r) => [...jobsOf(r)].map(partitionOf))).size);
    // Every job in a record maps to its key's partition; with 5 jobs on 3 partitions some record holds two or more.
    for (const r of records) for (const job of jobsOf(r)) assert.equal(partitionOf(job), partitionOf(r.key), `${job} in the record keyed ${r.key}`);
    assert.ok(records.some((r) => jobsOf(r).size > 1), 'a record with several jobs');
    // The same histories as the single format (each job's transitions, in seq order); the other messages
    // as they were, in order. (Each sampleMessages() call makes new job ids: compared without them.)
    const histories = (ms: LogMessage[]) => {
      const by = new Map<string, string[]>();
      for (const t of ms.flatMap((m) => transitionsOf(m))) by.set(t.jobId, [...(by.get(t.jobId) ?? []), `${t.seq} ${t.type} ${t.from}>${t.to} ${t.jobType}/${t.queue}`]);
      return [...by.values()].map((h) => h.join(', ')).sort();
    };
    assert.deepEqual(histories(packed), histories(single));
    const withoutIds = (ms: LogMessage[]) => ms.map((m) => JSON.parse(m.value) as Record<string, unknown>).map(({ jobId: _, ...rest }) => rest);
    const others = packed.filter((m) => !isPacked(m));
    assert.deepEqual(withoutIds(others), withoutIds(single.filter((m) => m.headers[KIND_HEADER] !== TRANSITION_KIND)));
    for (const m of others) assert.equal(m.key, (JSON.parse(m.value) as { jobId: string }).jobId);
  });

  it('workflow-message notices, as instances that send each other messages write them (the store\'s outbox rows, relayed), with and without a prefix', async () => {
    const notices = await workflowMessageSamples();
    const counts = asyncApi().assertRecords(notices);
    assert.deepEqual([...counts], [['workflowMessage', 6]]);
    assert.deepEqual(asyncApi().assertRecords(notices.map((m) => ({ ...m, topic: `staging.${m.topic}` })), 'staging.'), counts);
    const payloads = notices.map((m) => JSON.parse(m.value) as WorkflowMessageNotice);
    for (const [i, m] of notices.entries()) {
      assert.equal(m.topic, TOPICS.workflows);
      assert.equal(m.headers[KIND_HEADER], WORKFLOW_MESSAGE_KIND);
      assert.equal(m.key, payloads[i]!.workflowId, 'keyed by the target');
    }
    // What the samples cover: a send at the sender's start (seq 1), two in one step, an id no instance has, another tenant.
    const [target, sender] = [payloads[0]!.workflowId, payloads[0]!.messageId.split(':')[0]!];
    assert.deepEqual(payloads.slice(0, 5).map((p) => [p.workflowId, p.messageId, p.tenant]), [
      [target, `${sender}:1:0`, 'default'], [target, `${sender}:2:0`, 'default'], [target, `${sender}:3:0`, 'default'],
      [target, `${sender}:3:1`, 'default'], [NO_SUCH_INSTANCE, `${sender}:4:0`, 'default'],
    ]);
    assert.deepEqual([payloads[5]!.workflowId, payloads[5]!.tenant], [target, 'acme']);
    assert.notEqual(payloads[5]!.messageId.split(':')[0], sender);
  });

  it('the document\'s workflow-message examples have the engine-built notices\' shape', async () => {
    const built = (await workflowMessageSamples()).map((m) => ({ headers: Object.keys(m.headers).sort(), fields: Object.keys(JSON.parse(m.value) as object) }));
    const examples = asyncApi().exampleRecords().filter((e) => e.message === 'workflowMessage');
    assert.ok(examples.length >= 2);
    for (const { record } of examples) {
      const shape = { headers: Object.keys(record!.headers).sort(), fields: Object.keys(JSON.parse(record!.value) as object) };
      assert.deepEqual(shape, built[0], 'same headers, same fields in the same order');
    }
  });

  it('packed, with a topic prefix too, and on one partition (a single record)', () => {
    const prefixed = packedSampleMessages().map((m) => ({ ...m, topic: `staging.${m.topic}` }));
    assert.deepEqual([...asyncApi().assertRecords(prefixed, 'staging.').keys()].sort(), BATCH_FORMAT);
    const one = packedSampleMessages(() => 0);
    assert.equal(asyncApi().assertRecords(one).get('transitions'), 1);
    assert.equal(jobsOf(one.find(isPacked)!).size, 5);
  });
});

describe('the stream\'s subscription in docs/asyncapi.yaml is the one the server takes', () => {
  it('the query binding names every parameter the stream takes, and no other is let through', () => {
    const query = asyncApi().at('#/channels/stream/bindings/ws/query') as { properties: Record<string, unknown>; additionalProperties?: unknown; description: string };
    assert.deepEqual(Object.keys(query.properties).sort(), [...QUERY_KEYS].sort());
    // The server refuses any other parameter (ATS_ERR_VALIDATION): a misspelt `state` must not widen a subscription unseen.
    assert.equal(query.additionalProperties, false);
    assert.doesNotMatch(query.description, /ignored/);
  });

  it('a filter the document allows is one the server takes, and one it refuses the server refuses', () => {
    const contract = asyncApi();
    const filters: Array<Record<string, unknown>> = [
      {}, { type: 'email.send' }, { queue: 'default' }, { type: 'a'.repeat(200) }, { workflowName: 'order.fulfil' }, { workflowName: 'w'.repeat(100) },
      { type: 'email send' }, { queue: 'caf\u00e9' }, { type: '\u2713' }, { queue: 'a/b' }, { type: 'a'.repeat(201) }, { queue: '' },
      { workflowName: 'w'.repeat(101) }, { workflowName: 'a b' },
    ];
    for (const filter of filters) {
      const message = { op: 'subscribe', filter };
      const text = JSON.stringify(message);
      const server = parseClientMessage(text, Buffer.byteLength(text), 16_384).ok;
      assert.equal(contract.checkStreamMessage(message, 'receive').ok, server, `${text.slice(0, 120)}: the server ${server ? 'takes' : 'refuses'} it`);
    }
  });
});

describe('the stream\'s progress messages match docs/asyncapi.yaml', () => {
  const JOB = '01JD3W7Z9Q4X2M8K5N6P0R1S2T';
  /** The message the server sends for a value a handler reported (checked and stored as engine/progress.ts does). */
  const sent = (value: unknown, over: Partial<JobProgress> = {}): string => progressMessage({
    jobId: JOB, type: 'media.transcode', queue: 'default', attempt: 1, value: JSON.parse(progressJson(value)), at: Date.now(), ...over,
  });

  it('every kind of value a handler may report: 0, 100, a fraction, an object, the largest object, nested, empty', () => {
    const largest = { pad: 'x'.repeat(1024 - '{"pad":""}'.length) };
    assert.equal(progressJson(largest).length, 1024);
    // The top object's fields are level 1: a value at level 8 is the deepest kept.
    const deep = { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } };
    assert.throws(() => progressJson({ a: { b: { c: { d: { e: { f: { g: { h: [1] } } } } } } } }), RangeError);
    const frames = [
      sent(0), sent(100), sent(42.5, { attempt: 3 }), sent({ stage: 'upload', done: 3, of: 4 }), sent(largest), sent(deep), sent({}),
      sent({ note: null, ok: true, list: ['a', 1, { b: false }] }, { type: 'a type with spaces', queue: 'q' }),
    ];
    assert.deepEqual([...asyncApi().assertStreamMessages(frames)], [['progress', frames.length]]);
  });

  it('the checker refuses a progress message that does not match', () => {
    const contract = new AsyncApiContract();
    const edit = (f: (v: Record<string, unknown>) => void) => {
      const v = JSON.parse(sent(50)) as Record<string, unknown>;
      f(v);
      return contract.checkStreamMessage(v);
    };
    assert.ok(edit(() => undefined).ok);
    for (const bad of [
      edit((v) => (v.progress = 101)), edit((v) => (v.progress = -1)), edit((v) => (v.progress = 'half')), edit((v) => (v.progress = [50])),
      edit((v) => (v.progress = null)), edit((v) => delete v.progress), edit((v) => delete v.attempt), edit((v) => (v.attempt = 0)),
      edit((v) => (v.cursor = 'djE6MTI0')), edit((v) => (v.jobId = 'job-1')), edit((v) => (v.at = 'now')),
    ]) assert.equal(bad.ok, false, JSON.stringify(bad));
  });
});

describe('the checker fails a record that does not match', () => {
  const contract = new AsyncApiContract();
  const messages = sampleMessages();
  const of = (kind: string) => messages.find((m) => m.headers['ats-kind'] === kind)!;
  /** A packed record of several jobs (there is one: 5 jobs on 3 partitions). */
  const packed = packedSampleMessages().find((m) => isPacked(m) && jobsOf(m).size > 1)!;
  const editPacked = (f: (ts: Array<Record<string, unknown>>) => void): LogMessage => {
    const v = JSON.parse(packed.value) as { transitions: Array<Record<string, unknown>> };
    f(v.transitions);
    return { ...packed, value: JSON.stringify(v) };
  };
  const edit = editRecord;
  const fails = (m: LogMessage, pattern: RegExp, prefix = '') => assertRefused(contract, m, pattern, prefix);

  it('accepts the good ones it starts from', () => {
    for (const kind of ['dispatch', 'cancel', 'transition', 'dead-letter']) assert.ok(contract.checkRecord(of(kind)).ok, kind);
    assert.deepEqual(contract.checkRecord(packed), { ok: true, message: 'transitions' });
  });

  it('a missing field, a wrong type, an unknown field, a wrong enum value', () => {
    fails(edit(of('dispatch'), (v) => delete v.attempt), /dispatch payload: .*attempt/);
    fails(edit(of('dispatch'), (v) => (v.attempt = '1')), /\/attempt must be integer/);
    fails(edit(of('dispatch'), (v) => (v.attempt = 0)), /\/attempt must be >= 1/);
    fails(edit(of('cancel'), (v) => (v.extra = true)), /must NOT have additional properties.*extra/);
    fails(edit(of('transition'), (v) => (v.to = 'finished')), /\/to must be equal to one of the allowed values/);
    fails(edit(of('dead-letter'), (v) => (v.lastError = 'boom')), /deadLetter payload: \/lastError/);
  });

  it('data that does not fit the event type', () => {
    const started = messages.find((m) => m.value.includes('"type":"STARTED"'))!;
    fails(edit(started, (v) => delete (v.data as Record<string, unknown>).workerId), /\/data must have required property 'workerId'/);
    fails(edit(started, (v) => (v.type = 'SUBMITTED')), /\/data/);
  });

  it('headers: a missing schema version, a wrong one, an unknown header, a kind the topic does not carry', () => {
    const { [SCHEMA_HEADER]: _, ...noSchema } = of('dispatch').headers;
    fails({ ...of('dispatch'), headers: noSchema }, /headers: .*ats-schema/);
    fails({ ...of('dispatch'), headers: { ...of('dispatch').headers, [SCHEMA_HEADER]: 'one' } }, /\/ats-schema must match pattern/);
    fails({ ...of('dispatch'), headers: { ...of('dispatch').headers, 'x-trace': 'abc' } }, /additional properties.*x-trace/);
    fails({ ...of('dispatch'), headers: { ...of('dispatch').headers, 'ats-kind': 'dead-letter' } }, /ats-kind "dead-letter" is none of dispatch, cancel/);
    fails({ ...of('transition'), topic: TOPICS.dispatch }, /ats-kind "transition" is none of/);
  });

  it('a packed record: no transitions, a bad transition inside, not the packed shape, a wrong kind or key', () => {
    fails({ ...packed, value: '{"transitions":[]}' }, /transitions payload: \/transitions must NOT have fewer than 1 items/);
    fails(editPacked((ts) => (ts[1]!.to = 'finished')), /transitions payload: \/transitions\/1\/to must be equal to one of the allowed values/);
    fails(editPacked((ts) => delete ts[0]!.seq), /\/transitions\/0 must have required property 'seq'/);
    fails(editPacked((ts) => (ts[0]!.extra = true)), /\/transitions\/0 must NOT have additional properties.*extra/);
    fails(editPacked((ts) => (ts.find((t) => t.type !== 'SUBMITTED')!.type = 'SUBMITTED')), /\/transitions\/\d+\/data/);
    fails(editPacked((ts) => ts.push('x' as unknown as Record<string, unknown>)), /\/transitions\/\d+ must be object/);
    fails({ ...packed, value: JSON.stringify({ transitions: transitionsOf(packed), count: 2 }) }, /must NOT have additional properties.*count/);
    // A transition's value under the packed kind, and a packed value under the single kind.
    fails({ ...of('transition'), headers: { ...of('transition').headers, [KIND_HEADER]: TRANSITIONS_KIND } }, /transitions payload: \/ must have required property 'transitions'/);
    fails({ ...packed, headers: { ...packed.headers, [KIND_HEADER]: TRANSITION_KIND } }, /transition payload: \/ must have required property 'jobId'/);
    // The key is the first transition's job id: another job of the record does not do.
    const [first, ...rest] = [...jobsOf(packed)];
    fails({ ...packed, key: rest[0]! }, new RegExp(`key "${rest[0]}" is not the first transition's jobId "${first}"`));
    fails({ ...packed, value: '{"transitions":[]}' }, /key .* is not the first transition's jobId undefined/);
    fails({ ...packed, topic: TOPICS.dispatch }, /ats-kind "transitions" is none of dispatch, cancel/);
    fails({ ...packed, topic: TOPICS.dlq }, /ats-kind "transitions" is none of dead-letter/);
    const { [OUTBOX_ID_HEADER]: _, ...noId } = packed.headers;
    fails({ ...packed, headers: noId }, /transitions headers: .*ats-outbox-id/);
    fails({ ...packed, headers: { ...packed.headers, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } }, /additional properties.*traceparent/);
  });

  it('a key that is not the job id, a value that is not JSON, a topic not in the document', () => {
    const d = of('dispatch');
    fails({ ...d, key: messages.find((m) => m.key !== d.key)!.key }, /key .* is not the payload's jobId/);
    fails({ ...d, key: 'job-1' }, /dispatch key: \/ must match pattern/);
    fails({ ...d, value: '{"jobId":' }, /not JSON/);
    fails({ ...d, topic: 'ats.other' }, /not in the document/);
    fails({ ...d, topic: `p.${d.topic}` }, /not in the document/, 'q.');
    assert.throws(() => contract.assertRecords([d, { ...d, value: '[]' }]), /do not match/);
  });

  it('a child-ended record (the document\'s example): no workflowId, keyed by its job id, an error that does not fit its state, another topic', () => {
    const example = contract.exampleRecords().find((e) => e.message === 'childEnded' && (e.payload as { state: string }).state === 'done')!.record!;
    const ended = { ...example, topic: TOPICS.workflows };
    assert.deepEqual(contract.checkRecord(ended), { ok: true, message: 'childEnded' });
    assert.equal(ended.key, (JSON.parse(ended.value) as { workflowId: string }).workflowId);
    fails(edit(ended, (v) => delete v.workflowId), /childEnded payload: .*required property 'workflowId'/);
    fails({ ...ended, key: (JSON.parse(ended.value) as { jobId: string }).jobId }, /key .* is not the payload's workflowId/);
    fails(edit(ended, (v) => (v.error = { message: 'cancelled', name: 'Cancelled' })), /childEnded payload: \/error boolean schema is false/);
    fails(edit(ended, (v) => (v.state = 'cancelled')), /childEnded payload: .*required property 'error'/);
    fails({ ...ended, topic: TOPICS.events }, /ats-kind "child-ended" is none of transition, transitions/);
    fails({ ...of('dead-letter'), topic: TOPICS.workflows }, /ats-kind "dead-letter" is none of child-ended/);
  });

  it('a workflow-message record (the document\'s example): keyed by something other than its workflowId, no messageId, the message inside, another topic', () => {
    const example = contract.exampleRecords().find((e) => e.message === 'workflowMessage')!.record!;
    const notice = { ...example, topic: TOPICS.workflows };
    assert.deepEqual(contract.checkRecord(notice), { ok: true, message: 'workflowMessage' });
    const { workflowId, messageId } = JSON.parse(notice.value) as WorkflowMessageNotice;
    assert.equal(notice.key, workflowId);
    // Keyed by the target: the sender's id (the first part of messageId) does not do.
    fails({ ...notice, key: messageId.split(':')[0]! }, /workflowMessage: key .* is not the payload's workflowId/);
    fails({ ...notice, key: 'not-an-id' }, /workflowMessage key: \/ must match pattern/);
    fails(edit(notice, (v) => delete v.messageId), /workflowMessage payload: .*required property 'messageId'/);
    fails(edit(notice, (v) => delete v.workflowId), /required property 'workflowId'/);
    fails(edit(notice, (v) => delete v.tenant), /required property 'tenant'/);
    fails(edit(notice, (v) => (v.messageId = `${messageId.split(':')[0]}:0:0`)), /\/messageId must match pattern/);
    fails(edit(notice, (v) => (v.messageId = 'm-1')), /\/messageId must match pattern/);
    // The message itself stays in the database: a record carrying it does not match.
    fails(edit(notice, (v) => (v.event = { type: 'PING' })), /must NOT have additional properties.*event/);
    fails({ ...notice, topic: TOPICS.events }, /ats-kind "workflow-message" is none of transition, transitions/);
    fails({ ...notice, headers: { ...notice.headers, [KIND_HEADER]: 'child-ended' } }, /childEnded payload: .*required property 'invokeId'/);
    const { [OUTBOX_ID_HEADER]: _, ...noId } = notice.headers;
    fails({ ...notice, headers: noId }, /workflowMessage headers: .*ats-outbox-id/);
  });

  it('stream messages: a server message with a bad field or an unknown kind, a client message with an unknown op', () => {
    assert.ok(contract.checkStreamMessage('{"kind":"pong"}').ok);
    assert.ok(contract.checkStreamMessage({ op: 'subscribe', filter: { states: ['done'] } }, 'receive').ok);
    const bad = [
      contract.checkStreamMessage('{"kind":"subscribed"}'),
      contract.checkStreamMessage({ kind: 'event', cursor: 'x' }),
      contract.checkStreamMessage({ kind: 'error', code: 'oops', message: 'm' }),
      contract.checkStreamMessage({ kind: 'stats', byState: {}, byType: {}, byQueue: {}, at: 'yesterday' }),
      contract.checkStreamMessage('{"kind":"gossip"}'),
      contract.checkStreamMessage('not json'),
      contract.checkStreamMessage({ op: 'stats', everyMs: -1 }, 'receive'),
      contract.checkStreamMessage({ op: 'dance' }, 'receive'),
    ];
    for (const r of bad) assert.equal(r.ok, false, JSON.stringify(r));
    assert.throws(() => contract.assertStreamMessages(['{"kind":"pong"}', '{"kind":"pong","extra":1}']), /do not match/);
  });
});

describe('the schema-version header', () => {
  it('every message the engine builds carries ats-schema with the current major version (both formats, and workflow messages\' notices)', async () => {
    for (const m of [...sampleMessages(), ...packedSampleMessages(), ...await workflowMessageSamples()]) {
      assert.equal(m.headers[SCHEMA_HEADER], String(SCHEMA_VERSION), m.value);
    }
  });

  it('an outbox row an older version wrote (no ats-schema) goes out as version 1; a row that has one keeps it', () => {
    const row = { id: 7, topic: TOPICS.events, key: 'k', payload: { a: 1 }, createdAt: 0, publishedAt: null };
    assert.deepEqual(toLogMessage({ ...row, headers: { 'ats-kind': 'transition' } }).headers, {
      [SCHEMA_HEADER]: '1', 'ats-kind': 'transition', [OUTBOX_ID_HEADER]: '7',
    });
    assert.equal(toLogMessage({ ...row, headers: { [SCHEMA_HEADER]: '2' } }).headers[SCHEMA_HEADER], '2');
  });

  it('reads the major version: absent is 1, "2.1" is 2, garbage is no version', () => {
    const h = (v?: string): Record<string, string> => (v === undefined ? {} : { [SCHEMA_HEADER]: v });
    assert.equal(schemaMajor(h()), 1);
    assert.equal(schemaMajor(h('1')), 1);
    assert.equal(schemaMajor(h('2.1')), 2);
    assert.ok(Number.isNaN(schemaMajor(h('v2'))));
    assert.ok(Number.isNaN(schemaMajor(h(''))));
    assert.deepEqual(['', '0', '1', '1.3', '2', 'x', undefined].map((v) => readableSchema(h(v))), [false, false, true, true, false, false, true]);
    const proto = Object.create(null) as Record<string, string>;
    proto.__proto__ = '9';
    assert.equal(readableSchema(proto), true, 'other headers, __proto__ included, do not matter');
  });
});
