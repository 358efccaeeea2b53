/**
 * The api role on the real broker must not leave consumer groups behind: an
 * API process is restarted (a new host-pid each time) far more often than a
 * broker forgets an empty group. Starts and stops the api role (with its
 * stream) several times under a fresh topic prefix, which kafkajs group ids
 * carry too, and lists the broker's groups.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { compose } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../helpers/mysql.js';

const up = (await requireMysql()) && (await requireKafka());

describe('the api role and consumer groups (MariaDB + Kafka)', { skip: !up && 'MariaDB or Kafka not reachable' }, () => {
  const prefix = randomTopicPrefix();
  let db: TestDatabase;
  const admin = new Kafka({ clientId: 'ats-test-groups', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  const ourGroups = async () => (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));

  before(async () => {
    db = await createTestDatabase();
    await admin.connect();
  });
  after(async () => {
    const left = await ourGroups().catch(() => []);
    if (left.length > 0) await admin.deleteGroups(left).catch(() => undefined);
    await admin.disconnect();
    await db?.drop();
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  });

  it('starting and stopping the api role (with the stream) 4 times adds no consumer group', async () => {
    assert.deepEqual(await ourGroups(), []);
    for (let i = 0; i < 4; i++) {
      const config = compileConfig({
        roles: 'api', port: '0', mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix,
        kafkaPartitions: '1', logLevel: 'silent', workerId: `api-${i}`,
      });
      const system = await compose(config);
      try {
        const { url } = await system.start();
        // The stream is mounted and answers (a plain GET is told to upgrade).
        const res = await fetch(`${url}/v1/stream`);
        assert.equal(res.status, 400);
      } finally {
        await system.stop();
      }
    }
    assert.deepEqual(await ourGroups(), [], 'consumer groups left on the broker');
  });
});
