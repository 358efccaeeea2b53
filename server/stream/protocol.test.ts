/** Stream cursors and client message parsing (no I/O). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobProgress, StreamEventRecord, WorkflowStreamEventRecord } from '../../engine/ports.js';
import { decodeCursorPosition, decodeStreamCursor, encodeStreamCursor } from './cursor.js';
import { compileStreamOptions } from './options.js';
import {
  eventMessage, matches, matchesWorkflow, parseClientMessage, parseQuerySubscribe, wantsInsight, wantsProgress, workflowMessage, type StreamFilter,
} from './protocol.js';

const JOB = '01HZY4K3M8Q2W5E7R9T1V3X5Z7';
const parse = (msg: unknown, max = 16_384) => {
  const text = typeof msg === 'string' ? msg : JSON.stringify(msg);
  return parseClientMessage(text, Buffer.byteLength(text), max);
};
const codeOf = (msg: unknown) => {
  const r = parse(msg);
  return r.ok ? 'ok' : r.error.code;
};

describe('stream cursor', () => {
  it('round-trips ids and is opaque base64url', () => {
    for (const id of [0, 1, 42, 9_007_199_254_740_991]) {
      const c = encodeStreamCursor(id);
      assert.match(c, /^[A-Za-z0-9_-]+$/);
      assert.equal(decodeStreamCursor(c), id);
    }
  });

  it('rejects anything it did not issue with ATS_ERR_BAD_CURSOR', () => {
    const bad = ['', 'abc', '!!', encodeStreamCursor(1) + '=', Buffer.from('v1:01').toString('base64url'),
      Buffer.from('v2:5').toString('base64url'), Buffer.from('v1:-1').toString('base64url'),
      Buffer.from('v1:99999999999999999').toString('base64url'), 'x'.repeat(5000)];
    for (const c of bad) assert.throws(() => decodeStreamCursor(c), { code: 'ATS_ERR_BAD_CURSOR' }, c);
  });
});

describe('workflow cursors', () => {
  it('round-trip as positions in workflow_events, distinct from job cursors', () => {
    for (const id of [0, 7, 9_007_199_254_740_991]) {
      const c = encodeStreamCursor(id, 'workflows');
      assert.match(c, /^[A-Za-z0-9_-]+$/);
      assert.notEqual(c, encodeStreamCursor(id));
      assert.deepEqual(decodeCursorPosition(c), { source: 'workflows', id });
      assert.deepEqual(decodeCursorPosition(encodeStreamCursor(id)), { source: 'jobs', id });
    }
  });

  it('decodeStreamCursor takes job cursors only; malformed workflow cursors are refused', () => {
    assert.throws(() => decodeStreamCursor(encodeStreamCursor(3, 'workflows')), { code: 'ATS_ERR_BAD_CURSOR' });
    const bad = [Buffer.from('v1:w:').toString('base64url'), Buffer.from('v1:w:01').toString('base64url'), Buffer.from('v1:x:5').toString('base64url'),
      Buffer.from('v1:w5').toString('base64url'), Buffer.from('v1:w:-1').toString('base64url')];
    for (const c of bad) assert.throws(() => decodeCursorPosition(c), { code: 'ATS_ERR_BAD_CURSOR' }, c);
  });
});

describe('client messages', () => {
  it('parses subscribe (with filter and cursor), stats and ping', () => {
    assert.deepEqual(parse({ op: 'subscribe' }), { ok: true, value: { op: 'subscribe', filter: {} } });
    const cursor = encodeStreamCursor(17);
    assert.deepEqual(parse({ op: 'subscribe', filter: { jobId: JOB, type: 't', queue: 'q', states: ['done', 'dead', 'done'] }, cursor }), {
      ok: true, value: { op: 'subscribe', filter: { jobId: JOB, type: 't', queue: 'q', states: ['done', 'dead'] }, after: 17 },
    });
    assert.deepEqual(parse({ op: 'stats' }), { ok: true, value: { op: 'stats' } });
    assert.deepEqual(parse({ op: 'stats', everyMs: 0 }), { ok: true, value: { op: 'stats', everyMs: 0 } });
    assert.deepEqual(parse({ op: 'stats', everyMs: 250 }), { ok: true, value: { op: 'stats', everyMs: 250 } });
    assert.deepEqual(parse({ op: 'ping' }), { ok: true, value: { op: 'ping' } });
  });

  it('answers malformed JSON with ATS_ERR_MALFORMED_JSON', () => {
    for (const m of ['{', 'nope', '{"op":"ping",}', '']) assert.equal(codeOf(m), 'ATS_ERR_MALFORMED_JSON', m);
  });

  it('answers bad messages with ATS_ERR_VALIDATION, and bad cursors with ATS_ERR_BAD_CURSOR', () => {
    const invalid: unknown[] = [
      '[]', '42', 'null', { op: 'dance' }, {}, { op: 'subscribe', filter: [] }, { op: 'subscribe', filter: { states: [] } },
      { op: 'subscribe', filter: { states: ['nope'] } }, { op: 'subscribe', filter: { jobId: 'not-a-ulid' } },
      { op: 'subscribe', filter: { type: '' } }, { op: 'subscribe', filter: { queue: 'q'.repeat(256) } },
      { op: 'subscribe', filter: { tpye: 't' } }, { op: 'subscribe', cursor: 5 }, { op: 'subscribe', extra: 1 },
      { op: 'stats', everyMs: 100 }, { op: 'stats', everyMs: 1.5 }, { op: 'stats', everyMs: '1000' }, { op: 'ping', x: 1 },
    ];
    for (const m of invalid) assert.equal(codeOf(m), 'ATS_ERR_VALIDATION', JSON.stringify(m));
    assert.equal(codeOf({ op: 'subscribe', cursor: 'garbage' }), 'ATS_ERR_BAD_CURSOR');
  });

  it('refuses a type, queue or workflow name no job or instance can have, as REST\'s filters do, by message and in the query string', () => {
    // Each of these would subscribe to nothing, for ever: a typo the client is never told of.
    const names = ['email send', 'caf\u00e9', '\u2713', 'a\u0000b', 'a/b', 'a'.repeat(201)];
    for (const name of names) {
      for (const filter of [{ type: name }, { queue: name }, { workflowName: name }]) {
        assert.equal(codeOf({ op: 'subscribe', filter }), 'ATS_ERR_VALIDATION', JSON.stringify(filter));
        const q = parseQuerySubscribe(filter);
        assert.ok(q && !q.ok && q.error.code === 'ATS_ERR_VALIDATION', `query ${JSON.stringify(filter)}`);
      }
    }
    // A workflow's name is at most 100 characters (defineWorkflow, GET /v1/workflows?name=).
    assert.equal(codeOf({ op: 'subscribe', filter: { workflowName: 'w'.repeat(101) } }), 'ATS_ERR_VALIDATION');
    // The longest names that can exist are taken.
    for (const filter of [{ type: 'a'.repeat(200) }, { queue: 'q.Z_9:-'.repeat(28) }, { workflowName: 'w'.repeat(100) }]) {
      assert.equal(codeOf({ op: 'subscribe', filter }), 'ok', JSON.stringify(filter));
    }
  });

  it('parses workflow filters: workflowId and workflowName imply workflows, with a workflow cursor', () => {
    const cursor = encodeStreamCursor(4, 'workflows');
    assert.deepEqual(parse({ op: 'subscribe', filter: { workflows: true } }), { ok: true, value: { op: 'subscribe', filter: { workflows: true } } });
    assert.deepEqual(parse({ op: 'subscribe', filter: { workflowId: JOB }, cursor }), {
      ok: true, value: { op: 'subscribe', filter: { workflows: true, workflowId: JOB }, after: 4 },
    });
    assert.deepEqual(parse({ op: 'subscribe', filter: { workflows: true, workflowName: 'order.fulfil', workflowId: JOB } }), {
      ok: true, value: { op: 'subscribe', filter: { workflows: true, workflowId: JOB, workflowName: 'order.fulfil' } },
    });
  });

  it('refuses bad workflow filters with ATS_ERR_VALIDATION, and a cursor of the other table with ATS_ERR_BAD_CURSOR', () => {
    const invalid: unknown[] = [
      { workflows: false }, { workflows: 'true' }, { workflows: 1 }, { workflowId: 'not-a-ulid' }, { workflowId: 5 }, { workflowName: '' },
      { workflowName: 'n'.repeat(256) }, { workflowName: ['a'] }, { workflows: true, type: 't' }, { workflowId: JOB, jobId: JOB },
      { workflowName: 'w', states: ['done'] }, { workflowName: 'w', queue: 'q' }, { workflow: true },
    ];
    for (const filter of invalid) assert.equal(codeOf({ op: 'subscribe', filter }), 'ATS_ERR_VALIDATION', JSON.stringify(filter));
    const mixed = parse({ op: 'subscribe', filter: { workflows: true, jobId: JOB } });
    assert.ok(!mixed.ok && /not both/.test(mixed.error.message), 'the message says a filter is of one kind');
    assert.equal(codeOf({ op: 'subscribe', filter: { workflows: true }, cursor: encodeStreamCursor(4) }), 'ATS_ERR_BAD_CURSOR');
    assert.equal(codeOf({ op: 'subscribe', filter: { type: 't' }, cursor: encodeStreamCursor(4, 'workflows') }), 'ATS_ERR_BAD_CURSOR');
    assert.equal(codeOf({ op: 'subscribe', cursor: encodeStreamCursor(4, 'workflows') }), 'ATS_ERR_BAD_CURSOR');
  });

  it('reads a workflow subscription from the query string', () => {
    assert.deepEqual(parseQuerySubscribe({ workflows: 'true', workflowName: 'order.fulfil', cursor: encodeStreamCursor(2, 'workflows') }), {
      ok: true, value: { op: 'subscribe', filter: { workflows: true, workflowName: 'order.fulfil' }, after: 2 },
    });
    assert.deepEqual(parseQuerySubscribe({ workflowId: JOB }), { ok: true, value: { op: 'subscribe', filter: { workflows: true, workflowId: JOB } } });
    assert.equal((parseQuerySubscribe({ workflows: 'yes' }) as { ok: boolean }).ok, false);
    assert.equal((parseQuerySubscribe({ workflowName: 'w', type: 't' }) as { ok: boolean }).ok, false);
  });

  it('quotes at most 50 characters of an unknown op or of unknown fields, cut between characters', () => {
    const op = parse({ op: `${'x'.repeat(48)}\u{1F600}${'y'.repeat(10_000)}` });
    assert.ok(!op.ok);
    assert.equal(op.error.message, `unknown op "${'x'.repeat(48)}...: expected subscribe, stats or ping`);
    const fields = parse({ op: 'ping', ...Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`field${i}`, 1])) });
    assert.ok(!fields.ok && fields.error.message.length < 200, fields.ok ? '' : fields.error.message.slice(0, 300));
    assert.match(fields.error.message, /^unknown message field\(s\) field0, field1, .*\.\.\.; allowed: op$/);
    const filter = parse({ op: 'subscribe', filter: { [`f${'z'.repeat(5000)}`]: 1 } });
    assert.ok(!filter.ok && filter.error.message.length < 200, filter.ok ? '' : filter.error.message.slice(0, 300));
  });

  it('refuses a message over the size limit by its byte length', () => {
    const big = JSON.stringify({ op: 'subscribe', filter: { type: 'é'.repeat(6000) } }); // 6000 chars, 12000+ bytes
    const r = parseClientMessage(big, Buffer.byteLength(big), 10_000);
    assert.ok(!r.ok && r.error.code === 'ATS_ERR_VALIDATION' && /larger than the limit of 10000/.test(r.error.message));
  });

  it('reads a subscription from the query string, or none', () => {
    assert.equal(parseQuerySubscribe({}), null);
    assert.deepEqual(parseQuerySubscribe({ type: 't1', states: 'running, done', queue: '' }), {
      ok: true, value: { op: 'subscribe', filter: { type: 't1', states: ['running', 'done'] } },
    });
    assert.deepEqual(parseQuerySubscribe({ cursor: encodeStreamCursor(3) }), { ok: true, value: { op: 'subscribe', filter: {}, after: 3 } });
    assert.equal((parseQuerySubscribe({ states: 'bogus' }) as { ok: boolean }).ok, false);
    assert.equal((parseQuerySubscribe({ type: ['a', 'b'] }) as { ok: boolean }).ok, false);
  });

  it('refuses a parameter it does not take, empty or not, beside others or alone: nothing sent is dropped unread', () => {
    for (const query of [{ foo: 'bar' }, { state: 'done', type: 't1' }, { jobid: 'x' }, { jobId: '', foo: '' }, { ['__proto__']: 'x' }]) {
      const r = parseQuerySubscribe(query);
      assert.ok(r && !r.ok, JSON.stringify(query));
      assert.equal(r.error.code, 'ATS_ERR_VALIDATION');
      assert.match(r.error.message, /^unknown query parameter .+: the stream takes jobId, type, queue, states, workflows, workflowId, workflowName and cursor$/);
    }
    const long = parseQuerySubscribe({ ['x'.repeat(500)]: '1' });
    assert.ok(long && !long.ok && long.error.message.length < 250, 'a long name is cut in the message');
  });

  it('takes parameters that are all empty as none: the client subscribes by message', () => {
    for (const query of [{ type: '' }, { cursor: '' }, { queue: '', states: '', workflowName: '', cursor: '' }, { jobId: '' }]) {
      assert.equal(parseQuerySubscribe(query), null, JSON.stringify(query));
    }
    // One empty beside one given: the empty one is absent, the other holds.
    assert.deepEqual(parseQuerySubscribe({ type: '', queue: 'q' }), { ok: true, value: { op: 'subscribe', filter: { queue: 'q' } } });
  });
});

describe('filters and event messages', () => {
  const e: StreamEventRecord = {
    id: 9, jobId: JOB, seq: 2, type: 'PUBLISHED', from: 'pending', to: 'published', at: 1_700_000_000_000,
    data: { type: 'PUBLISHED', at: 1_700_000_000_000, attempt: 1 }, jobType: 'demo.echo', queue: 'q1',
  };

  it('matches each filter field, all of them together', () => {
    const yes: StreamFilter[] = [{}, { jobId: JOB }, { type: 'demo.echo' }, { queue: 'q1' }, { states: ['done', 'published'] },
      { jobId: JOB, type: 'demo.echo', queue: 'q1', states: ['published'] }];
    const no: StreamFilter[] = [{ jobId: '01HZY4K3M8Q2W5E7R9T1V3X5Z8' }, { type: 'demo.fail' }, { queue: 'q2' }, { states: ['pending'] },
      { type: 'demo.echo', queue: 'q2' }];
    for (const f of yes) assert.ok(matches(f, e), JSON.stringify(f));
    for (const f of no) assert.ok(!matches(f, e), JSON.stringify(f));
  });

  it('an event message has the protocol fields, an ISO time and the id as cursor', () => {
    assert.deepEqual(JSON.parse(eventMessage(e)), {
      kind: 'event', cursor: encodeStreamCursor(9), jobId: JOB, seq: 2, type: 'PUBLISHED', from: 'pending', to: 'published',
      at: '2023-11-14T22:13:20.000Z', data: e.data, jobType: 'demo.echo', queue: 'q1',
    });
  });
});

describe('workflow filters and messages', () => {
  const w: WorkflowStreamEventRecord = {
    id: 12, workflowId: JOB, seq: 3, type: 'CHILD', at: 1_700_000_000_000, data: { type: 'CHILD', jobId: JOB, outcome: { status: 'done' } },
    status: 'active', name: 'order.fulfil', tenant: 'default', value: { fulfil: { stock: 'reserving' } },
  };
  const job: StreamEventRecord = {
    id: 12, jobId: JOB, seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at: 1_700_000_000_000, data: { at: 1_700_000_000_000, runAt: 1_700_000_000_000, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 0 } }, jobType: 'order.fulfil', queue: 'q1',
  };
  const progress: JobProgress = { jobId: JOB, tenant: 'default', type: 'order.fulfil', queue: 'q1', attempt: 1, value: 50, at: 1_700_000_000_000 };

  it('matches by workflow id and name; job filters never match a workflow event, nor workflow filters a job event', () => {
    const yes: StreamFilter[] = [{ workflows: true }, { workflows: true, workflowId: JOB }, { workflows: true, workflowName: 'order.fulfil' },
      { workflows: true, workflowId: JOB, workflowName: 'order.fulfil' }];
    const no: StreamFilter[] = [{}, { type: 'order.fulfil' }, { workflows: true, workflowId: '01HZY4K3M8Q2W5E7R9T1V3X5Z8' },
      { workflows: true, workflowName: 'order.other' }, { workflows: true, workflowId: JOB, workflowName: 'order.other' }];
    for (const f of yes) assert.ok(matchesWorkflow(f, w), JSON.stringify(f));
    for (const f of no) assert.ok(!matchesWorkflow(f, w), JSON.stringify(f));
    for (const f of yes) {
      assert.ok(!matches(f, job), `job event under ${JSON.stringify(f)}`);
      assert.ok(!wantsProgress(f, progress), `progress under ${JSON.stringify(f)}`);
      assert.ok(!wantsInsight(f, { type: 'order.fulfil', queue: 'q1' }), `insight under ${JSON.stringify(f)}`);
    }
  });

  it('a workflow message has the protocol fields, an ISO time and a workflow cursor', () => {
    assert.deepEqual(JSON.parse(workflowMessage(w)), {
      kind: 'workflow', cursor: encodeStreamCursor(12, 'workflows'), workflowId: JOB, name: 'order.fulfil', seq: 3, type: 'CHILD',
      at: '2023-11-14T22:13:20.000Z', status: 'active', value: w.value, data: w.data,
    });
  });
});

describe('stream options', () => {
  it('applies defaults and rejects bad values with ATS_ERR_CONFIG', () => {
    const o = compileStreamOptions({ maxBufferedBytes: 4096 });
    assert.equal(o.maxBufferedBytes, 4096);
    assert.equal(o.maxMessageBytes, 16_384);
    assert.ok(Object.isFrozen(o));
    assert.throws(() => compileStreamOptions({ pollMs: 0 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => compileStreamOptions({ gapTimeoutMs: 1.5 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => compileStreamOptions({ maxMessageBytes: 2048, hardMaxMessageBytes: 1024 }), { code: 'ATS_ERR_CONFIG' });
  });
});
