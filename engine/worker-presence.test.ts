/**
 * Worker presence: which waiting jobs no live worker handles (pure), and a
 * worker's row kept, aged and removed on both SQL stores.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STORE_BACKENDS } from '../tests/helpers/stores.js';
import { silentLogger } from './logger.js';
import { systemClock } from './system.js';
import type { Clock, JobCount, WorkerRecord } from './ports.js';
import { settlesWithin } from './loop.js';
import { ALL_QUEUES, isLive, PRESENCE_INTERVAL_MS, PRESENCE_PURGE_MS, PRESENCE_TTL_MS, unserved, WorkerPresence } from './worker-presence.js';

const NOW = 10_000_000;
const worker = (o: Partial<WorkerRecord> = {}): WorkerRecord => ({
  id: 'w1', host: 'h', pid: 1, queues: ['*'], types: ['email.send'], concurrency: 10, startedAt: NOW - 60_000, lastSeenAt: NOW, ...o,
});
const count = (type: string, queue: string, state: JobCount['state'], n: number): JobCount => ({ type, queue, state, n });

describe('unserved', () => {
  it('lists waiting jobs (pending, published) whose type no live worker handles, per type and queue', () => {
    const counts = [
      count('email.send', 'default', 'pending', 3), count('report.build', 'reports', 'pending', 2), count('report.build', 'reports', 'published', 5),
      count('report.build', 'reports', 'running', 1), count('report.build', 'reports', 'done', 9), count('thumb.make', 'default', 'retrying', 4),
      count('__proto__', 'constructor', 'pending', 1),
    ];
    assert.deepEqual(unserved(counts, [worker()], NOW), [
      { type: '__proto__', queue: 'constructor', waiting: 1 },
      { type: 'report.build', queue: 'reports', waiting: 7 },
    ]);
  });

  it('a worker unseen for longer than the TTL serves nothing; one that lists the type and serves the queue does', () => {
    const counts = [count('email.send', 'mail', 'pending', 3)];
    const stale = worker({ lastSeenAt: NOW - PRESENCE_TTL_MS - 1 });
    assert.equal(isLive(stale, NOW), false);
    assert.equal(isLive(worker({ lastSeenAt: NOW - PRESENCE_TTL_MS }), NOW), true);
    assert.deepEqual(unserved(counts, [stale], NOW), [{ type: 'email.send', queue: 'mail', waiting: 3 }]);
    assert.deepEqual(unserved(counts, [stale, worker({ id: 'w2' })], NOW), []);
    assert.deepEqual(unserved(counts, [worker({ queues: ['other'] })], NOW), [{ type: 'email.send', queue: 'mail', waiting: 3 }]);
    assert.deepEqual(unserved(counts, [worker({ queues: ['other', 'mail'] })], NOW), []);
    assert.deepEqual(unserved(counts, [], NOW), [{ type: 'email.send', queue: 'mail', waiting: 3 }], 'no worker at all');
  });

  it('a queue no live worker serves is unserved even while workers handle the type for other queues', () => {
    const counts = [
      count('email.send', 'email', 'published', 2), count('email.send', 'nobody', 'pending', 1), count('email.send', 'nobody', 'published', 4),
      count('email.send', 'reports', 'running', 1),
    ];
    const workers = [worker({ id: 'e', queues: ['email'] }), worker({ id: 'r', queues: ['reports'], types: ['email.send', 'report.build'] })];
    assert.deepEqual(unserved(counts, workers, NOW), [{ type: 'email.send', queue: 'nobody', waiting: 5 }]);
    // The queue is served, but by a worker without the type: still unserved.
    assert.deepEqual(unserved(counts, [...workers, worker({ id: 'n', queues: ['nobody'], types: ['report.build'] })], NOW), [
      { type: 'email.send', queue: 'nobody', waiting: 5 },
    ]);
    // A stale worker serving the queue serves nothing; a live one serving every queue serves it.
    assert.deepEqual(unserved(counts, [...workers, worker({ id: 's', queues: ['nobody'], lastSeenAt: NOW - PRESENCE_TTL_MS - 1 })], NOW).length, 1);
    assert.deepEqual(unserved(counts, [...workers, worker({ id: 'all', queues: ['*'] })], NOW), []);
    // '*' is the every-queue marker, not a queue name that matches itself only.
    assert.deepEqual(unserved([count('email.send', '*', 'pending', 1)], [worker({ queues: ['email'] })], NOW), [{ type: 'email.send', queue: '*', waiting: 1 }]);
  });
});

for (const backend of STORE_BACKENDS) {
  it(`${backend.name}: a worker's row is written at start, refreshed by each beat, removed on stop; rows unseen for an hour are purged`, async () => {
    const { store, cleanup } = await backend.open();
    try {
      await store.migrate();
      let t = NOW;
      const sleeps: number[] = [];
      const clock: Clock = { now: () => t, sleep: (ms, signal) => (sleeps.push(ms), new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)))) };
      const types = ['b.type', 'a.type'];
      const presence = new WorkerPresence({ store, clock, logger: silentLogger }, { id: 'host-1-42', host: 'host-1', pid: 42, concurrency: 50, types: () => types });
      await store.upsertWorker(worker({ id: 'ghost', lastSeenAt: NOW - PRESENCE_PURGE_MS - 1 }));
      await store.upsertWorker(worker({ id: 'recent', lastSeenAt: NOW - PRESENCE_TTL_MS - 1 }));
      await presence.start();
      assert.deepEqual(sleeps, [PRESENCE_INTERVAL_MS], 'the heartbeat waits one interval');
      assert.deepEqual(await store.listWorkers(), [
        { id: 'host-1-42', host: 'host-1', pid: 42, queues: ['*'], types: ['a.type', 'b.type'], concurrency: 50, startedAt: NOW, lastSeenAt: NOW },
        worker({ id: 'recent', lastSeenAt: NOW - PRESENCE_TTL_MS - 1 }),
      ], 'the ghost purged, a stale worker kept (listed as not live)');
      t += 7_000;
      types.push('c.type');
      await presence.beat();
      const [me] = (await store.listWorkers()).filter((w) => w.id === 'host-1-42');
      assert.equal(me!.lastSeenAt, NOW + 7_000);
      assert.equal(me!.startedAt, NOW);
      assert.deepEqual(me!.types, ['a.type', 'b.type', 'c.type']);
      await presence.stop();
      assert.deepEqual((await store.listWorkers()).map((w) => w.id), ['recent']);
    } finally {
      await cleanup();
    }
  });

  it(`${backend.name}: a worker's row holds thousands of job types and queues`, async () => {
    const { store, cleanup } = await backend.open();
    try {
      await store.migrate();
      // 3,000 types of 40 characters: 129 KB of JSON, twice what a MySQL TEXT column holds.
      const types = Array.from({ length: 3000 }, (_, i) => `billing.invoice.render.${String(i).padStart(17, '0')}`);
      const queues = types.map((t) => `q.${t}`);
      await store.upsertWorker(worker({ id: 'many', types, queues }));
      const [row] = await store.listWorkers();
      assert.deepEqual([row!.types.length, row!.queues.length, row!.types.at(-1), row!.queues[0]], [3000, 3000, types.at(-1), queues[0]]);
    } finally {
      await cleanup();
    }
  });

  it(`${backend.name}: a worker's row lists the queues it serves, or '*' when it serves every queue`, async () => {
    const { store, cleanup } = await backend.open();
    try {
      await store.migrate();
      const clock: Clock = { now: () => NOW, sleep: (_ms, signal) => new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason))) };
      const base = { host: 'h', pid: 1, concurrency: 2, types: () => ['email.send'] };
      const started = [
        new WorkerPresence({ store, clock, logger: silentLogger }, { ...base, id: 'w-email', queues: ['email'] }),
        new WorkerPresence({ store, clock, logger: silentLogger }, { ...base, id: 'w-two', queues: ['email', 'reports'] }),
        new WorkerPresence({ store, clock, logger: silentLogger }, { ...base, id: 'w-empty', queues: [] }),
        new WorkerPresence({ store, clock, logger: silentLogger }, { ...base, id: 'w-all' }),
      ];
      for (const p of started) await p.start();
      const queuesOf = Object.fromEntries((await store.listWorkers()).map((w) => [w.id, w.queues]));
      assert.deepEqual(queuesOf, { 'w-all': [ALL_QUEUES], 'w-email': ['email'], 'w-empty': [ALL_QUEUES], 'w-two': ['email', 'reports'] });
      const counts = [count('email.send', 'reports', 'pending', 1), count('email.send', 'nobody', 'published', 2)];
      await started[3]!.stop();
      await started[2]!.stop();
      assert.deepEqual(unserved(counts, await store.listWorkers(), NOW), [{ type: 'email.send', queue: 'nobody', waiting: 2 }]);
      for (const p of started.slice(0, 2)) await p.stop();
    } finally {
      await cleanup();
    }
  });
}

describe('WorkerPresence: a heartbeat failing while the database is down', () => {
  it('logs the first failure, not every beat, then once that it works again', async () => {
    const lines: Array<[string, string, unknown]> = [];
    const logger = {
      ...silentLogger,
      warn: (msg: string, fields?: Record<string, unknown>) => void lines.push(['warn', msg, fields?.failures]),
      info: (msg: string, fields?: Record<string, unknown>) => void lines.push(['info', msg, fields?.failures]),
    };
    let now = 1_000_000;
    let down = true;
    const fail = async () => {
      if (down) throw new Error('The database is not reachable');
    };
    const store = { upsertWorker: fail, purgeWorkers: fail, deleteWorker: fail, listWorkers: async () => [] } as unknown as ConstructorParameters<typeof WorkerPresence>[0]['store'];
    const clock: Clock = { now: () => now, sleep: () => new Promise(() => {}) };
    const presence = new WorkerPresence({ store, clock, logger }, { id: 'w', host: 'h', pid: 1, concurrency: 1, types: () => [] });
    for (let i = 0; i < 6; i++) {
      await presence.beat();
      now += PRESENCE_INTERVAL_MS;
    }
    down = false;
    await presence.beat();
    await presence.beat();
    assert.deepEqual(lines, [
      ['warn', 'workers: presence heartbeat failed, will retry', 1],
      ['info', 'workers: presence heartbeat works again', 6],
    ]);
  });
});

describe('WorkerPresence over a store that stops answering', () => {
  /** Rows by id; each call of a method in `held` waits until the test lets it go (`release`), or forever. */
  function heldStore() {
    const rows = new Map<string, WorkerRecord>();
    const held = new Set<'upsertWorker' | 'deleteWorker'>();
    const waiting: Array<() => void> = [];
    const hold = async () => new Promise<void>((resolve) => waiting.push(resolve));
    const store = {
      upsertWorker: async (w: WorkerRecord) => {
        if (held.has('upsertWorker')) await hold();
        rows.set(w.id, w);
      },
      deleteWorker: async (id: string) => {
        if (held.has('deleteWorker')) await hold();
        rows.delete(id);
      },
      purgeWorkers: async () => 0,
      listWorkers: async () => [...rows.values()],
    };
    return { store, rows, held, release: () => waiting.splice(0).forEach((r) => r()) };
  }
  const me = { id: 'w', host: 'h', pid: 1, concurrency: 1, types: () => ['t'] };

  it('stops without waiting for a row delete the store never answers', async () => {
    const s = heldStore();
    const presence = new WorkerPresence({ store: s.store, clock: systemClock, logger: silentLogger }, me);
    await presence.start();
    assert.equal(s.rows.size, 1);
    s.held.add('deleteWorker');
    assert.equal(await settlesWithin(presence.stop(), 5000), true, 'stop() resolves');
  });

  it('stops while the first write hangs, and deletes the row that write leaves once it lands', async () => {
    const s = heldStore();
    const presence = new WorkerPresence({ store: s.store, clock: systemClock, logger: silentLogger }, me);
    s.held.add('upsertWorker');
    const starting = presence.start();
    await new Promise((r) => setImmediate(r));
    assert.equal(await settlesWithin(presence.stop(), 5000), true, 'stop() resolves');
    assert.equal(s.rows.size, 0);
    // The store answers late: the write lands after the stop's delete.
    s.held.clear();
    s.release();
    await starting;
    for (let i = 0; i < 50 && s.rows.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.rows.size, 0, 'the row written after the stop is deleted');
  });
});
