/**
 * Queue and type names are user input, and some of them are also the names of
 * `Object.prototype`'s members. The stats (REST and stream) must count them
 * like any other name, and nothing the server does with them may change
 * `Object.prototype` (which would break every later request of the process).
 * Run on SQLite and on MariaDB, with the stream plugin mounted.
 */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { after, afterEach, before, describe, test } from 'node:test';
import { silentLogger } from '../engine/logger.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { buildApp } from './app.js';
import type { JobView } from './schemas.js';
import { streamPlugin } from './stream/index.js';
import { TestClient } from '../tests/helpers/stream.js';
import { startSqliteTestApp, startTestApp, testClock, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

/** Names that are members of `Object.prototype` (or its accessor), each used as a queue and as a type. */
export const RESERVED = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'] as const;

const protoKeys = () => Object.getOwnPropertyNames(Object.prototype).sort();
const PROTO_KEYS = protoKeys();

/** Own property of a parsed JSON object (`__proto__` included, as JSON.parse makes it one). */
const own = (o: unknown, k: string): unknown =>
  (typeof o === 'object' && o !== null ? Object.getOwnPropertyDescriptor(o, k)?.value : undefined);

for (const backend of ['sqlite', 'mariadb'] as const) {
  describe(`names of Object.prototype's members as queues and types (${backend})`, { skip: backend === 'mariadb' && !mysqlReady && 'MariaDB not reachable' }, () => {
    let t: TestApp;
    let app: FastifyInstance;
    let url = '';
    const clients: TestClient[] = [];

    before(async () => {
      const start = backend === 'sqlite' ? startSqliteTestApp : startTestApp;
      t = await start();
      // The same store and deps with the stream mounted (closed before `t.close()` closes the first app and the store).
      app = await buildApp({
        ...t.deps,
        plugins: [streamPlugin({ store: t.store, clock: testClock, logger: silentLogger })],
      });
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      url = `${address.replace(/^http/, 'ws')}/v1/stream`;
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await app?.close();
      await t?.close();
    });
    afterEach(() => {
      // Undo a pollution so that one failure does not cascade into every later test of the run.
      const added = protoKeys().filter((k) => !PROTO_KEYS.includes(k));
      for (const k of added) delete (Object.prototype as Record<string, unknown>)[k];
      assert.deepEqual(added, [], 'Object.prototype gained members');
    });

    const submit = (body: object) => app.inject({ method: 'POST', url: '/v1/jobs', payload: body });
    const created = async (body: object) => {
      const r = await submit(body);
      assert.equal(r.statusCode, 201, r.body);
      return r.json() as JobView;
    };

    test('a job in queue "__proto__", then GET /v1/stats: later submits and reads still work', async () => {
      const job = await created({ type: 't.proto', queue: '__proto__', payload: {} });
      const stats = await app.inject({ url: '/v1/stats' });
      assert.equal(stats.statusCode, 200, stats.body);
      const list = await app.inject({ url: '/v1/jobs' });
      const one = await app.inject({ url: `/v1/jobs/${job.id}` });
      const next = await submit({ type: 't.after', queue: 'plain', payload: {} });
      assert.deepEqual([next.statusCode, list.statusCode, one.statusCode], [201, 200, 200], `${next.body}\n${list.body}\n${one.body}`);
      assert.equal(({} as Record<string, unknown>).pending, undefined, 'Object.prototype.pending is set');
      assert.equal((one.json() as JobView).queue, '__proto__');
    });

    test('queues and types named after Object.prototype members appear in the stats with their counts', async () => {
      const before = (await app.inject({ url: '/v1/stats' })).json() as { byQueue: object; byType: object };
      const pendingIn = (o: object, k: string) => (own(own(o, k), 'pending') as number | undefined) ?? 0;
      const counts = new Map<string, number>();
      for (const [i, name] of RESERVED.entries()) {
        for (let n = 0; n <= i; n++) await created({ type: name, queue: name, payload: {} });
        counts.set(name, i + 1);
      }
      const r = await app.inject({ url: '/v1/stats' });
      assert.equal(r.statusCode, 200, r.body);
      const stats = r.json() as { byQueue: object; byType: object; total: number };
      for (const [name, n] of counts) {
        assert.equal(pendingIn(stats.byQueue, name) - pendingIn(before.byQueue, name), n, `byQueue[${name}]`);
        assert.equal(pendingIn(stats.byType, name) - pendingIn(before.byType, name), n, `byType[${name}]`);
      }
      // Nothing but states inside a count object (a polluted prototype would not show here, but a merged one would).
      for (const name of RESERVED) assert.deepEqual(Object.keys(own(stats.byQueue, name) as object), ['pending']);
    });

    test("the stream's stats count them too, and a subscription filters by them", async () => {
      const c = await TestClient.connect(url);
      clients.push(c);
      await c.subscribe({ queue: '__proto__' });
      const job = await created({ type: 'constructor', queue: '__proto__', payload: {} });
      await created({ type: 'constructor', queue: 'toString', payload: {} });
      await c.waitFor((ms) => ms.find((m) => m.kind === 'event' && m.jobId === job.id));
      assert.deepEqual([...new Set(c.events().map((e) => e.queue))], ['__proto__']);
      c.send({ op: 'stats' });
      const stats = await c.waitFor((ms) => ms.find((m) => m.kind === 'stats'));
      const rest = (await app.inject({ url: '/v1/stats' })).json() as { byQueue: object; byType: object };
      for (const name of RESERVED) {
        assert.deepEqual(own(stats.byQueue, name), own(rest.byQueue, name), `stream byQueue[${name}]`);
        assert.deepEqual(own(stats.byType, name), own(rest.byType, name), `stream byType[${name}]`);
      }
      assert.ok(own(stats.byQueue, '__proto__'), 'the stream shows queue __proto__');
    });
  });
}
