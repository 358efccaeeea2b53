/**
 * The api role's port while the process starts: during a migration (here, the
 * wait for another process's, as in a rolling deployment) `/healthz` answers
 * 200, so an orchestrator's liveness probe does not restart the process and
 * cut the migration again and again, while `/readyz` and the API answer 503
 * ATS_ERR_NOT_READY, so no traffic is sent to it; once started, the API serves
 * on that same port. A process without the api role answers `/healthz` on
 * ATS_METRICS_PORT from the same moment.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { compose, type System } from './compose.js';
import { compileConfig } from './config.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import type { Logger } from '../engine/ports.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../tests/helpers/mysql.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../tests/helpers/kafka.js';
import { freePort } from '../tests/helpers/ports.js';

const LOCK = "LEFT(CONCAT('ats_migrate:', DATABASE()), 64)";

async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null } | 'refused'> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown>, retryAfter: r.headers.get('retry-after') };
  } catch {
    return 'refused';
  }
}

describe('the api port while the store migrates (MariaDB, Kafka)', () => {
  let db: TestDatabase;
  let other: Connection;
  const topicPrefix = randomTopicPrefix();
  const settings = (roles: string, port: number) => compileConfig({
    mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix, roles, port, logLevel: 'silent', advisor: 'off',
  }, { hostname: 't', pid: 1 });
  before(async () => {
    await requireMysql();
    await requireKafka();
    db = await createTestDatabase();
    other = await createConnection({ uri: db.url });
  });
  /**
   * `config` composed while `other` holds the migration lock: `composing` once the composition
   * says it waits for another process's migration (the probes are asked then).
   */
  const composeInMigrationWait = async (config: ReturnType<typeof compileConfig>): Promise<{ composing: Promise<System> }> => {
    const [[took]] = await other.query<RowDataPacket[]>(`SELECT GET_LOCK(${LOCK}, 0) AS locked`);
    assert.equal(Number(took?.locked), 1);
    const waits: string[] = [];
    const logger: Logger = { ...silentLogger, info: (msg) => void waits.push(msg) };
    const composing = compose(config, { registry: new HandlerRegistry(), logger });
    composing.catch(() => undefined); // the caller awaits it; a failure while this waits is not unhandled
    try {
      for (let i = 0; i < 200 && !waits.includes("waiting for another process's migration"); i++) await sleep(50);
      assert.ok(waits.includes("waiting for another process's migration"), waits.join(' | '));
    } catch (err) {
      await other.query(`SELECT RELEASE_LOCK(${LOCK})`).catch(() => undefined);
      await (await composing.catch(() => null))?.stop();
      throw err;
    }
    return { composing };
  };
  after(async () => {
    await other?.end();
    await db?.drop();
    await deleteTopicsWithPrefix(topicPrefix).catch(() => undefined);
  });

  test('/healthz 200, /readyz and the API 503 ATS_ERR_NOT_READY while it waits for another process\'s migration; then the API on the same port', { timeout: 120_000 }, async () => {
    const port = await freePort();
    // The process is in its migration's wait (it logs that it waits) before the probes are asked.
    const { composing } = await composeInMigrationWait(settings('api', port));
    const outcome = composing.then(() => 'composed', (err: unknown) => err);
    let system: System | null = null;
    try {
      const live = await get(port, '/healthz');
      assert.notEqual(live, 'refused', 'nothing answered /healthz during the migration');
      assert.equal(live !== 'refused' && live.status, 200);
      assert.deepEqual(live !== 'refused' && live.body, { status: 'ok' });
      for (const path of ['/readyz', '/v1/jobs']) {
        const r = await get(port, path);
        assert.ok(r !== 'refused', `${path}: refused`);
        assert.equal(r.status, 503, path);
        assert.equal(r.body.code, 'ATS_ERR_NOT_READY', path);
        assert.equal(r.retryAfter, '5', path);
      }

      await other.query(`SELECT RELEASE_LOCK(${LOCK})`);
      assert.equal(await outcome, 'composed');
      system = await composing;
      const { url } = await system.start();
      assert.equal(new URL(url!).port, String(port));
      const ready = await get(port, '/readyz');
      assert.ok(ready !== 'refused' && ready.status === 200, JSON.stringify(ready));
      assert.deepEqual(ready.body, { database: 'ok', log: 'ok' });
    } finally {
      await other.query(`SELECT RELEASE_LOCK(${LOCK})`).catch(() => undefined);
      await (system ?? (await composing.catch(() => null)))?.stop();
    }
    assert.equal(await get(port, '/healthz'), 'refused', 'the port is closed once the process stopped');
  });

  test('a process without the api role answers /healthz on ATS_METRICS_PORT while it waits for another process\'s migration', { timeout: 120_000 }, async () => {
    const metricsPort = await freePort();
    const { composing } = await composeInMigrationWait(compileConfig({
      mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix, roles: 'relay', metricsPort, logLevel: 'silent', advisor: 'off',
    }, { hostname: 't', pid: 1 }));
    let system: System | null = null;
    try {
      // A liveness probe of the relay during the wait: alive (a restart would cut the migration's wait again).
      const live = await get(metricsPort, '/healthz');
      assert.notEqual(live, 'refused', 'nothing answered /healthz on the metrics port during the migration');
      assert.deepEqual(live !== 'refused' && [live.status, live.body], [200, { status: 'ok' }]);

      await other.query(`SELECT RELEASE_LOCK(${LOCK})`);
      system = await composing;
      const { metricsUrl } = await system.start();
      assert.equal(new URL(metricsUrl!).port, String(metricsPort));
    } finally {
      await other.query(`SELECT RELEASE_LOCK(${LOCK})`).catch(() => undefined);
      await (system ?? (await composing.catch(() => null)))?.stop();
    }
    assert.equal(await get(metricsPort, '/healthz'), 'refused', 'the metrics port is closed once the process stopped');
  });

  test('a process without the api role binds no port while it starts', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const config = settings('relay', port);
    const system = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
    try {
      assert.equal(await get(port, '/healthz'), 'refused');
    } finally {
      await system.stop();
    }
  });
});
