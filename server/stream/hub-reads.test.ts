/**
 * The clients' own reads (pages of a replay, cursor checks) share the hub's
 * `clientReadsInFlight` slots. A read is worth its slot only while the
 * subscription that asked for it stands: a client that closed (or whose
 * subscription a newer one replaced) while its read waited for a slot must
 * not have it run, or a churn of connections queues reads no one will use
 * ahead of those of the clients still connected. And every read of a cursor
 * check takes a slot, the highest-id-issued read included.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../engine/logger.js';
import type { StreamEventRecord } from '../../engine/ports.js';
import { testClock } from '../../tests/helpers/app.js';
import { encodeStreamCursor } from './cursor.js';
import { StreamHub, type HubDeps } from './hub.js';
import { compileStreamOptions } from './options.js';

const LAST = 1000;
const READ_MS = 20;

const row = (id: number): StreamEventRecord => ({
  id, jobId: `job-${id}`, seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at: 0, data: {}, jobType: 't', queue: 'q', tenant: 'default',
} as unknown as StreamEventRecord);

/** A table of ids 1..LAST whose reads take READ_MS; counts the clients' reads (the tail does not run) and how many overlap. */
function slowStore() {
  const counts = { reads: 0, issued: 0, now: 0, most: 0 };
  const held = async <T>(fn: () => T): Promise<T> => {
    counts.most = Math.max(counts.most, ++counts.now);
    try {
      await sleep(READ_MS);
      return fn();
    } finally {
      counts.now--;
    }
  };
  const store: HubDeps['store'] = {
    readEventsAfter: (afterId, limit) => {
      counts.reads++;
      return held(() => {
        const rows: StreamEventRecord[] = [];
        for (let id = afterId + 1; id <= LAST && rows.length < limit; id++) rows.push(row(id));
        return rows;
      });
    },
    lastEventId: async () => LAST,
    // Ids above LAST were handed out (and their events deleted since): a cursor up to 2 * LAST is one a server issued.
    lastIssuedEventId: () => {
      counts.issued++;
      return held(() => 2 * LAST);
    },
    stats: async () => ({ byState: {}, byType: {}, byQueue: {} }) as never,
  };
  return { store, counts };
}

/** The part of a ws WebSocket the hub uses. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Array<Record<string, unknown>> = [];
  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  close(): void {
    this.drop();
  }
  terminate(): void {
    this.drop();
  }
  ping(): void {}
  /** The connection ends (an abnormal close: no close frame). */
  drop(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit('close', 1006, Buffer.alloc(0));
  }
}

async function hubOver(store: HubDeps['store']): Promise<StreamHub> {
  const opts = compileStreamOptions({ startupRewindIds: 0, clientReadsInFlight: 1, replayPageSize: 100 });
  const hub = new StreamHub({ store, clock: testClock, logger: silentLogger }, opts);
  await hub.tail.init(); // the horizon at LAST, without the tail running
  return hub;
}

const accept = (hub: StreamHub, cursor: number) => {
  const socket = new FakeSocket();
  hub.accept(socket as never, { cursor: encodeStreamCursor(cursor) });
  return socket;
};

describe('the clients\' reads of a stream hub', () => {
  it('a client that closed while its read waited for a slot costs no read', async () => {
    const { store, counts } = slowStore();
    const hub = await hubOver(store);
    // Twenty clients replaying from the start, their first pages waiting for the one slot; all but the first drop.
    const sockets = Array.from({ length: 20 }, () => accept(hub, 0));
    const [kept, ...gone] = sockets;
    for (const s of gone) s.drop();
    assert.equal(hub.size, 1);
    const deadline = Date.now() + 5000;
    while (!kept!.sent.some((m) => m.kind === 'event' && m.cursor === encodeStreamCursor(LAST))) {
      assert.ok(Date.now() < deadline, 'the client still connected gets its whole replay');
      await sleep(5);
    }
    // Its 10 pages, and at most the one read already under way when the others dropped.
    assert.ok(counts.reads <= 11, `${counts.reads} reads for one client's 10 pages`);
    kept!.drop();
  });

  it('a cursor check reads within the slots, the highest-id-issued read included', async () => {
    const { store, counts } = slowStore();
    const hub = await hubOver(store);
    // Cursors above every row (their events deleted) but issued: each check reads the row, then the highest id issued.
    const sockets = Array.from({ length: 8 }, (_, i) => accept(hub, LAST + 1 + i));
    const deadline = Date.now() + 5000;
    while (!sockets.every((s) => s.sent.some((m) => m.kind === 'subscribed'))) {
      assert.ok(Date.now() < deadline, 'every client is subscribed');
      await sleep(5);
    }
    assert.equal(counts.issued, 8);
    assert.equal(counts.most, 1, 'reads under way at once, with clientReadsInFlight 1');
    for (const s of sockets) s.drop();
  });
});
