/**
 * Fan-out across API instances through Kafka: two instances share one
 * MariaDB database and one broker (each its own consumer group on
 * `ats.events`). Transitions are committed and relayed by instance A only;
 * a client on instance B sees them, woken by `ats.events` (B's fallback poll
 * is set to a minute, far beyond the test's waits), and a client that drops
 * from A resumes on B with its last cursor.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafkaLog } from '../../adapters/kafka/index.js';
import { createMysqlStore, type MysqlStore } from '../../adapters/mysql/index.js';
import type { EventLog } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import { randomQueue } from '../test-app.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from './test-stream.js';

const up = (await requireMysql()) && (await requireKafka());

describe('stream fan-out across instances via ats.events (MariaDB + Kafka)', { skip: !up && 'MariaDB or Kafka not reachable' }, () => {
  let db: TestDatabase;
  const prefix = randomTopicPrefix();
  const stores: MysqlStore[] = [];
  const logs: EventLog[] = [];
  const clients: TestClient[] = [];
  let a: StreamInstance;
  let b: StreamInstance;

  const openInstance = async (instanceId: string, relay: boolean, pollMs: number) => {
    const store = await createMysqlStore({ url: db.url, poolSize: 4 });
    stores.push(store);
    await store.migrate();
    const log = createKafkaLog({ brokers: kafkaBrokers(), topicPrefix: prefix, clientId: `ats-stream-test-${instanceId}`, logLevel: 'nothing' });
    logs.push(log);
    await log.ensureTopics();
    return startStreamInstance({ store, log, instanceId, relay, options: { pollMs } });
  };
  const connect = async (i: StreamInstance) => {
    const c = await TestClient.connect(i.url);
    clients.push(c);
    return c;
  };

  before(async () => {
    db = await createTestDatabase();
    a = await openInstance('a', true, 500);
    b = await openInstance('b', false, 60_000);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const i of [b, a]) await i?.close();
    for (const l of logs) await l.close().catch(() => undefined);
    for (const s of stores) await s.close().catch(() => undefined);
    await db?.drop();
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
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
    // Within 20 s: only an ats.events wake-up can do that (B polls once a minute).
    await onB.waitFor(() => onB.events().length >= expected.length || undefined, 20_000, `${expected.length} events on B`);
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
