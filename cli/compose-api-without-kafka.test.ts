/**
 * A process of the api role alone needs no log to serve: submits go to the
 * outbox (the relay publishes them later), the stream tails the store, and
 * /readyz reports the log without depending on it. So it starts while Kafka
 * cannot be reached (restarted during an outage: a deploy, a crash, an
 * autoscaler) and takes submits, instead of failing its start as a process
 * with the relay, the worker or the timers does.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { compose } from './compose.js';
import { compileConfig } from './config.js';
import type { AtsError } from '../engine/errors.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { kafkaBrokers, randomTopicPrefix, requireKafka } from '../tests/helpers/kafka.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../tests/helpers/mysql.js';
import { startTcpProxy, type TcpProxy } from '../tests/helpers/tcp-proxy.js';

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe('a process while Kafka refuses connections (MariaDB)', () => {
  let db: TestDatabase;
  // Kafka behind a proxy that refuses connections (as a stopped broker's port does) until restored.
  let kafka: TcpProxy;
  const settings = (roles: string) => compileConfig({
    mysqlUrl: db.url, kafkaBrokers: `127.0.0.1:${kafka.port}`, topicPrefix: randomTopicPrefix(), roles,
    host: '127.0.0.1', port: 0, logLevel: 'silent', advisor: 'off',
  }, { hostname: 't', pid: 1 });
  before(async () => {
    await requireMysql();
    await requireKafka();
    db = await createTestDatabase();
    const [host, port] = kafkaBrokers()[0]!.split(':');
    kafka = await startTcpProxy({ host: host!, port: Number(port) });
    await kafka.cut();
  });
  after(async () => {
    await kafka?.close();
    await db?.drop();
  });

  test('the timers alone (they read the lanes and the workflows\' topic) fail the start, saying Kafka is not reachable', async () => {
    await assert.rejects(compose(settings('timers'), { registry: new HandlerRegistry(), logger: silentLogger }), (e: AtsError) =>
      e.code === 'ATS_ERR_NOT_READY' && /^Kafka is not reachable at 127\.0\.0\.1:\d+: .*ECONNREFUSED/.test(e.message));
  });

  test('the api alone starts: /readyz 200 with the log unreachable, a submit 201 kept in the outbox; the log ok once Kafka is back', { timeout: 60_000 }, async () => {
    const registry = new HandlerRegistry();
    registry.register('echo', async (payload) => payload);
    const system = await compose(settings('api'), { registry, logger: silentLogger });
    const conn = await createConnection({ uri: db.url });
    try {
      const { url } = await system.start();
      assert.deepEqual(await readyz(url!), { status: 200, body: { database: 'ok', log: 'unreachable' } });

      const submitted = await fetch(`${url}/v1/jobs`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'echo', payload: { n: 1 } }),
      });
      const job = (await submitted.json()) as { id: string };
      assert.equal(submitted.status, 201, JSON.stringify(job));
      const [jobs] = await conn.query<RowDataPacket[]>('SELECT id FROM jobs WHERE id = ?', [job.id]);
      assert.equal(jobs.length, 1, 'the job row');
      // Its dispatch waits in the outbox for a relay (keyed by the job, in a row of its own or among a row's messages).
      const [outbox] = await conn.query<RowDataPacket[]>('SELECT id FROM outbox WHERE msg_key = ? OR payload LIKE ?', [job.id, `%${job.id}%`]);
      assert.ok(outbox.length > 0, 'no outbox row names the job');

      await kafka.restore();
      let ready = await readyz(url!);
      for (let i = 0; i < 100 && ready.body.log !== 'ok'; i++) ready = (await sleep(100), await readyz(url!));
      assert.deepEqual(ready, { status: 200, body: { database: 'ok', log: 'ok' } });
    } finally {
      await conn.end();
      await system.stop();
    }
  });
});
