/**
 * One session against a fake table whose reads are slow: what a flood of
 * subscribe frames from one client costs the database, and which
 * subscription is in force once it is over; and what oversize and binary
 * frames get.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../engine/logger.js';
import type { StreamEventRecord } from '../../engine/ports.js';
import { testClock } from '../../tests/helpers/app.js';
import { encodeStreamCursor } from './cursor.js';
import { STREAM_DEFAULTS } from './options.js';
import { eventMessage } from './protocol.js';
import { StreamSession, type SessionContext, type StreamSocket } from './session.js';

/** A job event of id `id` in queue `q<id % 10>`. */
const row = (id: number): StreamEventRecord => ({
  id, jobId: `job-${id}`, seq: 1, type: 'SUBMIT', from: null, to: 'pending', at: 0, data: {}, jobType: 't', queue: `q${id % 10}`, tenant: 'default',
} as unknown as StreamEventRecord);

/** A table of ids 1..`last` whose tail's horizon is `horizon`; each read takes `readMs` and is counted. */
function slowTable(last: number, horizon: number, readMs: number) {
  const reads = { now: 0, most: 0, total: 0 };
  const ctx: SessionContext = {
    opts: { ...STREAM_DEFAULTS, replayPageSize: 50 },
    horizon: () => horizon,
    read: async (afterId, limit) => {
      reads.total++;
      reads.most = Math.max(reads.most, ++reads.now);
      try {
        await sleep(readMs);
        const rows: StreamEventRecord[] = [];
        for (let id = afterId + 1; id <= last && rows.length < limit; id++) rows.push(row(id));
        return rows;
      } finally {
        reads.now--;
      }
    },
    stats: async () => ({ byState: {}, byType: {}, byQueue: {} }) as never,
    clock: testClock,
    logger: silentLogger,
  };
  return { ctx, reads };
}

function fakeSocket() {
  const sent: Array<Record<string, unknown>> = [];
  const socket: StreamSocket = {
    readyState: 1, bufferedAmount: 0, send: (t) => void sent.push(JSON.parse(t)), close() {}, terminate() {}, ping() {},
  };
  return { socket, sent };
}

const frame = (queue: string, cursor?: number) => Buffer.from(JSON.stringify({
  op: 'subscribe', filter: { queue }, ...(cursor === undefined ? {} : { cursor: encodeStreamCursor(cursor) }),
}));

describe('a session flooded with subscribe frames', () => {
  it('holds one database read at a time, and the last subscribe is the one in force', async () => {
    // Ids 1..1005 committed; the tail is at 1000, so a cursor of 1001..1005 needs the cursor check.
    const { ctx, reads } = slowTable(1005, 1000, 5);
    const { socket, sent } = fakeSocket();
    const session = new StreamSession(socket, ctx);
    for (let i = 0; i < 3000; i++) {
      // Replays from below the horizon, cursors above it (checked by a read), and live subscribes, mixed.
      const kind = i % 3;
      session.onFrame(frame(`q${i % 10}`, kind === 0 ? i % 1000 : kind === 1 ? 1001 + (i % 5) : undefined), false);
    }
    session.onFrame(frame('q7', 990), false);
    const deadline = Date.now() + 10_000;
    while (!(session.live && reads.now === 0)) {
      assert.ok(Date.now() < deadline, 'the last subscription turns live');
      await sleep(5);
    }
    assert.equal(reads.most, 1, 'at most one read of the session at a time');
    assert.ok(reads.total <= 5, `${reads.total} reads for 3001 subscribes`);

    const last = sent.map((m) => m.kind).lastIndexOf('subscribed');
    assert.equal(sent[last]!.cursor, encodeStreamCursor(990), 'the last subscribe is answered last');
    const replayed = sent.slice(last + 1);
    assert.deepEqual(replayed.map((m) => m.jobId), ['job-997'], 'the replay is of the last filter and cursor, up to the horizon');

    // Live: the last filter's events only.
    const batch = [row(1001), row(1007), row(1017)];
    session.deliver(batch, (i) => eventMessage(batch[i]!));
    assert.deepEqual(sent.slice(last + 2).map((m) => m.jobId), ['job-1007', 'job-1017']);
  });

  it('answers a subscribe that needs a read after one page of a long replay, not after the replay', async () => {
    // 100,000 rows below the horizon at 50 a page and 5 ms a read: the whole replay would take 10 s.
    const { ctx, reads } = slowTable(100_005, 100_000, 5);
    const { socket, sent } = fakeSocket();
    const session = new StreamSession(socket, ctx);
    session.onFrame(frame('q1', 0), false);
    await sleep(50);
    const asked = Date.now();
    session.onFrame(frame('q3', 100_003), false); // above the horizon: a cursor check first
    const deadline = Date.now() + 5_000;
    while (!session.live) {
      assert.ok(Date.now() < deadline, 'the second subscription turns live');
      await sleep(5);
    }
    assert.ok(Date.now() - asked < 1_000, `answered after ${Date.now() - asked} ms`);
    assert.equal(sent.filter((m) => m.kind === 'subscribed').at(-1)!.cursor, encodeStreamCursor(100_003));
    assert.equal(reads.most, 1);
  });
});

describe('a session sent oversize frames', () => {
  /** A socket that records what is sent and the close. */
  function closingSocket() {
    const sent: Array<Record<string, unknown>> = [];
    const closed: Array<{ code?: number; reason?: string }> = [];
    const socket: StreamSocket = {
      readyState: 1, bufferedAmount: 0, send: (t) => void sent.push(JSON.parse(t)), close: (code, reason) => void closed.push({ code, reason }), terminate() {}, ping() {},
    };
    return { socket, sent, closed };
  }

  it('counts binary frames over the limit as oversize messages: the fifth closes with 1008, as text ones', () => {
    const { ctx } = slowTable(0, 0, 0);
    const { maxMessageBytes, maxOversizeMessages } = ctx.opts;
    for (const binary of [false, true]) {
      const { socket, sent, closed } = closingSocket();
      const session = new StreamSession(socket, ctx);
      for (let i = 1; i < maxOversizeMessages; i++) session.onFrame(Buffer.alloc(maxMessageBytes + 1, 0x78), binary);
      assert.deepEqual(closed, [], `${binary ? 'binary' : 'text'}: open after ${maxOversizeMessages - 1}`);
      assert.equal(sent.length, maxOversizeMessages - 1);
      for (const m of sent) assert.match(String(m.message), new RegExp(`larger than the limit of ${maxMessageBytes}`), `${binary ? 'binary' : 'text'}: ${JSON.stringify(m)}`);
      session.onFrame(Buffer.alloc(maxMessageBytes + 1, 0x78), binary);
      assert.deepEqual(closed, [{ code: 1008, reason: 'too many oversize messages' }], binary ? 'binary' : 'text');
    }
  });

  it('answers a small binary frame with an error and keeps the connection', () => {
    const { ctx } = slowTable(0, 0, 0);
    const { socket, sent, closed } = closingSocket();
    const session = new StreamSession(socket, ctx);
    for (let i = 0; i < 10; i++) session.onFrame(Buffer.from('{"op":"ping"}'), true);
    assert.equal(sent.length, 10);
    assert.ok(sent.every((m) => m.code === 'ATS_ERR_VALIDATION' && /binary/.test(String(m.message))));
    assert.deepEqual(closed, []);
  });
});

describe('a session asked for stats', () => {
  const statsFrame = (everyMs?: number) => Buffer.from(JSON.stringify({ op: 'stats', ...(everyMs === undefined ? {} : { everyMs }) }));
  const statsSent = (sent: Array<Record<string, unknown>>) => sent.filter((m) => m.kind === 'stats').length;

  it('each stats request replaces the one in force: a one-shot sends the counts once and stops the periodic ones (docs/stream.md)', async () => {
    const { ctx } = slowTable(0, 0, 0);
    const { socket, sent } = fakeSocket();
    const session = new StreamSession(socket, ctx);
    try {
      session.onFrame(statsFrame(250), false);
      await sleep(600); // now, then at 250 and 500 ms
      const periodic = statsSent(sent);
      assert.ok(periodic >= 2, `${periodic} stats from everyMs 250 in 600 ms`);
      session.onFrame(statsFrame(), false);
      await sleep(50);
      assert.equal(statsSent(sent), periodic + 1, 'the one-shot is answered at once');
      await sleep(700);
      assert.equal(statsSent(sent), periodic + 1, 'no periodic stats after the one-shot');
    } finally {
      session.dispose();
    }
  });
});
