/**
 * `outboxFor`'s `child-ended` message on `ats.workflows`: a job a workflow
 * started (`JobRecord.parent`) writes exactly one, in the transaction of its
 * first end (done with its result, dead with its last error, cancelled with
 * the cancel as an error), keyed by the workflow id; a job of its own writes
 * none, nor does any transition that is not an end, nor the later end of a
 * child redriven after it ended (its workflow took the first one). Each
 * message, as the relay publishes it, matches docs/asyncapi.yaml, and the
 * checker refuses one that does not. Built by the engine's own code
 * (`submitWrite`, `transitionWrite`, `toLogMessage`): no store, no log.
 *
 * `workflowMessageNotice`'s `workflow-message` row on `ats.workflows`: keyed
 * by the target instance's id, the notice its payload and nothing more (the
 * message stays in the store), the headers of every message; as the relay
 * publishes it, it matches docs/asyncapi.yaml, and the checker refuses one
 * that does not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import type { JobEvent } from '../machines/job.machine.js';
import type { Effects } from '../machines/lifecycle.js';
import { assertRefused, asyncApi, AsyncApiContract, editRecord } from '../tests/helpers/asyncapi.js';
import {
  CHILD_ENDED_KIND, KIND_HEADER, MAX_DEAD_LETTER_PAYLOAD_CHARS, outboxFor, WORKFLOW_MESSAGE_KIND, workflowMessageNotice,
  type ChildEndedMessage, type DeadLetterMessage, type WorkflowMessageNotice,
} from './messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type JobParent, type JobSpec, type LogMessage, type OutboxMessage, type TransitionWrite } from './ports.js';
import { toLogMessage } from './relay.js';
import { submitWrite, transitionWrite } from './transitions.js';

type Ev = DistributiveOmit<JobEvent, 'at'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const T0 = 1_796_189_376_000;
const WORKFLOW = '01M8TKNKB2B4NX57686KVQMQXZ';
const PARENT: JobParent = { workflowId: WORKFLOW, invokeId: 'charge' };
let nextId = 0;
/** A fresh job id (a ULID: the document's key and jobId patterns hold). */
const jobId = () => `01M8TKNKB38S1JYQV7A0DC${String(++nextId).padStart(4, '0')}`;

const spec = (over: Partial<JobSpec> = {}): JobSpec => ({
  type: 'payments.charge', payload: { orderId: 'A-1042' }, queue: 'default', maxAttempts: 2, backoff: DEFAULT_BACKOFF,
  timeoutMs: 30_000, priority: 0, parent: PARENT, ...over,
});

/** A job's life: its submit, then `events` a minute apart (past any backoff); every write, in order. */
function life(s: JobSpec, events: readonly Ev[]): TransitionWrite[] {
  const writes = [submitWrite(s, jobId(), T0)];
  let at = T0;
  for (const e of events) {
    at += 61_000;
    const event = ('leaseUntil' in e ? { ...e, at, leaseUntil: at + 30_000 } : { ...e, at }) as JobEvent;
    const previous = writes[writes.length - 1]!;
    const w = transitionWrite(previous.job, event, previous.event.type);
    assert.ok(w, `${e.type} rejected in ${previous.job.snapshot.value}`);
    writes.push(w);
  }
  return writes;
}

const started = (attempt: number): Ev => ({ type: 'STARTED', attempt, leaseUntil: 0, workerId: 'worker-1' });
const failed = (attempt: number, retryable = true): Ev => ({
  type: 'FAILED', attempt, rand: 0.25, error: { message: `declined on attempt ${attempt}`, name: 'Error', retryable },
});
const heartbeat = (attempt: number): Ev => ({ type: 'HEARTBEAT', attempt, leaseUntil: 0 });

const childEndedOf = (rows: readonly OutboxMessage[]) => rows.filter((r) => r.topic === TOPICS.workflows);
/** Per write, its child-ended rows (most writes: none). */
const perWrite = (writes: readonly TransitionWrite[]) => writes.map((w) => childEndedOf(w.outbox));
/** The writes' outbox rows as the relay publishes them (outbox ids from 1). */
const published = (writes: readonly TransitionWrite[]): LogMessage[] => {
  let id = 0;
  return writes.flatMap((w) => w.outbox).map((m) => toLogMessage({ ...m, id: ++id, createdAt: T0, publishedAt: null }));
};

/** Asserts the life wrote exactly one child-ended row, on write `index`, and returns it. */
function onlyEnd(writes: readonly TransitionWrite[], index: number): OutboxMessage {
  const rows = perWrite(writes);
  assert.deepEqual(rows.map((r) => r.length), writes.map((_, i) => (i === index ? 1 : 0)), 'one child-ended, on the end');
  const row = rows[index]![0]!;
  assert.equal(row.key, WORKFLOW, 'keyed by the workflow id');
  assert.deepEqual(row.headers, { 'content-type': 'application/json', [KIND_HEADER]: CHILD_ENDED_KIND, 'ats-schema': '1' });
  return row;
}

describe('outboxFor: child-ended on ats.workflows', () => {
  it('a child done: one message, on its SUCCEEDED, with its result (null for none), its tenant and when', () => {
    const writes = life(spec({ tenant: 'acme' }), [
      { type: 'PUBLISHED', attempt: 1 }, started(1), heartbeat(1), heartbeat(1), failed(1), { type: 'RETRY_DUE' }, started(2),
      { type: 'SUCCEEDED', attempt: 2, result: { chargeId: 'ch_1', amountCents: 4999 } },
    ]);
    const end = writes.length - 1;
    assert.equal(writes[4]!.coalesce !== undefined, true, 'a later heartbeat of the attempt, coalesced: no row at all');
    const payload: ChildEndedMessage = {
      workflowId: WORKFLOW, invokeId: 'charge', jobId: writes[0]!.job.id, state: 'done', at: writes[end]!.event.at, tenant: 'acme',
      result: { chargeId: 'ch_1', amountCents: 4999 },
    };
    assert.deepEqual(onlyEnd(writes, end).payload, payload);
    const none = life(spec(), [started(1), { type: 'SUCCEEDED', attempt: 1 }]);
    assert.deepEqual((onlyEnd(none, 2).payload as ChildEndedMessage).result, null);
    assert.ok(!('error' in (onlyEnd(none, 2).payload as object)));
  });

  it('a child dead: one message with its last error; a lease expiry counts like a failure', () => {
    const writes = life(spec(), [started(1), failed(1), { type: 'RETRY_DUE' }, started(2), failed(2)]);
    const row = onlyEnd(writes, 5);
    assert.deepEqual(row.payload, {
      workflowId: WORKFLOW, invokeId: 'charge', jobId: writes[0]!.job.id, state: 'dead', at: writes[5]!.event.at, tenant: 'default',
      error: { message: 'declined on attempt 2', name: 'Error', retryable: true, attempt: 2 },
    });
    assert.deepEqual((row.payload as ChildEndedMessage).error, writes[5]!.job.snapshot.context.lastError);
    // Not retryable: dead at once; the dead letter goes out beside it.
    const at1 = life(spec(), [started(1), failed(1, false)]);
    assert.equal((onlyEnd(at1, 2).payload as ChildEndedMessage).state, 'dead');
    assert.deepEqual(at1[2]!.outbox.map((r) => r.topic), [TOPICS.events, TOPICS.dlq, TOPICS.workflows]);
    const expired = life(spec({ maxAttempts: 1 }), [started(1), { type: 'LEASE_EXPIRED', attempt: 1, rand: 0.5 }]);
    assert.deepEqual((onlyEnd(expired, 2).payload as ChildEndedMessage).error, expired[2]!.job.snapshot.context.lastError);
  });

  it('a child cancelled: one message, the cancel as an error {message, name: Cancelled}, whatever state it left', () => {
    const running = life(spec(), [started(1), { type: 'CANCEL', reason: 'order withdrawn' }]);
    assert.deepEqual(onlyEnd(running, 2).payload, {
      workflowId: WORKFLOW, invokeId: 'charge', jobId: running[0]!.job.id, state: 'cancelled', at: running[2]!.event.at, tenant: 'default',
      error: { message: 'order withdrawn', name: 'Cancelled' },
    });
    // Beside the cancel control message for the running attempt.
    assert.deepEqual(running[2]!.outbox.map((r) => r.headers[KIND_HEADER]), ['transition', 'cancel', CHILD_ENDED_KIND]);
    const pending = life(spec(), [{ type: 'CANCEL' }]);
    assert.deepEqual((onlyEnd(pending, 1).payload as ChildEndedMessage).error, { message: 'cancelled', name: 'Cancelled' });
    const retrying = life(spec(), [started(1), failed(1), { type: 'CANCEL', reason: 'r' }]);
    assert.deepEqual((onlyEnd(retrying, 3).payload as ChildEndedMessage).error, { message: 'r', name: 'Cancelled' });
    assert.ok(!('result' in (onlyEnd(retrying, 3).payload as object)));
  });

  it('a child redriven after it ended writes another when it ends again (its workflow took the first end and drops this one, fenced by job id)', () => {
    const dead = life(spec({ maxAttempts: 1 }), [started(1), failed(1), { type: 'REDRIVE' }, started(2), failed(2)]);
    assert.equal(dead[5]!.job.snapshot.value, 'dead');
    assert.deepEqual(dead[2]!.outbox.map((r) => r.topic), [TOPICS.events, TOPICS.dlq, TOPICS.workflows], 'the first end');
    assert.deepEqual(dead[5]!.outbox.map((r) => r.topic), [TOPICS.events, TOPICS.dlq, TOPICS.workflows], 'the end after the redrive');
    const cancelled = life(spec(), [{ type: 'CANCEL' }, { type: 'REDRIVE' }, started(1), { type: 'SUCCEEDED', attempt: 1, result: 1 }]);
    assert.equal(cancelled[4]!.job.snapshot.value, 'done');
    const ends = cancelled.map((w) => w.outbox.filter((r) => r.topic === TOPICS.workflows).map((r) => (r.payload as ChildEndedMessage).state));
    assert.deepEqual(ends.flat(), ['cancelled', 'done']);
  });

  it('a job without a parent writes none, whatever its life', () => {
    const { parent: _, ...own } = spec();
    const lives = [
      life(own, [started(1), { type: 'SUCCEEDED', attempt: 1, result: 1 }]),
      life(own, [started(1), failed(1), { type: 'RETRY_DUE' }, started(2), failed(2), { type: 'REDRIVE' }, { type: 'CANCEL' }]),
      life(own, [started(1), { type: 'CANCEL' }]),
    ];
    for (const writes of lives) {
      assert.ok(!('parent' in writes[0]!.job));
      assert.deepEqual(perWrite(writes).flat(), []);
    }
    assert.equal(lives[1]!.at(-1)!.job.snapshot.value, 'cancelled');
  });

  it('no transition that is not an end writes one: only from a live state into done, dead or cancelled', () => {
    const writes = life(spec({ runAt: T0 + 1_000, maxAttempts: 5 }), [
      { type: 'DISPATCH' }, { type: 'PUBLISHED', attempt: 1 }, started(1), heartbeat(1), { type: 'LEASE_EXPIRED', attempt: 1, rand: 0.5 },
      { type: 'RETRY_DUE' }, started(2), failed(2), { type: 'RETRY_DUE' }, started(3),
    ]);
    assert.equal(writes.at(-1)!.job.snapshot.value, 'running');
    assert.deepEqual(perWrite(writes).flat(), []);
    // The rule on the event alone: an event that does not come from a live state is no end.
    const end = life(spec(), [started(1), { type: 'SUCCEEDED', attempt: 1 }])[2]!;
    const effects: Effects = { dispatch: false, deadLetter: false };
    assert.equal(childEndedOf(outboxFor(end.job, end.event, effects)).length, 1);
    assert.deepEqual(childEndedOf(outboxFor(end.job, { ...end.event, from: 'done' }, effects)), []);
    assert.deepEqual(childEndedOf(outboxFor(end.job, { ...end.event, from: null }, effects)), []);
    assert.deepEqual(childEndedOf(outboxFor(end.job, { ...end.event, to: 'running' }, effects)), []);
  });
});

describe('child-ended messages match docs/asyncapi.yaml', () => {
  /** Every way a child ends, as published. */
  const lives = () => [
    life(spec({ tenant: 'acme' }), [started(1), { type: 'SUCCEEDED', attempt: 1, result: { chargeId: 'ch_1' } }]),
    life(spec(), [started(1), { type: 'SUCCEEDED', attempt: 1 }]),
    life(spec(), [started(1), failed(1), { type: 'RETRY_DUE' }, started(2), failed(2)]),
    life(spec(), [started(1), { type: 'CANCEL', reason: 'order withdrawn' }]),
    life(spec({ queue: 'other', priority: 5 }), [{ type: 'CANCEL' }]),
  ];

  it('every message of those lives, child-ended included, with and without a topic prefix', () => {
    const messages = published(lives().flat());
    const counts = asyncApi().assertRecords(messages);
    assert.equal(counts.get('childEnded'), 5, 'one per child');
    assert.deepEqual([...counts.keys()].sort(), ['cancel', 'childEnded', 'deadLetter', 'dispatch', 'transition']);
    const prefixed = messages.map((m) => ({ ...m, topic: `staging.${m.topic}` }));
    assert.deepEqual(asyncApi().assertRecords(prefixed, 'staging.'), counts);
    const ended = messages.filter((m) => m.headers[KIND_HEADER] === CHILD_ENDED_KIND);
    assert.deepEqual(ended.map((m) => (JSON.parse(m.value) as ChildEndedMessage).state), ['done', 'done', 'dead', 'cancelled', 'cancelled']);
    for (const m of ended) assert.equal(m.topic, TOPICS.workflows);
  });

  it('the checker refuses a child-ended record that does not match', () => {
    const contract = new AsyncApiContract();
    const messages = published(lives().flat()).filter((m) => m.headers[KIND_HEADER] === CHILD_ENDED_KIND);
    const byState = (state: string) => messages.find((m) => (JSON.parse(m.value) as ChildEndedMessage).state === state);
    const [done, dead, cancelled] = [byState('done'), byState('dead'), byState('cancelled')];
    const edit = editRecord;
    const fails = (m: LogMessage, pattern: RegExp) => assertRefused(contract, m, pattern);
    for (const m of messages) assert.deepEqual(contract.checkRecord(m), { ok: true, message: 'childEnded' });
    fails(edit(done!, (v) => delete v.workflowId), /childEnded payload: .*required property 'workflowId'/);
    fails(edit(done!, (v) => delete v.workflowId), /key "01M8TKNKB2B4NX57686KVQMQXZ" is not the payload's workflowId undefined/);
    fails(edit(done!, (v) => delete v.invokeId), /required property 'invokeId'/);
    fails(edit(done!, (v) => (v.state = 'failed')), /\/state must be equal to one of the allowed values/);
    fails(edit(done!, (v) => delete v.result), /required property 'result'/);
    fails(edit(done!, (v) => (v.error = { message: 'x', name: 'Cancelled' })), /childEnded payload: /);
    fails(edit(dead!, (v) => (v.error = { message: 'x', name: 'Cancelled' })), /\/error must have required property 'retryable'/);
    fails(edit(dead!, (v) => (v.result = 1)), /childEnded payload: /);
    fails(edit(cancelled!, (v) => (v.error = { message: 'x', name: 'Error' })), /\/error\/name must be equal to constant/);
    fails(edit(cancelled!, (v) => (v.extra = true)), /must NOT have additional properties.*extra/);
    fails(edit(cancelled!, (v) => (v.workflowId = 'wf-1')), /\/workflowId must match pattern/);
    // Keyed by the workflow id: the job id does not do; nor does another topic, nor another kind on this one.
    fails({ ...done!, key: (JSON.parse(done!.value) as ChildEndedMessage).jobId }, /key .* is not the payload's workflowId/);
    fails({ ...done!, topic: TOPICS.dlq }, /ats-kind "child-ended" is none of dead-letter/);
    fails({ ...done!, headers: { ...done!.headers, [KIND_HEADER]: 'dead-letter' } }, /ats-kind "dead-letter" is none of child-ended/);
  });
});

describe('workflowMessageNotice: the workflow-message row on ats.workflows', () => {
  const SENDER = '01M8TKNKB2B4NX57686KVQMQY0';
  /** A notice as a sender's step writes it (engine/workflows.ts `messagesOf`): `<sender id>:<seq>:<n>`, the sender's tenant. */
  const notice = (over: Partial<WorkflowMessageNotice> = {}): WorkflowMessageNotice => ({
    workflowId: WORKFLOW, messageId: `${SENDER}:3:0`, tenant: 'default', ...over,
  });
  /** The row as the relay publishes it (outbox id `id`). */
  const publishedNotice = (n: WorkflowMessageNotice, id = 12_000): LogMessage =>
    toLogMessage({ ...workflowMessageNotice(n), id, createdAt: T0, publishedAt: null });

  it('is keyed by the target instance, carries the notice and nothing else, with the headers of every message', () => {
    const n = notice({ tenant: 'acme' });
    const row = workflowMessageNotice(n);
    assert.deepEqual(row, {
      topic: TOPICS.workflows, key: WORKFLOW, payload: n,
      headers: { 'content-type': 'application/json', [KIND_HEADER]: WORKFLOW_MESSAGE_KIND, 'ats-schema': '1' },
    });
    assert.equal(WORKFLOW_MESSAGE_KIND, 'workflow-message');
    // Keyed by the target whatever the sender: one target's notices share a partition.
    assert.equal(workflowMessageNotice(notice({ messageId: '01M8TKNKB2B4NX57686KVQMQY1:1:0' })).key, WORKFLOW);
    assert.equal(workflowMessageNotice(notice({ workflowId: 'orders42' })).key, 'orders42');
    const m = publishedNotice(n);
    assert.deepEqual(JSON.parse(m.value), { workflowId: WORKFLOW, messageId: `${SENDER}:3:0`, tenant: 'acme' });
    assert.equal(m.headers[OUTBOX_ID_HEADER], '12000');
  });

  it('as published, matches docs/asyncapi.yaml: a start\'s message, later ones, a step\'s second, an id no instance has, with and without a prefix', () => {
    const messages = [
      notice({ messageId: `${SENDER}:1:0` }), notice(), notice({ messageId: `${SENDER}:3:1`, tenant: 'acme' }),
      notice({ messageId: `${SENDER}:120:99` }), notice({ workflowId: 'orders42' }), notice({ workflowId: 'x'.repeat(64) }),
    ].map((n, i) => publishedNotice(n, (i + 1) * 1000));
    const counts = asyncApi().assertRecords(messages);
    assert.deepEqual([...counts], [['workflowMessage', messages.length]]);
    assert.deepEqual(asyncApi().assertRecords(messages.map((m) => ({ ...m, topic: `staging.${m.topic}` })), 'staging.'), counts);
  });

  it('the checker refuses a workflow-message record that does not match', () => {
    const contract = new AsyncApiContract();
    const good = publishedNotice(notice());
    const edit = (f: (v: Record<string, unknown>) => void): LogMessage => editRecord(good, f);
    const fails = (m: LogMessage, pattern: RegExp) => assertRefused(contract, m, pattern);
    assert.deepEqual(contract.checkRecord(good), { ok: true, message: 'workflowMessage' });
    // Keyed by the target: the sender's id, or another instance's, does not do.
    fails({ ...good, key: SENDER }, new RegExp(`key "${SENDER}" is not the payload's workflowId "${WORKFLOW}"`));
    fails({ ...publishedNotice(notice({ workflowId: 'orders42' })), key: WORKFLOW }, /is not the payload's workflowId "orders42"/);
    fails(edit((v) => delete v.messageId), /workflowMessage payload: .*required property 'messageId'/);
    fails(edit((v) => delete v.workflowId), /required property 'workflowId'/);
    fails(edit((v) => delete v.workflowId), /key "01M8TKNKB2B4NX57686KVQMQXZ" is not the payload's workflowId undefined/);
    fails(edit((v) => delete v.tenant), /required property 'tenant'/);
    fails(edit((v) => (v.tenant = 'Acme Corp')), /\/tenant must match pattern/);
    fails(edit((v) => (v.messageId = `${SENDER}:3`)), /\/messageId must match pattern/);
    fails(edit((v) => (v.messageId = `${SENDER}:0:0`)), /\/messageId must match pattern/);
    fails(edit((v) => (v.messageId = `orders42:3:0`)), /\/messageId must match pattern/);
    fails(edit((v) => (v.workflowId = 'wf-1')), /\/workflowId must match pattern/);
    fails(publishedNotice(notice({ workflowId: 'x'.repeat(65) })), /\/workflowId must match pattern/);
    // The message stays in the store: a record carrying it, or its sender, does not match.
    fails(edit((v) => (v.event = { type: 'PING', n: 1 })), /must NOT have additional properties.*event/);
    fails(edit((v) => (v.from = SENDER)), /must NOT have additional properties.*from/);
    fails({ ...good, topic: TOPICS.dlq }, /ats-kind "workflow-message" is none of dead-letter/);
    fails({ ...good, headers: { ...good.headers, [KIND_HEADER]: CHILD_ENDED_KIND } }, /childEnded payload: .*required property 'jobId'/);
    fails({ ...good, headers: { ...good.headers, 'ats-schema': 'v1' } }, /workflowMessage headers: \/ats-schema must match pattern/);
  });
});

describe('dead letters', () => {
  it('carry the payload, or leave out one over MAX_DEAD_LETTER_PAYLOAD_CHARS, and match docs/asyncapi.yaml either way', () => {
    const dies = (payload: unknown) => life(spec({ payload, maxAttempts: 1, parent: undefined }), [started(1), failed(1)]);
    const fits = 'x'.repeat(MAX_DEAD_LETTER_PAYLOAD_CHARS - 2); // its JSON: exactly the limit
    const messages = published([...dies({ orderId: 'A-1' }), ...dies(fits), ...dies(`${fits}x`)]);
    assert.equal(asyncApi().assertRecords(messages).get('deadLetter'), 3);
    const letters = messages.filter((m) => m.topic === TOPICS.dlq).map((m) => JSON.parse(m.value) as DeadLetterMessage);
    assert.deepEqual(letters.map((l) => [l.payloadOmitted, typeof l.payload === 'string' ? l.payload.length : l.payload]),
      [[undefined, { orderId: 'A-1' }], [undefined, fits.length], [true, null]]);
    assert.ok(messages.every((m) => m.value.length < 300 * 1024), 'no message near what Kafka refuses');
  });
});

