/**
 * docs/asyncapi.yaml: it is a valid AsyncAPI 3.0 document (@asyncapi/parser),
 * its examples match its own schemas, the messages the engine builds match it,
 * and the checker (tests/helpers/asyncapi.ts) the delivery tests use fails a
 * record that does not match. Also the schema-version header: written on
 * every message, read by `schemaMajor` / `readableSchema`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { SCHEMA_HEADER, SCHEMA_VERSION, readableSchema, schemaMajor } from '../engine/messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type LogMessage } from '../engine/ports.js';
import { toLogMessage } from '../engine/relay.js';
import { ASYNCAPI_PATH, AsyncApiContract, CODE_TOPICS, asyncApi } from './helpers/asyncapi.js';
import { sampleMessages } from './helpers/sample-messages.js';

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
    assert.deepEqual(addresses, ['/v1/stream', ...CODE_TOPICS.map((t) => `{prefix}${t}`)].sort());
    const kafkaMessages = document.channels().all().filter((c) => c.address() !== '/v1/stream')
      .flatMap((c) => c.messages().all().map((m) => m.id())).sort();
    assert.deepEqual(kafkaMessages, ['cancel', 'deadLetter', 'dispatch', 'transition']);
    assert.deepEqual(document.operations().all().map((o) => `${o.action()} ${o.channels().all()[0]!.address()}`).sort(), [
      'receive /v1/stream', 'receive {prefix}ats.dispatch', 'send /v1/stream', 'send {prefix}ats.dispatch', 'send {prefix}ats.dlq', 'send {prefix}ats.events',
    ]);
  });

  it('names every topic the code publishes to', () => {
    assert.deepEqual([...asyncApi().topics].sort(), [...CODE_TOPICS].sort());
  });

  it('its message examples match its own schemas', () => {
    const examples = asyncApi().exampleRecords();
    assert.deepEqual([...new Set(examples.map((e) => e.message))].sort(), ['cancel', 'deadLetter', 'dispatch', 'transition']);
    asyncApi().assertRecords(examples.map((e) => e.record!));
  });
});

describe('the messages the engine builds match docs/asyncapi.yaml', () => {
  it('every kind, on every path a job takes', () => {
    const counts = asyncApi().assertRecords(sampleMessages());
    assert.deepEqual([...counts.keys()].sort(), ['cancel', 'deadLetter', 'dispatch', 'transition']);
  });

  it('with a topic prefix too', () => {
    const prefixed = sampleMessages().map((m) => ({ ...m, topic: `staging.${m.topic}` }));
    asyncApi().assertRecords(prefixed, 'staging.');
  });
});

describe('the checker fails a record that does not match', () => {
  const contract = new AsyncApiContract();
  const messages = sampleMessages();
  const of = (kind: string) => messages.find((m) => m.headers['ats-kind'] === kind)!;
  const edit = (m: LogMessage, f: (v: Record<string, unknown>) => void): LogMessage => {
    const v = JSON.parse(m.value) as Record<string, unknown>;
    f(v);
    return { ...m, value: JSON.stringify(v) };
  };
  const fails = (m: LogMessage, pattern: RegExp, prefix = '') => {
    const r = contract.checkRecord(m, prefix);
    assert.equal(r.ok, false, `accepted: ${JSON.stringify(m)}`);
    assert.match((r as { errors: string[] }).errors.join('\n'), pattern);
  };

  it('accepts the good ones it starts from', () => {
    for (const kind of ['dispatch', 'cancel', 'transition', 'dead-letter']) assert.ok(contract.checkRecord(of(kind)).ok, kind);
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

  it('a key that is not the job id, a value that is not JSON, a topic not in the document', () => {
    const d = of('dispatch');
    fails({ ...d, key: messages.find((m) => m.key !== d.key)!.key }, /key .* is not the payload's jobId/);
    fails({ ...d, key: 'job-1' }, /dispatch key: \/ must match pattern/);
    fails({ ...d, value: '{"jobId":' }, /not JSON/);
    fails({ ...d, topic: 'ats.other' }, /not in the document/);
    fails({ ...d, topic: `p.${d.topic}` }, /not in the document/, 'q.');
    assert.throws(() => contract.assertRecords([d, { ...d, value: '[]' }]), /do not match/);
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
  it('every message the engine builds carries ats-schema with the current major version', () => {
    for (const m of sampleMessages()) assert.equal(m.headers[SCHEMA_HEADER], String(SCHEMA_VERSION), m.value);
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
