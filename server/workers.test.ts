/**
 * Worker presence over REST: `GET /v1/workers` lists the registry with `live`
 * computed against the clock, and `GET /v1/stats` says which waiting job
 * types no live worker handles (`unserved`); an app without the registry
 * serves neither. SQLite (the embedded store).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AtsError } from '../engine/errors.js';
import type { WorkerRecord } from '../engine/ports.js';
import { PRESENCE_TTL_MS } from '../engine/worker-presence.js';
import { buildApp } from './app.js';
import { randomQueue, startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';

type Unserved = { type: string; queue: string; waiting: number };

/** A worker record seen `agoMs` before now. */
const worker = (id: string, agoMs: number, over: Partial<WorkerRecord> = {}): WorkerRecord => {
  const now = Date.now();
  return {
    id, host: 'host-a', pid: 4242, queues: ['*'], types: ['demo.echo'], concurrency: 8,
    startedAt: now - agoMs - 60_000, lastSeenAt: now - agoMs, ...over,
  };
};

describe('GET /v1/workers and unserved in /v1/stats', () => {
  let t: TestApp;
  before(async () => {
    t = await startSqliteTestApp();
  });
  after(async () => {
    await t?.close();
  });

  const workers = async () => {
    const r = await t.app.inject({ url: '/v1/workers' });
    assert.equal(r.statusCode, 200, r.body);
    return (r.json() as { workers: Array<Record<string, unknown>> }).workers;
  };
  const unserved = async (): Promise<Unserved[]> => {
    const r = await t.app.inject({ url: '/v1/stats' });
    assert.equal(r.statusCode, 200, r.body);
    const body = r.json() as { unserved?: Unserved[] };
    assert.ok(Array.isArray(body.unserved), `unserved is a list: ${r.body}`);
    return body.unserved;
  };
  const submit = async (type: string, queue: string) => {
    const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type, payload: {}, queue } });
    assert.equal(r.statusCode, 201, r.body);
  };

  test('no worker registered: an empty list', async () => {
    assert.deepEqual(await workers(), []);
  });

  test('a worker seen just now is listed live, with ISO times; one unseen for longer than the TTL is not live', async () => {
    const fresh = worker('w-fresh', 0, { host: 'host-b', pid: 7, types: ['demo.echo', 'email.send'], concurrency: 4 });
    const stale = worker('w-stale', PRESENCE_TTL_MS + 5_000);
    await t.store.upsertWorker(stale);
    await t.store.upsertWorker(fresh);
    const list = await workers();
    assert.deepEqual(list.map((w) => w.id), ['w-fresh', 'w-stale'], 'by id');
    assert.deepEqual(list[0], {
      id: 'w-fresh', host: 'host-b', pid: 7, queues: ['*'], types: ['demo.echo', 'email.send'], concurrency: 4,
      startedAt: new Date(fresh.startedAt).toISOString(), lastSeenAt: new Date(fresh.lastSeenAt).toISOString(), live: true,
    });
    assert.equal(list[1]!.live, false);
    assert.equal(list[1]!.lastSeenAt, new Date(stale.lastSeenAt).toISOString());
    // The fresh one ages past the TTL without a new write: no longer live.
    await t.store.upsertWorker({ ...fresh, lastSeenAt: Date.now() - PRESENCE_TTL_MS - 1 });
    assert.deepEqual((await workers()).map((w) => [w.id, w.live]), [['w-fresh', false], ['w-stale', false]]);
    await t.store.deleteWorker('w-fresh');
    await t.store.deleteWorker('w-stale');
    assert.deepEqual(await workers(), []);
  });

  test('unserved: a waiting job whose type no live worker handles, until a live worker lists its type', async () => {
    const queue = randomQueue();
    const type = `t.unserved-${queue}`;
    await submit(type, queue);
    await submit(type, queue);
    const mine = async () => (await unserved()).filter((u) => u.queue === queue);
    assert.deepEqual(await mine(), [{ type, queue, waiting: 2 }]);
    // A worker for other types, or one for this type that is no longer live, does not serve it.
    await t.store.upsertWorker(worker('w-other', 0, { types: ['demo.echo'] }));
    await t.store.upsertWorker(worker('w-gone', PRESENCE_TTL_MS + 1_000, { types: [type] }));
    assert.deepEqual(await mine(), [{ type, queue, waiting: 2 }]);
    // A live worker listing the type (every queue) serves it.
    await t.store.upsertWorker(worker('w-this', 0, { types: ['demo.echo', type] }));
    assert.deepEqual(await mine(), []);
    for (const id of ['w-other', 'w-gone', 'w-this']) await t.store.deleteWorker(id);
    assert.deepEqual(await mine(), [{ type, queue, waiting: 2 }]);
  });

  test('a job type named after an Object.prototype member is unserved like any other', async () => {
    const queue = randomQueue();
    await submit('constructor', queue);
    assert.deepEqual((await unserved()).filter((u) => u.queue === queue), [{ type: 'constructor', queue, waiting: 1 }]);
    await t.store.upsertWorker(worker('__proto__', 0, { types: ['constructor'] }));
    assert.deepEqual((await unserved()).filter((u) => u.queue === queue), []);
    assert.ok((await workers()).some((w) => w.id === '__proto__' && w.live === true));
    await t.store.deleteWorker('__proto__');
  });

  test('a failed read of the registry: /v1/workers and /v1/stats answer 503 ATS_ERR_STORE_UNAVAILABLE', async () => {
    const down = { listWorkers: async (): Promise<WorkerRecord[]> => { throw new AtsError('ATS_ERR_STORE_UNAVAILABLE'); } };
    const app = await buildApp({ ...t.deps, workers: down });
    try {
      for (const url of ['/v1/workers', '/v1/stats']) {
        const r = await app.inject({ url });
        assert.equal(r.statusCode, 503, `${url}: ${r.body}`);
        assert.equal(r.json().code, 'ATS_ERR_STORE_UNAVAILABLE', url);
        assert.ok(r.headers['retry-after'], `${url} carries Retry-After`);
      }
    } finally {
      await app.close();
    }
  });

  test('an app without the registry serves no /v1/workers and no unserved', async () => {
    await submit('t.no-registry', randomQueue());
    const app = await buildApp({ ...t.deps, workers: undefined });
    try {
      const r = await app.inject({ url: '/v1/workers' });
      assert.equal(r.statusCode, 404);
      assert.equal(r.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
      const stats = await app.inject({ url: '/v1/stats' });
      assert.equal(stats.statusCode, 200, stats.body);
      assert.equal('unserved' in stats.json(), false);
      const doc = (await app.inject({ url: '/docs/json' })).json() as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
      assert.equal(doc.paths['/v1/workers'], undefined);
      assert.equal(doc.components.schemas.Worker, undefined, 'no unused component');
    } finally {
      await app.close();
    }
  });
});
