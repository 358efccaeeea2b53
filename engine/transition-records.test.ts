import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryLog } from '../adapters/memory/index.js';
import { KIND_HEADER, SCHEMA_HEADER, TRANSITION_KIND, TRANSITIONS_KIND } from './messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type EventLog, type LogMessage, type LogRecord } from './ports.js';
import { PackingLog, logForFormat, packTransitions, transitionsOf } from './transition-records.js';

let nextId = 0;
const transition = (jobId: string, seq: number, extra = ''): LogMessage => ({
  topic: TOPICS.events, key: jobId,
  value: JSON.stringify({ jobId, seq, type: 'STARTED', from: 'pending', to: 'running', at: 1, data: { note: extra }, jobType: 't', queue: 'q' }),
  headers: { 'content-type': 'application/json', [KIND_HEADER]: TRANSITION_KIND, [SCHEMA_HEADER]: '1', [OUTBOX_ID_HEADER]: String(++nextId) },
});
const dispatch = (jobId: string): LogMessage => ({
  topic: TOPICS.dispatch, key: jobId, value: JSON.stringify({ jobId, attempt: 1 }), headers: { [KIND_HEADER]: 'dispatch', [OUTBOX_ID_HEADER]: String(++nextId) },
});
/** Jobs `a*` on partition 0, `b*` on 1. */
const byLetter = (key: string) => (key.startsWith('a') ? 0 : 1);
const seqs = (m: LogMessage) => transitionsOf(m).map((t) => `${t.jobId}#${t.seq}`);

describe('packTransitions', () => {
  it('one record per partition, in the place of its first transition, each job\'s transitions in order; other messages as they were', () => {
    const d1 = dispatch('a1');
    const d2 = dispatch('b1');
    const input = [transition('a1', 1), d1, transition('b1', 1), transition('a1', 2), transition('a2', 1), d2, transition('b1', 2)];
    const out = packTransitions(input, byLetter);
    assert.equal(out.length, 4);
    assert.deepEqual(seqs(out[0]!), ['a1#1', 'a1#2', 'a2#1']);
    assert.equal(out[1], d1);
    assert.deepEqual(seqs(out[2]!), ['b1#1', 'b1#2']);
    assert.equal(out[3], d2);
    // Each packed transition is the stored text, unchanged.
    assert.equal(out[0]!.value, `{"transitions":[${[input[0], input[3], input[4]].map((m) => m!.value).join(',')}]}`);
  });

  it('a packed record is keyed by its first job, carries the kind, the schema and its first outbox id, and nothing else', () => {
    const first = transition('b7', 1);
    const [packed] = packTransitions([first, transition('b8', 1)], byLetter);
    assert.equal(packed!.key, 'b7');
    assert.equal(packed!.topic, TOPICS.events);
    assert.deepEqual(packed!.headers, {
      'content-type': 'application/json', [KIND_HEADER]: TRANSITIONS_KIND, [SCHEMA_HEADER]: '1', [OUTBOX_ID_HEADER]: first.headers[OUTBOX_ID_HEADER],
    });
  });

  it('starts a new record where one would pass the size cap; a transition above it goes alone', () => {
    const small = [1, 2, 3, 4].map((s) => transition('a1', s));
    const cap = small[0]!.value.length * 2 + 40;
    const out = packTransitions(small, byLetter, cap);
    assert.deepEqual(out.map(seqs), [['a1#1', 'a1#2'], ['a1#3', 'a1#4']]);
    assert.ok(out.every((m) => m.value.length <= cap));
    const big = transition('a1', 5, 'x'.repeat(cap));
    assert.deepEqual(packTransitions([big, transition('a1', 6)], byLetter, cap).map(seqs), [['a1#5'], ['a1#6']]);
  });

  it('leaves a publish without transitions as it is', () => {
    const input = [dispatch('a1'), dispatch('b1')];
    assert.deepEqual(packTransitions(input, byLetter), input);
  });
});

describe('transitionsOf', () => {
  it('reads one transition, a packed record, and nothing of another kind', () => {
    const t = transition('a1', 3);
    assert.deepEqual(transitionsOf(t).map((x) => x.seq), [3]);
    assert.deepEqual(transitionsOf({ value: '{"transitions":[{"jobId":"a","seq":1},{"jobId":"a","seq":2}]}', headers: { [KIND_HEADER]: TRANSITIONS_KIND } }).map((x) => x.seq), [1, 2]);
    assert.deepEqual(transitionsOf(dispatch('a1')), []);
  });
});

describe('PackingLog', () => {
  /** The in-process log, recording what reaches it and how often the partitioner is asked. */
  function recording() {
    const base = createMemoryLog({ partitions: 3 });
    const published: LogMessage[][] = [];
    let asked = 0;
    const log: EventLog = {
      ensureTopics: () => base.ensureTopics(),
      publish: async (m) => {
        published.push(m);
        await base.publish(m);
      },
      partitioner: (topic) => {
        asked++;
        return base.partitioner(topic);
      },
      consume: (o) => base.consume(o),
      unreadBefore: (topic, group, before) => base.unreadBefore(topic, group, before),
      listTopics: () => base.listTopics(),
      ping: () => base.ping(),
      close: () => base.close(),
    };
    return { base, log, published, asked: () => asked };
  }

  it('packs by the log\'s own partitioner, so each job\'s transitions arrive on the partition its key maps to, in order', async () => {
    const r = recording();
    const packing = new PackingLog(r.log);
    const jobs = Array.from({ length: 12 }, (_, i) => `job-${i}`);
    const messages = [1, 2, 3].flatMap((seq) => jobs.map((j) => transition(j, seq)));
    await packing.publish(messages);
    const partitionOf = await r.base.partitioner(TOPICS.events);
    const partitions = new Set(jobs.map(partitionOf));
    assert.equal(r.published[0]!.length, partitions.size, 'one record per partition the jobs map to');

    const got: LogRecord[] = [];
    const sub = await r.base.consume({ topic: TOPICS.events, groupId: 'g', fromBeginning: true, handle: async (rs) => void got.push(...rs) });
    for (let i = 0; i < 200 && got.length < partitions.size; i++) await new Promise((res) => setTimeout(res, 5));
    await sub.stop();
    for (const record of got) {
      for (const t of transitionsOf(record)) assert.equal(partitionOf(t.jobId), record.partition, `${t.jobId} on its own partition`);
    }
    for (const j of jobs) {
      assert.deepEqual(got.flatMap(transitionsOf).filter((t) => t.jobId === j).map((t) => t.seq), [1, 2, 3]);
    }
    await r.base.close();
  });

  it('asks nothing of the log for a publish without transitions', async () => {
    const r = recording();
    await new PackingLog(r.log).publish([dispatch('a1')]);
    assert.equal(r.asked(), 0);
    assert.equal(r.published[0]![0]!.headers[KIND_HEADER], 'dispatch');
    await r.base.close();
  });

  it('the single format publishes through the log as it is', () => {
    const r = recording();
    assert.equal(logForFormat(r.log, 'single'), r.log);
    assert.ok(logForFormat(r.log, 'batch') instanceof PackingLog);
  });
});
