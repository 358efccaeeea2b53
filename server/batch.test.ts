/**
 * `POST /v1/jobs/batch` on SQLite and on the real MariaDB: per-item results
 * in order (created, existing, conflict, unknown type, invalid item) with
 * exactly the valid items written; a malformed batch writes nothing; 1,000
 * items in one call; user-chosen names like `__proto__`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { requireMysql } from '../tests/helpers/mysql.js';
import { buildApp, type AppDeps } from './app.js';
import { failedItem } from './routes/submit-batch.js';
import type { BatchResult, JobDetail } from './schemas.js';
import { monotonicFactory } from 'ulid';
import { AtsError } from '../engine/errors.js';
import { TransitionService } from '../engine/transitions.js';
import { randomQueue, startSqliteTestApp, startTestApp, testClock, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();
const KNOWN = ['demo.echo', '__proto__', 'constructor'];

function batchSuite(name: string, start: (o: Partial<AppDeps>) => Promise<TestApp>, skip: string | false) {
  describe(`POST /v1/jobs/batch (${name})`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await start({ knownTypes: () => KNOWN });
    });
    after(async () => {
      await t?.close();
    });

    const batch = async (jobs: unknown) => {
      const r = await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs } });
      assert.equal(r.statusCode, 200, r.body);
      return (r.json() as { results: BatchResult[] }).results;
    };
    const get = async (id: string) => (await t.app.inject({ url: `/v1/jobs/${id}` })).json() as JobDetail;
    /** Rows in the jobs table, recounted from the rows themselves. */
    const rows = async (queue?: string) =>
      (await t.store.recountJobs()).filter((c) => queue === undefined || c.queue === queue).reduce((n, c) => n + c.n, 0);

    test('a mixed batch: each item gets its own answer, in order, and exactly the valid ones are written', async () => {
      const queue = randomQueue();
      const a = { type: 'demo.echo', payload: { a: 1 }, queue };
      const first = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: a, headers: { 'idempotency-key': 'k1' } });
      assert.equal(first.statusCode, 201, first.body);
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = [deep];
      const results = await batch([
        { ...a, idempotencyKey: 'k1' }, // 0: the job the header-keyed submit created
        { type: 'demo.echo', payload: { b: 2 }, queue }, // 1: created
        { ...a, payload: { a: 2 }, idempotencyKey: 'k1' }, // 2: same key, other body
        { type: 'nope.type', payload: 1, queue }, // 3: no handler
        { type: 'demo.echo', queue }, // 4: no payload
        { type: 'demo.echo', payload: deep, queue }, // 5: too deep
        { type: 'demo.echo', payload: 1, queue, backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }, // 6
        { type: 'demo.echo', payload: 'x', queue, idempotencyKey: 'k2' }, // 7: created
        { type: 'demo.echo', payload: 'x', queue, idempotencyKey: 'k2' }, // 8: the job item 7 created
        { type: 'demo.echo', payload: 'y', queue, idempotencyKey: 'k2' }, // 9: conflicts with item 7
        null, // 10
        { type: 'demo.echo', payload: 1, queue, colour: 'red' }, // 11: unknown field
        { type: 'demo.echo', payload: 1, queue, idempotencyKey: ' padded ' }, // 12: key not allowed
      ]);
      assert.equal(results.length, 13);
      assert.deepEqual(results.map((r) => r.status), [200, 201, 409, 422, 400, 400, 400, 201, 200, 409, 400, 400, 400]);
      assert.deepEqual(results[0], { status: 200, id: first.json().id, state: 'pending' });
      assert.equal(results[2]!.code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
      assert.match(results[2]!.message!, new RegExp(`body/jobs/2: .*${first.json().id}`));
      assert.equal(results[3]!.code, 'ATS_ERR_UNKNOWN_JOB_TYPE');
      for (const i of [4, 5, 6, 10, 11, 12]) {
        assert.equal(results[i]!.code, 'ATS_ERR_VALIDATION', JSON.stringify(results[i]));
        assert.match(results[i]!.message!, new RegExp(`^body/jobs/${i}`), 'the message names the item');
      }
      assert.match(results[4]!.message!, /payload/);
      assert.match(results[11]!.message!, /colour/);
      assert.equal(results[8]!.id, results[7]!.id);
      assert.equal(results[9]!.code, 'ATS_ERR_IDEMPOTENCY_CONFLICT');
      for (const i of [1, 7]) assert.deepEqual(Object.keys(results[i]!).sort(), ['id', 'state', 'status']);
      for (const i of [2, 3, 4]) assert.deepEqual(Object.keys(results[i]!).sort(), ['code', 'message', 'status']);

      assert.equal(await rows(queue), 3, 'the first submit, item 1 and item 7');
      const created = await get(results[1]!.id!);
      assert.deepEqual([created.payload, created.queue, created.maxAttempts, created.idempotencyKey], [{ b: 2 }, queue, 3, null]);
      assert.deepEqual(created.events.map((e) => e.type), ['SUBMITTED']);
      assert.equal((await get(results[7]!.id!)).idempotencyKey, 'k2');
    });

    test('an item whose key\'s holder cannot be read once the batch committed is its own 503; the items written are answered as written', async () => {
      const queue = randomQueue();
      const key = `held-${queue}`;
      const held = await batch([{ type: 'demo.echo', payload: { n: 0 }, queue, idempotencyKey: key }]);
      assert.equal(held[0]!.status, 201);
      // The database goes away after the batch's commit, as the taken key's holder is read.
      const blinking = new Proxy(t.store, {
        get(target, name, receiver) {
          if (name === 'findByIdempotencyKey') return async () => { throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'the database went away'); };
          const value = Reflect.get(target, name, receiver) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const ids = monotonicFactory();
      const transitions = new TransitionService({ store: blinking, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ids() } });
      const app = await buildApp({ ...t.deps, transitions });
      try {
        const r = await app.inject({
          method: 'POST', url: '/v1/jobs/batch',
          payload: { jobs: [{ type: 'demo.echo', payload: { n: 0 }, queue, idempotencyKey: key }, { type: 'demo.echo', payload: { n: 1 }, queue }] },
        });
        assert.equal(r.statusCode, 200, r.body);
        const [again, fresh] = (r.json() as { results: BatchResult[] }).results;
        assert.deepEqual([again!.status, again!.code], [503, 'ATS_ERR_STORE_UNAVAILABLE']);
        assert.equal(fresh!.status, 201);
        assert.deepEqual((await get(fresh!.id!)).payload, { n: 1 });
        assert.equal(await rows(queue), 2, 'the held job and the new item, once each');
      } finally {
        await app.close();
      }
    });

    test('results follow the order of the items', async () => {
      const queue = randomQueue();
      const results = await batch(Array.from({ length: 25 }, (_, i) => ({ type: 'demo.echo', payload: { i }, queue, priority: i % 7 })));
      for (const [i, r] of results.entries()) {
        assert.equal(r.status, 201);
        assert.deepEqual((await get(r.id!)).payload, { i });
      }
    });

    test('1,000 items in one call are all written', async () => {
      const queue = randomQueue();
      const results = await batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'demo.echo', payload: { i }, queue, idempotencyKey: `k-${i}` })));
      assert.equal(results.length, 1000);
      assert.ok(results.every((r) => r.status === 201));
      assert.equal(new Set(results.map((r) => r.id)).size, 1000);
      assert.equal(await rows(queue), 1000);
      // The same batch again: every item is the job it created the first time.
      const again = await batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'demo.echo', payload: { i }, queue, idempotencyKey: `k-${i}` })));
      assert.deepEqual(again.map((r) => [r.status, r.id]), results.map((r) => [200, r.id]));
      assert.equal(await rows(queue), 1000);
    });

    test('__proto__ and constructor as queue, type and idempotencyKey are names like any other', async () => {
      const item = (name: string) => ({ type: name, payload: { name }, queue: name, idempotencyKey: name });
      const results = await batch([item('__proto__'), item('__proto__'), item('constructor'), { ...item('constructor'), payload: 2 }]);
      assert.deepEqual(results.map((r) => r.status), [201, 200, 201, 409]);
      assert.equal(results[1]!.id, results[0]!.id);
      const job = await get(results[0]!.id!);
      assert.deepEqual([job.type, job.queue, job.idempotencyKey], ['__proto__', '__proto__', '__proto__']);
      assert.equal(await rows('__proto__'), 1);
      assert.equal(await rows('constructor'), 1);
      assert.equal(({} as Record<string, unknown>).payload, undefined, 'no prototype was touched');
    });

    const malformed: Array<[string, InjectOptions, number, string]> = [
      ['a body that is an array', { payload: '[]' }, 400, 'ATS_ERR_VALIDATION'],
      ['jobs missing', { payload: '{}' }, 400, 'ATS_ERR_VALIDATION'],
      ['jobs not an array', { payload: '{"jobs":{"0":{"type":"demo.echo","payload":1}}}' }, 400, 'ATS_ERR_VALIDATION'],
      ['no jobs', { payload: '{"jobs":[]}' }, 400, 'ATS_ERR_VALIDATION'],
      ['1,001 jobs', { payload: JSON.stringify({ jobs: Array.from({ length: 1001 }, () => ({ type: 'demo.echo', payload: 1 })) }) }, 400, 'ATS_ERR_VALIDATION'],
      ['a field beside jobs', { payload: '{"jobs":[{"type":"demo.echo","payload":1}],"atomic":true}' }, 400, 'ATS_ERR_VALIDATION'],
      ['a __proto__ key in an item', { payload: '{"jobs":[{"type":"demo.echo","payload":1},{"type":"demo.echo","payload":{"__proto__":{"x":1}}}]}' }, 400, 'ATS_ERR_VALIDATION'],
      ['an integer a JSON number does not keep in an item', { payload: '{"jobs":[{"type":"demo.echo","payload":1},{"type":"demo.echo","payload":{"n":9007199254740993}}]}' }, 400, 'ATS_ERR_VALIDATION'],
      ['broken JSON', { payload: '{"jobs":[{"type":"demo.echo","payload":1}' }, 400, 'ATS_ERR_MALFORMED_JSON'],
    ];
    for (const [what, req, status, code] of malformed) {
      test(`a malformed batch (${what}) is a ${status} ${code} and writes nothing`, async () => {
        const before = await rows();
        const r = await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', headers: { 'content-type': 'application/json' }, ...req });
        assert.equal(r.statusCode, status, r.body);
        assert.equal(r.json().code, code);
        assert.equal(await rows(), before);
      });
    }

    test('limits: a batch over the batch limit is a 413; an item over the one-job limit is that item\'s 413', async () => {
      const app = await buildApp({ ...t.deps, limits: { bodyLimitBytes: 1024, batchBodyLimitBytes: 8 * 1024 } });
      try {
        const queue = randomQueue();
        const small = { type: 'demo.echo', payload: 'x', queue };
        const over = await app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: Array.from({ length: 200 }, () => small) } });
        assert.equal(over.statusCode, 413, over.body);
        assert.equal(over.json().code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
        assert.equal(await rows(queue), 0);
        // The batch may be larger than bodyLimitBytes; each job may not.
        const jobs = [...Array.from({ length: 20 }, () => small), { ...small, payload: 'y'.repeat(2000) }];
        const r = await app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs } });
        assert.equal(r.statusCode, 200, r.body);
        const results = (r.json() as { results: BatchResult[] }).results;
        assert.deepEqual(results.slice(0, 20).map((x) => x.status), Array(20).fill(201));
        assert.equal(results[20]!.status, 413);
        assert.equal(results[20]!.code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
        assert.equal(await rows(queue), 20);
      } finally {
        await app.close();
      }
    });

    test('an item answers as POST /v1/jobs answers its job with its key as the header: its key is not part of the job\'s size, and a job over the limit is 413 first', async () => {
      const LIMIT = 1024;
      const app = await buildApp({ ...t.deps, limits: { bodyLimitBytes: LIMIT } });
      try {
        const queue = randomQueue();
        const key = (c: string) => `${c}-${randomQueue()}`.padEnd(255, c);
        /** A job whose body (compact JSON, as inject sends it) is `bytes` long. */
        const sized = (bytes: number): Record<string, unknown> => {
          const job = { type: 'demo.echo', queue, payload: '' };
          return { ...job, payload: 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(job))) };
        };
        let deep: unknown = 1;
        for (let i = 0; i < 40; i++) deep = [deep];
        const nested = 200_000; // far deeper than JSON.stringify can recurse
        const hugeDeep = `{"type":"demo.echo","queue":"${queue}","payload":${'['.repeat(nested)}${']'.repeat(nested)}}`;
        const cases: Array<[string, Record<string, unknown> | string, ((c: string) => string) | undefined, number, string | undefined]> = [
          ['a job of exactly the limit, with a 255-character key', sized(LIMIT), key, 201, undefined],
          ['a job of exactly the limit', sized(LIMIT), undefined, 201, undefined],
          ['a job one byte over the limit', sized(LIMIT + 1), undefined, 413, 'ATS_ERR_PAYLOAD_TOO_LARGE'],
          ['a job over the limit without a type', { queue, payload: 'y'.repeat(LIMIT) }, undefined, 413, 'ATS_ERR_PAYLOAD_TOO_LARGE'],
          ['a job over the limit with a reserved key', sized(LIMIT + 1), () => 'ats:mine', 413, 'ATS_ERR_PAYLOAD_TOO_LARGE'],
          ['a job over the limit, nested too deep', { type: 'demo.echo', queue, payload: [deep, 'y'.repeat(LIMIT)] }, undefined, 413, 'ATS_ERR_PAYLOAD_TOO_LARGE'],
          ['a job far over the limit, nested 200,000 deep', hugeDeep, undefined, 413, 'ATS_ERR_PAYLOAD_TOO_LARGE'],
          ['an unknown type, nested too deep', { type: 'nope.type', queue, payload: deep }, undefined, 422, 'ATS_ERR_UNKNOWN_JOB_TYPE'],
          ['a reserved key, nested too deep', { type: 'demo.echo', queue, payload: deep }, () => 'ats:mine', 400, 'ATS_ERR_VALIDATION'],
        ];
        for (const [what, job, keyOf, status, code] of cases) {
          const raw = typeof job === 'string' ? job : JSON.stringify(job);
          const single = await app.inject({
            method: 'POST', url: '/v1/jobs', payload: raw,
            headers: { 'content-type': 'application/json', ...(keyOf ? { 'idempotency-key': keyOf('s') } : {}) },
          });
          const item = keyOf ? `${raw.slice(0, -1)},"idempotencyKey":${JSON.stringify(keyOf('b'))}}` : raw;
          const r = await app.inject({ method: 'POST', url: '/v1/jobs/batch', headers: { 'content-type': 'application/json' }, payload: `{"jobs":[${item}]}` });
          assert.equal(r.statusCode, 200, `${what}: ${r.body.slice(0, 300)}`);
          const [result] = (r.json() as { results: BatchResult[] }).results;
          assert.deepEqual([single.statusCode, single.json().code], [status, code], `${what}, POST /v1/jobs: ${single.body.slice(0, 300)}`);
          assert.deepEqual([result!.status, result!.code], [status, code], `${what}, in a batch: ${JSON.stringify(result).slice(0, 300)}`);
          if (status === 400) {
            assert.match(single.json().message, /^headers\/idempotency-key must not start with 'ats:'/);
            assert.match(result!.message ?? '', /^body\/jobs\/0\/idempotencyKey must not start with 'ats:'/);
          }
        }
        assert.equal(await rows(queue), 4, 'the two jobs of the limit, each sent alone and in a batch');
      } finally {
        await app.close();
      }
    });
  });
}

batchSuite('SQLite', startSqliteTestApp, false);
batchSuite('MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)');

describe('POST /v1/jobs/batch: an item that failed after the commit', () => {
  test('answers as the error handler would alone: a 5xx with its registry message, never the words of what went wrong inside', () => {
    const inside = new AtsError('ATS_ERR_INTERNAL', 'ER_LOCK_DEADLOCK at /var/lib/ats/ats.sqlite (SELECT * FROM jobs ...)');
    assert.deepEqual(failedItem(inside), { status: 500, code: 'ATS_ERR_INTERNAL', message: 'Internal error' });
    assert.deepEqual(failedItem(new Error('a TypeError of a bug')), { status: 500, code: 'ATS_ERR_INTERNAL', message: 'Internal error' });
    const down = new AtsError('ATS_ERR_NOT_READY', 'The database is not reachable');
    assert.deepEqual(failedItem(down), { status: 503, code: 'ATS_ERR_NOT_READY', message: 'The database is not reachable' });
    const conflict = new AtsError('ATS_ERR_VALIDATION', 'body/jobs/3/type must be a string');
    assert.deepEqual(failedItem(conflict), { status: 400, code: 'ATS_ERR_VALIDATION', message: 'body/jobs/3/type must be a string' });
  });
});
