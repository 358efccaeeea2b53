/**
 * The database unreachable while clients are connected (MariaDB behind a TCP
 * proxy the test cuts): a live client is told once, with an
 * ATS_ERR_STORE_UNAVAILABLE error message, and its connection stays; a client
 * that subscribes live, or resumes from the live position, meanwhile is
 * told too; the tail retries at its error
 * backoff, not in a busy loop; once the database answers again the live
 * clients get what other processes committed meanwhile, no gap, no
 * duplicate, without reconnecting.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import { TransitionService } from '../../engine/transitions.js';
import type { JobStore } from '../../engine/ports.js';
import { randomQueue, testClock } from '../../tests/helpers/app.js';
import { createProxiedTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import type { TcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const mysqlUp = await requireMysql();
const ERROR_BACKOFF_MS = 100;

describe('the stream while its database is unreachable (MariaDB)', { skip: !mysqlUp && 'MariaDB not reachable' }, () => {
  let proxy: TcpProxy;
  let cleanup: () => Promise<void>;
  /** The instance's store, through the proxy; its event reads counted. */
  let reads = 0;
  /** Another process's store, straight to the database: it commits while the instance cannot read. */
  let direct: MysqlStore;
  let other: TransitionService;
  let instance: StreamInstance;
  const clients: TestClient[] = [];

  before(async () => {
    const t = await createProxiedTestStore({ poolSize: 4, connectTimeoutMs: 1000 });
    proxy = t.proxy;
    cleanup = t.cleanup;
    const proxied = t.store;
    const counted = Object.create(proxied) as JobStore;
    counted.readEventsAfter = (afterId, limit, throughId) => {
      reads++;
      return proxied.readEventsAfter(afterId, limit, throughId);
    };
    direct = await createMysqlStore({ url: t.db.url, poolSize: 2 });
    const ulid = monotonicFactory();
    other = new TransitionService({ store: direct, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() } });
    instance = await startStreamInstance({ store: counted, options: { errorBackoffMs: ERROR_BACKOFF_MS } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await instance?.close();
    await direct?.close();
    await cleanup?.();
  });

  const connect = async () => {
    const c = await TestClient.connect(instance.url);
    clients.push(c);
    return c;
  };

  it('tells live clients once, keeps them, and delivers what was committed meanwhile once it reads again', async () => {
    const q = randomQueue();
    const live = await connect();
    await live.subscribe({ queue: q });
    const before = (await other.submitMany([spec('t.outage', q)])).map((r) => r.job.id);
    await live.waitFor(() => live.events().length >= 1 || undefined);

    await proxy.cut();
    const during = (await other.submitMany(Array.from({ length: 5 }, () => spec('t.outage', q)))).map((r) => r.job.id);
    const told = await live.waitFor(() => live.of('error')[0], 15_000, 'the outage error');
    assert.deepEqual([told.code, told.message], ['ATS_ERR_STORE_UNAVAILABLE', 'The database is not reachable']);

    // A client subscribing live meanwhile (no read needed) is told after its subscribed.
    const late = await connect();
    await late.subscribe({ queue: q });
    const lateTold = await late.waitFor(() => late.of('error')[0], 15_000, 'the outage error');
    assert.equal(lateTold.code, 'ATS_ERR_STORE_UNAVAILABLE');

    // A client resuming from the live one's last cursor (the tail's horizon: no read needed) is told too.
    const resumed = await connect();
    await resumed.subscribe({ queue: q }, live.lastCursor());
    assert.equal((await resumed.waitFor(() => resumed.of('error')[0], 15_000, 'the outage error')).code, 'ATS_ERR_STORE_UNAVAILABLE');

    const readsAtCut = reads;
    await sleep(20 * ERROR_BACKOFF_MS);
    // At its error backoff about 20 reads; a busy loop would make thousands.
    assert.ok(reads - readsAtCut <= 60, `the tail read ${reads - readsAtCut} times in ${20 * ERROR_BACKOFF_MS} ms of outage`);
    assert.equal(live.of('error').length, 1, 'told once per outage, not once per failed read');
    assert.equal(live.closed, null);

    await proxy.restore();
    const afterwards = (await other.submitMany([spec('t.outage', q)])).map((r) => r.job.id);
    const ids = [...before, ...during, ...afterwards];
    const expected = await history(direct, ids);
    for (const c of [live, late, resumed]) {
      const wanted = c === live ? expected : await history(direct, [...during, ...afterwards]);
      await c.waitFor(() => c.events().length >= wanted.length || undefined, 20_000, `${wanted.length} events`);
      await sleep(100);
      assert.deepEqual(c.events().map(key).sort(), [...wanted].sort(), 'each event once, none missing');
      assertOrdered(c.events());
      assert.equal(c.closed, null);
    }
  });

  it('an outage that ends while no client is connected is not told to the next client', async () => {
    const q = randomQueue();
    const first = await connect();
    await first.subscribe({ queue: q });
    await proxy.cut();
    await first.waitFor(() => first.of('error')[0], 15_000, 'the outage error');
    await Promise.all(clients.map((c) => c.close()));
    await proxy.restore();
    // No client: the tail reads no rows, only the newest id (every idlePollMs), and that read succeeds.
    await sleep(2500);
    const next = await connect();
    await next.subscribe({ queue: q });
    const [id] = (await other.submitMany([spec('t.outage', q)])).map((r) => r.job.id);
    await next.waitFor(() => next.events().some((e) => e.jobId === id) || undefined, 20_000, 'the new event');
    assert.deepEqual(next.of('error'), [], 'the database answers: nothing to tell');
  });
});
