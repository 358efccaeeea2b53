/**
 * Fan-out across API instances through the database: two instances share one
 * MariaDB database and nothing else. Transitions are committed through
 * instance A only (waking A's tail at once); a client on instance B sees
 * them through B's poll of `job_events` (every `pollMs` while clients are
 * connected), and a client that drops from A resumes on B with its last cursor.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import { randomQueue } from '../../tests/helpers/app.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const up = await requireMysql();

/** B's poll while clients are connected: the most a commit through A waits before B's clients get it. */
const POLL_MS = 200;

describe('stream fan-out across instances through the database (MariaDB)', { skip: !up && 'MariaDB not reachable' }, () => {
  let db: TestDatabase;
  const stores: MysqlStore[] = [];
  const clients: TestClient[] = [];
  let a: StreamInstance;
  let b: StreamInstance;

  const openInstance = async () => {
    const store = await createMysqlStore({ url: db.url, poolSize: 4 });
    stores.push(store);
    await store.migrate();
    return startStreamInstance({ store, options: { pollMs: POLL_MS } });
  };
  const connect = async (i: StreamInstance) => {
    const c = await TestClient.connect(i.url);
    clients.push(c);
    return c;
  };

  before(async () => {
    db = await createTestDatabase();
    a = await openInstance();
    b = await openInstance();
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const i of [b, a]) await i?.close();
    for (const s of stores) await s.close().catch(() => undefined);
    await db?.drop();
  });

  it('a client on instance B sees, in order, the transitions committed through instance A', async () => {
    const q = randomQueue();
    const onB = await connect(b);
    await onB.subscribe({ queue: q });
    const ids = (await a.transitions.submitMany(Array.from({ length: 5 }, () => spec('t.kafka', q)))).map((r) => r.job.id);
    for (const id of ids) {
      await a.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
      await a.transitions.apply(id, { type: 'SUCCEEDED', attempt: 1, result: id });
    }
    const expected = await history(a.store, ids);
    const committed = Date.now();
    await onB.waitFor(() => onB.events().length >= expected.length || undefined, 20_000, `${expected.length} events on B`);
    // A generous bound (B polls every POLL_MS): B follows A live, not on some slow fallback.
    const lag = Date.now() - committed;
    assert.ok(lag < 3000, `B got A's last commit ${lag} ms after it`);
    await sleep(200);
    assert.deepEqual(onB.events().map(key).sort(), [...expected].sort());
    assertOrdered(onB.events());
  });

  it('a client that drops from A resumes on B with its last cursor: no gap, no duplicate', async () => {
    const q = randomQueue();
    const onA = await connect(a);
    await onA.subscribe({ queue: q });
    const ids = (await a.transitions.submitMany(Array.from({ length: 6 }, () => spec('t.kafka', q)))).map((r) => r.job.id);
    await onA.waitFor(() => onA.events().length >= 6 || undefined, 20_000);
    await onA.close();
    for (const id of ids) await a.transitions.apply(id, { type: 'CANCEL', reason: 'moved' });
    const onB = await connect(b);
    await onB.subscribe({ queue: q }, onA.lastCursor());
    const expected = await history(a.store, ids);
    await onB.waitFor(() => onA.events().length + onB.events().length >= expected.length || undefined, 20_000);
    await sleep(200);
    const union = [...onA.events(), ...onB.events()];
    assert.deepEqual(union.map(key).sort(), [...expected].sort());
    assertOrdered(union);
  });
});
