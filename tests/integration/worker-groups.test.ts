/**
 * Workers share the consumer group of each dispatch lane and create none of
 * their own: starting and stopping worker processes leaves no per-instance
 * group behind on the broker (groups pile up otherwise, one per host and pid,
 * never reused).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { laneGroup, lanesOf } from '../../engine/lanes.js';
import { silentLogger } from '../../engine/logger.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { FAST } from '../helpers/system.js';

let db: TestDatabase;
const prefix = randomTopicPrefix();
const kafka = new Kafka({ clientId: 'ats-test-groups', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
const admin = kafka.admin();

before(async () => {
  await requireKafka();
  db = await createTestDatabase();
  await admin.connect();
});
after(async () => {
  await admin.disconnect();
  await db?.drop();
  await deleteTopicsWithPrefix(prefix).catch(() => undefined);
});

/** The consumer groups of this run (every group name of the Kafka log carries the topic prefix). */
const groups = async () => (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix)).sort();

async function startWorker(workerId: string): Promise<System> {
  const raw: RawConfig = {
    ...FAST, mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix,
    roles: 'worker', workerGroup: 'workers', workerId,
  };
  const system = await compose(compileConfig(raw, { hostname: 'test', pid: process.pid }), { logger: silentLogger });
  await system.start();
  return system;
}

it('worker processes started and stopped one after another use only the shared groups of the lanes', async () => {
  // The default queue's three lanes, each in the group every worker reading it shares.
  const shared = lanesOf('default').map((lane) => prefix + laneGroup('workers', lane)).sort();
  assert.deepEqual(shared, [`${prefix}workers`, `${prefix}workers.default.high`, `${prefix}workers.default.low`]);
  for (const id of ['first', 'second']) {
    const system = await startWorker(`${id}-${process.pid}`);
    try {
      assert.deepEqual(await groups(), shared, `groups while worker ${id} runs`);
    } finally {
      await system.stop();
    }
  }
  assert.deepEqual(await groups(), shared, 'groups after both stopped');
});
